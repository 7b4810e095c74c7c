"""``agcx verify``: read every byte of a journal and report every problem.

It reads the files directly (never through a writer, never taking a lock,
never changing anything): the manifest, every segment header, every record's
checksum, seq and time order, every payload decoded and upcast (and, for saves
and checkpoints, the nested message blobs), and each sealed segment against
what the manifest says of it. It keeps going after a problem, so one run
reports all of them, each with its file, offset and reason.

A torn tail of the active segment (bytes after its last whole record) is a
warning, not a problem: it is what a writer that died mid-commit leaves (or a
commit in progress), holds nothing acknowledged, and the next writer cuts it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import attrs

from journal import CorruptJournal, JournalError, RecordNotFound
from journal._codec import Codec
from journal._dictionary import DictionaryCache
from journal._events import EventType, event_name, upcast
from journal._format import (
    HEADER_SIZE,
    MAGIC,
    RECORD_OVERHEAD,
    Manifest,
    SegmentInfo,
    unpack_header,
)
from journal._graph import GRAPH_EVENTS, decode_graph_event
from journal._payloads import checkpoint_of, context_of, messages_of, modes_of, state_of
from journal._recover import Damage, read_manifest, read_segment, scan_damaged, segment_files
from journal._segment import Record
from journal._wire import checkpoint_meta_from_wire, metadata_from_wire

__all__ = ["Problem", "VerifyReport", "verify"]


@attrs.frozen
class Problem:
    """One thing wrong (or, as a warning, worth knowing) at a place in the journal."""

    path: str  # relative to the journal root: MANIFEST, segments/<name>
    offset: int | None
    reason: str

    def __str__(self) -> str:
        where = self.path if self.offset is None else f"{self.path} at offset {self.offset}"
        return f"{where}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "offset": self.offset, "reason": self.reason}


@attrs.frozen
class VerifyReport:
    """What ``verify`` read and what it found."""

    root: str
    segments: int
    records: int
    bytes: int
    first_seq: int
    last_seq: int
    events: dict[str, int]
    problems: tuple[Problem, ...]
    warnings: tuple[Problem, ...]
    seconds: float

    @property
    def intact(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "intact": self.intact,
            "segments": self.segments,
            "records": self.records,
            "bytes": self.bytes,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "events": dict(self.events),
            "problems": [p.to_json() for p in self.problems],
            "warnings": [w.to_json() for w in self.warnings],
            "seconds": round(self.seconds, 6),
        }


class _Verifier:
    def __init__(self, root: str, max_record_size: int) -> None:
        self.root = root
        self.max_record_size = max_record_size
        self.codec = Codec(max_payload=4 * max_record_size)
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.records = 0
        self.bytes = 0
        self.first_seq = 0
        self.last_seq = 0
        self.prev_ts = 0
        self.segments = 0
        self.events: Counter[str] = Counter()
        # Dictionaries seen so far: a blob may refer only to an earlier one.
        self.dictionary_records: dict[int, Record] = {}
        self.dictionaries = DictionaryCache(
            self._dictionary_record,
            lambda r: self.codec.decode(r.codec, r.payload),
            EventType.DICTIONARY_TRAINED,
        )

    def _dictionary_record(self, seq: int) -> Record:
        rec = self.dictionary_records.get(seq)
        if rec is None:
            raise RecordNotFound(f"no dictionary before it has seq {seq}")
        return rec

    def problem(self, path: str, offset: int | None, reason: str) -> None:
        self.problems.append(Problem(path, offset, reason))

    def warn(self, path: str, offset: int | None, reason: str) -> None:
        self.warnings.append(Problem(path, offset, reason))

    def run(self, progress: Callable[[int, int], None] | None) -> None:
        manifest: Manifest | None = None
        try:
            manifest = read_manifest(self.root)
        except CorruptJournal as exc:
            self.problem("MANIFEST", exc.offset, exc.reason)
        files = segment_files(self.root)
        seg_dir = os.path.join(self.root, "segments")
        try:
            others = sorted(set(os.listdir(seg_dir)) - set(files))
        except FileNotFoundError:
            self.problem("segments", None, "the segments directory is missing")
            others = []
        for name in others:
            what = "a temporary file of an unfinished write" if ".tmp." in name else "not a segment"
            self.warn(f"segments/{name}", None, f"{what} (ignored by readers)")
        plan: list[tuple[str, SegmentInfo | None, bool]] = []
        journal_id: bytes | None = None
        if manifest is not None:
            journal_id = manifest.journal_id
            listed = {s.name for s in manifest.segments}
            last = len(manifest.segments) - 1
            for i, seg in enumerate(manifest.segments):
                if seg.name not in files:
                    seqs = f" (records {seg.first_seq}..{seg.last_seq})" if seg.count else ""
                    self.problem(
                        f"segments/{seg.name}",
                        None,
                        f"segment listed in the manifest is missing{seqs}",
                    )
                    continue
                plan.append((seg.name, seg, i == last and not seg.sealed))
            for name in sorted(set(files) - listed):
                self.warn(
                    f"segments/{name}",
                    None,
                    "not listed in the manifest: a leftover of a crashed roll or of an "
                    "unfinished compaction (holds nothing acknowledged; readers ignore it)",
                )
        else:
            order = sorted(files, key=lambda n: (files[n][0], -files[n][1]))
            plan = [(n, None, k == len(order) - 1) for k, n in enumerate(order)]
        total = 0
        for name, _, _ in plan:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(seg_dir, name)).st_size
        done = 0
        bases = [info.base_seq if info else files[name][0] for name, info, _ in plan]
        for k, (name, info, active) in enumerate(plan):
            next_base = bases[k + 1] if k + 1 < len(bases) else None
            size = self.segment(name, files[name][0], info, active, journal_id, next_base)
            done += size
            if progress is not None:
                progress(done, total)

    def segment(
        self,
        name: str,
        base_seq: int,
        info: SegmentInfo | None,
        active: bool,
        journal_id: bytes | None,
        next_base: int | None,
    ) -> int:
        """Check one segment file; return its size."""
        rel = f"segments/{name}"
        path = os.path.join(self.root, rel)
        if info is not None:
            base_seq = info.base_seq
        with contextlib.ExitStack() as stack:
            try:
                if not stat.S_ISREG(os.lstat(path).st_mode):
                    self.problem(rel, None, "not a regular file (a symlink?): readers refuse it")
                    return 0
                buf = stack.enter_context(read_segment(path))
            except OSError as exc:
                self.problem(rel, None, f"cannot be read: {exc}")
                return 0
            self.segments += 1
            return self._segment_bytes(buf, rel, base_seq, info, active, journal_id, next_base)

    def _segment_bytes(
        self,
        buf: Any,
        rel: str,
        base_seq: int,
        info: SegmentInfo | None,
        active: bool,
        journal_id: bytes | None,
        next_base: int | None,
    ) -> int:
        size = len(buf)
        if info is not None and info.sealed and size != info.length:
            self.problem(
                rel,
                min(size, info.length),
                f"sealed segment is {size} bytes, the manifest says {info.length}",
            )
        if size < HEADER_SIZE:
            self.problem(rel, 0, f"file is {size} bytes, shorter than a segment header")
            return size
        header = bytes(buf[:HEADER_SIZE])
        if header[:4] != MAGIC:
            self.problem(rel, 0, f"bad magic {header[:4]!r}: not an AGCX segment")
            return size
        try:
            h = unpack_header(header, rel)
        except CorruptJournal as exc:
            self.problem(rel, exc.offset, f"segment header: {exc.reason}")
        else:
            if h.base_seq != base_seq:
                self.problem(rel, 8, f"header says base seq {h.base_seq}, expected {base_seq}")
            if journal_id is not None and h.journal_id != journal_id:
                self.problem(rel, 24, "segment belongs to another journal (journal id)")
        count = 0
        first_seq = last_seq = first_ts = last_ts = 0
        for item in scan_damaged(
            buf, HEADER_SIZE, self.max_record_size, self.last_seq, self.prev_ts
        ):
            if isinstance(item, Damage):
                self.damage(rel, item, active)
                continue
            offset, body_len, seq, ts, etype, codec, _, pstart = item
            if not count:
                first_seq, first_ts = seq, ts
            count += 1
            last_seq, last_ts = seq, ts
            if seq < base_seq:
                self.problem(rel, offset, f"seq {seq} is below the segment's base seq {base_seq}")
            if next_base is not None and seq >= next_base:
                self.problem(
                    rel, offset, f"seq {seq} belongs to the next segment (base seq {next_base})"
                )
            payload = bytes(buf[pstart : pstart + body_len - (RECORD_OVERHEAD - 8)])
            self.payload(rel, offset, seq, etype, codec, payload)
            self.records += 1
            self.bytes += 8 + body_len
            if not self.first_seq:
                self.first_seq = seq
            self.last_seq, self.prev_ts = seq, ts
        if info is not None and info.sealed:
            got = (count, first_seq, last_seq, first_ts, last_ts)
            want = (info.count, info.first_seq, info.last_seq, info.first_ts, info.last_ts)
            if count == 0 and info.count == 0:
                pass
            elif got != want:
                self.problem(
                    rel,
                    None,
                    f"holds {count} records, seq {first_seq}..{last_seq}; the manifest says "
                    f"{info.count} records, seq {info.first_seq}..{info.last_seq}"
                    + ("" if got[:3] != want[:3] else " (and other first/last times)"),
                )
        return size

    def damage(self, rel: str, d: Damage, active: bool) -> None:
        span = f"{d.end - d.start} bytes unreadable from offset {d.start} to {d.end}"
        if active and d.last:
            self.warn(
                rel,
                d.at,
                f"torn tail: {d.reason}; {span} (left by a writer that died mid-commit, or a "
                "commit in progress: nothing acknowledged; the next writer cuts it)",
            )
        else:
            self.problem(rel, d.at, f"{d.reason}; {span}")

    def payload(self, rel: str, offset: int, seq: int, etype: int, codec: int, data: bytes) -> None:
        try:
            ev = upcast(etype, self.codec.decode(codec, data))
            self.events[event_name(etype)] += 1
            if etype == EventType.SESSION_SAVED:
                if "meta" in ev or "md" not in ev:
                    metadata_from_wire(ev["meta"])
                elif type(ev["md"]) is not dict:  # the metadata keys that changed (schema 2)
                    raise TypeError("metadata changes ('md') are not a map")
                messages_of(ev, f"seq {seq} messages", self.dictionaries)
                v = ev.get("v", 1)
                for key, decode in (("cx", context_of), ("mh", modes_of), ("st", state_of)):
                    if key in ev:
                        decode(v, ev[key])
            elif etype == EventType.CHECKPOINT_CREATED:
                checkpoint_meta_from_wire(ev["meta"])
                checkpoint_of(ev, f"seq {seq} checkpoint")
            elif etype in GRAPH_EVENTS:
                decode_graph_event(etype, ev)
            elif etype == EventType.DICTIONARY_TRAINED:
                rec = Record(seq, 0, etype, bytes(16), codec, data, 0, offset)
                self.dictionary_records[seq] = rec
                self.dictionaries.get(seq)  # loads: a dictionary zstd refuses is damage
        except JournalError as exc:
            self.problem(rel, offset, f"seq {seq}: {exc}")
        except (KeyError, TypeError, ValueError) as exc:
            self.problem(rel, offset, f"seq {seq}: malformed event payload ({exc!r})")


def _place(p: Problem) -> tuple[str, int]:
    return (p.path, -1 if p.offset is None else p.offset)


def verify(
    root: str,
    *,
    max_record_size: int = 64 << 20,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Check every byte of the journal at ``root``; never changes anything."""
    started = time.monotonic()
    if not os.path.isdir(root):
        raise JournalError(f"{root} is not a directory (no journal there)")
    v = _Verifier(root, max_record_size)
    v.run(progress)
    return VerifyReport(
        root=root,
        segments=v.segments,
        records=v.records,
        bytes=v.bytes,
        first_seq=v.first_seq,
        last_seq=v.last_seq,
        events=dict(v.events),
        problems=tuple(sorted(v.problems, key=_place)),
        warnings=tuple(v.warnings),
        seconds=time.monotonic() - started,
    )
