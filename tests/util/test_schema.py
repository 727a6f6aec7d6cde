"""ztone.util.schema: checking JSON against msgspec types, every problem in plain words."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
import pytest

from ztone.util.schema import (
    FieldProblem,
    Invalid,
    before,
    expect,
    key_path,
    parse_with,
    problems,
    show,
    then,
    validate,
)

Small = Annotated[int, msgspec.Meta(ge=0, le=9), expect("a digit")]


def _pair_in_order(value: dict[str, int]) -> dict[str, int]:
    if value.get("lo", 0) > value.get("hi", 0):
        raise FieldProblem("must not exceed hi", at=("lo",))
    return value


def _even(value: Any) -> int:
    if isinstance(value, str) and value.isdigit() and int(value) % 2 == 0:
        return int(value)
    raise ValueError(f"expected an even number as text, got {show(value)}")


class Inner(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    digit: Small
    pair: Annotated[dict[str, int], then(_pair_in_order)] = {}
    try_: list[Annotated[int, parse_with(_even)]] = msgspec.field(default_factory=list, name="try")


class Range(msgspec.Struct, frozen=True):
    lo: int = 0
    hi: int = 0

    def __post_init__(self) -> None:
        if self.lo > self.hi:
            raise FieldProblem(f"must not exceed hi ({self.hi})", at=("lo",))


class Outer(msgspec.Struct, frozen=True):
    items: Annotated[list[Inner], msgspec.Meta(max_length=2)] = []
    by_name: dict[Small, Small] = {}
    mode: Literal["a", "b"] = "a"
    name: str | None = None
    plain: int = 0
    range: Range | None = None
    either: int | str = 0


def reasons(data: Any) -> list[tuple[str, str]]:
    with pytest.raises(Invalid) as info:
        validate(data, Outer)
    assert problems(info.value) == info.value.problems
    return info.value.problems


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
        ({"items": [{"digit": 1, "x": 2}]}, [("items[0].x", "unknown key")]),
        (
            {"items": [{"digit": 1, "pair": {"lo": 3, "hi": 1}}]},
            [("items[0].pair.lo", "must not exceed hi")],
        ),
        (
            {"items": [{"digit": 1, "try": ["2", "3"]}]},
            [("items[0].try[1]", 'expected an even number as text, got "3"')],
        ),
        ({"by_name": {"x": 1}}, [("by_name.x", 'invalid key: expected a digit, got "x"')]),
        ({"by_name": {"1": 1}}, [("by_name.1", 'invalid key: expected a digit, got "1"')]),
        ({"mode": "c"}, [("mode", 'expected one of "a", "b", got "c"')]),
        ({"name": 5}, [("name", "expected a string, got 5")]),
        ({"plain": 1.5}, [("plain", "expected an integer, got 1.5")]),
        ({"plain": "1"}, [("plain", 'expected an integer, got "1"')]),
        ({"range": {"lo": 2, "hi": 1}}, [("range.lo", "must not exceed hi (1)")]),
        ({"range": []}, [("range", "expected a JSON object, got []")]),
        ({"either": []}, [("either", "expected an integer or a string, got []")]),
        (5, [("", "expected a JSON object, got 5")]),
    ],
)
def test_problems(data: Any, expected: list[tuple[str, str]]) -> None:
    assert reasons(data) == expected


def test_every_problem_of_an_object_is_reported_in_input_order() -> None:
    data = {
        "items": [{"digit": -1}, {"digit": "a", "zz": 1}],
        "by_name": {"x": "y"},
        "mode": 3,
        "plain": None,
    }
    assert reasons(data) == [
        ("items[0].digit", "expected a digit, got -1"),
        ("items[1].digit", 'expected a digit, got "a"'),
        ("items[1].zz", "unknown key"),
        ("by_name.x", 'invalid key: expected a digit, got "x"'),
        ("by_name.x", 'expected a digit, got "y"'),
        ("mode", 'expected one of "a", "b", got 3'),
        ("plain", "expected an integer, got null"),
    ]
    with pytest.raises(Invalid) as info:
        validate(data, Outer)
    assert str(info.value).splitlines()[0] == "items[0].digit: expected a digit, got -1"


def test_good_values_pass_through() -> None:
    data = {
        "items": [{"digit": 7, "try": ["4"], "pair": {"lo": 1, "hi": 2}}],
        "by_name": {1: 2},
        "name": None,
        "range": {"lo": 1, "hi": 1},
        "either": "x",
        "unknown at this level": "is ignored",
    }
    assert validate(data, Outer) == Outer(
        items=[Inner(digit=7, pair={"lo": 1, "hi": 2}, try_=[4])],
        by_name={1: 2},
        range=Range(lo=1, hi=1),
        either="x",
    )
    assert validate({}, Outer) == Outer()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"items": [{"digit": "x"}]}, ("items[0].digit", "expected an integer, got a string")),
        ({"items": [{"digit": -1}]}, ("items[0].digit", "expected an integer >= 0")),
        ({"items": [{}]}, ("items[0]", "needs digit")),
        ({"items": [{"digit": 1, "q": 1}]}, ("items[0].q", "unknown key")),
        ({"items": [{"digit": 1}] * 3}, ("items", "more than 2 entries")),
        ({"by_name": {"x": 1}}, ("by_name", "invalid key: expected an integer, got a string")),
        ({"by_name": {1: "x"}}, ('by_name["..."]', "expected an integer, got a string")),
        ({"mode": "c"}, ("mode", "invalid enum value 'c'")),
    ],
)
def test_problems_of_a_msgspec_validation_error(data: Any, expected: tuple[str, str]) -> None:
    with pytest.raises(msgspec.ValidationError) as info:
        msgspec.convert(data, Outer, strict=True)
    assert problems(info.value) == [expected]


def test_problems_of_a_field_problem_and_a_plain_value_error() -> None:
    assert problems(FieldProblem("too big", at=("a", 1))) == [("a[1]", "too big")]
    assert problems(ValueError("bad")) == [("", "bad")]


class Pair(msgspec.Struct):
    a: int = 0


@pytest.mark.parametrize(
    "tp",
    [
        Annotated[int, parse_with(_even)] | str,
        Pair | dict[str, int],
        list[int] | list[str],
        Annotated[Pair, before(dict)] | int,
    ],
)
def test_ambiguous_unions_are_refused_when_first_checked(tp: Any) -> None:
    with pytest.raises(TypeError, match="a union may hold"):
        validate(1, tp)


# --- before: a value's other forms, then every problem inside it ------------------------


def _range_forms(value: Any) -> Any:
    """``"lo-hi"`` is the legacy form of ``{"lo": lo, "hi": hi}``."""
    if isinstance(value, str):
        lo, sep, hi = value.partition("-")
        if not sep:
            raise ValueError(f'expected an object or "lo-hi", got {show(value)}')
        return {"lo": int(lo) if lo.isdigit() else lo, "hi": int(hi) if hi.isdigit() else hi}
    return value


def _digits(value: Any) -> Any:
    """A string of digits is the legacy form of a list of digits."""
    return [int(c) if c.isdigit() else c for c in value] if isinstance(value, str) else value


def _widen(value: Range) -> Range:
    return Range(lo=value.lo - 1, hi=value.hi + 1)


class Legacy(msgspec.Struct, frozen=True):
    range: Annotated[Range, before(_range_forms)] = Range()
    wide: Annotated[Range, before(_range_forms), then(_widen)] = Range()
    maybe: Annotated[Range, before(_range_forms)] | None = None
    named: Annotated[Range, before(_range_forms), expect("a range")] = Range()
    digits: list[Annotated[list[Small], before(_digits)]] = []


def legacy_reasons(data: Any) -> list[tuple[str, str]]:
    with pytest.raises(Invalid) as info:
        validate(data, Legacy)
    return info.value.problems


def test_before_gives_the_form_that_is_then_checked() -> None:
    data = {"range": "1-2", "wide": "1-2", "maybe": "3-4", "digits": [[1, 2], "34"]}
    assert validate(data, Legacy) == Legacy(
        range=Range(lo=1, hi=2),
        wide=Range(lo=0, hi=3),
        maybe=Range(lo=3, hi=4),
        digits=[[1, 2], [3, 4]],
    )
    # The object form passes unchanged; null is None without calling the function.
    assert validate({"range": {"hi": 1}, "maybe": None}, Legacy) == Legacy(range=Range(hi=1))


def test_every_problem_after_before_is_named_at_its_key_path() -> None:
    assert legacy_reasons({"range": "a-b", "digits": ["1x", [-1, 1, 10]]}) == [
        ("range.lo", 'expected an integer, got "a"'),
        ("range.hi", 'expected an integer, got "b"'),
        ("digits[0][1]", 'expected a digit, got "x"'),
        ("digits[1][0]", "expected a digit, got -1"),
        ("digits[1][2]", "expected a digit, got 10"),
    ]
    # A record's own check runs on the prepared value too.
    assert legacy_reasons({"maybe": "4-3"}) == [("maybe.lo", "must not exceed hi (3)")]


def test_a_refusal_of_before_is_the_only_problem_of_its_value() -> None:
    assert legacy_reasons({"range": "12", "wide": "x", "digits": [5]}) == [
        ("range", 'expected an object or "lo-hi", got "12"'),
        ("wide", 'expected an object or "lo-hi", got "x"'),
        ("digits[0]", "expected a JSON array, got 5"),
    ]


def test_an_expect_after_before_covers_both() -> None:
    assert legacy_reasons({"named": "12"}) == [("named", 'expected a range, got "12"')]
    assert legacy_reasons({"named": "a-1"}) == [("named", 'expected a range, got "a-1"')]
