/**
 * Where a password comes from, in order: --password-stdin (first line of standard input),
 * LUCID_PASSWORD, a prompt on a terminal (echo off), the embedded default's own file.
 */
import { UsageError } from '../errors.js';

let stdinLines: Promise<string[]> | undefined;

/** Standard input's lines (read once, kept: the first is a password, the second a new one). */
function readStdinLines(): Promise<string[]> {
  stdinLines ??= (async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8').split(/\r?\n/);
  })();
  return stdinLines;
}

export async function readStdinLine(): Promise<string> {
  return (await readStdinLines())[0];
}

/**
 * A new password (lucid user add, lucid passwd): the second line of standard input with
 * --password-stdin, else LUCID_NEW_PASSWORD, else asked twice on a terminal.
 */
export async function getNewPassword(src: { passwordStdin?: boolean; who: string }): Promise<string> {
  let password: string | undefined;
  if (src.passwordStdin) password = (await readStdinLines())[1];
  else if (process.env.LUCID_NEW_PASSWORD) password = process.env.LUCID_NEW_PASSWORD;
  else if (process.stdin.isTTY) {
    password = await prompt(`New password for ${src.who}: `);
    if ((await prompt('Repeat it: ')) !== password) throw new UsageError('the two passwords differ');
  } else {
    throw new UsageError(`no new password for ${src.who}: give it as the second line of --password-stdin, or in LUCID_NEW_PASSWORD`);
  }
  if (!password) throw new UsageError(`the new password for ${src.who} is empty`);
  return password;
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
