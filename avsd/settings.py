"""One way to declare a configuration field, and the one check of its bounds.

Every ``[section]`` of the config file is a frozen dataclass owned by the component it configures. Its fields
are declared with :func:`setting`, which puts the help line and the bounds in the field's ``metadata``::

    ping_timeout_s: float = setting(30.0, "no ping answer within this -> reconnect", gt=0.0, max=300.0)
    backoff_s: tuple[float, ...] = setting(TABLE, "reconnect back-off table, seconds", min=0.0, min_items=1)

``avsd.config`` reads the metadata to validate a file (:func:`check_bounds`) and to write the documented
defaults (:func:`describe`), so a bound is declared once, next to the field, and cannot drift from the docs.

Rules that hold for every field, declared or not: a number is finite (TOML accepts ``nan`` and ``inf``, and
``nan`` compares false with every bound, so it would pass any range check); for a list the bounds apply to each
item. This module imports nothing from avsd, so any module may use it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping
from typing import Any

__all__ = ["BoundError", "check_bounds", "describe", "setting"]


class BoundError(ValueError):
    """A value is outside what its field allows (``avsd.config`` turns it into a ConfigError naming the key)."""


def setting(
    default: Any,
    help: str,
    *,
    min: float | None = None,
    max: float | None = None,
    gt: float | None = None,
    choices: Collection[Any] | None = None,
    min_items: int | None = None,
    secret: bool = False,
) -> Any:
    """A dataclass field with its help line and bounds (see the module docstring).

    ``min``/``max`` are inclusive, ``gt`` exclusive (a timeout of 0 makes no sense: ``gt=0.0``); on a list
    they bound every item and ``min_items`` its length. ``secret`` fields are written empty in the defaults.
    """
    meta: dict[str, Any] = {"help": help}
    for key, value in (("min", min), ("max", max), ("gt", gt), ("min_items", min_items)):
        if value is not None:
            meta[key] = value
    if choices is not None:
        meta["choices"] = tuple(choices)
    if secret:
        meta["secret"] = True
    if isinstance(default, list | dict | set):
        raise TypeError("use a tuple (immutable) as a setting's default")
    return dataclasses.field(default=default, metadata=meta)


def check_bounds(value: Any, meta: Mapping[str, Any]) -> None:
    """BoundError (one sentence, without the key) if ``value`` breaks the field's bounds or is not finite."""
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        allowed = ", ".join(str(getattr(c, "value", c)) for c in choices)
        raise BoundError(f"{value!r} is not allowed; choose one of: {allowed}")
    items = value if isinstance(value, tuple) else (value,)
    min_items = meta.get("min_items")
    if isinstance(value, tuple) and min_items is not None and len(value) < min_items:
        raise BoundError(f"needs at least {min_items} item(s), got {len(value)}")
    low, high, above = meta.get("min"), meta.get("max"), meta.get("gt")
    for item in items:
        if not isinstance(item, int | float) or isinstance(item, bool):
            continue
        if isinstance(item, float) and not math.isfinite(item):
            raise BoundError(f"{item} is not a finite number")
        if above is not None and not item > above:
            raise BoundError(f"{item} must be greater than {above}" + _range(meta))
        if low is not None and item < low:
            raise BoundError(f"{item} is below the minimum {low}" + _range(meta))
        if high is not None and item > high:
            raise BoundError(f"{item} is above the maximum {high}" + _range(meta))


def _range(meta: Mapping[str, Any]) -> str:
    text = _bounds_text(meta)
    return f" (allowed {text})" if text else ""


def _bounds_text(meta: Mapping[str, Any]) -> str:
    low, high, above = meta.get("min"), meta.get("max"), meta.get("gt")
    if above is not None:
        return f"> {above}" + (f" and <= {high}" if high is not None else "")
    if low is not None and high is not None:
        return f"{low}..{high}"
    if low is not None:
        return f">= {low}"
    return f"<= {high}" if high is not None else ""


def describe(meta: Mapping[str, Any]) -> str:
    """The comment line for a field in the documented defaults: help; allowed values; range; list length."""
    parts = [str(meta.get("help", "")).strip()]
    choices = meta.get("choices")
    if choices is not None:
        parts.append("one of: " + ", ".join(str(getattr(c, "value", c)) for c in choices))
    bounds = _bounds_text(meta)
    if bounds:
        parts.append(("range " if ".." in bounds else "") + bounds)
    if meta.get("min_items"):
        parts.append(f"at least {meta['min_items']} item(s)")
    return "; ".join(p for p in parts if p)
