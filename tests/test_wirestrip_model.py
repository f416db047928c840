"""The C wire strip (``ps_wire_strip``) against a model written in Python.

Property test: for random plans (valid ones with cycles, and broken ones)
and random inputs (well-formed nested messages, and arbitrary bytes), the
C strip returns exactly the model's bytes, or declines (None) exactly when
the model does.  The model is the format of csrc/ps_strip.c: fields a node
drops are left out; a length-delimited field with a node is written as its
tag, the minimal varint of the stripped body's length, then the body;
everything else is copied as it is; malformed input, groups, field 0 and
more than 100 levels are declined, and so is a plan that points outside
its table.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pystore._lmdb.wirestrip import DROP, WirePlan

MASK64 = (1 << 64) - 1


def _varint(data: bytes, pos: int) -> tuple[int, int] | None:
    value = 0
    for shift in range(0, 64, 7):
        if pos >= len(data):
            return None
        b = data[pos]
        pos += 1
        value = (value | (b & 0x7F) << shift) & MASK64
        if not b & 0x80:
            return value, pos
    return None


def _put_varint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def model(plan: list[int], node: int, data: bytes, depth: int = 0) -> bytes | None:
    if depth > 100:
        return None
    out = bytearray()
    pos = 0
    while pos < len(data):
        start = pos
        got = _varint(data, pos)
        if got is None:
            return None
        tag, pos = got
        tag_end = pos
        wt, n = tag & 7, 0
        if wt == 0:
            got = _varint(data, pos)
            if got is None:
                return None
            pos = got[1]
        elif wt in (1, 5):
            width = 8 if wt == 1 else 4
            if len(data) - pos < width:
                return None
            pos += width
        elif wt == 2:
            got = _varint(data, pos)
            if got is None:
                return None
            n, pos = got
            if n > len(data) - pos:
                return None
            pos += n
        else:
            return None
        if tag >> 3 == 0:
            return None
        if node >= len(plan):
            return None
        pairs = plan[node]
        if pairs > (len(plan) - node - 1) // 2:
            return None
        action = None
        for i in range(pairs):
            if plan[node + 1 + 2 * i] == tag >> 3:
                action = plan[node + 2 + 2 * i]
                break
        if action == DROP:
            continue
        if action is not None and wt == 2:
            sub = model(plan, action, data[pos - n : pos], depth + 1)
            if sub is None:
                return None
            out += data[start:tag_end] + _put_varint(len(sub)) + sub
        else:
            out += data[start:pos]
    return bytes(out)


# -- strategies ----------------------------------------------------------------

FIELDS = st.integers(1, 6) | st.integers(1, (1 << 29) - 1)


@st.composite
def plans(draw: st.DrawFn) -> list[int]:
    """Nodes of (field, DROP or another node's offset) pairs, cycles allowed;
    now and then a table that is broken (a bad offset or pair count)."""
    sizes = draw(st.lists(st.integers(0, 4), min_size=1, max_size=4))
    offsets, at = [], 0
    for k in sizes:
        offsets.append(at)
        at += 1 + 2 * k
    table: list[int] = []
    for k in sizes:
        table.append(k)
        for _ in range(k):
            table.append(draw(FIELDS))
            table.append(draw(st.sampled_from([DROP, *offsets])))
    if draw(st.integers(0, 9)) == 0 and table:
        i = draw(st.integers(0, len(table) - 1))
        table[i] = draw(st.integers(0, 2**32 - 2))
    return table


def _field(num: int, wt: int, body: bytes | int) -> bytes:
    tag = _put_varint(num << 3 | wt)
    if wt == 0:
        assert isinstance(body, int)
        return tag + _put_varint(body)
    assert isinstance(body, bytes)
    if wt == 2:
        return tag + _put_varint(len(body)) + body
    return tag + body


@st.composite
def messages(draw: st.DrawFn, depth: int = 0) -> bytes:
    out = b""
    for _ in range(draw(st.integers(0, 5))):
        num = draw(FIELDS)
        kind = draw(st.integers(0, 4 if depth < 4 else 3))
        if kind == 0:
            out += _field(num, 0, draw(st.integers(0, MASK64)))
        elif kind == 1:
            out += _field(num, 1, draw(st.binary(min_size=8, max_size=8)))
        elif kind == 2:
            out += _field(num, 5, draw(st.binary(min_size=4, max_size=4)))
        elif kind == 3:
            out += _field(num, 2, draw(st.binary(max_size=200)))
        else:
            out += _field(num, 2, draw(messages(depth + 1)))
    return out


INPUTS = messages() | st.binary(max_size=64) | messages().map(lambda m: m[: len(m) // 2])


@settings(max_examples=600, deadline=None)
@given(plan=plans(), data=INPUTS)
def test_the_c_strip_is_the_model(plan: list[int], data: bytes) -> None:
    assert WirePlan(plan).strip(data) == model(plan, 0, data)


def test_a_body_whose_length_varint_gets_shorter() -> None:
    """A 130-byte sub-message (2-byte length) stripped to 100 bytes (1 byte):
    the body moves one byte back."""
    inner = _field(1, 2, b"x" * 27) + _field(2, 2, b"y" * 98)  # 29 + 100 bytes
    assert len(inner) == 129
    data = _field(5, 2, inner) + _field(6, 0, 7)
    plan = [1, 5, 3, 1, 1, DROP]  # node 0: field 5 -> node 3; node 3: drop 1
    got = WirePlan(plan).strip(data)
    assert got == _field(5, 2, _field(2, 2, b"y" * 98)) + _field(6, 0, 7)
    assert got == model(plan, 0, data)


def test_deep_nesting_is_declined_past_100_levels() -> None:
    plan = [1, 1, 0]  # field 1 descends into the same node
    data = b""
    for _ in range(100):
        data = _field(1, 2, data)
    assert WirePlan(plan).strip(data) == model(plan, 0, data) == data
    data = _field(1, 2, data)  # the innermost body 101 levels down
    assert model(plan, 0, data) is None
    assert WirePlan(plan).strip(data) is None


def _padded_varint(v: int, extra: int) -> bytes:
    """v as a varint with ``extra`` redundant bytes (0x80 continuation, then 0)."""
    out = bytearray(_put_varint(v))
    for _ in range(extra):
        out[-1] |= 0x80
        out.append(0)
    return bytes(out)


# Bodies around the sizes where a length's varint changes width.
EDGES = [1, 2, 126, 127, 128, 129, 130, 16382, 16383, 16384, 16385, 16386,
         2097151, 2097152, 2097153]


@st.composite
def big_nested(draw: st.DrawFn) -> tuple[list[int], bytes]:
    """A sub-message whose stripped body crosses a varint width (3 -> 2 -> 1
    bytes and within one), lengths written minimally or padded (up to 10
    bytes), nested two deep, the stripped field first, last or between."""
    keep = draw(st.sampled_from(EDGES))
    drop = draw(st.sampled_from(EDGES))
    pad = draw(st.integers(0, 9 - len(_put_varint(keep + drop + 8))))
    kept = _field(2, 2, b"k" * max(keep - 4, 0))
    dropped = _field(1, 2, b"d" * max(drop - 4, 0))
    order = draw(st.sampled_from(["dk", "kd", "kdk"]))
    inner = {"dk": dropped + kept, "kd": kept + dropped, "kdk": kept + dropped + kept}[order]
    mid = _put_varint(3 << 3 | 2) + _padded_varint(len(inner), pad) + inner
    outer = _put_varint(5 << 3 | 2) + _padded_varint(len(mid), draw(st.integers(0, 3))) + mid
    data = draw(st.sampled_from([b"", _field(6, 0, 7)])) + outer
    if draw(st.booleans()):
        data += _field(6, 0, MASK64)  # a 10-byte varint last
    # node 0: 5 -> node 3; node 3: 3 -> node 6; node 6: drop 1
    return [1, 5, 3, 1, 3, 6, 1, 1, DROP], data


@settings(max_examples=40, deadline=None)
@given(case=big_nested())
def test_bodies_whose_length_varints_change_width(case: tuple[list[int], bytes]) -> None:
    plan, data = case
    got = WirePlan(plan).strip(data)
    assert got is not None
    assert got == model(plan, 0, data)
    assert len(got) <= len(data)


@settings(max_examples=200, deadline=None)
@given(case=big_nested(), cut=st.integers(1, 12))
def test_a_length_cut_short_near_the_end_is_declined(
    case: tuple[list[int], bytes], cut: int
) -> None:
    plan, data = case
    data = data[: len(data) - cut]
    assert WirePlan(plan).strip(data) == model(plan, 0, data)
