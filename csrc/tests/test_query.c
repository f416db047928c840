/* test_query.c -- SHA-256 vectors, event streams and secondary indexes
 * driven from C (ps_sha256.c, ps_events.c, ps_extract.c, ps_index*.c,
 * ps_find.c).
 * usage: test_query SCRATCH_DIR */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ps_internal.h" /* ps_sha256 (not public) */
#include "pystore_core.h"

static int failures;
static char scratch[4096];

#include "check.h"

static uint32_t le32(const char *p)
{
    const unsigned char *q = (const unsigned char *)p;
    return (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
           (uint32_t)q[3] << 24;
}

static uint64_t le64(const char *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* Item i (u32 LE len, bytes) of a ps_buf filled by ps_buf_add; NULL if
 * the buffer holds fewer items. */
static const char *item(const ps_buf *b, uint64_t i, size_t *len)
{
    size_t off = 0;
    for (uint64_t k = 0; off + 4 <= b->len; k++) {
        uint32_t n = le32(b->data + off);
        if (off + 4 + n > b->len)
            return NULL;
        if (k == i) {
            *len = n;
            return b->data + off + 4;
        }
        off += 4 + n;
    }
    return NULL;
}

static int item_is(const ps_buf *b, uint64_t i, const char *want, size_t want_len)
{
    size_t n = 0;
    const char *p = item(b, i, &n);
    return p != NULL && n == want_len && memcmp(p, want, n) == 0;
}

/* ---- ps_sha256: FIPS 180-2 vectors ---------------------------------- */

static void hex(const unsigned char d[32], char out[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static int sha_is(const void *data, size_t len, const char *want)
{
    unsigned char d[32];
    char h[65];
    memset(d, 0, sizeof d);
    ps_sha256(data, len, d);
    hex(d, h);
    if (strcmp(h, want) != 0) {
        fprintf(stderr, "sha256 of %zu bytes: %s, wanted %s\n", len, h, want);
        return 0;
    }
    return 1;
}

static void test_sha256(void)
{
    CHECK(sha_is("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    CHECK(sha_is(NULL, 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    CHECK(sha_is("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    CHECK(strlen(m448) == 56);
    CHECK(sha_is(m448, 56, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
    /* the 896-bit vector of FIPS 180-2's SHA-512 set, known for SHA-256 too */
    const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
                       "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    CHECK(strlen(m896) == 112);
    CHECK(sha_is(m896, 112, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"));
    /* one million 'a': ps_sha256 is one-shot (no incremental API), so one
     * buffer of 10^6 bytes */
    size_t n = 1000000;
    char *a = malloc(n);
    CHECK(a != NULL);
    if (a != NULL) {
        memset(a, 'a', n);
        CHECK(sha_is(a, n, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
        free(a);
    }
    /* padding edges: 55, 56, 63, 64 bytes of 'a' differ from each other
     * and from one byte less (each length hashes as itself) */
    char buf[65];
    memset(buf, 'a', sizeof buf);
    unsigned char prev[32], cur[32];
    ps_sha256(buf, 54, prev);
    for (size_t l = 55; l <= 65; l++) {
        ps_sha256(buf, l, cur);
        CHECK(memcmp(prev, cur, 32) != 0);
        memcpy(prev, cur, 32);
    }
    CHECK(sha_is(buf, 64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"));
}

/* ---- event streams --------------------------------------------------- */

static int append(ps_env *env, const char *stream, uint64_t seq, const char *payload,
                  uint64_t *seq_out)
{
    ps_txn *t;
    int added = -1;
    uint64_t s = 0;
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    /* recorded_ns tied to the payload, so a read can check it */
    CHECK_RC(ps_event_append(t, S(stream), seq, S(payload), 1000 + (int64_t)strlen(payload),
                             0, &s, &added),
             PS_OK);
    CHECK_RC(ps_txn_commit(t), PS_OK);
    if (seq_out)
        *seq_out = s;
    return added;
}

static uint64_t last_of(ps_env *env, const char *stream)
{
    ps_txn *t;
    uint64_t last = 99;
    CHECK_RC(ps_txn_begin(env, 0, &t), PS_OK);
    CHECK_RC(ps_event_last(t, S(stream), &last), PS_OK);
    ps_txn_abort(t);
    return last;
}

/* Read (after, limit) into seqs[] (at most cap) and check each entry's
 * layout; the payload of the first event goes to first (if non-NULL). */
static size_t read_seqs(ps_env *env, const char *stream, uint64_t after, uint64_t limit,
                        uint64_t *seqs, size_t cap, char *first, size_t first_cap)
{
    ps_txn *t;
    ps_buf b = {0};
    CHECK_RC(ps_txn_begin(env, 0, &t), PS_OK);
    CHECK_RC(ps_events_read(t, S(stream), after, limit, &b), PS_OK);
    size_t off = 0, n = 0;
    while (off + 20 <= b.len && n < cap) {
        uint64_t seq = le64(b.data + off);
        int64_t ns = (int64_t)le64(b.data + off + 8);
        uint32_t pl = le32(b.data + off + 16);
        CHECK(off + 20 + pl <= b.len);
        if (off + 20 + pl > b.len)
            break;
        CHECK(ns == 1000 + (int64_t)pl); /* as append() set it */
        if (n == 0 && first != NULL && pl < first_cap) {
            memcpy(first, b.data + off + 20, pl);
            first[pl] = '\0';
        }
        seqs[n++] = seq;
        off += 20 + pl;
    }
    CHECK(off == b.len && n == b.count);
    ps_buf_free(&b);
    ps_txn_abort(t);
    return n;
}

static void test_events(void)
{
    ps_env *env = fresh_store(scratch, "events", 0);
    uint64_t s = 0, seqs[16];
    char first[64];
    /* a new stream: nothing, marks 0 */
    CHECK(last_of(env, "orders") == 0);
    CHECK(read_seqs(env, "orders", 0, 0, seqs, 16, NULL, 0) == 0);

    /* explicit seqs, out of order, one crossing a byte boundary (256) so
     * a little-endian or text key would sort it wrong */
    CHECK(append(env, "orders", 2, "two", &s) == 1 && s == 2);
    CHECK(append(env, "orders", 256, "big", &s) == 1 && s == 256);
    CHECK(append(env, "orders", 10, "ten", &s) == 1 && s == 10);
    /* a duplicate is skipped: the first writer wins */
    CHECK(append(env, "orders", 10, "TEN-again", &s) == 0 && s == 10);
    CHECK(last_of(env, "orders") == 256);
    size_t n = read_seqs(env, "orders", 0, 0, seqs, 16, first, sizeof first);
    CHECK(n == 3 && seqs[0] == 2 && seqs[1] == 10 && seqs[2] == 256);
    CHECK(strcmp(first, "two") == 0);
    n = read_seqs(env, "orders", 2, 0, seqs, 16, first, sizeof first);
    CHECK(n == 2 && seqs[0] == 10 && seqs[1] == 256 && strcmp(first, "ten") == 0);

    /* seq 0: the next after the highest */
    CHECK(append(env, "orders", 0, "next", &s) == 1 && s == 257);
    CHECK(last_of(env, "orders") == 257);
    /* after / limit */
    n = read_seqs(env, "orders", 0, 2, seqs, 16, NULL, 0);
    CHECK(n == 2 && seqs[0] == 2 && seqs[1] == 10);
    n = read_seqs(env, "orders", 10, 1, seqs, 16, first, sizeof first);
    CHECK(n == 1 && seqs[0] == 256 && strcmp(first, "big") == 0);
    n = read_seqs(env, "orders", 257, 0, seqs, 16, NULL, 0);
    CHECK(n == 0);
    n = read_seqs(env, "orders", PS_MAX_SEQ, 0, seqs, 16, NULL, 0);
    CHECK(n == 0);
    /* another stream whose name extends this one's stays apart */
    CHECK(append(env, "orders2", 1, "other", &s) == 1 && s == 1);
    CHECK(append(env, "order", 0, "short", &s) == 1 && s == 1);
    n = read_seqs(env, "orders", 0, 0, seqs, 16, NULL, 0);
    CHECK(n == 4);
    n = read_seqs(env, "order", 0, 0, seqs, 16, first, sizeof first);
    CHECK(n == 1 && seqs[0] == 1 && strcmp(first, "short") == 0);

    /* delete upto 10: 2 and 10 go */
    ps_txn *t;
    uint64_t deleted = 99, hwm = 0, forgot = 0;
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_events_delete(t, S("orders"), 0, 10, &deleted), PS_OK);
    CHECK(deleted == 2);
    CHECK_RC(ps_txn_commit(t), PS_OK);
    n = read_seqs(env, "orders", 0, 0, seqs, 16, NULL, 0);
    CHECK(n == 2 && seqs[0] == 256 && seqs[1] == 257);
    CHECK_RC(ps_txn_begin(env, 0, &t), PS_OK);
    CHECK_RC(ps_event_marks(t, S("orders"), &hwm, &forgot), PS_OK);
    CHECK(hwm == 257 && forgot == 10);
    ps_txn_abort(t);
    /* a re-append of a deleted seq (or any seq at or below the mark) is
     * skipped; one above it (never seen) is added */
    CHECK(append(env, "orders", 10, "ten-back", &s) == 0);
    CHECK(append(env, "orders", 5, "five", &s) == 0);
    CHECK(append(env, "orders", 11, "eleven", &s) == 1);
    n = read_seqs(env, "orders", 0, 0, seqs, 16, first, sizeof first);
    CHECK(n == 3 && seqs[0] == 11 && seqs[1] == 256 && seqs[2] == 257);
    CHECK(strcmp(first, "eleven") == 0);
    CHECK(last_of(env, "orders") == 257);

    /* delete everything: last_seq never goes down, the next seq goes on */
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_events_delete(t, S("orders"), 1, 0, &deleted), PS_OK);
    CHECK(deleted == 3);
    CHECK_RC(ps_txn_commit(t), PS_OK);
    CHECK(last_of(env, "orders") == 257);
    CHECK(read_seqs(env, "orders", 0, 0, seqs, 16, NULL, 0) == 0);
    CHECK(append(env, "orders", 257, "again", &s) == 0);
    CHECK(append(env, "orders", 0, "after-all", &s) == 1 && s == 258);
    /* delete upto beyond the highest: the mark moves up, so last_seq does */
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_events_delete(t, S("orders"), 0, 1000, &deleted), PS_OK);
    CHECK(deleted == 1);
    CHECK_RC(ps_txn_commit(t), PS_OK);
    CHECK(last_of(env, "orders") == 1000);
    CHECK(append(env, "orders", 999, "old", &s) == 0);
    CHECK(append(env, "orders", 0, "new", &s) == 1 && s == 1001);
    /* the other streams were not touched */
    n = read_seqs(env, "orders2", 0, 0, seqs, 16, first, sizeof first);
    CHECK(n == 1 && strcmp(first, "other") == 0);

    /* streams listing: sorted; all_ also gives emptied ones */
    ps_buf b = {0};
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_events_delete(t, S("order"), 1, 0, &deleted), PS_OK);
    CHECK_RC(ps_txn_commit(t), PS_OK);
    CHECK_RC(ps_txn_begin(env, 0, &t), PS_OK);
    CHECK_RC(ps_streams(t, 0, &b), PS_OK);
    CHECK(b.count == 2 && item_is(&b, 0, S("orders")) && item_is(&b, 1, S("orders2")));
    ps_buf_free(&b);
    CHECK_RC(ps_streams(t, 1, &b), PS_OK);
    CHECK(b.count == 3 && item_is(&b, 0, S("order")) && item_is(&b, 1, S("orders")) &&
          item_is(&b, 2, S("orders2")));
    ps_buf_free(&b);
    ps_txn_abort(t);

    /* the highest seq there is, then no next */
    CHECK(append(env, "edge", PS_MAX_SEQ, "max", &s) == 1 && s == PS_MAX_SEQ);
    int added = -1;
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_event_append(t, S("edge"), 0, S("x"), 7, 0, &s, &added), PS_ERR_SEQ);
    ps_txn_abort(t);
    CHECK(last_of(env, "edge") == PS_MAX_SEQ);
    n = read_seqs(env, "edge", PS_MAX_SEQ - 1, 0, seqs, 16, first, sizeof first);
    CHECK(n == 1 && seqs[0] == PS_MAX_SEQ && strcmp(first, "max") == 0);
    ps_env_free(env);
}

static void test_events_bad_args(void)
{
    ps_env *env = fresh_store(scratch, "events-args", 0);
    ps_txn *t;
    uint64_t s = 0, last = 0, deleted = 0, hwm = 0, forgot = 0;
    int added = 0;
    char longname[PS_MAX_STREAM + 2];
    memset(longname, 's', sizeof longname);
    ps_buf b = {0};

    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    /* stream names */
    CHECK_RC(ps_event_append(t, "", 0, 1, S("p"), 7, 0, &s, &added), PS_ERR_STREAM);
    CHECK_RC(ps_event_append(t, NULL, 0, 1, S("p"), 7, 0, &s, &added), PS_ERR_STREAM);
    CHECK_RC(ps_event_append(t, "a\0b", 3, 1, S("p"), 7, 0, &s, &added), PS_ERR_STREAM);
    CHECK_RC(ps_event_append(t, longname, PS_MAX_STREAM + 1, 1, S("p"), 7, 0, &s, &added),
             PS_ERR_STREAM);
    CHECK_RC(ps_events_read(t, "", 0, 0, 0, &b), PS_ERR_STREAM);
    CHECK_RC(ps_event_last(t, "a\0b", 3, &last), PS_ERR_STREAM);
    CHECK_RC(ps_events_delete(t, "", 0, 1, 0, &deleted), PS_ERR_STREAM);
    CHECK_RC(ps_event_marks(t, "", 0, &hwm, &forgot), PS_ERR_STREAM);
    /* seqs */
    CHECK_RC(ps_event_append(t, S("s"), (uint64_t)PS_MAX_SEQ + 1, S("p"), 7, 0, &s, &added),
             PS_ERR_SEQ);
    CHECK_RC(ps_event_append(t, S("s"), UINT64_MAX, S("p"), 7, 0, &s, &added), PS_ERR_SEQ);
    CHECK_RC(ps_events_delete(t, S("s"), 0, (uint64_t)PS_MAX_SEQ + 1, &deleted), PS_ERR_SEQ);
    /* NULL out-params, NULL payload with a length, unknown flags */
    CHECK_RC(ps_event_append(t, S("s"), 1, S("p"), 7, 0, NULL, &added), PS_ERR_INVALID_ARG);
    CHECK_RC(ps_event_append(t, S("s"), 1, S("p"), 7, 0, &s, NULL), PS_ERR_INVALID_ARG);
    CHECK_RC(ps_event_append(t, S("s"), 1, NULL, 3, 7, 0, &s, &added), PS_ERR_INVALID_ARG);
    CHECK_RC(ps_event_append(t, S("s"), 1, S("p"), 7, 0x100, &s, &added),
             PS_ERR_INVALID_ARG);
    CHECK_RC(ps_events_read(t, S("s"), 0, 0, NULL), PS_ERR_INVALID_ARG);
    CHECK_RC(ps_event_last(t, S("s"), NULL), PS_ERR_INVALID_ARG);
    CHECK_RC(ps_events_delete(t, S("s"), 1, 0, NULL), PS_ERR_INVALID_ARG);
    CHECK_RC(ps_event_marks(t, S("s"), NULL, &forgot), PS_ERR_INVALID_ARG);
    CHECK_RC(ps_streams(t, 0, NULL), PS_ERR_INVALID_ARG);
    /* NULL txn */
    CHECK_RC(ps_event_append(NULL, S("s"), 1, S("p"), 7, 0, &s, &added), PS_ERR_INVALID_ARG);
    CHECK_RC(ps_events_read(NULL, S("s"), 0, 0, &b), PS_ERR_INVALID_ARG);
    /* a stream of exactly PS_MAX_STREAM bytes is fine; an empty payload too */
    CHECK_RC(ps_event_append(t, longname, PS_MAX_STREAM, 1, NULL, 0, 7, 0, &s, &added),
             PS_OK);
    CHECK(added == 1 && s == 1);
    CHECK_RC(ps_txn_commit(t), PS_OK);
    CHECK_RC(ps_txn_begin(env, 0, &t), PS_OK);
    CHECK_RC(ps_events_read(t, longname, PS_MAX_STREAM, 0, 0, &b), PS_OK);
    CHECK(b.count == 1 && b.len == 20 && le32(b.data + 16) == 0);
    ps_buf_free(&b);
    ps_txn_abort(t);

    /* writes in a read txn */
    CHECK_RC(ps_txn_begin(env, 0, &t), PS_OK);
    CHECK_RC(ps_event_append(t, S("s"), 1, S("p"), 7, 0, &s, &added), PS_ERR_READONLY);
    CHECK_RC(ps_events_delete(t, S("s"), 1, 0, &deleted), PS_ERR_READONLY);
    ps_txn_abort(t);
    ps_env_free(env);
}

/* ---- secondary indexes ---------------------------------------------- */

/* Append a u32 LE / u16 LE to w at *off. */
static void w32(char *w, size_t *off, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        w[(*off)++] = (char)(v >> (8 * i));
}

static void w16(char *w, size_t *off, uint16_t v)
{
    w[(*off)++] = (char)v;
    w[(*off)++] = (char)(v >> 8);
}

/* A definition blob (ps_index.c's layout, as pystore/_lmdb/index.py
 * builds it) into w; its length. */
static size_t make_def(char *w, int unique, const uint32_t *plan, size_t plan_len,
                       const char *kind, const char *name, const char *field,
                       const char *type)
{
    size_t off = 0;
    w[off++] = PS_IDX_DEF_VERSION;
    w[off++] = (char)(unique != 0);
    w16(w, &off, 0);
    w32(w, &off, 0); /* id: the core assigns it */
    w32(w, &off, (uint32_t)plan_len);
    w16(w, &off, (uint16_t)strlen(kind));
    w16(w, &off, (uint16_t)strlen(name));
    w16(w, &off, (uint16_t)strlen(field));
    w16(w, &off, (uint16_t)strlen(type));
    for (size_t i = 0; i < plan_len; i++)
        w32(w, &off, plan[i]);
    const char *parts[4] = {kind, name, field, type};
    for (int i = 0; i < 4; i++) {
        memcpy(w + off, parts[i], strlen(parts[i]));
        off += strlen(parts[i]);
    }
    return off;
}

/* Extract with `plan` from wire bytes: PS_OK and the count, values in b. */
static int extract(const uint32_t *plan, size_t plan_len, const char *wire, size_t len,
                   ps_buf *b)
{
    ps_buf_free(b);
    memset(b, 0, sizeof *b);
    return ps_index_extract(plan, plan_len, wire, len, b);
}

/* encoded form of a short raw value: tag 0 + raw */
static int enc_is(const ps_buf *b, uint64_t i, const char *raw)
{
    char e[300];
    size_t n = strlen(raw);
    e[0] = 0;
    memcpy(e + 1, raw, n);
    return item_is(b, i, e, n + 1);
}

static void test_extract(void)
{
    static const uint32_t name1[] = {1, 1, PS_IDX_STRING};
    static const uint32_t tags3[] = {1, 3, PS_IDX_STRING | PS_IDX_REPEATED};
    static const uint32_t inner[] = {2, 2, PS_IDX_MSG, 1, PS_IDX_STRING};
    ps_buf b = {0};
    /* field 1 = "abc" */
    CHECK_RC(extract(name1, 3, S("\x0a\x03" "abc"), &b), PS_OK);
    CHECK(b.count == 1 && enc_is(&b, 0, "abc"));
    /* other fields around it (varint 2, fixed64 4, fixed32 5) are skipped */
    const char mixed[] = "\x10\x96\x01"                        /* 2: varint 150 */
                         "\x21" "12345678"                     /* 4: fixed64 */
                         "\x0a\x02" "hi"                       /* 1: "hi" */
                         "\x2d" "1234";                        /* 5: fixed32 */
    CHECK_RC(extract(name1, 3, mixed, sizeof mixed - 1, &b), PS_OK);
    CHECK(b.count == 1 && enc_is(&b, 0, "hi"));
    /* a singular field seen twice: the last wins */
    CHECK_RC(extract(name1, 3, S("\x0a\x01" "x" "\x0a\x01" "y"), &b), PS_OK);
    CHECK(b.count == 1 && enc_is(&b, 0, "y"));
    /* absent or "" gives no value */
    CHECK_RC(extract(name1, 3, S("\x10\x01"), &b), PS_OK);
    CHECK(b.count == 0);
    CHECK_RC(extract(name1, 3, "\x0a\x00", 2, &b), PS_OK);
    CHECK(b.count == 0);
    CHECK_RC(extract(name1, 3, NULL, 0, &b), PS_OK);
    CHECK(b.count == 0);
    /* repeated: distinct values, sorted; "" elements give none */
    const char rep[] = "\x1a\x01" "b" "\x1a\x01" "a" "\x1a\x00" "\x1a\x01" "b"
                       "\x1a\x02" "ab";
    CHECK_RC(extract(tags3, 3, rep, sizeof rep - 1, &b), PS_OK);
    CHECK(b.count == 3 && enc_is(&b, 0, "a") && enc_is(&b, 1, "ab") && enc_is(&b, 2, "b"));
    /* nested: field 2 message, its field 1 */
    CHECK_RC(extract(inner, 5, S("\x12\x05\x0a\x03" "dee" "\x0a\x01" "z"), &b), PS_OK);
    CHECK(b.count == 1 && enc_is(&b, 0, "dee"));
    /* a long value (over PS_IDX_EXACT_MAX) is stored as tag 1 + SHA-256 */
    char big[3 + 300];
    big[0] = 0x0a;
    big[1] = (char)(0x80 | (300 & 0x7f));
    big[2] = (char)(300 >> 7);
    memset(big + 3, 'q', 300);
    CHECK_RC(extract(name1, 3, big, sizeof big, &b), PS_OK);
    {
        char want[33];
        want[0] = 1;
        ps_sha256(big + 3, 300, (unsigned char *)want + 1);
        CHECK(b.count == 1 && item_is(&b, 0, want, 33));
    }

    /* malformed payloads: PS_OK and no values, never a crash (ASan build) */
    static const struct {
        const char *p;
        size_t n;
    } bad[] = {
        {"\x0a\x05" "ab", 4},                    /* length past the end */
        {"\x0a", 1},                             /* tag, no length */
        {"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01" "x", 12}, /* huge length */
        {"\x0f\x00", 2},                         /* wire type 7 */
        {"\x0e\x00", 2},                         /* wire type 6 */
        {"\x0c", 1},                             /* end group out of place */
        {"\x00\x01", 2},                         /* field number 0 */
        {"\x10\x80\x80", 3},                     /* truncated varint */
        {"\x10\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 12}, /* overlong varint */
        {"\x21" "123", 4},                       /* truncated fixed64 */
        {"\x2d" "12", 3},                        /* truncated fixed32 */
        {"\x0b\x10\x01", 3},                     /* group never closed */
        {"\x0a\x03" "abc" "\x0a\x05" "de", 9},  /* good value then a truncated one */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_RC(extract(name1, 3, bad[i].p, bad[i].n, &b), PS_OK);
        if (b.count != 0)
            fprintf(stderr, "bad payload %zu gave %llu values\n", i,
                    (unsigned long long)b.count);
        CHECK(b.count == 0);
        CHECK_RC(extract(tags3, 3, bad[i].p, bad[i].n, &b), PS_OK);
        CHECK(b.count == 0);
    }
    /* nested message whose inner bytes are damaged: no values */
    CHECK_RC(extract(inner, 5, S("\x12\x03\x0a\x05" "d"), &b), PS_OK);
    CHECK(b.count == 0);
    /* every prefix of a valid message parses or fails cleanly */
    const char ok[] = "\x12\x05\x0a\x03" "dee" "\x1a\x01" "a" "\x0a\x02" "hi";
    for (size_t l = 0; l < sizeof ok - 1; l++) {
        CHECK_RC(extract(inner, 5, ok, l, &b), PS_OK);
        CHECK_RC(extract(name1, 3, ok, l, &b), PS_OK);
    }
    /* bad plans and arguments */
    static const uint32_t noplan[] = {0, 1, PS_IDX_STRING};
    static const uint32_t badkind[] = {1, 1, 99};
    static const uint32_t badstep[] = {2, 1, PS_IDX_BOOL, 1, PS_IDX_STRING};
    static const uint32_t field0[] = {1, 0, PS_IDX_STRING};
    CHECK_RC(extract(noplan, 3, S("\x0a\x01" "a"), &b), PS_ERR_INDEX_DEF);
    CHECK_RC(extract(badkind, 3, S("\x0a\x01" "a"), &b), PS_ERR_INDEX_DEF);
    CHECK_RC(extract(badstep, 5, S("\x0a\x01" "a"), &b), PS_ERR_INDEX_DEF);
    CHECK_RC(extract(field0, 3, S("\x0a\x01" "a"), &b), PS_ERR_INDEX_DEF);
    CHECK_RC(extract(name1, 2, S("\x0a\x01" "a"), &b), PS_ERR_INDEX_DEF);
    CHECK_RC(extract(NULL, 0, S("\x0a\x01" "a"), &b), PS_ERR_INDEX_DEF);
    CHECK_RC(extract(name1, 3, NULL, 2, &b), PS_ERR_INVALID_ARG);
    CHECK_RC(ps_index_extract(name1, 3, "\x0a\x01" "a", 3, NULL), PS_ERR_INVALID_ARG);
    ps_buf_free(&b);

    /* query encoding matches what extraction stores */
    char e[PS_IDX_EXACT_MAX + 1];
    size_t el = 0;
    int match = -1;
    CHECK_RC(ps_index_encode(PS_IDX_STRING, PS_Q_TEXT, S("abc"), 0, NULL, 0, e, &el, &match),
             PS_OK);
    CHECK(match == 1 && el == 4 && memcmp(e, "\0abc", 4) == 0);
    CHECK_RC(ps_index_encode(PS_IDX_STRING, PS_Q_INT, NULL, 0, 5, NULL, 0, e, &el, &match),
             PS_ERR_INDEX_QUERY);
    CHECK_RC(ps_index_encode(PS_IDX_STRING, PS_Q_BYTES, S("abc"), 0, NULL, 0, e, &el, &match),
             PS_ERR_INDEX_QUERY);
    CHECK_RC(ps_index_encode(PS_IDX_STRING, PS_Q_TEXT, S("abc"), 0, NULL, 0, NULL, &el, &match),
             PS_ERR_INVALID_ARG);
}

/* ids found for the string value `v` of kind Doc's index `name` */
static uint64_t find_ids(ps_env *env, const char *name, const char *v, ps_buf *out)
{
    ps_txn *t;
    uint64_t count = 99;
    ps_buf_free(out);
    memset(out, 0, sizeof *out);
    CHECK_RC(ps_txn_begin(env, 0, &t), PS_OK);
    CHECK_RC(ps_find(t, S("Doc"), S(name), PS_Q_TEXT, S(v), 0, NULL, 0, NULL, 0, 0,
                     PS_FIND_IDS, out),
             PS_OK);
    CHECK_RC(ps_find_count(t, S("Doc"), S(name), PS_Q_TEXT, S(v), 0, NULL, 0, &count), PS_OK);
    CHECK(count == out->count);
    ps_txn_abort(t);
    return out->count;
}

static void put_doc(ps_env *env, const char *id, const char *wire, size_t n)
{
    ps_txn *t;
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_put(t, S("Doc"), S(id), wire, n, 42, 0), PS_OK);
    CHECK_RC(ps_txn_commit(t), PS_OK);
}

static void test_index_find(void)
{
    ps_env *env = fresh_store(scratch, "index", 0);
    static const uint32_t name1[] = {1, 1, PS_IDX_STRING};
    static const uint32_t tags3[] = {1, 3, PS_IDX_STRING | PS_IDX_REPEATED};
    char def[512], def2[512], other[512];
    size_t dl = make_def(def, 0, name1, 3, "Doc", "by_name", "name", "test.Doc");
    size_t dl2 = make_def(def2, 0, tags3, 3, "Doc", "by_tag", "tags", "test.Doc");
    ps_buf b = {0};
    ps_txn *t;
    uint64_t entries = 99;
    int created = -1;

    /* records before the index exist: the create backfills them */
    put_doc(env, "d1", S("\x0a\x05" "alice" "\x1a\x01" "x"));
    put_doc(env, "d2", S("\x0a\x03" "bob"));
    put_doc(env, "d3", S("\x0a\x05" "alice" "\x1a\x01" "x" "\x1a\x01" "y"));
    put_doc(env, "junk", S("\x0a\x09" "trunc")); /* damaged: no values */
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_index_create(t, def, dl, &entries, &created), PS_OK);
    CHECK(created == 1 && entries == 3);
    CHECK_RC(ps_index_create(t, def2, dl2, &entries, &created), PS_OK);
    CHECK(created == 1 && entries == 3);
    CHECK_RC(ps_txn_commit(t), PS_OK);

    CHECK(find_ids(env, "by_name", "alice", &b) == 2 && item_is(&b, 0, S("d1")) &&
          item_is(&b, 1, S("d3")));
    CHECK(find_ids(env, "by_name", "bob", &b) == 1 && item_is(&b, 0, S("d2")));
    CHECK(find_ids(env, "by_name", "carol", &b) == 0);
    CHECK(find_ids(env, "by_name", "alic", &b) == 0); /* no prefix match */
    CHECK(find_ids(env, "by_tag", "x", &b) == 2);
    CHECK(find_ids(env, "by_tag", "y", &b) == 1 && item_is(&b, 0, S("d3")));

    /* the same definition again: kept; another under the same name: refused */
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_index_create(t, def, dl, &entries, &created), PS_OK);
    CHECK(created == 0);
    size_t ol = make_def(other, 1, name1, 3, "Doc", "by_name", "name", "test.Doc");
    CHECK_RC(ps_index_create(t, other, ol, &entries, &created), PS_ERR_INDEX_EXISTS);
    ps_txn_abort(t);
    /* malformed definitions */
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    ol = make_def(other, 0, name1, 3, "Doc", "n2", "name", "test.Doc");
    CHECK_RC(ps_index_create(t, other, ol - 1, &entries, &created), PS_ERR_INDEX_DEF);
    ps_txn_abort(t);
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    other[0] = 9; /* version */
    CHECK_RC(ps_index_create(t, other, ol, &entries, &created), PS_ERR_INDEX_DEF);
    ps_txn_abort(t);
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    ol = make_def(other, 0, name1, 3, "Doc", "", "name", "test.Doc"); /* no name */
    CHECK_RC(ps_index_create(t, other, ol, &entries, &created), PS_ERR_INDEX_DEF);
    ps_txn_abort(t);
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    static const uint32_t badplan[] = {1, 1, 77};
    ol = make_def(other, 0, badplan, 3, "Doc", "n3", "name", "test.Doc");
    CHECK_RC(ps_index_create(t, other, ol, &entries, &created), PS_ERR_INDEX_DEF);
    ps_txn_abort(t);
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    ol = make_def(other, 0, name1, 3, "D/oc", "n4", "name", "test.Doc"); /* bad kind */
    CHECK_RC(ps_index_create(t, other, ol, &entries, &created), PS_ERR_INDEX_DEF);
    ps_txn_abort(t);

    /* put of a new record, overwrite with another value, delete */
    put_doc(env, "d4", S("\x0a\x03" "bob"));
    CHECK(find_ids(env, "by_name", "bob", &b) == 2 && item_is(&b, 1, S("d4")));
    put_doc(env, "d2", S("\x0a\x05" "carol"));
    CHECK(find_ids(env, "by_name", "bob", &b) == 1 && item_is(&b, 0, S("d4")));
    CHECK(find_ids(env, "by_name", "carol", &b) == 1 && item_is(&b, 0, S("d2")));
    put_doc(env, "d3", S("\x1a\x01" "y")); /* name gone, tag x gone */
    CHECK(find_ids(env, "by_name", "alice", &b) == 1 && item_is(&b, 0, S("d1")));
    CHECK(find_ids(env, "by_tag", "x", &b) == 1 && item_is(&b, 0, S("d1")));
    CHECK(find_ids(env, "by_tag", "y", &b) == 1 && item_is(&b, 0, S("d3")));
    put_doc(env, "d1", S("\x0a\x05" "alice" "\x0a\x05" "alice")); /* same value again */
    CHECK(find_ids(env, "by_name", "alice", &b) == 1);
    put_doc(env, "d4", S("\x0a\x03" "bob" "\x0a\x09" "broken")); /* now damaged */
    CHECK(find_ids(env, "by_name", "bob", &b) == 0);
    int existed = 0;
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_del(t, S("Doc"), S("d2"), &existed), PS_OK);
    CHECK(existed == 1);
    CHECK_RC(ps_txn_commit(t), PS_OK);
    CHECK(find_ids(env, "by_name", "carol", &b) == 0);

    /* the entries match what a rebuild makes */
    ps_buf before = {0}, after = {0};
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_index_entries(t, S("Doc"), S("by_name"), &before), PS_OK);
    CHECK_RC(ps_index_rebuild(t, S("Doc"), S("by_name"), &entries), PS_OK);
    CHECK(entries == 1);
    CHECK_RC(ps_index_entries(t, S("Doc"), S("by_name"), &after), PS_OK);
    CHECK(before.len == after.len && before.count == 1 &&
          memcmp(before.data, after.data, before.len) == 0);
    CHECK_RC(ps_txn_commit(t), PS_OK);
    ps_buf_free(&before);
    ps_buf_free(&after);

    /* query errors; unknown index; drop */
    CHECK_RC(ps_txn_begin(env, 0, &t), PS_OK);
    CHECK_RC(ps_find(t, S("Doc"), S("by_name"), PS_Q_INT, NULL, 0, 3, NULL, 0, NULL, 0, 0,
                     PS_FIND_IDS, &b),
             PS_ERR_INDEX_QUERY);
    ps_txn_abort(t);
    CHECK_RC(ps_txn_begin(env, 0, &t), PS_OK);
    CHECK_RC(ps_find(t, S("Doc"), S("nope"), PS_Q_TEXT, S("x"), 0, NULL, 0, NULL, 0, 0,
                     PS_FIND_IDS, &b),
             PS_LMDB_NOTFOUND);
    ps_txn_abort(t);
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_index_drop(t, S("Doc"), S("by_name")), PS_OK);
    CHECK_RC(ps_index_drop(t, S("Doc"), S("by_name")), PS_LMDB_NOTFOUND);
    CHECK_RC(ps_txn_commit(t), PS_OK);
    CHECK_RC(ps_txn_begin(env, 0, &t), PS_OK);
    CHECK_RC(ps_find(t, S("Doc"), S("by_name"), PS_Q_TEXT, S("alice"), 0, NULL, 0, NULL, 0,
                     0, PS_FIND_IDS, &b),
             PS_LMDB_NOTFOUND);
    ps_txn_abort(t);
    CHECK(find_ids(env, "by_tag", "y", &b) == 1); /* the other index stays */
    ps_buf_free(&b);
    ps_env_free(env);
}

/* The write path's shortcuts: a handle takes the index definitions without
 * reading meta only while no other commit came since its own (here another
 * handle of the same directory creates an index between two saves), and
 * the txn's cursor of the resources db stays right across prefix deletes,
 * deletes and puts in one transaction. */
static void test_write_shortcuts(void)
{
    ps_env *a = fresh_store(scratch, "shortcuts", 0);
    char path[4200];
    snprintf(path, sizeof path, "%s/shortcuts", scratch);
    ps_env *b = NULL;
    CHECK_RC(ps_env_open(path, 0, PS_OPEN_NOSYNC, &b), PS_OK);
    static const uint32_t name1[] = {1, 1, PS_IDX_STRING};
    char def[512];
    size_t dl = make_def(def, 0, name1, 3, "Doc", "by_name", "name", "test.Doc");
    ps_buf out = {0};
    ps_txn *t;
    uint64_t entries = 0, n = 0;
    int created = 0, existed = -1;

    put_doc(a, "d1", S("\x0a\x05" "alice"));
    put_doc(a, "d2", S("\x0a\x03" "bob")); /* a's commits follow each other */
    CHECK_RC(ps_txn_begin(b, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_index_create(t, def, dl, &entries, &created), PS_OK);
    CHECK_RC(ps_txn_commit(t), PS_OK);
    CHECK(created == 1 && entries == 2);
    put_doc(a, "d3", S("\x0a\x05" "alice")); /* a sees b's index */
    CHECK(find_ids(a, "by_name", "alice", &out) == 2);
    put_doc(a, "d3", S("\x0a\x05" "carol")); /* a after a: no meta read */
    put_doc(a, "d1", S("\x0a\x05" "carol"));
    CHECK(find_ids(b, "by_name", "alice", &out) == 0);
    CHECK(find_ids(b, "by_name", "carol", &out) == 2);

    /* one txn: puts, a prefix delete, deletes and puts again */
    CHECK_RC(ps_txn_begin(a, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_put(t, S("Doc"), S("x1"), S("\x0a\x01" "p"), 42, 0), PS_OK);
    CHECK_RC(ps_put(t, S("Doc"), S("x2"), S("\x0a\x01" "p"), 42, 0), PS_OK);
    CHECK_RC(ps_del_prefix(t, S("Doc"), S("x"), &n), PS_OK);
    CHECK(n == 2);
    CHECK_RC(ps_del(t, S("Doc"), S("x1"), &existed), PS_OK);
    CHECK(existed == 0);
    CHECK_RC(ps_put(t, S("Doc"), S("x3"), S("\x0a\x01" "q"), 42, 0), PS_OK);
    CHECK_RC(ps_del(t, S("Doc"), S("d2"), &existed), PS_OK);
    CHECK(existed == 1);
    CHECK_RC(ps_put(t, S("Doc"), S("d2"), S("\x0a\x01" "q"), 42, 0), PS_OK);
    CHECK_RC(ps_put(t, S("Doc"), S("x1"), S("\x0a\x01" "q"), 42, PS_PUT_NOOVERWRITE), PS_OK);
    CHECK_RC(ps_put(t, S("Doc"), S("x1"), S("\x0a\x01" "r"), 42, PS_PUT_NOOVERWRITE),
             PS_LMDB_KEYEXIST);
    CHECK_RC(ps_count(t, S("Doc"), &n), PS_OK);
    CHECK(n == 5); /* d1 d2 d3 x1 x3 */
    CHECK_RC(ps_txn_commit(t), PS_OK);
    CHECK(find_ids(b, "by_name", "q", &out) == 3);
    CHECK(find_ids(b, "by_name", "p", &out) == 0);
    CHECK(find_ids(b, "by_name", "bob", &out) == 0);
    ps_buf_free(&out);
    ps_env_close(b);
    ps_env_free(b);
    ps_env_close(a);
    ps_env_free(a);
}

int main(int argc, char **argv)
{
    snprintf(scratch, sizeof scratch, "%s", argc > 1 ? argv[1] : "/tmp/ps-test-query");
    mkdir(scratch, 0700);
    test_sha256();
    test_events();
    test_events_bad_args();
    test_extract();
    test_index_find();
    test_write_shortcuts();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("test_query: all checks passed\n");
    return 0;
}
