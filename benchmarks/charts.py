"""PNG charts of a results document (matplotlib, headless Agg backend).

Every chart gives each library one colour (the raw-Redis probes grey), and draws the project's own
paths hatched (bars) or solid (lines) with their labels in bold, so ours and the peers tell apart at
a glance. Legends sit beside the plot, never over the data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use("Agg"): no display needed
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from benchmarks import memory, stats
from benchmarks.stacks import STACKS
from benchmarks.workloads import DEFAULT_WORKERS

Row = dict[str, Any]

#: Our paths: the registry's ``ours`` stacks and the declared-task stacks on our adapters (the
#: chaos run holds both to the same bar).
OURS = {s.key for s in STACKS if s.ours or s.profile.startswith("task-")}
PROBES = {s.limit[0] for s in STACKS}
PROBE_COLOUR = "#8c8c8c"
#: Colours for libraries (tab10 without its grey), in the registry's order (``colours``).
PALETTE = [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 7]  # type: ignore[attr-defined]
HATCH = "///"
#: Further profiles of one library in line charts: darker, lighter, … (``line_colours``).
SHADES = (0.0, -0.4, 0.45, -0.65, 0.7)
MARKERS = "oDs^v<>P"


def _save(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def _ours(row: Row) -> bool:
    return (row["stack"], row["profile"]) in OURS


def _label(row: Row) -> str:
    return f"{row['stack']} {row['profile']}"


def colours(doc: dict[str, Any]) -> dict[str, Any]:
    """Library (stack name) -> colour: the stacks registry's order, so a library keeps its colour
    from one report to the next; libraries it does not know (older documents) after it."""
    order = dict.fromkeys([s.stack for s in STACKS] + [r["stack"] for r in doc["summary"]])
    peers = [name for name in order if name not in PROBES]
    mapping: dict[str, Any] = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(peers)}
    return {**mapping, **dict.fromkeys(PROBES, PROBE_COLOUR)}


def _shade(colour: Any, amount: float) -> tuple[float, float, float]:
    """``colour`` mixed towards black (``amount`` < 0) or white (> 0)."""
    rgb = to_rgb(colour)
    target = 0.0 if amount < 0 else 1.0
    r, g, b = (c + (target - c) * abs(amount) for c in rgb)
    return r, g, b


def line_colours(doc: dict[str, Any]) -> dict[str, tuple[float, float, float]]:
    """Stack label -> colour for line charts: its library's colour, each further profile of the
    same library a shade darker or lighter, so two lines of one library still tell apart."""
    base = colours(doc)
    seen: dict[str, int] = {}
    shades: dict[str, tuple[float, float, float]] = {}
    for row in doc["summary"]:
        name = _label(row)
        if name not in shades:
            index = seen.get(row["stack"], 0)
            seen[row["stack"]] = index + 1
            shades[name] = _shade(base[row["stack"]], SHADES[index % len(SHADES)])
    return shades


def _legend(ax: Axes, handles: list[Any]) -> None:
    """Legend outside the plotting area, to its right."""
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def _library_handles(libraries: list[str], palette: dict[str, Any], ours: str) -> list[Any]:
    shown = set(libraries)
    handles: list[Any] = [Patch(facecolor=c, label=name) for name, c in palette.items() if name in shown]
    return [*handles, Patch(facecolor="white", edgecolor="black", hatch=HATCH, label=ours)]


def throughput_bars(doc: dict[str, Any], path: Path) -> bool:
    """Median grid throughput per stack (min-max whiskers, log scale), fastest first."""
    rows = [
        r
        for r in doc["summary"]
        if r["workload"] == "grid" and r["compute_workers"] == DEFAULT_WORKERS and r["throughput_median"]
    ]
    if not rows:
        return False
    rows.sort(key=lambda r: r["throughput_median"])
    palette = colours(doc)
    medians = [r["throughput_median"] for r in rows]
    whiskers = [
        [m - r["throughput_min"] for m, r in zip(medians, rows, strict=True)],
        [r["throughput_max"] - m for m, r in zip(medians, rows, strict=True)],
    ]
    fig, ax = plt.subplots(figsize=(9.5, 0.32 * len(rows) + 1.6))
    bars = ax.barh(
        range(len(rows)),
        medians,
        xerr=whiskers,
        capsize=3,
        color=[palette[r["stack"]] for r in rows],
        edgecolor="black",
        linewidth=0.4,
    )
    for bar, row in zip(bars, rows, strict=True):
        if _ours(row):
            bar.set_hatch(HATCH)
    ax.set_yticks(range(len(rows)), [_label(r) + (" (slice)" if r.get("sliced") else "") for r in rows])
    for tick, row in zip(ax.get_yticklabels(), rows, strict=True):
        tick.set_fontweight("bold" if _ours(row) else "normal")
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("tasks/s (median, min-max whiskers; log scale)")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    ax.set_title(
        f"grid throughput, {DEFAULT_WORKERS} compute workers, {doc['machine']['cores']} cores "
        f"({doc['created_utc'][:10]})"
    )
    _legend(ax, _library_handles([r["stack"] for r in rows], palette, "our paths (hatched, bold)"))
    _save(fig, path)
    return True


def _line_style(row: Row) -> dict[str, Any]:
    """Ours: solid and thick; peers: dashed; probes: dotted."""
    if row["stack"] in PROBES:
        return {"linestyle": ":", "linewidth": 1.5}
    return {"linestyle": "-", "linewidth": 2.2} if _ours(row) else {"linestyle": "--", "linewidth": 1.3}


def _bold_ours(ax: Axes, ours: set[str]) -> None:
    legend = ax.get_legend()
    for text in legend.get_texts() if legend else []:
        if text.get_text() in ours:
            text.set_fontweight("bold")


def latency_cdf(doc: dict[str, Any], path: Path) -> bool:
    """Submit→stored latency CDF per stack, all verified repetitions pooled."""
    pooled: dict[str, list[float]] = {}
    rows: dict[str, Row] = {}
    for run in doc["runs"]:
        if run["workload"] == "latency" and run["status"] == "ok" and run["latency_samples_ms"]:
            pooled.setdefault(_label(run), []).extend(run["latency_samples_ms"])
            rows[_label(run)] = run
    if not pooled:
        return False
    palette = line_colours(doc)
    fig, ax = plt.subplots(figsize=(9.5, 4.8))
    for name, samples in pooled.items():
        xs, ys = stats.cdf([max(s, 0.01) for s in samples])
        ax.step(
            xs, ys, where="post", label=name, color=palette.get(name, PROBE_COLOUR), **_line_style(rows[name])
        )
    ax.set_xscale("log")
    ax.set_xlabel("submit → stored latency, ms (log)")
    ax.set_ylabel("fraction of tasks")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title("latency CDF (solid: our paths; dashed: peers; dotted: probe)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    _bold_ours(ax, {n for n, r in rows.items() if _ours(r)})
    _save(fig, path)
    return True


def scaling_lines(doc: dict[str, Any], path: Path) -> bool:
    """Grid throughput against compute workers (the full profile's 1/2/4), one line per stack;
    drawn only when some stack ran several worker counts."""
    lines: dict[str, list[tuple[int, float]]] = {}
    rows: dict[str, Row] = {}
    for r in doc["summary"]:
        if r["workload"] == "grid" and r["throughput_median"] and not r.get("sliced"):
            lines.setdefault(_label(r), []).append((r["compute_workers"], r["throughput_median"]))
            rows[_label(r)] = r
    lines = {name: points for name, points in lines.items() if len(points) > 1}
    if not lines:
        return False
    palette = line_colours(doc)
    markers = {name: MARKERS[i % len(MARKERS)] for i, name in enumerate(palette)}
    fig, ax = plt.subplots(figsize=(9.5, 5.0))
    for name, points in sorted(lines.items(), key=lambda item: -max(p[1] for p in item[1])):
        xs, ys = zip(*sorted(points), strict=True)
        style = _line_style(rows[name])
        ax.plot(xs, ys, marker=markers.get(name, "o"), label=name, color=palette.get(name), **style)
    counts = sorted({x for points in lines.values() for x, _ in points})
    ax.set_xticks(counts, [str(c) for c in counts])
    ax.set_yscale("log")
    ax.set_xlabel("compute workers (plus one result worker)")
    ax.set_ylabel("tasks/s (median, log scale)")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(
        f"grid throughput vs worker count, {doc['machine']['cores']} cores ({doc['created_utc'][:10]})"
    )
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    _bold_ours(ax, {n for n, r in rows.items() if _ours(r)})
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
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
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
