"""The journal: segments listed by a manifest, durable group-committed appends,
crash recovery, reads by seq and by time.

Many processes may share one journal directory. Each commit takes an exclusive
``flock`` on ``LOCK`` for its own duration only; under it the writer

1. catches up: reloads the manifest if another process changed it and indexes
   records other processes appended to the active segment;
2. cuts a torn tail a crashed writer left (only a writer under the lock may:
   for a reader an incomplete record may be a commit in progress);
3. assigns seqs and timestamps, rolls to a new segment when the active one is
   full, writes all records of the group with one ``pwrite``;
4. releases, then makes them durable (``fdatasync`` under the default policy).

Threads of one process that append at the same time share one commit: the
first becomes the leader and commits everything queued (group commit). The
``fdatasync`` of step 4 runs after the lock is released and the lead handed
on, so the next groups are written while it runs, and the next sync covers
them all (one sync at a time per process). Groups are acknowledged in order,
each only once it is durable (one failed sync fails every group of the
process not yet acknowledged).

Readers take no lock. Before every read the journal looks at the manifest
(one ``stat``) and at the active segment's tail, so appends by other
processes become visible without reopening.

Both looks are skipped when nothing changed. ``LOCK`` holds, besides the
holder's pid, a change counter that every process maps into memory: a
writer makes it odd before it touches any file under the lock and even (one
more) when it is done. A counter equal to the even value this process last
caught up with means no other process appended, rolled, cut or rewrote
anything since: a read then costs one memory load instead of a ``stat`` and a
``pread``. An odd counter under the lock means the previous holder died
mid-commit, so the full catch-up (and the torn-tail cut) runs. The counter is
only a hint about the page cache: a fresh open always catches up in full, so
after a machine crash (when the counter may be stale) nothing depends on it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import struct
import sys
import threading
import time
import zlib
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Literal, TypeVar
from uuid import UUID

import attrs
import msgpack

from journal._codec import Codec, unpack_bounded
from journal._dictionary import DictionaryCache
from journal._errors import (
    CorruptJournal,
    InvalidArgument,
    JournalBusy,
    JournalClosed,
    JournalError,
    JournalFull,
    JournalPoisoned,
    ReadOnlyJournal,
    RecordNotFound,
    RecordTooLarge,
    UnsafeJournal,
)
from journal._events import EventType
from journal._format import (
    BODY_HEADER,
    CONTINUED,
    FRAME_HEADER,
    HEADER_SIZE,
    NO_SESSION,
    RECORD_OVERHEAD,
    SEGMENT_FILE_RE,
    Manifest,
    ScanStop,
    SegmentHeader,
    SegmentInfo,
    decode_manifest,
    encode_manifest,
    pack_header,
    pack_record,
    segment_name,
)
from journal._fs import OS, PRIVATE_DIRS, FileSystem, check_private_dir
from journal._segment import Record, Segment

__all__ = ["Durability", "Entry", "Journal", "JournalStatistics", "from_ns", "to_ns"]

_T = TypeVar("_T")
_new_lock = threading.Lock

Durability = Literal["fsync", "flush", "none"]
_DURABILITIES = ("fsync", "flush", "none")
_MAX_MANIFEST_FILE = 64 << 20
_QUARANTINE = "quarantine"
_RECENT_RECORDS = 4096
_RECENT_BYTES = 8 << 20
_TAIL_MAGIC = b"AGCT"
_READ_MANY_CHUNK = 16 << 10  # bytes a read_many pread asks for (more for a longer record)
_MAX_TAIL = 16 << 20
_FULL = (errno.ENOSPC, errno.EDQUOT)  # a full file system (or quota): a write, not a sync
_MANIFEST_ATTEMPTS = 5  # reads of a manifest replaced while we opened its segments
# LOCK: the holder's pid as text (16 bytes), then the u64 change counter.
_LOCK_FILE_SIZE = 64
_CHANGE = struct.Struct("<Q")
_CHANGE_OFFSET = 16


@attrs.frozen
class Entry:
    """One event to append: its type, its msgpack-able payload, its session.

    ``compress=False`` stores the payload raw: for payloads whose bulk is a
    blob compressed on its own, where a second pass would only cost time.
    """

    event_type: int
    payload: Any
    session_id: UUID | None = None
    compress: bool = True


@attrs.frozen
class JournalStatistics:
    """A snapshot of the journal's size and extent (immutable)."""

    journal_id: str
    segments: int
    sealed_segments: int
    records: int
    bytes: int
    first_seq: int
    last_seq: int
    first_ts_ns: int
    last_ts_ns: int
    horizon_seq: int
    horizon_ts_ns: int
    durability: str
    tail_cuts: int


def to_ns(when: datetime | int) -> int:
    """A timezone-aware datetime (or nanoseconds since the epoch) as nanoseconds."""
    if isinstance(when, bool):
        raise InvalidArgument("a time must be a timezone-aware datetime or nanoseconds")
    if isinstance(when, int):
        return when
    if isinstance(when, datetime):
        if when.tzinfo is None or when.utcoffset() is None:
            raise InvalidArgument(
                f"naive datetime {when.isoformat()}: give a timezone (e.g. tzinfo=timezone.utc)"
            )
        delta = when - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    raise InvalidArgument(f"a time must be a timezone-aware datetime, got {type(when).__name__}")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_ns(ns: int) -> datetime:
    """The UTC datetime of a record timestamp (nanoseconds; microseconds kept exactly)."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


class _Batch:
    """Entries of one ``append_many`` call waiting for a group commit."""

    __slots__ = (
        "done", "encoded", "error", "fixed", "handed", "prepare", "records", "seqs", "wake",
    )

    def __init__(
        self,
        encoded: list[tuple[int, bytes, int, bytes]],
        prepare: Callable[[], Sequence[Entry] | None] | None,
    ) -> None:
        self.encoded = encoded
        self.prepare = prepare
        self.fixed: list[tuple[int, int]] | None = None  # (seq, ts) kept by copy_records
        self.seqs: list[int] = []
        self.records: list[Record] = []  # as written, for callers that fold them in memory
        self.error: BaseException | None = None
        self.done = False
        self.handed = False  # a leader chose this batch's thread to lead next
        # Held while the batch waits for a leader; released when it is done or
        # when its thread is handed the lead (then ``done`` is still False).
        self.wake: Any = None


# A KeyboardInterrupt (Ctrl-C, delivered to the main thread) that arrived while
# this thread had commit duties for other threads: leading a group, syncing,
# acknowledging in order. Abandoning them would leave the others waiting for
# ever, so it is raised when they are done (journal/_log.py ``_submit``).
_INTERRUPTED = threading.local()


def _defer_interrupt(exc: BaseException | None) -> None:
    if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit, ...
        _INTERRUPTED.exc = exc
    elif exc is not None:
        raise exc


def _raise_deferred() -> None:
    exc = getattr(_INTERRUPTED, "exc", None)
    if exc is not None:
        _INTERRUPTED.exc = None
        raise exc


def _wait(cv: threading.Condition) -> None:
    """``cv.wait()``; an interrupt counts as a wake-up (the caller's loop checks
    again) and is raised later, when the thread's commit duties are done."""
    try:
        cv.wait()
    except BaseException as exc:
        _defer_interrupt(exc)


@attrs.define
class _SyncJob:
    """A written group waiting for its ``fdatasync`` (outside the commit lock)."""

    ticket: int  # groups are acknowledged in ticket order
    seg: Segment
    notes: list[tuple[int, int, int, int]]  # offset, body_len, seq, ts: indexed once durable
    batches: list[_Batch]


class Journal:
    """An append-only log of event records in AGCX segment files.

    Open with :meth:`Journal.open`; use as a context manager or call
    :meth:`close`. Every method is thread-safe.
    """

    def __init__(
        self,
        root: str,
        *,
        durability: Durability,
        segment_size: int,
        max_record_size: int,
        max_payload_size: int,
        compression_level: int,
        readonly: bool,
        lock_timeout: float,
        preallocate: int,
        fs: FileSystem,
    ) -> None:
        self.root = root
        self.durability: Durability = durability
        self.segment_size = segment_size
        self.max_record_size = max_record_size
        self.readonly = readonly
        self.lock_timeout = lock_timeout
        self.preallocate = preallocate
        self._fs = fs
        self._codec = Codec(level=compression_level, max_payload=max_payload_size)
        self._seg_dir = os.path.join(root, "segments")
        self._manifest_path = os.path.join(root, "MANIFEST")
        self._lock_path = os.path.join(root, "LOCK")
        self._lock_fd: int | None = None
        self._lock_map: mmap.mmap | None = None  # LOCK mapped: pid + change counter
        self._seen_change: int | None = None  # the counter when we last caught up in full
        self._foreign_changes = 0  # changes adopted that were not our own appends
        self._manifest: Manifest | None = None
        self._manifest_stamp: tuple[int, int] | None = None
        self._manifest_fd: int | None = None
        self._segs: list[Segment] = []
        self._bases: list[int] = []
        self._mutex = threading.RLock()  # guards the segment list and indexes
        self._cv = threading.Condition(threading.Lock())  # guards the commit queue
        self._queue: list[_Batch] = []
        # Written groups whose sync is in flight: tickets issued under the lock,
        # done in order. ``_tail`` is where the last written group ended
        # (segment, offset, seq, ts, count) while its records are not yet indexed.
        self._sync_cv = threading.Condition(threading.Lock())
        self._tickets_issued = 0  # groups written (their data is in the file)
        self._tickets_durable = 0  # groups a completed fdatasync covered
        self._tickets_done = 0  # groups indexed and acknowledged (or failed)
        self._syncing = False  # one fdatasync at a time, covering all written so far
        self._written_seg: Segment | None = None  # the segment of the last group written
        self._tail: tuple[Segment, int, int, int, int] | None = None
        self._leader_active = False
        # Threads inside ``_submit`` (thread id -> calls), so that ``close`` can
        # tell a commit in flight in another thread, which it waits for, from
        # one its own thread left halfway (see ``close``).
        self._submitters: dict[int, int] = {}
        self._in_commit = False
        self._poisoned: BaseException | None = None
        self._closed = False
        self._tail_cuts = 0
        # This process's latest durable records, so its own projections (and
        # readers in other threads) apply them without reading them back.
        # (An OrderedDict: dropping the oldest of a plain dict rescans its holes.)
        self._recent: OrderedDict[int, Record] = OrderedDict()
        self._recent_bytes = 0
        self.dictionaries = DictionaryCache(
            self.read, self.decode, EventType.DICTIONARY_TRAINED
        )
        """The dictionaries message blobs refer to (journal/_dictionary.py)."""

    # -- opening and closing -------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        durability: Durability = "fsync",
        segment_size: int = 64 << 20,
        max_record_size: int = 64 << 20,
        max_payload_size: int | None = None,
        compression_level: int = 3,
        readonly: bool = False,
        lock_timeout: float = 10.0,
        preallocate: int = 256 << 10,
        fs: FileSystem | None = None,
    ) -> Journal:
        """Open (creating unless ``readonly``) the journal in directory ``path``.

        ``durability`` is what an append waits for before returning: ``fsync``
        (on stable storage), ``flush`` (in the OS: survives a crash of this
        process, not of the machine) or ``none`` (not even segment rolls and
        manifest changes are synced). ``max_record_size`` bounds one record's
        bytes on disk; ``max_payload_size`` (default 4x that) bounds a payload
        after decompression. A writer recovers the tail on open; a read-only
        journal never writes anything. ``preallocate`` bytes of zeros are
        written ahead of the data under ``fsync`` only: there they make each
        ``fdatasync`` cheaper (the file size does not change); without syncs
        they would only double the bytes written.
        """
        if durability not in _DURABILITIES:
            raise InvalidArgument(f"durability must be one of {_DURABILITIES}, got {durability!r}")
        if not isinstance(segment_size, int) or segment_size < 4096:
            raise InvalidArgument(f"segment_size must be an int >= 4096, got {segment_size!r}")
        if not isinstance(max_record_size, int) or not 64 <= max_record_size < 1 << 32:
            raise InvalidArgument(f"max_record_size must be 64 .. 2**32-1, got {max_record_size!r}")
        if max_payload_size is None:
            max_payload_size = 4 * max_record_size
        if lock_timeout <= 0:
            raise InvalidArgument("lock_timeout must be positive")
        if os.path.exists(path) and not os.path.isdir(path):
            # Not an I/O failure to retry: the path names a file.
            raise InvalidArgument(
                f"{os.fspath(path)} is a file, not a directory: a journal is a directory "
                "(give the one the journal is, or is to be, kept in)"
            )
        j = cls(
            os.fspath(path),
            durability=durability,
            segment_size=segment_size,
            max_record_size=max_record_size,
            max_payload_size=max_payload_size,
            compression_level=compression_level,
            readonly=readonly,
            lock_timeout=lock_timeout,
            preallocate=max(0, preallocate) if durability == "fsync" else 0,
            fs=fs or OS,
        )
        try:
            j._open()
        except OSError as exc:
            j._release_fds()
            raise j._io_error("open", exc) from exc
        except BaseException:
            j._release_fds()
            raise
        return j

    def _check_private(self) -> None:
        """Refuse a journal whose directories others control (see :class:`UnsafeJournal`)."""
        for sub, what in (
            ("", "journal directory"),
            *((name, "journal subdirectory") for name in sorted(PRIVATE_DIRS)),
        ):
            why = check_private_dir(os.path.join(self.root, sub) if sub else self.root, what)
            if why is not None:
                raise UnsafeJournal(f"refusing to open journal {self.root}: {why}")

    def _open(self) -> None:
        fs = self._fs
        if self.readonly:
            self._check_private()
            if not fs.is_regular(self._manifest_path):
                raise JournalError(f"{self.root} is not an agcx journal (no MANIFEST)")
            self._map_lock_file(os.O_RDONLY)
            with self._mutex:
                self._catch_up(writer=False)
            return
        missing = []
        d = os.path.abspath(self.root)
        while not os.path.isdir(d):
            missing.append(d)
            d = os.path.dirname(d)
        if not missing:
            self._check_private()  # before creating anything in it
        for d in [*reversed(missing), self._seg_dir]:
            try:
                fs.mkdir(d, 0o700)
                fs.fsync_dir(os.path.dirname(os.path.abspath(d)))
            except FileExistsError:
                pass
        self._check_private()
        self._lock_fd = fs.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        self._lock()
        try:
            self._map_lock_file(os.O_RDWR)
            base = self._begin_change()
            if not fs.is_regular(self._manifest_path):
                self._create()
            with self._mutex:
                if self._catch_up(writer=True) == ScanStop.END:
                    self._cut_stray_bytes()
                self._remove_leftovers()
            self._end_change(base)
        finally:
            self._unlock()

    def _map_lock_file(self, flags: int) -> None:
        """Map ``LOCK``'s change counter (a writer first grows an old 16-byte file).

        Without the map (a file system that cannot map, a read-only journal
        whose ``LOCK`` was never grown) every refresh simply looks in full.
        """
        fd = self._lock_fd
        try:
            if fd is None:
                fd = self._fs.open(self._lock_path, flags)
            try:
                if self._fs.fstat(fd).st_size < _LOCK_FILE_SIZE:
                    if flags == os.O_RDONLY:
                        return
                    self._fs.ftruncate(fd, _LOCK_FILE_SIZE)
                access = mmap.ACCESS_READ if flags == os.O_RDONLY else mmap.ACCESS_WRITE
                self._lock_map = mmap.mmap(fd, _LOCK_FILE_SIZE, access=access)
            finally:
                if fd != self._lock_fd:
                    self._fs.close(fd)
        except (OSError, ValueError):
            self._lock_map = None

    def _change_counter(self) -> int | None:
        m = self._lock_map
        return None if m is None else int(_CHANGE.unpack_from(m, _CHANGE_OFFSET)[0])

    def _begin_change(self) -> int | None:
        """Under the lock, before touching files: make the counter odd; return it."""
        v = self._change_counter()
        if v is None:
            return None
        if not v & 1:
            v += 1
            _CHANGE.pack_into(self._lock_map, _CHANGE_OFFSET, v)  # type: ignore[arg-type]
        return v

    def _end_change(self, begun: int | None) -> None:
        """The change is complete: make the counter even and remember that we saw it."""
        if begun is None:
            return
        v = (begun + 1) & 0xFFFF_FFFF_FFFF_FFFF
        _CHANGE.pack_into(self._lock_map, _CHANGE_OFFSET, v)  # type: ignore[arg-type]
        self._seen_change = v

    @property
    def foreign_changes(self) -> int:
        """How many times this journal adopted a change it did not append itself:
        another process's records, or a new manifest (another process's roll,
        or any compaction or purge). Unchanged means the log grew only by this
        journal's own appends."""
        return self._foreign_changes

    def _create(self) -> None:
        """Start an empty journal: its first segment, then the manifest naming it.

        Only where there is no journal. A MANIFEST that exists but is not a
        regular file, or segment files holding more than the lone header a
        crashed creation leaves, mean a journal whose manifest was lost or
        damaged: starting a new one there would delete its segments (as
        leftovers), so that is refused.
        """
        fs = self._fs
        with contextlib.suppress(FileNotFoundError):
            fs.stat(self._manifest_path)
            raise CorruptJournal(self._manifest_path, None, "MANIFEST is not a regular file")
        for name in sorted(fs.listdir(self._seg_dir)):
            if not SEGMENT_FILE_RE.match(name):
                continue
            st = fs.stat(os.path.join(self._seg_dir, name))
            if not (name == segment_name(1) and st.st_size <= HEADER_SIZE):
                raise CorruptJournal(
                    self._manifest_path,
                    None,
                    f"MANIFEST is missing, yet segments/{name} holds data: refusing to start "
                    "a new journal over it (restore MANIFEST from a backup)",
                )
        jid = os.urandom(16)
        seg = self._new_segment_file(1, jid)
        seg.close()
        self._write_manifest(
            Manifest(jid, 1, (SegmentInfo(base_seq=1),), created_ns=time.time_ns())
        )

    def close(self) -> None:
        """Wait for commits in flight, then release every file.

        A commit left halfway by the closing thread itself (an exception such
        as ``KeyboardInterrupt`` raised in it between two steps of the commit,
        as Ctrl-C does) is not waited for: no other thread would finish it.
        What it wrote is at worst a torn tail, which the next writer cuts.
        """
        me = threading.get_ident()
        with self._cv:
            while self._leader_active and self._others_submitting(me):
                self._cv.wait()
            abandoned = self._leader_active
            self._closed = True
        with self._sync_cv:
            while self._tickets_done != self._tickets_issued and self._others_submitting(me):
                _wait(self._sync_cv)  # (a Ctrl-C here is raised once the files are released)
            abandoned = abandoned or self._tickets_done != self._tickets_issued
        with self._mutex:
            if not self.readonly and self._poisoned is None and self._segs and not abandoned:
                with contextlib.suppress(OSError, JournalError):
                    self._trim_preallocation()
                self._save_tail_hint()
            self._release_fds()
        _raise_deferred()

    def _trim_preallocation(self) -> None:
        """Give back the zeros preallocated past the active segment's data.

        Only if the commit lock is free right now (close never waits for it):
        under it no one is writing, so the data really ends where we scanned.
        """
        fd = self._lock_fd
        if fd is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return
        try:
            base = self._begin_change()
            self._catch_up(writer=True)
            assert self._manifest is not None
            seg = self._segs[-1]
            if not self._manifest.segments[-1].sealed and seg.file_size() > seg.scanned_to:
                self._fs.ftruncate(seg.fd, seg.scanned_to)
                seg.alloc_end = seg.scanned_to
            self._end_change(base)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    # -- the tail hint: open without scanning the whole active segment ---------------------

    def _save_tail_hint(self) -> None:
        """Write ``TAIL``: where the active segment's data ended, and its sparse index.

        Only a hint: it is checked against the segment on open (the record it
        names must be there, whole, with the same seq and time) and ignored
        otherwise, so it is written without fsync and a failure is harmless.
        """
        seg = self._segs[-1]
        if not seg.count or self._manifest is None or self._manifest.segments[-1].sealed:
            return
        hint = {
            "jid": self.journal_id,
            "name": os.path.basename(seg.path),
            "state": seg.tail_state(),
        }
        body: bytes = msgpack.packb(hint, use_bin_type=True)
        data = _TAIL_MAGIC + zlib.crc32(body).to_bytes(4, "little") + body
        with contextlib.suppress(OSError):
            self._fs.write_file_atomic(os.path.join(self.root, "TAIL"), data, sync=False)

    def _adopt_tail_hint(self, seg: Segment, journal_id: bytes) -> None:
        try:
            data = self._fs.read_file(os.path.join(self.root, "TAIL"), _MAX_TAIL)
        except OSError:
            return
        body = data[8:]
        if data[:4] != _TAIL_MAGIC or int.from_bytes(data[4:8], "little") != zlib.crc32(body):
            return
        try:
            hint = unpack_bounded(body)
            if hint["jid"] != journal_id or hint["name"] != os.path.basename(seg.path):
                return
            seg.adopt_tail_state(hint["state"], self.max_record_size)
        except (JournalError, KeyError, TypeError, ValueError, IndexError):
            return

    def _release_fds(self) -> None:
        if self._lock_map is not None:
            with contextlib.suppress(OSError, ValueError, BufferError):
                self._lock_map.close()
            self._lock_map = None
        for s in self._segs:
            s.close()
        self._segs = []
        self._bases = []
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                self._fs.close(self._lock_fd)
            self._lock_fd = None
        if self._manifest_fd is not None:
            with contextlib.suppress(OSError):
                self._fs.close(self._manifest_fd)
            self._manifest_fd = None

    def _io_error(self, what: str, exc: OSError) -> JournalError:
        """The error a caller sees when the operating system fails a file operation.

        Not :class:`CorruptJournal`: the bytes on disk are not known to be
        damaged; the disk (space, permissions, hardware) needs attention.
        """
        return JournalError(
            f"cannot {what} journal {self.root}: {exc}; nothing acknowledged is lost: "
            "fix the cause (disk space, permissions, I/O errors) and try again"
        )

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    # -- the commit lock -----------------------------------------------------------------

    def _lock(self, *, for_group: bool = False) -> None:
        """Take the commit lock (``for_group``: a leader, whose Ctrl-C waits
        until the group it leads is done)."""
        fd = self._lock_fd
        assert fd is not None
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.00005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise self._io_error(f"lock {self._lock_path} of", exc) from exc
            if time.monotonic() >= deadline:
                raise JournalBusy(self._lock_path, self._lock_holder(), self.lock_timeout)
            try:
                time.sleep(delay)
            except BaseException as exc:
                if not for_group:
                    raise
                _defer_interrupt(exc)  # the group waits on this: raise Ctrl-C after it
            delay = min(delay * 2, 0.002)
        # The holder's pid, for the JournalBusy message of whoever waits next
        # (only a hint: failing to write it must not leave the lock held).
        pid = b"%-15d\n" % os.getpid()
        if self._lock_map is not None:
            if self._lock_map[:16] != pid:
                self._lock_map[:16] = pid
        else:
            with contextlib.suppress(OSError):
                self._fs.pwrite(fd, pid, 0)

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _lock_holder(self) -> int | None:
        try:
            assert self._lock_fd is not None
            return int(os.pread(self._lock_fd, 16, 0).strip() or b"0") or None
        except (OSError, ValueError):
            return None

    # -- manifest and segments -----------------------------------------------------------

    def _write_manifest(self, m: Manifest) -> None:
        self._fs.write_file_atomic(
            self._manifest_path, encode_manifest(m), sync=self.durability != "none"
        )

    def _new_segment_file(self, base_seq: int, journal_id: bytes) -> Segment:
        """Create a segment holding only its header; file and directory made durable."""
        path = os.path.join(self._seg_dir, segment_name(base_seq))
        fs = self._fs
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL
        try:
            fd = fs.open(path, flags, 0o600)
        except FileExistsError:
            # Not in the manifest (we hold the lock and it names no such segment):
            # a leftover of a roll that crashed before its manifest switch.
            fs.unlink(path)
            fd = fs.open(path, flags, 0o600)
        try:
            header = pack_header(SegmentHeader(base_seq, time.time_ns(), journal_id))
            fs.pwrite(fd, header, 0)
            if self.durability != "none":
                fs.fdatasync(fd)
        finally:
            fs.close(fd)
        if self.durability != "none":
            fs.fsync_dir(self._seg_dir)
        seg = Segment(fs, path, base_seq, writable=True)
        seg.read_header(journal_id)
        seg.alloc_end = HEADER_SIZE
        return seg

    def _stat_manifest(self) -> tuple[int, int]:
        try:
            st = self._fs.stat(self._manifest_path)
        except FileNotFoundError:
            raise CorruptJournal(self._manifest_path, None, "MANIFEST is missing") from None
        return (st.st_dev, st.st_ino)

    def _hold_manifest(self) -> bytes:
        """Open the current MANIFEST, keep it open, and return its bytes.

        The manifest is only ever replaced by rename, so "same inode as the
        one we hold" means "unchanged". Holding the file open is what makes
        that test sound: an inode number is not reused while a file is open,
        whereas a (inode, mtime, size) stamp can repeat when two processes
        replace the manifest within one clock tick.
        """
        fs = self._fs
        try:
            fd = fs.open(self._manifest_path, os.O_RDONLY)
        except FileNotFoundError:
            raise CorruptJournal(self._manifest_path, None, "MANIFEST is missing") from None
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise  # the disk failed: an I/O error for the caller, not damage
            raise CorruptJournal(self._manifest_path, None, f"cannot open: {exc}") from exc
        try:
            st = fs.fstat(fd)
            if st.st_size > _MAX_MANIFEST_FILE:
                raise CorruptJournal(
                    self._manifest_path, None, f"MANIFEST is {st.st_size} bytes: impossibly large"
                )
            data = fs.pread(fd, st.st_size, 0)
        except BaseException:
            with contextlib.suppress(OSError):
                fs.close(fd)
            raise
        if self._manifest_fd is not None:
            with contextlib.suppress(OSError):
                fs.close(self._manifest_fd)
        self._manifest_fd = fd
        self._manifest_stamp = (st.st_dev, st.st_ino)
        return data

    def _load_manifest(self) -> None:
        # A new manifest may mean compaction or purge replaced records: the
        # in-memory copies of recent ones may no longer be what the log holds.
        self._recent.clear()
        self._recent_bytes = 0
        self._foreign_changes += 1
        for attempt in range(_MANIFEST_ATTEMPTS):
            data = self._hold_manifest()
            m = decode_manifest(data, self._manifest_path)
            old = self._manifest
            if old is not None and m.journal_id != old.journal_id:
                raise CorruptJournal(
                    self._manifest_path,
                    None,
                    "MANIFEST now belongs to another journal (journal id)",
                )
            try:
                self._apply_manifest(m)
                return
            except CorruptJournal:
                # Without the lock, a compaction may have switched to a newer
                # manifest and removed the files this one lists between our
                # reading it and opening them: damage only if it still stands.
                last = attempt == _MANIFEST_ATTEMPTS - 1
                if last or self._stat_manifest() == self._manifest_stamp:
                    raise

    def _apply_manifest(self, m: Manifest) -> None:
        """Adopt manifest ``m``, reusing open segments whose file has not changed."""
        old = {s.base_seq: s for s in self._segs}
        segs: list[Segment] = []
        opened: list[Segment] = []  # closed again if this manifest cannot be adopted
        try:
            self._open_listed(m, old, segs, opened)
        except BaseException:
            for seg in opened:
                seg.close()
            raise
        # Segments no longer listed are not closed here: a scan in another
        # thread may still be reading one. Each closes when its last user lets go.
        self._manifest = m
        self._segs = segs
        self._bases = [s.base_seq for s in segs]

    def _open_listed(
        self, m: Manifest, old: dict[int, Segment], segs: list[Segment], opened: list[Segment]
    ) -> None:
        fs = self._fs
        for i, info in enumerate(m.segments):
            path = os.path.join(self._seg_dir, info.name)
            active = i == len(m.segments) - 1 and not info.sealed
            seg = old.pop(info.base_seq, None)
            if seg is not None:
                try:
                    same = fs.stat(path).st_ino == seg.ino
                except FileNotFoundError:
                    same = False
                if not same:
                    seg = None
            if seg is None:
                seg = Segment(fs, path, info.base_seq, writable=active and not self.readonly)
                opened.append(seg)
                if active:
                    seg.read_header(m.journal_id)
                    self._adopt_tail_hint(seg, m.journal_id)
            if info.sealed:
                size = seg.file_size()
                if size != info.length:
                    raise CorruptJournal(
                        path,
                        min(size, info.length),
                        f"sealed segment is {size} bytes, the manifest says {info.length}",
                    )
            elif active and not self.readonly and seg.alloc_end == 0:
                seg.alloc_end = seg.file_size()
            segs.append(seg)

    def _info(self, i: int) -> SegmentInfo:
        assert self._manifest is not None
        return self._manifest.segments[i]

    def _catch_up(self, *, writer: bool) -> str | None:
        """Adopt other processes' changes; a writer (holding the lock) also cuts a torn tail.

        Returns why the scan of the active segment stopped (``None``: it is
        sealed). Caller holds ``self._mutex``.
        """
        if self._manifest is None or self._stat_manifest() != self._manifest_stamp:
            self._load_manifest()
        assert self._manifest is not None
        if self._manifest.segments[-1].sealed:
            return None
        active = self._segs[-1]
        before = active.scanned_to
        stop = active.scan_forward(None, self.max_record_size)
        if active.scanned_to != before:
            self._foreign_changes += 1
        if stop.kind != ScanStop.END and writer:
            self._cut_tail(active, stop)
        return stop.kind

    def _cut_tail(self, seg: Segment, stop: ScanStop) -> None:
        """Cut the active segment back to its last whole record.

        Only a writer holding the lock gets here, so no commit is in progress:
        what follows the last whole record was left by a writer that died. It
        was never acknowledged, but its bytes are kept in ``quarantine/`` for
        inspection rather than destroyed.
        """
        fs = self._fs
        cut = stop.offset
        size = seg.file_size()
        tail = fs.pread(seg.fd, size - cut, cut) if size > cut else b""
        tail = tail.rstrip(b"\0")
        if tail:
            qdir = os.path.join(self.root, _QUARANTINE)
            with contextlib.suppress(FileExistsError):
                fs.mkdir(qdir, 0o700)
            name = f"{os.path.basename(seg.path)}.{cut}.{time.time_ns()}.tail"
            fs.write_file_atomic(os.path.join(qdir, name), tail, sync=self.durability != "none")
        fs.ftruncate(seg.fd, cut)
        if self.durability != "none":
            fs.fdatasync(seg.fd)
        seg.alloc_end = cut
        self._tail_cuts += 1

    def _cut_stray_bytes(self) -> None:
        """On open: cut bytes left after zeros past the active segment's data.

        The data ends at the first zero frame header (preallocated space), and
        a live writer's unsynced pages are contiguous with it. But a power
        loss can persist a later page of a write and not an earlier one: the
        data then ends at zeros with pieces of a lost write after them. Were
        they left, the next append could land just before a whole record of
        that lost write and bring it back as if committed. Only a writer
        opening (under the lock, after a possible power loss) looks.
        """
        assert self._manifest is not None
        if self._manifest.segments[-1].sealed:
            return
        seg = self._segs[-1]
        size = seg.file_size()
        if size <= seg.scanned_to:
            return
        end = max(min(size, self.segment_size), seg.scanned_to)  # (a read bounded by the file)
        rest = self._fs.pread(seg.fd, end - seg.scanned_to, seg.scanned_to)
        if rest.strip(b"\0") or size > end:
            self._cut_tail(seg, ScanStop(ScanStop.END, seg.scanned_to))

    def _remove_leftovers(self) -> None:
        """Remove segment files the manifest does not list and temp files of crashed writes.

        Such a segment was created by a roll that crashed before its manifest
        switch: nothing in it was ever acknowledged.
        """
        fs = self._fs
        assert self._manifest is not None
        known = {s.name for s in self._manifest.segments}
        removed = False
        with self.rewrite_lock(wait=False) as free:
            if not free:
                return  # a compaction or purge is writing its new segments right now
            for name in fs.listdir(self._seg_dir):
                if (SEGMENT_FILE_RE.match(name) and name not in known) or ".tmp." in name:
                    fs.unlink(os.path.join(self._seg_dir, name))
                    removed = True
        for name in fs.listdir(self.root):
            if name.startswith("MANIFEST.tmp."):
                fs.unlink(os.path.join(self.root, name))
                removed = True
        if removed and self.durability != "none":
            fs.fsync_dir(self._seg_dir)

    @contextlib.contextmanager
    def rewrite_lock(self, *, wait: bool = True) -> Iterator[bool]:
        """Hold ``COMPACT``, the lock that serialises compactions and purges.

        They write new segment files for a long time outside the commit lock;
        holding this one tells every writer not to take those files for
        leftovers of a crash. Yields whether the lock was obtained (with
        ``wait=False`` it may not be).
        """
        path = os.path.join(self.root, "COMPACT")
        if self.readonly:
            # A read-only journal writes nothing, not even a lock file; it
            # never removes or rewrites segments either, so it needs no lock.
            yield True
            return
        fd = self._fs.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._fs.close(fd)

    def _ensure_indexed(self, i: int) -> None:
        """Index sealed segment ``i`` completely, checking it against the manifest."""
        seg = self._segs[i]
        if seg.complete:
            return
        with self._mutex:
            if seg.complete:
                return
            info = self._info(i)
            if not info.sealed:
                return
            if seg.header is None:
                assert self._manifest is not None
                seg.read_header(self._manifest.journal_id)
            stop = seg.scan_forward(info.length, self.max_record_size)
            if stop.kind != ScanStop.END or stop.offset != info.length:
                raise CorruptJournal(seg.path, stop.offset, f"sealed segment damaged: {stop.kind}")
            if seg.count != info.count or (info.count and seg.last_seq != info.last_seq):
                raise CorruptJournal(
                    seg.path,
                    None,
                    f"sealed segment holds {seg.count} records up to seq {seg.last_seq}; "
                    f"the manifest says {info.count} up to seq {info.last_seq}",
                )
            seg.complete = True

    # -- appending -----------------------------------------------------------------------

    def append(self, event_type: int, payload: Any, *, session_id: UUID | None = None) -> int:
        """Append one event; return its seq once it is durable under the policy."""
        return self.append_many([Entry(event_type, payload, session_id)])[0]

    def append_many(
        self,
        entries: Iterable[Entry],
        *,
        prepare: Callable[[], Sequence[Entry] | None] | None = None,
    ) -> list[int]:
        """Append events atomically in order; return their seqs once durable.

        ``prepare``, when given, is called under the commit lock after this
        process has caught up with every other writer; if it returns entries,
        they are written instead of ``entries`` (``None`` keeps them). It lets
        a caller decide what to write from what the log really holds (a delta
        save is only written on top of the base the log has). It may raise to
        abandon the append.
        """
        return [r.seq for r in self.commit(entries, prepare=prepare)]

    def commit(
        self,
        entries: Iterable[Entry],
        *,
        prepare: Callable[[], Sequence[Entry] | None] | None = None,
    ) -> list[Record]:
        """:meth:`append_many`, returning the records as written (so a caller
        can apply them to its projections without reading them back)."""
        encoded = [self._encode(e) for e in entries]
        batch = _Batch(encoded, prepare)
        self._submit(batch)
        return batch.records

    def copy_records(self, records: Iterable[Record]) -> list[int]:
        """Append records from another journal as they are: same seq, time, type,
        session and stored payload (used by recovery, salvage and compaction).

        Seqs must increase past :attr:`last_seq` and times must not decrease;
        the check happens under the commit lock, and a violation appends
        nothing.
        """
        recs = list(records)
        encoded = []
        for r in recs:
            if RECORD_OVERHEAD - 8 + len(r.payload) > self.max_record_size:
                raise RecordTooLarge(f"seq {r.seq}: record exceeds max_record_size")
            encoded.append((r.event_type, r.session, r.codec, bytes(r.payload)))
        batch = _Batch(encoded, None)
        batch.fixed = [(r.seq, r.ts_ns) for r in recs]

        def check() -> None:
            with self._mutex:
                _, prev_seq, prev_ts, _ = self._write_tail(self._segs[-1])
            for seq, ts in batch.fixed or ():
                if seq <= prev_seq or ts < prev_ts:
                    raise InvalidArgument(
                        f"copied record seq {seq} does not follow seq {prev_seq} "
                        "(seqs must increase and times must not decrease)"
                    )
                prev_seq, prev_ts = seq, ts

        batch.prepare = lambda: check()  # runs under the lock, after catching up
        return self._submit(batch)

    def under_commit_lock(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` holding the commit lock, after catching up with every process.

        For the brief switches of compaction and purge; ``fn`` may read the
        journal and call :meth:`_roll` / :meth:`_switch_manifest`.
        """
        result: list[_T] = []

        def run() -> None:
            result.append(fn())

        self._submit(_Batch([], run))
        return result[0]

    def seal_active(self) -> None:
        """Seal the active segment (if it holds records) and start a new one."""

        def seal() -> None:
            if self._segs[-1].count:
                self._roll()

        self.under_commit_lock(seal)

    def _switch_manifest(self, m: Manifest) -> None:
        """Write ``m`` (already holding the commit lock) and adopt it."""
        self._write_manifest(m)
        with self._mutex:
            self._load_manifest()

    def _others_submitting(self, me: int) -> bool:
        return any(n for t, n in list(self._submitters.items()) if t != me)

    def _submit(self, batch: _Batch) -> list[int]:
        me = threading.get_ident()
        with self._cv:
            self._submitters[me] = self._submitters.get(me, 0) + 1
        try:
            return self._submit_counted(batch)
        finally:
            with self._cv:
                self._submitters[me] -= 1
                if not self._submitters[me]:
                    del self._submitters[me]
                self._cv.notify_all()
            with self._sync_cv:
                self._sync_cv.notify_all()  # a close() may wait on this thread's work

    def _submit_counted(self, batch: _Batch) -> list[int]:
        # Group commit: the first thread in leads and commits everything queued
        # meanwhile; the others sleep on their batch's own lock. When the
        # leader is done it wakes each batch of its group and hands the lead to
        # the first batch queued during its commit: one wake-up per batch, no
        # herd of threads re-checking a shared condition.
        self._check_writable()
        with self._cv:
            self._queue.append(batch)
            lead = not self._leader_active
            if lead:
                self._leader_active = True
            else:
                batch.wake = wake = _new_lock()
                wake.acquire()
        if not lead:
            try:
                wake.acquire()
            except BaseException:
                # Ctrl-C (KeyboardInterrupt) while waiting: withdraw the batch
                # if no leader took it yet, handing the lead on if it was ours.
                if self._withdraw(batch):
                    raise
                # A leader is committing it: see it through, then raise.
                _defer_interrupt(sys.exc_info()[1])
                while not batch.done and not batch.handed:
                    try:
                        wake.acquire()
                        break
                    except BaseException as again:
                        _defer_interrupt(again)
        try:
            self._lead_or_wait(batch)
        finally:
            _raise_deferred()
        if batch.error is not None:
            raise batch.error
        return batch.seqs

    def _withdraw(self, batch: _Batch) -> bool:
        """Take ``batch`` out of the queue if no leader took it; say whether it was.

        If its thread had just been handed the lead, the lead goes to the next
        queued batch (or nobody leads until the next append).
        """
        with self._cv:
            if batch not in self._queue:
                return False
            self._queue.remove(batch)
            if not batch.handed:
                return True
            successor = self._queue[0] if self._queue else None
            if successor is None:
                self._leader_active = False
                self._cv.notify_all()
            else:
                successor.handed = True
        if successor is not None:
            successor.wake.release()
        return True

    def _lead_or_wait(self, batch: _Batch) -> None:
        """Commit the queue as leader (unless a leader already did ``batch``)."""
        if not batch.done:
            with self._cv:
                group, self._queue = self._queue, []
            job = None
            try:
                job = self._commit(group)
            finally:
                # Hand the lead on before syncing: the next group is written
                # while this one's fdatasync runs.
                with self._cv:
                    successor = self._queue[0] if self._queue else None
                    if successor is None:
                        self._leader_active = False
                        self._cv.notify_all()  # close() may be waiting for the last commit
                    else:
                        successor.handed = True
                if successor is not None:
                    successor.wake.release()
                try:
                    if job is not None:
                        self._complete(job)
                finally:
                    for b in group:
                        b.done = True
                        if b is not batch:
                            b.wake.release()

    def _remember_recent(self, records: list[Record]) -> None:
        with self._mutex:
            recent = self._recent
            for r in records:
                recent[r.seq] = r
                self._recent_bytes += len(r.payload)
            while recent and (len(recent) > _RECENT_RECORDS or self._recent_bytes > _RECENT_BYTES):
                self._recent_bytes -= len(recent.popitem(last=False)[1].payload)

    def recent_records(self, from_seq: int, until_seq: int) -> list[Record] | None:
        """Records ``from_seq..until_seq`` if this process wrote them all lately
        (kept in memory), else ``None``: then read them with :meth:`scan`."""
        with self._mutex:
            if until_seq < from_seq:
                return []
            if until_seq - from_seq >= len(self._recent):
                return None
            out = []
            for seq in range(from_seq, until_seq + 1):
                r = self._recent.get(seq)
                if r is None:
                    return None
                out.append(r)
            return out

    def _check_writable(self) -> None:
        if self._closed:
            raise JournalClosed(f"journal {self.root} is closed")
        if self.readonly:
            raise ReadOnlyJournal(f"journal {self.root} was opened read-only")
        if self._poisoned is not None:
            raise JournalPoisoned(
                f"an earlier write or fsync failed ({self._poisoned}); reopen the journal "
                f"{self.root} to continue from what is on disk"
            ) from self._poisoned

    def _encode(self, e: Entry) -> tuple[int, bytes, int, bytes]:
        if not isinstance(e, Entry):
            raise InvalidArgument(f"append takes Entry objects, got {type(e).__name__}")
        if not isinstance(e.event_type, int) or not 0 <= e.event_type <= 0xFFFF:
            raise InvalidArgument(f"event type must be 0..65535, got {e.event_type!r}")
        if e.session_id is None:
            session = NO_SESSION
        elif isinstance(e.session_id, UUID):
            session = e.session_id.bytes
        else:
            raise InvalidArgument(f"session_id must be a UUID, got {type(e.session_id).__name__}")
        codec, data = self._codec.encode(e.payload, compress=e.compress)
        size = RECORD_OVERHEAD - 8 + len(data)
        if size > self.max_record_size:
            raise RecordTooLarge(
                f"record of {size} bytes exceeds max_record_size {self.max_record_size}; "
                "nothing was written"
            )
        return (e.event_type, session, codec, data)

    def _commit(self, group: list[_Batch]) -> _SyncJob | None:
        """Leader: write every batch in ``group`` under one lock hold; return the
        sync still to do (policy ``fsync``), which :meth:`_complete` does."""
        try:
            self._check_writable()
            self._lock(for_group=True)
        except BaseException as exc:
            for b in group:
                b.error = exc
            return None
        job: _SyncJob | None = None
        begun: int | None = None
        try:
            with self._mutex:
                self._in_commit = True
                seen = self._change_counter()
                begun = self._begin_change()
                # Unchanged since our last look: no other process wrote, and no
                # holder died mid-commit (that would have left the counter odd).
                if seen is None or seen & 1 or seen != self._seen_change:
                    self._catch_up(writer=True)
            for b in group:
                if b.prepare is not None:
                    try:
                        replacement = b.prepare()
                        if replacement is not None:
                            b.encoded = [self._encode(e) for e in replacement]
                    except BaseException as exc:
                        b.error = exc
            live = [b for b in group if b.error is None]
            written: list[_Batch] = []  # batches already durable and indexed (before a roll)
            try:
                unsynced = self._write_group(live, written)
            except JournalFull as exc:
                # Nothing of the failed batches is in the file any more and the
                # handle stays usable: the next save, once space is freed, writes
                # where this one would have. (The counter stays odd: the next
                # holder checks the tail in full.)
                for b in live:
                    if b not in written:
                        b.error = exc
                self._remember_recent([r for b in written for r in b.records])
                return None
            if unsynced is not None:
                with self._sync_cv:
                    self._tickets_issued += 1
                    self._written_seg = unsynced[0]
                    job = _SyncJob(self._tickets_issued, unsynced[0], unsynced[1], live)
            else:
                self._remember_recent([r for b in live for r in b.records])
            self._end_change(begun)
        except OSError as exc:
            # The counter stays odd: the next holder checks the tail in full.
            self._poisoned = exc
            err = JournalPoisoned(f"write to journal {self.root} failed: {exc}; reopen it")
            err.__cause__ = exc
            for b in group:
                if b.error is None:
                    b.error = err
        except BaseException as exc:
            for b in group:
                if b.error is None:
                    b.error = exc
        finally:
            with self._mutex:
                self._in_commit = False
            with contextlib.suppress(OSError):
                self._unlock()
        return job

    def _complete(self, job: _SyncJob) -> None:
        """Make a written group durable, then (in ticket order) index and acknowledge it.

        One ``fdatasync`` runs at a time and covers every group written before
        it started: groups written while it runs share the next one (group
        commit on the sync). All groups not yet durable are in one segment: a
        roll waits for them first. A group is acknowledged only once every
        group before it is: a failed sync poisons the journal, and every group
        not yet acknowledged fails with it.
        """
        while True:
            with self._sync_cv:
                while (
                    self._syncing
                    and self._poisoned is None
                    and self._tickets_durable < job.ticket
                ):
                    _wait(self._sync_cv)
                if self._poisoned is not None or self._tickets_durable >= job.ticket:
                    break
                self._syncing = True
                target, seg = self._tickets_issued, self._written_seg
            assert seg is not None
            error: OSError | None = None
            interrupted = False
            try:
                self._fs.fdatasync(seg.fd)
            except OSError as exc:
                error = exc
            except BaseException as exc:
                # Ctrl-C around the sync: it may not have run. Sync again, and
                # raise once this thread's commit duties are done.
                _defer_interrupt(exc)
                interrupted = True
            with self._sync_cv:
                self._syncing = False
                if interrupted:
                    pass
                elif error is None:
                    self._tickets_durable = max(self._tickets_durable, target)
                elif self._poisoned is None:
                    self._poisoned = error
                self._sync_cv.notify_all()
        with self._sync_cv:
            while self._tickets_done != job.ticket - 1:
                _wait(self._sync_cv)
            try:
                if self._tickets_durable < job.ticket:
                    assert self._poisoned is not None
                    err = JournalPoisoned(
                        f"write to journal {self.root} failed: {self._poisoned}; reopen it"
                    )
                    err.__cause__ = self._poisoned
                    for b in job.batches:
                        if b.error is None:
                            b.error = err
                    return
                seg = job.seg
                with self._mutex:
                    for offset, body_len, seq, ts in job.notes:
                        # A catch-up after another process's commit may have
                        # indexed them already (they were whole in the file).
                        if offset >= seg.scanned_to:
                            seg.note(offset, body_len, seq, ts)
                    t = self._tail
                    if t is not None and t[0] is seg and t[1] <= seg.scanned_to:
                        self._tail = None
                self._remember_recent([r for b in job.batches for r in b.records])
            finally:
                self._tickets_done = job.ticket
                self._sync_cv.notify_all()

    def _drain_syncs(self) -> None:
        """Wait until every written group is synced and indexed (or failed)."""
        with self._sync_cv:
            while self._tickets_done != self._tickets_issued:
                _wait(self._sync_cv)

    def _write_tail(self, active: Segment) -> tuple[int, int, int, int]:
        """Where the next record goes in ``active``: (offset, last seq, last ts,
        records), counting written groups whose sync is in flight. Holds ``_mutex``."""
        t = self._tail
        if t is not None and t[0] is active and t[1] > active.scanned_to:
            return t[1], t[2], t[3], t[4]
        ts = active.last_ts if active.count else self._last_ts_sealed()
        return active.scanned_to, active.last_seq, ts, active.count

    def _write_group(
        self, group: list[_Batch], written: list[_Batch]
    ) -> tuple[Segment, list[tuple[int, int, int, int]]] | None:
        """Write the group's records; return the last piece's segment and index
        notes if it still needs its sync (policy ``fsync``), else ``None``.

        Batches made durable and indexed before a roll are added to ``written``
        (they stand even if a later piece fails)."""
        assert self._manifest is not None
        if self._manifest.segments[-1].sealed:
            self._roll()
        active = self._segs[-1]
        with self._mutex:
            pos, seq, last_ts, count = self._write_tail(active)
        start = pos
        pending: list[bytes] = []
        notes: list[tuple[int, int, int, int]] = []  # offset, body_len, seq, ts
        prev_record = (0, 0, 0, 0, NO_SESSION, b"")  # the last record packed
        finished: list[_Batch] = []  # whole in ``pending``
        for b in group:
            fixed = b.fixed
            # A batch goes into one segment, its records chained by CONTINUED, so
            # a crash keeps all of it or none: roll first if it does not fit. Only
            # a batch larger than a segment is split, each piece atomic on its own.
            last = len(b.encoded) - 1
            size = sum(RECORD_OVERHEAD + len(e[3]) for e in b.encoded)
            if pos + size > self.segment_size and (count or pending):
                self._write_now(active, start, pending, notes)
                written.extend(finished)
                finished = []
                pending, notes = [], []
                active = self._roll()
                pos = start = active.scanned_to
                count = 0
            for k, (etype, session, codec, data) in enumerate(b.encoded):
                frame_len = RECORD_OVERHEAD + len(data)
                if pos + frame_len > self.segment_size and (count or pending):
                    if k:  # close the piece of this oversized batch written so far
                        pending[-1] = pack_record(*prev_record)
                    self._write_now(active, start, pending, notes)
                    written.extend(finished)
                    finished = []
                    pending, notes = [], []
                    active = self._roll()
                    pos = start = active.scanned_to
                    count = 0
                if fixed is None:
                    seq += 1
                    now = time.time_ns()
                    last_ts = now if now > last_ts else last_ts
                else:
                    seq, last_ts = fixed[k]
                prev_record = (seq, last_ts, etype, codec, session, data)
                pending.append(pack_record(*prev_record, CONTINUED if k < last else 0))
                notes.append((pos, frame_len - 8, seq, last_ts))
                b.records.append(
                    Record(seq, last_ts, etype, session, codec, data, active.base_seq, pos)
                )
                pos += frame_len
                count += 1
                b.seqs.append(seq)
            finished.append(b)
        if not pending:
            return None
        self._write(active, start, pending)
        if self.durability != "fsync":
            self._index(active, notes)
            return None
        with self._mutex:
            self._tail = (active, pos, seq, last_ts, count)
        return active, notes

    def _write_now(
        self,
        seg: Segment,
        start: int,
        pending: list[bytes],
        notes: list[tuple[int, int, int, int]],
    ) -> None:
        """Write, sync (per policy) and index a piece of a group before a roll.

        The roll seals the segment at its indexed end, so the groups whose
        sync is in flight must be indexed first, and this piece too.
        """
        if not pending:
            return
        self._write(seg, start, pending)
        self._drain_syncs()
        if self.durability == "fsync":
            self._fs.fdatasync(seg.fd)
        self._index(seg, notes)

    def _index(self, seg: Segment, notes: list[tuple[int, int, int, int]]) -> None:
        with self._mutex:
            for offset, body_len, seq, ts in notes:
                seg.note(offset, body_len, seq, ts)

    def _write(self, seg: Segment, start: int, pending: list[bytes]) -> None:
        """Write records to ``seg`` at ``start`` with one call (no sync)."""
        data = b"".join(pending)
        end = start + len(data)
        if self.preallocate and end > seg.alloc_end:
            # Extend with zeros past the data: later appends overwrite them
            # without changing the file size, so their fdatasync is cheaper.
            new_end = max(end, min(seg.alloc_end + self.preallocate, self.segment_size))
            data += bytes(new_end - end)
            seg.alloc_end = new_end
        view = memoryview(data)
        written = 0
        try:
            while written < len(view):
                written += self._fs.pwrite(seg.fd, view[written:], start + written)
        except OSError as exc:
            if exc.errno not in _FULL:
                raise
            # The file system is full. What a short write left past ``start``
            # must not stay: whole records of it would be read (by another
            # process, or by this one's next catch-up) as if they had been
            # committed. Cutting a file needs no space.
            self._fs.ftruncate(seg.fd, start)
            seg.alloc_end = start
            raise self._full(exc) from exc
        seg.alloc_end = max(seg.alloc_end, end)

    def _full(self, exc: OSError) -> JournalFull:
        return JournalFull(
            f"cannot save to journal {self.root}: the file system is full ({exc.strerror}); "
            "nothing of this save was stored and nothing acknowledged is lost: free space "
            "and save again (no reopen needed)"
        )

    def _last_ts_sealed(self) -> int:
        assert self._manifest is not None
        return max((s.last_ts for s in self._manifest.segments if s.sealed), default=0)

    def _roll(self) -> Segment:
        """Seal the active segment and start a new one, entered in the manifest first."""
        # The seal records the segment's indexed length and counts: groups
        # whose sync is in flight must be indexed first.
        self._drain_syncs()
        assert self._manifest is not None
        m = self._manifest
        infos = list(m.segments)
        old = self._segs[-1]
        if not infos[-1].sealed:
            # Drop the preallocated zeros: a sealed segment is exactly its data.
            self._fs.ftruncate(old.fd, old.scanned_to)
            if self.durability != "none":
                self._fs.fdatasync(old.fd)
            infos[-1] = SegmentInfo(
                base_seq=old.base_seq,
                sealed=True,
                first_seq=old.first_seq,
                last_seq=old.last_seq,
                count=old.count,
                first_ts=old.first_ts,
                last_ts=old.last_ts,
                length=old.scanned_to,
            )
        last_seq = max(old.last_seq, infos[-1].last_seq)
        # A full file system fails the roll before the manifest names the new
        # segment: the old one stays active (its file cut to its data, which
        # is what the manifest will say when a later roll seals it), and the
        # new file is a leftover the next roll replaces.
        try:
            new = self._new_segment_file(last_seq + 1, m.journal_id)
        except OSError as exc:
            if exc.errno in _FULL:
                raise self._full(exc) from exc
            raise
        new_m = attrs.evolve(
            m,
            generation=m.generation + 1,
            segments=(*infos, SegmentInfo(base_seq=new.base_seq)),
        )
        try:
            self._write_manifest(new_m)
        except OSError as exc:
            new.close()
            if exc.errno in _FULL:
                raise self._full(exc) from exc
            raise
        except BaseException:
            new.close()
            raise
        with self._mutex:
            old.complete = True
            self._manifest = new_m
            self._hold_manifest()
            self._segs = [*self._segs, new]
            self._bases = [*self._bases, new.base_seq]
            new.last_ts = 0
        return new

    # -- reading -------------------------------------------------------------------------

    def refresh(self) -> int:
        """Pick up what other processes appended; return the last seq."""
        if self._closed:
            raise JournalClosed(f"journal {self.root} is closed")
        with self._mutex:
            # While this process commits it holds the lock: nobody else can
            # append, and its own records are indexed when the commit ends.
            if not self._in_commit:
                seen = self._change_counter()
                if seen is None or seen & 1 or seen != self._seen_change:
                    try:
                        self._catch_up(writer=False)
                    except OSError as exc:
                        raise self._io_error("read", exc) from exc
                    if seen is not None and not seen & 1:
                        self._seen_change = seen
            return self._segs[-1].last_seq if self._segs else 0

    @property
    def last_seq(self) -> int:
        """Seq of the last whole record (0 for an empty journal)."""
        return self.refresh()

    @property
    def journal_id(self) -> bytes:
        assert self._manifest is not None
        return self._manifest.journal_id

    @property
    def active_base(self) -> int:
        """The base seq of the active segment: records at or after it are in it.
        Exact under the commit lock (in a batch's ``prepare``), a hint elsewhere."""
        return self._segs[-1].base_seq

    @property
    def manifest(self) -> Manifest:
        """The manifest as last read (after a :meth:`refresh`)."""
        assert self._manifest is not None
        return self._manifest

    def decode(self, record: Record) -> Any:
        """The payload of ``record``, decoded within the journal's bounds."""
        try:
            return self._codec.decode(record.codec, record.payload)
        except JournalError as exc:
            path = self.segment_path(record.segment)
            raise CorruptJournal(path, record.offset, f"seq {record.seq}: {exc}") from exc

    def segment_path(self, base_seq: int) -> str:
        """The file of the segment whose base seq is ``base_seq`` (for messages)."""
        m = self._manifest
        for s in m.segments if m is not None else ():
            if s.base_seq == base_seq:
                return os.path.join(self._seg_dir, s.name)
        return os.path.join(self._seg_dir, segment_name(base_seq))

    def read(self, seq: int) -> Record:
        """The record with this seq; :class:`RecordNotFound` if there is none."""
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise InvalidArgument(f"seq must be an int, got {type(seq).__name__}")
        try:
            return self._read(seq)
        except OSError as exc:
            raise self._io_error("read", exc) from exc

    def _read(self, seq: int) -> Record:
        last = self.refresh()
        if not 1 <= seq <= last:
            raise RecordNotFound(f"no record with seq {seq} (last seq is {last})")
        segs, infos = self._snapshot()
        i = bisect_right([s.base_seq for s in segs], seq) - 1
        if i < 0:
            raise RecordNotFound(f"no record with seq {seq} (folded by compaction)")
        seg = segs[i]
        if infos[i].sealed:
            self._ensure_indexed(i)
        stop: list[ScanStop] = []
        limit = infos[i].length if infos[i].sealed else None
        for rec in seg.records(seg.offset_for_seq(seq), seq, self.max_record_size, limit, stop):
            if rec.seq == seq:
                return rec
        raise RecordNotFound(f"no record with seq {seq}")

    def read_many(self, seqs: Iterable[int]) -> list[Record]:
        """The records with these seqs, in the order given (repeats allowed).

        One :meth:`refresh` for all of them; each segment's records are read in
        file order, and records that lie close together come from one ``pread``.
        :class:`RecordNotFound` if any seq has no record (as :meth:`read`);
        damage where the index says a record is raises :class:`CorruptJournal`
        naming the segment and the offset.
        """
        want = list(seqs)
        for seq in want:
            if not isinstance(seq, int) or isinstance(seq, bool):
                raise InvalidArgument(f"seq must be an int, got {type(seq).__name__}")
        try:
            found = self._read_many(sorted(set(want)))
        except OSError as exc:
            raise self._io_error("read", exc) from exc
        return [found[s] for s in want]

    def _read_many(self, seqs: list[int]) -> dict[int, Record]:
        found: dict[int, Record] = {}
        if not seqs:
            return found
        last = self.refresh()
        for seq in (seqs[0], seqs[-1]):
            if not 1 <= seq <= last:
                raise RecordNotFound(f"no record with seq {seq} (last seq is {last})")
        segs, infos = self._snapshot()
        bases = [s.base_seq for s in segs]
        k = 0
        while k < len(seqs):
            i = bisect_right(bases, seqs[k]) - 1
            if i < 0:
                raise RecordNotFound(f"no record with seq {seqs[k]} (folded by compaction)")
            end = bisect_right(seqs, bases[i + 1] - 1, k) if i + 1 < len(segs) else len(seqs)
            self._read_in_segment(i, segs[i], infos[i], seqs[k:end], found)
            k = end
        return found

    def _read_in_segment(
        self, i: int, seg: Segment, info: SegmentInfo, seqs: list[int], found: dict[int, Record]
    ) -> None:
        """Read ``seqs`` (ascending, all within ``seg``'s indexed data) into ``found``.

        From the sparse index entry before each seq, frames are stepped over by
        their lengths (the data up to ``limit`` was checked whole when it was
        indexed); the record read is checked again: length, seq, CRC.
        """
        if info.sealed:
            self._ensure_indexed(i)
            limit = info.length
        else:
            limit = seg.scanned_to  # whole, indexed records up to here (the refresh above)
        with seg.pinned() as fd:
            self._read_pinned(fd, seg, seqs, limit, found)

    def _read_pinned(
        self, fd: int, seg: Segment, seqs: list[int], limit: int, found: dict[int, Record]
    ) -> None:
        path, pread = seg.path, self._fs.pread
        max_len = self.max_record_size
        unpack_frame, unpack_body = FRAME_HEADER.unpack_from, BODY_HEADER.unpack_from
        buf = b""
        buf_off = 0  # file offset of buf[0]
        pos, prev_seq = -1, 0  # the next frame to look at, and the seq of the one before it
        for seq in seqs:
            off, pseq, _ = seg.offset_for_seq(seq)
            if pos < off:
                # The last walk ended before this seq's index entry: start there.
                pos, prev_seq = off, pseq
            while True:
                if pos >= limit:
                    raise RecordNotFound(f"no record with seq {seq}")
                rel = pos - buf_off
                if rel < 0 or pos + RECORD_OVERHEAD > buf_off + len(buf):
                    buf, buf_off, rel = pread(fd, min(_READ_MANY_CHUNK, limit - pos), pos), pos, 0
                    if len(buf) < RECORD_OVERHEAD:
                        raise CorruptJournal(path, pos, f"data ends where seq {seq} should be")
                body_len, crc = unpack_frame(buf, rel)
                if not RECORD_OVERHEAD - 8 <= body_len <= max_len or pos + 8 + body_len > limit:
                    raise CorruptJournal(path, pos, f"{ScanStop.BAD_LENGTH} before seq {seq}")
                (fseq, ts, etype, codec, _, session) = unpack_body(buf, rel + 8)
                if fseq <= prev_seq:
                    raise CorruptJournal(path, pos, f"{ScanStop.BAD_SEQ} before seq {seq}")
                if fseq < seq:
                    pos, prev_seq = pos + 8 + body_len, fseq
                    continue
                if fseq > seq:
                    raise RecordNotFound(f"no record with seq {seq}")
                if rel + 8 + body_len > len(buf):
                    buf, buf_off, rel = pread(fd, 8 + body_len, pos), pos, 0
                    if len(buf) < 8 + body_len:
                        raise CorruptJournal(path, pos, f"data ends inside seq {seq}")
                body = memoryview(buf)[rel + 8 : rel + 8 + body_len]
                if zlib.crc32(body) != crc:
                    raise CorruptJournal(path, pos, f"{ScanStop.BAD_CRC} (seq {seq})")
                payload = bytes(body[RECORD_OVERHEAD - 8 :])
                found[seq] = Record(seq, ts, etype, session, codec, payload, seg.base_seq, pos)
                pos, prev_seq = pos + 8 + body_len, seq
                break

    def _snapshot(self) -> tuple[list[Segment], tuple[SegmentInfo, ...]]:
        with self._mutex:
            assert self._manifest is not None
            return list(self._segs), self._manifest.segments

    def scan(
        self,
        *,
        from_seq: int | None = None,
        until_seq: int | None = None,
        since: datetime | int | None = None,
        until: datetime | int | None = None,
    ) -> Iterator[Record]:
        """Yield records in seq order, bounds inclusive.

        ``since``/``until`` are timezone-aware datetimes or nanoseconds. The
        records visible are those present when the scan starts; header fields
        are read without decompressing payloads.
        """
        try:
            yield from self._scan(from_seq, until_seq, since, until)
        except OSError as exc:
            raise self._io_error("read", exc) from exc

    def _scan(
        self,
        from_seq: int | None,
        until_seq: int | None,
        since: datetime | int | None,
        until: datetime | int | None,
    ) -> Iterator[Record]:
        last = self.refresh()
        if until_seq is not None:
            last = min(last, until_seq)
        since_ns = None if since is None else to_ns(since)
        until_ns = None if until is None else to_ns(until)
        segs, infos = self._snapshot()
        start_i = 0
        if from_seq is not None:
            start_i = max(0, bisect_right([s.base_seq for s in segs], from_seq) - 1)
        if since_ns is not None:
            while (
                start_i < len(segs) - 1
                and infos[start_i].sealed
                and (infos[start_i].last_ts < since_ns or infos[start_i].count == 0)
            ):
                start_i += 1
        for i in range(start_i, len(segs)):
            seg, info = segs[i], infos[i]
            if seg.base_seq > last:
                return
            if info.sealed:
                self._ensure_indexed(i)
                if info.count == 0:
                    continue
            if i == start_i and from_seq is not None and from_seq > seg.base_seq:
                start = seg.offset_for_seq(from_seq)
            elif i == start_i and since_ns is not None:
                start = seg.offset_for_ts(since_ns)
            else:
                start = (HEADER_SIZE, seg.base_seq - 1, 0)
            stop: list[ScanStop] = []
            limit = info.length if info.sealed else None
            for rec in seg.records(start, last, self.max_record_size, limit, stop):
                if from_seq is not None and rec.seq < from_seq:
                    continue
                if since_ns is not None and rec.ts_ns < since_ns:
                    continue
                if until_ns is not None and rec.ts_ns > until_ns:
                    return
                yield rec
            if info.sealed and stop and stop[0].kind != ScanStop.END:
                raise CorruptJournal(
                    seg.path, stop[0].offset, f"sealed segment damaged: {stop[0].kind}"
                )

    def scan_reverse(
        self, *, from_seq: int | None = None, until_seq: int | None = None
    ) -> Iterator[Record]:
        """Yield records newest first, from ``until_seq`` (default: the last)
        down to ``from_seq`` (default: the first), bounds inclusive.

        Reads backwards from the newest segment: each segment's sparse index
        (one entry per 4 KiB) splits it into windows read forward one at a
        time, newest window first, so the last N records cost a few KiB read,
        whatever the journal's size. A sealed segment is indexed whole the
        first time it is reached (as any read of it does).
        """
        try:
            yield from self._scan_reverse(from_seq, until_seq)
        except OSError as exc:
            raise self._io_error("read", exc) from exc

    def _scan_reverse(self, from_seq: int | None, until_seq: int | None) -> Iterator[Record]:
        last = self.refresh()
        if until_seq is not None:
            last = min(last, until_seq)
        first = 1 if from_seq is None else max(1, from_seq)
        segs, infos = self._snapshot()
        for i in range(len(segs) - 1, -1, -1):
            seg, info = segs[i], infos[i]
            if seg.base_seq > last:
                continue
            if info.sealed:
                self._ensure_indexed(i)
                end = info.length
            else:
                end = seg.scanned_to
            if seg.count == 0 and not info.sealed:
                continue
            # Windows [idx_off[k], idx_off[k+1]) from the newest; their records in reverse.
            offs, seqs, tss = seg.idx_off, seg.idx_seq, seg.idx_ts
            k = min(len(offs), bisect_right(seqs, last)) - 1
            while k >= 0:
                window_end = offs[k + 1] if k + 1 < len(offs) else end
                stop: list[ScanStop] = []
                start = (offs[k], seqs[k] - 1, tss[k])
                window = list(seg.records(start, last, self.max_record_size, window_end, stop))
                if stop and stop[0].kind != ScanStop.END and info.sealed:
                    raise CorruptJournal(
                        seg.path, stop[0].offset, f"sealed segment damaged: {stop[0].kind}"
                    )
                for rec in reversed(window):
                    if rec.seq < first:
                        return
                    yield rec
                k -= 1
            if seg.base_seq <= first:
                return

    def statistics(self) -> JournalStatistics:
        """Counts and extent of the journal, as of now."""
        self.refresh()
        segs, infos = self._snapshot()
        assert self._manifest is not None
        m = self._manifest
        records = 0
        size = 0
        first_seq = first_ts = 0
        for seg, info in zip(segs, infos, strict=True):
            count = info.count if info.sealed else seg.count
            length = info.length if info.sealed else seg.scanned_to
            records += count
            size += length
            if count and not first_seq:
                first_seq = info.first_seq if info.sealed else seg.first_seq
                first_ts = info.first_ts if info.sealed else seg.first_ts
        active = segs[-1]
        last_ts = active.last_ts if active.count else self._last_ts_sealed()
        return JournalStatistics(
            journal_id=m.journal_id.hex(),
            segments=len(segs),
            sealed_segments=sum(1 for i in infos if i.sealed),
            records=records,
            bytes=size,
            first_seq=first_seq,
            last_seq=active.last_seq,
            first_ts_ns=first_ts,
            last_ts_ns=last_ts,
            horizon_seq=m.horizon_seq,
            horizon_ts_ns=m.horizon_ts,
            durability=self.durability,
            tail_cuts=self._tail_cuts,
        )
