"""One evaluation split over shards (--shard K/N): cell files, the last shard assembles, --merge-only."""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from AlphaBrain.evaluation import cl_eval
from AlphaBrain.evaluation.cl_eval import evaluate_run
from AlphaBrain.evaluation.shards import shard_of, shard_range
from AlphaBrain.utils.errors import UserError

REPO = Path(__file__).resolve().parents[2]
EVAL_SH = "scripts/run_continual_learning_scripts/run_cl_eval.sh"
SUITE, TRIALS = "synthetic_push3", 2
ASSEMBLED = ("matrix.json", "metrics.json", "matrix.png")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ALPHABRAIN_PROG", "PYTHONPATH")}
    env.update(ALPHABRAIN_PYTHON=sys.executable, OMP_NUM_THREADS="1", MUJOCO_GL="egl")
    return env


def _success(out: Path) -> list:
    return json.loads((out / "matrix.json").read_text())["success"]


def _rates(out: Path, checkpoints: list[str]) -> dict:
    return {(c, task): (entry["success_rate"], [(e["seed"], e["success"], e["steps"]) for e in entry["episodes"]])
            for c in checkpoints for task, entry in json.loads((out / c / "results.json").read_text()).items()}


@pytest.fixture(scope="module")
def unsharded(push_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("unsharded")
    return out, evaluate_run(push_run, SUITE, trials=TRIALS, out_dir=out)["matrix"]


def test_two_shards_in_turn_equal_the_unsharded_matrix(push_run, unsharded, tmp_path, capsys):
    ref_out, ref = unsharded
    out = tmp_path / "sharded"
    args = ["--run-id", push_run.name, "--run-root", str(push_run.parent), "--suite", SUITE,
            "--trials", str(TRIALS), "--output-base", str(out)]
    assert cl_eval.main([*args, "--shard", "0/2"]) == 0
    assert "shard 0/2 done; 5 cell(s) still to come" in capsys.readouterr().out
    assert not any((out / name).exists() for name in ASSEMBLED)
    assert not list(out.glob("*/results.json"))
    assert cl_eval.main([*args, "--shard", "1/2"]) == 0
    assert "ASR" in capsys.readouterr().out  # the last shard assembled and printed the summary
    assert all((out / name).is_file() for name in ASSEMBLED)
    assert _success(out) == ref["success"]
    assert _rates(out, ref["checkpoints"]) == _rates(ref_out, ref["checkpoints"])

    cells = sorted(out.glob("*/cells/*.json"))
    assert len(cells) == 9
    cell = json.loads(cells[0].read_text())
    assert cell["params"] == {"suite": SUITE, "trials": TRIALS, "max_steps": None}
    assert cell["shard"] in ("0/2", "1/2") and len(cell["seeds"]) == TRIALS and len(cell["episodes"]) == TRIALS
    logs = {p.name for p in out.glob("*/*.log")}
    assert logs == {"eval.shard-0-of-2.log", "eval.shard-1-of-2.log"}
    assert {p.name for p in out.glob("workers*.log")} <= {"workers.shard-0-of-2.log", "workers.shard-1-of-2.log"}


def test_two_concurrent_shard_processes_give_the_whole_matrix(push_run, unsharded, tmp_path):
    out = tmp_path / "concurrent"
    cmd = [sys.executable, "-m", "AlphaBrain.evaluation.cl_eval", "--run-id", push_run.name, "--run-root",
           str(push_run.parent), "--suite", SUITE, "--trials", str(TRIALS), "--output-base", str(out)]
    procs = [subprocess.Popen([*cmd, "--shard", f"{k}/2"], cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for k in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert any("ASR" in stdout for stdout, _ in outputs)
    assert _success(out) == unsharded[1]["success"]


def test_merge_only_names_missing_cells_then_assembles(push_run, tmp_path, capsys, monkeypatch):
    out = tmp_path / "merge"
    args = ["--run-id", push_run.name, "--run-root", str(push_run.parent), "--suite", SUITE, "--trials", "1",
            "--output-base", str(out)]
    assert evaluate_run(push_run, SUITE, trials=1, out_dir=out, shard=(0, 2))["matrix"] is None
    capsys.readouterr()
    assert cl_eval.main([*args, "--merge-only"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"error: 5 of 9 cells are missing in {out}: ") and "and 1 more" in err
    assert "owned by shard 1/2" in err
    assert not any((out / name).exists() for name in ASSEMBLED)

    result = evaluate_run(push_run, SUITE, trials=1, out_dir=out, shard=(1, 2))
    assert result["matrix"] is not None
    for path in [*(out / name for name in ASSEMBLED), *out.glob("*/results.json")]:
        path.unlink()
    monkeypatch.setattr(cl_eval, "evaluate_cell", lambda job: pytest.fail("--merge-only evaluated a cell"))
    assert cl_eval.main([*args, "--merge-only"]) == 0
    assert _success(out) == result["matrix"]["success"]
    assert len(list(out.glob("*/results.json"))) == 3


def test_merge_only_with_other_parameters_finds_nothing(push_run, tmp_path):
    out = tmp_path / "params"
    evaluate_run(push_run, SUITE, trials=1, out_dir=out, last_only=True)
    with pytest.raises(UserError, match=r"3 of 3 cells are missing in .* \(3 of them have a cell file made with other --trials.*owned by shard 0/1"):
        evaluate_run(push_run, SUITE, trials=2, out_dir=out, last_only=True, merge_only=True)


def test_cells_of_an_older_results_json_are_reused(push_run, tmp_path, monkeypatch):
    out = tmp_path / "legacy"
    ckpt = evaluate_run(push_run, SUITE, trials=1, out_dir=out, last_only=True)["matrix"]["checkpoints"][0]
    for cell in (out / ckpt / "cells").iterdir():
        cell.unlink()
    monkeypatch.setattr(cl_eval, "evaluate_cell", lambda job: pytest.fail("a finished cell was evaluated again"))
    assert evaluate_run(push_run, SUITE, trials=1, out_dir=out, last_only=True)["matrix"] is not None
    assert len(list((out / ckpt / "cells").iterdir())) == 3


def test_cells_of_another_replan_every_are_evaluated_again_and_recorded(push_run, tmp_path, monkeypatch):
    out = tmp_path / "replan"
    evaluate_run(push_run, SUITE, trials=1, out_dir=out, last_only=True)  # the default, 4
    evaluated = []
    real = cl_eval.evaluate_cell
    monkeypatch.setattr(cl_eval, "evaluate_cell", lambda job: evaluated.append(job.task_name) or real(job))
    matrix = evaluate_run(push_run, SUITE, trials=1, out_dir=out, last_only=True, replan_every=2)["matrix"]
    assert len(evaluated) == 3 and matrix["replan_every"] == 2
    cells = [json.loads(p.read_text()) for p in (out / matrix["checkpoints"][0] / "cells").iterdir()]
    assert [c["params"] for c in cells] == [{"suite": SUITE, "trials": 1, "max_steps": None, "replan_every": 2}] * 3
    evaluate_run(push_run, SUITE, trials=1, out_dir=out, last_only=True, replan_every=2)
    assert len(evaluated) == 3  # the same value again: every cell reused


def test_bad_shard_values_are_usage_errors(tmp_path):
    def run(value):
        return subprocess.run(["bash", EVAL_SH, "--run-id", "r", "--shard", value, "--output-base",
                               str(tmp_path / "eval")], cwd=REPO, env=_env(), capture_output=True, text=True,
                              timeout=120)

    with ThreadPoolExecutor(3) as pool:
        done = dict(zip(("3/2", "abc", "1/0"), pool.map(run, ("3/2", "abc", "1/0"))))
    for value, proc in done.items():
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip() == (f"error: {EVAL_SH}: --shard must be K/N with N >= 1 and K in 0..N-1 "
                                       f"(shard K of N, e.g. 0/4), got '{value}' (see {EVAL_SH} --help)")
    assert not (tmp_path / "eval").exists()


@pytest.mark.parametrize("num_cells", [0, 1, 5, 9, 12, 100])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 16])
def test_shards_cover_every_cell_exactly_once(num_cells, n):
    owned = [i for k in range(n) for i in shard_range(num_cells, (k, n))]
    assert sorted(owned) == list(range(num_cells)) and len(owned) == len(set(owned))
    sizes = [len(shard_range(num_cells, (k, n))) for k in range(n)]
    assert max(sizes) - min(sizes) <= 1
    assert all(i in shard_range(num_cells, (shard_of(i, num_cells, n), n)) for i in range(num_cells))
