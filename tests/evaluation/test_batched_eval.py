"""--envs-per-worker M: lockstep rollouts with one batched policy call give exactly the episodes of M = 1."""

import json
import socket

import pytest

from AlphaBrain.evaluation import batched_rollout, rollout
from AlphaBrain.evaluation.batched_rollout import CellGroup, evaluate_cells, group_cells
from AlphaBrain.evaluation.cl_eval import evaluate_run
from AlphaBrain.evaluation.rollout import CellJob, evaluate_cell, init_worker
from AlphaBrain.utils.errors import UserError


def _episodes(out, matrix):
    """(checkpoint, task) -> [(seed, success, steps)] from the results.json files."""
    cells = {}
    for ckpt in matrix["checkpoints"]:
        for task, entry in json.loads((out / ckpt / "results.json").read_text()).items():
            cells[ckpt, task] = [(e["seed"], e["success"], e["steps"]) for e in entry["episodes"]]
    return cells


def test_envs_per_worker_gives_the_matrix_of_one_env(push_run, tmp_path, monkeypatch):
    calls = []
    real = batched_rollout._infer_many
    monkeypatch.setattr(batched_rollout, "_infer_many", lambda policy, obs: calls.append(len(obs)) or real(policy, obs))
    runs = {}
    for m in (1, 4, 3):  # 3 does not divide the 5 trials of a cell
        out = tmp_path / f"m{m}"
        result = evaluate_run(push_run, "synthetic_push3", trials=5, out_dir=out, envs_per_worker=m, max_steps=12)
        runs[m] = (result["matrix"]["success"], _episodes(out, result["matrix"]))
        assert (m == 1) == (not calls)  # M = 1 is the per-cell path of before
        assert max(calls, default=1) <= m
        calls.clear()
    assert runs[4] == runs[1] and runs[3] == runs[1]
    assert any(s for cell in runs[1][1].values() for _, s, _ in cell)  # something to compare: some successes


def test_cells_are_grouped_to_fill_the_envs_and_keep_every_worker_busy():
    cells = [CellJob("c", i, f"t{i}", "go", [1, 2, 3], 5) for i in range(6)]
    assert [len(g.cells) for g in group_cells(cells, 4, 1)] == [2, 2, 2]  # ceil(4 / 3 trials) cells per group
    assert [len(g.cells) for g in group_cells(cells, 16, 2)] == [3, 3]   # not all in one: two workers
    assert [len(g.cells) for g in group_cells(cells, 1, 1)] == [1] * 6
    assert group_cells(cells[:1], 16, 1)[0].envs == 16


def test_a_bad_chunk_fails_only_the_unfinished_cells_of_a_group(push_run, monkeypatch):
    init_worker(str(push_run), "synthetic_push3", "inprocess", [], 4, 0)
    from AlphaBrain.benchmarks import get_suite

    suite = get_suite("synthetic_push3")
    jobs = [CellJob("last", i, t.name, t.instruction, [suite.eval_seed(i, k) for k in range(2)], 3)
            for i, t in enumerate(suite.tasks)]
    answered = []

    def short_after_first_cell(policy, observations):
        answered.append(len(observations))
        replies = policy.infer_batch(observations)
        if sum(answered) > 2:  # the first cell's two episodes (3 steps < one 4-action chunk) had theirs
            replies[0] = {"actions": replies[0]["actions"][:, :2]}
        return replies

    monkeypatch.setattr(batched_rollout, "_infer_many", short_after_first_cell)
    outs = evaluate_cells(CellGroup(jobs, 2))
    assert "episodes" in outs[0] and len(outs[0]["episodes"]) == 2
    assert all("expected (horizon, 4)" in o["error"] for o in outs[1:])


def test_envs_per_worker_below_one_is_a_user_error(push_run, tmp_path):
    with pytest.raises(UserError, match=r"--envs-per-worker must be an integer >= 1, got 0"):
        evaluate_run(push_run, "synthetic_push3", trials=1, out_dir=tmp_path / "e", envs_per_worker=0)


class _Recording:
    """The worker's policy, noting every observation it is asked about (to compare whole trajectories)."""

    def __init__(self, policy, seen):
        self.policy, self.seen, self.metadata = policy, seen, policy.metadata

    def infer(self, obs):
        return self.infer_batch([obs])[0]

    def infer_batch(self, batch):
        self.seen += [(o["prompt"], o["state"].tobytes(), o["images"][0].tobytes()) for o in batch]
        return [self.policy.infer(o) for o in batch]  # row by row: bit-identical actions whatever M is


def test_metaworld_lockstep_episodes_equal_one_env_at_a_time(push_run, monkeypatch):
    """The built-in Meta-World suite (real MuJoCo envs, rendered frames) through the worker functions.

    The tiny run is trained on the synthetic push stream, whose shapes (1 camera, state 4, action 4)
    are Meta-World's: evaluate_run would refuse the pairing (other task names), the workers do not care.
    """
    pytest.importorskip("metaworld")
    from mujoco import gl_context

    if gl_context.GLContext is None:
        pytest.skip("no OpenGL backend for MuJoCo (set MUJOCO_GL=egl)")
    from AlphaBrain.benchmarks import get_suite

    checkpoint = sorted(p.name for p in (push_run / "checkpoints").glob("task_2_*_pytorch_model.pt"))[0]
    checkpoint = checkpoint.removesuffix("_pytorch_model.pt")
    init_worker(str(push_run), "metaworld_cl5", "inprocess", [], 4, 0)
    suite = get_suite("metaworld_cl5")
    jobs = [CellJob(checkpoint, i, suite.tasks[i].name, suite.tasks[i].instruction,
                    [suite.eval_seed(i, k) for k in range(3)], 10) for i in (0, 4)]
    seen = {}
    real = rollout._policy_for

    def recording(m):
        seen[m] = []
        monkeypatch.setattr(rollout, "_policy_for", lambda ckpt: _Recording(real(ckpt), seen[m]))
        monkeypatch.setattr(batched_rollout, "_policy_for", rollout._policy_for)

    recording(1)
    one = [evaluate_cell(job) for job in jobs]
    batched = {}
    for m in (4, 3):
        recording(m)
        batched[m] = evaluate_cells(CellGroup(jobs, m))

    def key(cells):
        assert all("error" not in c for c in cells), cells
        return [[(e["seed"], e["success"], e["steps"]) for e in c["episodes"]] for c in cells]

    assert key(batched[4]) == key(one) and key(batched[3]) == key(one)
    # every state and frame the policy saw, in some order: the same trajectories, not only the same outcomes
    assert sorted(seen[4]) == sorted(seen[1]) and sorted(seen[3]) == sorted(seen[1]) and len(seen[1]) == 6 * 3


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_envs_per_worker_through_a_batching_policy_server(push_run, tmp_path):
    local = evaluate_run(push_run, "synthetic_push3", trials=3, out_dir=tmp_path / "local", last_only=True,
                         max_steps=12)
    served = evaluate_run(push_run, "synthetic_push3", trials=3, out_dir=tmp_path / "served", last_only=True,
                          max_steps=12, mode="server", port_base=_free_port(), envs_per_worker=4)
    assert _episodes(tmp_path / "served", served["matrix"]) == _episodes(tmp_path / "local", local["matrix"])
    log = (tmp_path / "served" / served["matrix"]["checkpoints"][0] / "server.log").read_text()
    assert "batching: requests within 5 ms share a forward" in log
