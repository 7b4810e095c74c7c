"""SessionStore: the facade that turns commands into events and answers queries
from projections.

It is the only module that knows both the journal core and the projections.
Queries first apply what other processes appended since the last look, so
agent B sees agent A's save on its next ``list_sessions()``.

Saves are deltas when the new message list extends the one the log holds for
the session: the event carries only the new messages (``base`` = how many came
before). A full save is written again when the deltas since the last full one
reach ``full_ratio`` times the larger of its size and ``FULL_FLOOR``, or the
chain reaches ``max_chain`` records, so loading reads a bounded number of
records and saving turn N costs O(new messages). Message blobs are compressed
with the active segment's trained dictionary once this writer has one
(journal/_dictionary.py).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import attrs
import msgpack

from journal import _fork
from journal._dictionary import Dictionary, Trainer, blob_reference, dictionary_event
from journal._errors import (
    CheckpointNotFound,
    CorruptPayload,
    HorizonError,
    InvalidArgument,
    JournalError,
    ReadOnlyJournal,
    RecordNotFound,
    SessionConflict,
    SessionNotFound,
    SessionPurged,
)
from journal._events import (
    SCHEMA_VERSION,
    EventType,
    blob_of,
    event_name,
    upcast,
)
from journal._format import HEADER_SIZE
from journal._graph import GRAPH_EVENTS, summarize_graph
from journal._log import Entry, Journal, from_ns, to_ns
from journal._merge import STORE_OWNED, merge_metadata, same
from journal._model import (
    CheckpointMetadata,
    ConversationContext,
    ConversationSnapshot,
    MessageSnapshot,
    OperatingMode,
    SessionMetadata,
    SessionState,
)
from journal._payloads import MESSAGES, checkpoint_of, context_of, messages_of, modes_of, state_of
from journal._redact import RedactionPolicy, Redactor, load_key
from journal._segment import Record
from journal._wire import (
    ModeHistory,
    checked,
    checkpoint_meta_to_wire,
    datetime_from_wire,
    datetime_to_wire,
    metadata_from_wire,
    metadata_to_wire,
    validated,
)

# Submodules, not the package: importing ``projections`` first must work too.
from projections._base import gc_paused, unpack_all
from projections._contents import SessionContents
from projections._graphs import GraphCheckpoints
from projections._index import SessionIndex
from projections._runner import ProjectionRunner
from projections._stats import EventStatistics

# Compaction and the legacy import (and its v2 reader) are loaded when first
# used: opening a store to read it (`agcx ls`) does not pay for them.
if TYPE_CHECKING:
    from journal._codex import CodexImportReport
    from journal._compact import CompactionReport, PurgeReport
    from journal._import import ImportReport
    from journal._scrub import ScrubReport, SecretFinding

__all__ = [
    "DEFAULT_ROOT",
    "HistoryEntry",
    "PointInTimeView",
    "SessionStore",
    "StoreStatistics",
    "history_entry",
    "resolve_point",
    "summarize",
]

_T = TypeVar("_T")
DEFAULT_ROOT = os.path.join("~", ".agcodex", "history")
DEFAULT_RETAIN = timedelta(days=7)  # compaction keeps the last week as it was written
_STRIPES = 64
_CONTENT_EVENTS = frozenset(
    {
        EventType.SESSION_SAVED,
        EventType.SESSION_DELETED,
        EventType.SESSION_PURGED,
        EventType.SESSION_FORKED,
        EventType.SESSION_TRUNCATED,
    }
)
_SESSION_SAVED = int(EventType.SESSION_SAVED)
# A full save is not worth its copy of the session before the deltas reach
# ``full_ratio`` times this many bytes: below it a load reads the deltas
# nearly as fast (bench workload: 1.43 ms without these full saves, 1.30 with).
FULL_FLOOR = 64 << 10


class _Widen(Exception):
    """Retention cleanup's commit dooms a session whose save lock it does not hold."""


class _SegmentSealed(Exception):
    """A dictionary's samples came from a segment that is no longer the active one."""


@attrs.frozen
class StoreStatistics:
    """What the store holds, as of one moment (immutable).

    ``oldest_session`` and ``newest_session`` are the creation times of the
    oldest and newest live sessions. ``live_bytes`` are the bytes of the
    records current state needs; ``reclaimable_bytes`` what ``compact()`` with
    its default retention would reclaim now (its dry run's
    ``reclaimed_bytes``; 0 in a point-in-time view).
    """

    total_sessions: int
    total_checkpoints: int
    total_size_bytes: int
    indexed_sessions: int
    oldest_session: datetime | None
    newest_session: datetime | None
    events_by_type: MappingProxyType[str, int]
    records: int
    segments: int
    live_bytes: int
    reclaimable_bytes: int
    last_seq: int
    horizon_seq: int
    graph_threads: int = 0
    graph_checkpoints: int = 0


@attrs.frozen
class SessionPage:
    """One page of :meth:`SessionStore.find_sessions`: the sessions returned
    (newest first) and how many sessions matched in all."""

    sessions: tuple[SessionMetadata, ...]
    total: int


@attrs.frozen
class HistoryEntry:
    """One event in a session's history, for audit."""

    seq: int
    ts: datetime
    event: str
    session_id: UUID | None
    summary: str
    actor: str | None = None


def history_entry(journal: Journal, rec: Record) -> HistoryEntry:
    """The audit line of one record; damage is shown, not raised."""
    actor = None
    try:
        ev = upcast(rec.event_type, journal.decode(rec))
        summary = summarize(rec.event_type, ev)
        actor = ev.get("actor")
    except Exception as exc:  # an audit listing shows damage instead of stopping
        summary = f"undecodable: {exc}"
    return HistoryEntry(
        seq=rec.seq,
        ts=from_ns(rec.ts_ns),
        event=event_name(rec.event_type),
        session_id=rec.session_id,
        summary=summary,
        actor=actor if isinstance(actor, str) else None,
    )


def summarize(event_type: int, event: dict[str, Any]) -> str:
    """A one-line human summary of an event (the audit trail's wording)."""
    t = event_type
    if t == EventType.SESSION_SAVED:
        n, base = event.get("n", 0), event.get("base", 0)
        line = f"+{n - base} messages ({n} total)" if base else f"saved in full ({n} messages)"
        fields = _saved_fields(event)
        return f"{line}; {fields}" if fields else line
    if t == EventType.SESSION_DELETED:
        return f"deleted ({event.get('reason', 'user')})"
    if t == EventType.SESSION_PURGED:
        return "purged: content removed from disk"
    if t == EventType.TAGS_CHANGED:
        parts = [f"+{x}" for x in event.get("add", ())] + [f"-{x}" for x in event.get("rm", ())]
        return "tags " + " ".join(parts)
    if t == EventType.FAVORITE_CHANGED:
        return "favorite" if event.get("fav") else "not favorite"
    if t == EventType.SESSION_RENAMED:
        return f"renamed to {event.get('title', '')!r}"
    if t == EventType.SESSION_TOUCHED:
        return "accessed"
    if t == EventType.CHECKPOINT_CREATED:
        meta = event.get("meta", {})
        name = meta.get("n", "")
        cid = meta.get("id", b"")
        cid_hex = UUID(bytes=cid).hex[:8] if isinstance(cid, bytes) and len(cid) == 16 else "?"
        return f"checkpoint {cid_hex} {name!r} created".replace(" '' ", " ")
    if t == EventType.CHECKPOINT_DELETED:
        cid = event.get("id", b"")
        cid_hex = UUID(bytes=cid).hex[:8] if isinstance(cid, bytes) and len(cid) == 16 else "?"
        return f"checkpoint {cid_hex} deleted"
    if t == EventType.LEGACY_IMPORTED:
        return f"imported {event.get('kind', 'file')} {event.get('path', '')}"
    if t == EventType.CODEX_IMPORTED:
        return f"imported Codex rollout {event.get('path', '')} ({event.get('lines', 0)} lines)"
    if t == EventType.SESSION_FORKED:
        src = event.get("src", b"")
        src_hex = UUID(bytes=src).hex[:8] if isinstance(src, bytes) and len(src) == 16 else "?"
        return f"forked from {src_hex} at message {event.get('n', 0)}"
    if t == EventType.SESSION_TRUNCATED:
        n = event.get("n", 0)
        return "cleared (0 messages)" if n == 0 else f"truncated to {n} messages"
    if t == EventType.SECRETS_SCRUBBED:
        kinds = event.get("kinds", {})
        what = ", ".join(f"{n} {k}" for k, n in kinds.items()) if isinstance(kinds, dict) else ""
        return f"secrets scrubbed from {event.get('records', 0)} records" + (
            f" ({what})" if what else ""
        )
    if t == EventType.DICTIONARY_TRAINED:
        d, src = event.get("d", b""), event.get("src", ())
        return f"compression dictionary of {len(d) >> 10} KiB, trained on {len(src)} sessions"
    if t in GRAPH_EVENTS:
        return summarize_graph(t, event)
    return event_name(t)


# The metadata wire keys a save's audit line names, in this order, as the
# SessionMetadata fields they hold.
_FIELD_NAMES = {
    "ti": "title",
    "tg": "tags",
    "fv": "is_favorite",
    "mo": "current_mode",
    "md": "model",
    "tc": "turn_count",
    "ca": "created_at",
    "ua": "updated_at",
    "la": "last_accessed",
    "v": "format_version",
}


def _saved_fields(event: dict[str, Any]) -> str:
    """The metadata fields a ``SessionSaved`` changed, with their new values
    (times by name only), and those it changed over a concurrent change."""
    if "md" in event and isinstance(event["md"], dict):  # schema 2: the changes themselves
        values: dict[str, Any] = event["md"]
        keys = list(values)
    else:
        meta = event.get("meta")
        values = meta if isinstance(meta, dict) else {}
        keys = [k for k in event.get("ch", ()) if isinstance(k, str)]
    overridden = set(event.get("ov", ()))
    parts = []
    for k in [k for k in _FIELD_NAMES if k in keys] + [k for k in keys if k not in _FIELD_NAMES]:
        if k in STORE_OWNED:
            continue
        name, v = _FIELD_NAMES.get(k, k), values.get(k)
        if k in ("ca", "ua", "la"):
            part = name
        elif k == "tg" and isinstance(v, list | tuple):
            part = f"tags [{', '.join(map(str, v))}]"
        else:
            part = f"{name} {v!r}"
        if k in overridden:
            part += " (overrode a concurrent change)"
        parts.append(part)
    return ", ".join(parts)


# -- argument checks ----------------------------------------------------------------------


def _sid(value: object, what: str = "session id") -> UUID:
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            raise InvalidArgument(f"{what} {value!r} is not a UUID") from None
    raise InvalidArgument(f"{what} must be a UUID, got {type(value).__name__}")


def _check(value: object, cls: type, what: str) -> None:
    if not isinstance(value, cls):
        raise InvalidArgument(f"{what} must be a {cls.__name__}, got {type(value).__name__}")


def _tags(tags: Sequence[object], verb: str) -> list[str]:
    if not tags:
        raise InvalidArgument(f"{verb}() needs at least one tag, e.g. {verb}(session_id, 'bug')")
    out = []
    for t in tags:
        if not isinstance(t, str) or not t:
            raise InvalidArgument(f"a tag must be a non-empty string, got {t!r}")
        if t not in out:
            out.append(t)
    return out


def _now() -> datetime:
    return datetime.now(UTC)


def check_messages(messages: Sequence[MessageSnapshot], what: str = "messages") -> bytes:
    """The schema-4 msgpack of ``messages``, each checked (InvalidArgument)."""
    return checked(tuple(messages), MESSAGES, what)


def full_save_payload(
    meta_wire: dict[str, Any],
    conversation_id: UUID,
    messages: Sequence[MessageSnapshot],
    context: ConversationContext,
    mode_history: ModeHistory,
    state: SessionState,
    actor: str | None = None,
    msgs: bytes | None = None,
) -> dict[str, Any]:
    """The schema-4 payload of a ``SessionSaved`` that carries the whole
    session (its messages as the blob ``msgs`` when given). Raises
    :class:`InvalidArgument` for a wrongly typed value, before anything is written."""
    if msgs is None:
        msgs = blob_of(check_messages(messages))
    payload: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "meta": meta_wire,
        "cid": conversation_id.bytes,
        "base": 0,
        "n": len(messages),
        "msgs": msgs,
        "cx": checked(context, ConversationContext, "conversation.context"),
        "mh": checked(mode_history, ModeHistory, "conversation.mode_history"),
        "st": checked(state, SessionState, "state"),
    }
    if actor:
        payload["actor"] = actor
    return payload


def checkpoint_payload(
    meta: CheckpointMetadata, conversation: ConversationSnapshot, state: SessionState
) -> dict[str, Any]:
    """The schema-4 payload of a ``CheckpointCreated``."""
    return {
        "v": SCHEMA_VERSION,
        "meta": checkpoint_meta_to_wire(validated(meta, CheckpointMetadata, "checkpoint")),
        "conv": blob_of(checked(conversation, ConversationSnapshot, "conversation")),
        "st": checked(state, SessionState, "state"),
    }




def delta_save_payload(
    base: int, added: int, msgs: bytes, meta_changes: dict[str, Any], actor: str | None = None
) -> dict[str, Any]:
    """The payload of a ``SessionSaved`` that adds ``added`` messages (the blob
    ``msgs``) after the first ``base`` and changes only the metadata keys in
    ``meta_changes``: the ``md`` layout of :meth:`SessionStore._delta`,
    without context, mode history or state (unchanged)."""
    payload: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "md": meta_changes,
        "base": base,
        "n": base + added,
        "msgs": msgs,
    }
    if actor:
        payload["actor"] = actor
    return payload


def _meta_changes(
    sessions: Mapping[bytes, dict[str, Any]], sid: UUID, meta_wire: dict[str, Any]
) -> dict[str, Any] | None:
    """The keys of ``meta_wire`` whose values differ from the metadata the index
    holds for the session, or ``None`` when only the whole map says the same
    (the index holds none, or keys ``meta_wire`` lacks). Holds the runner lock.
    (For writers that build the whole map from what they just loaded, as the
    Codex import does; a save merges instead, journal/_merge.py.)"""
    held = sessions.get(sid.bytes)
    if held is None or not held.keys() <= meta_wire.keys():
        return None
    return {k: v for k, v in meta_wire.items() if k not in held or not same(held[k], v)}


def _delta_head(
    meta_wire: dict[str, Any], changes: dict[str, Any], conversation_id: UUID
) -> dict[str, Any]:
    """How a delta save begins: only the metadata keys whose values changed
    ("md"), which the session index merges into the map it holds, and no
    conversation id (a delta's is always its base's). (Schema 1 carried the
    whole map and the id; the tests write that layout by replacing this.)"""
    return {"v": SCHEMA_VERSION, "md": changes}


def _turn_count(messages: Sequence[MessageSnapshot]) -> int | None:
    """How many turns the messages' turn indexes say there were (the distinct
    indexes), or ``None`` when they do not say (every index left at 0)."""
    turns = {m.turn_index for m in messages}
    if not turns or turns == {0}:
        return None
    return len(turns)


def _extends(new: Sequence[MessageSnapshot], old: Sequence[MessageSnapshot]) -> bool:
    """Whether ``new`` starts with all of ``old`` (identity first: that is the common case)."""
    n = len(old)
    if len(new) < n:
        return False
    # Tuple equality compares element by element in C, each by identity first
    # and ``==`` only when not identical: the same test as a Python loop of
    # ``a is b or a == b``, at a fraction of the cost per message.
    return tuple(new[:n]) == tuple(old)


def _doomed(
    sessions: Mapping[bytes, dict[str, Any]], max_age_days: float | None, max_count: int | None
) -> list[UUID]:
    """The sessions retention deletes, oldest first: older than ``max_age_days``
    by last access, then the oldest beyond ``max_count``; never favorites.
    ``sessions`` are the index's metadata wire maps (holds the runner lock)."""
    aged = sorted(
        ((datetime_from_wire(m["la"]), sid, bool(m.get("fv"))) for sid, m in sessions.items()),
    )
    doomed: list[bytes] = []
    if max_age_days is not None:
        try:
            cutoff = _now() - timedelta(days=max_age_days)
        except OverflowError:  # older than datetime.min: nothing is that old
            cutoff = datetime.min.replace(tzinfo=UTC)
        doomed = [sid for at, sid, fav in aged if not fav and at < cutoff]
    if max_count is not None:
        gone = set(doomed)
        alive = [(sid, fav) for _, sid, fav in aged if sid not in gone]
        excess = len(alive) - max_count
        for sid, fav in alive:
            if excess <= 0:
                break
            if not fav:
                doomed.append(sid)
                excess -= 1
    order = {sid: i for i, (_, sid, _) in enumerate(aged)}
    doomed.sort(key=order.__getitem__)
    return [UUID(bytes=sid) for sid in doomed]


@attrs.frozen
class _Base:
    """What the log holds for a session at ``head``: the base a delta save extends."""

    head: int
    conversation_id: UUID
    messages: tuple[MessageSnapshot, ...]
    context: ConversationContext
    mode_history: tuple[tuple[OperatingMode, datetime], ...]
    state: SessionState


class _Queries:
    """The read API, shared by the live store and point-in-time views."""

    _journal: Journal
    _runner: ProjectionRunner
    _index: SessionIndex
    _contents: SessionContents
    _stats: EventStatistics
    _graphs: GraphCheckpoints

    def _init_projections(
        self, journal: Journal, until_seq: int | None, snap_dir: str | None
    ) -> None:
        self._journal = journal
        self._index = SessionIndex()
        self._contents = SessionContents()
        self._stats = EventStatistics()
        self._graphs = GraphCheckpoints()
        self._runner = ProjectionRunner(
            journal,
            [self._index, self._contents, self._stats, self._graphs],
            until_seq=until_seq,
            snap_dir=snap_dir,
        )
        self._meta_cache: dict[
            bytes, tuple[tuple[int | None, int, int, int], SessionMetadata]
        ] = {}

    def _sync(self) -> None:
        """Apply what was appended since the last look (by any process)."""
        self._runner.catch_up()

    def _reclaimable(self) -> int:
        """Bytes a compaction with the default retention would reclaim now."""
        return 0

    # -- sessions --------------------------------------------------------------------------

    def _metadata(self, sid: bytes) -> SessionMetadata:
        """The session's metadata with the store-owned fields filled in. Holds the runner lock."""
        chain = self._contents.chains[sid]
        # The horizon too: a compaction makes the runner rebuild the projections,
        # whose change counters then start again and could repeat a stamp.
        stamp = (
            self._runner.horizon_seq,
            self._runner.rebuilds,
            self._index.versions.get(sid, 0),
            chain.changes,
        )
        hit = self._meta_cache.get(sid)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        wire = self._index.sessions[sid]
        stored, raw = chain.stored, chain.raw
        ckpts = chain.checkpoints
        if ckpts:  # most sessions have none: no generators, no sort
            stored += sum(c[1] for c in ckpts.values())
            raw += sum(c[2] for c in ckpts.values())
        # The store-owned fields go into the wire map, decoded once: cheaper
        # than decoding and then evolving (which validates every field again).
        filled = dict(wire)
        filled["fs"] = stored
        filled["cr"] = round(raw / stored, 3) if stored else 1.0
        filled["ck"] = (
            sorted((c[3] for c in ckpts.values()), key=lambda w: (w["at"], w["id"]))
            if ckpts
            else []
        )
        meta = metadata_from_wire(filled)
        self._meta_cache[sid] = (stamp, meta)
        return meta

    def list_sessions(self) -> list[SessionMetadata]:
        """Every live session, most recently accessed first."""
        self._sync()
        # Thousands of long-lived objects, none in a cycle: the GC paused
        # meanwhile does not walk them again and again (as on a restore).
        with self._runner.lock, gc_paused():
            # Every entry is read: those still packed since the restore are
            # decoded in one pass first (the maps are plain dicts after it).
            unpack_all(self._index.sessions)
            unpack_all(self._contents.chains)
            pairs = [(self._metadata(sid), sid) for sid in self._index.sessions]
        # The id's bytes are the key's own: cheaper than ``UUID.bytes``.
        pairs.sort(key=lambda p: (p[0].last_accessed, p[1]), reverse=True)
        return [m for m, _ in pairs]

    def search_sessions(self, query: str) -> list[SessionMetadata]:
        """Sessions whose title or any tag contains ``query`` (case-insensitive)."""
        if not isinstance(query, str):
            raise InvalidArgument(f"query must be a string, got {type(query).__name__}")
        # The filter reads the index's stored title and tags: only the
        # sessions that match are built (at 10,000 sessions building them all
        # was most of a search).
        return list(self.find_sessions(query=query).sessions)

    def find_sessions(
        self,
        *,
        limit: int | None = None,
        query: str | None = None,
        tag: str | None = None,
        favorites: bool = False,
        since: datetime | None = None,
        mode: OperatingMode | None = None,
        kind: str | None = None,
        id_prefix: str | None = None,
    ) -> SessionPage:
        """The live sessions matching every filter given, most recently accessed
        first, at most ``limit`` of them, with how many match in all.

        ``query`` as for :meth:`search_sessions`; ``tag``: sessions with this
        tag; ``favorites``: favorites only; ``since``: accessed at or after this
        aware time; ``mode``: in this operating mode; ``kind``: sessions tagged
        ``kind:K`` (what an integration writes, e.g. ``openai-agents``), or with
        no ``kind:`` tag for ``"session"``; ``id_prefix``: ids whose
        hex digits start with these (dashes ignored). The filters and the order
        read the index's stored fields: only the sessions returned are built,
        so a page of 50 out of 10,000 costs little more than the 50.
        """
        if limit is not None and (type(limit) is not int or limit < 0):
            raise InvalidArgument(f"limit must be an int >= 0 or None, got {limit!r}")
        if query is not None and not isinstance(query, str):
            raise InvalidArgument(f"query must be a string, got {type(query).__name__}")
        if since is not None and (not isinstance(since, datetime) or since.utcoffset() is None):
            raise InvalidArgument(f"since must be an aware datetime, got {since!r}")
        since_wire = None if since is None else datetime_to_wire(since)
        mode_wire = None if mode is None else OperatingMode(mode).value
        q = query.lower() if query else None
        if id_prefix is not None and not isinstance(id_prefix, str):
            raise InvalidArgument(f"id_prefix must be a string, got {type(id_prefix).__name__}")
        prefix = id_prefix.lower().replace("-", "") if id_prefix else None
        self._sync()
        with self._runner.lock, gc_paused():
            index = self._index.sessions
            if prefix is not None:
                # Ids are the keys: only the sessions they pick are decoded.
                items: Any = [(sid, index[sid]) for sid in index if sid.hex().startswith(prefix)]
            else:
                unpack_all(index)
                items = index.items()
            keys: list[tuple[Any, bytes]] = []
            for sid, w in items:
                la = w.get("la", 0)
                if since_wire is not None and not (type(la) is int and la >= since_wire):
                    continue
                tags = w.get("tg") or ()
                if tag is not None and tag not in tags:
                    continue
                if favorites and w.get("fv") is not True:
                    continue
                if mode_wire is not None and w.get("mo", "plan") != mode_wire:
                    continue
                if kind is not None and kind != next(
                    (t[5:] for t in tags if isinstance(t, str) and t.startswith("kind:")),
                    "session",
                ):
                    continue
                if q is not None and not (
                    q in str(w.get("ti", "")).lower() or any(q in str(t).lower() for t in tags)
                ):
                    continue
                keys.append((la, sid))
            # Stored times are microseconds (ints); anything else sorts as the
            # metadata would (the decode below raises on it, as list_sessions does).
            keys.sort(key=lambda k: (k[0] if type(k[0]) is int else 0, k[1]), reverse=True)
            picked = keys if limit is None else keys[:limit]
            # The chains of the sessions picked only: each decodes on first use.
            metas = [self._metadata(sid) for _, sid in picked]
        return SessionPage(tuple(metas), len(keys))

    def session_exists(self, session_id: UUID | str) -> bool:
        """Whether a live session has this id."""
        sid = _sid(session_id)
        self._sync()
        with self._runner.lock:
            return sid.bytes in self._index.sessions

    def get_metadata(self, session_id: UUID | str) -> SessionMetadata:
        """The session's metadata without loading its conversation."""
        return self._look(_sid(session_id), chain=False)[0]

    def _look(self, sid: UUID, *, chain: bool) -> tuple[SessionMetadata, list[int]]:
        """The session's metadata, recorded as handed to the caller, and (with
        ``chain``) the seqs of its chain."""
        with self._looking(sid):
            self._sync()
            with self._runner.lock:
                if sid.bytes not in self._index.sessions:
                    raise self._not_found(sid)
                meta = self._metadata(sid.bytes)
                seqs = list(self._contents.chains[sid.bytes].seqs) if chain else []
            self._loaded(sid, meta)
        return meta, seqs

    def _looking(self, sid: UUID) -> AbstractContextManager[object]:
        """Hook: held while the metadata handed to the caller is read and
        ``_loaded`` records it, so no save of the session in this store comes
        in between (it would leave an older map as the save's base)."""
        return nullcontext()

    def _loaded(self, sid: UUID, meta: SessionMetadata) -> None:
        """Hook: the caller was handed ``meta`` as the session's metadata."""

    def _not_found(self, sid: UUID) -> SessionNotFound:
        """The error for a session that is not live: naming its purge if it was
        purged. Holds the runner lock."""
        purged = self._index.purged.get(sid.bytes)
        if purged is None:
            return SessionNotFound(f"no session {sid}")
        return SessionPurged(sid, int(purged[0]), int(purged[1]))

    def fork_origin(self, session_id: UUID | str) -> tuple[UUID, int, int] | None:
        """Where a forked session came from: ``(source id, message count at the
        fork, seq of the fork)``, or ``None`` for a session that is no fork."""
        sid = _sid(session_id)
        self._sync()
        with self._runner.lock:
            chain = self._contents.chains.get(sid.bytes)
            if chain is None or sid.bytes not in self._index.sessions:
                raise SessionNotFound(f"no session {sid}")
            if chain.origin is None:
                return None
            src, n, seq = chain.origin
            return UUID(bytes=bytes(src)), int(n), int(seq)

    def load_session(
        self, session_id: UUID | str
    ) -> tuple[SessionMetadata, ConversationSnapshot, SessionState]:
        """The session's metadata, conversation and state."""
        sid = _sid(session_id)
        for attempt in range(3):
            # The metadata as read is the next save's base even if the chain
            # read below must look again.
            meta, seqs = self._look(sid, chain=True)
            try:
                base = self._read_chain(seqs)
            except RecordNotFound:
                # Compaction replaced the records meanwhile: look again.
                if attempt == 2:
                    raise
                continue
            conv = ConversationSnapshot(
                base.conversation_id, base.messages, base.context, base.mode_history
            )
            return meta, conv, base.state
        raise AssertionError("unreachable")

    def _read_chain(self, seqs: Sequence[int]) -> _Base:
        """Rebuild a session's content from its last full save and the deltas after it."""
        j = self._journal
        records = j.read_many(seqs)  # one refresh; nearby records in one pread
        # Decoding builds thousands of small objects, none of them in a cycle:
        # with the cyclic GC paused it does not walk them (and the rest of the
        # heap) again and again meanwhile (a third of a load otherwise).
        with gc_paused():
            messages: list[MessageSnapshot] = []
            # Context, mode history and state: only the newest of each is
            # decoded (as (schema version, stored value)).
            cx: tuple[int, Any] | None = None
            mh: tuple[int, Any] | None = None
            st: tuple[int, Any] | None = None
            cid: object = None
            for rec in records:
                ev = upcast(rec.event_type, j.decode(rec))
                if rec.event_type != _SESSION_SAVED:
                    # A fork point or a truncation: the messages before it, cut
                    # (journal/_fork.py). A fork whose source's records are gone
                    # (a view before a purge of the source) starts empty.
                    del messages[ev["n"] :]
                    if cid is None:
                        cid = rec.session
                    continue
                v = ev.get("v", 1)
                msgs = messages_of(ev, f"seq {rec.seq} messages", j.dictionaries)
                if ev.get("base", 0) == 0:
                    messages = list(msgs)
                else:
                    messages.extend(msgs)
                if "cx" in ev:
                    cx = (v, ev["cx"])
                if "mh" in ev:
                    mh = (v, ev["mh"])
                if "st" in ev:
                    st = (v, ev["st"])
                if "cid" in ev:
                    cid = ev["cid"]
                    if type(cid) is not bytes or len(cid) != 16:
                        raise CorruptPayload(f"seq {rec.seq}: conversation id is not 16 bytes")
            assert isinstance(cid, bytes)
            return _Base(
                seqs[-1],
                UUID(bytes=cid),
                tuple(messages),
                ConversationContext() if cx is None else context_of(*cx),
                () if mh is None else modes_of(*mh),
                SessionState() if st is None else state_of(*st),
            )

    # -- checkpoints -----------------------------------------------------------------------

    def _checkpoint_record(self, sid: UUID, cid: UUID) -> int:
        with self._runner.lock:
            chain = self._contents.chains.get(sid.bytes)
            if chain is None:
                raise SessionNotFound(f"no session {sid}")
            entry = chain.checkpoints.get(cid.bytes)
            if entry is None:
                raise CheckpointNotFound(f"session {sid} has no checkpoint {cid}")
            return int(entry[0])

    def load_checkpoint(
        self, session_id: UUID | str, checkpoint_id: UUID | str
    ) -> tuple[ConversationSnapshot, SessionState]:
        """The conversation and state saved in a checkpoint."""
        sid, cid = _sid(session_id), _sid(checkpoint_id, "checkpoint id")
        self._sync()
        seq = self._checkpoint_record(sid, cid)
        rec = self._journal.read(seq)
        ev = upcast(rec.event_type, self._journal.decode(rec))
        return checkpoint_of(ev, f"seq {seq} checkpoint")

    def list_checkpoints(self, session_id: UUID | str) -> list[CheckpointMetadata]:
        """The session's live checkpoints, oldest first."""
        return list(self.get_metadata(session_id).checkpoints)

    # -- audit and statistics --------------------------------------------------------------

    def history(self, session_id: UUID | str | None = None) -> list[HistoryEntry]:
        """The events of one session (or of all, given ``None``) in seq order."""
        sid = None if session_id is None else _sid(session_id).bytes
        self._sync()
        out = []
        j = self._journal
        for rec in j.scan(until_seq=self._runner.seq):
            if sid is not None and rec.session != sid:
                continue
            out.append(history_entry(j, rec))
        return out

    def statistics(self) -> StoreStatistics:
        """Sessions, checkpoints, bytes and events, as of now (immutable)."""
        self._sync()
        reclaimable = self._reclaimable()
        with self._runner.lock:
            js = self._journal.statistics()
            sessions = self._index.sessions
            created = [datetime_from_wire(m["ca"]) for m in sessions.values()]
            live = self._contents.live_bytes() + self._graphs.live_bytes()
            return StoreStatistics(
                total_sessions=len(sessions),
                total_checkpoints=sum(len(c.checkpoints) for c in self._contents.chains.values()),
                total_size_bytes=js.bytes,
                indexed_sessions=len(sessions),
                oldest_session=min(created, default=None),
                newest_session=max(created, default=None),
                events_by_type=MappingProxyType(
                    {event_name(t): n for t, n in sorted(self._stats.counts.items())}
                ),
                records=sum(self._stats.counts.values()),
                segments=js.segments,
                live_bytes=live,
                reclaimable_bytes=reclaimable,
                last_seq=self._runner.seq,
                horizon_seq=js.horizon_seq,
                graph_threads=len(self._graphs.threads),
                graph_checkpoints=self._graphs.checkpoint_count(),
            )


class PointInTimeView(_Queries):
    """A read-only view of the store as of one seq: later events are invisible."""

    def __init__(self, journal: Journal, seq: int, snap_dir: str | None) -> None:
        self._init_projections(journal, seq, snap_dir)
        self.seq = seq
        self._runner.restore()
        self._runner.catch_up()

    def _sync(self) -> None:
        # The view is fixed at its seq; nothing later is ever applied.
        pass

    def statistics(self) -> StoreStatistics:
        """As :meth:`SessionStore.statistics`, the journal's extent included, as of the view."""
        st = super().statistics()
        # The segments holding seqs up to the view's (at least the first), and their bytes.
        segments = max(1, sum(1 for s in self._journal.manifest.segments if s.base_seq <= self.seq))
        return attrs.evolve(
            st,
            total_size_bytes=sum(self._stats.bytes.values()) + segments * HEADER_SIZE,
            segments=segments,
        )


class SessionStore(_Queries):
    """The session store agents import: saves, loads, lists, tags, checkpoints.

    Open with :meth:`SessionStore.open`. Every method is thread-safe; several
    processes may open the same directory at once.
    """

    def __init__(
        self,
        journal: Journal,
        *,
        max_chain: int,
        full_ratio: float,
        snapshots: bool,
        redact: RedactionPolicy | None = None,
    ) -> None:
        snap_dir = os.path.join(journal.root, "projections") if snapshots else None
        self._init_projections(journal, None, snap_dir)
        self.max_chain = max_chain
        self.full_ratio = full_ratio
        # Per-session save locks, re-entrant: ``_append`` takes them again.
        self._locks = [threading.RLock() for _ in range(_STRIPES)]
        self._bases: OrderedDict[bytes, _Base] = OrderedDict()
        self._bases_lock = threading.Lock()
        self._trainer = Trainer(level=journal._codec.level)
        # Per session: the metadata the caller last saved or loaded, the base
        # of the next save's three-way merge (journal/_merge.py).
        # (as its wire map once saved: with the counts the store derived).
        self._meta_bases: dict[bytes, SessionMetadata | dict[str, Any]] = {}
        self._reclaim_cache: tuple[object, int] | None = None
        self._closed = False
        policy = RedactionPolicy() if redact is None else redact
        self.redaction = policy
        self._redactor: Redactor | None = None
        self._last_context: tuple[ConversationContext, ConversationContext] | None = None
        if policy.enabled and not journal.readonly:
            key = load_key(journal.root, create=True)
            assert key is not None
            self._redactor = Redactor(policy, key)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        readonly: bool = False,
        max_chain: int = 256,
        full_ratio: float = 8.0,
        snapshots: bool = True,
        redact: RedactionPolicy | None = None,
        **journal_options: Any,
    ) -> SessionStore:
        """Open the store at ``path`` (default ``~/.agcodex/history``).

        Options of :meth:`journal.Journal.open` (``durability``,
        ``segment_size``, ...) pass through. ``readonly=True`` never writes
        anything. ``max_chain`` bounds how many records a load reads;
        a full save is written again once the deltas after the last one reach
        ``full_ratio`` times its size (and at least ``full_ratio`` x 64 KiB).
        The defaults trade a little load time for size: measured on the bench
        workload (docs/BENCHMARKS.md), a journal without periodic full saves
        below that floor and with ``max_chain`` 256 rather than 64 is 20 %
        smaller and its loads take 10 % longer (1.43 vs 1.30 ms).

        ``redact`` is what is redacted before a save is encoded (default:
        :class:`RedactionPolicy()`, on: secret-looking environment variables
        and known credential formats in any text; ``RedactionPolicy.off()``
        stores text as given). See :class:`journal.RedactionPolicy` and the
        README's "Secrets".
        """
        root = os.path.expanduser(os.fspath(path) if path is not None else DEFAULT_ROOT)
        if not isinstance(max_chain, int) or max_chain < 1:
            raise InvalidArgument(f"max_chain must be a positive int, got {max_chain!r}")
        if (
            isinstance(full_ratio, bool)
            or not isinstance(full_ratio, int | float)
            or not (0 < full_ratio < float("inf"))
        ):
            raise InvalidArgument(f"full_ratio must be a positive number, got {full_ratio!r}")
        if redact is not None and not isinstance(redact, RedactionPolicy):
            raise InvalidArgument(
                f"redact must be a RedactionPolicy, got {type(redact).__name__}"
            )
        journal = Journal.open(root, readonly=readonly, **journal_options)
        try:
            store = cls(
                journal,
                max_chain=max_chain,
                full_ratio=full_ratio,
                snapshots=snapshots,
                redact=redact,
            )
            store._runner.restore()
            store._runner.catch_up()
        except BaseException:
            journal.close()
            raise
        return store

    @property
    def journal(self) -> Journal:
        """The underlying journal (for audit tools)."""
        return self._journal

    @property
    def root(self) -> str:
        return self._journal.root

    def close(self) -> None:
        """Persist projection state (writers only) and release the journal."""
        if self._closed:
            return
        try:
            if not self._journal.readonly and not self._journal.closed:
                self._runner.catch_up()
                self._runner.persist()
        finally:
            self._closed = True
            self._journal.close()

    def __enter__(self) -> SessionStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _looking(self, sid: UUID) -> AbstractContextManager[object]:
        return self._lock_for(sid)

    def _loaded(self, sid: UUID, meta: SessionMetadata) -> None:
        self._meta_bases[sid.bytes] = meta

    def _reclaimable(self) -> int:
        # Exactly what ``compact()`` would drop: its own dry run, which reads
        # the segments old enough to compact (a journal without any answers at
        # once). Its answer depends on those segments only (no record after
        # them can refer to their dictionaries anew): kept until they change.
        from journal import _compact

        j = self._journal
        prefix = _compact.plan_cut(j, DEFAULT_RETAIN)
        if not prefix:
            return 0
        key = (j.manifest.generation, tuple((s.base_seq, s.name, s.count) for s in prefix))
        hit = self._reclaim_cache
        if hit is not None and hit[0] == key:
            return hit[1]
        # It waits for a compaction or purge running meanwhile.
        report = _compact.compact(self, DEFAULT_RETAIN, dry_run=True, wait=True)
        self._reclaim_cache = (key, report.reclaimed_bytes)
        return report.reclaimed_bytes

    # -- appending ------------------------------------------------------------------------

    def _lock_for(self, sid: UUID) -> threading.RLock:
        return self._locks[hash(sid) % _STRIPES]

    def _append(
        self,
        entries: list[Entry],
        prepare: Callable[[], Sequence[Entry] | None] | None = None,
        *,
        fold_payloads: bool = False,
    ) -> list[int]:
        # Our own records are folded in from memory when nothing came in
        # between; otherwise the next query catches up from the log.
        # ``fold_payloads``: the caller's ``prepare`` never replaces the
        # entries and their payloads are plain msgpack types of the current
        # schema, so the fold takes them as they are (no decompress, no decode).
        #
        # An event that replaces or ends a session's content (save, delete,
        # purge) commits holding that session's save lock, whoever appends it
        # (cleanup, purge, import too): a delta save's prepare check sees the
        # log, not earlier batches of its own group commit, so it must never
        # share a commit with such an event of its session. Stripes are taken
        # in order, and a saver holds only its own: no deadlock.
        stripes = sorted(
            {
                hash(e.session_id) % _STRIPES
                for e in entries
                if e.session_id is not None and e.event_type in _CONTENT_EVENTS
            }
        )
        for i in stripes:
            self._locks[i].acquire()
        try:
            records = self._journal.commit(entries, prepare=prepare)
        finally:
            for i in reversed(stripes):
                self._locks[i].release()
        self._runner.apply_own(records, [e.payload for e in entries] if fold_payloads else None)
        return [r.seq for r in records]

    def _require(self, sid: UUID) -> int:
        """The seq of the save that began the session's current life (0 when
        its content is unknown); ``SessionNotFound`` when it is not live."""
        self._sync()
        with self._runner.lock:
            if sid.bytes not in self._index.sessions:
                raise self._not_found(sid)
            chain = self._contents.chains.get(sid.bytes)
            return chain.born if chain is not None else 0

    def _edit(
        self,
        sid: UUID,
        entries: list[Entry],
        check: Callable[[], object] | None = None,
    ) -> list[int]:
        """Append ``entries``, which depend on the session's state, only if under
        the commit lock the session is still in the life the caller saw (and
        ``check`` still passes): otherwise raise ``SessionNotFound`` (deleted
        meanwhile; ``SessionPurged`` when purged) or ``SessionConflict``
        (deleted and saved again), and nothing is written.

        The session's stripe lock is held from the first look to the commit,
        so no event of this process about the session (each takes the same
        lock) comes in between or shares the group commit, where ``prepare``
        would not see it: only another process can have changed the session,
        and only if the journal adopted another process's change meanwhile.
        """
        j = self._journal
        with self._lock_for(sid):
            foreign = j.foreign_changes
            born = self._require(sid)
            if check is not None:
                check()

            def prepare() -> None:
                if j.foreign_changes == foreign:
                    return None
                try:
                    now = self._require(sid)
                except SessionPurged:
                    raise  # names the purge
                except SessionNotFound:
                    raise SessionNotFound(
                        f"no session {sid}: another process deleted it meanwhile; "
                        "nothing was written"
                    ) from None
                if now != born:
                    raise SessionConflict(
                        f"session {sid} was deleted and saved again (seq {now}) by another "
                        "process meanwhile; nothing was written for its earlier life",
                        sid,
                    )
                if check is not None:
                    check()
                return None

            return self._append(entries, prepare)

    # -- redaction ------------------------------------------------------------------------

    def _redact(self, obj: _T) -> _T:
        """``obj`` with its secrets redacted (small objects: walked whole)."""
        r = self._redactor
        return obj if r is None else r.redact(obj)

    def _redact_save(
        self,
        metadata: SessionMetadata,
        meta_wire: dict[str, Any],
        state: SessionState,
        context: ConversationContext,
    ) -> tuple[dict[str, Any], SessionState, ConversationContext]:
        """A save's metadata (as its wire map), state and context with their
        secrets redacted: each walked only when its encoded form (or an
        environment variable's name) holds a candidate; a context seen last
        time is not looked at again."""
        r = self._redactor
        if r is None:
            return meta_wire, state, context
        clean = r.screen(metadata, msgpack.packb(meta_wire, use_bin_type=True))
        if clean is not metadata:
            meta_wire = metadata_to_wire(clean)
            meta_wire.pop("ck", None)
        state = r.screen(state, checked(state, SessionState, "state"))
        last = self._last_context
        if last is not None and last[0] is context:
            return meta_wire, state, last[1]
        cleaned = r.screen(
            context,
            checked(context, ConversationContext, "conversation.context"),
            context.environment_variables,
        )
        self._last_context = (context, cleaned)
        return meta_wire, state, cleaned

    def _redact_import(self, obj: _T) -> _T:
        """A legacy file's object with its secrets redacted (walked only when its
        msgpack holds a candidate, or, for a conversation, an environment
        variable's name looks secret)."""
        r = self._redactor
        if r is None:
            return obj
        if isinstance(obj, ConversationSnapshot):
            raw = checked(obj, ConversationSnapshot, "conversation")
            return r.screen(obj, raw, obj.context.environment_variables)
        return r.redact(obj)

    def _tags(self, tags: Sequence[object], verb: str) -> list[str]:
        return [self._redact(t) for t in _tags(tags, verb)]

    def _messages_raw(
        self, messages: Sequence[MessageSnapshot], what: str = "messages"
    ) -> bytes:
        """The schema-4 msgpack of ``messages``, each checked, secrets redacted:
        the encoded bytes are screened first, and only a candidate found makes
        the messages walked."""
        raw = check_messages(messages, what)
        r = self._redactor
        if r is not None and r.suspect(raw):
            clean = r.redact(tuple(messages))
            if any(a is not b for a, b in zip(clean, messages, strict=True)):
                raw = check_messages(clean, what)
        return raw

    def _messages_blob(self, messages: Sequence[MessageSnapshot]) -> bytes:
        """The blob ``msgs`` of a save carrying ``messages`` (compressed alone, no
        dictionary), their secrets redacted; data msgpack cannot carry is the
        caller's ``InvalidArgument``."""
        return blob_of(self._messages_raw(messages))

    def _conversation_raw(self, conversation: ConversationSnapshot) -> bytes:
        """The msgpack of a whole conversation (a checkpoint's), secrets redacted."""
        raw = checked(conversation, ConversationSnapshot, "conversation")
        r = self._redactor
        if r is not None and (
            r.suspect(raw) or r.redact(conversation.context) is not conversation.context
        ):
            clean = r.redact(conversation)
            if clean is not conversation:
                raw = checked(clean, ConversationSnapshot, "conversation")
        return raw

    # -- sessions -------------------------------------------------------------------------

    def save_session(
        self,
        session_id: UUID | str,
        metadata: SessionMetadata,
        conversation: ConversationSnapshot,
        state: SessionState,
        *,
        actor: str | None = None,
        reuse_purged: bool = False,
    ) -> int:
        """Save a session; return the seq of its ``SessionSaved`` event.

        The event carries only the new messages when ``conversation`` extends
        what the log holds for the session; otherwise the whole list.

        The metadata is merged, not written over: only the fields the caller
        changed since the metadata it last saved or loaded through this store
        (``save_session``, ``load_session``, ``get_metadata``) are written, so
        tags, favorites and renames made meanwhile by others (the command
        line, another process) stay. A field both changed takes this save's
        value, and the audit line says so; tags merge as a set (the caller's
        additions and removals applied to the current tags); of the times
        ``updated_at`` and ``last_accessed`` the later is kept. A store that
        has no base for the session (it never saved or loaded it) merges
        against the metadata as the session's last save left it. The store
        fills in ``message_count`` (the messages saved), ``turn_count`` when
        the messages' turn indexes say it, ``file_size``,
        ``compression_ratio`` and ``checkpoints``.

        ``conversation.id`` must be the session id (or, for a session
        imported from the legacy store, the conversation id it was imported
        with), as ``metadata.id`` must.

        A deleted session's id may be saved again (it starts a new session).
        A purged one's may not: the save raises :class:`journal.SessionPurged`
        unless ``reuse_purged=True`` says the caller starts a new session
        under that id knowingly.
        """
        sid = _sid(session_id)
        _check(metadata, SessionMetadata, "metadata")
        _check(conversation, ConversationSnapshot, "conversation")
        _check(state, SessionState, "state")
        if metadata.id != sid:
            raise InvalidArgument(f"metadata.id {metadata.id} does not match session id {sid}")
        if actor is not None and not isinstance(actor, str):
            raise InvalidArgument("actor must be a string")
        if not isinstance(reuse_purged, bool):
            raise InvalidArgument(f"reuse_purged must be a bool, got {reuse_purged!r}")
        messages = conversation.messages
        mine = metadata_to_wire(validated(metadata, SessionMetadata, "metadata"))
        mine.pop("ck", None)
        # Secrets never reach the log (journal/_redact.py): the small objects
        # here, the messages as they are encoded (only the new ones). The
        # caller's map is redacted before it is merged: its base (what it last
        # saved, redacted, or loaded, as stored) and the map the index holds
        # carry markers too, so the merge compares like with like and a secret
        # the caller did not change reads as unchanged.
        mine, state, context = self._redact_save(metadata, mine, state, conversation.context)
        mine["mc"] = len(messages)
        turns = _turn_count(messages)
        if turns is not None:
            mine["tc"] = turns
        j = self._journal
        sampled: list[bytes] = []  # the new messages' msgpack, for the dictionary

        def merged() -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any]]:
            """The map to write, the changed keys for a schema 2 delta (``None``:
            the session is new) and the audit fields. Holds the runner lock."""
            if sid.bytes in self._index.purged and not reuse_purged:
                raise self._not_found(sid)
            held = self._index.sessions.get(sid.bytes)
            # Without the caller's own base: the map as the last save left it.
            base = base_wire if base_wire is not None else self._index.saved.get(sid.bytes)
            m = merge_metadata(base, mine, held)
            audit: dict[str, Any] = {}
            if m.overridden:
                audit["ov"] = list(m.overridden)
            if held is None:
                return m.meta, None, audit
            return m.meta, {k: m.meta[k] for k in m.changed}, audit | {"ch": list(m.changed)}

        def full(dictionary: Dictionary | None) -> Entry:
            raw = self._messages_raw(messages, "conversation.messages")
            sampled[:] = [raw]
            payload = full_save_payload(
                meta_wire,
                conversation.id,
                messages,
                context,
                conversation.mode_history,
                state,
                actor,
                blob_of(raw, dictionary),
            )
            if changes is not None:  # not a new session: name what changed
                payload |= audit
            return Entry(EventType.SESSION_SAVED, payload, sid, compress=False)

        with self._lock_for(sid):
            # The base is read under the stripe lock, which every save and
            # load of the session in this store holds while it reads or sets
            # it: read before, a save of another task of this store could come
            # in between, and this save would take that save's value for a
            # concurrent change to keep while writing its own content.
            held_base = self._meta_bases.get(sid.bytes)
            base_wire = (
                held_base
                if held_base is None or isinstance(held_base, dict)
                else metadata_to_wire(held_base)
            )
            # Read before catching up: any change of another process adopted
            # from here on makes ``prepare`` look at the log again.
            foreign = j.foreign_changes
            self._sync()
            dictionary = self._dictionary()
            with self._runner.lock:
                meta_wire, changes, audit = merged()
                chain = self._contents.chains.get(sid.bytes)
                head = chain.head if chain else 0
                full_due = (
                    chain is None
                    or changes is None
                    or chain.delta_bytes >= self.full_ratio * max(chain.full_bytes, FULL_FLOOR)
                    or len(chain.seqs) >= self.max_chain
                )
            entry: Entry | None = None
            base: _Base | None = None
            if conversation.id != sid:
                # Only a session imported from the legacy store has a
                # conversation id of its own; it is saved back with it.
                base = self._base(sid, head) if chain is not None else None
                if base is None or base.conversation_id != conversation.id:
                    raise InvalidArgument(
                        f"conversation.id {conversation.id} does not match session id {sid}"
                    )
            if not full_due:
                base = self._base(sid, head)
                if (
                    base is not None
                    and changes is not None  # (not full_due says so)
                    # A delta on an empty base has base=0, which reads as a full
                    # save: it must carry context, mode history and state too.
                    and base.messages
                    and base.conversation_id == conversation.id
                    and _extends(messages, base.messages)
                ):
                    entry, raw = self._delta(
                        sid, base, meta_wire, changes, audit, conversation, context, state,
                        actor, dictionary,
                    )
                    sampled[:] = [raw]
            first = entry if entry is not None else full(dictionary)
            used = blob_reference(first.payload["msgs"]) is not None

            def prepare() -> list[Entry] | None:
                # Under the commit lock, caught up with every process. Only
                # another process can have changed the session since we chose
                # the base and merged the metadata (this one's savers and
                # metadata events of the session wait for our stripe lock),
                # and only if the journal adopted another process's change.
                nonlocal meta_wire, changes, audit
                dict_ok = not (used and dictionary is not None and dictionary.seq < j.active_base)
                rebuild = not dict_ok
                if j.foreign_changes != foreign:
                    self._sync()
                    with self._runner.lock:
                        now = merged()  # raises if it was purged meanwhile
                        ch = self._contents.chains.get(sid.bytes)
                        now_head = ch.head if ch else 0
                    if now_head != head or (first is entry and now[1] is None):
                        # The content changed (or the session was deleted): write it whole.
                        meta_wire, changes, audit = now
                        return [full(self._trainer.current(j.active_base))]
                    if not same(now[0], meta_wire) or not same(now[2], audit):
                        meta_wire, changes, audit = now
                        rebuild = True
                if not rebuild:
                    return None
                # A dictionary whose segment was sealed meanwhile: no new
                # reference to it may appear (rule 2 in journal/_dictionary.py).
                d = dictionary if dict_ok else None
                if first is not entry:
                    return [full(d)]
                assert base is not None and changes is not None
                delta, _ = self._delta(
                    sid, base, meta_wire, changes, audit, conversation, context, state, actor, d
                )
                return [delta]

            seq = self._append([first], prepare)[0]
            # What the caller saved (counts derived) is its next save's base.
            self._meta_bases[sid.bytes] = mine
            # The log now holds exactly this at ``seq``; if another process saves
            # the session later, its head moves on and this base is not used.
            self._remember(
                sid.bytes,
                _Base(
                    seq,
                    conversation.id,
                    messages,
                    context,
                    conversation.mode_history,
                    state,
                ),
            )
        if sampled and not used and self._trainer.offer(j.active_base, seq, sid.bytes, sampled[0]):
            self._train_dictionary()
        return seq

    def _dictionary(self) -> Dictionary | None:
        """The dictionary new message blobs may use now (a hint: ``prepare`` checks)."""
        j = self._journal
        if j.readonly:
            return None
        active = j.active_base
        d = self._trainer.current(active)
        if d is None:
            # Another writer (or this one before a restart) trained one for
            # this segment: use it rather than train another.
            seq = self._stats.dictionary_seq
            if seq >= active:
                try:
                    d = j.dictionaries.get(seq)
                except JournalError:
                    return None  # damaged: blobs are written plain, as before it
                self._trainer.adopt(d, active)
        return d

    def _train_dictionary(self) -> None:
        """Train a dictionary on the samples and append it; a failure costs only
        the dictionary (the save that asked for it is already durable)."""
        trained = self._trainer.train()
        if trained is None:
            return
        base, data, sources = trained
        j = self._journal

        def prepare() -> None:
            # A purge seals the segment the samples came from: not trained on then.
            if j.active_base != base:
                raise _SegmentSealed
            return None

        try:
            entry = Entry(EventType.DICTIONARY_TRAINED, dictionary_event(data, sources))
            seq = self._append([entry], prepare)[0]
        except (JournalError, _SegmentSealed):
            self._trainer.cancel()
            return
        except BaseException:
            self._trainer.cancel()
            raise
        self._trainer.install(base, seq, data, sources)

    def _delta(
        self,
        sid: UUID,
        base: _Base,
        meta_wire: dict[str, Any],
        changes: dict[str, Any],
        audit: dict[str, Any],
        conversation: ConversationSnapshot,
        context: ConversationContext,
        state: SessionState,
        actor: str | None,
        dictionary: Dictionary | None,
    ) -> tuple[Entry, bytes]:
        """A delta save and the msgpack of its new messages."""
        n_old = len(base.messages)
        payload = _delta_head(meta_wire, changes, conversation.id)
        if "ov" in audit:
            payload["ov"] = audit["ov"]
        # Only the new messages are checked and encoded: a save costs O(new).
        raw = self._messages_raw(
            conversation.messages[n_old:], f"conversation.messages[{n_old}:]"
        )
        payload |= {"base": n_old, "n": len(conversation.messages)}
        payload["msgs"] = blob_of(raw, dictionary)
        # Context, mode history and state are written only when they changed,
        # so a save's bytes follow what is new, not the session's size.
        if context != base.context:
            payload["cx"] = checked(context, ConversationContext, "conversation.context")
        if conversation.mode_history != base.mode_history:
            payload["mh"] = checked(
                conversation.mode_history, ModeHistory, "conversation.mode_history"
            )
        if state != base.state:
            payload["st"] = checked(state, SessionState, "state")
        if actor:
            payload["actor"] = actor
        return Entry(EventType.SESSION_SAVED, payload, sid, compress=False), raw

    def _base(self, sid: UUID, head: int) -> _Base | None:
        """What the log holds for the session at ``head`` (cached, else read back)."""
        with self._bases_lock:
            b = self._bases.get(sid.bytes)
            if b is not None and b.head == head:
                self._bases.move_to_end(sid.bytes)
                return b
        with self._runner.lock:
            chain = self._contents.chains.get(sid.bytes)
            if chain is None or chain.head != head:
                return None
            seqs = list(chain.seqs)
        try:
            b = self._read_chain(seqs)
        except RecordNotFound:
            return None
        self._remember(sid.bytes, b)
        return b

    def _remember(self, sid: bytes, base: _Base) -> None:
        with self._bases_lock:
            self._bases[sid] = base
            self._bases.move_to_end(sid)
            while len(self._bases) > 256:
                self._bases.popitem(last=False)

    def delete_session(
        self, session_id: UUID | str, *, reason: str = "user", actor: str | None = None
    ) -> None:
        """Delete a session (its history stays in the log until compaction)."""
        sid = _sid(session_id)
        if reason not in ("user", "retention"):
            raise InvalidArgument(f"reason must be 'user' or 'retention', got {reason!r}")
        if actor is not None and not isinstance(actor, str):
            raise InvalidArgument(f"actor must be a string, got {type(actor).__name__}")
        payload: dict[str, Any] = {"v": 1, "reason": reason}
        if actor:
            payload["actor"] = actor
        with self._lock_for(sid):
            self._edit(sid, [Entry(EventType.SESSION_DELETED, payload, sid)])
            self._meta_bases.pop(sid.bytes, None)

    def _metadata_event(
        self, session_id: UUID | str, etype: EventType, payload: dict[str, Any]
    ) -> None:
        sid = _sid(session_id)
        self._edit(sid, [Entry(etype, {"v": 1, **payload}, sid)])

    def tag(self, session_id: UUID | str, *tags: str) -> None:
        """Add tags to a session (one ``TagsChanged`` event); at least one tag."""
        self._metadata_event(
            session_id, EventType.TAGS_CHANGED, {"add": self._tags(tags, "tag"), "rm": []}
        )

    def untag(self, session_id: UUID | str, *tags: str) -> None:
        """Remove tags from a session (one ``TagsChanged`` event); at least one tag."""
        self._metadata_event(
            session_id, EventType.TAGS_CHANGED, {"add": [], "rm": self._tags(tags, "untag")}
        )

    def set_favorite(self, session_id: UUID | str, flag: bool) -> None:
        """Mark or unmark a session as favorite (favorites survive cleanup)."""
        if not isinstance(flag, bool):
            raise InvalidArgument(f"flag must be a bool, got {type(flag).__name__}")
        self._metadata_event(session_id, EventType.FAVORITE_CHANGED, {"fav": flag})

    def rename(self, session_id: UUID | str, title: str) -> None:
        """Change a session's title."""
        if not isinstance(title, str):
            raise InvalidArgument(f"title must be a string, got {type(title).__name__}")
        self._metadata_event(session_id, EventType.SESSION_RENAMED, {"title": self._redact(title)})

    def touch(self, session_id: UUID | str) -> None:
        """Set a session's last-accessed time to now."""
        self._metadata_event(
            session_id, EventType.SESSION_TOUCHED, {"at": datetime_to_wire(_now())}
        )

    def cleanup_old_sessions(
        self, max_age_days: float | None = None, max_count: int | None = None
    ) -> list[UUID]:
        """Delete (as retention) sessions older than ``max_age_days`` by last access,
        then the oldest beyond ``max_count``; favorites are never deleted.

        Returns the ids deleted, oldest first.
        """
        if max_age_days is not None and (
            isinstance(max_age_days, bool)
            or not isinstance(max_age_days, int | float)
            or not 0 <= max_age_days < math.inf
        ):
            raise InvalidArgument(f"max_age_days must be a number >= 0, got {max_age_days!r}")
        if max_count is not None and (
            isinstance(max_count, bool) or not isinstance(max_count, int) or max_count < 0
        ):
            raise InvalidArgument(f"max_count must be an int >= 0, got {max_count!r}")
        while True:
            doomed = self._cleanup_once(max_age_days, max_count)
            if doomed is not None:
                return doomed

    def _cleanup_once(
        self, max_age_days: float | None, max_count: int | None
    ) -> list[UUID] | None:
        """One try of :meth:`cleanup_old_sessions`; ``None``: try again."""
        self._sync()
        with self._runner.lock:
            wanted = _doomed(self._index.sessions, max_age_days, max_count)
        # The save locks of the sessions it means to delete: no event of this
        # process about them shares the group commit, where ``prepare`` would
        # not see it. If the index as of the commit dooms a session of another
        # stripe, it tries again with that stripe too.
        stripes = sorted({hash(sid) % _STRIPES for sid in wanted})
        doomed: list[UUID] = []

        def prepare() -> list[Entry]:
            # Under the commit lock, caught up with every process: the counts
            # and ages are the index's as of this commit.
            self._sync()
            with self._runner.lock:
                now = _doomed(self._index.sessions, max_age_days, max_count)
            if any(hash(sid) % _STRIPES not in stripes for sid in now):
                raise _Widen
            doomed[:] = now
            return [
                Entry(EventType.SESSION_DELETED, {"v": 1, "reason": "retention"}, sid)
                for sid in now
            ]

        for i in stripes:
            self._locks[i].acquire()
        try:
            self._append([], prepare)
        except _Widen:
            return None
        finally:
            for i in reversed(stripes):
                self._locks[i].release()
        return doomed

    def fork_session(
        self,
        source_id: UUID | str,
        new_id: UUID | str | None = None,
        *,
        at_message: int | None = None,
        title: str | None = None,
        actor: str | None = None,
    ) -> UUID:
        """Start a new session as the first ``at_message`` messages of
        ``source_id`` (all of them when ``None``); return its id.

        It costs one small ``SessionForked`` event whatever the source's size:
        the fork reads the source's records up to the fork point, then its own
        saves, which are deltas on top. The fork gets a new id (``new_id``, or
        a random one), ``title`` (default: the source's with `` (fork)``), the
        source's context, mode history and state, and no checkpoints. Later
        changes to either session do not affect the other; compaction and
        purge keep the fork whole (docs/FORMAT.md, "Forks").
        """
        new = None if new_id is None else _sid(new_id, "new session id")
        return _fork.fork_session(self, _sid(source_id), new, at_message, title, actor)

    def truncate_session(
        self, session_id: UUID | str, message_count: int, *, actor: str | None = None
    ) -> int:
        """Cut a session's conversation to its first ``message_count`` messages
        (0 clears it) with one ``SessionTruncated`` event; return its seq."""
        return _fork.truncate(self, _sid(session_id), message_count, actor)

    def pop_message(
        self, session_id: UUID | str, *, actor: str | None = None
    ) -> MessageSnapshot | None:
        """Remove and return the session's last message (``None`` when it has
        none) with one ``SessionTruncated`` event; atomic across processes."""
        return _fork.pop_message(self, _sid(session_id), actor)

    def append_messages(
        self,
        session_id: UUID | str,
        messages: Sequence[MessageSnapshot],
        *,
        metadata: SessionMetadata | None = None,
        actor: str | None = None,
    ) -> int:
        """Add ``messages`` after the session's current ones; return the seq.

        Unlike :meth:`save_session` (whose last writer wins) it is a delta on
        whatever the log holds when it commits, so concurrent appends from
        several processes all keep their messages. A session that does not
        exist is created from ``metadata`` (``SessionNotFound`` without it).
        """
        return _fork.append_messages(self, _sid(session_id), messages, metadata, actor)

    # -- checkpoints ----------------------------------------------------------------------

    def create_checkpoint(
        self,
        session_id: UUID | str,
        checkpoint_id: UUID | str,
        conversation: ConversationSnapshot,
        state: SessionState,
        *,
        name: str = "",
        description: str | None = None,
    ) -> CheckpointMetadata:
        """Save a named restore point of a session; return its metadata."""
        cid = _sid(checkpoint_id, "checkpoint id")
        if not isinstance(name, str):
            raise InvalidArgument("name must be a string")
        if description is not None and not isinstance(description, str):
            raise InvalidArgument("description must be a string or None")
        meta = CheckpointMetadata(
            id=cid,
            name=self._redact(name),
            created_at=_now(),
            message_index=len(conversation.messages)
            if isinstance(conversation, ConversationSnapshot)
            else 0,
            description=None if description is None else self._redact(description),
        )
        self._append_checkpoint(_sid(session_id), meta, conversation, state)
        return meta

    def _append_checkpoint(
        self,
        sid: UUID,
        meta: CheckpointMetadata,
        conversation: ConversationSnapshot,
        state: SessionState,
        extra: Iterable[Entry] = (),
    ) -> None:
        _check(conversation, ConversationSnapshot, "conversation")
        _check(state, SessionState, "state")
        payload = {
            "v": SCHEMA_VERSION,
            "meta": checkpoint_meta_to_wire(validated(meta, CheckpointMetadata, "checkpoint")),
            "conv": blob_of(self._conversation_raw(conversation)),
            "st": checked(self._redact(state), SessionState, "state"),
        }
        self._edit(sid, [Entry(EventType.CHECKPOINT_CREATED, payload, sid, compress=False), *extra])

    def delete_checkpoint(self, session_id: UUID | str, checkpoint_id: UUID | str) -> None:
        """Delete one checkpoint of a session."""
        sid, cid = _sid(session_id), _sid(checkpoint_id, "checkpoint id")
        self._edit(
            sid,
            [Entry(EventType.CHECKPOINT_DELETED, {"v": 1, "id": cid.bytes}, sid)],
            lambda: self._checkpoint_record(sid, cid),
        )

    # -- compaction and purge -------------------------------------------------------------

    def compact(
        self, retain: timedelta = DEFAULT_RETAIN, *, dry_run: bool = False, seal: bool = False
    ) -> CompactionReport:
        """Fold sealed segments older than ``retain`` into the minimal events that
        rebuild the same state; the cut becomes the horizon, the earliest point
        :meth:`at` can show.

        Per live session one full save takes the place of its saves, tags,
        renames and touches; live checkpoints, purge and import records and
        the compression dictionaries still used are kept as they are; deleted
        sessions and superseded events are dropped. Seqs are kept.

        The active segment is never compacted: ``seal=True`` seals it first
        (a dry run reports as if it were sealed). When nothing is compacted the
        report's ``note`` says why.
        """
        if not isinstance(seal, bool):
            raise InvalidArgument(f"seal must be a bool, got {seal!r}")
        if self._journal.readonly and not dry_run:
            # Refused before anything is written (new segment files, lock file).
            raise ReadOnlyJournal(
                f"the store {self.root} was opened read-only; open it writable to compact "
                "(or use a dry run)"
            )
        try:
            from journal import _compact

            return _compact.compact(self, retain, dry_run=dry_run, seal=seal)
        except OSError as exc:
            raise JournalError(
                f"compaction stopped by an I/O error ({exc}); the journal is the one before "
                "the compaction or the compacted one, never a mix: run it again"
            ) from exc

    def purge(self, session_id: UUID | str, *, actor: str | None = None) -> PurgeReport:
        """Delete a session now and remove every byte of it from the journal."""
        if actor is not None and not isinstance(actor, str):
            raise InvalidArgument("actor must be a string")
        if self._journal.readonly:
            raise ReadOnlyJournal(
                f"the store {self.root} was opened read-only; open it writable to purge"
            )
        try:
            from journal import _compact

            return _compact.purge(self, _sid(session_id), actor)
        except OSError as exc:
            raise JournalError(
                f"purge stopped by an I/O error ({exc}); the session is deleted but some of "
                "its bytes may remain: run the purge again"
            ) from exc

    # -- secrets --------------------------------------------------------------------------

    def _rules(self, *, create_key: bool) -> Redactor:
        """The redaction rules of this store's policy, on even when saves have it off."""
        if self._redactor is not None:
            return self._redactor
        key = load_key(self.root, create=create_key)
        # Without a key (a read-only store of a journal that never had one)
        # the rules still find secrets; only markers would need it.
        return Redactor(attrs.evolve(self.redaction, enabled=True), key or bytes(32))

    def scan_secrets(self) -> list[SecretFinding]:
        """Every record that holds a secret by this store's redaction rules (what
        a save now would redact): seq, event, session and kinds, never a value."""
        self._sync()
        from journal import _scrub

        return _scrub.scan(self._journal, self._rules(create_key=False), until_seq=self._runner.seq)

    def scrub_secrets(self, *, actor: str | None = None) -> ScrubReport:
        """Rewrite every secret :meth:`scan_secrets` finds out of the journal:
        each replaced by its marker in place (same seq), dictionaries that may
        hold one dropped, snapshots and quarantined tails removed; then append
        ``SecretsScrubbed`` (docs/FORMAT.md)."""
        if actor is not None and not isinstance(actor, str):
            raise InvalidArgument("actor must be a string")
        if self._journal.readonly:
            raise ReadOnlyJournal(
                f"the store {self.root} was opened read-only; open it writable to scrub"
            )
        try:
            from journal import _scrub

            return _scrub.scrub(self, self._rules(create_key=True), actor)
        except OSError as exc:
            raise JournalError(
                f"scrub stopped by an I/O error ({exc}); the journal is the one before the "
                "scrub or the scrubbed one, never a mix: run it again"
            ) from exc

    def _after_rewrite(self, forget: bytes | None = None) -> None:
        """Catch up after compaction or purge replaced segments, and persist state."""
        with self._bases_lock:
            if forget is None:
                self._bases.clear()
            else:
                self._bases.pop(forget, None)
                self._meta_bases.pop(forget, None)
                # The samples may hold the purged session's messages.
                self._trainer.reset()
        self._sync()
        self._runner.forget_persisted()
        self._runner.persist()

    # -- point in time --------------------------------------------------------------------

    def resolve_point(self, when: datetime | int) -> int:
        """The seq a point in time (aware datetime or seq) stands for.

        Refuses naive datetimes, points in the future and points before the
        compaction horizon (naming the earliest recoverable time and seq).
        """
        self._sync()
        return resolve_point(self._journal, when)

    def at(self, when: datetime | int) -> PointInTimeView:
        """A read-only view of the store as of ``when`` (aware datetime or seq)."""
        seq = self.resolve_point(when)
        return PointInTimeView(self._journal, seq, self._runner.snap_dir)

    # -- legacy import --------------------------------------------------------------------

    def import_legacy(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        dry_run: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> ImportReport:
        """Import a legacy v2 history (``sessions/*.agcx``, ``checkpoints/*.ckpt``).

        ``path`` defaults to this store's own root. Each file is imported once
        (a second run reports it ``already imported``); damaged files are
        reported, never modified; sessions the journal holds with other
        content are skipped, never overwritten. ``dry_run`` writes nothing;
        ``progress(done, total)`` is called per file. A file imported once is
        never imported again, even when its session was purged since.
        """
        from journal._import import run_legacy_import

        return run_legacy_import(self, path, dry_run=dry_run, progress=progress)

    def import_codex(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        dry_run: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> CodexImportReport:
        """Import a Codex CLI history: every rollout under ``path``'s
        ``sessions/`` and ``archived_sessions/`` (plain or ``.jsonl.zst``).

        ``path`` defaults to ``$CODEX_HOME``, else ``~/.codex``. One session per
        rollout, with its id; every line is kept, so
        :meth:`export_codex` writes the rollout back. A second run adds only
        what was appended to a rollout since; damaged lines are reported and
        skipped; rollouts are never modified. ``dry_run`` writes nothing;
        ``progress(bytes_done, bytes_total)`` is called per file. A session
        deleted, or changed in agcx, since its import takes no new lines.
        """
        from journal._codex import run_codex_import

        return run_codex_import(self, path, dry_run=dry_run, progress=progress)

    def export_codex(self, session_id: UUID | str) -> Iterator[bytes]:
        """The session as Codex rollout lines (JSON, each ending in ``\\n``).

        An imported session gives its rollout's lines back, JSON-equal and in
        order; another session a rollout Codex can resume (``session_meta``,
        ``turn_context``, response items, ``user_message``/``agent_message``).
        """
        from journal._codex import export_codex_lines

        return export_codex_lines(self, _sid(session_id))


def resolve_point(journal: Journal, when: datetime | int) -> int:
    """The seq a point in time (aware datetime or seq) stands for in ``journal``.

    Refuses naive datetimes, points in the future and points before the
    compaction horizon (naming the earliest recoverable time and seq).
    """
    js = journal.statistics()
    horizon_seq, horizon_ts = js.horizon_seq, js.horizon_ts_ns
    if isinstance(when, bool) or not isinstance(when, int | datetime):
        raise InvalidArgument(
            f"a point in time is an aware datetime or a seq, got {type(when).__name__}"
        )
    if isinstance(when, int):
        if when < 0:
            raise InvalidArgument(f"seq must be >= 0, got {when}")
        if when > js.last_seq:
            raise InvalidArgument(f"seq {when} is in the future (last seq is {js.last_seq})")
        if when < horizon_seq:
            raise _horizon_error(f"seq {when}", horizon_seq, horizon_ts)
        return when
    ns = to_ns(when)
    if ns > time.time_ns():
        raise InvalidArgument(f"{when.isoformat()} is in the future")
    if horizon_seq and ns < horizon_ts:
        raise _horizon_error(when.isoformat(), horizon_seq, horizon_ts)
    # The point is just before the first record stamped after it.
    after = next(iter(journal.scan(since=ns + 1)), None)
    seq = js.last_seq if after is None else after.seq - 1
    return max(seq, horizon_seq)


def _horizon_error(what: str, horizon_seq: int, horizon_ts: int) -> HorizonError:
    t = from_ns(horizon_ts).isoformat()
    return HorizonError(
        f"{what} is before the compaction horizon: the earliest recoverable point is "
        f"seq {horizon_seq} ({t})",
        horizon_seq,
        horizon_ts,
    )
