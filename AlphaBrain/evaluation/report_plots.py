"""Figures of the run report that are not of the success matrix: learning curves, training loss, method comparison.

Same conventions as plots.py: a private Figure on the Agg canvas, written atomically as PNG.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from AlphaBrain.evaluation.plots import _save, _task_colors, short_name


def plot_learning_curves(curve: dict, out_png: str | os.PathLike) -> None:
    """Each task's success on itself against the steps trained on it (curve.json of `--curve`)."""
    tasks = curve["tasks"]
    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    for color, (k, task) in zip(_task_colors(len(tasks)), enumerate(tasks)):
        points = [p for p in task["points"] if p.get("success_rate") is not None]
        x = [p["task_step"] for p in points]
        y = [p["success_rate"] * 100 for p in points]
        ax.plot(x, y, marker="o", markersize=3, linewidth=1.2, color=color, label=f"T{k}: {short_name(task['task'], 24)}")
    ax.set_xlabel("optimizer steps on the task")
    ax.set_ylabel("success on that task (%)")
    ax.set_ylim(-3, 103)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7.5, frameon=False)
    ax.set_title("learning curve of each task while it is trained", fontsize=10)
    _save(fig, out_png)


def plot_training_loss(records: Sequence[dict], out_png: str | os.PathLike) -> None:
    """Training loss against the global step, one colour per task, from metrics.jsonl records."""
    positions = sorted({int(r["task"]) for r in records})
    fig = Figure(figsize=(7.5, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    colors = _task_colors(max(positions) + 1 if positions else 1)
    for k in positions:
        rows = [r for r in records if int(r["task"]) == k]
        name = rows[0].get("task_name") or f"task {k}"
        # Markers while the points are few: a short run logs one loss per task, which a bare line hides.
        ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], linewidth=1.2, color=colors[k],
                marker="o" if len(rows) < 40 else None, markersize=3, label=f"T{k}: {short_name(str(name), 24)}")
    ax.set_xlabel("global optimizer step")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7.5, frameon=False)
    _save(fig, out_png)


def plot_comparison(methods: dict[str, dict], metrics: Sequence[tuple[str, str]], out_png: str | os.PathLike,
                    ylabel: str = "% (levels) / pp (differences)", group_inches: float = 1.6) -> None:
    """Grouped bars: per metric, one bar per method at its mean with a ±std error bar (none when n < 2).

    `methods` = {method: {metric key: {"mean", "std", "n"}}}; `metrics` = [(key, label)]. Values in %.
    The same figure serves any keyed statistics, e.g. each task's success after the last task
    (keys = task names, `matrix.final_per_task`), with narrower groups (`group_inches`).
    """
    names = list(methods)
    fig = Figure(figsize=(2.2 + (group_inches + 0.3 * len(names)) * len(metrics), 4.0))
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(len(names), 1)
    x = np.arange(len(metrics))
    for i, (name, color) in enumerate(zip(names, _task_colors(len(names)))):
        stats = [methods[name].get(key) or {} for key, _ in metrics]
        mean = [np.nan if s.get("mean") is None else s["mean"] * 100 for s in stats]
        err = [0.0 if s.get("std") is None else s["std"] * 100 for s in stats]
        n = {s.get("n", 0) for s in stats}
        label = f"{name} (n={'/'.join(str(v) for v in sorted(n))})"
        ax.bar(x + (i - (len(names) - 1) / 2) * width, mean, width, yerr=err, capsize=3, color=color, label=label)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x, [label for _, label in metrics])
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_title("mean ± sample std over each method's runs", fontsize=10)
    _save(fig, out_png)

