/* test_fastwrite.c -- the one-call writes (ps_fastwrite.c) and the per-txn
 * durability of write transactions (MDB_NOSYNC set on the env per txn).
 * usage: test_fastwrite SCRATCH_DIR */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int failures;

#include "check.h"
#include "ps_internal.h"

static ps_fw_info last(void)
{
    ps_fw_info i;
    ps_fw_last(&i);
    return i;
}

static uint64_t count_of(ps_env *env, const char *kind)
{
    ps_txn *t;
    uint64_t n = 0;
    CHECK_RC(ps_txn_begin(env, 0, &t), PS_OK);
    CHECK_RC(ps_count(t, S(kind), &n), PS_OK);
    ps_txn_abort(t);
    return n;
}

static void test_save_delete(ps_env *env)
{
    int64_t r1 = ps_fw_save(env, S("Agent"), S("a1"), S("hello"), NULL, 0, 0);
    CHECK(r1 > 0);
    int64_t r2 = ps_fw_save(env, S("Agent"), S("a1"), S("hello2"), NULL, 0, 0);
    CHECK(r2 == r1 + 1);
    /* create of an existing key */
    CHECK(ps_fw_save(env, S("Agent"), S("a1"), S("x"), NULL, PS_PUT_NOOVERWRITE, 0) < 0);
    CHECK(last().rc == PS_LMDB_KEYEXIST && last().stage == PS_FW_STAGE_WRITE);
    /* if_revision: wrong, then right, then 0 = only if absent */
    CHECK(ps_fw_save(env, S("Agent"), S("a1"), S("x"), NULL, PS_PUT_IF_REVISION,
                     (uint64_t)r1) < 0);
    CHECK(last().rc == PS_ERR_CONFLICT && last().actual == (uint64_t)r2);
    /* each failure has a ticket of its own: the result is -ticket, and the
     * details are the newest failure's */
    int64_t f1 = ps_fw_save(env, S("Agent"), S("a1"), S("x"), NULL, PS_PUT_NOOVERWRITE, 0);
    int64_t f2 = ps_fw_del(env, S("Agent"), "a\0", 2, 0, 0);
    CHECK(f1 < 0 && f2 < 0 && f1 != f2);
    CHECK(last().ticket == (uint64_t)-f2 && last().rc == PS_ERR_ID_NUL);
    int64_t r3 = ps_fw_save(env, S("Agent"), S("a1"), S("x"), NULL, PS_PUT_IF_REVISION,
                            (uint64_t)r2);
    CHECK(r3 == r2 + 1);
    CHECK(ps_fw_save(env, S("Agent"), S("a2"), S("y"), NULL, PS_PUT_IF_REVISION, 0) > r3);
    /* the time stamp is taken in C (CLOCK_REALTIME: after 2020) */
    char buf[16];
    size_t n;
    int64_t ns = 0;
    CHECK_RC(ps_get_into(env, S("Agent"), S("a1"), buf, sizeof buf, &n, &ns), PS_OK);
    CHECK(n == 1 && buf[0] == 'x' && ns > INT64_C(1577836800000000000));
    /* bad keys, bad arguments, too large: nothing written */
    CHECK(ps_fw_save(env, S("Agent"), "a\0b", 3, S("x"), NULL, 0, 0) < 0);
    CHECK(last().rc == PS_ERR_ID_NUL && last().stage == PS_FW_STAGE_WRITE);
    CHECK(ps_fw_save(env, S("A/b"), S("a"), S("x"), NULL, 0, 0) < 0);
    CHECK(last().rc == PS_ERR_KIND_SLASH);
    CHECK(ps_fw_save(env, S("Agent"), "", 0, S("x"), NULL, 0, 0) < 0);
    CHECK(last().rc == PS_ERR_ID_EMPTY);
    CHECK(ps_fw_save(env, S("Agent"), S("a"), S("x"), NULL, 0x80, 0) < 0);
    CHECK(last().rc == PS_ERR_INVALID_ARG && last().stage == PS_FW_STAGE_ARGS);
    CHECK(ps_fw_save(env, S("Agent"), S("a"), S("x"), NULL, PS_PUT_BORROW, 0) < 0);
    CHECK(ps_fw_save(NULL, S("Agent"), S("a"), S("x"), NULL, 0, 0) < 0);
    CHECK(ps_fw_save(env, S("Agent"), S("a"), NULL, 3, NULL, 0, 0) < 0);
    CHECK(last().rc == PS_ERR_INVALID_ARG);
    /* a length over the limit: refused before the payload is read */
    size_t big = (size_t)PS_MAX_PAYLOAD + 1;
    CHECK(ps_fw_save(env, S("Agent"), S("a"), "x", big, NULL, 0, 0) < 0);
    CHECK(last().rc == PS_ERR_VALUE_TOO_LARGE && last().len == big);
    CHECK(last().stage == PS_FW_STAGE_ARGS);
    CHECK(count_of(env, "Agent") == 2);
    /* deletes */
    CHECK(ps_fw_del(env, S("Agent"), S("nope"), 0, 0) == 0);
    CHECK(ps_fw_del(env, S("Agent"), S("a1"), PS_PUT_IF_REVISION, 1) < 0);
    CHECK(last().rc == PS_ERR_CONFLICT && last().actual == (uint64_t)r3);
    int64_t rd = ps_fw_del(env, S("Agent"), S("a1"), PS_PUT_IF_REVISION, (uint64_t)r3);
    CHECK(rd > r3);
    CHECK(ps_fw_del(env, S("Agent"), S("a1"), 0, 0) == 0);
    CHECK(ps_fw_del(env, S("Agent"), "a\0", 2, 0, 0) < 0 && last().rc == PS_ERR_ID_NUL);
    CHECK(ps_fw_del(env, S("Agent"), S("a"), PS_PUT_NOOVERWRITE, 0) < 0);
    CHECK(last().rc == PS_ERR_INVALID_ARG);
    CHECK(count_of(env, "Agent") == 1);
}

static void test_strip_and_batch(ps_env *env)
{
    /* drop field 4 at the root */
    const uint32_t table[] = {1, 4, PS_STRIP_DROP};
    ps_fw_plan plan = {table, 3};
    const char in[] = "\x0a\x02" "ab" "\x22\x03" "org";
    CHECK(ps_fw_save(env, S("Strip"), S("s1"), in, sizeof in - 1, &plan, 0, 0) > 0);
    char buf[32];
    size_t n;
    int64_t ns;
    CHECK_RC(ps_get_into(env, S("Strip"), S("s1"), buf, sizeof buf, &n, &ns), PS_OK);
    CHECK(n == 4 && memcmp(buf, "\x0a\x02" "ab", 4) == 0);
    /* the strip declines malformed input: the caller strips another way */
    CHECK(ps_fw_save(env, S("Strip"), S("s2"), "\x0b", 1, &plan, 0, 0) < 0);
    CHECK(last().rc == PS_ERR_BAD_RECORD && last().stage == PS_FW_STAGE_STRIP);
    /* a batch, stripped */
    const char data[] = "b1" "\x0a\x01" "x" "\x22\x01" "o" "b2" "\x08\x07";
    uint32_t lens[] = {2, 6, 2, 2};
    CHECK(ps_fw_save_many(env, S("Batch"), data, sizeof data - 1, lens, 2, &plan) == 2);
    CHECK(last().revision > 0);
    CHECK_RC(ps_get_into(env, S("Batch"), S("b1"), buf, sizeof buf, &n, &ns), PS_OK);
    CHECK(n == 3 && memcmp(buf, "\x0a\x01" "x", 3) == 0);
    /* a bad id in the second record: nothing of the batch is written */
    const char bad[] = "c1" "\x08\x01" "c\0" "\x08\x02";
    uint32_t bad_lens[] = {2, 2, 2, 2};
    CHECK(ps_fw_save_many(env, S("Batch"), bad, sizeof bad - 1, bad_lens, 2, NULL) < 0);
    CHECK(last().rc == PS_ERR_ID_NUL && last().index == 1);
    CHECK(count_of(env, "Batch") == 2);
    uint32_t short_lens[] = {2, 2, 2, 9};
    CHECK(ps_fw_save_many(env, S("Batch"), bad, sizeof bad - 1, short_lens, 2, &plan) < 0);
    CHECK(last().rc == PS_ERR_INVALID_ARG && last().index == 1);
    CHECK(ps_fw_save_many(env, S("Batch"), bad, sizeof bad - 1, NULL, 2, NULL) < 0);
    /* an empty batch commits nothing */
    CHECK(ps_fw_save_many(env, S("Batch"), NULL, 0, NULL, 0, NULL) == 0);
    CHECK(last().revision == 0);
    /* kind delete */
    CHECK(ps_fw_del_kind(env, S("Batch")) == 2 && last().revision > 0);
    CHECK(ps_fw_del_kind(env, S("Batch")) == 0 && last().revision == 0);
    CHECK(ps_fw_del_kind(env, S("B/x")) < 0 && last().rc == PS_ERR_KIND_SLASH);
    /* inside a transaction the caller began */
    ps_txn *t;
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK(ps_fw_txn_save(&t, S("Strip"), S("t1"), in, sizeof in - 1, &plan, 0, 0) > 0);
    int64_t f = ps_fw_txn_save(&t, S("Strip"), S("t1"), in, sizeof in - 1, &plan,
                               PS_PUT_IF_REVISION, 1);
    CHECK(f < 0 && last().rc == PS_ERR_CONFLICT);
    /* the txn keeps its failure's details when a failure elsewhere (a
     * one-call write of this thread) replaced the thread's */
    CHECK(ps_fw_del(env, S("Agent"), "a\0", 2, 0, 0) < 0 && last().ticket != (uint64_t)-f);
    ps_fw_info kept;
    ps_fw_txn_last(&t, &kept);
    CHECK(kept.ticket == (uint64_t)-f && kept.rc == PS_ERR_CONFLICT &&
          kept.stage == PS_FW_STAGE_WRITE && kept.actual > 0);
    ps_txn *none = NULL;
    ps_fw_txn_last(&none, &kept);
    CHECK(kept.ticket == 0 && kept.rc == 0);
    CHECK(ps_fw_txn_save(&t, S("Strip"), S("t2"), in, 3, &plan, PS_PUT_BORROW, 0) < 0);
    CHECK(last().rc == PS_ERR_INVALID_ARG);
    CHECK_RC(ps_txn_commit(t), PS_OK);
    CHECK_RC(ps_get_into(env, S("Strip"), S("t1"), buf, sizeof buf, &n, &ns), PS_OK);
    CHECK(n == 4);
}

/* Saves and a kind delete on a small map: each grows it (log replay). */
static void test_growth(const char *dir)
{
    ps_env *env = fresh_store(dir, "grow", 1 << 20);
    if (env == NULL)
        return;
    char payload[3000], id[32];
    memset(payload, 'p', sizeof payload);
    for (int i = 0; i < 2000; i++) {
        snprintf(id, sizeof id, "g%05d", i);
        if (ps_fw_save(env, S("Grow"), S(id), payload, sizeof payload, NULL, 0, 0) <= 0) {
            CHECK(!"save on a growing map");
            break;
        }
    }
    CHECK(count_of(env, "Grow") == 2000);
    MDB_envinfo info;
    CHECK_RC(mdb_env_info(env->mdb, &info), PS_OK);
    CHECK(info.me_mapsize > (1 << 20));
    CHECK(ps_fw_del_kind(env, S("Grow")) == 2000);
    CHECK(count_of(env, "Grow") == 0);
    ps_env_close(env);
    CHECK(ps_fw_save(env, S("Grow"), S("x"), S("x"), NULL, 0, 0) < 0);
    CHECK(last().rc == PS_ERR_CLOSED && last().stage == PS_FW_STAGE_BEGIN);
    CHECK(ps_fw_del(env, S("Grow"), S("x"), 0, 0) < 0 && last().rc == PS_ERR_CLOSED);
    CHECK(ps_fw_del_kind(env, S("Grow")) < 0 && last().rc == PS_ERR_CLOSED);
    ps_env_free(env);
}

/* n saves of `fill` payloads (ids prefix%05d) in one write txn of env, on
 * a map small enough to grow mid-txn: the log, copied into chunks the
 * handle keeps, is replayed.  Returns the commit's result. */
static int big_txn(ps_env *env, const char *prefix, int n, char fill)
{
    char payload[3000], id[32];
    memset(payload, fill, sizeof payload);
    ps_txn *t = NULL;
    int rc = ps_txn_begin(env, PS_TXN_WRITE, &t);
    if (rc)
        return rc;
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof id, "%s%05d", prefix, i);
        if (ps_fw_txn_save(&t, S("Log"), id, strlen(id), payload, sizeof payload, NULL, 0,
                           0) <= 0) {
            ps_txn_abort(t);
            return last().rc ? last().rc : PS_ERR_TXN_FAILED;
        }
    }
    return ps_txn_commit(t);
}

static int all_filled(ps_env *env, const char *prefix, int n, char fill)
{
    char buf[4000], id[32];
    for (int i = 0; i < n; i++) {
        size_t len = 0;
        int64_t ns = 0;
        snprintf(id, sizeof id, "%s%05d", prefix, i);
        if (ps_get_into(env, S("Log"), id, strlen(id), buf, sizeof buf, &len, &ns) != PS_OK ||
            len != 3000 || buf[0] != fill || buf[2999] != fill)
            return 0;
    }
    return 1;
}

/* The op log's chunks are kept by the handle between write txns, up to
 * PS_LOG_KEEP bytes, and reused: a txn logging into reused chunks replays
 * its own ops after a map growth, never a former txn's. */
static void test_log_chunks(const char *dir)
{
    ps_env *env = fresh_store(dir, "chunks", 1 << 20);
    if (env == NULL)
        return;
    MDB_envinfo before, after;
    CHECK(env->log_spare == NULL && env->log_spare_bytes == 0);
    CHECK_RC(big_txn(env, "a", 3000, 'a'), PS_OK); /* ~9 MB logged */
    size_t kept = env->log_spare_bytes;
    CHECK(kept >= ((size_t)8 << 20) && kept <= PS_LOG_KEEP && kept % PS_OP_CHUNK == 0);
    CHECK(all_filled(env, "a", 3000, 'a'));
    /* the next txn takes the kept chunks, and grows the map mid-way */
    CHECK_RC(mdb_env_info(env->mdb, &before), PS_OK);
    CHECK_RC(big_txn(env, "b", 3000, 'b'), PS_OK);
    CHECK_RC(mdb_env_info(env->mdb, &after), PS_OK);
    CHECK(after.me_mapsize > before.me_mapsize);
    CHECK(env->log_spare_bytes == kept); /* the same chunks, given back */
    CHECK(all_filled(env, "b", 3000, 'b') && all_filled(env, "a", 3000, 'a'));
    /* an aborted txn gives its chunks back too; a bigger one keeps at most PS_LOG_KEEP */
    ps_txn *t = NULL;
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    char payload[3000];
    memset(payload, 'x', sizeof payload);
    CHECK(ps_fw_txn_save(&t, S("Log"), S("x"), payload, sizeof payload, NULL, 0, 0) > 0);
    ps_txn_abort(t);
    CHECK(env->log_spare_bytes == kept);
    CHECK_RC(big_txn(env, "c", 12000, 'c'), PS_OK); /* ~36 MB logged */
    CHECK(env->log_spare_bytes == PS_LOG_KEEP);
    CHECK(all_filled(env, "c", 12000, 'c') && all_filled(env, "a", 3000, 'a'));
    ps_env_close(env);
    ps_env_free(env); /* frees the kept chunks (ASan: no leak) */
}

/* LMDB 0.9.24 ignores MDB_NOSYNC as a txn flag: the core sets it on the env
 * for each commit, from the handle whose txn commits. */
static void test_nosync_per_txn(const char *dir)
{
    char path[4200];
    fresh_path(dir, "sync", path, sizeof path);
    ps_env *fast = NULL, *durable = NULL;
    CHECK_RC(ps_env_open(path, 0, PS_OPEN_NOSYNC, &fast), PS_OK);
    CHECK_RC(ps_env_open(path, 0, 0, &durable), PS_OK);
    if (fast == NULL || durable == NULL)
        return;
    unsigned flags = 0;
    CHECK(ps_fw_save(fast, S("Agent"), S("a"), S("x"), NULL, 0, 0) > 0);
    CHECK_RC(mdb_env_get_flags(fast->mdb, &flags), PS_OK);
    CHECK(flags & MDB_NOSYNC);
    CHECK(ps_fw_save(durable, S("Agent"), S("a"), S("y"), NULL, 0, 0) > 0);
    CHECK_RC(mdb_env_get_flags(durable->mdb, &flags), PS_OK);
    CHECK(!(flags & MDB_NOSYNC));
    CHECK(ps_fw_del(fast, S("Agent"), S("a"), 0, 0) > 0);
    CHECK_RC(mdb_env_get_flags(fast->mdb, &flags), PS_OK);
    CHECK(flags & MDB_NOSYNC);
    ps_env_close(durable);
    ps_env_free(durable);
    ps_env_close(fast);
    ps_env_free(fast);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "test-stores-fastwrite";
    char path[4200];
    fresh_path(dir, "fw", path, sizeof path);
    ps_env *env = NULL;
    CHECK_RC(ps_env_open(path, 0, PS_OPEN_NOSYNC, &env), PS_OK);
    if (env != NULL) {
        test_save_delete(env);
        test_strip_and_batch(env);
        ps_env_close(env);
        ps_env_free(env);
    }
    test_growth(dir);
    test_log_chunks(dir);
    test_nosync_per_txn(dir);
    if (failures) {
        fprintf(stderr, "test_fastwrite: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_fastwrite: all passed\n");
    return 0;
}
