"""Self-validating configuration blocks for policies, backbones and heads.

Every policy reads its hyperparameters from a sub-block of the YAML
`framework:` block (e.g. `framework.tiny`, `framework.action_model`). Each
sub-block is a dataclass deriving from `BlockConfig`:

* `from_block(block)` rejects keys the dataclass does not know, naming the
  closest valid key, so a typo never silently falls back to a default;
* `__post_init__` checks every value and names the YAML path, the value found
  and the allowed range.

Both raise `ConfigError`, which entry points print as one line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from AlphaBrain.utils.errors import ConfigError, did_you_mean

T = TypeVar("T", bound="BlockConfig")
A = TypeVar("A", bound="ActionModelConfig")


def to_plain(value: Any) -> Any:
    """Turn an OmegaConf node (or anything else) into plain Python containers."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a hard dependency of the trainer
        return value
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


@dataclasses.dataclass
class BlockConfig:
    """Base of every framework config block; subclasses set `yaml_path` and check fields."""

    yaml_path: ClassVar[str] = "framework"

    @classmethod
    def from_block(cls: type[T], block: Any) -> T:
        """Build from a YAML mapping (DictConfig, dict or None = all defaults)."""
        block = to_plain(block)
        if block is None:
            block = {}
        if not isinstance(block, Mapping):
            raise ConfigError(
                f"{cls.yaml_path} must be a mapping of keys to values, got {type(block).__name__} "
                f"{block!r}. Valid keys: {', '.join(cls.valid_keys())}."
            )
        valid = cls.valid_keys()
        for key in block:
            if key not in valid:
                raise ConfigError(
                    f'Unknown key "{cls.yaml_path}.{key}".{did_you_mean(str(key), valid)} '
                    f"Valid keys: {', '.join(valid)}."
                )
        return cls(**dict(block))

    @classmethod
    def valid_keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def as_kwargs(self, *names: str) -> dict[str, Any]:
        """The named fields as keyword arguments, for a module whose parameters share their names."""
        return {name: getattr(self, name) for name in names}

    # ---- checks used by subclasses' __post_init__ -------------------------------------------

    def _where(self, name: str) -> str:
        return f"{self.yaml_path}.{name}"

    def require(self, ok: bool, name: str, problem: str) -> None:
        """A check across fields: unless `ok`, ConfigError "<yaml path of name> = <its value> <problem>"."""
        if not ok:
            raise ConfigError(f"{self._where(name)} = {getattr(self, name)!r} {problem}")

    def check_int(self, name: str, low: int, high: int | None = None) -> None:
        value = getattr(self, name)
        upper = "inf" if high is None else str(high)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(
                f"{self._where(name)} = {value!r} is not an integer; expected an integer in [{low}, {upper}]."
            )
        if value < low or (high is not None and value > high):
            raise ConfigError(
                f"{self._where(name)} = {value!r} is out of range; expected an integer in [{low}, {upper}]."
            )

    def check_float(
        self, name: str, low: float, high: float | None = None, *, low_inclusive: bool = True
    ) -> None:
        value = getattr(self, name)
        left = "[" if low_inclusive else "("
        upper = "inf)" if high is None else f"{high}]"
        expected = f"expected a number in {left}{low}, {upper}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{self._where(name)} = {value!r} is not a number; {expected}.")
        too_low = value < low if low_inclusive else value <= low
        if too_low or (high is not None and value > high):
            raise ConfigError(f"{self._where(name)} = {value!r} is out of range; {expected}.")
        setattr(self, name, float(value))

    def check_bool(self, name: str) -> None:
        value = getattr(self, name)
        if not isinstance(value, bool):
            raise ConfigError(f"{self._where(name)} = {value!r} is not a boolean; expected true or false.")

    def check_choice(self, name: str, choices: Sequence[str]) -> None:
        value = getattr(self, name)
        if not isinstance(value, str) or value.lower() not in choices:
            raise ConfigError(
                f"{self._where(name)} = {value!r} is not a valid choice.{did_you_mean(str(value), choices)} "
                f"Valid choices: {', '.join(choices)}."
            )
        setattr(self, name, value.lower())

    def check_int_list(
        self, name: str, low: int, high: int, *, min_len: int = 1, max_len: int = 8
    ) -> None:
        value = getattr(self, name)
        expected = (
            f"expected a list of {min_len} to {max_len} integers, each in [{low}, {high}]"
        )
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise ConfigError(f"{self._where(name)} = {value!r} is not a list; {expected}.")
        if not min_len <= len(value) <= max_len:
            raise ConfigError(f"{self._where(name)} = {list(value)!r} has {len(value)} entries; {expected}.")
        for item in value:
            if isinstance(item, bool) or not isinstance(item, int) or not low <= item <= high:
                raise ConfigError(
                    f"{self._where(name)} = {list(value)!r} contains {item!r}; {expected}."
                )
        setattr(self, name, list(value))


@dataclasses.dataclass
class ActionModelConfig(BlockConfig):
    """Base of every `framework.action_model` block: the chunk length, which every head has.

    `for_horizon(config, horizon)` is the block a policy uses when none is given:
    the defaults with the dataset's chunk length.
    """

    yaml_path: ClassVar[str] = "framework.action_model"

    action_horizon: int = 8

    def __post_init__(self) -> None:
        self.check_int("action_horizon", 1, 256)

    @classmethod
    def for_horizon(cls: type[A], config: A | None, horizon: int) -> A:
        return config if config is not None else cls(action_horizon=horizon)
