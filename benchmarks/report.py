"""``report.md`` and the README table, both rendered from a results document (never by hand)."""

from __future__ import annotations

from typing import Any

from benchmarks import answer, idle, memory, targets
from benchmarks.stacks import CHUNKED_LIMIT, LIMIT

Row = dict[str, Any]


def _num(value: float | None, fmt: str = ",.0f") -> str:
    return "-" if value is None else format(value, fmt)


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _pct(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" if value < 0.1 else f"{value:.0%}"


def _of_limit(row: Row) -> str:
    """The row's fraction of its own mode's probe, naming the probe's profile (``probe``: one point
    per message, ``chunked``: a chunk per message); rows from before per-mode probes name none. Over
    100 % the probe was not the ceiling: the figure goes to Problems, not into the table."""
    fraction, probe = row["fraction_of_limit"], row.get("limit")
    if fraction is not None and fraction > 1 and probe != f"{row['stack']} {row['profile']}":
        figure = "over its probe: see Problems"  # the probe was not the ceiling: no result to print
    else:
        figure = _pct(fraction)
    return f"{figure} ({probe.rpartition(' ')[2]})" if fraction is not None and probe else figure


def _throughput(row: Row) -> str:
    if row["throughput_median"] is None:
        return "-"
    return f"{row['throughput_median']:,.0f} [{row['throughput_min']:,.0f}-{row['throughput_max']:,.0f}]"


def _status(row: Row) -> str:
    status = str(row["status"])
    if row.get("sliced"):
        status += f" (slice: {row['tasks']} tasks)"
    return status


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(cells) + " |" for cells in rows]


def _peak_rss(row: Row, suffix: str = "") -> str:
    """Peak RSS per worker, compute / result; older results only have the largest worker."""
    if f"peak_rss_compute_mb{suffix}" not in row:
        largest = row.get(f"peak_rss_mb{suffix}")
        return "-" if largest is None else f"{largest:,.0f} (largest)"
    return f"{_num(row[f'peak_rss_compute_mb{suffix}'])} / {_num(row[f'peak_rss_result_mb{suffix}'])}"


def _closed(doc: dict[str, Any]) -> list[Row]:
    return [r for r in doc["summary"] if r["workload"] not in ("latency", "idle")]


def idle_table(doc: dict[str, Any]) -> list[str]:
    rows = [
        [r["stack"], r["profile"], _num(r.get("idle_commands_per_s"), ".1f"), _status(r)]
        for r in doc["summary"]
        if r["workload"] == "idle"
    ]
    return _table(["stack", "profile", "Redis commands/s per idle worker", "status"], rows) if rows else []


def _idle_section(doc: dict[str, Any]) -> list[str]:
    table = idle_table(doc)
    if not table:
        return []
    return [
        "",
        "## Idle workers",
        "",
        "2 compute + 1 result worker with nothing to do; every command Redis executed over "
        f"{idle.WINDOW_S:g} s (`INFO commandstats`, commands inside Lua scripts included), per worker.",
        "",
        *table,
    ]


def targets_section(doc: dict[str, Any]) -> list[str]:
    return ["", "## The performance issue's targets", "", *targets.table(doc)]


def _latency_rows(doc: dict[str, Any]) -> list[Row]:
    return [r for r in doc["summary"] if r["workload"] == "latency"]


def _lat(row: Row, name: str) -> str:
    return _num(row["latency_ms"][name], ",.1f") if row["latency_ms"] else "-"


def machine_line(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    libs = ", ".join(f"{k} {v}" for k, v in m["libraries"].items() if v)
    load = f", load average {m['load_average']} at the end" if m.get("load_average") else ""
    return (
        f"{m['cores']} cores ({m['cpu_model']}), {m['memory_gb']} GB, {m['platform']}, "
        f"Python {m['python']}, Redis {m['redis_server'] or '?'}, RabbitMQ {m['rabbitmq'] or '-'}; "
        f"{libs}{load}"
    )


def throughput_table(doc: dict[str, Any]) -> list[str]:
    header = [
        "stack",
        "profile",
        "workload",
        "workers",
        "tasks/s median [min-max]",
        "vs celery seed",
        "of redis-limit (probe)",
        "of ideal",
        "submit/s",
        "worker CPU s/1k",
        "peak RSS MB/worker (compute / result)",
        "Redis Δ MB",
        "status",
    ]
    rows = [
        [
            r["stack"],
            r["profile"],
            r["workload"],
            str(r["compute_workers"]),
            _throughput(r),
            _times(r["ratio_vs_celery_median"]),
            _of_limit(r),
            _pct(r.get("fraction_of_ideal")),
            _num(r.get("submit_rate_median")),
            _num(r.get("cpu_s_per_1k_median"), ".2f"),
            _peak_rss(r, "_max"),
            _num(r.get("redis_mem_delta_mb_median"), ".1f"),
            _status(r),
        ]
        for r in _closed(doc)
    ]
    return _table(header, rows)


def _p50_vs_probe(row: Row, probe: Row | None) -> str:
    """p50 over the redis-limit probe's p50 of the same run: the absolute figures move with the
    host (docs/performance.md), this ratio much less."""
    if probe is None or not probe["latency_ms"] or not row["latency_ms"]:
        return "-"
    return _times(row["latency_ms"]["p50"] / probe["latency_ms"]["p50"])


def latency_table(doc: dict[str, Any]) -> list[str]:
    header = [
        "stack",
        "profile",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "p50 vs probe",
        "worker CPU s/1k",
        "status",
    ]
    rows = _latency_rows(doc)
    probe = next((r for r in rows if (r["stack"], r["profile"]) == LIMIT), None)
    lines = [
        [
            r["stack"],
            r["profile"],
            *(_lat(r, k) for k in ("p50", "p90", "p99", "max")),
            _p50_vs_probe(r, probe),
            _num(r.get("cpu_s_per_1k_median"), ".2f"),
            _status(r),
        ]
        for r in rows
    ]
    return _table(header, lines)


def _soak_runs(doc: dict[str, Any]) -> list[Row]:
    return [r for r in doc["runs"] if r.get("rss_series")]


def _growth(run: Row, figure: str, fmt: str) -> str:
    growth = run.get("rss_growth") or {}
    cells = [format(growth[role][figure], fmt) if role in growth else "-" for role in ("compute", "result")]
    return " / ".join(cells)


def memory_table(doc: dict[str, Any]) -> list[str]:
    """The soak: each stack's worker RSS at the start of the settled run and at its end."""
    per_role = ("peak RSS MB/worker", "RSS MB at 10-20 %", "RSS MB in last 10 %", "growth %")
    header = ["stack", "profile", "tasks", "seconds", *(f"{c} (compute / result)" for c in per_role)]
    header += ["memory", "status"]
    rows = [
        [
            r["stack"],
            r["profile"],
            f"{r['tasks']:,}",
            _num(r["seconds"], ",.1f"),
            _peak_rss(r),
            _growth(r, "early_mb", ",.0f"),
            _growth(r, "late_mb", ",.0f"),
            _growth(r, "growth_pct", "+.1f"),
            memory.verdict(r.get("rss_growth")),
            r["status"] if not r["problems"] else f"{r['status']}: {r['problems']}",
        ]
        for r in _soak_runs(doc)
    ]
    return _table(header, rows)


def _memory_section(doc: dict[str, Any]) -> list[str]:
    runs = _soak_runs(doc)
    if not runs:
        return []
    every = runs[0]["rss_series"]["every_s"]
    return [
        "",
        "## Memory over long runs",
        "",
        f"Each worker's RSS (its whole process tree: the CLI and what it forks) sampled every {every:g} s "
        "from submit to the last result stored; `compute` is the largest compute worker. Growth is the "
        "median RSS of the last 10 % of samples against the median of the samples 10-20 % into the run "
        f"(after warm-up); `flat` when every role's |growth| < {memory.FLAT_PCT:g} %, else `grows`; `-` "
        f"when a run was too short for {memory.MIN_SAMPLES} samples. The curve is `rss_soak.png`.",
        "",
        *memory_table(doc),
    ]


def _latency_case(doc: dict[str, Any]) -> str:
    for case in doc["method"]["cases"]:
        if case["rate_per_s"]:
            seconds = case["tasks"] / case["rate_per_s"]
            runs = case.get("repeats", doc["method"]["repeats"])
            return f"open loop, {case['rate_per_s']:g} tasks/s for {seconds:g} s, {runs} run(s) per stack"
    return "open loop"


def _method(doc: dict[str, Any]) -> list[str]:
    m = doc["method"]
    lines = [
        f"Workers are started and idle before the clock starts; stacks run interleaved, "
        f"{m['repeats']} repetition(s) of each grid. Cells show the median with [min-max]. "
        f"Ratios vs `{m['baseline']}` and fractions of redis-limit are computed per repetition, "
        "then the median is taken. Every run is verified through `ResultStore.verify`; "
        "a FAILED run is excluded from the figures.",
        "",
        f"Each row's `of redis-limit` is against the raw-Redis probe of its own mode, named in brackets: "
        f"`{' '.join(LIMIT)}` (one point per message) for per-message rows, `{' '.join(CHUNKED_LIMIT)}` "
        "(the chunked stacks' points per message, same store writes, no framework and no acks) for "
        "chunked rows, bulk submit included. Over 100 % the probe was not the ceiling in that run: the "
        "cell says so and the figure is listed under Problems.",
        "",
        f"A stack slower than {m['slow_rate']:g} tasks/s in its warm-up runs a {m['slice_grid']} slice "
        "of each grid instead (marked `slice`)"
        + (f", {m['sliced_repeats']} time(s) per case" if m.get("sliced_repeats") else "")
        + ". Latency is submit (scheduled time) → result stored, "
        "seen when Redis announces the write (keyspace events; a 1 ms poll where CONFIG is refused)"
        + (
            f"; it is not timed on a stack whose warm-up went under {m['keeps_up']:g}x the rate "
            "(a backlog would build: the run would time the queue)."
            if m.get("keeps_up")
            else "."
        ),
    ]
    skipping: dict[tuple[str, ...], list[Row]] = {}
    for case in m["cases"]:
        if case.get("skip"):
            skipping.setdefault(tuple(case["skip"]), []).append(case)
        if case.get("only"):
            runs = case.get("repeats", m["repeats"])
            lines.append("")
            lines.append(
                f"`{case['workload']}` ({case['tasks']:,} tasks, {runs} run(s)) runs only on "
                f"{', '.join(f'`{label}`' for label in case['only'])}. {case.get('note', '')}".rstrip()
            )
    for labels, cases in skipping.items():
        names = ", ".join(f"`{c['workload']}` ({c['compute_workers']} workers)" for c in cases)
        notes = " ".join(dict.fromkeys(c["note"] for c in cases if c.get("note")))
        skipped = ", ".join(f"`{label}`" for label in labels)
        lines += ["", f"{names}: not run on {skipped}. {notes}".rstrip()]
    return lines


def _problems(doc: dict[str, Any]) -> list[str]:
    lines = []
    for r in doc["summary"]:
        for problem in r["problems"]:
            lines.append(f"- {r['stack']} {r['profile']} {r['workload']}: {problem}")
        if (r["fraction_of_limit"] or 0) > 1 and r.get("limit") != f"{r['stack']} {r['profile']}":
            lines.append(
                f"- {r['stack']} {r['profile']} {r['workload']} ({r['compute_workers']} workers): "
                f"{r['fraction_of_limit']:.0%} of "
                f"{r.get('limit', ' '.join(LIMIT))}: that probe was not this mode's ceiling in this run"
            )
    return lines


def markdown(doc: dict[str, Any], charts: list[str], chaos: dict[str, Any] | None = None) -> str:
    """The report; ``chaos``: the latest ``make chaos`` results, for the opening answer's safety line."""
    lines = [
        f"# Benchmark report: profile `{doc['profile']}`, {doc['created_utc']}",
        "",
        *answer.lines(doc, chaos),
        "",
        f"Machine: {machine_line(doc)}.",
        "",
        *_method(doc),
        "",
        "## Throughput (closed loop: whole grid submitted at once)",
        "",
        *throughput_table(doc),
        "",
        f"## Latency ({_latency_case(doc)})",
        "",
        *latency_table(doc),
        *_idle_section(doc),
        *_memory_section(doc),
        *targets_section(doc),
    ]
    if problems := _problems(doc):
        lines += ["", "## Problems", "", *problems]
    if charts:
        lines += ["", "## Charts", "", *(f"![{name}]({name})" for name in charts)]
    return "\n".join(lines) + "\n"


def _grid_row(doc: dict[str, Any], stack: str, profile: str) -> Row | None:
    rows = [
        r
        for r in doc["summary"]
        if (r["stack"], r["profile"], r["workload"]) == (stack, profile, "grid") and r["compute_workers"] == 2
    ]
    return rows[0] if rows else None


def _pick(row: Row) -> tuple[str, str]:
    return row["stack"], row["profile"]


def readme_table(doc: dict[str, Any]) -> str:
    """The README's table: the seed's grid and latency per stack, with where and when it was measured."""
    latency = {_pick(r): r for r in _latency_rows(doc)}
    header = [
        "stack",
        "profile",
        "grid tasks/s median [min-max]",
        "vs celery seed",
        "of redis-limit (probe)",
        "latency p50 / p99 ms",
        "status",
    ]
    rows = []
    for key in dict.fromkeys(_pick(r) for r in doc["summary"]):
        grid, lat = _grid_row(doc, *key), latency.get(key)
        if grid is None:
            continue
        rows.append(
            [
                *key,
                _throughput(grid),
                _times(grid["ratio_vs_celery_median"]),
                _of_limit(grid),
                f"{_lat(lat, 'p50')} / {_lat(lat, 'p99')}" if lat and lat["latency_ms"] else "-",
                _status(grid),
            ]
        )
    command = f"python -m benchmarks run --profile {doc['profile']}"
    note = (
        f"Measured {doc['created_utc'][:10]} with `{command}` ({doc['method']['repeats']} repetitions, "
        f"every run verified; latency: {_latency_case(doc)}) on {machine_line(doc)}."
    )
    return "\n".join([*_table(header, rows), "", note]) + "\n"


def readme_targets(doc: dict[str, Any]) -> str:
    """The README's targets table, with the run it was checked against."""
    return (
        "\n".join(
            [*targets.table(doc), "", f"Checked against `{doc['profile']}` run of {doc['created_utc']}."]
        )
        + "\n"
    )
