"""The Dramatiq and RQ releases our adapters are tested against, checked when an adapter is imported.

Our broker and worker replace library internals (Dramatiq's consumer and enqueue, RQ's job
lifecycle and its Redis key layout in our Lua scripts), so a release outside the tested range can
fail anywhere, or worse, quietly write records the library no longer reads. Importing
``dramatiq_impl`` or ``rq_impl`` therefore stops with one line naming the installed release and the
supported range (``shared.errors.config_error``: exit 2 in a stock worker CLI); ``redis-pipeline``
checks both before it prints anything (``shared.preflight``). ``SUPPORTED`` is the one place the
ranges live; pyproject.toml pins the same ranges (a test checks they agree).
"""

from __future__ import annotations

import re
from importlib import metadata

from shared.errors import config_error

#: Distribution -> the range we test, in pyproject.toml's spelling. CI tests both ends.
SUPPORTED: dict[str, str] = {
    "dramatiq": ">=2.2,<2.3",
    "rq": ">=3.0,<3.1",
}

#: What needs each range, for the error line.
NEEDED_BY: dict[str, str] = {
    "dramatiq": "dramatiq_impl (our Dramatiq broker)",
    "rq": "rq_impl (our RQ worker and job records)",
}

_RELEASE = re.compile(r"^\s*v?(\d+(?:\.\d+)*)(.*)$")
_PRE = re.compile(r"(a|b|c|rc|alpha|beta|pre|preview|dev)\d*", re.IGNORECASE)


def _release(version: str) -> tuple[tuple[int, ...], bool]:
    """The numeric release of a PEP 440 version and whether it is a pre-release or dev release."""
    match = _RELEASE.match(version)
    if match is None:
        raise ValueError(f"cannot read version {version!r}")
    numbers, rest = match.groups()
    return tuple(int(part) for part in numbers.split(".")), bool(_PRE.search(rest.split("+")[0]))


def _padded(release: tuple[int, ...], width: int) -> tuple[int, ...]:
    return release + (0,) * (width - len(release))


def contains(spec: str, version: str) -> bool:
    """Whether ``version`` satisfies ``spec``, a comma-separated list of ``>=X`` and ``<Y`` clauses
    (the only forms our pins use: no need to depend on ``packaging``). As PEP 440: ``3.0.0rc1`` is
    below ``>=3.0``, and ``3.1.0rc1`` is not below ``<3.1``."""
    release, pre = _release(version)
    for clause in (part.strip() for part in spec.split(",")):
        operator = ">=" if clause.startswith(">=") else "<" if clause.startswith("<") else None
        if operator is None or clause.startswith("<="):
            raise ValueError(f"unsupported version clause {clause!r} (only '>=X' and '<Y')")
        bound, _ = _release(clause[len(operator) :])
        width = max(len(release), len(bound))
        have, limit = _padded(release, width), _padded(bound, width)
        if operator == ">=" and (have < limit or (have == limit and pre)):
            return False
        if operator == "<" and have >= limit:
            return False
    return True


def installed(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None when it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def require(distribution: str, version: str | None = None) -> None:
    """Stop unless the installed ``distribution`` (or ``version``, when given) is in its supported
    range: one line naming what needs it, the installed release and the range to install."""
    spec = SUPPORTED[distribution]
    what = NEEDED_BY.get(distribution, distribution)
    have = version if version is not None else installed(distribution)
    if have is not None and contains(spec, have):
        return
    found = "is not installed" if have is None else f"{have} is installed"
    raise config_error(
        f"{what} supports {distribution}{spec} only (tested at both ends) but {distribution} {found}: "
        f"pip install '{distribution}{spec}'"
    )
