"""The ``pystore`` command line (console script and ``python -m pystore``).

Read commands (stats, kinds, list, get, dump, backup, verify, watch) open the
store read-only: they work while another process writes it and never create a
store.  Exit codes: 0 success (also when the reader of the output went
away: ``pystore list ... | head``), 1 not found / permission denied /
failed / verification failed, 2 usage error, 130 interrupted.  Errors are one line on
stderr, never a traceback.  ``--json`` (before the command) makes every
command print JSON: one document, or JSON Lines for ``list`` and ``dump``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import itertools
import json
import os
import signal
import stat
import sys
import threading
from collections.abc import Callable, Sequence
from typing import IO, Any, NoReturn

from .. import __version__
from .._etcd.url import is_etcd_url
from ..errors import InvalidKeyError, NotFoundError, StoreError
from ..store import Store
from . import dump as _dump
from . import query as _query
from . import verify as _verify

__all__ = ["main"]

OK, FAILED, USAGE = 0, 1, 2


class UsageError(Exception):
    """A bad command line (exit 2)."""


class AccessError(Exception):
    """The store exists but this user may not open it (exit 1)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return n


def _revision(text: str) -> int:
    """``watch --after``: a revision (u64); out of range is a usage error (exit 2)."""
    n = _count(text)
    if n >= 2**64:
        raise argparse.ArgumentTypeError("must be in 0..2**64-1")
    return n


def _parser() -> _Parser:
    p = _Parser(prog="pystore", description="Inspect, copy and check pystore stores.")
    p.add_argument("--version", action="version",
                   version=f"pystore {__version__} (distribution pystore-lmdb)")
    p.add_argument("--json", action="store_true",
                   help="machine-readable output: JSON (JSON Lines for list and dump)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help)

    c = cmd("stats", "counts per kind, sizes, map size, format version")
    c.add_argument("path", metavar="PATH")
    c.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    c = cmd("kinds", "one kind per line, sorted")
    c.add_argument("path", metavar="PATH")
    c = cmd("list", "the resources of a kind, one JSON object per line")
    c.add_argument("path", metavar="PATH")
    c.add_argument("kind", metavar="KIND")
    c.add_argument("--ids", action="store_true", help="print only the ids")
    c.add_argument("--limit", type=_count, metavar="N", help="at most N resources")
    c.add_argument("--after", metavar="ID", help="only ids sorting after ID")
    c = cmd("get", "one resource as JSON (+ kind, id, updated_at)")
    c.add_argument("path", metavar="PATH")
    c.add_argument("kind", metavar="KIND")
    c.add_argument("id", metavar="ID")
    c = cmd("delete", "delete one resource (exit 1 if it does not exist)")
    c.add_argument("path", metavar="PATH")
    c.add_argument("kind", metavar="KIND")
    c.add_argument("id", metavar="ID")
    c = cmd("dump", "JSON Lines: one object per resource (a consistent snapshot)")
    c.add_argument("path", metavar="PATH")
    c.add_argument("--kind", action="append", metavar="KIND", help="only this kind (repeatable)")
    c.add_argument("-o", dest="output", metavar="FILE", help="write to FILE instead of stdout")
    c = cmd("load", "the inverse of dump (byte-identical records)")
    c.add_argument("path", metavar="PATH")
    c.add_argument("file", metavar="FILE", help="a dump file, or - for stdin")
    c = cmd("clean", "delete every resource of a kind (asks unless --yes)")
    c.add_argument("path", metavar="PATH")
    c.add_argument("--kind", required=True, metavar="KIND")
    c.add_argument("--yes", action="store_true", help="do not ask")
    c = cmd("backup", "consistent compacted copy while others use the store")
    c.add_argument("path", metavar="PATH")
    c.add_argument("dest", metavar="DEST", help="a new or empty directory")
    c = cmd("verify", "decode every record's header and payload; exit 1 if any fails")
    c.add_argument("path", metavar="PATH")
    _query.add_commands(cmd)
    c = cmd("watch", "print each change as it is committed, until interrupted")
    c.add_argument("path", metavar="PATH")
    c.add_argument("--kind", action="append", metavar="KIND", help="only this kind (repeatable)")
    c.add_argument("--after", type=_revision, metavar="N",
                   help="first replay every change after revision N")
    c.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="one JSON object per line")
    c = cmd("upgrade", "upgrade a store of an older format in place (one transaction)")
    c.add_argument("path", metavar="PATH")
    c.add_argument("--writemap", action="store_true",
                   help="then switch a pwrite store to the writemap mode (closed everywhere)")
    c = cmd("demo", "run the README's main job on a local store")
    c.add_argument("path", metavar="PATH", nargs="?", default="./.pystore-demo")
    return p


_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)


def _denied(path: str, readonly: bool, why: str) -> AccessError:
    need = "read" if readonly else "write"
    return AccessError(
        f"permission denied: cannot open the store at {path!r} to {need} it ({why}); "
        "run as the user that owns it (a reader also needs write access to lock.mdb)"
    )


def _open_existing(path: str, readonly: bool = True) -> Store:
    """Open a store that must exist; a permission problem is said as such.
    An ``etcd://``/``etcds://`` URL opens the etcd backend instead."""
    if is_etcd_url(path):
        return Store(path, readonly=readonly)
    data = os.path.join(path, "data.mdb")
    try:
        st = os.stat(data)
    except PermissionError as exc:
        raise _denied(path, readonly, exc.strerror or "EACCES") from None
    except OSError:
        raise NotFoundError(f"no store at {path!r}") from None
    if not stat.S_ISREG(st.st_mode):
        raise NotFoundError(f"no store at {path!r}")
    if not os.access(data, os.R_OK if readonly else os.R_OK | os.W_OK):
        raise _denied(path, readonly, f"{data} is not {'readable' if readonly else 'writable'}")
    try:
        return Store(path, readonly=readonly)
    except OSError as exc:  # StoreOSError from the core (lock.mdb, data.mdb)
        if exc.errno in _DENIED:
            raise _denied(path, readonly, exc.strerror or str(exc)) from None
        raise


def _open_writable(path: str) -> Store:
    """Open (or create) a store to write it; a permission problem is said as such."""
    try:
        return Store(path)
    except OSError as exc:  # StoreOSError from the core (lock.mdb, data.mdb)
        if exc.errno in _DENIED:
            raise _denied(path, False, exc.strerror or str(exc)) from None
        raise


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _json(obj: Any) -> None:
    _out(json.dumps(obj, ensure_ascii=False, indent=2))


def cmd_stats(a: argparse.Namespace) -> int:
    with _open_existing(a.path) as s:
        st = s.stats()
    if a.json:
        _out(json.dumps(st.to_dict(), indent=2))
        return OK
    _out(f"store           {st.path}")
    _out(f"format version  {st.format_version}")
    _out(f"write mode      {st.write_mode or '-'}")
    _out(f"revision        {st.revision}")
    _out(f"resources       {st.entries} in {len(st.kinds)} kind(s)")
    _out(f"map size        {_size(st.map_size)}")
    _out(f"file size       {_size(st.file_bytes)} (data.mdb; high-water mark "
         f"{_size(st.used_bytes)}, page {st.page_size} B, depth {st.depth})")
    _out(f"live data       {_size(st.data_bytes)} (a compacted backup would save "
         f"{_size(st.reclaimable_bytes)})")
    _out(f"readers         {st.num_readers} of {st.max_readers}")
    if st.kinds:
        width = max(4, *(len(k) for k in st.kinds))
        _out(f"{'KIND':<{width}}  {'COUNT':>9}  TYPE")
        for kind, ks in st.kinds.items():
            _out(f"{kind:<{width}}  {ks.count:>9}  {ks.type_name or '-'}")
    return OK


def cmd_kinds(a: argparse.Namespace) -> int:
    with _open_existing(a.path) as s:
        kinds = s.kinds()
    if a.json:
        _json(kinds)
        return OK
    for kind in kinds:
        _out(kind)
    return OK


def cmd_list(a: argparse.Namespace) -> int:
    with _open_existing(a.path) as s:
        dec = _dump.Decoder()
        with s._reading() as t:
            cls = None if a.ids else dec.cls(t, a.kind)
        if a.ids:  # ids only: no payload is read
            for id in _ids(s, a.kind, a.after, a.limit):
                _out(json.dumps(id, ensure_ascii=False) if a.json else id)
            return OK
        for r in s.iter_resources(a.kind, after=a.after, limit=a.limit):
            obj = _dump.record_json(a.kind, r.id, r.data, r.updated_ns, cls, with_data=False)
            _out(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))
    return OK


def _ids(s: Store, kind: str, after: str | None, limit: int | None) -> Any:
    """Ids of a kind in pages (each its own short snapshot), no payloads."""
    left = limit
    while left is None or left > 0:
        page = s.list_ids(kind, after=after, limit=512 if left is None else min(512, left))
        yield from page
        if len(page) < 512:
            return
        after = page[-1]
        if left is not None:
            left -= len(page)


def cmd_delete(a: argparse.Namespace) -> int:
    with _open_existing(a.path, readonly=False) as s:
        if not s.delete_resource(a.kind, a.id):
            raise NotFoundError(f"resource not found: {a.kind}/{a.id}")
    if a.json:
        _json({"deleted": True, "kind": a.kind, "id": a.id})
    else:
        _out(f"deleted {a.kind}/{a.id}")
    return OK


def cmd_get(a: argparse.Namespace) -> int:
    with _open_existing(a.path) as s:
        dec = _dump.Decoder()
        with s._reading() as t:
            cls = dec.cls(t, a.kind)
        r = s.get_record(a.kind, a.id)
    obj = _dump.record_json(a.kind, r.id, r.data, r.updated_ns, cls, with_data=False)
    _out(json.dumps(obj, ensure_ascii=False, indent=2))
    return OK


def cmd_dump(a: argparse.Namespace) -> int:
    with _open_existing(a.path) as s:
        if a.output is None:  # no bar over the records on a terminal
            n = _dump.dump(s, sys.stdout, a.kind, progress=not sys.stdout.isatty())
        else:
            # 0600 from the first byte, also over an existing file; never
            # through a symlink.
            fd = os.open(a.output, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                os.fchmod(fd, 0o600)
                os.ftruncate(fd, 0)
            except BaseException:
                os.close(fd)
                raise
            with open(fd, "w", encoding="utf-8") as f:
                n = _dump.dump(s, f, a.kind)
            print(f"dumped {n} resource(s) to {a.output}", file=sys.stderr)
    return OK


def cmd_load(a: argparse.Namespace) -> int:
    if a.file == "-":
        src: IO[str] = sys.stdin
        size = 0
    else:
        src = open(a.file, encoding="utf-8")  # noqa: SIM115  (closed below)
        size = os.fstat(src.fileno()).st_size
    extras = {"index": 0, "event": 0}
    try:
        head = _dump.read_start(src, a.file)  # no JSON there: no store is created
        with _open_writable(a.path) as s:
            records, schemas = _dump.load(s, itertools.chain(head, src), a.file, size, extras)
    finally:
        if src is not sys.stdin:
            src.close()
    if a.json:
        _json({"path": a.path, "records": records, "schemas": schemas,
               "indexes": extras["index"], "events": extras["event"]})
    else:
        _out(f"loaded {records} resource(s) and {schemas} schema(s) into {a.path}")
        if extras["index"] or extras["event"]:
            _out(f"loaded {extras['index']} index(es) and {extras['event']} event(s)")
    return OK


def _confirm(question: str) -> bool:
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    if not answer.endswith("\n"):
        sys.stderr.write("\n")
    return answer.strip().lower() in ("y", "yes")


def cmd_clean(a: argparse.Namespace) -> int:
    with _open_existing(a.path, readonly=False) as s:
        n = s.count(a.kind)
        if n and not a.yes and not _confirm(
            f"delete {n} resource(s) of kind {a.kind!r} from {a.path}?"
        ):
            print("pystore: clean: not confirmed; nothing deleted", file=sys.stderr)
            return FAILED
        deleted = s.delete_resources_by_kind(a.kind)
    if a.json:
        _json({"kind": a.kind, "deleted": deleted})
    else:
        _out(f"deleted {deleted} resource(s) of kind {a.kind}")
    return OK


def cmd_backup(a: argparse.Namespace) -> int:
    from .progress import Progress

    with _open_existing(a.path) as s:
        used = s.stats().used_bytes
        done = threading.Event()
        target = os.path.join(a.dest, "data.mdb")
        with Progress("backup", used, " B") as bar:

            def watch() -> None:
                while not done.wait(0.1):
                    with contextlib.suppress(OSError):
                        bar.update(os.stat(target).st_size)

            watcher = threading.Thread(target=watch, daemon=True)
            if bar.enabled:
                watcher.start()
            try:
                size = s.backup(a.dest)
            finally:
                done.set()
                if watcher.is_alive():
                    watcher.join()
    if a.json:
        _json({"path": a.path, "dest": a.dest, "bytes": size})
    else:
        _out(f"backed up {a.path} to {a.dest} ({_size(size)})")
    return OK


def cmd_verify(a: argparse.Namespace) -> int:
    with _open_existing(a.path) as s:
        report: IO[str] = io.StringIO() if a.json else sys.stdout
        checked, problems = _verify.verify(s, report)
    if a.json:
        assert isinstance(report, io.StringIO)
        bad = [ln.removeprefix("BAD ") for ln in report.getvalue().splitlines()]
        _json({"path": a.path, "checked": checked, "problems": problems, "bad": bad})
        return FAILED if problems else OK
    if problems:
        _out(f"verify: {problems} problem(s) in {checked} record(s)")
        return FAILED
    _out(f"verify: {checked} record(s) OK")
    return OK


def cmd_watch(a: argparse.Namespace) -> int:
    from .watch import watch

    with _open_existing(a.path) as s:
        return watch(s, a.kind, a.after, a.json, _out)


def cmd_upgrade(a: argparse.Namespace) -> int:
    with _open_existing(a.path, readonly=False) as s:
        st = s.stats()
    mode = st.write_mode
    if a.writemap and is_etcd_url(a.path):
        raise StoreError(f"{a.path}: an etcd store has no write mode (--writemap is LMDB's)")
    if a.writemap and mode != "writemap":
        from pystore import switch_to_writemap

        switch_to_writemap(a.path)
        mode = "writemap"
    if a.json:
        _json({"path": a.path, "format_version": st.format_version, "revision": st.revision,
               "write_mode": mode or None})
        return OK
    text = f"{a.path}: format version {st.format_version}, revision {st.revision}"
    _out(f"{text}, write mode {mode}" if mode else text)
    return OK


def cmd_demo(a: argparse.Namespace) -> int:
    from .demo import run_demo

    if not a.json:
        return run_demo(a.path)
    steps = io.StringIO()
    rc = run_demo(a.path, steps)
    _json({"path": a.path, "steps": steps.getvalue().splitlines()})
    return rc


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "stats": cmd_stats, "kinds": cmd_kinds, "list": cmd_list, "get": cmd_get,
    "delete": cmd_delete,
    "dump": cmd_dump, "load": cmd_load, "clean": cmd_clean, "backup": cmd_backup,
    "verify": cmd_verify, "watch": cmd_watch, "upgrade": cmd_upgrade, "demo": cmd_demo,
    **{name: _query.bind(f, _open_existing) for name, f in _query.COMMANDS.items()},
}


def _fail(text: str) -> None:
    line = " ".join(str(text).split())  # one line, whatever the message holds
    print(f"pystore: {line}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code."""
    return _mapped(lambda: _main(argv))


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version
        sys.stdout.flush()
        return exc.code if isinstance(exc.code, int) else OK
    if args.command == "verify" and not is_etcd_url(args.path) and hasattr(os, "fork"):
        return _verify_in_child(args)
    return _command(args)


def _command(args: argparse.Namespace) -> int:
    rc = COMMANDS[args.command](args)
    sys.stdout.flush()  # a closed pipe must show here, not at exit
    return rc


def _verify_in_child(args: argparse.Namespace) -> int:
    """``verify`` in a child process: it reads a store that may be damaged
    beyond what LMDB survives (LMDB follows page numbers without checksums,
    and a damaged branch page can crash the reader, docs/durability.md), so
    a death of the child by a signal is reported as damage, in one line."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: the command as usual, then out without cleanup
        code = FAILED
        try:
            code = _mapped(lambda: _command(args))
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
    try:
        _, status = os.waitpid(pid, 0)
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
        raise
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        _fail(f"error: {args.path}: the store is damaged: reading it killed the reader "
              f"({name}); restore it from a backup or a dump")
        return FAILED
    return os.WEXITSTATUS(status)


def _mapped(run: Callable[[], int]) -> int:
    """``run``'s exit code; every error as one line (never a traceback)."""
    try:
        return run()
    except BrokenPipeError:
        return _broken_pipe()
    except UsageError as exc:
        _fail(f"error: {exc}")
        return USAGE
    except InvalidKeyError as exc:
        _fail(f"error: {exc}")
        return USAGE
    except NotFoundError as exc:
        _fail(f"not found: {exc}")
        return FAILED
    except AccessError as exc:
        _fail(str(exc))
        return FAILED
    except (StoreError, OSError, ValueError, UnicodeError) as exc:
        _fail(f"error: {exc}")
        return FAILED
    except KeyboardInterrupt:
        _fail("interrupted")
        return 130
    except Exception as exc:  # never a traceback
        _fail(f"internal error: {type(exc).__name__}: {exc}")
        return FAILED


def _broken_pipe() -> int:
    """The reader went away (``| head``): stop quietly with status 0, as
    other Unix tools do.  Output still buffered for the closed pipe is
    dropped: stdout now points at /dev/null, so the interpreter's flush at
    exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return OK

