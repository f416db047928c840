/* ps_reader.c -- reused read transactions and the one-call read.
 *
 * Read transactions are not allocated per call: a finished read txn is
 * reset (mdb_txn_reset: its snapshot is released, its reader slot kept)
 * and parked in a small per-env pool; the next reader of any thread renews
 * one (mdb_txn_renew) instead of mdb_txn_begin + mdb_txn_abort.  The pool
 * is emptied when the shared environment closes (its last handle), so no
 * parked txn outlives it. */
#include <string.h>
#include <unistd.h>

#include "ps_internal.h"

int ps_pool_renew(ps_shared *e, MDB_txn **out)
{
    MDB_txn *t = NULL;
    pthread_mutex_lock(&e->pool_mu);
    if (e->pool_len > 0)
        t = e->pool[--e->pool_len];
    pthread_mutex_unlock(&e->pool_mu);
    if (t == NULL)
        return MDB_NOTFOUND;
    int rc = mdb_txn_renew(t);
    if (rc) {
        mdb_txn_abort(t); /* e.g. MDB_MAP_RESIZED: the caller begins afresh */
        return rc;
    }
    *out = t;
    return PS_OK;
}

void ps_pool_give(ps_shared *e, MDB_txn *t)
{
    mdb_txn_reset(t);
    pthread_mutex_lock(&e->pool_mu);
    if (e->pool_len < PS_POOL_MAX) {
        e->pool[e->pool_len++] = t;
        t = NULL;
    }
    pthread_mutex_unlock(&e->pool_mu);
    if (t != NULL)
        mdb_txn_abort(t);
}

void ps_pool_drain(ps_shared *e)
{
    pthread_mutex_lock(&e->pool_mu);
    for (int i = 0; i < e->pool_len; i++)
        mdb_txn_abort(e->pool[i]);
    e->pool_len = 0;
    pthread_mutex_unlock(&e->pool_mu);
}

int ps_get_into(ps_env *e, const char *kind, size_t kind_len, const char *id,
                size_t id_len, char *buf, size_t cap, size_t *payload_len,
                int64_t *updated_ns)
{
    return ps_get_into_rev(e, kind, kind_len, id, id_len, buf, cap,
                           payload_len, updated_ns, NULL);
}

int ps_read_begin(ps_env *e, MDB_txn **txn)
{
    int rc = ps_gate_enter(e);
    if (rc)
        return rc;
    rc = ps_begin_read(e, txn);
    if (rc)
        ps_gate_exit(e, 1);
    else
        ps_epoch_note(e, *txn);
    return rc;
}

void ps_read_end(ps_env *e, MDB_txn *txn)
{
    ps_pool_give(e->sh, txn);
    ps_gate_exit(e, 1);
}

int ps_record_copy(ps_shared *sh, const MDB_val *v, char *buf, size_t cap,
                   size_t *payload_len, int64_t *updated_ns, uint64_t *revision)
{
    int rc = ps_value_check(sh, v);
    if (rc)
        return rc; /* damaged size: nothing is read */
    const char *p = v->mv_data;
    if (v->mv_size < PS_HEADER_SIZE || p[0] != PS_FORMAT_VERSION)
        return PS_ERR_BAD_RECORD;
    size_t n = v->mv_size - PS_HEADER_SIZE;
    *payload_len = n;
    if (updated_ns)
        *updated_ns = ps_get_i64(p + 4);
    if (revision)
        *revision = ps_record_rev(p);
    if (n && n <= cap)
        memcpy(buf, p + PS_HEADER_SIZE, n);
    return PS_OK;
}

int ps_get_into_rev(ps_env *e, const char *kind, size_t kind_len,
                    const char *id, size_t id_len, char *buf, size_t cap,
                    size_t *payload_len, int64_t *updated_ns,
                    uint64_t *revision)
{
    if (e == NULL || payload_len == NULL || updated_ns == NULL ||
        (buf == NULL && cap))
        return PS_ERR_INVALID_ARG;
    if (ps_getpid() != e->pid)
        return PS_ERR_FORKED;
    char key[PS_MAX_KEY];
    size_t key_len;
    int rc = ps_key_build(kind, kind_len, id, id_len, key, &key_len);
    if (rc)
        return rc;
    if (e->sh == NULL)
        return PS_ERR_CLOSED;
    MDB_txn *txn = NULL;
    rc = ps_read_begin(e, &txn);
    if (rc)
        return rc;
    MDB_val k = {key_len, key}, v;
    rc = mdb_get(txn, e->res_dbi, &k, &v);
    if (!rc)
        rc = ps_record_copy(e->sh, &v, buf, cap, payload_len, updated_ns, revision);
    ps_read_end(e, txn);
    return rc;
}
