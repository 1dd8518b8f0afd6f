"""Where the stock CLIs of the installed libraries live."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def stock_cli(name: str) -> str:
    """Path of a console script (``dramatiq``, ``rq``, ``celery``): beside this interpreter first."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"the {name!r} command is not installed (pip install the project first)")
    return found
