/*
 * pystore_revisions.h -- part of the C core's public API (pystore_core.h):
 * revisions, conditional writes, the change log and version history.
 * Include pystore_core.h, never this file alone; its CDEF region is fed to
 * cffi as pystore_core.h describes.
 */
#ifndef PYSTORE_REVISIONS_H
#define PYSTORE_REVISIONS_H

#ifndef PYSTORE_CORE_H
#error "include pystore_core.h, not pystore_revisions.h"
#endif

/* CDEF-BEGIN */
/* Change log operations (the first byte of a change's value). */
#define PS_CHANGE_PUT           1
#define PS_CHANGE_DELETE        2
#define PS_CHANGE_DELETE_KIND   3
#define PS_CHANGE_APPEND        4 /* reserved for event streams */
#define PS_CHANGE_DELETE_PREFIX 5 /* reserved for prefix deletes */
#define PS_DEFAULT_KEEP_CHANGES 100000

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
/* CDEF-END */

#endif /* PYSTORE_REVISIONS_H */
