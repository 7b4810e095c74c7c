"""AsyncSessionStore: the SessionStore for asyncio and trio, through anyio.

No logic lives here: each coroutine runs the synchronous method in a worker
thread. Concurrent saves from many tasks therefore become concurrent appends,
which the journal folds into shared commits (one lock hold, one fsync).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, ParamSpec, TypeVar
from uuid import UUID

import anyio.to_thread

from journal._compact import CompactionReport, PurgeReport
from journal._import import ImportReport
from journal._model import (
    CheckpointMetadata,
    ConversationSnapshot,
    MessageSnapshot,
    SessionMetadata,
    SessionState,
)
from journal._scrub import ScrubReport, SecretFinding
from journal._store import HistoryEntry, PointInTimeView, SessionStore, StoreStatistics

__all__ = ["AsyncPointInTimeView", "AsyncSessionStore"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


async def _run(fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


class AsyncPointInTimeView:
    """The async face of :class:`journal.PointInTimeView`."""

    def __init__(self, view: PointInTimeView) -> None:
        self.sync: PointInTimeView | SessionStore = view

    async def list_sessions(self) -> list[SessionMetadata]:
        return await _run(self.sync.list_sessions)

    async def search_sessions(self, query: str) -> list[SessionMetadata]:
        return await _run(self.sync.search_sessions, query)

    async def session_exists(self, session_id: UUID | str) -> bool:
        return await _run(self.sync.session_exists, session_id)

    async def get_metadata(self, session_id: UUID | str) -> SessionMetadata:
        return await _run(self.sync.get_metadata, session_id)

    async def load_session(
        self, session_id: UUID | str
    ) -> tuple[SessionMetadata, ConversationSnapshot, SessionState]:
        return await _run(self.sync.load_session, session_id)

    async def fork_origin(self, session_id: UUID | str) -> tuple[UUID, int, int] | None:
        return await _run(self.sync.fork_origin, session_id)

    async def load_checkpoint(
        self, session_id: UUID | str, checkpoint_id: UUID | str
    ) -> tuple[ConversationSnapshot, SessionState]:
        return await _run(self.sync.load_checkpoint, session_id, checkpoint_id)

    async def list_checkpoints(self, session_id: UUID | str) -> list[CheckpointMetadata]:
        return await _run(self.sync.list_checkpoints, session_id)

    async def history(self, session_id: UUID | str | None = None) -> list[HistoryEntry]:
        return await _run(self.sync.history, session_id)

    async def statistics(self) -> StoreStatistics:
        return await _run(self.sync.statistics)


class AsyncSessionStore(AsyncPointInTimeView):
    """The async face of :class:`journal.SessionStore`; ``await AsyncSessionStore.open()``."""

    sync: SessionStore

    def __init__(self, store: SessionStore) -> None:
        self.sync = store

    @classmethod
    async def open(
        cls, path: str | os.PathLike[str] | None = None, **options: Any
    ) -> AsyncSessionStore:
        """Open the store (see :meth:`journal.SessionStore.open`) without blocking the loop."""
        return cls(await _run(SessionStore.open, path, **options))

    async def close(self) -> None:
        await _run(self.sync.close)

    async def __aenter__(self) -> AsyncSessionStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def save_session(
        self,
        session_id: UUID | str,
        metadata: SessionMetadata,
        conversation: ConversationSnapshot,
        state: SessionState,
        *,
        actor: str | None = None,
    ) -> int:
        return await _run(
            self.sync.save_session, session_id, metadata, conversation, state, actor=actor
        )

    async def delete_session(
        self, session_id: UUID | str, *, reason: str = "user", actor: str | None = None
    ) -> None:
        await _run(self.sync.delete_session, session_id, reason=reason, actor=actor)

    async def fork_session(
        self,
        source_id: UUID | str,
        new_id: UUID | str | None = None,
        *,
        at_message: int | None = None,
        title: str | None = None,
        actor: str | None = None,
    ) -> UUID:
        return await _run(
            self.sync.fork_session, source_id, new_id, at_message=at_message, title=title,
            actor=actor,
        )

    async def truncate_session(
        self, session_id: UUID | str, message_count: int, *, actor: str | None = None
    ) -> int:
        return await _run(self.sync.truncate_session, session_id, message_count, actor=actor)

    async def pop_message(
        self, session_id: UUID | str, *, actor: str | None = None
    ) -> MessageSnapshot | None:
        return await _run(self.sync.pop_message, session_id, actor=actor)

    async def append_messages(
        self,
        session_id: UUID | str,
        messages: Sequence[MessageSnapshot],
        *,
        metadata: SessionMetadata | None = None,
        actor: str | None = None,
    ) -> int:
        return await _run(
            self.sync.append_messages, session_id, messages, metadata=metadata, actor=actor
        )

    async def tag(self, session_id: UUID | str, *tags: str) -> None:
        await _run(self.sync.tag, session_id, *tags)

    async def untag(self, session_id: UUID | str, *tags: str) -> None:
        await _run(self.sync.untag, session_id, *tags)

    async def set_favorite(self, session_id: UUID | str, flag: bool) -> None:
        await _run(self.sync.set_favorite, session_id, flag)

    async def rename(self, session_id: UUID | str, title: str) -> None:
        await _run(self.sync.rename, session_id, title)

    async def touch(self, session_id: UUID | str) -> None:
        await _run(self.sync.touch, session_id)

    async def cleanup_old_sessions(
        self, max_age_days: float | None = None, max_count: int | None = None
    ) -> list[UUID]:
        return await _run(self.sync.cleanup_old_sessions, max_age_days, max_count)

    async def create_checkpoint(
        self,
        session_id: UUID | str,
        checkpoint_id: UUID | str,
        conversation: ConversationSnapshot,
        state: SessionState,
        *,
        name: str = "",
        description: str | None = None,
    ) -> CheckpointMetadata:
        return await _run(
            self.sync.create_checkpoint,
            session_id,
            checkpoint_id,
            conversation,
            state,
            name=name,
            description=description,
        )

    async def delete_checkpoint(self, session_id: UUID | str, checkpoint_id: UUID | str) -> None:
        await _run(self.sync.delete_checkpoint, session_id, checkpoint_id)

    async def compact(
        self, retain: timedelta = timedelta(days=7), *, dry_run: bool = False
    ) -> CompactionReport:
        return await _run(self.sync.compact, retain, dry_run=dry_run)

    async def purge(self, session_id: UUID | str, *, actor: str | None = None) -> PurgeReport:
        return await _run(self.sync.purge, session_id, actor=actor)

    async def scan_secrets(self) -> list[SecretFinding]:
        return await _run(self.sync.scan_secrets)

    async def scrub_secrets(self, *, actor: str | None = None) -> ScrubReport:
        return await _run(self.sync.scrub_secrets, actor=actor)

    async def import_legacy(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        dry_run: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> ImportReport:
        return await _run(self.sync.import_legacy, path, dry_run=dry_run, progress=progress)

    async def resolve_point(self, when: datetime | int) -> int:
        return await _run(self.sync.resolve_point, when)

    async def at(self, when: datetime | int) -> AsyncPointInTimeView:
        return AsyncPointInTimeView(await _run(self.sync.at, when))
