"""Where a run's files go: ``results/<UTC timestamp>/`` plus ``results/latest.json``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from benchmarks import charts, report

RESULTS = Path(__file__).parent / "results"


def run_dir(root: Path = RESULTS, suffix: str = "") -> Path:
    from datetime import UTC, datetime

    directory = root / (datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + suffix)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def write(doc: dict[str, Any], directory: Path, root: Path | None = RESULTS) -> Path:
    """results.json, the charts and report.md into ``directory``; latest.json into ``root``."""
    results = directory / "results.json"
    results.write_text(json.dumps(doc, indent=1) + "\n")
    names = charts.draw_all(doc, directory)
    (directory / "report.md").write_text(report.markdown(doc, names, latest_chaos(root)))
    if root is not None:
        shutil.copyfile(results, root / "latest.json")
    return results


def latest_chaos(root: Path | None = RESULTS) -> dict[str, Any] | None:
    """The latest ``make chaos`` results beside ``root``'s, else in ``RESULTS``; None if neither."""
    for directory in dict.fromkeys(d for d in (root, RESULTS) if d is not None):
        if (path := directory / "latest-chaos.json").exists():
            return load(path)
    return None


def load(path: Path = RESULTS / "latest.json") -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc
