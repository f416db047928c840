/* ps_raw.c -- listing stored values as they are, for verification.
 *
 * ps_list stops at a record whose header is damaged and cannot say which
 * one it was; ps_list_raw hands out every key of a kind with its value
 * unchecked, so `pystore verify` can name each damaged record and go on. */
#include <string.h>

#include "ps_internal.h"

static int emit_raw(void *ctx, const MDB_val *k, size_t prefix_len,
                    const MDB_val *v)
{
    ps_buf *out = ctx;
    size_t id_len = k->mv_size - prefix_len;
    if (v->mv_data == NULL) {
        /* damaged size (PS_SCAN_DAMAGED): the id, value_len PS_RAW_DAMAGED */
        int rc = ps_buf_reserve(out, 8 + id_len);
        if (rc)
            return rc;
        char *w = out->data + out->len;
        ps_put_u32(w, (uint32_t)id_len);
        ps_put_u32(w + 4, PS_RAW_DAMAGED);
        memcpy(w + 8, (const char *)k->mv_data + prefix_len, id_len);
        out->len += 8 + id_len;
        out->count++;
        return PS_OK;
    }
    if (v->mv_size >= PS_RAW_DAMAGED)
        return PS_ERR_VALUE_TOO_LARGE;
    int rc = ps_buf_reserve(out, 8 + id_len + v->mv_size);
    if (rc)
        return rc;
    char *w = out->data + out->len;
    ps_put_u32(w, (uint32_t)id_len);
    ps_put_u32(w + 4, (uint32_t)v->mv_size);
    memcpy(w + 8, (const char *)k->mv_data + prefix_len, id_len);
    if (v->mv_size)
        memcpy(w + 8 + id_len, v->mv_data, v->mv_size);
    out->len += 8 + id_len + v->mv_size;
    out->count++;
    return PS_OK;
}

int ps_list_raw(ps_txn *t, const char *kind, size_t kind_len,
                const char *after, size_t after_len, uint64_t limit,
                ps_buf *out)
{
    if (out == NULL)
        return PS_ERR_INVALID_ARG;
    return ps_scan_kind_opts(t, kind, kind_len, after, after_len, limit,
                             PS_SCAN_DAMAGED, emit_raw, out);
}
