/* test_rev.c -- revisions, conditional writes, the change log, history.
 * usage: test_rev SCRATCH_DIR */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pystore_core.h"

static int failures;
static char scratch[4096];

#include "check.h"

static ps_env *fresh(const char *name, uint64_t map_size)
{
    return fresh_store(scratch, name, map_size);
}

static uint64_t rev_of(ps_env *env)
{
    uint64_t r = 99;
    CHECK_RC(ps_revision(env, &r), PS_OK);
    return r;
}

static uint64_t rec_rev(ps_env *env, const char *kind, const char *id)
{
    char buf[64];
    size_t n;
    int64_t ns;
    uint64_t r = 0;
    CHECK_RC(ps_get_into_rev(env, S(kind), S(id), buf, sizeof buf, &n, &ns, &r), PS_OK);
    return r;
}

static uint64_t count_changes(ps_env *env, uint64_t after)
{
    ps_txn *t;
    ps_buf buf = {0};
    uint64_t nr, comp;
    uint32_t ni;
    CHECK_RC(ps_txn_begin(env, 0, &t), PS_OK);
    CHECK_RC(ps_changes(t, after, UINT32_MAX, NULL, NULL, 0, NULL, NULL, 0, 0, &buf, &nr, &ni, &comp), PS_OK);
    uint64_t c = buf.count;
    ps_buf_free(&buf);
    ps_txn_abort(t);
    return c;
}

static void test_revisions(void)
{
    ps_env *env = fresh("revisions", 0);
    CHECK(rev_of(env) == 0);
    put_one(env, "A", "x", "1");
    CHECK(rev_of(env) == 1 && rec_rev(env, "A", "x") == 1);
    /* one revision per txn, shared by every change in it */
    ps_txn *t;
    uint64_t r = 0, actual = 0;
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_txn_pending(t, &r), PS_OK);
    CHECK(r == 0);
    CHECK_RC(ps_put(t, S("A"), S("y"), S("2"), 5, 0), PS_OK);
    CHECK_RC(ps_put(t, S("A"), S("z"), S("3"), 5, 0), PS_OK);
    CHECK_RC(ps_txn_pending(t, &r), PS_OK);
    CHECK(r == 2);
    CHECK_RC(ps_txn_commit_rev(t, &r), PS_OK);
    CHECK(r == 2 && rev_of(env) == 2 && rec_rev(env, "A", "z") == 2);
    /* a txn that changes nothing makes no revision */
    int existed = 1;
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_del(t, S("A"), S("missing"), &existed), PS_OK);
    CHECK(existed == 0);
    CHECK_RC(ps_txn_commit_rev(t, &r), PS_OK);
    CHECK(r == 0 && rev_of(env) == 2);
    /* rolled back: nothing */
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_put(t, S("A"), S("w"), S("4"), 5, 0), PS_OK);
    ps_txn_abort(t);
    CHECK(rev_of(env) == 2);
    /* conditional writes */
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_put_if(t, S("A"), S("x"), S("5"), 6, PS_PUT_IF_REVISION, 7, &actual),
             PS_ERR_CONFLICT);
    CHECK(actual == 1);
    CHECK_RC(ps_put_if(t, S("A"), S("new"), S("5"), 6, PS_PUT_IF_REVISION, 1, &actual),
             PS_ERR_CONFLICT);
    CHECK(actual == 0);
    CHECK_RC(ps_put_if(t, S("A"), S("new"), S("5"), 6, PS_PUT_IF_REVISION, 0, &actual), PS_OK);
    CHECK_RC(ps_put_if(t, S("A"), S("x"), S("5"), 6, PS_PUT_IF_REVISION, 1, &actual), PS_OK);
    CHECK_RC(ps_del_if(t, S("A"), S("y"), 1, 1, &actual, &existed), PS_ERR_CONFLICT);
    CHECK(actual == 2);
    CHECK_RC(ps_del_if(t, S("A"), S("y"), 1, 2, &actual, &existed), PS_OK);
    CHECK(existed == 1);
    CHECK_RC(ps_put(t, S("A"), S("bad"), S("5"), 6, PS_PUT_IF_REVISION), PS_ERR_INVALID_ARG);
    CHECK_RC(ps_txn_commit_rev(t, &r), PS_OK);
    CHECK(r == 3 && rec_rev(env, "A", "x") == 3);
    CHECK(count_changes(env, 0) == 1 + 2 + 3);
    CHECK(count_changes(env, 2) == 3);
    ps_env_free(env);
}

static void test_changes_filter_and_trim(void)
{
    ps_env *env = fresh("trim", 0);
    CHECK_RC(ps_env_set_keep_changes(env, 0), PS_ERR_INVALID_ARG);
    CHECK_RC(ps_env_set_keep_changes(env, 8), PS_OK);
    char id[16];
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof id, "i%d", i);
        put_one(env, i % 2 ? "Odd" : "Even", id, "v");
    }
    ps_txn *t;
    ps_buf buf = {0};
    uint64_t nr, comp;
    uint32_t ni;
    CHECK_RC(ps_txn_begin(env, 0, &t), PS_OK);
    CHECK_RC(ps_changes(t, 0, UINT32_MAX, NULL, NULL, 0, NULL, NULL, 0, 0, &buf, &nr, &ni, &comp),
             PS_ERR_COMPACTED);
    CHECK(comp >= 100 - 16 && comp <= 100 - 8);
    CHECK_RC(ps_changes(t, comp, UINT32_MAX, NULL, NULL, 0, NULL, NULL, 0, 0, &buf, &nr, &ni, &comp), PS_OK);
    CHECK(buf.count == 100 - comp && nr == 100 && ni == UINT32_MAX);
    ps_buf_free(&buf);
    const uint32_t lens[1] = {3};
    CHECK_RC(ps_changes(t, 96, UINT32_MAX, "Odd", lens, 1, NULL, NULL, 0, 0, &buf, &nr, &ni, &comp), PS_OK);
    CHECK(buf.count == 2); /* revisions 98 and 100 */
    ps_buf_free(&buf);
    CHECK_RC(ps_changes(t, 96, UINT32_MAX, NULL, NULL, 0, NULL, NULL, 0, 2, &buf, &nr, &ni, &comp), PS_OK);
    CHECK(buf.count == 2 && nr == 98 && ni == 0);
    ps_buf_free(&buf);
    ps_txn_abort(t);
    ps_env_free(env);
}

static void test_history(void)
{
    ps_env *env = fresh("history", 0);
    ps_txn *t;
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_history_set(t, S("V"), 2), PS_OK);
    CHECK_RC(ps_txn_commit(t), PS_OK);
    CHECK(rev_of(env) == 0); /* administrative: no revision */
    put_one(env, "V", "a", "one");   /* rev 1 */
    put_one(env, "V", "a", "two");   /* rev 2 */
    put_one(env, "V", "a", "three"); /* rev 3 */
    put_one(env, "V", "a", "four");  /* rev 4: keeps 3 and 2 */
    ps_buf buf = {0};
    const char *p;
    size_t n;
    int64_t ns;
    uint64_t keep = 0, dropped = 0;
    CHECK_RC(ps_txn_begin(env, 0, &t), PS_OK);
    CHECK_RC(ps_history_keep(t, S("V"), &keep), PS_OK);
    CHECK(keep == 2);
    CHECK_RC(ps_history(t, S("V"), S("a"), 0, &buf), PS_OK);
    CHECK(buf.count == 3);
    CHECK(buf.len >= 8 && buf.data[0] == 4);
    ps_buf_free(&buf);
    CHECK_RC(ps_history(t, S("V"), S("a"), 2, &buf), PS_OK);
    CHECK(buf.count == 2);
    ps_buf_free(&buf);
    CHECK_RC(ps_get_at(t, S("V"), S("a"), 2, &p, &n, &ns), PS_OK);
    CHECK(n == 3 && memcmp(p, "two", 3) == 0 && ns == 42);
    CHECK_RC(ps_get_at(t, S("V"), S("a"), 4, &p, &n, &ns), PS_OK);
    CHECK(n == 4 && memcmp(p, "four", 4) == 0);
    CHECK_RC(ps_get_at(t, S("V"), S("a"), 1, &p, &n, &ns), PS_LMDB_NOTFOUND);
    ps_txn_abort(t);
    /* delete moves the live version into the history */
    int existed;
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_del(t, S("V"), S("a"), &existed), PS_OK);
    CHECK_RC(ps_txn_commit(t), PS_OK);
    CHECK_RC(ps_txn_begin(env, 0, &t), PS_OK);
    CHECK_RC(ps_get_at(t, S("V"), S("a"), 4, &p, &n, &ns), PS_OK);
    CHECK_RC(ps_history(t, S("V"), S("a"), 0, &buf), PS_OK);
    CHECK(buf.count == 2);
    ps_buf_free(&buf);
    ps_txn_abort(t);
    uint64_t before = rev_of(env);
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_history_delete(t, S("V"), S("a"), &dropped), PS_OK);
    CHECK(dropped == 2);
    CHECK_RC(ps_txn_commit(t), PS_OK);
    CHECK(rev_of(env) == before);
    /* a kind delete drops its history */
    put_one(env, "V", "b", "1");
    put_one(env, "V", "b", "2");
    uint64_t deleted;
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_del_kind(t, S("V"), &deleted), PS_OK);
    CHECK_RC(ps_history(t, S("V"), S("b"), 0, &buf), PS_OK);
    CHECK(deleted == 1 && buf.count == 0);
    ps_buf_free(&buf);
    CHECK_RC(ps_txn_commit(t), PS_OK);
    ps_env_free(env);
}

/* Whether `buf` (u32 len, bytes entries) names `kind`. */
static int names(const ps_buf *buf, const char *kind)
{
    size_t off = 0, kl = strlen(kind);
    for (uint64_t i = 0; i < buf->count; i++) {
        uint32_t n;
        memcpy(&n, buf->data + off, 4);
        if (n == kl && memcmp(buf->data + off + 4, kind, kl) == 0)
            return 1;
        off += 4 + n;
    }
    return 0;
}

/* Kinds that keep something without records: a keep count, the kept
 * versions of deleted resources; not a kind that only had records. */
static void test_kinds_with_state(void)
{
    ps_env *env = fresh("kindstate", 0);
    ps_txn *t;
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_history_set(t, S("Keep"), 2), PS_OK);
    CHECK_RC(ps_history_set(t, S("Gone"), 2), PS_OK);
    CHECK_RC(ps_txn_commit(t), PS_OK);
    put_one(env, "Gone", "a", "one");
    put_one(env, "Gone", "a", "two");
    put_one(env, "Plain", "p", "x");
    int existed;
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_del(t, S("Gone"), S("a"), &existed), PS_OK);
    CHECK_RC(ps_history_set(t, S("Gone"), 0), PS_OK); /* versions stay */
    CHECK_RC(ps_del(t, S("Plain"), S("p"), &existed), PS_OK);
    CHECK_RC(ps_txn_commit(t), PS_OK);
    ps_buf buf = {0};
    CHECK_RC(ps_txn_begin(env, 0, &t), PS_OK);
    CHECK_RC(ps_kinds_with_state(t, NULL), PS_ERR_INVALID_ARG);
    CHECK_RC(ps_kinds_with_state(t, &buf), PS_OK);
    CHECK(names(&buf, "Keep") && names(&buf, "Gone") && !names(&buf, "Plain"));
    ps_buf_free(&buf);
    CHECK_RC(ps_kinds(t, &buf), PS_OK);
    CHECK(buf.count == 0);
    ps_buf_free(&buf);
    ps_txn_abort(t);
    ps_env_free(env);
}

/* Map growth mid-transaction replays the log: revisions, change log and
 * history must come out as if it had not happened. */
static void test_growth_replay(void)
{
    ps_env *env = fresh("growth", 1 << 16);
    ps_txn *t;
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_history_set(t, S("G"), 3), PS_OK);
    CHECK_RC(ps_txn_commit(t), PS_OK);
    put_one(env, "G", "k0", "first");
    static char val[3000];
    memset(val, 'v', sizeof val);
    char id[16];
    uint64_t r;
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    for (int i = 0; i < 300; i++) {
        snprintf(id, sizeof id, "k%d", i);
        CHECK_RC(ps_put(t, S("G"), S(id), val, sizeof val, 7, 0), PS_OK);
    }
    CHECK_RC(ps_txn_commit_rev(t, &r), PS_OK);
    CHECK(r == 2 && rev_of(env) == 2);
    CHECK(count_changes(env, 1) == 300);
    const char *p;
    size_t n;
    int64_t ns;
    CHECK_RC(ps_txn_begin(env, 0, &t), PS_OK);
    CHECK_RC(ps_get_at(t, S("G"), S("k0"), 1, &p, &n, &ns), PS_OK);
    CHECK(n == 5 && memcmp(p, "first", 5) == 0);
    ps_txn_abort(t);
    ps_env_free(env);
}

int main(int argc, char **argv)
{
    snprintf(scratch, sizeof scratch, "%s", argc > 1 ? argv[1] : "/tmp/ps-test-rev");
    mkdir(scratch, 0700);
    test_revisions();
    test_changes_filter_and_trim();
    test_history();
    test_kinds_with_state();
    test_growth_replay();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("test_rev: all checks passed\n");
    return 0;
}
