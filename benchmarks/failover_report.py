"""The failover table of ``make failover``: printed after a run, and the README's copy of it
(``python -m benchmarks failover-table``, ``update-readme``)."""

from __future__ import annotations

from typing import Any

from benchmarks.report import machine_line

HEADER = [
    "scenario",
    "stack",
    "profile",
    "min replicas",
    "lost",
    "doubled",
    "wrong",
    "redeliveries",
    "recovery s",
    "tasks/s",
    "workers alive",
    "followed",
    "result",
]


def _cell(value: Any, fmt: str = "") -> str:
    return "-" if value is None else format(value, fmt)


def verdict(row: dict[str, Any]) -> str:
    if row["passed"]:
        return "pass"
    if row["required"]:
        return "FAIL"
    if row["stack"].startswith("celery"):
        return "fails (baseline)"
    return "fails (knob off)" if row["min_replicas"] == 0 else "fails (knob < replicas)"


def table(doc: dict[str, Any]) -> list[str]:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    for r in doc["failover"]:
        cells = [
            r["scenario"],
            r["stack"],
            r["profile"],
            str(r["min_replicas"]),
            _cell(r["lost"]),
            _cell(r["doubled"]),
            _cell(r["wrong"]),
            _cell(r["redeliveries"]),
            _cell(r["recovery_s"], ".1f"),
            _cell(r["throughput"], ".0f"),
            "yes" if r["workers_alive"] else "no",
            "yes" if r["followed"] else "no",
            verdict(r),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def notes(doc: dict[str, Any]) -> list[str]:
    """What went wrong in a row, where the run saw it (the submitter's first error, a worker
    host that never reached the new master, a set-up that failed)."""
    found = [r for r in doc["failover"] if r.get("note")]
    if not found:
        return []
    return [
        "",
        *(f"- `{r['scenario']}` {r['stack']} {r['profile']} {r['min_replicas']}: {r['note']}" for r in found),
    ]


def settings_line(doc: dict[str, Any]) -> str:
    s = doc["settings"]
    submit = (
        "the whole grid submitted before the fault"
        if s["submit_before"]
        else f"the grid submitted over {s['submit_seconds']:g} s"
    )
    partial = "" if doc.get("complete", True) else "; interrupted: not every run was made"
    return (
        f"{doc['grid']} grid, {submit}, fault at {s['fault_at']:.0%} stored, "
        f"partition mended after {s['partition_seconds']:g} s, {s['timeout']:g} s timeout per run{partial}"
    )


def readme_table(doc: dict[str, Any]) -> str:
    return (
        "\n".join(
            [
                *table(doc),
                *notes(doc),
                "",
                f"Measured {doc['created_utc'][:10]} by `make failover` ({settings_line(doc)}) "
                f"on {machine_line(doc)}.",
            ]
        )
        + "\n"
    )
