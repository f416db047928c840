/*
 * pystore_events.h -- part of the C core's public API (pystore_core.h):
 * event streams.  Include pystore_core.h, never this file alone; its CDEF
 * region is fed to cffi as pystore_core.h describes.
 */
#ifndef PYSTORE_EVENTS_H
#define PYSTORE_EVENTS_H

#ifndef PYSTORE_CORE_H
#error "include pystore_core.h, not pystore_events.h"
#endif

/* CDEF-BEGIN */
/* ---- Event streams (ps_events.c) ---------------------------------------
 * Database "events": key = stream + NUL + u64 big-endian seq, value =
 * PS_HEADER_SIZE header (recorded_ns) + payload; key = stream + NUL holds
 * the stream's marks: u64 LE highest seq appended, u64 LE seqs up to which
 * events are forgotten (deleted; never appended again). */
#define PS_MAX_STREAM 500
#define PS_MAX_SEQ 9223372036854775807
/* Append (stream, seq); seq 0 takes the next (last_seq + 1).  *added 0
 * when the seq is present or forgotten (nothing written).  *seq_out gets
 * the seq. */
int ps_event_append(ps_txn *txn, const char *stream, size_t stream_len,
                    uint64_t seq, const char *payload, size_t payload_len,
                    int64_t recorded_ns, unsigned flags, uint64_t *seq_out,
                    int *added);
/* Events of a stream with seq > after, at most limit (0: all), in seq
 * order: u64 seq, i64 recorded_ns, u32 payload_len, payload (LE). */
int ps_events_read(ps_txn *txn, const char *stream, size_t stream_len,
                   uint64_t after, uint64_t limit, ps_buf *out);
int ps_event_last(ps_txn *txn, const char *stream, size_t stream_len,
                  uint64_t *last);
/* Delete events with seq <= upto (all_ 1: every event); *deleted. */
int ps_events_delete(ps_txn *txn, const char *stream, size_t stream_len,
                     int all_, uint64_t upto, uint64_t *deleted);
/* Sorted streams holding at least one event (all_ 1: also those whose
 * events were all deleted): u32 len, bytes. */
int ps_streams(ps_txn *txn, int all_, ps_buf *out);
/* A stream's marks: highest seq appended, seq up to which events are
 * forgotten (both 0 for a new stream). */
int ps_event_marks(ps_txn *txn, const char *stream, size_t stream_len,
                   uint64_t *hwm, uint64_t *forgotten);
/* CDEF-END */

#endif /* PYSTORE_EVENTS_H */
