"""Policy servers for an evaluation: one per worker, on free ports, health-checked, restarted when they die.

Worker i talks to server i. Ports start at `--port-base`: a taken port is
skipped (with a note naming it and the port used instead), so a second
evaluation on the same machine does not collide with the first. Start-up waits
a bounded time for `/healthz`; a server that dies or never answers is reported
with the tail of its `server.log`. With GPUs, server i runs on GPU i modulo the
visible count; without, on the CPU.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from AlphaBrain.utils.errors import UserError

START_TIMEOUT_S = 180.0  # large models load for minutes on a cold disk; the health check polls until then
LOG_TAIL_LINES = 15


def pick_ports(port_base: int, n: int, host: str = "127.0.0.1") -> list[int]:
    """`n` free ports from `port_base` upward; a taken one is skipped with a note on stderr."""
    from AlphaBrain.deployment.ports import check_port_free

    if not 1 <= port_base <= 65535 - n:
        raise UserError(f"--port-base must be in 1..{65535 - n}, got {port_base}.")
    ports: list[int] = []
    candidate = port_base
    while len(ports) < n:
        if candidate > 65535:
            raise UserError(f"No free port from {port_base} upward for {n} policy server(s); pass another --port-base.")
        try:
            check_port_free(host, candidate)
        except UserError:
            print(f"note: port {candidate} is taken; using the next free one for policy server {len(ports)}",
                  file=sys.stderr)
            candidate += 1
            continue
        ports.append(candidate)
        candidate += 1
    return ports


def log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "".join(log.read_text(errors="replace").splitlines(keepends=True)[-lines:])
    except OSError:
        return "(no log)"


def _devices(n: int) -> list[str]:
    try:
        import torch

        count = torch.cuda.device_count()
    except Exception:  # torch missing in this interpreter: CPU
        count = 0
    return [f"cuda:{i % count}" for i in range(n)] if count else ["cpu"] * n


class PolicyServers:
    """Start, watch and stop the policy servers of one checkpoint's evaluation."""

    def __init__(self, run_dir: Path, checkpoint: str, ports: list[int], log: Path, *, cache_merged: bool = False,
                 start_timeout: float = START_TIMEOUT_S, batch_wait_ms: float = 0.0) -> None:
        self.run_dir, self.checkpoint, self.ports, self.log = run_dir, checkpoint, list(ports), log
        self.devices = _devices(len(ports))
        self.cache_merged = cache_merged
        self.start_timeout = start_timeout
        self.batch_wait_ms = batch_wait_ms
        self.procs: list[Optional[subprocess.Popen]] = [None] * len(ports)

    def _spawn(self, i: int) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "AlphaBrain.deployment.policy_server", "--run-dir", str(self.run_dir),
               "--checkpoint", self.checkpoint, "--port", str(self.ports[i]), "--device", self.devices[i],
               "--torch-threads", "1",
               "--allow-foreign-statistics"]  # evaluate_run checked the run's statistics once, before the servers
        if self.cache_merged:
            cmd.append("--cache-merged")
        if self.batch_wait_ms > 0:
            cmd += ["--batch-wait-ms", f"{self.batch_wait_ms:g}"]
        with open(self.log, "a") as fh:
            fh.write(f"--- {time.strftime('%H:%M:%S')} server {i}: port {self.ports[i]}, {self.devices[i]}\n")
            fh.flush()
            return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)

    def _wait(self, i: int) -> None:
        from AlphaBrain.deployment.policy_client import healthz

        proc, deadline = self.procs[i], time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise UserError(f"The policy server on port {self.ports[i]} exited with code {proc.returncode} "
                                f"before answering; tail of {self.log}:\n{log_tail(self.log)}")
            if healthz("127.0.0.1", self.ports[i], timeout=2.0):
                return
            time.sleep(0.5)
        self.stop()
        raise UserError(f"The policy server on port {self.ports[i]} did not answer within {self.start_timeout:.0f} s; "
                        f"tail of {self.log}:\n{log_tail(self.log)}")

    def start(self) -> "PolicyServers":
        for i in range(len(self.ports)):
            self.procs[i] = self._spawn(i)
        try:
            for i in range(len(self.ports)):
                self._wait(i)
        except BaseException:
            self.stop()
            raise
        return self

    def dead(self) -> list[int]:
        return [i for i, p in enumerate(self.procs) if p is not None and p.poll() is not None]

    def restart_dead(self) -> list[str]:
        """Restart every server that died; one message per death, with the log's tail."""
        messages = []
        for i in self.dead():
            code = self.procs[i].returncode
            messages.append(f"policy server {i} (port {self.ports[i]}) died with code {code}; tail of {self.log}:\n"
                            f"{log_tail(self.log)}")
            self.procs[i] = self._spawn(i)
            self._wait(i)
        return messages

    def stop(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            if proc is None:
                continue
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

    def __enter__(self) -> "PolicyServers":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
