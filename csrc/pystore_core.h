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
#define PS_ERR_UNSAFE_FILE     -31050 /* data.mdb/lock.mdb is a symlink or not a regular file */
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

/* Change log operations (the first byte of a change's value). */
#define PS_CHANGE_PUT           1
#define PS_CHANGE_DELETE        2
#define PS_CHANGE_DELETE_KIND   3
#define PS_CHANGE_APPEND        4 /* reserved for event streams */
#define PS_CHANGE_DELETE_PREFIX 5 /* reserved for prefix deletes */
#define PS_DEFAULT_KEEP_CHANGES 100000

/* ps_env_open flags */
#define PS_OPEN_READONLY 1  /* open an existing store, refuse writes */
#define PS_OPEN_NOSYNC   2  /* do not fsync on commit (MDB_NOSYNC) */

/* ps_txn_begin flags */
#define PS_TXN_WRITE 1
/* With PS_TXN_WRITE: wait for another thread of this process's write txn
 * at most PS_TXN_SLICE_MS, then fail with PS_ERR_WAIT_AGAIN (nothing held):
 * the caller calls again, so a signal (Ctrl-C) is handled between waits
 * instead of after the other thread's whole transaction.  (Another
 * process's write txn is waited for in LMDB's lock, which no signal
 * interrupts: docs/durability.md.) */
#define PS_TXN_WAIT_SLICE 2
#define PS_TXN_SLICE_MS 20
#define PS_ERR_WAIT_AGAIN -31060 /* another thread holds the write txn: call again */

/* ps_put flags */
#define PS_PUT_NOOVERWRITE 1 /* fail with PS_LMDB_KEYEXIST if the key exists */
#define PS_PUT_BORROW      2 /* the payload stays valid until the txn ends;
                                the core keeps a pointer instead of a copy */
#define PS_PUT_IF_REVISION 4 /* ps_put_if: write only if the stored record's
                                revision equals `expected` (0: absent) */

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
 * first, readonly and PS_OPEN_NOSYNC are per handle.  data.mdb and
 * lock.mdb must not be symlinks (PS_ERR_UNSAFE_FILE); a writable open
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

/* Begin a transaction (flags: PS_TXN_WRITE [| PS_TXN_WAIT_SLICE] or 0).  A txn must end with
 * exactly one ps_txn_commit(), ps_txn_abort() or ps_txn_finish(); all free
 * it.  *out is written before the call returns, so a caller that passes
 * memory it owns always knows the live txn.  A write txn must end on the
 * thread that began it. */
int ps_txn_begin(ps_env *env, unsigned flags, ps_txn **out);
/* End the txn in *slot (commit if `commit`, else abort) and set *slot to
 * NULL in the same call; *rc_out and *rev_out (the revision committed, as
 * ps_txn_commit_rev; either may be NULL) get the results too, so a caller
 * interrupted right after the call still knows the outcome.  *slot NULL:
 * nothing to do, PS_OK.  A write txn ended from another thread is left
 * alone: PS_ERR_WRONG_THREAD. */
int ps_txn_finish(ps_txn **slot, int commit, int *rc_out, uint64_t *rev_out);
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
 * i64 updated_ns, u64 revision, id bytes, payload bytes. */
int ps_list(ps_txn *txn, const char *kind, size_t kind_len,
            const char *after, size_t after_len, uint64_t limit,
            ps_buf *out);
/* Like ps_list, but each stored value as it is, header unchecked, so a
 * damaged record can be named (for verification).  Entry layout,
 * little-endian: u32 id_len, u32 value_len, id bytes, value bytes (the
 * PS_HEADER_SIZE-byte header, then the payload).  A record whose stored
 * size runs outside its pages has value_len PS_RAW_DAMAGED and no value
 * bytes (every other listing fails with PS_ERR_VALUE_BOUNDS there). */
#define PS_RAW_DAMAGED 4294967295
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
/* The number of records the resources table's root says it holds (LMDB's
 * own count, kept apart from the pages: a walk that finds fewer met damaged
 * B-tree pages). */
int ps_txn_entries(ps_txn *txn, uint64_t *out);
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

/* ---- One-call writes (ps_fastwrite.c) -----------------------------------
 * Each call checks its arguments, strips (a plan of ps_wire_strip, or NULL
 * for none), begins a write transaction of its own, writes with every hook
 * of ps_put_if / ps_del_if / ps_del_kind / ps_put_many (revision, change
 * log, indexes, history), takes the time stamp (CLOCK_REALTIME) and commits;
 * the transaction has ended when the call returns, whatever happened, so
 * a caller interrupted around the call never holds one.  MDB_MAP_FULL is
 * handled as in any transaction (grow the map, replay the txn's log).
 * Order of the checks: strip, payload size, fork, close, read-only, key(s),
 * then the transaction, begun with PS_TXN_WAIT_SLICE (stage BEGIN, code
 * PS_ERR_WAIT_AGAIN: another thread of the process held the write txn for
 * a whole slice; pystore then writes through its general path, which waits
 * in slices too).  The result is the return value: >= 0 on success,
 * -ticket (< 0) on failure, with the details in this thread's ps_fw_info
 * (read by ps_fw_last; info.ticket == -result while they are this call's:
 * a later failure of the thread, e.g. of a signal handler's call run
 * before the caller reads them, replaces them with its own ticket). */
typedef struct ps_fw_plan {
    const uint32_t *table; /* ps_wire_strip's plan; must outlive the calls */
    size_t len;
} ps_fw_plan;
typedef struct ps_fw_info {
    int rc;           /* the error code (any code of ps_strerror) */
    int stage;        /* PS_FW_STAGE_*: where it failed */
    uint64_t actual;  /* PS_ERR_CONFLICT: the stored revision (0: absent) */
    size_t len;       /* PS_ERR_VALUE_TOO_LARGE: the stripped payload's size */
    size_t index;     /* batches: the record that failed */
    uint64_t revision; /* the revision the last successful call committed */
    uint64_t ticket;  /* -(the result) of the failure these details are of */
} ps_fw_info;
#define PS_FW_STAGE_ARGS   0 /* bad arguments: nothing was done */
#define PS_FW_STAGE_STRIP  1 /* ps_wire_strip declined (strip another way) */
#define PS_FW_STAGE_BEGIN  2 /* fork / close / read-only / begin failed */
#define PS_FW_STAGE_WRITE  3 /* the key or the write failed: rolled back */
#define PS_FW_STAGE_COMMIT 4 /* the commit failed: nothing was written */
/* Upsert kind/id (flags: PS_PUT_NOOVERWRITE, PS_PUT_IF_REVISION with
 * `expected`); returns the revision committed.  On PS_LMDB_KEYEXIST,
 * PS_ERR_CONFLICT (info.actual) or PS_ERR_UNIQUE nothing was written. */
int64_t ps_fw_save(ps_env *env, const char *kind, size_t kind_len,
                   const char *id, size_t id_len, const char *data, size_t len,
                   const ps_fw_plan *plan, unsigned flags, uint64_t expected);
/* Delete kind/id (flags: 0 or PS_PUT_IF_REVISION with `expected`); returns
 * the revision committed when it existed, 0 when it did not. */
int64_t ps_fw_del(ps_env *env, const char *kind, size_t kind_len,
                  const char *id, size_t id_len, unsigned flags,
                  uint64_t expected);
/* Delete every record of a kind; returns their number (info.revision: the
 * revision committed, 0 if nothing changed). */
int64_t ps_fw_del_kind(ps_env *env, const char *kind, size_t kind_len);
/* Upsert n records of one kind, laid out as for ps_put_many (data: id then
 * payload of each record; lens[2i], lens[2i+1] their lengths), each payload
 * stripped by `plan` (NULL: as given).  Every key is checked before the
 * first put: all or nothing.  Returns n (info.revision: the revision). */
int64_t ps_fw_save_many(ps_env *env, const char *kind, size_t kind_len,
                        const char *data, size_t data_len, const uint32_t *lens,
                        size_t n, const ps_fw_plan *plan);
/* Copy this thread's details of its last ps_fw_* call into *out. */
void ps_fw_last(ps_fw_info *out);

/* ---- Writes inside a Transaction (ps_fastwrite.c) -----------------------
 * One call per save / delete / batch in a write transaction the caller
 * began and still holds: `slot` is where its live ps_txn sits (NULL once it
 * ended).  PS_FW_STAGE_BEGIN (nothing done) when the slot is empty, holds a
 * read txn, or the txn belongs to another thread (PS_ERR_WRONG_THREAD);
 * then as ps_fw_save / ps_fw_save_many (strip, size, key(s), write with
 * every hook, time stamp now), in the caller's txn, which stays open.  The
 * payloads are copied into the txn's log (nothing borrowed from the
 * caller), except with PS_FW_KEEP in ps_fw_txn_save's flags: the caller
 * then keeps `data` (and the plan) valid until the txn ends, and the log
 * borrows `data` -- a replay after map growth strips it again -- instead
 * of copying each payload.  A failed write leaves the txn as ps_put_if / ps_del_if /
 * ps_put_many leave it.  Results: ps_fw_txn_save the revision the txn will
 * commit at, ps_fw_txn_del 1 if kind/id existed else 0, ps_fw_txn_save_many
 * n; -ticket on failure with the details in ps_fw_last (as above), and
 * in the txn too: ps_fw_txn_last reads them while only a write in the same
 * txn replaced them (a failed write may have spoiled the txn, so a caller
 * that lost the thread's details cannot simply write again). */
#define PS_FW_KEEP 256 /* ps_fw_txn_save: data outlives the txn (see above) */
int64_t ps_fw_txn_save(ps_txn **slot, const char *kind, size_t kind_len,
                       const char *id, size_t id_len, const char *data,
                       size_t len, const ps_fw_plan *plan, unsigned flags,
                       uint64_t expected);
int64_t ps_fw_txn_del(ps_txn **slot, const char *kind, size_t kind_len,
                      const char *id, size_t id_len, unsigned flags,
                      uint64_t expected);
int64_t ps_fw_txn_save_many(ps_txn **slot, const char *kind, size_t kind_len,
                            const char *data, size_t data_len,
                            const uint32_t *lens, size_t n,
                            const ps_fw_plan *plan);
/* Copy the details of the last failed ps_fw_txn_* write in the live txn of
 * `slot` into *out (zeroed when none, when the slot is empty or the txn is
 * another thread's). */
void ps_fw_txn_last(ps_txn **slot, ps_fw_info *out);

/* ---- Secondary indexes (ps_index.c, ps_extract.c, ps_find.c) ----------
 * An index of a kind is a plan (u32 array, see ps_extract.c) that picks
 * values out of each record's serialized payload.  Entries live in the
 * dupsort database "index": key = u32 big-endian index id + encoded value,
 * data = the resource id.  Every put/delete of the kind (also in batches,
 * prefix and kind deletes, and on map-growth replay) keeps them in the same
 * LMDB transaction.  Definitions live in meta ("index/<kind>/<name>"). */
#define PS_IDX_STRING   1
#define PS_IDX_BYTES    2
#define PS_IDX_BOOL     3
#define PS_IDX_INT32    4
#define PS_IDX_INT64    5
#define PS_IDX_UINT32   6
#define PS_IDX_UINT64   7
#define PS_IDX_SINT32   8
#define PS_IDX_SINT64   9
#define PS_IDX_FIXED32  10
#define PS_IDX_FIXED64  11
#define PS_IDX_SFIXED32 12
#define PS_IDX_SFIXED64 13
#define PS_IDX_ENUM     14
#define PS_IDX_SCALAR_MASK 255
#define PS_IDX_REPEATED 256   /* final step: repeated scalar */
#define PS_IDX_MAP      512   /* final step: map<string, scalar> entry */
#define PS_IDX_MSG      1     /* path step: singular message */
#define PS_IDX_MSG_REPEATED 2 /* path step: repeated message */
#define PS_IDX_MAX_STEPS 32
#define PS_IDX_EXACT_MAX 255  /* longer encoded values are stored as a digest */
#define PS_IDX_DEF_VERSION 1

/* Query value types (ps_find and friends). */
#define PS_Q_TEXT 1   /* s: UTF-8 of a str (string fields) */
#define PS_Q_BYTES 2  /* s: bytes (bytes fields) */
#define PS_Q_INT 3    /* num: an integer in -2^63..2^63-1 */
#define PS_Q_BIGUINT 4 /* num: an integer in 2^63..2^64-1, minus 2^64 */
#define PS_Q_BOOL 5   /* num: 0 or 1 */

/* ps_find modes */
#define PS_FIND_IDS 0      /* entries: u32 id_len, id */
#define PS_FIND_RECORDS 1  /* entries as ps_list's */
#define PS_FIND_WIRE 2     /* records as ps_list_wire's field 1 elements */

/* Create index `def` (a definition blob, see ps_index.c) in a write txn:
 * backfills the kind's records and sets *entries.  An existing index of
 * that kind and name with the same type, field and unique flag is kept
 * (*created 0); another definition gives PS_ERR_INDEX_EXISTS.  A unique
 * index over duplicates gives PS_ERR_UNIQUE (then abort the txn). */
int ps_index_create(ps_txn *txn, const char *def, size_t def_len,
                    uint64_t *entries, int *created);
/* Drop kind's index `name` and its entries; PS_LMDB_NOTFOUND if absent. */
int ps_index_drop(ps_txn *txn, const char *kind, size_t kind_len,
                  const char *name, size_t name_len);
/* Rebuild the entries of an index from the kind's records; *entries. */
int ps_index_rebuild(ps_txn *txn, const char *kind, size_t kind_len,
                     const char *name, size_t name_len, uint64_t *entries);
/* Append every definition (of `kind`, or all if kind is NULL) to `out`:
 * u32 def_len, def bytes, u64 entry count (little-endian). */
int ps_index_list(ps_txn *txn, const char *kind, size_t kind_len,
                  ps_buf *out);
/* Append to `out` the entries of an index, in key order: u32 value_len,
 * encoded value, u32 id_len, id.  For verification. */
int ps_index_entries(ps_txn *txn, const char *kind, size_t kind_len,
                     const char *name, size_t name_len, ps_buf *out);
/* The distinct encoded values `plan` extracts from `payload`, sorted:
 * out entries u32 len, bytes; out->count their number.  A payload that
 * does not parse gives no values (and PS_OK). */
int ps_index_extract(const uint32_t *plan, size_t plan_len,
                     const char *payload, size_t payload_len, ps_buf *out);
/* Encode a query value for an index whose final step is `mode` into `out`
 * (PS_IDX_EXACT_MAX + 1 bytes at least); *match 0 if no stored value can
 * ever equal it (out of the field's range); PS_ERR_INDEX_QUERY if the
 * value's type does not fit the field.  map: mkey non-NULL. */
int ps_index_encode(unsigned mode, unsigned qtype, const char *s, size_t s_len,
                    int64_t num, const char *mkey, size_t mkey_len, char *out,
                    size_t *out_len, int *match);
/* Resources of `kind` whose index `name` holds the query value, in id
 * order, ids strictly after `after` (NULL: from the first), at most
 * `limit` (0: all), appended to `out` as `mode` says.  PS_LMDB_NOTFOUND
 * if there is no such index. */
int ps_find(ps_txn *txn, const char *kind, size_t kind_len,
            const char *name, size_t name_len, unsigned qtype,
            const char *s, size_t s_len, int64_t num, const char *mkey,
            size_t mkey_len, const char *after, size_t after_len,
            uint64_t limit, unsigned mode, ps_buf *out);
/* Number of resources whose index holds the value. */
int ps_find_count(ps_txn *txn, const char *kind, size_t kind_len,
                  const char *name, size_t name_len, unsigned qtype,
                  const char *s, size_t s_len, int64_t num, const char *mkey,
                  size_t mkey_len, uint64_t *count);
/* One-call find of the first match in its own (reused) read txn, copied
 * as ps_get_into copies.  *found 0 when nothing matches; PS_LMDB_NOTFOUND
 * when there is no such index. */
int ps_find_first_into(ps_env *env, const char *kind, size_t kind_len,
                       const char *name, size_t name_len, unsigned qtype,
                       const char *s, size_t s_len, int64_t num,
                       const char *mkey, size_t mkey_len, char *buf,
                       size_t cap, size_t *payload_len, int *found);
/* After PS_ERR_UNIQUE: the index name, the holder's id and the raw value
 * (before encoding; map: u32 BE key_len, key, value) and the index's final
 * mode.  Pointers stay valid until the txn's next write or its end. */
int ps_txn_violation(ps_txn *txn, const char **name, size_t *name_len,
                     const char **holder, size_t *holder_len,
                     const char **value, size_t *value_len, unsigned *mode);
/* Delete the resources of `kind` whose id starts with `prefix` (empty:
 * the whole kind), with their index entries; *deleted gets the count. */
int ps_del_prefix(ps_txn *txn, const char *kind, size_t kind_len,
                  const char *prefix, size_t prefix_len, uint64_t *deleted);

/* ---- Event streams (ps_events.c) ---------------------------------------
 * Database "events": key = stream + NUL + u64 big-endian seq, value =
 * PS_HEADER_SIZE header (recorded_ns) + payload; key = stream + NUL holds
 * the stream's marks: u64 LE highest seq appended, u64 LE seqs up to which
 * events are forgotten (deleted; never appended again). */
#define PS_MAX_STREAM 500
#define PS_MAX_SEQ 9223372036854775807
/* Append (stream, seq); seq 0 takes the next (last_seq + 1).  *added 0
 * when the seq is present or forgotten (nothing written).  *seq_out gets
 * the seq. */
int ps_event_append(ps_txn *txn, const char *stream, size_t stream_len,
                    uint64_t seq, const char *payload, size_t payload_len,
                    int64_t recorded_ns, unsigned flags, uint64_t *seq_out,
                    int *added);
/* Events of a stream with seq > after, at most limit (0: all), in seq
 * order: u64 seq, i64 recorded_ns, u32 payload_len, payload (LE). */
int ps_events_read(ps_txn *txn, const char *stream, size_t stream_len,
                   uint64_t after, uint64_t limit, ps_buf *out);
int ps_event_last(ps_txn *txn, const char *stream, size_t stream_len,
                  uint64_t *last);
/* Delete events with seq <= upto (all_ 1: every event); *deleted. */
int ps_events_delete(ps_txn *txn, const char *stream, size_t stream_len,
                     int all_, uint64_t upto, uint64_t *deleted);
/* Sorted streams holding at least one event (all_ 1: also those whose
 * events were all deleted): u32 len, bytes. */
int ps_streams(ps_txn *txn, int all_, ps_buf *out);
/* A stream's marks: highest seq appended, seq up to which events are
 * forgotten (both 0 for a new stream). */
int ps_event_marks(ps_txn *txn, const char *stream, size_t stream_len,
                   uint64_t *hwm, uint64_t *forgotten);
/* ---- Revisions, conditional writes, the change log (ps_changes.c) ----
 * Every write transaction that changes a record takes one revision,
 * meta `revision` + 1, at its first change; every record it writes and
 * every change it logs carries it; ps_txn_commit stores it in meta
 * `revision` in the same LMDB transaction.  A txn that changed nothing
 * writes no revision. */

/* Like ps_put; with PS_PUT_IF_REVISION in flags, writes only if the stored
 * record's revision is `expected` (0: only if absent), else returns
 * PS_ERR_CONFLICT with *actual = the stored revision (0 when absent) and
 * changes nothing.  actual may be NULL. */
int ps_put_if(ps_txn *txn, const char *kind, size_t kind_len,
              const char *id, size_t id_len,
              const char *payload, size_t payload_len,
              int64_t updated_ns, unsigned flags, uint64_t expected,
              uint64_t *actual);
/* Like ps_del; with if_revision non-zero, deletes only if the stored
 * record's revision is `expected` (0: only if absent, which deletes
 * nothing), else PS_ERR_CONFLICT with *actual set. */
int ps_del_if(ps_txn *txn, const char *kind, size_t kind_len,
              const char *id, size_t id_len, int if_revision,
              uint64_t expected, uint64_t *actual, int *existed);
/* ps_get that also hands out the record's revision. */
int ps_get_rev(ps_txn *txn, const char *kind, size_t kind_len,
               const char *id, size_t id_len, const char **payload,
               size_t *payload_len, int64_t *updated_ns, uint64_t *revision);
/* ps_get_into that also hands out the record's revision. */
int ps_get_into_rev(ps_env *env, const char *kind, size_t kind_len,
                    const char *id, size_t id_len, char *buf, size_t cap,
                    size_t *payload_len, int64_t *updated_ns,
                    uint64_t *revision);
/* The last committed revision, in one call over a reused read txn. */
int ps_revision(ps_env *env, uint64_t *revision);
/* The last committed revision as this txn sees it (a read txn: its
 * snapshot; a write txn: before its own changes). */
int ps_txn_revision(ps_txn *txn, uint64_t *revision);
/* The revision this write txn's changes carry; 0 while it changed nothing. */
int ps_txn_pending(ps_txn *txn, uint64_t *revision);
/* ps_txn_commit that hands out the revision it committed (0: none). */
int ps_txn_commit_rev(ps_txn *txn, uint64_t *revision);
/* How many of the newest revisions the change log keeps at least (>= 1);
 * writers of this env trim older ones, keeping at most twice as many. */
int ps_env_set_keep_changes(ps_env *env, uint64_t keep);
/* Append to `out` the logged changes after position (after_rev,
 * after_idx) -- after_idx UINT32_MAX: after the whole revision -- in log
 * order, at most `limit` (0: all).  With neither filter every change;
 * else resource changes of the given kinds and appends to the given
 * streams (`kinds` holds their bytes back to back, kind_lens their
 * lengths; the same for streams).  An append's entry holds its stream as
 * the kind and the u64 big-endian seq as the id.
 * Entry layout, little-endian: u64 revision, u32 index, u32 value_len,
 * value (u8 op, u8 flags, u16 reserved, i64 updated_ns, u32 kind_len,
 * kind, then the id: the rest).  *next_rev and *next_idx get the position to
 * continue from (the txn's last revision when the log was read to its
 * end).  PS_ERR_COMPACTED when changes after that position were trimmed;
 * *compacted gets the highest trimmed revision either way. */
int ps_changes(ps_txn *txn, uint64_t after_rev, uint32_t after_idx,
               const char *kinds, const uint32_t *kind_lens, size_t nkinds,
               const char *streams, const uint32_t *stream_lens, size_t nstreams,
               uint64_t limit, ps_buf *out, uint64_t *next_rev,
               uint32_t *next_idx, uint64_t *compacted);

/* ---- Version history (ps_history.c) ------------------------------------
 * A kind with a keep count > 0 (meta `history/<kind>`) keeps the last
 * `keep` superseded versions of each resource, written in the same txn as
 * the write that supersedes them; a delete moves the last version there.
 * None of these calls takes a revision. */

/* Set / read a kind's keep count (0: keep none). */
int ps_history_set(ps_txn *txn, const char *kind, size_t kind_len,
                   uint64_t keep);
int ps_history_keep(ps_txn *txn, const char *kind, size_t kind_len,
                    uint64_t *keep);
/* Append to `out` the versions of kind/id, newest first: the live one
 * (when it exists), then the kept ones; at most `limit` (0: all).  Entry
 * layout, little-endian: u64 revision, i64 updated_ns, u32 payload_len,
 * payload. */
int ps_history(ps_txn *txn, const char *kind, size_t kind_len,
               const char *id, size_t id_len, uint64_t limit, ps_buf *out);
/* The version of kind/id written at `revision` (live or kept); the payload
 * points into the map (valid as for ps_get).  PS_LMDB_NOTFOUND if not kept. */
int ps_get_at(ps_txn *txn, const char *kind, size_t kind_len,
              const char *id, size_t id_len, uint64_t revision,
              const char **payload, size_t *payload_len, int64_t *updated_ns);
/* Drop the kept versions of kind/id; *dropped gets their number. */
int ps_history_delete(ps_txn *txn, const char *kind, size_t kind_len,
                      const char *id, size_t id_len, uint64_t *dropped);
/* Append to `out` the ids of a kind that have kept versions (live or
 * deleted), in key order, after `after` (NULL: from the first), at most
 * `limit` (0: all).  Entry layout: u32 LE id_len, id bytes. */
int ps_history_ids(ps_txn *txn, const char *kind, size_t kind_len,
                   const char *after, size_t after_len, uint64_t limit,
                   ps_buf *out);
/* For loading a dump: reserve n revision labels below this txn's own
 * revision (call before its first change); *first gets the lowest. */
int ps_txn_reserve(ps_txn *txn, uint64_t n, uint64_t *first);
/* For loading a dump: append a kept version of kind/id, written at
 * `revision` (a label from ps_txn_reserve) with its stamp and payload. */
int ps_history_load(ps_txn *txn, const char *kind, size_t kind_len,
                    const char *id, size_t id_len, const char *payload,
                    size_t payload_len, int64_t updated_ns, uint64_t revision);
/* ---- etcd backend (ps_etcd.c) -------------------------------------------
 * Turn an etcd RangeResponse (the wire bytes gRPC received) whose values are
 * pystore records into ps_list_wire's layout: each payload one element of
 * repeated field `field`, appended to `out` (out->count records).  Also the
 * response header's revision, its `more` flag, and where the last key is:
 * resp[*last_key_off .. + *last_key_len] (inside the caller's buffer: valid
 * as long as `resp` is; length 0 when there was no key).  A value that is not
 * a record gives PS_ERR_BAD_RECORD, malformed wire PS_ERR_INVALID_ARG. */
int ps_etcd_range_wire(const char *resp, size_t resp_len, uint32_t field,
                       ps_buf *out, uint64_t *revision, int *more,
                       size_t *last_key_off, size_t *last_key_len);

/* ---- One-call reads through a per-thread read context (ps_fastread.c) --
 * A ps_rctx belongs to one handle and is used by one thread at a time
 * (pystore keeps one per store per thread).  The caller reads the public
 * fields; it writes none of them.  Every call that returns PS_RFAIL leaves
 * its code in `rc`. */
#define PS_RFAIL -1
#define PS_RBIG -3           /* found, but longer than ctx->cap: ctx->len bytes */
#define PS_RSCAN_PAYLOADS 1  /* offs: [start, end) of each payload */
#define PS_RSCAN_RECORDS 2   /* offs: payload start, end, updated_ns, revision; ids: the ids */
#define PS_RSCAN_FIELD 1     /* ps_rscan_wire: the wrapper's repeated field */
typedef struct ps_rctx {
    char *buf;              /* ps_rget's payload (when it fits: len <= cap) */
    size_t cap;
    int rc;                 /* code of the last call that returned PS_RFAIL */
    int64_t updated_ns;     /* of the record ps_rget read last */
    uint64_t revision;
    size_t len;             /* payload length of the record ps_rget / ps_rfind found last */
    const char *base;       /* offset scans: the offsets count from here */
    size_t span;            /* ... and end within span bytes of it */
    uint64_t *offs;         /* offset scans: per record, as the mode says */
    ps_buf ids;             /* PS_RSCAN_RECORDS: the records' ids (the keys less
                             * "<kind>/"), joined by NUL (ids hold none) */
    void *priv;             /* the core's */
    uint32_t magic;         /* PS_RCTX_MAGIC while the context lives */
} ps_rctx;
#define PS_RCTX_MAGIC 0x52435458
#define PS_RCTX_TAG 10       /* bytes of a context's tag (ps_rctx_tag) */
/* A context reading `env` (which must outlive it) with a `cap`-byte
 * payload buffer; ps_rctx_trim keeps up to `keep` bytes of offsets. */
int ps_rctx_new(ps_env *env, size_t cap, size_t keep, ps_rctx **out);
/* Resize the payload buffer to `cap` bytes (its content is lost). */
int ps_rctx_reserve(ps_rctx *ctx, size_t cap);
/* Free the context (ends an unfinished offset scan first). */
void ps_rctx_free(ps_rctx *ctx);
/* Free the offsets and ids buffers that grew past the context's `keep` bytes. */
void ps_rctx_trim(ps_rctx *ctx);
/* Read the record `key` ("<kind>/<id>", NUL-terminated; a key holding NUL
 * must be refused by the caller) in a reused read txn.  Returns the
 * payload length, copied to ctx->buf, when it is <= ctx->cap; else
 * PS_RBIG, nothing copied (ctx->len says how much to grow the buffer to
 * before reading again).  So a result >= 0 is always a whole payload in
 * ctx->buf.  updated_ns, revision and len go to the context.  PS_RFAIL with ctx->rc: PS_LMDB_NOTFOUND, a key code,
 * PS_ERR_CLOSED, PS_ERR_FORKED, PS_ERR_VALUE_BOUNDS, PS_ERR_BAD_RECORD... */
int64_t ps_rget(ps_rctx *ctx, const char *key);
/* ps_rget with one argument (cffi's cheapest call): `tagged` is the
 * context's PS_RCTX_TAG-byte tag (no NUL in it) followed by the key.  The
 * context must be alive: the caller keeps it while the tag is in use. */
int64_t ps_rget1(const char *tagged);
/* Write the context's tag (PS_RCTX_TAG bytes, each >= 0x80) to out. */
void ps_rctx_tag(ps_rctx *ctx, char *out);
/* The records of one kind in key order, at most `limit` (0: all), in one
 * read txn: start[0, prefix_len) is "<kind>/", and a longer `start` names
 * the id to start strictly after.  Returns the count (or PS_RFAIL).
 * Offsets go into ctx->offs (relative to ctx->base); the txn and its pages stay held, so
 * they stay valid and no map resize or close completes, until
 * ps_rscan_end, which the caller must call (also after PS_RFAIL: it does
 * nothing then) before any other call on the context. */
int64_t ps_rscan(ps_rctx *ctx, const char *start, size_t start_len,
                 size_t prefix_len, uint64_t limit, unsigned mode);
void ps_rscan_end(ps_rctx *ctx);
/* After a PS_RSCAN_PAYLOADS scan, before ps_rscan_end: the length of its
 * payloads as the wire bytes of repeated field PS_RSCAN_FIELD (what
 * PS_RSCAN_WIRE makes), and, when that length is exactly `cap`, those
 * bytes written to dst (the caller's memory: pystore sizes a bytearray to
 * the length, so the wrapper message is parsed from it without a copy).
 * PS_RFAIL (ctx->rc PS_ERR_INVALID_ARG) when no such scan is held. */
int64_t ps_rscan_wire(ps_rctx *ctx, char *dst, size_t cap);
/* ps_find_first_into into ctx->buf: the payload length (copied: it fits),
 * PS_RBIG (ctx->len set, as ps_rget), PS_RNONE when nothing matches, or
 * PS_RFAIL. */
#define PS_RNONE -2
int64_t ps_rfind(ps_rctx *ctx, const char *kind, size_t kind_len,
                 const char *name, size_t name_len, unsigned qtype,
                 const char *s, size_t s_len, int64_t num, const char *mkey,
                 size_t mkey_len);

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

/* ---- Parked snapshot txns (ps_park.c) -----------------------------------
 * A read txn kept open across calls (a Snapshot) is parked between them:
 * it stays open and keeps its view, but map growth (which needs no txn of
 * the process live) does not wait for it.  ps_txn_unpark() before any
 * other call on it (waits while the map is being grown; PS_ERR_CLOSED once
 * its env is closing), ps_txn_park() after.  Both are idempotent; a write
 * txn cannot be parked (PS_ERR_INVALID_ARG), and core calls refuse a
 * parked txn (PS_ERR_INVALID_ARG).  Pointers into the map from earlier
 * calls (ps_get's *payload) are invalid once it is parked: the map may move.
 * ps_txn_abort()/finish() end a parked txn as any other. */
int ps_txn_park(ps_txn *txn);
int ps_txn_unpark(ps_txn *txn);

/* Kinds with state besides records (ps_kindstate.c): append to `out` each
 * kind with a history keep count, kept versions or a recorded schema, in
 * no particular order and possibly repeated (entry layout: u32 len, bytes);
 * a schema stored under a hashed key is given as that key ("#" + 64 hex).
 * `out` is the caller's; free it with ps_buf_free. */
int ps_kinds_with_state(ps_txn *txn, ps_buf *out);

/* Schema epoch (ps_epoch.c): meta `schema.epoch`, raised by every write
 * that changes the message type recorded for a kind, so that a process
 * can tell that the types it checked its kinds against may have changed
 * (another process re-recorded one).  Every read txn this process begins
 * notes the epoch it sees; this returns the highest noted so far (0 for a NULL,
 * closed or forked handle, or a store whose types never changed).  No
 * system call, no lock: cheap enough to ask after every typed read. */
uint64_t ps_env_schema_epoch(ps_env *env);
/* Make `ctx`'s reads (ps_rget, ps_rscan) fail with PS_ERR_SCHEMA_MOVED,
 * reading nothing, while the epoch noted by their own txn differs from
 * *slot: the epoch the caller's type checks were made at (the caller
 * updates it; it must outlive the context; NULL: no check).  So a caller
 * that trusts its checks pays nothing per read until a type changed. */
int ps_rctx_watch_epoch(ps_rctx *ctx, const uint64_t *slot);
#define PS_ERR_SCHEMA_MOVED -31058 /* a kind's recorded type changed: check again */

/* Opening a store another process is creating (review of 2026-12-06): an
 * empty data.mdb, or an LMDB environment holding nothing yet, is "no store
 * yet" for a read-only open (a writable open makes it a store), not
 * PS_ERR_NOT_A_STORE, which is kept for environments holding other data. */
#define PS_ERR_NO_STORE -31059 /* no store here yet (being created?) */

/* CDEF-END */

#ifdef __cplusplus
}
#endif
#endif /* PYSTORE_CORE_H */
