/* ps_env.c -- opening, closing and describing a store.
 *
 * A handle (ps_env) is what one ps_env_open() returns; the LMDB
 * environment behind it is shared by every handle on the same directory
 * in this process (ps_registry.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ps_internal.h"

/* data.mdb private whatever the umask (lock.mdb is made 0600 before LMDB
 * opens it, ps_space.c).  Through LMDB's own descriptor: opening the file
 * by name could follow a symlink swapped in meanwhile. */
static int chmod_data(ps_env *e)
{
    mdb_filehandle_t fd;
    int rc = mdb_env_get_fd(e->mdb, &fd);
    if (!rc && fchmod(fd, 0600) != 0)
        rc = errno;
    return rc;
}

/* mdb_dbi_open may be used by one transaction at a time per process. */
static pthread_mutex_t dbi_mu = PTHREAD_MUTEX_INITIALIZER;

static int open_db(MDB_txn *txn, const char *name, int write, MDB_dbi *dbi)
{
    int rc = mdb_dbi_open(txn, name, write ? MDB_CREATE : 0, dbi);
    return rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE ? PS_ERR_NOT_A_STORE : rc;
}

/* *empty: LMDB's main database holds nothing (an empty file, which alone
 * may become a store; a file that has no meta database otherwise is some
 * other LMDB environment). */
static int main_db_empty(MDB_txn *txn, int *empty)
{
    MDB_dbi main_dbi;
    MDB_stat st;
    int rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
    if (!rc)
        rc = mdb_stat(txn, main_dbi, &st);
    *empty = !rc && st.ms_entries == 0;
    return rc;
}

/* Open (write: create) the store's databases and check its format.  A
 * format-1 store is upgraded in this txn when `write`, else refused with
 * PS_ERR_NEEDS_UPGRADE. */
static int open_dbs(ps_env *e, int write)
{
    MDB_txn *txn;
    /* Adopts a map grown by another process (MDB_MAP_RESIZED) and retries,
     * like every later transaction. */
    int rc = ps_begin_mdb(e, write, &txn);
    if (rc)
        return rc;
    rc = mdb_dbi_open(txn, PS_DB_META, 0, &e->meta_dbi);
    if (rc == MDB_NOTFOUND) {
        /* Not a store yet: only an empty LMDB file may become one. */
        int empty;
        rc = main_db_empty(txn, &empty);
        if (!rc && !empty)
            rc = PS_ERR_NOT_A_STORE;
        else if (!rc && !write)
            rc = PS_ERR_NO_STORE; /* a store another process is creating */
        if (!rc)
            rc = mdb_dbi_open(txn, PS_DB_META, MDB_CREATE, &e->meta_dbi);
    } else if (rc == MDB_INCOMPATIBLE) {
        rc = PS_ERR_NOT_A_STORE;
    }
    if (!rc)
        rc = open_db(txn, PS_DB_RESOURCES, write, &e->res_dbi);
    uint32_t format = 0;
    if (!rc) {
        /* Index entries and event streams (added after format 1 stores
         * were first written: created by the first writable open). */
        unsigned f = write ? MDB_CREATE : 0;
        rc = mdb_dbi_open(txn, PS_DB_INDEX, f | MDB_DUPSORT, &e->idx_dbi);
        if (!rc)
            rc = mdb_dbi_open(txn, PS_DB_EVENTS, f, &e->ev_dbi);
        if (!rc)
            e->has_aux = 1;
        else if (rc == MDB_NOTFOUND)
            rc = write || e->readonly ? PS_OK : PS_ERR_NOT_A_STORE;
        else if (rc == MDB_INCOMPATIBLE)
            rc = PS_ERR_NOT_A_STORE;
    }
    if (!rc) {
        MDB_val k = {sizeof PS_META_FORMAT - 1, (void *)PS_META_FORMAT}, v;
        rc = mdb_get(txn, e->meta_dbi, &k, &v);
        if (rc == MDB_NOTFOUND && write) {
            /* The store is created in this txn: it records the write mode
             * its environment was opened with (ps_prealloc.c). */
            char ver[4];
            format = e->sh->writemap ? PS_STORE_FORMAT_WRITEMAP : PS_FORMAT_VERSION;
            ps_put_u32(ver, format);
            v.mv_size = sizeof ver;
            v.mv_data = ver;
            rc = mdb_put(txn, e->meta_dbi, &k, &v, 0);
        } else if (rc == MDB_NOTFOUND) {
            rc = PS_ERR_NOT_A_STORE;
        } else if (!rc) {
            format = v.mv_size == 4 ? ps_get_u32(v.mv_data) : 0;
            if (format == 1)
                rc = write ? PS_OK : PS_ERR_NEEDS_UPGRADE;
            else if (format != PS_FORMAT_VERSION && format != PS_STORE_FORMAT_WRITEMAP)
                rc = PS_ERR_FORMAT;
            /* Another process created it in the other mode meanwhile: a
             * writable environment must not write it in this one. */
            else if (!e->sh->mdb_readonly &&
                     (format == PS_STORE_FORMAT_WRITEMAP) != (e->sh->writemap != 0))
                rc = PS_ERR_WRITE_MODE;
        }
    }
    /* Databases of format 2 (a format-1 store gets them at its upgrade). */
    if (!rc)
        rc = open_db(txn, PS_DB_CHANGES, write, &e->changes_dbi);
    if (!rc)
        rc = open_db(txn, PS_DB_HISTORY, write, &e->history_dbi);
    if (!rc && format == 1)
        rc = ps_upgrade_v1(e, txn);
    if (!rc)
        e->format = format == 1 ? PS_FORMAT_VERSION : format;
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    /* Commit even a read-only txn: an aborted txn closes its new dbis. */
    return mdb_txn_commit(txn);
}

/* open_dbs inside the gate (a counted transaction), serialised. */
static int open_dbs_gated(ps_env *e, int write)
{
    ps_shared *sh = e->sh;
    int rc = write ? pthread_mutex_lock(&sh->write_mu) : 0;
    if (rc)
        return rc;
    rc = ps_gate_enter(e);
    if (!rc) {
        pthread_mutex_lock(&dbi_mu);
        rc = open_dbs(e, write);
        pthread_mutex_unlock(&dbi_mu);
        ps_gate_exit(e, 1);
    }
    if (write)
        pthread_mutex_unlock(&sh->write_mu);
    return rc;
}

/* With the env held alone: double the map (a format-1 upgrade needs it). */
static int double_map(ps_shared *sh, void *arg)
{
    (void)arg;
    if (sh->writemap) {
        int rc = ps_wm_resize(sh, 0, 0, 0);
        return rc ? rc : ps_bounds_refresh(sh);
    }
    MDB_envinfo info;
    int rc = mdb_env_info(sh->mdb, &info);
    if (!rc && info.me_mapsize >= PS_MAX_MAP_SIZE)
        rc = MDB_MAP_FULL;
    if (!rc)
        rc = mdb_env_set_mapsize(sh->mdb, info.me_mapsize * 2);
    if (!rc)
        rc = ps_bounds_refresh(sh);
    return rc;
}

static int grow_gated(ps_env *e)
{
    int rc = ps_gate_enter(e);
    if (rc)
        return rc;
    rc = ps_gate_alone(e, double_map, NULL);
    ps_gate_exit(e, 1);
    return rc;
}

static int init_dbs(ps_env *e)
{
    /* A read txn suffices for an existing store, so opening one never waits
     * for another process's write transaction; only a new store needs the
     * writer lock to create its databases, and a format-1 store to be
     * upgraded (its upgrade is one txn: it happens whole or not at all). */
    int rc = open_dbs_gated(e, 0);
    if ((rc == PS_ERR_NOT_A_STORE || rc == PS_ERR_NO_STORE || rc == PS_ERR_NEEDS_UPGRADE) &&
        !e->readonly) {
        for (int tries = 0; tries < 24; tries++) {
            rc = open_dbs_gated(e, 1);
            if (rc != MDB_MAP_FULL)
                break;
            rc = grow_gated(e); /* the upgrade needs a bigger map */
            if (rc)
                break;
        }
    }
    return rc;
}

int ps_path_join(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= cap ? ENAMETOOLONG : PS_OK;
}

int ps_mdb_open(MDB_env **out, const char *path, unsigned mflags, uint64_t map_size)
{
    int rc = mdb_env_create(out);
    if (!rc)
        rc = mdb_env_set_maxdbs(*out, PS_MAX_DBS);
    if (!rc)
        rc = mdb_env_set_maxreaders(*out, PS_MAX_READERS);
    if (!rc && map_size)
        rc = mdb_env_set_mapsize(*out, map_size);
    /* Durability is chosen per write transaction (the env's MDB_NOSYNC set
     * at each write begin, ps_txn.c), so handles of both kinds share it. */
    if (!rc)
        rc = mdb_env_open(*out, path, MDB_NOTLS | mflags, 0600);
    return rc;
}

/* The write mode recorded in an env opened without MDB_WRITEMAP (which
 * never writes to or resizes an existing file): *mode 1 writemap (format
 * 3), 0 pwrite (formats 1 and 2, or not recognisably a store: open_dbs
 * decides), -1 not a store yet. */
static int probe_mode(MDB_env *mdb, int *mode)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(mdb, NULL, MDB_RDONLY, &txn);
    if (rc == MDB_MAP_RESIZED) { /* grown meanwhile: adopt (no file change) */
        rc = mdb_env_set_mapsize(mdb, 0);
        if (!rc)
            rc = mdb_txn_begin(mdb, NULL, MDB_RDONLY, &txn);
    }
    if (rc)
        return rc;
    MDB_dbi dbi;
    *mode = 0;
    pthread_mutex_lock(&dbi_mu);
    rc = mdb_dbi_open(txn, PS_DB_META, 0, &dbi);
    pthread_mutex_unlock(&dbi_mu);
    if (rc == MDB_NOTFOUND) {
        /* not a store: only an empty LMDB file may become one (open_dbs
         * refuses others, which must not be touched meanwhile) */
        int empty;
        if (main_db_empty(txn, &empty) == PS_OK && empty)
            *mode = -1;
        rc = PS_OK;
    } else if (!rc) {
        MDB_val k = {sizeof PS_META_FORMAT - 1, (void *)PS_META_FORMAT}, v;
        rc = mdb_get(txn, dbi, &k, &v);
        if (rc == MDB_NOTFOUND)
            *mode = -1;
        else if (!rc && v.mv_size == 4 && ps_get_u32(v.mv_data) == PS_STORE_FORMAT_WRITEMAP)
            *mode = 1;
        rc = PS_OK;
    } else {
        rc = PS_OK; /* e.g. MDB_INCOMPATIBLE: open_dbs reports it */
    }
    mdb_txn_abort(txn);
    return rc;
}

/* Open the env MDB_WRITEMAP: data.mdb allocated up to the map first, and
 * LMDB's ftruncate to the map size done under the same flock. */
static int writemap_open(ps_shared *sh, const char *path, const char *data,
                         uint64_t map_size)
{
    int fd = open(data, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ELOOP ? PS_ERR_UNSAFE_FILE : errno;
    int rc = ps_wm_lock(fd);
    if (!rc) {
        uint64_t size = 0;
        rc = ps_wm_prealloc(fd, map_size ? map_size : PS_WM_INITIAL, &size);
        if (!rc)
            rc = ps_mdb_open(&sh->mdb, path, MDB_WRITEMAP, size);
        ps_wm_unlock(fd);
    }
    close(fd);
    return rc;
}

/* The first handle on a directory opens the shared LMDB environment:
 * writable whenever the files allow it, even for a read-only handle (that
 * handle refuses writes itself), so a later writable handle can share it.
 * A writable env is first opened without MDB_WRITEMAP to read the store's
 * recorded write mode; a writemap store (or a new store on a filesystem
 * that allows it) is then reopened MDB_WRITEMAP. */
static int shared_open(ps_shared *sh, const char *path, unsigned flags,
                       uint64_t map_size)
{
    int readonly = (flags & PS_OPEN_READONLY) != 0;
    char data[4096];
    int rc = ps_path_join(data, sizeof data, path, "data.mdb");
    if (rc)
        return rc;
    int mdb_ro = 0;
    if (readonly) {
        struct stat st;
        if (stat(data, &st) != 0)
            return errno; /* ENOENT: a read-only open never creates a store */
        if (st.st_size == 0)
            return PS_ERR_NO_STORE; /* being created (or never was) */
        mdb_ro = faccessat(AT_FDCWD, path, W_OK, AT_EACCESS) != 0 ||
                 faccessat(AT_FDCWD, data, R_OK | W_OK, AT_EACCESS) != 0;
    }
    /* No environment of this process is open on these files yet, so
     * opening and closing lock.mdb here drops no lock of ours. */
    rc = ps_space_prepare_lock(path, PS_MAX_READERS);
    if (rc)
        return rc;
    uint64_t probe_size = map_size || !readonly ? (map_size ? map_size : PS_DEFAULT_MAP_SIZE) : 0;
    rc = ps_mdb_open(&sh->mdb, path, mdb_ro ? MDB_RDONLY : 0, probe_size);
    if (!rc) {
        int dead = 0;
        mdb_reader_check(sh->mdb, &dead); /* clear slots of dead processes */
        /* a truncated file would SIGBUS (and preallocation would hide it) */
        rc = ps_check_file(sh->mdb);
    }
    int mode = 0;
    if (!rc && !mdb_ro)
        rc = probe_mode(sh->mdb, &mode);
    if (!rc && mode < 0 && readonly)
        mode = 0; /* a read-only handle never creates the store */
    if (!rc && mode < 0) {
        mdb_filehandle_t fd;
        rc = mdb_env_get_fd(sh->mdb, &fd);
        if (!rc)
            mode = ps_wm_wanted(fd); /* a new store */
        else
            mode = 0;
    }
    if (!rc && mode == 1) {
        mdb_env_close(sh->mdb); /* our only env on these files (registry) */
        sh->mdb = NULL;
        rc = writemap_open(sh, path, data, map_size);
        if (rc == EOPNOTSUPP || rc == EINVAL) {
            /* no fallocate after all: writemap could SIGBUS */
            if (sh->mdb)
                mdb_env_close(sh->mdb);
            sh->mdb = NULL;
            rc = ps_mdb_open(&sh->mdb, path, 0, probe_size);
        } else if (rc == ENOSPC && readonly) {
            /* a full disk where the map has a hole to allocate: a reader
             * needs no block, so it reads through an MDB_RDONLY env (and
             * this process's writers are refused until it is closed) */
            if (sh->mdb)
                mdb_env_close(sh->mdb);
            sh->mdb = NULL;
            rc = ps_mdb_open(&sh->mdb, path, MDB_RDONLY, 0);
            mdb_ro = 1;
        } else if (!rc) {
            sh->writemap = 1;
        }
    }
    if (!rc)
        rc = ps_bounds_refresh(sh);
    if (!rc && !sh->writemap) {
        mdb_filehandle_t fd;
        sh->cow_fs = mdb_env_get_fd(sh->mdb, &fd) == 0 && ps_fs_cow(fd);
    }
    if (!rc && !readonly)
        rc = ps_xlock_open(sh, path); /* the writers' queue (ps_xlock.c) */
    if (rc) {
        rc = ps_space_errno(NULL, path, rc); /* a new store on a full disk */
        if (sh->mdb)
            mdb_env_close(sh->mdb);
        sh->mdb = NULL;
        sh->writemap = 0;
        return rc;
    }
    sh->mdb_readonly = mdb_ro;
    return PS_OK;
}

static int open_handle(ps_env *e, const char *path, uint64_t map_size,
                       unsigned flags, ps_shared **shp);

/* The first writable handle on an env a read-only handle opened: the
 * writers' queue now (a reader never makes write.lock: made by another
 * user, e.g. root, it would lock the owner's writers out).  Under write_mu,
 * which every reader of sh->xlock holds; no write txn can be live yet, as
 * every writable handle maps the queue at its open. */
static int xlock_late(ps_shared *sh, const char *path)
{
    if (__atomic_load_n(&sh->xlock, __ATOMIC_ACQUIRE) != NULL)
        return PS_OK;
    int rc = pthread_mutex_lock(&sh->write_mu);
    if (rc)
        return rc;
    if (sh->xlock == NULL)
        rc = ps_xlock_open(sh, path);
    pthread_mutex_unlock(&sh->write_mu);
    return rc;
}

int ps_env_open(const char *path, uint64_t map_size, unsigned flags,
                ps_env **out)
{
    if (path == NULL || out == NULL ||
        (flags & ~(unsigned)(PS_OPEN_READONLY | PS_OPEN_NOSYNC)))
        return PS_ERR_INVALID_ARG;
    *out = NULL;
    ps_env *e = calloc(1, sizeof *e);
    if (e == NULL)
        return PS_ERR_NOMEM;
    e->readonly = (flags & PS_OPEN_READONLY) != 0;
    e->nosync = (flags & PS_OPEN_NOSYNC) != 0;
    e->pid = ps_getpid();
    e->keep_changes = PS_DEFAULT_KEEP_CHANGES;
    e->closed = e->closing = 1;
    int rc = ps_paths_check(path, !e->readonly);
    ps_shared *sh = NULL;
    for (int tries = 0; !rc && tries < 8; tries++) {
        rc = open_handle(e, path, map_size, flags, &sh);
        if (rc != PS_ERR_WRITE_MODE)
            break;
        /* Created in the other mode by another process after our probe:
         * drop our env (with its last handle) and open it again. */
        e->closing = e->closed = 1;
        ps_shared_release(sh);
        ps_shared_unref(sh);
        e->sh = sh = NULL;
        e->mdb = NULL;
        rc = PS_OK;
        if (tries == 7)
            rc = PS_ERR_WRITE_MODE;
    }
    if (rc) {
        ps_idxset_free(e->idx_set);
        free(e);
        return rc;
    }
    *out = e;
    return PS_OK;
}

/* One attempt of ps_env_open: on failure the handle holds no env. */
static int open_handle(ps_env *e, const char *path, uint64_t map_size,
                       unsigned flags, ps_shared **shp)
{
    ps_shared *sh = NULL;
    int created = 0;
    int rc = ps_shared_acquire(path, &sh, &created);
    if (!rc && created) {
        rc = shared_open(sh, path, flags, map_size);
        ps_shared_opened(sh, rc == PS_OK);
        if (rc)
            sh = NULL; /* freed by ps_shared_opened */
    } else if (!rc && !e->readonly && sh->mdb_readonly) {
        rc = PS_ERR_SHARED_READONLY;
    } else if (!rc && !e->readonly) {
        rc = xlock_late(sh, path);
    }
    if (!rc) {
        e->sh = sh;
        e->mdb = sh->mdb;
        e->closed = e->closing = 0;
        rc = init_dbs(e);
        if (!rc && !e->readonly)
            rc = chmod_data(e);
        if (rc)
            rc = ps_space_errno(sh, path, rc);
    }
    if (rc == PS_ERR_WRITE_MODE) {
        *shp = sh; /* the caller drops it and retries */
        return rc;
    }
    if (rc && sh) {
        e->closing = e->closed = 1;
        ps_shared_release(sh);
        ps_shared_unref(sh);
        e->sh = NULL;
        e->mdb = NULL;
    }
    return rc;
}

void ps_env_close(ps_env *e)
{
    if (e == NULL)
        return;
    if (ps_getpid() != e->pid) {
        /* A forked child must not touch the parent's LMDB state or locks
         * (their state was copied mid-flight); just forget the handle. */
        e->closed = e->closing = 1;
        e->mdb = NULL;
        return;
    }
    if (e->sh == NULL)
        return;
    if (ps_gate_close(e)) {
        e->mdb = NULL;
        ps_shared_release(e->sh); /* closes the environment with the last */
    }
}

void ps_env_free(ps_env *e)
{
    if (e == NULL)
        return;
    ps_env_close(e);
    if (e->sh && ps_getpid() == e->pid)
        ps_shared_unref(e->sh);
    if (ps_getpid() == e->pid) {
        ps_idxset_free(e->idx_set);
        free(e->spare); /* no write txn of e is live: closed */
        while (e->log_spare) {
            struct ps_chunk *next = e->log_spare->next;
            free(e->log_spare);
            e->log_spare = next;
        }
    }
    free(e);
}

int ps_env_is_closed(ps_env *e)
{
    return e == NULL || e->closing;
}

int ps_env_get_info(ps_env *e, ps_env_info *out)
{
    if (out == NULL)
        return PS_ERR_INVALID_ARG;
    ps_txn *t;
    int rc = ps_txn_begin(e, 0, &t);
    if (rc)
        return rc;
    MDB_envinfo ei;
    MDB_stat es, rs;
    rc = mdb_env_info(e->mdb, &ei);
    if (!rc)
        rc = mdb_env_stat(e->mdb, &es);
    if (!rc)
        rc = mdb_stat(t->mdb, e->res_dbi, &rs);
    if (!rc) {
        memset(out, 0, sizeof *out);
        out->map_size = ei.me_mapsize;
        out->page_size = es.ms_psize;
        out->used_bytes = ((uint64_t)ei.me_last_pgno + 1) * es.ms_psize;
        out->entries = rs.ms_entries;
        out->depth = rs.ms_depth;
        out->max_readers = ei.me_maxreaders;
        out->num_readers = ei.me_numreaders;
        out->format_version = PS_FORMAT_VERSION; /* data format; the write mode: ps_env_writemap */
        rc = ps_last_revision(t->mdb, e, &out->revision);
    }
    ps_txn_abort(t);
    return rc;
}

int ps_env_copy(ps_env *e, const char *dest, int compact)
{
    if (e == NULL || dest == NULL)
        return PS_ERR_INVALID_ARG;
    if (ps_getpid() != e->pid)
        return PS_ERR_FORKED;
    char path[4096];
    int rc = ps_path_join(path, sizeof path, dest, "data.mdb");
    if (rc)
        return rc;
    /* Created 0600 from its first byte (LMDB's own copy creates it 0666
     * less the umask), never through a symlink, never over a file. */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno;
    rc = fchmod(fd, 0600) != 0 ? errno : PS_OK;
    if (!rc) {
        rc = ps_gate_enter(e);
        for (int tries = 0; !rc; tries++) {
            rc = mdb_env_copyfd2(e->mdb, fd, compact ? MDB_CP_COMPACT : 0);
            if (rc != MDB_MAP_RESIZED || tries == 8) {
                ps_gate_exit(e, 1);
                break;
            }
            /* Another process grew the map (frequent with a writemap
             * store's small steps): LMDB's own read txn does not adopt
             * it; ours does.  Nothing was written yet: copy again. */
            MDB_txn *txn;
            rc = ps_begin_mdb(e, 0, &txn);
            if (!rc)
                mdb_txn_abort(txn);
            if (!rc && (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0))
                rc = errno;
            if (rc)
                ps_gate_exit(e, 1);
        }
    }
    if (!rc && fsync(fd) != 0)
        rc = errno;
    if (close(fd) != 0 && !rc)
        rc = errno;
    if (rc) {
        rc = ps_space_errno(NULL, dest, rc);
        unlink(path); /* no partial copy left behind */
    }
    return rc;
}

int ps_env_reader_check(ps_env *e, int *cleared)
{
    if (e == NULL || cleared == NULL)
        return PS_ERR_INVALID_ARG;
    if (ps_getpid() != e->pid)
        return PS_ERR_FORKED;
    int rc = ps_gate_enter(e);
    if (rc)
        return rc;
    rc = mdb_reader_check(e->mdb, cleared);
    ps_gate_exit(e, 1);
    return rc;
}

int ps_env_writemap(ps_env *e)
{
    /* the recorded mode: a writable env always matches it (open_dbs) */
    return e != NULL && e->format == PS_STORE_FORMAT_WRITEMAP;
}
