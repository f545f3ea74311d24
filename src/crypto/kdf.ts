/**
 * Password → key-encryption key with Argon2id (libsodium, WASM build with crypto_pwhash).
 * Strength presets follow libsodium's: interactive ≈ 0.1 s, moderate ≈ 1.2 s (the default),
 * sensitive ≈ several seconds. The parameters are stored in the descriptor per user.
 */
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

export async function deriveKek(password: string, params: KdfParams): Promise<Buffer> {
  await sodium.ready;
  const key = sodium.crypto_pwhash(32, Buffer.from(password, 'utf8'), Buffer.from(params.salt, 'base64'),
    params.opsLimit, params.memLimit, sodium.crypto_pwhash_ALG_ARGON2ID13);
  return Buffer.from(key);
}
