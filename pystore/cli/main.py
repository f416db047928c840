"""The ``pystore`` command line (console script and ``python -m pystore``).

Read commands (stats, kinds, list, get, dump, backup, verify, watch) open the
store read-only: they work while another process writes it and never create a
store.  Exit codes: 0 success, 1 not found / failed / verification failed,
2 usage error.  Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import IO, NoReturn

from ..errors import InvalidKeyError, NotFoundError, StoreError
from ..store import Store
from . import dump as _dump
from . import query as _query
from . import verify as _verify

__all__ = ["main"]

OK, FAILED, USAGE = 0, 1, 2


class UsageError(Exception):
    """A bad command line (exit 2)."""


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


def _parser() -> _Parser:
    p = _Parser(prog="pystore", description="Inspect, copy and check pystore stores.")
    p.add_argument("--json", action="store_true", help="machine-readable output (stats)")
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
    c.add_argument("--after", type=_count, metavar="N",
                   help="first replay every change after revision N")
    c.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="one JSON object per line")
    c = cmd("upgrade", "upgrade a store of an older format in place (one transaction)")
    c.add_argument("path", metavar="PATH")
    c = cmd("demo", "run the README's main job on a local store")
    c.add_argument("path", metavar="PATH", nargs="?", default="./.pystore-demo")
    return p


def _open_existing(path: str, readonly: bool = True) -> Store:
    if not os.path.isfile(os.path.join(path, "data.mdb")):
        raise NotFoundError(f"no store at {path!r}")
    return Store(path, readonly=readonly)


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def cmd_stats(a: argparse.Namespace) -> int:
    with _open_existing(a.path) as s:
        st = s.stats()
    if a.json:
        _out(json.dumps(st.to_dict(), indent=2))
        return OK
    _out(f"store           {st.path}")
    _out(f"format version  {st.format_version}")
    _out(f"revision        {st.revision}")
    _out(f"resources       {st.entries} in {len(st.kinds)} kind(s)")
    _out(f"map size        {_size(st.map_size)}")
    _out(f"used            {_size(st.used_bytes)} (file {_size(st.file_bytes)}, "
         f"page {st.page_size} B, depth {st.depth})")
    _out(f"readers         {st.num_readers} of {st.max_readers}")
    if st.kinds:
        width = max(4, *(len(k) for k in st.kinds))
        _out(f"{'KIND':<{width}}  {'COUNT':>9}  TYPE")
        for kind, ks in st.kinds.items():
            _out(f"{kind:<{width}}  {ks.count:>9}  {ks.type_name or '-'}")
    return OK


def cmd_kinds(a: argparse.Namespace) -> int:
    with _open_existing(a.path) as s:
        for kind in s.kinds():
            _out(kind)
    return OK


def cmd_list(a: argparse.Namespace) -> int:
    with _open_existing(a.path) as s:
        dec = _dump.Decoder()
        with s._reading() as t:
            cls = None if a.ids else dec.cls(t, a.kind)
        for r in s.iter_resources(a.kind, after=a.after, limit=a.limit):
            if a.ids:
                _out(r.id)
            else:
                obj = _dump.record_json(a.kind, r.id, r.data, r.updated_ns, cls, with_data=False)
                _out(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))
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
            fd = os.open(a.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
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
        with Store(a.path) as s:
            records, schemas = _dump.load(s, src, a.file, size, extras)
    finally:
        if src is not sys.stdin:
            src.close()
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
    _out(f"backed up {a.path} to {a.dest} ({_size(size)})")
    return OK


def cmd_verify(a: argparse.Namespace) -> int:
    with _open_existing(a.path) as s:
        checked, problems = _verify.verify(s, sys.stdout)
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
    _out(f"{a.path}: format version {st.format_version}, revision {st.revision}")
    return OK


def cmd_demo(a: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(a.path)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "stats": cmd_stats, "kinds": cmd_kinds, "list": cmd_list, "get": cmd_get,
    "dump": cmd_dump, "load": cmd_load, "clean": cmd_clean, "backup": cmd_backup,
    "verify": cmd_verify, "watch": cmd_watch, "upgrade": cmd_upgrade, "demo": cmd_demo,
    **{name: _query.bind(f, _open_existing) for name, f in _query.COMMANDS.items()},
}


def _fail(text: str) -> None:
    line = " ".join(str(text).split())  # one line, whatever the message holds
    print(f"pystore: {line}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code."""
    try:
        args = _parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UsageError as exc:
        _fail(f"error: {exc}")
        return USAGE
    except InvalidKeyError as exc:
        _fail(f"error: {exc}")
        return USAGE
    except NotFoundError as exc:
        _fail(f"not found: {exc}")
        return FAILED
    except (StoreError, OSError, ValueError, UnicodeError) as exc:
        if isinstance(exc, BrokenPipeError):
            return _broken_pipe()
        _fail(f"error: {exc}")
        return FAILED
    except KeyboardInterrupt:
        _fail("interrupted")
        return 130
    except Exception as exc:  # never a traceback
        _fail(f"internal error: {type(exc).__name__}: {exc}")
        return FAILED


def _broken_pipe() -> int:
    """The reader went away (``| head``): stop quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return FAILED

