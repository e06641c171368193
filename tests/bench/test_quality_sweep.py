"""bench_cl_quality.py sweeps and presets: the planned commands (dry run, nothing trained) and the ASR plot."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MEMORY = "continual_learning.algorithm.buffer_size_per_task"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_cl_quality", REPO / "bench" / "bench_cl_quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "egl")  # main() sets defaults for these; keep them out of the test process
    monkeypatch.setenv("PYOPENGL_PLATFORM", "egl")
    return load_bench()


def trains(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if "run_cl_train.sh" in line]


def test_sweep_dry_run_plans_every_method_value_and_seed_and_skips_finished_runs(bench, tmp_path, capsys):
    argv = ["--dry-run", "--methods", "sequential", "er", "--seeds", "0", "1", "--out", str(tmp_path),
            "--sweep", f"{MEMORY}=10,50"]
    done = tmp_path / "runs" / "bench_metaworld_cl5_1000_m10_er_s1.json"
    done.parent.mkdir(parents=True)
    done.write_text(json.dumps({"run_id": done.stem, "seconds": {"train": 1.0}}))
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    lines = trains(out)
    # er: 2 values x 2 seeds, less the finished training of seed 1 at 10; sequential has no memory: one run per seed.
    assert len(lines) == 5
    assert "train: done earlier" in out
    for value in ("10", "50"):
        er = [line for line in lines if f"_m{value}_er_s0" in line]
        assert len(er) == 1 and f"replay.buffer_size_per_task={value}" in er[0] and f"{MEMORY}={value}" in er[0]
    assert out.count("the swept key does not apply to sequential") == 2
    assert {line.split("--run-id ")[1].split()[0] for line in lines if "--algo sequential" in line} == {
        "bench_metaworld_cl5_1000_sequential_s0", "bench_metaworld_cl5_1000_sequential_s1"}


def test_presets_and_algorithm_key_sweeps(bench, tmp_path, capsys):
    bench.main(["--dry-run", "--preset", "cl10_small_memory", "--methods", "er", "mir", "--seeds", "0",
                "--out", str(tmp_path), "--sweep", "continual_learning.algorithm.mir_mode=amortized,per_step"])
    lines = trains(capsys.readouterr().out)
    assert all("--dataset metaworld_cl10" in line and "replay.buffer_size_per_task=10 " in line for line in lines)
    assert len(lines) == 3  # er does not declare mir_mode: one run for both values
    assert [line.endswith(f"mir_mode={v}") for v in ("amortized", "per_step") for line in lines].count(True) == 2
    with pytest.raises(SystemExit):
        bench.parse_args(["--sweep", "buffer_size_per_task"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--sweep", f"{MEMORY}=1.5"])


def test_set_fixes_an_override_for_the_methods_that_take_it_and_tags_their_run_ids(bench, tmp_path, capsys):
    bench.main(["--dry-run", "--preset", "cl10_small_memory", "--methods", "er", "mir", "--seeds", "0",
                "--out", str(tmp_path), "--set", "continual_learning.algorithm.mir_mode=per_step",
                "--set", "continual_learning.algorithm.mir_top_k=26"])
    er, mir = trains(capsys.readouterr().out)
    assert "--run-id bench_metaworld_cl10_1000_m10_er_s0 " in er and "mir_" not in er  # er declares neither key
    assert "--run-id bench_metaworld_cl10_1000_m10_mir_modeper-step_mir_top_k26_mir_s0 " in mir
    assert mir.endswith("mir_mode=per_step continual_learning.algorithm.mir_top_k=26")
    for bad in (["--set", "mir_top_k"], ["--set", "a=1,2"], ["--set", "buffer_size_per_task=5"],
                ["--set", "a=1", "--set", "a=2"], ["--set", "a=1", "--sweep", "a=2,3"]):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)


def test_variant_is_a_labelled_method_with_overrides_of_its_own(bench, tmp_path, capsys):
    variant = "mir_per_step=mir:mir_mode=per_step,mir_top_k=26"
    bench.main(["--dry-run", "--preset", "cl10_small_memory", "--methods", "er", "mir", "--seeds", "0",
                "--out", str(tmp_path), "--variant", variant, "--sweep", "buffer_size_per_task=10,50"])
    out = capsys.readouterr().out
    lines = trains(out)
    assert len(lines) == 6  # er, mir and the variant at both memory sizes
    assert out.count("[mir_per_step seed 0") == 2
    # The same run ids as `--methods mir --set ...`: records made either way serve each other.
    assert sum("--run-id bench_metaworld_cl10_1000_m50_mir_modeper-step_mir_top_k26_mir_s0 " in line for line in lines) == 1
    plain = [line for line in lines if "--run-id bench_metaworld_cl10_1000_m10_mir_s0 " in line]
    assert len(plain) == 1 and "mir_mode" not in plain[0]  # the variant's overrides stay its own
    for bad in (["--variant", "x=mir"], ["--variant", "x=nope:a=1"], ["--variant", "x=er:mir_top_k=3"],
                ["--variant", "er=mir:mir_top_k=3"], ["--variant", "x=mir:mir_top_k"],
                ["--variant", "x=mir:mir_top_k=3", "--set", "continual_learning.algorithm.mir_top_k=4"],
                ["--variant", "x=mir:buffer_size_per_task=5"]):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)
    with pytest.raises(SystemExit):
        bench.parse_args(["--variant", "x=er:mir_top_k=3"])
    assert "er has no hyperparameter 'mir_top_k'" in capsys.readouterr().err


def test_plot_draws_asr_against_the_value_from_records(tmp_path):
    from bench.quality_sweep import asr_series, parse_sweep, plot_sweep

    sweep = parse_sweep(f"{MEMORY}=10,50,1000")
    seq = [{"metrics": {"asr": 0.2}}, {"metrics": {"asr": 0.2}}]
    records = {"10": {"sequential": seq, "er": [{"metrics": {"asr": 0.4}}, {"metrics": {"asr": 0.6}}]},
               "50": {"sequential": seq, "er": []},  # not finished yet: left out of the line
               "1000": {"sequential": seq, "er": [{"metrics": {"asr": 1.0}}]}}
    series = asr_series(records)
    assert [v for v, *_ in series["er"]] == ["10", "1000"]
    assert series["er"][0][1] == pytest.approx(0.5) and series["er"][0][2] > 0 and series["er"][1][2] == 0.0
    assert [n for *_, n in series["er"]] == [2, 1] and [n for *_, n in series["sequential"]] == [2, 2, 2]
    png = plot_sweep(sweep, records, tmp_path / "sweep.png", "synthetic")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_run_of_one_more_method_adds_its_line_to_the_table_and_keeps_the_others(bench, tmp_path, capsys):
    runs = tmp_path / "runs"
    runs.mkdir()

    def finish(method, asr, seed=0):
        rid = f"bench_metaworld_cl5_1000_{method}_s{seed}"
        (runs / f"{rid}.json").write_text(json.dumps(
            {"run_id": rid, "seconds": {"train": 10.0, "eval": 5.0}, "metrics": {"asr": asr}}))

    def table():
        return [line.split(" | ")[0][2:] for line in (tmp_path / "summary.md").read_text().splitlines()
                if line.startswith("| ") and not line.startswith("| method")]

    base = ["--summary-only", "--out", str(tmp_path), "--seeds", "0"]
    finish("sequential", 0.1), finish("er", 0.5)
    assert bench.main([*base, "--methods", "sequential", "er"]) == 0
    assert table() == ["sequential", "er"]
    finish("agem", 0.4), finish("agem", 0.6, seed=1)
    assert bench.main([*base[:-1], "1", "--methods", "agem"]) == 0  # one more method, at seed 1 only
    assert table() == ["sequential", "er", "agem"]
    assert "keeps the lines of sequential, er" in capsys.readouterr().err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["settings"]["methods"] == ["sequential", "er", "agem"] and summary["settings"]["seeds"] == [0, 1]
    assert [r["metrics"]["asr"] for r in summary["runs"]["agem"]] == [0.4, 0.6]  # both seeds, from the records
    assert bench.main([*base, "--methods", "agem", "er", "sequential"]) == 0  # every line named: the order given
    assert table() == ["agem", "er", "sequential"]
    assert bench.main([*base, "--methods", "agem", "--trials", "5"]) == 0  # other settings: a table of its own
    assert "made with other settings" in capsys.readouterr().err
    assert bench.main([*base, "--methods", "er", "--trials", "5"]) == 0
    assert table() == ["agem", "er"]
    assert bench.main([*base, "--methods", "er", "--trials", "5", "--replace-summary"]) == 0
    assert table() == ["er"]
