/*
 * pystore_onecall.h -- part of the C core's public API (pystore_core.h):
 * one-call writes (in a txn of their own or in the caller's), one-call
 * reads through a per-thread read context, and the schema epoch those
 * reads watch.  Include pystore_core.h, never this file alone; its CDEF
 * region is fed to cffi as pystore_core.h describes.
 */
#ifndef PYSTORE_ONECALL_H
#define PYSTORE_ONECALL_H

#ifndef PYSTORE_CORE_H
#error "include pystore_core.h, not pystore_onecall.h"
#endif

/* CDEF-BEGIN */
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
 * PS_ERR_WAIT_AGAIN: another thread or process held the write txn for
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
 * caller; the log's chunks are kept by the handle between write txns, up
 * to 32 MiB, so a big transaction copies into memory already mapped).
 * ps_fw_txn_save's flags: PS_PUT_NOOVERWRITE or PS_PUT_IF_REVISION.  A
 * failed write leaves the txn as ps_put_if / ps_del_if /
 * ps_put_many leave it.  Results: ps_fw_txn_save the revision the txn will
 * commit at, ps_fw_txn_del 1 if kind/id existed else 0, ps_fw_txn_save_many
 * n; -ticket on failure with the details in ps_fw_last (as above), and
 * in the txn too: ps_fw_txn_last reads them while only a write in the same
 * txn replaced them (a failed write may have spoiled the txn, so a caller
 * that lost the thread's details cannot simply write again). */
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
/* CDEF-END */

#endif /* PYSTORE_ONECALL_H */
