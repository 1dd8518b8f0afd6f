"""pyproject.toml as setuptools reads it: an install prints no deprecation or editable-mode warning
of ours, and every package ships (the full check, a fresh venv's ``pip install -e``, is in the
README's Tests section)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_is_an_spdx_expression_not_a_deprecated_table() -> None:
    assert isinstance(PYPROJECT["project"]["license"], str)
    assert not any(c.startswith("License ::") for c in PYPROJECT["project"].get("classifiers", []))


def test_packages_sit_at_the_root_so_an_editable_install_is_a_plain_path_entry() -> None:
    """``package-dir = {"" = "."}`` and every package directly under it: setuptools then installs
    editable as one .pth line, not the import-hook finder that warns about same-named folders."""
    setuptools = PYPROJECT["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"": "."}
    for package in setuptools["packages"]:
        assert (ROOT / package / "__init__.py").is_file(), package


def test_every_subpackage_is_listed() -> None:
    """A package directory left out of ``packages`` works editable and is missing from a wheel."""
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in listed
        for init in (ROOT / top).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found == listed
