/* ps_fastread.c -- one-call reads through a per-thread read context.
 *
 * A ps_rctx holds what every read of one handle by one thread passes
 * anyway: the handle, a payload buffer and a buffer of offsets, kept
 * between calls.  A get is then ps_rget(ctx, key): two arguments
 * (ps_rget1: one, cffi's cheapest call), the payload length as the return
 * value (PS_RBIG when it does not fit the buffer), the stamp and revision
 * left in the context for the caller that wants them.
 *
 * ps_rscan walks a kind in one read transaction and ends the call with the
 * transaction still open (and its gate entry held, so no map resize or
 * close can move or unmap the pages); it hands out offsets of the values
 * inside the map, from ctx->base: the caller copies the bytes out (or has
 * ps_rscan_wire write them as a wrapper message's wire bytes), then
 * calls ps_rscan_end.  The context is not thread-safe: one thread uses
 * it at a time (pystore keeps one per store per thread). */
#include <stdlib.h>
#include <string.h>

#include "ps_internal.h"

#define WIRE_TAG_MAX 5

struct ps_rctx_priv {
    ps_env *env;
    MDB_txn *held;        /* read txn of an unfinished offset scan */
    pthread_t holder;     /* the thread that began it */
    size_t offs_cap;      /* uint64_t slots in ctx->offs */
    size_t keep;          /* offset bytes kept between calls */
    unsigned mode;        /* the held scan's mode ... */
    uint64_t count;       /* ... and its records */
    const uint64_t *epoch; /* ps_rctx_watch_epoch's slot, or NULL */
};

int ps_rctx_new(ps_env *env, size_t cap, size_t keep, ps_rctx **out)
{
    if (env == NULL || out == NULL)
        return PS_ERR_INVALID_ARG;
    *out = NULL;
    ps_rctx *c = calloc(1, sizeof *c);
    struct ps_rctx_priv *p = calloc(1, sizeof *p);
    char *buf = cap ? malloc(cap) : NULL;
    if (c == NULL || p == NULL || (cap && buf == NULL)) {
        free(c);
        free(p);
        free(buf);
        return PS_ERR_NOMEM;
    }
    p->env = env;
    p->keep = keep;
    c->magic = PS_RCTX_MAGIC;
    c->buf = buf;
    c->cap = cap;
    c->priv = p;
    *out = c;
    return PS_OK;
}

int ps_rctx_reserve(ps_rctx *c, size_t cap)
{
    if (c == NULL)
        return PS_ERR_INVALID_ARG;
    char *buf = realloc(c->buf, cap ? cap : 1);
    if (buf == NULL)
        return PS_ERR_NOMEM;
    c->buf = buf;
    c->cap = cap;
    return PS_OK;
}

void ps_rscan_end(ps_rctx *c)
{
    if (c == NULL || c->priv == NULL)
        return;
    struct ps_rctx_priv *p = c->priv;
    if (p->held == NULL)
        return;
    MDB_txn *t = p->held;
    p->held = NULL;
    c->base = NULL;
    c->span = 0;
    if (ps_getpid() != p->env->pid)
        return; /* a forked child never touches its parent's environment */
    ps_pool_give(p->env->sh, t);
    ps_gate_exit(p->env, pthread_equal(p->holder, pthread_self()));
}

void ps_rctx_free(ps_rctx *c)
{
    if (c == NULL)
        return;
    ps_rscan_end(c);
    c->magic = 0;
    free(c->buf);
    free(c->offs);
    free(c->ids.data);
    free(c->priv);
    free(c);
}

/* Validate "<kind>/<id>" (kind: non-empty, no '/'; id: non-empty; NULs
 * are the caller's to refuse) and its length; the offset of the '/'. */
static int key_check(const char *key, size_t len, size_t *slash)
{
    const char *s = memchr(key, '/', len < PS_MAX_KEY ? len : PS_MAX_KEY);
    if (s == NULL)
        return len > PS_MAX_KEY ? PS_ERR_KEY_TOO_LONG : PS_ERR_ID_EMPTY;
    if (s == key)
        return PS_ERR_KIND_EMPTY;
    if (len > PS_MAX_KEY)
        return PS_ERR_KEY_TOO_LONG;
    if ((size_t)(s - key) + 1 == len)
        return PS_ERR_ID_EMPTY;
    *slash = (size_t)(s - key);
    return PS_OK;
}

int ps_rctx_watch_epoch(ps_rctx *c, const uint64_t *slot)
{
    if (c == NULL || c->priv == NULL)
        return PS_ERR_INVALID_ARG;
    ((struct ps_rctx_priv *)c->priv)->epoch = slot;
    return PS_OK;
}

/* Fork and close checks, then ps_read_begin (the order every reader keeps),
 * then the schema epoch (ps_epoch.c) against the caller's slot. */
static int read_begin(struct ps_rctx_priv *p, MDB_txn **txn)
{
    ps_env *e = p->env;
    if (ps_getpid() != e->pid)
        return PS_ERR_FORKED;
    if (e->sh == NULL)
        return PS_ERR_CLOSED;
    int rc = ps_read_begin(e, txn);
    if (rc || p->epoch == NULL)
        return rc;
    /* this txn noted its epoch: the newest, as the txn is */
    if (ps_env_schema_epoch(e) != __atomic_load_n(p->epoch, __ATOMIC_RELAXED)) {
        ps_read_end(e, *txn);
        return PS_ERR_SCHEMA_MOVED;
    }
    return PS_OK;
}

static int64_t fail(ps_rctx *c, int rc)
{
    c->rc = rc;
    return PS_RFAIL;
}

int64_t ps_rget1(const char *tagged)
{
    if (tagged == NULL)
        return PS_RFAIL;
    uint64_t v = 0;
    for (int i = 0; i < PS_RCTX_TAG; i++) {
        unsigned char b = (unsigned char)tagged[i];
        if (!(b & 0x80))
            return PS_RFAIL; /* not a tag (ps_rctx_tag wrote 0x80 | 7 bits) */
        v |= (uint64_t)(b & 0x7f) << (7 * i);
    }
    ps_rctx *c = (ps_rctx *)(uintptr_t)v;
    if (c == NULL || c->magic != PS_RCTX_MAGIC)
        return PS_RFAIL;
    return ps_rget(c, tagged + PS_RCTX_TAG);
}

void ps_rctx_tag(ps_rctx *c, char *out)
{
    uint64_t v = (uint64_t)(uintptr_t)c;
    for (int i = 0; i < PS_RCTX_TAG; i++) {
        out[i] = (char)(0x80 | (v & 0x7f));
        v >>= 7;
    }
}

int64_t ps_rget(ps_rctx *c, const char *key)
{
    if (c == NULL || key == NULL || c->priv == NULL)
        return c ? fail(c, PS_ERR_INVALID_ARG) : PS_RFAIL;
    struct ps_rctx_priv *p = c->priv;
    size_t len = strnlen(key, PS_MAX_KEY + 1), slash;
    int rc = key_check(key, len, &slash);
    if (rc)
        return fail(c, rc);
    if (p->held)
        return fail(c, PS_ERR_INVALID_ARG); /* a scan's pages are still out */
    MDB_txn *txn;
    rc = read_begin(p, &txn);
    if (rc)
        return fail(c, rc);
    MDB_val k = {len, (void *)key}, v;
    rc = mdb_get(txn, p->env->res_dbi, &k, &v);
    if (!rc)
        rc = ps_record_copy(p->env->sh, &v, c->buf, c->cap, &c->len,
                            &c->updated_ns, &c->revision);
    ps_read_end(p->env, txn);
    if (rc)
        return fail(c, rc);
    return c->len <= c->cap ? (int64_t)c->len : PS_RBIG;
}

static int offs_reserve(ps_rctx *c, size_t need)
{
    struct ps_rctx_priv *p = c->priv;
    if (need <= p->offs_cap)
        return PS_OK;
    size_t cap = p->offs_cap ? p->offs_cap : 1024;
    while (cap < need) {
        if (cap > SIZE_MAX / 2 / sizeof(uint64_t))
            return PS_ERR_NOMEM;
        cap *= 2;
    }
    uint64_t *o = realloc(c->offs, cap * sizeof *o);
    if (o == NULL)
        return PS_ERR_NOMEM;
    c->offs = o;
    p->offs_cap = cap;
    return PS_OK;
}

/* One record: append what `mode` asks for (absolute addresses in offs;
 * made relative to the lowest one at the end). */
static int emit(ps_rctx *c, unsigned mode, const MDB_val *k, size_t prefix_len,
                const MDB_val *v, size_t n)
{
    const char *r = v->mv_data;
    if (v->mv_size < PS_HEADER_SIZE || r[0] != PS_FORMAT_VERSION)
        return PS_ERR_BAD_RECORD;
    size_t plen = v->mv_size - PS_HEADER_SIZE;
    size_t per = mode == PS_RSCAN_RECORDS ? 4 : 2;
    int rc = offs_reserve(c, (n + 1) * per);
    if (rc)
        return rc;
    uint64_t *o = c->offs + n * per;
    uintptr_t pay = (uintptr_t)(r + PS_HEADER_SIZE);
    o[0] = pay;
    o[1] = pay + plen;
    if (mode == PS_RSCAN_RECORDS) {
        o[2] = (uint64_t)ps_get_i64(r + 4);
        o[3] = ps_record_rev(r);
        /* the id, after a NUL unless it is the first (ids hold no NUL) */
        size_t id_len = k->mv_size - prefix_len;
        rc = ps_buf_reserve(&c->ids, id_len + 1);
        if (rc)
            return rc;
        if (n)
            c->ids.data[c->ids.len++] = '\0';
        memcpy(c->ids.data + c->ids.len, (const char *)k->mv_data + prefix_len, id_len);
        c->ids.len += id_len;
        c->ids.count++;
    }
    return PS_OK;
}

/* Turn the absolute addresses of n entries into offsets from ctx->base. */
static void relocate(ps_rctx *c, unsigned mode, uint64_t n)
{
    size_t per = mode == PS_RSCAN_RECORDS ? 4 : 2;
    uint64_t lo = UINT64_MAX, hi = 0;
    for (uint64_t i = 0; i < n; i++) {
        const uint64_t *o = c->offs + i * per;
        for (size_t j = 0; j < 2; j++) {
            if (o[j] < lo)
                lo = o[j];
            if (o[j] > hi)
                hi = o[j];
        }
    }
    if (n == 0)
        lo = hi = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t *o = c->offs + i * per;
        for (size_t j = 0; j < 2; j++)
            o[j] -= lo;
    }
    c->base = (const char *)(uintptr_t)lo;
    c->span = (size_t)(hi - lo);
}

int64_t ps_rscan(ps_rctx *c, const char *start, size_t start_len,
                 size_t prefix_len, uint64_t limit, unsigned mode)
{
    if (c == NULL || c->priv == NULL)
        return c ? fail(c, PS_ERR_INVALID_ARG) : PS_RFAIL;
    struct ps_rctx_priv *p = c->priv;
    if (start == NULL || prefix_len < 2 || prefix_len > start_len ||
        start_len > PS_MAX_KEY || start[prefix_len - 1] != '/' ||
        memchr(start, '/', prefix_len - 1) != NULL ||
        (mode != PS_RSCAN_PAYLOADS && mode != PS_RSCAN_RECORDS) ||
        p->held)
        return fail(c, PS_ERR_INVALID_ARG);
    c->ids.len = 0;
    c->ids.count = 0;
    MDB_txn *txn;
    int rc = read_begin(p, &txn);
    if (rc)
        return fail(c, rc);
    MDB_cursor *cur;
    uint64_t n = 0;
    rc = mdb_cursor_open(txn, p->env->res_dbi, &cur);
    if (!rc) {
        MDB_val k = {start_len, (void *)start}, v;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (!rc && start_len > prefix_len && k.mv_size == start_len &&
            memcmp(k.mv_data, start, start_len) == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT); /* strictly after */
        while (!rc && k.mv_size >= prefix_len &&
               memcmp(k.mv_data, start, prefix_len) == 0 &&
               (limit == 0 || n < limit)) {
            rc = ps_value_check(p->env->sh, &v);
            if (!rc)
                rc = emit(c, mode, &k, prefix_len, &v, (size_t)n);
            if (rc)
                break;
            n++;
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close(cur);
        if (rc == MDB_NOTFOUND)
            rc = PS_OK;
    }
    if (!rc) {
        relocate(c, mode, n);
        p->held = txn; /* the pages stay valid until ps_rscan_end */
        p->mode = mode;
        p->count = n;
        p->holder = pthread_self();
        return (int64_t)n;
    }
    ps_read_end(p->env, txn);
    if (rc)
        return fail(c, rc);
    return (int64_t)n;
}

int64_t ps_rscan_wire(ps_rctx *c, char *dst, size_t cap)
{
    if (c == NULL || c->priv == NULL)
        return c ? fail(c, PS_ERR_INVALID_ARG) : PS_RFAIL;
    struct ps_rctx_priv *p = c->priv;
    if (p->held == NULL || p->mode != PS_RSCAN_PAYLOADS)
        return fail(c, PS_ERR_INVALID_ARG);
    char tag[WIRE_TAG_MAX], len[10];
    size_t tag_len = ps_put_varint(tag, ((uint64_t)PS_RSCAN_FIELD << 3) | 2);
    const uint64_t *o = c->offs;
    uint64_t total = 0;
    for (uint64_t i = 0; i < p->count; i++) {
        uint64_t plen = o[2 * i + 1] - o[2 * i];
        total += tag_len + ps_put_varint(len, plen) + plen;
    }
    if (total > INT64_MAX)
        return fail(c, PS_ERR_VALUE_TOO_LARGE);
    if (dst == NULL || total != cap)
        return (int64_t)total;
    char *w = dst;
    for (uint64_t i = 0; i < p->count; i++) {
        uint64_t plen = o[2 * i + 1] - o[2 * i];
        memcpy(w, tag, tag_len);
        w += tag_len;
        w += ps_put_varint(w, plen);
        memcpy(w, c->base + o[2 * i], plen);
        w += plen;
    }
    return (int64_t)total;
}

void ps_rctx_trim(ps_rctx *c)
{
    if (c == NULL || c->priv == NULL)
        return;
    struct ps_rctx_priv *p = c->priv;
    if (c->ids.cap > p->keep) {
        free(c->ids.data);
        c->ids.data = NULL;
        c->ids.cap = 0;
    }
    c->ids.len = 0;
    c->ids.count = 0;
    if (p->offs_cap * sizeof(uint64_t) > p->keep) {
        free(c->offs);
        c->offs = NULL;
        p->offs_cap = 0;
    }
}

int64_t ps_rfind(ps_rctx *c, const char *kind, size_t kind_len,
                 const char *name, size_t name_len, unsigned qtype,
                 const char *s, size_t s_len, int64_t num, const char *mkey,
                 size_t mkey_len)
{
    if (c == NULL || c->priv == NULL)
        return c ? fail(c, PS_ERR_INVALID_ARG) : PS_RFAIL;
    struct ps_rctx_priv *p = c->priv;
    if (p->held)
        return fail(c, PS_ERR_INVALID_ARG);
    size_t n = 0;
    int found = 0;
    int rc = ps_find_first_into(p->env, kind, kind_len, name, name_len, qtype,
                                s, s_len, num, mkey, mkey_len, c->buf, c->cap,
                                &n, &found);
    if (rc)
        return fail(c, rc);
    if (!found)
        return PS_RNONE;
    c->len = n;
    return n <= c->cap ? (int64_t)n : PS_RBIG;
}
