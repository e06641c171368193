"""--curve: each task's learning curve from its mid-task checkpoints, curve.json, LIBERO's FWT / AUC, the reports."""

import base64
import json
import shutil
from html.parser import HTMLParser

import pytest

from AlphaBrain.evaluation import metrics_cli
from AlphaBrain.evaluation.cl_eval import evaluate_run
from AlphaBrain.evaluation.curve import curve_values, load_curve, plan_curve

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def curve_run(tmp_path_factory, train_push):
    """TinyVLA, 4 steps per task, a mid-task checkpoint every 2 global steps, none pruned.

    Global steps 1-4 are task 0, 5-8 task 1, 9-12 task 2; the trainer saves at 2, 6 and 10 (4, 8 and
    12 are task ends), so each task has one mid-task point at its task step 2.
    """
    return train_push(tmp_path_factory.mktemp("curve"), "c", "trainer.save_interval=2", "trainer.keep_last=0",
                      steps=4)


@pytest.fixture(scope="module")
def curve_eval(curve_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("curve_eval") / "eval"
    return out, evaluate_run(curve_run, "synthetic_push3", trials=1, out_dir=out, curve=True)


def test_plan_has_start_mid_and_end_points(curve_run):
    from AlphaBrain.runs import RunDir

    order = RunDir(curve_run).stream_task_names()
    plan, notes = plan_curve(curve_run, order)
    assert notes == []
    assert [[p.kind for p in points] for points in plan] == [["mid", "end"], ["start", "mid", "end"],
                                                              ["start", "mid", "end"]]
    assert [[p.task_step for p in points] for points in plan] == [[2, 4], [0, 2, 4], [0, 2, 4]]
    assert plan[1][0].checkpoint == plan[0][-1].checkpoint  # task 1 starts where task 0 ended
    assert plan[2][1].checkpoint.startswith("mid_task/task_2_") and plan[2][1].global_step == 10


def test_curve_json_and_libero_metrics(curve_eval):
    out, result = curve_eval
    curve = json.loads((out / "curve.json").read_text())
    assert curve["train_order"] == result["matrix"]["train_order"] and result["curve_notes"] == []
    matrix = result["matrix"]
    for k, task in enumerate(curve["tasks"]):
        assert task["task"] == matrix["train_order"][k]
        column = matrix["eval_tasks"].index(task["task"])
        end = task["points"][-1]
        # the end point is the diagonal cell of the matrix, the start point the cell just above it
        assert end["success_rate"] == matrix["success"][k][column]
        if k:
            assert task["points"][0]["success_rate"] == matrix["success"][k - 1][column]
        # each point is an ordinary cell file: resumable and shardable like the matrix
        for p in task["points"]:
            assert (out / p["checkpoint"] / "cells" / f"{task['task']}.json").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    values = curve_values(curve, matrix["train_order"])
    from AlphaBrain.evaluation import metrics as M

    assert metrics["fwt_libero"] == pytest.approx(M.fwt_libero(values))
    assert metrics["auc_libero"] is not None and metrics["nbt"] is not None and metrics["has_curve"] is True


def test_pruned_or_absent_mid_task_checkpoints_give_null_fwt(curve_run, push_run, tmp_path):
    from AlphaBrain.runs import RunDir

    pruned = tmp_path / "c"
    shutil.copytree(curve_run, pruned)
    for f in (pruned / "checkpoints" / "mid_task").glob("task_0_*"):
        shutil.rmtree(f) if f.is_dir() else f.unlink()
    order = RunDir(pruned).stream_task_names()
    plan, notes = plan_curve(pruned, order)
    assert [p.kind for p in plan[0]] == ["end"]
    assert len(notes) == 1 and "pruned by trainer.keep_last" in notes[0] and "trainer.keep_last=0" in notes[0]
    fake = {"tasks": [{"task": n, "points": [{"kind": p.kind, "success_rate": 0.5} for p in pts]}
                      for n, pts in zip(order, plan)]}
    assert curve_values(fake, order)[0] is None  # no mid-task point: no curve for task 0
    _, notes = plan_curve(push_run, RunDir(push_run).stream_task_names())
    assert len(notes) == 3 and all("save_interval was 0" in n for n in notes)


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.srcs.append(dict(attrs)["src"])


def _embedded_pngs(page: str) -> list[bytes]:
    parser = _Images()
    parser.feed(page)
    assert {"html", "head", "body", "table"} <= set(parser.tags)
    pngs = []
    for src in parser.srcs:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix), src[:40]  # nothing is fetched when the page is opened
        pngs.append(base64.b64decode(src[len(prefix):], validate=True))
        assert pngs[-1].startswith(PNG_MAGIC)
    return pngs


def test_metrics_cli_prints_curve_metrics_and_writes_reports(curve_eval, curve_run, tmp_path, capsys):
    out, _ = curve_eval
    assert load_curve(out) is not None
    page = tmp_path / "report.html"
    code = metrics_cli.main([str(out), "--report", str(page), "--run-root", str(curve_run.parent)])
    text = capsys.readouterr().out
    assert code == 0 and "NBT" in text and "FWT_L" in text and "AUC_L" in text
    html_text = page.read_text()
    # heatmap, accuracy over time, learning curves, training loss
    assert len(_embedded_pngs(html_text)) == 4
    assert "trainer" in html_text and "save_interval" in html_text  # the run's config is shown
    compare = tmp_path / "compare.html"
    code = metrics_cli.main([str(out), "--seeds", str(out), "--report", str(compare)])
    assert code == 0
    compare_html = compare.read_text()
    # the method bars, then each task's success after the last task (one row per task of the stream)
    assert len(_embedded_pngs(compare_html)) == 2 and "<td>c</td>" in compare_html
    assert "Per task, after the last task" in compare_html
    order = json.loads((out / "matrix.json").read_text())["train_order"]
    assert all(f"<td>T{i} {task}</td>" in compare_html for i, task in enumerate(order))


def test_metrics_cli_says_why_curve_metrics_are_null(tmp_path, capsys):
    from AlphaBrain.evaluation.matrix import write_matrix

    write_matrix(tmp_path, train_order=["a", "b"], eval_tasks=["a", "b"], success=[[0.9, 0.1], [0.5, 0.8]])
    assert metrics_cli.main([str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "run_cl_eval.sh --curve" in text and "NBT     40.0 pp" in text
    (tmp_path / "curve.json").write_text("{")  # cut short
    assert metrics_cli.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "curve.json" in err[0] and "--curve" in err[0]


def test_curve_is_shardable_and_resumable(curve_run, curve_eval, tmp_path, monkeypatch):
    from AlphaBrain.evaluation import cl_eval

    out, whole = curve_eval
    first = evaluate_run(curve_run, "synthetic_push3", trials=1, out_dir=tmp_path / "s", curve=True, shard=(0, 2))
    assert first["matrix"] is None and any(c.startswith("mid_task/") for c, _ in first["missing"])
    evaluate_run(curve_run, "synthetic_push3", trials=1, out_dir=tmp_path / "s", curve=True, shard=(1, 2))
    assert json.loads((tmp_path / "s" / "curve.json").read_text()) == json.loads((out / "curve.json").read_text())
    ran = []
    monkeypatch.setattr(cl_eval, "evaluate_cell", lambda job: ran.append(job) or {})
    again = evaluate_run(curve_run, "synthetic_push3", trials=1, out_dir=out, curve=True)
    assert ran == [] and again["metrics"] == whole["metrics"]
