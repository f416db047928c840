/* test_park.c -- parked read txns (ps_park.c): map growth while a read txn
 * is parked, in this thread and in another; the parked txn keeps its view
 * across the remap; calls on a parked txn are refused; park and unpark are
 * idempotent; a parked txn ends with abort.
 * usage: test_park SCRATCH_DIR */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int failures;

#include "check.h"

static uint64_t map_size(ps_env *env)
{
    ps_env_info info;
    CHECK_RC(ps_env_get_info(env, &info), PS_OK);
    return info.map_size;
}

/* Write 4 MiB of new records, 64 KiB each, one txn per record. */
static void *grow(void *arg)
{
    ps_env *env = arg;
    static char big[64 << 10];
    memset(big, 'g', sizeof big);
    for (int i = 0; i < 64; i++) {
        char id[32];
        static unsigned next;
        snprintf(id, sizeof id, "b%u", __atomic_fetch_add(&next, 1, __ATOMIC_RELAXED));
        ps_txn *t;
        CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
        CHECK_RC(ps_put(t, S("Big"), S(id), big, sizeof big, 1, 0), PS_OK);
        CHECK_RC(ps_txn_commit(t), PS_OK);
    }
    return NULL;
}

static void check_view(ps_txn *r)
{
    const char *p;
    size_t n;
    int64_t ns;
    CHECK_RC(ps_get(r, S("A"), S("a1"), &p, &n, &ns), PS_OK);
    CHECK(n == 3 && memcmp(p, "old", 3) == 0);
    uint64_t c = 1;
    CHECK_RC(ps_count(r, S("Big"), &c), PS_OK);
    CHECK(c == 0);
}

static void test_park(ps_env *env)
{
    put_one(env, "A", "a1", "old");
    ps_txn *r;
    CHECK_RC(ps_txn_begin(env, 0, &r), PS_OK);
    check_view(r);
    CHECK_RC(ps_txn_park(r), PS_OK);
    CHECK_RC(ps_txn_park(r), PS_OK); /* idempotent */
    uint64_t c;
    CHECK_RC(ps_count(r, S("A"), &c), PS_ERR_INVALID_ARG); /* parked: refused */

    uint64_t before = map_size(env);
    grow(env); /* this thread, the read txn parked */
    uint64_t mid = map_size(env);
    CHECK(mid > before);
    pthread_t th; /* and another thread */
    CHECK(pthread_create(&th, NULL, grow, env) == 0);
    pthread_join(th, NULL);
    CHECK(map_size(env) > mid);

    CHECK_RC(ps_txn_unpark(r), PS_OK);
    CHECK_RC(ps_txn_unpark(r), PS_OK);
    check_view(r); /* its view, read through the moved map */
    CHECK_RC(ps_txn_park(r), PS_OK);
    ps_txn_abort(r); /* ends parked */

    ps_txn *w;
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &w), PS_OK);
    CHECK_RC(ps_txn_park(w), PS_ERR_INVALID_ARG); /* never a write txn */
    ps_txn_abort(w);
    CHECK_RC(ps_txn_park(NULL), PS_ERR_INVALID_ARG);
    CHECK_RC(ps_txn_unpark(NULL), PS_ERR_INVALID_ARG);

    /* nothing left live: a growth still goes through */
    uint64_t last = map_size(env);
    grow(env);
    CHECK(map_size(env) > last);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp/pystore-test-park";
    ps_env *env = fresh_store(dir, "park", 1 << 20);
    test_park(env);
    ps_env_close(env);
    ps_env_free(env);
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    else
        printf("test_park: ok\n");
    return failures != 0;
}
