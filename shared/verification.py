"""What a verification found: the one report every store's ``verify`` gives (the seed's grid,
declared tasks' calls) and every run prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Verification:
    """Per expected item (a grid point, a call's key): ``ok`` means nothing missing, wrong or
    unexpected; ``redelivered`` counts deliveries beyond the first (stored once all the same)."""

    expected: int
    stored: int
    missing: list[Any] = field(default_factory=list)
    wrong: list[tuple[Any, Any]] = field(default_factory=list)
    unexpected: list[Any] = field(default_factory=list)
    redelivered: dict[Any, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.wrong or self.unexpected)

    @property
    def verified(self) -> int:
        return self.expected - len(self.missing) - len(self.wrong)

    def problems(self, limit: int = 5) -> str:
        """One line naming what is wrong, with a few examples of each kind."""
        parts = []
        for label, items in (
            ("missing", self.missing),
            ("wrong", self.wrong),
            ("unexpected", self.unexpected),
        ):
            if items:
                shown = ", ".join(str(i) for i in items[:limit])
                more = f", … {len(items) - limit} more" if len(items) > limit else ""
                parts.append(f"{len(items)} {label} ({shown}{more})")
        return "; ".join(parts) or "none"
