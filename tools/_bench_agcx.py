"""agcx as a bench :class:`~tools._bench_peers.Peer`.

The adapter speaks the bench's protocol (Responses-API JSON dicts in, dicts out)
and drives :class:`journal.SessionStore` the way an agent would:

* it keeps, per session, the :class:`MessageSnapshot` objects it has already
  built and converts only the new messages of each save (an agent holds its
  conversation as model objects and appends to it; converting the whole list on
  every save would bill the adapter's O(N) work to the store);
* every save passes the *same* snapshot objects again, so the store's
  "does this list extend what the log holds" check is the identity fast path,
  and the save is written as a delta;
* the session's ``created_at`` and tags are remembered from its first save (or
  read once from the store after a reopen), since ``SessionSaved`` carries the
  whole metadata and must not drop tags added by ``set_tag``.

Conversion work (dict -> model on save, model -> dict on load) is inside the
timed calls: it is what a caller holding JSON pays, and it is O(new messages)
on save.  ``load_native`` returns the model objects without the dict conversion,
for callers that want the store's own cost.
"""

from __future__ import annotations

import contextlib
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

from journal._errors import SessionNotFound
from journal._model import (
    ConversationSnapshot,
    MessageSnapshot,
    SessionMetadata,
    SessionState,
    item_from_json,
    item_to_json,
)
from journal._store import SessionStore
from tools._bench_peers import SessionInfo, dir_size
from tools._bench_workload import Message, SaveOp

__all__ = ["AgcxPeer", "from_snapshot", "to_snapshot"]

Durability = Literal["fsync", "flush", "none"]

_STATE = SessionState()


def to_snapshot(d: Message, turn: int) -> MessageSnapshot:
    """A workload message dict as the model object an agent would hold."""
    return MessageSnapshot(item_from_json(d), datetime.fromtimestamp(d["timestamp"], UTC), turn)


def from_snapshot(m: MessageSnapshot) -> Message:
    """The workload dict of a message (inverse of :func:`to_snapshot`)."""
    d = item_to_json(m.item)
    d["timestamp"] = m.timestamp.timestamp()
    return d


class _Session:
    """What the adapter remembers of a session, as an agent would."""

    __slots__ = ("created", "lock", "snaps", "sources", "tags")

    def __init__(self, created: datetime, tags: tuple[str, ...]) -> None:
        self.created = created
        self.tags = tags
        self.snaps: list[MessageSnapshot] = []
        self.sources: list[Message] = []  # the dicts ``snaps`` were built from
        self.lock = threading.Lock()


class AgcxPeer:
    """agcx's :class:`SessionStore` behind the bench's ``Peer`` protocol."""

    def __init__(self, durability: Durability = "fsync", **options: Any) -> None:
        self.durability = durability
        self.durable = durability == "fsync"
        self.name = "agcx" if durability == "fsync" else f"agcx-{durability}"
        self.options = options
        self._root: Path | None = None
        self._store: SessionStore | None = None
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------

    @property
    def store(self) -> SessionStore:
        """The open store (for agcx-only figures: replay, ``at()``, statistics)."""
        if self._store is None:
            raise RuntimeError("peer is not open")
        return self._store

    def open(self, root: Path) -> None:
        """Open (or create) the store under ``root``."""
        root.mkdir(parents=True, exist_ok=True)
        self._root = root
        self._store = SessionStore.open(root, durability=self.durability, **self.options)
        self._sessions = {}

    def close(self) -> None:
        """Close the store (persists projection state)."""
        if self._store is not None:
            self._store.close()
            self._store = None
        self._sessions = {}

    def size_on_disk(self) -> int:
        """Sum of file sizes under root (segments, manifest, projection snaps)."""
        if self._root is None:
            raise RuntimeError("peer was never opened")
        return dir_size(self._root)

    # -- operations ------------------------------------------------------------------

    def _session(self, op: SaveOp) -> _Session:
        s = self._sessions.get(op.session_id)
        if s is not None:
            return s
        try:  # known to the store from an earlier run: keep its created time and tags
            meta = self.store.get_metadata(op.session_id)
            fresh = _Session(meta.created_at, meta.tags)
        except SessionNotFound:
            fresh = _Session(datetime.fromtimestamp(op.ts, UTC), op.tags)
        with self._lock:
            return self._sessions.setdefault(op.session_id, fresh)

    def save(self, op: SaveOp) -> None:
        """Save the session; only the new messages are converted (and written)."""
        s = self._session(op)
        with s.lock:
            msgs = op.messages
            n = len(s.sources)
            if n > len(msgs) or (n and s.sources[n - 1] is not msgs[n - 1]):
                s.sources, s.snaps, n = [], [], 0  # not an extension: rebuild
            for d in msgs[n:]:
                s.snaps.append(to_snapshot(d, op.turn))
                s.sources.append(d)
            sid = UUID(op.session_id)
            ts = datetime.fromtimestamp(op.ts, UTC)
            meta = SessionMetadata(
                id=sid,
                title=op.title,
                created_at=s.created,
                updated_at=ts,
                last_accessed=ts,
                message_count=len(msgs),
                turn_count=op.turn,
                tags=s.tags,
            )
            conv = ConversationSnapshot(sid, tuple(s.snaps))
            self.store.save_session(sid, meta, conv, _STATE)

    def load_native(self, session_id: str) -> tuple[MessageSnapshot, ...]:
        """The session's messages as model objects (the store's own load)."""
        try:
            _, conv, _ = self.store.load_session(session_id)
        except SessionNotFound:
            raise KeyError(session_id) from None
        return conv.messages

    def load(self, session_id: str) -> list[Message]:
        """The session's messages as workload dicts."""
        return [from_snapshot(m) for m in self.load_native(session_id)]

    def list_sessions(self) -> list[SessionInfo]:
        """All sessions, most recently updated first (ties by id)."""
        infos = [
            SessionInfo(str(m.id), m.title, m.updated_at.timestamp(), m.message_count, m.tags)
            for m in self.store.list_sessions()
        ]
        infos.sort(key=lambda i: (-i.updated, i.session_id))
        return infos

    def delete(self, session_id: str) -> None:
        """Delete a session (no-op if unknown)."""
        with contextlib.suppress(SessionNotFound):
            self.store.delete_session(session_id)
        with self._lock:
            self._sessions.pop(session_id, None)

    def set_tag(self, session_id: str, tag: str) -> None:
        """Add a tag: one durable ``TagsChanged`` event (skipped if already set)."""
        s = self._sessions.get(session_id)
        try:
            if s is None:
                self.store.tag(session_id, tag)
                return
            with s.lock:  # a save of this session must not drop the new tag
                if tag in s.tags:
                    return
                self.store.tag(session_id, tag)
                s.tags = (*s.tags, tag)
        except SessionNotFound:
            raise KeyError(session_id) from None
