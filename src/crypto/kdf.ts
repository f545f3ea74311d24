/**
 * Password → key-encryption key with Argon2id (libsodium, WASM build with crypto_pwhash).
 * Strength presets follow libsodium's: interactive ≈ 0.1 s, moderate ≈ 1.2 s (the default),
 * sensitive ≈ several seconds. The parameters are stored in the descriptor per user.
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import sodium from 'libsodium-wrappers-sumo';
import { UsageError } from '../errors.js';

export interface KdfParams {
  alg: 'argon2id13';
  opsLimit: number;
  memLimit: number;
  /** base64, 16 bytes */
  salt: string;
}

export type KdfStrength = 'interactive' | 'moderate' | 'sensitive';

export async function kdfParams(strength: KdfStrength, salt: Buffer): Promise<KdfParams> {
  await sodium.ready;
  const presets: Record<KdfStrength, [number, number]> = {
    interactive: [sodium.crypto_pwhash_OPSLIMIT_INTERACTIVE, sodium.crypto_pwhash_MEMLIMIT_INTERACTIVE],
    moderate: [sodium.crypto_pwhash_OPSLIMIT_MODERATE, sodium.crypto_pwhash_MEMLIMIT_MODERATE],
    sensitive: [sodium.crypto_pwhash_OPSLIMIT_SENSITIVE, sodium.crypto_pwhash_MEMLIMIT_SENSITIVE],
  };
  const preset = presets[strength];
  if (!preset) throw new UsageError(`KDF strength "${strength}" is unknown: use interactive, moderate or sensitive`);
  return { alg: 'argon2id13', opsLimit: preset[0], memLimit: preset[1], salt: salt.toString('base64') };
}

/**
 * Derives the key-encryption key. Argon2id runs in a short-lived worker thread: its WASM
 * heap grows to the memory limit (256 MiB at "moderate") and never shrinks, so it must not
 * live in the long-running agent.
 */
export async function deriveKek(password: string, params: KdfParams): Promise<Buffer> {
  const worker = new Worker(new URL(import.meta.url), { workerData: { password, params } });
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      worker.once('message', (key: Uint8Array) => resolve(Buffer.from(key)));
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the key derivation worker exited (${code})`)));
    });
  } finally {
    await worker.terminate();
  }
}

async function deriveInThisThread(password: string, params: KdfParams): Promise<Uint8Array> {
  await sodium.ready;
  return sodium.crypto_pwhash(32, Buffer.from(password, 'utf8'), Buffer.from(params.salt, 'base64'),
    params.opsLimit, params.memLimit, sodium.crypto_pwhash_ALG_ARGON2ID13);
}

if (!isMainThread && parentPort && (workerData as { params?: KdfParams })?.params) {
  const { password, params } = workerData as { password: string; params: KdfParams };
  parentPort.postMessage(await deriveInThisThread(password, params));
}
