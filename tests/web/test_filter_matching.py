"""A filter decides from an entry's raw bytes only what decoding it would decide: ``sets._Matcher`` against
``JobView.parse(raw).matches(needle)``, for hostile but valid entries written by many kinds of JSON
encoder, and for entries that are not jobs (which keep the dashboard's old rule: their bytes must hold the
text's runs). Pure functions: no Redis."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_big_sets import WRITTEN

from workerkit.sets import _RAW_RUN, _Matcher
from workerkit.views import JobView

pytestmark = pytest.mark.timeout(120)

CHARS = [
    *"aAbBcCeEfFiIkKnNoOsSuUxXzZ", *"0123456789", " ", '"', "\\", "/", "'", ",", ":", "[", "]", "{", "}", ".", "-",
    "+", "_", "<", ">", "&", "*", "?", "\t", "\n", "\x00", "\x1f", "\x7f", "\u0130", "\u212a", "\u0131", "\xe9", "\xc9",
    "\u03a3", "\u03c2", "\u2028", "\xa0", "\U0001f600", "\ud800", "\udfff",
]
"""Every class of character the matcher treats apart: letters that JSON writers escape or not, the two
beyond ASCII that lower-case to ASCII (``İ``, Kelvin) and one that does not (dotless ``i``), separators, quotes,
backslash, controls, ``DEL``, non-printables that ``repr`` escapes, an astral character and lone surrogates
(which make an entry unreadable)."""
WORDS = ["none", "null", "true", "false", "boom", "report-1", "1e-05", "100.0", "1.0", "0", "-0", "class", "jid",
         "args", "error_message", "queue", "default"]
"""Text that sits in the fields a filter searches, or next to them (keys, literals, numbers' forms)."""

class Members(list[tuple[str, Any]]):
    """A JSON object as its members in order, duplicate keys kept (a decoder keeps the last one)."""


def texts(chars: list[str]) -> st.SearchStrategy[str]:
    return st.lists(st.one_of(st.sampled_from(chars), st.sampled_from(WORDS)), max_size=8).map("".join)


text = texts(CHARS)
clean_text = texts([char for char in CHARS if char not in '"\\\t\n\x00\x1f\ud800\udfff'])
"""Text that a JSON writer need not escape: the entries the matcher rules out from their bytes alone."""
numbers = st.one_of(
    st.integers(-(10**20), 10**20), st.sampled_from([0, -1, 10**25, 2**63]),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([1e-05, 100.0, 1e20, -0.0, 0.5, 1e16, 1.5e-7]),
)


def json_values(strings: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """Any JSON value (objects as :class:`Members`), nested, with these strings."""
    return st.recursive(st.one_of(strings, numbers, st.booleans(), st.none()), lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(st.tuples(st.one_of(strings, st.sampled_from(["a", "class", "jid", "boom"])), inner), max_size=4)
        .map(Members),
    ), max_leaves=12)


@st.composite
def payloads(draw: st.DrawFn) -> Members:
    """A job: a string class and a list of args, the searched fields of any type or absent, other fields
    (some named like the needles) and duplicate keys."""
    members = Members()
    clean = draw(st.booleans())  # strings only, none to escape, in the searched fields: half the entries
    strings = clean_text if clean else text
    values = json_values(strings)
    searched = strings if clean else st.one_of(text, values)
    candidates: list[tuple[str, st.SearchStrategy[Any]]] = [
        ("class", strings), ("args", st.lists(values, max_size=5)), ("jid", searched), ("error_class", searched),
        ("error_message", searched), ("queue", text), ("retry_count", numbers), ("created_at", numbers),
        ("boom", json_values(text)), ("error_backtrace", st.lists(text, max_size=3)), ("class", strings),
        ("args", values),
    ]
    for name, strategy in candidates[:10]:
        if name in ("class", "args") or draw(st.booleans()):
            members.append((name, draw(strategy)))
    for name, strategy in candidates[10:]:  # a second class or args: the last one counts
        if draw(st.integers(0, 4)) == 0:
            members.append((name, draw(strategy)))
    return Members(draw(st.permutations(members)))


@st.composite
def writers(draw: st.DrawFn) -> dict[str, Any]:
    """How one producer writes JSON: separators, which characters it escapes and how, number forms."""
    return {
        "comma": draw(st.sampled_from([",", ", ", " ,", ",\n  "])),
        "colon": draw(st.sampled_from([":", ": ", " : "])),
        "escape": draw(st.sampled_from(["none", "non-ascii", "letters", "slash", "all"])),
        "upper_hex": draw(st.booleans()),
        "floats": draw(st.sampled_from(["repr", "exponent", "padded"])),
        "ints": draw(st.sampled_from(["plain", "float", "exponent"])),
        "brackets": draw(st.sampled_from(["[]", "[ ]"])),
    }


def write(value: Any, how: dict[str, Any]) -> str:
    """``value`` as JSON text the way ``how`` says (valid JSON whenever its strings can be written)."""
    comma, colon = str(how["comma"]), str(how["colon"])
    if isinstance(value, Members):
        return "{" + comma.join(write_string(key, how) + colon + write(item, how) for key, item in value) + "}"
    if isinstance(value, list):
        inner = comma.join(write(item, how) for item in value)
        return f"[ {inner} ]" if how["brackets"] == "[ ]" and inner else f"[{inner}]"
    if isinstance(value, str):
        return write_string(value, how)
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        if how["ints"] == "float" and abs(value) < 10**15:
            return f"{value}.0"  # read back as a float: 1.0, not 1
        return f"{value}E0" if how["ints"] == "exponent" and abs(value) < 10**15 else str(value)
    assert math.isfinite(value)
    if how["floats"] == "exponent":
        return f"{value:.6E}"  # 1.000000E-05
    if how["floats"] == "padded":  # 1.50, 1.0e-05: Ruby's and others' forms
        mantissa, _, exponent = repr(value).partition("e")
        mantissa += "0" if "." in mantissa else ".0"
        return f"{mantissa}e{exponent}" if exponent else mantissa
    return repr(value)


def write_string(value: str, how: dict[str, Any]) -> str:
    parts = []
    for char in value:
        code = ord(char)
        must = char in '"\\' or code < 0x20 or 0xD800 <= code <= 0xDFFF
        wanted = {"none": must, "non-ascii": must or code > 0x7E, "letters": must or char.isalpha(),
                  "slash": must or char == "/", "all": True}[how["escape"]]
        if not wanted:
            parts.append(char)
        elif char == "/" and how["escape"] == "slash":
            parts.append("\\/")
        elif char in '"\\' and how["escape"] != "all":
            parts.append("\\" + char)
        elif code > 0xFFFF:
            high, low = divmod(code - 0x10000, 0x400)
            parts.append(hex_escape(0xD800 + high, how) + hex_escape(0xDC00 + low, how))
        else:
            parts.append(hex_escape(code, how))
    return '"' + "".join(parts) + '"'


def hex_escape(code: int, how: dict[str, Any]) -> str:
    return f"\\u{code:04X}" if how["upper_hex"] else f"\\u{code:04x}"


def old_prefilter_admits(raw: bytes, needle: str) -> bool:
    """The dashboard's rule before the matcher, which entries that are not jobs keep: the bytes hold every
    run of the text, or may hold ``İ`` or the Kelvin sign."""
    runs = [run.encode("ascii") for run in _RAW_RUN.findall(needle)]
    lowers = any(char in run for run in runs for char in b"ik")
    lowered = raw.lower()
    return all(run in lowered for run in runs) or (lowers and (not raw.isascii() or b"\\u" in raw))


def expected(raw: bytes, needle: str) -> bool:
    """What decoding the entry decides (for an entry that is not a job: also the old rule)."""
    job = JobView.parse(raw)
    return job.matches(needle) and (job.readable or old_prefilter_admits(raw, needle))


def searched_text(raw: bytes) -> str:
    job = JobView.parse(raw)
    return " ".join((job.class_name, job.args_text, job.error_class, job.error_message, job.jid))


def encoded(document: str) -> bytes:
    return document.encode("utf-8", "surrogatepass")


COMPACT = {"comma": ",", "colon": ":", "escape": "none", "upper_hex": False, "floats": "repr", "ints": "plain",
           "brackets": "[]"}


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(payload=payloads(), how=writers(), data=st.data())
@example(payload=Members([("class", "Report"), ("args", [])]), how={**COMPACT, "escape": "letters"}, data=None)
@example(payload=Members([("class", "A"), ("args", []), ("error_message", ["a\x7fb"])]), how=COMPACT, data=None)
def test_the_matcher_decides_what_decoding_decides(payload: Members, how: dict[str, Any], data: Any) -> None:
    raw = encoded(write(payload, how))
    needles = ["report", "rep", "none", "1e-05", "100.0", "1, 2", "true", "k", "i", "boom", "\u0130", "\u212a", "x7fb"]
    if data is not None:
        haystack = searched_text(raw)
        start = data.draw(st.integers(0, len(haystack)), label="start")
        piece = haystack[start : start + data.draw(st.integers(1, 12), label="length")]
        needles += [piece, piece.upper(), data.draw(text, label="needle")]
    for needle in needles:
        needle = needle.lower()
        if needle:
            assert _Matcher(needle)(raw) == expected(raw, needle), (raw, needle)


@pytest.mark.parametrize(("raw", "needle"), WRITTEN)
def test_each_way_a_searched_text_can_hold_what_the_bytes_do_not_is_looked_for(raw: bytes, needle: str) -> None:
    """One entry for each reason the matcher decodes an entry that lacks a run of the text (each one fails
    when that reason is left out of ``_Matcher._may_hide_text``)."""
    assert _Matcher(needle.lower())(raw) and expected(raw, needle.lower())


NOT_JOBS = [
    b'{"class":"app.Boom","args":[1]',  # cut short
    b'{"class":"app.Boom","args":"boom"}',  # args not a list
    b'{"class":1,"args":["boom"]}',  # class not a string
    b'{"class":"app.Boom","args":[NaN],"error_message":"boom"}',
    b'{"class":"app.Boom","args":[1e400],"error_message":"boom"}',
    b'{"class":"app.Boom","args":["\\ud800 boom"]}',  # a lone surrogate
    b'["boom"]',
    b"\xff\xfe boom",
    b'{"class":"app.B\\u006fom","args":[1],"x":}',
    b'{"class":"(unreadable payload)","args":[]}garbage',
]


@pytest.mark.parametrize("raw", NOT_JOBS)
@pytest.mark.parametrize("needle", ["boom", "unreadable", "payload", "json", "b\u006fom", "\u0130", "1"])
def test_an_entry_that_is_not_a_job_is_found_as_before(raw: bytes, needle: str) -> None:
    """Its bytes must hold the text's runs and its unreadable view the text, as before the matcher."""
    assert not JobView.parse(raw).readable
    assert _Matcher(needle.lower())(raw) == (old_prefilter_admits(raw, needle.lower())
                                             and JobView.parse(raw).matches(needle.lower()))
