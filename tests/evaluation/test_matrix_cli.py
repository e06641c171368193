"""matrix.json loading, column mapping by task name, and the compute_cl_matrix_metrics.py command line."""

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from AlphaBrain.evaluation import metrics as M
from AlphaBrain.evaluation.matrix import (
    aggregate_runs,
    final_per_task,
    format_matrix_table,
    load_matrix,
    metrics_json,
    read_stream_order,
    train_order_initial,
    train_order_matrix,
    write_matrix,
    write_metrics,
)
from AlphaBrain.evaluation.success_matrix import matrix_from_dict
from AlphaBrain.utils.errors import UserError
REPO_ROOT = Path(__file__).resolve().parents[2]

SCRIPT = REPO_ROOT / "scripts" / "run_continual_learning_scripts" / "compute_cl_matrix_metrics.py"

# Train order c, a, b; the matrix in train order (rows = after task k, columns = task i of the train order).
ORDER = ["c_task", "a_task", "b_task"]
ORDERED = np.array([
    [0.9, 0.1, 0.0],
    [0.5, 0.8, 0.2],
    [0.3, 0.6, 0.7],
])
CKPTS = ["task_0_id0_steps_100", "task_1_id1_steps_200", "task_2_id2_steps_300"]


def alphabetical(extra=None):
    """The same results as a matrix.json with eval_tasks in alphabetical order (a, b, c [, extra])."""
    eval_tasks = ["a_task", "b_task", "c_task"]
    cols = [ORDER.index(t) for t in eval_tasks]
    success = ORDERED[:, cols].tolist()
    if extra:
        eval_tasks.append(extra)
        for row, v in zip(success, [0.2, 0.3, 0.4]):
            row.append(v)
    return {"run_id": "r", "suite": "toy", "train_order": ORDER, "eval_tasks": eval_tasks,
            "checkpoints": CKPTS, "success": success}


@pytest.fixture(scope="module")
def cli():
    spec = importlib.util.spec_from_file_location("compute_cl_matrix_metrics", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


# ---- column and row mapping -------------------------------------------------------------------

def test_columns_are_permuted_into_train_order_by_name():
    m = matrix_from_dict(alphabetical())
    np.testing.assert_array_equal(train_order_matrix(m), ORDERED)
    got = metrics_json(m)
    want = M.compute_metrics(ORDERED)
    for key in M.SCALAR_METRICS:
        assert got[key] == want[key], key
    # BWT = ((0.3 - 0.9) + (0.6 - 0.8)) / 2 = -0.4 in train order; reading columns in file order would differ.
    assert got["bwt"] == pytest.approx(-0.4)
    assert got["num_tasks"] == 3 and got["num_checkpoints"] == 3 and got["last_only"] is False
    assert got["train_order"] == ORDER and got["extra_eval_tasks"] == {} and got["missing_eval_tasks"] == []


def test_an_eval_task_outside_the_stream_is_kept_aside():
    m = matrix_from_dict(alphabetical(extra="z_other"))
    np.testing.assert_array_equal(train_order_matrix(m), ORDERED)
    got = metrics_json(m)
    assert got["asr"] == pytest.approx(1.6 / 3)  # not (0.3 + 0.6 + 0.7 + 0.4) / 4
    assert got["extra_eval_tasks"] == {"z_other": pytest.approx(0.4)}  # final-checkpoint success


def test_a_trained_task_without_eval_column_is_nan():
    d = alphabetical()
    j = d["eval_tasks"].index("b_task")  # b is the last task trained
    d["eval_tasks"].pop(j)
    for row in d["success"]:
        row.pop(j)
    m = matrix_from_dict(d)
    a = train_order_matrix(m)
    assert np.isnan(a[:, 2]).all()
    got = metrics_json(m)
    assert got["missing_eval_tasks"] == ["b_task"]
    assert got["bwt"] == pytest.approx(-0.4) and got["forgetting"] == pytest.approx(0.4)  # need only tasks 0, 1
    assert got["asr"] == pytest.approx((0.3 + 0.6) / 2)  # over the evaluated tasks
    assert got["average_accuracy"] is None  # over all tasks


def test_rows_are_placed_by_checkpoint_name():
    d = alphabetical()
    d["checkpoints"] = [CKPTS[2], CKPTS[0], CKPTS[1]]
    d["success"] = [d["success"][2], d["success"][0], d["success"][1]]
    np.testing.assert_array_equal(train_order_matrix(matrix_from_dict(d)), ORDERED)


def test_last_only_matrix():
    d = alphabetical()
    d["checkpoints"], d["success"] = [CKPTS[2]], [d["success"][2]]
    m = matrix_from_dict(d)
    assert m.last_only
    a = train_order_matrix(m)
    assert np.isnan(a[:2]).all()
    np.testing.assert_array_equal(a[2], ORDERED[2])
    got = metrics_json(m)
    assert got["asr"] == pytest.approx(1.6 / 3)
    assert got["bwt"] is None and got["forgetting"] is None
    assert got["last_only"] is True and got["num_checkpoints"] == 1
    # Without checkpoint names a single row is the final checkpoint too.
    d.pop("checkpoints")
    assert matrix_from_dict(d).last_only


def test_initial_row_is_mapped_and_gives_forward_transfer():
    d = alphabetical()
    d["initial"] = [0.05, 0.1, 0.0]  # a, b, c -> in train order c, a, b: [0.0, 0.05, 0.1]
    m = matrix_from_dict(d)
    np.testing.assert_array_equal(train_order_initial(m), [0.0, 0.05, 0.1])
    # ((0.1 - 0.05) + (0.2 - 0.1)) / 2 = 0.075
    assert metrics_json(m)["forward_transfer"] == pytest.approx(0.075)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("success"), "missing key"),
    (lambda d: d.update(sucess=d.pop("success")), 'Did you mean "sucess"'),
    (lambda d: d["success"][0].pop(), "must be a list of 3 rates"),
    (lambda d: d["success"][1].__setitem__(0, 80.0), "divide by 100"),
    (lambda d: d["success"][1].__setitem__(0, "high"), "expected a rate"),
    (lambda d: d.update(eval_tasks=["x", "y", "z"]), "no eval task matches"),
    (lambda d: d.update(train_order=["c_task", "a_task", "a_task"]), "more than once"),
    (lambda d: d.update(checkpoints=CKPTS[:2]), "row k must be the checkpoint"),
    (lambda d: d.update(checkpoints=["task_0_x", "task_1_x", "task_7_x"]), "has only 3 tasks"),
    (lambda d: (d["success"].pop(), d.pop("checkpoints")), "2 rows for 3 tasks"),
    (lambda d: d.update(trials=-1), "'trials'"),
])
def test_malformed_matrix_is_a_user_error(change, message):
    d = alphabetical()
    change(d)
    with pytest.raises(UserError, match=message):
        matrix_from_dict(d)


def test_write_and_load_round_trip(tmp_path):
    m = matrix_from_dict(alphabetical(extra="z_other"))
    path = write_matrix(tmp_path / "eval", **m.to_dict())
    assert path == tmp_path / "eval" / "matrix.json"
    again = load_matrix(tmp_path / "eval")  # the dir works as well as the file
    np.testing.assert_array_equal(train_order_matrix(again), ORDERED)
    assert again.checkpoints == CKPTS and again.run_id == "r" and again.suite == "toy"
    # NaN is written as null.
    write_matrix(tmp_path / "n.json", train_order=["t"], eval_tasks=["t"], success=[[math.nan]])
    assert json.loads((tmp_path / "n.json").read_text())["success"] == [[None]]
    with pytest.raises(UserError):
        write_matrix(tmp_path / "bad.json", train_order=["t"], eval_tasks=["t"], success=[[2.0]])
    assert not (tmp_path / "bad.json").exists()
    # A matrix.json dict works too (as the evaluator builds it); its other keys are kept.
    d = alphabetical()
    d["last_only"] = False
    path = write_matrix(tmp_path / "d.json", d)
    assert json.loads(path.read_text())["last_only"] is False
    np.testing.assert_array_equal(train_order_matrix(load_matrix(path)), ORDERED)
    out = write_metrics(tmp_path / "eval", again)
    assert json.loads(out.read_text()) == json.loads(json.dumps(metrics_json(again)))


def test_load_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_matrix(tmp_path / "nope")
    with pytest.raises(UserError, match="has no matrix.json"):
        load_matrix(tmp_path)
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_matrix(tmp_path / "m.json")


def test_stream_order_from_stream_json(tmp_path):
    (tmp_path / "stream.json").write_text(json.dumps(
        {"name": "s", "tasks": [{"task_id": 0, "name": "c_task", "instruction": "c"},
                                {"task_id": 1, "name": "a_task", "instruction": "a"}]}))
    assert read_stream_order(tmp_path) == ["c_task", "a_task"]
    assert read_stream_order(tmp_path / "stream.json") == ["c_task", "a_task"]


def test_aggregate_runs():
    runs = [{"asr": 0.5, "bwt": -0.1}, {"asr": 0.7, "bwt": None}, {"asr": 0.6, "bwt": -0.3}]
    agg = aggregate_runs(runs)
    assert set(agg) == set(M.SCALAR_METRICS)
    # ASR: mean 0.6, sample std sqrt((0.01 + 0.01 + 0) / 2) = 0.1
    assert agg["asr"] == {"mean": pytest.approx(0.6), "std": pytest.approx(0.1), "n": 3}
    # BWT: None skipped -> mean -0.2, std sqrt((0.01 + 0.01) / 1)
    assert agg["bwt"] == {"mean": pytest.approx(-0.2), "std": pytest.approx(math.sqrt(0.02)), "n": 2}
    assert agg["forgetting"] == {"mean": None, "std": None, "n": 0}


def test_heatmap_and_curve_write_pngs(tmp_path):
    from AlphaBrain.evaluation.plots import plot_accuracy_over_time, plot_matrix_heatmap

    d = alphabetical(extra="z_other")
    d["initial"] = [0.0, 0.0, 0.0, 0.0]
    d["success"][2][1] = None  # a grey cell
    plot_matrix_heatmap(d, tmp_path / "h.png", title="t")
    plot_accuracy_over_time(d, tmp_path / "c.png")
    for name in ("h.png", "c.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png", "h.png"]  # no temp files left


# ---- command line -------------------------------------------------------------------------------

@pytest.fixture()
def eval_dir(tmp_path):
    write_matrix(tmp_path / "eval_cl" / "r", **matrix_from_dict(alphabetical(extra="z_other")).to_dict())
    return tmp_path / "eval_cl" / "r"


def test_human_output(cli, eval_dir, capsys):
    assert cli([str(eval_dir)]) == 0
    out = capsys.readouterr().out
    assert "ASR" in out and "53.3 %" in out  # (0.3 + 0.6 + 0.7) / 3
    assert "-40.0 pp" in out  # BWT
    assert "40.0 pp" in out and "forgetting" in out  # F, and BWT < 0 explained
    assert "z_other" in out


def test_json_output_is_exactly_metrics_json(cli, eval_dir, capsys):
    assert cli([str(eval_dir / "matrix.json"), "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out) == json.loads(json.dumps(metrics_json(load_matrix(eval_dir))))


def test_show_matrix(cli, eval_dir, capsys):
    assert cli([str(eval_dir), "--show-matrix"]) == 0
    out = capsys.readouterr().out
    # Row "after T1" in train order (c, a, b): 50.0 80.0 20.0, then the extra task's 30.0
    line = next(x for x in out.splitlines() if x.startswith("after T1"))
    assert line.split()[2:] == ["50.0", "80.0", "20.0", "30.0"]
    assert "T0: c_task" in out
    assert format_matrix_table(alphabetical(extra="z_other")) in out  # the same table from Python


def test_show_matrix_marks_missing_cells(cli, tmp_path, capsys):
    d = alphabetical()
    d["checkpoints"], d["success"] = [CKPTS[2]], [d["success"][2]]
    write_matrix(tmp_path, **matrix_from_dict(d).to_dict())
    assert cli([str(tmp_path), "--show-matrix"]) == 0
    out = capsys.readouterr().out
    assert next(x for x in out.splitlines() if x.startswith("after T0")).split()[2:] == ["—"] * 3
    assert "last-only" in out


def test_seeds_mean_and_std(cli, tmp_path, capsys):
    paths = []
    for s, last_row in enumerate(([0.3, 0.6, 0.7], [0.6, 0.6, 0.7])):
        a = ORDERED.copy()
        a[2] = last_row
        paths.append(write_matrix(tmp_path / f"s{s}", run_id=f"seed{s}", train_order=ORDER, eval_tasks=ORDER,
                                  checkpoints=CKPTS, success=a))
    # ASR: 1.6/3 = 53.33 % and 1.9/3 = 63.33 %: mean 58.3 %, sample std = 0.1/3 * sqrt(2) = 7.1 %
    assert cli([str(paths[0]), "--seeds", str(paths[1])]) == 0
    out = capsys.readouterr().out
    assert "58.3 ± 7.1" in out and "(n=2)" in out
    assert cli([str(paths[0]), "--seeds", str(paths[1]), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["aggregate"]["asr"]["mean"] == pytest.approx(1.75 / 3)
    assert data["aggregate"]["asr"]["n"] == 2 and len(data["runs"]) == 2


def test_seeds_per_task_after_the_last_task(cli, tmp_path, capsys):
    # Run 0: the full matrix (last row 0.3 0.6 0.7 in train order c, a, b). Run 1: last-only, columns in
    # alphabetical order, b_task not evaluated. Columns are matched by name, the gap is skipped.
    p0 = write_matrix(tmp_path / "s0", run_id="s0", train_order=ORDER, eval_tasks=ORDER, checkpoints=CKPTS,
                      success=ORDERED)
    p1 = write_matrix(tmp_path / "s1", run_id="s1", train_order=ORDER, eval_tasks=["a_task", "c_task"],
                      checkpoints=[CKPTS[2]], success=[[1.0, 0.5]])
    per_task = final_per_task([load_matrix(p0), load_matrix(p1)])
    assert list(per_task) == ORDER
    assert per_task["c_task"]["values"] == [0.3, 0.5] and per_task["c_task"]["mean"] == pytest.approx(0.4)
    assert per_task["a_task"]["std"] == pytest.approx(math.sqrt(0.08))  # 0.6 and 1.0
    assert per_task["b_task"] == {"values": [0.7, None], "mean": pytest.approx(0.7), "std": None, "n": 1}

    assert cli([str(p0), "--seeds", str(p1)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line[:2] in ("T0", "T1", "T2")}
    assert rows["T0"] == ["c_task", "30", "50", "40.0", "±", "14.1"]
    assert rows["T2"] == ["b_task", "70", "—", "70.0", "±", "—"]
    assert cli([str(p0), "--seeds", str(p1), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["final_per_task"]["a_task"]["values"] == [0.6, 1.0]

    # Runs of different streams: no per-task table, a note instead.
    other = write_matrix(tmp_path / "o", run_id="o", train_order=["x", "y"], eval_tasks=["x", "y"],
                         success=[[0.1, 0.2], [0.3, 0.4]])
    assert final_per_task([load_matrix(p0), load_matrix(other)]) is None
    assert cli([str(p0), "--seeds", str(other)]) == 0
    out = capsys.readouterr().out
    assert "do not train the same set of tasks" in out and "per task" not in out


def test_bad_input_exits_2_with_one_line(cli, tmp_path, capsys):
    assert cli([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    (tmp_path / "matrix.json").write_text('{"train_order": [')
    assert cli([str(tmp_path)]) == 2
    cap = capsys.readouterr()
    assert cap.err.startswith("error: ") and "not valid JSON" in cap.err and cap.err.count("\n") == 1
    assert cap.out == ""


def test_script_runs_from_the_repo_root(eval_dir, tmp_path):
    """As a user runs it: a subprocess, --plot writes a PNG, errors have no traceback."""
    png = tmp_path / "heat.png"
    done = subprocess.run([sys.executable, str(SCRIPT.relative_to(REPO_ROOT)), str(eval_dir), "--json",
                           "--plot", str(png)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["bwt"] == pytest.approx(-0.4)
    assert png.read_bytes()[:4] == b"\x89PNG"
    bad = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "nope")], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1
