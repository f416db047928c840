/* test_xlock.c -- the writers' queue of all processes (ps_xlock.c) when its
 * owner dies holding it and nothing else: a forked child (a real process)
 * takes only write.lock's mutex -- not LMDB's -- and ends (_exit, SIGKILL,
 * or only the thread that took it ends).  The next writer, waiting or not,
 * must take it over (EOWNERDEAD) and every later writer too (never
 * ENOTRECOVERABLE, never a hang: ctest's TIMEOUT fails a hang).
 * usage: test_xlock SCRATCH_DIR */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;
static char scratch[4096];

#include "check.h"
#include "ps_internal.h"

enum death { BY_EXIT, BY_SIGKILL, BY_THREAD_END };

static void *take_and_end(void *arg)
{
    ps_env *ce = arg;
    return (void *)(intptr_t)ps_xlock_take(ce->sh, NULL); /* ends holding it */
}

/* In a child: open the store, take only the queue, say so on `ready`, wait
 * for a byte on `go`, then die the given way. */
static void child(const char *path, enum death how, int ready, int go)
{
    ps_env *ce = NULL;
    if (ps_env_open(path, 0, PS_OPEN_NOSYNC, &ce) != PS_OK)
        _exit(2);
    int rc;
    if (how == BY_THREAD_END) {
        pthread_t th;
        void *res = NULL;
        if (pthread_create(&th, NULL, take_and_end, ce) != 0 || pthread_join(th, &res) != 0)
            _exit(3);
        rc = (int)(intptr_t)res;
    } else {
        rc = ps_xlock_take(ce->sh, NULL);
    }
    if (rc != PS_OK)
        _exit(4);
    char c = 'r';
    if (write(ready, &c, 1) != 1)
        _exit(5);
    if (read(go, &c, 1) != 1)
        _exit(6);
    if (how == BY_SIGKILL)
        raise(SIGKILL);
    if (how == BY_THREAD_END) {
        /* the process lives on: its taker thread is gone */
        sleep(30);
    }
    _exit(0);
}

/* A child holds only the queue; a slice-waiting writer is refused while it
 * lives, then a blocking writer waits until it dies, takes the queue over
 * and writes; `rounds` times in a row on the same lock. */
static void test_dead_owner(const char *name, enum death how, int rounds)
{
    char path[4200];
    fresh_path(scratch, name, path, sizeof path);
    ps_env *env = NULL;
    CHECK_RC(ps_env_open(path, 0, PS_OPEN_NOSYNC, &env), PS_OK);
    if (env == NULL)
        return;
    put_one(env, "A", "first", "v");
    for (int r = 0; r < rounds; r++) {
        int ready[2], go[2];
        CHECK(pipe(ready) == 0 && pipe(go) == 0);
        pid_t pid = fork();
        if (pid == 0)
            child(path, how, ready[1], go[0]);
        CHECK(pid > 0);
        char c = 0;
        CHECK(read(ready[0], &c, 1) == 1 && c == 'r');
        ps_txn *t = NULL;
        if (how == BY_THREAD_END) {
            /* the owner thread is gone already, its process lives on: the
             * queue is taken over at once, in a slice */
            CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE | PS_TXN_WAIT_SLICE, &t), PS_OK);
        } else {
            /* held by the child: a waiter in slices comes back empty-handed */
            CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE | PS_TXN_WAIT_SLICE, &t),
                     PS_ERR_WAIT_AGAIN);
            CHECK(t == NULL);
            CHECK(write(go[1], "g", 1) == 1); /* the child dies while we wait */
            CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE, &t), PS_OK);
        }
        if (t) {
            char id[32];
            snprintf(id, sizeof id, "r%d", r);
            CHECK_RC(ps_put(t, S("A"), S(id), S("v"), 1, 0), PS_OK);
            CHECK_RC(ps_txn_commit(t), PS_OK);
        }
        if (how == BY_THREAD_END)
            kill(pid, SIGKILL);
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid);
        if (how == BY_EXIT)
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        else
            CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        close(ready[0]);
        close(ready[1]);
        close(go[0]);
        close(go[1]);
        /* and every later writer, in slices or not */
        put_one(env, "A", "later", "v");
        CHECK_RC(ps_txn_begin(env, PS_TXN_WRITE | PS_TXN_WAIT_SLICE, &t), PS_OK);
        if (t)
            ps_txn_abort(t);
    }
    uint64_t n = 0;
    ps_txn *t;
    CHECK_RC(ps_txn_begin(env, 0, &t), PS_OK);
    CHECK_RC(ps_count(t, S("A"), &n), PS_OK);
    CHECK(n == (uint64_t)rounds + 2);
    ps_txn_abort(t);
    ps_env_free(env);
}

int main(int argc, char **argv)
{
    snprintf(scratch, sizeof scratch, "%s", argc > 1 ? argv[1] : "/tmp/ps-test-xlock");
    mkdir(scratch, 0700);
    test_dead_owner("exit", BY_EXIT, 3);
    test_dead_owner("sigkill", BY_SIGKILL, 3);
    test_dead_owner("thread", BY_THREAD_END, 3);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("xlock: all checks passed\n");
    return 0;
}
