"""Compose a run's configuration: base YAML + overlays + dotlist overrides, left to right.

`cl_base.yaml` is the schema. After composition every key path must exist in
it, except inside the few blocks whose keys belong to someone else and are
validated there (the model's `framework` block, the algorithm's hyperparameters,
an inline task stream, per-module learning rates, user mixtures). A key that
exists nowhere is an error naming the closest known key.

Environment variables are read through OmegaConf's `${oc.env:VAR}`. A variable
that is unset is only an error when the value is actually needed: callers use
`env_or_none` / `require` so the message names the variable and the `.env` file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, OmegaConfBaseException

from AlphaBrain.config.validate import validate_config
from AlphaBrain.utils.errors import ConfigError, did_you_mean

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_ROOT = REPO_ROOT / "configs" / "continual_learning"
BASE_CONFIG = CONFIG_ROOT / "cl_base.yaml"

# Blocks whose inner keys are validated by their owner, not by cl_base.yaml.
FREE_FORM_BLOCKS = (
    "framework",                          # the model's config dataclass validates it
    "continual_learning.algorithm",       # the algorithm's declared hyperparameters
    "continual_learning.task_sequence",   # inline stream keys, validated by custom_streams
    "trainer.learning_rate",              # module names, validated against the model
    "trainer.scheduler_specific_kwargs",
    "datasets.vla_data.named_mixtures",
)

_ENV_RE = re.compile(r"\$\{oc\.env:([A-Za-z_][A-Za-z0-9_]*)\s*(,[^}]*)?\}")


def available_models() -> list[str]:
    return sorted(p.stem for p in (CONFIG_ROOT / "models").glob("*.yaml"))


def model_overlay_path(model: str) -> Path:
    path = CONFIG_ROOT / "models" / f"{model}.yaml"
    if not path.is_file():
        valid = available_models()
        raise ConfigError(
            f'Unknown model "{model}".{did_you_mean(model, valid)} '
            f"Valid choices: {', '.join(valid)} (one YAML per model in {CONFIG_ROOT / 'models'})."
        )
    return path


def _load_yaml(path: str | os.PathLike) -> DictConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {path} does not exist.")
    try:
        cfg = OmegaConf.load(path)
    except Exception as exc:  # yaml.YAMLError and friends; report file and reason on one line
        reason = " ".join(str(exc).split())
        raise ConfigError(f"Cannot parse YAML file {path}: {reason}") from None
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"Config file {path} must contain a mapping at the top level.")
    return cfg


def _parse_dotlist(dotlist: Sequence[str]) -> list[DictConfig]:
    """One layer per item, merged in order, so `a=x a.b=y` refines `x` instead of replacing it."""
    cleaned = []
    for item in dotlist:
        item = item[2:] if item.startswith("--") else item
        if "=" not in item:
            if item.endswith((".yaml", ".yml")):
                raise ConfigError(
                    f'"{item}" is given among the key=value overrides: list every YAML file before the first override.'
                )
            if re.fullmatch(r"[A-Za-z_][\w.]*", item):
                raise ConfigError(
                    f'Override "{item}" has no value: write {item}=<value> '
                    "(overrides are key=value, e.g. continual_learning.steps_per_task=2000)."
                )
            raise ConfigError(
                f'Override "{item}" is not of the form key=value (e.g. continual_learning.steps_per_task=2000).'
            )
        cleaned.append(item)
    layers = []
    for item in cleaned:
        try:
            layers.append(OmegaConf.from_dotlist([item]))
        except OmegaConfBaseException as exc:
            raise ConfigError(f'Bad override "{item}": {exc}') from None
    return layers


def split_config_args(items: Sequence[str]) -> tuple[list[str], list[str]]:
    """(YAML paths, dotlist overrides) of a command line such as `a.yaml b.yaml key=value ...`.

    YAML files come first; the first item that is not one (it has an `=`, or it neither ends in
    .yaml/.yml nor is a file) starts the overrides, so `steps_per_task` without `=` is reported
    as an override missing its value, not as a missing config file.
    """
    yamls: list[str] = []
    for k, item in enumerate(items):
        if "=" in item or not (item.endswith((".yaml", ".yml")) or Path(item).is_file()):
            return yamls, list(items[k:])
        yamls.append(item)
    return yamls, []


def _key_paths(node: Any, prefix: str = "") -> Iterable[str]:
    """Every key path of a config tree, stopping at free-form blocks."""
    if not isinstance(node, DictConfig):
        return
    for key in node.keys():
        path = f"{prefix}{key}"
        yield path
        if path in FREE_FORM_BLOCKS:
            continue
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            yield from _key_paths(child, f"{path}.")


def _validate_keys(cfg: DictConfig, schema: DictConfig, source: str) -> None:
    known = set(_key_paths(schema))
    for path in _key_paths(cfg):
        if path not in known:
            parent = path.rsplit(".", 1)[0] if "." in path else ""
            siblings = [k for k in known if (k.rsplit(".", 1)[0] if "." in k else "") == parent]
            hint = did_you_mean(path, known) or did_you_mean(path.rsplit(".", 1)[-1], siblings)
            raise ConfigError(
                f'Unknown config key "{path}" (from {source}).{hint} '
                f"Known keys are those of {BASE_CONFIG.relative_to(REPO_ROOT)}."
            )


def _expand_task_sequence(cfg: DictConfig, layer: DictConfig) -> None:
    """A stream given by name (`task_sequence: /data/x` or `libero_goal`) refined by block keys
    (`task_sequence.task_order: [...]`) keeps its name: the string becomes `{name: <string>}` and the
    block's keys refine it. What the name means is the stream registry's business, not the config's.
    A block with its own `base_data_mix` is a new stream and replaces the name outright."""
    key = "continual_learning.task_sequence"
    current, incoming = OmegaConf.select(cfg, key), OmegaConf.select(layer, key)
    if isinstance(incoming, DictConfig) and "base_data_mix" not in incoming and isinstance(current, str):
        OmegaConf.update(cfg, key, {"name": current}, merge=False)


def _merge(cfg: DictConfig, layer: DictConfig) -> DictConfig:
    _expand_task_sequence(cfg, layer)
    return OmegaConf.merge(cfg, layer)


def compose_config(yaml_paths: Sequence[str | os.PathLike], dotlist: Sequence[str] = ()) -> DictConfig:
    """Merge `cl_base.yaml`, then each YAML, then the dotlist; reject unknown keys."""
    schema = _load_yaml(BASE_CONFIG)
    cfg = schema.copy()
    for path in yaml_paths:
        if Path(path).resolve() == BASE_CONFIG.resolve():
            continue
        layer = _load_yaml(path)
        _validate_keys(layer, schema, str(path))
        cfg = _merge(cfg, layer)
    for layer in _parse_dotlist(dotlist):
        _validate_keys(layer, schema, "command-line overrides")
        cfg = _merge(cfg, layer)
    return cfg


def load_run_config(yaml_paths: Sequence[str | os.PathLike], dotlist: Sequence[str] = ()) -> DictConfig:
    """The trainer's entry: composed config, with the framework chosen and every value type- and
    range-checked (`AlphaBrain.config.validate`), before anything is read or written."""
    cfg = compose_config(yaml_paths, dotlist)
    framework = cfg.get("framework")
    if not isinstance(framework, DictConfig) or framework.get("name") in (None, ""):
        raise ConfigError(
            "No model selected: framework.name is empty. Add a model overlay, e.g. "
            f"--config_yaml {BASE_CONFIG.relative_to(REPO_ROOT)} configs/continual_learning/models/tiny.yaml "
            f"(models: {', '.join(available_models())})."
        )
    return validate_config(cfg)


def _env_message(key: str, raw: str) -> str:
    names = _ENV_RE.findall(raw)
    var = names[0][0] if names else "?"
    return (
        f"{key} needs the environment variable {var}, which is not set. "
        f"Set it in .env (copy .env.example) or export it, or override the key: --{key}=/path"
    )


def env_or_none(cfg: DictConfig, key: str) -> Any:
    """Value at `key`, or None when it is an `${oc.env:VAR}` whose variable is unset."""
    try:
        return OmegaConf.select(cfg, key, throw_on_missing=False)
    except InterpolationResolutionError:
        return None


def require(cfg: DictConfig, key: str) -> Any:
    """Value at `key`; an unset environment variable behind it is a clear ConfigError."""
    try:
        value = OmegaConf.select(cfg, key, throw_on_missing=True)
    except InterpolationResolutionError:
        raise ConfigError(_env_message(key, _raw(cfg, key))) from None
    except OmegaConfBaseException as exc:
        raise ConfigError(f"Config key {key}: {exc}") from None
    if value is None:
        raise ConfigError(f"Config key {key} must be set (it is null).")
    return value


def _raw(cfg: DictConfig, key: str) -> str:
    node: Any = cfg
    for part in key.split("."):
        node = node._get_node(part)
        if node is None:
            return ""
    return str(node._value())


def resolved_container(cfg: DictConfig) -> Any:
    """Plain dict of the config with every resolvable interpolation resolved.

    Interpolations that cannot be resolved (an unset, unneeded environment
    variable) are kept verbatim, so writing `config.yaml` never fails on them.
    """

    def walk(node: Any) -> Any:
        if isinstance(node, DictConfig):
            out = {}
            for key in node.keys():
                try:
                    out[key] = walk(node[key])
                except InterpolationResolutionError:
                    out[key] = node._get_node(key)._value()
            return out
        if isinstance(node, ListConfig):
            return [walk(node[i]) for i in range(len(node))]
        return node

    return walk(cfg)


def config_to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.create(resolved_container(cfg)))
