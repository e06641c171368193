"""Closed-loop evaluation on the synthetic push suite: matrix layout, resume, failures, server mode."""

import json
import shutil

import numpy as np
import pytest

from AlphaBrain.evaluation import cl_eval, rollout
from AlphaBrain.evaluation.cl_eval import evaluate_run
from AlphaBrain.utils.errors import UserError


def test_full_matrix_layout(push_run, tmp_path):
    out = tmp_path / "eval"
    result = evaluate_run(push_run, "synthetic_push3", trials=2, out_dir=out)
    matrix = json.loads((out / "matrix.json").read_text())
    assert matrix["train_order"] == [t["name"] for t in json.loads((push_run / "stream.json").read_text())["tasks"]]
    assert len(matrix["checkpoints"]) == 3 and np.asarray(matrix["success"], dtype=float).shape == (3, 3)
    for ckpt in matrix["checkpoints"]:
        results = json.loads((out / ckpt / "results.json").read_text())
        assert set(results) == set(matrix["eval_tasks"])
        for entry in results.values():
            assert entry["trials"] == 2 and len(entry["seeds"]) == 2 and 0.0 <= entry["success_rate"] <= 1.0
            assert {"seed", "success", "steps", "seconds"} <= set(entry["episodes"][0])
        assert (out / ckpt / "eval.log").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"asr", "bwt", "forgetting"} <= set(metrics) and metrics["bwt"] is not None
    assert (out / "matrix.png").stat().st_size > 0
    assert result["metrics"] == metrics


def test_last_only_gives_asr_and_null_bwt(push_run, tmp_path):
    result = evaluate_run(push_run, "synthetic_push3", trials=1, out_dir=tmp_path / "e", last_only=True)
    assert len(result["matrix"]["checkpoints"]) == 1
    assert result["metrics"]["asr"] is not None and result["metrics"]["bwt"] is None


def test_eval_resumes_skipping_finished_cells(push_run, tmp_path, monkeypatch):
    out = tmp_path / "eval"
    evaluate_run(push_run, "synthetic_push3", trials=1, out_dir=out)
    ckpt = json.loads((out / "matrix.json").read_text())["checkpoints"][1]
    results = json.loads((out / ckpt / "results.json").read_text())
    dropped = sorted(results)[0]
    del results[dropped]
    (out / ckpt / "results.json").write_text(json.dumps(results))
    (out / ckpt / "cells" / f"{dropped}.json").unlink()

    ran = []
    real = rollout.evaluate_cell
    monkeypatch.setattr(cl_eval, "evaluate_cell", lambda job: ran.append((job.checkpoint, job.task_name)) or real(job))
    evaluate_run(push_run, "synthetic_push3", trials=1, out_dir=out)
    assert ran == [(ckpt, dropped)]


def test_wrong_action_shape_fails_the_cell_and_the_rest_goes_on(push_run, tmp_path, monkeypatch):
    from AlphaBrain.deployment import policy as policy_mod

    real_load = policy_mod.load_policy

    class Broken:
        def __init__(self, inner):
            self.inner, self.metadata = inner, inner.metadata

        def infer(self, obs):
            if obs["prompt"].startswith("push the green"):
                return {"actions": np.zeros((8, 3), np.float32)}
            return self.inner.infer(obs)

    monkeypatch.setattr(policy_mod, "load_policy", lambda *a, **k: Broken(real_load(*a, **k)))
    rollout._WORKER.clear()
    result = evaluate_run(push_run, "synthetic_push3", trials=1, out_dir=tmp_path / "e", last_only=True)
    ckpt = result["matrix"]["checkpoints"][0]
    results = json.loads((tmp_path / "e" / ckpt / "results.json").read_text())
    failed = [name for name, entry in results.items() if entry.get("error")]
    assert failed == ["push_the_green_block_right"]
    assert "shape (8, 3)" in results["push_the_green_block_right"]["error"]
    assert sum(entry["success_rate"] is not None for entry in results.values()) == 2


def test_bad_inputs(push_run, tmp_path):
    with pytest.raises(UserError, match="Unknown suite.*metaworld_cl5"):
        evaluate_run(push_run, "metaworld_cl3", trials=1, out_dir=tmp_path / "a")
    with pytest.raises(UserError, match="No run directory.*Runs in"):
        evaluate_run(push_run.parent / "nope", "synthetic_push3", trials=1, out_dir=tmp_path / "a")
    bare = tmp_path / "runs" / "bare"
    (bare / "checkpoints").mkdir(parents=True)
    with pytest.raises(UserError, match="No complete task checkpoint"):
        evaluate_run(bare, "synthetic_push3", trials=1, out_dir=tmp_path / "a")
    nostats = tmp_path / "runs" / "nostats"
    shutil.copytree(push_run, nostats)
    (nostats / "dataset_statistics.json").unlink()
    with pytest.raises(UserError, match="dataset_statistics.json.*compute_dataset_statistics.py"):
        evaluate_run(nostats, "synthetic_push3", trials=1, out_dir=tmp_path / "a")


@pytest.mark.slow
def test_two_workers_through_policy_servers(push_run, tmp_path):
    out = tmp_path / "eval"
    result = evaluate_run(push_run, "synthetic_push3", trials=2, out_dir=out, workers=2, last_only=True,
                          mode="server", port_base=_free_port_pair())
    ckpt = result["matrix"]["checkpoints"][0]
    assert (out / ckpt / "server.log").read_text()
    results = json.loads((out / ckpt / "results.json").read_text())
    assert all(entry["trials"] == 2 for entry in results.values())


def _free_port_pair():
    import socket

    for base in range(20000, 30000, 7):
        ok = True
        for port in (base, base + 1):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
        if ok:
            return base
    raise RuntimeError("no free port pair")


def test_cli_prints_matrix_and_metrics(push_run, tmp_path, capsys):
    code = cl_eval.main(["--run-id", push_run.name, "--run-root", str(push_run.parent), "--trials", "1",
                         "--last-only", "--output-base", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert code == 0 and "ASR" in out and "BWT" in out
    assert cl_eval.main(["--run-id", "nope", "--run-root", str(push_run.parent), "--suite", "synthetic_push3"]) == 2


def test_max_steps_caps_every_episode(push_run, tmp_path):
    out = tmp_path / "capped"
    result = evaluate_run(push_run, "synthetic_push3", trials=1, out_dir=out, last_only=True, max_steps=3)
    ckpt = result["matrix"]["checkpoints"][0]
    episodes = [e for entry in json.loads((out / ckpt / "results.json").read_text()).values() for e in entry["episodes"]]
    assert episodes and all(e["steps"] <= 3 for e in episodes)
    assert json.loads((out / "matrix.json").read_text())["max_steps"] == 3
    with pytest.raises(UserError, match="--max-steps must be >= 1"):
        evaluate_run(push_run, "synthetic_push3", trials=1, out_dir=out, max_steps=0)
