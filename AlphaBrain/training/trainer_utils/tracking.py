"""Metric sinks: a jsonl file always, TensorBoard or W&B when asked."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from AlphaBrain.utils.errors import ConfigError

REPORTERS = ("jsonl", "tensorboard", "wandb")


def check_reporter(report_to: str) -> None:
    """Fail early on an unknown tracker or a missing tracker package."""
    if report_to not in REPORTERS:
        raise ConfigError(f'trainer.report_to must be one of {", ".join(REPORTERS)}, got "{report_to}".')
    package = {"tensorboard": "tensorboard", "wandb": "wandb"}.get(report_to)
    if package is not None:
        import importlib.util

        if importlib.util.find_spec(package) is None:
            raise ConfigError(f"trainer.report_to={report_to} needs the {package} package: pip install {package}")


class MetricsLogger:
    def __init__(self, run_dir: Path, report_to: str = "jsonl", run_id: str = "", config: dict | None = None):
        check_reporter(report_to)
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", buffering=1)  # line-buffered: a crash keeps every finished line
        self._tb = self._wandb = None
        if report_to == "tensorboard":
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError(
                    "trainer.report_to=tensorboard needs the tensorboard package: pip install tensorboard"
                ) from None
            self._tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))
        elif report_to == "wandb":
            try:
                import wandb
            except ImportError:
                raise ConfigError("trainer.report_to=wandb needs the wandb package: pip install wandb") from None
            self._wandb = wandb.init(project="alphabrain-cl", name=run_id, config=config or {})

    def log(self, record: dict[str, Any], step: int) -> None:
        self._fh.write(json.dumps({"time": round(time.time(), 3), "step": step, **record}) + "\n")
        scalars = {k: v for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if self._tb is not None:
            for key, value in scalars.items():
                self._tb.add_scalar(key, value, step)
        if self._wandb is not None:
            self._wandb.log(scalars, step=step)

    def close(self) -> None:
        self._fh.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
