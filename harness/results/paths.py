"""Where result folders go by default, said once: every command, loader and run reads these."""
from __future__ import annotations

from pathlib import Path

# Relative to the working directory: `make bench` runs in the checkout, `gil-lab bench` in the user's project.
RESULTS_DIR = Path("results")
# The link to the newest run or sweep folder (harness.results.files.link_latest), under RESULTS_DIR.
LATEST_NAME = "latest"
LATEST = RESULTS_DIR / LATEST_NAME
