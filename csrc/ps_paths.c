/* ps_paths.c -- the store's files are never reached through a symlink.
 *
 * LMDB opens data.mdb and lock.mdb by name with O_CREAT and follows
 * symlinks: a lock.mdb symlink planted in the store directory would make
 * an open overwrite, extend and chmod its target.  Before LMDB opens them
 * both (and pystore's write.lock, opened O_NOFOLLOW anyway) must be absent
 * or regular files (lstat), and a writable open
 * tightens a directory that group or others may write to 0700 when this
 * user owns it (so nobody else can plant a link afterwards), or refuses
 * it when another user owns it or it is sticky (a shared directory such
 * as /tmp: the store belongs in a directory of its own). */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ps_internal.h"

static int check_file(const char *dir, const char *name)
{
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path)
        return ENAMETOOLONG;
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? PS_OK : errno;
    return S_ISREG(st.st_mode) ? PS_OK : PS_ERR_UNSAFE_FILE;
}

int ps_paths_check(const char *dir, int writable)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return errno;
    if (!S_ISDIR(st.st_mode))
        return ENOTDIR;
    if (writable && (st.st_mode & (S_IWGRP | S_IWOTH))) {
        if (st.st_uid != geteuid() || (st.st_mode & S_ISVTX))
            return PS_ERR_UNSAFE_DIR;
        if (chmod(dir, 0700) != 0)
            return errno;
    }
    int rc = check_file(dir, "data.mdb");
    if (!rc)
        rc = check_file(dir, "lock.mdb");
    if (!rc)
        rc = check_file(dir, PS_XLOCK_FILE);
    return rc;
}
