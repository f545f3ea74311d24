/**
 * Block-map commits in batches: the uploader's commits (and the size catch-ups after them)
 * of many files go to the metadata service as one `applyBatch` request instead of a round
 * trip each. One batch is in flight at a time; the commits asked for meanwhile go in the
 * next, so a file system full of small files being written commits them as fast as the
 * link's round trips allow, many per trip.
 *
 * Promises: each call resolves with what its own `commitBlocks` or `setAttr` would have
 * returned, or rejects with its own typed error; calls are sent in the order they were made;
 * a refused call does not fail the calls behind it (they go in the next batch); when the
 * service cannot be reached, every call of the batch rejects with ServiceUnavailableError
 * (the uploader retries).
 */
import { errorFromCode } from '../errors.js';
import { BATCH_MAX, type Attr, type AttrChanges, type BatchOp, type BlockRef, type CommitBlocksOptions, type MetaEngine, type MutateOptions } from '../meta/types.js';

/** What the uploader asks of the metadata service. */
export type BlockCommits = Pick<MetaEngine, 'commitBlocks' | 'setAttr'>;

interface Waiting {
  op: BatchOp;
  resolve: (attr: Attr) => void;
  reject: (e: Error) => void;
}

export class CommitBatcher implements BlockCommits {
  private queue: Waiting[] = [];
  private sending = false;

  constructor(private readonly meta: Pick<MetaEngine, 'applyBatch'>) {}

  commitBlocks(ino: number, blocks: BlockRef[], options?: CommitBlocksOptions): Promise<Attr> {
    return this.ask({ op: 'commitBlocks', ino, blocks, ...(options ? { options } : {}) });
  }

  setAttr(ino: number, changes: AttrChanges, options?: MutateOptions): Promise<Attr> {
    return this.ask({ op: 'setAttr', ino, changes, ...(options ? { options } : {}) });
  }

  private ask(op: BatchOp): Promise<Attr> {
    return new Promise<Attr>((resolve, reject) => {
      this.queue.push({ op, resolve, reject });
      if (!this.sending) void this.send();
    });
  }

  private async send(): Promise<void> {
    this.sending = true;
    try {
      // Calls made in the same turn of the event loop join the first batch.
      await new Promise((r) => setImmediate(r));
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, BATCH_MAX);
        let res;
        try {
          res = await this.meta.applyBatch(batch.map((w) => w.op));
        } catch (e) {
          for (const w of batch) w.reject(e as Error);
          continue;
        }
        res.applied.forEach((a, i) => batch[i].resolve(a.value!));
        if (res.failed) {
          batch[res.failed.index].reject(errorFromCode(res.failed.code, res.failed.message));
          // Not tried: first in the next batch, in their order.
          this.queue.unshift(...batch.slice(res.failed.index + 1));
        }
      }
    } finally {
      this.sending = false;
    }
  }
}
