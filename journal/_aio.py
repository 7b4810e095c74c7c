"""AsyncSessionStore: the SessionStore for asyncio and trio, through anyio.

No logic lives here: each coroutine runs the synchronous method in a worker
thread. Concurrent saves from many tasks therefore become concurrent appends,
which the journal folds into shared commits (one lock hold, one fsync).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Generator, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from uuid import UUID

import anyio.to_thread

from journal._errors import InvalidArgument
from journal._model import (
    CheckpointMetadata,
    ConversationSnapshot,
    MessageSnapshot,
    OperatingMode,
    SessionMetadata,
    SessionState,
)
from journal._store import (
    HistoryEntry,
    PointInTimeView,
    SessionPage,
    SessionStore,
    StoreStatistics,
)

# Annotations only: compaction, scrubbing and the imports are loaded when first
# used, as in the sync store (opening an async store to read pays for none).
if TYPE_CHECKING:
    from journal._codex import CodexImportReport
    from journal._compact import CompactionReport, PurgeReport
    from journal._import import ImportReport
    from journal._scrub import ScrubReport, SecretFinding

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
        """Every live session, most recently accessed first."""
        return await _run(self.sync.list_sessions)

    async def search_sessions(self, query: str) -> list[SessionMetadata]:
        """Sessions whose title or a tag contains ``query`` (case-insensitive)."""
        return await _run(self.sync.search_sessions, query)

    async def find_sessions(
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
        """The live sessions matching every filter given, newest first, at most
        ``limit``, with how many match in all (see ``SessionStore.find_sessions``)."""
        return await _run(
            functools.partial(
                self.sync.find_sessions,
                limit=limit,
                query=query,
                tag=tag,
                favorites=favorites,
                since=since,
                mode=mode,
                kind=kind,
                id_prefix=id_prefix,
            )
        )

    async def session_exists(self, session_id: UUID | str) -> bool:
        """Whether a live session has this id."""
        return await _run(self.sync.session_exists, session_id)

    async def get_metadata(self, session_id: UUID | str) -> SessionMetadata:
        """The session's metadata without loading its conversation."""
        return await _run(self.sync.get_metadata, session_id)

    async def load_session(
        self, session_id: UUID | str
    ) -> tuple[SessionMetadata, ConversationSnapshot, SessionState]:
        """The session's metadata, conversation and state."""
        return await _run(self.sync.load_session, session_id)

    async def fork_origin(self, session_id: UUID | str) -> tuple[UUID, int, int] | None:
        """Where a forked session came from: (source id, messages at the fork, seq)."""
        return await _run(self.sync.fork_origin, session_id)

    async def load_checkpoint(
        self, session_id: UUID | str, checkpoint_id: UUID | str
    ) -> tuple[ConversationSnapshot, SessionState]:
        """The conversation and state saved in a checkpoint."""
        return await _run(self.sync.load_checkpoint, session_id, checkpoint_id)

    async def list_checkpoints(self, session_id: UUID | str) -> list[CheckpointMetadata]:
        """The session's live checkpoints, oldest first."""
        return await _run(self.sync.list_checkpoints, session_id)

    async def history(self, session_id: UUID | str | None = None) -> list[HistoryEntry]:
        """The events of one session (or of all, given ``None``) in seq order."""
        return await _run(self.sync.history, session_id)

    async def statistics(self) -> StoreStatistics:
        """Sessions, checkpoints, bytes and events, as of now (immutable)."""
        return await _run(self.sync.statistics)


class _Opening:
    """What :meth:`AsyncSessionStore.open` returns: awaited, the open store;
    used as ``async with``, the store closed at the block's end (as
    ``anyio.open_file`` and ``httpx.AsyncClient`` do)."""

    def __init__(self, path: str | os.PathLike[str] | None, options: dict[str, Any]) -> None:
        self._path = path
        self._options = options
        self._store: AsyncSessionStore | None = None

    async def _open(self) -> AsyncSessionStore:
        return AsyncSessionStore(await _run(SessionStore.open, self._path, **self._options))

    def __await__(self) -> Generator[Any, None, AsyncSessionStore]:
        return self._open().__await__()

    async def __aenter__(self) -> AsyncSessionStore:
        self._store = await self._open()
        return self._store

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._store is not None
        await self._store.close()


class AsyncSessionStore(AsyncPointInTimeView):
    """The async face of :class:`journal.SessionStore` (anyio: asyncio and trio).

    Open it with ``store = await AsyncSessionStore.open(path)`` or
    ``async with AsyncSessionStore.open(path) as store:``. Each coroutine runs
    the synchronous method in a worker thread.
    """

    sync: SessionStore

    def __init__(self, store: SessionStore) -> None:
        if not isinstance(store, SessionStore):
            raise InvalidArgument(
                f"AsyncSessionStore wraps an open SessionStore, got {type(store).__name__}: "
                "open one with `await AsyncSessionStore.open(path)` or "
                "`async with AsyncSessionStore.open(path) as store:`"
            )
        self.sync = store

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, **options: Any) -> _Opening:
        """Open the store (options of :meth:`journal.SessionStore.open`) without
        blocking the loop: ``await`` it, or use it as ``async with``."""
        return _Opening(path, options)

    async def close(self) -> None:
        """Persist projection state and release the journal."""
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
        reuse_purged: bool = False,
    ) -> int:
        """Save a session; return the seq of its ``SessionSaved`` event.

        Only the metadata fields the caller changed are written; a purged id
        is refused unless ``reuse_purged=True`` (see
        :meth:`journal.SessionStore.save_session`)."""
        return await _run(
            self.sync.save_session,
            session_id,
            metadata,
            conversation,
            state,
            actor=actor,
            reuse_purged=reuse_purged,
        )

    async def delete_session(
        self, session_id: UUID | str, *, reason: str = "user", actor: str | None = None
    ) -> None:
        """Delete a session (its history stays in the log until compaction)."""
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
        """Start a new session as the first ``at_message`` messages of another; return its id."""
        return await _run(
            self.sync.fork_session, source_id, new_id, at_message=at_message, title=title,
            actor=actor,
        )

    async def truncate_session(
        self, session_id: UUID | str, message_count: int, *, actor: str | None = None
    ) -> int:
        """Cut a session's conversation to its first ``message_count`` messages; return the seq."""
        return await _run(self.sync.truncate_session, session_id, message_count, actor=actor)

    async def pop_message(
        self, session_id: UUID | str, *, actor: str | None = None
    ) -> MessageSnapshot | None:
        """Remove and return the session's last message (``None`` when it has none)."""
        return await _run(self.sync.pop_message, session_id, actor=actor)

    async def append_messages(
        self,
        session_id: UUID | str,
        messages: Sequence[MessageSnapshot],
        *,
        metadata: SessionMetadata | None = None,
        actor: str | None = None,
    ) -> int:
        """Add ``messages`` after the session's current ones; return the seq."""
        return await _run(
            self.sync.append_messages, session_id, messages, metadata=metadata, actor=actor
        )

    async def tag(self, session_id: UUID | str, *tags: str) -> None:
        """Add tags to a session; at least one tag."""
        await _run(self.sync.tag, session_id, *tags)

    async def untag(self, session_id: UUID | str, *tags: str) -> None:
        """Remove tags from a session; at least one tag."""
        await _run(self.sync.untag, session_id, *tags)

    async def set_favorite(self, session_id: UUID | str, flag: bool) -> None:
        """Mark or unmark a session as favorite (favorites survive cleanup)."""
        await _run(self.sync.set_favorite, session_id, flag)

    async def rename(self, session_id: UUID | str, title: str) -> None:
        """Change a session's title."""
        await _run(self.sync.rename, session_id, title)

    async def touch(self, session_id: UUID | str) -> None:
        """Set a session's last-accessed time to now."""
        await _run(self.sync.touch, session_id)

    async def cleanup_old_sessions(
        self, max_age_days: float | None = None, max_count: int | None = None
    ) -> list[UUID]:
        """Delete (as retention) old sessions, favorites never; return the ids deleted."""
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
        """Save a named restore point of a session; return its metadata."""
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
        """Delete one checkpoint of a session."""
        await _run(self.sync.delete_checkpoint, session_id, checkpoint_id)

    async def compact(
        self, retain: timedelta = timedelta(days=7), *, dry_run: bool = False, seal: bool = False
    ) -> CompactionReport:
        """Fold old sealed segments into the events that rebuild the same state
        (see :meth:`journal.SessionStore.compact`)."""
        return await _run(self.sync.compact, retain, dry_run=dry_run, seal=seal)

    async def purge(self, session_id: UUID | str, *, actor: str | None = None) -> PurgeReport:
        """Delete a session now and remove every byte of it from the journal."""
        return await _run(self.sync.purge, session_id, actor=actor)

    async def scan_secrets(self) -> list[SecretFinding]:
        """Every record that holds a secret (seq, event, session, kinds; never a value)."""
        return await _run(self.sync.scan_secrets)

    async def scrub_secrets(self, *, actor: str | None = None) -> ScrubReport:
        """Rewrite every secret :meth:`scan_secrets` finds out of the journal."""
        return await _run(self.sync.scrub_secrets, actor=actor)

    async def import_legacy(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        dry_run: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> ImportReport:
        """Import a legacy v2 history (see :meth:`journal.SessionStore.import_legacy`)."""
        return await _run(self.sync.import_legacy, path, dry_run=dry_run, progress=progress)

    async def import_codex(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        dry_run: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> CodexImportReport:
        """Import a Codex CLI history (see :meth:`journal.SessionStore.import_codex`)."""
        return await _run(self.sync.import_codex, path, dry_run=dry_run, progress=progress)

    async def export_codex(self, session_id: UUID | str) -> list[bytes]:
        """The session as Codex rollout lines (all of them, read in a worker thread)."""
        return await _run(lambda: list(self.sync.export_codex(session_id)))

    async def resolve_point(self, when: datetime | int) -> int:
        """The seq a point in time (aware datetime or seq) stands for."""
        return await _run(self.sync.resolve_point, when)

    async def at(self, when: datetime | int) -> AsyncPointInTimeView:
        """A read-only view of the store as of ``when`` (aware datetime or seq)."""
        return AsyncPointInTimeView(await _run(self.sync.at, when))
