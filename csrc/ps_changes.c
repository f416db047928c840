/* ps_changes.c -- store revisions and the change log.
 *
 * The last committed revision is the greater of the newest key of the
 * change log and meta `revision` (u64 LE), which is only written by a txn
 * that takes a revision without logging a change (ps_txn_reserve, the
 * upgrade): a commit then dirties no meta page, and trimming never removes
 * the newest revision (keep_changes >= 1).  A write txn takes its
 * revision, the last + 1, at its first change (ps_rev_take); every record
 * and change it writes carries it.  LMDB has one writer at a time across
 * processes, so revisions are never reused, even across crashes (nothing
 * of an uncommitted txn survives).
 *
 * The change log is the database `changes`: key u64 BE revision + u32 BE
 * index of the change within its txn, so keys only grow (MDB_APPEND);
 * value u8 op, u8 flags (0), u16 reserved, i64 LE updated_ns, u32 LE
 * kind_len, kind, then the id (the rest of the value; empty for a kind).
 * Writers trim it in the same txn (see trim()); meta `changes.compacted`
 * is the highest revision trimmed.
 */
#define _POSIX_C_SOURCE 200809L
#include <string.h>
#include <time.h>

#include "ps_internal.h"

int64_t ps_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int ps_meta_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t *out)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc == MDB_NOTFOUND) {
        *out = 0;
        return PS_OK;
    }
    if (rc)
        return rc;
    if (v.mv_size != 8)
        return PS_ERR_BAD_RECORD;
    *out = ps_get_u64(v.mv_data);
    return PS_OK;
}

int ps_last_revision(MDB_txn *txn, ps_env *e, uint64_t *out)
{
    uint64_t meta, logged = 0;
    int rc = ps_meta_u64(txn, e->meta_dbi, PS_META_REVISION, &meta);
    if (rc)
        return rc;
    MDB_cursor *cur;
    rc = mdb_cursor_open(txn, e->changes_dbi, &cur);
    if (rc)
        return rc;
    MDB_val k, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (rc == PS_OK && k.mv_size == PS_CHANGE_KEY)
        logged = ps_get_be64(k.mv_data);
    mdb_cursor_close(cur);
    if (rc != PS_OK && rc != MDB_NOTFOUND)
        return rc;
    *out = meta > logged ? meta : logged;
    return PS_OK;
}

static int meta_put_u64(ps_txn *t, const char *key, uint64_t value)
{
    char b[8];
    ps_put_u64(b, value);
    MDB_val k = {strlen(key), (void *)key}, v = {sizeof b, b};
    return mdb_put(t->mdb, t->env->meta_dbi, &k, &v, 0);
}

void ps_rev_reset(ps_txn *t)
{
    t->rev = 0;
    t->changes = 0;
    t->rev_reserved = 0;
    t->hist_n = 0;
    t->last_known = 0; /* a new LMDB txn: another process may have written */
}

void ps_rev_begin(ps_txn *t)
{
    ps_env *e = t->env;
    if (e->cache_txnid == 0 || mdb_txn_id(t->mdb) != e->cache_txnid + 1)
        return;
    t->last_known = 1;
    t->last_rev = e->cache_rev;
    t->hist_n = e->cache_hist_n;
    memcpy(t->hist, e->cache_hist, sizeof t->hist);
}

void ps_rev_committed(ps_txn *t, size_t txnid)
{
    ps_env *e = t->env;
    /* The cache is keyed by the LMDB txn id this commit used, so it is kept
     * only when the commit certainly wrote (a change or meta `revision`):
     * a commit that wrote nothing leaves its id unused, another process's
     * next commit takes it, and ours would then look current. */
    int known = t->changes || t->rev_reserved;
    if (known)
        e->cache_rev = t->rev;
    e->cache_txnid = known ? txnid : 0;
    e->cache_hist_n = t->hist_set ? 0 : t->hist_n;
    memcpy(e->cache_hist, t->hist, sizeof e->cache_hist);
}

int ps_rev_take(ps_txn *t, uint64_t *rev)
{
    if (t->rev == 0) {
        uint64_t last = t->last_rev;
        int rc = t->last_known ? PS_OK : ps_last_revision(t->mdb, t->env, &last);
        if (rc)
            return rc;
        if (last >= UINT64_MAX - 1)
            return PS_ERR_BAD_RECORD;
        t->rev = last + 1;
    }
    *rev = t->rev;
    return PS_OK;
}

int ps_change_add(ps_txn *t, int op, const char *key, size_t key_len,
                  size_t kind_len, int64_t updated_ns)
{
    uint64_t rev;
    int rc = ps_rev_take(t, &rev);
    if (rc)
        return rc;
    if (t->changes == UINT32_MAX)
        return MDB_TXN_FULL;
    char kb[PS_CHANGE_KEY];
    ps_put_be64(kb, rev);
    ps_put_be32(kb + 8, t->changes);
    size_t id_len = key_len > kind_len + 1 ? key_len - kind_len - 1 : 0;
    MDB_val k = {PS_CHANGE_KEY, kb};
    MDB_val v = {PS_CHANGE_HEAD + kind_len + id_len, NULL};
    /* From the txn's second change on, a cursor kept at the log's end
     * appends without descending again (the first: no cursor to open). */
    if (t->changes && t->chg_cur == NULL &&
        (rc = mdb_cursor_open(t->mdb, t->env->changes_dbi, &t->chg_cur)) != 0) {
        t->chg_cur = NULL;
        return rc;
    }
    rc = t->chg_cur ? mdb_cursor_put(t->chg_cur, &k, &v, MDB_RESERVE | MDB_APPEND)
                    : mdb_put(t->mdb, t->env->changes_dbi, &k, &v, MDB_RESERVE | MDB_APPEND);
    if (rc == MDB_KEYEXIST) { /* a log ahead of meta `revision`: not ours */
        v.mv_size = PS_CHANGE_HEAD + kind_len + id_len;
        rc = t->chg_cur ? mdb_cursor_put(t->chg_cur, &k, &v, MDB_RESERVE)
                        : mdb_put(t->mdb, t->env->changes_dbi, &k, &v, MDB_RESERVE);
    }
    if (rc)
        return rc;
    char *p = v.mv_data;
    p[0] = (char)op;
    p[1] = p[2] = p[3] = 0;
    ps_put_i64(p + 4, updated_ns);
    ps_put_u32(p + 12, (uint32_t)kind_len);
    memcpy(p + PS_CHANGE_HEAD, key, kind_len);
    if (id_len)
        memcpy(p + PS_CHANGE_HEAD + kind_len, key + kind_len + 1, id_len);
    t->changes++;
    return PS_OK;
}

/* Keep at least the newest keep_changes revisions and at most twice as
 * many: once the log spans keep + keep/8 revisions, everything up to
 * revision (rev - keep) goes in this txn, so the cost is paid once per
 * keep/8 commits. */
static int trim(ps_txn *t)
{
    uint64_t keep = t->env->keep_changes, rev = t->rev;
    if (rev <= keep)
        return PS_OK;
    uint64_t cutoff = rev - keep, slack = keep / 8 ? keep / 8 : 1;
    /* The oldest logged revision this process read from a committed log:
     * never too high (trims only raise it), so a skip on its say-so is
     * always right, and the cursor is only opened when a trim may be due. */
    if (t->env->log_first && rev - t->env->log_first + 1 <= keep + slack)
        return PS_OK;
    if (t->chg_cur) { /* deletes ahead: no other cursor of the log to fix up */
        mdb_cursor_close(t->chg_cur);
        t->chg_cur = NULL;
    }
    MDB_cursor *cur;
    int rc = mdb_cursor_open(t->mdb, t->env->changes_dbi, &cur);
    if (rc)
        return rc;
    MDB_val k, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    if (rc == PS_OK && k.mv_size == PS_CHANGE_KEY) {
        uint64_t first = ps_get_be64(k.mv_data);
        t->env->log_first = first;
        if (first > cutoff || rev - first + 1 <= keep + slack) {
            mdb_cursor_close(cur);
            return PS_OK;
        }
    }
    int deleted = 0;
    while (rc == PS_OK && k.mv_size == PS_CHANGE_KEY &&
           ps_get_be64(k.mv_data) <= cutoff) {
        rc = mdb_cursor_del(cur, 0);
        if (rc)
            break;
        deleted = 1;
        rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
        if (rc != PS_OK)
            rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    }
    mdb_cursor_close(cur);
    if (rc != PS_OK && rc != MDB_NOTFOUND)
        return rc;
    if (!deleted)
        return PS_OK;
    uint64_t old;
    rc = ps_meta_u64(t->mdb, t->env->meta_dbi, PS_META_COMPACTED, &old);
    if (!rc && cutoff > old)
        rc = meta_put_u64(t, PS_META_COMPACTED, cutoff);
    return rc;
}

int ps_rev_finish(ps_txn *t)
{
    if (t->changes)
        return trim(t); /* the log carries the revision */
    if (t->rev_reserved) /* a revision without a change: meta carries it */
        return meta_put_u64(t, PS_META_REVISION, t->rev);
    return PS_OK; /* changed nothing: no revision */
}

int ps_revision(ps_env *e, uint64_t *revision)
{
    if (e == NULL || revision == NULL)
        return PS_ERR_INVALID_ARG;
    if (ps_getpid() != e->pid)
        return PS_ERR_FORKED;
    MDB_txn *txn = NULL;
    int rc = ps_read_begin(e, &txn);
    if (rc)
        return rc;
    rc = ps_last_revision(txn, e, revision);
    ps_read_end(e, txn);
    return rc;
}

int ps_txn_revision(ps_txn *t, uint64_t *revision)
{
    int rc = ps_txn_usable(t, 0);
    if (rc)
        return rc;
    if (revision == NULL)
        return PS_ERR_INVALID_ARG;
    return ps_txn_note(t, ps_last_revision(t->mdb, t->env, revision));
}

int ps_txn_pending(ps_txn *t, uint64_t *revision)
{
    if (t == NULL || revision == NULL)
        return PS_ERR_INVALID_ARG;
    *revision = (t->changes || t->rev_reserved) ? t->rev : 0;
    return PS_OK;
}

int ps_env_set_keep_changes(ps_env *e, uint64_t keep)
{
    if (e == NULL || keep == 0)
        return PS_ERR_INVALID_ARG;
    e->keep_changes = keep;
    return PS_OK;
}

static int name_in(const char *kind, size_t len, const char *kinds,
                   const uint32_t *lens, size_t n)
{
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        if (lens[i] == len && memcmp(kinds + off, kind, len) == 0)
            return 1;
        off += lens[i];
    }
    return 0;
}

/* Neither filter: every change; else resource changes of `kinds` and
 * appends to `streams` (an append's "kind" field holds its stream). */
static int change_wanted(const char *p, const char *kinds, const uint32_t *kind_lens,
                         size_t nkinds, const char *streams,
                         const uint32_t *stream_lens, size_t nstreams)
{
    if (nkinds == 0 && nstreams == 0)
        return 1;
    const char *name = p + PS_CHANGE_HEAD;
    size_t len = ps_get_u32(p + 12);
    if ((unsigned char)p[0] == PS_CHANGE_APPEND)
        return nstreams && name_in(name, len, streams, stream_lens, nstreams);
    return nkinds && name_in(name, len, kinds, kind_lens, nkinds);
}

int ps_changes(ps_txn *t, uint64_t after_rev, uint32_t after_idx,
               const char *kinds, const uint32_t *kind_lens, size_t nkinds,
               const char *streams, const uint32_t *stream_lens, size_t nstreams,
               uint64_t limit, ps_buf *out, uint64_t *next_rev,
               uint32_t *next_idx, uint64_t *compacted)
{
    int rc = ps_txn_usable(t, 0);
    if (rc)
        return rc;
    if (out == NULL || next_rev == NULL || next_idx == NULL ||
        compacted == NULL || (nkinds && (kinds == NULL || kind_lens == NULL)) ||
        (nstreams && (streams == NULL || stream_lens == NULL)))
        return PS_ERR_INVALID_ARG;
    uint64_t comp, head;
    rc = ps_meta_u64(t->mdb, t->env->meta_dbi, PS_META_COMPACTED, &comp);
    if (!rc)
        rc = ps_last_revision(t->mdb, t->env, &head);
    if (rc)
        return ps_txn_note(t, rc);
    *compacted = comp;
    if (after_rev < comp || (after_rev == comp && comp && after_idx != UINT32_MAX))
        return PS_ERR_COMPACTED;
    *next_rev = after_rev > head ? after_rev : head;
    *next_idx = UINT32_MAX;
    if (after_idx == UINT32_MAX && after_rev == UINT64_MAX)
        return PS_OK;
    char start[PS_CHANGE_KEY];
    ps_put_be64(start, after_idx == UINT32_MAX ? after_rev + 1 : after_rev);
    ps_put_be32(start + 8, after_idx == UINT32_MAX ? 0 : after_idx + 1);
    MDB_cursor *cur;
    rc = mdb_cursor_open(t->mdb, t->env->changes_dbi, &cur);
    if (rc)
        return ps_txn_note(t, rc);
    MDB_val k = {PS_CHANGE_KEY, start}, v;
    uint64_t n = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == PS_OK;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const char *p = v.mv_data;
        if (k.mv_size != PS_CHANGE_KEY || v.mv_size < PS_CHANGE_HEAD ||
            v.mv_size > UINT32_MAX ||
            ps_get_u32(p + 12) > v.mv_size - PS_CHANGE_HEAD) {
            rc = PS_ERR_BAD_RECORD;
            break;
        }
        uint64_t r = ps_get_be64(k.mv_data);
        uint32_t i = ps_get_be32((const char *)k.mv_data + 8);
        if (change_wanted(p, kinds, kind_lens, nkinds, streams, stream_lens,
                          nstreams)) {
            rc = ps_buf_reserve(out, 16 + v.mv_size);
            if (rc)
                break;
            char *w = out->data + out->len;
            ps_put_u64(w, r);
            ps_put_u32(w + 8, i);
            ps_put_u32(w + 12, (uint32_t)v.mv_size);
            memcpy(w + 16, p, v.mv_size);
            out->len += 16 + v.mv_size;
            out->count++;
            n++;
        }
        if (limit && n == limit) {
            *next_rev = r;
            *next_idx = i;
            break;
        }
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        rc = PS_OK;
    return ps_txn_note(t, rc);
}
