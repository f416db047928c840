"""Defaults of the etcd layer (no gRPC import: the URL parser uses them)."""

# etcd's server defaults: --max-txn-ops and --max-request-bytes.
DEFAULT_MAX_TXN_OPS = 128
DEFAULT_MAX_REQUEST_BYTES = 1536 * 1024
# Seconds: the deadline of every call, its retries included.
DEFAULT_TIMEOUT = 10.0
