/* test_reliability.c -- hostile files and error-table checks of the core.
 * usage: test_reliability SCRATCH_DIR
 * Every case opens a damaged store and must get an error code back: a
 * crash (SIGBUS, SIGSEGV) fails the test run itself. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int failures;
static char scratch[4096];

#include "check.h"

/* A store of `n` records of 1000 bytes each; returns the size of data.mdb
 * up to its last page in use (in the writemap mode the file is the whole
 * preallocated map, past that). */
static off_t fill(const char *path, int n)
{
    ps_env *env = NULL;
    CHECK_RC(ps_env_open(path, 0, PS_OPEN_NOSYNC, &env), PS_OK);
    if (env == NULL)
        return 0;
    char val[1000], id[32];
    memset(val, 'v', sizeof val);
    ps_txn *t;
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof id, "id-%05d", i);
        CHECK_RC(ps_put(t, S("Agent"), S(id), val, sizeof val, i, 0), PS_OK);
    }
    CHECK_RC(ps_txn_commit(t), PS_OK);
    ps_env_info info;
    CHECK_RC(ps_env_get_info(env, &info), PS_OK);
    ps_env_free(env);
    char file[4400];
    snprintf(file, sizeof file, "%s/data.mdb", path);
    struct stat sb;
    CHECK(stat(file, &sb) == 0);
    return (uint64_t)sb.st_size < info.used_bytes ? sb.st_size : (off_t)info.used_bytes;
}

static void truncate_to(const char *path, off_t size)
{
    char file[4400];
    snprintf(file, sizeof file, "%s/data.mdb", path);
    CHECK(truncate(file, size) == 0);
}

/* data.mdb cut short used to SIGBUS on the first page read. */
static void test_truncated(void)
{
    char path[4200];
    fresh_path(scratch, "truncated", path, sizeof path);
    off_t full = fill(path, 300);
    CHECK(full > 65536);
    off_t cuts[] = {full - 4096, full / 2, 3 * 4096, 2 * 4096};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        truncate_to(path, cuts[i]);
        for (unsigned flags = 0; flags <= PS_OPEN_READONLY; flags += PS_OPEN_READONLY) {
            ps_env *env = NULL;
            int rc = ps_env_open(path, 0, flags, &env);
            CHECK_RC(rc, PS_ERR_TRUNCATED);
            CHECK(env == NULL);
            if (env)
                ps_env_free(env);
        }
    }
    /* Below two pages LMDB itself refuses the meta pages. */
    truncate_to(path, 4096);
    ps_env *env = NULL;
    int rc = ps_env_open(path, 0, 0, &env);
    CHECK(rc != PS_OK && env == NULL);
}

/* Pages a transaction allocated and freed again are never written, so an
 * intact file may end before the last page number in use (found by the
 * fuzzer: the first size check refused such a store).  Made here by
 * raising mm_last_pg in both meta pages: pages past the end of the file
 * that nothing references, which is what such a store holds. */
static void test_free_pages_past_the_end(void)
{
    char path[4200];
    fresh_path(scratch, "free-tail", path, sizeof path);
    off_t size = fill(path, 50);
    char file[4400];
    snprintf(file, sizeof file, "%s/data.mdb", path);
    FILE *f = fopen(file, "r+b");
    CHECK(f != NULL);
    if (f == NULL)
        return;
    for (long page = 0; page < 2; page++) {
        uint64_t last;
        CHECK(fseek(f, page * 4096 + 136, SEEK_SET) == 0); /* MDB_meta.mm_last_pg */
        CHECK(fread(&last, sizeof last, 1, f) == 1);
        CHECK((off_t)((last + 1) * 4096) <= size);
        last = (uint64_t)size / 4096 + 1; /* two pages past the end */
        CHECK(fseek(f, page * 4096 + 136, SEEK_SET) == 0);
        CHECK(fwrite(&last, sizeof last, 1, f) == 1);
    }
    fclose(f);
    for (unsigned flags = 0; flags <= PS_OPEN_READONLY; flags += PS_OPEN_READONLY) {
        ps_env *env = NULL;
        CHECK_RC(ps_env_open(path, 0, flags, &env), PS_OK);
        ps_env_info info;
        if (env && ps_env_get_info(env, &info) == PS_OK)
            CHECK(info.used_bytes > (uint64_t)size && info.entries == 50);
        ps_env_free(env);
    }
    /* Cut into the pages in use, though, and it is refused. */
    truncate_to(path, 3 * 4096);
    ps_env *env = NULL;
    CHECK_RC(ps_env_open(path, 0, PS_OPEN_READONLY, &env), PS_ERR_TRUNCATED);
    CHECK(env == NULL);
}

/* An intact store passes the size check, also after growth and reopen. */
static void test_intact_sizes(void)
{
    char path[4200];
    fresh_path(scratch, "intact", path, sizeof path);
    fill(path, 10);
    ps_env *env = NULL;
    CHECK_RC(ps_env_open(path, 1 << 20, 0, &env), PS_OK);
    if (env == NULL)
        return;
    char *big = calloc(1, 3 << 20);
    ps_txn *t;
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_put(t, S("Blob"), S("b"), big, 3 << 20, 1, 0), PS_OK);
    CHECK_RC(ps_txn_commit(t), PS_OK);
    free(big);
    ps_env_free(env);
    env = NULL;
    CHECK_RC(ps_env_open(path, 0, PS_OPEN_READONLY, &env), PS_OK);
    ps_env_free(env);
}

/* Sizes over the limits are refused before any byte is read: the payload
 * pointer below is valid for 1 byte only. */
static void test_limits(void)
{
    char path[4200];
    fresh_path(scratch, "limits", path, sizeof path);
    ps_env *env = NULL;
    CHECK_RC(ps_env_open(path, 0, PS_OPEN_NOSYNC, &env), PS_OK);
    if (env == NULL)
        return;
    char one = 'x';
    char key[600];
    memset(key, 'k', sizeof key);
    ps_txn *t;
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_put(t, S("A"), S("x"), &one, (size_t)PS_MAX_PAYLOAD + 1, 1, 0),
             PS_ERR_VALUE_TOO_LARGE);
    CHECK_RC(ps_put(t, S("A"), S("x"), &one, SIZE_MAX, 1, 0), PS_ERR_VALUE_TOO_LARGE);
    CHECK_RC(ps_put(t, S("A"), S("x"), NULL, 5, 1, 0), PS_ERR_INVALID_ARG);
    CHECK_RC(ps_put(t, S("A"), key, 510, &one, 1, 1, 0), PS_ERR_KEY_TOO_LONG);
    CHECK_RC(ps_put(t, S("A"), S("x"), &one, 1, 1, 99), PS_ERR_INVALID_ARG);
    CHECK_RC(ps_meta_put(t, S("m"), &one, (size_t)PS_MAX_PAYLOAD + 1), PS_ERR_INVALID_ARG);
    CHECK_RC(ps_meta_put(t, key, 512, &one, 1), PS_ERR_INVALID_ARG);
    /* None of that spoiled the transaction. */
    CHECK_RC(ps_put(t, S("A"), S("ok"), &one, 1, 1, 0), PS_OK);
    CHECK_RC(ps_txn_commit(t), PS_OK);
    uint64_t n = 0;
    CHECK_RC(ps_txn_begin(env, 0, &t), PS_OK);
    CHECK_RC(ps_count(t, S("A"), &n), PS_OK);
    CHECK(n == 1);
    ps_txn_abort(t);
    ps_env_free(env);
}

static void test_error_table(void)
{
    for (int code = -31016; code <= -31000; code++) {
        const char *s = ps_strerror(code);
        CHECK(s != NULL && strlen(s) > 0);
    }
    CHECK(strstr(ps_strerror(PS_ERR_TRUNCATED), "truncated") != NULL);
    CHECK(strstr(ps_strerror(ENOSPC), "space") != NULL);
}

int main(int argc, char **argv)
{
    snprintf(scratch, sizeof scratch, "%s", argc > 1 ? argv[1] : "/tmp/pystore-ctest-rel");
    mkdir(scratch, 0700);
    test_truncated();
    test_intact_sizes();
    test_free_pages_past_the_end();
    test_limits();
    test_error_table();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("test_reliability: all checks passed\n");
    return 0;
}
