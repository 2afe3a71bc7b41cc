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


def gil_handoffs(bands: pd.DataFrame, windows: list[tuple[float, float]], min_band_s: float = 0.0015) -> dict:
    """How long a thread held on before another took over, while another task was running beside it.

    `windows` are the intervals in which at least two measured tasks ran at once: only there does a
    thread that keeps the CPU hold the GIL against a waiter. Outside them a lone task runs unopposed
    (the threads pool starts its second thread while the first already runs a task, and under a long
    switch interval that start alone can take a few hundred ms), and its run is not a hold.
    Only bands wholly inside a window count, and bands shorter than `min_band_s` (under two
    samples at 1 kHz) are left out: they are a sample interval cut by a handover, not a hold.
    """
    inside = pd.Series(False, index=bands.index)
    for t0, t1 in windows:
        inside |= (bands["start"] >= t0) & (bands["end"] <= t1)
    kept = bands[inside & (bands["end"] - bands["start"] >= min_band_s)]
    held = kept["end"] - kept["start"]
    span = sum(t1 - t0 for t0, t1 in windows)
    return {"gil_hold_median_s": float(held.median()) if len(held) else None,
            "gil_hold_p90_s": float(held.quantile(0.9)) if len(held) else None,
            "gil_handoffs_per_s": float(max(len(held) - 1, 0) / span) if span > 0 else None,
            "gil_contended_s": float(span)}
