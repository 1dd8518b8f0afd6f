"""The reliability table of ``make chaos``: in its report.md, and the README's copy of it."""

from __future__ import annotations

from typing import Any

from benchmarks.report import machine_line


def _cell(value: Any, fmt: str = "") -> str:
    return "-" if value is None else format(value, fmt)


def _poison(row: dict[str, Any]) -> str:
    if not row["poison_injected"]:
        return "-"
    if row["poison_accounted"] is None:
        return f"not kept (0/{row['poison_injected']})"
    text = f"{row['poison_accounted']}/{row['poison_injected']}"
    return text + (f", {row['poison_without_reason']} without reason" if row["poison_without_reason"] else "")


def table(doc: dict[str, Any]) -> list[str]:
    header = [
        "scenario",
        "stack",
        "lost",
        "wrong",
        "doubled",
        "redeliveries",
        "recovery s",
        "poison in DLQ",
        "workers alive",
        "result",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in doc["chaos"]:
        stack = f"{r['stack']} {r['profile']}"
        if r.get("skipped"):
            cells = [r["scenario"], stack, *["-"] * (len(header) - 3), f"skipped: {r['skipped']}"]
            lines.append("| " + " | ".join(cells) + " |")
            continue
        verdict = "pass" if r["passed"] else ("FAIL" if r["required"] else "fails (baseline)")
        if r["pickle_file_created"]:
            verdict += ", PICKLE RAN"
        cells = [
            r["scenario"],
            stack,
            str(r["lost"]),
            str(r["wrong"]),
            _cell(r.get("doubled")),  # "-": a results file from before the column
            str(r["redeliveries"]),
            _cell(r["recovery_s"], ".1f"),
            _poison(r),
            "yes" if r["workers_alive"] else "no",
            verdict,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def notes(doc: dict[str, Any]) -> list[str]:
    """Why a baseline's row failed, where its backend knows (``ChaosResult.note``)."""
    found = [r for r in doc["chaos"] if r.get("note")]
    if not found:
        return []
    return ["", *(f"- `{r['scenario']}` on {r['stack']} {r['profile']}: {r['note']}" for r in found)]


def markdown(doc: dict[str, Any], scenarios: dict[str, str]) -> str:
    lines = [
        f"# Reliability report, {doc['created_utc']}",
        "",
        f"Machine: {machine_line(doc)}.",
        "",
        f"Each scenario runs the {doc['grid']} grid ({doc['tasks']} tasks; 2 compute workers, 1 result "
        "worker, started with the stock CLIs) against a private redis-server with `appendonly yes`, "
        "`appendfsync always`, and applies its fault when ~30 % of the results are stored. Lost and "
        "wrong come from `ResultStore.verify`; redeliveries are deliveries beyond the first; recovery "
        "is fault -> last result stored. Our paths must show 0 lost, 0 wrong, 0 doubled, recovery "
        "<= 30 s, all poison dead-lettered with a reason and every worker alive; the baselines (Celery "
        "on RabbitMQ and on Redis, Huey) are reported beside them, with why a row failed where that "
        "is known. The `task-postgres` stacks run the grid as the declared task `bench.product`, "
        "stored by the pipeline's result worker in a private PostgreSQL; doubled counts rows beyond "
        "one per key (SQL: rows less distinct keys; a Redis hash holds a key once), and a row reads "
        "`skipped: <reason>` where PostgreSQL cannot run.",
        "",
        *(f"- `{name}`: {text}" for name, text in scenarios.items()),
        "",
        *table(doc),
        *notes(doc),
    ]
    return "\n".join(lines) + "\n"


def readme_table(doc: dict[str, Any]) -> str:
    return (
        "\n".join(
            [
                *table(doc),
                *notes(doc),
                "",
                f"Measured {doc['created_utc'][:10]} by `make chaos` on {machine_line(doc)}.",
            ]
        )
        + "\n"
    )
