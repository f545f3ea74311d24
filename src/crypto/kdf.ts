/**
 * Password → key-encryption key with Argon2id (libsodium, WASM build with crypto_pwhash).
 * Strength presets follow libsodium's: interactive ≈ 0.1 s, moderate ≈ 1.2 s (the default),
 * sensitive ≈ several seconds. The parameters are stored in the descriptor per user.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { InternalError, UsageError } from '../errors.js';

/** libsodium (sumo: it has crypto_pwhash), loaded only where it is used: its WASM heap stays out of the agent. */
async function loadSodium() {
  const sodium = (await import('libsodium-wrappers-sumo')).default;
  await sodium.ready;
  return sodium;
}

export interface KdfParams {
  alg: 'argon2id13';
  opsLimit: number;
  memLimit: number;
  /** base64, 16 bytes */
  salt: string;
}

export type KdfStrength = 'interactive' | 'moderate' | 'sensitive';

export async function kdfParams(strength: KdfStrength, salt: Buffer): Promise<KdfParams> {
  const sodium = await loadSodium();
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
 * Derives the key-encryption key. Argon2id runs in a short-lived child process: its WASM heap
 * grows to the memory limit (256 MiB at "moderate") and never shrinks, and a worker thread
 * would still count in the agent's memory (its peak RSS); a process gives it all back. The
 * password goes over a pipe, never the command line.
 */
export async function deriveKek(password: string, params: KdfParams): Promise<Buffer> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), KDF_FLAG], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));
  child.stdin.end(JSON.stringify({ password, params }));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  const hex = Buffer.concat(out).toString('utf8').trim();
  if (code !== 0 || !/^[0-9a-f]{64}$/.test(hex)) {
    throw new InternalError(`the key derivation process failed (exit ${code}): ${Buffer.concat(err).toString('utf8').trim().split('\n')[0] ?? ''}`);
  }
  return Buffer.from(hex, 'hex');
}

const KDF_FLAG = '--lucid-derive-kek';

async function deriveHere(password: string, params: KdfParams): Promise<Uint8Array> {
  const sodium = await loadSodium();
  return sodium.crypto_pwhash(32, Buffer.from(password, 'utf8'), Buffer.from(params.salt, 'base64'),
    params.opsLimit, params.memLimit, sodium.crypto_pwhash_ALG_ARGON2ID13);
}

if (process.argv[2] === KDF_FLAG && process.argv[1] === fileURLToPath(import.meta.url)) {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const { password, params } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { password: string; params: KdfParams };
  process.stdout.write(`${Buffer.from(await deriveHere(password, params)).toString('hex')}\n`);
}
