/* ps_internal.h -- structures shared by the core's C files (not public). */
#ifndef PS_INTERNAL_H
#define PS_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>
#include <sys/types.h>

#include "pystore_core.h"

#define PS_DEFAULT_MAP_SIZE ((uint64_t)1 << 30)   /* 1 GiB of address space */
#define PS_MAX_MAP_SIZE ((uint64_t)1 << 44)       /* 16 TiB: growth stops here */
#define PS_WM_INITIAL ((uint64_t)1 << 20)         /* writemap: a new store's map */
#define PS_WM_MIN_STEP ((uint64_t)4 << 20)        /* writemap growth: max(4 MiB, map/8) */
#define PS_WM_LAST_STEP ((uint64_t)256 << 10)     /* smallest step on a full disk */
#define PS_FULL_DISK_SLACK ((uint64_t)1 << 20)   /* less free after EIO: disk full */
#define PS_DB_RESOURCES "resources"
#define PS_DB_META "meta"
#define PS_DB_INDEX "index"
#define PS_DB_EVENTS "events"
#define PS_META_IDX_GEN "index.generation"
#define PS_META_IDX_NEXT "index.next_id"
#define PS_META_IDX_PREFIX "index/"
#define PS_DB_CHANGES "changes"
#define PS_DB_HISTORY "history"
#define PS_META_FORMAT "format_version"
#define PS_META_REVISION "revision"
#define PS_META_COMPACTED "changes.compacted"
#define PS_META_SCHEMA_EPOCH "schema.epoch"      /* u64 LE: kind type changes */
#define PS_META_HISTORY "history/"                /* + kind: keep count */
#define PS_MAX_DBS 8                              /* room for later databases; 16 made every write txn ~5 us slower (LMDB) */
#define PS_CHANGE_KEY 12                          /* u64 BE revision, u32 BE index */
#define PS_CHANGE_HEAD 16                         /* op, flags, reserved, updated_ns, kind_len */
#define PS_HIST_CACHE 4                           /* kinds whose keep count a txn caches */
#define PS_HIST_CACHE_KIND 64                     /* longest kind it caches */
#define PS_MAX_READERS 1024
#define PS_POOL_MAX 16                            /* parked read txns per env */
#define PS_READER_CHECK_EVERY 1024                /* commits between stale-reader sweeps */
#define PS_XLOCK_FILE "write.lock"                /* writers' queue before LMDB's mutex (ps_xlock.c) */

typedef struct ps_idxset ps_idxset;
/* A kind's history keep count, cached (ps_history.c). */
typedef struct ps_hist_slot {
    size_t len;
    uint64_t keep;
    char kind[PS_HIST_CACHE_KIND];
} ps_hist_slot;

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
    int writemap;             /* opened MDB_WRITEMAP, map preallocated */
    int cow_fs;               /* copy-on-write filesystem: commits keep free space (ps_full.c) */
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
    /* The writers' queue of all processes, taken after write_mu and before
     * LMDB's writer mutex (ps_xlock.c); mapped by the env's first writable
     * handle (under write_mu once the env is open), NULL until then.
     * xlock_fd: write.lock, open while it is mapped, with a shared flock.
     * xlock_users/xlock_closing: when it may be unmapped (ps_xlock.c);
     * xlock_held: this env's writer holds it (under write_mu). */
    struct ps_xlock *xlock;
    int xlock_fd;
    unsigned xlock_users;
    int xlock_closing;
    int xlock_held;
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
    /* Writemap: bytes the last committed write txn logged (under write_mu):
     * a write txn grows the map before it begins to leave room for as much
     * again, so a run of big txns is not replayed after MDB_MAP_FULL. */
    uint64_t last_txn_bytes;
    /* The highest meta `schema.epoch` a txn of this process began on, and
     * the LMDB txn id it was read at (ps_epoch.c; both atomic). */
    uint64_t schema_epoch;
    uint64_t epoch_txnid;
} ps_shared;

/* A handle: what one ps_env_open() returned. */
struct ps_env {
    ps_shared *sh;
    MDB_env *mdb;             /* sh->mdb, for brevity */
    MDB_dbi res_dbi;
    MDB_dbi meta_dbi;
    MDB_dbi idx_dbi;      /* index entries (dupsort); valid if has_aux */
    MDB_dbi ev_dbi;       /* event streams; valid if has_aux */
    int has_aux;          /* 0: a read-only open of a store without them */
    /* Index definitions as of meta generation idx_gen (ps_index.c); used
     * and replaced only under write_mu, re-read when meta
     * `index.generation` moved (one meta read per write txn). */
    ps_idxset *idx_set;
    uint64_t idx_gen;
    /* The last commit of this handle read meta `index.generation` (or made
     * it idx_gen) and changed no "index." meta key: a write txn that
     * follows that commit directly (ps_rev_begin's last_known) needs no
     * meta read (ps_idx_ready). */
    int idx_gen_seen;
    MDB_dbi changes_dbi;  /* change log (ps_changes.c) */
    MDB_dbi history_dbi;  /* kept versions (ps_history.c) */
    uint64_t keep_changes;
    uint64_t log_first;   /* oldest logged revision seen (under write_mu) */
    /* What this handle's last commit left (under write_mu): valid for a
     * write txn whose LMDB txn id follows cache_txnid, i.e. when nothing
     * else committed since (ps_changes.c). */
    size_t cache_txnid;
    uint64_t cache_rev;
    int cache_hist_n;
    ps_hist_slot cache_hist[PS_HIST_CACHE];
    /* A write txn's memory kept for this handle's next write txn (taken
     * and given back under write_mu; freed by ps_env_free). */
    struct ps_txn *spare;
    /* Op-log chunks (PS_OP_CHUNK each) kept from this handle's last write
     * txns for its next ones, up to PS_LOG_KEEP bytes: a big transaction
     * then logs into memory already mapped instead of faulting in fresh
     * pages every time (taken and given back under write_mu; freed by
     * ps_env_free). */
    struct ps_chunk *log_spare;
    size_t log_spare_bytes;
    int closed;
    int closing;              /* close() started: new transactions fail */
    unsigned live;            /* this handle's live transactions (gate_mu) */
    int readonly;
    int nosync;               /* write txns begin with MDB_NOSYNC */
    uint32_t format;          /* meta format_version as opened (2 or 3) */
    pid_t pid;
};

enum ps_op_type {
    PS_OP_PUT, PS_OP_DEL, PS_OP_DEL_KIND, PS_OP_META_PUT,
    PS_OP_IDX_CREATE, PS_OP_IDX_DROP, PS_OP_IDX_REBUILD, PS_OP_DEL_PREFIX,
    PS_OP_EV_APPEND, PS_OP_EV_DELETE,
    PS_OP_HIST_DEL, PS_OP_HIST_LOAD, PS_OP_RESERVE, PS_OP_HIST_TRIM
};

#define PS_OP0_ROOM 96   /* key (and copied value) bytes of ps_txn.op0 */
#define PS_OP_CHUNK ((size_t)64 << 10) /* the ops after the first, by chunk */
#define PS_LOG_KEEP ((size_t)32 << 20) /* op-log chunks a handle keeps (ps_env.log_spare) */

/* One logged write, replayed if the map must grow mid-transaction. */
typedef struct ps_op {
    struct ps_op *next;
    int type;
    unsigned flags;
    int64_t updated_ns;
    uint64_t arg;         /* expected revision (PS_PUT_IF_REVISION), n, label */
    size_t key_len;
    const char *val;      /* borrowed (PS_PUT_BORROW) or points into bytes */
    size_t val_len;
    /* Non-NULL: val is the caller's payload before the strip (borrowed,
     * see ps_txn_log_unstripped); a replay strips it again with this. */
    const ps_fw_plan *plan;
    char bytes[];         /* key, then the value when copied */
} ps_op;

/* Memory for a txn's logged ops: bump-allocated from chunks of
 * PS_OP_CHUNK (an op larger than a quarter of one gets a chunk of its own),
 * all freed with the txn (no malloc and free per logged write). */
typedef struct ps_chunk {
    struct ps_chunk *next;
    size_t used, cap;
    _Alignas(ps_op) char data[];
} ps_chunk;

struct ps_txn {
    ps_env *env;
    MDB_txn *mdb;
    int write;
    pthread_t thread;     /* the thread that began it (gate accounting) */
    /* Cursors for the writes of the resources db (ps_ops.c), opened at the
     * first, and of the change log (ps_changes.c); LMDB frees them with its
     * txn: NULL whenever `mdb` ends. */
    MDB_cursor *res_cur;
    MDB_cursor *chg_cur;  /* the change log's, from a txn's second change */
    int failed;           /* LMDB code that made the txn unusable, or 0 */
    size_t write_id;      /* LMDB id of a write txn as begun (ps_txn_recover) */
    int parked;           /* read txn stepped out of the gate (ps_park.c) */
    ps_op *log_head;
    ps_op *log_tail;
    /* Room for the first logged op of a small key (not malloc'd). */
    _Alignas(ps_op) char op0[sizeof(ps_op) + PS_OP0_ROOM];
    ps_chunk *chunks;     /* the later ops' memory, the one in use first */
    /* Index definitions this txn writes by (ps_index.c): env's set, or a
     * set of its own after create/drop (installed in env at commit). */
    ps_idxset *idx;
    int idx_own;
    int idx_ready;
    uint64_t idx_gen;
    int idx_touched;      /* wrote an "index." meta key (ps_idx_committed) */
    /* The details of the last failed ps_fw_txn_* write in it (ps_fastwrite.c). */
    ps_fw_info fw_failed;
    /* Details of the last PS_ERR_UNIQUE (ps_txn_violation). */
    char *viol;
    size_t viol_name_len, viol_holder_len, viol_value_len;
    unsigned viol_mode;
    /* Revision state (ps_changes.c); reset when the log is replayed. */
    uint64_t rev;         /* this txn's revision, 0 until taken */
    uint32_t changes;     /* changes logged so far (the next change's index) */
    int rev_reserved;     /* ps_txn_reserve: commit the revision even unchanged */
    uint64_t conflict;    /* actual revision of the last PS_ERR_CONFLICT */
    int last_known;       /* last_rev holds the last committed revision */
    uint64_t last_rev;
    /* Keep counts of history read in this txn (ps_history.c). */
    int hist_n;
    int hist_set;         /* this txn changed a keep count */
    ps_hist_slot hist[PS_HIST_CACHE];
};

/* ps_key.c */
int ps_key_build(const char *kind, size_t kind_len, const char *id,
                 size_t id_len, char *out, size_t *out_len);
int ps_kind_check(const char *kind, size_t kind_len);
/* The id half of ps_check_key, for a kind of kind_len bytes that passed
 * ps_kind_check (a batch checks its kind once). */
int ps_id_check(size_t kind_len, const char *id, size_t id_len);

/* ps_buf.c */
int ps_buf_reserve(ps_buf *buf, size_t extra);
/* Append one item: u32 LE len, then the len bytes of s; out->count + 1. */
int ps_buf_add(ps_buf *out, const char *s, size_t len);
void ps_put_u32(char *p, uint32_t v);
void ps_put_i64(char *p, int64_t v);
uint32_t ps_get_u32(const char *p);
int64_t ps_get_i64(const char *p);
size_t ps_put_varint(char *w, uint64_t v); /* w holds 10 bytes; returns length */

/* ps_env.c: "dir/name" into out (ENAMETOOLONG past cap); a new MDB_env
 * opened on `path` with pystore's limits (mflags: MDB_RDONLY,
 * MDB_WRITEMAP; map_size 0: the file's). */
int ps_path_join(char *out, size_t cap, const char *dir, const char *name);
int ps_mdb_open(MDB_env **out, const char *path, unsigned mflags, uint64_t map_size);

/* ps_check.c: refuse a data.mdb whose pages in use lie past its end */
int ps_check_file(MDB_env *mdb);

/* ps_txn.c */
int ps_txn_usable(ps_txn *txn, int need_write);
int ps_txn_log(ps_txn *txn, int type, const char *key, size_t key_len,
               const char *val, size_t val_len, int64_t updated_ns,
               unsigned flags);
int ps_txn_recover(ps_txn *txn);
int ps_txn_note(ps_txn *txn, int rc);
/* The put just logged (txn's last op, logged with PS_PUT_BORROW from a
 * stripped copy that dies with the call) was `raw` stripped with `plan`:
 * the op now borrows `raw` (valid until the txn ends: the caller keeps it
 * and the plan alive) and a replay strips it again. */
void ps_txn_log_unstripped(ps_txn *txn, const char *raw, size_t raw_len,
                           const ps_fw_plan *plan);

/* ps_pid.c: getpid() without a system call (refreshed after fork) */
pid_t ps_getpid(void);

/* ps_txn.c: take a writer's lock: tried first, then waited for until the
 * end of the wait slice (*slice starts zeroed and is set to now +
 * PS_TXN_SLICE_MS the first time a lock is busy, so an uncontended write
 * reads no clock; ETIMEDOUT when it passes), or for as long as it takes
 * (slice NULL).  pthread's result (EOWNERDEAD, EDEADLK...) as it is. */
struct timespec;
int ps_mutex_take(pthread_mutex_t *mu, struct timespec *slice);

/* ps_xlock.c: the writers' queue in `write.lock` (see there).  open maps
 * it into sh (a writable env), close unmaps it once no thread is inside
 * take..give (a writer of a closed handle may still wait in it); take waits
 * as ps_mutex_take (the same slice as write_mu's) and gives
 * PS_ERR_WAIT_AGAIN when that passes; give releases it (the taking thread). */
int ps_xlock_open(ps_shared *sh, const char *dir);
void ps_xlock_close(ps_shared *sh);
int ps_xlock_take(ps_shared *sh, struct timespec *slice);
void ps_xlock_give(ps_shared *sh);

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
/* Parked read txns (ps_park.c): park steps a live txn out of the
 * process's count (its handle still counts it), so growth need not wait
 * for it; unpark counts it again, waiting while the env is held alone
 * (PS_ERR_CLOSED once e is closing, unless `ending`: a txn being ended
 * waits only for a growth in progress). */
void ps_gate_park(ps_env *e, int same_thread);
int ps_gate_unpark(ps_env *e, int ending);
/* Count a parked txn live again before it ends (ps_park.c). */
void ps_txn_unpark_to_end(ps_txn *t);
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
/* ENOSPC when sh is on a copy-on-write filesystem with less than
 * PS_COW_SLACK free (a write commit must not take the last blocks: see
 * ps_full.c), else PS_OK. */
#define PS_COW_SLACK ((uint64_t)16 << 20)
int ps_space_guard(ps_shared *sh);

/* ps_prealloc.c: the writemap mode's file (see its header comment).
 * ps_wm_fs_ok: fd's filesystem reserves space for overwrites (ext4, xfs,
 * tmpfs); ps_wm_wanted: that, unless PYSTORE_WRITEMAP=0.
 * ps_flock: flock(fd, op) again after EINTR; 0 or errno (EWOULDBLOCK for
 * a LOCK_NB that would wait).
 * ps_wm_lock/unlock: exclusive flock of data.mdb around size changes.
 * ps_wm_prealloc: (lock held) allocate data.mdb up to max(want rounded
 * to MiB, its size), *out the size; on failure the size it had.
 * ps_wm_resize: (env held alone) grow by a step (2^attempt steps, at
 * least `need` bytes), or adopt the file's size (adopt), and remap. */
int ps_wm_fs_ok(int fd);
/* fd's filesystem is copy-on-write (btrfs, ZFS, bcachefs): even an
 * overwrite in place may need a new block (see ps_space_guard). */
int ps_fs_cow(int fd);
int ps_wm_wanted(int fd);
int ps_flock(int fd, int op);
int ps_wm_lock(int fd);
void ps_wm_unlock(int fd);
int ps_wm_prealloc(int fd, uint64_t want, uint64_t *out);
uint64_t ps_wm_step(uint64_t map);
/* How a writemap growth is sized: the growths this txn made already, and
 * bytes the txn needs (0: unknown). */
typedef struct ps_grow {
    unsigned attempt;
    uint64_t need;
} ps_grow;
int ps_wm_resize(ps_shared *sh, int adopt, unsigned attempt, uint64_t need);

/* ps_paths.c: never follow symlinks for the store's files */
int ps_paths_check(const char *dir, int writable);

/* ps_bounds.c: a value must lie inside data.mdb and its own pages */
int ps_bounds_refresh(ps_shared *sh);
int ps_value_check(ps_shared *sh, const MDB_val *v);
/* The map's base as /proc/self/maps shows it (NULL: not found there): what
 * ps_bounds_refresh finds from a page must be the same (test_bounds.c). */
const char *ps_bounds_proc_base(ps_shared *sh);

/* ps_reader.c: parked read txns (callers hold a gate entry) */
/* ps_reader.c: a read of the process's own: enter the gate and renew a
 * parked read txn (ps_read_begin), give both back (ps_read_end); a stored
 * record's payload copied into buf when it fits (ps_record_copy: checks the
 * value's bounds and header; *payload_len is the length either way;
 * updated_ns and revision may be NULL). */
int ps_read_begin(ps_env *e, MDB_txn **txn);
/* Note meta `schema.epoch` as of `txn` (just begun) in e->sh (ps_epoch.c):
 * one meta read when a commit came since the last note, else none. */
void ps_epoch_note(ps_env *e, MDB_txn *txn);
void ps_read_end(ps_env *e, MDB_txn *txn);
int ps_record_copy(ps_shared *sh, const MDB_val *v, char *buf, size_t cap,
                   size_t *payload_len, int64_t *updated_ns, uint64_t *revision);
int ps_pool_renew(ps_shared *sh, MDB_txn **out);
void ps_pool_give(ps_shared *sh, MDB_txn *t);
void ps_pool_drain(ps_shared *sh);
/* ps_txn.c: begin a read txn (parked one first); a gate entry held */
int ps_begin_read(ps_env *e, MDB_txn **out);
/* ps_txn.c: begin an LMDB txn of handle e, adopting a grown map */
int ps_begin_mdb(ps_env *e, int write, MDB_txn **out);

/* ps_ops.c: the raw operations, also used to replay the log.  `expected`
 * is checked when flags hold PS_PUT_IF_REVISION. */
int ps_apply_put(ps_txn *txn, const char *key, size_t key_len,
                 const char *payload, size_t payload_len, int64_t updated_ns,
                 unsigned flags, uint64_t expected);
int ps_apply_del(ps_txn *txn, const char *key, size_t key_len, unsigned flags,
                 uint64_t expected, int *existed);
int ps_apply_del_prefix(ps_txn *txn, const char *prefix, size_t prefix_len,
                        int change_op, uint64_t *deleted);
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
int ps_txn_log_arg(ps_txn *txn, int type, const char *key, size_t key_len,
                   const char *val, size_t val_len, int64_t updated_ns,
                   unsigned flags, uint64_t arg);
/* ps_strip.c: ps_wire_strip with `plan` into *buf (realloc'd, kept by
 * the caller across calls: *cap its size, grown to twice what a payload
 * needs); the caller frees *buf. */
int ps_strip_grow(const ps_fw_plan *plan, const char *in, size_t in_len,
                  char **buf, size_t *cap, size_t *out_len);
/* ps_put_many, each payload first stripped with `plan` (NULL: none) into
 * a scratch buffer of the call; with a plan, flags must hold PS_PUT_BORROW
 * and the log borrows each record's unstripped bytes from `data` (see
 * ps_txn_log_unstripped).  A stripped payload over PS_MAX_PAYLOAD fails
 * with PS_ERR_VALUE_TOO_LARGE; *strip_failed (may be NULL) tells whether
 * the failure came from the strip. */
int ps_put_many_plan(ps_txn *txn, const char *kind, size_t kind_len,
                     const char *data, size_t data_len, const uint32_t *lens,
                     size_t n, int64_t updated_ns, unsigned flags,
                     const ps_fw_plan *plan, size_t *failed_at,
                     int *strip_failed);
/* ps_put_if after its checks: key is a checked "<kind>/<id>", flags and
 * payload are valid, the txn usable for writing. */
int ps_put_key(ps_txn *txn, const char *key, size_t key_len,
               const char *payload, size_t payload_len, int64_t updated_ns,
               unsigned flags, uint64_t expected, uint64_t *actual);
/* Build the key kind/id, or "<kind>/" (id NULL). */
int ps_kind_prefix(const char *kind, size_t kind_len, char *out, size_t *out_len);

/* ps_ids.c: open a cursor on `dbi` at the first key at or after
 * start[0..start_len) (strictly after when `after`), that key in *k, *v.
 * Returns the positioning's code (MDB_NOTFOUND: no such key) with *cur
 * open (the caller closes it), or the open's code with *cur NULL. */
int ps_cursor_from(ps_txn *txn, MDB_dbi dbi, const char *start,
                   size_t start_len, int after, MDB_cursor **cur, MDB_val *k,
                   MDB_val *v);

/* ps_changes.c: the write-path hooks of revisions and the change log.
 * ps_rev_take: this txn's revision (taken from meta at the first call).
 * ps_change_add: log one change of this txn (op PS_CHANGE_*); key is
 * "<kind>/<id>" (or "<kind>/" for a kind), kind_len its kind's length.
 * ps_rev_finish: before commit: meta `revision` and log trimming.
 * ps_rev_reset: forget the state before a replay. */
int ps_rev_take(ps_txn *txn, uint64_t *rev);
int ps_change_add(ps_txn *txn, int op, const char *key, size_t key_len,
                  size_t kind_len, int64_t updated_ns);
int ps_rev_finish(ps_txn *txn);
void ps_rev_reset(ps_txn *txn);
/* ps_rev_begin: a write txn adopts the env's cache when still valid;
 * ps_rev_committed: the env's cache after this txn committed as `txnid`. */
void ps_rev_begin(ps_txn *txn);
void ps_rev_committed(ps_txn *txn, size_t txnid);
int ps_meta_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t *out);
/* The last committed revision as `txn` sees it. */
int ps_last_revision(MDB_txn *txn, ps_env *env, uint64_t *out);
int64_t ps_now_ns(void);
/* The revision in a stored record's header (the caller checked its size). */
uint64_t ps_record_rev(const char *value);
void ps_put_u64(char *p, uint64_t v);
uint64_t ps_get_u64(const char *p);
void ps_put_be64(char *p, uint64_t v);
uint64_t ps_get_be64(const char *p);
void ps_put_be32(char *p, uint32_t v);
uint32_t ps_get_be32(const char *p);
/* Write a record header (version, flags 0, updated_ns, revision) at p. */
void ps_header_write(char *p, int64_t updated_ns, uint64_t rev);

/* ps_history.c: the write-path hooks of version history.
 * ps_hist_keep_of: the keep count of the kind of `key` (cached per txn).
 * ps_hist_push: keep `old` (a stored record of key) as its newest version.
 * ps_hist_drop_prefix: drop the kept versions of every key with a prefix. */
int ps_hist_keep_of(ps_txn *txn, const char *key, size_t kind_len,
                    uint64_t *keep);
int ps_hist_push(ps_txn *txn, const char *key, size_t key_len,
                 const char *old, size_t old_len, uint64_t keep);
int ps_hist_drop_prefix(ps_txn *txn, const char *prefix, size_t prefix_len);
int ps_apply_hist_del(ps_txn *txn, const char *key, size_t key_len,
                      uint64_t *dropped);
int ps_apply_hist_load(ps_txn *txn, const char *key, size_t key_len,
                       const char *record, size_t record_len);
/* Keep at most `keep` versions of each resource under `prefix` ("<kind>/"). */
int ps_apply_hist_trim(ps_txn *txn, const char *prefix, size_t prefix_len,
                       uint64_t keep);
int ps_apply_reserve(ps_txn *txn, uint64_t n, uint64_t *first);

/* ps_upgrade.c: rewrite a format-1 store as format 2 in `txn`. */
int ps_upgrade_v1(ps_env *env, MDB_txn *txn);

/* ps_index.c: index upkeep, called by the raw operations above.  `old`:
 * the stored record of key as the caller just read it in this txn, with
 * no write since (mv_data NULL: absent), or NULL: looked up here. */
int ps_idx_on_put(ps_txn *txn, const char *key, size_t key_len,
                  const char *payload, size_t payload_len, const MDB_val *old);
/* *yes: whether key's kind has an index (its writes need the upkeep). */
int ps_idx_kind_indexed(ps_txn *txn, const char *key, size_t key_len, int *yes);
int ps_idx_on_create(ps_txn *txn, const char *key, size_t key_len,
                     const char *payload, size_t payload_len, const MDB_val *old);
int ps_idx_on_del(ps_txn *txn, const char *key, size_t key_len,
                  const MDB_val *old);
int ps_idx_on_del_prefix(ps_txn *txn, const char *prefix, size_t prefix_len);
void ps_idx_committed(ps_txn *txn);
void ps_idx_txn_reset(ps_txn *txn); /* free the txn's own view */
void ps_idxset_free(ps_idxset *s);
int ps_apply_idx_create(ps_txn *txn, const char *def, size_t def_len,
                        uint64_t *entries, int *created);
int ps_apply_idx_drop(ps_txn *txn, const char *key, size_t key_len);
int ps_apply_idx_rebuild(ps_txn *txn, const char *key, size_t key_len,
                         uint64_t *entries);

/* ps_extract.c: values of a plan in a payload */
typedef struct ps_vals {
    ps_buf buf;       /* entries: u32 enc_len, enc, u32 raw_len, raw */
    size_t *offs;     /* entry offsets, sorted by enc and unique after sort */
    size_t n, cap;
} ps_vals;
int ps_vals_extract(const uint32_t *plan, size_t plan_len, const char *p,
                    size_t len, ps_vals *out);
void ps_vals_free(ps_vals *v);
void ps_vals_get(const ps_vals *v, size_t i, const char **enc, size_t *enc_len,
                 const char **raw, size_t *raw_len);
int ps_plan_check(const uint32_t *plan, size_t plan_len, unsigned *final_mode);
/* the encoding of a raw value body (exact, or tag + SHA-256) */
size_t ps_enc_body(const char *raw, size_t raw_len, char *out);

/* ps_sha256.c */
void ps_sha256(const void *data, size_t len, unsigned char out[32]);

/* ps_index.c: a definition, parsed (pointers into its own copy) */
typedef struct ps_idxdef {
    char *blob;
    size_t blob_len;
    uint32_t id;
    int unique;
    const char *kind, *name, *field, *type;
    size_t kind_len, name_len, field_len, type_len;
    const uint32_t *plan;   /* aligned copy */
    size_t plan_len;
    unsigned mode;          /* the final step's mode */
} ps_idxdef;
int ps_idxdef_parse(const char *blob, size_t len, ps_idxdef *out);
void ps_idxdef_free(ps_idxdef *d);
/* read kind's definition `name` from meta into *out (free it) */
int ps_idxdef_get(ps_txn *txn, const char *kind, size_t kind_len,
                  const char *name, size_t name_len, ps_idxdef *out);
int ps_idx_meta_key(const char *kind, size_t kind_len, const char *name,
                    size_t name_len, char *out, size_t *out_len);

/* ps_ops.c */
int ps_emit_record(void *ctx, const MDB_val *k, size_t prefix_len,
                   const MDB_val *v);

/* ps_events.c */
int ps_apply_ev_append(ps_txn *txn, const char *key, size_t key_len,
                       uint64_t seq, const char *payload, size_t payload_len,
                       int64_t ns, int *added);
int ps_apply_ev_delete(ps_txn *txn, const char *stream, size_t stream_len,
                       int all_, uint64_t upto, uint64_t *deleted);
/* ps_scan_kind with options: PS_SCAN_DAMAGED hands a record whose value
 * fails ps_value_check to `emit` with v->mv_data NULL (instead of failing
 * the scan with PS_ERR_VALUE_BOUNDS), so it can be named. */
#define PS_SCAN_DAMAGED 1u
int ps_scan_kind_opts(ps_txn *txn, const char *kind, size_t kind_len,
                      const char *after, size_t after_len, uint64_t limit,
                      unsigned opts, ps_emit_fn emit, void *ctx);

#endif
