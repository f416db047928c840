/* ps_wire.c -- listing a kind as protobuf wire format.
 *
 * ps_list_wire() writes each record of a kind as one element of a repeated
 * message field: tag (field << 3 | 2) and payload length as varints, then
 * the payload.  Python parses the whole buffer once into a wrapper message
 * whose repeated field has the resource type: one parse call and one arena
 * for the whole list, instead of one of each per record. */
#include <string.h>

#include "ps_internal.h"

#define PS_MAX_FIELD ((1u << 29) - 1)

static size_t put_varint(char *w, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        w[n++] = (char)(v | 0x80);
        v >>= 7;
    }
    w[n++] = (char)v;
    return n;
}

static int emit_wire(ps_buf *out, const char *tag, size_t tag_len,
                     const MDB_val *v)
{
    const char *p = v->mv_data;
    if (v->mv_size < PS_HEADER_SIZE || p[0] != PS_FORMAT_VERSION)
        return PS_ERR_BAD_RECORD;
    size_t plen = v->mv_size - PS_HEADER_SIZE;
    int rc = ps_buf_reserve(out, tag_len + 10 + plen);
    if (rc)
        return rc;
    char *w = out->data + out->len;
    memcpy(w, tag, tag_len);
    size_t n = tag_len + put_varint(w + tag_len, plen);
    memcpy(w + n, p + PS_HEADER_SIZE, plen);
    out->len += n + plen;
    out->count++;
    return PS_OK;
}

int ps_list_wire(ps_txn *t, const char *kind, size_t kind_len,
                 const char *after, size_t after_len, uint64_t limit,
                 uint32_t field, ps_buf *out)
{
    int rc = ps_txn_usable(t, 0);
    if (rc)
        return rc;
    if (out == NULL || (after == NULL && after_len) || field == 0 ||
        field > PS_MAX_FIELD)
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
    char tag[5];
    size_t tag_len = put_varint(tag, ((uint64_t)field << 3) | 2);
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
        rc = emit_wire(out, tag, tag_len, &v);
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
