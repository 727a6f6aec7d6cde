"""What the pydantic models of the JSON files and bodies share: error messages.

ztone reads three kinds of JSON with pydantic v2 models: ``local.conf``
(:mod:`ztone.service.config`, strict types), and the controller's network and member
POST bodies (:mod:`ztone.controller.bodies`, zerotier-one's lenient numbers). Both
report a problem the same way, as ``<key path>: <reason>`` where the
reason names the value and what was expected, e.g.
``settings.bind[1]: expected an IP address, got "1.2.3"`` or
``routes[0].target: '10.0.0.0/33': more than 32 bits``.

* :func:`expect` is an annotation that turns any failure of pydantic's own
  validation of a value (type, range, literal choices) into
  ``expected <what>, got <value>``, so a field is declared with pydantic's native
  types and constraints and still says in plain words what it wants.
* :class:`FieldProblem` is the ``ValueError`` a validator raises; its optional ``at``
  names a key below the value being validated (a model validator checking two
  fields, a dict entry), which :func:`problems` appends to the location.
* :func:`problems` turns a ``ValidationError`` into ``(key path, reason)`` pairs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pydantic import ValidationError, ValidationInfo, ValidatorFunctionWrapHandler, WrapValidator


class FieldProblem(ValueError):
    """A validator's refusal: ``str()`` is the reason; ``at`` is the path, relative to
    the value being validated, of the part that is wrong (empty: the value itself)."""

    def __init__(self, reason: str, at: Sequence[int | str] = ()) -> None:
        super().__init__(reason)
        self.at = tuple(at)


def show(value: object) -> str:
    """A value as JSON, shortened to 60 characters, for error messages."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def expect(what: str, shown: Callable[[object], str] = show) -> WrapValidator:
    """An ``Annotated`` marker: if validating the value fails (anywhere in what comes
    before this marker), the reason is ``expected <what>, got <shown(value)>``."""

    def wrap(value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise FieldProblem(f"expected {what}, got {shown(value)}") from None

    return WrapValidator(wrap)


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


def problems(error: ValidationError) -> list[tuple[str, str]]:
    """Every error of ``error`` as ``(key path, reason)``.

    Reasons come from :class:`FieldProblem` (or any ``ValueError``) raised by a
    validator; pydantic's own structural errors (a list or object where something
    else was given, a missing key) are put in the same words. A bad dict key is
    reported at that key with ``invalid key: `` before the reason.
    """
    out: list[tuple[str, str]] = []
    for err in error.errors():
        loc: list[int | str] = list(err["loc"])
        is_key = bool(loc) and loc[-1] == "[key]"
        if is_key:
            loc = loc[:-1]
        cause = (err.get("ctx") or {}).get("error")
        kind = err["type"]
        if isinstance(cause, ValueError):
            reason = str(cause)
            if isinstance(cause, FieldProblem):
                loc += cause.at
        elif kind in ("list_type", "tuple_type"):
            reason = f"expected a JSON array, got {show(err['input'])}"
        elif kind in ("dict_type", "model_type", "model_attributes_type", "dataclass_type"):
            reason = f"expected a JSON object, got {show(err['input'])}"
        elif kind == "too_long":
            reason = f"more than {(err.get('ctx') or {}).get('max_length')} entries"
        elif kind == "missing" and loc:
            reason = f"needs {key_path(loc[-1:])}"
            loc = loc[:-1]
        else:
            reason = err["msg"]
        if is_key:
            reason = f"invalid key: {reason}"
        out.append((key_path(loc), reason))
    return out
