/* logfloor.c -- the floor of a single-record write that keeps a change log,
 * as a shared library that bench/floor_log.py calls from the same process as
 * py-lmdb (issue 12: "show the floor with a measured prototype").
 *
 * Plain liblmdb, no pystore: one environment (MDB_WRITEMAP | MDB_NOSYNC,
 * like py-lmdb expert's) with a "resources" and a "changes" database.  Each
 * lf_loop() call runs n single-record writes, each in a write transaction of
 * its own, and returns the thread CPU time per write in µs.  The caller
 * passes the record bytes already serialized, so nothing of Python is timed.
 *
 *   LF_PUT       the record only (12-byte header + payload), no log: what
 *                py-lmdb expert does;
 *   LF_PUT_LOG   plus one change-log entry appended (MDB_APPEND) to the
 *                "changes" database: pystore's format;
 *   LF_PUT_TAIL  plus the entry put in LMDB's main database instead (under
 *                a 0xff prefix, after the names of the databases), whose
 *                page every write commit dirties anyway (the commit writes
 *                the changed databases' roots there); every LF_TAIL entries
 *                are moved to "changes" in one go.  The cheapest log that
 *                stays inside the transaction: a prototype of a format
 *                pystore does not have.
 *   LF_DEL, LF_DEL_LOG, LF_DEL_TAIL   the same for a delete (the loop puts
 *                each record back afterwards, untimed).
 *
 * Single-threaded by contract (one environment in static state). */
#define _GNU_SOURCE
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum { LF_PUT, LF_PUT_LOG, LF_PUT_TAIL, LF_DEL, LF_DEL_LOG, LF_DEL_TAIL };
#define LF_TAIL 32

static MDB_env *env;
static MDB_dbi res, chg, mainb;
/* lf_get_loop's environment of the main database only, and the reused
 * read txns of both (reset between gets) */
static MDB_env *env2;
static MDB_txn *rtxn, *rtxn2;
static MDB_dbi main2;
static uint64_t rev = 1;
static unsigned tail_n;

/* An error as a result of the loops: negative whatever its sign (LMDB's
 * own codes are negative, errno values positive); lf_strerror names it. */
static double err(int rc)
{
    return rc < 0 ? (double)rc : -(double)rc;
}

const char *lf_strerror(int rc)
{
    return mdb_strerror(rc);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec * 1e-3;
}

/* the log entry of pystore's format: u64 BE revision + u32 index; op,
 * flags, reserved, updated_ns, kind length, kind, id */
static void entry(uint64_t r, char k[13], char *v, size_t *vl, const char *key, size_t kl)
{
    k[0] = (char)0xff; /* only the main database's key uses k[0] */
    for (int b = 0; b < 8; b++)
        k[1 + b] = (char)(r >> (56 - 8 * b));
    memset(k + 9, 0, 4);
    memset(v, 0, 16);
    v[0] = 1;
    memcpy(v + 16, key, kl); /* "Kind/id": the same bytes as kind + id */
    *vl = 16 + kl;
}

static int log_changes(MDB_txn *t, const char *key, size_t kl)
{
    char k[13], v[600];
    size_t vl;
    entry(rev, k, v, &vl, key, kl);
    MDB_val kv = {12, k + 1}, vv = {vl, v};
    int rc = mdb_put(t, chg, &kv, &vv, MDB_APPEND);
    rev++;
    return rc;
}

/* move the main database's log entries into changes (in key order) */
static int flush_tail(MDB_txn *t)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(t, mainb, &c);
    if (rc)
        return rc;
    char first = (char)0xff;
    MDB_val ck = {1, &first}, cv;
    while ((rc = mdb_cursor_get(c, &ck, &cv, MDB_SET_RANGE)) == 0) {
        MDB_val to = {ck.mv_size - 1, (char *)ck.mv_data + 1};
        if ((rc = mdb_put(t, chg, &to, &cv, MDB_APPEND)) || (rc = mdb_cursor_del(c, 0)))
            break;
        ck.mv_size = 1;
        ck.mv_data = &first;
    }
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND)
        tail_n = 0;
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* into the main database; every LF_TAIL entries, all of them into changes */
static int log_tail(MDB_txn *t, const char *key, size_t kl)
{
    char k[13], v[600];
    size_t vl;
    entry(rev, k, v, &vl, key, kl);
    MDB_val kv = {13, k}, vv = {vl, v};
    int rc = mdb_put(t, mainb, &kv, &vv, MDB_APPEND);
    rev++;
    if (rc || ++tail_n < LF_TAIL)
        return rc;
    return flush_tail(t);
}

/* Open (create) the environment in dir; 0 or an LMDB code. */
int lf_open(const char *dir)
{
    int rc;
    MDB_txn *t;
    if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_mapsize(env, (size_t)1 << 30)) ||
        (rc = mdb_env_set_maxdbs(env, 4)) ||
        (rc = mdb_env_open(env, dir, MDB_WRITEMAP | MDB_NOSYNC | MDB_NOTLS, 0600)))
        return rc;
    if ((rc = mdb_txn_begin(env, NULL, 0, &t)))
        return rc;
    if ((rc = mdb_dbi_open(t, "resources", MDB_CREATE, &res)) ||
        (rc = mdb_dbi_open(t, "changes", MDB_CREATE, &chg)) ||
        (rc = mdb_dbi_open(t, NULL, 0, &mainb))) {
        mdb_txn_abort(t);
        return rc;
    }
    return mdb_txn_commit(t);
}

void lf_close(void)
{
    if (rtxn)
        mdb_txn_abort(rtxn);
    if (rtxn2)
        mdb_txn_abort(rtxn2);
    rtxn = rtxn2 = NULL;
    if (env)
        mdb_env_close(env);
    if (env2)
        mdb_env_close(env2);
    env = env2 = NULL;
}

/* One write in a txn of its own: a put of val (mode < LF_DEL) or a delete
 * of key, then the log entry its mode asks for. */
static int write1(const char *key, size_t kl, const char *val, size_t vl, int mode)
{
    MDB_txn *t;
    MDB_val kv = {kl, (void *)key}, vv = {12 + vl, NULL};
    int rc = mdb_txn_begin(env, NULL, 0, &t);
    if (rc)
        return rc;
    if (mode >= LF_DEL) {
        rc = mdb_del(t, res, &kv, NULL);
    } else if (!(rc = mdb_put(t, res, &kv, &vv, MDB_RESERVE))) {
        memset(vv.mv_data, 0, 12);
        memcpy((char *)vv.mv_data + 12, val, vl);
    }
    if (!rc && (mode == LF_PUT_LOG || mode == LF_DEL_LOG))
        rc = log_changes(t, key, kl);
    else if (!rc && (mode == LF_PUT_TAIL || mode == LF_DEL_TAIL))
        rc = log_tail(t, key, kl);
    if (rc) {
        mdb_txn_abort(t);
        return rc;
    }
    return mdb_txn_commit(t);
}

/* Before a write of `mode`: the main database's pending log entries are
 * moved into changes unless mode puts its entry there too (the other modes'
 * entries come after the pending ones).  0 or an LMDB code. */
static int settle_tail(int mode)
{
    if (!tail_n || mode == LF_PUT_TAIL || mode == LF_DEL_TAIL)
        return 0;
    MDB_txn *t;
    int rc = mdb_txn_begin(env, NULL, 0, &t);
    if (!rc && (rc = flush_tail(t)))
        mdb_txn_abort(t);
    else if (!rc)
        rc = mdb_txn_commit(t);
    return rc;
}

/* One write as write1, for a caller that makes one call per write (a
 * Python loop through cffi, as pystore's callers do): 0 or the LMDB code.
 * (settle_tail moves nothing after the first write of a run.) */
int lf_one(int mode, const char *key, size_t kl, const char *val, size_t vl)
{
    int rc = settle_tail(mode);
    return rc ? rc : write1(key, kl, val, vl, mode);
}

/* n writes: keys[i] (klens[i] bytes) with vals[i] (vlens[i] bytes; unused
 * by deletes).  µs of CPU per write, or err()'s negative code. */
double lf_loop(int mode, const char **keys, const size_t *klens, const char **vals,
               const size_t *vlens, int n)
{
    int rc = settle_tail(mode);
    if (rc)
        return err(rc);
    double t0 = now();
    for (int i = 0; i < n; i++) {
        int rc = write1(keys[i], klens[i], vals[i], vlens[i], mode);
        if (rc)
            return err(rc);
    }
    double us = (now() - t0) / n;
    if (mode >= LF_DEL) /* put the records back, untimed */
        for (int i = 0; i < n; i++) {
            int rc = write1(keys[i], klens[i], vals[i], vlens[i], LF_PUT);
            if (rc)
                return err(rc);
        }
    return us;
}

/* pystore's one-call save, called through a pointer the caller takes from
 * pystore's own module (no Python or cffi per write): n saves of kind
 * "Agent", ids[i] with vals[i], stripped with `plan`.  µs of CPU per save,
 * or the (negative) error. */
typedef int64_t (*lf_save_fn)(void *env, const char *kind, size_t kind_len, const char *id,
                              size_t id_len, const char *data, size_t len, const void *plan,
                              unsigned flags, uint64_t expected);

double lf_loop_ps(void *fn, void *ps_env, const void *plan, const char **ids,
                  const size_t *idlens, const char **vals, const size_t *vlens, int n)
{
    lf_save_fn save = (lf_save_fn)fn;
    double t0 = now();
    for (int i = 0; i < n; i++) {
        int64_t r = save(ps_env, "Agent", 5, ids[i], idlens[i], vals[i], vlens[i], plan, 0, 0);
        if (r < 0)
            return (double)r;
    }
    return (now() - t0) / n;
}


/* A second environment in dir2 holding the same records in its main
 * database (no named database at all, as py-lmdb expert's store): for
 * lf_get_loop(0). */
int lf_open_main(const char *dir2, const char **keys, const size_t *klens, const char **vals,
                 const size_t *vlens, int n)
{
    MDB_txn *t;
    int rc;
    if ((rc = mdb_env_create(&env2)) || (rc = mdb_env_set_mapsize(env2, (size_t)1 << 30)) ||
        (rc = mdb_env_open(env2, dir2, MDB_WRITEMAP | MDB_NOSYNC | MDB_NOTLS, 0600)) ||
        (rc = mdb_txn_begin(env2, NULL, 0, &t)))
        return rc;
    rc = mdb_dbi_open(t, NULL, 0, &main2);
    for (int i = 0; i < n && !rc; i++) {
        MDB_val kv = {klens[i], (void *)keys[i]}, vv = {12 + vlens[i], NULL};
        if (!(rc = mdb_put(t, main2, &kv, &vv, MDB_RESERVE))) {
            memset(vv.mv_data, 0, 12);
            memcpy((char *)vv.mv_data + 12, vals[i], vlens[i]);
        }
    }
    if (rc) {
        mdb_txn_abort(t);
        return rc;
    }
    return mdb_txn_commit(t);
}

/* n gets, each as pystore's and py-lmdb expert's: renew a reused read txn,
 * get, copy the value out, reset.  named: from lf_open's "resources"
 * database (LMDB marks a named database stale at every renew and looks its
 * root up again in the main database at its first use); else from
 * lf_open_main's main database.  µs of CPU per get, or err()'s negative
 * code. */
double lf_get_loop(int named, const char **keys, const size_t *klens, int n)
{
    static char out[1 << 16];
    MDB_env *e = named ? env : env2;
    MDB_txn **rt = named ? &rtxn : &rtxn2;
    MDB_dbi dbi = named ? res : main2;
    int rc = 0;
    if (*rt == NULL) {
        if ((rc = mdb_txn_begin(e, NULL, MDB_RDONLY, rt)))
            return err(rc);
        mdb_txn_reset(*rt);
    }
    double t0 = now();
    for (int i = 0; i < n && !rc; i++) {
        MDB_val kv = {klens[i], (void *)keys[i]}, vv;
        if ((rc = mdb_txn_renew(*rt)))
            break;
        if (!(rc = mdb_get(*rt, dbi, &kv, &vv)))
            memcpy(out, vv.mv_data, vv.mv_size < sizeof out ? vv.mv_size : sizeof out);
        mdb_txn_reset(*rt);
    }
    return rc ? err(rc) : (now() - t0) / n;
}
