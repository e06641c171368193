"""Presets and sweeps for bench_cl_quality.py: named benchmark settings, one swept override, ASR against the value.

A preset fixes everything a comparison holds equal (stream, steps, batch, trials, memory). A sweep
varies one override over a list of values; every (method, seed, value) is one run with its own
run id, so an interrupted sweep resumes from the finished records. A method the swept key cannot
affect (sequential under a memory sweep, a method that does not declare the swept algorithm key)
is trained once and that run stands for every value: it draws as a flat line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Optional

# The two memory settings every method with a memory shares (each key only where the method declares it).
MEMORY_KEYS = ("buffer_size_per_task", "replay_batch_ratio")
DEFAULT_PRESET = "cl5"
PRESETS: dict[str, dict] = {
    # The measured default of docs/benchmarks/quality.md. It saturates: ER and DER++ reach 100 % on every seed.
    "cl5": {"suite": "metaworld_cl5", "steps": 1000, "batch": 64, "trials": 10,
            "buffer_size_per_task": 200, "replay_batch_ratio": 0.4},
    # Non-saturated (measured, docs/benchmarks/quality.md): twice the tasks, three of them a conflicting goal in a scene seen
    # before, and 10 stored frames per task, so replay covers only a sliver of each task's states.
    "cl10_small_memory": {"suite": "metaworld_cl10", "steps": 1000, "batch": 64, "trials": 10,
                          "buffer_size_per_task": 10, "replay_batch_ratio": 0.4},
}
SETTINGS = tuple(PRESETS[DEFAULT_PRESET])
# Run ids of the default preset carry no settings tag, so records written before presets existed stay valid.
_TAG = {"batch": "b", "buffer_size_per_task": "m", "replay_batch_ratio": "r"}


@dataclass(frozen=True)
class Sweep:
    key: str                  # a training override key, e.g. continual_learning.algorithm.buffer_size_per_task
    values: tuple[str, ...]   # as given on the command line (passed to the override verbatim)

    @property
    def short(self) -> str:
        return self.key.rsplit(".", 1)[-1]

    @property
    def memory_key(self) -> Optional[str]:
        """The shared memory setting this key sets (for every method that has it), or None."""
        forms = {self.short, f"continual_learning.algorithm.{self.short}", f"continual_learning.replay.{self.short}"}
        return self.short if self.short in MEMORY_KEYS and self.key in forms else None

    def applies(self, declared: Iterable[str]) -> bool:
        """Whether the swept key can change a method that declares the hyperparameters `declared`."""
        if self.memory_key or self.key.startswith("continual_learning.algorithm."):
            return self.short in set(declared)
        return True  # a trainer / data / model key changes every method

    def numeric(self) -> Optional[list[float]]:
        try:
            return [float(v) for v in self.values]
        except ValueError:
            return None


def parse_sweep(text: str, flag: str = "--sweep",
                form: str = "KEY=V1,V2,... (e.g. continual_learning.algorithm.buffer_size_per_task=10,50,200)") -> Sweep:
    """KEY=V1,V2,... -> Sweep; ValueError (one line, naming `flag` and its `form`) when malformed."""
    key, sep, rest = text.partition("=")
    values = tuple(v.strip() for v in rest.split(",") if v.strip())
    if not sep or not key.strip() or not values:
        raise ValueError(f"{flag} must be {form}, got {text!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"{flag} lists a value twice: {text!r}")
    return Sweep(key.strip(), values)


def parse_fixed(texts: Iterable[str], sweep: Optional[Sweep] = None, flag: str = "--set") -> tuple[Sweep, ...]:
    """`--set KEY=VALUE` items -> one-value Sweeps; ValueError (one line, naming `flag`) when malformed or in conflict."""
    fixed: list[Sweep] = []
    for text in texts:
        item = parse_sweep(text, flag, "KEY=VALUE (e.g. continual_learning.algorithm.mir_mode=per_step)")
        if len(item.values) != 1:
            raise ValueError(f"{flag} takes one value (KEY=VALUE), got {text!r}; to vary a key use --sweep")
        if item.memory_key:
            raise ValueError(f"{flag} {text!r}: the memory settings have their own flags (--buffer-size, --replay-ratio)")
        if item.key in {f.key for f in fixed} or (sweep is not None and item.key == sweep.key):
            raise ValueError(f"{flag}: {item.key} is given twice (or also swept)")
        fixed.append(item)
    return tuple(fixed)


@dataclass(frozen=True)
class Variant:
    """One line of a comparison: a registered method, under a label, with overrides of its own."""
    label: str                  # the name tables and plots show
    method: str                 # the registered CL algorithm it trains
    fixed: tuple[Sweep, ...]    # its own `--set`-like overrides (run-id tags, like --set)


VARIANT_FORM = "LABEL=METHOD:KEY=VALUE[,KEY=VALUE...] (e.g. mir_per_step=mir:mir_mode=per_step,mir_top_k=26)"


def parse_variant(text: str, methods: Mapping[str, Iterable[str]]) -> Variant:
    """`--variant` text -> Variant; `methods` maps each registered method to the hyperparameters it declares.

    A bare KEY is the method's own hyperparameter (continual_learning.algorithm.KEY) and must be one it declares;
    a dotted key is passed as written. ValueError (one line) when malformed."""
    label, sep, rest = text.partition("=")
    method, colon, items = rest.partition(":")
    label, method = label.strip(), method.strip()
    if not sep or not colon or not re.fullmatch(r"[A-Za-z0-9_.-]+", label) or not items.strip():
        raise ValueError(f"--variant must be {VARIANT_FORM}, got {text!r}")
    if method not in methods:
        raise ValueError(f"--variant {label}: unknown method {method!r}; registered: {', '.join(methods)}")
    declared = set(methods[method])
    texts: list[str] = []
    for item in items.split(","):
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key or not value:
            raise ValueError(f"--variant {label}: {item!r} is not KEY=VALUE ({VARIANT_FORM})")
        if "." not in key:
            if key not in declared:
                raise ValueError(f"--variant {label}: {method} has no hyperparameter {key!r}; it declares: "
                                 f"{', '.join(sorted(declared)) or 'none'}")
            key = f"continual_learning.algorithm.{key}"
        texts.append(f"{key}={value}")
    return Variant(label, method, parse_fixed(texts, flag=f"--variant {label}"))


def resolve_settings(preset: str, given: Mapping[str, object]) -> dict:
    """The preset's settings with every explicitly given (non-None) one laid over."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
    return {k: (given[k] if given.get(k) is not None else v) for k, v in PRESETS[preset].items()}


def run_settings(settings: Mapping, sweep: Optional[Sweep], value: Optional[str], declared: Iterable[str]) -> dict:
    """The settings one run trains with: a memory sweep's value replaces the memory setting it names."""
    out = dict(settings)
    if sweep is not None and sweep.memory_key and sweep.applies(declared):
        out[sweep.memory_key] = type(out[sweep.memory_key])(value)
    return out


def run_id(settings: Mapping, method: str, seed: int, declared: Iterable[str], sweep: Optional[Sweep] = None,
           value: Optional[str] = None, model: str = "tiny", fixed: Iterable[Sweep] = ()) -> str:
    declared = set(declared)
    default = PRESETS[DEFAULT_PRESET]
    tag = ""
    for key, letter in _TAG.items():
        # Memory a method does not have cannot change its run: leave it out, so one run serves every memory.
        if settings[key] != default[key] and (key not in MEMORY_KEYS or key in declared):
            tag += f"_{letter}{settings[key]}"
    # Fixed overrides, then the swept one: each changes the run, so each is in its id (where it applies).
    for item, item_value in [*((f, f.values[0]) for f in fixed), (sweep, value)]:
        if item is not None and not item.memory_key and item.applies(declared):
            tag += f"_{item.short}{re.sub(r'[^A-Za-z0-9.-]', '-', item_value)}"
    if model != "tiny":  # the default model keeps the old ids
        tag += f"_{model}"
    return f"bench_{settings['suite']}_{settings['steps']}{tag}_{method}_s{seed}"


def sweep_override(sweep: Optional[Sweep], value: Optional[str], declared: Iterable[str]) -> list[str]:
    """The extra training override of a run (memory sweeps go through the memory settings instead)."""
    if sweep is None or sweep.memory_key or not sweep.applies(declared):
        return []
    return [f"{sweep.key}={value}"]


def fixed_overrides(fixed: Iterable[Sweep], declared: Iterable[str]) -> list[str]:
    """The `--set` overrides a method takes (an algorithm key only where the method declares it)."""
    declared = set(declared)
    return [f"{f.key}={f.values[0]}" for f in fixed if f.applies(declared)]


def asr_series(records: Mapping[str, Mapping[str, list[dict]]]) -> dict[str, list[tuple[str, float, float, int]]]:
    """method -> [(value, mean ASR, std or 0, seeds)] over the values with finished runs (ASR as a fraction)."""
    from AlphaBrain.evaluation.matrix import aggregate_runs

    series: dict[str, list] = {}
    for value, by_method in records.items():
        for method, runs in by_method.items():
            asr = aggregate_runs([r["metrics"] for r in runs])["asr"] if runs else {"mean": None}
            if asr["mean"] is not None:
                series.setdefault(method, []).append((value, asr["mean"], asr.get("std") or 0.0, len(runs)))
    return series


def plot_sweep(sweep: Sweep, records: Mapping[str, Mapping[str, list[dict]]], path: Path, title: str = "") -> Path:
    """ASR (mean ± std band over seeds) against the swept value, one line per method, as a PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    numeric = sweep.numeric()
    position = dict(zip(sweep.values, numeric or range(len(sweep.values))))
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    series = asr_series(records)
    most = max((n for points in series.values() for *_, n in points), default=0)
    for method, points in series.items():
        xs = [position[v] for v, *_ in points]
        mean = [100 * m for _, m, _, _ in points]
        std = [100 * s for _, _, s, _ in points]
        (line,) = ax.plot(xs, mean, marker="o", label=method)
        ax.fill_between(xs, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                        color=line.get_color(), alpha=0.2)
        for x, y, (*_, n) in zip(xs, mean, points):
            if n < most:  # a point over fewer seeds than the rest has no comparable band: say so on the point
                ax.annotate(f"{n} seed{'s' * (n != 1)}", (x, y), textcoords="offset points", xytext=(6, -12),
                            fontsize=7, color=line.get_color())
    if numeric is None:
        ax.set_xticks(range(len(sweep.values)), sweep.values)
    else:
        if min(numeric) > 0 and max(numeric) / min(numeric) >= 20:
            ax.set_xscale("log")  # memory sizes span orders of magnitude
        ax.set_xticks(numeric, sweep.values)
        ax.minorticks_off()
    ax.set_xlabel(sweep.key)
    ax.set_ylabel("ASR (%), mean ± std over seeds")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
