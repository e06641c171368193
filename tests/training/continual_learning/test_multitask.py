"""Multitask (joint) training: every frame of finished tasks kept, the union sampled uniformly, exact restore."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from AlphaBrain.training.continual_learning.algorithms import Multitask, get_algorithm_class
from AlphaBrain.training.continual_learning.algorithms.rehearsal_based.multitask import memory_share
from AlphaBrain.training.continual_learning.algorithms.rehearsal_based.task_memory import TaskEndMemory
from AlphaBrain.utils.errors import ConfigError


class FakeTaskDataset:
    """Sample i of task t has ref (t, i, 0)."""

    def __init__(self, task, n):
        self.task, self.n = task, n
        self.base_dataset = self

    def __len__(self):
        return self.n

    def ref(self, i):
        return (self.task, i, 0)

    def get_ref(self, ref):
        return {"ref": tuple(ref)}


def ctx(task, n):
    return SimpleNamespace(task_id=task, task_dataset=FakeTaskDataset(task, n))


def run_tasks(algo, sizes):
    for t, n in enumerate(sizes[:-1]):
        algo.on_task_start(ctx(t, n))
        algo.on_task_end(ctx(t, n))
    algo.on_task_start(ctx(len(sizes) - 1, sizes[-1]))


def current_batch(task, size):
    return [{"ref": (task, -1, 0)} for _ in range(size)]


def test_registered_under_both_names():
    assert get_algorithm_class("multitask") is Multitask
    assert get_algorithm_class("joint") is Multitask


def test_memory_share_samples_the_union_uniformly():
    assert memory_share(64, 0, 100) == 0  # first task: nothing stored
    assert memory_share(64, 100, 100) == 32  # one stored task as large as the current one: half
    assert memory_share(64, 400, 100) == 51  # four stored tasks: 4/5 of 64
    assert memory_share(4, 10_000, 1) == 3  # at least one current sample survives
    assert memory_share(1, 100, 100) == 0


def test_every_frame_of_finished_tasks_is_kept():
    algo = Multitask.from_config({})
    algo.bind_runtime(seed=0)
    run_tasks(algo, [30, 50, 20])
    assert isinstance(algo, TaskEndMemory) and algo.buffer.buffer_size_per_task is None
    assert [algo.buffer.get_task_size(t) for t in (0, 1)] == [30, 50]
    assert all(len(set(map(tuple, algo.buffer._refs[t].tolist()))) == n for t, n in ((0, 30), (1, 50)))


def test_batches_draw_uniformly_over_the_union():
    algo = Multitask.from_config({})
    algo.bind_runtime(seed=0)
    run_tasks(algo, [100, 300, 100])  # union of 500 frames: 1/5 task 0, 3/5 task 1, 1/5 current
    counts = np.zeros(3)
    for _ in range(200):
        for sample in algo.modify_batch(current_batch(2, 50), 2):
            task = sample["ref"][0]
            counts[task] += 1
    share = counts / counts.sum()
    np.testing.assert_allclose(share, [0.2, 0.6, 0.2], atol=0.02)


def test_balanced_sampling_gives_each_task_an_equal_share():
    algo = Multitask.from_config({"balanced_sampling": True})
    algo.bind_runtime(seed=0)
    run_tasks(algo, [100, 300, 100])
    counts = np.zeros(3)
    for _ in range(200):
        for sample in algo.modify_batch(current_batch(2, 60), 2):
            counts[sample["ref"][0]] += 1
    np.testing.assert_allclose(counts / counts.sum(), [1 / 3] * 3, atol=0.02)


def test_state_round_trip_restores_memory_and_sampling(tmp_path):
    algo = Multitask.from_config({})
    algo.bind_runtime(seed=5)
    run_tasks(algo, [40, 40, 40])
    state = json.loads(json.dumps(algo.state_dict()))
    restored = Multitask.from_config({})
    restored.bind_runtime(seed=5)
    restored.load_state_dict(state)
    restored.on_task_start(ctx(2, 40))  # what the trainer does right after restoring
    assert restored.buffer.get_task_size(0) == 40 and restored.buffer.buffer_size_per_task is None
    assert algo.modify_batch(current_batch(2, 16), 2) == restored.modify_batch(current_batch(2, 16), 2)
    restored.on_task_end(ctx(2, 70))  # a later task is stored whole too
    assert restored.buffer.get_task_size(2) == 70


def test_bad_hyperparameters_name_the_key():
    with pytest.raises(ConfigError, match="balanced_sampling"):
        Multitask.from_config({"balanced_sampling": "yes"})
    with pytest.raises(ConfigError, match="buffer_size_per_task"):
        Multitask.from_config({"buffer_size_per_task": 10})


def stream_ctx(task, sizes):
    tasks = tuple(FakeTaskDataset(t, n) for t, n in enumerate(sizes))
    return SimpleNamespace(task_id=task, task_dataset=tasks[task], stream_tasks=tasks, num_tasks=len(sizes))


def task_shares(algo, task, batch_size, sizes, rounds=200):
    algo.on_task_start(stream_ctx(task, sizes))
    counts = np.zeros(len(sizes))
    for _ in range(rounds):
        for sample in algo.modify_batch(current_batch(task, batch_size), task):
            counts[sample["ref"][0]] += 1
    return counts / counts.sum()


@pytest.mark.parametrize("task", [0, 1, 2])
def test_whole_stream_draws_every_task_of_the_stream_from_the_first_step(task):
    # Union of 500 frames: 1/5 task 0, 3/5 task 1, 1/5 task 2, whichever task is current; the current
    # task is not drawn from memory as well, so its share is not doubled.
    sizes = [100, 300, 100]
    algo = Multitask.from_config({"whole_stream": True})
    algo.bind_runtime(seed=0)
    for earlier in range(task):
        algo.on_task_start(stream_ctx(earlier, sizes))
        algo.on_task_end(stream_ctx(earlier, sizes))
    np.testing.assert_allclose(task_shares(algo, task, 50, sizes), [0.2, 0.6, 0.2], atol=0.02)
    assert [algo.buffer.get_task_size(t) for t in range(3)] == sizes


def test_whole_stream_with_balanced_sampling_gives_every_task_an_equal_share():
    algo = Multitask.from_config({"whole_stream": True, "balanced_sampling": True})
    algo.bind_runtime(seed=0)
    np.testing.assert_allclose(task_shares(algo, 0, 60, [100, 300, 100]), [1 / 3] * 3, atol=0.02)


def test_whole_stream_state_round_trip_draws_the_same_batches():
    sizes = [40, 40, 40]
    algo = Multitask.from_config({"whole_stream": True})
    algo.bind_runtime(seed=5)
    algo.on_task_start(stream_ctx(0, sizes))
    algo.on_task_end(stream_ctx(0, sizes))
    restored = Multitask.from_config({"whole_stream": True})
    restored.bind_runtime(seed=5)
    restored.load_state_dict(json.loads(json.dumps(algo.state_dict())))
    algo.on_task_start(stream_ctx(1, sizes))
    restored.on_task_start(stream_ctx(1, sizes))
    assert algo.modify_batch(current_batch(1, 16), 1) == restored.modify_batch(current_batch(1, 16), 1)
