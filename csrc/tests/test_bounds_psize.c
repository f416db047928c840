/* test_bounds_psize.c -- a store whose LMDB page size is larger than this
 * system's (made on a 16 KiB-page machine, arm64 for one, then copied
 * here: LMDB keeps the page size recorded in the file).  Opening it finds
 * the map's base (ps_bounds.c) without writing past any buffer (mincore's
 * vector of one byte per OS page was sized for two), finds the base
 * /proc/self/maps shows, and reads every record back.
 *
 * The store is made by the real LMDB told a page size of 16 KiB: this
 * executable's sysconf answers 16384 for _SC_PAGESIZE while `fake_page`
 * is set (LMDB takes its page size for a new file from sysconf), and the
 * system's own answer otherwise.  Meant to run under `make sanitize` too
 * (an overrun of a stack buffer is reported there).
 * usage: test_bounds_psize SCRATCH_DIR */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int failures;

#include "check.h"
#include "ps_internal.h"

static int fake_page;

extern long __sysconf(int name);

long sysconf(int name)
{
    if (fake_page && name == _SC_PAGESIZE)
        return 16384;
    return __sysconf(name);
}

static void check_base(ps_env *e, const char *when)
{
    const char *proc = ps_bounds_proc_base(e->sh);
    if (proc == NULL || e->sh->map_base != proc) {
        fprintf(stderr, "%s: map_base %p, /proc/self/maps %p\n", when,
                (const void *)e->sh->map_base, (const void *)proc);
        failures++;
    }
}

static void check_records(ps_env *e, int n)
{
    ps_txn *t;
    CHECK_RC(ps_txn_begin(e, 0, &t), PS_OK);
    if (t == NULL)
        return;
    for (int i = 0; i < n; i++) {
        char id[32], want[64];
        snprintf(id, sizeof id, "id-%04d", i);
        snprintf(want, sizeof want, "value %d", i);
        const char *p;
        size_t len;
        int64_t ts;
        CHECK_RC(ps_get(t, S("Agent"), S(id), &p, &len, &ts), PS_OK);
        CHECK(len == strlen(want) && memcmp(p, want, len) == 0);
    }
    ps_txn_abort(t);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_bounds_psize SCRATCH_DIR\n");
        return 2;
    }
    if (__sysconf(_SC_PAGESIZE) >= 16384) {
        printf("test_bounds_psize: skipped (pages of 16 KiB or more already)\n");
        return 0;
    }
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", argv[1], argv[1]);
    if (system(cmd) != 0)
        return 2;
    setenv("PYSTORE_WRITEMAP", "0", 1); /* the pwrite mode: no fallocate steps */
    enum { N = 50 };
    /* made on a "16 KiB-page system" */
    fake_page = 1;
    ps_env *e = NULL;
    CHECK_RC(ps_env_open(argv[1], 0, PS_OPEN_NOSYNC, &e), PS_OK);
    if (e == NULL)
        return 1;
    ps_txn *t;
    CHECK_RC(ps_txn_begin(e, PS_TXN_WRITE, &t), PS_OK);
    for (int i = 0; i < N; i++) {
        char id[32], val[64];
        snprintf(id, sizeof id, "id-%04d", i);
        snprintf(val, sizeof val, "value %d", i);
        CHECK_RC(ps_put(t, S("Agent"), S(id), S(val), 1, 0), PS_OK);
    }
    CHECK_RC(ps_txn_commit(t), PS_OK);
    CHECK(e->sh->psize == 16384);
    ps_env_close(e);
    ps_env_free(e);
    fake_page = 0;
    /* opened here, several times (the map lands at other addresses) */
    for (int round = 0; round < 8; round++) {
        CHECK_RC(ps_env_open(argv[1], 0, PS_OPEN_NOSYNC, &e), PS_OK);
        if (e == NULL)
            return 1;
        CHECK(e->sh->psize == 16384);
        check_base(e, "reopened");
        check_records(e, N);
        ps_env_close(e);
        ps_env_free(e);
    }
    unsetenv("PYSTORE_WRITEMAP");
    if (failures)
        fprintf(stderr, "test_bounds_psize: %d failure(s)\n", failures);
    else
        printf("test_bounds_psize: ok\n");
    return failures != 0;
}
