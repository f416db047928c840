/* ps_full.c -- a full filesystem is reported as full, never a crash.
 *
 * LMDB sizes lock.mdb with ftruncate() and then writes its reader table
 * through a shared memory map: on a full filesystem (tmpfs, ext4) the
 * first store to a page that cannot be allocated raises SIGBUS.  So the
 * lock file is created and its blocks allocated with posix_fallocate()
 * before LMDB opens it: a full disk is then ENOSPC, at open.
 *
 * LMDB reports a short write(2) as EIO.  A write comes up short when the
 * filesystem fills up in its middle; filesystems also keep reserves an
 * ordinary write cannot use (ext4: 5% for root plus up to 2% or 4096
 * clusters that nobody but the filesystem itself may use), so the free
 * space left after such a failure can be well above zero.  f_bavail,
 * the space left for unprivileged users, excludes every reserve: when
 * LMDB says EIO and that is (almost) nothing, the disk is full.
 *
 * Copy-on-write filesystems (btrfs, ZFS, bcachefs) allocate a new block
 * even for a store into a page that already has one: once the filesystem
 * is full, LMDB's next store into lock.mdb's map (every commit writes the
 * last transaction id there, every read txn its reader slot) raises
 * SIGBUS, and preallocation cannot prevent it (measured on btrfs, also
 * with the file marked NOCOW).  There, ps_space_guard refuses a write
 * commit with ENOSPC while less than PS_COW_SLACK is free, so the store's
 * own writes never fill the filesystem.  (A disk filled by another
 * program can still take the last block: docs/durability.md.) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "ps_internal.h"

/* LMDB 0.9's lock file on a 64-bit build: a 128-byte header (two cache
 * lines: reader mutex and counters, writer mutex) and one 64-byte slot per
 * reader, the first inside MDB_txninfo.  LMDB derives maxreaders from the
 * size of an existing lock file, so this must be exact. */
#define LOCK_HEADER 192u
#define LOCK_SLOT 64u

int ps_space_prepare_lock(const char *dir, unsigned max_readers)
{
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/lock.mdb", dir);
    if (n < 0 || (size_t)n >= sizeof path)
        return ENAMETOOLONG;
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);
    if (fd < 0) {
        if (errno == ELOOP)
            return PS_ERR_UNSAFE_FILE;
        return PS_OK; /* e.g. EACCES on a read-only store: LMDB decides */
    }
    struct stat st;
    int rc = fstat(fd, &st) != 0 ? errno : PS_OK;
    if (!rc && !S_ISREG(st.st_mode))
        rc = PS_ERR_UNSAFE_FILE;
    if (!rc && st.st_uid == geteuid())
        (void)fchmod(fd, 0600);
    if (!rc) {
        off_t want = (off_t)LOCK_HEADER + (off_t)(max_readers - 1) * LOCK_SLOT;
        if (st.st_size > want)
            want = st.st_size; /* made by another LMDB build: keep it */
        int err = posix_fallocate(fd, 0, want);
        if (err == ENOSPC || err == EDQUOT)
            rc = ENOSPC;
        /* other errors (EOPNOTSUPP, EBADF on read-only files): LMDB's own
         * ftruncate decides, as before */
    }
    close(fd);
    return rc;
}

int ps_space_errno(ps_shared *sh, const char *dir, int rc)
{
    if (rc != EIO)
        return rc;
    struct statvfs sv;
    int ok = -1;
    mdb_filehandle_t fd;
    if (sh && sh->mdb && mdb_env_get_fd(sh->mdb, &fd) == 0)
        ok = fstatvfs(fd, &sv);
    else if (dir)
        ok = statvfs(dir, &sv);
    if (ok != 0)
        return rc;
    return (uint64_t)sv.f_bavail * sv.f_frsize < PS_FULL_DISK_SLACK ? ENOSPC : rc;
}

int ps_space_guard(ps_shared *sh)
{
    mdb_filehandle_t fd;
    struct statvfs sv;
    if (!sh->cow_fs || sh->mdb == NULL || mdb_env_get_fd(sh->mdb, &fd) != 0 ||
        fstatvfs(fd, &sv) != 0)
        return PS_OK;
    return (uint64_t)sv.f_bavail * sv.f_frsize < PS_COW_SLACK ? ENOSPC : PS_OK;
}
