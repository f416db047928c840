/* ps_index.h -- private to ps_index.c and ps_index_admin.c: the pieces of
 * index upkeep that create, drop and rebuild share with every write. */
#ifndef PS_INDEX_H
#define PS_INDEX_H

#include "ps_internal.h"

/* Make t->idx the definitions committed (plus this txn's own changes). */
int ps_idx_ready(ps_txn *t);
/* Replace t->idx by a set of its own, read from meta as this txn left it. */
int ps_idx_own_set(ps_txn *t);
/* A u64 (LE) in meta under `key` (NUL-terminated); 0 if absent or damaged. */
uint64_t ps_idx_meta_u64(ps_txn *t, const char *key);

/* The entry key of value `enc` in index `id` into out (4 + enc_len bytes;
 * enc_len 0: the start of the index's range); its length returned. */
size_t ps_idx_entry_key(uint32_t id, const char *enc, size_t enc_len, char *out);
/* The payload of a stored record (after its header); PS_ERR_BAD_RECORD if
 * the header is damaged.  *p points into v's data. */
int ps_idx_record_payload(const MDB_val *v, const char **p, size_t *n);

/* What ps_idx_diff does with value i of v for resource `id`. */
typedef int (*ps_idx_entry_fn)(ps_txn *, const ps_idxdef *, const ps_vals *, size_t,
                               const char *, size_t);
/* Unique: PS_ERR_UNIQUE (the violation noted in t) if another id than `id`
 * holds value i of v. */
int ps_idx_check_unique(ps_txn *t, const ps_idxdef *d, const ps_vals *v, size_t i,
                        const char *id, size_t id_len);
/* Add the entry of value i of v for `id` (already there: PS_OK). */
int ps_idx_put_entry(ps_txn *t, const ps_idxdef *d, const ps_vals *v, size_t i,
                     const char *id, size_t id_len);
/* Walk two sorted value sets: fn_old for values only in `old`, fn_new for
 * values only in `nw` (either may be NULL). */
int ps_idx_diff(ps_txn *t, const ps_idxdef *d, const ps_vals *old,
                const ps_vals *nw, ps_idx_entry_fn fn_old,
                ps_idx_entry_fn fn_new, const char *id, size_t id_len);
/* Delete every entry of index `id`. */
int ps_idx_clear_range(ps_txn *t, uint32_t id);

#endif
