/**
 * What a running agent is to its control socket (src/cli/control.ts): its status, and the
 * operations `lucid status|pin|warm|cache|snapshot|gc|unmount` ask of it. The agent
 * implements it; the control server depends on this interface, not on the agent.
 */
import type { BlockCache } from '../cache/block-cache.js';
import type { CopyProgress, FilespaceAdmin } from './admin.js';

export type WarmProgress = CopyProgress;

export interface AgentStatus {
  mountpoint: string;
  pid: number;
  state: 'mounted' | 'uploading' | 'stopping' | 'offline';
  /** Present while the service or the store cannot be reached: cached data is served, writes wait in the cache. */
  offline?: { since: string; reason: string };
  filespaceId: string;
  store: string;
  service: string;
  uploadBytes: number;
  /** Bytes uploaded per second over the last seconds, and the seconds left at that rate (absent while nothing moves). */
  uploadRate: number;
  uploadSecondsLeft?: number;
  /** The agent's memory (bytes): resident set, JavaScript heap in use, memory outside it (buffers). */
  memory: { rss: number; heapUsed: number; external: number; arrayBuffers: number };
  /** Changes to names and attributes not yet at the metadata service (write-back, or offline). */
  changesWaiting: number;
  /** How long the oldest of them has waited (ms). */
  changesOldestMs: number;
  /** Changes another client's change made land as a conflict copy, or skipped, since the mount started. */
  conflicts: number;
  /** Requests that carried changes to the service, and the changes they carried. */
  metaBatches: { requests: number; changes: number };
  uploadBlocks: number;
  uploadsInFlight: number;
  cache: ReturnType<BlockCache['stats']> & { dir: string; hitRatio: number };
  prefetch: { issued: number; used: number; cancelled: number; inflight: number; accuracy: number; predictedFiles: number };
  store_requests: { get: number; put: number; getBytes: number; putBytes: number };
  bytesRead: number;
  bytesWritten: number;
  openFiles: number;
  startedAt: string;
}

export interface ControlledAgent {
  readonly config: { storeUrl: string };
  readonly filespaceId: string;
  readonly admin: FilespaceAdmin;
  readonly cache: Pick<BlockCache, 'setLimit' | 'stats'>;
  status(): AgentStatus;
  pin(rel: string, on: boolean): Promise<{ files: number; bytes: number }>;
  warm(rel: string, recursive: boolean, progress: (p: WarmProgress) => void): Promise<WarmProgress>;
  /**
   * What `sync` would do if the kernel asked (it does not ask a FUSE file system): waits until
   * every change to names and attributes and every written block is at the service and in
   * the store. Returns what waited when it was called.
   */
  sync(): Promise<{ changes: number; bytes: number }>;
  stop(options?: { force?: boolean; external?: boolean }): Promise<void>;
}
