/* ps_raw.c -- listing stored values as they are, for verification.
 *
 * ps_list stops at a record whose header is damaged and cannot say which
 * one it was; ps_list_raw hands out every key of a kind with its value
 * unchecked, so `pystore verify` can name each damaged record and go on. */
#include <string.h>

#include "ps_internal.h"

int ps_list_raw(ps_txn *t, const char *kind, size_t kind_len,
                const char *after, size_t after_len, uint64_t limit,
                ps_buf *out)
{
    int rc = ps_txn_usable(t, 0);
    if (rc)
        return rc;
    if (out == NULL || (after == NULL && after_len))
        return PS_ERR_INVALID_ARG;
    rc = ps_kind_check(kind, kind_len);
    if (rc)
        return rc;
    char start[PS_MAX_KEY];
    size_t prefix_len = kind_len + 1, start_len = prefix_len;
    memcpy(start, kind, kind_len);
    start[kind_len] = '/';
    if (after_len) {
        rc = ps_key_build(kind, kind_len, after, after_len, start, &start_len);
        if (rc)
            return rc;
    }
    MDB_cursor *cur;
    rc = mdb_cursor_open(t->mdb, t->env->res_dbi, &cur);
    if (rc)
        return ps_txn_note(t, rc);
    MDB_val k = {start_len, start}, v;
    uint64_t n = 0;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (rc == PS_OK && after_len && k.mv_size == start_len &&
        memcmp(k.mv_data, start, start_len) == 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT); /* strictly after */
    while (rc == PS_OK && k.mv_size >= prefix_len &&
           memcmp(k.mv_data, start, prefix_len) == 0 &&
           (limit == 0 || n < limit)) {
        size_t id_len = k.mv_size - prefix_len;
        if (v.mv_size > UINT32_MAX) {
            rc = PS_ERR_VALUE_TOO_LARGE;
            break;
        }
        rc = ps_buf_reserve(out, 8 + id_len + v.mv_size);
        if (rc)
            break;
        char *w = out->data + out->len;
        ps_put_u32(w, (uint32_t)id_len);
        ps_put_u32(w + 4, (uint32_t)v.mv_size);
        memcpy(w + 8, (const char *)k.mv_data + prefix_len, id_len);
        if (v.mv_size)
            memcpy(w + 8 + id_len, v.mv_data, v.mv_size);
        out->len += 8 + id_len + v.mv_size;
        out->count++;
        n++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        rc = PS_OK;
    return ps_txn_note(t, rc);
}
