"""The public surface the issues name: exact names, signatures and exception tree."""

from __future__ import annotations

import inspect

import pytest

import pystore


def test_exports() -> None:
    for name in ("Store", "Resource", "StoreError", "NotFoundError", "AlreadyExistsError",
                 "InvalidKeyError", "StoreClosedError", "ReadOnlyError"):
        assert name in pystore.__all__ and hasattr(pystore, name)


def test_exception_tree() -> None:
    errors = [getattr(pystore, n) for n in pystore.__all__ if n.endswith("Error")]
    assert all(issubclass(e, pystore.StoreError) for e in errors)
    assert issubclass(pystore.NotFoundError, KeyError)
    assert issubclass(pystore.InvalidKeyError, ValueError)
    assert issubclass(pystore.StoreOSError, OSError)


def test_store_signatures() -> None:
    sig = inspect.signature(pystore.Store)
    params = sig.parameters
    assert list(params) == [
        "path", "sync", "map_size", "readonly", "strip_fields", "keep_changes", "timeout"]
    assert params["timeout"].default is None
    assert params["sync"].kind is inspect.Parameter.KEYWORD_ONLY and params["sync"].default is True
    assert params["map_size"].default is None and params["readonly"].default is False
    assert params["strip_fields"].default == ("org_id", "project_id")
    expected = {
        "save_resource": ["kind", "id", "msg", "if_revision"],
        "create_resource": ["kind", "id", "msg"],
        "get_resource": ["kind", "id", "msg_or_type"],
        "get_record": ["kind", "id"],
        "list_resources": ["kind", "msg_type"],
        "iter_resources": ["kind", "msg_type", "after", "limit"],
        "count": ["kind"],
        "kinds": [],
        "update_resource": ["kind", "id", "msg_type", "fn", "create"],
        "exists": ["kind", "id"],
        "list_ids": ["kind", "after", "limit", "prefix"],
        "collection": ["kind", "msg_type"],
        "save_resources": ["kind", "items"],
        "delete_resource": ["kind", "id", "if_revision"],
        "delete_resources_by_kind": ["kind"],
        "transaction": [],
        "close": [],
    }
    for name, args in expected.items():
        got = list(inspect.signature(getattr(pystore.Store, name)).parameters)[1:]
        assert got == args, name
    it = inspect.signature(pystore.Store.iter_resources).parameters
    assert it["after"].kind is inspect.Parameter.KEYWORD_ONLY
    assert it["limit"].kind is inspect.Parameter.KEYWORD_ONLY


def test_transaction_has_the_store_data_methods() -> None:
    for name in ("save_resource", "create_resource", "get_resource", "get_record",
                 "delete_resource", "list_resources", "count"):
        assert callable(getattr(pystore.Transaction, name))


def test_resource_fields() -> None:
    import dataclasses

    assert [f.name for f in dataclasses.fields(pystore.Resource)][:4] == [
        "id", "kind", "data", "updated_at"]


def test_typed_marker_shipped() -> None:
    from importlib.resources import files

    assert files("pystore").joinpath("py.typed").is_file()


def test_the_lmdb_layer_never_imports_the_public_layer() -> None:
    """The LMDB layer never imports the public layer's modules at run time
    (its fast reads reach the general ones through ``super()``)."""
    import ast
    import pathlib

    from pystore._lmdb.reads import FastReads
    from pystore._ops import ResourceOps

    lmdb_dir = pathlib.Path(pystore.__file__).parent / "_lmdb"
    public = {"store", "_ops", "_query", "_kindops", "transaction", "snapshot", "collection",
              "aio", "watch", "history"}
    for src in lmdb_dir.glob("*.py"):
        tree = ast.parse(src.read_text())
        for node in tree.body:  # module level: run-time imports (TYPE_CHECKING blocks excluded)
            if isinstance(node, ast.ImportFrom) and node.level == 2 and node.module:
                assert node.module.split(".")[0] not in public, f"{src.name} imports {node.module}"
    for name in FastReads._FAST:
        assert getattr(pystore.Store, name) is getattr(FastReads, name), name
        assert getattr(FastReads, name).__doc__ == getattr(ResourceOps, name).__doc__


def test_the_etcd_backend_answers_reads_the_general_way() -> None:
    """Every read the LMDB fast mixin covers is the general method on etcd."""
    pytest.importorskip("grpc", reason="the etcd extra is not installed")
    from pystore._etcd.store import EtcdStore
    from pystore._lmdb.reads import FastReads
    from pystore._ops import ResourceOps

    for name in FastReads._FAST:
        assert getattr(EtcdStore, name) is getattr(ResourceOps, name), name


def test_every_public_method_has_a_docstring() -> None:
    # issue 11: every public method documented (help() on a Transaction's
    # one-call writes showed nothing)
    from pystore.aio import AsyncStore
    from pystore.aio_collection import AsyncCollection
    from pystore.aio_views import AsyncSnapshot, AsyncTransaction
    from pystore.snapshot import Snapshot
    from pystore.transaction import Transaction

    for cls in (pystore.Store, AsyncStore, pystore.Collection, AsyncCollection, Transaction,
                Snapshot, AsyncTransaction, AsyncSnapshot):
        bare = [n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n))
                and not (getattr(cls, n).__doc__ or "").strip()]
        assert bare == [], f"{cls.__name__}: {bare}"
