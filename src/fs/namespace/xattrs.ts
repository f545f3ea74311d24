/**
 * Extended attributes: setxattr, getxattr, listxattr, removexattr, decided as other changes
 * are (gate.ts). Names and values reach the service sealed, looked up by keyed hash.
 *
 * Promises: an xattr change that waits in the journal is read back from there; a plain set
 * is always decided locally; `XATTR_CREATE`, `XATTR_REPLACE` and removexattr are decided
 * locally only when the mount knows whether the attribute exists (it waits here, the file
 * was made here, or the file has none), otherwise at the service (offline: EIO); a file
 * known to have none is answered with no round trip, no hashing and no journal scan (the
 * kernel asks for `security.capability` before every write).
 */
import { EntryExistsError, NoAttributeError, NotSupportedError, OutOfRangeError, TooBigError } from '../../errors.js';
import type { NameCipher } from '../../crypto/names.js';
import type { MetaEngine } from '../../meta/types.js';
import type { ChangeGate } from './gate.js';
import type { MetaJournal, PendingXattr } from './journal.js';
import type { NamespaceView } from './view.js';

export const XATTR_CREATE = 1;
export const XATTR_REPLACE = 2;
const XATTR_NAME_MAX = 255;
const XATTR_SIZE_MAX = 65536;

/**
 * The extended attributes Lucid keeps: the `user.`, `trusted.` and `security.` namespaces,
 * except SELinux labels (`security.selinux`: the kernel labels a FUSE mount by its policy,
 * never from the files). Anything else is EOPNOTSUPP, as on a file system without it, so
 * `ls -l` and `cp -a`, told once per device that labels and POSIX ACLs (`system.`) are not
 * supported, stop asking for them on every file.
 */
export function keptXattrName(name: string): boolean {
  return /^(user|trusted|security)\./.test(name) && name !== 'security.selinux';
}

/** Refuses, as EOPNOTSUPP, a name Lucid does not keep (set, get and remove alike). */
function checkKept(name: string): void {
  if (!keptXattrName(name)) throw new NotSupportedError(`extended attribute "${name}" is not supported`);
}

export class XattrChanges {
  constructor(private readonly meta: MetaEngine, private readonly names: NameCipher, private readonly view: NamespaceView,
    private readonly journal: MetaJournal, private readonly gate: ChangeGate) {}

  private checkXattrName(name: string): void {
    if (Buffer.byteLength(name) > XATTR_NAME_MAX || name.length === 0) throw new OutOfRangeError('xattr name too long');
    checkKept(name);
  }

  /**
   * Whether `ino` has the extended attribute `hash`, as this mount knows without asking:
   * from a change to it that waits, or from attributes that say it has none (undefined:
   * only the service knows).
   */
  private hasXattrLocally(ino: number, hash: Buffer): PendingXattr | false | undefined {
    const pending = this.journal.pendingXattrs(ino).filter((p) => (p.removed ? p.hash : p.entry.hash).equals(hash)).pop();
    if (pending) return pending;
    return this.noneAtService(ino) ? false : undefined;
  }

  /** Whether this mount knows `ino` has no extended attributes at the service. */
  private noneAtService(ino: number): boolean {
    // A file made by this mount and not yet at the service has just the attributes the journal holds.
    return this.journal.pendingCreate(ino) !== undefined || this.view.cachedAttr(ino)?.hasXattrs === false;
  }

  /** Whether this mount knows `ino` has no extended attributes at all: none at the service, none waiting. */
  private hasNoXattrs(ino: number): boolean {
    return this.noneAtService(ino) && this.journal.pendingXattrs(ino).length === 0;
  }

  async setxattr(ino: number, name: string, value: Buffer, flags: number): Promise<void> {
    this.checkXattrName(name);
    if (value.length > XATTR_SIZE_MAX) throw new TooBigError('xattr value over 64 KiB');
    const entry = {
      hash: this.names.xattrHash(ino, name),
      nameEnc: this.names.sealBlob(ino, 'xattr-name', Buffer.from(name, 'utf8')),
      valueEnc: this.names.sealBlob(ino, 'xattr-value', value),
    };
    const create = (flags & XATTR_CREATE) !== 0;
    const replace = (flags & XATTR_REPLACE) !== 0;
    await this.gate.change(async () => {
      await this.meta.setXattr(ino, entry, { create, replace });
      this.view.forget(ino);
    }, (strict) => {
      const a = this.gate.knownAttr(ino, strict);
      if (create || replace) {
        const known = this.hasXattrLocally(ino, entry.hash);
        if (known === undefined) throw this.gate.unknownOffline(`the extended attributes of inode ${ino}`);
        const exists = known !== false && !known.removed;
        if (create && exists) throw new EntryExistsError('the extended attribute exists');
        if (replace && !exists) throw new NoAttributeError('no such extended attribute');
      }
      this.journal.append({ kind: 'setXattr', ino, entry });
      this.view.localAttr({ ...a, hasXattrs: true, ctimeMs: Date.now() });
    }, ino);
  }

  /** Whether a getxattr of `name` on `ino` is known to find nothing without asking anyone. */
  knownAbsent(ino: number, name: string): boolean {
    return keptXattrName(name) && this.hasNoXattrs(ino);
  }

  async getxattr(ino: number, name: string): Promise<Buffer> {
    checkKept(name);
    // The kernel asks for security.capability before every write and every chown:
    // answered from the attributes when they say there are none.
    if (this.hasNoXattrs(ino)) throw new NoAttributeError(`no attribute ${name}`);
    const hash = this.names.xattrHash(ino, name);
    const known = this.hasXattrLocally(ino, hash);
    if (known === false || known?.removed) throw new NoAttributeError(`no attribute ${name}`);
    const e = known ? known.entry : await this.meta.getXattr(ino, hash);
    return this.names.openBlob(ino, 'xattr-value', e.valueEnc);
  }

  async listxattr(ino: number): Promise<string[]> {
    const pending = this.journal.pendingXattrs(ino);
    const none = this.noneAtService(ino);
    // What the service has, then what waits here, in order.
    const entries = new Map<string, Buffer>();
    if (!none) for (const e of await this.meta.listXattr(ino)) entries.set(e.hash.toString('hex'), e.nameEnc);
    for (const p of pending) {
      if (p.removed) entries.delete(p.hash.toString('hex'));
      else entries.set(p.entry.hash.toString('hex'), p.entry.nameEnc);
    }
    return [...entries.values()].map((nameEnc) => this.names.openBlob(ino, 'xattr-name', nameEnc).toString('utf8')).filter(keptXattrName);
  }

  async removexattr(ino: number, name: string): Promise<void> {
    checkKept(name);
    const hash = this.names.xattrHash(ino, name);
    await this.gate.change(async () => {
      await this.meta.removeXattr(ino, hash);
      this.view.forget(ino);
    }, (strict) => {
      const a = this.gate.knownAttr(ino, strict);
      const known = this.hasXattrLocally(ino, hash);
      if (known === undefined) throw this.gate.unknownOffline(`the extended attributes of inode ${ino}`);
      if (known === false || known.removed) throw new NoAttributeError(`no attribute ${name}`);
      this.journal.append({ kind: 'removeXattr', ino, hash });
      this.view.localAttr({ ...a, ctimeMs: Date.now() });
    }, ino);
  }
}
