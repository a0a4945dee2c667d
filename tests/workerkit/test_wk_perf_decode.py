"""``workerkit.payload.decode`` parses with one strict decoder made once instead of ``json.loads`` with hooks
(which builds a decoder per call): for any bytes or text it must accept and refuse exactly what
``json.loads`` with the same hooks does, and give the same value."""

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
