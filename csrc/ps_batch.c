/* ps_batch.c -- many writes in one call. */
#include <stdlib.h>
#include <string.h>

#include "ps_internal.h"

int ps_put_many(ps_txn *t, const char *kind, size_t kind_len,
                const char *data, size_t data_len, const uint32_t *lens,
                size_t n, int64_t updated_ns, unsigned flags,
                size_t *failed_at)
{
    return ps_put_many_plan(t, kind, kind_len, data, data_len, lens, n,
                            updated_ns, flags, NULL, failed_at, NULL);
}

/* One record's payload for ps_put_many_plan: `raw` itself (no plan), or
 * stripped into *buf (reused across the batch). */
static int stripped(const ps_fw_plan *plan, const char *raw, size_t raw_len,
                    char **buf, size_t *cap, const char **out, size_t *out_len)
{
    *out = raw;
    *out_len = raw_len;
    if (plan == NULL)
        return PS_OK;
    int rc = ps_strip_grow(plan, raw, raw_len, buf, cap, out_len);
    if (rc == PS_OK && *out_len > PS_MAX_PAYLOAD)
        rc = PS_ERR_VALUE_TOO_LARGE;
    *out = *buf;
    return rc;
}

int ps_put_many_plan(ps_txn *t, const char *kind, size_t kind_len,
                     const char *data, size_t data_len, const uint32_t *lens,
                     size_t n, int64_t updated_ns, unsigned flags,
                     const ps_fw_plan *plan, size_t *failed_at,
                     int *strip_failed)
{
    if (strip_failed)
        *strip_failed = 0;
    if (plan != NULL && (plan->table == NULL || !(flags & PS_PUT_BORROW)))
        return PS_ERR_INVALID_ARG;
    if (failed_at == NULL || (lens == NULL && n) || (data == NULL && data_len))
        return PS_ERR_INVALID_ARG;
    *failed_at = 0;
    /* Every record checked before the first is written: all or nothing
     * even inside a transaction that goes on after an error. */
    size_t off = 0;
    int kind_ok = ps_kind_check(kind, kind_len) == PS_OK; /* once, not per record */
    for (size_t i = 0; i < n; i++) {
        size_t id_len = lens[2 * i], payload_len = lens[2 * i + 1];
        int rc = PS_ERR_INVALID_ARG;
        if (id_len <= data_len - off && payload_len <= data_len - off - id_len)
            rc = kind_ok ? ps_id_check(kind_len, data + off, id_len)
                         : ps_check_key(kind, kind_len, data + off, id_len);
        if (!rc && payload_len > PS_MAX_PAYLOAD && plan == NULL)
            rc = PS_ERR_VALUE_TOO_LARGE; /* stripped ones: checked when stripped */
        if (rc) {
            *failed_at = i;
            return rc;
        }
        off += id_len + payload_len;
    }
    if (off != data_len)
        return PS_ERR_INVALID_ARG;
    if (n == 0)
        return PS_OK;
    /* What ps_put checks of every record, once: the txn, the flags (the
     * keys and sizes were checked above) */
    int rc = flags & PS_PUT_IF_REVISION ? PS_ERR_INVALID_ARG /* ps_put's order */
                                        : ps_txn_usable(t, 1);
    if (!rc && (flags & ~(unsigned)(PS_PUT_NOOVERWRITE | PS_PUT_BORROW)))
        rc = PS_ERR_INVALID_ARG;
    if (rc)
        return rc;
    char key[PS_MAX_KEY];
    memcpy(key, kind, kind_len);
    key[kind_len] = '/';
    off = 0;
    char *buf = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) {
        size_t id_len = lens[2 * i], payload_len = lens[2 * i + 1], plen;
        const char *id = data + off, *payload;
        memcpy(key + kind_len + 1, id, id_len);
        rc = stripped(plan, id + id_len, payload_len, &buf, &cap, &payload, &plen);
        if (rc && strip_failed)
            *strip_failed = 1;
        if (!rc)
            rc = ps_put_key(t, key, kind_len + 1 + id_len, payload, plen,
                            updated_ns, flags, 0, NULL);
        /* the op borrows the batch's bytes, stripped again on a replay */
        if (!rc && plan != NULL)
            ps_txn_log_unstripped(t, id + id_len, payload_len, plan);
        if (rc) {
            free(buf);
            *failed_at = i;
            /* records before it are written: the batch is all or nothing,
             * so the transaction can only be aborted now */
            if (i > 0 && !t->failed)
                t->failed = PS_ERR_TXN_FAILED;
            return rc;
        }
        off += id_len + payload_len;
    }
    free(buf);
    return PS_OK;
}
