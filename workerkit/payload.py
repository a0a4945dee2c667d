"""The job payload: a JSON object in Sidekiq 7's format, and strict validation of job arguments.

Arguments must be plain JSON values (str, int, float, bool, None, lists and dicts with str keys).
Anything else raises :class:`TypeError` at the call site, naming the argument's path (``args[1]['when']``),
so a job never carries a value that would not survive the trip through Redis unchanged. No pickle, ever.
"""

from __future__ import annotations

import base64
import json
import json.encoder as _json_encoder
import math
import os
import re
from collections.abc import Sequence
from typing import Any

import msgspec

Payload = dict[str, Any]

_SCALARS = (str, int, bool, type(None))
_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False)
_encode_chunks = _json_encoder.c_make_encoder(  # type: ignore[attr-defined]
    None, _encoder.default, _json_encoder.encode_basestring, None, ":", ",", False, False, False)
"""The C encoder ``_encoder.encode`` builds on every call (its markers, None, keep no state), built once."""


def encode(value: Any) -> str:
    """Serialize a payload (or any JSON value) compactly: what ``_encoder.encode`` writes, and the same
    errors (a value JSON cannot hold, NaN or an infinity), in half the time for a small payload."""
    return "".join(_encode_chunks(value, 0))


class PayloadError(ValueError):
    """A payload read from Redis is not a valid job (bad JSON or missing fields)."""


def new_jid() -> str:
    """A fresh job id: 24 hex characters, like Sidekiq's ``SecureRandom.hex(12)``."""
    return os.urandom(12).hex()


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
"""A JSON escape of a UTF-16 surrogate: the one way a lone surrogate gets into decoded text."""


def _has_lone_surrogate(text: str) -> bool:
    """Whether ``text`` holds a lone UTF-16 surrogate, which UTF-8 (and so Redis and Ruby) cannot carry."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check_text(text: str, path: str) -> None:
    if _has_lone_surrogate(text):
        raise TypeError(f"job argument {path} holds a lone surrogate ({text!r:.60}), which UTF-8 cannot carry; "
                        "decode file names with os.fsdecode and errors='replace', or pass bytes as text")


def _check_value(value: Any, path: str) -> None:
    kind = type(value)
    if kind is str:
        _check_text(value, path)
        return
    if kind in _SCALARS:
        return
    if kind is float:
        if not math.isfinite(value):
            raise TypeError(f"job argument {path} is {value!r}, which JSON cannot represent")
        return
    if kind is list:
        for index, item in enumerate(value):
            _check_value(item, f"{path}[{index}]")
        return
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(f"job argument {path} has a non-string key {key!r}; JSON object keys are strings")
            _check_text(key, f"{path} key")
            _check_value(item, f"{path}[{key!r}]")
        return
    hint = "; use a list" if kind is tuple else ""
    raise TypeError(
        f"job argument {path} is a {kind.__name__} ({value!r:.60}); "
        f"job arguments must be plain JSON values (str, int, float, bool, None, list, dict with str keys){hint}"
    )


def check_args(args: Sequence[Any]) -> list[Any]:
    """Return ``args`` as a list after checking every value is plain JSON; raise TypeError naming the path."""
    if isinstance(args, (str, bytes, dict)) or not isinstance(args, (list, tuple)):
        raise TypeError(f"job args must be a list or tuple of arguments, not {type(args).__name__}")
    for index, value in enumerate(args):
        if type(value) not in _SCALARS or type(value) is str:
            _check_value(value, f"args[{index}]")
    return list(args)


def new_payload(
    class_name: str, args: Sequence[Any], queue: str, retry: bool | int, options: dict[str, Any] | None = None,
    *, created_at: float | int,
) -> Payload:
    """Build a new job payload (``created_at`` as the payload format writes it: ``workerkit.config.timestamp``);
    ``enqueued_at`` is added when the job reaches a queue."""
    if not class_name or not isinstance(class_name, str):
        raise TypeError(f"job class name must be a non-empty string, not {class_name!r}")
    if not queue or not isinstance(queue, str):
        raise TypeError(f"queue must be a non-empty string, not {queue!r}")
    payload: Payload = {
        "class": class_name,
        "args": check_args(args),
        "jid": new_jid(),
        "queue": queue,
        "retry": retry,
        "created_at": created_at,
    }
    if options:
        for key, value in options.items():
            _check_value(value, f"option {key!r}")
        payload.update(options)
    return payload


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise PayloadError(f"number {text[:40]} is out of range")
    return value


def _not_json(name: str) -> Any:
    raise PayloadError(f"{name} is not a JSON value")


_decoder = json.JSONDecoder(parse_float=_finite, parse_constant=_not_json)
"""The strict decoder, made once: ``json.loads`` with these hooks builds a decoder per call (half of a
small payload's decoding time)."""

_fast_decoder = msgspec.json.Decoder()
"""msgspec's JSON decoder: a small payload in a sixth of the time. It refuses all that the strict decoder
refuses and gives the same values where both accept (``tests/workerkit/test_wk_perf_decode.py``); what
it refuses (integers past 64 bits, UTF-16 text, a byte-order mark, lone surrogates, bad JSON) goes to the
strict decoder, which has the last word."""


def _json_text(raw: bytes | str) -> str:
    """What ``json.loads`` decodes ``raw`` as: bytes in the encoding their first bytes tell, lone surrogates
    passed through (refused later). (Text that starts with a byte-order mark is refused by the decoder.)"""
    return raw.decode(json.detect_encoding(raw), "surrogatepass") if isinstance(raw, bytes) else raw


def strict_decode(raw: bytes | str) -> Any:
    """Any JSON value by the strict rules of :func:`decode`, with the standard library's parser alone (the
    reference the fast path is held to); PayloadError when refused."""
    try:
        value = _decoder.decode(_json_text(raw))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise PayloadError(f"payload is not valid JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")):
        _refuse_lone_surrogates(value)
    return value


def decode_value(raw: bytes | str) -> Any:
    """Any JSON value by the strict rules of :func:`decode`: msgspec's parser first, and whatever it
    refuses again by :func:`strict_decode`, so the outcome is always the strict decoder's."""
    try:
        return _fast_decoder.decode(raw)
    except (msgspec.MsgspecError, UnicodeError, RecursionError):
        return strict_decode(raw)


def decode(raw: bytes | str) -> Payload:
    """Parse a payload read from Redis; raise PayloadError when it is not a JSON job object.

    Only strict JSON passes: NaN, Infinity and numbers beyond a float's range are refused (they could not
    be written back when the job fails), and so are lone surrogates and nesting deeper than the parser's
    recursion limit.
    """
    payload = decode_value(raw)
    if not isinstance(payload, dict):
        raise PayloadError(f"payload is a JSON {type(payload).__name__}, not an object")
    if not isinstance(payload.get("class"), str) or not isinstance(payload.get("args"), list):
        raise PayloadError("payload lacks a string 'class' or a list 'args'")
    return payload


def _refuse_lone_surrogates(value: Any) -> None:
    """Raise PayloadError if a string anywhere in ``value`` holds a lone surrogate (it could not be written back)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _has_lone_surrogate(item):
                raise PayloadError(f"payload holds a lone surrogate in {item!r:.60}, which UTF-8 cannot carry")
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def readable(text: str) -> str:
    """``text`` with any lone surrogate replaced by U+FFFD, so it can be written as UTF-8 (error messages)."""
    return text.encode("utf-8", "replace").decode("utf-8") if _has_lone_surrogate(text) else text


def quarantined(raw: bytes, queue: str, reason: str, now: float) -> Payload:
    """The dead-set entry for bytes that are not a runnable job: the exact bytes (base64 in ``raw_base64``),
    a readable copy (``raw``), the reason, and ``retry: false``. Nothing of the original is lost."""
    return {
        "class": "workerkit.InvalidPayload",
        "args": [],
        "jid": new_jid(),
        "queue": queue,
        "retry": False,
        "created_at": now,
        "failed_at": now,
        "error_class": "workerkit.PayloadError",
        "error_message": readable(reason),
        "raw": raw.decode("utf-8", "replace"),
        "raw_base64": base64.b64encode(raw).decode("ascii"),
    }
