/*
 * lucid_aead: AES-256-GCM opened straight into a caller's buffer, through the OpenSSL that
 * Node itself is built with (its symbols and headers ship with Node).
 *
 * Why: node:crypto's Decipher.update returns a new zero-filled Buffer for every call, so a
 * block opened into reused memory still cost an allocation, a memset and a copy per piece,
 * and the garbage kept V8's concurrent marking busy during warm reads. Here the ciphertext
 * is decrypted in one pass into the caller's memory: no allocation at all.
 *
 * Sealing small messages (file names, 4 KiB blocks) costs node:crypto a Cipher object, its
 * setup and four calls each (~45 µs for a name); sealInto is one call into the same OpenSSL.
 *
 * Dirty cache blocks are AES-256-XTS per 4 KiB sector (src/crypto/sectors.ts): node:crypto
 * needs a Cipher object per sector (~12 µs each, 0.4 ms for a 128 KiB write); xtsInto runs
 * every sector of a run through one OpenSSL context, re-keyed only by its tweak.
 *
 * Promises: openInto returns the plaintext's length when the tag verifies, or -1 when it
 * does not (then `into` holds unauthenticated bytes the caller must never read). sealInto
 * writes the ciphertext (as long as the plaintext) and the 16-byte tag, returning 0, or -1 if
 * OpenSSL failed (then neither may be used). Both throw only on bad arguments (wrong sizes,
 * too little room). They keep no state between calls and may be called from any thread
 * (worker threads load it too).
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <string.h>

#define CHECK(call) do { if ((call) != napi_ok) { napi_throw_error(env, NULL, "lucid_aead: bad arguments"); return NULL; } } while (0)

static int bytes_of(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  bool is_typed = false;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed) return -1;
  napi_typedarray_type type;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &type, len, (void **) data, &ab, &off) != napi_ok) return -1;
  return type == napi_uint8_array ? 0 : -1;
}

/* openInto(key, nonce, aad, ciphertext, tag, into) → plaintext length, or -1 if not authentic */
static napi_value js_open_into(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint8_t *key, *nonce, *aad, *ct, *tag, *into;
  size_t key_len, nonce_len, aad_len, ct_len, tag_len, into_len;
  if (argc < 6 || bytes_of(env, argv[0], &key, &key_len) || bytes_of(env, argv[1], &nonce, &nonce_len) ||
      bytes_of(env, argv[2], &aad, &aad_len) || bytes_of(env, argv[3], &ct, &ct_len) ||
      bytes_of(env, argv[4], &tag, &tag_len) || bytes_of(env, argv[5], &into, &into_len)) {
    napi_throw_type_error(env, NULL, "lucid_aead.openInto(key, nonce, aad, ciphertext, tag, into): Uint8Arrays expected");
    return NULL;
  }
  if (key_len != 32 || nonce_len == 0 || tag_len != 16 || into_len < ct_len || ct_len > INT32_MAX || aad_len > INT32_MAX) {
    napi_throw_range_error(env, NULL, "lucid_aead.openInto: a 32-byte key, a nonce, a 16-byte tag and room for the plaintext expected");
    return NULL;
  }
  int result = -1;
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int aad_out = 0, out = 0, tail = 0;
  if (ctx &&
      EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, (int) nonce_len, NULL) == 1 &&
      EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) == 1 &&
      (aad_len == 0 || EVP_DecryptUpdate(ctx, NULL, &aad_out, aad, (int) aad_len) == 1) &&
      (ct_len == 0 || EVP_DecryptUpdate(ctx, into, &out, ct, (int) ct_len) == 1) &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag) == 1 &&
      EVP_DecryptFinal_ex(ctx, into + out, &tail) == 1) {
    result = out + tail;
  }
  EVP_CIPHER_CTX_free(ctx);
  napi_value v;
  napi_create_int32(env, result, &v);
  return v;
}

/* sealInto(key, nonce, aad, plaintext, out, tag) → 0, or -1 if OpenSSL failed */
static napi_value js_seal_into(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint8_t *key, *nonce, *aad, *pt, *out, *tag;
  size_t key_len, nonce_len, aad_len, pt_len, out_len, tag_len;
  if (argc < 6 || bytes_of(env, argv[0], &key, &key_len) || bytes_of(env, argv[1], &nonce, &nonce_len) ||
      bytes_of(env, argv[2], &aad, &aad_len) || bytes_of(env, argv[3], &pt, &pt_len) ||
      bytes_of(env, argv[4], &out, &out_len) || bytes_of(env, argv[5], &tag, &tag_len)) {
    napi_throw_type_error(env, NULL, "lucid_aead.sealInto(key, nonce, aad, plaintext, out, tag): Uint8Arrays expected");
    return NULL;
  }
  if (key_len != 32 || nonce_len == 0 || tag_len != 16 || out_len < pt_len || pt_len > INT32_MAX || aad_len > INT32_MAX) {
    napi_throw_range_error(env, NULL, "lucid_aead.sealInto: a 32-byte key, a nonce, room for the ciphertext and a 16-byte tag expected");
    return NULL;
  }
  int result = -1;
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int aad_out = 0, n = 0, tail = 0;
  if (ctx &&
      EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, (int) nonce_len, NULL) == 1 &&
      EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) == 1 &&
      (aad_len == 0 || EVP_EncryptUpdate(ctx, NULL, &aad_out, aad, (int) aad_len) == 1) &&
      (pt_len == 0 || EVP_EncryptUpdate(ctx, out, &n, pt, (int) pt_len) == 1) &&
      EVP_EncryptFinal_ex(ctx, out + n, &tail) == 1 &&
      (size_t) (n + tail) == pt_len &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1) {
    result = 0;
  }
  EVP_CIPHER_CTX_free(ctx);
  napi_value v;
  napi_create_int32(env, result, &v);
  return v;
}

/*
 * xtsInto(encrypt, key, fileId, firstSector, src, dst) → 0, or -1 if OpenSSL failed.
 * AES-256-XTS over consecutive 4 KiB sectors: sector n is processed under the tweak made of
 * fileId's first 8 bytes and n as a 64-bit little-endian number (as src/crypto/sectors.ts
 * builds it for node:crypto). src's length is a multiple of 4096; dst may be src.
 */
static napi_value js_xts_into(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bool encrypt = false;
  double first = 0;
  uint8_t *key, *file_id, *src, *dst;
  size_t key_len, id_len, src_len, dst_len;
  if (argc < 6 || napi_get_value_bool(env, argv[0], &encrypt) != napi_ok || bytes_of(env, argv[1], &key, &key_len) ||
      bytes_of(env, argv[2], &file_id, &id_len) || napi_get_value_double(env, argv[3], &first) != napi_ok ||
      bytes_of(env, argv[4], &src, &src_len) || bytes_of(env, argv[5], &dst, &dst_len)) {
    napi_throw_type_error(env, NULL, "lucid_aead.xtsInto(encrypt, key, fileId, firstSector, src, dst): a boolean, Uint8Arrays and a number expected");
    return NULL;
  }
  if (key_len != 64 || id_len < 8 || src_len % 4096 != 0 || dst_len < src_len || first < 0 || first > 9007199254740991.0) {
    napi_throw_range_error(env, NULL, "lucid_aead.xtsInto: a 64-byte key, an 8-byte id, whole 4096-byte sectors and room for them expected");
    return NULL;
  }
  int result = -1;
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (ctx && EVP_CipherInit_ex(ctx, EVP_aes_256_xts(), NULL, key, NULL, encrypt ? 1 : 0) == 1) {
    uint64_t sector = (uint64_t) first;
    uint8_t tweak[16];
    memcpy(tweak, file_id, 8);
    result = 0;
    for (size_t off = 0; off < src_len; off += 4096, sector++) {
      for (int i = 0; i < 8; i++) tweak[8 + i] = (uint8_t) (sector >> (8 * i));
      int n = 0;
      if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, tweak, -1) != 1 ||
          EVP_CipherUpdate(ctx, dst + off, &n, src + off, 4096) != 1 || n != 4096) {
        result = -1;
        break;
      }
    }
  }
  EVP_CIPHER_CTX_free(ctx);
  napi_value v;
  napi_create_int32(env, result, &v);
  return v;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_value fn;
  if (napi_create_function(env, "sealInto", NAPI_AUTO_LENGTH, js_seal_into, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "sealInto", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "openInto", NAPI_AUTO_LENGTH, js_open_into, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "openInto", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "xtsInto", NAPI_AUTO_LENGTH, js_xts_into, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "xtsInto", fn) != napi_ok) return NULL;
  return exports;
}
