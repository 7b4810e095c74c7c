"""The session index: every live session's metadata, for listing and search."""

from __future__ import annotations

from typing import Any

from journal._events import EventType
from journal._segment import Record

__all__ = ["SessionIndex"]

# Keys of the metadata wire map (journal._model.metadata_to_wire) this fold edits.
_TITLE, _TAGS, _FAV, _ACCESSED = "ti", "tg", "fv", "la"


class SessionIndex:
    """Live sessions keyed by their 16-byte id, each as its metadata wire map.

    The map is the one the last ``SessionSaved`` carried, edited in place by
    later tag, favorite, rename and touch events; the store turns it into a
    ``SessionMetadata`` when asked. ``imports`` remembers the SHA-256 of every
    legacy file imported, so a second import adds nothing.
    """

    name = "index"
    version = 1

    def __init__(self) -> None:
        self.sessions: dict[bytes, dict[str, Any]] = {}
        self.imports: dict[str, int] = {}
        self.changes = 0  # bumped on every change, so callers can cache derived views
        self.versions: dict[bytes, int] = {}  # per session: ``changes`` when it last changed

    def apply(self, rec: Record, event: dict[str, Any]) -> None:
        t = rec.event_type
        sid = rec.session
        if t == EventType.SESSION_SAVED:
            meta = dict(event["meta"])
            meta.pop("ck", None)  # checkpoints are the store's, from checkpoint events
            self.sessions[sid] = meta
        elif t in (EventType.SESSION_DELETED, EventType.SESSION_PURGED):
            self.sessions.pop(sid, None)
            self.versions.pop(sid, None)
        elif t == EventType.LEGACY_IMPORTED:
            self.imports[event["sha256"]] = rec.seq
            return
        else:
            edited = self.sessions.get(sid)
            if edited is None:
                return
            meta = edited
            if t == EventType.TAGS_CHANGED:
                removed = set(event.get("rm", ()))
                tags = [x for x in meta.get(_TAGS, ()) if x not in removed]
                tags.extend(x for x in event.get("add", ()) if x not in tags)
                meta[_TAGS] = tags
            elif t == EventType.FAVORITE_CHANGED:
                meta[_FAV] = bool(event["fav"])
            elif t == EventType.SESSION_RENAMED:
                meta[_TITLE] = event["title"]
            elif t == EventType.SESSION_TOUCHED:
                meta[_ACCESSED] = event["at"]
            else:
                return
        self.changes += 1
        self.versions[sid] = self.changes

    def to_state(self) -> Any:
        return {"s": self.sessions, "i": self.imports}

    def load_state(self, state: Any) -> None:
        # msgpack gave fresh dicts with bytes keys: taken as they are, checked.
        sessions, imports = state["s"], state["i"]
        if type(sessions) is not dict or type(imports) is not dict:
            raise TypeError("malformed index state")
        if any(type(k) is not bytes or type(v) is not dict for k, v in sessions.items()):
            raise TypeError("malformed index state")
        self.sessions = sessions
        self.imports = imports
        self.changes += 1
