/* ps_convert.c -- a pwrite store switched to the writemap mode, in place.
 *
 * The two write modes share LMDB's file format; what differs is how
 * writers write (MDB_WRITEMAP or pwrite) and that a writemap store's map is
 * allocated on disk.  A store records its mode in meta `format_version`
 * (2 pwrite, 3 writemap) and every writable open uses the recorded mode,
 * because LMDB forbids writers with and without MDB_WRITEMAP on one
 * environment.  So the switch is one durable write of `format_version`,
 * made while NO process has the environment open: the next writable open
 * reads 3 and opens the store MDB_WRITEMAP (ps_prealloc.c).
 *
 * "No process": this process's registry has no environment on the
 * directory (a placeholder entry makes its other openers wait meanwhile),
 * and no other process has it open.  Every LMDB opener keeps a shared
 * fcntl lock on byte 0 of lock.mdb while open; the switch opens the
 * environment too (so the lock file is initialised for those who come
 * after), then turns the process's lock on that byte exclusive, which is
 * granted only when no other process holds it, and makes a process that
 * opens the store meanwhile wait until the switch is committed and the
 * environment closed (which drops the lock).
 *
 * The map is allocated on disk by the switch, before format 3 is
 * recorded: the whole file (holes included, see alloc_map) and 1 MiB more.
 * A disk too full for it fails the switch (ENOSPC, the allocation
 * truncated away, format 2 kept) instead of leaving a store that no open,
 * not even a read-only one, can open until space is freed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ps_internal.h"

/* Every block of data.mdb allocated, and 1 MiB more (the commit's new
 * pages land there, and the first writemap open finds room), under its
 * flock, taken without waiting: a process that holds it is opening the
 * store MDB_WRITEMAP and waits for our lock.mdb lock.  ps_wm_prealloc
 * allocates from the first hole: a pwrite store has holes where LMDB never
 * wrote a page a transaction allocated and freed again (a loose page, on
 * the free list now); in the writemap mode a store into one on a full disk
 * is SIGBUS.  *old: the size before. */
static int alloc_map(int dfd, uint64_t *old)
{
    struct stat st;
    if (fstat(dfd, &st) != 0)
        return errno;
    *old = (uint64_t)st.st_size;
    int r = ps_flock(dfd, LOCK_EX | LOCK_NB);
    if (r != 0)
        return r == EWOULDBLOCK ? PS_ERR_IN_USE : r;
    uint64_t size;
    int err = ps_wm_prealloc(dfd, *old + PS_WM_INITIAL, &size);
    ps_wm_unlock(dfd);
    return err == EOPNOTSUPP || err == EINVAL ? PS_ERR_NO_WRITEMAP : err;
}

/* meta format_version 2 -> 3 in one durable write txn, data.mdb (dfd)
 * allocated first; *changed 0 when it was 3 already. */
static int mark_writemap(MDB_env *mdb, int dfd, int *changed)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(mdb, NULL, 0, &txn);
    if (rc)
        return rc;
    MDB_dbi dbi;
    rc = mdb_dbi_open(txn, PS_DB_META, 0, &dbi);
    MDB_val k = {sizeof PS_META_FORMAT - 1, (void *)PS_META_FORMAT}, v;
    if (!rc)
        rc = mdb_get(txn, dbi, &k, &v);
    if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE)
        rc = PS_ERR_NOT_A_STORE;
    uint32_t format = 0;
    if (!rc)
        format = v.mv_size == 4 ? ps_get_u32(v.mv_data) : 0;
    if (!rc && format == 1)
        rc = PS_ERR_NEEDS_UPGRADE;
    else if (!rc && format != PS_FORMAT_VERSION && format != PS_STORE_FORMAT_WRITEMAP)
        rc = PS_ERR_FORMAT;
    if (rc || format == PS_STORE_FORMAT_WRITEMAP) {
        mdb_txn_abort(txn);
        return rc;
    }
    uint64_t old = 0;
    rc = alloc_map(dfd, &old);
    char ver[4];
    ps_put_u32(ver, PS_STORE_FORMAT_WRITEMAP);
    v.mv_size = sizeof ver;
    v.mv_data = ver;
    if (!rc) {
        rc = mdb_put(txn, dbi, &k, &v, 0);
        /* still a pwrite store: its file as it was (nobody maps it) */
        if (rc && flock(dfd, LOCK_EX | LOCK_NB) == 0) {
            (void)ftruncate(dfd, (off_t)old);
            ps_wm_unlock(dfd);
        }
    }
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    /* The env has no MDB_NOSYNC: durable.  A failed commit keeps the
     * allocation (its meta page may be on disk already). */
    rc = mdb_txn_commit(txn);
    if (!rc)
        *changed = 1;
    return rc;
}

/* The switch, with this process's registry entry held (sh: no env). */
static int switch_alone(ps_shared *sh, const char *path, int *changed)
{
    char lock[4096], data[4096];
    int rc = ps_path_join(lock, sizeof lock, path, "lock.mdb");
    if (!rc)
        rc = ps_path_join(data, sizeof data, path, "data.mdb");
    if (rc)
        return rc;
    /* data.mdb first: nothing is created or touched for a non-store (LMDB
     * would write its meta pages into an empty file) */
    int dfd = open(data, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return errno == ELOOP ? PS_ERR_UNSAFE_FILE : errno;
    struct stat st;
    rc = fstat(dfd, &st) != 0 ? errno : PS_OK;
    if (!rc && (!S_ISREG(st.st_mode) || st.st_size == 0))
        rc = S_ISREG(st.st_mode) ? PS_ERR_NOT_A_STORE : PS_ERR_UNSAFE_FILE;
    if (!rc && !ps_wm_wanted(dfd))
        rc = PS_ERR_NO_WRITEMAP;
    /* lock.mdb sized (and closed) before any descriptor of ours holds a
     * lock on it: closing one drops every lock of the process on it */
    if (!rc)
        rc = ps_space_prepare_lock(path, PS_MAX_READERS);
    if (!rc) /* LMDB's opener: a shared lock (it initialises the file if alone) */
        rc = ps_mdb_open(&sh->mdb, path, 0, 0);
    int lfd = -1;
    if (!rc) {
        lfd = open(lock, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        if (lfd < 0)
            rc = errno == ELOOP ? PS_ERR_UNSAFE_FILE : errno;
    }
    if (!rc) {
        /* The process's shared lock made exclusive: granted only while no
         * other process holds it, and it makes other openers wait. */
        struct flock fl;
        memset(&fl, 0, sizeof fl);
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        fl.l_start = 0;
        fl.l_len = 1;
        int r;
        while ((r = fcntl(lfd, F_SETLK, &fl)) != 0 && errno == EINTR)
            ;
        if (r != 0)
            rc = errno == EAGAIN || errno == EACCES ? PS_ERR_IN_USE : errno;
    }
    if (!rc)
        rc = ps_check_file(sh->mdb); /* no switch for a damaged file */
    if (!rc)
        rc = mark_writemap(sh->mdb, dfd, changed);
    if (sh->mdb)
        mdb_env_close(sh->mdb); /* drops the process's locks: openers go on */
    sh->mdb = NULL;
    if (lfd >= 0)
        close(lfd);
    close(dfd);
    return rc;
}

int ps_store_to_writemap(const char *path, int *changed)
{
    if (path == NULL || changed == NULL)
        return PS_ERR_INVALID_ARG;
    *changed = 0;
    int rc = ps_paths_check(path, 1);
    if (rc)
        return rc;
    ps_shared *sh = NULL;
    int created = 0;
    rc = ps_shared_acquire(path, &sh, &created);
    if (rc)
        return rc;
    if (!created) { /* a Store of this process has it open */
        ps_shared_release(sh);
        ps_shared_unref(sh);
        return PS_ERR_IN_USE;
    }
    rc = switch_alone(sh, path, changed);
    ps_shared_opened(sh, 0); /* the placeholder goes: nothing stays open */
    return ps_space_errno(NULL, path, rc); /* a write cut short: full disk */
}
