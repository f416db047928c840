"""``pystore verify``: every record's header and payload must decode.

The core refuses to list past a record whose header is damaged, and never
hands out the key of such a record.  To name it and go on, the verifier
finds the key by search.  With ``L`` the last id read, a string ``X`` that
is not a key sorts before the next damaged key ``B`` when the key after
``X`` is damaged or at or before ``L``; ``get(X)`` tells a damaged key
(CorruptionError) from a good one.  ``B`` is rebuilt one byte at a time, each
byte the last value still before it, stopping at the first damaged key past
``L``.  Should the search ever fail, the kind's key count tells how many
records were not reached, and verify reports that too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

from google.protobuf import empty_pb2
from google.protobuf.message import DecodeError, Message

from ._core import CTxn, encode_kind
from ._dump import Decoder
from ._progress import Progress
from .errors import CorruptionError, NotFoundError, StoreError

if TYPE_CHECKING:
    from .store import Store

__all__ = ["verify"]

_PAGE = 512
_MAX_ID = 511


def _probe(txn: CTxn, kb: bytes, id: bytes) -> int:
    """1: ``id`` is a damaged record, 0: a good one, -1: no such key."""
    try:
        txn.get(kb, id)
    except CorruptionError:
        return 1
    except NotFoundError:
        return -1
    return 0


def _damaged(txn: CTxn, kb: bytes, id: bytes) -> bool:
    return _probe(txn, kb, id) == 1


def _before(txn: CTxn, kb: bytes, x: bytes, last: bytes | None) -> bool:
    """For an ``x`` that is not a key: whether it sorts before the damaged key
    that follows ``last``."""
    try:
        nxt = txn.list(kb, x, 1)
    except CorruptionError:
        return True  # the next key after x is damaged: the one sought, if isolated
    # A good next key: x is before the damaged one only if that key is at or before `last`.
    return bool(nxt) and last is not None and nxt[0][0] <= last


def find_damaged(txn: CTxn, kb: bytes, last: bytes | None) -> bytes | None:
    """The id of a damaged record after ``last`` (the first one when it is
    isolated); None if none can be found."""
    prefix = b""
    while len(prefix) < _MAX_ID:
        # ids hold no NUL, so byte 1 is always at or before the damaged key
        c = 1
        while c < 255:
            x = prefix + bytes([c + 1])
            state = _probe(txn, kb, x)
            after_last = last is None or x > last
            if state == 1 and after_last:
                return x
            if state == 0 and after_last:
                break  # a good key after last: past the damaged one
            if state < 0 and not _before(txn, kb, x, last):
                break
            c += 1
        if c == 255:
            return None
        prefix += bytes([c])
        if (last is None or prefix > last) and _damaged(txn, kb, prefix):
            return prefix
    return None


def records(txn: CTxn, kb: bytes) -> Iterator[tuple[bytes, bytes | None]]:
    """(id, payload) of every record of a kind; payload None for a damaged header."""
    after: bytes | None = None
    while True:
        try:
            page = txn.list(kb, after, _PAGE)
        except CorruptionError:
            page = []
            while True:  # one at a time up to the damaged record
                try:
                    one = txn.list(kb, after, 1)
                except CorruptionError:
                    break
                if not one:
                    return
                yield one[0][0], one[0][1]
                after = one[0][0]
            bad = find_damaged(txn, kb, after)
            if bad is None or (after is not None and bad <= after):
                raise CorruptionError("a damaged record could not be located") from None
            yield bad, None
            after = bad
            continue
        for id, data, _ns in page:
            yield id, data
        if len(page) < _PAGE:
            return
        after = page[-1][0]


def verify(store: Store, report: IO[str]) -> tuple[int, int]:
    """Check every record's header and payload: (records checked, problems).

    Each problem is one ``BAD ...`` line on ``report``.  A payload is decoded
    with its kind's stored schema; a kind without one is checked for
    well-formed protobuf wire format.
    """
    dec = Decoder()
    checked = problems = 0
    bars: list[Progress] = []

    def bad(text: str) -> None:
        nonlocal problems
        problems += 1
        for b in bars:
            b.clear()
        report.write(f"BAD {text}\n")
        report.flush()

    with store._reading() as t:
        try:
            names = t.kinds()
        except StoreError as exc:
            bad(f"the key index: {exc}")
            return checked, problems
        total = sum(t.count(encode_kind(k)) for k in names)
        with Progress("verify", total) as bar:
            bars.append(bar)
            for kind in names:
                cls = dec.cls(t, kind)
                if kind in dec.errors:
                    bad(f"{kind}: {dec.errors[kind]}")
                check: type[Message] = cls if cls is not None else empty_pb2.Empty
                what = f"its schema {check.DESCRIPTOR.full_name}" if cls else "wire format"
                kb = encode_kind(kind)
                seen = 0
                try:
                    for ib, data in records(t, kb):
                        seen += 1
                        checked += 1
                        bar.update(checked)
                        try:
                            id = ib.decode("utf-8")
                        except UnicodeDecodeError:
                            id = repr(ib)
                            bad(f"{kind}/{id}: id is not valid UTF-8")
                        if data is None:
                            bad(f"{kind}/{id}: damaged record header")
                            continue
                        try:
                            check.FromString(data)
                        except DecodeError as exc:
                            bad(f"{kind}/{id}: payload does not decode ({what}): {exc}")
                except CorruptionError as exc:
                    bad(f"{kind}: a damaged record could not be located; "
                        f"the rest of the kind is unreadable: {exc}")
                    continue
                hidden = t.count(kb) - seen
                if hidden > 0:
                    bad(f"{kind}: {hidden} record(s) not reached "
                        "(between or next to damaged records)")
    return checked, problems
