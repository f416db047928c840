/* ps_events.c -- ordered, idempotent event streams.
 *
 * Database "events".  An event: key = stream + NUL + u64 big-endian seq
 * (so a stream's events sort by seq, and no stream's keys mix with
 * another's: a stream name holds no NUL), value = PS_EV_HEADER bytes
 * (u8 version 1, u8 flags 0, u16 0, i64 LE recorded_ns) + payload.  The
 * stream's marks: key = stream + NUL, value = u64 LE highest seq ever
 * appended, u64 LE seq up to which events are forgotten (deleted): an
 * append at or below that mark is skipped as already seen, so a retry
 * never brings a deleted event back, and last_seq never goes down. */
#include <string.h>

#include "ps_internal.h"

#define PS_EV_HEADER 12
#define PS_EV_VERSION 1

static int stream_check(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > PS_MAX_STREAM || memchr(s, '\0', len))
        return PS_ERR_STREAM;
    return PS_OK;
}

static void put_be64(char *w, uint64_t u)
{
    for (int i = 0; i < 8; i++)
        w[i] = (char)(u >> (56 - 8 * i));
}


/* key = stream NUL [seq]; returns its length */
static size_t ev_key(const char *stream, size_t len, int with_seq, uint64_t seq,
                     char *out)
{
    memcpy(out, stream, len);
    out[len] = '\0';
    if (!with_seq)
        return len + 1;
    put_be64(out + len + 1, seq);
    return len + 9;
}

static int get_marks(ps_txn *t, const char *stream, size_t len, uint64_t *hwm,
                     uint64_t *forgot)
{
    char key[PS_MAX_STREAM + 9];
    MDB_val k = {ev_key(stream, len, 0, 0, key), key}, v;
    *hwm = *forgot = 0;
    int rc = mdb_get(t->mdb, t->env->ev_dbi, &k, &v);
    if (rc == MDB_NOTFOUND)
        return PS_OK;
    if (rc)
        return rc;
    if (v.mv_size != 16)
        return PS_ERR_BAD_RECORD;
    *hwm = (uint64_t)ps_get_i64(v.mv_data);
    *forgot = (uint64_t)ps_get_i64((const char *)v.mv_data + 8);
    return PS_OK;
}

static int put_marks(ps_txn *t, const char *stream, size_t len, uint64_t hwm,
                     uint64_t forgot)
{
    char key[PS_MAX_STREAM + 9], w[16];
    ps_put_i64(w, (int64_t)hwm);
    ps_put_i64(w + 8, (int64_t)forgot);
    MDB_val k = {ev_key(stream, len, 0, 0, key), key}, v = {16, w};
    return mdb_put(t->mdb, t->env->ev_dbi, &k, &v, 0);
}

/* key: stream NUL seq (as stored) */
int ps_apply_ev_append(ps_txn *t, const char *key, size_t key_len,
                       uint64_t seq, const char *payload, size_t payload_len,
                       int64_t ns, int *added)
{
    *added = 0;
    size_t sl = key_len - 9;
    uint64_t hwm, forgot;
    int rc = get_marks(t, key, sl, &hwm, &forgot);
    if (rc)
        return rc;
    if (seq <= forgot)
        return PS_OK; /* forgotten: seen before */
    MDB_val k = {key_len, (void *)key}, v = {PS_EV_HEADER + payload_len, NULL};
    rc = mdb_put(t->mdb, t->env->ev_dbi, &k, &v, MDB_NOOVERWRITE | MDB_RESERVE);
    if (rc == MDB_KEYEXIST)
        return PS_OK; /* first writer wins */
    if (rc)
        return rc;
    char *p = v.mv_data;
    p[0] = PS_EV_VERSION;
    p[1] = p[2] = p[3] = 0;
    ps_put_i64(p + 4, ns);
    if (payload_len)
        memcpy(p + PS_EV_HEADER, payload, payload_len);
    if (seq > hwm)
        rc = put_marks(t, key, sl, seq, forgot);
    if (!rc) /* an append is a change: "kind" = the stream, "id" = u64 BE seq */
        rc = ps_change_add(t, PS_CHANGE_APPEND, key, key_len, sl, ns);
    if (!rc)
        *added = 1;
    return rc;
}

int ps_apply_ev_delete(ps_txn *t, const char *stream, size_t len, int all_,
                       uint64_t upto, uint64_t *deleted)
{
    *deleted = 0;
    uint64_t hwm, forgot;
    int rc = get_marks(t, stream, len, &hwm, &forgot);
    if (rc)
        return rc;
    char start[PS_MAX_STREAM + 9];
    size_t pl = ev_key(stream, len, 0, 0, start);
    MDB_cursor *cur;
    rc = mdb_cursor_open(t->mdb, t->env->ev_dbi, &cur);
    if (rc)
        return rc;
    ev_key(stream, len, 1, 1, start);
    MDB_val k = {pl + 8, start}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == PS_OK && k.mv_size == pl + 8 && memcmp(k.mv_data, start, pl) == 0 &&
           (all_ || ps_get_be64((const char *)k.mv_data + pl) <= upto)) {
        rc = mdb_cursor_del(cur, 0);
        if (rc)
            break;
        (*deleted)++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
        if (rc != PS_OK) {
            k.mv_size = pl + 8;
            k.mv_data = start;
            rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        }
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND && rc != PS_OK)
        return rc;
    uint64_t mark = all_ ? (hwm > forgot ? hwm : forgot) : upto;
    if (mark > forgot)
        return put_marks(t, stream, len, hwm, mark);
    return PS_OK;
}

static int ev_usable(ps_txn *t, int write, const char *stream, size_t len)
{
    int rc = ps_txn_usable(t, write);
    if (rc)
        return rc;
    rc = stream_check(stream, len);
    if (rc)
        return rc;
    if (!t->env->has_aux)
        return write ? PS_ERR_READONLY : MDB_NOTFOUND;
    return PS_OK;
}

int ps_event_append(ps_txn *t, const char *stream, size_t stream_len,
                    uint64_t seq, const char *payload, size_t payload_len,
                    int64_t recorded_ns, unsigned flags, uint64_t *seq_out,
                    int *added)
{
    int rc = ev_usable(t, 1, stream, stream_len);
    if (rc)
        return rc;
    if (seq_out == NULL || added == NULL || (payload == NULL && payload_len) ||
        (flags & ~(unsigned)PS_PUT_BORROW))
        return PS_ERR_INVALID_ARG;
    if (payload_len > PS_MAX_PAYLOAD)
        return PS_ERR_VALUE_TOO_LARGE;
    if (seq > PS_MAX_SEQ)
        return PS_ERR_SEQ;
    if (seq == 0) {
        uint64_t hwm, forgot;
        rc = get_marks(t, stream, stream_len, &hwm, &forgot);
        if (rc)
            return ps_txn_note(t, rc);
        seq = (hwm > forgot ? hwm : forgot) + 1;
        if (seq > PS_MAX_SEQ)
            return PS_ERR_SEQ;
    }
    *seq_out = seq;
    char key[PS_MAX_STREAM + 9];
    size_t key_len = ev_key(stream, stream_len, 1, seq, key);
    while ((rc = ps_apply_ev_append(t, key, key_len, seq, payload, payload_len,
                                    recorded_ns, added)) == MDB_MAP_FULL) {
        rc = ps_txn_recover(t);
        if (rc)
            return rc;
    }
    if (rc == PS_OK && *added)
        rc = ps_txn_log(t, PS_OP_EV_APPEND, key, key_len, payload, payload_len,
                        recorded_ns, flags);
    return ps_txn_note(t, rc);
}

int ps_events_read(ps_txn *t, const char *stream, size_t stream_len,
                   uint64_t after, uint64_t limit, ps_buf *out)
{
    int rc = ev_usable(t, 0, stream, stream_len);
    if (rc == MDB_NOTFOUND)
        return PS_OK;
    if (rc)
        return rc;
    if (out == NULL)
        return PS_ERR_INVALID_ARG;
    if (after >= PS_MAX_SEQ)
        return PS_OK;
    char start[PS_MAX_STREAM + 9];
    size_t pl = stream_len + 1;
    ev_key(stream, stream_len, 1, after + 1, start);
    MDB_cursor *cur;
    rc = mdb_cursor_open(t->mdb, t->env->ev_dbi, &cur);
    if (rc)
        return ps_txn_note(t, rc);
    uint64_t n = 0;
    MDB_val k = {pl + 8, start}, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         rc == PS_OK && k.mv_size == pl + 8 && memcmp(k.mv_data, start, pl) == 0 &&
         (limit == 0 || n < limit);
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const char *p = v.mv_data;
        if (v.mv_size < PS_EV_HEADER || p[0] != PS_EV_VERSION) {
            rc = PS_ERR_BAD_RECORD;
            break;
        }
        size_t plen = v.mv_size - PS_EV_HEADER;
        rc = ps_buf_reserve(out, 20 + plen);
        if (rc)
            break;
        char *w = out->data + out->len;
        ps_put_i64(w, (int64_t)ps_get_be64((const char *)k.mv_data + pl));
        memcpy(w + 8, p + 4, 8);
        ps_put_u32(w + 16, (uint32_t)plen);
        memcpy(w + 20, p + PS_EV_HEADER, plen);
        out->len += 20 + plen;
        out->count++;
        n++;
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        rc = PS_OK;
    return ps_txn_note(t, rc);
}

int ps_event_last(ps_txn *t, const char *stream, size_t stream_len,
                  uint64_t *last)
{
    if (last == NULL)
        return PS_ERR_INVALID_ARG;
    *last = 0;
    int rc = ev_usable(t, 0, stream, stream_len);
    if (rc == MDB_NOTFOUND)
        return PS_OK;
    if (rc)
        return rc;
    uint64_t hwm, forgot;
    rc = get_marks(t, stream, stream_len, &hwm, &forgot);
    if (rc)
        return ps_txn_note(t, rc);
    *last = hwm > forgot ? hwm : forgot;
    return PS_OK;
}

int ps_events_delete(ps_txn *t, const char *stream, size_t stream_len,
                     int all_, uint64_t upto, uint64_t *deleted)
{
    int rc = ev_usable(t, 1, stream, stream_len);
    if (rc)
        return rc;
    if (deleted == NULL)
        return PS_ERR_INVALID_ARG;
    if (!all_ && upto > PS_MAX_SEQ)
        return PS_ERR_SEQ;
    while ((rc = ps_apply_ev_delete(t, stream, stream_len, all_, upto, deleted)) ==
           MDB_MAP_FULL) {
        rc = ps_txn_recover(t);
        if (rc)
            return rc;
    }
    if (rc == PS_OK) {
        char key[PS_MAX_STREAM + 10];
        size_t kl = ev_key(stream, stream_len, 1, upto, key);
        key[kl] = (char)(all_ != 0);
        rc = ps_txn_log(t, PS_OP_EV_DELETE, key, kl + 1, NULL, 0, 0, 0);
    }
    return ps_txn_note(t, rc);
}

int ps_event_marks(ps_txn *t, const char *stream, size_t stream_len,
                   uint64_t *hwm, uint64_t *forgotten)
{
    if (hwm == NULL || forgotten == NULL)
        return PS_ERR_INVALID_ARG;
    *hwm = *forgotten = 0;
    int rc = ev_usable(t, 0, stream, stream_len);
    if (rc == MDB_NOTFOUND)
        return PS_OK;
    if (rc)
        return rc;
    return ps_txn_note(t, get_marks(t, stream, stream_len, hwm, forgotten));
}

int ps_streams(ps_txn *t, int all_, ps_buf *out)
{
    int rc = ps_txn_usable(t, 0);
    if (rc)
        return rc;
    if (out == NULL)
        return PS_ERR_INVALID_ARG;
    if (!t->env->has_aux)
        return PS_OK;
    MDB_cursor *cur;
    rc = mdb_cursor_open(t->mdb, t->env->ev_dbi, &cur);
    if (rc)
        return ps_txn_note(t, rc);
    char next[PS_MAX_STREAM + 9];
    MDB_val k, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == PS_OK) {
        const char *nul = memchr(k.mv_data, '\0', k.mv_size);
        if (nul == NULL) {
            rc = PS_ERR_BAD_RECORD;
            break;
        }
        size_t sl = (size_t)(nul - (const char *)k.mv_data);
        if (sl > PS_MAX_STREAM) {
            rc = PS_ERR_BAD_RECORD;
            break;
        }
        memcpy(next, k.mv_data, sl);
        /* the stream's first event, if any */
        size_t kl = ev_key(next, sl, 1, 0, next);
        k.mv_size = kl;
        k.mv_data = next;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc != PS_OK && rc != MDB_NOTFOUND)
            break;
        int has = rc == PS_OK && k.mv_size == sl + 9 &&
                  memcmp(k.mv_data, next, sl + 1) == 0;
        if (all_ || has) {
            rc = ps_buf_add(out, next, sl);
            if (rc)
                break;
        }
        /* skip to the first key after every "<stream>\0..." */
        next[sl] = 1;
        k.mv_size = sl + 1;
        k.mv_data = next;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        rc = PS_OK;
    return ps_txn_note(t, rc);
}
