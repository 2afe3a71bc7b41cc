"""The figure style every figure shares: sized and lettered for a projector, files only (no display)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI
import matplotlib.pyplot as plt  # noqa: E402

from harness.model.pools import POOLS  # noqa: E402
from harness.present.console import slots_text  # noqa: E402

plt.rcParams.update({"font.size": 14, "axes.titlesize": 16, "axes.labelsize": 14, "figure.dpi": 100})

POOL_COLORS = {name: p.color for name, p in POOLS.items()}


def run_title(spec: dict) -> str:
    return f"{spec['pool']} pool · {spec['workload']} · {slots_text(spec)} · switch interval {spec['switch_interval']:g} s"


def legend_below(ax, handles: list | None = None) -> None:
    # Below the axes, so it never hides a bar or a line.
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, fontsize=12,
              frameon=False)


def save(fig, path):
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
