"""The shape of ``results.json`` (version 1), checked by the tests and by ``readme-table``.

A dependency-free check: each listed field must be present with a value of one of its types.
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
STACK: dict[str, tuple[type, ...]] = {"stack": (str,), "profile": (str,), "status": (str,)}
LATENCY_KEYS = {"p50", "p90", "p99", "max"}


def _check(row: Any, fields: dict[str, tuple[type, ...]], where: str) -> list[str]:
    if not isinstance(row, dict):
        return [f"{where}: not an object"]
    errors = []
    for name, types in fields.items():
        if name not in row:
            errors.append(f"{where}: missing {name!r}")
        elif not isinstance(row[name], types) or (bool not in types and isinstance(row[name], bool)):
            errors.append(f"{where}.{name}: {type(row[name]).__name__} is not {[t.__name__ for t in types]}")
    latency = row.get("latency_ms")
    if isinstance(latency, dict) and set(latency) != LATENCY_KEYS:
        errors.append(f"{where}.latency_ms: keys {sorted(latency)} are not {sorted(LATENCY_KEYS)}")
    return errors


def problems(doc: Any) -> list[str]:
    """Everything wrong with ``doc`` as a results document; empty when it conforms."""
    errors = _check(doc, TOP, "results")
    if errors:
        return errors
    if doc["schema"] != SCHEMA_VERSION:
        errors.append(f"results.schema: {doc['schema']} is not {SCHEMA_VERSION}")
    for section, fields in (("stacks", STACK), ("runs", RUN), ("summary", SUMMARY)):
        for i, row in enumerate(doc[section]):
            errors += _check(row, fields, f"{section}[{i}]")
    return errors
