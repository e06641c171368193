"""The run report as a real browser shows it: headless Chromium renders the page and its figures.

Skipped where no Chromium is installed (`apt-get install chromium` on Debian; the HTML itself is
checked structurally in test_curve.py). docs/evaluation/metrics.md shows a screenshot made this way.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from AlphaBrain.evaluation.matrix import metrics_json
from AlphaBrain.evaluation.report import write_run_report
from AlphaBrain.evaluation.success_matrix import SuccessMatrix

BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


def screenshot(page, png, width=1280, height=3000) -> np.ndarray:
    subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={width},{height}", f"--screenshot={png}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    return np.asarray(Image.open(png).convert("RGB"))


@pytest.mark.skipif(BROWSER is None, reason="no Chromium installed")
def test_report_renders_in_headless_chromium(tmp_path):
    tasks = ["open the drawer", "close the window", "press the button"]
    m = SuccessMatrix(train_order=tasks, eval_tasks=tasks, run_id="browser_check", suite="hand",
                      success=[[1.0, 0.0, 0.0], [0.6, 0.9, 0.1], [0.3, 0.7, 1.0]])
    page = write_run_report(tmp_path / "report.html", m, metrics_json(m), None, run_root=tmp_path)
    shot = screenshot(page, tmp_path / "shot.png")
    ink = (shot < 200).any(-1)
    rows = np.where(ink.any(1))[0]
    assert rows.max() > 900  # text, tables and figures down the page, not an error page
    # The heatmap is drawn: viridis' yellow (100 %) and dark purple (0 %) cells are on screen,
    # which a broken or blocked embedded image would not show.
    yellow = (shot[..., 0] > 220) & (shot[..., 1] > 200) & (shot[..., 2] < 90)
    purple = (shot[..., 0] < 90) & (shot[..., 1] < 30) & (shot[..., 2] > 60)
    assert yellow.sum() > 500 and purple.sum() > 500
