"""Forks, truncations and appends: the session operations that cost one small
event whatever the session's size.

**Fork.** ``SessionForked`` (type 12) is appended under the *new* session's
id and names its source: ``{v: 1, src: source id, n: messages, sh: the
source's head seq, meta: the fork's metadata wire map}``. It copies no
message: the contents projection gives the fork the source's chain as the
log holds it at that seq (its last full save, its deltas, its cuts), then
the fork record itself, which cuts what was read to the first ``n``
messages; the fork's own saves are deltas on top. So a load follows the
reference, and a replay (rebuild, point-in-time view, recovered copy)
rebuilds the same chain. ``sh`` is for the audit trail only.

**Truncation.** ``SessionTruncated`` (type 13), ``{v: 1, n, md}``: the
session's messages are cut to the first ``n`` (``md``: the metadata keys it
changes, merged as a schema-2 delta's). It goes into the chain like a delta,
so popping a message or clearing a session costs one record, not a rewrite.

**Append.** :func:`append_messages` adds messages to a session (creating it
when asked) as a delta on whatever the log holds when it commits: unlike
``save_session`` (last writer wins), two processes appending to one session
both keep their messages.

The three check, under the commit lock, that the session they act on is
still as they read it when another process wrote meanwhile; if not, they
read again and retry (``_Moved``), so each is atomic across processes.

Keeping forks whole through compaction and purge: compaction folds a fork
at its fork record into a full save carrying ``fk`` (its origin), like any
session; :func:`give_forks_their_own` runs before a purge removes a
session's bytes and appends a full save for every live fork that reads them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import attrs

from journal._errors import InvalidArgument, SessionNotFound
from journal._events import EventType
from journal._log import Entry
from journal._model import (
    ConversationContext,
    MessageSnapshot,
    SessionMetadata,
    SessionState,
)
from journal._wire import datetime_to_wire, metadata_to_wire

if TYPE_CHECKING:
    from journal._store import SessionStore, _Base

__all__ = ["append_messages", "fork_session", "give_forks_their_own", "pop_message", "truncate"]

# Retries of an operation whose session another process changed between the
# read and the commit; each retry means another commit landed on the same
# session meanwhile, so this bounds only a pathological storm.
_TRIES = 1000


class _Moved(Exception):
    """The session changed under us (another process wrote it): read again."""


def _now_wire() -> Any:
    return datetime_to_wire(datetime.now(UTC))


def _locks(store: SessionStore, *ids: UUID) -> ExitStack:
    """The save stripes of ``ids``, taken in stripe order (as ``_append`` does)."""
    stack = ExitStack()
    for i in sorted({hash(sid) % len(store._locks) for sid in ids}):
        stack.enter_context(store._locks[i])
    return stack


def _head(store: SessionStore, sid: UUID) -> tuple[int, int] | None:
    """(head seq, message count) of a live session, or ``None``. Caller synced."""
    with store._runner.lock:
        chain = store._contents.chains.get(sid.bytes)
        if chain is None or sid.bytes not in store._index.sessions:
            return None
        return chain.head, chain.messages


def _live_head(store: SessionStore, sid: UUID) -> tuple[int, int, int]:
    """``(foreign, head, messages)`` of a live session, caught up with the log
    (``foreign`` read first, for :func:`_guard`); ``SessionNotFound`` if none."""
    foreign = store.journal.foreign_changes
    store._sync()
    got = _head(store, sid)
    if got is None:
        raise SessionNotFound(f"no session {sid}")
    return foreign, got[0], got[1]


def _cached(store: SessionStore, sid: UUID, head: int) -> _Base | None:
    """The store's cached content of the session at ``head``, if it has it
    (nothing is read)."""
    with store._bases_lock:
        b = store._bases.get(sid.bytes)
    return b if b is not None and b.head == head else None


def _then(store: SessionStore, sid: UUID, base: _Base | None, seq: int, messages: Any) -> None:
    """Remember what the log holds for ``sid`` at ``seq``: ``base`` with these
    messages (so the next pop, append or load of it reads nothing back)."""
    if base is not None:
        store._remember(sid.bytes, attrs.evolve(base, head=seq, messages=tuple(messages)))


def current_messages(store: SessionStore, sid: UUID) -> tuple[MessageSnapshot, ...]:
    """The session's messages as the log holds them now (from the store's
    cache when it has the session's head, else read back)."""

    def attempt() -> tuple[MessageSnapshot, ...]:
        _, head, _ = _live_head(store, sid)
        base = store._base(sid, head)
        if base is None:
            raise _Moved  # another process wrote it meanwhile
        return base.messages

    result: tuple[MessageSnapshot, ...] = _retrying(attempt)
    return result


def _guard(store: SessionStore, sid: UUID, head: int | None, foreign: int) -> Callable[[], None]:
    """A ``prepare`` that raises :class:`_Moved` when, under the commit lock,
    the session's head is no longer ``head`` (``None``: absent). ``foreign``
    is the journal's count of adopted foreign changes read before the head was."""
    j = store.journal

    def prepare() -> None:
        if j.foreign_changes != foreign:
            store._sync()
            now = _head(store, sid)
            if (now[0] if now else None) != head:
                raise _Moved
        return None

    return prepare


def _retrying(op: Callable[[], Any]) -> Any:
    for _ in range(_TRIES):
        try:
            return op()
        except _Moved:
            continue
    raise InvalidArgument(f"the session changed {_TRIES} times while being written: gave up")


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgument(f"{what} must be an int >= 0, got {value!r}")
    return value


# -- fork ----------------------------------------------------------------------------------


def fork_session(
    store: SessionStore,
    source_id: UUID,
    new_id: UUID | None,
    at_message: int | None,
    title: str | None,
    actor: str | None,
) -> UUID:
    """See :meth:`journal.SessionStore.fork_session`."""
    if at_message is not None:
        _count(at_message, "at_message")
    if title is not None and not isinstance(title, str):
        raise InvalidArgument(f"title must be a string, got {type(title).__name__}")
    if actor is not None and not isinstance(actor, str):
        raise InvalidArgument(f"actor must be a string, got {type(actor).__name__}")
    new = uuid4() if new_id is None else new_id
    if new == source_id:
        raise InvalidArgument("a fork needs an id of its own, not its source's")

    def attempt() -> UUID:
        foreign, head, total = _live_head(store, source_id)
        with store._runner.lock:
            if new.bytes in store._index.sessions:
                raise InvalidArgument(f"session {new} already exists: a fork needs a new id")
            held = store._index.sessions.get(source_id.bytes)
            if held is None:  # another process deleted it, adopted meanwhile
                raise SessionNotFound(f"no session {source_id}")
            wire = dict(held)
        n = total if at_message is None else at_message
        if n > total:
            raise InvalidArgument(
                f"at_message {n} is past the end of session {source_id} ({total} messages)"
            )
        now = _now_wire()
        wire.pop("ck", None)
        wire |= {"id": new.bytes, "ca": now, "ua": now, "la": now, "mc": n, "fv": False}
        wire["ti"] = (
            store._redact(title) if title is not None else f"{wire.get('ti', '')} (fork)".lstrip()
        )
        if n < total:
            wire["tc"] = min(int(wire.get("tc", 0)), n)
        payload: dict[str, Any] = {
            "v": 1,
            "src": source_id.bytes,
            "n": n,
            "sh": head,
            "meta": wire,
        }
        if actor:
            payload["actor"] = actor
        check_source = _guard(store, source_id, head, foreign)
        check_new = _guard(store, new, None, foreign)

        def prepare() -> None:
            check_source()
            check_new()

        base = _cached(store, source_id, head)
        seq = store._append([Entry(EventType.SESSION_FORKED, payload, new)], prepare)[0]
        _then(store, new, base, seq, base.messages[:n] if base else ())
        return new

    with _locks(store, source_id, new):
        result: UUID = _retrying(attempt)
        return result


# -- truncation ----------------------------------------------------------------------------


def _truncate_entry(sid: UUID, n: int, actor: str | None) -> Entry:
    payload: dict[str, Any] = {"v": 1, "n": n, "md": {"mc": n, "ua": _now_wire()}}
    if actor:
        payload["actor"] = actor
    return Entry(EventType.SESSION_TRUNCATED, payload, sid)


def truncate(store: SessionStore, sid: UUID, n: int, actor: str | None) -> int:
    """See :meth:`journal.SessionStore.truncate_session`."""
    _count(n, "message_count")

    def attempt() -> int:
        foreign, head, total = _live_head(store, sid)
        if n > total:
            raise InvalidArgument(f"session {sid} has {total} messages, cannot keep {n}")
        base = _cached(store, sid, head)
        seq: int = store._append(
            [_truncate_entry(sid, n, actor)], _guard(store, sid, head, foreign)
        )[0]
        _then(store, sid, base, seq, base.messages[:n] if base else ())
        return seq

    with _locks(store, sid):
        result: int = _retrying(attempt)
        return result


def pop_message(store: SessionStore, sid: UUID, actor: str | None) -> MessageSnapshot | None:
    """See :meth:`journal.SessionStore.pop_message`."""

    def attempt() -> MessageSnapshot | None:
        foreign, head, total = _live_head(store, sid)
        if total == 0:
            return None
        base = store._base(sid, head)
        if base is None:
            raise _Moved
        last = base.messages[-1]
        entry = _truncate_entry(sid, total - 1, actor)
        seq = store._append([entry], _guard(store, sid, head, foreign))[0]
        _then(store, sid, base, seq, base.messages[:-1])
        return last

    with _locks(store, sid):
        result: MessageSnapshot | None = _retrying(attempt)
        return result


# -- append --------------------------------------------------------------------------------


def append_messages(
    store: SessionStore,
    sid: UUID,
    messages: Sequence[MessageSnapshot],
    metadata: SessionMetadata | None,
    actor: str | None,
) -> int:
    """See :meth:`journal.SessionStore.append_messages`."""
    from journal._store import _Base, delta_save_payload, full_save_payload

    messages = tuple(messages)
    for m in messages:
        if not isinstance(m, MessageSnapshot):
            raise InvalidArgument(f"messages must be MessageSnapshots, got {type(m).__name__}")
    if metadata is not None:
        if not isinstance(metadata, SessionMetadata):
            raise InvalidArgument(f"metadata must be a SessionMetadata, got {metadata!r}")
        if metadata.id != sid:
            raise InvalidArgument(f"metadata.id {metadata.id} does not match session id {sid}")
    if actor is not None and not isinstance(actor, str):
        raise InvalidArgument(f"actor must be a string, got {type(actor).__name__}")
    if metadata is not None:
        metadata = store._redact(metadata)
    blob = store._messages_blob(messages)  # secrets redacted (journal/_redact.py)

    def attempt() -> int:
        foreign = store.journal.foreign_changes
        store._sync()
        got = _head(store, sid)
        now = _now_wire()
        base: _Base | None
        if got is None:
            with store._runner.lock:
                if metadata is None or sid.bytes in store._index.purged:
                    # A purged id stays purged: no append starts it again.
                    raise store._not_found(sid)
            wire = metadata_to_wire(metadata)
            wire.pop("ck", None)
            wire |= {"mc": len(messages), "ua": now}
            base = _Base(0, sid, (), ConversationContext(), (), SessionState())
            payload = full_save_payload(
                wire, sid, messages, base.context, (), base.state, actor, blob
            )
            head = None
        else:
            head, total = got
            if total == 0:
                # A delta on nothing reads as a full save: write one, on the
                # session's own context, state and metadata.
                base = store._base(sid, head)
                if base is None:
                    raise _Moved
                with store._runner.lock:
                    held = store._index.sessions.get(sid.bytes)
                if held is None:
                    raise _Moved
                wire = dict(held)
                wire.pop("ck", None)
                wire |= {"mc": len(messages), "ua": now}
                payload = full_save_payload(
                    wire,
                    base.conversation_id,
                    messages,
                    base.context,
                    base.mode_history,
                    base.state,
                    actor,
                    blob,
                )
            else:
                base = _cached(store, sid, head)
                md = {"mc": total + len(messages), "ua": now}
                payload = delta_save_payload(total, len(messages), blob, md, actor)
        entry = Entry(EventType.SESSION_SAVED, payload, sid, compress=False)
        seq: int = store._append([entry], _guard(store, sid, head, foreign))[0]
        _then(store, sid, base, seq, (*base.messages, *messages) if base else ())
        return seq

    if not messages and metadata is None:
        store._require(sid)
        return store._runner.seq
    with _locks(store, sid):
        result: int = _retrying(attempt)
        return result


# -- purge ---------------------------------------------------------------------------------


def give_forks_their_own(store: SessionStore, sid: bytes) -> list[UUID]:
    """Append a full save for every live session that reads records of ``sid``
    (its forks, and theirs), so that purging ``sid`` leaves them whole.
    Returns their ids. Each is checked under the commit lock like a save."""
    from journal._store import full_save_payload

    store._sync()
    with store._runner.lock:
        forks = [UUID(bytes=k) for k, c in store._contents.chains.items() if sid in c.shares]

    def own(fork: UUID) -> None:
        foreign = store.journal.foreign_changes
        store._sync()
        with store._runner.lock:
            chain = store._contents.chains.get(fork.bytes)
            wire = store._index.sessions.get(fork.bytes)
            if chain is None or wire is None or sid not in chain.shares:
                return  # deleted or saved in full meanwhile
            head, origin, wire = chain.head, chain.origin, dict(wire)
        base = store._base(fork, head)
        if base is None:
            raise _Moved
        wire.pop("ck", None)
        payload = full_save_payload(
            wire,
            base.conversation_id,
            base.messages,
            base.context,
            base.mode_history,
            base.state,
            "purge",
        )
        if origin is not None:
            payload["fk"] = origin
        entry = Entry(EventType.SESSION_SAVED, payload, fork, compress=False)
        store._append([entry], _guard(store, fork, head, foreign))

    for fork in forks:
        with _locks(store, fork):
            _retrying(functools.partial(own, fork))
    return forks
