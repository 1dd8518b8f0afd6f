"""The shape of ``results.json`` (version 1), checked by the tests and by ``readme-table``.

A dependency-free check: each listed field must be present with a value of one of its types.
Fields added since version 1 (per-role RSS, the soak's RSS curve) are checked when present, so
results written before them still load.
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 1
NUM = (int, float)
OPT_NUM = (int, float, type(None))

TOP: dict[str, tuple[type, ...]] = {
    "schema": (int,),
    "created_utc": (str,),
    "profile": (str,),
    "machine": (dict,),
    "method": (dict,),
    "stacks": (list,),
    "runs": (list,),
    "summary": (list,),
}
RUN: dict[str, tuple[type, ...]] = {
    "stack": (str,),
    "profile": (str,),
    "workload": (str,),
    "tasks": (int,),
    "compute_workers": (int,),
    "repeat": (int,),
    "status": (str,),
    "seconds": NUM,
    "throughput": NUM,
    "latency_ms": (dict, type(None)),
    "cpu_s_per_1k": OPT_NUM,
    "peak_rss_mb": OPT_NUM,
    "verified": (bool,),
}
SUMMARY: dict[str, tuple[type, ...]] = {
    "stack": (str,),
    "profile": (str,),
    "workload": (str,),
    "compute_workers": (int,),
    "status": (str,),
    "throughput_median": OPT_NUM,
    "throughput_min": OPT_NUM,
    "throughput_max": OPT_NUM,
    "ratio_vs_celery_median": OPT_NUM,
    "fraction_of_limit": OPT_NUM,
    "latency_ms": (dict, type(None)),
}
#: Checked when present (newer than the first results files).
RUN_LATER: dict[str, tuple[type, ...]] = {
    "peak_rss_compute_mb": OPT_NUM,
    "peak_rss_result_mb": OPT_NUM,
    "rss_series": (dict, type(None)),
    "rss_growth": (dict, type(None)),
    "idle_commands_per_s": OPT_NUM,
}
SUMMARY_LATER: dict[str, tuple[type, ...]] = {
    "limit": (str,),
    "peak_rss_compute_mb_max": OPT_NUM,
    "peak_rss_result_mb_max": OPT_NUM,
    "idle_commands_per_s": OPT_NUM,
}
GROWTH_KEYS = {"early_mb", "late_mb", "growth_pct"}
STACK: dict[str, tuple[type, ...]] = {"stack": (str,), "profile": (str,), "status": (str,)}
LATENCY_KEYS = {"p50", "p90", "p99", "max"}


def _rss(row: dict[str, Any], where: str) -> list[str]:
    """The soak's curve: one time per sample, one MB value per worker (role) in each sample."""
    errors = []
    series = row.get("rss_series")
    if isinstance(series, dict):
        roles, seconds, mb = series.get("roles"), series.get("seconds"), series.get("mb")
        if not (isinstance(roles, list) and isinstance(seconds, list) and isinstance(mb, list)):
            errors.append(f"{where}.rss_series: roles, seconds and mb must be lists")
        elif len(seconds) != len(mb) or any(not isinstance(s, list) or len(s) != len(roles) for s in mb):
            shape = f"{len(seconds)} times, {len(mb)} samples of {len(roles)} workers"
            errors.append(f"{where}.rss_series: {shape}")
    growth = row.get("rss_growth")
    if isinstance(growth, dict):
        for role, figures in growth.items():
            if not isinstance(figures, dict) or set(figures) != GROWTH_KEYS:
                errors.append(f"{where}.rss_growth.{role}: keys are not {sorted(GROWTH_KEYS)}")
    return errors


Fields = dict[str, tuple[type, ...]]


def _check(row: Any, fields: Fields, where: str, later: Fields | None = None) -> list[str]:
    if not isinstance(row, dict):
        return [f"{where}: not an object"]
    errors = []
    for name, types in {**fields, **(later or {})}.items():
        if name not in row:
            if name in fields:
                errors.append(f"{where}: missing {name!r}")
        elif not isinstance(row[name], types) or (bool not in types and isinstance(row[name], bool)):
            errors.append(f"{where}.{name}: {type(row[name]).__name__} is not {[t.__name__ for t in types]}")
    latency = row.get("latency_ms")
    if isinstance(latency, dict) and set(latency) != LATENCY_KEYS:
        errors.append(f"{where}.latency_ms: keys {sorted(latency)} are not {sorted(LATENCY_KEYS)}")
    return errors + _rss(row, where)


def problems(doc: Any) -> list[str]:
    """Everything wrong with ``doc`` as a results document; empty when it conforms."""
    errors = _check(doc, TOP, "results")
    if errors:
        return errors
    if doc["schema"] != SCHEMA_VERSION:
        errors.append(f"results.schema: {doc['schema']} is not {SCHEMA_VERSION}")
    sections = (("stacks", STACK, None), ("runs", RUN, RUN_LATER), ("summary", SUMMARY, SUMMARY_LATER))
    for section, fields, later in sections:
        for i, row in enumerate(doc[section]):
            errors += _check(row, fields, f"{section}[{i}]", later)
    return errors
