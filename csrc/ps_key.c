/* ps_key.c -- validation and construction of "<Kind>/<ID>" keys. */
#include <string.h>

#include "ps_internal.h"

int ps_kind_check(const char *kind, size_t kind_len)
{
    if (kind == NULL || kind_len == 0)
        return PS_ERR_KIND_EMPTY;
    if (kind_len > PS_MAX_KEY - 2) /* room for '/' and a 1-byte id */
        return PS_ERR_KEY_TOO_LONG;
    if (memchr(kind, '/', kind_len) != NULL)
        return PS_ERR_KIND_SLASH;
    if (memchr(kind, '\0', kind_len) != NULL)
        return PS_ERR_KIND_NUL;
    return PS_OK;
}

int ps_id_check(size_t kind_len, const char *id, size_t id_len)
{
    if (id == NULL || id_len == 0)
        return PS_ERR_ID_EMPTY;
    if (id_len > PS_MAX_KEY - kind_len - 1)
        return PS_ERR_KEY_TOO_LONG;
    if (memchr(id, '\0', id_len) != NULL)
        return PS_ERR_ID_NUL;
    return PS_OK;
}

int ps_check_key(const char *kind, size_t kind_len, const char *id,
                 size_t id_len)
{
    /* Lengths first: the scans below must never run past a bad length. */
    if (id != NULL && kind_len && kind_len <= PS_MAX_KEY - 2 &&
        id_len > PS_MAX_KEY - kind_len - 1)
        return PS_ERR_KEY_TOO_LONG;
    int rc = ps_kind_check(kind, kind_len);
    return rc != PS_OK ? rc : ps_id_check(kind_len, id, id_len);
}

/* out must hold PS_MAX_KEY bytes. */
int ps_key_build(const char *kind, size_t kind_len, const char *id,
                 size_t id_len, char *out, size_t *out_len)
{
    int rc = ps_check_key(kind, kind_len, id, id_len);
    if (rc != PS_OK)
        return rc;
    memcpy(out, kind, kind_len);
    out[kind_len] = '/';
    memcpy(out + kind_len + 1, id, id_len);
    *out_len = kind_len + 1 + id_len;
    return PS_OK;
}
