/**
 * Where a password comes from, in order: --password-stdin (first line of standard input),
 * LUCID_PASSWORD, a prompt on a terminal (echo off), the embedded default's own file.
 */
import { UsageError } from '../errors.js';

export async function readStdinLine(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0];
}

async function prompt(question: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(question);
  stdin.setRawMode(true);
  stdin.resume();
  let text = '';
  try {
    return await new Promise<string>((resolve, reject) => {
      const onData = (buf: Buffer) => {
        for (const ch of buf.toString('utf8')) {
          if (ch === '\r' || ch === '\n') { stdin.off('data', onData); return resolve(text); }
          if (ch === '\u0003') { stdin.off('data', onData); return reject(new UsageError('cancelled')); }
          if (ch === '\u007f' || ch === '\b') text = text.slice(0, -1);
          else text += ch;
        }
      };
      stdin.on('data', onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write('\n');
  }
}

export interface PasswordSource {
  passwordStdin?: boolean;
  /** For init: ask twice on a terminal. */
  confirm?: boolean;
  /** Used when nothing else gives a password (the embedded default). */
  fallback?: () => Promise<string | undefined>;
}

export async function getPassword(src: PasswordSource): Promise<string> {
  let password: string | undefined;
  if (src.passwordStdin) {
    password = await readStdinLine();
  } else if (process.env.LUCID_PASSWORD) {
    password = process.env.LUCID_PASSWORD;
  } else if (src.fallback && (password = await src.fallback()) !== undefined) {
    return password;
  } else if (process.stdin.isTTY) {
    password = await prompt('Filespace password: ');
    if (src.confirm && (await prompt('Repeat the password: ')) !== password) throw new UsageError('the two passwords differ');
  } else {
    throw new UsageError('no password given: pass --password-stdin, set LUCID_PASSWORD, or run on a terminal');
  }
  if (!password) throw new UsageError('the password is empty');
  return password;
}
