"""The one registry of VLA frameworks, and `build_framework`.

A framework registers itself with a decorator in its own module:

    @register_framework("QwenGR00T", aliases=("qwengr00t",))
    class QwenGR00T(BaseVLAPolicy):
        @classmethod
        def from_config(cls, cfg, data_spec): ...

Names and aliases match case-insensitively ("TinyVLA", "tinyvla", "tiny").

The large frameworks import heavy libraries (transformers, peft), so their
modules are *not* imported with `AlphaBrain.model`: `_LAZY_FRAMEWORKS` maps
each name to its module, which `build_framework` imports only when that name
is asked for. Dropping in a new large framework = writing its module with the
decorator and adding one line to `_LAZY_FRAMEWORKS` (and its aliases to
`_LAZY_ALIASES`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Callable, Iterable, TypeVar

from AlphaBrain.utils.errors import ConfigError, UserError, unknown_name

if TYPE_CHECKING:  # pragma: no cover
    from AlphaBrain.dataloader.spec import DataSpec
    from AlphaBrain.model.framework.base import BaseVLAPolicy

#: canonical name -> framework class (only frameworks whose module has been imported).
FRAMEWORK_REGISTRY: dict[str, type] = {}

#: lowercased name or alias -> canonical name.
_ALIASES: dict[str, str] = {}

#: canonical name -> module that registers it when imported (heavy dependencies, imported on demand).
_LAZY_FRAMEWORKS: dict[str, str] = {
    "QwenGR00T": "AlphaBrain.model.framework.qwengr00t",
    "NeuroVLA": "AlphaBrain.model.framework.neurovla",
    "LlamaOFT": "AlphaBrain.model.framework.llamaoft",
    "PaliGemmaOFT": "AlphaBrain.model.framework.paligemma_oft",
}
_LAZY_ALIASES: dict[str, str] = {"paligemma": "PaliGemmaOFT"}

C = TypeVar("C", bound=type)


def register_framework(name: str, aliases: Iterable[str] = ()) -> Callable[[C], C]:
    """Class decorator: make `cls` buildable as `framework.name: <name>` (or any alias)."""

    def decorator(cls: C) -> C:
        from AlphaBrain.model.framework.base import BaseVLAPolicy

        if not (isinstance(cls, type) and issubclass(cls, BaseVLAPolicy)):
            raise TypeError(f"@register_framework({name!r}) must decorate a BaseVLAPolicy subclass, got {cls!r}")
        for key in (name, *aliases):
            owner = _ALIASES.get(key.lower())
            if owner is not None and owner != name:
                raise ValueError(f"framework name {key!r} is already registered for {owner!r}")
        existing = FRAMEWORK_REGISTRY.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"framework {name!r} is already registered as {existing!r}")
        FRAMEWORK_REGISTRY[name] = cls
        for key in (name, *aliases):
            _ALIASES[key.lower()] = name
        return cls

    return decorator


def known_frameworks() -> list[str]:
    """Canonical names of every framework that can be asked for (loaded or lazily importable)."""
    return sorted(set(FRAMEWORK_REGISTRY) | set(_LAZY_FRAMEWORKS), key=str.lower)


def resolve_framework_name(name: str) -> str:
    """Canonical name for `name` (case-insensitive, aliases allowed); UserError listing the valid ones."""
    key = str(name).lower()
    if key in _ALIASES:
        return _ALIASES[key]
    for canonical in _LAZY_FRAMEWORKS:
        if canonical.lower() == key:
            return canonical
    if key in _LAZY_ALIASES:
        return _LAZY_ALIASES[key]
    valid = set(known_frameworks())
    valid |= {a for a, c in _ALIASES.items() if a != c.lower()}
    valid |= set(_LAZY_ALIASES)
    raise unknown_name("framework", str(name), valid)


def get_framework_class(name: str) -> type["BaseVLAPolicy"]:
    """The class registered under `name`, importing its module first if it is a lazy one."""
    canonical = resolve_framework_name(name)
    if canonical not in FRAMEWORK_REGISTRY:
        module = _LAZY_FRAMEWORKS[canonical]
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                raise UserError(
                    f'Framework "{canonical}" is not part of this installation (module {module} is missing). '
                    f"Available now: {', '.join(sorted(FRAMEWORK_REGISTRY))}."
                ) from exc
            raise UserError(
                f'Framework "{canonical}" needs the Python package "{exc.name}", which is not installed; '
                f"install it or pick another framework.name."
            ) from exc
        if canonical not in FRAMEWORK_REGISTRY:
            raise RuntimeError(f"importing {module} did not register framework {canonical!r}")
    return FRAMEWORK_REGISTRY[canonical]


def build_framework(cfg: Any, data_spec: "DataSpec") -> "BaseVLAPolicy":
    """Build the policy named by `cfg.framework.name`, sized for `data_spec`.

    `cfg` is the whole run config (an OmegaConf DictConfig; a plain dict is accepted).
    """
    try:
        framework = cfg["framework"]
    except (KeyError, TypeError, AttributeError):
        framework = None
    if framework is None:
        raise ConfigError(
            f'The config has no "framework" block; add framework.name: one of {", ".join(known_frameworks())}.'
        )
    name = framework.get("name") if hasattr(framework, "get") else None
    if not name:
        raise ConfigError(f'framework.name is not set; expected one of {", ".join(known_frameworks())}.')
    cls = get_framework_class(str(name))
    return cls.from_config(cfg, data_spec)
