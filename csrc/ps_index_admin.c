/* ps_index_admin.c -- index create, drop, rebuild (with the backfill of
 * existing records), the public ps_index_* functions and ps_txn_violation.
 * Definitions, the per-txn set and the entry upkeep: ps_index.c. */
#include <string.h>

#include "ps_index.h"

static int meta_put_u64(ps_txn *t, const char *key, uint64_t x)
{
    char w[8];
    ps_put_i64(w, (int64_t)x);
    MDB_val k = {strlen(key), (void *)key}, v = {8, w};
    return mdb_put(t->mdb, t->env->meta_dbi, &k, &v, 0);
}

/* ---- create, drop, rebuild ------------------------------------------ */

/* Entries of every record of the kind into index d; *entries counted. */
static int backfill(ps_txn *t, const ps_idxdef *d, uint64_t *entries)
{
    *entries = 0;
    char prefix[PS_MAX_KEY];
    memcpy(prefix, d->kind, d->kind_len);
    prefix[d->kind_len] = '/';
    size_t pl = d->kind_len + 1;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(t->mdb, t->env->res_dbi, &cur);
    if (rc)
        return rc;
    ps_vals v, none;
    memset(&v, 0, sizeof v);
    memset(&none, 0, sizeof none);
    char key[PS_MAX_KEY];
    MDB_val k = {pl, prefix}, val;
    for (rc = mdb_cursor_get(cur, &k, &val, MDB_SET_RANGE);
         rc == PS_OK && k.mv_size >= pl && memcmp(k.mv_data, prefix, pl) == 0;) {
        size_t key_len = k.mv_size;
        memcpy(key, k.mv_data, key_len);
        const char *p;
        size_t n;
        if (ps_idx_record_payload(&val, &p, &n) == PS_OK) {
            rc = ps_vals_extract(d->plan, d->plan_len, p, n, &v);
            if (rc == PS_ERR_BAD_RECORD) {
                rc = PS_OK;
                v.n = 0;
            }
            if (!rc && d->unique)
                rc = ps_idx_diff(t, d, &none, &v, NULL, ps_idx_check_unique,
                                 key + pl, key_len - pl);
            if (!rc)
                rc = ps_idx_diff(t, d, &none, &v, NULL, ps_idx_put_entry,
                                 key + pl, key_len - pl);
            if (rc)
                break;
            *entries += v.n;
        }
        /* writes to the index db leave this cursor on its record */
        k.mv_size = key_len;
        k.mv_data = key;
        rc = mdb_cursor_get(cur, &k, &val, MDB_SET_KEY);
        if (!rc)
            rc = mdb_cursor_get(cur, &k, &val, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    ps_vals_free(&v);
    return rc == MDB_NOTFOUND ? PS_OK : rc;
}

static int count_range(ps_txn *t, uint32_t id, uint64_t *count)
{
    char start[4];
    ps_idx_entry_key(id, NULL, 0, start);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(t->mdb, t->env->idx_dbi, &cur);
    if (rc)
        return rc;
    uint64_t n = 0;
    MDB_val k = {4, start}, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         rc == PS_OK && k.mv_size >= 4 && memcmp(k.mv_data, start, 4) == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_NODUP)) {
        size_t c;
        rc = mdb_cursor_count(cur, &c);
        if (rc)
            break;
        n += c;
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        rc = PS_OK;
    *count = n;
    return rc;
}

static int bump_gen(ps_txn *t)
{
    uint64_t gen = ps_idx_meta_u64(t, PS_META_IDX_GEN) + 1;
    t->idx_touched = 1;
    int rc = meta_put_u64(t, PS_META_IDX_GEN, gen);
    if (!rc)
        t->idx_gen = gen;
    return rc;
}

int ps_apply_idx_create(ps_txn *t, const char *blob, size_t blob_len,
                        uint64_t *entries, int *created)
{
    *entries = 0;
    *created = 0;
    ps_idxdef d;
    int rc = ps_idxdef_parse(blob, blob_len, &d);
    if (rc)
        return rc;
    rc = ps_idx_ready(t);
    char key[PS_MAX_KEY];
    size_t key_len;
    if (!rc)
        rc = ps_idx_meta_key(d.kind, d.kind_len, d.name, d.name_len, key, &key_len);
    ps_idxdef old;
    memset(&old, 0, sizeof old);
    int have = 0;
    if (!rc) {
        MDB_val k = {key_len, key}, v;
        rc = mdb_get(t->mdb, t->env->meta_dbi, &k, &v);
        if (rc == PS_OK) {
            rc = ps_idxdef_parse(v.mv_data, v.mv_size, &old);
            if (rc == PS_ERR_INDEX_DEF)
                rc = PS_ERR_BAD_RECORD;
            have = rc == PS_OK;
        } else if (rc == MDB_NOTFOUND) {
            rc = PS_OK;
        }
    }
    if (!rc && have) {
        int same = old.unique == d.unique && old.type_len == d.type_len &&
                   old.field_len == d.field_len &&
                   memcmp(old.type, d.type, d.type_len) == 0 &&
                   memcmp(old.field, d.field, d.field_len) == 0;
        rc = same ? count_range(t, old.id, entries) : PS_ERR_INDEX_EXISTS;
        ps_idxdef_free(&old);
        ps_idxdef_free(&d);
        return rc;
    }
    if (!rc) {
        uint64_t next = ps_idx_meta_u64(t, PS_META_IDX_NEXT);
        if (next == 0)
            next = 1;
        if (next > UINT32_MAX)
            rc = PS_ERR_INDEX_DEF;
        d.id = (uint32_t)next;
        ps_put_u32(d.blob + 4, d.id);
        if (!rc)
            rc = meta_put_u64(t, PS_META_IDX_NEXT, next + 1);
    }
    if (!rc)
        rc = backfill(t, &d, entries);
    if (!rc) {
        MDB_val k = {key_len, key}, v = {d.blob_len, d.blob};
        rc = mdb_put(t->mdb, t->env->meta_dbi, &k, &v, 0);
    }
    if (!rc)
        rc = bump_gen(t);
    if (!rc)
        rc = ps_idx_own_set(t);
    if (!rc)
        *created = 1;
    ps_idxdef_free(&d);
    return rc;
}

/* The stored definition under meta key `key` into *d (to be freed), with
 * t's index set ready for writes; a damaged one is PS_ERR_BAD_RECORD. */
static int stored_def(ps_txn *t, const char *key, size_t key_len, ps_idxdef *d)
{
    int rc = ps_idx_ready(t);
    if (rc)
        return rc;
    MDB_val k = {key_len, (void *)key}, v;
    rc = mdb_get(t->mdb, t->env->meta_dbi, &k, &v);
    if (rc)
        return rc;
    rc = ps_idxdef_parse(v.mv_data, v.mv_size, d);
    return rc == PS_ERR_INDEX_DEF ? PS_ERR_BAD_RECORD : rc;
}

int ps_apply_idx_drop(ps_txn *t, const char *key, size_t key_len)
{
    ps_idxdef d;
    int rc = stored_def(t, key, key_len, &d);
    if (rc)
        return rc;
    rc = ps_idx_clear_range(t, d.id);
    ps_idxdef_free(&d);
    MDB_val k = {key_len, (void *)key};
    if (!rc)
        rc = mdb_del(t->mdb, t->env->meta_dbi, &k, NULL);
    if (!rc)
        rc = bump_gen(t);
    if (!rc)
        rc = ps_idx_own_set(t);
    return rc;
}

int ps_apply_idx_rebuild(ps_txn *t, const char *key, size_t key_len,
                         uint64_t *entries)
{
    ps_idxdef d;
    int rc = stored_def(t, key, key_len, &d);
    if (rc)
        return rc;
    rc = ps_idx_clear_range(t, d.id);
    if (!rc)
        rc = backfill(t, &d, entries);
    ps_idxdef_free(&d);
    return rc;
}

/* ---- public functions ------------------------------------------------ */

static int aux_usable(ps_txn *t, int write)
{
    int rc = ps_txn_usable(t, write);
    if (!rc && !t->env->has_aux)
        rc = write ? PS_ERR_READONLY : MDB_NOTFOUND;
    return rc;
}

int ps_index_create(ps_txn *t, const char *def, size_t def_len,
                    uint64_t *entries, int *created)
{
    int rc = aux_usable(t, 1);
    if (rc)
        return rc;
    if (def == NULL || entries == NULL || created == NULL)
        return PS_ERR_INVALID_ARG;
    while ((rc = ps_apply_idx_create(t, def, def_len, entries, created)) == MDB_MAP_FULL) {
        rc = ps_txn_recover(t);
        if (rc)
            return rc;
    }
    if (rc == PS_OK && *created)
        rc = ps_txn_log(t, PS_OP_IDX_CREATE, def, def_len, NULL, 0, 0, 0);
    if (rc == PS_ERR_UNIQUE) /* the backfill wrote entries: all must go */
        t->failed = PS_ERR_TXN_FAILED;
    return ps_txn_note(t, rc);
}

int ps_index_drop(ps_txn *t, const char *kind, size_t kind_len,
                  const char *name, size_t name_len)
{
    int rc = aux_usable(t, 1);
    if (rc)
        return rc;
    char key[PS_MAX_KEY];
    size_t key_len;
    rc = ps_idx_meta_key(kind, kind_len, name, name_len, key, &key_len);
    if (rc)
        return rc;
    while ((rc = ps_apply_idx_drop(t, key, key_len)) == MDB_MAP_FULL) {
        rc = ps_txn_recover(t);
        if (rc)
            return rc;
    }
    if (rc == PS_OK)
        rc = ps_txn_log(t, PS_OP_IDX_DROP, key, key_len, NULL, 0, 0, 0);
    return ps_txn_note(t, rc);
}

int ps_index_rebuild(ps_txn *t, const char *kind, size_t kind_len,
                     const char *name, size_t name_len, uint64_t *entries)
{
    int rc = aux_usable(t, 1);
    if (rc)
        return rc;
    if (entries == NULL)
        return PS_ERR_INVALID_ARG;
    char key[PS_MAX_KEY];
    size_t key_len;
    rc = ps_idx_meta_key(kind, kind_len, name, name_len, key, &key_len);
    if (rc)
        return rc;
    while ((rc = ps_apply_idx_rebuild(t, key, key_len, entries)) == MDB_MAP_FULL) {
        rc = ps_txn_recover(t);
        if (rc)
            return rc;
    }
    if (rc == PS_OK)
        rc = ps_txn_log(t, PS_OP_IDX_REBUILD, key, key_len, NULL, 0, 0, 0);
    if (rc == PS_ERR_UNIQUE)
        t->failed = PS_ERR_TXN_FAILED;
    return ps_txn_note(t, rc);
}

int ps_index_list(ps_txn *t, const char *kind, size_t kind_len, ps_buf *out)
{
    int rc = ps_txn_usable(t, 0);
    if (rc)
        return rc;
    if (out == NULL || (kind == NULL && kind_len))
        return PS_ERR_INVALID_ARG;
    char prefix[PS_MAX_KEY];
    size_t pl = sizeof PS_META_IDX_PREFIX - 1;
    memcpy(prefix, PS_META_IDX_PREFIX, pl);
    if (kind) {
        rc = ps_kind_check(kind, kind_len);
        if (rc)
            return rc;
        if (pl + kind_len + 1 > PS_MAX_KEY)
            return PS_OK;
        memcpy(prefix + pl, kind, kind_len);
        prefix[pl + kind_len] = '/';
        pl += kind_len + 1;
    }
    if (!t->env->has_aux)
        return PS_OK;
    MDB_cursor *cur;
    rc = mdb_cursor_open(t->mdb, t->env->meta_dbi, &cur);
    if (rc)
        return ps_txn_note(t, rc);
    MDB_val k = {pl, prefix}, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         rc == PS_OK && k.mv_size >= pl && memcmp(k.mv_data, prefix, pl) == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        ps_idxdef d;
        rc = ps_idxdef_parse(v.mv_data, v.mv_size, &d);
        if (rc) {
            rc = rc == PS_ERR_INDEX_DEF ? PS_ERR_BAD_RECORD : rc;
            break;
        }
        uint64_t n = 0;
        rc = count_range(t, d.id, &n);
        if (!rc)
            rc = ps_buf_reserve(out, 12 + d.blob_len);
        if (!rc) {
            char *w = out->data + out->len;
            ps_put_u32(w, (uint32_t)d.blob_len);
            memcpy(w + 4, d.blob, d.blob_len);
            ps_put_i64(w + 4 + d.blob_len, (int64_t)n);
            out->len += 12 + d.blob_len;
            out->count++;
        }
        ps_idxdef_free(&d);
        if (rc)
            break;
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        rc = PS_OK;
    return ps_txn_note(t, rc);
}

int ps_index_entries(ps_txn *t, const char *kind, size_t kind_len,
                     const char *name, size_t name_len, ps_buf *out)
{
    int rc = aux_usable(t, 0);
    if (rc)
        return rc;
    if (out == NULL)
        return PS_ERR_INVALID_ARG;
    ps_idxdef d;
    rc = ps_idxdef_get(t, kind, kind_len, name, name_len, &d);
    if (rc)
        return ps_txn_note(t, rc);
    char start[4];
    ps_idx_entry_key(d.id, NULL, 0, start);
    ps_idxdef_free(&d);
    MDB_cursor *cur;
    rc = mdb_cursor_open(t->mdb, t->env->idx_dbi, &cur);
    if (rc)
        return ps_txn_note(t, rc);
    MDB_val k = {4, start}, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         rc == PS_OK && k.mv_size >= 4 && memcmp(k.mv_data, start, 4) == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        size_t el = k.mv_size - 4, n = 4 + el + 4 + v.mv_size;
        rc = ps_buf_reserve(out, n);
        if (rc)
            break;
        char *w = out->data + out->len;
        ps_put_u32(w, (uint32_t)el);
        memcpy(w + 4, (char *)k.mv_data + 4, el);
        ps_put_u32(w + 4 + el, (uint32_t)v.mv_size);
        memcpy(w + 8 + el, v.mv_data, v.mv_size);
        out->len += n;
        out->count++;
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        rc = PS_OK;
    return ps_txn_note(t, rc);
}

int ps_txn_violation(ps_txn *t, const char **name, size_t *name_len,
                     const char **holder, size_t *holder_len,
                     const char **value, size_t *value_len, unsigned *mode)
{
    if (t == NULL || name == NULL || name_len == NULL || holder == NULL ||
        holder_len == NULL || value == NULL || value_len == NULL || mode == NULL)
        return PS_ERR_INVALID_ARG;
    if (t->viol == NULL)
        return MDB_NOTFOUND;
    *name = t->viol;
    *name_len = t->viol_name_len;
    *holder = t->viol + t->viol_name_len;
    *holder_len = t->viol_holder_len;
    *value = *holder + t->viol_holder_len;
    *value_len = t->viol_value_len;
    *mode = t->viol_mode;
    return PS_OK;
}
