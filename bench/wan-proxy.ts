/**
 * WAN emulation in user space (these kernels have no netem): a TCP proxy on loopback that
 * delays every byte by half the round-trip time in each direction and caps the bandwidth of
 * each direction, shared by all connections through it, like one access link. Order is kept
 * per connection; a connection's queue is bounded, so a fast sender is paused (as a real
 * TCP window would) instead of buffering without limit.
 */
import net from 'node:net';

export interface WanOptions {
  /** Round-trip time added, in ms. */
  rttMs: number;
  /** Bandwidth cap per direction, in bytes per second (0: none). */
  bytesPerSecond: number;
  /** Where the proxy forwards to. */
  targetHost: string;
  targetPort: number;
  /** Most bytes queued per connection and direction before its sender is paused. */
  maxQueuedBytes?: number;
}

export interface WanProxy {
  port: number;
  url(path?: string): string;
  /** Bytes carried in each direction. */
  stats(): { up: number; down: number; connections: number };
  close(): Promise<void>;
}

/** One direction of the link: a pacer shared by every connection. */
class Direction {
  private nextFree = 0;
  bytes = 0;
  constructor(private readonly oneWayMs: number, private readonly bytesPerSecond: number) {}

  /** When a chunk that arrives now is delivered: after the link is free, its serialization and the one-way delay. */
  schedule(size: number): number {
    const serialize = this.bytesPerSecond > 0 ? (size / this.bytesPerSecond) * 1000 : 0;
    this.nextFree = Math.max(performance.now(), this.nextFree) + serialize;
    this.bytes += size;
    return this.nextFree + this.oneWayMs;
  }
}

/** Forwards `from` to `to` through `dir`, in order: one FIFO per connection, one timer. */
function pipeDelayed(from: net.Socket, to: net.Socket, dir: Direction, maxQueued: number): void {
  const queue: { chunk: Buffer | null; due: number }[] = [];
  let queued = 0;
  let timer: NodeJS.Timeout | undefined;
  const drain = () => {
    timer = undefined;
    const now = performance.now();
    while (queue.length > 0 && queue[0].due <= now + 0.5) {
      const { chunk } = queue.shift()!;
      if (chunk === null) {
        to.end();
        continue;
      }
      queued -= chunk.length;
      if (!to.destroyed) to.write(chunk);
    }
    if (queued <= maxQueued / 2 && from.isPaused()) from.resume();
    if (queue.length > 0) timer = setTimeout(drain, Math.max(0, queue[0].due - performance.now()));
  };
  const push = (chunk: Buffer | null, due: number) => {
    queue.push({ chunk, due });
    if (!timer) timer = setTimeout(drain, Math.max(0, queue[0].due - performance.now()));
  };
  from.on('data', (chunk: Buffer) => {
    queued += chunk.length;
    if (queued > maxQueued) from.pause();
    push(chunk, dir.schedule(chunk.length));
  });
  from.on('end', () => push(null, queue.length ? queue[queue.length - 1].due : performance.now()));
  from.on('error', () => to.destroy());
}

export async function startWanProxy(options: WanOptions): Promise<WanProxy> {
  const oneWay = options.rttMs / 2;
  const up = new Direction(oneWay, options.bytesPerSecond);
  const down = new Direction(oneWay, options.bytesPerSecond);
  const maxQueued = options.maxQueuedBytes ?? 16 * 1024 * 1024;
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const server = net.createServer((client) => {
    connections++;
    const upstream = net.connect(options.targetPort, options.targetHost);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on('close', () => sockets.delete(s));
    }
    // The TCP handshake costs a round trip too.
    client.pause();
    setTimeout(() => client.resume(), options.rttMs);
    pipeDelayed(client, upstream, up, maxQueued);
    pipeDelayed(upstream, client, down, maxQueued);
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: (p = '') => `http://127.0.0.1:${port}${p}`,
    stats: () => ({ up: up.bytes, down: down.bytes, connections }),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
