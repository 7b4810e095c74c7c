"""The OpenAI Agents SDK's ``Session`` on the journal.

``JournalSession(session_id, path=None, *, store=None, session_settings=None)``
implements the SDK's ``Session`` protocol (``agents/memory/session.py``):
``get_items(limit)``, ``add_items``, ``pop_item``, ``clear_session``, each
also taking the ``wrapper`` keyword, so the runner passes its
``RunContextWrapper`` (it does only when all four accept it).

A session is a journal session like any other, so ``agcx ls/show/log/
export/stats/verify/compact/recover`` see it:

* the SDK's string id maps to a UUID: the string itself when it is one, else
  ``uuid5(NAMESPACE, session_id)`` (:func:`session_uuid`); the string is the
  session's title and it carries the tag ``kind:openai-agents``
  (:data:`KIND_TAG`, what ``agcx ls --kind openai-agents`` selects);
* items are the store's Responses-API items (``item_from_json``); an item the
  model cannot give back exactly as it came (an unknown type, a message
  without ``type``, keys the model does not keep) is kept verbatim as an
  ``UnknownItem``, so ``get_items`` returns what ``add_items`` was given;
* ``add_items`` is ``SessionStore.append_messages``: one delta event, safe
  against other threads and processes appending to the same session;
  ``pop_item`` and ``clear_session`` are one ``SessionTruncated`` event each
  (O(1), in the audit trail and in point-in-time views);
* ``get_items(limit)`` returns the latest ``limit`` items, widened backwards
  so that no tool call's output comes without its call (a ``function_call``
  and its ``function_call_output``, and every ``*_call`` / ``*_call_output``
  pair matched by ``call_id``).

Several ``JournalSession``s of one process share one store: pass ``store=``
(a ``SessionStore`` or ``AsyncSessionStore``). Without it each opens its own
at ``path`` (default ``~/.agcodex/history``) and closes it in :meth:`close`.
Requires the optional extra: ``pip install "agcx[openai-agents]"``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from datetime import UTC, datetime
from os import PathLike
from types import TracebackType
from typing import Any, TypeVar
from uuid import UUID, uuid5

import anyio.to_thread

try:
    from agents.memory.session_settings import SessionSettings, resolve_session_limit
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "journal.integrations.openai_agents needs the OpenAI Agents SDK: "
        'pip install "agcx[openai-agents]"'
    ) from exc

from journal._aio import AsyncSessionStore
from journal._errors import InvalidArgument, SessionNotFound
from journal._fork import current_messages
from journal._model import (
    MessageSnapshot,
    ResponseItem,
    SessionMetadata,
    UnknownItem,
    item_from_json,
    item_to_json,
)
from journal._store import SessionStore

__all__ = ["KIND_TAG", "NAMESPACE", "JournalSession", "session_uuid"]

#: The namespace of :func:`session_uuid` (fixed: changing it would orphan sessions).
NAMESPACE = UUID("5b0c9a53-7f0e-5d2c-9c1e-6f70656e6169")
#: The tag every session written through :class:`JournalSession` carries.
KIND_TAG = "kind:openai-agents"
_ACTOR = "openai-agents"
_T = TypeVar("_T")


def session_uuid(session_id: str) -> UUID:
    """The journal session id of an SDK session id: the string itself when it
    is a UUID, else ``uuid5(NAMESPACE, session_id)``."""
    if not isinstance(session_id, str):
        raise InvalidArgument(f"session_id must be a string, got {type(session_id).__name__}")
    try:
        return UUID(session_id)
    except ValueError:
        return uuid5(NAMESPACE, session_id)


def _item(d: Any) -> ResponseItem:
    """The store's item for a Responses-API dict: typed when it comes back
    exactly, else verbatim."""
    if not isinstance(d, dict):
        raise InvalidArgument(f"a session item must be a dict, got {type(d).__name__}")
    if isinstance(d.get("type"), str):
        try:
            item = item_from_json(d)
        except InvalidArgument:
            pass
        else:
            if item_to_json(item) == d:
                return item
    return UnknownItem(dict(d))


def _json(item: ResponseItem) -> Any:
    return item_to_json(item)


def _window(items: list[Any], limit: int) -> list[Any]:
    """The latest ``limit`` items, widened back to the call of every tool
    output it holds (matched by ``call_id``; a call pulled in this way may
    pull in more)."""
    pending: set[str] = set()
    start = len(items)
    while start > 0 and (len(items) - start < limit or pending):
        start -= 1
        it = items[start]
        t, cid = it.get("type"), it.get("call_id")
        if not isinstance(cid, str):
            continue
        if isinstance(t, str) and t.endswith("_output"):
            pending.add(cid)
        else:
            pending.discard(cid)  # its call: the pair is whole
    return items[start:]


class JournalSession:
    """An OpenAI Agents SDK session kept in the journal (see the module docs)."""

    session_id: str
    session_settings: SessionSettings | None

    def __init__(
        self,
        session_id: str,
        path: str | PathLike[str] | None = None,
        *,
        store: SessionStore | AsyncSessionStore | None = None,
        session_settings: SessionSettings | None = None,
    ) -> None:
        self.session_id = session_id
        self.uuid = session_uuid(session_id)
        self.session_settings = session_settings if session_settings is not None else (
            SessionSettings()
        )
        if store is None:
            self._store = SessionStore.open(path)
            self._owned = True
        else:
            if path is not None:
                raise InvalidArgument("give either path or store, not both")
            if isinstance(store, AsyncSessionStore):
                store = store.sync
            if not isinstance(store, SessionStore):
                raise InvalidArgument(f"store must be a SessionStore, got {type(store).__name__}")
            self._store = store
            self._owned = False

    @property
    def store(self) -> SessionStore:
        """The journal store this session is kept in."""
        return self._store

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args))

    # -- the Session protocol --------------------------------------------------------------

    async def get_items(self, limit: int | None = None, *, wrapper: Any = None) -> list[Any]:
        """The session's items, oldest first; with ``limit`` (or the session
        settings' limit) the latest ``limit``, widened so that no tool output
        is returned without its call. A limit of 0 returns none, a negative
        one all."""
        del wrapper
        n = resolve_session_limit(limit, self.session_settings)
        return await self._run(self._get_items, n)

    def _get_items(self, limit: int | None) -> list[Any]:
        try:
            # From the store's cache when it holds the session's head (this
            # process wrote it last): nothing is read back.
            messages = current_messages(self._store, self.uuid)
        except SessionNotFound:
            return []
        items = [_json(m.item) for m in messages]
        if limit is None or limit < 0:
            return items
        if limit == 0:
            return []
        return _window(items, limit)

    async def add_items(self, items: list[Any], *, wrapper: Any = None) -> None:
        """Append ``items`` (one event; the session is created by its first items)."""
        del wrapper
        if not items:
            return
        await self._run(self._add_items, list(items))

    def _add_items(self, items: list[Any]) -> None:
        now = datetime.now(UTC)
        messages = [MessageSnapshot(_item(d), now, 0) for d in items]
        meta = SessionMetadata(
            self.uuid, self.session_id, now, now, now, tags=(KIND_TAG,), model=""
        )
        self._store.append_messages(self.uuid, messages, metadata=meta, actor=_ACTOR)

    async def pop_item(self, *, wrapper: Any = None) -> Any | None:
        """Remove and return the newest item (``None`` when there is none):
        one ``SessionTruncated`` event."""
        del wrapper
        return await self._run(self._pop_item)

    def _pop_item(self) -> Any | None:
        try:
            m = self._store.pop_message(self.uuid, actor=_ACTOR)
        except SessionNotFound:
            return None
        return None if m is None else _json(m.item)

    async def clear_session(self, *, wrapper: Any = None) -> None:
        """Remove every item: one ``SessionTruncated`` event to 0 (the
        session stays listed, empty; its history stays in the audit trail)."""
        del wrapper
        await self._run(self._clear)

    def _clear(self) -> None:
        with contextlib.suppress(SessionNotFound):  # nothing to clear
            self._store.truncate_session(self.uuid, 0, actor=_ACTOR)

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the store if this session opened it (a shared ``store=`` stays open)."""
        if self._owned:
            self._store.close()

    def __enter__(self) -> JournalSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> JournalSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._run(self.close)
