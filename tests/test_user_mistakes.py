"""Every mistake a new user is likely to make, typed into the public commands as a user types them.

Each one must be caught before any work starts: exit status 2, exactly one line on stderr (no
traceback, no usage dump), naming the command that was typed for usage errors, and nothing
written. The LIBERO cases need no LIBERO data: they fail before any data is read.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from AlphaBrain.config.loader import BASE_CONFIG, FREE_FORM_BLOCKS, load_run_config, model_overlay_path
from AlphaBrain.config.validate import SCHEDULERS, SCHEMA
from AlphaBrain.utils.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
SCRIPTS = "scripts/run_continual_learning_scripts"
TRAIN_SH = f"{SCRIPTS}/run_cl_train.sh"
EVAL_SH = f"{SCRIPTS}/run_cl_eval.sh"
STATS = f"{SCRIPTS}/compute_dataset_statistics.py"
METRICS = f"{SCRIPTS}/compute_cl_matrix_metrics.py"
TRAIN = "python -m AlphaBrain.training.continual_learning.train"
HAS_FP8 = any(importlib.util.find_spec(p) is not None for p in ("transformer_engine", "torchao"))


@dataclass
class Case:
    argv: list[str]               # {tmp} is the case's scratch dir; relative paths run from the repo root
    expected: str                 # regex the one stderr line must match
    absent: list[str] = field(default_factory=lambda: ["runs"])   # must not exist afterwards
    empty: list[str] = field(default_factory=list)                # existing dirs that must stay empty


def trainer(*overrides: str) -> list[str]:
    """The trainer module as run_cl_train.sh starts it, on the default LIBERO stream, with no data anywhere."""
    return [PY, "-m", "AlphaBrain.training.continual_learning.train", "--config_yaml",
            "configs/continual_learning/cl_base.yaml", "configs/continual_learning/models/tiny.yaml",
            "run_id=mistake", "run_root_dir={tmp}/runs", "datasets.vla_data.data_root_dir={tmp}/no_data", *overrides]


def wrapper(*args: str, overrides: tuple[str, ...] = ()) -> list[str]:
    return ["bash", TRAIN_SH, "--run-id", "mistake", *args, "--", "run_root_dir={tmp}/runs",
            "datasets.vla_data.data_root_dir={tmp}/no_data", *overrides]


def usage(prog: str, message: str) -> str:
    return "^" + re.escape(f"error: {prog}: {message} (see {prog} --help)") + "$"


def value_error(key: str, allowed: str, got: str, example: str) -> str:
    return "^" + re.escape(f"error: {key} must be {allowed}, got {got}. Set a valid value in your YAML or as an "
                           f"override, e.g. {key}={example}") + "$"


MISSING_LIBERO = (r"^error: dataset mixture 'libero_goal' (expects a LeRobot dataset at \S*no_data\S* which does not "
                  r"exist|needs a data root directory)")

CASES: dict[str, Case] = {
    # --- config values: one check, before anything is read or written
    "steps_per_task=abc": Case(trainer("continual_learning.steps_per_task=abc"), value_error(
        "continual_learning.steps_per_task", "an integer >= 1", "'abc'", "10000")),
    "per_device_batch_size=four": Case(trainer("datasets.vla_data.per_device_batch_size=four"), value_error(
        "datasets.vla_data.per_device_batch_size", "an integer >= 1", "'four'", "16")),
    "seed=abc": Case(trainer("seed=abc"), value_error("seed", "an integer", "'abc'", "42")),
    "learning_rate.vision=fast": Case(trainer("trainer.learning_rate.vision=fast"), value_error(
        "trainer.learning_rate.vision", "a finite number > 0", "'fast'", "1.0e-4")),
    "gradient_clipping=abc": Case(trainer("trainer.gradient_clipping=abc"), value_error(
        "trainer.gradient_clipping", "a finite number > 0", "'abc'", "1.0")),
    "mixed_precision=fp32": Case(trainer("trainer.mixed_precision=fp32"), value_error(
        "trainer.mixed_precision", "one of no, fp16, bf16, fp8", "'fp32' (full precision is \"no\")", "no")),
    "mixed_precision=fp8 without its library": Case(
        trainer("trainer.mixed_precision=fp8"),
        r"^error: trainer\.mixed_precision=fp8 needs transformer_engine or torchao, and neither is installed"),
    # --- command lines
    "override without = (wrapper)": Case(
        wrapper("--model", "tiny", overrides=("continual_learning.steps_per_task",)),
        r'^error: Override "continual_learning\.steps_per_task" has no value: write '
        r"continual_learning\.steps_per_task=<value>"),
    "--algo nosuchalgo, default dataset (wrapper)": Case(
        wrapper("--algo", "nosuchalgo"),
        r'^error: Unknown CL algorithm \(continual_learning\.algorithm\.name\) "nosuchalgo"\. Valid choices: .*\ber\b'),
    "run_cl_eval.sh --trials abc": Case(
        ["bash", EVAL_SH, "--run-id", "mistake", "--trials", "abc", "--output-base", "{tmp}/eval"],
        usage(EVAL_SH, "--trials must be an integer >= 1, got 'abc'"), absent=["eval"]),
    "run_cl_eval.sh --envs-per-worker 0": Case(
        ["bash", EVAL_SH, "--run-id", "mistake", "--envs-per-worker", "0", "--output-base", "{tmp}/eval"],
        usage(EVAL_SH, "--envs-per-worker must be an integer >= 1, got '0'"), absent=["eval"]),
    "cl_eval --envs-per-worker -2": Case(
        [PY, "-m", "AlphaBrain.evaluation.cl_eval", "--run-id", "mistake", "--envs-per-worker", "-2",
         "--output-base", "{tmp}/eval"],
        usage("python -m AlphaBrain.evaluation.cl_eval", "--envs-per-worker must be an integer >= 1, got '-2'"),
        absent=["eval"]),
    "policy_server --batch-wait-ms -1": Case(
        [PY, "-m", "AlphaBrain.deployment.policy_server", "--run-dir", "{tmp}/runs/mistake", "--batch-wait-ms", "-1"],
        usage("python -m AlphaBrain.deployment.policy_server", "--batch-wait-ms must be a number >= 0, got '-1'")),
    "policy_server --port abc": Case(
        [PY, "-m", "AlphaBrain.deployment.policy_server", "--run-dir", "{tmp}/runs/mistake", "--port", "abc"],
        usage("python -m AlphaBrain.deployment.policy_server", "--port must be an integer in 0..65535, got 'abc'")),
    "compute_dataset_statistics.py without --out": Case(
        [PY, STATS, "--dataset-dir", "{tmp}"], usage(STATS, "the following arguments are required: --out")),
    "compute_dataset_statistics.py --out DIR": Case(
        [PY, STATS, "--dataset-dir", "{tmp}/no_data", "--out", "{tmp}/out"],
        usage(STATS, "--out {tmp}/out is a directory; give a file path such as {tmp}/out/dataset_statistics.json"),
        empty=["out"]),
    "compute_cl_matrix_metrics.py --plot DIR": Case(
        [PY, METRICS, "{tmp}/eval", "--plot", "{tmp}/out"],
        usage(METRICS, "--plot {tmp}/out is a directory; give a file path such as {tmp}/out/heatmap.png"),
        empty=["out"]),
    "offline_matrix --json DIR": Case(
        [PY, "-m", "AlphaBrain.evaluation.offline_matrix", "{tmp}/runs/mistake", "--json", "{tmp}/out"],
        usage("python -m AlphaBrain.evaluation.offline_matrix",
              "--json {tmp}/out is a directory; give a file path such as {tmp}/out/offline_matrix.json"),
        empty=["out"]),
    "alphabrain-merge-lora --out DIR": Case(
        [str(Path(PY).parent / "alphabrain-merge-lora"), "--run-dir", "{tmp}/runs/mistake", "--out", "{tmp}/out"],
        usage("alphabrain-merge-lora", "--out {tmp}/out is a directory; give a file path such as {tmp}/out/merged.pt"),
        empty=["out"]),
    # A named stream refined by task_order keeps its name (no "Unknown key"); with no data, the data error.
    "task_order=[2,0,1] on --dataset libero_goal (wrapper)": Case(
        wrapper("--model", "tiny", "--dataset", "libero_goal",
                overrides=("continual_learning.task_sequence.task_order=[2,0,1]",)), MISSING_LIBERO),
}
if HAS_FP8:
    del CASES["mixed_precision=fp8 without its library"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LEROBOT_LIBERO_DATA_DIR", "ALPHABRAIN_PROG", "PYTHONPATH")}
    env.update(ALPHABRAIN_PYTHON=PY, OMP_NUM_THREADS="1", MUJOCO_GL="egl")
    return env


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Every case run once, two at a time (each one mostly waits for Python imports)."""
    root = tmp_path_factory.mktemp("mistakes")

    def run(item):
        name, case = item
        tmp = root / re.sub(r"\W+", "_", name)
        (tmp / "out").mkdir(parents=True)
        argv = [a.replace("{tmp}", str(tmp)) for a in case.argv]
        proc = subprocess.run(argv, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
        return name, (tmp, proc)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(run, CASES.items()))


@pytest.mark.parametrize("name", list(CASES))
def test_mistake_is_one_line_exit_2_nothing_written(name, results):
    case = CASES[name]
    tmp, proc = results[name]
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr
    assert len(err) == 1, proc.stderr[-3000:]
    assert re.search(case.expected.replace("\\{tmp\\}", re.escape(str(tmp))).replace("{tmp}", re.escape(str(tmp))),
                     err[0]), err[0]
    assert "Unknown key" not in err[0]
    for rel in case.absent:
        assert not (tmp / rel).exists(), f"{rel} was written"
    for rel in case.empty:
        assert not any((tmp / rel).iterdir()), f"something was written into {rel}"


# ---- the schema itself (in-process, fast)

def _scalar_keys(node: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for key in node.keys():
        path = f"{prefix}{key}"
        child = node._get_node(key)
        if isinstance(child, DictConfig) and path not in FREE_FORM_BLOCKS:
            keys += _scalar_keys(child, f"{path}.")
        else:
            keys.append(path)
    return keys


def test_schema_covers_every_key_of_cl_base():
    keys = _scalar_keys(OmegaConf.load(BASE_CONFIG))
    assert [k for k in keys if k not in SCHEMA] == []


def test_scheduler_names_match_the_optimizer():
    from AlphaBrain.training.trainer_utils.optim import SCHEDULERS as built

    assert tuple(SCHEDULERS) == tuple(built)


def test_every_model_overlay_passes_and_yaml_spellings_are_normalized(monkeypatch):
    monkeypatch.delenv("LEROBOT_LIBERO_DATA_DIR", raising=False)
    for overlay in (REPO / "configs/continual_learning/models").glob("*.yaml"):
        load_run_config([BASE_CONFIG, overlay])
    cfg = load_run_config([BASE_CONFIG, model_overlay_path("tiny")],
                          ["trainer.mixed_precision=no", "continual_learning.steps_per_task=1e4"])
    assert cfg.trainer.mixed_precision == "no" and cfg.continual_learning.steps_per_task == 10000
    # An unset ${oc.env:...} is left alone: it is an error only where the value is needed.
    assert OmegaConf.is_interpolation(cfg.datasets.vla_data, "data_root_dir")


@pytest.mark.parametrize("override,pattern", [
    ("lora.enabled=maybe", r"lora\.enabled must be true or false, got 'maybe'"),
    ("lora.dropout=1", r"lora\.dropout must be a number in \[0, 1\), got 1\b"),
    ("trainer.gradient_clipping=0", r"trainer\.gradient_clipping must be a finite number > 0, got 0\b"),
    ("trainer.warmup_ratio=1", r"trainer\.warmup_ratio must be a number in \[0, 1\)"),
    ("trainer.lr_scheduler_type=cosin", r'one of cosine_with_min_lr, .*got \'cosin\' \(did you mean "cosine"\?\)'),
    ("trainer.report_to=tb", r"trainer\.report_to must be one of jsonl, tensorboard, wandb, got 'tb'"),
    ("trainer.optimizer.betas=[0.9]", r"trainer\.optimizer\.betas must be two numbers in \[0, 1\)"),
    ("trainer.learning_rate.base=-1", r"trainer\.learning_rate\.base must be a finite number > 0, got -1\b"),
    ("continual_learning.replay.replay_batch_ratio=1.5", r"replay_batch_ratio must be a number in \(0, 1\), got 1\.5"),
    ("datasets.vla_data.num_workers=-1", r"num_workers must be an integer >= 0, got -1\b"),
    ("datasets.vla_data.image_keys=image", r"image_keys must be a non-empty list of camera feature names"),
    ("run_id=a/b", r"run_id must be a directory name without /"),
])
def test_other_bad_values_name_key_value_and_fix(override, pattern):
    with pytest.raises(ConfigError, match=pattern) as info:
        load_run_config([BASE_CONFIG, model_overlay_path("tiny")], [override])
    assert "e.g. " in str(info.value) and "\n" not in str(info.value)


def test_console_commands_are_installed():
    declared = {ep.name: ep for ep in entry_points(group="console_scripts") if ep.name.startswith("alphabrain-")}
    wanted = {"alphabrain-train", "alphabrain-eval", "alphabrain-serve", "alphabrain-metrics", "alphabrain-stats",
              "alphabrain-merge-lora", "alphabrain-generate"}
    assert wanted <= set(declared), f"missing: {wanted - set(declared)} (pip install -e . --no-deps)"
    for name in wanted:
        assert callable(declared[name].load()), name
