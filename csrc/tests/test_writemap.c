/* test_writemap.c -- the writemap mode through the public API: chosen by
 * filesystem for a new store, recorded and kept, the file allocated up to
 * the map at open and after every growth (ps_prealloc.c).
 * usage: test_writemap SCRATCH_DIR (on ext4, xfs or tmpfs for the writemap
 * checks; elsewhere the store must come out pwrite) */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "pystore_core.h"

static int failures;
static char scratch[4096];

#include "check.h"

static void path_of(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", scratch, name);
}

static ps_env *fresh(const char *name, uint64_t map_size)
{
    return fresh_store(scratch, name, map_size);
}

static struct stat data_stat(const char *name)
{
    char path[4300];
    struct stat st;
    memset(&st, 0, sizeof st);
    snprintf(path, sizeof path, "%s/%s/data.mdb", scratch, name);
    CHECK(stat(path, &st) == 0);
    return st;
}

static uint64_t map_of(ps_env *env)
{
    ps_env_info info;
    CHECK_RC(ps_env_get_info(env, &info), PS_OK);
    return info.map_size;
}

static int writemap_fs(void)
{
    struct statfs sf;
    if (statfs(scratch, &sf) != 0)
        return 0;
    unsigned long t = (unsigned long)sf.f_type;
    return t == 0xEF53ul || t == 0x58465342ul || t == 0x01021994ul;
}

static void test_new_store_and_growth(int wm)
{
    ps_env *env = fresh("grow", 0);
    if (env == NULL)
        return;
    CHECK(ps_env_writemap(env) == wm);
    uint64_t first = map_of(env);
    static char val[3000];
    memset(val, 'w', sizeof val);
    char id[16];
    for (int b = 0; b < 20; b++) {
        ps_txn *t;
        CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
        for (int i = 0; i < 200; i++) {
            snprintf(id, sizeof id, "k%05d", b * 200 + i);
            CHECK_RC(ps_put(t, S("G"), S(id), val, sizeof val, 7, 0), PS_OK);
        }
        CHECK_RC(ps_txn_commit(t), PS_OK);
        if (wm) { /* after every growth the file is the whole map, allocated */
            struct stat st = data_stat("grow");
            CHECK((uint64_t)st.st_size == map_of(env));
            CHECK((uint64_t)st.st_blocks * 512 >= (uint64_t)st.st_size);
        }
    }
    uint64_t last = map_of(env);
    if (wm) {
        CHECK(first <= ((uint64_t)8 << 20));
        /* 4,000 x 3 KB = ~12 MB of values: a few growth steps, not doublings
         * to 1 GiB, and the map stays within 1.5x of the pages in use */
        ps_env_info info;
        CHECK_RC(ps_env_get_info(env, &info), PS_OK);
        CHECK(last > first && last < info.used_bytes + info.used_bytes / 2 + ((uint64_t)4 << 20));
    }
    ps_env_free(env);
    /* reopened with a smaller map_size: the file's size wins, nothing shrinks */
    char path[4200];
    path_of(path, sizeof path, "grow");
    CHECK_RC(ps_env_open(path, 1 << 20, 0, &env), PS_OK);
    if (env) {
        CHECK(ps_env_writemap(env) == wm);
        if (wm)
            CHECK(map_of(env) == last && (uint64_t)data_stat("grow").st_size == last);
        ps_env_free(env);
    }
}

static void test_forced_pwrite_is_kept(void)
{
    setenv("PYSTORE_WRITEMAP", "0", 1);
    ps_env *env = fresh("forced", 0);
    unsetenv("PYSTORE_WRITEMAP");
    if (env == NULL)
        return;
    CHECK(ps_env_writemap(env) == 0);
    put_one(env, "K", "a", "x");
    ps_env_free(env);
    char path[4200];
    path_of(path, sizeof path, "forced");
    CHECK_RC(ps_env_open(path, 0, 0, &env), PS_OK);
    if (env) {
        CHECK(ps_env_writemap(env) == 0);
        put_one(env, "K", "b", "y");
        ps_env_free(env);
    }
}

int main(int argc, char **argv)
{
    snprintf(scratch, sizeof scratch, "%s", argc > 1 ? argv[1] : "/tmp/ps-test-wm");
    mkdir(scratch, 0700);
    unsetenv("PYSTORE_WRITEMAP");
    int wm = writemap_fs();
    test_new_store_and_growth(wm);
    test_forced_pwrite_is_kept();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("test_writemap: all checks passed (%s)\n", wm ? "writemap" : "pwrite filesystem");
    return 0;
}
