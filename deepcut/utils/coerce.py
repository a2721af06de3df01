"""Checking and coercing setting values: one message style naming the field and what it accepts.

Each function takes the field's ``name`` and a user-given ``value`` and returns the value in its
canonical type, or raises :class:`~deepcut.errors.ConfigError`. Lossless conversions are accepted
(``"3"`` or ``3.0`` for an int, ``"2.5"`` for a float, numpy scalars); anything else — ``2.5`` for an
int, ``True`` for a number, ``"yes"`` for a flag, ``nan`` — is refused.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError


def _fail(name: str, wants: str, value: Any) -> ConfigError:
    return ConfigError(f"{name} must be {wants}, got {value!r}")


def as_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int in ``[minimum, maximum]`` (bounds inclusive, None: unbounded)."""
    if minimum is not None and maximum is not None:
        wants = f"a whole number from {minimum} to {maximum}"
    else:
        wants = "a whole number" + (f" >= {minimum}" if minimum is not None else "") + (
            f" <= {maximum}" if maximum is not None else "")
    if isinstance(value, bool) or value is None:
        raise _fail(name, wants, value)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise _fail(name, wants, value) from None
    if isinstance(value, numbers.Integral):
        out = int(value)
    elif isinstance(value, numbers.Real) and math.isfinite(float(value)) and float(value).is_integer():
        out = int(value)  # type: ignore[call-overload]  # typeshed: Real has no __int__; float, numpy, Fraction do
    else:
        raise _fail(name, wants, value)
    if (minimum is not None and out < minimum) or (maximum is not None and out > maximum):
        raise _fail(name, wants, value)
    return out


def as_float(name: str, value: Any, positive: bool = False) -> float:
    """``value`` as a finite float (``positive``: > 0)."""
    wants = "a finite number" + (" > 0" if positive else "")
    if isinstance(value, bool) or value is None:
        raise _fail(name, wants, value)
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise _fail(name, wants, value) from None
    if not math.isfinite(out) or (positive and out <= 0):
        raise _fail(name, wants, value)
    return out


def as_bool(name: str, value: Any) -> bool:
    """``value`` as a bool: ``True``/``False`` (or numpy's) only."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise _fail(name, "True or False", value)


def as_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices`` (compared by type too, so ``True`` is not ``1``)."""
    for choice in choices:
        if type(value) is type(choice) and value == choice:
            return choice
        if isinstance(choice, int) and not isinstance(value, bool) and isinstance(value, numbers.Integral) \
                and int(value) == choice:
            return choice
    raise _fail(name, f"one of {tuple(choices)}", value)
