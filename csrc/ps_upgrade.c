/* ps_upgrade.c -- format 1 -> format 2, in place, in one write txn.
 *
 * Format 1 records have a 12-byte header (version 1, flags, reserved,
 * updated_ns); format 2 adds a u64 revision (20 bytes).  Every record is
 * rewritten with the same updated_ns and payload and the revision of the
 * upgrade (meta `revision` + 1, i.e. 1 for a store that has none), then
 * meta `revision` and `format_version` are set.  The caller commits the
 * txn, so the upgrade happens whole or not at all.  A record whose header
 * is not format 1 stops the upgrade (PS_ERR_BAD_RECORD): nothing is
 * changed and nothing guessed.
 */
#include <stdlib.h>
#include <string.h>

#include "ps_internal.h"

#define V1_HEADER 12

int ps_upgrade_v1(ps_env *e, MDB_txn *txn)
{
    uint64_t last;
    int rc = ps_last_revision(txn, e, &last);
    if (rc)
        return rc;
    uint64_t rev = last + 1;
    MDB_cursor *cur;
    rc = mdb_cursor_open(txn, e->res_dbi, &cur);
    if (rc)
        return rc;
    char key[PS_MAX_KEY];
    char *buf = NULL;
    size_t cap = 0;
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == PS_OK;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const char *p = v.mv_data;
        if (v.mv_size < V1_HEADER || p[0] != 1 || k.mv_size > PS_MAX_KEY ||
            v.mv_size - V1_HEADER > PS_MAX_PAYLOAD) {
            rc = PS_ERR_BAD_RECORD;
            break;
        }
        size_t len = v.mv_size - V1_HEADER + PS_HEADER_SIZE;
        if (len > cap) {
            char *nb = realloc(buf, len);
            if (nb == NULL) {
                rc = PS_ERR_NOMEM;
                break;
            }
            buf = nb;
            cap = len;
        }
        ps_header_write(buf, ps_get_i64(p + 4), rev);
        memcpy(buf + PS_HEADER_SIZE, p + V1_HEADER, v.mv_size - V1_HEADER);
        memcpy(key, k.mv_data, k.mv_size);
        MDB_val nk = {k.mv_size, key}, nv = {len, buf};
        rc = mdb_put(txn, e->res_dbi, &nk, &nv, 0);
        if (rc)
            break;
        /* Stand on the rewritten record again, then go on. */
        rc = mdb_cursor_get(cur, &nk, &v, MDB_SET);
        if (rc)
            break;
    }
    mdb_cursor_close(cur);
    free(buf);
    if (rc != MDB_NOTFOUND)
        return rc ? rc : PS_ERR_BAD_RECORD;
    char b[8], ver[4];
    ps_put_u64(b, rev);
    ps_put_u32(ver, PS_FORMAT_VERSION);
    MDB_val rk = {sizeof PS_META_REVISION - 1, (void *)PS_META_REVISION}, rv = {8, b};
    MDB_val fk = {sizeof PS_META_FORMAT - 1, (void *)PS_META_FORMAT}, fv = {4, ver};
    rc = mdb_put(txn, e->meta_dbi, &rk, &rv, 0);
    if (!rc)
        rc = mdb_put(txn, e->meta_dbi, &fk, &fv, 0);
    return rc;
}
