/* ps_internal.h -- structures shared by the core's C files (not public). */
#ifndef PS_INTERNAL_H
#define PS_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>
#include <sys/types.h>

#include "pystore_core.h"

#define PS_DEFAULT_MAP_SIZE ((uint64_t)1 << 30)   /* 1 GiB of address space */
#define PS_MAX_MAP_SIZE ((uint64_t)1 << 44)       /* 16 TiB: growth stops here */
#define PS_FULL_DISK_SLACK ((uint64_t)1 << 20)   /* less free after EIO: disk full */
#define PS_DB_RESOURCES "resources"
#define PS_DB_META "meta"
#define PS_META_FORMAT "format_version"
#define PS_MAX_READERS 1024
#define PS_POOL_MAX 16                            /* parked read txns per env */
#define PS_READER_CHECK_EVERY 1024                /* commits between stale-reader sweeps */

/* One LMDB environment per store directory per process, shared by every
 * ps_env handle opened on it (ps_registry.c).  LMDB forbids opening an
 * environment twice in one process: closing the second copy would drop the
 * process's fcntl locks on lock.mdb under the first. */
typedef struct ps_shared {
    struct ps_shared *next;   /* registry list (registry mutex) */
    dev_t dev;                /* the store directory's identity */
    ino_t ino;
    int refs;                 /* open handles (registry mutex) */
    int handles;              /* handles not yet freed: the memory stays */
    int opening;              /* first handle still opening (registry mutex) */
    int mdb_readonly;         /* environment opened MDB_RDONLY */
    pid_t pid;
    MDB_env *mdb;
    /* The gate (ps_registry.c): every live transaction of every handle is
     * counted in `live`.  A thread that must have no transaction live
     * (map resize, last close) raises `excl`; new outermost transactions
     * then wait, but a thread that already holds one never waits (so a
     * nested begin cannot deadlock with a pending resize or close). */
    pthread_mutex_t gate_mu;
    pthread_cond_t gate_cv;
    unsigned live;
    unsigned excl;            /* threads waiting to hold the env alone */
    int excl_busy;            /* one of them holds it */
    /* One write transaction per process; held across grow-and-replay so
     * no other thread's write can slip in between. Error-checking: a
     * second lock by the same thread returns EDEADLK. */
    pthread_mutex_t write_mu;
    /* Write commits since the last sweep of dead readers' slots (under
     * write_mu). */
    unsigned commits;
    /* Reset read txns ready for mdb_txn_renew (ps_reader.c). */
    pthread_mutex_t pool_mu;
    int pool_len;
    MDB_txn *pool[PS_POOL_MAX];
    /* Where data.mdb is mapped, for checking values (ps_bounds.c); changed
     * only with the env held alone.  file_bytes caches data.mdb's size. */
    const char *map_base;
    size_t map_len;
    size_t psize;
    uint64_t file_bytes;      /* atomic */
} ps_shared;

/* A handle: what one ps_env_open() returned. */
struct ps_env {
    ps_shared *sh;
    MDB_env *mdb;             /* sh->mdb, for brevity */
    MDB_dbi res_dbi;
    MDB_dbi meta_dbi;
    int closed;
    int closing;              /* close() started: new transactions fail */
    unsigned live;            /* this handle's live transactions (gate_mu) */
    int readonly;
    int nosync;               /* write txns begin with MDB_NOSYNC */
    pid_t pid;
};

enum ps_op_type { PS_OP_PUT, PS_OP_DEL, PS_OP_DEL_KIND, PS_OP_META_PUT };

/* One logged write, replayed if the map must grow mid-transaction. */
typedef struct ps_op {
    struct ps_op *next;
    int type;
    unsigned flags;
    int64_t updated_ns;
    size_t key_len;
    const char *val;      /* borrowed (PS_PUT_BORROW) or points into bytes */
    size_t val_len;
    char bytes[];         /* key, then the value when copied */
} ps_op;

struct ps_txn {
    ps_env *env;
    MDB_txn *mdb;
    int write;
    pthread_t thread;     /* the thread that began it (gate accounting) */
    int failed;           /* LMDB code that made the txn unusable, or 0 */
    ps_op *log_head;
    ps_op *log_tail;
};

/* ps_key.c */
int ps_key_build(const char *kind, size_t kind_len, const char *id,
                 size_t id_len, char *out, size_t *out_len);
int ps_kind_check(const char *kind, size_t kind_len);

/* ps_buf.c */
int ps_buf_reserve(ps_buf *buf, size_t extra);
void ps_put_u32(char *p, uint32_t v);
void ps_put_i64(char *p, int64_t v);
uint32_t ps_get_u32(const char *p);
int64_t ps_get_i64(const char *p);
size_t ps_put_varint(char *w, uint64_t v); /* w holds 10 bytes; returns length */

/* ps_check.c: refuse a data.mdb whose pages in use lie past its end */
int ps_check_file(MDB_env *mdb);

/* ps_txn.c */
int ps_txn_usable(ps_txn *txn, int need_write);
int ps_txn_log(ps_txn *txn, int type, const char *key, size_t key_len,
               const char *val, size_t val_len, int64_t updated_ns,
               unsigned flags);
int ps_txn_recover(ps_txn *txn);
int ps_txn_note(ps_txn *txn, int rc);

/* ps_pid.c: getpid() without a system call (refreshed after fork) */
pid_t ps_getpid(void);

/* ps_registry.c: the shared environments and their gate. */
/* The shared env of directory `path`: *created 1 if the caller is the
 * first handle and must open it, then report with ps_shared_opened(). */
int ps_shared_acquire(const char *path, ps_shared **out, int *created);
void ps_shared_opened(ps_shared *sh, int ok);
/* A handle closed: the LMDB env is closed with the last (refs). */
void ps_shared_release(ps_shared *sh);
/* A handle freed: the memory goes with the last handle (handles). */
void ps_shared_unref(ps_shared *sh);
/* Count a new transaction of handle e (PS_ERR_CLOSED once it is closing). */
int ps_gate_enter(ps_env *e);
void ps_gate_exit(ps_env *e, int same_thread);
/* Hold the env alone (no live txn in this process) for fn(sh, arg), from
 * inside a transaction of the calling thread that is counted once in the
 * gate; MDB_MAP_RESIZED if this thread holds other transactions. */
int ps_gate_alone(ps_env *e, int (*fn)(ps_shared *, void *), void *arg);
/* Make new txns of e fail, wait until none is live, mark it closed; 1 if
 * this call closed it (0: already closed, or closed by another thread). */
int ps_gate_close(ps_env *e);

/* ps_space.c: full filesystems */
/* Create lock.mdb (0600, never through a symlink) with its blocks
 * allocated, before LMDB maps it: on a full filesystem LMDB's writes
 * through that map would raise SIGBUS.  ENOSPC if they cannot be had. */
int ps_space_prepare_lock(const char *dir, unsigned max_readers);
/* rc, or ENOSPC when rc is EIO (a short write) and the filesystem has
 * (almost) no space left for unprivileged users; sh or dir names it. */
int ps_space_errno(ps_shared *sh, const char *dir, int rc);

/* ps_paths.c: never follow symlinks for the store's files */
int ps_paths_check(const char *dir, int writable);

/* ps_bounds.c: a value must lie inside data.mdb and its own pages */
int ps_bounds_refresh(ps_shared *sh);
int ps_value_check(ps_shared *sh, const MDB_val *v);

/* ps_reader.c: parked read txns (callers hold a gate entry) */
int ps_pool_renew(ps_shared *sh, MDB_txn **out);
void ps_pool_give(ps_shared *sh, MDB_txn *t);
void ps_pool_drain(ps_shared *sh);
/* ps_txn.c: begin a read txn (parked one first); a gate entry held */
int ps_begin_read(ps_env *e, MDB_txn **out);
/* ps_txn.c: begin an LMDB txn of handle e, adopting a grown map */
int ps_begin_mdb(ps_env *e, int write, MDB_txn **out);

/* ps_ops.c: the raw operations, also used to replay the log. */
int ps_apply_put(ps_txn *txn, const char *key, size_t key_len,
                 const char *payload, size_t payload_len, int64_t updated_ns,
                 unsigned flags);
int ps_apply_del(ps_txn *txn, const char *key, size_t key_len, int *existed);
int ps_apply_del_prefix(ps_txn *txn, const char *prefix, size_t prefix_len,
                        uint64_t *deleted);
/* Called by ps_scan_kind for each record: key, length of "<kind>/", value. */
typedef int (*ps_emit_fn)(void *ctx, const MDB_val *k, size_t prefix_len,
                          const MDB_val *v);
/* Walk the records of a kind whose id sorts strictly after `after` (none:
 * from the first), at most `limit` (0: all), in key order, calling `emit`
 * until it returns non-zero.  Checks the txn, kind and `after`. */
int ps_scan_kind(ps_txn *txn, const char *kind, size_t kind_len,
                 const char *after, size_t after_len, uint64_t limit,
                 ps_emit_fn emit, void *ctx);
int ps_apply_meta_put(ps_txn *txn, const char *key, size_t key_len,
                      const char *val, size_t val_len);
/* ps_scan_kind with options: PS_SCAN_DAMAGED hands a record whose value
 * fails ps_value_check to `emit` with v->mv_data NULL (instead of failing
 * the scan with PS_ERR_VALUE_BOUNDS), so it can be named. */
#define PS_SCAN_DAMAGED 1u
int ps_scan_kind_opts(ps_txn *txn, const char *kind, size_t kind_len,
                      const char *after, size_t after_len, uint64_t limit,
                      unsigned opts, ps_emit_fn emit, void *ctx);

#endif
