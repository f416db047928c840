/* ps_strip.c -- data hygiene on the wire format.
 *
 * ps_wire_strip() copies a serialized protobuf message, leaving out the
 * fields a plan names (at any depth) and rewriting the lengths of the
 * sub-messages it descends into.  The caller's message object is never
 * touched and it is serialized once: no copy of the message is made.
 *
 * Plan: an array of u32 nodes.  A node at offset o is plan[o] = n, then n
 * pairs (field number, action): action PS_STRIP_DROP leaves the field out;
 * any other action is the offset of the node to apply inside that field's
 * length-delimited value (a sub-message, repeated element or map entry).
 * Fields not listed are copied as they are, unknown fields included. */
#include <string.h>

#include <stdlib.h>

#include "ps_internal.h"

#define STRIP_MAX_DEPTH 100
#define NO_ACTION 0xFFFFFFFEu

typedef struct {
    const uint32_t *plan;
    size_t plan_len;
    char *out;
    size_t cap;
} strip_ctx;

static int read_varint(const unsigned char *p, size_t len, size_t *pos,
                       uint64_t *v)
{
    uint64_t r = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*pos >= len)
            return PS_ERR_BAD_RECORD;
        unsigned char b = p[(*pos)++];
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return PS_OK;
        }
    }
    return PS_ERR_BAD_RECORD;
}

/* The action for `field` in the node at `node`, or NO_ACTION. */
static int lookup(const strip_ctx *c, uint32_t node, uint64_t field,
                  uint32_t *action)
{
    if (node >= c->plan_len)
        return PS_ERR_INVALID_ARG;
    uint32_t n = c->plan[node];
    if (n > (c->plan_len - node - 1) / 2)
        return PS_ERR_INVALID_ARG;
    *action = NO_ACTION;
    for (uint32_t i = 0; i < n; i++) {
        if (c->plan[node + 1 + 2 * i] == field) {
            *action = c->plan[node + 2 + 2 * i];
            break;
        }
    }
    return PS_OK;
}

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Appends in[from, to) to the output at *w (runs of fields kept as they
 * are go in one copy). */
static int copy_run(const strip_ctx *c, const unsigned char *in, size_t from,
                    size_t to, size_t *w)
{
    size_t n = to - from;
    if (n == 0)
        return PS_OK;
    if (c->cap - *w < n)
        return PS_ERR_NOMEM;
    memcpy(c->out + *w, in + from, n);
    *w += n;
    return PS_OK;
}

static int strip_msg(const strip_ctx *c, uint32_t node, const unsigned char *in,
                     size_t len, size_t w, size_t *w_end, int depth)
{
    if (depth > STRIP_MAX_DEPTH)
        return PS_ERR_BAD_RECORD;
    size_t pos = 0;
    size_t run = 0; /* start of the fields read but not written yet */
    while (pos < len) {
        size_t start = pos;
        uint64_t tag, n = 0;
        int rc = read_varint(in, len, &pos, &tag);
        if (rc)
            return rc;
        size_t tag_end = pos;
        switch (tag & 7) {
        case 0:
            rc = read_varint(in, len, &pos, &n);
            break;
        case 1:
            rc = len - pos < 8 ? PS_ERR_BAD_RECORD : PS_OK;
            pos += rc ? 0 : 8;
            break;
        case 5:
            rc = len - pos < 4 ? PS_ERR_BAD_RECORD : PS_OK;
            pos += rc ? 0 : 4;
            break;
        case 2:
            rc = read_varint(in, len, &pos, &n);
            if (!rc && n > len - pos)
                rc = PS_ERR_BAD_RECORD;
            if (!rc)
                pos += n;
            break;
        default:
            rc = PS_ERR_BAD_RECORD; /* groups: left to the slow path */
        }
        if (rc)
            return rc;
        if ((tag >> 3) == 0)
            return PS_ERR_BAD_RECORD;
        uint32_t action;
        rc = lookup(c, node, tag >> 3, &action);
        if (rc)
            return rc;
        if (action == NO_ACTION || (action != PS_STRIP_DROP && (tag & 7) != 2))
            continue; /* kept as it is: part of the run */
        if ((rc = copy_run(c, in, run, start, &w)))
            return rc;
        run = pos;
        if (action == PS_STRIP_DROP)
            continue;
        /* tag, then the stripped body written after room for the old
         * length's varint, then the new length in front of it (moved back
         * only in the rare case its varint got shorter) */
        size_t vl0 = varint_len(n);
        if ((rc = copy_run(c, in, start, tag_end, &w)))
            return rc;
        if (c->cap - w < vl0)
            return PS_ERR_NOMEM;
        size_t body_end;
        rc = strip_msg(c, action, in + pos - n, n, w + vl0, &body_end, depth + 1);
        if (rc)
            return rc;
        size_t body = body_end - (w + vl0);
        size_t vl = ps_put_varint(c->out + w, body);
        if (vl != vl0)
            memmove(c->out + w + vl, c->out + w + vl0, body);
        w += vl + body;
    }
    if (copy_run(c, in, run, len, &w))
        return PS_ERR_NOMEM;
    *w_end = w;
    return PS_OK;
}

int ps_wire_strip(const uint32_t *plan, size_t plan_len, const char *in,
                  size_t in_len, char *out, size_t out_cap, size_t *out_len)
{
    if (plan == NULL || plan_len == 0 || (in == NULL && in_len) ||
        out == NULL || out_len == NULL || in_len > PS_MAX_PAYLOAD)
        return PS_ERR_INVALID_ARG;
    strip_ctx c = {plan, plan_len, out, out_cap};
    return strip_msg(&c, 0, (const unsigned char *)in, in_len, 0, out_len, 0);
}

int ps_strip_grow(const ps_fw_plan *plan, const char *in, size_t in_len,
                  char **buf, size_t *cap, size_t *out_len)
{
    if (in_len > SIZE_MAX - PS_STRIP_SLACK)
        return PS_ERR_NOMEM;
    size_t need = in_len + PS_STRIP_SLACK;
    if (*cap < need) {
        size_t want = need <= SIZE_MAX / 2 ? need * 2 : need;
        char *b = realloc(*buf, want);
        if (b == NULL)
            return PS_ERR_NOMEM;
        *buf = b;
        *cap = want;
    }
    return ps_wire_strip(plan->table, plan->len, in, in_len, *buf, *cap, out_len);
}
