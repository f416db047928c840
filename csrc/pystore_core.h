/*
 * pystore_core.h -- the C core of pystore: protobuf resources keyed
 * "<Kind>/<ID>" in LMDB.
 *
 * Shape (after lmdb.h): opaque handles; every fallible call returns an int
 * (PS_OK == 0 on success) and hands results back through out-parameters;
 * ps_strerror() describes any code.  Codes come from three disjoint ranges:
 *   - the core's own codes, PS_ERR_* in [-31099, -31000];
 *   - LMDB's codes, passed through unchanged, in [-30799, -30780]
 *     (mirrored as PS_LMDB_* in pystore_env.h);
 *   - positive values, which are errno values from the OS.
 *
 * Threads: a ps_env may be shared by threads.  Read transactions may be
 * used from any thread (the env is opened with MDB_NOTLS); a write
 * transaction must stay on the thread that began it.  One write
 * transaction at a time per env: a thread that begins a second write
 * transaction while holding one gets EDEADLK instead of a deadlock.
 *
 * The declarations are split by concern into the public headers below
 * (pystore_*.h; ps_*.h are the core's private ones), included in this
 * order, each needing only those before it:
 *   pystore_env.h        codes, record format, handles, env open/close,
 *                        write mode
 *   pystore_records.h    transactions, record calls, listings, fast paths
 *   pystore_revisions.h  revisions, conditional writes, change log, history
 *   pystore_events.h     event streams
 *   pystore_index.h      secondary indexes and finds
 *   pystore_onecall.h    one-call writes and reads, schema epoch
 * Include this header, never one of those alone.
 *
 * Everything between the CDEF markers of each of them is also fed to
 * cffi's cdef(), so it holds declarations and integer #defines only:
 * csrc/gen_ffi.py joins those regions in the order of the #include lines
 * below (a new public header is one more #include line here, with its own
 * CDEF-BEGIN/CDEF-END markers).
 */
#ifndef PYSTORE_CORE_H
#define PYSTORE_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "pystore_env.h"
#include "pystore_records.h"
#include "pystore_revisions.h"
#include "pystore_events.h"
#include "pystore_index.h"
#include "pystore_onecall.h"

#ifdef __cplusplus
}
#endif
#endif /* PYSTORE_CORE_H */
