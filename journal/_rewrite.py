"""Writing replacement segments, for compaction and purge.

New segment files get names no existing file has (``<base>-r<generation>.agcx``)
so the old and the new journal coexist on disk until the manifest switch:

1. write the new segments and make them durable (file and directory);
2. under the commit lock, check the segments being replaced are still listed
   as they were, and write the manifest that lists the new ones instead;
3. only then delete the old files.

A crash before 2 leaves unlisted new files (a writer deletes them when no
rewrite holds ``COMPACT``); a crash after 2 leaves unlisted old files (likewise).
Either way the journal is the old or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Sequence

import attrs

from journal._errors import JournalError
from journal._format import (
    HEADER_SIZE,
    Manifest,
    SegmentHeader,
    SegmentInfo,
    pack_header,
    pack_record,
    segment_name,
)
from journal._log import Journal
from journal._segment import Record

__all__ = ["RewriteConflict", "remove_segment_files", "switch_segments", "write_segment_files"]


class RewriteConflict(JournalError):
    """The segments being replaced changed meanwhile; the manifest was not touched."""

_WRITE_CHUNK = 1 << 20


def write_segment_files(
    j: Journal,
    records: Iterable[Record],
    *,
    generation: int,
    first_base: int,
    max_size: int | None = None,
) -> list[SegmentInfo]:
    """Write ``records`` (in seq order, verbatim) into new sealed segment files.

    The first file's base seq is ``first_base``; a new file starts when the
    current one would pass ``max_size`` (default: the journal's segment size).
    Nothing is listed in the manifest yet. With no records, one empty segment
    is written, so a range of seqs can be replaced by nothing.
    """
    fs = j._fs
    limit = max_size or j.segment_size
    sync = j.durability != "none"
    infos: list[SegmentInfo] = []
    fd: int | None = None
    path = ""
    buf: list[bytes] = []
    buffered = 0
    info = SegmentInfo(base_seq=first_base)
    created: list[str] = []  # only these may be removed if writing fails

    def open_file(base: int) -> None:
        nonlocal fd, path, info, buffered
        path = os.path.join(j._seg_dir, segment_name(base, generation))
        with contextlib.suppress(FileNotFoundError):
            fs.unlink(path)  # an unlisted leftover of an earlier, crashed rewrite
        fd = fs.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        created.append(path)
        header = pack_header(SegmentHeader(base, time.time_ns(), j.journal_id))
        buf.append(header)
        buffered = len(header)
        info = SegmentInfo(
            base_seq=base, sealed=True, length=HEADER_SIZE, file=segment_name(base, generation)
        )

    def flush() -> None:
        nonlocal buffered
        if buf:
            assert fd is not None
            data = b"".join(buf)
            offset = info.length - len(data)
            view = memoryview(data)
            done = 0
            while done < len(view):
                done += fs.pwrite(fd, view[done:], offset + done)
            buf.clear()
            buffered = 0

    def close_file() -> None:
        nonlocal fd
        flush()
        assert fd is not None
        try:
            if sync:
                fs.fdatasync(fd)
        finally:
            fs.close(fd)
            fd = None
        infos.append(info)

    try:
        for rec in records:
            frame = pack_record(
                rec.seq, rec.ts_ns, rec.event_type, rec.codec, rec.session, rec.payload
            )
            if fd is None:
                open_file(first_base)
            elif info.length + len(frame) > limit and info.count:
                close_file()
                open_file(rec.seq)
            buf.append(frame)
            buffered += len(frame)
            info = attrs.evolve(
                info,
                first_seq=info.first_seq or rec.seq,
                first_ts=info.first_ts if info.count else rec.ts_ns,
                last_seq=rec.seq,
                last_ts=rec.ts_ns,
                count=info.count + 1,
                length=info.length + len(frame),
            )
            if buffered >= _WRITE_CHUNK:
                flush()
        if fd is None:
            open_file(first_base)
        close_file()
        if sync:
            fs.fsync_dir(j._seg_dir)
    except BaseException:
        if fd is not None:
            fs.close(fd)
        for p in created:
            with contextlib.suppress(OSError):
                fs.unlink(p)
        raise
    return infos


def switch_segments(
    j: Journal,
    replace: Sequence[SegmentInfo],
    new: Sequence[SegmentInfo],
    *,
    horizon: tuple[int, int] | None = None,
) -> Manifest:
    """List ``new`` instead of ``replace`` (and move the horizon), under the commit lock.

    Refuses with :class:`RewriteConflict`, changing nothing, if any segment in
    ``replace`` is no longer listed as it was. Any other failure may come after
    the new manifest was renamed into place: the caller must then leave every
    file alone (the journal is poisoned; a reopen sorts out what is listed).
    """

    def switch() -> Manifest:
        m = j.manifest
        listed = {s.name: s for s in m.segments}
        for s in replace:
            now = listed.get(s.name)
            if now is None or now != s:
                raise RewriteConflict(
                    f"segment {s.name} changed while it was being rewritten; nothing was replaced"
                )
        gone = {s.name for s in replace}
        segments = sorted(
            [s for s in m.segments if s.name not in gone] + list(new), key=lambda s: s.base_seq
        )
        hs, ht = horizon if horizon is not None else (m.horizon_seq, m.horizon_ts)
        new_m = attrs.evolve(
            m, generation=m.generation + 1, segments=tuple(segments), horizon_seq=hs, horizon_ts=ht
        )
        j._switch_manifest(new_m)
        return new_m

    return j.under_commit_lock(switch)


def remove_segment_files(j: Journal, infos: Iterable[SegmentInfo]) -> int:
    """Delete segment files no manifest lists any more; return the bytes freed."""
    fs = j._fs
    freed = 0
    for s in infos:
        path = os.path.join(j._seg_dir, s.name)
        try:
            freed += fs.stat(path).st_size
            fs.unlink(path)
        except FileNotFoundError:
            pass
    if j.durability != "none":
        fs.fsync_dir(j._seg_dir)
    return freed
