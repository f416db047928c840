/*
 * pystore_records.h -- part of the C core's public API (pystore_core.h):
 * transactions (begin, end, park), the calls on records (put, get, delete,
 * count, listings, meta, space), the batch, wire and etcd fast paths, and
 * the kinds with state besides records.  Include pystore_core.h, never
 * this file alone; its CDEF region is fed to cffi as pystore_core.h
 * describes.
 */
#ifndef PYSTORE_RECORDS_H
#define PYSTORE_RECORDS_H

#ifndef PYSTORE_CORE_H
#error "include pystore_core.h, not pystore_records.h"
#endif

/* CDEF-BEGIN */
/* ps_txn_begin flags */
#define PS_TXN_WRITE 1
/* With PS_TXN_WRITE: wait for another thread's or process's write txn at
 * most PS_TXN_SLICE_MS, then fail with PS_ERR_WAIT_AGAIN (nothing held):
 * the caller calls again, so a signal (Ctrl-C) is handled between waits
 * instead of after the other transaction.  (Other processes' pystore
 * writers queue in the store's write.lock before LMDB's own lock, which no
 * signal interrupts: docs/durability.md.) */
#define PS_TXN_WAIT_SLICE 2
#define PS_TXN_SLICE_MS 20
#define PS_ERR_WAIT_AGAIN -31060 /* another thread or process holds the write txn: call again */

/* ps_put flags */
#define PS_PUT_NOOVERWRITE 1 /* fail with PS_LMDB_KEYEXIST if the key exists */
#define PS_PUT_BORROW      2 /* the payload stays valid until the txn ends;
                                the core keeps a pointer instead of a copy */
#define PS_PUT_IF_REVISION 4 /* ps_put_if: write only if the stored record's
                                revision equals `expected` (0: absent) */

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
/* CDEF-END */

#endif /* PYSTORE_RECORDS_H */
