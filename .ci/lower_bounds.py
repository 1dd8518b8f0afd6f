"""Print pip constraints that pin each dependency to its lower bound (``name==low`` per ``name>=low``).

CI installs the project under them in a second venv, so the oldest releases pyproject.toml admits
are tested, not only the newest ones pip picks by default. Usage: ``lower_bounds.py [extra ...]``.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*(.*)$")


def lower_bounds(pyproject: Path, extras: list[str]) -> list[str]:
    """``name==low`` for every requirement of the project's dependencies and the given extras."""
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    pins = []
    for requirement in requirements:
        match = REQUIREMENT.match(requirement)
        if match is None:
            raise SystemExit(f"error: cannot read requirement {requirement!r}")
        name, spec = match.groups()
        lows = [part.strip()[2:].strip() for part in spec.split(",") if part.strip().startswith(">=")]
        low = lows[0] if lows else None
        if low is None:
            raise SystemExit(f"error: {requirement!r} has no '>=' lower bound to test")
        pins.append(f"{name}=={low}")
    return pins


if __name__ == "__main__":
    print("\n".join(lower_bounds(Path(__file__).resolve().parent.parent / "pyproject.toml", sys.argv[1:])))
