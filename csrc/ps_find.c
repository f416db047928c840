/* ps_find.c -- lookups through a secondary index.
 *
 * A query reads the index definition from meta in the same transaction
 * (one get), encodes the value as ps_extract.c encodes stored values, and
 * walks the ids of that one key of the dupsort index database (sorted
 * bytewise, i.e. in id order), joining each with its record when asked. */
#include <string.h>

#include "ps_internal.h"

typedef struct query {
    char key[4 + PS_IDX_EXACT_MAX + 1];
    size_t key_len;
    int match;
} query;

static int make_query(ps_txn *t, const char *kind, size_t kind_len,
                      const char *name, size_t name_len, unsigned qtype,
                      const char *s, size_t s_len, int64_t num,
                      const char *mkey, size_t mkey_len, query *q)
{
    if (!t->env->has_aux)
        return MDB_NOTFOUND;
    ps_idxdef d;
    int rc = ps_idxdef_get(t, kind, kind_len, name, name_len, &d);
    if (rc == PS_ERR_INDEX_DEF)
        rc = PS_ERR_BAD_RECORD;
    if (rc)
        return rc;
    size_t el;
    rc = ps_index_encode(d.mode, qtype, s, s_len, num, mkey, mkey_len,
                         q->key + 4, &el, &q->match);
    q->key[0] = (char)(d.id >> 24);
    q->key[1] = (char)(d.id >> 16);
    q->key[2] = (char)(d.id >> 8);
    q->key[3] = (char)d.id;
    q->key_len = 4 + el;
    ps_idxdef_free(&d);
    return rc;
}

typedef struct find_ctx {
    ps_txn *t;
    const char *kind;
    size_t kind_len;
    unsigned mode;
    ps_buf *out;
} find_ctx;

static int emit_id(find_ctx *c, const MDB_val *id)
{
    if (c->mode == PS_FIND_IDS) {
        int rc = ps_buf_reserve(c->out, 4 + id->mv_size);
        if (rc)
            return rc;
        ps_put_u32(c->out->data + c->out->len, (uint32_t)id->mv_size);
        memcpy(c->out->data + c->out->len + 4, id->mv_data, id->mv_size);
        c->out->len += 4 + id->mv_size;
        c->out->count++;
        return PS_OK;
    }
    char key[PS_MAX_KEY];
    size_t key_len;
    int rc = ps_key_build(c->kind, c->kind_len, id->mv_data, id->mv_size, key,
                          &key_len);
    if (rc)
        return PS_ERR_BAD_RECORD;
    MDB_val k = {key_len, key}, v;
    rc = mdb_get(c->t->mdb, c->t->env->res_dbi, &k, &v);
    if (rc == MDB_NOTFOUND)
        return PS_OK; /* an entry without its record: `pystore verify` says so */
    if (rc)
        return rc;
    if (c->mode == PS_FIND_RECORDS)
        return ps_emit_record(c->out, &k, c->kind_len + 1, &v);
    const char *p = v.mv_data;
    if (v.mv_size < PS_HEADER_SIZE || p[0] != PS_FORMAT_VERSION)
        return PS_ERR_BAD_RECORD;
    size_t plen = v.mv_size - PS_HEADER_SIZE;
    rc = ps_buf_reserve(c->out, 11 + plen);
    if (rc)
        return rc;
    char *w = c->out->data + c->out->len;
    w[0] = 0x0a; /* field 1, length-delimited */
    size_t n = 1 + ps_put_varint(w + 1, plen);
    memcpy(w + n, p + PS_HEADER_SIZE, plen);
    c->out->len += n + plen;
    c->out->count++;
    return PS_OK;
}

int ps_find(ps_txn *t, const char *kind, size_t kind_len, const char *name,
            size_t name_len, unsigned qtype, const char *s, size_t s_len,
            int64_t num, const char *mkey, size_t mkey_len, const char *after,
            size_t after_len, uint64_t limit, unsigned mode, ps_buf *out)
{
    int rc = ps_txn_usable(t, 0);
    if (rc)
        return rc;
    if (out == NULL || mode > PS_FIND_WIRE || (after == NULL && after_len))
        return PS_ERR_INVALID_ARG;
    if (after_len) {
        rc = ps_check_key(kind, kind_len, after, after_len);
        if (rc)
            return rc;
    }
    query q;
    rc = make_query(t, kind, kind_len, name, name_len, qtype, s, s_len, num,
                    mkey, mkey_len, &q);
    if (rc)
        return ps_txn_note(t, rc);
    if (!q.match)
        return PS_OK;
    MDB_cursor *cur;
    rc = mdb_cursor_open(t->mdb, t->env->idx_dbi, &cur);
    if (rc)
        return ps_txn_note(t, rc);
    find_ctx c = {t, kind, kind_len, mode, out};
    MDB_val k = {q.key_len, q.key}, v;
    if (after_len) {
        v.mv_size = after_len;
        v.mv_data = (void *)after;
        rc = mdb_cursor_get(cur, &k, &v, MDB_GET_BOTH_RANGE);
        if (rc == PS_OK && v.mv_size == after_len &&
            memcmp(v.mv_data, after, after_len) == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP);
    } else {
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
    }
    uint64_t n = 0;
    while (rc == PS_OK && (limit == 0 || n < limit)) {
        rc = emit_id(&c, &v);
        if (rc)
            break;
        n++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP);
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        rc = PS_OK;
    return ps_txn_note(t, rc);
}

int ps_find_count(ps_txn *t, const char *kind, size_t kind_len,
                  const char *name, size_t name_len, unsigned qtype,
                  const char *s, size_t s_len, int64_t num, const char *mkey,
                  size_t mkey_len, uint64_t *count)
{
    int rc = ps_txn_usable(t, 0);
    if (rc)
        return rc;
    if (count == NULL)
        return PS_ERR_INVALID_ARG;
    *count = 0;
    query q;
    rc = make_query(t, kind, kind_len, name, name_len, qtype, s, s_len, num,
                    mkey, mkey_len, &q);
    if (rc)
        return ps_txn_note(t, rc);
    if (!q.match)
        return PS_OK;
    MDB_cursor *cur;
    rc = mdb_cursor_open(t->mdb, t->env->idx_dbi, &cur);
    if (rc)
        return ps_txn_note(t, rc);
    MDB_val k = {q.key_len, q.key}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
    size_t c = 0;
    if (rc == PS_OK)
        rc = mdb_cursor_count(cur, &c);
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        rc = PS_OK;
    *count = c;
    return ps_txn_note(t, rc);
}

int ps_find_first_into(ps_env *e, const char *kind, size_t kind_len,
                       const char *name, size_t name_len, unsigned qtype,
                       const char *s, size_t s_len, int64_t num,
                       const char *mkey, size_t mkey_len, char *buf,
                       size_t cap, size_t *payload_len, int *found)
{
    if (e == NULL || payload_len == NULL || found == NULL || (buf == NULL && cap))
        return PS_ERR_INVALID_ARG;
    if (ps_getpid() != e->pid)
        return PS_ERR_FORKED;
    int rc = ps_kind_check(kind, kind_len);
    if (rc)
        return rc;
    *found = 0;
    MDB_txn *txn = NULL;
    rc = ps_read_begin(e, &txn);
    if (!rc) {
        ps_txn t = {.env = e, .mdb = txn};
        query q;
        rc = make_query(&t, kind, kind_len, name, name_len, qtype, s, s_len,
                        num, mkey, mkey_len, &q);
        MDB_val k = {q.key_len, q.key}, id, v;
        if (!rc && q.match) {
            rc = mdb_get(txn, e->idx_dbi, &k, &id); /* the first id */
            char key[PS_MAX_KEY];
            size_t key_len;
            if (!rc && ps_key_build(kind, kind_len, id.mv_data, id.mv_size,
                                    key, &key_len))
                rc = PS_ERR_BAD_RECORD;
            if (!rc) {
                k.mv_size = key_len;
                k.mv_data = key;
                rc = mdb_get(txn, e->res_dbi, &k, &v);
            }
            if (!rc) {
                rc = ps_record_copy(e->sh, &v, buf, cap, payload_len, NULL, NULL);
                *found = rc == PS_OK;
            } else if (rc == MDB_NOTFOUND) {
                rc = PS_OK; /* no match (or an entry without its record) */
            }
        }
        ps_read_end(e, txn);
    }
    return rc;
}
