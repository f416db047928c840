/* ps_ids.c -- listing the ids of a kind without their payloads.
 *
 * Collection.ids() / Store.list_ids(): only the key bytes are copied out;
 * the values are never touched (LMDB hands the cursor a pointer into the
 * map, which is not read).  Also ps_cursor_from, the "first key at or
 * after" positioning this listing shares with ps_history_ids and
 * ps_scan_kind. */
#include <string.h>

#include "ps_internal.h"

static int starts_with(const MDB_val *k, const char *p, size_t len)
{
    return k->mv_size >= len && memcmp(k->mv_data, p, len) == 0;
}

int ps_cursor_from(ps_txn *t, MDB_dbi dbi, const char *start,
                   size_t start_len, int after, MDB_cursor **cur, MDB_val *k,
                   MDB_val *v)
{
    int rc = mdb_cursor_open(t->mdb, dbi, cur);
    if (rc) {
        *cur = NULL;
        return rc;
    }
    k->mv_size = start_len;
    k->mv_data = (void *)start;
    rc = mdb_cursor_get(*cur, k, v, MDB_SET_RANGE);
    if (rc == PS_OK && after && k->mv_size == start_len &&
        memcmp(k->mv_data, start, start_len) == 0)
        rc = mdb_cursor_get(*cur, k, v, MDB_NEXT); /* strictly after */
    return rc;
}

int ps_list_ids(ps_txn *t, const char *kind, size_t kind_len,
                const char *after, size_t after_len,
                const char *prefix, size_t prefix_len, uint64_t limit,
                ps_buf *out)
{
    int rc = ps_txn_usable(t, 0);
    if (rc)
        return rc;
    if (out == NULL || (after == NULL && after_len) ||
        (prefix == NULL && prefix_len))
        return PS_ERR_INVALID_ARG;
    rc = ps_kind_check(kind, kind_len);
    if (rc)
        return rc;
    /* match: "<kind>/<prefix>"; every listed key starts with it. */
    char match[PS_MAX_KEY], start[PS_MAX_KEY];
    size_t match_len, start_len, base = kind_len + 1;
    if (prefix_len) {
        rc = ps_key_build(kind, kind_len, prefix, prefix_len, match, &match_len);
        if (rc)
            return rc;
    } else {
        memcpy(match, kind, kind_len);
        match[kind_len] = '/';
        match_len = base;
    }
    /* Start at the later of "<kind>/<prefix>" (inclusive) and
     * "<kind>/<after>" (exclusive). */
    int skip_equal = 0;
    memcpy(start, match, match_len);
    start_len = match_len;
    if (after_len) {
        char a[PS_MAX_KEY];
        size_t a_len;
        rc = ps_key_build(kind, kind_len, after, after_len, a, &a_len);
        if (rc)
            return rc;
        size_t n = a_len < match_len ? a_len : match_len;
        int cmp = memcmp(a, match, n);
        if (cmp > 0 || (cmp == 0 && a_len >= match_len)) {
            memcpy(start, a, a_len);
            start_len = a_len;
            skip_equal = 1;
        }
    }
    MDB_cursor *cur;
    MDB_val k, v;
    rc = ps_cursor_from(t, t->env->res_dbi, start, start_len, skip_equal, &cur,
                        &k, &v);
    if (cur == NULL)
        return ps_txn_note(t, rc);
    uint64_t n = 0;
    while (rc == PS_OK && starts_with(&k, match, match_len) &&
           (limit == 0 || n < limit)) {
        rc = ps_buf_add(out, (const char *)k.mv_data + base, k.mv_size - base);
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
