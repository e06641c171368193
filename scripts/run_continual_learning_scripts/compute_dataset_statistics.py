#!/usr/bin/env python
"""(Re)compute dataset_statistics.json: `alphabrain-stats` (AlphaBrain/streams/statistics_cli.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # also from a checkout that is not installed
from AlphaBrain.streams.statistics_cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
