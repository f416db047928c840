/* ps_kindstate.c -- the kinds of a store: those holding records, and those
 * holding state besides their records.
 *
 * ps_kinds() skip-scans the record keys, one cursor jump per kind.  A kind
 * can also keep a history keep count (meta "history/KIND"), kept versions
 * (the history database, keys "KIND/ID") or a recorded schema (meta
 * "kind.type/KIND") after its last record was deleted, or before its first
 * was written: ps_kinds_with_state() names those, so that a dump leaves
 * nothing a kind keeps out.  That list may repeat a kind, and names a
 * schema of a kind too long for its meta key by that key's hash ("#" + 64
 * hex digits, pystore/_lmdb/schema.py): callers skip those.
 */
#include <string.h>

#include "ps_internal.h"

#define META_TYPE "kind.type/" /* pystore/_lmdb/schema.py TYPE_PREFIX */

/* Each key of `dbi` from `prefix` on: the bytes after the prefix, up to the
 * first '/' when `cut` (one entry per kind, the rest of it skipped). */
static int walk(ps_txn *t, MDB_dbi dbi, const char *prefix, size_t prefix_len,
                int cut, ps_buf *out)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(t->mdb, dbi, &cur);
    if (rc)
        return rc;
    char next[PS_MAX_KEY];
    MDB_val k = {prefix_len, (void *)prefix}, v;
    rc = mdb_cursor_get(cur, &k, &v, prefix_len ? MDB_SET_RANGE : MDB_FIRST);
    while (rc == PS_OK && k.mv_size >= prefix_len &&
           memcmp(k.mv_data, prefix, prefix_len) == 0) {
        const char *name = (const char *)k.mv_data + prefix_len;
        size_t len = k.mv_size - prefix_len;
        const char *slash = cut ? memchr(name, '/', len) : NULL;
        if (cut && slash == NULL) {
            rc = PS_ERR_BAD_RECORD; /* every record and history key holds a '/' */
            break;
        }
        if (slash != NULL)
            len = (size_t)(slash - name);
        rc = ps_buf_add(out, name, len);
        if (rc)
            break;
        if (slash == NULL) {
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            continue;
        }
        /* Skip the rest of this kind: '0' is the byte after '/'. */
        size_t skip = prefix_len + len;
        memcpy(next, k.mv_data, skip);
        next[skip] = '/' + 1;
        k.mv_size = skip + 1;
        k.mv_data = next;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? PS_OK : rc;
}

int ps_kinds(ps_txn *t, ps_buf *out)
{
    int rc = ps_txn_usable(t, 0);
    if (rc)
        return rc;
    if (out == NULL)
        return PS_ERR_INVALID_ARG;
    /* every record key holds a '/': one entry per kind */
    return ps_txn_note(t, walk(t, t->env->res_dbi, "", 0, 1, out));
}

int ps_kinds_with_state(ps_txn *t, ps_buf *out)
{
    int rc = ps_txn_usable(t, 0);
    if (rc)
        return rc;
    if (out == NULL)
        return PS_ERR_INVALID_ARG;
    rc = walk(t, t->env->meta_dbi, PS_META_HISTORY, sizeof PS_META_HISTORY - 1, 0, out);
    if (!rc)
        rc = walk(t, t->env->meta_dbi, META_TYPE, sizeof META_TYPE - 1, 0, out);
    if (!rc)
        rc = walk(t, t->env->history_dbi, "", 0, 1, out);
    return ps_txn_note(t, rc);
}
