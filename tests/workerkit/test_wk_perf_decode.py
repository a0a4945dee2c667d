"""The decode fast paths. ``workerkit.payload.strict_decode`` parses with one strict decoder made once instead
of ``json.loads`` with hooks (which builds a decoder per call): for any bytes or text it must accept and refuse
exactly what ``json.loads`` with the same hooks does, and give the same value. ``decode_value`` tries msgspec's
parser first: for any input it must give exactly what ``strict_decode`` gives (the same types, the same float
bits, the same key order) or refuse with a PayloadError where ``strict_decode`` does."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from workerkit import payload

EDGES: list[bytes | str] = [
    b'{"class":"A","args":[1.5,2e3]}', '{"class":"A","args":[]}', b"\xef\xbb\xbf{}", "\ufeff{}",
    '{"class":"A","args":[]}'.encode("utf-16"), '{"a":1}'.encode("utf-16-le"), '{"a":1}'.encode("utf-32-be"),
    b'{"s":"\xed\xa0\x80"}', b'{"s":"\\ud800"}', b'{"n":NaN}', b'{"n":-Infinity}', b'{"n":1e400}', b'{"n":-1e400}',
    b"\xff\xfe", b"", "", b"[" * 100_000 + b"]" * 100_000, b'{"a":1} x', b"\x00\x00\x00{", b'"\xc3"', b"nul",
]


def outcome(parse: Any, raw: bytes | str) -> tuple[str, Any]:
    """What ``parse(raw)`` gives: ("value", value) or ("refused", the kind of error)."""
    try:
        return "value", parse(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return "refused", type(exc).__name__


def reference(raw: bytes | str) -> Any:
    return json.loads(raw, parse_float=payload._finite, parse_constant=payload._not_json)


def current(raw: bytes | str) -> Any:
    return payload._decoder.decode(payload._json_text(raw))


def same(raw: bytes | str) -> None:
    expected, got = outcome(reference, raw), outcome(current, raw)
    if expected[0] == "value" and isinstance(expected[1], float) and math.isnan(expected[1]):
        raise AssertionError("NaN must be refused")
    assert got == expected, raw[:80]


def test_the_decoder_made_once_parses_the_edges_as_json_loads_does() -> None:
    for raw in EDGES:
        same(raw)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=60), st.text(max_size=60),
                 st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
                              lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                                          max_size=4))
                 .map(lambda value: json.dumps(value, ensure_ascii=False)),
                 st.sampled_from(["utf-8", "utf-16", "utf-16-le", "utf-32"]).flatmap(
                     lambda encoding: st.text(max_size=30).map(lambda text: json.dumps(text).encode(encoding)))))
def test_the_decoder_made_once_parses_anything_as_json_loads_does(raw: bytes | str) -> None:
    same(raw)


def test_decode_still_refuses_what_is_not_a_strict_job() -> None:
    for raw in (b'{"class":"A","args":[1e400]}', b'{"class":"A","args":[NaN]}', "\ufeff{}", b'{"class":"A"}',
                b'{"class":"A","args":["\\ud800"]}', b"[]"):
        try:
            payload.decode(raw)
        except payload.PayloadError:
            continue
        raise AssertionError(f"{raw!r} was accepted")
    assert payload.decode(b'{"class":"A","args":[0.5]}') == {"class": "A", "args": [0.5]}


def typed(value: Any) -> list[Any]:
    """``value`` as a flat list of tokens that tells apart what ``==`` does not: 1 from 1.0 and True, 0.0 from
    -0.0, and the order of an object's keys (without recursion: the inputs nest a thousand deep)."""
    tokens: list[Any] = []
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, float):
            tokens.append(("float", item.hex()))
        elif isinstance(item, list):
            tokens.append(("list", len(item)))
            pending.extend(reversed(item))
        elif isinstance(item, dict):
            tokens.append(("dict", len(item)))
            for key, member in reversed(item.items()):
                pending.extend([member, ("key", key)])
        else:
            tokens.append((type(item).__name__, item))
    return tokens


def strict_and_fast_agree(raw: bytes | str) -> None:
    try:
        expected = typed(payload.strict_decode(raw))
    except payload.PayloadError:
        try:
            accepted = payload.decode_value(raw)
        except payload.PayloadError:
            return
        raise AssertionError(
            f"the fast path accepted {raw[:80]!r} as {accepted!r:.80}; the strict one refuses it") from None
    assert typed(payload.decode_value(raw)) == expected, raw[:80]


def mutated(data: st.DataObject, raw: bytes) -> bytes:
    """``raw`` with a few bytes inserted, replaced or removed: valid JSON one step from breaking."""
    buffer = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(buffer)))
        byte = data.draw(st.sampled_from(b'\\"{}[],:0.eE-+u\x00\x7f\x80\xc3\xed\xff ') | st.integers(0, 255))
        action = data.draw(st.sampled_from(["insert", "replace", "remove"]))
        if action == "insert" or at == len(buffer):
            buffer.insert(at, byte)
        elif action == "replace":
            buffer[at] = byte
        else:
            del buffer[at]
    return bytes(buffer)


ANY_TEXT = st.text(st.characters(categories=["L", "M", "N", "P", "S", "Z", "C"]), max_size=12)
"""Text of every category, surrogates (Cs) and controls (Cc) too: hypothesis's default leaves out surrogates."""
NUMBER = st.from_regex(r"-?(0|[1-9][0-9]{0,40})(\.[0-9]{1,25})?([eE][+-]?[0-9]{1,4})?", fullmatch=True)
"""Numbers as JSON writes them, past 64 bits, past a double's precision and range, subnormal."""
ALMOST_NUMBER = st.from_regex(r"[-+]?0*[0-9]*\.?[0-9]*([eE][-+]?[0-9]*)?", fullmatch=True)
INTEGER = st.integers() | st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, 10**400])
FLOAT = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([5e-324, -0.0, 2.2250738585072014e-308,
                                                                           1.7976931348623157e308])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | INTEGER | FLOAT | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4), max_leaves=20)


def written(value: Any, ensure_ascii: bool, encoding: str) -> bytes:
    """``value`` as JSON in ``encoding`` (a lone surrogate as an escape, or as the bytes surrogatepass writes)."""
    return json.dumps(value, ensure_ascii=ensure_ascii).encode(encoding, "surrogatepass")


ENCODED = st.builds(written, JSON_VALUES, st.booleans(),
                    st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-16", "utf-16-be", "utf-32", "utf-32-le"]))


@settings(max_examples=1500, deadline=None)
@given(st.one_of(
    ENCODED,
    JSON_VALUES.map(lambda value: json.dumps(value, ensure_ascii=False)),
    NUMBER, NUMBER.map(lambda number: f'{{"class":"A","args":[{number}]}}'.encode()), ALMOST_NUMBER,
    st.binary(max_size=40),
    st.text(alphabet='{}[]:,"\\ u0123456789abcdefEtrunlsN.-+\t\n\r\x00\x1f\ufeff\ud800\udc00', max_size=40),
    st.tuples(st.integers(900, 1100), st.sampled_from(["[", '{"a":'])).map(
        lambda nest: nest[1] * nest[0] + "1" + ("]" if nest[1] == "[" else "}") * nest[0]),
))
def test_the_fast_decoder_gives_what_the_strict_one_gives(raw: bytes | str) -> None:
    strict_and_fast_agree(raw)


@settings(max_examples=800, deadline=None)
@given(st.data(), ENCODED)
def test_the_fast_decoder_refuses_what_the_strict_one_refuses_one_byte_from_json(
        data: st.DataObject, raw: bytes) -> None:
    strict_and_fast_agree(mutated(data, raw))


def test_the_fast_decoder_agrees_on_the_edges() -> None:
    for raw in [*EDGES, "-0", "-0.0", "0e0", "1E400", "1e-400", "123456789012345678901234567890", "[1,]", "01",
                        '{"a":1,"a":2}', '{"b":1,"a":2}', '"\\ud83d\\ude00"', '"\\ude00\\ud83d"', '"\x7f"', '"\x1f"',
                        b'"\xf4\x90\x80\x80"', b'"\xc0\xaf"', b'"\xed\xbf\xbf"', " 1 ", "1 x", "\t[]\r\n"]:
        strict_and_fast_agree(raw)
