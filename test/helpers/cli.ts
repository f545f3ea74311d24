/** Runs the real `lucid` CLI in a child process (never blocking this process's event loop). */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const CLI = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function lucid(args: string[], options: { env?: Record<string, string>; input?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawnLucid(args, options.env);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => { stdout += d; });
    child.stderr!.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
    child.stdin!.end(options.input ?? '');
  });
}

export function spawnLucid(args: string[], env: Record<string, string> = {}): ChildProcess {
  const base = { ...process.env };
  delete base.LUCID_PASSWORD;
  return spawn(process.execPath, [CLI, ...args], {
    env: { ...base, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

/**
 * Starts `lucid serve` with `args` (add `--listen 127.0.0.1:0` for a free port) and resolves
 * once it listens, with its URL; the child is the caller's to stop. Its stderr is drained
 * (and shown with `stderr: 'inherit'`), so a chatty service never blocks on a full pipe.
 */
export async function serveLucid(args: string[], env: Record<string, string> = {}, stderr: 'pipe' | 'inherit' = 'pipe'): Promise<{ url: string; child: ChildProcess }> {
  const child = spawnLucid(['serve', ...args], env);
  let out = '';
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => {
    if (stderr === 'inherit') process.stderr.write(d);
    else if (out.length < 10_000) out += d;
  });
  for (let i = 0; i < 400 && !/listening on/.test(out) && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 25));
  const url = /listening on (\S+)/.exec(out)?.[1];
  if (!url) {
    child.kill('SIGKILL');
    throw new Error(`lucid serve did not start: ${out}`);
  }
  return { url, child };
}
