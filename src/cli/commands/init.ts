/** `lucid init`: creates a filespace (its descriptor) in a store. */
import { promises as fs } from 'node:fs';
import type { Argv } from 'yargs';
import { createDescriptor } from '../../crypto/descriptor.js';
import { saveNewDescriptor } from '../../fs/descriptor-store.js';
import type { KdfStrength } from '../../crypto/kdf.js';
import { DEFAULT_BLOCK_SIZE, checkBlockSize } from '../../block/layout.js';
import { localStoreDir } from '../../store/registry.js';
import { DESCRIPTOR_KEY } from '../../store/keys.js';
import type { ObjectStore } from '../../store/types.js';
import { parseSize, formatSize } from '../../util/size.js';
import { defaultStorePassword, defaultStoreUrl, isDefaultStore } from '../home.js';
import { openStore } from '../open.js';
import { getPassword } from '../password.js';

export interface InitArgs {
  store?: string;
  blockSize?: string;
  passwordStdin?: boolean;
  kdf: string;
  user: string;
}

/** Writes a new filespace's descriptor into `store`; returns its id. */
export async function createFilespace(store: ObjectStore, options: { password: string; blockSize: number; user?: string; kdf?: KdfStrength }): Promise<string> {
  const unlocked = await createDescriptor({ password: options.password, blockSize: options.blockSize, user: options.user, kdf: options.kdf });
  await saveNewDescriptor(store, unlocked.descriptor);
  return unlocked.descriptor.filespaceId;
}

/** The embedded default filespace under ~/.lucid, created on first use. */
export async function ensureDefaultFilespace(log: (line: string) => void): Promise<void> {
  const url = defaultStoreUrl();
  await fs.mkdir(localStoreDir(url)!, { recursive: true, mode: 0o700 });
  const { store } = await openStore(url);
  try {
    if (await store.head(DESCRIPTOR_KEY)) return;
    const password = (await defaultStorePassword(true))!;
    const id = await createFilespace(store, { password, blockSize: DEFAULT_BLOCK_SIZE });
    log(`Created the embedded default filespace ${id} in ${localStoreDir(url)}`);
  } finally {
    await store.close();
  }
}

export const initCommand = {
  command: 'init',
  describe: 'Create a new filespace in a store',
  builder: (y: Argv) => y
    .option('store', { type: 'string', describe: 'Store URL: file:///dir, s3://bucket/prefix?endpoint=…, azure://container/prefix (default: the embedded default under ~/.lucid)' })
    .option('block-size', { type: 'string', describe: `Block size, a power of two from 64KiB to 16MiB (default ${formatSize(DEFAULT_BLOCK_SIZE)})` })
    .option('password-stdin', { type: 'boolean', describe: 'Read the password from the first line of standard input' })
    .option('kdf', { type: 'string', default: 'moderate', choices: ['interactive', 'moderate', 'sensitive'], describe: 'Argon2id strength for the password' })
    .option('user', { type: 'string', default: 'admin', describe: 'Name of the first user' }),
  handler: async (args: InitArgs) => {
    const url = args.store ?? defaultStoreUrl();
    const blockSize = checkBlockSize(args.blockSize ? parseSize(args.blockSize, '--block-size') : DEFAULT_BLOCK_SIZE);
    const { store } = await openStore(url);
    try {
      if (isDefaultStore(url)) await fs.mkdir(localStoreDir(url)!, { recursive: true, mode: 0o700 });
      await store.probe();
      const password = await getPassword({
        passwordStdin: args.passwordStdin, confirm: true,
        fallback: isDefaultStore(url) ? () => defaultStorePassword(true) : undefined,
      });
      const id = await createFilespace(store, { password, blockSize, user: args.user, kdf: args.kdf as KdfStrength });
      process.stdout.write(`Created filespace ${id} in ${store.url} (block size ${formatSize(blockSize)}, user ${args.user})\n`);
    } finally {
      await store.close();
    }
  },
};
