"""Validation of algorithm hyperparameters, with messages that name the YAML key, the value and the range.

YAML gives ints where a float is meant (`derpp_alpha: 1`) and strings for typos
(`"0.5"`), and `true` is an int to Python: every check rejects bools and
non-numbers explicitly instead of letting them through as 0/1.
"""

from __future__ import annotations

import math
from typing import Any

from AlphaBrain.utils.errors import ConfigError


def _key(name: str) -> str:
    return f"continual_learning.algorithm.{name}"


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """An integer >= `minimum` (not a bool, not a float)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{_key(name)} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def check_float(name: str, value: Any, minimum: float = 0.0, *, strict: bool = False, hint: str = "") -> float:
    """A finite number >= `minimum` (> `minimum` with `strict`)."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(float(value))
    if ok:
        ok = float(value) > minimum if strict else float(value) >= minimum
    if not ok:
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise ConfigError(f"{_key(name)} must be a finite number {bound}, got {value!r}.{hint}")
    return float(value)
