"""The figure style every figure shares: sized and lettered for a projector, files only (no display)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI
import matplotlib.pyplot as plt  # noqa: E402

from harness.model.pools import POOLS  # noqa: E402
from harness.present.console import slots_text  # noqa: E402

if TYPE_CHECKING:
    from harness.model.spec import RunSpec

# For a projector: 1280x720 is the screen to be read from the back of a room. Figures are drawn at
# 12.8 x 7.2 inches (or taller for many lanes) at 150 dpi, lettered so that the smallest text is 13 pt.
WIDE = (12.8, 7.2)
DPI = 150
plt.rcParams.update({"font.size": 15, "axes.titlesize": 17, "axes.labelsize": 15, "xtick.labelsize": 13,
                     "ytick.labelsize": 13, "legend.fontsize": 13, "figure.dpi": DPI, "savefig.dpi": DPI,
                     "axes.spines.top": False, "axes.spines.right": False,
                     # Constrained layout makes room for titles, labels and the legend below the axes.
                     "figure.constrained_layout.use": True})

POOL_COLORS = {name: p.color for name, p in POOLS.items()}


def run_title(spec: RunSpec) -> str:
    return (f"{spec.pool} pool · {spec.task or spec.workload} · {slots_text(spec)} · "
            f"switch interval {spec.switch_interval:g} s")


def legend_below(ax, handles: list | None = None, ncol: int = 3) -> None:
    # Below everything, outside the axes (constrained layout makes room for it), so it never hides a bar,
    # a line or the title.
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    else:
        labels = [h.get_label() for h in handles]
    ax.figure.legend(handles, labels, loc="outside lower center", ncol=ncol, frameon=False)


def save(fig, path):
    fig.savefig(path)
    plt.close(fig)
    return path
