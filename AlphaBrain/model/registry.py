"""The one registry of VLA frameworks (the `framework.name` of a run config), and `build_framework`.

The built-in policies (`AlphaBrain/model/policies/`) do not import this module;
it names them:

* TinyVLA is light and registered here when `AlphaBrain.model` is imported;
* the large policies import heavy libraries (transformers), so their packages
  are *not* imported with `AlphaBrain.model`: `_LAZY_FRAMEWORKS` maps each
  name to the package that defines the class of that name, which
  `build_framework` imports (and registers) only when that name is asked for.

Names and aliases match case-insensitively ("TinyVLA", "tinyvla", "tiny").
Code outside the package may register its own policy class with the decorator:

    @register_framework("PooledVLA", aliases=("pooled",))
    class PooledVLA(BaseVLAPolicy):
        @classmethod
        def from_config(cls, cfg, data_spec): ...

A lazily imported module may also register its class that way. Dropping in a new
large built-in policy = writing its folder under `policies/` and adding one line to
`_LAZY_FRAMEWORKS` (and its aliases to `_LAZY_ALIASES`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Callable, Iterable, TypeVar

from AlphaBrain.model.policies import BaseVLAPolicy, TinyVLA
from AlphaBrain.utils.errors import ConfigError, UserError, unknown_name

if TYPE_CHECKING:  # pragma: no cover
    from AlphaBrain.dataloader.spec import DataSpec

#: canonical name -> framework class (only frameworks whose module has been imported).
FRAMEWORK_REGISTRY: dict[str, type] = {}

#: lowercased name or alias -> canonical name.
_ALIASES: dict[str, str] = {}

#: canonical name -> module that defines (or registers) the class of that name; heavy, imported on demand.
_LAZY_FRAMEWORKS: dict[str, str] = {
    "QwenGR00T": "AlphaBrain.model.policies.qwengr00t",
    "NeuroVLA": "AlphaBrain.model.policies.neurovla",
    "LlamaOFT": "AlphaBrain.model.policies.llamaoft",
    "PaliGemmaOFT": "AlphaBrain.model.policies.paligemma_oft",
}
#: lowercased alias -> canonical name of a lazily imported framework.
_LAZY_ALIASES: dict[str, str] = {"paligemma": "PaliGemmaOFT"}

C = TypeVar("C", bound=type)


def register_framework(name: str, aliases: Iterable[str] = ()) -> Callable[[C], C]:
    """Class decorator: make `cls` buildable as `framework.name: <name>` (or any alias)."""

    def decorator(cls: C) -> C:
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
            loaded = importlib.import_module(module)
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
        if canonical not in FRAMEWORK_REGISTRY and isinstance(getattr(loaded, canonical, None), type):
            aliases = [alias for alias, name in _LAZY_ALIASES.items() if name == canonical]
            register_framework(canonical, aliases)(getattr(loaded, canonical))
        if canonical not in FRAMEWORK_REGISTRY:
            raise RuntimeError(f"importing {module} did not define or register framework {canonical!r}")
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


# Light built-in policies, registered with the package (the contract tests run on each of them).
register_framework("TinyVLA", aliases=("tiny",))(TinyVLA)
