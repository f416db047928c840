/* test_fastread.c -- per-thread read contexts (ps_fastread.c): ps_rget,
 * ps_rget1's tag, ps_rscan's modes and held txn, close (ps_rfind: tests/test_fastreads.py).
 * usage: test_fastread SCRATCH_DIR */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int failures;

#include "check.h"

static void test_rget(ps_env *env)
{
    ps_rctx *c = NULL;
    CHECK_RC(ps_rctx_new(env, 8, 1 << 20, &c), PS_OK);
    put_one(env, "Agent", "a1", "hello");
    put_one(env, "Agent", "big", "0123456789abcdef");
    CHECK(ps_rget(c, "Agent/a1") == 5 && memcmp(c->buf, "hello", 5) == 0);
    CHECK(c->updated_ns == 42 && c->revision == 1);
    /* larger than the buffer: PS_RBIG and its length, nothing copied */
    memset(c->buf, 'x', c->cap);
    CHECK(ps_rget(c, "Agent/big") == PS_RBIG && c->len == 16 && c->buf[0] == 'x');
    CHECK_RC(ps_rctx_reserve(c, 16), PS_OK);
    CHECK(ps_rget(c, "Agent/big") == 16 && memcmp(c->buf, "0123456789abcdef", 16) == 0);
    CHECK(c->len == 16);
    CHECK(ps_rget(c, "Agent/nope") == PS_RFAIL && c->rc == PS_LMDB_NOTFOUND);
    CHECK(ps_rget(c, "Agent/") == PS_RFAIL && c->rc == PS_ERR_ID_EMPTY);
    CHECK(ps_rget(c, "/x") == PS_RFAIL && c->rc == PS_ERR_KIND_EMPTY);
    CHECK(ps_rget(c, "Agent") == PS_RFAIL && c->rc == PS_ERR_ID_EMPTY);
    char longkey[PS_MAX_KEY + 10];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    longkey[3] = '/';
    CHECK(ps_rget(c, longkey) == PS_RFAIL && c->rc == PS_ERR_KEY_TOO_LONG);
    /* the one-argument call: tag + key */
    char tagged[64];
    ps_rctx_tag(c, tagged);
    for (int i = 0; i < PS_RCTX_TAG; i++)
        CHECK((unsigned char)tagged[i] >= 0x80);
    strcpy(tagged + PS_RCTX_TAG, "Agent/a1");
    CHECK(ps_rget1(tagged) == 5 && memcmp(c->buf, "hello", 5) == 0);
    CHECK(ps_rget1("Agent/a1") == PS_RFAIL); /* no tag */
    ps_rctx_free(c);
}

static void test_rscan(ps_env *env)
{
    ps_rctx *c = NULL;
    CHECK_RC(ps_rctx_new(env, 64, 1 << 20, &c), PS_OK);
    put_one(env, "Kind", "a", "AA");
    put_one(env, "Kind", "b", "");
    put_one(env, "Kind", "c", "CCCC");
    put_one(env, "KindX", "z", "other kind");
    /* payload offsets, the txn held until ps_rscan_end */
    CHECK(ps_rscan(c, S("Kind/"), 5, 0, PS_RSCAN_PAYLOADS) == 3);
    const char *base = c->base;
    CHECK(memcmp(base + c->offs[0], "AA", 2) == 0 && c->offs[1] - c->offs[0] == 2);
    CHECK(c->offs[3] == c->offs[2]);
    CHECK(memcmp(base + c->offs[4], "CCCC", 4) == 0 && c->offs[5] - c->offs[4] == 4);
    CHECK(c->offs[5] <= c->span);
    /* another call before the end is refused */
    CHECK(ps_rget(c, "Kind/a") == PS_RFAIL && c->rc == PS_ERR_INVALID_ARG);
    CHECK(ps_rscan(c, S("Kind/"), 5, 0, PS_RSCAN_RECORDS) == PS_RFAIL);
    /* the held payloads as wire bytes: tag 0x0a, varint length, payload;
     * written only into a buffer of exactly their length */
    char wire[16];
    memset(wire, 'x', sizeof wire);
    CHECK(ps_rscan_wire(c, NULL, 0) == 12);
    CHECK(ps_rscan_wire(c, wire, 13) == 12 && wire[0] == 'x');
    CHECK(ps_rscan_wire(c, wire, 11) == 12 && wire[0] == 'x');
    CHECK(ps_rscan_wire(c, wire, 12) == 12);
    CHECK(memcmp(wire, "\x0a\x02" "AA" "\x0a\x00" "\x0a\x04" "CCCC", 12) == 0 && wire[12] == 'x');
    ps_rscan_end(c);
    CHECK(ps_rscan_wire(c, wire, 12) == PS_RFAIL && c->rc == PS_ERR_INVALID_ARG); /* none held */
    ps_rscan_end(c);
    ps_rscan_end(c); /* twice: nothing */
    CHECK(c->base == NULL);
    /* records strictly after "a", at most 1 */
    CHECK(ps_rscan(c, S("Kind/a"), 5, 1, PS_RSCAN_RECORDS) == 1);
    uint64_t *o = c->offs;
    CHECK(o[1] == o[0]);
    CHECK((int64_t)o[2] == 42 && o[3] == 4);
    CHECK(c->ids.len == 1 && c->ids.count == 1 && c->ids.data[0] == 'b');
    ps_rscan_end(c);
    /* all of them: the ids joined by NUL, each record's 4 values */
    CHECK(ps_rscan(c, S("Kind/"), 5, 0, PS_RSCAN_RECORDS) == 3);
    CHECK(c->ids.len == 5 && c->ids.count == 3 && memcmp(c->ids.data, "a\0b\0c", 5) == 0);
    CHECK(memcmp(c->base + c->offs[8], "CCCC", 4) == 0 && c->offs[9] - c->offs[8] == 4);
    ps_rscan_end(c);
    /* wire bytes of a records scan: refused (only payload scans) */
    CHECK(ps_rscan(c, S("Kind/"), 5, 0, PS_RSCAN_RECORDS) == 3);
    CHECK(ps_rscan_wire(c, NULL, 0) == PS_RFAIL && c->rc == PS_ERR_INVALID_ARG);
    ps_rscan_end(c);
    ps_rctx_trim(c);
    /* an empty range, bad arguments */
    CHECK(ps_rscan(c, S("None/"), 5, 0, PS_RSCAN_PAYLOADS) == 0);
    ps_rscan_end(c);
    CHECK(ps_rscan(c, S("Kind"), 4, 0, PS_RSCAN_PAYLOADS) == PS_RFAIL && c->rc == PS_ERR_INVALID_ARG);
    CHECK(ps_rscan(c, S("A/B/"), 4, 0, PS_RSCAN_PAYLOADS) == PS_RFAIL);
    CHECK(ps_rscan(c, S("Kind/"), 5, 0, 7) == PS_RFAIL);
    ps_rctx_free(c);
    /* freed while a scan is held: the txn and gate entry are released */
    CHECK_RC(ps_rctx_new(env, 64, 1 << 20, &c), PS_OK);
    CHECK(ps_rscan(c, S("Kind/"), 5, 0, PS_RSCAN_PAYLOADS) == 3);
    ps_rctx_free(c);
}

static void test_close(const char *dir)
{
    ps_env *env = fresh_store(dir, "close", 0);
    put_one(env, "Agent", "a", "x");
    ps_rctx *c = NULL;
    CHECK_RC(ps_rctx_new(env, 64, 0, &c), PS_OK);
    CHECK(ps_rget(c, "Agent/a") == 1);
    ps_env_close(env); /* waits for nothing: no scan is held */
    CHECK(ps_rget(c, "Agent/a") == PS_RFAIL && c->rc == PS_ERR_CLOSED);
    CHECK(ps_rscan(c, S("Agent/"), 6, 0, PS_RSCAN_PAYLOADS) == PS_RFAIL &&
          c->rc == PS_ERR_CLOSED);
    ps_rscan_end(c);
    ps_rctx_free(c);
    ps_env_free(env);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s SCRATCH_DIR\n", argv[0]);
        return 2;
    }
    ps_env *env = fresh_store(argv[1], "fastread", 0);
    test_rget(env);
    test_rscan(env);
    ps_env_free(env);
    test_close(argv[1]);
    if (failures)
        fprintf(stderr, "%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
