/**
 * Human durations ("500ms", "15s", "15m", "1h", "1d", "1w") to milliseconds and back, for the
 * CLI's time options. Each option says which units it accepts and what a bare number means,
 * and checks its own range (its message names the option).
 */
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Milliseconds, or NaN when `text` is not a number with one of `units` (or bare, when `bare` names its unit). */
export function parseDuration(text: string, units: string[], bare?: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/.exec(text.trim());
  const unit = m ? m[2] || bare : undefined;
  return m && unit && units.includes(unit) ? Number(m[1]) * UNITS[unit] : NaN;
}

/** The largest whole unit: 900000 → "15m". */
export function formatDuration(ms: number): string {
  for (const u of ['w', 'd', 'h', 'm', 's']) if (ms % UNITS[u] === 0) return `${ms / UNITS[u]}${u}`;
  return `${ms}ms`;
}
