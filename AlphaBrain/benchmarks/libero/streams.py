"""The LIBERO training streams, declared for the stream registry (`alphabrain.streams` entry point).

The four suites read the common LeRobot conversions under $LEROBOT_LIBERO_DATA_DIR and train in
the suites' official task order, matched by task name whatever order a conversion gives its
task_index values; libero_goal_mini (5 tasks) and libero_goal_scripted (every LIBERO-Goal task with an
expert: all 10) read the demos the scripted experts generate on this machine.
"""

from __future__ import annotations

from AlphaBrain.benchmarks.libero.tasks import MINI_SUITE, SCRIPTED_SUITE, default_dataset_dir, suite_task_specs
from AlphaBrain.streams.registry import StreamSpec
from AlphaBrain.utils.text import slugify

_DESCRIPTIONS = {
    "libero_goal": "LIBERO-Goal: 10 goals in one kitchen scene, same objects, different instructions.",
    "libero_spatial": "LIBERO-Spatial: pick the same bowl from 10 different spatial layouts.",
    "libero_object": "LIBERO-Object: pick 10 different grocery objects into the basket.",
    "libero_10": "LIBERO-Long (libero_10): 10 long-horizon, multi-step tasks.",
    "libero_long": "LIBERO-Long (libero_10): 10 long-horizon, multi-step tasks.",
}


def _task_names(suite: str) -> tuple[str, ...]:
    return tuple(slugify(spec.instruction) for spec in suite_task_specs(suite))


def streams() -> list[StreamSpec]:
    out = [
        StreamSpec(name, base_data_mix=name, num_tasks=10, task_names=_task_names(name), description=text)
        for name, text in _DESCRIPTIONS.items()
    ]
    generated = {
        MINI_SUITE: "LIBERO-Goal mini: LIBERO-Goal tasks with demos from scripted experts, generated on this machine.",
        SCRIPTED_SUITE: "LIBERO-Goal scripted: the 10 LIBERO-Goal tasks with demos from scripted experts, generated "
                        "on this machine.",
    }
    for name, text in generated.items():
        tasks = _task_names(name)
        out.append(StreamSpec(
            name,
            base_data_mix=lambda name=name: str(default_dataset_dir(name)),
            num_tasks=len(tasks),
            task_names=tasks,
            description=text,
            missing_hint=f"generate the demos first: python -m AlphaBrain.benchmarks.libero.generate --stream {name}",
        ))
    return out
