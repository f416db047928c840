/*
 * pystore_index.h -- part of the C core's public API (pystore_core.h):
 * secondary indexes and finds.  Include pystore_core.h, never this file
 * alone; its CDEF region is fed to cffi as pystore_core.h describes.
 */
#ifndef PYSTORE_INDEX_H
#define PYSTORE_INDEX_H

#ifndef PYSTORE_CORE_H
#error "include pystore_core.h, not pystore_index.h"
#endif

/* CDEF-BEGIN */
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
/* CDEF-END */

#endif /* PYSTORE_INDEX_H */
