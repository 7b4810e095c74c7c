"""Statistics: how many events of each type, and their bytes."""

from __future__ import annotations

from typing import Any

from journal._events import EventType
from journal._segment import Record

__all__ = ["EventStatistics"]

_DICTIONARY_TRAINED = EventType.DICTIONARY_TRAINED


class EventStatistics:
    """Counts and stored bytes per event type over the whole log."""

    name = "stats"
    version = 1

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.bytes: dict[int, int] = {}
        # The latest DictionaryTrained record: a writer whose active segment
        # holds it compresses with it instead of training another.
        self.dictionary_seq = 0

    def apply(self, rec: Record, event: dict[str, Any]) -> None:
        t = rec.event_type
        self.counts[t] = self.counts.get(t, 0) + 1
        self.bytes[t] = self.bytes.get(t, 0) + rec.size
        if t == _DICTIONARY_TRAINED:
            self.dictionary_seq = rec.seq

    def to_state(self) -> Any:
        return {"c": self.counts, "b": self.bytes, "d": self.dictionary_seq}

    def load_state(self, state: Any) -> None:
        self.counts = {int(k): v for k, v in state["c"].items()}
        self.bytes = {int(k): v for k, v in state["b"].items()}
        self.dictionary_seq = int(state.get("d", 0))

    def plain_state(self) -> Any:
        return self.to_state()
