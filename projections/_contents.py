"""Session contents: which records rebuild each session's current state.

Memory holds record locations (seqs) and sizes, never conversation contents:
loading a session reads its last full save and the deltas after it.
"""

from __future__ import annotations

from typing import Any

from journal._events import EventType
from journal._segment import Record

__all__ = ["Chain", "SessionContents"]


class Chain:
    """The records of one live session's current content, and its checkpoints.

    ``seqs`` is the last full save followed by the delta saves after it;
    ``stored``/``raw`` are their bytes on disk and uncompressed. ``checkpoints``
    maps a checkpoint id to ``[seq, stored bytes, raw bytes, metadata wire]``.
    """

    __slots__ = (
        "born",
        "changes",
        "checkpoints",
        "delta_bytes",
        "full_bytes",
        "messages",
        "raw",
        "seqs",
        "stored",
    )

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.messages = 0
        self.full_bytes = 0
        self.delta_bytes = 0
        self.stored = 0
        self.raw = 0
        self.checkpoints: dict[bytes, list[Any]] = {}
        self.changes = 0  # bumped on every change, so callers can cache derived views
        self.born = 0  # seq of the save that began this life of the session

    @property
    def head(self) -> int:
        """Seq of the session's last save."""
        return self.seqs[-1] if self.seqs else 0

    def to_state(self) -> list[Any]:
        return [
            self.seqs,
            self.messages,
            self.full_bytes,
            self.delta_bytes,
            self.stored,
            self.raw,
            self.checkpoints,
            self.born,
        ]

    @classmethod
    def from_state(cls, s: list[Any]) -> Chain:
        # Runs once per session on every open: no __init__, no copies (msgpack
        # already gave fresh lists, bytes keys and lists of checkpoint fields).
        c = cls.__new__(cls)
        c.seqs, c.messages, c.full_bytes, c.delta_bytes, c.stored, c.raw, c.checkpoints, c.born = s
        c.changes = 0
        if type(c.seqs) is not list or type(c.checkpoints) is not dict:
            raise TypeError("malformed chain state")
        return c


class SessionContents:
    """Live sessions' chains keyed by 16-byte session id."""

    name = "contents"
    version = 1

    def __init__(self) -> None:
        self.chains: dict[bytes, Chain] = {}

    def apply(self, rec: Record, event: dict[str, Any]) -> None:
        t = rec.event_type
        sid = rec.session
        if t == EventType.SESSION_SAVED:
            chain = self.chains.get(sid)
            if chain is None:
                chain = self.chains[sid] = Chain()
                chain.born = rec.seq
            size, raw = rec.size, event["_raw"]
            base = event.get("base", 0)
            if base == 0 or not chain.seqs or base != chain.messages:
                # A full save (a delta on another base cannot happen: the store
                # checks the base under the commit lock; if one ever did, the
                # record's own message count still tells the truth).
                chain.seqs = [rec.seq]
                chain.full_bytes, chain.delta_bytes = size, 0
                chain.stored, chain.raw = size, raw
            else:
                chain.seqs.append(rec.seq)
                chain.delta_bytes += size
                chain.stored += size
                chain.raw += raw
            chain.messages = event["n"]
            chain.changes += 1
        elif t in (EventType.SESSION_DELETED, EventType.SESSION_PURGED):
            self.chains.pop(sid, None)
        elif t == EventType.CHECKPOINT_CREATED:
            chain = self.chains.get(sid)
            if chain is not None:
                meta = event["meta"]
                chain.checkpoints[bytes(meta["id"])] = [rec.seq, rec.size, event["_raw"], meta]
                chain.changes += 1
        elif t == EventType.CHECKPOINT_DELETED:
            chain = self.chains.get(sid)
            if chain is not None:
                chain.checkpoints.pop(bytes(event["id"]), None)
                chain.changes += 1

    def live_bytes(self) -> int:
        """Bytes of the records that current state needs (the rest is reclaimable)."""
        return sum(
            c.stored + sum(k[1] for k in c.checkpoints.values()) for c in self.chains.values()
        )

    def to_state(self) -> Any:
        return {k: c.to_state() for k, c in self.chains.items()}

    def load_state(self, state: Any) -> None:
        from_state = Chain.from_state
        self.chains = {k: from_state(v) for k, v in state.items()}
        if any(type(k) is not bytes for k in self.chains):
            raise TypeError("malformed contents state")
