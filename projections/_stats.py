"""Statistics: how many events of each type, and their bytes."""

from __future__ import annotations

from typing import Any

from journal._segment import Record

__all__ = ["EventStatistics"]


class EventStatistics:
    """Counts and stored bytes per event type over the whole log."""

    name = "stats"
    version = 1

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.bytes: dict[int, int] = {}

    def apply(self, rec: Record, event: dict[str, Any]) -> None:
        t = rec.event_type
        self.counts[t] = self.counts.get(t, 0) + 1
        self.bytes[t] = self.bytes.get(t, 0) + rec.size

    def to_state(self) -> Any:
        return {"c": self.counts, "b": self.bytes}

    def load_state(self, state: Any) -> None:
        self.counts = {int(k): v for k, v in state["c"].items()}
        self.bytes = {int(k): v for k, v in state["b"].items()}

    def plain_state(self) -> Any:
        return self.to_state()
