"""Our adapters run only on the Dramatiq and RQ releases we test: pyproject.toml pins the ranges
``shared.versions`` checks at import, and a release outside them stops in one line, exit 2."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from shared.embedded import RedisServer
from shared.errors import ConfigError
from shared.versions import SUPPORTED, contains, installed, require
from tests.test_config_errors import DRAMATIQ_WORKER, RQ_WORKER

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*(.*)$")


def _pins() -> dict[str, str]:
    """pyproject.toml's requirements (dependencies and every extra): normalized name -> spec."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    pins = {}
    for requirement in requirements:
        match = REQUIREMENT.match(requirement)
        assert match is not None, requirement
        pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2).replace(" ", "")
    return pins


def test_pyproject_pins_the_ranges_the_adapters_check() -> None:
    pins = _pins()
    for distribution, spec in SUPPORTED.items():
        assert pins[distribution] == spec, f"pyproject.toml pins {distribution}{pins[distribution]}"


def test_every_installed_dependency_is_inside_its_pin() -> None:
    """Each pin has a tested lower bound (CI installs it, .ci/lower_bounds.py) and admits what we run."""
    for name, spec in _pins().items():
        assert spec.startswith(">="), f"{name}{spec}: no lower bound for CI to test"
        version = installed(name)
        if version is not None:
            assert contains(spec, version), f"{name} {version} is installed, outside {name}{spec}"


def test_the_installed_releases_pass() -> None:
    for distribution in SUPPORTED:
        require(distribution)


@pytest.mark.parametrize(
    ("spec", "version", "inside"),
    [
        (">=3.0,<3.1", "3.0.0", True),
        (">=3.0,<3.1", "3.0.7", True),
        (">=3.0,<3.1", "3.0.0.post1", True),
        (">=3.0,<3.1", "2.12.0", False),
        (">=3.0,<3.1", "3.1.0", False),
        (">=3.0,<3.1", "4.0", False),
        (">=3.0,<3.1", "3.0.0rc1", False),
        (">=3.0,<3.1", "3.1.0rc1", False),
        (">=2.2,<2.3", "2.2.1+local", True),
        (">=2.2,<2.3", "2.1.0", False),
    ],
)
def test_contains_reads_the_pins_as_pip_does(spec: str, version: str, inside: bool) -> None:
    assert contains(spec, version) is inside


def test_a_clause_it_cannot_read_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported version clause"):
        contains("~=3.0", "3.0.0")


@pytest.mark.parametrize(("distribution", "version"), [("rq", "2.12.0"), ("dramatiq", "2.1.0")])
def test_a_release_outside_the_range_is_one_line(distribution: str, version: str) -> None:
    spec = SUPPORTED[distribution]
    with pytest.raises(ConfigError) as raised:
        require(distribution, version)
    message = str(raised.value)
    assert "\n" not in message
    assert f"{distribution} {version} is installed" in message and f"{distribution}{spec}" in message


def test_a_missing_distribution_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SUPPORTED, "no-such-distribution-here", ">=1.0,<1.1")
    with pytest.raises(ConfigError, match="no-such-distribution-here is not installed"):
        require("no-such-distribution-here")


def _installed_as(tmp_path: Path, distribution: str, version: str) -> str:
    """A directory that, first on PYTHONPATH, makes ``importlib.metadata`` report ``version``."""
    info = tmp_path / f"{distribution}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
    return str(tmp_path)


CASES = {
    "rq-worker": (RQ_WORKER, "rq", "2.12.0"),
    "dramatiq-worker": (DRAMATIQ_WORKER, "dramatiq", "2.1.0"),
    "redis-pipeline-rq": (
        [str(BIN / "redis-pipeline"), "run", "--backend", "rq", "--grid", "2x2"],
        "rq",
        "3.1.0",
    ),
    "redis-pipeline-dramatiq": (
        [str(BIN / "redis-pipeline"), "run", "--backend", "dramatiq", "--grid", "2x2"],
        "dramatiq",
        "2.3.0",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_the_real_commands_stop_in_one_line_on_another_release(
    case: tuple[list[str], str, str], tmp_path: Path, redis_server: RedisServer
) -> None:
    """The stock worker CLIs and ``redis-pipeline``, with the library's metadata saying another
    release: one line naming it and the range, exit 2, no traceback. (Dramatiq's parent process adds
    its own booting / exited-with-code-2 log lines, which are not ours.)"""
    command, distribution, version = case
    path = os.pathsep.join([_installed_as(tmp_path, distribution, version), str(ROOT)])
    env = {**os.environ, "REDIS_URL": redis_server.url, "PYTHONPATH": path}
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    ours = [text for text in done.stderr.splitlines() if "[dramatiq.MainProcess]" not in text]
    assert len(ours) == 1, done.stderr
    assert ours[0].startswith("error: ") and f"{distribution} {version} is installed" in ours[0], ours[0]
    assert f"{distribution}{SUPPORTED[distribution]}" in ours[0], ours[0]
