/* ps_env.c -- opening, closing and describing a store. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ps_internal.h"

/* Make the store's files private whatever the umask.  Errors are only
 * reported for writable stores (a reader may not own the files). */
static int chmod_private(const char *dir, const char *name, int strict)
{
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path)
        return strict ? ENAMETOOLONG : 0;
    if (chmod(path, 0600) != 0 && strict && errno != ENOENT)
        return errno;
    return 0;
}

static int open_db(MDB_txn *txn, const char *name, int write, MDB_dbi *dbi)
{
    int rc = mdb_dbi_open(txn, name, write ? MDB_CREATE : 0, dbi);
    return rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE ? PS_ERR_NOT_A_STORE : rc;
}

/* Open (write: create) the store's databases and check its format.  A
 * format-1 store is upgraded in this txn when `write`, else refused with
 * PS_ERR_NEEDS_UPGRADE. */
static int open_dbs(ps_env *e, int write)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(e->mdb, NULL, write ? 0 : MDB_RDONLY, &txn);
    if (rc)
        return rc;
    rc = mdb_dbi_open(txn, PS_DB_META, 0, &e->meta_dbi);
    if (rc == MDB_NOTFOUND) {
        /* Not a store yet: only an empty LMDB file may become one. */
        MDB_dbi main_dbi;
        MDB_stat st;
        rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
        if (!rc)
            rc = mdb_stat(txn, main_dbi, &st);
        if (!rc && (!write || st.ms_entries != 0))
            rc = PS_ERR_NOT_A_STORE;
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
            char ver[4];
            ps_put_u32(ver, PS_FORMAT_VERSION);
            v.mv_size = sizeof ver;
            v.mv_data = ver;
            rc = mdb_put(txn, e->meta_dbi, &k, &v, 0);
            format = PS_FORMAT_VERSION;
        } else if (rc == MDB_NOTFOUND) {
            rc = PS_ERR_NOT_A_STORE;
        } else if (!rc) {
            format = v.mv_size == 4 ? ps_get_u32(v.mv_data) : 0;
            if (format == 1)
                rc = write ? PS_OK : PS_ERR_NEEDS_UPGRADE;
            else if (format != PS_FORMAT_VERSION)
                rc = PS_ERR_FORMAT;
        }
    }
    /* Databases of format 2 (a format-1 store gets them at its upgrade). */
    if (!rc)
        rc = open_db(txn, PS_DB_CHANGES, write, &e->changes_dbi);
    if (!rc)
        rc = open_db(txn, PS_DB_HISTORY, write, &e->history_dbi);
    if (!rc && format == 1)
        rc = ps_upgrade_v1(e, txn);
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    /* Commit even a read-only txn: an aborted txn closes its new dbis. */
    return mdb_txn_commit(txn);
}

static int init_dbs(ps_env *e)
{
    /* A read txn suffices for an existing store, so opening one never waits
     * for another process's write transaction; only a new store needs the
     * writer lock to create its databases, and a format-1 store to be
     * upgraded (its upgrade is one txn: it happens whole or not at all). */
    int rc = open_dbs(e, 0);
    if ((rc == PS_ERR_NOT_A_STORE || rc == PS_ERR_NEEDS_UPGRADE) && !e->readonly) {
        for (int tries = 0; tries < 24; tries++) {
            rc = open_dbs(e, 1);
            if (rc != MDB_MAP_FULL)
                break;
            MDB_envinfo info; /* the upgrade needs a bigger map */
            rc = mdb_env_info(e->mdb, &info);
            if (!rc && info.me_mapsize >= PS_MAX_MAP_SIZE)
                rc = MDB_MAP_FULL;
            if (!rc)
                rc = mdb_env_set_mapsize(e->mdb, info.me_mapsize * 2);
            if (rc)
                break;
        }
    }
    return rc;
}

static int env_alloc(ps_env **out)
{
    ps_env *e = calloc(1, sizeof *e);
    if (e == NULL)
        return PS_ERR_NOMEM;
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    /* Writers (close, resize) must not starve behind a stream of readers. */
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    int rc = pthread_rwlock_init(&e->life, &ra);
    pthread_rwlockattr_destroy(&ra);
    if (rc) {
        free(e);
        return rc;
    }
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK);
    rc = pthread_mutex_init(&e->write_mu, &ma);
    pthread_mutexattr_destroy(&ma);
    if (!rc) {
        rc = pthread_mutex_init(&e->pool_mu, NULL);
        if (rc)
            pthread_mutex_destroy(&e->write_mu);
    }
    if (rc) {
        pthread_rwlock_destroy(&e->life);
        free(e);
        return rc;
    }
    e->closed = 1;
    e->keep_changes = PS_DEFAULT_KEEP_CHANGES;
    *out = e;
    return PS_OK;
}

int ps_env_open(const char *path, uint64_t map_size, unsigned flags,
                ps_env **out)
{
    if (path == NULL || out == NULL ||
        (flags & ~(unsigned)(PS_OPEN_READONLY | PS_OPEN_NOSYNC)))
        return PS_ERR_INVALID_ARG;
    *out = NULL;
    ps_env *e;
    int rc = env_alloc(&e);
    if (rc)
        return rc;
    e->readonly = (flags & PS_OPEN_READONLY) != 0;
    e->pid = ps_getpid();
    rc = mdb_env_create(&e->mdb);
    if (!rc)
        rc = mdb_env_set_maxdbs(e->mdb, PS_MAX_DBS);
    if (!rc)
        rc = mdb_env_set_maxreaders(e->mdb, 1024);
    if (!rc && (map_size || !e->readonly))
        rc = mdb_env_set_mapsize(e->mdb, map_size ? map_size : PS_DEFAULT_MAP_SIZE);
    unsigned mflags = MDB_NOTLS;
    if (e->readonly)
        mflags |= MDB_RDONLY;
    if (flags & PS_OPEN_NOSYNC)
        mflags |= MDB_NOSYNC;
    if (!rc)
        rc = mdb_env_open(e->mdb, path, mflags, 0600);
    if (!rc) {
        rc = chmod_private(path, "data.mdb", !e->readonly);
        int rc2 = chmod_private(path, "lock.mdb", !e->readonly);
        if (!rc)
            rc = rc2;
    }
    if (!rc) {
        int dead = 0;
        mdb_reader_check(e->mdb, &dead); /* clear slots of dead processes */
        rc = ps_check_file(e); /* a truncated file would SIGBUS */
    }
    if (!rc) {
        rc = init_dbs(e);
    }
    if (rc) {
        if (e->mdb)
            mdb_env_close(e->mdb);
        e->mdb = NULL;
        ps_env_free(e);
        return rc;
    }
    e->closed = 0;
    *out = e;
    return PS_OK;
}

void ps_env_close(ps_env *e)
{
    if (e == NULL)
        return;
    if (ps_getpid() != e->pid) {
        /* A forked child must not touch the parent's LMDB state or locks
         * (their state was copied mid-flight); just forget the handle. */
        e->closed = 1;
        e->mdb = NULL;
        return;
    }
    pthread_rwlock_wrlock(&e->life);
    if (!e->closed) {
        e->closed = 1;
        ps_pool_drain(e); /* parked read txns die before their env */
        if (e->mdb)
            mdb_env_close(e->mdb);
        e->mdb = NULL;
    }
    pthread_rwlock_unlock(&e->life);
}

void ps_env_free(ps_env *e)
{
    if (e == NULL)
        return;
    ps_env_close(e);
    if (ps_getpid() == e->pid) {
        pthread_rwlock_destroy(&e->life);
        pthread_mutex_destroy(&e->write_mu);
        pthread_mutex_destroy(&e->pool_mu);
        ps_idxset_free(e->idx_set);
    }
    free(e);
}

int ps_env_is_closed(ps_env *e)
{
    return e == NULL || e->closed;
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
        out->format_version = PS_FORMAT_VERSION;
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
    pthread_rwlock_rdlock(&e->life);
    int rc = e->closed ? PS_ERR_CLOSED
                       : mdb_env_copy2(e->mdb, dest, compact ? MDB_CP_COMPACT : 0);
    pthread_rwlock_unlock(&e->life);
    if (!rc)
        rc = chmod_private(dest, "data.mdb", 1);
    return rc;
}

int ps_env_reader_check(ps_env *e, int *cleared)
{
    if (e == NULL || cleared == NULL)
        return PS_ERR_INVALID_ARG;
    if (ps_getpid() != e->pid)
        return PS_ERR_FORKED;
    pthread_rwlock_rdlock(&e->life);
    int rc = e->closed ? PS_ERR_CLOSED : mdb_reader_check(e->mdb, cleared);
    pthread_rwlock_unlock(&e->life);
    return rc;
}
