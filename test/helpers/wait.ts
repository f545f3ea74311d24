/** Waiting in tests for something that happens in its own time (a push, a lease's end). */

/** Checks `check` every 10 ms until it holds or `ms` pass; resolves with whether it held. */
export async function until(check: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return check();
}
