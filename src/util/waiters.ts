/**
 * Waits keyed by a value (an inode): `wait(key)` resolves at the next `wake(key)`, or after an
 * optional timeout, and rejects with the caller's error when its AbortSignal fires. `cancel`
 * resolves a wait early (the caller no longer needs it). Used by the lock managers, whose
 * blocked requests wait for "locks on this inode changed".
 */
export interface Wait {
  promise: Promise<void>;
  cancel(): void;
}

export class KeyedWaiters<K> {
  private readonly waiting = new Map<K, Set<() => void>>();

  wait(key: K, options: { signal?: AbortSignal; timeoutMs?: number; aborted: () => Error }): Wait {
    const { signal } = options;
    let done: () => void = () => {};
    const promise = new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(options.aborted());
      let set = this.waiting.get(key);
      if (!set) this.waiting.set(key, (set = new Set()));
      let timer: NodeJS.Timeout | undefined;
      const cleanup = () => {
        set!.delete(done);
        if (set!.size === 0) this.waiting.delete(key);
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const onAbort = () => { cleanup(); reject(options.aborted()); };
      done = () => { cleanup(); resolve(); };
      set.add(done);
      if (options.timeoutMs !== undefined) timer = setTimeout(done, options.timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    promise.catch(() => {});
    return { promise, cancel: () => done() };
  }

  wake(key: K): void {
    for (const w of [...(this.waiting.get(key) ?? [])]) w();
  }

  wakeAll(): void {
    for (const key of [...this.waiting.keys()]) this.wake(key);
  }
}
