"""ReplayBuffer statistics and state: reservoir uniformity, balanced draws, the max(2, .) rule, exact restore."""

import json

import numpy as np
import pytest

from AlphaBrain.training.continual_learning.algorithms import ER, ReplayBuffer
from AlphaBrain.training.continual_learning.algorithms.rehearsal_based.er import num_replay_samples
from AlphaBrain.training.continual_learning.algorithms.replay_buffer import reservoir_indices
from AlphaBrain.utils.errors import ConfigError


class FakeTaskDataset:
    """A task view: sample i of task t has ref (t, i // 10, i % 10)."""

    def __init__(self, task, n):
        self.task, self.n = task, n
        self.base_dataset = self

    def __len__(self):
        return self.n

    def ref(self, i):
        return (self.task, i // 10, i % 10)

    def get_ref(self, ref):
        return {"ref": tuple(ref), "action": np.zeros((2, 2), np.float32)}


def test_reservoir_is_uniform():
    n, k, trials = 20, 5, 4000
    counts = np.zeros(n)
    for seed in range(trials):
        idx = reservoir_indices(n, k, np.random.default_rng(seed))
        assert len(set(idx.tolist())) == k
        counts[idx] += 1
    freq = counts / trials
    # Each item is kept with probability k/n = 0.25; 4000 trials -> std ~0.007.
    assert np.all(np.abs(freq - k / n) < 0.03), freq


def test_reservoir_keeps_everything_when_it_fits():
    assert reservoir_indices(3, 10, np.random.default_rng(0)).tolist() == [0, 1, 2]


def make_buffer(sizes=(30, 60, 90), per_task=1000):
    buf = ReplayBuffer(buffer_size_per_task=per_task, seed=3)
    for t, n in enumerate(sizes):
        buf.populate_from_dataset(t, FakeTaskDataset(t, n))
    return buf


def test_population_caps_per_task_and_stores_references():
    buf = make_buffer(per_task=40)
    assert [buf.get_task_size(t) for t in buf.get_task_ids()] == [30, 40, 40]
    assert buf.nbytes() == 24 * len(buf)  # three int64 per stored sample, no decoded tensors


def test_no_size_keeps_every_frame_and_survives_a_round_trip():
    buf = make_buffer(sizes=(30, 60), per_task=None)
    assert [buf.get_task_size(t) for t in buf.get_task_ids()] == [30, 60]
    assert buf._refs[1].tolist() == [[1, i // 10, i % 10] for i in range(60)]
    restored = ReplayBuffer(buffer_size_per_task=5)
    restored.load_state_dict(json.loads(json.dumps(buf.state_dict())))
    assert restored.buffer_size_per_task is None and len(restored) == 90


@pytest.mark.parametrize("size", [0, -1, 2.5, True])
def test_bad_size_names_the_key(size):
    with pytest.raises(ConfigError, match=r"buffer_size_per_task must be an integer >= 1"):
        ReplayBuffer(buffer_size_per_task=size)


def test_balanced_draws_are_equal_per_task():
    buf = make_buffer()
    refs = buf.sample_balanced_refs(30)
    tasks = [t for t, _ in refs]
    assert [tasks.count(t) for t in range(3)] == [10, 10, 10]
    uneven = [t for t, _ in buf.sample_balanced_refs(31)]
    assert sorted(uneven.count(t) for t in range(3)) == [10, 10, 11]


def test_uniform_draws_follow_task_sizes():
    buf = make_buffer()
    tasks = np.array([t for _ in range(300) for t, _ in buf.sample_refs(20)])
    share = np.bincount(tasks, minlength=3) / len(tasks)
    assert np.allclose(share, [1 / 6, 2 / 6, 3 / 6], atol=0.03), share


def test_decoded_samples_carry_task_id_and_come_from_the_source():
    buf = make_buffer()
    for s in buf.sample(8):
        assert s["ref"][0] == s["task_id"]


@pytest.mark.parametrize(
    "batch,ratio,expected", [(4, 0.3, 2), (10, 0.3, 3), (64, 0.3, 19), (3, 0.3, 2), (16, 0.05, 2), (2, 0.5, 1), (1, 0.5, 0)]
)
def test_replay_count_rule(batch, ratio, expected):
    assert num_replay_samples(batch, ratio) == expected


def test_er_modify_batch_replaces_tail_only_when_buffer_has_data():
    er = ER(buffer_size_per_task=50, replay_batch_ratio=0.3)
    batch = [{"i": i} for i in range(10)]
    assert er.modify_batch(batch, 0) == batch  # empty buffer: untouched
    er.buffer.populate_from_dataset(0, FakeTaskDataset(0, 100))
    mixed = er.modify_batch(batch, 1)
    assert len(mixed) == 10 and mixed[:7] == batch[:7]
    assert all("ref" in s for s in mixed[7:])


def test_state_dict_restores_identical_buffer_and_rng():
    buf = make_buffer(per_task=25)
    buf.sample_refs(5)  # advance the sampling RNG
    state = json.loads(json.dumps(buf.state_dict()))  # must survive JSON
    restored = ReplayBuffer(buffer_size_per_task=1)
    restored.load_state_dict(state)
    restored.attach_source(FakeTaskDataset(0, 1))
    assert restored.get_task_ids() == buf.get_task_ids()
    for t in buf.get_task_ids():
        assert np.array_equal(restored._refs[t], buf._refs[t])
    assert restored.sample_refs(12) == buf.sample_refs(12)
    assert restored.sample_balanced_refs(9) == buf.sample_balanced_refs(9)


def test_population_of_a_task_does_not_depend_on_history():
    a = ReplayBuffer(buffer_size_per_task=10, seed=5)
    a.populate_from_dataset(1, FakeTaskDataset(1, 500))
    b = ReplayBuffer(buffer_size_per_task=10, seed=5)
    b.populate_from_dataset(0, FakeTaskDataset(0, 300))
    b.sample_refs(50)
    b.populate_from_dataset(1, FakeTaskDataset(1, 500))
    assert np.array_equal(a._refs[1], b._refs[1])
