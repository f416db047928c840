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

typedef struct wire_ctx {
    ps_buf *out;
    char tag[5];
    size_t tag_len;
} wire_ctx;

static int emit_wire(void *ctx, const MDB_val *k, size_t prefix_len,
                     const MDB_val *v)
{
    (void)k;
    (void)prefix_len;
    wire_ctx *c = ctx;
    const char *p = v->mv_data;
    if (v->mv_size < PS_HEADER_SIZE || p[0] != PS_FORMAT_VERSION)
        return PS_ERR_BAD_RECORD;
    size_t plen = v->mv_size - PS_HEADER_SIZE;
    int rc = ps_buf_reserve(c->out, c->tag_len + 10 + plen);
    if (rc)
        return rc;
    char *w = c->out->data + c->out->len;
    memcpy(w, c->tag, c->tag_len);
    size_t n = c->tag_len + ps_put_varint(w + c->tag_len, plen);
    memcpy(w + n, p + PS_HEADER_SIZE, plen);
    c->out->len += n + plen;
    c->out->count++;
    return PS_OK;
}

int ps_list_wire(ps_txn *t, const char *kind, size_t kind_len,
                 const char *after, size_t after_len, uint64_t limit,
                 uint32_t field, ps_buf *out)
{
    if (out == NULL || field == 0 || field > PS_MAX_FIELD)
        return PS_ERR_INVALID_ARG;
    wire_ctx c = {.out = out};
    c.tag_len = ps_put_varint(c.tag, ((uint64_t)field << 3) | 2);
    return ps_scan_kind(t, kind, kind_len, after, after_len, limit, emit_wire,
                        &c);
}
