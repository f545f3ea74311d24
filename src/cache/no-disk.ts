/**
 * A clean-block cache that keeps nothing: every block comes from the store (through the
 * block loader's memory and single flight). For the library API and the admin commands
 * that read a filespace with no mount and no cache directory.
 */
import type { CleanBlocks } from './types.js';

export class NoDiskCache implements CleanBlocks {
  readonly keepingBacklogged = false;

  async openClean(): Promise<Buffer | undefined> {
    return undefined;
  }

  hurryClean(): void {}

  holdsClean(): boolean {
    return false;
  }

  async writeCleanInBackground(): Promise<void> {}

  sealedBeingWritten(): Buffer | undefined {
    return undefined;
  }

  async dropClean(): Promise<void> {}
}
