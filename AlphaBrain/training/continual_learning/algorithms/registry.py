"""One registry of CL algorithms, and `build_cl_algorithm` for both YAML styles.

Generic style:   continual_learning.algorithm: {name: er, buffer_size_per_task: 500, ...}
Legacy style:    continual_learning.replay:    {enabled: true, method: experience_replay, ...}
Neither set:     sequential fine-tuning.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from AlphaBrain.utils.errors import ConfigError, unknown_name

logger = logging.getLogger(__name__)

ALGORITHM_REGISTRY: dict[str, type] = {}
_ALIASES: dict[str, str] = {}

# Legacy `replay.method` values and the algorithm each one means.
_LEGACY_REPLAY_METHODS = {"experience_replay": "er", "er": "er"}
_LEGACY_REPLAY_KEYS = ("buffer_size_per_task", "replay_batch_ratio", "balanced_sampling")


def register_algorithm(name: str, aliases: tuple[str, ...] = ()) -> Callable[[type], type]:
    def wrap(cls: type) -> type:
        for key in (name, *aliases):
            if key in ALGORITHM_REGISTRY or key in _ALIASES:
                raise ValueError(f"CL algorithm name {key!r} registered twice")
        ALGORITHM_REGISTRY[name] = cls
        for alias in aliases:
            _ALIASES[alias] = name
        return cls

    return wrap


# Importing this module runs the algorithms package's __init__ first, which imports (and so registers)
# every built-in algorithm: the registry is complete whenever it is used.
def algorithm_names() -> list[str]:
    return sorted(ALGORITHM_REGISTRY)


def get_algorithm_class(name: str) -> type:
    key = str(name).lower()
    key = _ALIASES.get(key, key)
    if key not in ALGORITHM_REGISTRY:
        raise unknown_name("CL algorithm (continual_learning.algorithm.name)", name, ALGORITHM_REGISTRY)
    return ALGORITHM_REGISTRY[key]


def _as_dict(node: Any) -> dict:
    if node is None:
        return {}
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]
    return dict(node)


def resolve_algorithm_spec(cfg: DictConfig) -> tuple[str, dict]:
    """(algorithm name, hyperparameters) from either YAML style."""
    cl = cfg.continual_learning
    algo = _as_dict(cl.get("algorithm"))
    replay = _as_dict(cl.get("replay"))
    name = algo.pop("name", None)
    # ER's keys in the legacy block are defaults for the generic block, so `--algo er` followed by
    # either `replay.buffer_size_per_task=...` or `algorithm.buffer_size_per_task=...` does what it says.
    legacy_er = {k: replay[k] for k in _LEGACY_REPLAY_KEYS if k in replay}
    if name:
        key = str(name).lower()
        if _ALIASES.get(key, key) == "er":
            return str(name), {**legacy_er, **algo}
        if replay.get("enabled"):
            logger.warning(
                "continual_learning.algorithm.name=%s is set, so the legacy continual_learning.replay block is "
                "ignored (set continual_learning.replay.enabled=false to silence this).",
                name,
            )
        return str(name), algo
    if replay.get("enabled"):
        method = str(replay.get("method", "experience_replay"))
        if method not in _LEGACY_REPLAY_METHODS:
            raise ConfigError(
                f'Unknown continual_learning.replay.method "{method}". The legacy replay block supports: '
                f"{', '.join(sorted(_LEGACY_REPLAY_METHODS))}. Other methods use continual_learning.algorithm.name."
            )
        return _LEGACY_REPLAY_METHODS[method], {**legacy_er, **algo}
    if algo:
        raise ConfigError(
            f"continual_learning.algorithm has hyperparameters ({', '.join(sorted(algo))}) but no name. "
            f"Set continual_learning.algorithm.name (one of: {', '.join(algorithm_names())})."
        )
    return "sequential", {}


def build_cl_algorithm(cfg: DictConfig, **runtime: Any):
    """Instantiate the run's algorithm; `runtime` (seed, rank, world_size) goes to `bind_runtime`."""
    name, params = resolve_algorithm_spec(cfg)
    cls = get_algorithm_class(name)
    algorithm = cls.from_config(params)
    algorithm.bind_runtime(**runtime)
    return algorithm

