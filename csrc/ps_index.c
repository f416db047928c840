/* ps_index.c -- secondary index definitions, each write txn's set of them,
 * and the upkeep of their entries on put, delete and prefix delete
 * (create, drop, rebuild and the public functions: ps_index_admin.c).
 *
 * Definition blob (little-endian), as stored in meta under
 * "index/<kind>/<name>":
 *   u8 PS_IDX_DEF_VERSION, u8 unique, u16 0, u32 index id, u32 plan_len,
 *   u16 kind_len, u16 name_len, u16 field_len, u16 type_len,
 *   plan (plan_len u32), kind, name, field (dotted path), type (full name).
 * The caller of ps_index_create passes id 0; the core assigns ids from
 * meta "index.next_id".  Every create or drop bumps meta
 * "index.generation" (u64 LE); a write txn reads it at its first write and
 * reloads the definitions when it differs from what its env holds, so
 * every process maintains indexes created by any other.
 *
 * Entries: database "index" (MDB_DUPSORT), key = u32 BE index id + encoded
 * value (ps_extract.c), data = resource id; LMDB keeps the ids of a value
 * sorted, so a lookup yields them in id order. */
#include <stdlib.h>
#include <string.h>

#include "ps_index.h"

#define DEF_HEAD 20

struct ps_idxset {
    size_t n;
    ps_idxdef *defs;
    /* Value sets the upkeep reuses from save to save (2 per index of the
     * kind; their buffers only grow): no allocation per save.  Used only
     * by write txns, under env->write_mu. */
    ps_vals *scratch;
    size_t scratch_n;
};

/* ---- definitions ----------------------------------------------------- */

int ps_idxdef_parse(const char *blob, size_t len, ps_idxdef *d)
{
    memset(d, 0, sizeof *d);
    if (blob == NULL || len < DEF_HEAD || (unsigned char)blob[0] != PS_IDX_DEF_VERSION)
        return PS_ERR_INDEX_DEF;
    const unsigned char *q = (const unsigned char *)blob;
    size_t plan_len = ps_get_u32(blob + 8);
    size_t kl = q[12] | q[13] << 8, nl = q[14] | q[15] << 8;
    size_t fl = q[16] | q[17] << 8, tl = q[18] | q[19] << 8;
    if (plan_len > 1 + 2 * PS_IDX_MAX_STEPS ||
        len != DEF_HEAD + 4 * plan_len + kl + nl + fl + tl)
        return PS_ERR_INDEX_DEF;
    /* the blob, then (aligned) a native copy of the plan */
    d->blob = malloc(len + 4 * plan_len + 4);
    if (d->blob == NULL)
        return PS_ERR_NOMEM;
    memcpy(d->blob, blob, len);
    d->blob_len = len;
    uint32_t *plan = (uint32_t *)(void *)(d->blob + ((len + 3) & ~(size_t)3));
    for (size_t i = 0; i < plan_len; i++)
        plan[i] = ps_get_u32(blob + DEF_HEAD + 4 * i);
    d->plan = plan;
    d->plan_len = plan_len;
    d->unique = blob[1] != 0;
    d->id = ps_get_u32(blob + 4);
    const char *s = d->blob + DEF_HEAD + 4 * plan_len;
    d->kind = s, d->kind_len = kl;
    d->name = s + kl, d->name_len = nl;
    d->field = s + kl + nl, d->field_len = fl;
    d->type = s + kl + nl + fl, d->type_len = tl;
    int rc = ps_plan_check(plan, plan_len, &d->mode);
    if (!rc)
        rc = ps_kind_check(d->kind, kl);
    if (!rc && (nl == 0 || memchr(d->name, '\0', nl)))
        rc = PS_ERR_INDEX_DEF;
    if (rc) {
        ps_idxdef_free(d);
        return rc == PS_ERR_NOMEM ? rc : PS_ERR_INDEX_DEF;
    }
    return PS_OK;
}

void ps_idxdef_free(ps_idxdef *d)
{
    free(d->blob);
    memset(d, 0, sizeof *d);
}

int ps_idx_meta_key(const char *kind, size_t kind_len, const char *name,
                    size_t name_len, char *out, size_t *out_len)
{
    size_t pl = sizeof PS_META_IDX_PREFIX - 1;
    int rc = ps_kind_check(kind, kind_len);
    if (rc)
        return rc;
    if (name == NULL || name_len == 0 || memchr(name, '\0', name_len))
        return PS_ERR_INDEX_DEF;
    if (pl + kind_len + 1 + name_len > PS_MAX_KEY)
        return PS_ERR_KEY_TOO_LONG;
    memcpy(out, PS_META_IDX_PREFIX, pl);
    memcpy(out + pl, kind, kind_len);
    out[pl + kind_len] = '/';
    memcpy(out + pl + kind_len + 1, name, name_len);
    *out_len = pl + kind_len + 1 + name_len;
    return PS_OK;
}

int ps_idxdef_get(ps_txn *t, const char *kind, size_t kind_len,
                  const char *name, size_t name_len, ps_idxdef *out)
{
    char key[PS_MAX_KEY];
    size_t key_len;
    int rc = ps_idx_meta_key(kind, kind_len, name, name_len, key, &key_len);
    if (rc)
        return rc;
    MDB_val k = {key_len, key}, v;
    rc = mdb_get(t->mdb, t->env->meta_dbi, &k, &v);
    if (rc)
        return rc;
    return ps_idxdef_parse(v.mv_data, v.mv_size, out);
}

void ps_idxset_free(ps_idxset *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        ps_idxdef_free(&s->defs[i]);
    for (size_t i = 0; i < s->scratch_n; i++)
        ps_vals_free(&s->scratch[i]);
    free(s->scratch);
    free(s->defs);
    free(s);
}

static int set_add(ps_idxset *s, const char *blob, size_t len)
{
    ps_idxdef *defs = realloc(s->defs, (s->n + 1) * sizeof *defs);
    if (defs == NULL)
        return PS_ERR_NOMEM;
    s->defs = defs;
    int rc = ps_idxdef_parse(blob, len, &s->defs[s->n]);
    if (!rc)
        s->n++;
    return rc;
}

uint64_t ps_idx_meta_u64(ps_txn *t, const char *key)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    if (mdb_get(t->mdb, t->env->meta_dbi, &k, &v) || v.mv_size != 8)
        return 0;
    return (uint64_t)ps_get_i64(v.mv_data);
}

/* Every definition in meta (all kinds); `skip` (a meta key) left out. */
static int load_set(ps_txn *t, const MDB_val *skip, ps_idxset **out)
{
    ps_idxset *s = calloc(1, sizeof *s);
    if (s == NULL)
        return PS_ERR_NOMEM;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(t->mdb, t->env->meta_dbi, &cur);
    if (rc) {
        free(s);
        return rc;
    }
    size_t pl = sizeof PS_META_IDX_PREFIX - 1;
    MDB_val k = {pl, (void *)PS_META_IDX_PREFIX}, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         rc == PS_OK && k.mv_size >= pl && memcmp(k.mv_data, PS_META_IDX_PREFIX, pl) == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (skip && skip->mv_size == k.mv_size &&
            memcmp(skip->mv_data, k.mv_data, k.mv_size) == 0)
            continue;
        rc = set_add(s, v.mv_data, v.mv_size);
        if (rc)
            break;
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        rc = PS_OK;
    if (rc) {
        ps_idxset_free(s);
        return rc == PS_ERR_INDEX_DEF ? PS_ERR_BAD_RECORD : rc;
    }
    *out = s;
    return PS_OK;
}

/* Make t->idx the definitions committed (plus this txn's own changes). */
int ps_idx_ready(ps_txn *t)
{
    if (t->idx_ready)
        return PS_OK;
    ps_env *e = t->env;
    /* One meta read per write txn: another process may have created or
     * dropped an index since this env's set was read.  Skipped when this
     * txn directly follows a commit of this handle that saw the generation
     * (t->last_known: ps_rev_begin checked the LMDB txn id against a
     * commit that certainly wrote, so no other commit came between).  A
     * txn id alone is not enough: a commit that wrote nothing leaves the
     * id unused, and another process's next commit takes it. */
    uint64_t gen = t->last_known && e->idx_gen_seen && e->idx_set
                       ? e->idx_gen
                       : ps_idx_meta_u64(t, PS_META_IDX_GEN);
    if (e->idx_set == NULL || e->idx_gen != gen) {
        ps_idxset *s;
        int rc = load_set(t, NULL, &s);
        if (rc)
            return rc;
        ps_idxset_free(e->idx_set); /* only write txns use it: write_mu held */
        e->idx_set = s;
        e->idx_gen = gen;
    }
    t->idx = e->idx_set;
    t->idx_own = 0;
    t->idx_gen = gen;
    t->idx_ready = 1;
    return PS_OK;
}

void ps_idx_txn_reset(ps_txn *t)
{
    if (t->idx_own)
        ps_idxset_free(t->idx);
    t->idx = NULL;
    t->idx_own = 0;
    t->idx_ready = 0;
}

void ps_idx_committed(ps_txn *t)
{
    /* what the next txn of this handle may take without reading meta */
    t->env->idx_gen_seen = t->idx_ready && !t->idx_touched;
    if (t->idx_own) {
        ps_idxset_free(t->env->idx_set);
        t->env->idx_set = t->idx;
        t->env->idx_gen = t->idx_gen;
        t->idx_own = 0;
    }
    t->idx = NULL;
    t->idx_ready = 0;
}

/* Replace t->idx by a set of its own, read from meta as this txn left it. */
int ps_idx_own_set(ps_txn *t)
{
    ps_idxset *s;
    int rc = load_set(t, NULL, &s); /* meta already holds this txn's state */
    if (rc)
        return rc;
    if (t->idx_own)
        ps_idxset_free(t->idx);
    t->idx = s;
    t->idx_own = 1;
    return PS_OK;
}

/* ---- entries -------------------------------------------------------- */

size_t ps_idx_entry_key(uint32_t id, const char *enc, size_t enc_len, char *out)
{
    out[0] = (char)(id >> 24);
    out[1] = (char)(id >> 16);
    out[2] = (char)(id >> 8);
    out[3] = (char)id;
    if (enc_len) /* the start of an index's range passes no value (NULL) */
        memcpy(out + 4, enc, enc_len);
    return 4 + enc_len;
}

int ps_idx_record_payload(const MDB_val *v, const char **p, size_t *n)
{
    const char *r = v->mv_data;
    if (v->mv_size < PS_HEADER_SIZE || r[0] != PS_FORMAT_VERSION)
        return PS_ERR_BAD_RECORD;
    *p = r + PS_HEADER_SIZE;
    *n = v->mv_size - PS_HEADER_SIZE;
    return PS_OK;
}

static void note_violation(ps_txn *t, const ps_idxdef *d, const MDB_val *holder,
                           const char *raw, size_t raw_len)
{
    free(t->viol);
    t->viol = malloc(d->name_len + holder->mv_size + raw_len + 1);
    if (t->viol == NULL)
        return;
    memcpy(t->viol, d->name, d->name_len);
    memcpy(t->viol + d->name_len, holder->mv_data, holder->mv_size);
    if (raw_len)
        memcpy(t->viol + d->name_len + holder->mv_size, raw, raw_len);
    t->viol_name_len = d->name_len;
    t->viol_holder_len = holder->mv_size;
    t->viol_value_len = raw_len;
    t->viol_mode = d->mode;
}

/* Unique: does another id than `id` hold value i of v? */
int ps_idx_check_unique(ps_txn *t, const ps_idxdef *d, const ps_vals *v,
                        size_t i, const char *id, size_t id_len)
{
    const char *enc, *raw;
    size_t el, rl;
    ps_vals_get(v, i, &enc, &el, &raw, &rl);
    char key[4 + PS_IDX_EXACT_MAX + 1];
    MDB_val k = {ps_idx_entry_key(d->id, enc, el, key), key}, h;
    int rc = mdb_get(t->mdb, t->env->idx_dbi, &k, &h);
    if (rc == MDB_NOTFOUND)
        return PS_OK;
    if (rc)
        return rc;
    if (h.mv_size == id_len && memcmp(h.mv_data, id, id_len) == 0) {
        /* ours; is there a second holder? */
        MDB_cursor *cur;
        rc = mdb_cursor_open(t->mdb, t->env->idx_dbi, &cur);
        if (rc)
            return rc;
        MDB_val dk = k, dv = h;
        rc = mdb_cursor_get(cur, &dk, &dv, MDB_GET_BOTH);
        if (!rc)
            rc = mdb_cursor_get(cur, &dk, &dv, MDB_NEXT_DUP);
        if (!rc)
            h = dv;
        mdb_cursor_close(cur);
        if (rc == MDB_NOTFOUND)
            return PS_OK;
        if (rc)
            return rc;
    }
    note_violation(t, d, &h, raw, rl);
    return PS_ERR_UNIQUE;
}

int ps_idx_put_entry(ps_txn *t, const ps_idxdef *d, const ps_vals *v,
                     size_t i, const char *id, size_t id_len)
{
    const char *enc, *raw;
    size_t el, rl;
    ps_vals_get(v, i, &enc, &el, &raw, &rl);
    char key[4 + PS_IDX_EXACT_MAX + 1];
    MDB_val k = {ps_idx_entry_key(d->id, enc, el, key), key}, dv = {id_len, (void *)id};
    int rc = mdb_put(t->mdb, t->env->idx_dbi, &k, &dv, MDB_NODUPDATA);
    return rc == MDB_KEYEXIST ? PS_OK : rc;
}

static int del_entry(ps_txn *t, const ps_idxdef *d, const ps_vals *v, size_t i,
                     const char *id, size_t id_len)
{
    const char *enc, *raw;
    size_t el, rl;
    ps_vals_get(v, i, &enc, &el, &raw, &rl);
    char key[4 + PS_IDX_EXACT_MAX + 1];
    MDB_val k = {ps_idx_entry_key(d->id, enc, el, key), key}, dv = {id_len, (void *)id};
    int rc = mdb_del(t->mdb, t->env->idx_dbi, &k, &dv);
    return rc == MDB_NOTFOUND ? PS_OK : rc;
}

/* Delete every entry of index `d` that names `id`, by a walk of the
 * index's distinct values: for a stored record whose header is damaged,
 * whose values cannot be read although its entries were made while it was
 * whole (a replace or delete of it must not leave them behind).  A rare
 * repair, so a scan of the index is fine. */
static int purge_id(ps_txn *t, const ps_idxdef *d, const char *id, size_t id_len)
{
    char start[4];
    ps_idx_entry_key(d->id, NULL, 0, start);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(t->mdb, t->env->idx_dbi, &cur);
    if (rc)
        return rc;
    char key[4 + PS_IDX_EXACT_MAX + 1];
    MDB_val k = {4, start}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == PS_OK && k.mv_size >= 4 && memcmp(k.mv_data, start, 4) == 0) {
        if (k.mv_size > sizeof key) {
            rc = MDB_CORRUPTED; /* no entry key is this long */
            break;
        }
        size_t kn = k.mv_size;
        memcpy(key, k.mv_data, kn); /* k points into a page the delete may change */
        MDB_val kk = {kn, key}, dv = {id_len, (void *)id};
        rc = mdb_cursor_get(cur, &kk, &dv, MDB_GET_BOTH);
        if (rc == PS_OK)
            rc = mdb_cursor_del(cur, 0);
        if (rc != PS_OK && rc != MDB_NOTFOUND)
            break;
        /* on to the next distinct value (this one may be gone by now) */
        k.mv_size = kn;
        k.mv_data = key;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc == PS_OK && k.mv_size == kn && memcmp(k.mv_data, key, kn) == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_NODUP);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? PS_OK : rc;
}

static int cmp_at(const ps_vals *a, size_t i, const ps_vals *b, size_t j)
{
    const char *ea, *eb, *r;
    size_t la, lb, rl;
    ps_vals_get(a, i, &ea, &la, &r, &rl);
    ps_vals_get(b, j, &eb, &lb, &r, &rl);
    int c = memcmp(ea, eb, la < lb ? la : lb);
    return c ? c : (la > lb) - (la < lb);
}

/* Walk two sorted value sets: fn_old for values only in `old`, fn_new for
 * values only in `nw` (either may be NULL). */
int ps_idx_diff(ps_txn *t, const ps_idxdef *d, const ps_vals *old,
                const ps_vals *nw, ps_idx_entry_fn fn_old,
                ps_idx_entry_fn fn_new, const char *id, size_t id_len)
{
    size_t i = 0, j = 0;
    while (i < old->n || j < nw->n) {
        int c = i >= old->n ? 1 : j >= nw->n ? -1 : cmp_at(old, i, nw, j);
        int rc = PS_OK;
        if (c < 0) {
            if (fn_old)
                rc = fn_old(t, d, old, i, id, id_len);
            i++;
        } else if (c > 0) {
            if (fn_new)
                rc = fn_new(t, d, nw, j, id, id_len);
            j++;
        } else {
            i++, j++;
        }
        if (rc)
            return rc;
    }
    return PS_OK;
}

static size_t kind_of(const char *key, size_t key_len)
{
    const char *slash = memchr(key, '/', key_len);
    return slash ? (size_t)(slash - key) : key_len;
}

static int def_is_kind(const ps_idxdef *d, const char *kind, size_t kind_len)
{
    return d->kind_len == kind_len && memcmp(d->kind, kind, kind_len) == 0;
}

/* n value sets from the set's scratch (emptied; grown when short). */
static ps_vals *scratch(ps_idxset *s, size_t n)
{
    if (s->scratch_n < n) {
        ps_vals *v = realloc(s->scratch, n * sizeof *v);
        if (v == NULL)
            return NULL;
        memset(v + s->scratch_n, 0, (n - s->scratch_n) * sizeof *v);
        s->scratch = v;
        s->scratch_n = n;
    }
    for (size_t i = 0; i < n; i++) {
        s->scratch[i].n = 0;
        s->scratch[i].buf.len = 0;
    }
    return s->scratch;
}

/* Values of every index of the key's kind in the old record and `payload`
 * (NULL: delete), then: unique checks, then entry changes.  Called before
 * the record itself is written or deleted.  `old`: the stored record if the
 * caller read it in this txn with no write since (mv_data NULL: absent),
 * NULL to look it up here. */
static int upkeep(ps_txn *t, const char *key, size_t key_len,
                  const char *payload, size_t payload_len, int create,
                  const MDB_val *old)
{
    int rc = ps_idx_ready(t);
    if (rc)
        return rc;
    ps_idxset *s = t->idx;
    if (s->n == 0)
        return PS_OK;
    size_t kl = kind_of(key, key_len);
    size_t nd = 0;
    for (size_t i = 0; i < s->n; i++)
        nd += def_is_kind(&s->defs[i], key, kl);
    if (nd == 0)
        return PS_OK; /* (a create's existing key: mdb_put reports it) */
    MDB_val ov = {0, NULL};
    if (old) {
        ov = *old;
    } else {
        MDB_val k = {key_len, (void *)key};
        rc = mdb_get(t->mdb, t->env->res_dbi, &k, &ov);
        if (rc == MDB_NOTFOUND)
            ov.mv_data = NULL;
        else if (rc)
            return rc;
    }
    int had = ov.mv_data != NULL;
    if (create && had)
        return MDB_KEYEXIST;
    const char *op = NULL;
    size_t on = 0;
    /* a damaged header: its values cannot be read, but the record made
     * entries while it was whole; they are purged by id below */
    int damaged = had && ps_idx_record_payload(&ov, &op, &on) != PS_OK;
    if (damaged)
        op = NULL;
    /* the same payload again: the same values, nothing to check or move */
    if (op && payload && on == payload_len && memcmp(op, payload, on) == 0)
        return PS_OK;
    ps_vals *vals = scratch(s, 2 * nd);
    if (vals == NULL)
        return PS_ERR_NOMEM;
    const char *id = key + kl + 1;
    size_t id_len = key_len - kl - 1;
    rc = PS_OK;
    size_t x = 0;
    for (size_t i = 0; i < s->n && !rc; i++) {
        ps_idxdef *d = &s->defs[i];
        if (!def_is_kind(d, key, kl))
            continue;
        if (op)
            rc = ps_vals_extract(d->plan, d->plan_len, op, on, &vals[2 * x]);
        if (rc == PS_ERR_BAD_RECORD)
            rc = PS_OK;
        if (!rc && payload)
            rc = ps_vals_extract(d->plan, d->plan_len, payload, payload_len,
                                 &vals[2 * x + 1]);
        if (rc == PS_ERR_BAD_RECORD)
            rc = PS_OK;
        x++;
    }
    /* every check before the first change: a violation changes nothing */
    x = 0;
    for (size_t i = 0; i < s->n && !rc; i++) {
        ps_idxdef *d = &s->defs[i];
        if (!def_is_kind(d, key, kl))
            continue;
        if (d->unique && payload)
            rc = ps_idx_diff(t, d, &vals[2 * x], &vals[2 * x + 1], NULL,
                             ps_idx_check_unique, id, id_len);
        x++;
    }
    x = 0;
    for (size_t i = 0; i < s->n && !rc; i++) {
        ps_idxdef *d = &s->defs[i];
        if (!def_is_kind(d, key, kl))
            continue;
        if (damaged)
            rc = purge_id(t, d, id, id_len);
        if (!rc)
            rc = ps_idx_diff(t, d, &vals[2 * x], &vals[2 * x + 1], del_entry,
                             ps_idx_put_entry, id, id_len);
        x++;
    }
    return rc;
}

int ps_idx_kind_indexed(ps_txn *t, const char *key, size_t key_len, int *yes)
{
    *yes = 0;
    if (!t->env->has_aux)
        return PS_OK; /* no index database: no index */
    int rc = ps_idx_ready(t);
    if (rc)
        return rc;
    ps_idxset *s = t->idx;
    size_t kl = kind_of(key, key_len);
    for (size_t i = 0; i < s->n && !*yes; i++)
        *yes = def_is_kind(&s->defs[i], key, kl);
    return PS_OK;
}

int ps_idx_on_put(ps_txn *t, const char *key, size_t key_len,
                  const char *payload, size_t payload_len, const MDB_val *old)
{
    return upkeep(t, key, key_len, payload ? payload : "", payload_len, 0, old);
}

int ps_idx_on_create(ps_txn *t, const char *key, size_t key_len,
                     const char *payload, size_t payload_len, const MDB_val *old)
{
    return upkeep(t, key, key_len, payload ? payload : "", payload_len, 1, old);
}

int ps_idx_on_del(ps_txn *t, const char *key, size_t key_len,
                  const MDB_val *old)
{
    return upkeep(t, key, key_len, NULL, 0, 0, old);
}

/* Delete every entry of index `id`. */
int ps_idx_clear_range(ps_txn *t, uint32_t id)
{
    char start[4];
    ps_idx_entry_key(id, NULL, 0, start);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(t->mdb, t->env->idx_dbi, &cur);
    if (rc)
        return rc;
    MDB_val k = {4, start}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == PS_OK && k.mv_size >= 4 && memcmp(k.mv_data, start, 4) == 0) {
        rc = mdb_cursor_del(cur, MDB_NODUPDATA);
        if (rc)
            break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
        if (rc != PS_OK) {
            k.mv_size = 4;
            k.mv_data = start;
            rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        }
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? PS_OK : rc;
}

int ps_idx_on_del_prefix(ps_txn *t, const char *prefix, size_t prefix_len)
{
    int rc = ps_idx_ready(t);
    if (rc || t->idx->n == 0)
        return rc;
    size_t kl = kind_of(prefix, prefix_len);
    ps_idxset *s = t->idx;
    int any = 0;
    for (size_t i = 0; i < s->n; i++)
        any |= def_is_kind(&s->defs[i], prefix, kl);
    if (!any)
        return PS_OK;
    if (prefix_len == kl + 1) { /* the whole kind: its indexes empty out */
        for (size_t i = 0; i < s->n && !rc; i++)
            if (def_is_kind(&s->defs[i], prefix, kl))
                rc = ps_idx_clear_range(t, s->defs[i].id);
        return rc;
    }
    /* some ids: each record's values first (no write in between), then
     * its entries go; the cursor is put back on the record afterwards */
    size_t nd = 0;
    for (size_t i = 0; i < s->n; i++)
        nd += def_is_kind(&s->defs[i], prefix, kl);
    ps_vals *vals = calloc(nd + 1, sizeof *vals); /* [nd]: empty */
    if (vals == NULL)
        return PS_ERR_NOMEM;
    MDB_cursor *cur;
    rc = mdb_cursor_open(t->mdb, t->env->res_dbi, &cur);
    if (rc) {
        free(vals);
        return rc;
    }
    char key[PS_MAX_KEY];
    MDB_val k = {prefix_len, (void *)prefix}, val;
    for (rc = mdb_cursor_get(cur, &k, &val, MDB_SET_RANGE);
         rc == PS_OK && k.mv_size >= prefix_len &&
         memcmp(k.mv_data, prefix, prefix_len) == 0;) {
        size_t key_len = k.mv_size;
        memcpy(key, k.mv_data, key_len);
        const char *p;
        size_t n;
        int ok = ps_idx_record_payload(&val, &p, &n) == PS_OK; /* else purged */
        size_t x = 0;
        for (size_t i = 0; i < s->n && !rc; i++) {
            ps_idxdef *d = &s->defs[i];
            if (!def_is_kind(d, prefix, kl))
                continue;
            vals[x].n = 0;
            if (ok)
                rc = ps_vals_extract(d->plan, d->plan_len, p, n, &vals[x]);
            if (rc == PS_ERR_BAD_RECORD)
                rc = PS_OK;
            x++;
        }
        x = 0;
        for (size_t i = 0; i < s->n && !rc; i++) {
            ps_idxdef *d = &s->defs[i];
            if (!def_is_kind(d, prefix, kl))
                continue;
            if (!ok) /* a damaged header: its entries, by id */
                rc = purge_id(t, d, key + kl + 1, key_len - kl - 1);
            else
                rc = ps_idx_diff(t, d, &vals[x], &vals[nd], del_entry, NULL,
                                 key + kl + 1, key_len - kl - 1);
            x++;
        }
        if (rc)
            break;
        k.mv_size = key_len;
        k.mv_data = key;
        rc = mdb_cursor_get(cur, &k, &val, MDB_SET_KEY);
        if (!rc)
            rc = mdb_cursor_get(cur, &k, &val, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    for (size_t i = 0; i <= nd; i++)
        ps_vals_free(&vals[i]);
    free(vals);
    return rc == MDB_NOTFOUND ? PS_OK : rc;
}
