"""PNG charts of a results document (matplotlib, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use("Agg"): no display needed
from matplotlib.figure import Figure

from benchmarks import memory, stats


def _save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _label(row: dict[str, Any]) -> str:
    return f"{row['stack']}\n{row['profile']}"


def throughput_bars(doc: dict[str, Any], path: Path) -> bool:
    """Median throughput per stack on the seed's grid, with min-max whiskers (log scale)."""
    rows = [
        r
        for r in doc["summary"]
        if r["workload"] == "grid" and r["compute_workers"] == 2 and r["throughput_median"]
    ]
    if not rows:
        return False
    medians = [r["throughput_median"] for r in rows]
    whiskers = [
        [m - r["throughput_min"] for m, r in zip(medians, rows, strict=True)],
        [r["throughput_max"] - m for m, r in zip(medians, rows, strict=True)],
    ]
    fig, ax = plt.subplots(figsize=(max(9.0, 0.75 * len(rows)), 4.5))
    ax.bar([_label(r) for r in rows], medians, yerr=whiskers, capsize=4, color="#4c72b0")
    ax.set_yscale("log")
    ax.set_ylabel("tasks/s (median, min-max)")
    ax.set_title(f"grid throughput, {doc['machine']['cores']} cores ({doc['created_utc'][:10]})")
    ax.tick_params(axis="x", labelsize=8)
    _save(fig, path)
    return True


def latency_cdf(doc: dict[str, Any], path: Path) -> bool:
    """Submit→stored latency CDF per stack, all verified repetitions pooled."""
    pooled: dict[str, list[float]] = {}
    for run in doc["runs"]:
        if run["workload"] == "latency" and run["status"] == "ok" and run["latency_samples_ms"]:
            pooled.setdefault(f"{run['stack']} {run['profile']}", []).extend(run["latency_samples_ms"])
    if not pooled:
        return False
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, samples in pooled.items():
        xs, ys = stats.cdf([max(s, 0.01) for s in samples])
        ax.step(xs, ys, where="post", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("submit → stored latency, ms (log)")
    ax.set_ylabel("fraction of tasks")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    _save(fig, path)
    return True


def scaling_lines(doc: dict[str, Any], path: Path) -> bool:
    """Grid throughput against compute workers, one line per stack (only when several counts ran)."""
    lines: dict[str, list[tuple[int, float]]] = {}
    for r in doc["summary"]:
        if r["workload"] == "grid" and r["throughput_median"]:
            lines.setdefault(f"{r['stack']} {r['profile']}", []).append(
                (r["compute_workers"], r["throughput_median"])
            )
    if not any(len(points) > 1 for points in lines.values()):
        return False
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, points in lines.items():
        xs, ys = zip(*sorted(points), strict=True)
        ax.plot(xs, ys, marker="o", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("compute workers")
    ax.set_ylabel("tasks/s (median)")
    ax.legend(fontsize=8)
    _save(fig, path)
    return True


def rss_soak(doc: dict[str, Any], path: Path) -> bool:
    """Worker RSS against time over the soak: a panel per stack (their runs last seconds to minutes),
    a line per role (compute: the largest compute worker), one RSS scale."""
    runs = [r for r in doc["runs"] if r.get("rss_series")]
    if not runs:
        return False
    fig, axes = plt.subplots(1, len(runs), figsize=(4 * len(runs) + 1, 4), sharey=True, squeeze=False)
    for ax, run in zip(axes[0], runs, strict=True):
        seconds = run["rss_series"]["seconds"]
        for role, curve in memory.by_role(run["rss_series"]).items():
            ax.plot(seconds, curve, "-" if role == "compute" else "--", label=role)
        ax.set_title(f"{run['stack']} {run['profile']}, {run['tasks']:,} tasks", fontsize=10)
        ax.set_xlabel("seconds since submit started")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("RSS per worker, MB")
    axes[0][0].set_ylim(bottom=0)
    axes[0][0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"worker RSS over long runs ({doc['created_utc'][:10]})")
    _save(fig, path)
    return True


CHARTS = {
    "throughput.png": throughput_bars,
    "latency_cdf.png": latency_cdf,
    "scaling.png": scaling_lines,
    "rss_soak.png": rss_soak,
}


def draw_all(doc: dict[str, Any], directory: Path) -> list[str]:
    """Write every chart that has data; returns the file names written."""
    return [name for name, draw in CHARTS.items() if draw(doc, directory / name)]
