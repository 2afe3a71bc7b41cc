"""Who held the GIL, from the probes' tables (gil_oncpu.csv, gil_contention.csv). Pure, no I/O."""
from __future__ import annotations

import pandas as pd


def gil_holder_bands(oncpu: pd.DataFrame, min_share: float = 0.5, merge_gap_s: float = 0.006) -> pd.DataFrame:
    """Intervals during which one thread of a process ran on a CPU: for pure-Python work, the GIL holder.

    `oncpu` has columns t, pid, tid, oncpu_ns (cumulative). Between two samples the thread with
    the most on-CPU time in its process is the holder, if it ran at least `min_share` of the interval.
    Consecutive intervals with the same holder merge into one band, and so do two bands of the
    same thread less than `merge_gap_s` apart: the kernel adds a running thread's on-CPU time at
    each scheduler tick (every 4 ms at 250 Hz), so 1 kHz samples of a thread that runs throughout
    see it stall between ticks. Holds shorter than a tick cannot be told apart. Columns: pid,
    tid, start, end.
    """
    if oncpu.empty:
        return pd.DataFrame(columns=["pid", "tid", "start", "end"])
    bands = []
    for pid, proc in oncpu.groupby("pid"):
        wide = proc.pivot_table(index="t", columns="tid", values="oncpu_ns", aggfunc="last").sort_index().ffill()
        ran = wide.diff().iloc[1:] / 1e9
        span = pd.Series(wide.index, index=wide.index).diff().iloc[1:]
        holder = ran.idxmax(axis=1).where(ran.max(axis=1) >= min_share * span)
        times = list(wide.index)  # interval i runs from times[i] to times[i + 1]
        current, start = None, None
        for i, tid in enumerate(holder.to_numpy()):
            if current is not None and not pd.isna(tid) and tid == current:
                continue  # the same thread still holds on
            if current is not None:
                bands.append((pid, int(current), start, times[i]))
            current, start = (None, None) if pd.isna(tid) else (tid, times[i])
        if current is not None:
            bands.append((pid, int(current), start, times[-1]))
    merged: list[list] = []
    for band in sorted(bands, key=lambda b: (b[0], b[2])):
        last = merged[-1] if merged else None
        if last and last[0] == band[0] and last[1] == band[1] and band[2] - last[3] < merge_gap_s:
            last[3] = band[3]
        else:
            merged.append(list(band))
    bands = [tuple(b) for b in merged]
    return pd.DataFrame(bands, columns=["pid", "tid", "start", "end"])


def gil_handoffs(bands: pd.DataFrame, t0: float, t1: float, min_band_s: float = 0.0015) -> dict:
    """How long a thread held on before another took over, within [t0, t1].

    Bands shorter than `min_band_s` (under two samples at 1 kHz) are left out: they are a
    sample interval cut by a handover, not a hold.
    """
    inside = bands[(bands["start"] >= t0) & (bands["end"] <= t1) & (bands["end"] - bands["start"] >= min_band_s)]
    held = inside["end"] - inside["start"]
    span = t1 - t0
    return {"gil_hold_median_s": float(held.median()) if len(held) else None,
            "gil_hold_p90_s": float(held.quantile(0.9)) if len(held) else None,
            "gil_handoffs_per_s": float(max(len(held) - 1, 0) / span) if span > 0 else None}
