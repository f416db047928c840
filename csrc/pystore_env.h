/*
 * pystore_env.h -- part of the C core's public API (pystore_core.h):
 * return codes (the core's own and LMDB's), the on-disk record format, the
 * handle types and ps_buf, ps_strerror, opening, closing and copying a
 * store, and its write mode.  Include pystore_core.h, never this file
 * alone; its CDEF region is fed to cffi as pystore_core.h describes.
 */
#ifndef PYSTORE_ENV_H
#define PYSTORE_ENV_H

#ifndef PYSTORE_CORE_H
#error "include pystore_core.h, not pystore_env.h"
#endif

/* CDEF-BEGIN */
#define PS_OK 0

/* The core's own error codes. */
#define PS_ERR_KIND_EMPTY      -31000 /* kind is empty */
#define PS_ERR_KIND_SLASH      -31001 /* kind contains '/' */
#define PS_ERR_KIND_NUL        -31002 /* kind contains NUL */
#define PS_ERR_ID_EMPTY        -31003 /* id is empty */
#define PS_ERR_ID_NUL          -31004 /* id contains NUL */
#define PS_ERR_KEY_TOO_LONG    -31005 /* kind + "/" + id longer than PS_MAX_KEY */
#define PS_ERR_CLOSED          -31006 /* the env has been closed */
#define PS_ERR_READONLY        -31007 /* write on a read-only env or read txn */
#define PS_ERR_BAD_RECORD      -31008 /* a stored value has a damaged header */
#define PS_ERR_FORMAT          -31009 /* store written by an unknown format version */
#define PS_ERR_NOT_A_STORE     -31010 /* LMDB file without pystore's databases */
#define PS_ERR_VALUE_TOO_LARGE -31011 /* payload over PS_MAX_PAYLOAD */
#define PS_ERR_FORKED          -31012 /* env used in a child after fork() */
#define PS_ERR_TXN_FAILED      -31013 /* an earlier error made the txn unusable */
#define PS_ERR_NOMEM           -31014 /* out of memory */
#define PS_ERR_INVALID_ARG     -31015 /* NULL handle or bad flag */
#define PS_ERR_TRUNCATED       -31016 /* data file shorter than its pages in use */
#define PS_ERR_UNIQUE          -31017 /* a unique index already holds the value
                                         for another resource (ps_txn_violation) */
#define PS_ERR_INDEX_EXISTS    -31018 /* an index of that name has another definition */
#define PS_ERR_INDEX_DEF       -31019 /* an index definition (plan) is malformed */
#define PS_ERR_INDEX_QUERY     -31020 /* query value of the wrong type for the index */
#define PS_ERR_STREAM          -31021 /* stream name empty, holds NUL or too long */
#define PS_ERR_SEQ             -31022 /* seq outside 1..2^63-1 */
/* Revisions (ps_changes.c, ps_history.c, ps_upgrade.c); -31040..-31049. */
#define PS_ERR_CONFLICT        -31040 /* if_revision did not match the stored one */
#define PS_ERR_COMPACTED       -31041 /* changes from that revision were trimmed */
#define PS_ERR_NEEDS_UPGRADE   -31042 /* format-1 store opened read-only */
#define PS_ERR_RACED           -31043 /* another process committed while this write txn
                                         grew the map: nothing applied, retry */
/* Hardening codes (issue 8), their own sub-range. */
#define PS_ERR_UNSAFE_FILE     -31050 /* data.mdb/lock.mdb/write.lock is a symlink or not a regular file (write.lock: or a hard link) */
#define PS_ERR_UNSAFE_DIR      -31051 /* directory writable by others, not ours to tighten */
#define PS_ERR_VALUE_BOUNDS    -31052 /* a stored value's size points outside its pages */
#define PS_ERR_SHARED_READONLY -31053 /* open in this process on files it cannot write */
#define PS_ERR_WRONG_THREAD    -31054 /* write txn ended by a thread that did not begin it */

/* LMDB codes the core passes through (values fixed by lmdb.h). */
#define PS_LMDB_KEYEXIST       -30799
#define PS_LMDB_NOTFOUND       -30798
#define PS_LMDB_PAGE_NOTFOUND  -30797
#define PS_LMDB_CORRUPTED      -30796
#define PS_LMDB_PANIC          -30795
#define PS_LMDB_VERSION_MISMATCH -30794
#define PS_LMDB_INVALID        -30793
#define PS_LMDB_MAP_FULL       -30792
#define PS_LMDB_DBS_FULL       -30791
#define PS_LMDB_READERS_FULL   -30790
#define PS_LMDB_TXN_FULL       -30788
#define PS_LMDB_CURSOR_FULL    -30787
#define PS_LMDB_PAGE_FULL      -30786
#define PS_LMDB_MAP_RESIZED    -30785
#define PS_LMDB_INCOMPATIBLE   -30784
#define PS_LMDB_BAD_RSLOT      -30783
#define PS_LMDB_BAD_TXN        -30782
#define PS_LMDB_BAD_VALSIZE    -30781
#define PS_LMDB_BAD_DBI        -30780

/* On-disk record: PS_HEADER_SIZE header bytes, then the protobuf payload.
 * Header: u8 version (PS_FORMAT_VERSION), u8 flags (0), u16 reserved (0),
 * i64 little-endian updated_at in ns since the Unix epoch, u64
 * little-endian revision of the write that produced this version. */
#define PS_FORMAT_VERSION 2
#define PS_HEADER_SIZE 20
#define PS_MAX_KEY 511
#define PS_MAX_PAYLOAD 4294967275 /* 0xffffffff - PS_HEADER_SIZE */

/* ps_env_open flags */
#define PS_OPEN_READONLY 1  /* open an existing store, refuse writes */
#define PS_OPEN_NOSYNC   2  /* do not fsync on commit (MDB_NOSYNC) */

typedef struct ps_env ps_env;
typedef struct ps_txn ps_txn;

/* A growable buffer filled by the core; release with ps_buf_free(). */
typedef struct ps_buf {
    char *data;
    size_t len;
    size_t cap;
    uint64_t count;   /* number of entries written */
} ps_buf;

typedef struct ps_env_info {
    uint64_t map_size;     /* current size of the memory map in bytes */
    uint64_t used_bytes;   /* pages in use times the page size */
    uint64_t page_size;
    uint64_t entries;      /* resources stored */
    uint64_t depth;        /* B-tree depth of the resource table */
    uint32_t max_readers;
    uint32_t num_readers;
    uint32_t format_version;
    uint64_t revision;     /* last committed revision (0: none yet) */
} ps_env_info;

/* Describes any code returned by the core.  The string is static. */
const char *ps_strerror(int code);

/* Open (or, unless PS_OPEN_READONLY, create) the store in directory
 * `path`, which must exist.  map_size 0 keeps the size recorded in the
 * file (or a default for a new store).  On success *out must be released
 * with ps_env_close() and then ps_env_free().
 * Handles opened on the same directory in one process share one LMDB
 * environment, closed with the last handle; map_size is used only by the
 * first, readonly and PS_OPEN_NOSYNC are per handle.  data.mdb,
 * lock.mdb and write.lock (the writers' queue, made by the first writable
 * open) must not be symlinks (PS_ERR_UNSAFE_FILE); a writable open
 * tightens a directory others can write to 0700 if this user owns it,
 * else refuses it (PS_ERR_UNSAFE_DIR). */
int ps_env_open(const char *path, uint64_t map_size, unsigned flags,
                ps_env **out);
/* Close the handle; waits until no transaction of it is live (new ones
 * fail with PS_ERR_CLOSED at once), and closes the LMDB environment if it
 * was the last handle on it.  Idempotent. */
void ps_env_close(ps_env *env);
/* Free the handle itself (closes first if needed).  No transaction of
 * this env may be used afterwards. */
void ps_env_free(ps_env *env);
int ps_env_is_closed(ps_env *env);
int ps_env_get_info(ps_env *env, ps_env_info *out);
/* Copy the store to the directory `dest` (must exist and be empty);
 * compact drops free pages.  Safe while other threads and processes
 * write. */
int ps_env_copy(ps_env *env, const char *dest, int compact);
/* Remove reader slots left by dead processes; *cleared gets the count. */
int ps_env_reader_check(ps_env *env, int *cleared);

/* ---- write mode: MDB_WRITEMAP with a preallocated map (ps_prealloc.c) ----
 * A store is written either through LMDB's writable map of data.mdb
 * (MDB_WRITEMAP, the map allocated on disk with posix_fallocate; meta
 * format_version PS_STORE_FORMAT_WRITEMAP) or with pwrite (format 2).  The
 * mode is chosen when the store is created (pwrite where preallocation
 * does not reserve space for overwrites, or when the environment variable
 * PYSTORE_WRITEMAP is "0") and kept by every later writer.
 * PS_ERR_WRITE_MODE: the store's recorded mode differs from the one this
 * process's environment was opened with (the open retries it). */
#define PS_STORE_FORMAT_WRITEMAP 3
#define PS_ERR_WRITE_MODE -31055 /* store written in another write mode */
/* The store's recorded write mode: 1 writemap, 0 pwrite (every writable
 * environment on it uses that mode). */
int ps_env_writemap(ps_env *env);
/* Switch the pwrite store at `path` to the writemap mode, in place (see
 * ps_convert.c): one durable write of meta format_version, made only while
 * no process (this one included) has the store open, after its map is
 * allocated on disk (ENOSPC: nothing changed); the next writable open
 * writes it MDB_WRITEMAP.  *changed: 1 if it switched, 0 if it was a
 * writemap store already.  PS_ERR_IN_USE: open
 * somewhere; PS_ERR_NO_WRITEMAP: its filesystem does not allow the mode
 * (or PYSTORE_WRITEMAP=0 is set); PS_ERR_NEEDS_UPGRADE: a format-1 store
 * (open it writable once first); PS_ERR_NOT_A_STORE, PS_ERR_FORMAT. */
#define PS_ERR_IN_USE -31056      /* the store is open (in this or another process) */
#define PS_ERR_NO_WRITEMAP -31057 /* the filesystem does not allow the writemap mode */
int ps_store_to_writemap(const char *path, int *changed);

/* Opening a store another process is creating (review of 2026-12-06): an
 * empty data.mdb, or an LMDB environment holding nothing yet, is "no store
 * yet" for a read-only open (a writable open makes it a store), not
 * PS_ERR_NOT_A_STORE, which is kept for environments holding other data. */
#define PS_ERR_NO_STORE -31059 /* no store here yet (being created?) */
/* CDEF-END */

#endif /* PYSTORE_ENV_H */
