/* ps_prealloc.c -- MDB_WRITEMAP made safe: the map file is allocated on
 * disk before LMDB's map can reach it.
 *
 * With MDB_WRITEMAP LMDB writes pages through a shared writable map of
 * data.mdb and ftruncate()s the file to the map size (sparse).  A store to
 * a page whose block cannot be allocated (full disk) raises SIGBUS.  So in
 * writemap mode the whole map range is allocated with posix_fallocate()
 * before LMDB maps it: at open and before every growth.  A full disk is
 * then ENOSPC from the growth (StorageFullError), and every page inside
 * the map already owns its block.  A failed fallocate may leave a partial
 * allocation (ext4 keeps what it got): the file is truncated back to the
 * size it had.
 *
 * That reservation holds for overwrites only where the filesystem writes
 * in place: ext4, XFS and tmpfs.  Copy-on-write, compressing or network
 * filesystems (btrfs, ZFS, bcachefs, NFS, FUSE, overlay...) may need new
 * blocks for every write, so a new store there keeps the pwrite mode
 * (ps_wm_wanted).
 *
 * Every change of data.mdb's size in writemap mode (our fallocate, our
 * truncate-back, and LMDB's own ftruncate to the map size inside
 * mdb_env_open / mdb_env_set_mapsize) happens under an exclusive flock()
 * of data.mdb, with a size at least the file's current size.  So the file
 * never shrinks below a map another process has (which would SIGBUS it),
 * and two processes growing at once take turns. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "ps_internal.h"

#define FS_EXT4 0xEF53u       /* ext2/3/4 */
#define FS_XFS 0x58465342u
#define FS_TMPFS 0x01021994u
#define FS_BTRFS 0x9123683Eu
#define FS_ZFS 0x2FC12FC1u
#define FS_BCACHEFS 0xCA451A4Eu

/* fd's filesystem type (statfs f_type), 0 if unknown. */
static unsigned long fs_type(int fd)
{
    struct statfs sf;
    return fstatfs(fd, &sf) == 0 ? (unsigned long)sf.f_type : 0;
}

int ps_fs_cow(int fd)
{
    unsigned long t = fs_type(fd);
    return t == FS_BTRFS || t == FS_ZFS || t == FS_BCACHEFS;
}

int ps_wm_fs_ok(int fd)
{
    unsigned long t = fs_type(fd);
    return t == FS_EXT4 || t == FS_XFS || t == FS_TMPFS;
}

int ps_wm_wanted(int fd)
{
    const char *v = getenv("PYSTORE_WRITEMAP");
    if (v && strcmp(v, "0") == 0)
        return 0;
    return ps_wm_fs_ok(fd);
}

int ps_flock(int fd, int op)
{
    while (flock(fd, op) != 0) {
        if (errno != EINTR)
            return errno;
    }
    return PS_OK;
}

int ps_wm_lock(int fd)
{
    return ps_flock(fd, LOCK_EX);
}

void ps_wm_unlock(int fd)
{
    (void)flock(fd, LOCK_UN);
}

static uint64_t round_mib(uint64_t n)
{
    const uint64_t mib = (uint64_t)1 << 20;
    return (n + mib - 1) / mib * mib;
}

int ps_wm_prealloc(int fd, uint64_t want, uint64_t *out)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return errno;
    uint64_t old = (uint64_t)st.st_size;
    if (want > PS_MAX_MAP_SIZE)
        want = PS_MAX_MAP_SIZE;
    uint64_t size = want > old ? round_mib(want) : old;
    /* Below `old` the file is allocated already unless it has holes (a
     * sparse copy of the store, a hole punched): then from the first one.
     * SEEK_HOLE finds any (and an unwritten preallocated extent, which
     * allocating again leaves as it is); st_blocks, the fallback where
     * SEEK_HOLE is missing, counts the filesystem's extent blocks too, so
     * a small hole next to them could hide, and a store into it through
     * the map on a full disk would be SIGBUS. */
    uint64_t from = old;
    off_t hole = lseek(fd, 0, SEEK_HOLE);
    if (hole >= 0 && (uint64_t)hole < old)
        from = (uint64_t)hole & ~(uint64_t)4095;
    else if (hole < 0 && (uint64_t)st.st_blocks * 512 < old)
        from = 0;
    if (from >= size) {
        *out = size;
        return PS_OK; /* the open of a store that is allocated: no call */
    }
    /* tmpfs fails with EINTR on any signal (and undoes what it did): a
     * few tries, so a signal storm fails the call instead of holding it */
    int err = EINTR;
    for (int tries = 0; err == EINTR && tries < 8; tries++)
        err = posix_fallocate(fd, (off_t)from, (off_t)(size - from));
    if (err) {
        if (fstat(fd, &st) == 0 && (uint64_t)st.st_size > old)
            (void)ftruncate(fd, (off_t)old); /* drop a partial allocation */
        return err == EDQUOT || err == EFBIG ? ENOSPC : err;
    }
    *out = size;
    return PS_OK;
}

uint64_t ps_wm_step(uint64_t map)
{
    uint64_t step = map / 8;
    return step > PS_WM_MIN_STEP ? step : PS_WM_MIN_STEP;
}

/* Grow a writemap env: under the flock, allocate up to the larger of the
 * file (another process may have grown it) and map + step (at least
 * `need`), falling back to smaller steps on a nearly full disk, then remap
 * at the file's size.
 * `adopt`: only remap at the file's size (another process grew it). */
int ps_wm_resize(ps_shared *sh, int adopt, unsigned attempt, uint64_t need)
{
    mdb_filehandle_t fd;
    MDB_envinfo info;
    int rc = mdb_env_get_fd(sh->mdb, &fd);
    if (!rc)
        rc = mdb_env_info(sh->mdb, &info);
    if (rc)
        return rc;
    rc = ps_wm_lock(fd);
    if (rc)
        return rc;
    uint64_t cur = info.me_mapsize, size = 0;
    if (adopt) {
        rc = ps_wm_prealloc(fd, cur, &size);
    } else if (cur >= PS_MAX_MAP_SIZE) {
        rc = MDB_MAP_FULL;
    } else {
        uint64_t step = ps_wm_step(cur);
        /* a transaction that is still too small after a growth: bigger
         * steps, so a huge batch is not replayed once per step */
        for (unsigned i = 0; i < attempt && step < PS_MAX_MAP_SIZE / 2; i++)
            step *= 2;
        if (need > step && need < PS_MAX_MAP_SIZE)
            step = need;
        for (;;) {
            rc = ps_wm_prealloc(fd, cur + step, &size);
            if (rc != ENOSPC || step <= PS_WM_LAST_STEP)
                break;
            step /= 2; /* nearly full: take what is left, in smaller steps */
        }
    }
    if (!rc)
        rc = mdb_env_set_mapsize(sh->mdb, (size_t)size);
    ps_wm_unlock(fd);
    return rc;
}
