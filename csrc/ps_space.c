/* ps_space.c -- how much of data.mdb holds live data (`pystore stats`),
 * and how many records its resources table says it holds (`pystore verify`).
 *
 * LMDB never shrinks its file: pages freed by deletes and by copy-on-write
 * go to the free list (LMDB's FREE_DBI, database 0) and are reused later.
 * A compacted copy (mdb_env_copy2 with MDB_CP_COMPACT) writes the two meta
 * pages and the pages of the live B-trees only, i.e. everything below the
 * high-water mark except the free pages and the free list's own tree. */
#include <string.h>

#include "ps_internal.h"

int ps_txn_space(ps_txn *t, ps_space *out)
{
    int rc = ps_txn_usable(t, 0);
    if (rc)
        return rc;
    if (out == NULL)
        return PS_ERR_INVALID_ARG;
    MDB_envinfo ei;
    MDB_stat fs;
    rc = mdb_env_info(t->env->mdb, &ei);
    if (!rc)
        rc = mdb_stat(t->mdb, 0, &fs); /* the free list's own tree */
    if (rc)
        return ps_txn_note(t, rc);
    MDB_cursor *cur;
    rc = mdb_cursor_open(t->mdb, 0, &cur);
    if (rc)
        return ps_txn_note(t, rc);
    /* Each free-list record: a txn id -> an ID list whose first word is
     * its number of page numbers. */
    uint64_t free_pages = 0;
    MDB_val k, v;
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == PS_OK) {
        if (v.mv_size < sizeof(size_t))
            continue;
        size_t count;
        memcpy(&count, v.mv_data, sizeof count);
        free_pages += count;
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        return ps_txn_note(t, rc);
    uint64_t high = (uint64_t)ei.me_last_pgno + 1;
    uint64_t freedb = fs.ms_branch_pages + fs.ms_leaf_pages + fs.ms_overflow_pages;
    memset(out, 0, sizeof *out);
    out->page_size = fs.ms_psize;
    out->high_pages = high;
    out->free_pages = free_pages + freedb <= high ? free_pages + freedb : high;
    out->live_pages = high - out->free_pages;
    return PS_OK;
}

int ps_txn_entries(ps_txn *t, uint64_t *out)
{
    int rc = ps_txn_usable(t, 0);
    if (rc)
        return rc;
    if (out == NULL)
        return PS_ERR_INVALID_ARG;
    MDB_stat st;
    rc = mdb_stat(t->mdb, t->env->res_dbi, &st);
    if (rc)
        return ps_txn_note(t, rc);
    *out = st.ms_entries;
    return PS_OK;
}
