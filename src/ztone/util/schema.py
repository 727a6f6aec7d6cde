"""Checking JSON input against msgspec types, with every problem named in plain words.

ztone reads ``local.conf`` (:mod:`ztone.service.config`), the no-root front-end
settings (:mod:`ztone.service.userspace_conf`) and the API's POST bodies against
types declared with msgspec: ``msgspec.Struct`` records (a field's JSON spelling in
``msgspec.field(name=...)``), ``Annotated`` types with ``msgspec.Meta`` constraints,
``list``, ``dict``, ``Literal``, ``X | None``. A problem is reported as
``<key path>: <reason>`` where the reason names the value and what was expected, e.g.
``settings.bind[1]: expected an IP address, got "1.2.3"`` or
``physical["10.0.0.0/33"]: invalid key: expected an IP network "ip/bits", got "..."``.

msgspec's own ``convert`` stops at the first error and names a dict entry only as
``[...]``; :func:`validate` therefore walks the type itself (records, lists, dicts),
hands each leaf value to ``msgspec.convert(value, type, strict=True)`` (so a string is
never an integer and ``1`` never ``true``), and collects *all* problems of the object
before it raises :class:`Invalid`. Markers in ``Annotated`` add what msgspec has not:

* :func:`expect` ``("an integer from 0 to 65535")``: any failure of what comes before
  it in the ``Annotated`` becomes one ``expected <what>, got <value>``.
* :func:`parse_with` ``(fn)``: ``fn(value)`` parses the JSON value instead of msgspec
  (an address, a network); a ``ValueError`` is the reason.
* :func:`then` ``(fn)``: ``fn(checked value)`` checks (or changes) the value after
  the type did; a ``ValueError`` is the reason.
* :func:`before` ``(fn)``: ``fn(json value)`` runs first and gives the value that what
  comes before it in the ``Annotated`` then checks (a legacy string form turned into
  its object form, say); unlike :func:`parse_with`, every problem of that check is
  named, each at its own key path. A ``ValueError`` of ``fn`` is the reason.

Each marker wraps what comes before it in the ``Annotated``:
``Annotated[Mode, before(forms), then(fix)]`` runs ``forms``, checks ``Mode``, then
runs ``fix``; an :func:`expect` placed after a :func:`before` also covers its refusal.

A record's ``__post_init__`` may check several fields together; it raises
:class:`FieldProblem`, whose optional ``at`` names the key below the record that is
wrong. Unknown keys of a record are ignored, or, for a record declared with
``forbid_unknown_fields=True``, each is a problem (``unknown key``).

:func:`problems` turns what any of these raise (:class:`Invalid`, :class:`FieldProblem`,
or a ``msgspec.ValidationError`` whose message ends ``- at `$.a.b[1]```) into
``(key path, reason)`` pairs.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar, Union

import msgspec

T = TypeVar("T")

Path = tuple[int | str, ...]
Problems = list[tuple[Path, str]]
Checker = Callable[[Any, Path, Problems], Any]


class FieldProblem(ValueError):
    """A validator's refusal: ``str()`` is the reason; ``at`` is the path, relative to
    the value being validated, of the part that is wrong (empty: the value itself)."""

    def __init__(self, reason: str, at: Sequence[int | str] = ()) -> None:
        super().__init__(reason)
        self.at = tuple(at)


class Invalid(ValueError):
    """:func:`validate`'s refusal: ``problems`` holds every ``(key path, reason)``
    found, in the order of the input; ``str()`` is one ``path: reason`` a line."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"{k}: {r}" if k else r for k, r in problems))


def show(value: object) -> str:
    """A value as JSON, shortened to 60 characters, for error messages."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def key_path(loc: Iterable[int | str]) -> str:
    """``("settings", "bind", 1)`` -> ``settings.bind[1]``; a key that is not plain
    letters, digits, ``_`` or ``-`` is quoted: ``physical["10.0.0.0/8"]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out


# --- markers ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expect:
    """See :func:`expect`."""

    what: str
    shown: Callable[[object], str] = show


@dataclass(frozen=True, slots=True)
class ParseWith:
    """See :func:`parse_with`."""

    parse: Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Then:
    """See :func:`then`."""

    check: Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Before:
    """See :func:`before`."""

    prepare: Callable[[Any], Any]


def expect(what: str, shown: Callable[[object], str] = show) -> Expect:
    """An ``Annotated`` marker: if checking the value fails (anywhere in what comes
    before this marker), the reason is ``expected <what>, got <shown(value)>``."""
    return Expect(what, shown)


def parse_with(parse: Callable[[Any], Any]) -> ParseWith:
    """An ``Annotated`` marker: ``parse(json value)`` gives the field's value; its
    ``ValueError`` (or :class:`FieldProblem`) is the problem. Replaces msgspec's check."""
    return ParseWith(parse)


def then(check: Callable[[Any], Any]) -> Then:
    """An ``Annotated`` marker: ``check(value)`` runs on the value checked so far and
    returns it (or a replacement); its ``ValueError`` is the problem."""
    return Then(check)


def before(prepare: Callable[[Any], Any]) -> Before:
    """An ``Annotated`` marker: ``prepare(json value)`` runs first and its result is
    checked by what comes before this marker (every problem inside it named at its
    key path); its ``ValueError`` (or :class:`FieldProblem`) is the problem instead.

    For a JSON value with more than one form, e.g. a record that may also be written
    as a legacy string: ``Annotated[Mode, before(object_form)]``. In a union ``X | None``
    a null is None without ``prepare``; beside other members it is refused (the member
    is chosen by the JSON type, which ``prepare`` may change)."""
    return Before(prepare)


# --- validation -----------------------------------------------------------------------


class _Bad:
    """The result of a check that failed (its problems are in the list)."""


_BAD: Any = _Bad()

_KINDS = {
    "int": "an integer",
    "str": "a string",
    "bool": "true or false",
    "float": "a number",
    "array": "a JSON array",
    "object": "a JSON object",
    "null": "null",
}
_MSGSPEC_EXPECTED = re.compile(r"Expected `([^`]+)`(?:, got `\w+`| (.*))?$", re.S)


def _kind(msgspec_type: str) -> str:
    """msgspec's ``int | str`` -> ``an integer or a string``."""
    return " or ".join(_KINDS.get(t, f"a {t}") for t in msgspec_type.split(" | "))


def _leaf_reason(message: str, value: object) -> str:
    """msgspec's ``Expected `int` >= 0`` -> ``expected an integer >= 0, got -1``."""
    m = _MSGSPEC_EXPECTED.match(message)
    if m is None:
        return message[:1].lower() + message[1:]
    return f"expected {_kind(m[1])}{' ' + m[2] if m[2] else ''}, got {show(value)}"


def _split_annotated(tp: Any) -> tuple[Any, tuple[Any, ...]]:
    if typing.get_origin(tp) is Annotated:
        return tp.__origin__, tuple(tp.__metadata__)
    return tp, ()


def _length_check(metas: Sequence[msgspec.Meta], inner: Checker) -> Checker:
    """``Meta(min_length=, max_length=)`` of a list or dict, checked before its entries."""
    lo = max((m.min_length for m in metas if m.min_length is not None), default=None)
    hi = min((m.max_length for m in metas if m.max_length is not None), default=None)
    if lo is None and hi is None:
        return inner

    def check(value: Any, path: Path, out: Problems) -> Any:
        if isinstance(value, (list, dict)):
            if hi is not None and len(value) > hi:
                out.append((path, f"more than {hi} entries"))
                return _BAD
            if lo is not None and len(value) < lo:
                out.append((path, f"fewer than {lo} entries"))
                return _BAD
        return inner(value, path, out)

    return check


def _list_checker(item_type: Any) -> Checker:
    item: Checker | None = None

    def check(value: Any, path: Path, out: Problems) -> Any:
        nonlocal item
        if not isinstance(value, list):
            out.append((path, f"expected a JSON array, got {show(value)}"))
            return _BAD
        if item is None:
            item = checker(item_type)
        result = [item(v, (*path, i), out) for i, v in enumerate(value)]
        return _BAD if any(v is _BAD for v in result) else result

    return check


def _dict_checker(key_type: Any, value_type: Any) -> Checker:
    parts: tuple[Checker, Checker] | None = None

    def check(value: Any, path: Path, out: Problems) -> Any:
        nonlocal parts
        if not isinstance(value, dict):
            out.append((path, f"expected a JSON object, got {show(value)}"))
            return _BAD
        if parts is None:
            parts = (checker(key_type), checker(value_type))
        key_check, value_check = parts
        result: dict[Any, Any] = {}
        bad = False
        for k, v in value.items():
            at = (*path, k if isinstance(k, (str, int)) else str(k))
            key_problems: Problems = []
            key = key_check(k, at, key_problems)
            out.extend((p, f"invalid key: {r}") for p, r in key_problems)
            checked = value_check(v, at, out)
            if key is _BAD or checked is _BAD:
                bad = True
            else:
                result[key] = checked
        return _BAD if bad else result

    return check


def _struct_checker(struct: type[msgspec.Struct]) -> Checker:
    layout: tuple[list[tuple[str, str, Checker, bool]], frozenset[str]] | None = None
    forbid = bool(struct.__struct_config__.forbid_unknown_fields)

    def check(value: Any, path: Path, out: Problems) -> Any:
        nonlocal layout
        if not isinstance(value, dict):
            out.append((path, f"expected a JSON object, got {show(value)}"))
            return _BAD
        if layout is None:
            fields = msgspec.structs.fields(struct)
            layout = (
                [(f.name, f.encode_name, checker(f.type), f.required) for f in fields],
                frozenset(f.encode_name for f in fields),
            )
        field_checks, names = layout
        kwargs: dict[str, Any] = {}
        bad = False
        for name, json_name, check_field, required in field_checks:
            if json_name in value:
                checked = check_field(value[json_name], (*path, json_name), out)
                if checked is _BAD:
                    bad = True
                else:
                    kwargs[name] = checked
            elif required:
                out.append((path, f"needs {key_path((json_name,))}"))
                bad = True
        if forbid:
            for k in value:
                if k not in names:
                    out.append(((*path, str(k)), "unknown key"))
                    bad = True
        if bad:
            return _BAD
        try:
            return struct(**kwargs)
        except FieldProblem as e:
            out.append(((*path, *e.at), str(e)))
        except (ValueError, TypeError) as e:
            out.append((path, str(e)))
        return _BAD

    return check


def _leaf_checker(tp: Any, metas: tuple[msgspec.Meta, ...]) -> Checker:
    target = Annotated[(tp, *metas)] if metas else tp
    literal = typing.get_args(tp) if typing.get_origin(tp) is Literal else None
    convert = msgspec.convert

    def check(value: Any, path: Path, out: Problems) -> Any:
        try:
            return convert(value, target, strict=True)
        except msgspec.ValidationError as e:
            if literal is not None:
                choices = ", ".join(show(c) for c in literal)
                out.append((path, f"expected one of {choices}, got {show(value)}"))
            else:
                out.append((path, _leaf_reason(str(e).partition(" - at `")[0], value)))
            return _BAD

    return check


def _union_checker(members: tuple[Any, ...]) -> Checker:
    """``X | None`` and unions of plain JSON types; a dict goes to the member that is a
    record or dict, a list to the list member, anything else to the leaf members."""
    allows_none = type(None) in members
    others = [m for m in members if m is not type(None)]
    if len(others) == 1:
        inner = checker(others[0])

        def optional(value: Any, path: Path, out: Problems) -> Any:
            return None if value is None and allows_none else inner(value, path, out)

        return optional

    def shape(member: Any) -> str:
        base, metadata = _split_annotated(member)
        if any(isinstance(m, ParseWith | Before) for m in metadata):
            raise TypeError(
                f"a union may hold a parse_with or before type only beside None: {members}"
            )
        origin = typing.get_origin(base) or base
        if isinstance(origin, type) and issubclass(origin, (msgspec.Struct, dict)):
            return "object"
        if origin is list:
            return "array"
        return "leaf"

    shapes = [shape(m) for m in others]
    by_shape = dict(zip(shapes, others, strict=True))
    if shapes.count("object") > 1 or shapes.count("array") > 1:
        raise TypeError(f"a union may hold one object type and one array type: {members}")
    leaves = tuple(m for m, k in zip(others, shapes, strict=True) if k == "leaf")
    leaf = _leaf_checker(Union[leaves], ()) if leaves else None  # noqa: UP007
    nested = {k: checker(m) for k, m in by_shape.items() if k != "leaf"}

    def check(value: Any, path: Path, out: Problems) -> Any:
        if value is None and allows_none:
            return None
        kind = "object" if isinstance(value, dict) else "array" if isinstance(value, list) else ""
        if kind in nested:
            return nested[kind](value, path, out)
        if leaf is not None:
            return leaf(value, path, out)
        wanted = " or ".join(_KINDS[k] for k in nested)
        out.append((path, f"expected {wanted}, got {show(value)}"))
        return _BAD

    return check


def _with_markers(base: Checker, markers: tuple[Any, ...]) -> Checker:
    check = base
    for marker in markers:
        if isinstance(marker, Expect):
            check = _expecting(check, marker)
        elif isinstance(marker, Then):
            check = _then(check, marker.check)
        elif isinstance(marker, Before):
            check = _before(check, marker.prepare)
    return check


def _expecting(inner: Checker, marker: Expect) -> Checker:
    reason_of = f"expected {marker.what}, got "
    shown = marker.shown

    def check(value: Any, path: Path, out: Problems) -> Any:
        mine: Problems = []
        result = inner(value, path, mine)
        if mine:
            out.append((path, reason_of + shown(value)))
            return _BAD
        return result

    return check


def _then(inner: Checker, fn: Callable[[Any], Any]) -> Checker:
    def check(value: Any, path: Path, out: Problems) -> Any:
        result = inner(value, path, out)
        if result is _BAD:
            return _BAD
        return _call(fn, result, path, out)

    return check


def _before(inner: Checker, fn: Callable[[Any], Any]) -> Checker:
    def check(value: Any, path: Path, out: Problems) -> Any:
        prepared = _call(fn, value, path, out)
        if prepared is _BAD:
            return _BAD
        return inner(prepared, path, out)

    return check


def _call(fn: Callable[[Any], Any], value: Any, path: Path, out: Problems) -> Any:
    try:
        return fn(value)
    except FieldProblem as e:
        out.append(((*path, *e.at), str(e)))
    except ValueError as e:
        out.append((path, str(e)))
    return _BAD


def _build(tp: Any) -> Checker:
    base, metadata = _split_annotated(tp)
    metas = tuple(m for m in metadata if isinstance(m, msgspec.Meta))
    parsers = [m for m in metadata if isinstance(m, ParseWith)]
    origin = typing.get_origin(base)
    args = typing.get_args(base)
    check: Checker
    if parsers:
        parse = parsers[-1].parse

        def check(value: Any, path: Path, out: Problems) -> Any:
            return _call(parse, value, path, out)

        after = metadata[metadata.index(parsers[-1]) + 1 :]
        return _with_markers(check, after)
    if isinstance(base, type) and issubclass(base, msgspec.Struct):
        check = _struct_checker(base)
    elif origin is list or base is list:
        check = _length_check(metas, _list_checker(args[0] if args else Any))
    elif origin is dict or base is dict:
        key_type, value_type = args if args else (str, Any)
        check = _length_check(metas, _dict_checker(key_type, value_type))
    elif origin is Union or origin is types.UnionType:
        check = _union_checker(args)
    else:
        check = _leaf_checker(base, metas)
    return _with_markers(check, metadata)


_CHECKERS: dict[Any, Checker] = {}


def checker(tp: Any) -> Checker:
    """The (cached) check of values of type ``tp``: ``check(value, path, problems)``
    returns the converted value, or appends ``(path, reason)`` pairs to ``problems``
    and returns a failure marker."""
    try:
        return _CHECKERS[tp]
    except KeyError:
        pass
    except TypeError:  # an unhashable type (a marker holding a list, say)
        return _build(tp)
    built = _build(tp)
    _CHECKERS[tp] = built
    return built


def validate(data: Any, tp: type[T]) -> T:
    """``data`` (parsed JSON) as a value of ``tp``; :class:`Invalid` listing every
    problem otherwise."""
    out: Problems = []
    result = checker(tp)(data, (), out)
    if out or result is _BAD:
        raise Invalid([(key_path(p), r) for p, r in out] or [("", "invalid")])
    return typing.cast("T", result)


# --- reporting --------------------------------------------------------------------------

_MSGSPEC_AT = re.compile(r"^(?P<reason>.*) - at (?:`key` in )?`\$(?P<path>[^`]*)`$", re.S)
_MSGSPEC_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\[\.\.\.\]")


def _msgspec_problem(error: msgspec.ValidationError) -> tuple[str, str]:
    text = str(error)
    m = _MSGSPEC_AT.match(text)
    if m is None:
        return ("", _leaf_reason_without_value(text))
    loc: list[int | str] = []
    for part in _MSGSPEC_PART.finditer(m["path"]):
        if part[1] is not None:
            loc.append(part[1])
        elif part[2] is not None:
            loc.append(int(part[2]))
        else:
            loc.append("...")
    reason = m["reason"]
    if "`key` in `$" in text:
        reason = "invalid key: " + _leaf_reason_without_value(reason)
    elif missing := re.fullmatch(r"Object missing required field `(.*)`", reason):
        reason = f"needs {key_path((missing[1],))}"
    elif unknown := re.fullmatch(r"Object contains unknown field `(.*)`", reason):
        loc.append(unknown[1])
        reason = "unknown key"
    elif longer := re.fullmatch(r"Expected `(?:array|object)` of length <= (\d+)", reason):
        reason = f"more than {longer[1]} entries"
    else:
        reason = _leaf_reason_without_value(reason)
    return (key_path(loc), reason)


def _leaf_reason_without_value(message: str) -> str:
    m = _MSGSPEC_EXPECTED.match(message)
    if m is None:
        return message[:1].lower() + message[1:]
    got = re.search(r", got `(\w+)`$", message)
    tail = f" {m[2]}" if m[2] else ""
    return f"expected {_kind(m[1])}{tail}" + (f", got {_kind(got[1])}" if got else "")


def problems(error: BaseException) -> list[tuple[str, str]]:
    """Every problem of ``error`` as ``(key path, reason)``.

    ``error`` is :class:`Invalid` (all its problems), a :class:`FieldProblem` (at its
    ``at``), a ``msgspec.ValidationError`` (msgspec reports one problem; its words are
    put as ours are: ``Expected `int`, got `str` - at `$.a[1]``` ->
    ``("a[1]", "expected an integer, got a string")``), or any other ``ValueError``
    (its text, for the whole value).
    """
    if isinstance(error, Invalid):
        return list(error.problems)
    if isinstance(error, FieldProblem):
        return [(key_path(error.at), str(error))]
    if isinstance(error, msgspec.ValidationError):
        return [_msgspec_problem(error)]
    return [("", str(error))]
