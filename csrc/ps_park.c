/* ps_park.c -- a Snapshot's read txn, parked between its calls.
 *
 * Map growth (ps_gate_alone) waits until no txn of the process is live,
 * because mdb_env_set_mapsize() moves the map under every pointer into
 * it.  A read txn that no C call is using holds no such pointer: LMDB
 * keeps page numbers only (mdb_page_get() adds them to env->me_map on
 * each access; the txn's database roots are copies, its reader slot lives
 * in lock.mdb), and the core copies every value out before it returns.
 * So a snapshot's txn is parked between calls: still open (its reader
 * slot pins its view), but not counted live, so a growth in another
 * thread -- or in this thread, by a write made inside the snapshot's
 * block -- does not wait for it.  Each call on it unparks it first
 * (waiting while a growth runs) and parks it again after.
 *
 * Both are idempotent, so an interrupted caller that parks again in a
 * `finally` never parks twice.  The flag is the caller's to serialize
 * (a Snapshot's calls take turns under its lock). */
#include "ps_internal.h"

int ps_txn_park(ps_txn *t)
{
    if (t == NULL || t->write)
        return PS_ERR_INVALID_ARG; /* a write txn is LMDB's me_txn: never */
    if (ps_getpid() != t->env->pid)
        return PS_ERR_FORKED;
    if (t->parked)
        return PS_OK;
    ps_gate_park(t->env, pthread_equal(t->thread, pthread_self()));
    t->parked = 1;
    return PS_OK;
}

int ps_txn_unpark(ps_txn *t)
{
    if (t == NULL)
        return PS_ERR_INVALID_ARG;
    if (ps_getpid() != t->env->pid)
        return PS_ERR_FORKED;
    if (!t->parked)
        return PS_OK;
    int rc = ps_gate_unpark(t->env, 0);
    if (rc)
        return rc; /* still parked: ending it is ps_txn_abort's */
    t->parked = 0;
    t->thread = pthread_self(); /* whose count it now is */
    return PS_OK;
}

void ps_txn_unpark_to_end(ps_txn *t)
{
    if (!t->parked || ps_getpid() != t->env->pid)
        return;
    (void)ps_gate_unpark(t->env, 1);
    t->parked = 0;
    t->thread = pthread_self();
}
