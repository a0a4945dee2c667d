"""The job payload: a JSON object in Sidekiq 7's format, and strict validation of job arguments.

Arguments must be plain JSON values (str, int, float, bool, None, lists and dicts with str keys).
Anything else raises :class:`TypeError` at the call site, naming the argument's path (``args[1]['when']``),
so a job never carries a value that would not survive the trip through Redis unchanged. No pickle, ever.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from typing import Any

from workerkit.compat import timestamp

Payload = dict[str, Any]

_SCALARS = (str, int, bool, type(None))
_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False)
encode = _encoder.encode
"""Serialize a payload (or any JSON value) compactly."""


class PayloadError(ValueError):
    """A payload read from Redis is not a valid job (bad JSON or missing fields)."""


def new_jid() -> str:
    """A fresh job id: 24 hex characters, like Sidekiq's ``SecureRandom.hex(12)``."""
    return os.urandom(12).hex()


def _check_value(value: Any, path: str) -> None:
    kind = type(value)
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
        if type(value) not in _SCALARS:
            _check_value(value, f"args[{index}]")
    return list(args)


def new_payload(
    class_name: str, args: Sequence[Any], queue: str, retry: bool | int, options: dict[str, Any] | None = None
) -> Payload:
    """Build a new job payload; ``enqueued_at`` is added when the job reaches a queue."""
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
        "created_at": timestamp(time.time()),
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


def decode(raw: bytes | str) -> Payload:
    """Parse a payload read from Redis; raise PayloadError when it is not a JSON job object.

    Only strict JSON passes: NaN, Infinity and numbers beyond a float's range are refused (they could not
    be written back when the job fails), and so is nesting deeper than the parser's recursion limit.
    """
    try:
        payload = json.loads(raw, parse_float=_finite, parse_constant=_not_json)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise PayloadError(f"payload is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise PayloadError(f"payload is a JSON {type(payload).__name__}, not an object")
    if not isinstance(payload.get("class"), str) or not isinstance(payload.get("args"), list):
        raise PayloadError("payload lacks a string 'class' or a list 'args'")
    return payload
