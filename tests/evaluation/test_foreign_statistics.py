"""A dataset_statistics.json computed on another dataset with the same dimensions is refused by training,
run_cl_eval.sh / cl_eval and the policy server (its data fingerprint differs from the run's), accepted with
--allow-foreign-statistics; the run's own statistics, recomputed by the statistics command, are accepted."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from AlphaBrain.config.loader import BASE_CONFIG, load_run_config
from AlphaBrain.dataloader.fingerprint import FINGERPRINT_KEY, short
from AlphaBrain.deployment import policy_server
from AlphaBrain.deployment.policy import load_policy
from AlphaBrain.evaluation import cl_eval
from AlphaBrain.streams import statistics_cli
from AlphaBrain.utils.errors import DatasetError

REPO = Path(__file__).resolve().parents[2]
EVAL_SH = REPO / "scripts" / "run_continual_learning_scripts" / "run_cl_eval.sh"


@pytest.fixture(scope="module")
def runs(push_run, tmp_path_factory):
    """Copies of the shared run: `foreign` holds statistics of another dataset (same dims), `own` its own
    statistics recomputed with the statistics command from the run's config."""
    from AlphaBrain.dataloader.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("fingerprints")
    other = write_synthetic_dataset(root / "other_push3", num_tasks=3, episodes_per_task=3, episode_length=40,
                                    image_size=(32, 32), seed=1)
    foreign_stats = root / "other_stats.json"
    assert statistics_cli.main(["--dataset-dir", str(other), "--out", str(foreign_stats)]) == 0
    out = {}
    for name in ("foreign", "own", "old"):
        out[name] = root / "runs" / name
        shutil.copytree(push_run, out[name])
    shutil.copy(foreign_stats, out["foreign"] / "dataset_statistics.json")
    own = out["own"]
    assert statistics_cli.main(["--config", str(own / "config.yaml"), "--out", str(own / "dataset_statistics.json")]) == 0
    out["foreign_stats"] = foreign_stats
    return out


def fingerprints(run: Path) -> tuple[str, str]:
    """(the run's recorded training-data fingerprint, its statistics file's) for its only embodiment."""
    (emb, recorded), = json.loads((run / "policy_spec.json").read_text())["data_fingerprints"].items()
    return recorded, json.loads((run / "dataset_statistics.json").read_text())[emb][FINGERPRINT_KEY]


def assert_refusal(err: str, run: Path) -> None:
    recorded, stats = fingerprints(run)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for part in (short(recorded), short(stats), str(run / "dataset_statistics.json"), str(run / "policy_spec.json"),
                 f"compute_dataset_statistics.py --config {run / 'config.yaml'}", "--allow-foreign-statistics"):
        assert part in lines[0], (part, lines[0])


def test_statistics_command_and_training_agree_on_the_fingerprint(runs):
    recorded, own = fingerprints(runs["own"])
    assert recorded == own and recorded.startswith("sha256:") and len(recorded) == 7 + 64
    assert fingerprints(runs["foreign"])[1] != recorded


def test_cl_eval_refuses_foreign_statistics_and_allows_them_when_asked(runs, tmp_path, capsys):
    base = ["--run-root", str(runs["foreign"].parent), "--suite", "synthetic_push3", "--trials", "1", "--last-only",
            "--max-steps", "2"]
    assert cl_eval.main(["--run-id", "foreign", *base, "--output-base", str(tmp_path / "a")]) == 2
    assert_refusal(capsys.readouterr().err, runs["foreign"])
    assert not (tmp_path / "a").exists()
    # A subprocess: the flag sets the environment of the workers it starts, which must not leak into this one.
    proc = subprocess.run([sys.executable, "-m", "AlphaBrain.evaluation.cl_eval", "--run-id", "foreign", *base,
                           "--output-base", str(tmp_path / "b"), "--allow-foreign-statistics"], cwd=REPO,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "b" / "matrix.json").is_file()
    assert "used anyway, as asked" in proc.stderr


def test_run_cl_eval_sh_passes_the_flag_on(tmp_path):
    python = tmp_path / "python"
    python.write_text('#!/usr/bin/env bash\necho "$*"\n')
    python.chmod(0o755)
    proc = subprocess.run(["bash", str(EVAL_SH), "--run-id", "r", "--allow-foreign-statistics"], cwd=REPO,
                          env={**os.environ, "ALPHABRAIN_PYTHON": str(python)}, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.split()[-1] == "--allow-foreign-statistics", proc


def test_policy_server_refuses_foreign_statistics(runs, capsys):
    assert policy_server.main(["--run-dir", str(runs["foreign"]), "--port", "0"]) == 2
    assert_refusal(capsys.readouterr().err, runs["foreign"])
    with pytest.raises(DatasetError):
        load_policy(runs["foreign"])
    assert load_policy(runs["foreign"], allow_foreign_statistics=True).metadata["action_dim"] > 0
    assert load_policy(runs["own"]).metadata["action_dim"] > 0


def test_training_refuses_a_given_statistics_file_of_other_data(runs, tmp_path):
    from AlphaBrain.training.continual_learning.train import ContinualVLATrainer

    def dry_run(*overrides):
        cfg = load_run_config([BASE_CONFIG, runs["own"] / "config.yaml"],
                              [f"run_root_dir={tmp_path}", "run_id=t",
                               f"datasets.vla_data.dataset_statistics={runs['foreign_stats']}", *overrides])
        ContinualVLATrainer(cfg).prepare_training(dry_run=True)

    with pytest.raises(DatasetError, match="datasets.vla_data.allow_foreign_statistics=true to use it anyway"):
        dry_run()
    dry_run("datasets.vla_data.allow_foreign_statistics=true")


def test_runs_and_statistics_from_before_fingerprints_load_with_one_note(runs, capsys):
    old = runs["old"]
    spec = json.loads((old / "policy_spec.json").read_text())
    del spec["data_fingerprints"]
    (old / "policy_spec.json").write_text(json.dumps(spec))
    stats = json.loads((old / "dataset_statistics.json").read_text())
    for entry in stats.values():
        del entry[FINGERPRINT_KEY]
    (old / "dataset_statistics.json").write_text(json.dumps(stats))
    load_policy(old)
    load_policy(old)
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "records no fingerprint" in notes[0]
