"""Figures of a success matrix: the T x T heatmap and accuracy over time.

Drawn with matplotlib's Agg canvas on a private Figure (no pyplot, no global
backend switch), written atomically as PNG.
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib import colormaps
from matplotlib.figure import Figure

from AlphaBrain.evaluation import metrics as M
from AlphaBrain.evaluation.matrix import MatrixLike, as_matrix, train_order_initial, train_order_matrix
from AlphaBrain.utils.atomic_io import atomic_path

_NAN_COLOR = "#d9d9d9"


def short_name(name: str, width: int = 28) -> str:
    """A task name cut to `width` characters (with an ellipsis), underscores shown as spaces."""
    name = name.replace("_", " ")
    return name if len(name) <= width else name[: width - 1].rstrip() + "…"


def metrics_title(metrics: dict) -> str:
    return (f"ASR {M.format_percent(metrics.get('asr'))} · BWT {M.format_pp(metrics.get('bwt'), signed=True)}"
            f" · F {M.format_pp(metrics.get('forgetting'))}")


def _save(fig: Figure, out_png: str | os.PathLike) -> None:
    FigureCanvasAgg(fig)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def plot_matrix_heatmap(m: MatrixLike, out_png: str | os.PathLike, title: Optional[str] = None) -> None:
    """Heatmap of the success matrix in train order, cells annotated in %, missing cells grey with "—".

    Rows: the untrained policy (when matrix.json has "initial"), then "after T<k>: <task>".
    Columns: the tasks of the train order, then any evaluated task outside the stream.
    The title carries ASR / BWT / F.
    """
    m = as_matrix(m)
    t = m.num_tasks
    a = train_order_matrix(m)
    metrics = M.compute_metrics(a, train_order_initial(m))

    extra = m.extra_eval_tasks
    grid = np.full((t, t + len(extra)), np.nan)
    grid[:, :t] = a
    for c, name in enumerate(extra):
        grid[m.row_positions, t + c] = m.success[:, m.eval_tasks.index(name)]
    row_labels = [f"after T{k}: {short_name(n, 24)}" for k, n in enumerate(m.train_order)]
    if m.initial is not None:
        first = np.full((1, grid.shape[1]), np.nan)
        first[0, :t] = train_order_initial(m)
        for c, name in enumerate(extra):
            first[0, t + c] = m.initial[m.eval_tasks.index(name)]
        grid = np.vstack([first, grid])
        row_labels = ["before training"] + row_labels
    col_labels = [f"T{i}: {short_name(n)}" for i, n in enumerate(m.train_order)]
    col_labels += [f"{short_name(n)} (not trained)" for n in extra]

    rows, cols = grid.shape
    fig = Figure(figsize=(3.2 + 0.62 * cols, 2.0 + 0.5 * rows))
    ax = fig.add_subplot(1, 1, 1)
    cmap = colormaps["viridis"].with_extremes(bad=_NAN_COLOR)
    image = ax.imshow(np.ma.masked_invalid(grid * 100), cmap=cmap, vmin=0, vmax=100, aspect="auto")
    fontsize = 9 if cols <= 8 else 7.5
    for r in range(rows):
        for c in range(cols):
            v = grid[r, c]
            if np.isnan(v):
                ax.text(c, r, "—", ha="center", va="center", color="#555555", fontsize=fontsize)
            else:
                ax.text(c, r, f"{v * 100:.0f}" if cols > 6 else f"{v * 100:.1f}", ha="center", va="center",
                        color="white" if v < 0.55 else "black", fontsize=fontsize)
    ax.set_xticks(range(cols), col_labels, rotation=40, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticks(range(rows), row_labels, fontsize=8)
    ax.set_xticks(np.arange(cols + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(rows + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    if extra:
        ax.axvline(t - 0.5, color="black", linewidth=1.5)
    ax.set_xlabel("evaluated task")
    ax.set_ylabel("checkpoint")
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
    bar.set_label("success (%)")
    head = title if title is not None else (m.run_id or "success matrix")
    ax.set_title(f"{head}\n{metrics_title(metrics)}", fontsize=10)
    _save(fig, out_png)


def plot_accuracy_over_time(m: MatrixLike, out_png: str | os.PathLike, title: Optional[str] = None) -> None:
    """Mean success on the tasks seen so far after each task (thick line), and each task's curve after its training."""
    m = as_matrix(m)
    a = train_order_matrix(m)
    t = m.num_tasks
    curve = M.accuracy_over_time(a)
    fig = Figure(figsize=(4.5 + 0.45 * t + (2.5 if t > 1 else 0), 4.2))
    ax = fig.add_subplot(1, 1, 1)
    colors = _task_colors(t)
    x = np.arange(t)
    for i, name in enumerate(m.train_order):
        y = a[i:, i] * 100
        ax.plot(x[i:], y, marker="o", markersize=3, linewidth=1, alpha=0.75, color=colors[i],
                label=f"T{i}: {short_name(name, 24)}")
    y = np.array([np.nan if v is None else v * 100 for v in curve])
    ax.plot(x, y, marker="s", linewidth=2.8, color="black", label="mean over seen tasks")
    ax.set_xticks(x, [f"T{k}" for k in x])
    ax.set_xlabel("after training task")
    ax.set_ylabel("success (%)")
    ax.set_ylim(-3, 103)
    ax.set_xlim(-0.3, max(t - 1, 0) + 0.3)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7.5, frameon=False)
    metrics = M.compute_metrics(a, train_order_initial(m))
    head = title if title is not None else (m.run_id or "accuracy over time")
    ax.set_title(f"{head}\n{metrics_title(metrics)}", fontsize=10)
    _save(fig, out_png)


def _task_colors(n: int) -> list:
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]
