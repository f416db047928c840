/* ps_etcd.c -- the etcd backend's list fast path: an etcd RangeResponse, as
 * the wire bytes gRPC received, turned into ps_list_wire's layout.
 *
 * RangeResponse (etcd's rpc.proto): header = 1 (ResponseHeader: revision =
 * 3), kvs = 2 (repeated KeyValue: key = 1, mod_revision = 3, value = 5),
 * more = 3, count = 4.  Each value is a pystore record (PS_HEADER_SIZE
 * header + payload, docs/format.md); its payload is appended to `out` as one
 * element of repeated field `field` (tag and length varints, then the
 * payload), exactly as ps_list_wire does for an LMDB kind, so Python parses
 * a whole page with one ParseFromString.  Nothing here touches LMDB. */
#include <string.h>

#include "ps_internal.h"

/* Read a varint at *p (< end); PS_ERR_INVALID_ARG if cut short or too long. */
static int get_varint(const unsigned char **p, const unsigned char *end,
                      uint64_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end)
            return PS_ERR_INVALID_ARG;
        unsigned char b = *(*p)++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return PS_OK;
        }
    }
    return PS_ERR_INVALID_ARG;
}

/* Skip one field of wire type `wt` at *p. */
static int skip_field(const unsigned char **p, const unsigned char *end,
                      unsigned wt)
{
    uint64_t n;
    switch (wt) {
    case 0:
        return get_varint(p, end, &n);
    case 1:
        n = 8;
        break;
    case 2:
        if (get_varint(p, end, &n))
            return PS_ERR_INVALID_ARG;
        break;
    case 5:
        n = 4;
        break;
    default:
        return PS_ERR_INVALID_ARG;
    }
    if (n > (uint64_t)(end - *p))
        return PS_ERR_INVALID_ARG;
    *p += n;
    return PS_OK;
}

/* One KeyValue: append its value's payload to out; note its key. */
static int one_kv(const unsigned char *p, const unsigned char *end,
                  const char *tag, size_t tag_len, ps_buf *out,
                  const unsigned char **key, size_t *key_len)
{
    const unsigned char *val = NULL;
    uint64_t vlen = 0;
    while (p < end) {
        uint64_t t, n;
        if (get_varint(&p, end, &t))
            return PS_ERR_INVALID_ARG;
        unsigned field = (unsigned)(t >> 3), wt = (unsigned)(t & 7);
        if ((field == 1 || field == 5) && wt == 2) {
            if (get_varint(&p, end, &n) || n > (uint64_t)(end - p))
                return PS_ERR_INVALID_ARG;
            if (field == 1) {
                *key = p;
                *key_len = (size_t)n;
            } else {
                val = p;
                vlen = n;
            }
            p += n;
        } else if (skip_field(&p, end, wt)) {
            return PS_ERR_INVALID_ARG;
        }
    }
    if (val == NULL || vlen < PS_HEADER_SIZE || val[0] != PS_FORMAT_VERSION)
        return PS_ERR_BAD_RECORD;
    size_t plen = (size_t)vlen - PS_HEADER_SIZE;
    int rc = ps_buf_reserve(out, tag_len + 10 + plen);
    if (rc)
        return rc;
    char *w = out->data + out->len;
    memcpy(w, tag, tag_len);
    size_t m = tag_len + ps_put_varint(w + tag_len, plen);
    memcpy(w + m, val + PS_HEADER_SIZE, plen);
    out->len += m + plen;
    out->count++;
    return PS_OK;
}

int ps_etcd_range_wire(const char *resp, size_t resp_len, uint32_t field,
                       ps_buf *out, uint64_t *revision, int *more,
                       size_t *last_key_off, size_t *last_key_len)
{
    if (resp == NULL && resp_len)
        return PS_ERR_INVALID_ARG;
    if (out == NULL || revision == NULL || more == NULL || last_key_off == NULL ||
        last_key_len == NULL || field == 0 || field > ((1u << 29) - 1))
        return PS_ERR_INVALID_ARG;
    char tag[5];
    size_t tag_len = ps_put_varint(tag, ((uint64_t)field << 3) | 2);
    const unsigned char *p = (const unsigned char *)resp, *end = p + resp_len;
    const unsigned char *key = NULL;
    size_t key_len = 0;
    *revision = 0;
    *more = 0;
    while (p < end) {
        uint64_t t, n;
        if (get_varint(&p, end, &t))
            return PS_ERR_INVALID_ARG;
        unsigned f = (unsigned)(t >> 3), wt = (unsigned)(t & 7);
        if ((f == 1 || f == 2) && wt == 2) {
            if (get_varint(&p, end, &n) || n > (uint64_t)(end - p))
                return PS_ERR_INVALID_ARG;
            const unsigned char *sub = p, *sub_end = p + n;
            p = sub_end;
            if (f == 2) {
                int rc = one_kv(sub, sub_end, tag, tag_len, out, &key, &key_len);
                if (rc)
                    return rc;
                continue;
            }
            while (sub < sub_end) { /* ResponseHeader: revision = 3 */
                uint64_t ht, hv;
                if (get_varint(&sub, sub_end, &ht))
                    return PS_ERR_INVALID_ARG;
                if (ht == ((3u << 3) | 0)) {
                    if (get_varint(&sub, sub_end, &hv))
                        return PS_ERR_INVALID_ARG;
                    *revision = hv;
                } else if (skip_field(&sub, sub_end, (unsigned)(ht & 7))) {
                    return PS_ERR_INVALID_ARG;
                }
            }
        } else if (f == 3 && wt == 0) {
            if (get_varint(&p, end, &n))
                return PS_ERR_INVALID_ARG;
            *more = n != 0;
        } else if (skip_field(&p, end, wt)) {
            return PS_ERR_INVALID_ARG;
        }
    }
    *last_key_off = key ? (size_t)(key - (const unsigned char *)resp) : 0;
    *last_key_len = key_len;
    return PS_OK;
}
