"""strict_json: only JSON that writes back and reads again is accepted."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from ztone.service import strict_json
from ztone.service.strict_json import JsonError, loads, nesting_depth


@pytest.mark.parametrize(
    "text",
    [
        b"{}",
        b"[]",
        b"0",
        b'"x"',
        b'{"a": [1, 2.5, -0.0, 1e308, true, null, "\\u00e9\\ud83d\\ude00"]}',
        '{"é": "ü"}'.encode(),
        b'{"a": "[[[[{{{{"}',  # brackets inside strings do not nest
        b'["\\"]]]]"]',
        b"[" * 64 + b"]" * 64,
    ],
)
def test_accepted_values_survive_a_write_and_a_read(text: bytes) -> None:
    value = loads(text)
    assert value == json.loads(text)
    written = json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    assert loads(written) == value


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b'{"mtu": 1e999}', "number out of range at mtu"),
        (b'{"a": [0, -1e400]}', "number out of range at a[1]"),
        (b"NaN", "NaN"),
        (b"[Infinity]", "Infinity"),
        (b'{"a": {"b": "\\ud800"}}', "surrogate at a.b"),
        (b'{"\\udfff": 1}', "key with an unpaired"),
        (b"\xff", "not UTF-8"),
        (b"{not json", "line 1 column 2"),
        (b"[" * 65 + b"]" * 65, "64 levels"),
        (b"[[]," * 64 + b"1" + b"]" * 64, "64 levels"),
        (b"[" * 1_000_000, "64 levels"),
        (b'{"a":' * 100_000, "64 levels"),
        (b'"\\' * 100_000, "Unterminated string"),
        (b"1" * 5000, "digits"),
        (b"", "Expecting value"),
    ],
    ids=lambda v: repr(v[:16]) if isinstance(v, bytes) else str(v),
)
def test_refused(text: bytes, reason: str) -> None:
    with pytest.raises(JsonError) as info:
        loads(text)
    assert reason in str(info.value)


def test_max_depth_is_a_parameter() -> None:
    assert loads(b"[[1]]", max_depth=2) == [[1]]
    with pytest.raises(JsonError):
        loads(b"[[[1]]]", max_depth=2)


def _tree(rng: random.Random, depth: int) -> Any:
    if depth == 0 or rng.random() < 0.02:
        return rng.choice([1, "s]", "{", 2.5, None])
    # Mostly one child, so trees stay small however deep they go.
    width = 2 if rng.random() < 0.02 else 1
    if rng.random() < 0.5:
        return [_tree(rng, depth - 1) for _ in range(width)]
    return {f"k{i}[": _tree(rng, depth - 1) for i in range(width)}


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


def test_depth_check_agrees_with_the_parsed_depth() -> None:
    rng = random.Random(11)
    for _ in range(1000):
        value = _tree(rng, rng.randrange(1, 80))
        text = json.dumps(value).encode()
        limit = rng.randrange(1, 70)
        assert nesting_depth(text) == _depth(value)
        assert strict_json._deeper_than(text, limit) == (_depth(value) > limit)
