/* check.h -- the assertion macros of the C unit tests.  A test file
 * defines `static int failures;` before including this. */
#ifndef PS_TEST_CHECK_H
#define PS_TEST_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pystore_core.h"

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                  \
            failures++;                                                      \
        }                                                                    \
    } while (0)
#define CHECK_RC(expr, want)                                                  \
    do {                                                                      \
        int rc_ = (expr);                                                     \
        if (rc_ != (want)) {                                                  \
            fprintf(stderr, "%s:%d: %s returned %d (%s), wanted %d\n",        \
                    __FILE__, __LINE__, #expr, rc_, ps_strerror(rc_), (want)); \
            failures++;                                                       \
        }                                                                     \
    } while (0)
#define S(x) x, strlen(x)

/* Save kind/id = val (updated_ns 42) in a write txn of its own. */
static inline void put_one(ps_env *env, const char *kind, const char *id,
                           const char *val)
{
    ps_txn *t;
    CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
    CHECK_RC(ps_put(t, S(kind), S(id), S(val), 42, 0), PS_OK);
    CHECK_RC(ps_txn_commit(t), PS_OK);
}

/* dir/name, emptied and created (mode 0700, and dir with it), into path. */
static inline void fresh_path(const char *dir, const char *name, char *path,
                              size_t cap)
{
    char cmd[4400];
    snprintf(path, cap, "%s/%s", dir, name);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot clean %s\n", path);
        failures++;
    }
    mkdir(dir, 0700);
    mkdir(path, 0700);
}

/* A new store at dir/name (PS_OPEN_NOSYNC; map_size 0: the default). */
static inline ps_env *fresh_store(const char *dir, const char *name,
                                  uint64_t map_size)
{
    char path[4200];
    fresh_path(dir, name, path, sizeof path);
    ps_env *env = NULL;
    CHECK_RC(ps_env_open(path, map_size, PS_OPEN_NOSYNC, &env), PS_OK);
    return env;
}

#endif
