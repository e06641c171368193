"""Self-contained HTML reports of evaluations (`alphabrain-metrics ... --report page.html`).

One run: the heatmap, accuracy over time, each task's learning curve (curve.json), the training
loss (the run's metrics.jsonl), the metrics table and the run's config. Several runs: ASR / BWT /
NBT per method as bars with ±std error bars, the runs of a method being its seeds, then each
task's success after the last task per method (where a mean ASR comes from).

Every figure is a PNG embedded as base64, so the page is one file that can be mailed or archived;
nothing is fetched when it is opened.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Callable, Optional, Sequence

from AlphaBrain.evaluation import metrics as M
from AlphaBrain.evaluation.matrix import SuccessMatrix, final_per_task, format_matrix_table
from AlphaBrain.runs.layout import CONFIG_FILE, TRAIN_LOG_FILE
from AlphaBrain.utils.atomic_io import atomic_write_text

COMPARED = (("asr", "ASR"), ("bwt", "BWT"), ("nbt", "NBT"))
_SEED_SUFFIX = re.compile(r"[_-](seed|s)\d+$")
_STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}pre{background:#f6f6f6;padding:1em;overflow:auto}
img{max-width:100%}.note{color:#8a5a00}"""


def _png(draw: Callable[[Path], None]) -> str:
    """An <img> holding the PNG that `draw(path)` writes, base64-embedded."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "figure.png"
        draw(path)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="figure" src="data:image/png;base64,{data}">'


def _page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
            f"<h1>{html.escape(title)}</h1>\n" + "\n".join(body) + "\n</body></html>\n")


def _metrics_table(metrics: dict) -> str:
    rows = []
    for key in M.SCALAR_METRICS:
        label, _, meaning = M.DESCRIPTIONS[key]
        rows.append(f"<tr><td>{html.escape(label)}</td><td><code>{key}</code></td>"
                    f"<td class=\"num\">{html.escape(M.format_value(key, metrics.get(key)))}</td>"
                    f"<td>{html.escape(meaning)}</td></tr>")
    return ("<table><tr><th>metric</th><th>key</th><th>value</th><th>meaning</th></tr>\n"
            + "\n".join(rows) + "</table>\n<p>% = success rate; pp = percentage points; — = not computable "
            "from what was evaluated (docs/evaluation/metrics.md).</p>")


def read_loss_records(run_dir: Path) -> list[dict]:
    """The training-loss records (step, task, loss) of a run's metrics.jsonl; [] when there is none.

    A line cut short by a crash or one without a loss is skipped: the rest of the log is still worth drawing.
    """
    path = run_dir / TRAIN_LOG_FILE
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if isinstance(r, dict) and all(isinstance(r.get(k), (int, float)) for k in ("step", "task", "loss")):
            records.append(r)
    return records


def run_report_html(m: SuccessMatrix, metrics: dict, curve: Optional[dict], run_dir: Optional[Path]) -> str:
    from AlphaBrain.evaluation.plots import plot_accuracy_over_time, plot_matrix_heatmap
    from AlphaBrain.evaluation.report_plots import plot_learning_curves, plot_training_loss

    title = f"{m.run_id or m.source or 'run'}" + (f" on {m.suite}" if m.suite else "")
    body = [f"<p>{m.num_tasks} tasks, {m.num_checkpoints} of {m.num_tasks} task checkpoints evaluated"
            + (" (last-only)" if m.last_only else "") + (f"; source {html.escape(str(m.source))}" if m.source else "")
            + (f"; task-conditioned ({html.escape(m.task_conditioned)}): each cell ran with its task's own "
               "parameters, so the task was known at test time" if m.task_conditioned else "")
            + "</p>", "<h2>Metrics</h2>", _metrics_table(metrics),
            "<h2>Success matrix</h2>", _png(lambda p: plot_matrix_heatmap(m, p)),
            f"<pre>{html.escape(format_matrix_table(m))}</pre>",
            "<h2>Accuracy over time</h2>", _png(lambda p: plot_accuracy_over_time(m, p)),
            "<h2>Learning curves</h2>"]
    if curve is None:
        body.append("<p class=\"note\">No curve.json: evaluate with run_cl_eval.sh --curve (a run trained with "
                    "trainer.save_interval=N trainer.keep_last=0) for each task's learning curve.</p>")
    else:
        body.append(_png(lambda p: plot_learning_curves(curve, p)))
        body += [f"<p class=\"note\">{html.escape(n)}</p>" for n in curve.get("notes") or []]
    body.append("<h2>Training loss</h2>")
    records = read_loss_records(run_dir) if run_dir is not None else []
    if records:
        body.append(_png(lambda p: plot_training_loss(records, p)))
    else:
        where = run_dir / TRAIN_LOG_FILE if run_dir is not None else TRAIN_LOG_FILE
        body.append(f"<p class=\"note\">No training loss: {html.escape(str(where))} is missing or has no loss "
                    "records (give the runs' folder with --run-root).</p>")
    body.append("<h2>Config</h2>")
    config = run_dir / CONFIG_FILE if run_dir is not None else None
    if config is not None and config.is_file():
        body.append(f"<p>{html.escape(str(config))}</p><pre>{html.escape(config.read_text())}</pre>")
    else:
        body.append(f"<p class=\"note\">No {CONFIG_FILE} found for this run (give --run-root).</p>")
    return _page(title, body)


def write_run_report(out: str | os.PathLike, m: SuccessMatrix, metrics: dict, curve: Optional[dict],
                     run_root: str | os.PathLike = "results/Checkpoints") -> Path:
    """The one-run page, written atomically; the run's log and config are looked up under `run_root`/<run_id>."""
    run_dir = Path(run_root) / m.run_id if m.run_id else None
    atomic_write_text(Path(out), run_report_html(m, metrics, curve, run_dir))
    return Path(out)


def method_of(run_label: str) -> str:
    """A run's method: its run_id without a trailing seed suffix (er_seed2, er-s2 and er_s2 are all `er`)."""
    return _SEED_SUFFIX.sub("", run_label) or run_label


def comparison_html(matrices: Sequence[SuccessMatrix], runs: Sequence[dict]) -> str:
    from AlphaBrain.evaluation.report_plots import plot_comparison

    labels = [m.run_id or str(m.source) for m in matrices]
    groups: dict[str, list[dict]] = {}
    group_matrices: dict[str, list[SuccessMatrix]] = {}
    for label, r, m in zip(labels, runs, matrices):
        groups.setdefault(method_of(label), []).append(r)
        group_matrices.setdefault(method_of(label), []).append(m)
    stats = {name: {key: M.aggregate([r.get(key) for r in rs]) for key, _ in COMPARED} for name, rs in groups.items()}
    head = "".join(f"<th>{label} (mean ± std)</th>" for _, label in COMPARED)
    rows = []
    for name, s in stats.items():
        cells = "".join(f"<td class=\"num\">{html.escape(_mean_std(key, s[key]))}</td>" for key, _ in COMPARED)
        rows.append(f"<tr><td>{html.escape(name)}</td><td class=\"num\">{len(groups[name])}</td>{cells}</tr>")
    per_run = "".join(f"<tr><td>{html.escape(label)}</td><td>{html.escape(method_of(label))}</td>"
                      + "".join(f"<td class=\"num\">{html.escape(M.format_value(k, r.get(k)))}</td>" for k, _ in COMPARED)
                      + "</tr>" for label, r in zip(labels, runs))
    body = ["<p>Runs are grouped into methods by run_id without its seed suffix (_seed&lt;N&gt;, _s&lt;N&gt;); "
            "error bars are the sample std over a method's runs (none for a single run). ASR in %, BWT and NBT "
            "in pp (BWT &lt; 0 and NBT &gt; 0 mean forgetting).</p>",
            _png(lambda p: plot_comparison(stats, COMPARED, p)),
            f"<table><tr><th>method</th><th>runs</th>{head}</tr>\n" + "\n".join(rows) + "</table>",
            "<h2>Runs</h2>",
            "<table><tr><th>run</th><th>method</th>" + "".join(f"<th>{label}</th>" for _, label in COMPARED)
            + f"</tr>\n{per_run}</table>"]
    body += _per_task_section(group_matrices, matrices)
    return _page(f"Comparison of {len(groups)} method(s), {len(runs)} run(s)", body)


def _per_task_section(group_matrices: dict[str, list[SuccessMatrix]], matrices: Sequence[SuccessMatrix]) -> list[str]:
    """Each task's success after the last task, per method (mean ± std over its runs): where a mean ASR comes from."""
    from AlphaBrain.evaluation.report_plots import plot_comparison

    if final_per_task(matrices) is None:  # different task sets: columns cannot be matched across methods
        return ["<p class=\"note\">The runs do not train the same set of tasks: no per-task comparison.</p>"]
    stats = {name: final_per_task(ms) for name, ms in group_matrices.items()}
    tasks = list(next(iter(stats.values())))
    if not any(s[t]["n"] for s in stats.values() for t in tasks):
        return []
    head = "".join(f"<th>{html.escape(name)}</th>" for name in stats)
    rows = "\n".join(
        f"<tr><td>T{i} {html.escape(task)}</td>"
        + "".join(f"<td class=\"num\">{html.escape(_mean_std('asr', s[task]))}</td>" for s in stats.values()) + "</tr>"
        for i, task in enumerate(tasks))
    ticks = [(task, f"T{i}") for i, task in enumerate(tasks)]  # the names are in the table below
    return ["<h2>Per task, after the last task</h2>",
            "<p>Success of each task at the final checkpoint, mean ± sample std over each method's runs, in %.</p>",
            _png(lambda p: plot_comparison(stats, ticks, p, ylabel="success after the last task (%)", group_inches=0.8)),
            f"<table><tr><th>task</th>{head}</tr>\n{rows}</table>"]


def _mean_std(key: str, s: dict) -> str:
    if s["mean"] is None:
        return "—"
    std = "—" if s["std"] is None else M.format_value(key, abs(s["std"])).split(" ")[0].lstrip("+")
    return f"{M.format_value(key, s['mean'])} ± {std} (n={s['n']})"


def write_comparison(out: str | os.PathLike, matrices: Sequence[SuccessMatrix], runs: Sequence[dict]) -> Path:
    atomic_write_text(Path(out), comparison_html(matrices, runs))
    return Path(out)
