"""Compute (or repair) dataset_statistics.json for any LeRobot dataset or mixture.

Evaluation unnormalizes predicted actions with the run's dataset_statistics.json;
if that file is missing or was computed for another dataset, success collapses to
~0%. This command recomputes it from the data (q01/q99 per axis, per embodiment)
and marks binary gripper axes (q01 == 0 and q99 == 1) with mask=false.

Examples (from the repository root; `alphabrain-stats` and
`python -m AlphaBrain.streams.statistics_cli` are the same command):
  python scripts/run_continual_learning_scripts/compute_dataset_statistics.py \\
      --config configs/continual_learning/cl_base.yaml \\
      --out results/Checkpoints/<run_id>/dataset_statistics.json
  alphabrain-stats --dataset-dir /data/libero_goal_no_noops_1.0.0_lerobot --embodiment libero_franka --out stats.json
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from AlphaBrain.config.loader import REPO_ROOT
from AlphaBrain.utils.cli import ArgumentParser, output_file, run_main
from AlphaBrain.utils.errors import ConfigError, DatasetError


def _load_dotenv(path: Path) -> None:
    """KEY=VALUE lines of the repo's .env, without overriding the real environment (as run_cl_train.sh)."""
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.removeprefix("export ").split("=", 1)
        os.environ.setdefault(key.strip(), value.strip().strip("'\""))


def mixture_from_config(paths: list[str]) -> tuple[str, str | None, dict | None]:
    """(data_mix, data_root_dir, named_mixtures) of a composed run config."""
    from omegaconf import OmegaConf

    from AlphaBrain.config.loader import compose_config, env_or_none

    cfg = compose_config(paths)
    vla = cfg.datasets.vla_data
    # The task stream's base mixture is what the run trained on (a named sequence, a path
    # given with --dataset, or an inline block), resolved exactly as the trainer does.
    from AlphaBrain.streams.build import resolve_stream_spec

    mix = resolve_stream_spec(cfg)[1].get("base_data_mix")
    if not mix:
        raise ConfigError(
            "the config sets no datasets.vla_data.data_mix (nor continual_learning.task_sequence.base_data_mix)"
        )
    # An unset ${oc.env:LEROBOT_LIBERO_DATA_DIR} becomes None here; resolve_mixture then
    # says which variable to set, and only if a relative dataset path needs it.
    data_root = env_or_none(cfg, "datasets.vla_data.data_root_dir")
    extra = vla.get("named_mixtures")
    extra = OmegaConf.to_container(extra, resolve=True) if extra else None
    return str(mix), None if data_root is None else str(data_root), extra


def build_datasets(mix: str, data_root: str | None, extra: dict | None, embodiment: str | None) -> list:
    from AlphaBrain.dataloader import LeRobotSingleDataset, resolve_mixture

    entries = resolve_mixture(mix, data_root, extra)
    # Statistics need state and action only: no camera is opened (image_keys=[]).
    return [
        LeRobotSingleDataset(e.path, action_horizon=1, embodiment=embodiment or e.embodiment, image_keys=[],
                             dataset_index=k)
        for k, e in enumerate(entries)
    ]


def _masked(entry: dict) -> str:
    axes = [i for i, m in enumerate(entry["mask"]) if not m]
    return ",".join(map(str, axes)) if axes else "-"


def format_table(stats: dict) -> str:
    from AlphaBrain.dataloader.fingerprint import FINGERPRINT_KEY, short

    header = ("embodiment", "state", "action", "frames", "episodes", "gripper axes (action)", "binary axes (state)",
              "data fingerprint")
    rows = [header] + [
        (emb, str(len(s["state"]["q01"])), str(len(s["action"]["q01"])), str(s["num_transitions"]),
         str(s["num_trajectories"]), _masked(s["action"]), _masked(s["state"]), short(s.get(FINGERPRINT_KEY)))
        for emb, s in stats.items()
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="alphabrain-stats",
        description="Compute dataset_statistics.json (per-embodiment q01/q99/mean/std/min/max and the binary-gripper "
        "mask of state and action) for a LeRobot dataset or mixture.",
        epilog=__doc__.split("Examples", 1)[1].join(("Examples", ""))
        + "\nExit status: 0 on success, 2 on a usage, config or dataset error (one line on stderr).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset-dir", metavar="PATH",
                     help="a LeRobot dataset (has meta/info.json) or a folder of LeRobot datasets")
    src.add_argument("--config", nargs="+", metavar="YAML",
                     help="run config YAML(s), merged over cl_base.yaml left to right; reads datasets.vla_data."
                     "{data_mix,data_root_dir,named_mixtures}; a continual_learning.task_sequence (name or inline "
                     "base_data_mix) takes precedence over data_mix, as in training")
    parser.add_argument("--out", required=True, metavar="FILE", type=output_file("dataset_statistics.json"),
                        help="where to write dataset_statistics.json")
    parser.add_argument("--data-root-dir", metavar="PATH",
                        help="override datasets.vla_data.data_root_dir (default: from the config / "
                        "LEROBOT_LIBERO_DATA_DIR)")
    parser.add_argument("--embodiment", metavar="TAG",
                        help="embodiment key to file the statistics under (default: the mixture's tag, else the "
                        "dataset's robot_type); must match what training uses")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # before the heavy imports, so --help answers at once
    return run_main(_main, args)


def _main(args: argparse.Namespace) -> None:
    from AlphaBrain.dataloader import compute_dataset_statistics, save_dataset_statistics

    _load_dotenv(REPO_ROOT / ".env")
    if args.dataset_dir:
        if not Path(args.dataset_dir).expanduser().is_dir():
            raise DatasetError(f"--dataset-dir {args.dataset_dir} does not exist or is not a directory")
        mix, data_root, extra = str(Path(args.dataset_dir).expanduser()), None, None
    else:
        mix, data_root, extra = mixture_from_config(args.config)
        data_root = args.data_root_dir or data_root
    datasets = build_datasets(mix, data_root, extra, args.embodiment)
    stats = compute_dataset_statistics(datasets)
    out = save_dataset_statistics(stats, args.out)
    for ds in datasets:
        print(f"{ds.root}: {ds.version}, embodiment {ds.embodiment!r}, {len(ds.episodes)} episodes, {len(ds)} frames")
    print(format_table(stats))
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
