/* ps_fastwrite.c -- one-call writes: check, strip, begin, write, commit.
 *
 * Each entry point does in one C call what the Python layer did in five or
 * six (key check, strip, begin, put, commit, the revision), through the
 * same functions (ps_txn_begin, ps_put_if, ps_del_if, ps_del_kind,
 * ps_put_many, ps_txn_commit_rev), so every hook and the map-growth replay
 * of the transaction's log are those of any other write.  A stripped
 * payload lives in a buffer of the calling thread, kept from call to call
 * (no allocation per save; payloads are borrowed by the log until the
 * commit, and a call ends its transaction before it returns), or in one of
 * the call's own when it is larger than STRIP_KEEP.
 *
 * Results come back as the return value; the details of a failure stay in
 * a thread-local ps_fw_info until the thread's next call (no out-parameters
 * for the caller to allocate on the hot path). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ps_internal.h"

/* `cur` gathers the details of the running call (the stored revision of a
 * conflict, the record of a batch, a size); fail() publishes them whole in
 * `last` with a ticket.  Code run between a call and the caller's read of
 * `last` (a signal handler's call, in this thread) then cannot mix its
 * details into the call's: a failure of its own gets a new ticket, and a
 * success touches only last.revision. */
static __thread ps_fw_info last, cur;

/* A new call: no details yet. */
static void call_begins(void)
{
    cur.actual = 0;
    cur.index = 0;
    cur.len = 0;
}

/* The thread's strip buffer: kept up to STRIP_KEEP bytes, freed when the
 * thread exits (a key destructor; the main thread's stays reachable). */
#define STRIP_KEEP ((size_t)64 << 10)
static __thread char *strip_buf;
static __thread size_t strip_cap;
static pthread_key_t strip_key;
static pthread_once_t strip_once = PTHREAD_ONCE_INIT;
static int strip_key_ok;

static void strip_buf_free(void *p)
{
    free(p);
    strip_buf = NULL;
    strip_cap = 0;
}

static void strip_key_init(void)
{
    strip_key_ok = pthread_key_create(&strip_key, strip_buf_free) == 0;
}

/* A buffer of `need` bytes: the thread's (*owned NULL) or, when larger
 * than kept or the thread's cannot be registered, a new one (*owned). */
static char *strip_space(size_t need, char **owned)
{
    *owned = NULL;
    if (need <= STRIP_KEEP) {
        if (strip_cap >= need)
            return strip_buf;
        pthread_once(&strip_once, strip_key_init);
        size_t cap = STRIP_KEEP < 2 * need ? STRIP_KEEP : 2 * need;
        char *b = strip_key_ok ? malloc(cap) : NULL;
        /* the key holds the thread's buffer (for its destructor) before the
         * old one goes: on a failure the old one stays the thread's */
        if (b != NULL && pthread_setspecific(strip_key, b) == 0) {
            free(strip_buf);
            strip_buf = b;
            strip_cap = cap;
            return b;
        }
        free(b);
    }
    *owned = malloc(need);
    return *owned;
}

void ps_fw_last(ps_fw_info *out)
{
    if (out)
        *out = last;
}

/* Records a failure: its result is -ticket, a number this thread's
 * failures never repeat, so a caller can tell its own details from those
 * of a later call (a signal handler's run in between). */
static int64_t fail(int stage, int rc)
{
    cur.stage = stage;
    cur.rc = rc;
    cur.revision = last.revision;
    /* last.ticket is the thread's last failure's: only this sets it */
    cur.ticket = last.ticket >= INT64_MAX ? 1 : last.ticket + 1;
    last = cur;
    return -(int64_t)cur.ticket;
}

/* Checks before a write transaction, in the order the Python layer made
 * them: fork, close, read-only. */
static int env_usable(ps_env *e)
{
    if (ps_getpid() != e->pid)
        return PS_ERR_FORKED;
    if (e->closing || e->sh == NULL)
        return PS_ERR_CLOSED;
    if (e->readonly)
        return PS_ERR_READONLY;
    return PS_OK;
}

/* The payload to write: `data` itself (plan NULL) or a stripped copy, in
 * the thread's buffer or in *owned (to free); PS_ERR_BAD_RECORD when the
 * strip declines.  Valid until the thread's next strip_one. */
static int strip_one(const ps_fw_plan *plan, const char *data, size_t len,
                     char **owned, const char **out, size_t *out_len)
{
    *owned = NULL;
    *out = data;
    *out_len = len;
    if (plan == NULL)
        return PS_OK;
    if (plan->table == NULL || len > SIZE_MAX - PS_STRIP_SLACK)
        return PS_ERR_INVALID_ARG;
    char *buf = strip_space(len + PS_STRIP_SLACK, owned);
    if (buf == NULL)
        return PS_ERR_NOMEM;
    int rc = ps_wire_strip(plan->table, plan->len, data, len, buf,
                           len + PS_STRIP_SLACK, out_len);
    if (rc) {
        free(*owned);
        *owned = NULL;
        return rc;
    }
    *out = buf;
    return PS_OK;
}

/* The payload of one save, stripped (see strip_one) and within
 * PS_MAX_PAYLOAD: 0, or fail()'s -ticket with the stage recorded (nothing to
 * free then). */
static int64_t payload_one(const ps_fw_plan *plan, const char *data, size_t len,
                           char **owned, const char **out, size_t *out_len)
{
    int rc = strip_one(plan, data, len, owned, out, out_len);
    if (rc)
        return fail(rc == PS_ERR_BAD_RECORD ? PS_FW_STAGE_STRIP : PS_FW_STAGE_ARGS, rc);
    if (*out_len > PS_MAX_PAYLOAD) {
        free(*owned);
        *owned = NULL;
        cur.len = *out_len;
        return fail(PS_FW_STAGE_ARGS, PS_ERR_VALUE_TOO_LARGE);
    }
    return 0;
}

/* Commit t (its own stage) and record the revision. */
static int64_t commit(ps_txn *t, int64_t result)
{
    uint64_t rev = 0;
    int rc = ps_txn_commit_rev(t, &rev);
    if (rc)
        return fail(PS_FW_STAGE_COMMIT, rc);
    last.revision = rev;
    return result;
}

int64_t ps_fw_save(ps_env *env, const char *kind, size_t kind_len,
                   const char *id, size_t id_len, const char *data, size_t len,
                   const ps_fw_plan *plan, unsigned flags, uint64_t expected)
{
    call_begins();
    if (env == NULL || (data == NULL && len) ||
        (flags & ~(unsigned)(PS_PUT_NOOVERWRITE | PS_PUT_IF_REVISION)))
        return fail(PS_FW_STAGE_ARGS, PS_ERR_INVALID_ARG);
    char *owned;
    const char *payload;
    size_t plen;
    int64_t result = payload_one(plan, data, len, &owned, &payload, &plen);
    if (result)
        return result;
    int rc;
    if ((rc = env_usable(env)) != PS_OK) {
        result = fail(PS_FW_STAGE_BEGIN, rc);
    } else if ((rc = ps_check_key(kind, kind_len, id, id_len)) != PS_OK) {
        result = fail(PS_FW_STAGE_WRITE, rc);
    } else {
        ps_txn *t;
        rc = ps_txn_begin(env, PS_TXN_WRITE | PS_TXN_WAIT_SLICE, &t);
        if (rc) {
            result = fail(PS_FW_STAGE_BEGIN, rc);
        } else {
            rc = ps_put_if(t, kind, kind_len, id, id_len, payload, plen,
                           ps_now_ns(), flags | PS_PUT_BORROW, expected,
                           &cur.actual);
            if (rc) {
                ps_txn_abort(t);
                result = fail(PS_FW_STAGE_WRITE, rc);
            } else {
                result = commit(t, 0);
                if (result == 0)
                    result = (int64_t)last.revision;
            }
        }
    }
    free(owned);
    return result;
}

int64_t ps_fw_del(ps_env *env, const char *kind, size_t kind_len,
                  const char *id, size_t id_len, unsigned flags,
                  uint64_t expected)
{
    call_begins();
    if (env == NULL || (flags & ~(unsigned)PS_PUT_IF_REVISION))
        return fail(PS_FW_STAGE_ARGS, PS_ERR_INVALID_ARG);
    int rc = env_usable(env);
    if (rc)
        return fail(PS_FW_STAGE_BEGIN, rc);
    rc = ps_check_key(kind, kind_len, id, id_len);
    if (rc)
        return fail(PS_FW_STAGE_WRITE, rc);
    ps_txn *t;
    rc = ps_txn_begin(env, PS_TXN_WRITE | PS_TXN_WAIT_SLICE, &t);
    if (rc)
        return fail(PS_FW_STAGE_BEGIN, rc);
    int existed = 0;
    rc = ps_del_if(t, kind, kind_len, id, id_len, (flags & PS_PUT_IF_REVISION) != 0,
                   expected, &cur.actual, &existed);
    if (rc) {
        ps_txn_abort(t);
        return fail(PS_FW_STAGE_WRITE, rc);
    }
    int64_t r = commit(t, 0);
    if (r < 0)
        return r;
    if (!existed)
        return 0;
    return last.revision ? (int64_t)last.revision : 1;
}

int64_t ps_fw_del_kind(ps_env *env, const char *kind, size_t kind_len)
{
    call_begins();
    last.revision = 0;
    if (env == NULL)
        return fail(PS_FW_STAGE_ARGS, PS_ERR_INVALID_ARG);
    int rc = env_usable(env);
    if (rc)
        return fail(PS_FW_STAGE_BEGIN, rc);
    ps_txn *t;
    rc = ps_txn_begin(env, PS_TXN_WRITE | PS_TXN_WAIT_SLICE, &t);
    if (rc)
        return fail(PS_FW_STAGE_BEGIN, rc);
    uint64_t n = 0;
    rc = ps_del_kind(t, kind, kind_len, &n);
    if (rc) {
        ps_txn_abort(t);
        return fail(PS_FW_STAGE_WRITE, rc);
    }
    return commit(t, (int64_t)n);
}

/* Strip every payload of a batch into one buffer (*out, lens in *out_lens);
 * on failure cur.index names the record. */
static int strip_many(const ps_fw_plan *plan, const char *data, size_t data_len,
                      const uint32_t *lens, size_t n, char **out,
                      uint32_t **out_lens, size_t *out_len)
{
    size_t cap = data_len + PS_STRIP_SLACK, off = 0, in = 0;
    char *buf = malloc(cap);
    uint32_t *nl = malloc(n ? 2 * n * sizeof *nl : 1);
    int rc = buf && nl ? PS_OK : PS_ERR_NOMEM;
    for (size_t i = 0; rc == PS_OK && i < n; i++) {
        size_t id_len = lens[2 * i], plen = lens[2 * i + 1], got = 0;
        if (id_len > data_len - in || plen > data_len - in - id_len) {
            cur.index = i;
            rc = PS_ERR_INVALID_ARG;
            break;
        }
        if (cap - off < id_len + plen + PS_STRIP_SLACK) { /* a strip that grew */
            size_t need = off + id_len + plen + PS_STRIP_SLACK;
            char *bigger = need >= off ? realloc(buf, need * 2) : NULL;
            if (bigger == NULL) {
                rc = PS_ERR_NOMEM;
                break;
            }
            buf = bigger;
            cap = need * 2;
        }
        memcpy(buf + off, data + in, id_len);
        rc = ps_wire_strip(plan->table, plan->len, data + in + id_len, plen,
                           buf + off + id_len, cap - off - id_len, &got);
        if (rc == PS_OK && got > UINT32_MAX)
            rc = PS_ERR_VALUE_TOO_LARGE;
        if (rc) {
            cur.index = i;
            break;
        }
        nl[2 * i] = (uint32_t)id_len;
        nl[2 * i + 1] = (uint32_t)got;
        off += id_len + got;
        in += id_len + plen;
    }
    if (rc) {
        free(buf);
        free(nl);
        return rc;
    }
    *out = buf;
    *out_lens = nl;
    *out_len = off;
    return PS_OK;
}

/* A batch's payloads, stripped into one new buffer when a plan is given
 * (*data, *data_len and *lens then point into *owned / *owned_lens, to
 * free), each within PS_MAX_PAYLOAD: 0, or fail()'s -ticket with the stage
 * recorded and nothing to free. */
static int64_t payload_many(const ps_fw_plan *plan, const char **data,
                            size_t *data_len, const uint32_t **lens, size_t n,
                            char **owned, uint32_t **owned_lens)
{
    *owned = NULL;
    *owned_lens = NULL;
    if ((*lens == NULL && n) || (*data == NULL && *data_len) || n > INT64_MAX ||
        (plan != NULL && plan->table == NULL) ||
        *data_len > SIZE_MAX - PS_STRIP_SLACK)
        return fail(PS_FW_STAGE_ARGS, PS_ERR_INVALID_ARG);
    if (plan != NULL) {
        int rc = strip_many(plan, *data, *data_len, *lens, n, owned, owned_lens,
                            data_len);
        if (rc)
            return fail(rc == PS_ERR_BAD_RECORD ? PS_FW_STAGE_STRIP : PS_FW_STAGE_ARGS, rc);
        *data = *owned;
        *lens = *owned_lens;
    }
    for (size_t i = 0; i < n; i++) {
        if ((*lens)[2 * i + 1] > PS_MAX_PAYLOAD) {
            free(*owned);
            free(*owned_lens);
            *owned = NULL;
            *owned_lens = NULL;
            cur.index = i;
            cur.len = (*lens)[2 * i + 1];
            return fail(PS_FW_STAGE_ARGS, PS_ERR_VALUE_TOO_LARGE);
        }
    }
    return 0;
}

int64_t ps_fw_save_many(ps_env *env, const char *kind, size_t kind_len,
                        const char *data, size_t data_len, const uint32_t *lens,
                        size_t n, const ps_fw_plan *plan)
{
    call_begins();
    last.revision = 0;
    if (env == NULL || (plan != NULL && plan->table == NULL))
        return fail(PS_FW_STAGE_ARGS, PS_ERR_INVALID_ARG);
    char *owned;
    uint32_t *owned_lens;
    /* Arguments and sizes only: each payload is stripped as it is put (a
     * failure aborts this call's own txn, so all or nothing still holds),
     * with no second copy of the whole batch. */
    int64_t result = payload_many(NULL, &data, &data_len, &lens, n, &owned, &owned_lens);
    if (result)
        return result;
    int rc;
    if ((rc = env_usable(env)) != PS_OK) {
        result = fail(PS_FW_STAGE_BEGIN, rc);
    } else {
        ps_txn *t;
        rc = ps_txn_begin(env, PS_TXN_WRITE | PS_TXN_WAIT_SLICE, &t);
        if (rc) {
            result = fail(PS_FW_STAGE_BEGIN, rc);
        } else {
            size_t at = 0;
            int strip_failed = 0;
            /* checks every key before the first put; the log borrows `data` */
            rc = ps_put_many_plan(t, kind, kind_len, data, data_len, lens, n,
                                  ps_now_ns(), PS_PUT_BORROW, plan, &at,
                                  &strip_failed);
            if (rc) {
                ps_txn_abort(t);
                cur.index = at;
                if (!strip_failed)
                    result = fail(PS_FW_STAGE_WRITE, rc);
                else
                    result = fail(rc == PS_ERR_BAD_RECORD ? PS_FW_STAGE_STRIP
                                                         : PS_FW_STAGE_ARGS, rc);
            } else {
                result = commit(t, (int64_t)n);
            }
        }
    }
    free(owned);
    free(owned_lens);
    return result;
}

/* ---- Writes inside a transaction the caller holds (Transaction) ---------
 * The caller hands over the slot its live ps_txn sits in (NULL once the
 * transaction ended), so a finished or never-begun transaction, or one of
 * another thread, is refused at PS_FW_STAGE_BEGIN before anything else. */

/* The live write txn in `slot`, begun by this thread: 0, or fail()'s -ticket
 * at PS_FW_STAGE_BEGIN.  A new call's details begin here (call_begins). */
static int64_t txn_in(ps_txn **slot, ps_txn **out)
{
    call_begins();
    ps_txn *t = slot ? *slot : NULL;
    if (t == NULL || !t->write)
        return fail(PS_FW_STAGE_BEGIN, PS_ERR_INVALID_ARG);
    if (!pthread_equal(t->thread, pthread_self()))
        return fail(PS_FW_STAGE_BEGIN, PS_ERR_WRONG_THREAD);
    *out = t;
    return 0;
}

/* A result of a write in t: a failure's details are kept in t as well. */
static int64_t in_txn(ps_txn *t, int64_t result)
{
    if (result < 0)
        t->fw_failed = last;
    return result;
}

void ps_fw_txn_last(ps_txn **slot, ps_fw_info *out)
{
    if (out == NULL)
        return;
    ps_txn *t = slot ? *slot : NULL;
    if (t != NULL && t->write && pthread_equal(t->thread, pthread_self()))
        *out = t->fw_failed;
    else
        memset(out, 0, sizeof *out);
}

static int64_t pending(ps_txn *t)
{
    uint64_t rev = 0;
    ps_txn_pending(t, &rev);
    return rev > INT64_MAX ? INT64_MAX : (int64_t)rev;
}

int64_t ps_fw_txn_save(ps_txn **slot, const char *kind, size_t kind_len,
                       const char *id, size_t id_len, const char *data,
                       size_t len, const ps_fw_plan *plan, unsigned flags,
                       uint64_t expected)
{
    ps_txn *t;
    int64_t r = txn_in(slot, &t);
    if (r)
        return r;
    if ((data == NULL && len) ||
        (flags & ~(unsigned)(PS_PUT_NOOVERWRITE | PS_PUT_IF_REVISION)))
        return in_txn(t, fail(PS_FW_STAGE_ARGS, PS_ERR_INVALID_ARG));
    char *owned;
    const char *payload;
    size_t plen;
    if ((r = payload_one(plan, data, len, &owned, &payload, &plen)))
        return in_txn(t, r);
    /* The log keeps a copy (`owned` and the thread's strip buffer die
     * here), in chunks the handle keeps between transactions (ps_txn.c). */
    int rc = ps_put_if(t, kind, kind_len, id, id_len, payload, plen, ps_now_ns(),
                       flags, expected, &cur.actual);
    free(owned);
    return rc ? in_txn(t, fail(PS_FW_STAGE_WRITE, rc)) : pending(t);
}

int64_t ps_fw_txn_del(ps_txn **slot, const char *kind, size_t kind_len,
                      const char *id, size_t id_len, unsigned flags,
                      uint64_t expected)
{
    ps_txn *t;
    int64_t r = txn_in(slot, &t);
    if (r)
        return r;
    if (flags & ~(unsigned)PS_PUT_IF_REVISION)
        return in_txn(t, fail(PS_FW_STAGE_ARGS, PS_ERR_INVALID_ARG));
    int existed = 0;
    int rc = ps_del_if(t, kind, kind_len, id, id_len, (flags & PS_PUT_IF_REVISION) != 0,
                       expected, &cur.actual, &existed);
    if (rc)
        return in_txn(t, fail(PS_FW_STAGE_WRITE, rc));
    return existed ? 1 : 0;
}

int64_t ps_fw_txn_save_many(ps_txn **slot, const char *kind, size_t kind_len,
                            const char *data, size_t data_len,
                            const uint32_t *lens, size_t n,
                            const ps_fw_plan *plan)
{
    ps_txn *t;
    int64_t result = txn_in(slot, &t);
    if (result)
        return result;
    char *owned;
    uint32_t *owned_lens;
    if ((result = payload_many(plan, &data, &data_len, &lens, n, &owned, &owned_lens)))
        return in_txn(t, result);
    result = (int64_t)n;
    size_t at = 0;
    /* not borrowed (the stripped copy dies here); every key is checked
     * before the first put */
    int rc = ps_put_many(t, kind, kind_len, data, data_len, lens, n, ps_now_ns(), 0, &at);
    if (rc) {
        cur.index = at;
        result = in_txn(t, fail(PS_FW_STAGE_WRITE, rc));
    }
    free(owned);
    free(owned_lens);
    return result;
}
