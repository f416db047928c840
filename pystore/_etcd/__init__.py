"""The etcd client layer of the etcd backend (issue 13).

* :mod:`.url`: parsing of ``etcd://``/``etcds://`` store URLs (no gRPC needed).
* :mod:`.client`: :class:`~.client.EtcdClient`, a thin synchronous client of
  etcd's v3 gRPC API, and its :class:`~.client.Watch`.
* :mod:`.aio_client`: :class:`~.aio_client.AsyncEtcdClient`, the same on
  ``grpc.aio``.
* :mod:`._common`: request builders (``op_put``, ``cmp_mod``, ``prefix_end``,
  ...), error mapping and retry schedule shared by both.
* The backend (issue 13), opened by ``Store("etcd://...")``:
  :mod:`.store` (``EtcdStore``, a ``Store``), :mod:`.txn` (``EtcdTxn``, the
  ``CTxn`` method set as one optimistic etcd Txn), :mod:`.history`,
  :mod:`.index`, :mod:`.backfill` (building an index in chunks),
  :mod:`.indexcheck` (``pystore verify`` of indexes), :mod:`.events`, :mod:`.feed` (changes/watch),
  :mod:`.fastlist` (lists through ``csrc/ps_etcd.c``), :mod:`.layout` (keys).
* ``etcd_api_pb2``: messages compiled at build time from
  ``protos/pystore/_etcd/etcd_api.proto``, a private subset of etcd's API
  (proto package ``pystore.etcd``: nothing named ``etcdserverpb`` is added
  to the process-wide descriptor pool).

The client modules need the ``etcd`` extra (grpcio); importing this package
or :mod:`.url` does not.
"""

from .url import EtcdURL, InvalidURLError, is_etcd_url, parse_url

__all__ = ["EtcdURL", "InvalidURLError", "is_etcd_url", "parse_url"]
