/* ps_registry.c -- one LMDB environment per store directory per process.
 *
 * LMDB forbids opening one environment twice in a process: its lock file
 * is guarded by fcntl() locks, which belong to the process, and closing
 * ANY descriptor of lock.mdb drops all of them.  A second MDB_env on the
 * same files, closed while the first is in use, would make another
 * process believe it is alone and re-initialise the lock file under our
 * write transaction.  So every ps_env handle on a directory (identified
 * by st_dev and st_ino) shares one ps_shared, refcounted here and closed
 * with the last handle, under the registry mutex so a new environment on
 * the same files is never opened before the old one is closed.
 *
 * The gate replaces a read-write lock (which preferred writers, so a
 * thread that began a second transaction while a close or resize waited
 * deadlocked with it): `live` counts every live transaction; a thread that
 * needs the environment alone (mdb_env_set_mapsize) raises `excl`, which
 * makes new outermost begins wait, while a thread that already holds a
 * transaction never waits.  Closing a handle makes its new begins fail at
 * once (PS_ERR_CLOSED) and waits only for its own live transactions. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ps_internal.h"

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reg_cv = PTHREAD_COND_INITIALIZER;
static ps_shared *reg_head;
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;
/* Live transactions begun by this thread (any env). */
static __thread unsigned tls_live;

/* ... and per shared env (ps_gate_alone: a growth must not wait for a txn
 * of its own thread on its env, and may wait for the thread's txns of other
 * envs, which do not hold it up).  A thread with txns live on more envs
 * than HERE_MAX at once counts the rest in here_lost, which ps_gate_alone
 * takes as maybe on its env (it then refuses, as it always did). */
#define HERE_MAX 8
static __thread struct {
    const ps_shared *sh;
    unsigned n;
} here[HERE_MAX];
static __thread unsigned here_lost;

static void here_add(const ps_shared *sh)
{
    int slot = -1;
    for (int i = 0; i < HERE_MAX; i++) {
        if (here[i].n && here[i].sh == sh) {
            here[i].n++;
            return;
        }
        if (here[i].n == 0 && slot < 0)
            slot = i;
    }
    if (slot < 0) {
        here_lost++;
        return;
    }
    here[slot].sh = sh;
    here[slot].n = 1;
}

static void here_drop(const ps_shared *sh)
{
    for (int i = 0; i < HERE_MAX; i++) {
        if (here[i].n && here[i].sh == sh) {
            here[i].n--;
            return;
        }
    }
    if (here_lost)
        here_lost--;
}

static unsigned here_count(const ps_shared *sh)
{
    for (int i = 0; i < HERE_MAX; i++)
        if (here[i].n && here[i].sh == sh)
            return here[i].n + here_lost;
    return here_lost;
}

static void reg_prepare(void) { pthread_mutex_lock(&reg_mu); }
static void reg_parent(void) { pthread_mutex_unlock(&reg_mu); }
static void reg_child(void) { pthread_mutex_unlock(&reg_mu); }

static void reg_init(void)
{
    /* fork() with another thread inside the registry would leave its
     * mutex locked in the child. */
    pthread_atfork(reg_prepare, reg_parent, reg_child);
}

static ps_shared *shared_alloc(void)
{
    ps_shared *sh = calloc(1, sizeof *sh);
    if (sh == NULL)
        return NULL;
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK);
    int rc = pthread_mutex_init(&sh->write_mu, &ma);
    pthread_mutexattr_destroy(&ma);
    if (rc) {
        free(sh);
        return NULL;
    }
    pthread_mutex_init(&sh->gate_mu, NULL);
    pthread_cond_init(&sh->gate_cv, NULL);
    pthread_mutex_init(&sh->pool_mu, NULL);
    return sh;
}

static void shared_free(ps_shared *sh)
{
    ps_xlock_close(sh);
    pthread_mutex_destroy(&sh->write_mu);
    pthread_mutex_destroy(&sh->gate_mu);
    pthread_cond_destroy(&sh->gate_cv);
    pthread_mutex_destroy(&sh->pool_mu);
    free(sh);
}

static void unlink_shared(ps_shared *sh)
{
    for (ps_shared **pp = &reg_head; *pp; pp = &(*pp)->next) {
        if (*pp == sh) {
            *pp = sh->next;
            return;
        }
    }
}

int ps_shared_acquire(const char *path, ps_shared **out, int *created)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return errno;
    if (!S_ISDIR(st.st_mode))
        return ENOTDIR;
    pthread_once(&reg_once, reg_init);
    pid_t me = ps_getpid();
    pthread_mutex_lock(&reg_mu);
    for (;;) {
        ps_shared *sh = reg_head;
        while (sh && !(sh->pid == me && sh->dev == st.st_dev && sh->ino == st.st_ino))
            sh = sh->next; /* entries of a parent process (fork) never match */
        if (sh && sh->opening) {
            pthread_cond_wait(&reg_cv, &reg_mu); /* its first opener decides */
            continue;
        }
        if (sh) {
            sh->refs++;
            sh->handles++;
            *created = 0;
        } else {
            sh = shared_alloc();
            if (sh == NULL) {
                pthread_mutex_unlock(&reg_mu);
                return PS_ERR_NOMEM;
            }
            sh->dev = st.st_dev;
            sh->ino = st.st_ino;
            sh->pid = me;
            sh->refs = 1;
            sh->handles = 1;
            sh->opening = 1;
            sh->next = reg_head;
            reg_head = sh;
            *created = 1;
        }
        pthread_mutex_unlock(&reg_mu);
        *out = sh;
        return PS_OK;
    }
}

void ps_shared_opened(ps_shared *sh, int ok)
{
    pthread_mutex_lock(&reg_mu);
    sh->opening = 0;
    if (!ok)
        unlink_shared(sh); /* its MDB_env was closed by the caller */
    pthread_cond_broadcast(&reg_cv);
    pthread_mutex_unlock(&reg_mu);
    if (!ok)
        shared_free(sh); /* only its first handle knew it */
}

void ps_shared_release(ps_shared *sh)
{
    if (sh->pid != ps_getpid())
        return; /* a forked child never touches its parent's environment */
    pthread_mutex_lock(&reg_mu);
    if (--sh->refs > 0) {
        pthread_mutex_unlock(&reg_mu);
        return;
    }
    unlink_shared(sh);
    /* Closed under the registry mutex: a new Store on the same files
     * waits, so its lock.mdb descriptor is never opened before ours is
     * closed (closing drops the process's fcntl locks on the file). */
    ps_pool_drain(sh);
    if (sh->mdb)
        mdb_env_close(sh->mdb);
    sh->mdb = NULL;
    ps_xlock_close(sh); /* (unmapped by its last user if one is inside) */
    int gone = sh->handles == 0;
    pthread_mutex_unlock(&reg_mu);
    if (gone)
        shared_free(sh);
}

void ps_shared_unref(ps_shared *sh)
{
    pthread_mutex_lock(&reg_mu);
    /* A closed handle's calls still lock sh->gate_mu to learn that it is
     * closed, so the memory lives until the last handle is freed. */
    int gone = --sh->handles == 0 && sh->refs == 0;
    pthread_mutex_unlock(&reg_mu);
    if (gone)
        shared_free(sh);
}

/* ---- the gate --------------------------------------------------------- */

/* Count a txn live in the process (and with `handle` in e's own count,
 * which close waits for), after any growth that holds the env alone --
 * unless this thread already has a live txn, which a waiting growth may
 * wait for.  A growth running now (it began once nothing of this env was
 * live, so this thread has nothing live here) is always waited for: the
 * thread's live txns of other envs do not make remapping this one safe. */
static int gate_join(ps_env *e, int handle)
{
    ps_shared *sh = e->sh;
    pthread_mutex_lock(&sh->gate_mu);
    while (!e->closing && (sh->excl_busy || (sh->excl && tls_live == 0)))
        pthread_cond_wait(&sh->gate_cv, &sh->gate_mu);
    if (e->closing) {
        pthread_mutex_unlock(&sh->gate_mu);
        return PS_ERR_CLOSED;
    }
    sh->live++;
    e->live += handle;
    tls_live++;
    here_add(sh);
    pthread_mutex_unlock(&sh->gate_mu);
    return PS_OK;
}

/* gate_join's inverse; wakes a growth or a close that may now go ahead. */
static void gate_leave(ps_env *e, int same_thread, int handle)
{
    ps_shared *sh = e->sh;
    pthread_mutex_lock(&sh->gate_mu);
    sh->live--;
    e->live -= handle;
    if (same_thread && tls_live) {
        tls_live--;
        here_drop(sh);
    }
    if (sh->live == 0 || (e->closing && e->live == 0))
        pthread_cond_broadcast(&sh->gate_cv);
    pthread_mutex_unlock(&sh->gate_mu);
}

int ps_gate_enter(ps_env *e)
{
    if (e->sh == NULL)
        return PS_ERR_CLOSED;
    return gate_join(e, 1);
}

void ps_gate_exit(ps_env *e, int same_thread)
{
    gate_leave(e, same_thread, 1);
}

void ps_gate_park(ps_env *e, int same_thread)
{
    gate_leave(e, same_thread, 0); /* e->live keeps counting it: close still waits */
}

int ps_gate_unpark(ps_env *e, int ending)
{
    if (!ending)
        return gate_join(e, 0);
    /* Ending it: only a growth running now must finish first (the handle
     * may be closing, which waits for this very txn). */
    ps_shared *sh = e->sh;
    pthread_mutex_lock(&sh->gate_mu);
    while (sh->excl_busy)
        pthread_cond_wait(&sh->gate_cv, &sh->gate_mu);
    sh->live++;
    tls_live++;
    here_add(sh);
    pthread_mutex_unlock(&sh->gate_mu);
    return PS_OK;
}

int ps_gate_alone(ps_env *e, int (*fn)(ps_shared *, void *), void *arg)
{
    ps_shared *sh = e->sh;
    pthread_mutex_lock(&sh->gate_mu);
    if (here_count(sh) > 1) {
        /* This thread holds another transaction of this env: waiting for
         * every transaction to end would wait for itself. */
        pthread_mutex_unlock(&sh->gate_mu);
        return MDB_MAP_RESIZED;
    }
    /* Step out of the count (the handle keeps counting us, so it is not
     * closed meanwhile) and wait until nothing else is live. */
    sh->live--;
    tls_live--;
    here_drop(sh);
    sh->excl++;
    while (sh->live > 0 || sh->excl_busy)
        pthread_cond_wait(&sh->gate_cv, &sh->gate_mu);
    sh->excl_busy = 1;
    pthread_mutex_unlock(&sh->gate_mu);
    int rc = fn(sh, arg);
    pthread_mutex_lock(&sh->gate_mu);
    sh->excl_busy = 0;
    sh->excl--;
    sh->live++;
    tls_live++;
    here_add(sh);
    pthread_cond_broadcast(&sh->gate_cv);
    pthread_mutex_unlock(&sh->gate_mu);
    return rc;
}

int ps_gate_close(ps_env *e)
{
    ps_shared *sh = e->sh;
    pthread_mutex_lock(&sh->gate_mu);
    if (e->closing) {
        /* Another thread closes it (the shared env may be freed as soon as
         * that call returns, so this one must not wait on it). */
        pthread_mutex_unlock(&sh->gate_mu);
        return 0;
    }
    e->closing = 1;
    pthread_cond_broadcast(&sh->gate_cv); /* begins waiting on excl fail now */
    while (e->live > 0)
        pthread_cond_wait(&sh->gate_cv, &sh->gate_mu);
    e->closed = 1;
    pthread_cond_broadcast(&sh->gate_cv);
    pthread_mutex_unlock(&sh->gate_mu);
    return 1;
}
