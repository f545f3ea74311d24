/**
 * Block AEAD throughput per core: seals and opens 1 MiB blocks with the block codec
 * (native AES-256-GCM, a fresh key per object) for a fixed time each, on one thread, and
 * prints GB/s. For scale it measures libsodium's WASM XChaCha20-Poly1305 in the same run.
 */
import { randomBytes } from 'node:crypto';
import sodium from 'libsodium-wrappers-sumo';
import { createDescriptor } from '../src/crypto/descriptor.js';
import { BlockCodec, newObjectId } from '../src/block/format.js';

export interface AeadResult {
  blockBytes: number;
  sealGBps: number;
  openGBps: number;
  wasmSealGBps: number;
  wasmOpenGBps: number;
}

function rate(seconds: number, fn: () => number): number {
  let bytes = 0;
  for (let i = 0; i < 3; i++) fn(); // warm up
  const start = performance.now();
  while (performance.now() - start < seconds * 1000) bytes += fn();
  return bytes / ((performance.now() - start) / 1000) / 1e9;
}

export async function benchAead(seconds = 2, blockBytes = 1 << 20): Promise<AeadResult> {
  const { keys } = await createDescriptor({ password: 'bench', blockSize: blockBytes, kdf: 'interactive' });
  const codec = new BlockCodec(keys, 1);
  const plain = randomBytes(blockBytes);
  const ids = Array.from({ length: 16 }, () => newObjectId());
  const sealed = ids.map((id) => codec.seal(id, plain));
  let i = 0;
  const sealGBps = rate(seconds, () => codec.seal(ids[i++ % ids.length], plain).length);
  let j = 0;
  const openGBps = rate(seconds, () => { const k = j++ % ids.length; return codec.open(ids[k], sealed[k]).length; });

  await sodium.ready;
  const key = sodium.crypto_aead_xchacha20poly1305_ietf_keygen();
  const nonce = randomBytes(24);
  const ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plain, null, null, nonce, key);
  const wasmSealGBps = rate(seconds, () => sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plain, null, null, nonce, key).length);
  const wasmOpenGBps = rate(seconds, () => sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, ct, null, nonce, key).length);
  return { blockBytes, sealGBps, openGBps, wasmSealGBps, wasmOpenGBps };
}
