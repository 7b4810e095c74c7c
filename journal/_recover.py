"""Point-in-time recovery and salvage: new journals made from an existing one.

* :func:`recover` writes a new, independent journal holding exactly the events
  of ``source`` up to a point in time (an aware datetime or a seq). It reads the
  source through the journal's own read path, so any damage on the way stops it
  with :class:`~journal.CorruptJournal`.
* :func:`salvage` copies every readable record of a *damaged* journal. It reads
  each segment file directly with the format functions, skips what is damaged
  by searching forward for the next valid record (checksum right, seq
  increasing, time not decreasing) and reports every byte range it skipped. It
  also works when the manifest is missing or damaged (then it uses the segment
  files present, checking their headers).

Both leave the source untouched (it is only read) and refuse a target that
exists and is not an empty directory, or that lies inside the source. The new
journal is built in a hidden sibling directory and renamed into place at the
end, so a failure leaves no half-written target.

:func:`scan_damaged` is the damage-tolerant scan both salvage and ``agcx verify``
use: it yields the records of a segment's bytes and the damaged ranges between
them.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import shutil
import stat
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import attrs

from journal._codec import Codec
from journal._errors import (
    CorruptJournal,
    CorruptPayload,
    InvalidArgument,
    JournalError,
    UnsupportedVersion,
)
from journal._events import EventType, blob_dictionary, upcast
from journal._format import (
    BODY_HEADER,
    FRAME_HEADER,
    HEADER_SIZE,
    MAGIC,
    RECORD_OVERHEAD,
    SEGMENT_FILE_RE,
    Frame,
    Manifest,
    ScanStop,
    SegmentHeader,
    SegmentInfo,
    decode_manifest,
    encode_manifest,
    iter_frames,
    pack_header,
    segment_name,
    unpack_header,
)
from journal._log import Journal, from_ns
from journal._rewrite import switch_segments
from journal._segment import Record
from journal._store import resolve_point

__all__ = [
    "Damage",
    "RecoverReport",
    "SalvageReport",
    "Skipped",
    "read_segment",
    "recover",
    "salvage",
    "scan_damaged",
]

Progress = Callable[[int, int], None]

_BATCH_BYTES = 4 << 20  # records copied per commit of the target (one fsync each)
_BATCH_RECORDS = 10_000
_MAX_MANIFEST_FILE = 64 << 20
_NONZERO = re.compile(rb"[^\x00]")
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


# -- reports ------------------------------------------------------------------------------


@attrs.frozen
class RecoverReport:
    """What :func:`recover` wrote."""

    source: str
    target: str
    seq: int  # the point recovered to: every event up to this seq, nothing after
    records: int
    bytes: int
    first_seq: int
    last_seq: int
    last_ts: datetime | None
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "seq": self.seq,
            "records": self.records,
            "bytes": self.bytes,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "last_ts": None if self.last_ts is None else self.last_ts.isoformat(),
            "seconds": round(self.seconds, 6),
        }


@attrs.frozen
class Skipped:
    """A byte range of a segment file that salvage could not copy, and why."""

    segment: str  # file name inside segments/
    start: int  # offset of the first byte skipped
    end: int  # offset just past the last byte skipped
    reason: str

    @property
    def bytes(self) -> int:
        return self.end - self.start

    def to_json(self) -> dict[str, Any]:
        return {
            "segment": self.segment,
            "start": self.start,
            "end": self.end,
            "bytes": self.bytes,
            "reason": self.reason,
        }


@attrs.frozen
class SalvageReport:
    """What :func:`salvage` copied, what it skipped and what else it found wrong."""

    source: str
    target: str
    records: int
    bytes: int
    first_seq: int
    last_seq: int
    segments_read: int
    skipped: tuple[Skipped, ...]
    problems: tuple[str, ...]  # damage that is not a byte range: manifest, headers, files
    seconds: float

    @property
    def intact(self) -> bool:
        """True when nothing was skipped and nothing was wrong."""
        return not self.skipped and not self.problems

    @property
    def skipped_bytes(self) -> int:
        return sum(s.bytes for s in self.skipped)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "records": self.records,
            "bytes": self.bytes,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "segments_read": self.segments_read,
            "skipped": [s.to_json() for s in self.skipped],
            "skipped_bytes": self.skipped_bytes,
            "problems": list(self.problems),
            "intact": self.intact,
            "seconds": round(self.seconds, 6),
        }


# -- the damage-tolerant scan -------------------------------------------------------------


@attrs.frozen
class Damage:
    """A damaged range met by :func:`scan_damaged`.

    ``start`` is the first byte that cannot be used (the start of the batch the
    damage is in: a reader never shows part of a batch), ``at`` where the damage
    itself was found, ``end`` where the next valid record begins (or the end
    of the non-zero data), ``reason`` what was wrong at ``at``. ``last`` says
    no valid record follows: the damage runs to the end of the data.
    """

    start: int
    at: int
    end: int
    reason: str
    last: bool = False


def scan_damaged(
    buf: Any,
    start: int,
    max_record_size: int,
    prev_seq: int,
    prev_ts: int,
) -> Iterator[Frame | Damage]:
    """Yield the records of ``buf[start:]`` (frames, file offsets) and :class:`Damage`.

    ``buf`` is a whole segment file (bytes or an mmap). After damage the scan
    searches forward for the next valid record: a plausible frame whose
    checksum matches, whose seq is above the last one yielded and whose time
    is not before it. Zero bytes after the last record are the normal end of
    the data (preallocation); zeros followed by more records are damage.
    """
    end = len(buf)
    pos = start
    while True:
        stop: list[ScanStop] = []
        for fr in iter_frames(buf, pos, 0, max_record_size, prev_seq, prev_ts, stop):
            yield fr
            prev_seq, prev_ts = fr[2], fr[3]
        st = stop[0]
        at = st.at
        resume = _next_frame(buf, at + 1 if at < end else end, max_record_size, prev_seq, prev_ts)
        if resume is None:
            data_end = _data_end(buf, at)
            if st.offset == at and data_end <= at:
                return  # only zeros (or nothing) after the last record: the end
            yield Damage(st.offset, at, max(data_end, at), _reason(st), last=True)
            return
        yield Damage(st.offset, at, resume, _reason(st))
        pos = resume


def _reason(st: ScanStop) -> str:
    if st.kind == ScanStop.END:  # a zero frame header with more data after it
        return "zero bytes where a record was expected"
    return st.kind


def _next_frame(
    buf: Any, pos: int, max_record_size: int, prev_seq: int, prev_ts: int
) -> int | None:
    """Offset of the next valid record at or after ``pos``, or None."""
    end = len(buf)
    unpack_frame = FRAME_HEADER.unpack_from
    unpack_body = BODY_HEADER.unpack_from
    while pos + RECORD_OVERHEAD <= end:
        body_len, crc = unpack_frame(buf, pos)
        if body_len == 0:
            m = _NONZERO.search(buf, pos + 4)
            if m is None:
                return None
            # The first non-zero byte may be any byte of a length field.
            pos = max(pos + 1, m.start() - 3)
            continue
        if BODY_HEADER.size <= body_len <= max_record_size and pos + 8 + body_len <= end:
            seq, ts, _, codec, flags, _ = unpack_body(buf, pos + 8)
            if (
                seq > prev_seq
                and ts >= prev_ts
                and codec <= 2
                and flags & 0xFE == 0
                and zlib.crc32(buf[pos + 8 : pos + 8 + body_len]) == crc
            ):
                return pos
        pos += 1
    return None


def _data_end(buf: Any, lo: int) -> int:
    """Offset just past the last non-zero byte at or after ``lo`` (``lo`` if none)."""
    hi = len(buf)
    step = 1 << 16
    while hi > lo:
        a = max(lo, hi - step)
        chunk = bytes(buf[a:hi]).rstrip(b"\0")
        if chunk:
            return a + len(chunk)
        hi = a
    return lo


# -- reading segment files directly -------------------------------------------------------


@contextlib.contextmanager
def read_segment(path: str) -> Iterator[Any]:
    """Map a segment file read-only (never following a symlink); yields its bytes."""
    fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            yield b""
            return
        with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as m:
            yield m
    finally:
        os.close(fd)


def read_manifest(root: str) -> Manifest:
    """Decode ``root/MANIFEST`` without opening the journal (raises CorruptJournal)."""
    path = os.path.join(root, "MANIFEST")
    try:
        fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW)
    except FileNotFoundError:
        raise CorruptJournal(path, None, "MANIFEST is missing") from None
    except OSError as exc:
        raise CorruptJournal(path, None, f"cannot open: {exc}") from exc
    try:
        size = os.fstat(fd).st_size
        if size > _MAX_MANIFEST_FILE:
            raise CorruptJournal(path, None, f"MANIFEST is {size} bytes: impossibly large")
        data = os.pread(fd, size, 0)
    finally:
        os.close(fd)
    return decode_manifest(data, path)


def segment_files(root: str) -> dict[str, tuple[int, int]]:
    """Segment file names in ``root/segments`` -> (base seq, rewrite generation)."""
    seg_dir = os.path.join(root, "segments")
    out: dict[str, tuple[int, int]] = {}
    try:
        names = os.listdir(seg_dir)
    except FileNotFoundError:
        return out
    for name in names:
        m = SEGMENT_FILE_RE.match(name)
        if m:
            out[name] = (int(m.group(1)), int(m.group(2) or 0))
    return out


# -- targets ------------------------------------------------------------------------------


def _prepare_target(source: str, target: str | os.PathLike[str]) -> tuple[str, str]:
    """Check ``target`` and return (final path, temporary sibling to build in)."""
    if not isinstance(target, str | os.PathLike):
        raise InvalidArgument(f"target must be a path, got {type(target).__name__}")
    final = os.path.abspath(os.path.expanduser(os.fspath(target)))
    if not os.path.basename(final):
        raise InvalidArgument(f"target {final!r} is not a usable directory name")
    src_real = os.path.realpath(source)
    tgt_real = os.path.realpath(final)
    if tgt_real == src_real or tgt_real.startswith(src_real + os.sep):
        raise InvalidArgument(
            f"target {final} is inside the source journal {source}: choose a directory outside it"
        )
    if src_real.startswith(tgt_real + os.sep):
        raise InvalidArgument(f"target {final} contains the source journal {source}")
    parent = os.path.dirname(final)
    if not os.path.isdir(parent):
        raise InvalidArgument(f"the parent directory of the target, {parent}, does not exist")
    try:
        st = os.lstat(final)
    except FileNotFoundError:
        pass
    else:
        if stat.S_ISLNK(st.st_mode):
            raise InvalidArgument(f"target {final} is a symlink: give a real directory")
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidArgument(f"target {final} exists and is not a directory")
        if os.listdir(final):
            raise InvalidArgument(
                f"target {final} is not empty: give a new or empty directory "
                "(a recovered journal never overwrites anything)"
            )
    tmp = os.path.join(parent, f".{os.path.basename(final)}.agcx-{os.getpid()}-{time.time_ns()}")
    return final, tmp


def _install(tmp: str, final: str) -> None:
    """Move the finished journal into place (an empty directory there is replaced)."""
    try:
        os.rename(tmp, final)
    except OSError as exc:
        raise InvalidArgument(f"cannot move the new journal to {final}: {exc}") from exc
    fd = os.open(os.path.dirname(final), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Copier:
    """Copies records into the target journal in batches of bounded size."""

    def __init__(self, journal: Journal, batch_bytes: int, horizon_seq: int = 0) -> None:
        self.journal = journal
        self.batch_bytes = batch_bytes
        self.horizon_seq = horizon_seq  # the source's compaction horizon
        self.folded_last = 0  # the last seq copied at or before it
        self.pending: list[Record] = []
        self.pending_bytes = 0
        self.records = 0
        self.bytes = 0
        self.first_seq = 0
        self.last_seq = 0
        self.last_ts = 0

    def add(self, rec: Record) -> None:
        if rec.seq <= self.horizon_seq:
            self.folded_last = rec.seq
        self.pending.append(rec)
        self.pending_bytes += rec.size
        if self.pending_bytes >= self.batch_bytes or len(self.pending) >= _BATCH_RECORDS:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        self.journal.copy_records(self.pending)
        if not self.first_seq:
            self.first_seq = self.pending[0].seq
        self.last_seq = self.pending[-1].seq
        self.last_ts = self.pending[-1].ts_ns
        self.records += len(self.pending)
        self.bytes += self.pending_bytes
        self.pending = []
        self.pending_bytes = 0


def _carry_horizon(target: Journal, folded_last: int, horizon_ts: int) -> None:
    """Give the new journal the source's compaction horizon.

    The source's records up to its horizon are what compaction folded the
    history into (their seqs are kept, with gaps), so a point among them must
    be refused in the new journal as it is in the source. The new journal's
    horizon is the last of those records: its own seqs go on from its last
    record, so a horizon beyond that would cover the events appended next.
    """
    if folded_last:
        switch_segments(target, [], [], horizon=(folded_last, horizon_ts))


def _check_source(source: str | os.PathLike[str]) -> str:
    if not isinstance(source, str | os.PathLike):
        raise InvalidArgument(f"source must be a path, got {type(source).__name__}")
    src = os.path.abspath(os.path.expanduser(os.fspath(source)))
    if not os.path.isdir(src):
        raise JournalError(f"{src} is not a directory (no journal there)")
    return src


def _ts(ns: int) -> datetime | None:
    return from_ns(ns) if ns else None


# -- recover: whole sealed segments -----------------------------------------------------


@attrs.define
class _Whole:
    """What :func:`_copy_whole_segments` copied (all zero when nothing)."""

    records: int = 0
    bytes: int = 0
    first_seq: int = 0
    last_seq: int = 0
    last_ts: int = 0
    folded_last: int = 0

    def seed(self, copier: _Copier) -> None:
        copier.records, copier.bytes = self.records, self.bytes
        copier.first_seq, copier.last_seq, copier.last_ts = (
            self.first_seq, self.last_seq, self.last_ts,
        )
        copier.folded_last = self.folded_last


def _copy_whole_segments(
    sj: Journal, m: Manifest, tmp: str, seq: int, total: int, progress: Progress | None
) -> _Whole:
    """Copy the sealed segments wholly before ``seq`` into a new journal at ``tmp``.

    Copying record by record costs microseconds of Python per record; a sealed
    segment whose records all come before the cut is copied as bytes instead
    (``os.copy_file_range``), under a new header carrying the new journal's id.
    Its records are still checked first, every one, by the format's frame scan
    (CRC, increasing seqs and times, whole batches) and against the manifest's
    count, last seq and length. The first segment that does not qualify or does
    not check out ends this fast path: the caller copies the rest record by
    record through the journal's read path, which reports any damage exactly as
    before. When anything was copied, ``tmp`` is left holding those segments,
    an empty active segment after them and a MANIFEST; otherwise it is not made.
    """
    out = _Whole()
    todo: list[SegmentInfo] = []
    for info in m.segments:
        if not (info.sealed and info.count and info.last_seq <= seq):
            break
        todo.append(info)
    if not todo:
        return out
    jid = os.urandom(16)
    seg_dir = os.path.join(tmp, "segments")
    os.makedirs(seg_dir, mode=0o700)
    infos: list[SegmentInfo] = []
    horizon = m.horizon_seq
    for info in todo:
        path = os.path.join(sj._seg_dir, info.name)
        with read_segment(path) as buf:
            if len(buf) < info.length or info.length < HEADER_SIZE:
                break
            try:
                h = unpack_header(bytes(buf[:HEADER_SIZE]), path)
            except CorruptJournal:
                break
            if h.journal_id != m.journal_id or h.base_seq != info.base_seq:
                break
            stop: list[ScanStop] = []
            count = size = 0
            first = last = last_ts = folded = 0
            with memoryview(buf) as mv:
                for fr in iter_frames(mv[: info.length], HEADER_SIZE, 0, sj.max_record_size,
                                      out.last_seq, out.last_ts, stop):
                    count += 1
                    size += 8 + fr[1]
                    first = first or fr[2]
                    last, last_ts = fr[2], fr[3]
                    if last <= horizon:
                        folded = last
            if (stop[0].kind != ScanStop.END or stop[0].offset != info.length
                    or (count, first, last) != (info.count, info.first_seq, info.last_seq)):
                break
        # Under its plain name: a rewrite's "-r<gen>" names the source's manifest
        # generation, and the new journal's own compactions count from 1.
        mine = attrs.evolve(info, file="")
        header = pack_header(attrs.evolve(h, journal_id=jid, created_ns=time.time_ns()))
        _copy_file(path, os.path.join(seg_dir, mine.name), header, info.length)
        infos.append(mine)
        out.records += count
        out.bytes += size
        out.first_seq = out.first_seq or first
        out.last_seq, out.last_ts = last, last_ts
        out.folded_last = folded or out.folded_last
        if progress is not None:
            progress(out.bytes, total)
    if not infos:
        os.rmdir(seg_dir)
        os.rmdir(tmp)
        return out
    # The active segment the journal writes on comes after the copied ones.
    base = max(out.last_seq + 1, infos[-1].base_seq + 1)
    with open(os.path.join(seg_dir, segment_name(base)), "wb") as f:
        f.write(pack_header(SegmentHeader(base, time.time_ns(), jid)))
        f.flush()
        os.fsync(f.fileno())
    manifest = Manifest(jid, 1, (*infos, SegmentInfo(base_seq=base)), created_ns=time.time_ns())
    with open(os.path.join(tmp, "MANIFEST"), "wb") as f:
        f.write(encode_manifest(manifest))
        f.flush()
        os.fsync(f.fileno())
    for d in (seg_dir, tmp):
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return out


def _copy_file(src: str, dst: str, header: bytes, length: int) -> None:
    """Write ``header`` then ``src``'s bytes from HEADER_SIZE to ``length`` into a new
    file ``dst``, made durable; in the kernel where it can (copy_file_range)."""
    sfd = os.open(src, os.O_RDONLY | _O_NOFOLLOW)
    try:
        dfd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(dfd, header)
            pos = HEADER_SIZE
            kernel = hasattr(os, "copy_file_range")
            while pos < length:
                n = 0
                if kernel:
                    try:
                        n = os.copy_file_range(sfd, dfd, length - pos, pos, pos)
                    except OSError:
                        kernel = False  # another file system, an old kernel: copy by hand
                        continue
                else:
                    data = os.pread(sfd, min(length - pos, 8 << 20), pos)
                    n = os.pwrite(dfd, data, pos)
                if n <= 0:
                    raise CorruptJournal(src, pos, "segment file shorter than the manifest says")
                pos += n
            os.fsync(dfd)
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)


# -- recover ------------------------------------------------------------------------------


def recover(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    at: datetime | int,
    batch_bytes: int = _BATCH_BYTES,
    progress: Progress | None = None,
) -> RecoverReport:
    """Write a new journal at ``target`` holding exactly the events of ``source``
    up to ``at`` (a timezone-aware datetime or a seq).

    The point is resolved as :meth:`journal.SessionStore.resolve_point` does:
    a naive datetime, a point in the future or one before the compaction
    horizon is refused (the horizon error names the earliest recoverable time
    and seq). Records keep their seq, time, type, session and stored bytes.
    The target is a working store: open it and carry on. ``progress(done,
    total)`` is called with bytes copied. Sealed segments wholly before the
    point are copied as bytes once their records check out (see
    :func:`_copy_whole_segments`); the rest record by record.
    """
    src = _check_source(source)
    if not isinstance(batch_bytes, int) or batch_bytes < 1:
        raise InvalidArgument(f"batch_bytes must be a positive int, got {batch_bytes!r}")
    started = time.monotonic()
    with Journal.open(src, readonly=True) as sj:
        seq = resolve_point(sj, at)
        final, tmp = _prepare_target(src, target)
        total = sj.statistics().bytes
        try:
            m = sj.manifest
            whole = _copy_whole_segments(sj, m, tmp, seq, total, progress)
            with Journal.open(tmp, max_record_size=sj.max_record_size) as tj:
                copier = _Copier(tj, batch_bytes, m.horizon_seq)
                whole.seed(copier)
                for rec in sj.scan(from_seq=whole.last_seq + 1, until_seq=seq):
                    copier.add(rec)
                    if progress is not None and copier.pending_bytes == 0:
                        progress(copier.bytes, total)
                copier.flush()
                _carry_horizon(tj, copier.folded_last, m.horizon_ts)
            _install(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    if progress is not None:
        progress(total, total)
    return RecoverReport(
        source=src,
        target=final,
        seq=seq,
        records=copier.records,
        bytes=copier.bytes,
        first_seq=copier.first_seq,
        last_seq=copier.last_seq,
        last_ts=_ts(copier.last_ts),
        seconds=time.monotonic() - started,
    )


# -- salvage ------------------------------------------------------------------------------


def salvage(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    max_record_size: int = 64 << 20,
    batch_bytes: int = _BATCH_BYTES,
    progress: Progress | None = None,
) -> SalvageReport:
    """Copy every readable record of a damaged journal ``source`` into a new one.

    Segments are read in seq order straight from their files: the ones the
    manifest lists or, when the manifest is missing or damaged, every segment
    file present whose header is sound. Damaged bytes are skipped by searching
    forward for the next valid record. When the damage is inside a batch (one
    ``append_many``), the batch's records before it are skipped with it, as a
    reader of the journal would; readable records after it are copied. A
    record whose checksum is right but whose payload does not decode is
    skipped too, so the target opens as a working store. Everything skipped is
    in the report. ``progress(done, total)`` is called with bytes read.
    """
    src = _check_source(source)
    if not isinstance(max_record_size, int) or max_record_size < 64:
        raise InvalidArgument(f"max_record_size must be an int >= 64, got {max_record_size!r}")
    if not isinstance(batch_bytes, int) or batch_bytes < 1:
        raise InvalidArgument(f"batch_bytes must be a positive int, got {batch_bytes!r}")
    started = time.monotonic()
    seg_dir = os.path.join(src, "segments")
    problems: list[str] = []
    skipped: list[Skipped] = []
    files = segment_files(src)
    manifest: Manifest | None = None
    try:
        manifest = read_manifest(src)
    except CorruptJournal as exc:
        problems.append(f"MANIFEST: {exc.reason}; salvaging the segment files present")
    plan: list[tuple[str, SegmentInfo | None]] = []
    journal_id: bytes | None
    if manifest is not None:
        journal_id = manifest.journal_id
        listed = set()
        for info in manifest.segments:
            listed.add(info.name)
            if info.name in files:
                plan.append((info.name, info))
            else:
                what = f"records {info.first_seq}..{info.last_seq}" if info.count else "its records"
                skipped.append(
                    Skipped(info.name, 0, info.length, f"segment file is missing ({what} lost)")
                )
        for name in sorted(set(files) - listed):
            problems.append(
                f"{name}: not listed in the manifest (a leftover of a crashed roll or of an "
                "unfinished compaction, holding nothing acknowledged): not copied"
            )
    else:
        if not files:
            raise JournalError(f"{src} holds no MANIFEST and no segment files: nothing to salvage")
        # The newest rewrite of a range first: older copies then only repeat seqs.
        order = sorted(files, key=lambda n: (files[n][0], -files[n][1]))
        plan = [(name, None) for name in order]
        journal_id = _majority_journal_id(seg_dir, order)
    total = 0
    for name, _ in plan:
        with contextlib.suppress(OSError):
            total += os.lstat(os.path.join(seg_dir, name)).st_size
    final, tmp = _prepare_target(src, target)
    codec = Codec(max_payload=4 * max_record_size)
    done = 0
    segments_read = 0
    try:
        with Journal.open(tmp, max_record_size=max_record_size) as tj:
            copier = _Copier(tj, batch_bytes, manifest.horizon_seq if manifest else 0)
            prev = [0, 0]  # last seq and time copied (or skipped as undecodable)
            dictionaries: set[int] = set()  # seqs of the dictionaries copied so far
            for name, listed_info in plan:
                path = os.path.join(seg_dir, name)
                base = listed_info.base_seq if listed_info else files[name][0]
                ok = _salvage_segment(
                    path,
                    name,
                    base,
                    journal_id,
                    max_record_size,
                    codec,
                    copier,
                    prev,
                    dictionaries,
                    skipped,
                    problems,
                )
                segments_read += ok
                with contextlib.suppress(OSError):
                    done += os.lstat(path).st_size
                if progress is not None:
                    progress(done, total)
            copier.flush()
            if manifest is not None:
                _carry_horizon(tj, copier.folded_last, manifest.horizon_ts)
        _install(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SalvageReport(
        source=src,
        target=final,
        records=copier.records,
        bytes=copier.bytes,
        first_seq=copier.first_seq,
        last_seq=copier.last_seq,
        segments_read=segments_read,
        skipped=tuple(skipped),
        problems=tuple(problems),
        seconds=time.monotonic() - started,
    )


def _majority_journal_id(seg_dir: str, names: list[str]) -> bytes | None:
    """The journal id most segment headers carry (None if no header is readable)."""
    ids: Counter[bytes] = Counter()
    for name in names:
        path = os.path.join(seg_dir, name)
        try:
            fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW)
            try:
                data = os.pread(fd, HEADER_SIZE, 0)
            finally:
                os.close(fd)
            ids[unpack_header(data, path).journal_id] += 1
        except (OSError, CorruptJournal):
            continue
    return ids.most_common(1)[0][0] if ids else None


def _salvage_segment(
    path: str,
    name: str,
    base_seq: int,
    journal_id: bytes | None,
    max_record_size: int,
    codec: Codec,
    copier: _Copier,
    prev: list[int],
    dictionaries: set[int],
    skipped: list[Skipped],
    problems: list[str],
) -> bool:
    """Copy the readable records of one segment file; False if it was not read at all."""
    with contextlib.ExitStack() as stack:
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                skipped.append(Skipped(name, 0, 0, "not a regular file (a symlink?): not read"))
                return False
            buf = stack.enter_context(read_segment(path))
        except OSError as exc:
            skipped.append(Skipped(name, 0, 0, f"cannot be read: {exc}"))
            return False
        size = len(buf)
        if size < HEADER_SIZE:
            skipped.append(Skipped(name, 0, size, "shorter than a segment header"))
            return False
        header = bytes(buf[:HEADER_SIZE])
        if header[:4] != MAGIC:
            skipped.append(Skipped(name, 0, size, "not an AGCX segment (bad magic)"))
            return False
        try:
            h = unpack_header(header, path)
        except UnsupportedVersion as exc:
            skipped.append(Skipped(name, 0, size, exc.reason))
            return False
        except CorruptJournal as exc:
            # The records carry their own checksums: read them anyway.
            problems.append(f"{name}: header damaged ({exc.reason}); its records were still read")
        else:
            if journal_id is not None and h.journal_id != journal_id:
                skipped.append(Skipped(name, 0, size, "segment belongs to another journal"))
                return False
            if h.base_seq != base_seq:
                problems.append(
                    f"{name}: header says base seq {h.base_seq}, the name says {base_seq}"
                )
        for item in scan_damaged(buf, HEADER_SIZE, max_record_size, prev[0], prev[1]):
            if isinstance(item, Damage):
                skipped.append(Skipped(name, item.start, item.end, _damage_text(item)))
                continue
            offset, body_len, seq, ts, etype, rcodec, session, pstart = item
            payload = bytes(buf[pstart : pstart + body_len - (RECORD_OVERHEAD - 8)])
            prev[0], prev[1] = seq, ts
            try:
                event = upcast(etype, codec.decode(rcodec, payload))
                if etype == EventType.DICTIONARY_TRAINED:
                    dictionaries.add(seq)
                elif etype == EventType.SESSION_SAVED:
                    ref = blob_dictionary(event)
                    if ref is not None and ref not in dictionaries:
                        raise CorruptPayload(f"its messages need dictionary seq {ref}, lost")
            except JournalError as exc:
                skipped.append(Skipped(name, offset, offset + 8 + body_len, f"seq {seq}: {exc}"))
                continue
            copier.add(Record(seq, ts, etype, session, rcodec, payload, base_seq, offset))
        return True


def _damage_text(d: Damage) -> str:
    if d.at != d.start:
        return f"{d.reason} at offset {d.at}"
    return d.reason
