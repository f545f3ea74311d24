/*
 * lucid_fuse: an N-API binding over libfuse3's low-level API.
 *
 * One thread per session runs fuse_session_loop(). Each request is copied into an
 * lf_req and handed to JavaScript through a thread-safe function (its numbers in a shared
 * Float64Array, src/fs/fuse/binding.ts makes the request object); the handler answers later,
 * on the JavaScript thread, through the reply_* functions (libfuse lets any thread reply).
 * So no FUSE thread ever waits on JavaScript, and the file system's own code never blocks
 * the loop that receives requests.
 *
 * What it promises: every request reaches the handler exactly once; every reply function
 * consumes its request; strings and write payloads are copied before the FUSE buffer is
 * reused. Errors in replies (the kernel already gave up on a request) are ignored.
 */
#define FUSE_USE_VERSION 35
#define _GNU_SOURCE
#include <fuse_lowlevel.h>
#include <node_api.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/mount.h>
#include <sys/file.h>
#include <sys/uio.h>
#include <unistd.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <time.h>
#include <math.h>

/* Operations, in the order of OP_NAMES in src/fs/fuse/binding.ts. */
enum {
  OP_LOOKUP, OP_FORGET, OP_GETATTR, OP_SETATTR, OP_READLINK, OP_MKNOD, OP_MKDIR, OP_UNLINK,
  OP_RMDIR, OP_SYMLINK, OP_RENAME, OP_LINK, OP_OPEN, OP_READ, OP_WRITE, OP_FLUSH, OP_RELEASE,
  OP_FSYNC, OP_OPENDIR, OP_READDIR, OP_RELEASEDIR, OP_FSYNCDIR, OP_STATFS, OP_SETXATTR,
  OP_GETXATTR, OP_LISTXATTR, OP_REMOVEXATTR, OP_CREATE, OP_FORGET_MULTI, OP_INIT, OP_EXIT,
  OP_READDIRPLUS, OP_GETLK, OP_SETLK, OP_FLOCK, OP_INTERRUPT,
  OP_COUNT
};


typedef struct lf_notice {
  struct lf_notice *next;
  int entry; /* 0: inode (ino, off, len); 1: entry (parent = ino, name) */
  uint64_t ino;
  int64_t off, len;
  char *name;
} lf_notice;

typedef struct lf_session {
  struct fuse_session *se;
  /* Kernel cache invalidations run on their own thread: the kernel may hold a lock that a
   * request in progress waits on, so notifying from the JavaScript thread could deadlock. */
  pthread_t notify_thread;
  pthread_mutex_t notify_lock;
  pthread_cond_t notify_cond;
  lf_notice *notify_head, *notify_tail;
  int notify_stop, notify_started;
  napi_threadsafe_function tsfn;
  /* The numbers of the request being handed over (REQ_* below), in a Float64Array that
   * JavaScript reads before the handler returns: setting twenty named properties from C cost
   * 14 us a request, a third of what the handler itself took. */
  napi_ref nums_ref;
  double *nums;
  pthread_t thread;
  int thread_started;
  unsigned max_write;
  unsigned max_readahead;
  /* Inodes known to have no extended attributes (see "no extended attributes" below). */
  pthread_mutex_t nx_lock;
  uint64_t nx_epoch, nx_changed;
  int nx_pending;
  struct { uint64_t ino; double until; } nx[8192];
  /* Set once any lock request came: from then on flush goes to JavaScript (it releases the
   * closing owner's fcntl locks); until then it has nothing to do and is answered here. */
  int locks_seen;
  /* Kernel INIT flags to add to libfuse's reply (see "INIT reply" below), and whether it went. */
  uint32_t init_flags_add;
  int init_replied;
} lf_session;

typedef struct lf_req {
  int op;
  fuse_req_t req;
  uint32_t uid, gid, pid, umask;
  uint64_t ino, ino2;
  char *name, *name2;
  uint64_t fh;
  int has_fh;
  int64_t off;
  uint64_t size;
  uint32_t mode, rdev, flags, to_set;
  int datasync;
  struct stat attr;
  char *data;
  size_t data_len;
  uint64_t lock_owner;
  int has_owner, flock_release, lk_sleep;
  int lk_type;
  int64_t lk_start, lk_end; /* end inclusive; -1 = to EOF */
  uint32_t lk_pid;
  uint64_t unique; /* interrupt: the request it cancels */
  uint64_t xepoch; /* the session's xattr epoch when the request came */
  double *forgets; /* pairs of (ino, nlookup) for forget_multi */
  size_t forget_count;
  int exit_code;
} lf_req;

/* ---- request side (session thread) -------------------------------------------------- */

static lf_req *new_req(int op, fuse_req_t req) {
  lf_req *r = calloc(1, sizeof(lf_req));
  if (!r) return NULL;
  r->op = op;
  r->req = req;
  if (req) {
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    r->uid = ctx->uid;
    r->gid = ctx->gid;
    r->pid = ctx->pid;
    r->umask = ctx->umask;
  }
  return r;
}

static void dispatch(lf_session *s, lf_req *r) {
  if (!r) {
    return;
  }
  pthread_mutex_lock(&s->nx_lock);
  r->xepoch = s->nx_epoch;
  pthread_mutex_unlock(&s->nx_lock);
  if (napi_call_threadsafe_function(s->tsfn, r, napi_tsfn_blocking) != napi_ok) {
    if (r->req) fuse_reply_err(r->req, EIO);
    free(r->name); free(r->name2); free(r->data); free(r->forgets); free(r);
  }
}

#define SESSION(req) ((lf_session *) fuse_req_userdata(req))

/* ---- "no extended attributes", answered here ---------------------------------------
 * The kernel asks for security.capability before every write and every chown: one trip to
 * JavaScript each. When the attributes
 * JavaScript replied for an inode said it has no extended attributes, a getxattr of it is
 * answered ENODATA here for as long as those attributes may be cached (their attr timeout).
 * A setxattr or removexattr of any inode, from its arrival until JavaScript has finished it
 * (xattrsChanged), keeps replies to requests that came before from being taken as such; an
 * invalidation of the inode forgets it. A lossy table: a missed inode goes to JavaScript. */
#define NX_SLOTS 8192

static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void nx_forget_locked(lf_session *s, uint64_t ino) {
  if (s->nx[ino % NX_SLOTS].ino == ino) s->nx[ino % NX_SLOTS].ino = 0;
}

static void nx_forget(lf_session *s, uint64_t ino) {
  pthread_mutex_lock(&s->nx_lock);
  nx_forget_locked(s, ino);
  pthread_mutex_unlock(&s->nx_lock);
}

/* A reply to a request that came at `epoch` said whether `ino` has none, cacheable `timeout` s. */
static void nx_note(lf_session *s, uint64_t ino, int none, double timeout, uint64_t epoch) {
  if (!s || ino == 0) return;
  pthread_mutex_lock(&s->nx_lock);
  if (none && timeout > 0 && s->nx_pending == 0 && s->nx_changed <= epoch) {
    s->nx[ino % NX_SLOTS].ino = ino;
    s->nx[ino % NX_SLOTS].until = mono_now() + timeout;
  } else {
    nx_forget_locked(s, ino);
  }
  pthread_mutex_unlock(&s->nx_lock);
}

static int nx_known_none(lf_session *s, uint64_t ino) {
  pthread_mutex_lock(&s->nx_lock);
  int known = s->nx[ino % NX_SLOTS].ino == ino && s->nx[ino % NX_SLOTS].until > mono_now();
  pthread_mutex_unlock(&s->nx_lock);
  return known;
}

/* A setxattr or removexattr of `ino` came (start = 1) or JavaScript finished it (start = 0). */
static void nx_change(lf_session *s, uint64_t ino, int start) {
  pthread_mutex_lock(&s->nx_lock);
  s->nx_changed = ++s->nx_epoch;
  s->nx_pending += start ? 1 : (s->nx_pending > 0 ? -1 : 0);
  nx_forget_locked(s, ino);
  pthread_mutex_unlock(&s->nx_lock);
}
#define NEW_OR_FAIL(op) lf_req *r = new_req(op, req); if (!r) { fuse_reply_err(req, ENOMEM); return; }

static void with_fi(lf_req *r, struct fuse_file_info *fi) {
  if (fi) {
    r->fh = fi->fh;
    r->has_fh = 1;
    r->flags = fi->flags;
    r->lock_owner = fi->lock_owner;
    r->has_owner = 1;
    r->flock_release = fi->flock_release;
  }
}

static void with_lock(lf_req *r, const struct flock *lk) {
  r->lk_type = lk->l_type;
  r->lk_start = lk->l_start;
  r->lk_end = lk->l_len == 0 ? -1 : lk->l_start + lk->l_len - 1;
  r->lk_pid = lk->l_pid;
}

/* ---- INIT reply ----------------------------------------------------------------------------
 * libfuse 3.14 (Debian 12's) takes FUSE_CAP_PARALLEL_DIROPS and FUSE_CAP_HANDLE_KILLPRIV into
 * `want` but never puts them in its INIT reply, so the kernel had neither: lookups in one
 * folder ran one at a time, and before each chown the kernel asked for the attributes to clear
 * set-user-ID itself (a getattr per file in `tar x`; seen with libfuse's -d: reply flags
 * 0x4040f42b). The session's writes go through `io_writev`, which adds them to the first
 * reply, INIT's (the kernel sends nothing else until INIT is answered). The file system then
 * clears set-user-ID and set-group-ID itself on chown, truncate and the kernel's kill requests
 * (src/fs/fuse/adapter.ts). The flags' values are the kernel's (include/uapi/linux/fuse.h). */
#define KERNEL_PARALLEL_DIROPS (1u << 18)
#define KERNEL_HANDLE_KILLPRIV (1u << 19)
#define INIT_OUT_FLAGS_OFFSET 12 /* fuse_init_out: major, minor, max_readahead, flags */

static ssize_t io_read(int fd, void *buf, size_t len, void *userdata) {
  (void) userdata;
  return read(fd, buf, len);
}

static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata) {
  lf_session *s = userdata;
  if (!s->init_replied) {
    s->init_replied = 1;
    /* iov[0] the header (len, error, unique), iov[1] fuse_init_out. */
    if (count == 2 && iov[0].iov_len >= 8 && ((const int32_t *) iov[0].iov_base)[1] == 0 &&
        iov[1].iov_len >= INIT_OUT_FLAGS_OFFSET + 4 && iov[1].iov_len <= 256) {
      unsigned char out[256];
      memcpy(out, iov[1].iov_base, iov[1].iov_len);
      uint32_t flags;
      memcpy(&flags, out + INIT_OUT_FLAGS_OFFSET, 4);
      flags |= s->init_flags_add;
      memcpy(out + INIT_OUT_FLAGS_OFFSET, &flags, 4);
      struct iovec patched[2] = { iov[0], { out, iov[1].iov_len } };
      return writev(fd, patched, 2);
    }
  }
  return writev(fd, iov, count);
}

static const struct fuse_custom_io IO = { .read = io_read, .writev = io_writev };

static void ll_init(void *userdata, struct fuse_conn_info *conn) {
  lf_session *s = userdata;
  if (s->max_write) conn->max_write = s->max_write;
  if (s->max_readahead) conn->max_readahead = s->max_readahead;
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  if (conn->capable & FUSE_CAP_HANDLE_KILLPRIV) conn->want |= FUSE_CAP_HANDLE_KILLPRIV;
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  s->init_flags_add = 0;
  if (conn->want & FUSE_CAP_PARALLEL_DIROPS) s->init_flags_add |= KERNEL_PARALLEL_DIROPS;
  if (conn->want & FUSE_CAP_HANDLE_KILLPRIV) s->init_flags_add |= KERNEL_HANDLE_KILLPRIV;
  lf_req *r = new_req(OP_INIT, NULL);
  if (r) {
    r->size = conn->max_write;
    r->off = conn->max_readahead;
    dispatch(s, r);
  }
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  NEW_OR_FAIL(OP_LOOKUP); r->ino = parent; r->name = strdup(name); dispatch(SESSION(req), r);
}

static void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  lf_session *s = SESSION(req); /* read before the reply frees req */
  lf_req *r = new_req(OP_FORGET, NULL);
  fuse_reply_none(req);
  if (!r) return;
  r->ino = ino; r->size = nlookup; dispatch(s, r);
}

static void ll_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets) {
  lf_session *s = SESSION(req);
  lf_req *r = new_req(OP_FORGET_MULTI, NULL);
  fuse_reply_none(req);
  if (!r) return;
  r->forgets = malloc(sizeof(double) * 2 * (count ? count : 1));
  if (!r->forgets) { free(r); return; }
  for (size_t i = 0; i < count; i++) {
    r->forgets[2 * i] = (double) forgets[i].ino;
    r->forgets[2 * i + 1] = (double) forgets[i].nlookup;
  }
  r->forget_count = count;
  dispatch(s, r);
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  NEW_OR_FAIL(OP_GETATTR); r->ino = ino; with_fi(r, fi); dispatch(SESSION(req), r);
}

static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi) {
  NEW_OR_FAIL(OP_SETATTR); r->ino = ino; r->attr = *attr; r->to_set = to_set; with_fi(r, fi); dispatch(SESSION(req), r);
}

static void ll_readlink(fuse_req_t req, fuse_ino_t ino) {
  NEW_OR_FAIL(OP_READLINK); r->ino = ino; dispatch(SESSION(req), r);
}

static void ll_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev) {
  NEW_OR_FAIL(OP_MKNOD); r->ino = parent; r->name = strdup(name); r->mode = mode; r->rdev = rdev; dispatch(SESSION(req), r);
}

static void ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) {
  NEW_OR_FAIL(OP_MKDIR); r->ino = parent; r->name = strdup(name); r->mode = mode; dispatch(SESSION(req), r);
}

static void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name) {
  NEW_OR_FAIL(OP_UNLINK); r->ino = parent; r->name = strdup(name); dispatch(SESSION(req), r);
}

static void ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name) {
  NEW_OR_FAIL(OP_RMDIR); r->ino = parent; r->name = strdup(name); dispatch(SESSION(req), r);
}

static void ll_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name) {
  NEW_OR_FAIL(OP_SYMLINK); r->ino = parent; r->name = strdup(name); r->name2 = strdup(link); dispatch(SESSION(req), r);
}

static void ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent, const char *newname, unsigned int flags) {
  NEW_OR_FAIL(OP_RENAME); r->ino = parent; r->name = strdup(name); r->ino2 = newparent; r->name2 = strdup(newname); r->flags = flags;
  dispatch(SESSION(req), r);
}

static void ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname) {
  NEW_OR_FAIL(OP_LINK); r->ino = ino; r->ino2 = newparent; r->name = strdup(newname); dispatch(SESSION(req), r);
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  NEW_OR_FAIL(OP_OPEN); r->ino = ino; r->flags = fi->flags; dispatch(SESSION(req), r);
}

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  NEW_OR_FAIL(OP_READ); r->ino = ino; r->size = size; r->off = off; with_fi(r, fi); dispatch(SESSION(req), r);
}

static void ll_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  NEW_OR_FAIL(OP_WRITE);
  r->data = malloc(size ? size : 1);
  if (!r->data) { free(r); fuse_reply_err(req, ENOMEM); return; }
  memcpy(r->data, buf, size);
  r->data_len = size; r->ino = ino; r->off = off; with_fi(r, fi);
  dispatch(SESSION(req), r);
}

static void ll_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  /* close(): with no lock ever taken through this mount, there is nothing to release, and
   * release (which the kernel sends at the last close) starts the upload. */
  if (!__atomic_load_n(&SESSION(req)->locks_seen, __ATOMIC_ACQUIRE)) {
    fuse_reply_err(req, 0);
    return;
  }
  NEW_OR_FAIL(OP_FLUSH); r->ino = ino; with_fi(r, fi); dispatch(SESSION(req), r);
}

static void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  NEW_OR_FAIL(OP_RELEASE); r->ino = ino; with_fi(r, fi); dispatch(SESSION(req), r);
}

static void ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  NEW_OR_FAIL(OP_FSYNC); r->ino = ino; r->datasync = datasync; with_fi(r, fi); dispatch(SESSION(req), r);
}

static void ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  NEW_OR_FAIL(OP_OPENDIR); r->ino = ino; r->flags = fi->flags; dispatch(SESSION(req), r);
}

static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  NEW_OR_FAIL(OP_READDIR); r->ino = ino; r->size = size; r->off = off; with_fi(r, fi); dispatch(SESSION(req), r);
}

static void ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  NEW_OR_FAIL(OP_READDIRPLUS); r->ino = ino; r->size = size; r->off = off; with_fi(r, fi); dispatch(SESSION(req), r);
}

/* A blocking lock wait the caller gave up on (a signal): JavaScript answers it with EINTR. */
static void on_interrupt(fuse_req_t req, void *data) {
  lf_session *s = data;
  lf_req *r = new_req(OP_INTERRUPT, NULL);
  if (!r) return;
  r->unique = (uint64_t) (uintptr_t) req;
  dispatch(s, r);
}

static void ll_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock) {
  __atomic_store_n(&SESSION(req)->locks_seen, 1, __ATOMIC_RELEASE);
  NEW_OR_FAIL(OP_GETLK); r->ino = ino; with_fi(r, fi); with_lock(r, lock); dispatch(SESSION(req), r);
}

static void ll_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock, int sleep) {
  __atomic_store_n(&SESSION(req)->locks_seen, 1, __ATOMIC_RELEASE);
  NEW_OR_FAIL(OP_SETLK); r->ino = ino; with_fi(r, fi); with_lock(r, lock); r->lk_sleep = sleep;
  r->unique = (uint64_t) (uintptr_t) req;
  if (sleep) fuse_req_interrupt_func(req, on_interrupt, SESSION(req));
  dispatch(SESSION(req), r);
}

static void ll_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op) {
  __atomic_store_n(&SESSION(req)->locks_seen, 1, __ATOMIC_RELEASE);
  NEW_OR_FAIL(OP_FLOCK); r->ino = ino; with_fi(r, fi);
  r->lk_type = (op & LOCK_UN) ? F_UNLCK : (op & LOCK_EX) ? F_WRLCK : F_RDLCK;
  r->lk_sleep = (op & LOCK_NB) == 0 && !(op & LOCK_UN);
  r->unique = (uint64_t) (uintptr_t) req;
  if (r->lk_sleep) fuse_req_interrupt_func(req, on_interrupt, SESSION(req));
  dispatch(SESSION(req), r);
}

static void ll_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  NEW_OR_FAIL(OP_RELEASEDIR); r->ino = ino; with_fi(r, fi); dispatch(SESSION(req), r);
}

static void ll_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  NEW_OR_FAIL(OP_FSYNCDIR); r->ino = ino; r->datasync = datasync; with_fi(r, fi); dispatch(SESSION(req), r);
}

static void ll_statfs(fuse_req_t req, fuse_ino_t ino) {
  NEW_OR_FAIL(OP_STATFS); r->ino = ino; dispatch(SESSION(req), r);
}

static void ll_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size, int flags) {
  NEW_OR_FAIL(OP_SETXATTR);
  nx_change(SESSION(req), ino, 1);
  r->data = malloc(size ? size : 1);
  if (!r->data) { free(r); fuse_reply_err(req, ENOMEM); return; }
  memcpy(r->data, value, size);
  r->data_len = size; r->ino = ino; r->name = strdup(name); r->flags = flags;
  dispatch(SESSION(req), r);
}

/* The names Lucid keeps (src/fs/namespace/xattrs.ts keptXattrName): user., trusted. and
 * security. but security.selinux. Others are EOPNOTSUPP, answered here. */
static int kept_xattr_name(const char *name) {
  return (strncmp(name, "user.", 5) == 0 || strncmp(name, "trusted.", 8) == 0 || strncmp(name, "security.", 9) == 0) &&
         strcmp(name, "security.selinux") != 0;
}

static void ll_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
  if (!kept_xattr_name(name)) {
    fuse_reply_err(req, EOPNOTSUPP);
    return;
  }
  if (nx_known_none(SESSION(req), ino)) {
    fuse_reply_err(req, ENODATA);
    return;
  }
  NEW_OR_FAIL(OP_GETXATTR); r->ino = ino; r->name = strdup(name); r->size = size; dispatch(SESSION(req), r);
}

static void ll_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  NEW_OR_FAIL(OP_LISTXATTR); r->ino = ino; r->size = size; dispatch(SESSION(req), r);
}

static void ll_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name) {
  NEW_OR_FAIL(OP_REMOVEXATTR);
  nx_change(SESSION(req), ino, 1); r->ino = ino; r->name = strdup(name); dispatch(SESSION(req), r);
}

static void ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi) {
  NEW_OR_FAIL(OP_CREATE); r->ino = parent; r->name = strdup(name); r->mode = mode; r->flags = fi->flags; dispatch(SESSION(req), r);
}

static const struct fuse_lowlevel_ops LL_OPS = {
  .init = ll_init,
  .lookup = ll_lookup,
  .forget = ll_forget,
  .forget_multi = ll_forget_multi,
  .getattr = ll_getattr,
  .setattr = ll_setattr,
  .readlink = ll_readlink,
  .mknod = ll_mknod,
  .mkdir = ll_mkdir,
  .unlink = ll_unlink,
  .rmdir = ll_rmdir,
  .symlink = ll_symlink,
  .rename = ll_rename,
  .link = ll_link,
  .open = ll_open,
  .read = ll_read,
  .write = ll_write,
  .flush = ll_flush,
  .release = ll_release,
  .fsync = ll_fsync,
  .opendir = ll_opendir,
  .readdir = ll_readdir,
  .readdirplus = ll_readdirplus,
  .getlk = ll_getlk,
  .setlk = ll_setlk,
  .flock = ll_flock,
  .releasedir = ll_releasedir,
  .fsyncdir = ll_fsyncdir,
  .statfs = ll_statfs,
  .setxattr = ll_setxattr,
  .getxattr = ll_getxattr,
  .listxattr = ll_listxattr,
  .removexattr = ll_removexattr,
  .create = ll_create,
};

static void *loop_thread(void *arg) {
  lf_session *s = arg;
  int rc = fuse_session_loop(s->se);
  lf_req *r = new_req(OP_EXIT, NULL);
  if (r) {
    r->exit_code = rc;
    napi_call_threadsafe_function(s->tsfn, r, napi_tsfn_blocking);
  }
  napi_release_threadsafe_function(s->tsfn, napi_tsfn_release);
  return NULL;
}

/* ---- JavaScript side ---------------------------------------------------------------- */

#define CHECK(call) do { if ((call) != napi_ok) { napi_throw_error(env, NULL, "lucid_fuse: " #call " failed"); return NULL; } } while (0)

/* A request's data handed to JavaScript as an external buffer. V8 is told of its size both
 * ways: unaccounted, a stream of 1 MiB writes was garbage V8 did not know to collect (16
 * writers of 64 MiB: the agent's RSS past 1 GiB). `hint` carries the length. */
static void free_buffer(napi_env env, void *data, void *hint) {
  int64_t unused;
  napi_adjust_external_memory(env, -(int64_t) (uintptr_t) hint, &unused);
  free(data);
}

/* The layout of the numbers handed over with each request (src/fs/fuse/binding.ts reads it). */
enum {
  REQ_OP, REQ_UID, REQ_GID, REQ_PID, REQ_UMASK, REQ_INO, REQ_INO2, REQ_FH, REQ_OFF, REQ_SIZE,
  REQ_MODE, REQ_RDEV, REQ_FLAGS, REQ_DATASYNC, REQ_EXIT_CODE, REQ_FLOCK_RELEASE, REQ_LOCK_TYPE,
  REQ_LOCK_START, REQ_LOCK_END, REQ_LOCK_PID, REQ_SLEEP, REQ_XEPOCH, REQ_TO_SET, REQ_ATTR_MODE,
  REQ_ATTR_UID, REQ_ATTR_GID, REQ_ATTR_SIZE, REQ_ATIME_MS, REQ_MTIME_MS,
  REQ_NUMS
};

static napi_value str_or_undefined(napi_env env, const char *s) {
  napi_value v;
  if (s) napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
  else napi_get_undefined(env, &v);
  return v;
}

/* Hands one request to JavaScript: handler(nums, req, name, name2, data, forgets, lockOwner, unique),
 * the numbers in the session's shared array (fh, ino2 and the lock fields NaN when absent). */
static void call_js(napi_env env, napi_value js_cb, void *context, void *data) {
  lf_session *s = context;
  lf_req *r = data;
  if (!env || !js_cb || !s) {
    if (r->req) fuse_reply_err(r->req, EIO);
    free(r->name); free(r->name2); free(r->data); free(r->forgets); free(r);
    return;
  }
  double *n = s->nums;
  for (int i = 0; i < REQ_NUMS; i++) n[i] = NAN;
  n[REQ_OP] = r->op;
  n[REQ_UID] = r->uid;
  n[REQ_GID] = r->gid;
  n[REQ_PID] = r->pid;
  n[REQ_UMASK] = r->umask;
  n[REQ_INO] = (double) r->ino;
  if (r->ino2) n[REQ_INO2] = (double) r->ino2;
  if (r->has_fh) n[REQ_FH] = (double) r->fh;
  n[REQ_OFF] = (double) r->off;
  n[REQ_SIZE] = (double) r->size;
  n[REQ_MODE] = r->mode;
  n[REQ_RDEV] = r->rdev;
  n[REQ_FLAGS] = r->flags;
  n[REQ_DATASYNC] = r->datasync;
  n[REQ_EXIT_CODE] = r->exit_code;
  n[REQ_FLOCK_RELEASE] = r->has_owner && r->flock_release ? 1 : 0;
  if (r->op == OP_GETLK || r->op == OP_SETLK || r->op == OP_FLOCK) {
    n[REQ_LOCK_TYPE] = r->lk_type == F_UNLCK ? 0 : r->lk_type == F_WRLCK ? 2 : 1;
    n[REQ_LOCK_START] = (double) r->lk_start;
    n[REQ_LOCK_END] = (double) r->lk_end;
    n[REQ_LOCK_PID] = r->lk_pid;
    n[REQ_SLEEP] = r->lk_sleep;
  }
  n[REQ_XEPOCH] = (double) r->xepoch;
  if (r->op == OP_SETATTR) {
    n[REQ_TO_SET] = r->to_set;
    n[REQ_ATTR_MODE] = r->attr.st_mode;
    n[REQ_ATTR_UID] = r->attr.st_uid;
    n[REQ_ATTR_GID] = r->attr.st_gid;
    n[REQ_ATTR_SIZE] = (double) r->attr.st_size;
    n[REQ_ATIME_MS] = r->attr.st_atim.tv_sec * 1000.0 + r->attr.st_atim.tv_nsec / 1e6;
    n[REQ_MTIME_MS] = r->attr.st_mtim.tv_sec * 1000.0 + r->attr.st_mtim.tv_nsec / 1e6;
  }
  napi_value argv[8], undefined;
  napi_get_undefined(env, &undefined);
  napi_get_reference_value(env, s->nums_ref, &argv[0]);
  if (r->req) napi_create_external(env, r->req, NULL, NULL, &argv[1]);
  else argv[1] = undefined;
  argv[2] = str_or_undefined(env, r->name);
  argv[3] = str_or_undefined(env, r->name2);
  argv[4] = undefined;
  if (r->data) {
    int64_t unused;
    napi_create_external_buffer(env, r->data_len, r->data, free_buffer, (void *) (uintptr_t) r->data_len, &argv[4]);
    napi_adjust_external_memory(env, (int64_t) r->data_len, &unused);
    r->data = NULL;
  }
  argv[5] = undefined;
  if (r->forgets) {
    napi_create_array_with_length(env, r->forget_count * 2, &argv[5]);
    for (size_t i = 0; i < r->forget_count * 2; i++) {
      napi_value v;
      napi_create_double(env, r->forgets[i], &v);
      napi_set_element(env, argv[5], (uint32_t) i, v);
    }
  }
  argv[6] = undefined;
  if (r->has_owner) {
    char owner[24];
    snprintf(owner, sizeof(owner), "%llx", (unsigned long long) r->lock_owner);
    argv[6] = str_or_undefined(env, owner);
  }
  argv[7] = undefined;
  if (r->unique) {
    char id[24];
    snprintf(id, sizeof(id), "%llx", (unsigned long long) r->unique);
    argv[7] = str_or_undefined(env, id);
  }
  free(r->name); free(r->name2); free(r->data); free(r->forgets); free(r);
  napi_call_function(env, undefined, js_cb, 8, argv, NULL);
}

static fuse_req_t get_req(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok) return NULL;
  return (fuse_req_t) p;
}

static double get_num(napi_env env, napi_value v) {
  double d = 0;
  napi_get_value_double(env, v, &d);
  return d;
}

static void ms_to_timespec(double ms, struct timespec *ts) {
  double sec = ms / 1000.0;
  ts->tv_sec = (time_t) (sec < 0 ? sec - 1 : sec);
  if (sec < 0 && (double) ts->tv_sec == sec) ts->tv_sec = (time_t) sec;
  double rest = ms - (double) ts->tv_sec * 1000.0;
  ts->tv_nsec = (long) (rest * 1e6);
  if (ts->tv_nsec >= 1000000000L) { ts->tv_sec++; ts->tv_nsec -= 1000000000L; }
  if (ts->tv_nsec < 0) ts->tv_nsec = 0;
}

/* Attribute layout shared with JavaScript (Float64Array):
 * 0 ino, 1 mode, 2 nlink, 3 uid, 4 gid, 5 rdev, 6 size, 7 blocks, 8 atimeMs, 9 mtimeMs,
 * 10 ctimeMs, 11 attrTimeout, 12 entryTimeout, 13 generation, 14 blksize, and optionally
 * 15 has no extended attributes (1) or may have (0), 16 the request's xepoch. */
static void note_xattrs(fuse_req_t req, const double *a, size_t len) {
  if (len >= 17) nx_note(SESSION(req), (uint64_t) a[0], a[15] == 1, a[11], (uint64_t) a[16]);
  else nx_forget(SESSION(req), (uint64_t) a[0]);
}

static int read_attr(napi_env env, napi_value v, struct stat *st, double *attr_to, double *entry_to, uint64_t *gen, fuse_req_t req) {
  double *a = NULL;
  size_t len = 0;
  napi_typedarray_type type;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &type, &len, (void **) &a, &ab, &off) != napi_ok || type != napi_float64_array || len < 15) return -1;
  memset(st, 0, sizeof(*st));
  st->st_ino = (ino_t) a[0];
  st->st_mode = (mode_t) a[1];
  st->st_nlink = (nlink_t) a[2];
  st->st_uid = (uid_t) a[3];
  st->st_gid = (gid_t) a[4];
  st->st_rdev = (dev_t) a[5];
  st->st_size = (off_t) a[6];
  st->st_blocks = (blkcnt_t) a[7];
  ms_to_timespec(a[8], &st->st_atim);
  ms_to_timespec(a[9], &st->st_mtim);
  ms_to_timespec(a[10], &st->st_ctim);
  st->st_blksize = (blksize_t) a[14];
  if (attr_to) *attr_to = a[11];
  if (entry_to) *entry_to = a[12];
  if (gen) *gen = (uint64_t) a[13];
  if (req) note_xattrs(req, a, len);
  return 0;
}

#define ARGS(n) size_t argc = n; napi_value argv[n]; CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL)); \
  fuse_req_t req = get_req(env, argv[0]); if (!req) { napi_throw_type_error(env, NULL, "not a request"); return NULL; }

static napi_value js_reply_err(napi_env env, napi_callback_info info) {
  ARGS(2);
  fuse_reply_err(req, (int) get_num(env, argv[1]));
  return NULL;
}

/* replyNoXattr(req, ino, timeout, xepoch): ENODATA, as JavaScript found the inode has no
 * extended attributes; getxattr of it is then answered here for `timeout` s more (the rules of
 * nx_note: not if a change to any inode's xattrs came meanwhile). A writer's stream of
 * security.capability checks thus reaches JavaScript once per timeout, not once per write. */
static napi_value js_reply_no_xattr(napi_env env, napi_callback_info info) {
  ARGS(4);
  nx_note(SESSION(req), (uint64_t) get_num(env, argv[1]), 1, get_num(env, argv[2]), (uint64_t) get_num(env, argv[3]));
  fuse_reply_err(req, ENODATA);
  return NULL;
}

static napi_value js_reply_none(napi_env env, napi_callback_info info) {
  ARGS(1);
  fuse_reply_none(req);
  return NULL;
}

/* Reads an entry into `e`; on a malformed one, answers EIO, throws, and returns -1. */
static int read_entry(napi_env env, napi_value v, fuse_req_t req, struct fuse_entry_param *e) {
  memset(e, 0, sizeof(*e));
  if (read_attr(env, v, &e->attr, &e->attr_timeout, &e->entry_timeout, &e->generation, req) != 0) {
    fuse_reply_err(req, EIO);
    napi_throw_type_error(env, NULL, "entry must be a Float64Array of 15");
    return -1;
  }
  e->ino = e->attr.st_ino;
  return 0;
}

/* Open flags from JavaScript: 1 direct_io, 2 keep_cache, 4 cache_readdir. */
static void file_info(napi_env env, napi_value fh, napi_value flags_v, struct fuse_file_info *fi) {
  memset(fi, 0, sizeof(*fi));
  fi->fh = (uint64_t) get_num(env, fh);
  int flags = (int) get_num(env, flags_v);
  fi->direct_io = (flags & 1) != 0;
  fi->keep_cache = (flags & 2) != 0;
  fi->cache_readdir = (flags & 4) != 0;
}

static napi_value js_reply_entry(napi_env env, napi_callback_info info) {
  ARGS(2);
  struct fuse_entry_param e;
  if (read_entry(env, argv[1], req, &e) != 0) return NULL;
  fuse_reply_entry(req, &e);
  return NULL;
}

static napi_value js_reply_create(napi_env env, napi_callback_info info) {
  ARGS(4);
  struct fuse_entry_param e;
  if (read_entry(env, argv[1], req, &e) != 0) return NULL;
  struct fuse_file_info fi;
  file_info(env, argv[2], argv[3], &fi);
  fuse_reply_create(req, &e, &fi);
  return NULL;
}

static napi_value js_reply_attr(napi_env env, napi_callback_info info) {
  ARGS(2);
  struct stat st;
  double timeout = 0;
  if (read_attr(env, argv[1], &st, &timeout, NULL, NULL, req) != 0) {
    fuse_reply_err(req, EIO);
    napi_throw_type_error(env, NULL, "attr must be a Float64Array of 15");
    return NULL;
  }
  fuse_reply_attr(req, &st, timeout);
  return NULL;
}

static napi_value js_reply_open(napi_env env, napi_callback_info info) {
  ARGS(3);
  struct fuse_file_info fi;
  file_info(env, argv[1], argv[2], &fi);
  fuse_reply_open(req, &fi);
  return NULL;
}

static napi_value js_reply_buf(napi_env env, napi_callback_info info) {
  ARGS(2);
  void *data = NULL;
  size_t len = 0;
  if (napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) {
    fuse_reply_err(req, EIO);
    napi_throw_type_error(env, NULL, "expected a Buffer");
    return NULL;
  }
  fuse_reply_buf(req, data, len);
  return NULL;
}

static napi_value js_reply_write(napi_env env, napi_callback_info info) {
  ARGS(2);
  fuse_reply_write(req, (size_t) get_num(env, argv[1]));
  return NULL;
}

static napi_value js_reply_xattr(napi_env env, napi_callback_info info) {
  ARGS(2);
  fuse_reply_xattr(req, (size_t) get_num(env, argv[1]));
  return NULL;
}

static napi_value js_reply_readlink(napi_env env, napi_callback_info info) {
  ARGS(2);
  size_t len = 0;
  napi_get_value_string_utf8(env, argv[1], NULL, 0, &len);
  char *s = malloc(len + 1);
  if (!s) { fuse_reply_err(req, ENOMEM); return NULL; }
  napi_get_value_string_utf8(env, argv[1], s, len + 1, &len);
  fuse_reply_readlink(req, s);
  free(s);
  return NULL;
}

/* statfs: Float64Array [bsize, frsize, blocks, bfree, bavail, files, ffree, favail, namemax] */
static napi_value js_reply_statfs(napi_env env, napi_callback_info info) {
  ARGS(2);
  double *a = NULL;
  size_t len = 0;
  napi_typedarray_type type;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, argv[1], &type, &len, (void **) &a, &ab, &off) != napi_ok || len < 9) {
    fuse_reply_err(req, EIO);
    return NULL;
  }
  struct statvfs st;
  memset(&st, 0, sizeof(st));
  st.f_bsize = (unsigned long) a[0];
  st.f_frsize = (unsigned long) a[1];
  st.f_blocks = (fsblkcnt_t) a[2];
  st.f_bfree = (fsblkcnt_t) a[3];
  st.f_bavail = (fsblkcnt_t) a[4];
  st.f_files = (fsfilcnt_t) a[5];
  st.f_ffree = (fsfilcnt_t) a[6];
  st.f_favail = (fsfilcnt_t) a[7];
  st.f_namemax = (unsigned long) a[8];
  fuse_reply_statfs(req, &st);
  return NULL;
}

/* One directory entry into `buf` (or, with buf NULL, its size): plain or with attributes. */
typedef size_t (*add_entry_fn)(fuse_req_t req, char *buf, size_t room, const char *name, uint32_t i, off_t off, void *ctx);

typedef struct { double *inos, *modes; } plain_ctx;

static size_t add_plain(fuse_req_t req, char *buf, size_t room, const char *name, uint32_t i, off_t off, void *ctx) {
  plain_ctx *c = ctx;
  struct stat st;
  memset(&st, 0, sizeof(st));
  st.st_ino = (ino_t) c->inos[i];
  st.st_mode = (mode_t) c->modes[i];
  return fuse_add_direntry(req, buf, room, name, buf ? &st : NULL, off);
}

/* Attributes per entry in the shared layout (15 doubles); nlink 0 ("." and "..") means none
 * and no lookup count. */
static size_t add_plus(fuse_req_t req, char *buf, size_t room, const char *name, uint32_t i, off_t off, void *ctx) {
  double *a = (double *) ctx + (size_t) i * 15;
  struct fuse_entry_param e;
  memset(&e, 0, sizeof(e));
  e.attr.st_ino = (ino_t) a[0];
  e.attr.st_mode = (mode_t) a[1];
  if (a[2] > 0) {
    e.attr.st_nlink = (nlink_t) a[2];
    e.attr.st_uid = (uid_t) a[3];
    e.attr.st_gid = (gid_t) a[4];
    e.attr.st_rdev = (dev_t) a[5];
    e.attr.st_size = (off_t) a[6];
    e.attr.st_blocks = (blkcnt_t) a[7];
    ms_to_timespec(a[8], &e.attr.st_atim);
    ms_to_timespec(a[9], &e.attr.st_mtim);
    ms_to_timespec(a[10], &e.attr.st_ctim);
    e.attr.st_blksize = (blksize_t) a[14];
    e.attr_timeout = a[11];
    e.entry_timeout = a[12];
    e.generation = (uint64_t) a[13];
    e.ino = e.attr.st_ino;
  }
  return fuse_add_direntry_plus(req, buf, room, name, buf ? &e : NULL, off);
}

/* Adds entries until the buffer of `size` is full, replies, and returns how many were added. */
static napi_value reply_dir(napi_env env, fuse_req_t req, size_t size, napi_value names, uint32_t count, double *offs, add_entry_fn add, void *ctx) {
  char *buf = malloc(size ? size : 1);
  if (!buf) { fuse_reply_err(req, ENOMEM); return NULL; }
  size_t used = 0;
  uint32_t added = 0;
  char name[1024];
  for (uint32_t i = 0; i < count; i++) {
    napi_value v;
    size_t nlen = 0;
    napi_get_element(env, names, i, &v);
    napi_get_value_string_utf8(env, v, name, sizeof(name), &nlen);
    size_t need = add(req, NULL, 0, name, i, 0, ctx);
    if (used + need > size) break;
    add(req, buf + used, size - used, name, i, (off_t) offs[i], ctx);
    used += need;
    added++;
  }
  fuse_reply_buf(req, buf, used);
  free(buf);
  napi_value result;
  napi_create_uint32(env, added, &result);
  return result;
}

/* readdir: (req, size, names[], inos Float64Array, modes Float64Array, offs Float64Array) */
static napi_value js_reply_readdir(napi_env env, napi_callback_info info) {
  ARGS(6);
  uint32_t count = 0;
  napi_get_array_length(env, argv[2], &count);
  plain_ctx c;
  double *offs;
  size_t l1, l2, l3, o;
  napi_typedarray_type t;
  napi_value ab;
  if (napi_get_typedarray_info(env, argv[3], &t, &l1, (void **) &c.inos, &ab, &o) != napi_ok ||
      napi_get_typedarray_info(env, argv[4], &t, &l2, (void **) &c.modes, &ab, &o) != napi_ok ||
      napi_get_typedarray_info(env, argv[5], &t, &l3, (void **) &offs, &ab, &o) != napi_ok ||
      l1 < count || l2 < count || l3 < count) {
    fuse_reply_err(req, EIO);
    return NULL;
  }
  return reply_dir(env, req, (size_t) get_num(env, argv[1]), argv[2], count, offs, add_plain, &c);
}

/* readdirplus: (req, size, names[], entries Float64Array (15 per entry), offs Float64Array,
 * [noXattrs Float64Array (1 per entry: 1 = has none), xepoch]) */
static napi_value js_reply_readdirplus(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  fuse_req_t req = get_req(env, argv[0]);
  if (!req) { napi_throw_type_error(env, NULL, "not a request"); return NULL; }
  lf_session *s = SESSION(req);
  uint32_t count = 0;
  napi_get_array_length(env, argv[2], &count);
  double *attrs, *offs;
  size_t l1, l2, o;
  napi_typedarray_type t;
  napi_value ab;
  if (napi_get_typedarray_info(env, argv[3], &t, &l1, (void **) &attrs, &ab, &o) != napi_ok ||
      napi_get_typedarray_info(env, argv[4], &t, &l2, (void **) &offs, &ab, &o) != napi_ok ||
      l1 < (size_t) count * 15 || l2 < count) {
    fuse_reply_err(req, EIO);
    return NULL;
  }
  napi_value added_v = reply_dir(env, req, (size_t) get_num(env, argv[1]), argv[2], count, offs, add_plus, attrs);
  uint32_t added = 0;
  double *none = NULL;
  size_t l3 = 0;
  if (added_v && argc >= 7 && napi_get_value_uint32(env, added_v, &added) == napi_ok &&
      napi_get_typedarray_info(env, argv[5], &t, &l3, (void **) &none, &ab, &o) == napi_ok && t == napi_float64_array && l3 >= added) {
    uint64_t epoch = (uint64_t) get_num(env, argv[6]);
    for (uint32_t i = 0; i < added; i++) {
      const double *a = attrs + (size_t) i * 15;
      if (a[2] > 0) nx_note(s, (uint64_t) a[0], none[i] == 1, a[11], epoch);
    }
  }
  return added_v;
}

/* xattrsChanged(session, ino): JavaScript has finished a setxattr or removexattr of `ino`. */
static napi_value js_xattrs_changed(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  lf_session *s = NULL;
  CHECK(napi_get_value_external(env, argv[0], (void **) &s));
  if (s) nx_change(s, (uint64_t) get_num(env, argv[1]), 0);
  return NULL;
}

/* lock: (req, type "read"|"write"|"unlock", start, end (-1 = EOF), pid) answers getlk. */
static napi_value js_reply_lock(napi_env env, napi_callback_info info) {
  ARGS(5);
  char type[16];
  size_t len = 0;
  napi_get_value_string_utf8(env, argv[1], type, sizeof(type), &len);
  struct flock lk;
  memset(&lk, 0, sizeof(lk));
  lk.l_type = strcmp(type, "write") == 0 ? F_WRLCK : strcmp(type, "read") == 0 ? F_RDLCK : F_UNLCK;
  lk.l_whence = SEEK_SET;
  lk.l_start = (off_t) get_num(env, argv[2]);
  double end = get_num(env, argv[3]);
  lk.l_len = end < 0 ? 0 : (off_t) (end - lk.l_start + 1);
  lk.l_pid = (pid_t) get_num(env, argv[4]);
  fuse_reply_lock(req, &lk);
  return NULL;
}

static void *notify_loop(void *arg) {
  lf_session *s = arg;
  for (;;) {
    pthread_mutex_lock(&s->notify_lock);
    while (!s->notify_head && !s->notify_stop) pthread_cond_wait(&s->notify_cond, &s->notify_lock);
    lf_notice *n = s->notify_head;
    if (n) {
      s->notify_head = n->next;
      if (!s->notify_head) s->notify_tail = NULL;
    }
    int stop = s->notify_stop && !n;
    pthread_mutex_unlock(&s->notify_lock);
    if (stop) return NULL;
    if (n) {
      /* ENOENT (the kernel no longer knows it) and ENOTCONN (unmounting) are normal. */
      if (n->entry) fuse_lowlevel_notify_inval_entry(s->se, (fuse_ino_t) n->ino, n->name, strlen(n->name));
      else fuse_lowlevel_notify_inval_inode(s->se, (fuse_ino_t) n->ino, (off_t) n->off, (off_t) n->len);
      free(n->name);
      free(n);
    }
  }
}

static void queue_notice(lf_session *s, lf_notice *n) {
  pthread_mutex_lock(&s->notify_lock);
  if (!s->notify_stop) {
    if (s->notify_tail) s->notify_tail->next = n; else s->notify_head = n;
    s->notify_tail = n;
    n = NULL;
    pthread_cond_signal(&s->notify_cond);
  }
  pthread_mutex_unlock(&s->notify_lock);
  if (n) { free(n->name); free(n); }
}

/* notifyInvalInode(session, ino, off, len): queued; the kernel drops cached attributes and
 * (off < 0: none; len 0: all) cached pages of the inode. */
static napi_value js_notify_inval_inode(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  lf_session *s = NULL;
  CHECK(napi_get_value_external(env, argv[0], (void **) &s));
  int rc = -ENOTCONN;
  if (s && s->se && s->notify_started) {
    lf_notice *n = calloc(1, sizeof(lf_notice));
    if (n) {
      n->ino = (uint64_t) get_num(env, argv[1]);
      nx_forget(s, n->ino);
      n->off = (int64_t) get_num(env, argv[2]);
      n->len = (int64_t) get_num(env, argv[3]);
      queue_notice(s, n);
      rc = 0;
    } else rc = -ENOMEM;
  }
  napi_value result;
  napi_create_int32(env, rc, &result);
  return result;
}

/* notifyInvalEntry(session, parent, name): queued; the kernel forgets that name. */
static napi_value js_notify_inval_entry(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  lf_session *s = NULL;
  CHECK(napi_get_value_external(env, argv[0], (void **) &s));
  size_t nlen = 0;
  napi_get_value_string_utf8(env, argv[2], NULL, 0, &nlen);
  int rc = -ENOTCONN;
  if (s && s->se && s->notify_started) {
    lf_notice *n = calloc(1, sizeof(lf_notice));
    char *name = malloc(nlen + 1);
    if (n && name) {
      napi_get_value_string_utf8(env, argv[2], name, nlen + 1, &nlen);
      n->entry = 1;
      n->ino = (uint64_t) get_num(env, argv[1]);
      n->name = name;
      queue_notice(s, n);
      rc = 0;
    } else {
      free(n);
      free(name);
      rc = -ENOMEM;
    }
  }
  napi_value result;
  napi_create_int32(env, rc, &result);
  return result;
}

/* mount(mountpoint, options string, handler, maxWrite, maxReadahead) → session */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char mountpoint[4096], options[4096];
  size_t len;
  CHECK(napi_get_value_string_utf8(env, argv[0], mountpoint, sizeof(mountpoint), &len));
  CHECK(napi_get_value_string_utf8(env, argv[1], options, sizeof(options), &len));
  lf_session *s = calloc(1, sizeof(lf_session));
  if (!s) { napi_throw_error(env, "ENOMEM", "out of memory"); return NULL; }
  pthread_mutex_init(&s->nx_lock, NULL);
  s->max_write = (unsigned) get_num(env, argv[3]);
  s->max_readahead = (unsigned) get_num(env, argv[4]);
  napi_value name;
  napi_create_string_utf8(env, "lucid_fuse", NAPI_AUTO_LENGTH, &name);
  napi_value nums_buf, nums;
  if (napi_create_arraybuffer(env, REQ_NUMS * sizeof(double), (void **) &s->nums, &nums_buf) != napi_ok ||
      napi_create_typedarray(env, napi_float64_array, REQ_NUMS, nums_buf, 0, &nums) != napi_ok ||
      napi_create_reference(env, nums, 1, &s->nums_ref) != napi_ok ||
      napi_create_threadsafe_function(env, argv[2], NULL, name, 0, 1, NULL, NULL, s, call_js, &s->tsfn) != napi_ok) {
    free(s);
    napi_throw_error(env, NULL, "cannot create the request queue");
    return NULL;
  }
  char *fargv[] = { "lucid", "-o", options, NULL };
  struct fuse_args args = FUSE_ARGS_INIT(options[0] ? 3 : 1, fargv);
  s->se = fuse_session_new(&args, &LL_OPS, sizeof(LL_OPS), s);
  if (!s->se) {
    napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
    free(s);
    napi_throw_error(env, "EINVAL", "fuse_session_new failed: bad mount options");
    return NULL;
  }
  if (fuse_session_mount(s->se, mountpoint) != 0) {
    fuse_session_destroy(s->se);
    napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
    free(s);
    napi_throw_error(env, "EMOUNT", "fuse_session_mount failed");
    return NULL;
  }
  if (fuse_session_custom_io(s->se, &IO, fuse_session_fd(s->se)) != 0) {
    fuse_session_unmount(s->se);
    fuse_session_destroy(s->se);
    napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
    free(s);
    napi_throw_error(env, "EMOUNT", "fuse_session_custom_io failed");
    return NULL;
  }
  if (pthread_create(&s->thread, NULL, loop_thread, s) != 0) {
    fuse_session_unmount(s->se);
    fuse_session_destroy(s->se);
    napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
    free(s);
    napi_throw_error(env, NULL, "cannot start the FUSE thread");
    return NULL;
  }
  s->thread_started = 1;
  pthread_mutex_init(&s->notify_lock, NULL);
  pthread_cond_init(&s->notify_cond, NULL);
  if (pthread_create(&s->notify_thread, NULL, notify_loop, s) == 0) s->notify_started = 1;
  napi_value result;
  CHECK(napi_create_external(env, s, NULL, NULL, &result));
  return result;
}

/* destroy(session): after the loop has exited (the "exit" request), frees the session. */
static napi_value js_destroy(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  lf_session *s = NULL;
  CHECK(napi_get_value_external(env, argv[0], (void **) &s));
  if (!s || !s->se) return NULL;
  if (s->thread_started) pthread_join(s->thread, NULL);
  if (s->notify_started) {
    pthread_mutex_lock(&s->notify_lock);
    s->notify_stop = 1;
    /* The connection is gone: pending notices have nothing left to invalidate. */
    while (s->notify_head) {
      lf_notice *n = s->notify_head;
      s->notify_head = n->next;
      free(n->name);
      free(n);
    }
    s->notify_tail = NULL;
    pthread_cond_signal(&s->notify_cond);
    pthread_mutex_unlock(&s->notify_lock);
    pthread_join(s->notify_thread, NULL);
    s->notify_started = 0;
  }
  fuse_session_destroy(s->se);
  s->se = NULL;
  return NULL;
}

/* unmountNow(path, lazy): umount2 as root; fails with errno otherwise (use fusermount3). */
static napi_value js_umount(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[4096];
  size_t len;
  CHECK(napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &len));
  bool lazy = false;
  napi_get_value_bool(env, argv[1], &lazy);
  int rc = umount2(path, lazy ? MNT_DETACH : 0);
  napi_value result;
  napi_create_int32(env, rc == 0 ? 0 : errno, &result);
  return result;
}

/* releaseData(buffer): frees a request's data now, not when a collection finds the buffer
 * dead. The buffer's memory is detached (every view of it reads as empty from then on), which
 * drops V8's hold on it, and Node runs free_buffer soon after without waiting for a
 * collection (16 writers of 64 MiB: the agent's memory outside array buffers held ~20–27 MiB
 * of write data, ~3 MiB since). A handler calls this only once nothing holds the bytes. */
static napi_value js_release_data(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_typedarray_type type;
  size_t length, offset;
  void *data;
  napi_value ab;
  /* Never throws: it runs after the reply, where an exception would answer the request twice.
   * Memory that cannot be detached is left to a collection, as before. */
  if (napi_get_typedarray_info(env, argv[0], &type, &length, &data, &ab, &offset) != napi_ok) return NULL;
  /* Only a buffer that is its whole memory (as a request's data is), never a view into more. */
  void *whole;
  size_t whole_length;
  if (napi_get_arraybuffer_info(env, ab, &whole, &whole_length) != napi_ok || offset != 0 || whole_length != length) return NULL;
  bool detached = false;
  if (napi_is_detached_arraybuffer(env, ab, &detached) == napi_ok && !detached) napi_detach_arraybuffer(env, ab);
  return NULL;
}

static napi_value init_module(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "mount", NULL, js_mount, NULL, NULL, NULL, napi_default, NULL },
    { "destroy", NULL, js_destroy, NULL, NULL, NULL, napi_default, NULL },
    { "umount", NULL, js_umount, NULL, NULL, NULL, napi_default, NULL },
    { "replyErr", NULL, js_reply_err, NULL, NULL, NULL, napi_default, NULL },
    { "replyNoXattr", NULL, js_reply_no_xattr, NULL, NULL, NULL, napi_default, NULL },
    { "replyNone", NULL, js_reply_none, NULL, NULL, NULL, napi_default, NULL },
    { "replyEntry", NULL, js_reply_entry, NULL, NULL, NULL, napi_default, NULL },
    { "replyCreate", NULL, js_reply_create, NULL, NULL, NULL, napi_default, NULL },
    { "replyAttr", NULL, js_reply_attr, NULL, NULL, NULL, napi_default, NULL },
    { "replyOpen", NULL, js_reply_open, NULL, NULL, NULL, napi_default, NULL },
    { "replyBuf", NULL, js_reply_buf, NULL, NULL, NULL, napi_default, NULL },
    { "replyWrite", NULL, js_reply_write, NULL, NULL, NULL, napi_default, NULL },
    { "replyXattr", NULL, js_reply_xattr, NULL, NULL, NULL, napi_default, NULL },
    { "replyReadlink", NULL, js_reply_readlink, NULL, NULL, NULL, napi_default, NULL },
    { "replyStatfs", NULL, js_reply_statfs, NULL, NULL, NULL, napi_default, NULL },
    { "replyReaddir", NULL, js_reply_readdir, NULL, NULL, NULL, napi_default, NULL },
    { "replyReaddirplus", NULL, js_reply_readdirplus, NULL, NULL, NULL, napi_default, NULL },
    { "replyLock", NULL, js_reply_lock, NULL, NULL, NULL, napi_default, NULL },
    { "notifyInvalInode", NULL, js_notify_inval_inode, NULL, NULL, NULL, napi_default, NULL },
    { "notifyInvalEntry", NULL, js_notify_inval_entry, NULL, NULL, NULL, napi_default, NULL },
    { "releaseData", NULL, js_release_data, NULL, NULL, NULL, napi_default, NULL },
    { "xattrsChanged", NULL, js_xattrs_changed, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init_module)
