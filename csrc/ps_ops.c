/* ps_ops.c -- resource operations: put, get, delete, list, count, kinds. */
#include <string.h>

#include "ps_internal.h"

/* ---- raw operations (also replayed by ps_txn_recover) ---------------- */

/* The txn's cursor of the resources db (opened at its first use). */
static int res_cursor(ps_txn *t, MDB_cursor **cur)
{
    if (t->res_cur == NULL) {
        int rc = mdb_cursor_open(t->mdb, t->env->res_dbi, &t->res_cur);
        if (rc) {
            t->res_cur = NULL;
            return rc;
        }
    }
    *cur = t->res_cur;
    return PS_OK;
}

/* The stored record of a key about to be written or deleted, read through
 * the txn's cursor of the resources db, which the write then uses
 * (positioned on the record: no second descent).  *old is the stored
 * value, {0, NULL} when absent.  LMDB moves the rest of a page by the
 * stored size, so a damaged size stops the write here, before anything
 * reads the old record.  The cursor is tracked by LMDB: writes to other
 * dbs in between (history, index entries) neither move it nor spill the
 * page *old points into, and other cursors' writes to the resources db
 * keep it valid (it is positioned again by every call). */
static int old_record(ps_txn *t, const char *key, size_t key_len,
                      MDB_cursor **cur, MDB_val *old)
{
    old->mv_size = 0;
    old->mv_data = NULL;
    int rc = res_cursor(t, cur);
    if (rc)
        return rc;
    MDB_val k = {key_len, (void *)key};
    rc = mdb_cursor_get(*cur, &k, old, MDB_SET_KEY);
    if (rc == MDB_NOTFOUND) {
        old->mv_size = 0;
        old->mv_data = NULL;
        return PS_OK;
    }
    return rc ? rc : ps_value_check(t->env->sh, old);
}

/* The stored record (`stored`, from old_record) when a conditional write or
 * the kind's history needs it (*old NULL when absent).  Checks `expected`
 * if asked to. */
static int prior_version(ps_txn *t, const MDB_val *stored, unsigned flags,
                         uint64_t expected, int want, const char **old,
                         size_t *old_len)
{
    *old = NULL;
    *old_len = 0;
    if (!want && !(flags & PS_PUT_IF_REVISION))
        return PS_OK;
    if (stored->mv_data == NULL)
        ; /* absent */
    else if (stored->mv_size < PS_HEADER_SIZE ||
             ((char *)stored->mv_data)[0] != PS_FORMAT_VERSION) {
        /* a damaged header: no revision to compare; for the history it is
         * no version to keep, so it can still be replaced or deleted */
        if (flags & PS_PUT_IF_REVISION)
            return PS_ERR_BAD_RECORD;
        return PS_OK;
    } else {
        *old = stored->mv_data;
        *old_len = stored->mv_size;
    }
    if (flags & PS_PUT_IF_REVISION) {
        uint64_t actual = *old ? ps_record_rev(*old) : 0;
        if (actual != expected) {
            t->conflict = actual;
            return PS_ERR_CONFLICT;
        }
    }
    return PS_OK;
}

static size_t key_kind_len(const char *key, size_t key_len)
{
    const char *slash = memchr(key, '/', key_len);
    return slash ? (size_t)(slash - key) : key_len;
}

/* A put that needs nothing of the stored record (unconditional, the kind
 * neither versioned nor indexed): LMDB's put looks the key up itself, and
 * a stored record it finds comes back (MDB_KEYEXIST) with the cursor on
 * it, checked as old_record checks it, then replaced where it stands
 * (MDB_CURRENT: no second search).  Reading it first would descend twice
 * for a new key that goes after the last of its page (a run of new ids):
 * the read's cursor ends on the next page, so the put searches again.
 * *v: the reserved space. */
static int put_blind(ps_txn *t, const char *key, size_t key_len, size_t size,
                     unsigned flags, MDB_val *v)
{
    MDB_cursor *cur;
    int rc = res_cursor(t, &cur);
    if (rc)
        return rc;
    MDB_val k = {key_len, (void *)key};
    v->mv_size = size;
    v->mv_data = NULL;
    rc = mdb_cursor_put(cur, &k, v, MDB_RESERVE | MDB_NOOVERWRITE);
    if (rc != MDB_KEYEXIST)
        return rc;
    rc = ps_value_check(t->env->sh, v); /* *v: the stored value */
    if (rc)
        return rc;
    if (flags & PS_PUT_NOOVERWRITE)
        return MDB_KEYEXIST;
    v->mv_size = size;
    v->mv_data = NULL;
    /* (LMDB 0.9 takes MDB_CURRENT alone as "no search"; with MDB_RESERVE
     * it checks the cursor's own node first and finds it there) */
    return mdb_cursor_put(cur, &k, v, MDB_RESERVE | MDB_CURRENT);
}

int ps_apply_put(ps_txn *t, const char *key, size_t key_len,
                 const char *payload, size_t payload_len, int64_t updated_ns,
                 unsigned flags, uint64_t expected)
{
    size_t kind_len = key_kind_len(key, key_len);
    uint64_t keep = 0, rev;
    int rc = PS_OK, indexed = 0;
    if (!(flags & PS_PUT_NOOVERWRITE))
        rc = ps_hist_keep_of(t, key, kind_len, &keep);
    if (!rc)
        rc = ps_idx_kind_indexed(t, key, key_len, &indexed);
    if (rc)
        return rc;
    MDB_val v;
    if (!keep && !indexed && !(flags & PS_PUT_IF_REVISION)) {
        rc = ps_rev_take(t, &rev);
        if (!rc)
            rc = put_blind(t, key, key_len, PS_HEADER_SIZE + payload_len, flags, &v);
    } else {
        MDB_cursor *cur = NULL;
        MDB_val stored;
        rc = old_record(t, key, key_len, &cur, &stored);
        const char *old = NULL;
        size_t old_len = 0;
        if (!rc)
            rc = prior_version(t, &stored, flags, expected, keep > 0, &old, &old_len);
        /* index entries: checks first, a violation writes nothing; the
         * stored record goes along (read above, nothing written since) */
        if (!rc && indexed)
            rc = (flags & PS_PUT_NOOVERWRITE)
                     ? ps_idx_on_create(t, key, key_len, payload, payload_len, &stored)
                     : ps_idx_on_put(t, key, key_len, payload, payload_len, &stored);
        if (!rc)
            rc = ps_rev_take(t, &rev);
        if (!rc && old && keep)
            rc = ps_hist_push(t, key, key_len, old, old_len, keep);
        if (!rc) {
            MDB_val k = {key_len, (void *)key};
            v.mv_size = PS_HEADER_SIZE + payload_len;
            v.mv_data = NULL;
            unsigned mf = MDB_RESERVE;
            if (flags & PS_PUT_NOOVERWRITE)
                mf |= MDB_NOOVERWRITE;
            /* on the record already: LMDB finds it on the cursor's page */
            rc = mdb_cursor_put(cur, &k, &v, mf);
        }
    }
    if (rc) /* (on MDB_KEYEXIST v holds the old value: not ours) */
        return rc;
    char *p = v.mv_data;
    ps_header_write(p, updated_ns, rev);
    if (payload_len)
        memcpy(p + PS_HEADER_SIZE, payload, payload_len);
    return ps_change_add(t, PS_CHANGE_PUT, key, key_len, kind_len, updated_ns);
}

int ps_apply_del(ps_txn *t, const char *key, size_t key_len, unsigned flags,
                 uint64_t expected, int *existed)
{
    size_t kind_len = key_kind_len(key, key_len);
    uint64_t keep = 0;
    *existed = 0;
    MDB_cursor *cur = NULL;
    MDB_val stored;
    int rc = old_record(t, key, key_len, &cur, &stored);
    if (!rc)
        rc = ps_hist_keep_of(t, key, kind_len, &keep);
    const char *old = NULL;
    size_t old_len = 0;
    if (!rc)
        rc = prior_version(t, &stored, flags, expected, keep > 0, &old, &old_len);
    if (!rc && old && keep)
        rc = ps_hist_push(t, key, key_len, old, old_len, keep);
    if (!rc && t->env->has_aux)
        rc = ps_idx_on_del(t, key, key_len, &stored);
    /* the cursor stands on the record: deleted without a second descent */
    if (!rc && stored.mv_data != NULL) {
        rc = mdb_cursor_del(cur, 0);
        if (!rc)
            *existed = 1;
    }
    if (rc || !*existed)
        return rc;
    return ps_change_add(t, PS_CHANGE_DELETE, key, key_len, kind_len, ps_now_ns());
}

static int has_prefix(const MDB_val *k, const char *prefix, size_t len)
{
    return k->mv_size >= len && memcmp(k->mv_data, prefix, len) == 0;
}

int ps_apply_del_prefix(ps_txn *t, const char *prefix, size_t prefix_len,
                        int change_op, uint64_t *deleted)
{
    MDB_cursor *cur;
    *deleted = 0;
    if (t->env->has_aux) {
        int rc = ps_idx_on_del_prefix(t, prefix, prefix_len);
        if (rc)
            return rc;
    }
    if (t->res_cur) { /* many deletes: no other cursor of the db to fix up */
        mdb_cursor_close(t->res_cur);
        t->res_cur = NULL;
    }
    int rc = mdb_cursor_open(t->mdb, t->env->res_dbi, &cur);
    if (rc)
        return rc;
    MDB_val k = {prefix_len, (void *)prefix}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == PS_OK && has_prefix(&k, prefix, prefix_len)) {
        rc = ps_value_check(t->env->sh, &v);
        if (rc)
            break;
        rc = mdb_cursor_del(cur, 0);
        if (rc)
            break;
        (*deleted)++;
        /* After a delete the cursor stands on the next record. */
        rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
        if (rc != PS_OK) {
            k.mv_size = prefix_len;
            k.mv_data = (void *)prefix;
            rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        }
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND && rc != PS_OK)
        return rc;
    /* A kind's kept versions go with it (a prefix of "<kind>/" only). */
    rc = ps_hist_drop_prefix(t, prefix, prefix_len);
    /* one change for the whole delete: the kind, or the kind and the prefix */
    if (rc == PS_OK && *deleted)
        rc = ps_change_add(t, change_op, prefix, prefix_len, key_kind_len(prefix, prefix_len),
                           ps_now_ns());
    return rc;
}

int ps_apply_meta_put(ps_txn *t, const char *key, size_t key_len,
                      const char *val, size_t val_len)
{
    MDB_val k = {key_len, (void *)key}, v = {val_len, (void *)val};
    /* "index.generation", "index.next_id", "index/...": the next txn of
     * this handle reads the generation again (ps_idx_ready) */
    if (key_len >= 5 && memcmp(key, "index", 5) == 0)
        t->idx_touched = 1;
    /* "history/<kind>": the keep counts this txn cached are stale (a
     * replay rewrites the count after the puts logged before it, which
     * cached the old one) */
    if (key_len >= sizeof PS_META_HISTORY - 1 &&
        memcmp(key, PS_META_HISTORY, sizeof PS_META_HISTORY - 1) == 0)
        t->hist_n = 0;
    return mdb_put(t->mdb, t->env->meta_dbi, &k, &v, 0);
}

/* ---- public operations ------------------------------------------------ */

int ps_put_if(ps_txn *t, const char *kind, size_t kind_len, const char *id,
              size_t id_len, const char *payload, size_t payload_len,
              int64_t updated_ns, unsigned flags, uint64_t expected,
              uint64_t *actual)
{
    int rc = ps_txn_usable(t, 1);
    if (rc)
        return rc;
    if (flags & ~(unsigned)(PS_PUT_NOOVERWRITE | PS_PUT_BORROW | PS_PUT_IF_REVISION))
        return PS_ERR_INVALID_ARG;
    if (payload_len > PS_MAX_PAYLOAD)
        return PS_ERR_VALUE_TOO_LARGE;
    if (payload == NULL && payload_len)
        return PS_ERR_INVALID_ARG;
    char key[PS_MAX_KEY];
    size_t key_len;
    rc = ps_key_build(kind, kind_len, id, id_len, key, &key_len);
    if (rc)
        return rc;
    return ps_put_key(t, key, key_len, payload, payload_len, updated_ns, flags,
                      expected, actual);
}

int ps_put_key(ps_txn *t, const char *key, size_t key_len, const char *payload,
               size_t payload_len, int64_t updated_ns, unsigned flags,
               uint64_t expected, uint64_t *actual)
{
    int rc;
    while ((rc = ps_apply_put(t, key, key_len, payload, payload_len,
                              updated_ns, flags, expected)) == MDB_MAP_FULL) {
        rc = ps_txn_recover(t);
        if (rc)
            return rc;
    }
    if (rc == PS_ERR_CONFLICT && actual)
        *actual = t->conflict;
    if (rc == PS_OK)
        rc = ps_txn_log_arg(t, PS_OP_PUT, key, key_len, payload, payload_len,
                            updated_ns, flags, expected);
    return ps_txn_note(t, rc);
}

int ps_put(ps_txn *t, const char *kind, size_t kind_len, const char *id,
           size_t id_len, const char *payload, size_t payload_len,
           int64_t updated_ns, unsigned flags)
{
    if (flags & PS_PUT_IF_REVISION)
        return PS_ERR_INVALID_ARG; /* that needs ps_put_if */
    return ps_put_if(t, kind, kind_len, id, id_len, payload, payload_len,
                     updated_ns, flags, 0, NULL);
}

int ps_get_rev(ps_txn *t, const char *kind, size_t kind_len, const char *id,
               size_t id_len, const char **payload, size_t *payload_len,
               int64_t *updated_ns, uint64_t *revision)
{
    int rc = ps_txn_usable(t, 0);
    if (rc)
        return rc;
    if (payload == NULL || payload_len == NULL || updated_ns == NULL)
        return PS_ERR_INVALID_ARG;
    char key[PS_MAX_KEY];
    size_t key_len;
    rc = ps_key_build(kind, kind_len, id, id_len, key, &key_len);
    if (rc)
        return rc;
    MDB_val k = {key_len, key}, v;
    rc = mdb_get(t->mdb, t->env->res_dbi, &k, &v);
    if (rc)
        return ps_txn_note(t, rc);
    rc = ps_value_check(t->env->sh, &v);
    if (rc)
        return rc;
    const char *p = v.mv_data;
    if (v.mv_size < PS_HEADER_SIZE || p[0] != PS_FORMAT_VERSION)
        return PS_ERR_BAD_RECORD;
    *payload = p + PS_HEADER_SIZE;
    *payload_len = v.mv_size - PS_HEADER_SIZE;
    *updated_ns = ps_get_i64(p + 4);
    if (revision)
        *revision = ps_record_rev(p);
    return PS_OK;
}

int ps_get(ps_txn *t, const char *kind, size_t kind_len, const char *id,
           size_t id_len, const char **payload, size_t *payload_len,
           int64_t *updated_ns)
{
    return ps_get_rev(t, kind, kind_len, id, id_len, payload, payload_len,
                      updated_ns, NULL);
}

int ps_del_if(ps_txn *t, const char *kind, size_t kind_len, const char *id,
              size_t id_len, int if_revision, uint64_t expected,
              uint64_t *actual, int *existed)
{
    int rc = ps_txn_usable(t, 1);
    if (rc)
        return rc;
    if (existed == NULL)
        return PS_ERR_INVALID_ARG;
    char key[PS_MAX_KEY];
    size_t key_len;
    rc = ps_key_build(kind, kind_len, id, id_len, key, &key_len);
    if (rc)
        return rc;
    unsigned flags = if_revision ? PS_PUT_IF_REVISION : 0;
    while ((rc = ps_apply_del(t, key, key_len, flags, expected, existed)) == MDB_MAP_FULL) {
        rc = ps_txn_recover(t);
        if (rc)
            return rc;
    }
    if (rc == PS_ERR_CONFLICT && actual)
        *actual = t->conflict;
    if (rc == PS_OK && *existed)
        rc = ps_txn_log_arg(t, PS_OP_DEL, key, key_len, NULL, 0, 0, flags, expected);
    return ps_txn_note(t, rc);
}

int ps_del(ps_txn *t, const char *kind, size_t kind_len, const char *id,
           size_t id_len, int *existed)
{
    return ps_del_if(t, kind, kind_len, id, id_len, 0, 0, NULL, existed);
}

/* Writes "<kind>/" into out (PS_MAX_KEY bytes). */
int ps_kind_prefix(const char *kind, size_t kind_len, char *out,
                       size_t *out_len)
{
    int rc = ps_kind_check(kind, kind_len);
    if (rc)
        return rc;
    memcpy(out, kind, kind_len);
    out[kind_len] = '/';
    *out_len = kind_len + 1;
    return PS_OK;
}

/* Delete every record under `prefix` (of ps_del_kind or ps_del_prefix:
 * change and log ops), retried after a full map, then logged. */
static int del_under(ps_txn *t, const char *prefix, size_t prefix_len,
                     int change_op, int log_op, uint64_t *deleted)
{
    int rc;
    while ((rc = ps_apply_del_prefix(t, prefix, prefix_len, change_op,
                                     deleted)) == MDB_MAP_FULL) {
        rc = ps_txn_recover(t);
        if (rc)
            return rc;
    }
    if (rc == PS_OK) /* even with nothing deleted: kept versions may have gone */
        rc = ps_txn_log(t, log_op, prefix, prefix_len, NULL, 0, 0, 0);
    return ps_txn_note(t, rc);
}

int ps_del_kind(ps_txn *t, const char *kind, size_t kind_len,
                uint64_t *deleted)
{
    int rc = ps_txn_usable(t, 1);
    if (rc)
        return rc;
    if (deleted == NULL)
        return PS_ERR_INVALID_ARG;
    char prefix[PS_MAX_KEY];
    size_t prefix_len;
    rc = ps_kind_prefix(kind, kind_len, prefix, &prefix_len);
    if (rc)
        return rc;
    return del_under(t, prefix, prefix_len, PS_CHANGE_DELETE_KIND, PS_OP_DEL_KIND,
                     deleted);
}

int ps_del_prefix(ps_txn *t, const char *kind, size_t kind_len,
                  const char *id_prefix, size_t id_prefix_len, uint64_t *deleted)
{
    int rc = ps_txn_usable(t, 1);
    if (rc)
        return rc;
    if (deleted == NULL || (id_prefix == NULL && id_prefix_len))
        return PS_ERR_INVALID_ARG;
    char prefix[PS_MAX_KEY];
    size_t prefix_len;
    rc = ps_kind_prefix(kind, kind_len, prefix, &prefix_len);
    if (rc)
        return rc;
    if (id_prefix_len > PS_MAX_KEY - prefix_len)
        return PS_ERR_KEY_TOO_LONG;
    if (id_prefix_len && memchr(id_prefix, '\0', id_prefix_len))
        return PS_ERR_ID_NUL;
    if (id_prefix_len)
        memcpy(prefix + prefix_len, id_prefix, id_prefix_len);
    prefix_len += id_prefix_len;
    return del_under(t, prefix, prefix_len, PS_CHANGE_DELETE_PREFIX,
                     PS_OP_DEL_PREFIX, deleted);
}

int ps_count(ps_txn *t, const char *kind, size_t kind_len, uint64_t *count)
{
    int rc = ps_txn_usable(t, 0);
    if (rc)
        return rc;
    if (count == NULL)
        return PS_ERR_INVALID_ARG;
    char prefix[PS_MAX_KEY];
    size_t prefix_len;
    rc = ps_kind_prefix(kind, kind_len, prefix, &prefix_len);
    if (rc)
        return rc;
    MDB_cursor *cur;
    rc = mdb_cursor_open(t->mdb, t->env->res_dbi, &cur);
    if (rc)
        return ps_txn_note(t, rc);
    uint64_t n = 0;
    MDB_val k = {prefix_len, prefix}, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         rc == PS_OK && has_prefix(&k, prefix, prefix_len);
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        n++;
    mdb_cursor_close(cur);
    if (rc != PS_OK && rc != MDB_NOTFOUND)
        return ps_txn_note(t, rc);
    *count = n;
    return PS_OK;
}

int ps_scan_kind(ps_txn *t, const char *kind, size_t kind_len,
                 const char *after, size_t after_len, uint64_t limit,
                 ps_emit_fn emit, void *ctx)
{
    return ps_scan_kind_opts(t, kind, kind_len, after, after_len, limit, 0,
                             emit, ctx);
}

int ps_scan_kind_opts(ps_txn *t, const char *kind, size_t kind_len,
                      const char *after, size_t after_len, uint64_t limit,
                      unsigned opts, ps_emit_fn emit, void *ctx)
{
    int rc = ps_txn_usable(t, 0);
    if (rc)
        return rc;
    if (after == NULL && after_len)
        return PS_ERR_INVALID_ARG;
    char start[PS_MAX_KEY];
    size_t prefix_len, start_len;
    rc = ps_kind_prefix(kind, kind_len, start, &prefix_len);
    if (rc)
        return rc;
    start_len = prefix_len;
    if (after_len) {
        rc = ps_key_build(kind, kind_len, after, after_len, start, &start_len);
        if (rc)
            return rc;
    }
    MDB_cursor *cur;
    MDB_val k, v;
    rc = ps_cursor_from(t, t->env->res_dbi, start, start_len, after_len != 0,
                        &cur, &k, &v);
    if (cur == NULL)
        return ps_txn_note(t, rc);
    uint64_t n = 0;
    while (rc == PS_OK && has_prefix(&k, start, prefix_len) &&
           (limit == 0 || n < limit)) {
        /* Never hand out a value whose stored size runs off its pages. */
        rc = ps_value_check(t->env->sh, &v);
        if (rc && (opts & PS_SCAN_DAMAGED)) {
            v.mv_data = NULL; /* the emitter names the record, reads nothing */
            rc = PS_OK;
        }
        if (rc)
            break;
        rc = emit(ctx, &k, prefix_len, &v);
        if (rc)
            break;
        n++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        rc = PS_OK;
    return ps_txn_note(t, rc);
}

int ps_emit_record(void *ctx, const MDB_val *k, size_t prefix_len,
                       const MDB_val *v)
{
    ps_buf *out = ctx;
    const char *p = v->mv_data;
    if (v->mv_size < PS_HEADER_SIZE || p[0] != PS_FORMAT_VERSION)
        return PS_ERR_BAD_RECORD;
    size_t id_len = k->mv_size - prefix_len;
    size_t plen = v->mv_size - PS_HEADER_SIZE;
    int rc = ps_buf_reserve(out, 24 + id_len + plen);
    if (rc)
        return rc;
    char *w = out->data + out->len;
    ps_put_u32(w, (uint32_t)id_len);
    ps_put_u32(w + 4, (uint32_t)plen);
    memcpy(w + 8, p + 4, 16); /* updated_ns and revision, little-endian */
    memcpy(w + 24, (const char *)k->mv_data + prefix_len, id_len);
    memcpy(w + 24 + id_len, p + PS_HEADER_SIZE, plen);
    out->len += 24 + id_len + plen;
    out->count++;
    return PS_OK;
}

int ps_list(ps_txn *t, const char *kind, size_t kind_len, const char *after,
            size_t after_len, uint64_t limit, ps_buf *out)
{
    if (out == NULL)
        return PS_ERR_INVALID_ARG;
    return ps_scan_kind(t, kind, kind_len, after, after_len, limit,
                        ps_emit_record, out);
}

int ps_meta_get(ps_txn *t, const char *key, size_t key_len, const char **val,
                size_t *val_len)
{
    int rc = ps_txn_usable(t, 0);
    if (rc)
        return rc;
    if (key == NULL || key_len == 0 || key_len > PS_MAX_KEY || val == NULL ||
        val_len == NULL)
        return PS_ERR_INVALID_ARG;
    MDB_val k = {key_len, (void *)key}, v;
    rc = mdb_get(t->mdb, t->env->meta_dbi, &k, &v);
    if (rc)
        return ps_txn_note(t, rc);
    rc = ps_value_check(t->env->sh, &v);
    if (rc)
        return rc;
    *val = v.mv_data;
    *val_len = v.mv_size;
    return PS_OK;
}

int ps_meta_put(ps_txn *t, const char *key, size_t key_len, const char *val,
                size_t val_len)
{
    int rc = ps_txn_usable(t, 1);
    if (rc)
        return rc;
    if (key == NULL || key_len == 0 || key_len > PS_MAX_KEY ||
        (val == NULL && val_len) || val_len > PS_MAX_PAYLOAD)
        return PS_ERR_INVALID_ARG;
    while ((rc = ps_apply_meta_put(t, key, key_len, val, val_len)) == MDB_MAP_FULL) {
        rc = ps_txn_recover(t);
        if (rc)
            return rc;
    }
    if (rc == PS_OK)
        rc = ps_txn_log(t, PS_OP_META_PUT, key, key_len, val, val_len, 0, 0);
    return ps_txn_note(t, rc);
}
