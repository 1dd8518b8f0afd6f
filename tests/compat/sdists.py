"""The installed Dramatiq's and RQ's own test suites, from their sdists on the package index.

``pip download --no-binary :all: --no-deps NAME==INSTALLED`` fetches the sdist of exactly the
release installed (the one our adapters run on); only its ``tests/`` folder and its pytest
configuration are unpacked. The library's own source stays in the archive: their tests import
the installed release, the one our broker and worker subclass, not a second copy beside them.
Both live under ``.compat/`` (git-ignored), so a second run needs no download.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path, PurePosixPath

from shared.versions import installed

#: Files of the sdist's top folder that pytest reads its configuration from.
CONFIG_FILES = frozenset({"pyproject.toml", "setup.cfg", "tox.ini", "pytest.ini"})


class SdistError(RuntimeError):
    pass


def installed_version(distribution: str) -> str:
    version = installed(distribution)
    if version is None:
        raise SdistError(f"{distribution} is not installed: make install first")
    return version


def _archive(distribution: str, version: str, downloads: Path) -> Path:
    """The sdist of ``distribution==version`` in ``downloads``, fetched with pip if not there yet."""
    stem = re.escape(f"{distribution}-{version}").replace(r"\-", "[-_]")
    pattern = re.compile(rf"^{stem}\.(tar\.gz|zip)$", re.IGNORECASE)
    found = [path for path in downloads.glob("*") if pattern.match(path.name)]
    if found:
        return found[0]
    downloads.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps"]
    command += ["-d", str(downloads), f"{distribution}=={version}"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SdistError(f"pip download {distribution}=={version} failed:\n{done.stderr.strip()[-2000:]}")
    found = [path for path in downloads.glob("*") if pattern.match(path.name)]
    if not found:
        raise SdistError(f"pip download {distribution}=={version} left no sdist in {downloads}")
    return found[0]


def _wanted(name: str) -> str | None:
    """The path below the sdist's top folder of a member to unpack, or None."""
    parts = PurePosixPath(name).parts
    if len(parts) < 2 or ".." in parts:
        return None
    inner = PurePosixPath(*parts[1:])
    if inner.parts[0] == "tests" or (len(inner.parts) == 1 and inner.name in CONFIG_FILES):
        return str(inner)
    return None


def unpack_tests(archive: Path, target: Path) -> Path:
    """The sdist's ``tests/`` and pytest configuration, in ``target`` (made afresh)."""
    if not archive.name.endswith(".tar.gz"):
        raise SdistError(f"{archive.name}: only .tar.gz sdists are handled")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        members = []
        for member in tar.getmembers():
            inner = _wanted(member.name)
            if inner is not None and (member.isfile() or member.isdir()):
                member.name = inner
                members.append(member)
        if hasattr(tarfile, "data_filter"):  # Python 3.11.4+: refuse links out, odd modes
            tar.extractall(partial, members=members, filter="data")
        else:  # members are already plain files and folders below the top folder
            tar.extractall(partial, members=members)
    if not (partial / "tests").is_dir():
        raise SdistError(f"{archive.name} has no tests/ folder")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def suite_source(distribution: str, cache: Path) -> tuple[str, Path]:
    """(installed version, folder holding that release's tests/), downloaded and unpacked once."""
    version = installed_version(distribution)
    target = cache / "src" / f"{distribution}-{version}"
    if not (target / "tests").is_dir():
        unpack_tests(_archive(distribution, version, cache / "sdists"), target)
    return version, target
