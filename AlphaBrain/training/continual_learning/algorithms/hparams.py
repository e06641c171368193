"""Validation of algorithm hyperparameters, with messages that name the YAML key, the value and the range.

An algorithm declares its YAML keys once, in `HYPERPARAMETERS`, each as a
`Param` (its default and the check of this module that validates it); the base
class fills in defaults, rejects undeclared keys and runs every check, so the
constructors of the built-in algorithms hold no validation of their own. The
checks are plain functions too, for a value that is not a declared key.

YAML gives ints where a float is meant (`derpp_alpha: 1`) and strings for typos
(`"0.5"`), and `true` is an int to Python: every check rejects bools and
non-numbers explicitly instead of letting them through as 0/1.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

from AlphaBrain.utils.errors import ConfigError, did_you_mean


def _key(name: str) -> str:
    return f"continual_learning.algorithm.{name}"


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(float(value))


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """An integer >= `minimum` (not a bool, not a float)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{_key(name)} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def check_float(
    name: str, value: Any, minimum: float = 0.0, *, strict: bool = False, maximum: float | None = None, hint: str = ""
) -> float:
    """A finite number >= `minimum` (> `minimum` with `strict`), and <= `maximum` when one is given."""
    ok = _is_number(value) and (float(value) > minimum if strict else float(value) >= minimum)
    ok = ok and (maximum is None or float(value) <= maximum)
    if not ok:
        if maximum is None:
            bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        else:
            bound = f"in {'(' if strict else '['}{minimum:g}, {maximum:g}]"
        raise ConfigError(f"{_key(name)} must be a finite number {bound}, got {value!r}.{hint}")
    return float(value)


def check_ratio(name: str, value: Any, hint: str = "") -> float:
    """A number strictly between 0 and 1 (a fraction that must leave something on both sides)."""
    if not _is_number(value) or not 0.0 < float(value) < 1.0:
        raise ConfigError(f"{_key(name)} must be strictly between 0 and 1, got {value!r}.{hint}")
    return float(value)


def check_bool(name: str, value: Any) -> bool:
    """true or false (not 0/1, not the string "yes")."""
    if not isinstance(value, bool):
        raise ConfigError(f"{_key(name)} must be true or false, got {value!r}.")
    return value


def check_choice(name: str, value: Any, choices: tuple[str, ...] = ()) -> str:
    """One of the strings in `choices` (a mode switch)."""
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{_key(name)} must be one of {', '.join(choices)}, got {value!r}."
                          f"{did_you_mean(value, choices) if isinstance(value, str) else ''}")
    return value


def check_at_most(name: str, value: int, limit_name: str, limit: int, hint: str = "") -> None:
    """A hyperparameter bounded by another one: `value` <= `limit`."""
    if value > limit:
        raise ConfigError(
            f"{_key(name)} = {value!r} exceeds {limit_name} = {limit!r}: it must be <= {limit_name}.{hint}"
        )


def check_not_all_zero(values: Mapping[str, float], hint: str = "") -> None:
    """Weights of which at least one must be > 0 (all 0 would turn the method off)."""
    names = list(values)
    if len(names) >= 2 and not any(values.values()):
        listed = f"{_key(names[0])}{''.join(', ' + n for n in names[1:-1])} and {names[-1]}"
        raise ConfigError(
            f"{listed} are {'both' if len(names) == 2 else 'all'} 0, which turns the method off. "
            f"Set at least one > 0.{hint}"
        )


class Param:
    """A declared hyperparameter: its default and the check (a function of this module) that validates it.

    `check(name, value, **options)` returns the validated value; with `nullable`, YAML null is
    accepted as is (the algorithm gives it a meaning, e.g. "no cap").
    """

    __slots__ = ("default", "check", "nullable", "options")

    def __init__(self, default: Any, check: Callable[..., Any], *, nullable: bool = False, **options: Any):
        self.default, self.check, self.nullable, self.options = default, check, nullable, options

    def validate(self, name: str, value: Any) -> Any:
        if value is None and self.nullable:
            return None
        return self.check(name, value, **self.options)

    def __repr__(self) -> str:
        return f"Param({self.default!r}, {self.check.__name__})"


def defaults(declared: Mapping[str, Any]) -> dict[str, Any]:
    """key -> default of declared hyperparameters (a plain value declares a key with that default and no check)."""
    return {k: spec.default if isinstance(spec, Param) else spec for k, spec in declared.items()}


def with_defaults(algorithm: str, declared: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """`params` over the declared defaults; an undeclared key is an error that names the closest declared one."""
    for key in params:
        if key not in declared:
            valid = sorted(declared)
            raise ConfigError(
                f'Unknown hyperparameter "{_key(key)}" for algorithm "{algorithm}".'
                f"{did_you_mean(key, valid)} Valid keys: {', '.join(valid) or '(none)'}."
            )
    return {**defaults(declared), **params}


def check_hyperparameters(algorithm: str, declared: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared key, from `params` or its default, through its check: the algorithm's `hparams`."""
    values = with_defaults(algorithm, declared, params)
    return {k: spec.validate(k, values[k]) if isinstance(spec, Param) else values[k] for k, spec in declared.items()}
