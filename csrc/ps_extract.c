/* ps_extract.c -- the values an index plan picks out of a serialized
 * message, read straight from the wire bytes (no parse into objects).
 *
 * Plan: u32 array.  plan[0] = S, the number of steps (1..PS_IDX_MAX_STEPS),
 * then S pairs (field number, mode).  Every step but the last descends
 * into a message field: mode PS_IDX_MSG (singular; its occurrences merge,
 * as a parser merges them) or PS_IDX_MSG_REPEATED (each element apart).
 * The last step names the value: mode = scalar kind (PS_IDX_STRING ..
 * PS_IDX_ENUM), plus PS_IDX_REPEATED for a repeated scalar (packed or
 * not), or PS_IDX_MAP for a map<string, scalar> (entries: key field 1,
 * value field 2 of that scalar kind).
 *
 * Values (the "raw" form, before encoding):
 *   string, bytes   the bytes
 *   bool            0x01 (only true)
 *   signed ints     8 bytes big-endian of (value XOR 2^63): numeric order
 *   unsigned ints   8 bytes big-endian
 *   map pair        u32 big-endian key length, key, the value's form
 * A singular value that is the default ("", 0, false, absent) and a
 * repeated element that is the default give no value; a map pair always
 * gives one (the pair is present).  A singular field seen twice keeps the
 * last, a map key seen twice keeps its last pair (as parsers do).  The
 * encoded form is a tag byte 0 and the raw form when that is at most
 * PS_IDX_EXACT_MAX bytes, else a tag byte 1 and its SHA-256 digest. */
#include <stdlib.h>
#include <string.h>

#include "ps_internal.h"

#define PS_MAX_FIELD ((1u << 29) - 1)

typedef struct span {
    const unsigned char *p;
    size_t len;
} span;

static int varint(const unsigned char *p, size_t len, size_t *pos, uint64_t *v)
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

/* One field: number, wire type and, for its value, a span (LEN) or the
 * number (VARINT, I32, I64).  Groups are skipped whole. */
typedef struct field {
    uint64_t num;
    unsigned wt;
    uint64_t v;
    span s;
} field;

static int skip_group(const unsigned char *p, size_t len, size_t *pos,
                      uint64_t num, int depth);

static int next_field(const unsigned char *p, size_t len, size_t *pos,
                      field *f, int depth)
{
    uint64_t tag;
    int rc = varint(p, len, pos, &tag);
    if (rc)
        return rc;
    f->num = tag >> 3;
    f->wt = (unsigned)(tag & 7);
    if (f->num == 0)
        return PS_ERR_BAD_RECORD;
    switch (f->wt) {
    case 0:
        return varint(p, len, pos, &f->v);
    case 1:
    case 5: {
        size_t n = f->wt == 1 ? 8 : 4;
        if (len - *pos < n)
            return PS_ERR_BAD_RECORD;
        uint64_t v = 0;
        for (size_t i = 0; i < n; i++)
            v |= (uint64_t)p[*pos + i] << (8 * i);
        f->v = v;
        *pos += n;
        return PS_OK;
    }
    case 2: {
        uint64_t n;
        rc = varint(p, len, pos, &n);
        if (rc)
            return rc;
        if (n > len - *pos)
            return PS_ERR_BAD_RECORD;
        f->s.p = p + *pos;
        f->s.len = (size_t)n;
        *pos += (size_t)n;
        return PS_OK;
    }
    case 3:
        return skip_group(p, len, pos, f->num, depth + 1);
    default:
        return PS_ERR_BAD_RECORD; /* 4 (end group) out of place, 6, 7 */
    }
}

static int skip_group(const unsigned char *p, size_t len, size_t *pos,
                      uint64_t num, int depth)
{
    if (depth > 100)
        return PS_ERR_BAD_RECORD;
    for (;;) {
        size_t save = *pos;
        uint64_t tag;
        int rc = varint(p, len, pos, &tag);
        if (rc)
            return rc;
        if ((tag & 7) == 4)
            return (tag >> 3) == num ? PS_OK : PS_ERR_BAD_RECORD;
        *pos = save;
        field f;
        rc = next_field(p, len, pos, &f, depth);
        if (rc)
            return rc;
    }
}

/* ---- values -------------------------------------------------------- */

static unsigned scalar_wire(unsigned k)
{
    switch (k) {
    case PS_IDX_STRING:
    case PS_IDX_BYTES:
        return 2;
    case PS_IDX_FIXED32:
    case PS_IDX_SFIXED32:
        return 5;
    case PS_IDX_FIXED64:
    case PS_IDX_SFIXED64:
        return 1;
    default:
        return 0;
    }
}

static void be64(char *w, uint64_t u)
{
    for (int i = 0; i < 8; i++)
        w[i] = (char)(u >> (56 - 8 * i));
}

/* The raw form of a number read off the wire for scalar kind k: 8 bytes
 * into w (bool: 1 byte); *len; *zero if it is the default. */
static void number_form(unsigned k, uint64_t v, char *w, size_t *len, int *zero)
{
    int is_signed = 1;
    int64_t s = 0;
    uint64_t u = 0;
    switch (k) {
    case PS_IDX_BOOL:
        w[0] = 1;
        *len = 1;
        *zero = v == 0;
        return;
    case PS_IDX_INT32:
    case PS_IDX_ENUM:
    case PS_IDX_SFIXED32:
        s = (int32_t)(uint32_t)v;
        break;
    case PS_IDX_INT64:
    case PS_IDX_SFIXED64:
        s = (int64_t)v;
        break;
    case PS_IDX_SINT32: {
        uint32_t n = (uint32_t)v;
        s = (int32_t)((n >> 1) ^ (0u - (n & 1)));
        break;
    }
    case PS_IDX_SINT64:
        s = (int64_t)((v >> 1) ^ (0 - (v & 1)));
        break;
    case PS_IDX_UINT32:
    case PS_IDX_FIXED32:
        is_signed = 0;
        u = (uint32_t)v;
        break;
    default: /* UINT64, FIXED64 */
        is_signed = 0;
        u = v;
        break;
    }
    if (is_signed) {
        *zero = s == 0;
        u = (uint64_t)s ^ ((uint64_t)1 << 63);
    } else {
        *zero = u == 0;
    }
    be64(w, u);
    *len = 8;
}

size_t ps_enc_body(const char *raw, size_t raw_len, char *out)
{
    if (raw_len <= PS_IDX_EXACT_MAX) {
        out[0] = 0;
        if (raw_len)
            memcpy(out + 1, raw, raw_len);
        return raw_len + 1;
    }
    out[0] = 1;
    ps_sha256(raw, raw_len, (unsigned char *)out + 1);
    return 33;
}

/* Append one value: (optional map key) + raw form. */
static int add_value(ps_vals *o, const span *key, const char *raw, size_t raw_len)
{
    size_t full = raw_len + (key ? 4 + key->len : 0);
    if (full < raw_len)
        return PS_ERR_NOMEM;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 16;
        size_t *offs = realloc(o->offs, cap * sizeof *offs);
        if (offs == NULL)
            return PS_ERR_NOMEM;
        o->offs = offs;
        o->cap = cap;
    }
    int rc = ps_buf_reserve(&o->buf, 8 + (PS_IDX_EXACT_MAX + 1) + full);
    if (rc)
        return rc;
    char *base = o->buf.data + o->buf.len;
    char *rawp = base + 4 + (PS_IDX_EXACT_MAX + 1) + 4;
    size_t w = 0;
    if (key) {
        rawp[0] = (char)(key->len >> 24);
        rawp[1] = (char)(key->len >> 16);
        rawp[2] = (char)(key->len >> 8);
        rawp[3] = (char)key->len;
        if (key->len)
            memcpy(rawp + 4, key->p, key->len);
        w = 4 + key->len;
    }
    if (raw_len)
        memcpy(rawp + w, raw, raw_len);
    /* entry: u32 enc_len, enc (slot of EXACT_MAX+1 bytes), u32 raw_len, raw */
    char *encp = base + 4;
    size_t enc_len = ps_enc_body(rawp, full, encp);
    ps_put_u32(base, (uint32_t)enc_len);
    ps_put_u32(encp + PS_IDX_EXACT_MAX + 1, (uint32_t)full);
    o->offs[o->n++] = o->buf.len;
    o->buf.len += 8 + (PS_IDX_EXACT_MAX + 1) + full;
    return PS_OK;
}

void ps_vals_get(const ps_vals *v, size_t i, const char **enc, size_t *enc_len,
                 const char **raw, size_t *raw_len)
{
    const char *base = v->buf.data + v->offs[i];
    *enc_len = ps_get_u32(base);
    *enc = base + 4;
    *raw_len = ps_get_u32(base + 4 + PS_IDX_EXACT_MAX + 1);
    *raw = base + 8 + PS_IDX_EXACT_MAX + 1;
}

void ps_vals_free(ps_vals *v)
{
    ps_buf_free(&v->buf);
    free(v->offs);
    memset(v, 0, sizeof *v);
}

/* Emit the scalar of field f (wire type checked by the caller). */
static int scalar_value(ps_vals *o, unsigned k, const field *f, int keep_zero,
                        const span *key)
{
    if (k == PS_IDX_STRING || k == PS_IDX_BYTES) {
        if (f->s.len == 0 && !keep_zero)
            return PS_OK;
        return add_value(o, key, (const char *)f->s.p, f->s.len);
    }
    char w[8];
    size_t len;
    int zero;
    number_form(k, f->v, w, &len, &zero);
    if (zero && !keep_zero)
        return PS_OK;
    if (zero && k == PS_IDX_BOOL) { /* a map pair (k, false) */
        w[0] = 0;
    }
    return add_value(o, key, w, len);
}

/* Every element of a repeated scalar field occurrence (packed or not). */
static int repeated_values(ps_vals *o, unsigned k, const field *f)
{
    unsigned wt = scalar_wire(k);
    if (f->wt == wt)
        return scalar_value(o, k, f, 0, NULL);
    if (f->wt != 2 || wt == 2)
        return PS_OK; /* not this field's encoding: a parser keeps it unknown */
    size_t pos = 0;
    while (pos < f->s.len) {
        field e = {.num = f->num, .wt = wt};
        if (wt == 0) {
            int rc = varint(f->s.p, f->s.len, &pos, &e.v);
            if (rc)
                return rc;
        } else {
            size_t n = wt == 1 ? 8 : 4;
            if (f->s.len - pos < n)
                return PS_ERR_BAD_RECORD;
            e.v = 0;
            for (size_t i = 0; i < n; i++)
                e.v |= (uint64_t)f->s.p[pos + i] << (8 * i);
            pos += n;
        }
        int rc = scalar_value(o, k, &e, 0, NULL);
        if (rc)
            return rc;
    }
    return PS_OK;
}

typedef struct pair {
    span key;
    field val;
    int has_val;
} pair;

/* The map pairs of one logical message (all its occurrences). */
static int map_values(ps_vals *o, unsigned k, uint64_t num, const span *bufs,
                      size_t nbufs)
{
    pair local[8]; /* most maps are small: no allocation */
    pair *pairs = local;
    size_t n = 0, cap = sizeof local / sizeof *local;
    unsigned wt = scalar_wire(k);
    int rc = PS_OK;
    for (size_t b = 0; b < nbufs && !rc; b++) {
        size_t pos = 0;
        while (pos < bufs[b].len && !rc) {
            field f;
            rc = next_field(bufs[b].p, bufs[b].len, &pos, &f, 0);
            if (rc || f.num != num || f.wt != 2)
                continue;
            pair pr = {.key = {(const unsigned char *)"", 0}};
            size_t ep = 0;
            while (ep < f.s.len && !rc) {
                field g;
                rc = next_field(f.s.p, f.s.len, &ep, &g, 0);
                if (rc)
                    break;
                if (g.num == 1 && g.wt == 2)
                    pr.key = g.s;
                else if (g.num == 2 && g.wt == wt) {
                    pr.val = g;
                    pr.has_val = 1;
                }
            }
            if (rc)
                break;
            if (n == cap) {
                pair *np = realloc(pairs == local ? NULL : pairs, 2 * cap * sizeof *np);
                if (np == NULL) {
                    rc = PS_ERR_NOMEM;
                    break;
                }
                if (pairs == local)
                    memcpy(np, local, sizeof local);
                pairs = np;
                cap *= 2;
            }
            pairs[n++] = pr;
        }
    }
    for (size_t i = 0; i < n && !rc; i++) {
        int later = 0; /* a later pair with the same key replaces this one */
        for (size_t j = i + 1; j < n && !later; j++)
            later = pairs[j].key.len == pairs[i].key.len &&
                    memcmp(pairs[j].key.p, pairs[i].key.p, pairs[i].key.len) == 0;
        if (later)
            continue;
        field v = pairs[i].val;
        if (!pairs[i].has_val) {
            v.wt = wt;
            v.v = 0;
            v.s.p = (const unsigned char *)"";
            v.s.len = 0;
        }
        rc = scalar_value(o, k, &v, 1, &pairs[i].key);
    }
    if (pairs != local)
        free(pairs);
    return rc;
}

static int walk(const uint32_t *plan, size_t step, size_t nsteps,
                const span *bufs, size_t nbufs, ps_vals *o)
{
    uint64_t num = plan[1 + 2 * step];
    unsigned mode = plan[2 + 2 * step];
    int rc = PS_OK;
    if (step + 1 == nsteps) {
        unsigned k = mode & PS_IDX_SCALAR_MASK;
        if (mode & PS_IDX_MAP)
            return map_values(o, k, num, bufs, nbufs);
        unsigned wt = scalar_wire(k);
        field last;
        int have = 0;
        for (size_t b = 0; b < nbufs && !rc; b++) {
            size_t pos = 0;
            while (pos < bufs[b].len) {
                field f;
                rc = next_field(bufs[b].p, bufs[b].len, &pos, &f, 0);
                if (rc)
                    break;
                if (f.num != num)
                    continue;
                if (mode & PS_IDX_REPEATED) {
                    rc = repeated_values(o, k, &f);
                    if (rc)
                        break;
                } else if (f.wt == wt) {
                    last = f;
                    have = 1;
                }
            }
        }
        if (!rc && have)
            rc = scalar_value(o, k, &last, 0, NULL);
        return rc;
    }
    span local[4]; /* occurrences of a singular message: usually one */
    span *subs = local;
    size_t n = 0, cap = sizeof local / sizeof *local;
    for (size_t b = 0; b < nbufs && !rc; b++) {
        size_t pos = 0;
        while (pos < bufs[b].len) {
            field f;
            rc = next_field(bufs[b].p, bufs[b].len, &pos, &f, 0);
            if (rc)
                break;
            if (f.num != num || f.wt != 2)
                continue;
            if (mode == PS_IDX_MSG_REPEATED) {
                rc = walk(plan, step + 1, nsteps, &f.s, 1, o);
                if (rc)
                    break;
                continue;
            }
            if (n == cap) {
                span *ns = realloc(subs == local ? NULL : subs, 2 * cap * sizeof *ns);
                if (ns == NULL) {
                    rc = PS_ERR_NOMEM;
                    break;
                }
                if (subs == local)
                    memcpy(ns, local, sizeof local);
                subs = ns;
                cap *= 2;
            }
            subs[n++] = f.s;
        }
    }
    if (!rc && n)
        rc = walk(plan, step + 1, nsteps, subs, n, o);
    if (subs != local)
        free(subs);
    return rc;
}

int ps_plan_check(const uint32_t *plan, size_t plan_len, unsigned *final_mode)
{
    if (plan == NULL || plan_len < 3)
        return PS_ERR_INDEX_DEF;
    uint32_t s = plan[0];
    if (s < 1 || s > PS_IDX_MAX_STEPS || plan_len != 1 + 2 * (size_t)s)
        return PS_ERR_INDEX_DEF;
    for (uint32_t i = 0; i < s; i++) {
        uint32_t num = plan[1 + 2 * i], mode = plan[2 + 2 * i];
        if (num == 0 || num > PS_MAX_FIELD)
            return PS_ERR_INDEX_DEF;
        if (i + 1 < s) {
            if (mode != PS_IDX_MSG && mode != PS_IDX_MSG_REPEATED)
                return PS_ERR_INDEX_DEF;
            continue;
        }
        unsigned k = mode & PS_IDX_SCALAR_MASK;
        unsigned fl = mode & ~(unsigned)PS_IDX_SCALAR_MASK;
        if (k < PS_IDX_STRING || k > PS_IDX_ENUM ||
            (fl != 0 && fl != PS_IDX_REPEATED && fl != PS_IDX_MAP))
            return PS_ERR_INDEX_DEF;
        if (final_mode)
            *final_mode = mode;
    }
    return PS_OK;
}

static const ps_vals *sort_vals;

static int cmp_enc(const void *a, const void *b)
{
    const char *pa = sort_vals->buf.data + *(const size_t *)a;
    const char *pb = sort_vals->buf.data + *(const size_t *)b;
    uint32_t la = ps_get_u32(pa), lb = ps_get_u32(pb);
    int c = memcmp(pa + 4, pb + 4, la < lb ? la : lb);
    return c ? c : (la > lb) - (la < lb);
}

static pthread_mutex_t sort_mu = PTHREAD_MUTEX_INITIALIZER;

/* Sort by encoded value and drop repeats (insertion sort when small, else
 * qsort under a lock: qsort has no context argument). */
static void sort_unique(ps_vals *o)
{
    if (o->n < 2)
        return;
    if (o->n <= 32) {
        for (size_t i = 1; i < o->n; i++) {
            size_t x = o->offs[i], j = i;
            while (j > 0) {
                const char *pa = o->buf.data + o->offs[j - 1];
                const char *pb = o->buf.data + x;
                uint32_t la = ps_get_u32(pa), lb = ps_get_u32(pb);
                int c = memcmp(pa + 4, pb + 4, la < lb ? la : lb);
                if (c < 0 || (c == 0 && la <= lb))
                    break;
                o->offs[j] = o->offs[j - 1];
                j--;
            }
            o->offs[j] = x;
        }
    } else {
        pthread_mutex_lock(&sort_mu);
        sort_vals = o;
        qsort(o->offs, o->n, sizeof *o->offs, cmp_enc);
        sort_vals = NULL;
        pthread_mutex_unlock(&sort_mu);
    }
    size_t w = 1;
    for (size_t i = 1; i < o->n; i++) {
        const char *pa = o->buf.data + o->offs[w - 1];
        const char *pb = o->buf.data + o->offs[i];
        uint32_t la = ps_get_u32(pa), lb = ps_get_u32(pb);
        if (la == lb && memcmp(pa + 4, pb + 4, la) == 0)
            continue;
        o->offs[w++] = o->offs[i];
    }
    o->n = w;
}

int ps_vals_extract(const uint32_t *plan, size_t plan_len, const char *p,
                    size_t len, ps_vals *out)
{
    out->n = 0;
    out->buf.len = 0;
    out->buf.count = 0;
    if (ps_plan_check(plan, plan_len, NULL))
        return PS_ERR_INDEX_DEF;
    span root = {(const unsigned char *)p, len};
    int rc = walk(plan, 0, plan[0], &root, 1, out);
    if (rc) {
        out->n = 0;
        out->buf.len = 0;
        return rc;
    }
    sort_unique(out);
    return PS_OK;
}

int ps_index_extract(const uint32_t *plan, size_t plan_len,
                     const char *payload, size_t payload_len, ps_buf *out)
{
    if (out == NULL || (payload == NULL && payload_len))
        return PS_ERR_INVALID_ARG;
    ps_vals v;
    memset(&v, 0, sizeof v);
    int rc = ps_vals_extract(plan, plan_len, payload, payload_len, &v);
    if (rc == PS_ERR_BAD_RECORD)
        rc = PS_OK; /* no values: the same rule the upkeep follows */
    for (size_t i = 0; i < v.n && !rc; i++) {
        const char *enc, *raw;
        size_t el, rl;
        ps_vals_get(&v, i, &enc, &el, &raw, &rl);
        rc = ps_buf_add(out, enc, el);
    }
    ps_vals_free(&v);
    return rc;
}

/* ---- query values -------------------------------------------------- */

int ps_index_encode(unsigned mode, unsigned qtype, const char *s, size_t s_len,
                    int64_t num, const char *mkey, size_t mkey_len, char *out,
                    size_t *out_len, int *match)
{
    if (out == NULL || out_len == NULL || match == NULL ||
        (s == NULL && s_len) || (mkey == NULL && mkey_len))
        return PS_ERR_INVALID_ARG;
    unsigned k = mode & PS_IDX_SCALAR_MASK;
    int is_map = (mode & PS_IDX_MAP) != 0;
    if ((mkey != NULL) != is_map)
        return PS_ERR_INDEX_QUERY;
    *match = 1;
    char w[8];
    const char *raw = w;
    size_t raw_len = 8;
    int zero = 0;
    if (k == PS_IDX_STRING || k == PS_IDX_BYTES) {
        if (qtype != (k == PS_IDX_STRING ? PS_Q_TEXT : PS_Q_BYTES))
            return PS_ERR_INDEX_QUERY;
        raw = s ? s : "";
        raw_len = s_len;
        zero = s_len == 0;
    } else if (k == PS_IDX_BOOL) {
        if (qtype != PS_Q_BOOL)
            return PS_ERR_INDEX_QUERY;
        w[0] = num ? 1 : 0;
        raw_len = 1;
        zero = num == 0;
    } else {
        if (qtype != PS_Q_INT && qtype != PS_Q_BIGUINT)
            return PS_ERR_INDEX_QUERY;
        int is_unsigned = k == PS_IDX_UINT32 || k == PS_IDX_UINT64 ||
                          k == PS_IDX_FIXED32 || k == PS_IDX_FIXED64;
        int is32 = k == PS_IDX_INT32 || k == PS_IDX_ENUM ||
                   k == PS_IDX_SINT32 || k == PS_IDX_SFIXED32 ||
                   k == PS_IDX_UINT32 || k == PS_IDX_FIXED32;
        uint64_t u;
        if (is_unsigned) {
            if (qtype == PS_Q_INT && num < 0)
                *match = 0;
            u = (uint64_t)num;
            if (is32 && (qtype == PS_Q_BIGUINT || u > 0xffffffffu))
                *match = 0;
        } else {
            if (qtype == PS_Q_BIGUINT ||
                (is32 && (num < INT32_MIN || num > INT32_MAX)))
                *match = 0;
            u = (uint64_t)num ^ ((uint64_t)1 << 63);
        }
        be64(w, u);
        zero = num == 0 && qtype == PS_Q_INT;
    }
    if (!is_map && zero)
        *match = 0; /* defaults make no entry */
    char *tmp = NULL;
    const char *body = raw;
    size_t body_len = raw_len;
    if (is_map) {
        body_len = 4 + mkey_len + raw_len;
        if (body_len < raw_len)
            return PS_ERR_NOMEM;
        tmp = malloc(body_len ? body_len : 1);
        if (tmp == NULL)
            return PS_ERR_NOMEM;
        tmp[0] = (char)(mkey_len >> 24);
        tmp[1] = (char)(mkey_len >> 16);
        tmp[2] = (char)(mkey_len >> 8);
        tmp[3] = (char)mkey_len;
        if (mkey_len)
            memcpy(tmp + 4, mkey, mkey_len);
        if (raw_len)
            memcpy(tmp + 4 + mkey_len, raw, raw_len);
        body = tmp;
    }
    *out_len = ps_enc_body(body, body_len, out);
    free(tmp);
    return PS_OK;
}
