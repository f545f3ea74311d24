/**
 * What a block PUT looks like on the wire (S3Store against a bare HTTP server that records
 * requests): one request at any size — no `Expect: 100-continue` round trip, even at 3 MiB
 * where the SDK would add one — its body sent as it is (no aws-chunked framing), unsigned
 * payload, signed request.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { S3Store } from '../../src/store/s3.js';

t.test('a 3 MiB PUT: one request, no Expect header, the body byte for byte, UNSIGNED-PAYLOAD', async (t) => {
  const seen: { method: string; url: string; headers: http.IncomingHttpHeaders; body: Buffer }[] = [];
  let continues = 0;
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(parts) });
      res.writeHead(200, { ETag: '"x"' });
      res.end();
    });
  });
  server.on('checkContinue', (req, res) => { continues++; res.writeContinue(); server.emit('request', req, res); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  process.env.AWS_ACCESS_KEY_ID ??= 'K';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'S';
  const store = new S3Store({ bucket: 'b', prefix: 'p/', endpoint: `http://127.0.0.1:${port}` });
  t.teardown(() => store.close());
  const body = randomBytes(3 * 1024 * 1024);
  await store.put('blocks/ab/abcdef', body);
  t.equal(seen.length, 1, 'one request');
  t.equal(continues, 0, 'no Expect: 100-continue');
  t.equal(seen[0].headers.expect, undefined, 'no Expect header');
  t.equal(seen[0].method, 'PUT');
  t.equal(seen[0].url.split('?')[0], '/b/p/blocks/ab/abcdef', 'path-style key under the prefix');
  t.ok(seen[0].body.equals(body), 'the body byte for byte');
  t.equal(seen[0].headers['x-amz-content-sha256'], 'UNSIGNED-PAYLOAD', 'the body is not hashed');
  t.match(String(seen[0].headers.authorization), /^AWS4-HMAC-SHA256 Credential=.*SignedHeaders=.*x-amz-content-sha256/, 'the request is signed, the payload header with it');
});
