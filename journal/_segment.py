"""One segment file: its header, its sparse seq -> offset index, reading records.

A segment is append-only while it is the active one and immutable once sealed.
This module knows how to find whole records in it and where its data ends; the
log (``_log.py``) decides what a stop in the middle means (a torn tail to cut,
or corruption to report).
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import weakref
from array import array
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import attrs

from journal._errors import CorruptJournal, JournalError
from journal._format import (
    FRAME_HEADER,
    HEADER_SIZE,
    RECORD_OVERHEAD,
    Frame,
    ScanStop,
    SegmentHeader,
    iter_frames,
    unpack_header,
)
from journal._fs import FileSystem

__all__ = ["FILES", "Record", "Segment", "SegmentFiles"]

_CHUNK = 1 << 20
_FIRST_CHUNK = 16 << 10
_INDEX_EVERY = 4096  # bytes between sparse index entries
_NO_SESSION = bytes(16)
# Stops that a chunk's edge can cause (a frame header cut by it, or the edge itself).
_EDGE_KINDS = (ScanStop.END, ScanStop.SHORT_HEADER, ScanStop.INCOMPLETE_BATCH)


@attrs.frozen(slots=True)
class Record:
    """One record as stored: the clear header and the still-encoded payload.

    The header fields (seq, time, event type, session) are available without
    decompressing anything; :meth:`journal.Journal.decode` turns ``payload``
    into the event's data.
    """

    seq: int
    ts_ns: int
    event_type: int
    session: bytes
    codec: int
    payload: bytes
    segment: int
    offset: int

    @property
    def session_id(self) -> UUID | None:
        """The session this record belongs to, or ``None``."""
        return None if self.session == _NO_SESSION else UUID(bytes=self.session)

    @property
    def size(self) -> int:
        """Bytes the record takes in its segment, frame header included."""
        return RECORD_OVERHEAD + len(self.payload)


def _open_limit() -> int:
    """How many read-only segment files a process keeps open: a quarter of its
    descriptor limit (the rest is for the application), between 8 and 512."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return 512
    if soft == resource.RLIM_INFINITY:
        return 512
    return max(8, min(512, soft // 4))


class _File:
    """The descriptor of one segment file, or ``None`` while it is closed."""

    __slots__ = ("fd", "fs", "ino", "path", "pins")

    def __init__(self, fs: FileSystem, path: str) -> None:
        self.fs = fs
        self.path = path
        self.fd: int | None = None
        self.ino: int | None = None  # the inode first opened: a reopen must find it again
        self.pins = 0  # readers using the descriptor right now: it is not closed under them


class SegmentFiles:
    """A bounded cache of open read-only segment files (LevelDB's table cache,
    RocksDB's ``max_open_files``): a journal of thousands of segments must not
    hold one descriptor per segment.

    The least recently used file not in use is closed when the cache is full,
    and reopened by path when it is read again. The file found then must be
    the one first opened (same inode): compaction replaces segments under new
    names and removes the old ones, so a reader still holding an old segment
    after its file is gone gets a clear error and reads again. Writable (the
    active) segments never enter the cache: they stay open.
    """

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self._open: OrderedDict[int, _File] = OrderedDict()
        self._lock = threading.Lock()

    def _capacity(self) -> int:
        if self.limit is None:
            self.limit = _open_limit()
        return self.limit

    @property
    def open_count(self) -> int:
        """How many segment files the cache holds open now."""
        return len(self._open)

    def acquire(self, f: _File) -> int:
        """The descriptor of ``f``, opened if needed; pinned until :meth:`release`.

        Files are opened and closed outside the cache's lock (opening may
        take long, or, in tests, run other journal code).
        """
        evicted: list[tuple[FileSystem, int | None]] = []
        with self._lock:
            if f.fd is not None:
                self._open.move_to_end(id(f))
                f.pins += 1
                return f.fd
            cap = self._capacity()
            if len(self._open) >= cap:
                for key, other in list(self._open.items()):
                    if other.pins == 0:
                        del self._open[key]
                        evicted.append((other.fs, other.fd))
                        other.fd = None
                        if len(self._open) < cap:
                            break
        for fs, old in evicted:
            _close_quietly(fs, old)
        fd = _open_segment(f.fs, f.path, os.O_RDONLY)
        try:
            ino = f.fs.fstat(fd).st_ino
        except BaseException:
            _close_quietly(f.fs, fd)
            raise
        with self._lock:
            if f.fd is None:
                if f.ino is not None and ino != f.ino:
                    _close_quietly(f.fs, fd)
                    raise JournalError(
                        f"segment {f.path} was replaced (by a compaction) while it was being "
                        "read; read again"
                    )
                f.ino = ino
                f.fd = fd
                self._open[id(f)] = f
            else:  # another thread opened it meanwhile
                _close_quietly(f.fs, fd)
            self._open.move_to_end(id(f))
            f.pins += 1
            return f.fd

    def release(self, f: _File) -> None:
        with self._lock:
            f.pins -= 1

    def drop(self, f: _File) -> None:
        """Forget ``f`` and close it (its segment is gone)."""
        with self._lock:
            self._open.pop(id(f), None)
            fd, f.fd = f.fd, None
        if fd is not None:
            _close_quietly(f.fs, fd)


FILES = SegmentFiles()
"""The process's cache of read-only segment files (shared by every journal)."""


def _open_segment(fs: FileSystem, path: str, flags: int) -> int:
    try:
        return fs.open(path, flags)
    except FileNotFoundError:
        raise CorruptJournal(path, None, "segment listed in the manifest is missing") from None
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise  # the disk failed: an I/O error for the caller, not damage
        raise CorruptJournal(path, None, f"segment cannot be opened: {exc}") from exc


class Segment:
    """A segment file and what has been learnt of it by scanning.

    ``scanned_to`` is the file offset just past the last whole record indexed;
    ``last_seq``/``last_ts`` are that record's. The index keeps one entry per
    ``_INDEX_EVERY`` bytes, so finding a seq reads at most a few KiB.

    A writable (active) segment keeps its file open; a read-only one borrows
    its descriptor from :data:`FILES` for each read (:meth:`pinned`), so a
    process holds a bounded number of segment files open however many there are.
    """

    def __init__(
        self,
        fs: FileSystem,
        path: str,
        base_seq: int,
        *,
        writable: bool,
        files: SegmentFiles = FILES,
    ) -> None:
        self.fs = fs
        self.path = path
        self.base_seq = base_seq
        self.writable = writable
        self._file = _File(fs, path)
        self._files = files
        if writable:
            self._file.fd = _open_segment(fs, path, os.O_RDWR)
            self._finalizer = weakref.finalize(self, _close_file, None, self._file)
        else:
            files.acquire(self._file)  # refuses a missing or symlinked file now
            files.release(self._file)
            # Closing the fd when the last reference goes lets a scan that still
            # holds a segment replaced by compaction finish its read.
            self._finalizer = weakref.finalize(self, _close_file, files, self._file)
        self.header: SegmentHeader | None = None
        self.idx_seq = array("q")
        self.idx_ts = array("q")
        self.idx_off = array("q")
        self.scanned_to = HEADER_SIZE
        self.first_seq = 0
        self.first_ts = 0
        self.last_seq = base_seq - 1
        self.last_ts = 0
        self.count = 0
        self.complete = False  # sealed and scanned to its end
        self.alloc_end = 0  # writer: file length including preallocated zeros
        self._last_indexed_off = -_INDEX_EVERY

    @property
    def fd(self) -> int:
        """The descriptor of a writable segment (always open)."""
        fd = self._file.fd
        assert self.writable and fd is not None, "a read-only segment is read through pinned()"
        return fd

    @contextlib.contextmanager
    def pinned(self) -> Iterator[int]:
        """The segment's descriptor, kept open while the block runs."""
        if self.writable:
            yield self.fd
            return
        fd = self._files.acquire(self._file)
        try:
            yield fd
        finally:
            self._files.release(self._file)

    @property
    def ino(self) -> int:
        """The inode of the file this segment reads."""
        with self.pinned() as fd:
            return self.fs.fstat(fd).st_ino

    def close(self) -> None:
        self._finalizer()

    def file_size(self) -> int:
        with self.pinned() as fd:
            return self.fs.fstat(fd).st_size

    def read_header(self, journal_id: bytes | None) -> SegmentHeader:
        with self.pinned() as fd:
            data = self.fs.pread(fd, HEADER_SIZE, 0)
        h = unpack_header(data, self.path)
        if h.base_seq != self.base_seq:
            raise CorruptJournal(
                self.path, 8, f"header says base seq {h.base_seq}, file name says {self.base_seq}"
            )
        if journal_id is not None and h.journal_id != journal_id:
            raise CorruptJournal(self.path, 24, "segment belongs to another journal (journal id)")
        self.header = h
        return h

    # -- scanning ------------------------------------------------------------------------

    def frames(
        self,
        start: int,
        limit: int | None,
        max_record_size: int,
        prev_seq: int,
        prev_ts: int,
        stop: list[ScanStop],
        first_chunk: int = _CHUNK,
        hold: bool = True,
    ) -> Iterator[tuple[Frame, bytes]]:
        """Yield ``(frame, buffer)`` for the whole records from ``start``.

        Reads in chunks; a record that straddles a chunk is re-read whole.
        ``limit`` bounds the bytes read (a sealed segment's length). Exactly
        one :class:`ScanStop` is appended to ``stop`` when the data ends.
        ``hold`` as for :func:`iter_frames`.
        """
        # The file stays open (pinned in the segment-file cache) until the
        # generator ends or is closed.
        with self.pinned() as fd:
            pos = start
            end_limit = limit if limit is not None else None
            want = first_chunk
            while True:
                to_eof = False
                if end_limit is not None:
                    want = min(want, end_limit - pos)
                    if want <= 0:
                        stop.append(ScanStop(ScanStop.END, pos))
                        return
                elif want > _CHUNK:
                    # A record (or batch) claims more than a chunk: read no further than
                    # the file's end, so a hostile length cannot size the allocation.
                    rest = max(0, self.fs.fstat(fd).st_size - pos)
                    if want >= rest:
                        want, to_eof = rest, True
                buf = self.fs.pread(fd, want, pos)
                inner: list[ScanStop] = []
                progressed = pos
                for fr in iter_frames(buf, 0, pos, max_record_size, prev_seq, prev_ts, inner, hold):
                    yield fr, buf
                    prev_seq, prev_ts = fr[2], fr[3]
                    progressed = fr[0] + 8 + fr[1]
                st = inner[0]
                chunk_end = pos + len(buf)
                # A full chunk with more data possibly after it: a stop caused by the
                # chunk's edge says nothing about the file. That is a body running past
                # the edge, or a stop within the edge's last 8 bytes: a cut frame header,
                # including an "end" that is only the edge itself (the chunk ended on a
                # record boundary) or the first zero bytes of a header cut by the edge.
                at_boundary = (
                    len(buf) == want
                    and not to_eof
                    and (end_limit is None or chunk_end < end_limit)
                    and (
                        st.kind == ScanStop.SHORT_BODY
                        or (
                            st.kind in _EDGE_KINDS
                            and st.at + 8 > chunk_end
                        )
                    )
                )
                if not at_boundary:
                    if st.kind == ScanStop.SHORT_HEADER and not any(buf[st.offset - pos :]):
                        # Fewer than 8 bytes left, all zero, at the real end: preallocation.
                        st = ScanStop(ScanStop.END, st.offset)
                    stop.append(st)
                    return
                if progressed == pos:
                    # The record (or batch) at pos is longer than what was read: read it whole.
                    rel = st.at - pos
                    if len(buf) - rel >= 8:
                        (body_len, _) = FRAME_HEADER.unpack_from(buf, rel)
                        want = max(want * 2, rel + 8 + body_len)
                    else:
                        want = want * 2
                else:
                    want = _CHUNK
                pos = progressed

    def note(self, offset: int, body_len: int, seq: int, ts: int) -> None:
        """Account one whole record found (or written) at ``offset``."""
        if self.count == 0:
            self.first_seq = seq
            self.first_ts = ts
        if offset - self._last_indexed_off >= _INDEX_EVERY:
            self.idx_seq.append(seq)
            self.idx_ts.append(ts)
            self.idx_off.append(offset)
            self._last_indexed_off = offset
        self.count += 1
        self.last_seq = seq
        self.last_ts = ts
        self.scanned_to = offset + 8 + body_len

    def tail_state(self) -> list[object]:
        """What :meth:`adopt_tail_state` needs to skip re-scanning this segment."""
        return [
            self.scanned_to, self.last_seq, self.last_ts, self.first_seq, self.first_ts,
            self.count, self._last_indexed_off, self.idx_seq.tobytes(), self.idx_ts.tobytes(),
            self.idx_off.tobytes(),
        ]

    def adopt_tail_state(self, state: Any, max_record_size: int) -> None:
        """Take a saved scan position, if the segment still ends with that record.

        The last record the state names must be there, whole and checksummed,
        with the same seq and time; anything after it is scanned as usual.
        Raises ``ValueError`` (and changes nothing) otherwise.
        """
        end, last_seq, last_ts, first_seq, first_ts, count, last_idx, s, t, o = state
        for v in (end, last_seq, last_ts, first_seq, first_ts, count, last_idx):
            if type(v) is not int:
                raise ValueError("bad tail state")
        for v in (s, t, o):
            if type(v) is not bytes or len(v) % 8:
                raise ValueError("bad tail index")
        idx_seq, idx_ts, idx_off = array("q"), array("q"), array("q")
        idx_seq.frombytes(s)
        idx_ts.frombytes(t)
        idx_off.frombytes(o)
        if not (len(idx_seq) == len(idx_ts) == len(idx_off) >= 1) or idx_off[0] != HEADER_SIZE:
            raise ValueError("bad tail index")
        # Find the last record by reading from the last index entry up to ``end``.
        stop: list[ScanStop] = []
        last: Frame | None = None
        for fr, _ in self.frames(
            idx_off[-1], end, max_record_size, idx_seq[-1] - 1, idx_ts[-1], stop
        ):
            last = fr
        if (
            last is None
            or stop[0].kind != ScanStop.END
            or last[0] + 8 + last[1] != end
            or (last[2], last[3]) != (last_seq, last_ts)
        ):
            raise ValueError("the segment does not end where the tail hint says")
        self.idx_seq, self.idx_ts, self.idx_off = idx_seq, idx_ts, idx_off
        self.scanned_to, self.last_seq, self.last_ts = end, last_seq, last_ts
        self.first_seq, self.first_ts, self.count = first_seq, first_ts, count
        self._last_indexed_off = last_idx

    def scan_forward(self, limit: int | None, max_record_size: int) -> ScanStop:
        """Index every whole record after ``scanned_to``; return why it stopped."""
        stop: list[ScanStop] = []
        # A small first read: at the tail of an active segment there is usually
        # nothing new, and reading a whole chunk of preallocated zeros would cost more.
        for fr, _ in self.frames(
            self.scanned_to,
            limit,
            max_record_size,
            self.last_seq,
            self.last_ts,
            stop,
            first_chunk=_FIRST_CHUNK,
        ):
            self.note(fr[0], fr[1], fr[2], fr[3])
        return stop[0]

    def offset_for_seq(self, seq: int) -> tuple[int, int, int]:
        """Where to start reading to find ``seq``: ``(offset, prev_seq, prev_ts)``."""
        i = bisect_right(self.idx_seq, seq) - 1
        if i < 0:
            return HEADER_SIZE, self.base_seq - 1, 0
        return self.idx_off[i], self.idx_seq[i] - 1, self.idx_ts[i]

    def offset_for_ts(self, ts: int) -> tuple[int, int, int]:
        """Where to start reading to find the first record at or after ``ts``."""
        # The last index entry strictly before ts: records between it and ts are skipped by reading.
        i = bisect_right(self.idx_ts, ts - 1) - 1
        if i < 0:
            return HEADER_SIZE, self.base_seq - 1, 0
        return self.idx_off[i], self.idx_seq[i] - 1, self.idx_ts[i]

    def records(
        self,
        start: tuple[int, int, int],
        until_seq: int,
        max_record_size: int,
        limit: int | None,
        stop: list[ScanStop],
    ) -> Iterator[Record]:
        """Yield records from ``start`` (an ``offset_for_*`` answer) up to ``until_seq``.

        When the data ends before ``until_seq`` the reason is appended to ``stop``.
        Up to ``until_seq`` the segment has been indexed (whole batches only), so
        records are yielded without waiting for the ends of their batches.
        """
        offset, prev_seq, prev_ts = start
        base = self.base_seq
        for fr, buf in self.frames(
            offset,
            limit,
            max_record_size,
            prev_seq,
            prev_ts,
            stop,
            first_chunk=_FIRST_CHUNK,
            hold=False,
        ):
            if fr[2] > until_seq:
                return
            pstart = fr[7]
            yield Record(
                fr[2],
                fr[3],
                fr[4],
                fr[6],
                fr[5],
                buf[pstart : pstart + fr[1] - (RECORD_OVERHEAD - 8)],
                base,
                fr[0],
            )


def _close_quietly(fs: FileSystem, fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            fs.close(fd)


def _close_file(files: SegmentFiles | None, f: _File) -> None:
    if files is not None:
        files.drop(f)
    else:
        fd, f.fd = f.fd, None
        _close_quietly(f.fs, fd)
