"""ztone.util.schema: the error words shared by the pydantic models of JSON input."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, ValidationError

from ztone.util.schema import FieldProblem, expect, key_path, problems, show

Small = Annotated[int, Strict(), Field(ge=0, le=9), expect("a digit")]


def _pair_in_order(value: dict[str, int]) -> dict[str, int]:
    if value.get("lo", 0) > value.get("hi", 0):
        raise FieldProblem("must not exceed hi", at=("lo",))
    return value


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    digit: Small
    pair: Annotated[dict[str, int], AfterValidator(_pair_in_order)] = Field(default_factory=dict)


class Outer(BaseModel):
    items: list[Inner] = Field(default_factory=list, max_length=2)
    by_name: dict[Small, Small] = Field(default_factory=dict)


def reasons(data: Any) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        Outer.model_validate(data)
    return problems(info.value)


def test_key_path() -> None:
    assert key_path(()) == ""
    assert key_path(("settings", "bind", 1)) == "settings.bind[1]"
    assert key_path(("physical", "10.0.0.0/8", "mtu")) == 'physical["10.0.0.0/8"].mtu'
    assert key_path(("v6AssignMode", "6plane")) == "v6AssignMode.6plane"
    assert key_path(("a b",)) == '["a b"]'


def test_show_shortens_and_survives_non_json() -> None:
    assert show("x") == '"x"'
    assert show(None) == "null"
    assert len(show("y" * 500)) == 60 and show("y" * 500).endswith("...")
    assert show(object()).startswith("<object")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"items": [{"digit": "1"}]}, [("items[0].digit", 'expected a digit, got "1"')]),
        ({"items": [{"digit": 10}]}, [("items[0].digit", "expected a digit, got 10")]),
        ({"items": [{"digit": True}]}, [("items[0].digit", "expected a digit, got true")]),
        ({"items": [{}]}, [("items[0]", "needs digit")]),
        ({"items": {}}, [("items", "expected a JSON array, got {}")]),
        ({"items": [5]}, [("items[0]", "expected a JSON object, got 5")]),
        ({"items": [{"digit": 1}] * 3}, [("items", "more than 2 entries")]),
        (
            {"items": [{"digit": 1, "pair": {"lo": 3, "hi": 1}}]},
            [("items[0].pair.lo", "must not exceed hi")],
        ),
        ({"by_name": {"x": 1}}, [("by_name.x", 'invalid key: expected a digit, got "x"')]),
        (
            {"items": [{"digit": -1}, {"digit": "a"}]},
            [
                ("items[0].digit", "expected a digit, got -1"),
                ("items[1].digit", 'expected a digit, got "a"'),
            ],
        ),
    ],
)
def test_problems(data: Any, expected: list[tuple[str, str]]) -> None:
    assert reasons(data) == expected


def test_expect_passes_good_values_through() -> None:
    assert Outer.model_validate({"items": [{"digit": 7}], "by_name": {1: 2}}) == Outer(
        items=[Inner(digit=7)], by_name={1: 2}
    )
