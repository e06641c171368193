"""Type and range of every value of a run's configuration, checked in one place.

`validate_config(cfg)` runs on the composed configuration (base YAML + overlays +
overrides) before anything reads data or writes a file. Every scalar key of
`configs/continual_learning/cl_base.yaml` has an entry in `SCHEMA`; a bad value is
a `ConfigError` that names the key, the value, what is allowed and an example of a
valid setting:

    continual_learning.steps_per_task must be an integer >= 1, got 'abc'. Set a valid value in your
    YAML or as an override, e.g. continual_learning.steps_per_task=10000

Names that only another component knows (the model, the algorithm, the stream,
a learning rate's module) are checked by that component; here only their type is.

An `${oc.env:VAR}` whose variable is unset is skipped: it is an error only where the
value is needed (see `AlphaBrain.config.loader.env_or_none`). Two spellings YAML
turns into other types are normalized in place: `mixed_precision: no` (read as
false) becomes "no", and a whole float where an integer is meant (`1e4`) an int.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, OmegaConfBaseException

from AlphaBrain.utils.errors import ConfigError, did_you_mean

_MISSING = object()

# The learning-rate schedules of AlphaBrain.training.trainer_utils.optim (kept equal by a test).
SCHEDULERS = ("cosine_with_min_lr", "cosine", "linear", "constant", "constant_with_warmup")
REPORTERS = ("jsonl", "tensorboard", "wandb")
PRECISIONS = ("no", "fp16", "bf16", "fp8")
FP8_PACKAGES = ("transformer_engine", "torchao")  # what accelerate accepts for fp8


class _Invalid(Exception):
    """A value outside its spec; `allowed` says what would be accepted, `hint` adds a remedy."""

    def __init__(self, allowed: str, hint: str = "", message: str = ""):
        super().__init__(allowed)
        self.allowed, self.hint, self.message = allowed, hint, message


@dataclass(frozen=True)
class Spec:
    """One key: `check(value)` returns the (possibly normalized) value or raises `_Invalid`."""

    check: Callable[[Any], Any]
    example: str
    nullable: bool = False


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integer(minimum: Optional[int] = None) -> Callable[[Any], int]:
    allowed = "an integer" + ("" if minimum is None else f" >= {minimum}")

    def check(value: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 1e4 in YAML is a float
        if not _is_number(value) or not isinstance(value, int) or (minimum is not None and value < minimum):
            raise _Invalid(allowed)
        return value

    return check


def _number(low: Optional[float] = None, high: Optional[float] = None, *, low_open: bool = False,
            high_open: bool = False) -> Callable[[Any], float]:
    if low is not None and high is not None:
        allowed = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        allowed = f"a finite number {'>' if low_open else '>='} {low:g}"
    else:
        allowed = "a finite number"

    def check(value: Any) -> float:
        ok = _is_number(value) and math.isfinite(float(value))
        if ok and low is not None:
            ok = float(value) > low if low_open else float(value) >= low
        if ok and high is not None:
            ok = float(value) < high if high_open else float(value) <= high
        if not ok:
            raise _Invalid(allowed)
        return value

    return check


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("true or false")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid("a non-empty string")
    return value


def _name(value: Any) -> Any:
    """A run id: a directory name (a number is fine, it becomes one)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise _Invalid("a non-empty name")
    if str(value) in (".", "..") or "/" in str(value) or "\\" in str(value):
        raise _Invalid("a directory name without / (the run goes to <run_root_dir>/<run_id>)")
    return value


def _choice(choices: Sequence[str], *, case_sensitive: bool = True, hints: Optional[dict] = None):
    allowed = "one of " + ", ".join(choices)

    def check(value: Any) -> str:
        wanted = value if case_sensitive or not isinstance(value, str) else value.lower()
        valid = choices if case_sensitive else [c.lower() for c in choices]
        if not isinstance(value, str) or wanted not in valid:
            hint = (hints or {}).get(str(value).lower(), "") or did_you_mean(str(value), choices).strip().lower()
            raise _Invalid(allowed, hint)
        return value

    return check


def _string_list(value: Any) -> list:
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) and v for v in value):
        raise _Invalid("a non-empty list of camera feature names, e.g. [observation.images.image]")
    return value


def _target_modules(value: Any) -> Any:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) and v for v in value):
        return value
    raise _Invalid('"all-linear", a regular expression over module paths, or a list of module names')


def _betas(value: Any) -> Any:
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(_is_number(v) and 0.0 <= float(v) < 1.0 for v in value)):
        raise _Invalid("two numbers in [0, 1), e.g. [0.9, 0.95]")
    return value


def _mixed_precision(value: Any) -> str:
    if value is False:  # YAML reads an unquoted `no` as false
        return "no"
    hints = {"fp32": 'full precision is "no"', "float32": 'full precision is "no"', "none": 'no mixed precision is "no"',
             "bfloat16": 'did you mean "bf16"?', "float16": 'did you mean "fp16"?', "half": 'did you mean "fp16"?'}
    value = _choice(PRECISIONS, hints=hints)(value)
    if value == "fp8" and not any(importlib.util.find_spec(p) is not None for p in FP8_PACKAGES):
        raise _Invalid("", message=(
            "trainer.mixed_precision=fp8 needs transformer_engine or torchao, and neither is installed: "
            "install one (pip install torchao) or use trainer.mixed_precision=bf16"
        ))
    return value


def _reporter(value: Any) -> str:
    value = _choice(REPORTERS)(value)
    package = {"tensorboard": "tensorboard", "wandb": "wandb"}.get(value)
    if package is not None and importlib.util.find_spec(package) is None:
        raise _Invalid("", message=f"trainer.report_to={value} needs the {package} package: pip install {package}, "
                                   "or use trainer.report_to=jsonl")
    return value


def _mapping(what: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not isinstance(value, dict):
            raise _Invalid(f"a mapping ({what})")
        return value

    return check


def _stream(value: Any) -> Any:
    if isinstance(value, dict) or (isinstance(value, str) and value.strip()):
        return value
    raise _Invalid("a stream name, a dataset path, or an inline block (docs/continual_learning/custom_streams.md)")


_LR = Spec(_number(0.0, low_open=True), "1.0e-4")

# Every scalar key of cl_base.yaml (and the typed entries of its free-form blocks).
SCHEMA: dict[str, Spec] = {
    "run_id": Spec(_name, "my_run", nullable=True),
    "run_root_dir": Spec(_text, "results/Checkpoints"),
    "seed": Spec(_integer(), "42"),
    "framework": Spec(_mapping("the model's block, filled by a model overlay"), "a model overlay (run_cl_train.sh --model tiny)"),
    "framework.name": Spec(_text, "tiny", nullable=True),
    "datasets.vla_data.data_root_dir": Spec(_text, "/path/to/lerobot_datasets", nullable=True),
    "datasets.vla_data.data_mix": Spec(_text, "libero_goal", nullable=True),
    "datasets.vla_data.named_mixtures": Spec(_mapping("{name: [{path, weight, embodiment}]}"),
                                             "datasets.vla_data.named_mixtures.my_mix=[{path: /data/x}]", nullable=True),
    "datasets.vla_data.image_keys": Spec(_string_list, "[observation.images.image]", nullable=True),
    "datasets.vla_data.dataset_statistics": Spec(_text, "/path/to/dataset_statistics.json", nullable=True),
    "datasets.vla_data.allow_foreign_statistics": Spec(_boolean, "false"),
    "datasets.vla_data.per_device_batch_size": Spec(_integer(1), "16"),
    "datasets.vla_data.num_workers": Spec(_integer(0), "0"),
    "lora.enabled": Spec(_boolean, "false"),
    "lora.rank": Spec(_integer(1), "32"),
    "lora.alpha": Spec(_number(0.0, low_open=True), "32"),
    "lora.dropout": Spec(_number(0.0, 1.0, high_open=True), "0.05"),
    "lora.target_modules": Spec(_target_modules, "all-linear"),
    "trainer.gradient_accumulation_steps": Spec(_integer(1), "1"),
    "trainer.gradient_clipping": Spec(_number(0.0, low_open=True), "1.0", nullable=True),
    "trainer.learning_rate": Spec(_mapping("{base: <lr>, <module>: <lr>}"), "trainer.learning_rate.base=2.5e-5"),
    "trainer.learning_rate.base": _LR,
    "trainer.lr_scheduler_type": Spec(_choice(SCHEDULERS), "cosine_with_min_lr"),
    "trainer.scheduler_specific_kwargs": Spec(_mapping("{min_lr: <lr>}"), "trainer.scheduler_specific_kwargs.min_lr=1.0e-6",
                                              nullable=True),
    "trainer.scheduler_specific_kwargs.min_lr": Spec(_number(0.0), "1.0e-6"),
    "trainer.warmup_ratio": Spec(_number(0.0, 1.0, high_open=True), "0.1"),
    "trainer.optimizer.name": Spec(_choice(("AdamW",), case_sensitive=False), "AdamW"),
    "trainer.optimizer.betas": Spec(_betas, "[0.9,0.95]"),
    "trainer.optimizer.eps": Spec(_number(0.0, low_open=True), "1.0e-8"),
    "trainer.optimizer.weight_decay": Spec(_number(0.0), "1.0e-8"),
    "trainer.mixed_precision": Spec(_mixed_precision, "no"),
    "trainer.logging_frequency": Spec(_integer(1), "10"),
    "trainer.is_resume": Spec(_boolean, "true"),
    "trainer.save_interval": Spec(_integer(0), "500"),
    "trainer.keep_last": Spec(_integer(0), "2"),
    "trainer.report_to": Spec(_reporter, "jsonl"),
    "continual_learning.task_sequence": Spec(_stream, "libero_goal", nullable=True),
    "continual_learning.steps_per_task": Spec(_integer(1), "10000"),
    "continual_learning.save_checkpoint_per_task": Spec(_boolean, "true"),
    "continual_learning.algorithm": Spec(_mapping("{name: <algorithm>, <hyperparameter>: <value>}"),
                                         "continual_learning.algorithm.name=er", nullable=True),
    "continual_learning.algorithm.name": Spec(_text, "er", nullable=True),
    "continual_learning.replay.enabled": Spec(_boolean, "true"),
    "continual_learning.replay.method": Spec(_choice(("experience_replay", "er")), "experience_replay"),
    "continual_learning.replay.buffer_size_per_task": Spec(_integer(1), "500"),
    "continual_learning.replay.replay_batch_ratio": Spec(_number(0.0, 1.0, low_open=True, high_open=True), "0.3"),
    "continual_learning.replay.balanced_sampling": Spec(_boolean, "false"),
}


def _leaf(cfg: DictConfig, key: str) -> tuple[Any, Any, str]:
    """(parent node, value or _MISSING, leaf name); an unset `${oc.env:...}` counts as missing."""
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key, default=None, throw_on_missing=False) if parent_key else cfg
    if not isinstance(parent, DictConfig) or leaf not in parent:
        return parent, _MISSING, leaf
    if OmegaConf.is_missing(parent, leaf):
        return parent, _MISSING, leaf
    try:
        value = parent[leaf]
    except InterpolationResolutionError:
        return parent, _MISSING, leaf  # needed later or never: env_or_none / require say so
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{key}: {' '.join(str(exc).split())}") from None
    if isinstance(value, (DictConfig, ListConfig)):
        try:
            value = OmegaConf.to_container(value, resolve=True)
        except InterpolationResolutionError:
            return parent, _MISSING, leaf
    return parent, value, leaf


def _show(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    return repr(value) if isinstance(value, str) else str(value)


def _check(cfg: DictConfig, key: str, spec: Spec) -> None:
    parent, value, leaf = _leaf(cfg, key)
    if value is _MISSING or (value is None and spec.nullable):
        return
    try:
        normalized = spec.check(value)
    except _Invalid as bad:
        if bad.message:
            raise ConfigError(bad.message) from None
        hint = f" ({bad.hint})" if bad.hint else ""
        raise ConfigError(
            f"{key} must be {bad.allowed}, got {_show(value)}{hint}. "
            f"Set a valid value in your YAML or as an override, e.g. {_example(key, spec)}"
        ) from None
    if normalized is not value and not isinstance(value, (list, dict)):
        with _writable(parent):
            parent[leaf] = normalized


def _example(key: str, spec: Spec) -> str:
    return spec.example if "=" in spec.example or " " in spec.example else f"{key}={spec.example}"


class _writable:
    """Lift a read-only flag for an in-place normalization."""

    def __init__(self, node: DictConfig):
        self.node, self.flag = node, OmegaConf.is_readonly(node)

    def __enter__(self) -> None:
        OmegaConf.set_readonly(self.node, False)

    def __exit__(self, *exc: Any) -> None:
        OmegaConf.set_readonly(self.node, self.flag)


def validate_config(cfg: DictConfig) -> DictConfig:
    """Check the type and range of every known value; raises ConfigError on the first bad one.

    Returns `cfg`, with the normalizations of the module docstring applied in place.
    """
    for key, spec in SCHEMA.items():
        _check(cfg, key, spec)
    # Per-module learning rates: module names are the model's business, values are ours.
    rates = OmegaConf.select(cfg, "trainer.learning_rate", default=None, throw_on_missing=False)
    if isinstance(rates, DictConfig):
        if "base" not in rates:
            raise ConfigError(
                "trainer.learning_rate.base must be set (the learning rate of every module without its own entry), "
                "e.g. trainer.learning_rate.base=2.5e-5"
            )
        for module in rates:
            if module != "base":
                _check(cfg, f"trainer.learning_rate.{module}", _LR)
    interval = OmegaConf.select(cfg, "trainer.save_interval", default=0)
    if interval and OmegaConf.select(cfg, "continual_learning.save_checkpoint_per_task", default=True) is False:
        # A mid-task resume replays the task's start from the previous task's checkpoint (see runs/mid_task.py).
        raise ConfigError(
            f"trainer.save_interval={interval} needs continual_learning.save_checkpoint_per_task=true: a run resumed "
            "from a mid-task checkpoint restarts that task from the previous task's checkpoint. Set "
            "continual_learning.save_checkpoint_per_task=true, or trainer.save_interval=0."
        )
    return cfg

