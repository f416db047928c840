/* ps_epoch.c -- the schema epoch: has a kind's recorded type changed?
 *
 * Python checks a kind's recorded message type once and then trusts it
 * (pystore/_lmdb/schema.py, SchemaRecorder.read_ok).  Another process may
 * record another type for the kind afterwards; every write that changes a
 * recorded type also raises meta `schema.epoch` (u64 LE) in its txn.  Each
 * read txn this process begins notes the epoch it sees here (write txns do
 * not: a one-call write would pay a meta read; a Transaction reads its
 * own txn's epoch once, when it first reads a kind typed), so a reader asks
 * ps_env_schema_epoch() after a typed read and checks the type again when
 * the epoch moved.  The meta value is read only when the txn id moved
 * since the last note (a commit came in between): the steady state of a
 * read-mostly process is one mdb_txn_id() call.
 *
 * Both fields are atomic: threads note concurrently.  The epoch only grows
 * (a txn older than the last note cannot lower it); the txn id is a hint
 * (a stale one costs one extra meta read). */
#include "ps_internal.h"

void ps_epoch_note(ps_env *e, MDB_txn *txn)
{
    ps_shared *sh = e->sh;
    uint64_t id = (uint64_t)mdb_txn_id(txn);
    if (id == __atomic_load_n(&sh->epoch_txnid, __ATOMIC_RELAXED))
        return;
    uint64_t epoch;
    if (ps_meta_u64(txn, e->meta_dbi, PS_META_SCHEMA_EPOCH, &epoch) != PS_OK)
        return; /* a damaged value: the caller's read reports what it finds */
    uint64_t seen = __atomic_load_n(&sh->schema_epoch, __ATOMIC_RELAXED);
    while (epoch > seen &&
           !__atomic_compare_exchange_n(&sh->schema_epoch, &seen, epoch, 0,
                                        __ATOMIC_RELEASE, __ATOMIC_RELAXED))
        ;
    __atomic_store_n(&sh->epoch_txnid, id, __ATOMIC_RELAXED);
}

uint64_t ps_env_schema_epoch(ps_env *e)
{
    if (e == NULL || ps_getpid() != e->pid)
        return 0;
    ps_shared *sh = e->sh;
    return sh ? __atomic_load_n(&sh->schema_epoch, __ATOMIC_ACQUIRE) : 0;
}
