"""The API's status phrases are the registry's, as Python's http.HTTPStatus gives them."""

from __future__ import annotations

import sys
from http import HTTPStatus

import pytest

from ztone.service.api.reasons import PHRASES, reason


@pytest.mark.skipif(
    sys.version_info[:2] != (3, 11),
    reason="later Pythons follow RFC 9110's renamings (413 'Content Too Large', ...)",
)
def test_the_table_is_python_3_11s() -> None:
    assert {s.value: s.phrase.encode() for s in HTTPStatus} == PHRASES


def test_every_status_python_knows_has_a_phrase() -> None:
    assert [s.value for s in HTTPStatus if not PHRASES.get(s.value)] == []


@pytest.mark.parametrize(
    ("status", "phrase"),
    [(200, b"OK"), (401, b"Unauthorized"), (404, b"Not Found"), (413, b"Request Entity Too Large"),
     (500, b"Internal Server Error"), (599, b""), (0, b"")],
)  # fmt: skip
def test_reason(status: int, phrase: bytes) -> None:
    assert reason(status) == phrase
