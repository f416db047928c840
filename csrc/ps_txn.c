/* ps_txn.c -- transactions: locking, the write log, and map growth. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, pthread_mutex_timedlock */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ps_internal.h"

/* With the env held alone (ps_gate_alone): adopt a map size grown by
 * another process (arg NULL), or double ours (arg non-NULL). */
static int resize_map(ps_shared *sh, void *grow)
{
    int rc;
    if (sh->writemap) {
        /* the file is allocated before the map reaches it (ps_prealloc.c);
         * grow: the number of growths this txn already made */
        const ps_grow *g = grow;
        rc = ps_wm_resize(sh, g == NULL, g ? g->attempt : 0, g ? g->need : 0);
    } else if (grow == NULL) {
        rc = mdb_env_set_mapsize(sh->mdb, 0);
    } else {
        MDB_envinfo info;
        rc = mdb_env_info(sh->mdb, &info);
        if (!rc && info.me_mapsize >= PS_MAX_MAP_SIZE)
            rc = MDB_MAP_FULL;
        if (!rc) {
            uint64_t next = (uint64_t)info.me_mapsize * 2;
            if (next > PS_MAX_MAP_SIZE)
                next = PS_MAX_MAP_SIZE;
            rc = mdb_env_set_mapsize(sh->mdb, next);
        }
    }
    if (!rc)
        rc = ps_bounds_refresh(sh); /* the map moved */
    return rc;
}

/* Writemap: is the map's untouched tail shorter than what a txn like the
 * last one needs, or than a quarter of a growth step (a quarter of the map
 * for small maps)?  Then a write txn grows it (by a step) before it
 * begins, so most growths replay nothing (a growth after MDB_MAP_FULL
 * replays the whole txn).  A quarter step, not a whole one: the file then
 * stays within used + need + 1.25 steps (~1.2x the pages in use), where a
 * whole step let it reach ~1.28x. */
static int room_low(ps_shared *sh, uint64_t need)
{
    MDB_envinfo info;
    if (sh->psize == 0 || mdb_env_info(sh->mdb, &info) != 0)
        return 0;
    uint64_t used = ((uint64_t)info.me_last_pgno + 1) * sh->psize;
    uint64_t map = info.me_mapsize, low = ps_wm_step(map) / 4;
    if (low > map / 4)
        low = map / 4; /* a small store stays small */
    if (low < need)
        low = need; /* room for a txn like the last one */
    return map < PS_MAX_MAP_SIZE && (used >= map || map - used < low);
}

/* What a txn like the last one may need: its logged bytes, with room for
 * page overhead (values share pages, B-tree splits, the change log). */
static uint64_t last_need(ps_shared *sh)
{
    uint64_t b = sh->last_txn_bytes;
    return b < PS_MAX_MAP_SIZE / 2 ? b + b / 2 : PS_MAX_MAP_SIZE;
}

int ps_begin_mdb(ps_env *e, int write, MDB_txn **out)
{
    ps_shared *sh = e->sh;
    if (write && sh->writemap && room_low(sh, last_need(sh))) {
        /* best effort: on a full disk (or with another txn of this thread
         * live) the txn begins anyway and MDB_MAP_FULL decides */
        ps_grow g = {0, last_need(sh)};
        (void)ps_gate_alone(e, resize_map, &g);
    }
    if (!write && ps_pool_renew(sh, out) == PS_OK)
        return PS_OK;
    /* LMDB 0.9 ignores MDB_NOSYNC at txn begin (it keeps only MDB_RDONLY):
     * durability is set on the env at commit instead (ps_txn_commit_rev). */
    unsigned flags = write ? 0 : MDB_RDONLY;
    int rc = MDB_MAP_RESIZED;
    for (int tries = 0; tries < 16 && rc == MDB_MAP_RESIZED; tries++) {
        rc = mdb_txn_begin(sh->mdb, NULL, flags, out);
        if (rc == MDB_MAP_RESIZED) {
            int rc2 = ps_gate_alone(e, resize_map, NULL);
            if (rc2)
                return rc2;
        }
    }
    return rc;
}

/* The end of a write's wait slice (CLOCK_REALTIME, now + PS_TXN_SLICE_MS),
 * computed the first time it is needed: *until starts zeroed. */
static const struct timespec *slice_end(struct timespec *until)
{
    if (until->tv_sec == 0 && until->tv_nsec == 0) {
        clock_gettime(CLOCK_REALTIME, until);
        until->tv_nsec += PS_TXN_SLICE_MS * 1000000L;
        if (until->tv_nsec >= 1000000000L) {
            until->tv_sec++;
            until->tv_nsec -= 1000000000L;
        }
    }
    return until;
}

int ps_mutex_take(pthread_mutex_t *mu, struct timespec *slice)
{
    int rc = pthread_mutex_trylock(mu); /* the usual case: free, no clock read */
    if (rc == EBUSY)
        rc = slice ? pthread_mutex_timedlock(mu, slice_end(slice)) : pthread_mutex_lock(mu);
    return rc;
}

/* The write lock: this process's write_mu, then the writers' queue of all
 * processes (ps_xlock.c), then -- in mdb_txn_begin -- LMDB's own mutex.
 * With PS_TXN_WAIT_SLICE the first two are waited for until one slice has
 * passed (PS_ERR_WAIT_AGAIN, nothing held), else for as long as it takes.
 * Each is tried first: the slice's end (a clock read) is computed only
 * when one is busy. */
static int lock_writer(ps_shared *sh, unsigned flags)
{
    struct timespec until = {0, 0}, *slice = (flags & PS_TXN_WAIT_SLICE) ? &until : NULL;
    /* (write_mu checks errors: a trylock by its owner is EBUSY too, and the
     * wait below then reports EDEADLK) */
    int rc = ps_mutex_take(&sh->write_mu, slice);
    if (rc)
        return rc == ETIMEDOUT ? PS_ERR_WAIT_AGAIN : rc;
    rc = ps_xlock_take(sh, slice);
    if (rc)
        pthread_mutex_unlock(&sh->write_mu);
    return rc;
}

static void unlock_writer(ps_shared *sh)
{
    ps_xlock_give(sh);
    pthread_mutex_unlock(&sh->write_mu);
}

int ps_txn_begin(ps_env *e, unsigned flags, ps_txn **out)
{
    if (e == NULL || out == NULL || (flags & ~(unsigned)(PS_TXN_WRITE | PS_TXN_WAIT_SLICE)))
        return PS_ERR_INVALID_ARG;
    *out = NULL;
    if (ps_getpid() != e->pid)
        return PS_ERR_FORKED;
    if (e->closing || e->sh == NULL)
        return PS_ERR_CLOSED;
    int write = (flags & PS_TXN_WRITE) != 0;
    if (write && e->readonly)
        return PS_ERR_READONLY;
    ps_shared *sh = e->sh;
    int rc = write ? lock_writer(sh, flags) : 0;
    if (rc)
        return rc; /* EDEADLK: this thread already holds a write txn */
    ps_txn *t;
    if (write && e->spare) { /* the handle's last write txn (write_mu held) */
        t = e->spare;
        e->spare = NULL;
        memset(t, 0, sizeof *t);
    } else {
        t = calloc(1, sizeof *t);
    }
    if (t == NULL) {
        if (write)
            unlock_writer(sh);
        return PS_ERR_NOMEM;
    }
    rc = ps_gate_enter(e);
    if (!rc) {
        rc = ps_begin_mdb(e, write, &t->mdb);
        if (rc)
            ps_gate_exit(e, 1);
        else if (write)
            t->write_id = mdb_txn_id(t->mdb);
        if (!rc && !write) /* (a write txn's own reader reads it: see Transaction) */
            ps_epoch_note(e, t->mdb);
    }
    if (rc) {
        if (write)
            unlock_writer(sh);
        free(t);
        return rc;
    }
    t->env = e;
    t->write = write;
    t->thread = pthread_self();
    if (write)
        ps_rev_begin(t);
    *out = t;
    return PS_OK;
}

static void txn_release(ps_txn *t)
{
    ps_env *e = t->env;
    ps_idx_txn_reset(t);
    free(t->viol);
    t->viol = NULL;
    int own = ps_getpid() == e->pid;
    while (t->chunks) {
        ps_chunk *c = t->chunks;
        t->chunks = c->next;
        /* a write txn's standard chunks are kept for the handle's next
         * write txns (write_mu still held), up to PS_LOG_KEEP */
        if (own && t->write && c->cap == PS_OP_CHUNK &&
            e->log_spare_bytes <= PS_LOG_KEEP - PS_OP_CHUNK) {
            c->next = e->log_spare;
            e->log_spare = c;
            e->log_spare_bytes += PS_OP_CHUNK;
        } else {
            free(c);
        }
    }
    t->log_head = t->log_tail = NULL;
    if (own) {
        ps_txn_unpark_to_end(t);
        if (t->mdb && !t->write)
            ps_pool_give(e->sh, t->mdb); /* reset and parked for reuse */
        else if (t->mdb)
            mdb_txn_abort(t->mdb);
        int write = t->write, same = pthread_equal(t->thread, pthread_self());
        ps_shared *sh = e->sh;
        /* the handle keeps t for its next write txn: given while write_mu
         * is held and before the gate lets a close (and ps_env_free) in;
         * neither t nor e is touched after that */
        int keep = write && e->spare == NULL;
        if (keep)
            e->spare = t;
        ps_gate_exit(e, same);
        if (write)
            unlock_writer(sh);
        if (keep)
            return;
    }
    free(t);
}

void ps_txn_abort(ps_txn *t)
{
    if (t == NULL)
        return;
    if (t->write && ps_getpid() == t->env->pid &&
        !pthread_equal(t->thread, pthread_self()))
        return; /* LMDB's writer mutex can only be released by its owner */
    txn_release(t);
}

int ps_txn_finish(ps_txn **slot, int commit, int *rc_out, uint64_t *rev_out)
{
    if (slot == NULL)
        return PS_ERR_INVALID_ARG;
    if (rev_out)
        *rev_out = 0;
    ps_txn *t = *slot;
    int rc = PS_OK;
    if (t != NULL && t->write && ps_getpid() == t->env->pid &&
        !pthread_equal(t->thread, pthread_self())) {
        rc = PS_ERR_WRONG_THREAD; /* left alone: its own thread ends it */
    } else if (t != NULL) {
        *slot = NULL;
        if (commit) {
            rc = ps_txn_commit_rev(t, rev_out);
        } else {
            txn_release(t);
        }
    }
    if (rc_out)
        *rc_out = rc;
    return rc;
}

int ps_txn_commit(ps_txn *t)
{
    return ps_txn_commit_rev(t, NULL);
}

int ps_txn_commit_rev(ps_txn *t, uint64_t *revision)
{
    if (t == NULL)
        return PS_ERR_INVALID_ARG;
    if (revision)
        *revision = 0;
    int rc;
    if (t->write && ps_getpid() == t->env->pid &&
        !pthread_equal(t->thread, pthread_self())) {
        return PS_ERR_WRONG_THREAD; /* not freed: its own thread ends it */
    } else if (ps_getpid() != t->env->pid) {
        rc = PS_ERR_FORKED;
    } else if (t->failed) {
        rc = t->failed;
    } else if (!t->write || t->mdb == NULL) {
        rc = t->mdb ? PS_OK : PS_ERR_TXN_FAILED;
    } else {
        size_t txnid = 0;
        for (;;) {
            /* meta `revision` and change-log trimming, in this LMDB txn */
            rc = ps_rev_finish(t);
            if (rc == PS_OK && t->env->sh->cow_fs)
                rc = ps_space_guard(t->env->sh); /* the last blocks: see ps_full.c */
            if (rc == PS_OK) {
                txnid = mdb_txn_id(t->mdb);
                /* The env is shared by sync and nosync Stores; LMDB reads
                 * MDB_NOSYNC from the env inside mdb_txn_commit, and this
                 * process commits one write txn at a time (write_mu), so
                 * the flag is this Store's choice for exactly this commit. */
                (void)mdb_env_set_flags(t->env->mdb, MDB_NOSYNC, t->env->nosync); /* a changeable flag: cannot fail */
                rc = mdb_txn_commit(t->mdb);
                t->mdb = NULL; /* LMDB frees it whatever the outcome */
                t->res_cur = t->chg_cur = NULL; /* and its cursors */
            }
            if (rc != MDB_MAP_FULL)
                break;
            rc = ps_txn_recover(t);
            if (rc)
                break;
        }
        rc = ps_space_errno(t->env->sh, NULL, rc);
        if (rc == PS_OK) {
            ps_idx_committed(t); /* this txn's index definitions are the env's now */
            ps_rev_committed(t, txnid);
            if (t->env->sh->writemap) {
                uint64_t b = 0;
                for (ps_op *op = t->log_head; op; op = op->next)
                    b += op->key_len + op->val_len + 64;
                t->env->sh->last_txn_bytes = b;
            }
        }
        if (rc == PS_OK && revision)
            ps_txn_pending(t, revision);
        if (rc == PS_OK && ++t->env->sh->commits >= PS_READER_CHECK_EVERY) {
            int dead;
            t->env->sh->commits = 0;
            mdb_reader_check(t->env->mdb, &dead); /* still open: gate held */
        }
    }
    txn_release(t);
    return rc;
}

int ps_txn_usable(ps_txn *t, int need_write)
{
    if (t == NULL)
        return PS_ERR_INVALID_ARG;
    if (ps_getpid() != t->env->pid)
        return PS_ERR_FORKED;
    if (t->failed || t->mdb == NULL)
        return PS_ERR_TXN_FAILED;
    if (t->parked)
        return PS_ERR_INVALID_ARG; /* unpark it first (ps_park.c) */
    if (need_write && !t->write)
        return PS_ERR_READONLY;
    return PS_OK;
}

/* Record the outcome of an operation: codes that leave LMDB's txn in an
 * error state (or the log incomplete) make the whole txn fail. */
int ps_txn_note(ps_txn *t, int rc)
{
    if (rc == PS_OK || rc == MDB_KEYEXIST || rc == MDB_NOTFOUND)
        return rc;
    if (rc <= -31000 && rc > -31100 && rc != PS_ERR_NOMEM)
        return rc; /* validation: nothing was touched */
    if (t->write)
        t->failed = rc;
    return rc;
}

int ps_txn_log(ps_txn *t, int type, const char *key, size_t key_len,
               const char *val, size_t val_len, int64_t updated_ns,
               unsigned flags)
{
    return ps_txn_log_arg(t, type, key, key_len, val, val_len, updated_ns,
                          flags, 0);
}

/* n bytes for an op, from the txn's chunks (see ps_chunk); NULL: no memory. */
static ps_op *op_alloc(ps_txn *t, size_t n)
{
    const size_t align = _Alignof(ps_op);
    if (n > SIZE_MAX - align)
        return NULL;
    n = (n + align - 1) & ~(align - 1);
    ps_chunk *c = t->chunks;
    if (c && c->cap - c->used >= n) {
        ps_op *op = (ps_op *)(void *)(c->data + c->used);
        c->used += n;
        return op;
    }
    int own = n > PS_OP_CHUNK / 4; /* a big op: a chunk of its own */
    size_t cap = own ? n : PS_OP_CHUNK;
    if (cap > SIZE_MAX - sizeof(ps_chunk))
        return NULL;
    ps_env *e = t->env;
    ps_chunk *nc;
    if (!own && t->write && e->log_spare) { /* one kept by the handle (write_mu held) */
        nc = e->log_spare;
        e->log_spare = nc->next;
        e->log_spare_bytes -= PS_OP_CHUNK;
    } else {
        nc = malloc(sizeof(ps_chunk) + cap);
    }
    if (nc == NULL)
        return NULL;
    nc->cap = cap;
    nc->used = n;
    if (own && c) { /* behind the chunk in use, whose room stays usable */
        nc->next = c->next;
        c->next = nc;
    } else {
        nc->next = c;
        t->chunks = nc;
    }
    return (ps_op *)(void *)nc->data;
}

int ps_txn_log_arg(ps_txn *t, int type, const char *key, size_t key_len,
                   const char *val, size_t val_len, int64_t updated_ns,
                   unsigned flags, uint64_t arg)
{
    int copy = val_len && !(flags & PS_PUT_BORROW);
    size_t extra = key_len + (copy ? val_len : 0);
    if (extra < key_len || extra > SIZE_MAX - sizeof(ps_op))
        return PS_ERR_NOMEM;
    ps_op *op = t->log_head == NULL && extra <= PS_OP0_ROOM
                    ? (ps_op *)(void *)t->op0 /* the first op: no malloc */
                    : op_alloc(t, sizeof(ps_op) + extra);
    if (op == NULL)
        return PS_ERR_NOMEM;
    op->next = NULL;
    op->type = type;
    op->flags = flags;
    op->updated_ns = updated_ns;
    op->arg = arg;
    op->key_len = key_len;
    memcpy(op->bytes, key, key_len);
    op->val_len = val_len;
    op->plan = NULL;
    if (copy) {
        memcpy(op->bytes + key_len, val, val_len);
        op->val = op->bytes + key_len;
    } else {
        op->val = val;
    }
    if (t->log_tail)
        t->log_tail->next = op;
    else
        t->log_head = op;
    t->log_tail = op;
    return PS_OK;
}

void ps_txn_log_unstripped(ps_txn *t, const char *raw, size_t raw_len,
                           const ps_fw_plan *plan)
{
    ps_op *op = t->log_tail;
    if (op == NULL || op->type != PS_OP_PUT || plan == NULL)
        return;
    op->val = raw;
    op->val_len = raw_len;
    op->plan = plan;
}

/* A logged put again: its payload as logged, or stripped anew into *buf
 * (the replay's scratch buffer, *cap its size). */
static int replay_put(ps_txn *t, const ps_op *op, char **buf, size_t *cap)
{
    if (op->plan == NULL)
        return ps_apply_put(t, op->bytes, op->key_len, op->val, op->val_len,
                            op->updated_ns, op->flags, op->arg);
    size_t n = 0;
    /* the same plan on the same bytes: it succeeded when logged */
    int rc = ps_strip_grow(op->plan, op->val, op->val_len, buf, cap, &n);
    if (!rc)
        rc = ps_apply_put(t, op->bytes, op->key_len, *buf, n, op->updated_ns,
                          op->flags, op->arg);
    return rc;
}

static int replay(ps_txn *t)
{
    ps_rev_reset(t); /* a new LMDB txn: the revision is taken again */
    char *buf = NULL; /* puts logged unstripped are stripped again here */
    size_t cap = 0;
    int rc = PS_OK;
    for (ps_op *op = t->log_head; op && rc == PS_OK; op = op->next) {
        int existed, created;
        uint64_t n;
        switch (op->type) {
        case PS_OP_PUT:
            rc = replay_put(t, op, &buf, &cap);
            break;
        case PS_OP_DEL:
            rc = ps_apply_del(t, op->bytes, op->key_len, op->flags, op->arg,
                              &existed);
            break;
        case PS_OP_HIST_DEL:
            rc = ps_apply_hist_del(t, op->bytes, op->key_len, &n);
            break;
        case PS_OP_HIST_LOAD:
            rc = ps_apply_hist_load(t, op->bytes, op->key_len, op->val, op->val_len);
            break;
        case PS_OP_HIST_TRIM:
            rc = ps_apply_hist_trim(t, op->bytes, op->key_len, op->arg);
            break;
        case PS_OP_RESERVE:
            rc = ps_apply_reserve(t, op->arg, &n);
            break;
        case PS_OP_DEL_KIND:
            rc = ps_apply_del_prefix(t, op->bytes, op->key_len, PS_CHANGE_DELETE_KIND, &n);
            break;
        case PS_OP_DEL_PREFIX:
            rc = ps_apply_del_prefix(t, op->bytes, op->key_len, PS_CHANGE_DELETE_PREFIX, &n);
            break;
        case PS_OP_META_PUT:
            rc = ps_apply_meta_put(t, op->bytes, op->key_len, op->val, op->val_len);
            break;
        case PS_OP_IDX_CREATE:
            rc = ps_apply_idx_create(t, op->bytes, op->key_len, &n, &created);
            break;
        case PS_OP_IDX_DROP:
            rc = ps_apply_idx_drop(t, op->bytes, op->key_len);
            break;
        case PS_OP_IDX_REBUILD:
            rc = ps_apply_idx_rebuild(t, op->bytes, op->key_len, &n);
            break;
        case PS_OP_EV_APPEND:
            rc = ps_apply_ev_append(t, op->bytes, op->key_len,
                                    ps_get_be64(op->bytes + op->key_len - 8),
                                    op->val, op->val_len, op->updated_ns, &existed);
            break;
        case PS_OP_EV_DELETE: /* stream NUL u64 BE upto, u8 all */
            rc = ps_apply_ev_delete(t, op->bytes, op->key_len - 10,
                                    op->bytes[op->key_len - 1],
                                    ps_get_be64(op->bytes + op->key_len - 9), &n);
            break;
        default:
            rc = PS_ERR_INVALID_ARG;
        }
    }
    free(buf);
    return rc;
}

/* The map filled up: abort LMDB's txn, grow the map (no other txn of this
 * process may be live meanwhile), begin again and replay the log.  The
 * caller keeps env->write_mu the whole time, so no other thread of this
 * process can write in between. */
int ps_txn_recover(ps_txn *t)
{
    ps_env *e = t->env;
    /* writemap: the step covers twice what the txn logged so far (its
     * replay, and as much again), so a big txn is replayed once or twice,
     * not once per step */
    ps_grow g = {0, 0};
    for (ps_op *op = t->log_head; op; op = op->next)
        g.need += op->key_len + op->val_len + 64;
    g.need *= 2;
    for (;; g.attempt++) {
        if (t->mdb) {
            mdb_txn_abort(t->mdb);
            t->mdb = NULL;
            t->res_cur = t->chg_cur = NULL; /* freed with it */
        }
        ps_idx_txn_reset(t); /* the replay rebuilds this txn's view */
        int rc = ps_gate_alone(e, resize_map, &g); /* MAP_FULL at the max */
        if (!rc)
            rc = ps_begin_mdb(e, 1, &t->mdb);
        /* Between the abort and this begin another process may have
         * committed (LMDB's write lock was free): what this txn read and
         * decided may be stale (a read-modify-write would overwrite that
         * commit), so it fails whole instead of replaying over it. */
        if (!rc && mdb_txn_id(t->mdb) != t->write_id)
            rc = PS_ERR_RACED;
        if (!rc) {
            rc = replay(t);
            if (rc == MDB_MAP_FULL)
                continue; /* still too small: grow again */
        }
        if (rc)
            t->failed = rc;
        return rc;
    }
}

int ps_begin_read(ps_env *e, MDB_txn **out)
{
    return ps_begin_mdb(e, 0, out);
}
