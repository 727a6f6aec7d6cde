"""JSON text the daemon accepts only if it could write the same value back and read it again.

Python's :func:`json.loads` accepts values that its own :func:`json.dumps` then turns
into text no strict reader takes (``1e999`` becomes ``inf``, written ``Infinity``), or
that cannot be encoded as UTF-8 at all (``"\\ud800"``, a lone surrogate), and it
recurses once per nesting level (a deep enough body raises ``RecursionError``).
:func:`loads` refuses all of these with a :class:`JsonError` naming where the problem
is, so everything that passes can be stored (``local.conf``, controller records,
``/status`` answers) and read back unchanged:

* the text is UTF-8 and valid JSON (RFC 8259); ``NaN``/``Infinity`` literals are refused;
* every number is finite (an overflowing exponent is refused, not made infinite);
* every string and object key is valid Unicode (no unpaired surrogate escapes);
* arrays and objects nest at most :data:`MAX_DEPTH` levels (zerotier-one's deepest
  documents, bonding policies and controller rules, use 5).

The depth is measured before parsing, on the text with its strings removed, so a
deep document costs one linear scan and never reaches the recursive parser.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

MAX_DEPTH = 64

# A string, or an unclosed one up to the end (so no quote is ever scanned twice).
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SAME_BRACKETS = bytes.maketrans(b"[]{}", b"()()")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class JsonError(ValueError):
    """Text refused by :func:`loads`; ``str()`` says what and where (``at settings.mtu``)."""


def _reject_constant(name: str) -> Any:
    raise JsonError(f"{name} is not a JSON number")


def nesting_depth(data: bytes) -> int:
    """The deepest array/object nesting in JSON text (strings do not count)."""
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", data))
    if not brackets:
        return 0
    return max(accumulate(_STEP[b] for b in brackets))


def _deeper_than(data: bytes, limit: int) -> bool:
    """Whether ``data`` nests more than ``limit`` levels (cheap: C-speed passes only).

    Each pass deletes the innermost ``[]``/``{}`` pairs; what survives ``limit``
    passes is either deeper than ``limit`` or unbalanced (then the exact count decides,
    and the JSON parser reports the syntax error).
    """
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", data)).translate(_SAME_BRACKETS)
    for done in range(limit):
        if b"(" * (limit - done + 1) in brackets:  # a run of openers alone is too deep
            return True
        shorter = brackets.replace(b"()", b"")
        if len(shorter) == len(brackets):  # no pair left (or none at all)
            return False
        brackets = shorter
    # A pair left means deeper than ``limit``. Without one the text is unbalanced:
    # invalid JSON, which the parser reports (its recursion guard covers runs of openers).
    return b"()" in brackets


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON text under the rules of the module docstring; :class:`JsonError` if not."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise JsonError(f"not UTF-8 text (byte {e.start})") from None
    if _deeper_than(raw, max_depth):
        raise JsonError(f"nested more than the {max_depth} levels allowed")
    overflowed: list[str] = []

    def parse_float(number: str) -> float:
        value = float(number)
        if not math.isfinite(value):
            overflowed.append(number)  # located (and refused) by check_value
        return value

    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=parse_float)
    except json.JSONDecodeError as e:
        raise JsonError(f"{e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:  # not reached below max_depth; kept as a last guard
        raise JsonError("nested too deeply") from None
    except JsonError:
        raise
    except ValueError as e:  # e.g. an integer with more digits than Python converts
        raise JsonError(str(e)) from None
    # Without either, no number is infinite and no string holds a surrogate.
    if overflowed or _SURROGATE_ESCAPE.search(raw):
        check_value(value)
    return value


def check_value(value: Any) -> None:
    """:class:`JsonError` if ``value`` holds a non-finite number or an unpaired surrogate.

    Iterative (no recursion), so it copes with any depth :func:`json.loads` produced;
    the path to a bad value is worked out only once one was found.
    """
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if any(_SURROGATE.search(k) for k in item):
                break
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                break
        elif isinstance(item, str) and _SURROGATE.search(item):
            break
    else:
        return
    raise JsonError(_problem(value))


def _problem(value: Any) -> str:
    """What :func:`check_value` found, and where."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, where = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return f"number out of range{_at(where)}"
        if isinstance(item, str) and _SURROGATE.search(item):
            return f"string with an unpaired UTF-16 surrogate{_at(where)}"
        if isinstance(item, dict):
            for key, member in item.items():
                if _SURROGATE.search(key):
                    return f"key with an unpaired UTF-16 surrogate{_at(where)}"
                stack.append((member, (*where, key)))
        elif isinstance(item, list):
            stack.extend((member, (*where, i)) for i, member in enumerate(item))
    return "invalid value"


def _at(where: tuple[str | int, ...]) -> str:
    if not where:
        return ""
    path = ""
    for part in where:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return f" at {path}"
