/* test_fast.c -- the fast paths of the core: ps_get_into over parked read
 * txns, ps_list_wire, ps_put_many, ps_wire_strip.
 * usage: test_fast SCRATCH_DIR */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int failures;

#include "check.h"

static void test_get_into(ps_env *env)
{
    char buf[8];
    size_t n = 0;
    int64_t ns = 0;
    put_one(env, "Agent", "a1", "hello");
    put_one(env, "Agent", "big", "0123456789abcdef");
    CHECK_RC(ps_get_into(env, S("Agent"), S("a1"), buf, sizeof buf, &n, &ns), PS_OK);
    CHECK(n == 5 && ns == 42 && memcmp(buf, "hello", 5) == 0);
    /* too small: the length comes back, nothing is copied */
    memset(buf, 'x', sizeof buf);
    CHECK_RC(ps_get_into(env, S("Agent"), S("big"), buf, sizeof buf, &n, &ns), PS_OK);
    CHECK(n == 16 && buf[0] == 'x');
    CHECK_RC(ps_get_into(env, S("Agent"), S("nope"), buf, sizeof buf, &n, &ns), PS_LMDB_NOTFOUND);
    CHECK_RC(ps_get_into(env, S("A/b"), S("x"), buf, sizeof buf, &n, &ns), PS_ERR_KIND_SLASH);
    CHECK_RC(ps_get_into(env, S("Agent"), S("a1"), NULL, 4, &n, &ns), PS_ERR_INVALID_ARG);
    CHECK_RC(ps_get_into(NULL, S("Agent"), S("a1"), buf, 4, &n, &ns), PS_ERR_INVALID_ARG);
    /* a parked read txn never serves an old snapshot */
    for (int i = 0; i < 40; i++) {
        char v[16];
        snprintf(v, sizeof v, "v%d", i);
        put_one(env, "Agent", "a1", v);
        CHECK_RC(ps_get_into(env, S("Agent"), S("a1"), buf, sizeof buf, &n, &ns), PS_OK);
        CHECK(n == strlen(v) && memcmp(buf, v, n) == 0);
    }
}

static void test_list_wire(ps_env *env)
{
    put_one(env, "AgentX", "z", "other kind");
    put_one(env, "Agent", "empty", "");
    ps_txn *t;
    CHECK_RC(ps_txn_begin(env, 0, &t), PS_OK);
    ps_buf b = {0};
    CHECK_RC(ps_list_wire(t, S("Agent"), NULL, 0, 0, 1, &b), PS_OK);
    /* key order: a1 (v39), big (16 bytes), empty */
    const char want[] = "\x0a\x03v39\x0a\x10" "0123456789abcdef" "\x0a\x00";
    CHECK(b.count == 3 && b.len == sizeof want - 1 && memcmp(b.data, want, b.len) == 0);
    ps_buf_free(&b);
    memset(&b, 0, sizeof b);
    CHECK_RC(ps_list_wire(t, S("Agent"), S("a1"), 1, 300, &b), PS_OK); /* tag of field 300: 2 bytes */
    CHECK(b.count == 1 && b.len == 2 + 1 + 16 && (unsigned char)b.data[0] == 0xe2 &&
          b.data[1] == 0x12);
    ps_buf_free(&b);
    memset(&b, 0, sizeof b);
    CHECK_RC(ps_list_wire(t, S("Agent"), NULL, 0, 0, 0, &b), PS_ERR_INVALID_ARG);
    CHECK_RC(ps_list_wire(t, S("Agent"), NULL, 0, 0, 1u << 29, &b), PS_ERR_INVALID_ARG);
    ps_txn_abort(t);
}

static void test_put_many(ps_env *env)
{
    ps_txn *t;
    size_t at = 99;
    const char data[] = "id1AAid2BBB";
    uint32_t lens[] = {3, 2, 3, 3};
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_put_many(t, S("Many"), data, sizeof data - 1, lens, 2, 7, 0, &at), PS_OK);
    /* a bad id in the second record: nothing of the batch is written */
    const char bad[] = "id3Cid\0D";
    uint32_t bad_lens[] = {3, 1, 3, 1};
    CHECK_RC(ps_put_many(t, S("Many"), bad, sizeof bad - 1, bad_lens, 2, 7, 0, &at), PS_ERR_ID_NUL);
    CHECK(at == 1);
    uint32_t short_lens[] = {3, 2, 3, 9};
    CHECK_RC(ps_put_many(t, S("Many"), data, sizeof data - 1, short_lens, 2, 7, 0, &at),
             PS_ERR_INVALID_ARG);
    uint64_t count = 0;
    CHECK_RC(ps_count(t, S("Many"), &count), PS_OK);
    CHECK(count == 2);
    CHECK_RC(ps_txn_commit(t), PS_OK);
    char buf[8];
    size_t n;
    int64_t ns;
    CHECK_RC(ps_get_into(env, S("Many"), S("id2"), buf, sizeof buf, &n, &ns), PS_OK);
    CHECK(n == 3 && memcmp(buf, "BBB", 3) == 0 && ns == 7);
}

static void test_strip(void)
{
    /* root: drop field 4, descend into field 1 (node at 5: drop field 2) */
    const uint32_t plan[] = {2, 4, PS_STRIP_DROP, 1, 5, 1, 2, PS_STRIP_DROP};
    /* field 1 = {field 1: "ab", field 2: "xyz"}, field 4 = "org", field 3 varint 5 */
    const char in[] = "\x0a\x09\x0a\x02" "ab" "\x12\x03" "xyz" "\x22\x03" "org" "\x18\x05";
    char out[64 + PS_STRIP_SLACK];
    size_t n = 0;
    CHECK_RC(ps_wire_strip(plan, 8, in, sizeof in - 1, out, sizeof out, &n), PS_OK);
    const char want[] = "\x0a\x04\x0a\x02" "ab" "\x18\x05";
    CHECK(n == sizeof want - 1 && memcmp(out, want, n) == 0);
    CHECK_RC(ps_wire_strip(plan, 8, "\x0b", 1, out, sizeof out, &n), PS_ERR_BAD_RECORD);
    CHECK_RC(ps_wire_strip(plan, 8, "\x0a\x05x", 3, out, sizeof out, &n), PS_ERR_BAD_RECORD);
    CHECK_RC(ps_wire_strip(plan, 8, in, sizeof in - 1, out, 4, &n), PS_ERR_NOMEM);
    const uint32_t bad_plan[] = {9, 1};
    CHECK_RC(ps_wire_strip(bad_plan, 2, "\x08\x01", 2, out, sizeof out, &n), PS_ERR_INVALID_ARG);
    const uint32_t loop_plan[] = {1, 1, 0}; /* field 1 recurses into itself */
    char deep[400];
    size_t len = 0;
    for (int i = 0; i < 150 && len + 2 < sizeof deep; i++) { /* ~60 nested levels of field 1 */
        memmove(deep + 2, deep, len);
        deep[0] = 0x0a;
        deep[1] = (char)len;
        len += 2;
        if (len > 120)
            break;
    }
    CHECK_RC(ps_wire_strip(loop_plan, 3, deep, len, out, sizeof out, &n), PS_OK);
    CHECK(n == len && memcmp(out, deep, n) == 0);
}

struct reader_arg {
    ps_env *env;
    int errors;
};

static void *reader(void *p)
{
    struct reader_arg *a = p;
    char buf[64];
    size_t n;
    int64_t ns;
    for (int i = 0; i < 2000; i++) {
        int rc = ps_get_into(a->env, S("Agent"), S("a1"), buf, sizeof buf, &n, &ns);
        if (rc != PS_OK && rc != PS_ERR_CLOSED)
            a->errors++;
    }
    return NULL;
}

static void test_parked_txns_and_close(const char *dir)
{
    ps_env *env = fresh_store(dir, "threads", 0);
    if (env == NULL)
        return;
    put_one(env, "Agent", "a1", "hello");
    pthread_t th[6];
    struct reader_arg args[6];
    for (int i = 0; i < 6; i++) {
        args[i] = (struct reader_arg){env, 0};
        pthread_create(&th[i], NULL, reader, &args[i]);
    }
    ps_env_close(env); /* waits for live txns; drains the parked ones */
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
        CHECK(args[i].errors == 0);
    }
    char buf[8];
    size_t n;
    int64_t ns;
    CHECK_RC(ps_get_into(env, S("Agent"), S("a1"), buf, sizeof buf, &n, &ns), PS_ERR_CLOSED);
    ps_env_free(env);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "test-stores-fast";
    ps_env *env = fresh_store(dir, "fast", 0);
    if (env != NULL) {
        test_get_into(env);
        test_list_wire(env);
        test_put_many(env);
        ps_env_close(env);
        ps_env_free(env);
    }
    test_strip();
    test_parked_txns_and_close(dir);
    if (failures) {
        fprintf(stderr, "test_fast: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_fast: all passed\n");
    return 0;
}
