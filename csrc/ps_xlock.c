/* ps_xlock.c -- the store's write lock that a waiting writer can leave.
 *
 * LMDB serialises writers of all processes with a robust mutex in
 * lock.mdb, waited for in pthread_mutex_lock: a signal does not end that
 * wait, so Ctrl-C in a process whose writer waits for another process's
 * long transaction landed only when that transaction ended.  pystore's
 * writers therefore queue first on a mutex of their own, in `write.lock`
 * next to data.mdb, which they wait for in slices (PS_TXN_WAIT_SLICE,
 * pthread_mutex_timedlock) and leave between slices; LMDB's mutex, taken
 * next, is then free or about to be.  LMDB's mutex still decides who
 * writes: a writer that does not take this lock (another program, an older
 * pystore) is only as interruptible as before, never unsafe.
 *
 * Lock order, in every process: this thread's write_mu, then this mutex,
 * then LMDB's writer mutex.  Nothing waits for this mutex while holding
 * LMDB's, so the two cannot deadlock across processes.
 *
 * The mutex is robust and process-shared: a process that dies holding it
 * (or a thread that ends holding it) leaves it to the next locker, which
 * gets EOWNERDEAD and marks it consistent; what the dead writer was doing
 * is LMDB's to undo, as before.  The file is one page, written (so its
 * block is allocated: a full disk is an error at open, never SIGBUS in the
 * map).  Every process that maps it holds a shared flock() on it; the
 * opener that finds none is alone and initialises the mutex afresh (see
 * xlock_join: the page on disk may say "held" by a thread of a machine
 * that stopped, or of the store a copy was taken from); `magic` is written
 * last, so a file without it was never ready. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ps_internal.h"

#define XLOCK_MAGIC UINT64_C(0x31786b6c77737970) /* "pyswlkx1" */
#define XLOCK_BYTES 4096u

struct ps_xlock {
    uint64_t magic;
    uint32_t bytes;
    uint32_t reserved;
    pthread_mutex_t mu;
};

_Static_assert(sizeof(struct ps_xlock) <= XLOCK_BYTES, "write.lock is one page");

static int xlock_init(struct ps_xlock *x)
{
    pthread_mutexattr_t ma;
    int rc = pthread_mutexattr_init(&ma);
    if (rc)
        return rc;
    rc = pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    if (!rc)
        rc = pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
    if (!rc)
        rc = pthread_mutex_init(&x->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    if (!rc) {
        x->bytes = XLOCK_BYTES;
        __atomic_store_n(&x->magic, XLOCK_MAGIC, __ATOMIC_RELEASE);
    }
    return rc;
}

/* Write the page of a new (or never initialised) file from byte `done` on:
 * allocated blocks. */
static int xlock_fill(int fd, size_t done)
{
    static const char zero[XLOCK_BYTES];
    while (done < XLOCK_BYTES) {
        ssize_t n = pwrite(fd, zero + done, XLOCK_BYTES - done, (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? errno : EIO;
        done += (size_t)n;
    }
    return PS_OK;
}

/* Map the page and join its users: a shared flock() held for as long as it
 * is mapped.  An opener that gets the flock exclusively is alone, so no
 * process uses the mutex and whatever it says is stale -- "held" by a thread
 * of a machine that stopped (the page was written back while a writer held
 * it) or of a live store it was copied from -- and it is initialised
 * afresh, as LMDB does with lock.mdb.  Another opener waits in LOCK_SH for
 * an initialising one (which converts its LOCK_EX to LOCK_SH when done) and
 * then finds the marker; without it (its initialiser died), it tries again. */
static int xlock_join(int fd, struct ps_xlock **out)
{
    for (int tries = 0;; tries++) {
        int rc = ps_flock(fd, LOCK_EX | LOCK_NB);
        int alone = rc == PS_OK;
        if (rc == EWOULDBLOCK)
            rc = ps_flock(fd, LOCK_SH);
        if (rc)
            return rc;
        struct stat st;
        rc = fstat(fd, &st) != 0 ? errno : PS_OK;
        int whole = !rc && st.st_size >= (off_t)XLOCK_BYTES;
        if (!rc && (alone || (!whole && tries >= 100))) {
            /* alone: written whole before it is mapped, so every block of
             * its page is allocated (a sparse file of the right size too;
             * a full disk fails the open, never a store into the map);
             * else cut short under its users: the rest of the page */
            rc = xlock_fill(fd, alone ? 0 : (size_t)st.st_size);
            whole = !rc;
        }
        struct ps_xlock *x = NULL;
        if (!rc && whole) {
            void *p = mmap(NULL, XLOCK_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (p == MAP_FAILED)
                rc = errno;
            else
                x = p;
        }
        int ready = x && __atomic_load_n(&x->magic, __ATOMIC_ACQUIRE) == XLOCK_MAGIC;
        if (!rc && x && (alone || (!ready && tries >= 100))) {
            /* (the last: a file damaged under its users; theirs is no
             * better, and LMDB's mutex still decides who writes) */
            rc = xlock_init(x);
            ready = !rc;
        }
        if (!rc && alone)
            rc = ps_flock(fd, LOCK_SH); /* not atomic: see above */
        if (!rc && ready) {
            *out = x;
            return PS_OK;
        }
        if (x)
            munmap(x, XLOCK_BYTES);
        (void)flock(fd, LOCK_UN);
        if (rc)
            return rc;
        usleep(1000); /* its initialiser died: no longer exclusive soon */
    }
}

/* Root opening another user's store makes write.lock root's (or finds it
 * root's, made so before): it goes to data.mdb's owner, or that user could
 * never write the store again (data.mdb and lock.mdb keep their owner). */
static void xlock_own(int fd, const struct stat *st, const char *dir)
{
    char data[4096];
    struct stat ds;
    if (geteuid() != 0 || st->st_uid != 0 ||
        ps_path_join(data, sizeof data, dir, "data.mdb") != PS_OK ||
        lstat(data, &ds) != 0 || !S_ISREG(ds.st_mode) || ds.st_uid == 0)
        return;
    (void)fchown(fd, ds.st_uid, ds.st_gid);
}

int ps_xlock_open(ps_shared *sh, const char *dir)
{
    char path[4096];
    int rc = ps_path_join(path, sizeof path, dir, PS_XLOCK_FILE);
    if (rc)
        return rc;
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);
    if (fd < 0)
        return errno == ELOOP ? PS_ERR_UNSAFE_FILE : errno;
    struct stat st;
    rc = fstat(fd, &st) != 0 ? errno : PS_OK;
    if (!rc && (!S_ISREG(st.st_mode) || st.st_nlink > 1))
        rc = PS_ERR_UNSAFE_FILE; /* a hard link: we would write another file */
    if (!rc && st.st_uid == geteuid())
        (void)fchmod(fd, 0600);
    if (!rc)
        xlock_own(fd, &st, dir);
    struct ps_xlock *x = NULL;
    if (!rc)
        rc = xlock_join(fd, &x);
    if (rc) {
        close(fd);
        return rc == EDQUOT ? ENOSPC : rc;
    }
    sh->xlock_fd = fd; /* its shared flock: "in use" (xlock_join) */
    __atomic_store_n(&sh->xlock, x, __ATOMIC_RELEASE); /* (open_handle) */
    return PS_OK;
}

/* The page is unmapped (and the flock dropped) once the env is closed and
 * no thread is inside take..give: a writer of a closed handle may still
 * wait in the mutex (it waits before it enters the gate) or hold it after
 * leaving the gate.  `users` counts those threads; close sets `closing`
 * and unmaps only with no user left, else the last user does.  (Both sides
 * write their variable, then read the other's, sequentially consistent:
 * either close sees the user, or the user sees `closing` and keeps off
 * the page -- no transaction can begin in a closed env anyway.) */
static void xlock_unmap(ps_shared *sh)
{
    struct ps_xlock *x = __atomic_exchange_n(&sh->xlock, NULL, __ATOMIC_SEQ_CST);
    if (x) {
        munmap(x, XLOCK_BYTES);
        close(sh->xlock_fd); /* and with it the shared flock */
    }
}

static void xlock_leave(ps_shared *sh)
{
    if (__atomic_sub_fetch(&sh->xlock_users, 1, __ATOMIC_SEQ_CST) == 0 &&
        __atomic_load_n(&sh->xlock_closing, __ATOMIC_SEQ_CST))
        xlock_unmap(sh);
}

void ps_xlock_close(ps_shared *sh)
{
    __atomic_store_n(&sh->xlock_closing, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&sh->xlock_users, __ATOMIC_SEQ_CST) == 0)
        xlock_unmap(sh);
}

/* Under write_mu (lock_writer); `xlock_held` (also under it) tells give. */
int ps_xlock_take(ps_shared *sh, struct timespec *slice)
{
    __atomic_add_fetch(&sh->xlock_users, 1, __ATOMIC_SEQ_CST);
    struct ps_xlock *x = __atomic_load_n(&sh->xlock, __ATOMIC_SEQ_CST);
    if (x == NULL || __atomic_load_n(&sh->xlock_closing, __ATOMIC_SEQ_CST)) {
        /* an env opened without it (LMDB's mutex alone), or closed */
        xlock_leave(sh);
        return PS_OK;
    }
    int rc = ps_mutex_take(&x->mu, slice);
    if (rc == EOWNERDEAD)
        rc = pthread_mutex_consistent(&x->mu); /* its owner died: ours now */
    if (rc) {
        xlock_leave(sh);
        return rc == ETIMEDOUT ? PS_ERR_WAIT_AGAIN : rc;
    }
    sh->xlock_held = 1;
    return PS_OK;
}

void ps_xlock_give(ps_shared *sh)
{
    if (!sh->xlock_held)
        return;
    sh->xlock_held = 0;
    pthread_mutex_unlock(&sh->xlock->mu); /* mapped: we are a user */
    xlock_leave(sh);
}
