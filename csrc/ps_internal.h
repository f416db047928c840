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
#define PS_POOL_MAX 16                            /* parked read txns per env */
#define PS_READER_CHECK_EVERY 1024                /* commits between stale-reader sweeps */

struct ps_env {
    MDB_env *mdb;
    MDB_dbi res_dbi;
    MDB_dbi meta_dbi;
    /* Read-held by every live transaction, write-held to close the env or
     * change its map size (LMDB requires no live txn for either). */
    pthread_rwlock_t life;
    /* One write transaction per process; held across grow-and-replay so
     * no other thread's write can slip in between. Error-checking: a
     * second lock by the same thread returns EDEADLK. */
    pthread_mutex_t write_mu;
    int closed;
    int readonly;
    pid_t pid;
    /* Write commits since the last sweep of dead readers' slots (under
     * write_mu): a long-running writer must not keep pages pinned by
     * readers that were killed after it opened the store. */
    unsigned commits;
    /* Reset read txns ready for mdb_txn_renew (ps_reader.c). */
    pthread_mutex_t pool_mu;
    int pool_len;
    MDB_txn *pool[PS_POOL_MAX];
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
int ps_check_file(ps_env *env);

/* ps_txn.c */
int ps_txn_usable(ps_txn *txn, int need_write);
int ps_txn_log(ps_txn *txn, int type, const char *key, size_t key_len,
               const char *val, size_t val_len, int64_t updated_ns,
               unsigned flags);
int ps_txn_recover(ps_txn *txn);
int ps_txn_note(ps_txn *txn, int rc);

/* ps_pid.c: getpid() without a system call (refreshed after fork) */
pid_t ps_getpid(void);

/* ps_reader.c: parked read txns (callers hold env->life read-locked) */
int ps_pool_renew(ps_env *e, MDB_txn **out);
void ps_pool_give(ps_env *e, MDB_txn *t);
void ps_pool_drain(ps_env *e);
/* ps_txn.c: begin a read txn (parked one first); env->life read-held */
int ps_begin_read(ps_env *e, MDB_txn **out);

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

#endif
