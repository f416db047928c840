/* test_bounds.c -- where the core finds data.mdb's map (ps_bounds.c).
 * The base taken from a page header (read in a read txn) must be the
 * mapping /proc/self/maps shows: at open, after the map grows, in both
 * write modes, with two stores open in one process (two maps whose meta
 * pages look alike), and for a read-only handle; a damaged page number
 * pointing at meta-like bytes elsewhere is not believed; and a store of
 * LMDB pages larger than the system's (its base from /proc).
 * usage: test_bounds SCRATCH_DIR */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int failures;

#include "check.h"
#include "ps_internal.h"

/* The base the core found is the mapping /proc shows, and it was found. */
static void check_base(ps_env *e, const char *when)
{
    const char *proc = ps_bounds_proc_base(e->sh);
    if (proc == NULL || e->sh->map_base != proc) {
        fprintf(stderr, "%s: map_base %p, /proc/self/maps %p\n", when,
                (const void *)e->sh->map_base, (const void *)proc);
        failures++;
    }
}

/* n records of ~2 KB in one txn (the map grows on the way). */
static void fill(ps_env *e, const char *kind, int n)
{
    static char val[2000];
    memset(val, 'v', sizeof val - 1);
    ps_txn *t;
    CHECK_RC(ps_txn_begin(e, PS_TXN_WRITE, &t), PS_OK);
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "id-%06d", i);
        CHECK_RC(ps_put(t, S(kind), S(id), S(val), 1, 0), PS_OK);
    }
    CHECK_RC(ps_txn_commit(t), PS_OK);
}

static void one_mode(const char *root, const char *name, const char *writemap)
{
    char a[4200], b[4200], na[64], nb[64];
    snprintf(na, sizeof na, "%s-a", name);
    snprintf(nb, sizeof nb, "%s-b", name);
    fresh_path(root, na, a, sizeof a);
    fresh_path(root, nb, b, sizeof b);
    setenv("PYSTORE_WRITEMAP", writemap, 1);
    ps_env *ea = NULL, *eb = NULL;
    CHECK_RC(ps_env_open(a, 0, PS_OPEN_NOSYNC, &ea), PS_OK);
    CHECK_RC(ps_env_open(b, 0, PS_OPEN_NOSYNC, &eb), PS_OK);
    if (!ea || !eb)
        return;
    fill(ea, "Agent", 10);
    fill(eb, "Agent", 10);
    check_base(ea, "a at open");
    check_base(eb, "b at open");
    size_t before = ea->sh->map_len;
    fill(ea, "Agent", 5000); /* ~10 MB: a writemap map (1 MiB at first) grows */
    CHECK(ea->sh->map_len > before || !ea->sh->writemap);
    check_base(ea, "a after growth");
    check_base(eb, "b beside it");
    ps_env_close(ea);
    ps_env_free(ea);
    ps_env_close(eb);
    ps_env_free(eb);
    /* reopened (an existing store: its main database is not empty) */
    CHECK_RC(ps_env_open(a, 0, PS_OPEN_NOSYNC, &ea), PS_OK);
    if (ea) {
        check_base(ea, "a reopened");
        ps_env_close(ea);
        ps_env_free(ea);
    }
    CHECK_RC(ps_env_open(a, 0, PS_OPEN_READONLY, &ea), PS_OK);
    if (ea) {
        check_base(ea, "a read-only");
        ps_env_close(ea);
        ps_env_free(ea);
    }
    unsetenv("PYSTORE_WRITEMAP");
}

/* The page of the main database's first key of `e`'s map. */
static char *first_key_page(ps_env *e)
{
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *cur;
    MDB_val k, v;
    char *page = NULL;
    if (mdb_txn_begin(e->sh->mdb, NULL, MDB_RDONLY, &txn) != 0)
        return NULL;
    if (mdb_dbi_open(txn, NULL, 0, &dbi) == 0 && mdb_cursor_open(txn, dbi, &cur) == 0) {
        if (mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0)
            page = (char *)((uintptr_t)k.mv_data & ~(uintptr_t)(e->sh->psize - 1));
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    return page;
}

/* A damaged page number must not make meta-like bytes elsewhere the map's
 * start: two pages below the first key's page are given the flags and
 * magic of meta pages (what a record's bytes, or another store's map,
 * could hold), and the first key's page the page number that points there.
 * The core must still find the base /proc shows.  Writemap, so the test
 * writes the pages in place; everything is put back before the next txn
 * (the core's own read txn reads only the first key's page). */
static void forged_meta(const char *root)
{
    setenv("PYSTORE_WRITEMAP", "1", 1);
    ps_env *e = fresh_store(root, "forged", 0);
    unsetenv("PYSTORE_WRITEMAP");
    if (!e)
        return;
    for (int i = 0; i < 4; i++)
        fill(e, "Agent", 10);
    size_t psize = e->sh->psize;
    char *page = first_key_page(e), *base = (char *)ps_bounds_proc_base(e->sh);
    CHECK(e->sh->writemap);
    CHECK(page != NULL && base != NULL);
    uint64_t pgno = page && base ? (uint64_t)(page - base) / psize : 0;
    if (pgno < 4 || !e->sh->writemap) {
        printf("test_bounds: forged meta: first key on page %" PRIu64 ", skipped\n", pgno);
    } else {
        char *fake = page - 2 * psize, saved[2][64];
        uint64_t saved_pgno, points = 2; /* page - 2 pages: "the map's start" */
        uint16_t meta_flags = 0x08;
        uint32_t magic = 0xBEEFC0DEu;
        for (int i = 0; i < 2; i++) {
            memcpy(saved[i], fake + i * psize, 64);
            memcpy(fake + i * psize + 10, &meta_flags, 2);
            memcpy(fake + i * psize + 16, &magic, 4);
        }
        memcpy(&saved_pgno, page, 8);
        memcpy(page, &points, 8);
        CHECK_RC(ps_bounds_refresh(e->sh), PS_OK);
        memcpy(page, &saved_pgno, 8);
        for (int i = 0; i < 2; i++)
            memcpy(fake + i * psize, saved[i], 64);
        CHECK(e->sh->map_base != fake);
        check_base(e, "a page number pointing at forged meta pages");
    }
    ps_env_close(e);
    ps_env_free(e);
}

/* While set, this executable's sysconf answers 16384 for _SC_PAGESIZE
 * (LMDB takes a new file's page size from sysconf): a store made so is one
 * made on a 16 KiB-page machine (arm64 for one) and copied here.  Unset,
 * the system's own answer. */
static int fake_page;

extern long __sysconf(int name);

long sysconf(int name)
{
    if (fake_page && name == _SC_PAGESIZE)
        return 16384;
    return __sysconf(name);
}

/* A store whose LMDB pages are larger than this system's (LMDB keeps the
 * page size recorded in the file): opening it finds the base /proc shows
 * without writing past any buffer (mincore's vector, one byte per OS page,
 * was sized for two: an overrun `make sanitize` reports), and reads every
 * record back. */
static void large_pages(const char *root)
{
    if (__sysconf(_SC_PAGESIZE) >= 16384) {
        printf("test_bounds: large pages: pages of 16 KiB or more already, skipped\n");
        return;
    }
    enum { N = 50 };
    char path[4200], id[32], val[64];
    setenv("PYSTORE_WRITEMAP", "0", 1); /* the pwrite mode: no fallocate steps */
    fake_page = 1;
    ps_env *e = fresh_store(root, "psize", 0);
    if (e == NULL)
        return;
    ps_txn *t;
    CHECK_RC(ps_txn_begin(e, PS_TXN_WRITE, &t), PS_OK);
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "id-%04d", i);
        snprintf(val, sizeof val, "value %d", i);
        CHECK_RC(ps_put(t, S("Agent"), S(id), S(val), 1, 0), PS_OK);
    }
    CHECK_RC(ps_txn_commit(t), PS_OK);
    CHECK(e->sh->psize == 16384);
    ps_env_close(e);
    ps_env_free(e);
    fake_page = 0;
    snprintf(path, sizeof path, "%s/psize", root);
    /* opened here, several times (the map lands at other addresses) */
    for (int round = 0; round < 8; round++) {
        e = NULL;
        CHECK_RC(ps_env_open(path, 0, PS_OPEN_NOSYNC, &e), PS_OK);
        if (e == NULL)
            break;
        CHECK(e->sh->psize == 16384);
        check_base(e, "a store of 16 KiB pages, reopened");
        CHECK_RC(ps_txn_begin(e, 0, &t), PS_OK);
        for (int i = 0; i < N && t != NULL; i++) {
            const char *p;
            size_t len;
            int64_t ts;
            snprintf(id, sizeof id, "id-%04d", i);
            snprintf(val, sizeof val, "value %d", i);
            CHECK_RC(ps_get(t, S("Agent"), S(id), &p, &len, &ts), PS_OK);
            CHECK(len == strlen(val) && memcmp(p, val, len) == 0);
        }
        if (t != NULL)
            ps_txn_abort(t);
        ps_env_close(e);
        ps_env_free(e);
    }
    unsetenv("PYSTORE_WRITEMAP");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_bounds SCRATCH_DIR\n");
        return 2;
    }
    one_mode(argv[1], "wm", "1");
    one_mode(argv[1], "pw", "0");
    forged_meta(argv[1]);
    large_pages(argv[1]);
    if (failures)
        fprintf(stderr, "test_bounds: %d failure(s)\n", failures);
    else
        printf("test_bounds: ok\n");
    return failures != 0;
}
