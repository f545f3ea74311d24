/**
 * The `lucid` command line. Thin: parses arguments with yargs and hands them to a command.
 * Exit codes: 0 ok, 1 runtime failure, 2 bad usage or bad input. Every error is one line on
 * stderr that names what to fix; --debug adds the stack.
 */
import { readFileSync } from 'node:fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { LucidError } from '../errors.js';
import { initCommand } from './commands/init.js';
import { serveCommand } from './commands/serve.js';
import { mountCommand } from './commands/mount.js';
import { cacheCommand, pinCommands, statusCommand, syncCommand, unmountCommand, warmCommand } from './commands/manage.js';
import { snapshotCommand } from './commands/snapshot.js';
import { gcCommand } from './commands/gc.js';
import { passwdCommand, userCommand } from './commands/user.js';

// Keep library warnings (the AWS SDK's Node version notice, experimental flags) out of the
// output people and scripts read.
process.removeAllListeners('warning');

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

function fail(message: string, code: 1 | 2, error?: unknown): never {
  process.stderr.write(`lucid: ${message.split('\n')[0]}\n`);
  if (process.argv.includes('--debug') && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
  process.exit(code);
}

export async function main(argv: string[]): Promise<void> {
  await yargs(argv)
    .scriptName('lucid')
    .usage('$0 <command> [options]\n\nMount an encrypted cloud filespace as a local drive.')
    .command(initCommand as never)
    .command(serveCommand as never)
    .command(mountCommand as never)
    .command(unmountCommand as never)
    .command(syncCommand as never)
    .command(statusCommand as never)
    .command(cacheCommand as never)
    .command(pinCommands[0] as never)
    .command(pinCommands[1] as never)
    .command(warmCommand as never)
    .command(snapshotCommand as never)
    .command(gcCommand as never)
    .command(userCommand as never)
    .command(passwdCommand as never)
    .option('debug', { type: 'boolean', describe: 'Show stack traces on errors', global: true })
    .demandCommand(1, 'name a command: lucid --help lists them')
    .strict()
    .version(pkg.version)
    .help()
    .wrap(Math.min(100, process.stdout.columns || 100))
    .fail((msg, err) => {
      if (err instanceof LucidError) fail(err.message, err.exitCode, err);
      if (err) fail(err.message || String(err), 1, err);
      const unknown = /^Unknown arguments?: (.*)$/.exec(msg ?? '');
      fail(unknown ? `unknown command or option: ${unknown[1]} (lucid --help lists them)` : (msg ?? 'bad usage'), 2);
    })
    .parseAsync();
}

main(hideBin(process.argv)).catch((e: unknown) => {
  if (e instanceof LucidError) fail(e.message, e.exitCode, e);
  fail((e as Error)?.message ?? String(e), 1, e);
});
