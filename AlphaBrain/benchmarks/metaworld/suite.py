"""The Meta-World evaluation suites (one per stream of tasks.py)."""

from __future__ import annotations

from AlphaBrain.benchmarks.metaworld.tasks import (
    STREAM_DESCRIPTIONS,
    default_dataset_dir,
    eval_seed,
    stream_env_names,
    task_spec,
)
from AlphaBrain.benchmarks.suite_types import Suite, SuiteTask, slugify


def suite_tasks(stream: str) -> list[SuiteTask]:
    tasks = []
    for env_name in stream_env_names(stream):
        spec = task_spec(env_name)
        tasks.append(SuiteTask(slugify(spec.instruction), env_name, spec.instruction, spec.max_steps))
    return tasks


def _make_env(task: SuiteTask, image_size: tuple[int, int]):
    from AlphaBrain.benchmarks.metaworld.env import MetaWorldEnv

    return MetaWorldEnv(task.env_name, image_size=image_size, max_steps=task.max_steps, instruction=task.instruction)


def metaworld_suite(stream: str) -> Suite:
    return Suite(
        stream,
        suite_tasks(stream),
        _make_env,
        eval_seed_fn=eval_seed,
        dataset_dir_fn=lambda: default_dataset_dir(stream),
        description=STREAM_DESCRIPTIONS.get(stream, ""),
    )
