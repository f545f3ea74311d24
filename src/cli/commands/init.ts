/** `lucid init`: creates a filespace (its descriptor) in a store. */
import { promises as fs } from 'node:fs';
import type { Argv } from 'yargs';
import { createDescriptor, saveNewDescriptor } from '../../crypto/descriptor.js';
import type { KdfStrength } from '../../crypto/kdf.js';
import { DEFAULT_BLOCK_SIZE, checkBlockSize } from '../../chunker/layout.js';
import { localStoreDir } from '../../store/registry.js';
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
    const { store } = openStore(url);
    try {
      if (isDefaultStore(url)) await fs.mkdir(localStoreDir(url)!, { recursive: true, mode: 0o700 });
      await store.probe();
      const password = await getPassword({
        passwordStdin: args.passwordStdin, confirm: true,
        fallback: isDefaultStore(url) ? () => defaultStorePassword(true) : undefined,
      });
      const unlocked = await createDescriptor({ password, blockSize, user: args.user, kdf: args.kdf as KdfStrength });
      await saveNewDescriptor(store, unlocked.descriptor);
      process.stdout.write(`Created filespace ${unlocked.descriptor.filespaceId} in ${store.url} (block size ${formatSize(blockSize)}, user ${args.user})\n`);
    } finally {
      await store.close();
    }
  },
};
