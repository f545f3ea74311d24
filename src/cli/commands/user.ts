/**
 * `lucid user add|remove|list` and `lucid passwd`: who may open the filespace. Each user has
 * their own password, key pair and service token. Removing a user revokes their token (a
 * running `lucid serve` rereads the descriptor within 5 s) and rotates the data key for new
 * writes (mounts pick it up when next mounted). Works on the store directly: the descriptor
 * is the one place users live.
 */
import type { Argv } from 'yargs';
import type { UnlockedFilespace } from '../../crypto/descriptor.js';
import { loadDescriptor, saveDescriptor } from '../../fs/descriptor-store.js';
import type { KdfStrength } from '../../crypto/kdf.js';
import { addUser, changePassword, checkUserName, removeUser } from '../../crypto/users.js';
import { LucidError, UsageError } from '../../errors.js';
import { defaultStoreUrl } from '../home.js';
import { openStore, openUnlocked } from '../open.js';
import { getNewPassword } from '../password.js';

interface UserArgs {
  store?: string;
  user?: string;
  passwordStdin?: boolean;
  kdf?: KdfStrength;
}

const common = (y: Argv) => y
  .option('store', { type: 'string', describe: 'Store URL of the filespace (default: the embedded one)' })
  .option('user', { type: 'string', describe: 'Who you are (default: whichever user the password opens)' })
  .option('password-stdin', { type: 'boolean', describe: 'Read your password from the first line of standard input (a new password from the second)' })
  .option('kdf', { type: 'string', default: 'moderate', choices: ['interactive', 'moderate', 'sensitive'], describe: 'Argon2id strength for a new password' });

/** Opens the store and unlocks the descriptor as the calling user; runs `fn`; closes. */
async function asUser<T>(args: UserArgs, fn: (ctx: { unlocked: UnlockedFilespace; save: (d: Parameters<typeof saveDescriptor>[1]) => Promise<void> }) => Promise<T>): Promise<T> {
  let opened: Awaited<ReturnType<typeof openUnlocked>> | undefined;
  try {
    opened = await openUnlocked(args.store ?? defaultStoreUrl(), { passwordStdin: args.passwordStdin, user: args.user });
    const { store, unlocked } = opened;
    return await fn({ unlocked, save: (d) => saveDescriptor(store, d) });
  } catch (e) {
    // A user that exists already, or does not exist: the caller's input (exit 2).
    if (e instanceof LucidError && (e.code === 'AlreadyExists' || e.code === 'NoEntry')) throw new UsageError(e.message);
    throw e;
  } finally {
    await opened?.store.close();
  }
}

export const userCommand = {
  command: 'user <command>',
  describe: 'Users of the filespace: add, remove, list',
  builder: (y: Argv) => y
    .command({
      command: 'add <name>',
      describe: 'Give NAME their own password, keys and service token',
      builder: (a: Argv) => common(a).positional('name', { type: 'string' }),
      handler: async (args: UserArgs & { name: string }) => {
        checkUserName(args.name);
        await asUser(args, async ({ unlocked, save }) => {
          const password = await getNewPassword({ passwordStdin: args.passwordStdin, who: args.name });
          await save(await addUser(unlocked, args.name, password, args.kdf));
        });
        process.stdout.write(`Added user ${args.name}\n`);
      },
    } as never)
    .command({
      command: 'remove <name>',
      describe: 'Revoke NAME\'s service access and rotate the data key for new writes',
      builder: (a: Argv) => common(a).positional('name', { type: 'string' }),
      handler: async (args: UserArgs & { name: string }) => {
        const id = await asUser(args, async ({ unlocked, save }) => {
          const d = removeUser(unlocked, args.name);
          await save(d);
          return d.dataKeyId;
        });
        process.stdout.write(`Removed user ${args.name}: their service token is refused from now on; new writes use data key ${id} (mounts take it at their next mount)\n`);
      },
    } as never)
    .command({
      command: 'list',
      describe: 'Users of the filespace',
      builder: (a: Argv) => a.option('store', { type: 'string', describe: 'Store URL of the filespace (default: the embedded one)' }),
      handler: async (args: { store?: string }) => {
        const { store } = await openStore(args.store ?? defaultStoreUrl());
        try {
          const d = await loadDescriptor(store);
          for (const u of d.users) process.stdout.write(`${u.name}${u.publicKey ? '' : '  (shared token: run lucid passwd to get keys of your own)'}\n`);
        } finally {
          await store.close();
        }
      },
    } as never)
    .demandCommand(1, 'say which: add, remove or list'),
  handler: () => {},
};

export const passwdCommand = {
  command: 'passwd',
  describe: 'Change your password (the new one from the second line of --password-stdin, LUCID_NEW_PASSWORD, or asked)',
  builder: (y: Argv) => common(y),
  handler: async (args: UserArgs) => {
    const who = await asUser(args, async ({ unlocked, save }) => {
      const password = await getNewPassword({ passwordStdin: args.passwordStdin, who: unlocked.user });
      await save(await changePassword(unlocked, password, args.kdf));
      return unlocked.user;
    });
    process.stdout.write(`Changed the password of ${who}\n`);
  },
};
