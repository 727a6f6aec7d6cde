"""The pydantic form of :func:`ztone.util.schema.expect`, for the models not yet moved
to msgspec (removed with the last of them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError, ValidationInfo, ValidatorFunctionWrapHandler, WrapValidator

from ztone.util.schema import FieldProblem, show


def expect(what: str, shown: Callable[[object], str] = show) -> WrapValidator:
    """An ``Annotated`` marker: if pydantic's validation of the value fails (anywhere in
    what comes before this marker), the reason is ``expected <what>, got <shown(value)>``."""

    def wrap(value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise FieldProblem(f"expected {what}, got {shown(value)}") from None

    return WrapValidator(wrap)
