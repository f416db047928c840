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

uint64_t ps_get_be64(const char *p)
{
    const unsigned char *q = (const unsigned char *)p;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = (u << 8) | q[i];
    return u;
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
