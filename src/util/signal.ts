/**
 * A signal: a part says something happened, and the parts given it at construction listen.
 * It is how a lower layer tells a higher one without knowing it (the block cache's pressure
 * reaches the uploader, the journal's replays reach the mount's view), so parts are joined
 * by constructor arguments and no hook field is assigned after construction.
 * Listeners run in the order they were added, synchronously; one that throws does not stop
 * the others (the error is rethrown after all have run).
 */
export class Signal<T = void> {
  private readonly listeners: ((value: T) => void)[] = [];

  on(listener: (value: T) => void): void {
    this.listeners.push(listener);
  }

  emit(value: T): void {
    let failed: unknown;
    for (const l of this.listeners) {
      try {
        l(value);
      } catch (e) {
        failed ??= e;
      }
    }
    if (failed !== undefined) throw failed;
  }
}
