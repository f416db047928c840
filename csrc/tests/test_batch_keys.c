/* test_batch_keys.c -- a batch (ps_put_many) checks its kind once and then
 * each id (ps_id_check): for every bad kind and id it must give the code a
 * single put of that key gives (ps_put, through ps_check_key), name the
 * record, and write nothing of the batch (the txn goes on and commits).
 * Kinds and ids at each edge: empty, '/', NUL, and lengths on both sides
 * of PS_MAX_KEY.
 * usage: test_batch_keys SCRATCH_DIR */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int failures;

#include "check.h"
#include "ps_internal.h"

typedef struct {
    const char *p;
    size_t n;
} str;

static char longbuf[2 * PS_MAX_KEY];

static str lit(const char *p, size_t n)
{
    str s = {p, n};
    return s;
}

/* n bytes of 'k' (or 'i'): a kind or id of that length */
static str run(char c, size_t n)
{
    static char kinds[PS_MAX_KEY + 8], ids[PS_MAX_KEY + 8];
    char *b = c == 'k' ? kinds : ids;
    memset(b, c, n);
    return lit(b, n);
}

/* the batch {"ok": "v", id: "w"} (bad_first: id first) of kind */
static int batch(ps_txn *t, str kind, str id, int bad_first, size_t *at)
{
    uint32_t lens[4];
    size_t off = 0;
    str recs[2][2] = {{lit("ok", 2), lit("v", 1)}, {id, lit("w", 1)}};
    for (int r = 0; r < 2; r++) {
        int i = bad_first ? 1 - r : r;
        lens[2 * r] = (uint32_t)recs[i][0].n;
        lens[2 * r + 1] = (uint32_t)recs[i][1].n;
        memcpy(longbuf + off, recs[i][0].p, recs[i][0].n);
        off += recs[i][0].n;
        memcpy(longbuf + off, recs[i][1].p, recs[i][1].n);
        off += recs[i][1].n;
    }
    return ps_put_many(t, kind.p, kind.n, longbuf, off, lens, 2, 5, 0, at);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_batch_keys SCRATCH_DIR\n");
        return 2;
    }
    ps_env *e = fresh_store(argv[1], "batch", 0);
    if (e == NULL)
        return 1;
    const size_t M = PS_MAX_KEY;
    str kinds[] = {lit("K", 1), lit("", 0), lit("a/b", 3), lit("a\0b", 3),
                   lit("/", 1), run('k', M - 3), run('k', M - 2), run('k', M - 1),
                   run('k', M), run('k', M + 1)};
    size_t nk = sizeof kinds / sizeof kinds[0];
    int cases = 0, bad = 0;
    for (size_t ki = 0; ki < nk; ki++) {
        str kind = kinds[ki];
        /* ids around the room this kind leaves (none for a too long kind) */
        size_t room = kind.n + 1 < M ? M - kind.n - 1 : 0;
        str ids[] = {lit("x", 1), lit("", 0), lit("a\0b", 3), lit("\0", 1),
                     lit("a/b", 3), run('i', room ? room - 1 : 1),
                     run('i', room ? room : 2), run('i', room + 1), run('i', room + 2),
                     run('i', M)};
        size_t ni = sizeof ids / sizeof ids[0];
        for (size_t ii = 0; ii < ni; ii++) {
            str id = ids[ii];
            for (int bad_first = 0; bad_first < 2; bad_first++) {
                ps_txn *t;
                CHECK_RC(ps_txn_begin(e, PS_TXN_WRITE, &t), PS_OK);
                if (t == NULL)
                    return 1;
                int want_ok = ps_put(t, kind.p, kind.n, "ok", 2, "v", 1, 5, 0);
                int want_id = ps_put(t, kind.p, kind.n, id.p, id.n, "w", 1, 5, 0);
                ps_txn_abort(t);
                CHECK_RC(ps_txn_begin(e, PS_TXN_WRITE, &t), PS_OK);
                if (t == NULL)
                    return 1;
                size_t at = 99;
                int rc = batch(t, kind, id, bad_first, &at);
                /* the first failing record in batch order, and its code */
                int first = bad_first ? want_id : want_ok;
                int second = bad_first ? want_ok : want_id;
                int want = first ? first : second;
                size_t want_at = first ? 0 : 1;
                cases++;
                if (rc != want || (want && at != want_at)) {
                    fprintf(stderr, "kind #%zu (len %zu), id #%zu (len %zu), bad_first %d: "
                            "batch %d (%s) at %zu, single puts %d / %d\n",
                            ki, kind.n, ii, id.n, bad_first, rc, ps_strerror(rc), at,
                            want_ok, want_id);
                    failures++;
                }
                if (want) {
                    bad++;
                    /* nothing written, and the txn goes on */
                    uint64_t n = 99;
                    if (ps_kind_check(kind.p, kind.n) == PS_OK) {
                        CHECK_RC(ps_count(t, kind.p, kind.n, &n), PS_OK);
                        CHECK(n == 0);
                    }
                    CHECK_RC(ps_put(t, S("Other"), S("z"), S("v"), 5, 0), PS_OK);
                    CHECK_RC(ps_txn_commit(t), PS_OK);
                } else {
                    ps_txn_abort(t);
                }
            }
        }
    }
    CHECK(bad > cases / 2); /* the grid is mostly bad inputs */
    ps_env_close(e);
    ps_env_free(e);
    if (failures)
        fprintf(stderr, "test_batch_keys: %d failure(s)\n", failures);
    else
        printf("test_batch_keys: ok (%d cases)\n", cases);
    return failures != 0;
}
