/**
 * Paces garbage collection by the bytes of block buffers allocated. V8 frees a Buffer's
 * memory only when a collection finds its small wrapper dead, and it counts memory outside
 * its heap loosely: a stream of 1 MiB blocks (cold reads, frame sequences) let 60–100 MiB
 * of dead buffers wait, so the agent's RSS rose and fell by that much from run to run. After
 * every `everyBytes` allocated this asks for a collection, started in the background (V8's
 * concurrent marking), so the dead buffers go while few have piled up.
 *
 * Needs the process started with --expose-gc (the agent is); without it this does nothing.
 */
export type GcFunction = (options: { type: 'major' | 'minor'; execution: 'async' | 'sync' }) => Promise<void> | void;

export class GcPacer {
  private readonly gc?: GcFunction;
  private since = 0;
  private running = false;
  collections = 0;

  constructor(private readonly everyBytes = 64 * 1024 * 1024, gc = (globalThis as { gc?: GcFunction }).gc) {
    this.gc = gc;
  }

  get enabled(): boolean {
    return this.gc !== undefined;
  }

  /** `bytes` of buffers were allocated (and as many will soon be dead). */
  allocated(bytes: number): void {
    if (!this.gc) return;
    this.since += bytes;
    if (this.since < this.everyBytes || this.running) return;
    this.since = 0;
    this.running = true;
    this.collections++;
    void Promise.resolve(this.gc({ type: 'major', execution: 'async' })).finally(() => { this.running = false; });
  }
}
