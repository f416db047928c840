/* test_core.c -- unit tests of the C core, run by CTest.
 * usage: test_core SCRATCH_DIR */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pystore_core.h"

static int failures;
static char scratch[4096];

#include "check.h"

static ps_env *fresh(const char *name, uint64_t map_size)
{
    return fresh_store(scratch, name, map_size);
}

static void test_roundtrip(void)
{
    ps_env *env = fresh("roundtrip", 0);
    put_one(env, "Agent", "a-1", "hello");
    ps_txn *t;
    const char *p;
    size_t n;
    int64_t ts;
    CHECK_RC(ps_txn_begin(env, 0, &t), PS_OK);
    CHECK_RC(ps_get(t, S("Agent"), S("a-1"), &p, &n, &ts), PS_OK);
    CHECK(n == 5 && memcmp(p, "hello", 5) == 0 && ts == 42);
    CHECK_RC(ps_get(t, S("Agent"), S("a-2"), &p, &n, &ts), PS_LMDB_NOTFOUND);
    CHECK_RC(ps_put(t, S("Agent"), S("a-3"), S("x"), 1, 0), PS_ERR_READONLY);
    ps_txn_abort(t);
    /* empty payload */
    put_one(env, "Agent", "empty", "");
    CHECK_RC(ps_txn_begin(env, 0, &t), PS_OK);
    CHECK_RC(ps_get(t, S("Agent"), S("empty"), &p, &n, &ts), PS_OK);
    CHECK(n == 0);
    ps_txn_abort(t);
    ps_env_free(env);
}

static void test_keys(void)
{
    CHECK_RC(ps_check_key(S("Agent"), S("x")), PS_OK);
    CHECK_RC(ps_check_key(S(""), S("x")), PS_ERR_KIND_EMPTY);
    CHECK_RC(ps_check_key(S("A/b"), S("x")), PS_ERR_KIND_SLASH);
    CHECK_RC(ps_check_key("A\0b", 3, S("x")), PS_ERR_KIND_NUL);
    CHECK_RC(ps_check_key(S("A"), S("")), PS_ERR_ID_EMPTY);
    CHECK_RC(ps_check_key(S("A"), "x\0y", 3), PS_ERR_ID_NUL);
    CHECK_RC(ps_check_key(S("A"), S("with/slash")), PS_OK);
    char big[600];
    memset(big, 'x', sizeof big);
    CHECK_RC(ps_check_key(S("A"), big, 509), PS_OK);   /* 1 + 1 + 509 = 511 */
    CHECK_RC(ps_check_key(S("A"), big, 510), PS_ERR_KEY_TOO_LONG);
    CHECK_RC(ps_check_key(big, 511, S("x")), PS_ERR_KEY_TOO_LONG);
    CHECK_RC(ps_check_key(big, SIZE_MAX, big, SIZE_MAX), PS_ERR_KEY_TOO_LONG);
    CHECK_RC(ps_check_key(S("A"), big, SIZE_MAX), PS_ERR_KEY_TOO_LONG);
}

static uint64_t count(ps_env *env, const char *kind)
{
    ps_txn *t;
    uint64_t n = 99999;
    CHECK_RC(ps_txn_begin(env, 0, &t), PS_OK);
    CHECK_RC(ps_count(t, S(kind), &n), PS_OK);
    ps_txn_abort(t);
    return n;
}

static void test_prefixes_and_kinds(void)
{
    ps_env *env = fresh("prefix", 0);
    put_one(env, "Agent", "1", "a");
    put_one(env, "Agent", "2", "b");
    put_one(env, "Agents", "1", "c");
    put_one(env, "Agent0", "1", "d");
    put_one(env, "AgentExecution", "1", "e");
    CHECK(count(env, "Agent") == 2);
    CHECK(count(env, "Agents") == 1);
    CHECK(count(env, "Agen") == 0);

    ps_txn *t;
    ps_buf buf = {0};
    CHECK_RC(ps_txn_begin(env, 0, &t), PS_OK);
    CHECK_RC(ps_kinds(t, &buf), PS_OK);
    CHECK(buf.count == 4);
    /* Agent, Agent0, AgentExecution, Agents: byte order */
    CHECK(buf.len == 4 * 4 + 5 + 6 + 14 + 6);
    CHECK(memcmp(buf.data + 4, "Agent", 5) == 0);
    ps_buf_free(&buf);

    CHECK_RC(ps_list(t, S("Agent"), NULL, 0, 0, &buf), PS_OK);
    CHECK(buf.count == 2);
    ps_buf_free(&buf);
    CHECK_RC(ps_list(t, S("Agent"), S("1"), 0, &buf), PS_OK);
    CHECK(buf.count == 1 && buf.len == 24 + 1 + 1);
    CHECK(buf.len >= 26 && buf.data[24] == '2' && buf.data[25] == 'b');
    ps_buf_free(&buf);
    CHECK_RC(ps_list(t, S("Agent"), NULL, 0, 1, &buf), PS_OK);
    CHECK(buf.count == 1);
    ps_buf_free(&buf);
    ps_txn_abort(t);

    uint64_t deleted = 0;
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_del_kind(t, S("Agent"), &deleted), PS_OK);
    CHECK(deleted == 2);
    CHECK_RC(ps_txn_commit(t), PS_OK);
    CHECK(count(env, "Agent") == 0);
    CHECK(count(env, "Agents") == 1);
    CHECK(count(env, "Agent0") == 1);
    ps_env_free(env);
}

static void test_create_and_delete(void)
{
    ps_env *env = fresh("create", 0);
    ps_txn *t;
    int existed = -1;
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_put(t, S("K"), S("1"), S("v"), 1, PS_PUT_NOOVERWRITE), PS_OK);
    CHECK_RC(ps_put(t, S("K"), S("1"), S("w"), 1, PS_PUT_NOOVERWRITE), PS_LMDB_KEYEXIST);
    /* KEYEXIST leaves the transaction usable */
    CHECK_RC(ps_del(t, S("K"), S("nope"), &existed), PS_OK);
    CHECK(existed == 0);
    CHECK_RC(ps_txn_commit(t), PS_OK);
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_del(t, S("K"), S("1"), &existed), PS_OK);
    CHECK(existed == 1);
    ps_txn_abort(t); /* rolled back */
    CHECK(count(env, "K") == 1);
    /* a second write txn on the same thread is refused, not a deadlock */
    ps_txn *t2 = NULL;
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t2), EDEADLK);
    CHECK(t2 == NULL);
    ps_txn_abort(t);
    ps_env_free(env);
}

static void test_growth(void)
{
    ps_env *env = fresh("growth", 1 << 20);
    char *val = malloc(1 << 20);
    memset(val, 'g', 1 << 20);
    ps_txn *t;
    /* 50 MiB in one txn, then 20 single-commit 1 MiB writes */
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    for (int i = 0; i < 50; i++) {
        char id[16];
        snprintf(id, sizeof id, "b%03d", i);
        CHECK_RC(ps_put(t, S("Big"), S(id), val, 1 << 20, 7, 0), PS_OK);
    }
    CHECK_RC(ps_txn_commit(t), PS_OK);
    for (int i = 0; i < 20; i++) {
        char id[16];
        snprintf(id, sizeof id, "s%03d", i);
        CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
        CHECK_RC(ps_put(t, S("Big"), S(id), val, 1 << 20, 7, PS_PUT_BORROW), PS_OK);
        CHECK_RC(ps_txn_commit(t), PS_OK);
    }
    CHECK(count(env, "Big") == 70);
    ps_env_info info;
    CHECK_RC(ps_env_get_info(env, &info), PS_OK);
    CHECK(info.map_size >= 70u << 20);
    CHECK(info.entries == 70);
    const char *p;
    size_t n;
    int64_t ts;
    CHECK_RC(ps_txn_begin(env, 0, &t), PS_OK);
    CHECK_RC(ps_get(t, S("Big"), S("b049"), &p, &n, &ts), PS_OK);
    CHECK(n == 1 << 20 && p[0] == 'g' && p[n - 1] == 'g' && ts == 7);
    ps_txn_abort(t);
    free(val);
    ps_env_free(env);
}

static void test_closed_and_readonly(void)
{
    ps_env *env = fresh("closed", 0);
    put_one(env, "A", "1", "x");
    char path[4200];
    snprintf(path, sizeof path, "%s/closed", scratch);
    ps_env *ro = NULL;
    CHECK_RC(ps_env_open(path, 0, PS_OPEN_READONLY, &ro), PS_OK);
    ps_txn *t = NULL;
    CHECK_RC(ps_txn_begin(ro, PS_TXN_WRITE, &t), PS_ERR_READONLY);
    CHECK(count(ro, "A") == 1);
    put_one(env, "A", "2", "y");
    CHECK(count(ro, "A") == 2); /* sees the writer's commit */
    ps_env_free(ro);

    ps_env_close(env);
    ps_env_close(env); /* idempotent */
    CHECK(ps_env_is_closed(env));
    CHECK_RC(ps_txn_begin(env, 0, &t), PS_ERR_CLOSED);
    ps_env_free(env);

    struct stat st;
    snprintf(path, sizeof path, "%s/closed/data.mdb", scratch);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);

    snprintf(path, sizeof path, "%s/missing-dir", scratch);
    CHECK_RC(ps_env_open(path, 0, PS_OPEN_READONLY, &ro), ENOENT);
    CHECK(ro == NULL);
}

static void test_bad_records(void)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/garbage", scratch);
    mkdir(path, 0700);
    char file[4300];
    snprintf(file, sizeof file, "%s/data.mdb", path);
    FILE *f = fopen(file, "wb");
    for (int i = 0; i < 4096; i++)
        fputc((i * 7919) & 0xff, f);
    fclose(f);
    ps_env *env = NULL;
    int rc = ps_env_open(path, 0, 0, &env);
    CHECK(rc != PS_OK && env == NULL);
    CHECK(strlen(ps_strerror(rc)) > 0);

    /* every code has a description */
    for (int code = -31015; code <= -31000; code++)
        CHECK(strcmp(ps_strerror(code), "") != 0);
    CHECK(strstr(ps_strerror(PS_LMDB_MAP_FULL), "MDB_MAP_FULL") != NULL);
}

static void test_meta(void)
{
    ps_env *env = fresh("meta", 0);
    ps_txn *t;
    const char *v;
    size_t n;
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_meta_put(t, S("schema/Agent"), S("descriptor")), PS_OK);
    CHECK_RC(ps_txn_commit(t), PS_OK);
    CHECK_RC(ps_txn_begin(env, 0, &t), PS_OK);
    CHECK_RC(ps_meta_get(t, S("schema/Agent"), &v, &n), PS_OK);
    CHECK(n == 10 && memcmp(v, "descriptor", 10) == 0);
    CHECK_RC(ps_meta_get(t, S("format_version"), &v, &n), PS_OK);
    /* 3: the writemap mode's marker (same data format) */
    CHECK(n == 4 && v[0] == (ps_env_writemap(env) ? PS_STORE_FORMAT_WRITEMAP : PS_FORMAT_VERSION));
    ps_txn_abort(t);
    ps_env_free(env);
}

int main(int argc, char **argv)
{
    snprintf(scratch, sizeof scratch, "%s", argc > 1 ? argv[1] : "/tmp/pystore-ctest");
    mkdir(scratch, 0700);
    test_keys();
    test_roundtrip();
    test_prefixes_and_kinds();
    test_create_and_delete();
    test_growth();
    test_closed_and_readonly();
    test_bad_records();
    test_meta();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("all core tests passed\n");
    return 0;
}
