/* ps_history.c -- kept versions of the resources of "versioned" kinds.
 *
 * Meta `history/KIND` (u64 LE) is a kind's keep count.  The database
 * `history` maps a resource's key "<kind>/<id>" to its kept versions, one
 * value: entries [u32 LE length][stored record: header + payload], oldest
 * first.  One value per resource keeps every key within LMDB's 511 bytes
 * (a key + revision suffix would not fit) and reads a resource's history
 * with one lookup; the price is that a write of a versioned kind rewrites
 * its kept versions (O(keep x record size)), fine for the small keep
 * counts versioning needs.
 *
 * A write txn reads a kind's keep count at most once per kind it caches
 * (PS_HIST_CACHE kinds), so a set_history of another process is seen by
 * the next transaction.
 */
#include <stdlib.h>
#include <string.h>

#include "ps_internal.h"

static int keep_key(const char *kind, size_t kind_len, char *out, size_t *len)
{
    size_t pl = sizeof PS_META_HISTORY - 1;
    if (kind_len > PS_MAX_KEY - pl)
        return PS_ERR_KEY_TOO_LONG;
    memcpy(out, PS_META_HISTORY, pl);
    memcpy(out + pl, kind, kind_len);
    *len = pl + kind_len;
    return PS_OK;
}

static int keep_read(ps_txn *t, const char *kind, size_t kind_len,
                     uint64_t *keep)
{
    int cached = t->hist_n < PS_HIST_CACHE ? t->hist_n : PS_HIST_CACHE;
    for (int i = 0; i < cached; i++) {
        if (t->hist[i].len == kind_len &&
            memcmp(t->hist[i].kind, kind, kind_len) == 0) {
            *keep = t->hist[i].keep;
            return PS_OK;
        }
    }
    char key[PS_MAX_KEY];
    size_t key_len;
    if (keep_key(kind, kind_len, key, &key_len)) {
        *keep = 0; /* such a kind can never be given a keep count */
        return PS_OK;
    }
    MDB_val k = {key_len, key}, v;
    int rc = mdb_get(t->mdb, t->env->meta_dbi, &k, &v);
    if (rc == MDB_NOTFOUND) {
        *keep = 0;
    } else if (rc) {
        return rc;
    } else if (v.mv_size != 8) {
        return PS_ERR_BAD_RECORD;
    } else {
        *keep = ps_get_u64(v.mv_data);
    }
    if (kind_len <= PS_HIST_CACHE_KIND) {
        int slot = t->hist_n++ % PS_HIST_CACHE;
        if (t->hist_n >= 2 * PS_HIST_CACHE)
            t->hist_n = PS_HIST_CACHE;
        t->hist[slot].len = kind_len;
        t->hist[slot].keep = *keep;
        memcpy(t->hist[slot].kind, kind, kind_len);
    }
    return PS_OK;
}

int ps_hist_keep_of(ps_txn *t, const char *key, size_t kind_len,
                    uint64_t *keep)
{
    return keep_read(t, key, kind_len, keep);
}

/* Count the entries of a history value and check each is a record. */
static int blob_count(const char *b, size_t n, uint64_t *count)
{
    size_t off = 0;
    uint64_t c = 0;
    while (off < n) {
        if (n - off < 4)
            return PS_ERR_BAD_RECORD;
        size_t len = ps_get_u32(b + off);
        if (len > n - off - 4 || len < PS_HEADER_SIZE ||
            b[off + 4] != PS_FORMAT_VERSION)
            return PS_ERR_BAD_RECORD;
        off += 4 + len;
        c++;
    }
    *count = c;
    return PS_OK;
}

/* Offset of entry `skip` (entries before it are dropped). */
static size_t blob_skip(const char *b, uint64_t skip)
{
    size_t off = 0;
    for (uint64_t i = 0; i < skip; i++)
        off += 4 + ps_get_u32(b + off);
    return off;
}

static int blob_get(ps_txn *t, const char *key, size_t key_len,
                    const char **b, size_t *n, uint64_t *count)
{
    MDB_val k = {key_len, (void *)key}, v;
    int rc = mdb_get(t->mdb, t->env->history_dbi, &k, &v);
    if (rc == MDB_NOTFOUND) {
        *b = NULL;
        *n = 0;
        *count = 0;
        return PS_OK;
    }
    if (rc)
        return rc;
    *b = v.mv_data;
    *n = v.mv_size;
    return blob_count(*b, *n, count);
}

/* Write key's history: the entries of `b` from offset `from`, then `add`. */
static int blob_write(ps_txn *t, const char *key, size_t key_len,
                      const char *b, size_t from, size_t n, const char *add,
                      size_t add_len)
{
    if (add_len > UINT32_MAX || add_len > SIZE_MAX - 4 - (n - from))
        return PS_ERR_VALUE_TOO_LARGE;
    size_t len = (n - from) + 4 + add_len;
    char *nb = malloc(len);
    if (nb == NULL)
        return PS_ERR_NOMEM;
    if (n > from)
        memcpy(nb, b + from, n - from);
    ps_put_u32(nb + (n - from), (uint32_t)add_len);
    memcpy(nb + (n - from) + 4, add, add_len);
    MDB_val k = {key_len, (void *)key}, v = {len, nb};
    int rc = mdb_put(t->mdb, t->env->history_dbi, &k, &v, 0);
    free(nb);
    return rc;
}

int ps_hist_push(ps_txn *t, const char *key, size_t key_len, const char *old,
                 size_t old_len, uint64_t keep)
{
    uint64_t rev;
    int rc = ps_rev_take(t, &rev);
    if (rc)
        return rc;
    if (keep == 0 || ps_record_rev(old) == rev)
        return PS_OK; /* a version this txn wrote was never committed */
    const char *b;
    size_t n;
    uint64_t count;
    rc = blob_get(t, key, key_len, &b, &n, &count);
    if (rc)
        return rc;
    uint64_t drop = count + 1 > keep ? count + 1 - keep : 0;
    return blob_write(t, key, key_len, b, blob_skip(b, drop), n, old, old_len);
}

int ps_hist_drop_prefix(ps_txn *t, const char *prefix, size_t prefix_len)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(t->mdb, t->env->history_dbi, &cur);
    if (rc)
        return rc;
    MDB_val k = {prefix_len, (void *)prefix}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == PS_OK && k.mv_size >= prefix_len &&
           memcmp(k.mv_data, prefix, prefix_len) == 0) {
        rc = mdb_cursor_del(cur, 0);
        if (rc)
            break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
        if (rc != PS_OK) {
            k.mv_size = prefix_len;
            k.mv_data = (void *)prefix;
            rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        }
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? PS_OK : rc;
}

int ps_apply_hist_del(ps_txn *t, const char *key, size_t key_len,
                      uint64_t *dropped)
{
    const char *b;
    size_t n;
    int rc = blob_get(t, key, key_len, &b, &n, dropped);
    if (rc || *dropped == 0)
        return rc;
    MDB_val k = {key_len, (void *)key};
    return mdb_del(t->mdb, t->env->history_dbi, &k, NULL);
}

/* Keep at most `keep` versions of each resource of the kind `prefix`
 * ("<kind>/"): the oldest of a longer history go (all with keep 0). */
int ps_apply_hist_trim(ps_txn *t, const char *prefix, size_t prefix_len,
                       uint64_t keep)
{
    if (keep == 0)
        return ps_hist_drop_prefix(t, prefix, prefix_len);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(t->mdb, t->env->history_dbi, &cur);
    if (rc)
        return rc;
    MDB_val k = {prefix_len, (void *)prefix}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == PS_OK && k.mv_size >= prefix_len &&
           memcmp(k.mv_data, prefix, prefix_len) == 0) {
        uint64_t count;
        rc = blob_count(v.mv_data, v.mv_size, &count);
        if (rc == PS_OK && k.mv_size > PS_MAX_KEY)
            rc = PS_ERR_BAD_RECORD;
        if (rc == PS_OK && count > keep) {
            /* the key and the newest `keep` entries, copied out: both point
             * into the page, which the put below rewrites */
            char key[PS_MAX_KEY];
            memcpy(key, k.mv_data, k.mv_size);
            MDB_val nk = {k.mv_size, key};
            size_t from = blob_skip(v.mv_data, count - keep), len = v.mv_size - from;
            char *nb = malloc(len);
            if (nb == NULL) {
                rc = PS_ERR_NOMEM;
                break;
            }
            memcpy(nb, (const char *)v.mv_data + from, len);
            MDB_val nv = {len, nb};
            rc = mdb_cursor_put(cur, &nk, &nv, MDB_CURRENT);
            free(nb);
        }
        if (rc == PS_OK)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? PS_OK : rc;
}

int ps_apply_hist_load(ps_txn *t, const char *key, size_t key_len,
                       const char *record, size_t record_len)
{
    const char *b;
    size_t n;
    uint64_t count;
    int rc = blob_get(t, key, key_len, &b, &n, &count);
    if (!rc)
        rc = blob_write(t, key, key_len, b, 0, n, record, record_len);
    return rc;
}

int ps_apply_reserve(ps_txn *t, uint64_t n, uint64_t *first)
{
    if (t->rev != 0)
        return PS_ERR_INVALID_ARG; /* only before the txn's first change */
    uint64_t last;
    int rc = ps_last_revision(t->mdb, t->env, &last);
    if (rc)
        return rc;
    if (n > UINT64_MAX - 3 - last)
        return PS_ERR_INVALID_ARG;
    *first = last + 1;
    t->rev = last + n + 1;
    t->rev_reserved = 1;
    return PS_OK;
}

/* ---- public calls ------------------------------------------------------ */

int ps_history_set(ps_txn *t, const char *kind, size_t kind_len, uint64_t keep)
{
    int rc = ps_txn_usable(t, 1);
    if (rc)
        return rc;
    char prefix[PS_MAX_KEY], key[PS_MAX_KEY], val[8];
    size_t prefix_len, key_len;
    rc = ps_kind_prefix(kind, kind_len, prefix, &prefix_len); /* checks the kind */
    if (rc)
        return rc;
    rc = keep_key(kind, kind_len, key, &key_len);
    if (rc)
        return rc;
    ps_put_u64(val, keep);
    rc = ps_meta_put(t, key, key_len, val, sizeof val);
    t->hist_n = 0; /* forget cached keep counts */
    t->hist_set = 1;
    if (rc)
        return rc;
    /* the count holds for the versions kept already: a lower one drops
     * the oldest now (all of them with 0), not at each resource's next write */
    while ((rc = ps_apply_hist_trim(t, prefix, prefix_len, keep)) == MDB_MAP_FULL) {
        rc = ps_txn_recover(t);
        if (rc)
            return rc;
    }
    if (rc == PS_OK)
        rc = ps_txn_log_arg(t, PS_OP_HIST_TRIM, prefix, prefix_len, NULL, 0, 0, 0, keep);
    return ps_txn_note(t, rc);
}

int ps_history_keep(ps_txn *t, const char *kind, size_t kind_len,
                    uint64_t *keep)
{
    int rc = ps_txn_usable(t, 0);
    if (rc)
        return rc;
    if (keep == NULL)
        return PS_ERR_INVALID_ARG;
    rc = ps_kind_check(kind, kind_len);
    if (rc)
        return rc;
    return ps_txn_note(t, keep_read(t, kind, kind_len, keep));
}

static int emit_version(ps_buf *out, const char *rec, size_t len)
{
    size_t plen = len - PS_HEADER_SIZE;
    int rc = ps_buf_reserve(out, 20 + plen);
    if (rc)
        return rc;
    char *w = out->data + out->len;
    ps_put_u64(w, ps_record_rev(rec));
    memcpy(w + 8, rec + 4, 8); /* updated_ns, little-endian already */
    ps_put_u32(w + 16, (uint32_t)plen);
    memcpy(w + 20, rec + PS_HEADER_SIZE, plen);
    out->len += 20 + plen;
    out->count++;
    return PS_OK;
}

static int live_record(ps_txn *t, const char *key, size_t key_len,
                       const char **rec, size_t *len)
{
    MDB_val k = {key_len, (void *)key}, v;
    int rc = mdb_get(t->mdb, t->env->res_dbi, &k, &v);
    if (rc)
        return rc;
    if (v.mv_size < PS_HEADER_SIZE || ((const char *)v.mv_data)[0] != PS_FORMAT_VERSION)
        return PS_ERR_BAD_RECORD;
    *rec = v.mv_data;
    *len = v.mv_size;
    return PS_OK;
}

int ps_history(ps_txn *t, const char *kind, size_t kind_len, const char *id,
               size_t id_len, uint64_t limit, ps_buf *out)
{
    int rc = ps_txn_usable(t, 0);
    if (rc)
        return rc;
    if (out == NULL)
        return PS_ERR_INVALID_ARG;
    char key[PS_MAX_KEY];
    size_t key_len;
    rc = ps_key_build(kind, kind_len, id, id_len, key, &key_len);
    if (rc)
        return rc;
    const char *rec;
    size_t len;
    uint64_t n = 0;
    rc = live_record(t, key, key_len, &rec, &len);
    if (rc == PS_OK) {
        rc = emit_version(out, rec, len);
        n++;
    } else if (rc == MDB_NOTFOUND) {
        rc = PS_OK;
    }
    const char *b = NULL;
    size_t bn;
    uint64_t count = 0;
    if (!rc)
        rc = blob_get(t, key, key_len, &b, &bn, &count);
    if (rc)
        return ps_txn_note(t, rc);
    if (count == 0 || (limit && n >= limit))
        return PS_OK;
    size_t *offs = malloc(count * sizeof *offs);
    if (offs == NULL)
        return PS_ERR_NOMEM;
    size_t off = 0;
    for (uint64_t i = 0; i < count; i++) {
        offs[i] = off;
        off += 4 + ps_get_u32(b + off);
    }
    for (uint64_t i = count; i-- > 0 && !rc && (limit == 0 || n < limit); n++)
        rc = emit_version(out, b + offs[i] + 4, ps_get_u32(b + offs[i]));
    free(offs);
    return rc;
}

int ps_get_at(ps_txn *t, const char *kind, size_t kind_len, const char *id,
              size_t id_len, uint64_t revision, const char **payload,
              size_t *payload_len, int64_t *updated_ns)
{
    int rc = ps_txn_usable(t, 0);
    if (rc)
        return rc;
    if (payload == NULL || payload_len == NULL || updated_ns == NULL)
        return PS_ERR_INVALID_ARG;
    char key[PS_MAX_KEY];
    size_t key_len;
    rc = ps_key_build(kind, kind_len, id, id_len, key, &key_len);
    if (rc)
        return rc;
    const char *rec = NULL;
    size_t len = 0;
    rc = live_record(t, key, key_len, &rec, &len);
    if (rc == PS_OK && ps_record_rev(rec) != revision)
        rec = NULL;
    else if (rc == MDB_NOTFOUND)
        rc = PS_OK;
    const char *b;
    size_t bn;
    uint64_t count;
    if (!rc && rec == NULL)
        rc = blob_get(t, key, key_len, &b, &bn, &count);
    if (!rc && rec == NULL) {
        size_t off = 0;
        for (uint64_t i = 0; i < count && rec == NULL; i++) {
            size_t n = ps_get_u32(b + off);
            if (ps_record_rev(b + off + 4) == revision) {
                rec = b + off + 4;
                len = n;
            }
            off += 4 + n;
        }
        if (rec == NULL)
            rc = MDB_NOTFOUND;
    }
    if (rc)
        return ps_txn_note(t, rc);
    *payload = rec + PS_HEADER_SIZE;
    *payload_len = len - PS_HEADER_SIZE;
    *updated_ns = ps_get_i64(rec + 4);
    return PS_OK;
}

int ps_history_delete(ps_txn *t, const char *kind, size_t kind_len,
                      const char *id, size_t id_len, uint64_t *dropped)
{
    int rc = ps_txn_usable(t, 1);
    if (rc)
        return rc;
    if (dropped == NULL)
        return PS_ERR_INVALID_ARG;
    char key[PS_MAX_KEY];
    size_t key_len;
    rc = ps_key_build(kind, kind_len, id, id_len, key, &key_len);
    if (rc)
        return rc;
    while ((rc = ps_apply_hist_del(t, key, key_len, dropped)) == MDB_MAP_FULL) {
        rc = ps_txn_recover(t);
        if (rc)
            return rc;
    }
    if (rc == PS_OK && *dropped)
        rc = ps_txn_log(t, PS_OP_HIST_DEL, key, key_len, NULL, 0, 0, 0);
    return ps_txn_note(t, rc);
}

int ps_txn_reserve(ps_txn *t, uint64_t n, uint64_t *first)
{
    int rc = ps_txn_usable(t, 1);
    if (rc)
        return rc;
    if (first == NULL || n == 0)
        return PS_ERR_INVALID_ARG;
    rc = ps_apply_reserve(t, n, first);
    if (rc == PS_OK)
        rc = ps_txn_log_arg(t, PS_OP_RESERVE, "", 0, NULL, 0, 0, 0, n);
    return ps_txn_note(t, rc);
}

int ps_history_load(ps_txn *t, const char *kind, size_t kind_len,
                    const char *id, size_t id_len, const char *payload,
                    size_t payload_len, int64_t updated_ns, uint64_t revision)
{
    int rc = ps_txn_usable(t, 1);
    if (rc)
        return rc;
    if ((payload == NULL && payload_len) || revision == 0)
        return PS_ERR_INVALID_ARG;
    if (payload_len > PS_MAX_PAYLOAD)
        return PS_ERR_VALUE_TOO_LARGE;
    char key[PS_MAX_KEY];
    size_t key_len;
    rc = ps_key_build(kind, kind_len, id, id_len, key, &key_len);
    if (rc)
        return rc;
    char *rec = malloc(PS_HEADER_SIZE + payload_len);
    if (rec == NULL)
        return PS_ERR_NOMEM;
    ps_header_write(rec, updated_ns, revision);
    if (payload_len)
        memcpy(rec + PS_HEADER_SIZE, payload, payload_len);
    size_t len = PS_HEADER_SIZE + payload_len;
    while ((rc = ps_apply_hist_load(t, key, key_len, rec, len)) == MDB_MAP_FULL) {
        rc = ps_txn_recover(t);
        if (rc)
            break;
    }
    if (rc == PS_OK)
        rc = ps_txn_log(t, PS_OP_HIST_LOAD, key, key_len, rec, len, 0, 0);
    free(rec);
    return ps_txn_note(t, rc);
}

int ps_history_ids(ps_txn *t, const char *kind, size_t kind_len,
                   const char *after, size_t after_len, uint64_t limit,
                   ps_buf *out)
{
    int rc = ps_txn_usable(t, 0);
    if (rc)
        return rc;
    if (out == NULL || (after == NULL && after_len))
        return PS_ERR_INVALID_ARG;
    char start[PS_MAX_KEY];
    size_t prefix_len, start_len;
    rc = ps_kind_prefix(kind, kind_len, start, &prefix_len);
    if (!rc && after_len)
        rc = ps_key_build(kind, kind_len, after, after_len, start, &start_len);
    else
        start_len = prefix_len;
    if (rc)
        return rc;
    MDB_cursor *cur;
    MDB_val k, v;
    rc = ps_cursor_from(t, t->env->history_dbi, start, start_len, after_len != 0,
                        &cur, &k, &v);
    if (cur == NULL)
        return ps_txn_note(t, rc);
    uint64_t n = 0;
    while (rc == PS_OK && k.mv_size > prefix_len &&
           memcmp(k.mv_data, start, prefix_len) == 0 && (limit == 0 || n < limit)) {
        rc = ps_buf_add(out, (const char *)k.mv_data + prefix_len,
                        k.mv_size - prefix_len);
        if (rc)
            break;
        n++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        rc = PS_OK;
    return ps_txn_note(t, rc);
}
