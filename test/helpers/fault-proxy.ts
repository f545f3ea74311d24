/**
 * A fault-injecting TCP proxy for tests, in front of a real server (s3rver, Azurite,
 * `lucid serve`): each new connection takes the next fault in line, or passes through.
 * Faults apply per connection (clients keep connections alive: give each scenario a fresh
 * client). Faults: reset (the connection is cut after `afterBytes` of the answer: a reset, or a body
 * cut short), stall (the request goes nowhere and no answer comes: a timeout), http503 (an
 * S3-style "SlowDown" answer: throttling), latency (the answer is held back `ms`), refuse
 * (the connection is closed at once: the server is down).
 */
import net from 'node:net';

export type NetFault =
  | { kind: 'reset'; afterBytes: number }
  | { kind: 'stall' }
  | { kind: 'http503' }
  | { kind: 'latency'; ms: number }
  | { kind: 'refuse' };

export interface FaultProxy {
  port: number;
  url: string;
  /** Queues `fault` for the next `times` connections (default 1). */
  inject(fault: NetFault, times?: number): void;
  /** Every new connection gets `fault` until `clear()` (or with `probability`, that share of them). */
  always(fault: NetFault, probability?: number): void;
  clear(): void;
  /** Cuts every open connection (kept-alive ones too): with `always` refuse, the server is gone. */
  cutAll(): void;
  /** Faults applied so far. */
  fired: number;
  connections: number;
  close(): Promise<void>;
}

const SLOW_DOWN_BODY = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>';
const SLOW_DOWN = Buffer.from(`HTTP/1.1 503 Slow Down\r\ncontent-type: application/xml\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(SLOW_DOWN_BODY)}\r\n\r\n${SLOW_DOWN_BODY}`);

export async function startFaultProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<FaultProxy> {
  const queue: NetFault[] = [];
  let standing: { fault: NetFault; probability: number } | undefined;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    proxy.connections++;
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    const fault = queue.shift() ?? (standing && Math.random() < standing.probability ? standing.fault : undefined);
    if (fault) proxy.fired++;
    if (fault?.kind === 'refuse') return void client.resetAndDestroy();
    if (fault?.kind === 'stall') return void client.resume(); // read and drop: nothing ever answers
    if (fault?.kind === 'http503') {
      client.once('data', () => client.end(SLOW_DOWN));
      return;
    }
    const upstream = net.connect(targetPort, targetHost);
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    client.pipe(upstream);
    let sent = 0;
    upstream.on('data', (chunk: Buffer) => {
      if (fault?.kind === 'reset') {
        const room = fault.afterBytes - sent;
        if (room <= 0) {
          client.resetAndDestroy();
          upstream.destroy();
          return;
        }
        if (chunk.length >= room) {
          client.write(chunk.subarray(0, room), () => client.resetAndDestroy());
          upstream.destroy();
          sent = fault.afterBytes;
          return;
        }
      }
      const first = sent === 0;
      sent += chunk.length;
      if (fault?.kind === 'latency' && first) {
        // A spike: the answer starts `ms` late, then flows.
        upstream.pause();
        setTimeout(() => { client.write(chunk); upstream.resume(); }, fault.ms);
      } else if (!client.write(chunk)) {
        upstream.pause();
        client.once('drain', () => upstream.resume());
      }
    });
    upstream.on('end', () => client.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const proxy: FaultProxy = {
    port,
    url: `http://127.0.0.1:${port}`,
    fired: 0,
    connections: 0,
    inject: (fault, times = 1) => { for (let i = 0; i < times; i++) queue.push(fault); },
    always: (fault, probability = 1) => { standing = { fault, probability }; },
    clear: () => { queue.length = 0; standing = undefined; },
    cutAll: () => { for (const s of sockets) s.destroy(); },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return proxy;
}
