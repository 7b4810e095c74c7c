"""The runner: catches projections up with the log and persists their state.

On open it restores each projection's ``.snap`` when the snap belongs to this
journal, its seq is still in the log (same seq, same timestamp) and it was
taken at the current compaction horizon; otherwise it rebuilds from the start.
It replays only the tail after that. State is persisted atomically, and only
by a writer; the log stays the only truth, so a missing, stale, foreign or
damaged snap costs time, never correctness.
"""

from __future__ import annotations

import contextlib
import os
import struct
import threading
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import msgpack

from journal._codec import RAW, unpack_bounded
from journal._errors import CorruptJournal, CorruptPayload, JournalError, RecordNotFound
from journal._events import AS_IS_VERSIONS, EventType, upcast
from journal._log import Journal
from journal._segment import Record
from projections._base import Projection, gc_paused

__all__ = ["ProjectionRunner"]

_unpackb = msgpack.unpackb
_SNAP_MAGIC = b"AGCP"
# 2: the body is plain msgpack (version 1 compressed it whole); projections
# compress their own large parts and unpack them when first used.
_SNAP_VERSION = 2
_SNAP_HEADER = struct.Struct("<4sHHII")  # magic, version, reserved, body_len, crc
_MAX_SNAP = 1 << 30
_SECRETS_SCRUBBED = int(EventType.SECRETS_SCRUBBED)


def _rewritten_at(j: Journal, rec: Record) -> int:
    """The manifest generation that listed a ``SecretsScrubbed``'s rewritten
    segments (unknown: larger than any, so the state is rebuilt)."""
    try:
        gen = j.decode(rec).get("gen")
    except (JournalError, AttributeError):
        gen = None
    return gen if type(gen) is int else 1 << 62


class ProjectionRunner:
    """Feeds records to projections in seq order, up to ``until_seq`` if given.

    Thread-safe: every method takes the runner's lock, and readers of the
    projections' state hold :attr:`lock` while they read.
    """

    def __init__(
        self,
        journal: Journal,
        projections: Sequence[Projection],
        *,
        until_seq: int | None = None,
        snap_dir: str | None = None,
        persist_every: int = 20_000,
    ) -> None:
        self.journal = journal
        self.projections = list(projections)
        self.until_seq = until_seq
        self.snap_dir = snap_dir
        self.persist_every = persist_every
        self.seq = 0
        self.ts_ns = 0
        self.lock = threading.RLock()
        self.restored_from_snapshot = False
        self.horizon_seq: int | None = None  # the compaction horizon the state was built at
        self.persist_error: OSError | None = None
        self._persisted: tuple[int, int | None] | None = None  # (seq, horizon) of the snaps
        self.replayed = 0
        self._since_persist = 0
        # Rebuilds from the start (compaction, scrub): derived views keyed by
        # the projections' change counters include it, as those start again.
        self.rebuilds = 0
        # The manifest generation the state's replay began at (-1: unknown, as
        # for a restored snap): a SecretsScrubbed whose rewrite came later
        # means the state was built from records since rewritten.
        self._built_at = -1

    # -- replay --------------------------------------------------------------------------

    def catch_up(self) -> int:
        """Apply every record after the last one applied; return the last seq applied."""
        with self.lock:
            j = self.journal
            last = j.refresh()
            horizon = j.manifest.horizon_seq
            if horizon == self.horizon_seq and (
                last <= self.seq or (self.until_seq is not None and self.seq >= self.until_seq)
            ):
                return self.seq  # the common case on every query: nothing new
            if horizon != self.horizon_seq:
                if self.horizon_seq is not None and self.seq:
                    # Compaction replaced the records the state points at
                    # (same answers, other seqs): rebuild from the new log.
                    self._reset()
                    self.seq = self.ts_ns = 0
                self.horizon_seq = horizon
            n = 0
            if self.seq == 0:
                self._built_at = j.manifest.generation
            until = last if self.until_seq is None else min(last, self.until_seq)
            recent = j.recent_records(self.seq + 1, until)
            records: Iterable[Record] = (
                recent if recent is not None else j.scan(from_seq=self.seq + 1, until_seq=until)
            )
            for rec in records:
                if (
                    rec.event_type == _SECRETS_SCRUBBED
                    and self.seq
                    and self._built_at < _rewritten_at(j, rec)
                ):
                    # The records before it were rewritten in place after this
                    # state was built from them: it may hold what was scrubbed.
                    self._reset()
                    self.seq = self.ts_ns = 0
                    return self.catch_up()
                self._apply(rec)
                n += 1
            self.replayed += n
            self._note_applied(n)
            return self.seq

    def apply_own(
        self, records: Sequence[Record], events: Sequence[dict[str, Any]] | None = None
    ) -> bool:
        """Apply records this process just committed, without reading them back.

        When other batches of the same group commit precede them, those are
        applied first (the journal keeps its own recent records in memory); if
        anything else came in between, nothing is applied and the next
        :meth:`catch_up` reads it all in order. Returns whether ``records`` are
        applied now.

        ``events``, when given, are the records' payloads as the caller built
        them (one per record, current schema, plain msgpack types): folded as
        they are instead of decompressing and decoding the records again.
        """
        own = records
        with self.lock:
            if not records:
                return False
            if records[-1].seq <= self.seq:
                return True  # already applied with the rest of its group commit
            if self.until_seq is not None and records[-1].seq > self.until_seq:
                return False
            if self.journal.manifest.horizon_seq != self.horizon_seq:
                return False
            if any(r.event_type == _SECRETS_SCRUBBED for r in records):
                return False  # the next catch_up rebuilds from the rewritten log
            first = records[0].seq
            if first > self.seq + 1:
                # Other batches of the same group commit (this process's own,
                # kept in memory) come first: apply them too, in seq order.
                gap = self.journal.recent_records(self.seq + 1, first - 1)
                if gap is None:
                    return False
                records = [*gap, *records]
            elif first <= self.seq:
                records = [r for r in records if r.seq > self.seq]
            known = {} if events is None else {r.seq: e for r, e in zip(own, events, strict=True)}
            for rec in records:
                self._apply(rec, known.get(rec.seq))
            self._note_applied(len(records))
            return True

    def _apply(self, rec: Record, event: Any = None) -> None:
        if event is not None:
            self._fold(rec, event)
            return
        j = self.journal
        # The common case inline (it is most of a replay's own time): a raw
        # outer map of the current schema. msgpack bounds every length by the
        # payload's, as ``unpack_bounded`` does; on any failure the journal's
        # own decode runs again and raises its error for this damage.
        if rec.codec == RAW:
            try:
                event = _unpackb(rec.payload, strict_map_key=False)
            except Exception:
                event = None
        try:
            if event is None:
                event = j.decode(rec)
            if (
                type(event) is not dict
                or type(v := event.get("v", 1)) is not int
                or v not in AS_IS_VERSIONS
            ):
                event = upcast(rec.event_type, event)  # checks, and upcasts older layouts
        except CorruptPayload as exc:
            raise JournalError(f"seq {rec.seq}: {exc}") from exc
        self._fold(rec, event)

    def _fold(self, rec: Record, event: Any) -> None:
        j = self.journal
        try:
            for p in self.projections:
                p.apply(rec, event)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CorruptJournal(
                j.segment_path(rec.segment),
                rec.offset,
                f"seq {rec.seq}: malformed event payload ({exc!r})",
            ) from exc
        self.seq = rec.seq
        self.ts_ns = rec.ts_ns

    def _note_applied(self, n: int) -> None:
        self._since_persist += n
        if self.snap_dir is not None and self._since_persist >= self.persist_every:
            self.persist()

    # -- snapshots -----------------------------------------------------------------------

    def _snap_path(self, p: Projection) -> str:
        assert self.snap_dir is not None
        return os.path.join(self.snap_dir, f"{p.name}.snap")

    def restore(self) -> bool:
        """Restore every projection from its snap, or none; True if restored."""
        if self.snap_dir is None:
            return False
        # Restoring allocates a few containers per session, all long-lived:
        # the cyclic GC would walk them again and again meanwhile.
        with gc_paused():
            return self._restore()

    def _restore(self) -> bool:
        with self.lock:
            loaded: list[tuple[Projection, Any]] = []
            seq_ts: set[tuple[int, int]] = set()
            for p in self.projections:
                got = self._read_snap(p)
                if got is None:
                    return False
                seq, ts, state = got
                seq_ts.add((seq, ts))
                loaded.append((p, state))
            if len(seq_ts) != 1:
                return False  # snaps of different moments: rebuild rather than mix
            seq, ts = seq_ts.pop()
            if self.until_seq is not None and seq > self.until_seq:
                return False
            try:
                for p, state in loaded:
                    p.load_state(state)
            except (KeyError, TypeError, ValueError, AttributeError, IndexError):
                self._reset()
                return False
            self.seq, self.ts_ns = seq, ts
            self._built_at = -1  # whoever built the snap, it may predate a scrub
            self.horizon_seq = self.journal.manifest.horizon_seq
            self._persisted = (seq, self.horizon_seq)
            self.restored_from_snapshot = True
            return True

    def _reset(self) -> None:
        self.rebuilds += 1
        for p in self.projections:
            p.__init__()  # type: ignore[misc]

    def _read_snap(self, p: Projection) -> tuple[int, int, Any] | None:
        """The snap's (seq, ts, state) if it can be trusted for this journal, else None."""
        try:
            with open(self._snap_path(p), "rb") as f:
                # read(n) allocates n bytes up front: ask for the file's size
                # (+1, so a file that grew meanwhile fails the length check),
                # not the cap (0.15 ms of an open for each snap).
                size = os.fstat(f.fileno()).st_size
                if size > _SNAP_HEADER.size + _MAX_SNAP:
                    return None
                data = f.read(size + 1)
        except OSError:
            return None
        try:
            magic, version, _, body_len, crc = _SNAP_HEADER.unpack_from(data)
            body = data[_SNAP_HEADER.size :]
            if magic != _SNAP_MAGIC or version != _SNAP_VERSION or len(body) != body_len:
                return None
            if zlib.crc32(body) != crc:
                return None
            snap = unpack_bounded(body)
            j = self.journal
            m = j.manifest
            if (
                snap["jid"] != j.journal_id
                or snap["pv"] != p.version
                or snap["hs"] != m.horizon_seq
            ):
                return None
            seq, ts = int(snap["seq"]), int(snap["ts"])
            if seq:
                try:
                    if j.read(seq).ts_ns != ts:
                        return None
                except RecordNotFound:
                    return None
            return seq, ts, snap["state"]
        except (JournalError, KeyError, TypeError, ValueError, struct.error):
            return None

    def persist(self) -> None:
        """Write every projection's state to its snap (atomically).

        A snap is only a cache: if it cannot be written (disk full, I/O error)
        the next open replays more of the log, nothing is lost. The error is
        kept in :attr:`persist_error` rather than raised from ``close()``.
        """
        if self.snap_dir is None or self.journal.readonly:
            return
        if self._persisted == (self.seq, self.horizon_seq):
            return  # the snaps on disk already say exactly this
        try:
            self._persist()
            self._persisted = (self.seq, self.horizon_seq)
            self.persist_error = None
        except OSError as exc:
            self.persist_error = exc

    def forget_persisted(self) -> None:
        """The snap files changed behind the runner's back: write them on the next persist."""
        self._persisted = None

    def _persist(self) -> None:
        assert self.snap_dir is not None
        with self.lock:
            fs = self.journal._fs
            with contextlib.suppress(FileExistsError):
                fs.mkdir(self.snap_dir, 0o700)
            sync = self.journal.durability != "none"
            for p in self.projections:
                body = msgpack.packb(
                    {
                        "jid": self.journal.journal_id,
                        "pv": p.version,
                        "seq": self.seq,
                        "ts": self.ts_ns,
                        "hs": self.journal.manifest.horizon_seq,
                        "state": p.to_state(),
                    },
                    use_bin_type=True,
                )
                head = _SNAP_HEADER.pack(_SNAP_MAGIC, _SNAP_VERSION, 0, len(body), zlib.crc32(body))
                fs.write_file_atomic(self._snap_path(p), head + body, sync=sync)
            self._since_persist = 0
