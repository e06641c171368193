"""The Meta-World task catalog: instructions, episode limits, streams and the seed scheme.

Pure data (no simulator import), so the training side can register the streams
without loading MuJoCo.

Seeds. Every episode's object/goal layout is drawn from one integer seed:

* training demos:  ``train_seed(seed, task_index, attempt) = seed * 1_000_000 + task_index * 10_000 + attempt``
  with ``seed`` in [0, 999], ``task_index`` in [0, 99], ``attempt`` in [0, 9_999]  ->  always < 10**9;
* evaluation:      ``eval_seed(task_index, trial) = 1_000_000_000 + task_index * 10_000 + trial``  ->  >= 10**9.

The two ranges never overlap, whatever ``--seed`` the demos were generated with.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from AlphaBrain.utils.errors import UserError, unknown_name


@dataclass(frozen=True)
class MetaWorldTaskSpec:
    env_name: str      # Meta-World environment, e.g. "drawer-open-v3"
    instruction: str   # the language instruction of the task (its slug is the task name in a stream)
    max_steps: int     # episode limit: ~1.5x the scripted expert's typical episode length


# Measured with the scripted experts over 30 randomized layouts (docs/benchmarks/metaworld.md):
# max_steps = max(1.5 x the mean expert length, the longest expert episode + 10), rounded up to a multiple of 10.
TASKS: dict[str, MetaWorldTaskSpec] = {
    spec.env_name: spec
    for spec in (
        # the metaworld_cl5 / metaworld_cl10 tasks
        MetaWorldTaskSpec("button-press-topdown-v3", "press the button down from above", 100),
        MetaWorldTaskSpec("drawer-open-v3", "pull the drawer open", 140),
        MetaWorldTaskSpec("window-open-v3", "slide the window open", 140),
        MetaWorldTaskSpec("faucet-open-v3", "turn the faucet on", 100),
        MetaWorldTaskSpec("plate-slide-v3", "slide the plate into the goal", 80),
        MetaWorldTaskSpec("door-close-v3", "swing the door closed", 100),
        MetaWorldTaskSpec("window-close-v3", "slide the window closed", 130),
        MetaWorldTaskSpec("faucet-close-v3", "turn the faucet off", 100),
        MetaWorldTaskSpec("lever-pull-v3", "pull the lever up", 120),
        MetaWorldTaskSpec("plate-slide-side-v3", "slide the plate sideways into the goal", 80),
        # measured candidates left out of the streams (docs/benchmarks/metaworld.md says why)
        MetaWorldTaskSpec("door-open-v3", "swing the door open", 130),
        MetaWorldTaskSpec("drawer-close-v3", "push the drawer closed", 120),
        MetaWorldTaskSpec("handle-press-v3", "press the handle down", 60),
        MetaWorldTaskSpec("reach-v3", "move the gripper to the goal", 80),
        MetaWorldTaskSpec("push-v3", "push the puck to the goal", 100),
        MetaWorldTaskSpec("button-press-v3", "push the button in from the front", 90),
        MetaWorldTaskSpec("coffee-button-v3", "press the button on the coffee machine", 60),
        MetaWorldTaskSpec("peg-unplug-side-v3", "unplug the peg from the side", 180),
        MetaWorldTaskSpec("sweep-into-v3", "sweep the puck into the hole", 80),
    )
}

METAWORLD_STREAMS: dict[str, list[str]] = {
    # The quick default: five different scenes, short expert episodes.
    "metaworld_cl5": [
        "button-press-topdown-v3",
        "drawer-open-v3",
        "window-open-v3",
        "faucet-open-v3",
        "plate-slide-v3",
    ],
    # cl5 + five more; three reuse a cl5 scene with another goal (window, faucet, plate): a deliberate conflict.
    "metaworld_cl10": [
        "button-press-topdown-v3",
        "drawer-open-v3",
        "window-open-v3",
        "faucet-open-v3",
        "plate-slide-v3",
        "door-close-v3",
        "window-close-v3",
        "faucet-close-v3",
        "lever-pull-v3",
        "plate-slide-side-v3",
    ],
}

STREAM_DESCRIPTIONS: dict[str, str] = {
    "metaworld_cl5": "Meta-World CL5: 5 short manipulation tasks in 5 different scenes (generated expert demos).",
    "metaworld_cl10": (
        "Meta-World CL10: the 5 CL5 tasks, then 5 more; three of them reuse a CL5 scene with another goal."
    ),
}

_REPO_ROOT = Path(__file__).resolve().parents[3]

MAX_SEED = 999
MAX_TASKS = 100
MAX_ATTEMPTS = 10_000
TRAIN_SEED_STRIDE = 1_000_000
TASK_SEED_STRIDE = 10_000
EVAL_SEED_BASE = 1_000_000_000


def task_spec(env_name: str) -> MetaWorldTaskSpec:
    """The catalog entry of `env_name`; a Meta-World env outside the catalog gets a generic one."""
    if env_name in TASKS:
        return TASKS[env_name]
    words = env_name.removesuffix("-v3").replace("-", " ")
    return MetaWorldTaskSpec(env_name, f"perform the {words} task", 500)


def stream_env_names(stream: str) -> list[str]:
    if stream not in METAWORLD_STREAMS:
        raise unknown_name("Meta-World stream", stream, METAWORLD_STREAMS)
    return list(METAWORLD_STREAMS[stream])


def train_seed(seed: int, task_index: int, attempt: int) -> int:
    """Layout seed of the `attempt`-th demo attempt of the task at `task_index`; always < EVAL_SEED_BASE."""
    if not 0 <= int(seed) <= MAX_SEED:
        raise UserError(f"--seed must be in 0..{MAX_SEED} (it selects the training layouts), got {seed}")
    if not 0 <= task_index < MAX_TASKS or not 0 <= attempt < MAX_ATTEMPTS:
        raise ValueError(f"need 0 <= task_index < {MAX_TASKS} and 0 <= attempt < {MAX_ATTEMPTS}, "
                         f"got {task_index}, {attempt}")
    return int(seed) * TRAIN_SEED_STRIDE + task_index * TASK_SEED_STRIDE + attempt


def eval_seed(task_index: int, trial: int) -> int:
    """Layout seed of evaluation trial `trial` of the task at `task_index`; always >= EVAL_SEED_BASE."""
    if not 0 <= task_index < MAX_TASKS or not 0 <= trial < TASK_SEED_STRIDE:
        raise ValueError(f"need 0 <= task_index < {MAX_TASKS} and 0 <= trial < {TASK_SEED_STRIDE}, "
                         f"got {task_index}, {trial}")
    return EVAL_SEED_BASE + task_index * TASK_SEED_STRIDE + trial


def is_eval_seed(seed: int) -> bool:
    return seed >= EVAL_SEED_BASE


def data_root() -> Path:
    """Where generated datasets go: $ALPHABRAIN_DATA_DIR, else <repo>/playground/datasets."""
    env = os.environ.get("ALPHABRAIN_DATA_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    return _REPO_ROOT / "playground" / "datasets"


def default_dataset_dir(stream: str) -> Path:
    """The default dataset directory of a stream: data_root() / <stream>."""
    stream_env_names(stream)  # unknown stream: the standard error listing the valid ones
    return data_root() / stream
