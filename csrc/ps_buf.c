/* ps_buf.c -- the growable output buffer and little-endian helpers. */
#include <stdlib.h>
#include <string.h>

#include "ps_internal.h"

int ps_buf_reserve(ps_buf *buf, size_t extra)
{
    if (extra > SIZE_MAX - buf->len)
        return PS_ERR_NOMEM;
    size_t need = buf->len + extra;
    if (need <= buf->cap)
        return PS_OK;
    size_t cap = buf->cap ? buf->cap : 4096;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    char *data = realloc(buf->data, cap);
    if (data == NULL)
        return PS_ERR_NOMEM;
    buf->data = data;
    buf->cap = cap;
    return PS_OK;
}

int ps_buf_add(ps_buf *out, const char *s, size_t len)
{
    int rc = ps_buf_reserve(out, 4 + len);
    if (rc)
        return rc;
    ps_put_u32(out->data + out->len, (uint32_t)len);
    memcpy(out->data + out->len + 4, s, len);
    out->len += 4 + len;
    out->count++;
    return PS_OK;
}

void ps_buf_free(ps_buf *buf)
{
    if (buf == NULL)
        return;
    free(buf->data);
    buf->data = NULL;
    buf->len = buf->cap = 0;
    buf->count = 0;
}

void ps_put_u32(char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (char)((v >> (8 * i)) & 0xff);
}

void ps_put_i64(char *p, int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 0; i < 8; i++)
        p[i] = (char)((u >> (8 * i)) & 0xff);
}

uint32_t ps_get_u32(const char *p)
{
    const unsigned char *q = (const unsigned char *)p;
    return (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
           (uint32_t)q[3] << 24;
}

int64_t ps_get_i64(const char *p)
{
    const unsigned char *q = (const unsigned char *)p;
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--)
        u = (u << 8) | q[i];
    return (int64_t)u;
}

size_t ps_put_varint(char *w, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        w[n++] = (char)(v | 0x80);
        v >>= 7;
    }
    w[n++] = (char)v;
    return n;
}

void ps_put_u64(char *p, uint64_t v)
{
    ps_put_i64(p, (int64_t)v);
}

uint64_t ps_get_u64(const char *p)
{
    return (uint64_t)ps_get_i64(p);
}

void ps_put_be64(char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (char)((v >> (8 * (7 - i))) & 0xff);
}

uint64_t ps_get_be64(const char *p)
{
    const unsigned char *q = (const unsigned char *)p;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = (u << 8) | q[i];
    return u;
}

void ps_put_be32(char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (char)((v >> (8 * (3 - i))) & 0xff);
}

uint32_t ps_get_be32(const char *p)
{
    const unsigned char *q = (const unsigned char *)p;
    return (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 |
           (uint32_t)q[3];
}

void ps_header_write(char *p, int64_t updated_ns, uint64_t rev)
{
    p[0] = PS_FORMAT_VERSION;
    p[1] = p[2] = p[3] = 0;
    ps_put_i64(p + 4, updated_ns);
    ps_put_u64(p + 12, rev);
}

uint64_t ps_record_rev(const char *value)
{
    return ps_get_u64(value + 12);
}
