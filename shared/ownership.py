"""What a run may touch on a Redis it may share with other applications: only what it created.

Before a run, ``claim`` looks at what the run would otherwise empty (the waiting and delayed
messages of its backend's queues, the stored results it would replace). Anything there is not
this run's: the run is refused (``RunRefused``, one line per finding) unless ``purge``, and only
then is it dropped. ``claim`` also notes which keys of the run's fixed footprint exist already.

After a run that verified, ``Footprint.tidy`` deletes the footprint keys that did not exist
before (results too unless ``keep``) and takes out the set members the run added. Keys that
existed before are left as they are: this run's entries in them (Dramatiq heartbeats, RQ's
finished-job ids) are expired by the library's own maintenance; per-message keys (RQ job and
result hashes) carry the TTL the library gives them. A run that fails or is interrupted leaves
its keys for diagnosis, or for workers that finish its queues; the results and deliveries hashes
it created expire ``LEFTOVER_TTL_S`` later (``Footprint.leave``), so none is kept for ever.

Each adapter names its backend's footprint (``occupied`` and ``footprint`` on the backend
``shared.backend`` loads by name, from its ``ownership`` module), so ``shared`` imports no
adapter; a backend without them (a benchmark's) is judged by its queue depths alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from shared.backend import Backend

#: How long the results of a run that failed or was interrupted stay (7 days).
LEFTOVER_TTL_S = 7 * 86_400


@dataclass
class Keys:
    """Keys a run may create: whole keys, and members it may add to shared sets (key -> members)."""

    keys: list[str] = field(default_factory=list)
    members: dict[str, list[str]] = field(default_factory=dict)


def _queues(backend: Backend, queues: Sequence[str] | None) -> list[str]:
    return list(queues) if queues is not None else list(backend.queue_depths())


def findings(backend: Backend, queues: Sequence[str] | None = None) -> list[str]:
    """What a run of ``backend`` on ``queues`` (default: the routing table's) would empty or
    replace, one phrase each; empty when the run would touch nothing it did not create."""
    names = _queues(backend, queues)
    if (occupied := getattr(backend, "occupied", None)) is not None:
        found: list[str] = occupied(names)
    else:
        depths = backend.queue_depths()
        found = [f"{backend.name} queue {q!r} holds {depths[q]} message(s)" for q in names if depths.get(q)]
    if stored := backend.store.count():
        found.append(f"{backend.name} results key {backend.store.results_key!r} holds {stored} result(s)")
    return found


def refusal(found: Sequence[str], remedy: str = "pass --purge to empty them first") -> str:
    """The ``RunRefused`` message: one line per finding, each saying what to do."""
    return "\n".join(f"refusing to run: {f} (not this run's); {remedy}" for f in found)


@dataclass
class Footprint:
    """The run's footprint keys and, for each, whether it existed when the run started."""

    backend: Backend
    planned: Keys
    existed: Mapping[str, bool]
    was_member: Mapping[tuple[str, str], bool]

    def tidy(self, keep: bool = False) -> list[str]:
        """Delete what the run created (results too unless ``keep``); returns the keys deleted."""
        client = self.backend.store.client
        kept = {self.backend.store.results_key, self.backend.store.deliveries_key} if keep else set()
        doomed = [k for k in self.planned.keys if not self.existed[k] and k not in kept]
        pipe = client.pipeline(transaction=True)
        for key, members in self.planned.members.items():
            added = [m for m in members if not self.was_member[key, m]]
            if added:
                pipe.srem(key, *added)
        if doomed:
            pipe.delete(*doomed)
        pipe.execute()
        return doomed

    def leave(self, seconds: int = LEFTOVER_TTL_S) -> list[str]:
        """After a run that failed or was interrupted: the results and deliveries hashes it
        created expire in ``seconds``; returns those keys."""
        store = self.backend.store
        created = [k for k in (store.results_key, store.deliveries_key) if not self.existed.get(k, True)]
        if created:
            pipe = store.client.pipeline(transaction=False)
            for key in created:
                pipe.expire(key, seconds)
            pipe.execute()
        return created


def footprint(backend: Backend, queues: Sequence[str] | None = None) -> Footprint:
    """Note which of the run's footprint keys (and set members) exist now."""
    names = _queues(backend, queues)
    footprint_of = getattr(backend, "footprint", None)
    planned: Keys = footprint_of(names) if footprint_of is not None else Keys()
    planned.keys += [backend.store.results_key, backend.store.deliveries_key]
    pipe = backend.store.client.pipeline(transaction=False)
    for key in planned.keys:
        pipe.exists(key)
    pairs = [(key, m) for key, members in planned.members.items() for m in members]
    for key, member in pairs:
        pipe.sismember(key, member)
    replies = pipe.execute()
    existed = dict(zip(planned.keys, (bool(r) for r in replies), strict=False))
    was_member = dict(zip(pairs, (bool(r) for r in replies[len(planned.keys) :]), strict=True))
    return Footprint(backend, planned, existed, was_member)


def claim(backend: Backend, purge: bool = False, queues: Sequence[str] | None = None) -> Footprint:
    """Refuse (``RunRefused``) if the run would empty what is not its own, unless ``purge``:
    then empty it. Returns the footprint to ``tidy`` after the run."""
    from shared.runner import RunRefused

    if found := findings(backend, queues):
        if not purge:
            raise RunRefused(refusal(found))
        backend.purge()
        backend.store.clear()
    return footprint(backend, queues)
