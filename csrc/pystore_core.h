/*
 * pystore_core.h -- the C core of pystore: protobuf resources keyed
 * "<Kind>/<ID>" in LMDB.
 *
 * Shape (after lmdb.h): opaque handles; every fallible call returns an int
 * (PS_OK == 0 on success) and hands results back through out-parameters;
 * ps_strerror() describes any code.  Codes come from three disjoint ranges:
 *   - the core's own codes, PS_ERR_* in [-31099, -31000];
 *   - LMDB's codes, passed through unchanged, in [-30799, -30780]
 *     (mirrored below as PS_LMDB_*);
 *   - positive values, which are errno values from the OS.
 *
 * Threads: a ps_env may be shared by threads.  Read transactions may be
 * used from any thread (the env is opened with MDB_NOTLS); a write
 * transaction must stay on the thread that began it.  One write
 * transaction at a time per env: a thread that begins a second write
 * transaction while holding one gets EDEADLK instead of a deadlock.
 *
 * Everything between the CDEF markers is also fed to cffi's cdef(), so it
 * holds declarations and integer #defines only.
 */
#ifndef PYSTORE_CORE_H
#define PYSTORE_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
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
 * i64 little-endian updated_at in ns since the Unix epoch. */
#define PS_FORMAT_VERSION 1
#define PS_HEADER_SIZE 12
#define PS_MAX_KEY 511
#define PS_MAX_PAYLOAD 4294967283 /* 0xffffffff - PS_HEADER_SIZE */

/* ps_env_open flags */
#define PS_OPEN_READONLY 1  /* open an existing store, refuse writes */
#define PS_OPEN_NOSYNC   2  /* do not fsync on commit (MDB_NOSYNC) */

/* ps_txn_begin flags */
#define PS_TXN_WRITE 1

/* ps_put flags */
#define PS_PUT_NOOVERWRITE 1 /* fail with PS_LMDB_KEYEXIST if the key exists */
#define PS_PUT_BORROW      2 /* the payload stays valid until the txn ends;
                                the core keeps a pointer instead of a copy */

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
} ps_env_info;

/* Describes any code returned by the core.  The string is static. */
const char *ps_strerror(int code);

/* Open (or, unless PS_OPEN_READONLY, create) the store in directory
 * `path`, which must exist.  map_size 0 keeps the size recorded in the
 * file (or a default for a new store).  On success *out must be released
 * with ps_env_close() and then ps_env_free(). */
int ps_env_open(const char *path, uint64_t map_size, unsigned flags,
                ps_env **out);
/* Close the LMDB environment; waits until no transaction is live.
 * Idempotent.  Later calls on the env return PS_ERR_CLOSED. */
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

/* Begin a transaction (flags: PS_TXN_WRITE or 0).  A txn must end with
 * exactly one ps_txn_commit() or ps_txn_abort(); both free it. */
int ps_txn_begin(ps_env *env, unsigned flags, ps_txn **out);
/* Commit; the txn is freed whatever the result.  If the map is full the
 * core grows it and replays the transaction before committing. */
int ps_txn_commit(ps_txn *txn);
void ps_txn_abort(ps_txn *txn);

/* Upsert (or, with PS_PUT_NOOVERWRITE, create) kind/id.  The value is
 * written once: header, then payload. */
int ps_put(ps_txn *txn, const char *kind, size_t kind_len,
           const char *id, size_t id_len,
           const char *payload, size_t payload_len,
           int64_t updated_ns, unsigned flags);
/* Look up kind/id.  *payload points into the map and stays valid until
 * the txn ends or, in a write txn, until its next write.  Returns
 * PS_LMDB_NOTFOUND when absent. */
int ps_get(ps_txn *txn, const char *kind, size_t kind_len,
           const char *id, size_t id_len,
           const char **payload, size_t *payload_len, int64_t *updated_ns);
/* Delete kind/id; *existed is 1 if it was there, else 0 (not an error). */
int ps_del(ps_txn *txn, const char *kind, size_t kind_len,
           const char *id, size_t id_len, int *existed);
/* Delete every resource of a kind in this txn; *deleted gets the count. */
int ps_del_kind(ps_txn *txn, const char *kind, size_t kind_len,
                uint64_t *deleted);
/* Number of resources of a kind. */
int ps_count(ps_txn *txn, const char *kind, size_t kind_len,
             uint64_t *count);
/* Append to `out` the resources of a kind whose id sorts strictly after
 * `after` (after NULL: from the first), at most `limit` (0: all), in key
 * order.  Entry layout, little-endian: u32 id_len, u32 payload_len,
 * i64 updated_ns, id bytes, payload bytes. */
int ps_list(ps_txn *txn, const char *kind, size_t kind_len,
            const char *after, size_t after_len, uint64_t limit,
            ps_buf *out);
/* Like ps_list, but each stored value as it is, header unchecked, so a
 * damaged record can be named (for verification).  Entry layout,
 * little-endian: u32 id_len, u32 value_len, id bytes, value bytes (the
 * PS_HEADER_SIZE-byte header, then the payload). */
int ps_list_raw(ps_txn *txn, const char *kind, size_t kind_len,
                const char *after, size_t after_len, uint64_t limit,
                ps_buf *out);
/* Append to `out` the ids (only: no payload is read or copied) of a kind
 * that start with `prefix` (prefix_len 0: any) and sort strictly after
 * `after` (after_len 0: from the first), at most `limit` (0: all), in key
 * order.  Entry layout: u32 id_len, id bytes.  (ps_ids.c) */
int ps_list_ids(ps_txn *txn, const char *kind, size_t kind_len,
                const char *after, size_t after_len,
                const char *prefix, size_t prefix_len, uint64_t limit,
                ps_buf *out);
/* Space accounting of the snapshot `txn` sees, in pages of page_size
 * bytes: high_pages is the high-water mark of the file (pages ever used),
 * free_pages those on LMDB's free list (and the list's own tree), live_pages
 * the rest: what a compacted copy writes.  (ps_space.c) */
typedef struct ps_space {
    uint64_t page_size;
    uint64_t high_pages;
    uint64_t free_pages;
    uint64_t live_pages;
} ps_space;
int ps_txn_space(ps_txn *txn, ps_space *out);
/* Append to `out` every kind holding at least one resource, sorted.
 * Entry layout: u32 len, bytes. */
int ps_kinds(ps_txn *txn, ps_buf *out);
/* Read / write a value of the store's meta table (raw bytes, no header). */
int ps_meta_get(ps_txn *txn, const char *key, size_t key_len,
                const char **val, size_t *val_len);
int ps_meta_put(ps_txn *txn, const char *key, size_t key_len,
                const char *val, size_t val_len);
/* Check a kind and id without touching the store. */
int ps_check_key(const char *kind, size_t kind_len,
                 const char *id, size_t id_len);
void ps_buf_free(ps_buf *buf);

/* Fast paths (ps_reader.c, ps_wire.c). */
/* One-call read of kind/id in its own (reused) read txn: the payload is
 * copied into buf when *payload_len <= cap; otherwise nothing is copied and
 * the caller retries with a buffer of *payload_len bytes.  Returns
 * PS_LMDB_NOTFOUND when absent. */
int ps_get_into(ps_env *env, const char *kind, size_t kind_len,
                const char *id, size_t id_len, char *buf, size_t cap,
                size_t *payload_len, int64_t *updated_ns);
/* Like ps_list, but each record is appended as one element of a repeated
 * message field number `field` (1..2^29-1) in protobuf wire format (tag,
 * varint length, payload), so the whole buffer parses as one wrapper
 * message.  out->count gets the number of records. */
int ps_list_wire(ps_txn *txn, const char *kind, size_t kind_len,
                 const char *after, size_t after_len, uint64_t limit,
                 uint32_t field, ps_buf *out);
/* Copy the serialized message `in` to `out` without the fields `plan`
 * names, at any depth (plan format: see ps_strip.c).  out_cap must be at
 * least in_len + PS_STRIP_SLACK.  Returns PS_ERR_BAD_RECORD for input it
 * does not handle (malformed, groups, deeper than 100), the caller then
 * strips another way. */
#define PS_STRIP_DROP 4294967295
#define PS_STRIP_SLACK 512
int ps_wire_strip(const uint32_t *plan, size_t plan_len, const char *in,
                  size_t in_len, char *out, size_t out_cap, size_t *out_len);
/* ps_put() of n records of one kind in one call.  `data` holds, for each
 * record in order, its id then its payload; lens[2i] and lens[2i+1] are
 * their lengths.  With PS_PUT_BORROW, data must stay valid until the txn
 * ends.  On error *failed_at is the index of the record that failed (the
 * ones before it are written, as by ps_put). */
int ps_put_many(ps_txn *txn, const char *kind, size_t kind_len,
                const char *data, size_t data_len, const uint32_t *lens,
                size_t n, int64_t updated_ns, unsigned flags,
                size_t *failed_at);
/* CDEF-END */

#ifdef __cplusplus
}
#endif
#endif /* PYSTORE_CORE_H */
