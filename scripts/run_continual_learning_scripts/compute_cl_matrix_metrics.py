#!/usr/bin/env python
"""CL metrics of an evaluated success matrix: `alphabrain-metrics` (AlphaBrain/evaluation/metrics_cli.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # also from a checkout that is not installed
from AlphaBrain.evaluation.metrics_cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
