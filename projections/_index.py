"""The session index: every live session's metadata, for listing and search."""

from __future__ import annotations

from typing import Any

import msgpack

from journal._events import EventType
from journal._segment import Record
from projections._base import pack_entries, settled, unpack_entries

__all__ = ["SessionIndex"]

# Plain ints: comparing with an IntEnum member looks it up on its class each
# time (0.1-0.3 us a test, for every event and projection).
_SESSION_SAVED = int(EventType.SESSION_SAVED)
_LEGACY_IMPORTED = int(EventType.LEGACY_IMPORTED)
_TAGS_CHANGED = int(EventType.TAGS_CHANGED)
_FAVORITE_CHANGED = int(EventType.FAVORITE_CHANGED)
_SESSION_RENAMED = int(EventType.SESSION_RENAMED)
_SESSION_TOUCHED = int(EventType.SESSION_TOUCHED)
_SESSION_FORKED = int(EventType.SESSION_FORKED)
_SESSION_TRUNCATED = int(EventType.SESSION_TRUNCATED)
_EDITS = frozenset({_TAGS_CHANGED, _FAVORITE_CHANGED, _SESSION_RENAMED, _SESSION_TOUCHED})
_SESSION_DELETED = int(EventType.SESSION_DELETED)
_SESSION_PURGED = int(EventType.SESSION_PURGED)
_GONE = frozenset({_SESSION_DELETED, _SESSION_PURGED})

# Keys of the metadata wire map (journal._wire.metadata_to_wire) this fold edits.
_TITLE, _TAGS, _FAV, _ACCESSED = "ti", "tg", "fv", "la"


class SessionIndex:
    """Live sessions keyed by their 16-byte id, each as its metadata wire map.

    The map is the one the last ``SessionSaved`` carried, edited in place by
    later tag, favorite, rename and touch events; the store turns it into a
    ``SessionMetadata`` when asked. ``imports`` remembers the SHA-256 of every
    legacy file imported, so a second import adds nothing. ``purged`` holds
    the tombstone of every purged id, ``[seq, ts_ns]`` of its last purge,
    until a save starts a new session under it (the store refuses that
    unless asked, see ``SessionStore.save_session``). ``saved`` keeps, for a
    session edited since its last save, the map as that save left it.

    Restored from a snap, ``sessions`` stays one packed blob until first
    used, then becomes a :class:`~projections._base.PackedEntries` whose
    per-session maps are decoded when first read: opening a store costs the
    same however many sessions it holds.
    """

    name = "index"
    # 2: each session's map packed on its own (decoded on first use); 3: purges
    version = 3

    def __init__(self) -> None:
        self._sessions: dict[bytes, dict[str, Any]] = {}
        self._packed: bytes | None = None  # the snap's sessions, not unpacked yet
        self.imports: dict[str, int] = {}
        self.purged: dict[bytes, list[int]] = {}
        # The map as the session's last save left it, for sessions edited since
        # (tagged, renamed, ...): the base a save merges against when its
        # caller's own is unknown (journal/_merge.py).
        self.saved: dict[bytes, dict[str, Any]] = {}
        self.changes = 0  # bumped on every change, so callers can cache derived views
        self.versions: dict[bytes, int] = {}  # per session: ``changes`` when it last changed

    @property
    def sessions(self) -> dict[bytes, dict[str, Any]]:
        """Live sessions' metadata wire maps by id (unpacked from the snap on first use)."""
        s = self._sessions
        if self._packed is None and type(s) is dict:
            return s  # the common case, first: no call
        if self._packed is not None:
            s = self._sessions = unpack_entries(self._packed, _unpack_meta, _SOURCE)
            self._packed = None
        else:
            s = self._sessions = settled(s)
        return s

    @sessions.setter
    def sessions(self, value: dict[bytes, dict[str, Any]]) -> None:
        self._sessions = value
        self._packed = None

    def apply(self, rec: Record, event: dict[str, Any]) -> None:
        t = rec.event_type
        sid = rec.session
        sessions = self._sessions if self._packed is None else self.sessions
        if t in (_SESSION_SAVED, _SESSION_FORKED):
            if t == _SESSION_FORKED:
                meta = dict(event["meta"])
                meta.pop("ck", None)
            elif "meta" in event or "md" not in event:
                # The runner decodes each record afresh for one apply: its map
                # is this fold's to keep, no copy (nothing else reads it).
                meta = event["meta"]
                if type(meta) is not dict:
                    meta = dict(meta)
                meta.pop("ck", None)  # checkpoints are the store's, from checkpoint events
            else:
                # A delta save of schema 2 carries only the keys that changed.
                held = sessions.get(sid)
                if held is None:
                    return  # its session's full save is not in the log (salvage lost it)
                meta = {**held, **event["md"]}
            sessions[sid] = meta
            if self.purged:
                self.purged.pop(sid, None)
            if self.saved:
                self.saved.pop(sid, None)
        elif t in _GONE:
            dict.pop(sessions, sid, None)  # gone: not decoded first if still packed
            self.versions.pop(sid, None)
            self.saved.pop(sid, None)
            if t == _SESSION_PURGED:
                self.purged[sid] = [rec.seq, rec.ts_ns]
        elif t == _LEGACY_IMPORTED:
            self.imports[event["sha256"]] = rec.seq
            return
        else:
            edited = sessions.get(sid)
            if edited is None:
                return
            meta = edited
            if sid not in self.saved and t in _EDITS:
                self.saved[sid] = dict(meta)
            if t == _TAGS_CHANGED:
                removed = set(event.get("rm", ()))
                tags = [x for x in meta.get(_TAGS, ()) if x not in removed]
                tags.extend(x for x in event.get("add", ()) if x not in tags)
                meta[_TAGS] = tags
            elif t == _FAVORITE_CHANGED:
                meta[_FAV] = bool(event["fav"])
            elif t == _SESSION_RENAMED:
                meta[_TITLE] = event["title"]
            elif t == _SESSION_TOUCHED:
                meta[_ACCESSED] = event["at"]
            elif t == _SESSION_TRUNCATED:
                meta.update(event.get("md", {}))
            else:
                return
        self.changes += 1
        self.versions[sid] = self.changes

    def to_state(self) -> Any:
        # Never unpacked since the restore: written back as it was read.
        packed = self._packed if self._packed is not None else pack_entries(self._sessions, _pack)
        return {"s": packed, "i": self.imports, "p": self.purged, "b": self.saved}

    def load_state(self, state: Any) -> None:
        packed, imports, purged, saved = state["s"], state["i"], state["p"], state["b"]
        if type(packed) is not bytes or not all(type(x) is dict for x in (imports, purged, saved)):
            raise TypeError("malformed index state")
        self._sessions = {}
        self._packed = packed
        self.imports = imports
        self.purged = purged
        self.saved = saved
        self.changes += 1

    def plain_state(self) -> Any:
        return {
            "s": dict(self.sessions.items()),
            "i": self.imports,
            "p": self.purged,
            "b": self.saved,
        }


_SOURCE = "projections/index.snap"


def _pack(meta: dict[str, Any]) -> bytes:
    packed: bytes = msgpack.packb(meta, use_bin_type=True)
    return packed


def _unpack_meta(sid: bytes, packed: bytes) -> dict[str, Any]:
    # msgpack bounds every length by the input's (the snap's checksum passed).
    meta = msgpack.unpackb(packed, strict_map_key=False)
    if type(meta) is not dict:
        raise TypeError(f"metadata is a {type(meta).__name__}, not a map")
    return meta
