/* ps_error.c -- one description for every code the core returns. */
#include <lmdb.h>

#include "ps_internal.h"

_Static_assert(PS_LMDB_KEYEXIST == MDB_KEYEXIST, "lmdb code drift");
_Static_assert(PS_LMDB_NOTFOUND == MDB_NOTFOUND, "lmdb code drift");
_Static_assert(PS_LMDB_CORRUPTED == MDB_CORRUPTED, "lmdb code drift");
_Static_assert(PS_LMDB_PANIC == MDB_PANIC, "lmdb code drift");
_Static_assert(PS_LMDB_VERSION_MISMATCH == MDB_VERSION_MISMATCH, "lmdb code drift");
_Static_assert(PS_LMDB_INVALID == MDB_INVALID, "lmdb code drift");
_Static_assert(PS_LMDB_MAP_FULL == MDB_MAP_FULL, "lmdb code drift");
_Static_assert(PS_LMDB_READERS_FULL == MDB_READERS_FULL, "lmdb code drift");
_Static_assert(PS_LMDB_TXN_FULL == MDB_TXN_FULL, "lmdb code drift");
_Static_assert(PS_LMDB_MAP_RESIZED == MDB_MAP_RESIZED, "lmdb code drift");
_Static_assert(PS_LMDB_BAD_TXN == MDB_BAD_TXN, "lmdb code drift");
_Static_assert(PS_LMDB_BAD_VALSIZE == MDB_BAD_VALSIZE, "lmdb code drift");
_Static_assert(PS_LMDB_BAD_DBI == MDB_BAD_DBI, "lmdb code drift");

const char *ps_strerror(int code)
{
    switch (code) {
    case PS_OK: return "success";
    case PS_ERR_KIND_EMPTY: return "kind is empty";
    case PS_ERR_KIND_SLASH: return "kind contains '/'";
    case PS_ERR_KIND_NUL: return "kind contains a NUL character";
    case PS_ERR_ID_EMPTY: return "id is empty";
    case PS_ERR_ID_NUL: return "id contains a NUL character";
    case PS_ERR_KEY_TOO_LONG: return "key kind/id is longer than 511 bytes";
    case PS_ERR_CLOSED: return "store is closed";
    case PS_ERR_READONLY: return "store or transaction is read-only";
    case PS_ERR_BAD_RECORD: return "stored record has a damaged header";
    case PS_ERR_FORMAT: return "store was written by an unknown format version";
    case PS_ERR_NOT_A_STORE: return "file is an LMDB environment but not a pystore store";
    case PS_ERR_VALUE_TOO_LARGE: return "value is larger than a record can hold";
    case PS_ERR_FORKED: return "store used in a child process after fork()";
    case PS_ERR_TXN_FAILED: return "transaction failed earlier and must be aborted";
    case PS_ERR_NOMEM: return "out of memory";
    case PS_ERR_INVALID_ARG: return "invalid argument";
    case PS_ERR_UNIQUE: return "a unique index already holds that value for another resource";
    case PS_ERR_INDEX_EXISTS: return "an index of that name exists with another definition";
    case PS_ERR_INDEX_DEF: return "index definition is malformed";
    case PS_ERR_INDEX_QUERY: return "query value does not fit the index's field type";
    case PS_ERR_STREAM: return "stream name is empty, holds a NUL character or is too long";
    case PS_ERR_SEQ: return "seq is outside 1..2**63-1";
    case PS_ERR_TRUNCATED: return "data file is shorter than the pages it claims to hold (truncated)";
    case PS_ERR_CONFLICT: return "the stored revision is not the one the write was conditional on";
    case PS_ERR_COMPACTED: return "changes from that revision are no longer kept (compacted)";
    case PS_ERR_RACED: return "another process committed while this write transaction grew the map; nothing was applied";
    case PS_ERR_NEEDS_UPGRADE: return "store was written by format 1 and must be upgraded before it can be read";
    case PS_ERR_UNSAFE_FILE: return "data.mdb, lock.mdb or write.lock is a symlink or not a regular file (or write.lock a hard link)";
    case PS_ERR_UNSAFE_DIR: return "store directory is writable by other users and not owned by this user (or sticky)";
    case PS_ERR_VALUE_BOUNDS: return "stored record's size runs outside its pages (damaged file)";
    case PS_ERR_SHARED_READONLY: return "store is open in this process on files it cannot write";
    case PS_ERR_WRONG_THREAD: return "a write transaction must be ended by the thread that began it";
    case PS_ERR_WRITE_MODE: return "store is being written in another write mode (writemap/pwrite) by another opener";
    case PS_ERR_IN_USE: return "store is open (in this or another process)";
    case PS_ERR_SCHEMA_MOVED: return "a kind's recorded message type changed since the caller checked it";
    case PS_ERR_WAIT_AGAIN: return "another thread or process holds the store's write transaction (begin again)";
    case PS_ERR_NO_STORE: return "no store here yet (an empty LMDB environment: another process may be creating the store)";
    case PS_ERR_NO_WRITEMAP: return "the store's filesystem does not allow the writemap mode (or PYSTORE_WRITEMAP=0 is set)";
    default: return mdb_strerror(code); /* LMDB codes and errno values */
    }
}
