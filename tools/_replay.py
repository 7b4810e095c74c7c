"""``agcx replay``: rebuild every projection from the log and check the persisted state.

A fresh :class:`~projections.ProjectionRunner` with fresh projections replays
the log (up to a point, if given) and is timed. The result is then compared
with the persisted projection state: the ``.snap`` files restored by a second
runner, which replays only the events after the snapshot — exactly what a
store does when it opens. Any difference is a bug (or a damaged snapshot that
passed its checks) and makes the command fail.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import attrs

from journal import Journal
from projections import (
    EventStatistics,
    GraphCheckpoints,
    ProjectionRunner,
    SessionContents,
    SessionIndex,
)
from projections._base import Projection

__all__ = ["ReplayReport", "replay"]

_STEPS = 50  # progress updates over a replay


@attrs.frozen
class ReplayReport:
    """How fast the projections were rebuilt and whether they match the persisted state."""

    seq: int  # rebuilt up to this seq
    events: int
    bytes: int
    seconds: float
    snapshot: str  # what the rebuilt state was compared with
    snapshot_seq: int | None  # seq of the snapshot used (None: no usable snapshot)
    mismatches: tuple[str, ...]

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def mb_per_second(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "seq": self.seq,
            "events": self.events,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 6),
            "events_per_second": round(self.events_per_second, 1),
            "mb_per_second": round(self.mb_per_second, 3),
            "snapshot": self.snapshot,
            "snapshot_seq": self.snapshot_seq,
            "mismatches": list(self.mismatches),
        }


def fresh_projections() -> list[Projection]:
    """One of each projection the store keeps, empty."""
    return [SessionIndex(), SessionContents(), EventStatistics(), GraphCheckpoints()]


def replay(
    journal: Journal, until_seq: int, *, progress: Callable[[int, int], None] | None = None
) -> ReplayReport:
    """Rebuild the projections of ``journal`` up to ``until_seq`` and check the snapshots."""
    rebuilt = ProjectionRunner(journal, fresh_projections(), until_seq=0)
    started = time.perf_counter()
    step = max(1, until_seq // _STEPS)
    while rebuilt.until_seq is not None and rebuilt.until_seq < until_seq:
        # Catch up in slices so progress can be shown; the fold is the same.
        rebuilt.until_seq = min(until_seq, rebuilt.until_seq + step)
        rebuilt.catch_up()
        if progress is not None:
            progress(rebuilt.until_seq, until_seq)
    seconds = time.perf_counter() - started
    stats = next(p for p in rebuilt.projections if isinstance(p, EventStatistics))
    events = sum(stats.counts.values())
    size = sum(stats.bytes.values())

    snap_dir = os.path.join(journal.root, "projections")
    persisted = ProjectionRunner(
        journal, fresh_projections(), until_seq=until_seq, snap_dir=snap_dir
    )
    mismatches: list[str] = []
    snapshot_seq: int | None = None
    if persisted.restore():
        snapshot_seq = persisted.seq
        persisted.catch_up()
        behind = persisted.replayed
        snapshot = f"snapshot at seq {snapshot_seq} + {behind} events replayed after it"
        for mine, theirs in zip(rebuilt.projections, persisted.projections, strict=True):
            mismatches += _differences(mine, theirs)
        if persisted.seq != rebuilt.seq:
            mismatches.append(
                f"the snapshot state reached seq {persisted.seq}, the rebuild seq {rebuilt.seq}"
            )
    elif any(os.path.exists(os.path.join(snap_dir, f"{p.name}.snap")) for p in fresh_projections()):
        snapshot = (
            "none usable: the snapshots are missing, stale, from another journal or past the "
            "point replayed (the next writer rebuilds them)"
        )
    else:
        snapshot = "none: no snapshot written yet (the next writer that closes writes one)"
    return ReplayReport(
        seq=rebuilt.seq,
        events=events,
        bytes=size,
        seconds=seconds,
        snapshot=snapshot,
        snapshot_seq=snapshot_seq,
        mismatches=tuple(mismatches),
    )


def _differences(mine: Projection, theirs: Projection) -> list[str]:
    a, b = _canonical(mine.plain_state()), _canonical(theirs.plain_state())
    if a == b:
        return []
    detail = ""
    if isinstance(a, list) and isinstance(b, list):
        ka = {repr(k): v for k, v in _pairs(a)}
        kb = {repr(k): v for k, v in _pairs(b)}
        if ka and kb:
            differ = sorted(k for k in ka.keys() | kb.keys() if ka.get(k) != kb.get(k))
            detail = f": {len(differ)} entries differ, e.g. {', '.join(differ[:3])}"
    return [f"projection {mine.name!r}: the rebuilt state differs from the snapshot{detail}"]


def _pairs(v: list[Any]) -> list[tuple[Any, Any]]:
    return [x for x in v if isinstance(x, tuple) and len(x) == 2]


def _canonical(v: Any) -> Any:
    """A comparable form: maps as sorted (key, value) lists, sequences as lists."""
    if isinstance(v, dict):
        return sorted(((_canonical(k), _canonical(x)) for k, x in v.items()), key=repr)
    if isinstance(v, list | tuple):
        return [_canonical(x) for x in v]
    if isinstance(v, bytearray | memoryview):
        return bytes(v)
    return v
