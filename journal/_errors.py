"""Every error agcx raises, in one place.

All of them derive from :class:`JournalError`, so a caller can catch one base
class. Each message says what happened, where (path, segment, offset, seq) and,
where there is one, what to do about it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

__all__ = [
    "CheckpointNotFound",
    "CorruptJournal",
    "CorruptPayload",
    "HorizonError",
    "InvalidArgument",
    "JournalBusy",
    "JournalClosed",
    "JournalError",
    "JournalFull",
    "JournalPoisoned",
    "ReadOnlyJournal",
    "RecordNotFound",
    "RecordTooLarge",
    "SessionConflict",
    "SessionNotFound",
    "SessionPurged",
    "ThreadDeleted",
    "ThreadShared",
    "UnsafeJournal",
    "UnsupportedVersion",
]


class JournalError(Exception):
    """Base class of every error raised by agcx."""


class InvalidArgument(JournalError, ValueError):
    """A caller passed a value of the wrong type or shape; nothing was written."""


class CorruptJournal(JournalError):
    """Bytes on disk are damaged where damage is not allowed.

    ``path`` is the file, ``offset`` the byte position (or ``None`` when the
    damage is not at one place, e.g. a missing file) and ``reason`` says what
    is wrong.
    """

    def __init__(self, path: str, offset: int | None, reason: str) -> None:
        self.path = path
        self.offset = offset
        self.reason = reason
        where = path if offset is None else f"{path} at offset {offset}"
        super().__init__(
            f"corrupt journal: {where}: {reason} (run `agcx verify` for a full report, "
            "`agcx recover --salvage` to copy what is readable)"
        )


class UnsupportedVersion(CorruptJournal):
    """A file was written by a format version this build does not read."""


class CorruptPayload(JournalError):
    """An event payload decoded to something that is not a valid event."""


class RecordTooLarge(JournalError, ValueError):
    """A record would exceed ``max_record_size``; nothing was written."""


class JournalBusy(JournalError):
    """A lock could not be taken: the commit lock within its timeout, or the
    rewrite lock (``COMPACT``) while another compaction or purge runs."""

    def __init__(
        self, path: str, holder_pid: int | None, timeout: float, message: str | None = None
    ) -> None:
        self.path = path
        self.holder_pid = holder_pid
        self.timeout = timeout
        holder = f"process {holder_pid}" if holder_pid else "another process"
        super().__init__(
            message
            or f"journal busy: {holder} has held the commit lock {path} for more than "
            f"{timeout:g} s; retry, or check whether that process is stuck"
        )


class JournalPoisoned(JournalError):
    """An fsync (or write) failed earlier; this handle refuses further appends.

    The kernel may have dropped the dirty pages of a failed fsync, so retrying
    could report data durable that is not. Reopen the journal: the reopen
    rescans the tail and continues from what is really on disk.
    """


class JournalFull(JournalError):
    """A save failed because the file system is full (``ENOSPC``/``EDQUOT``).

    Nothing acknowledged is lost and nothing of the failed save is visible;
    the handle stays usable: saves succeed again once space is freed.
    """


class UnsafeJournal(JournalError):
    """The journal's directory or one of its files is not safe to use: a
    symlink where a directory or file belongs, a directory owned by another
    user, or one that others may write to. The message says which and why."""


class JournalClosed(JournalError):
    """The journal (or store) was used after ``close()``."""


class ReadOnlyJournal(JournalError):
    """A write was attempted on a journal opened read-only."""


class HorizonError(JournalError):
    """A point in time before the compaction horizon was requested."""

    def __init__(self, message: str, earliest_seq: int, earliest_ts_ns: int) -> None:
        self.earliest_seq = earliest_seq
        self.earliest_ts_ns = earliest_ts_ns
        super().__init__(message)


class RecordNotFound(JournalError, KeyError):
    """No record with this seq exists (never written, cut, or folded by compaction)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "record not found"


class SessionNotFound(JournalError, KeyError):
    """No live session has this id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "session not found"


class SessionPurged(SessionNotFound):
    """The session was purged: its id stays refused (a tombstone), so a running
    agent's next save cannot bring the purged content back.

    ``session_id``, ``purge_seq`` and ``purge_ts_ns`` name the purge. To start
    a new session under the same id, save it with ``reuse_purged=True``.
    """

    def __init__(self, session_id: UUID, purge_seq: int, purge_ts_ns: int) -> None:
        self.session_id = session_id
        self.purge_seq = purge_seq
        self.purge_ts_ns = purge_ts_ns
        when = datetime.fromtimestamp(purge_ts_ns / 1e9, UTC).isoformat(timespec="seconds")
        super().__init__(
            f"session {session_id} was purged (seq {purge_seq}, {when}); a purged id stays "
            "purged: save with reuse_purged=True to start a new session under it"
        )


class CheckpointNotFound(JournalError, KeyError):
    """The session has no live checkpoint with this id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "checkpoint not found"


class ThreadDeleted(JournalError):
    """A graph checkpoint or write continues a thread deleted since (a late
    write, after ``delete_thread`` or ``prune(strategy="delete")``): nothing
    was written, and the thread stays deleted."""

    def __init__(self, message: str, thread_id: str, tombstone_seq: int) -> None:
        super().__init__(message)
        self.thread_id = thread_id
        self.tombstone_seq = tombstone_seq


class SessionConflict(JournalError):
    """The session was deleted and saved again between the caller's look and
    the commit: the command was meant for its earlier life; nothing was written."""

    def __init__(self, message: str, session_id: UUID) -> None:
        self.session_id = session_id
        super().__init__(message)


class ThreadShared(JournalError):
    """A purge of a graph thread whose records other threads still read
    (forks made by ``copy_thread``): nothing was written or removed.

    ``readers`` names those threads. Delete them first, or delete the thread
    (``JournalSaver.delete_thread``) and compact: compaction drops every byte
    of it that no fork needs."""

    def __init__(self, message: str, thread_id: str, readers: tuple[str, ...]) -> None:
        super().__init__(message)
        self.thread_id = thread_id
        self.readers = readers
