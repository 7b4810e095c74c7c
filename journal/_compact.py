"""Compaction and purge: cleanup that never loses what it must keep.

**Compaction** rewrites the sealed segments older than the retention window
into the fewest events that rebuild the same state at the cut (the last seq of
those segments), which becomes the horizon:

* per live session, one full ``SessionSaved`` with everything folded in
  (deltas, tags, favorite, title, last access). It takes the seq and time of
  the save that began the session's current life, so it precedes the
  session's checkpoints as the original did;
* the live checkpoints' ``CheckpointCreated`` records, verbatim;
* ``LegacyImported`` and ``CodexImported`` (so a re-import stays a no-op),
  ``SessionPurged`` and ``SecretsScrubbed`` (the audit trail of purges
  and scrubs), verbatim;
* the ``CodexLines`` records of live sessions, verbatim;
* the ``DictionaryTrained`` records that a kept record, or any record after
  the cut, needs to decode its messages, verbatim;
* per graph thread, the records its live checkpoints, their values and writes
  are in (verbatim), and the graph deletions, forks and prunes;
* nothing of deleted sessions or threads, nothing superseded.

Seqs are kept (gaps are fine); the active segment is never compacted.

**Purge** is the privacy path: it appends ``SessionPurged``, seals the active
segment, and rewrites every segment holding a record of the session without
those records, and without the dictionaries trained on its messages (the
blobs compressed with those are written again without one), so no byte of
its content stays in the journal (its
``LegacyImported`` records, a file name and hash, stay so that a re-import
does not resurrect it); projection snapshots and quarantined tails, which may
hold its bytes too, are removed.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

import attrs

from journal._dictionary import read_dictionary_event
from journal._errors import InvalidArgument, JournalBusy, SessionNotFound, ThreadShared
from journal._events import EventType, blob_dictionary, blob_of, upcast
from journal._fork import give_forks_their_own
from journal._format import HEADER_SIZE, SegmentInfo
from journal._graph import GRAPH_EVENTS, decode_graph_event
from journal._log import Entry, Journal, from_ns
from journal._rewrite import (
    RewriteConflict,
    remove_segment_files,
    switch_segments,
    write_segment_files,
)
from journal._segment import Record
from projections._graphs import SEQ as CK_SEQ
from projections._graphs import GraphCheckpoints

if TYPE_CHECKING:
    from journal._store import SessionStore

__all__ = ["CompactionReport", "PurgeReport", "compact", "plan_cut", "purge", "replace_segments"]

_KEPT_VERBATIM = (
    EventType.LEGACY_IMPORTED,
    EventType.CODEX_IMPORTED,
    EventType.SESSION_PURGED,
    EventType.SECRETS_SCRUBBED,
    # Graph deletions, forks and prunes: small, and the graph index is rebuilt
    # from them (a tombstone keeps refusing late writes after compaction).
    EventType.GRAPH_THREAD_DELETED,
    EventType.GRAPH_RUNS_DELETED,
    EventType.GRAPH_THREAD_COPIED,
    EventType.GRAPH_THREAD_PRUNED,
)
# Kept verbatim while their session lives: the lines of an imported Codex
# rollout that are not messages (journal/_codex.py).
_KEPT_WHILE_LIVE = (EventType.CODEX_LINES,)


def _dt(ns: int) -> datetime | None:
    return from_ns(ns) if ns else None


@attrs.frozen
class CompactionReport:
    """What a compaction did (or, with ``dry_run``, would do)."""

    dry_run: bool
    horizon_seq: int
    horizon_time: datetime | None
    segments_before: int
    segments_after: int
    records_before: int
    records_after: int
    bytes_before: int
    bytes_after: int
    live_sessions: int
    live_checkpoints: int
    seconds: float
    #: Why nothing was (or would be) compacted, when nothing was; else "".
    note: str = ""

    @property
    def reclaimed_bytes(self) -> int:
        return max(0, self.bytes_before - self.bytes_after)

    def to_json(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["horizon_time"] = self.horizon_time.isoformat() if self.horizon_time else None
        d["reclaimed_bytes"] = self.reclaimed_bytes
        return d


@attrs.frozen
class PurgeReport:
    """What a purge removed."""

    session_id: UUID
    purge_seq: int
    records_removed: int
    bytes_removed: int
    segments_rewritten: int
    files_removed: tuple[str, ...]
    seconds: float
    dictionaries_removed: int = 0
    note: str = (
        "point-in-time views before the purge no longer contain this session; "
        "the rest of the history is unchanged"
    )

    def to_json(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["session_id"] = str(self.session_id)
        d["files_removed"] = list(self.files_removed)
        return d


@contextlib.contextmanager
def _exclusive(j: Journal, what: str, *, wait: bool = False) -> Iterator[None]:
    with j.rewrite_lock(wait=wait) as free:
        if not free:
            path = os.path.join(j.root, "COMPACT")
            raise JournalBusy(
                path, None, 0, f"journal busy: another compaction or purge holds {path}; "
                f"the {what} did not start: retry when it has finished",
            )
        yield


def plan_cut(
    j: Journal, retain: timedelta, *, active_too: bool = False
) -> list[SegmentInfo]:
    """The leading sealed segments whose every record is older than ``now - retain``
    (``active_too``: the active segment counts as sealed, as after ``seal``)."""
    return _plan_cut(j, retain, active_too)[0]


def _plan_cut(j: Journal, retain: timedelta, active_too: bool) -> tuple[list[SegmentInfo], str]:
    """``plan_cut`` and, when it is empty, why (for the report)."""
    if not isinstance(retain, timedelta) or retain < timedelta(0):
        raise InvalidArgument(f"retain must be a non-negative timedelta, got {retain!r}")
    j.refresh()
    cutoff = time.time_ns() - int(retain.total_seconds() * 1e9)
    segments = list(j.manifest.segments)
    if active_too and not segments[-1].sealed:
        # The active segment as sealing it now would enter it in the manifest.
        seg = j._snapshot()[0][-1]
        segments[-1] = SegmentInfo(
            seg.base_seq, True, seg.first_seq, seg.last_seq, seg.count, seg.first_ts,
            seg.last_ts, seg.scanned_to,
        )
    prefix: list[SegmentInfo] = []
    for s in segments:
        if not s.sealed or (s.count and s.last_ts > cutoff):
            break
        prefix.append(s)
    # Nothing new to fold: the prefix is what the last compaction already wrote.
    if prefix and all(s.file and s.last_seq <= j.manifest.horizon_seq for s in prefix):
        return [], "the segments older than the retention window are already compacted"
    if prefix:
        return prefix, ""
    first = segments[0]
    if not first.sealed:
        return [], (
            f"every record is in the active segment ({_size(first.length)} of "
            f"{_size(j.segment_size)}), which is never compacted until it is sealed: "
            "seal it (`agcx compact --seal`, or seal=True) to compact it now"
        )
    if not first.count:
        return [], "the journal holds no records"
    age = from_ns(first.last_ts).isoformat(timespec="seconds")
    return [], (
        f"the oldest segment holds records newer than the retention window "
        f"({_retention(retain)}; its newest is from {age}): give a shorter retention"
    )


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    return f"{n / 1024:.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.1f} MiB"


def _retention(retain: timedelta) -> str:
    secs = int(retain.total_seconds())
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs and secs % n == 0:
            return f"{secs // n}{unit}"
    return f"{secs}s"


def _scan_segments(j: Journal, infos: list[SegmentInfo]) -> Iterator[Record]:
    last = max((s.last_seq for s in infos if s.count), default=0)
    if last:
        yield from j.scan(from_seq=infos[0].base_seq, until_seq=last)


def compact(
    store: SessionStore,
    retain: timedelta,
    *,
    dry_run: bool = False,
    seal: bool = False,
    wait: bool = False,
) -> CompactionReport:
    """Fold the sealed segments older than ``retain``; see the module docstring.

    ``seal`` seals the active segment first (a dry run counts it as sealed);
    ``wait`` waits for a compaction or purge running meanwhile instead of
    refusing with :class:`journal.JournalBusy`.
    """
    from journal._store import PointInTimeView, full_save_payload

    started = time.perf_counter()
    j = store.journal
    with _exclusive(j, "compaction", wait=wait):
        if seal and not dry_run:
            j.seal_active()
        store._sync()
        prefix, note = _plan_cut(j, retain, seal and dry_run)
        total_segments = len(j.manifest.segments)
        if not prefix:
            return CompactionReport(
                dry_run, j.manifest.horizon_seq, _dt(j.manifest.horizon_ts), total_segments,
                total_segments, 0, 0, 0, 0, 0, 0, time.perf_counter() - started, note,
            )
        counted = [s for s in prefix if s.count]
        cut = max((s.last_seq for s in counted), default=prefix[-1].base_seq - 1)
        cut_ts = max((s.last_ts for s in counted), default=j.manifest.horizon_ts)
        view = PointInTimeView(j, cut, None)
        kept: dict[int, Record] = {}
        codec = j._codec
        needed: set[int] = set()  # dictionaries kept records refer to
        live_checkpoints = 0
        for sid, chain in view._contents.chains.items():
            meta_wire = view._index.sessions.get(sid)
            if meta_wire is None:
                # Content without metadata: only a salvaged journal that lost the
                # session's full save has that. Nothing to fold it into: kept as it is.
                for seq in chain.seqs:
                    kept[seq] = rec = j.read(seq)
                    _note_dictionary(j, rec, needed)
                for ck in chain.checkpoints.values():
                    kept[int(ck[0])] = j.read(int(ck[0]))
                    live_checkpoints += 1
                continue
            first = j.read(chain.born)
            if chain.seqs == [chain.born] and first.event_type == EventType.SESSION_SAVED:
                ev = upcast(first.event_type, j.decode(first))
                same_meta = (
                    "meta" in ev
                    and {k: v for k, v in ev["meta"].items() if k != "ck"} == meta_wire
                )
                if same_meta:
                    kept[first.seq] = first  # already one full save: keep its bytes
                    if (ref := blob_dictionary(ev)) is not None:
                        needed.add(ref)
            if first.seq not in kept:
                base = view._read_chain(chain.seqs)
                payload = full_save_payload(
                    meta_wire, base.conversation_id, base.messages, base.context,
                    base.mode_history, base.state,
                )
                if chain.origin is not None:
                    payload["fk"] = chain.origin  # the fork's own full save
                c, data = codec.encode(payload, compress=False)
                kept[first.seq] = Record(
                    first.seq, first.ts_ns, EventType.SESSION_SAVED, sid, c, data, 0, 0
                )
            for ck in chain.checkpoints.values():
                kept[int(ck[0])] = j.read(int(ck[0]))
                live_checkpoints += 1
        graph_seqs = _graph_records(j, view._graphs, cut)
        live_checkpoints += view._graphs.checkpoint_count()
        records_before = bytes_before = 0
        for rec in _scan_segments(j, prefix):
            records_before += 1
            if rec.event_type in _KEPT_VERBATIM or (
                rec.event_type in _KEPT_WHILE_LIVE and rec.session in view._index.sessions
            ):
                kept[rec.seq] = rec
        bytes_before = sum(s.length for s in prefix)
        # Later records may refer to a dictionary of the prefix (a save whose
        # commit rolled to a new segment); no new reference to one can appear
        # (rule 2 in journal/_dictionary.py), so this scan is enough.
        for rec in j.scan(from_seq=cut + 1):
            _note_dictionary(j, rec, needed)
            _note_graph_values(j, rec, view._graphs, cut, graph_seqs)
        needed |= graph_seqs
        for seq in sorted(needed):
            if seq <= cut:
                kept[seq] = j.read(seq)
        out = [kept[s] for s in sorted(kept)]
        if dry_run:
            size = sum(r.size for r in out)
            n_files = max(1, -(-size // j.segment_size))
            return CompactionReport(
                True, cut, _dt(cut_ts), total_segments,
                total_segments - len(prefix) + n_files, records_before, len(out),
                bytes_before, size + n_files * HEADER_SIZE, len(view._contents.chains),
                live_checkpoints, time.perf_counter() - started,
            )
        new = write_segment_files(
            j, out, generation=j.manifest.generation + 1, first_base=prefix[0].base_seq
        )
        try:
            switch_segments(j, prefix, new, horizon=(cut, cut_ts))
        except RewriteConflict:
            remove_segment_files(j, new)
            raise
        remove_segment_files(j, prefix)
        store._after_rewrite()
        return CompactionReport(
            False, cut, _dt(cut_ts), total_segments, len(j.manifest.segments),
            records_before, len(out), bytes_before, sum(s.length for s in new),
            len(view._contents.chains), live_checkpoints, time.perf_counter() - started,
        )


def purge(store: SessionStore, session_id: UUID, actor: str | None = None) -> PurgeReport:
    """Delete a session and remove every byte of it from the journal."""
    started = time.perf_counter()
    j = store.journal
    sid = session_id.bytes
    with _exclusive(j, "purge"):
        store._sync()
        own = [r for r in j.scan() if r.session == sid]
        if not own:
            raise SessionNotFound(f"no record of session {session_id} in the journal")
        thread = _graph_thread(j, store._graphs, own)
        # Forks reading the session's records get their own copy first: once
        # these full saves are durable, removing its bytes leaves them whole.
        give_forks_their_own(store, sid)
        payload: dict[str, Any] = {"v": 1}
        if actor:
            payload["actor"] = actor
        if thread is not None:
            # The graphs projection drops the thread and keeps refusing its
            # late writes, as after delete_thread (the thread's own tombstones go).
            payload["graph"] = thread
        purge_seq = store._append([Entry(EventType.SESSION_PURGED, payload, session_id)])[0]
        j.seal_active()
        replaced: list[SegmentInfo] = []
        new: list[SegmentInfo] = []
        removed = removed_bytes = 0
        generation = j.manifest.generation + 1
        # One pass in seq order: a blob only ever refers back, so every
        # dictionary trained on the session is known before a blob that uses it.
        trained_on: set[int] = set()
        for s in j.manifest.segments:
            if not s.sealed or not s.count:
                continue
            recs = list(_scan_segments(j, [s]))
            keep, doomed = [], []
            for r in recs:
                if _purged(r, sid, purge_seq) or _trained_on(j, r, sid):
                    doomed.append(r)
                    if r.event_type == EventType.DICTIONARY_TRAINED:
                        trained_on.add(r.seq)
                elif trained_on and _dictionary_of(j, r) in trained_on:
                    keep.append(_without_dictionary(j, r))
                else:
                    keep.append(r)
            if not doomed and all(a is b for a, b in zip(keep, recs, strict=True)):
                continue
            removed += len(doomed)
            removed_bytes += sum(r.size for r in doomed)
            new += write_segment_files(
                j, keep, generation=generation, first_base=s.base_seq, max_size=1 << 62
            )
            replaced.append(s)
        files = replace_segments(j, replaced, new)
        store._after_rewrite(forget=sid)
        return PurgeReport(
            session_id, purge_seq, removed, removed_bytes, len(replaced), tuple(files),
            time.perf_counter() - started, len(trained_on),
        )


def _graph_thread(j: Journal, graphs: GraphCheckpoints, own: list[Record]) -> str | None:
    """The graph thread whose records ``own`` are (None for a session), after
    checking that no other thread reads them: a fork made by ``copy_thread``
    refers to its source's records, and has no copy of its own to fall back on."""
    first = next((r for r in own if r.event_type in GRAPH_EVENTS), None)
    if first is None:
        return None
    thread: str = _graph_event(j, first.seq).thread
    seqs = {r.seq for r in own}
    key = own[0].session
    readers = sorted(
        tid
        for k, (tid, spaces) in graphs.threads.items()
        if k != key and any(_reads(n, seqs) for n in spaces.values())
    )
    if readers:
        raise ThreadShared(
            f"graph thread {thread!r} is not purged: its records are read by "
            f"{', '.join(map(repr, readers))} (forks made by copy_thread). Purge or "
            f"delete those first, or JournalSaver.delete_thread({thread!r}) and compact: "
            "compaction drops every byte of it that no fork needs",
            thread, tuple(readers),
        )
    return thread


def _reads(n: list[Any], seqs: set[int]) -> bool:
    """Whether a namespace's checkpoints, writes or values are in the records ``seqs``."""
    cks, writes, blobs = n
    return (
        any(ck[CK_SEQ] in seqs for ck in cks.values())
        or any(w[0] in seqs for t in writes.values() for i in t.values() for w in i.values())
        or any(loc[0] in seqs for v in blobs.values() for loc in v.values())
    )


def _graph_records(j: Journal, graphs: GraphCheckpoints, cut: int) -> set[int]:
    """The records the graph threads need at the cut: every live (and hidden:
    a delta channel's ancestry) checkpoint's, the records holding the values
    of the channel versions those checkpoints name (often an older
    checkpoint's, pruned since), and the records of their writes.

    Deleted threads, dropped checkpoints and superseded writes are not named:
    their bytes go. A fork's checkpoints are its source's records: they are
    named through the fork and kept while either thread needs them.
    """
    keep: set[int] = set()
    for _, spaces in graphs.threads.values():
        for cks, writes, blobs in spaces.values():
            for ck in cks.values():
                keep.add(ck[CK_SEQ])
                for ch, ver in _graph_event(j, ck[CK_SEQ]).versions.items():
                    loc = blobs.get(ch, {}).get(ver)
                    if loc is not None:
                        keep.add(loc[0])
            for tasks in writes.values():
                for idxs in tasks.values():
                    keep.update(w[0] for w in idxs.values())
    return {s for s in keep if s <= cut}


def _note_graph_values(
    j: Journal, rec: Record, graphs: GraphCheckpoints, cut: int, keep: set[int]
) -> None:
    """A checkpoint after the cut may name a channel version whose value is
    stored before it (an unchanged channel): keep that record too."""
    if rec.event_type != EventType.GRAPH_CHECKPOINT_PUT:
        return
    ev = decode_graph_event(rec.event_type, upcast(rec.event_type, j.decode(rec)))
    n = graphs.namespace(ev.thread, ev.ns)
    if n is None:
        return
    for ch, ver in ev.versions.items():
        loc = n[2].get(ch, {}).get(ver)
        if loc is not None and loc[0] <= cut:
            keep.add(loc[0])


def _graph_event(j: Journal, seq: int) -> Any:
    rec = j.read(seq)
    return decode_graph_event(rec.event_type, upcast(rec.event_type, j.decode(rec)))


def replace_segments(j: Journal, replaced: list[SegmentInfo], new: list[SegmentInfo]) -> list[str]:
    """List ``new`` instead of ``replaced`` (purge, scrub), remove the old files,
    and the copies of journal bytes outside the segments; return the copies removed."""
    if replaced:
        try:
            switch_segments(j, replaced, new)
        except RewriteConflict:
            remove_segment_files(j, new)
            raise
        remove_segment_files(j, replaced)
    j.dictionaries.forget()
    return _remove_derived_copies(j)


def _trained_on(j: Journal, rec: Record, sid: bytes) -> bool:
    """Whether ``rec`` is a dictionary trained on messages of session ``sid``."""
    if rec.event_type != EventType.DICTIONARY_TRAINED:
        return False
    _, sources = read_dictionary_event(upcast(rec.event_type, j.decode(rec)))
    return sid in sources


def _dictionary_of(j: Journal, rec: Record) -> int | None:
    """The seq of the dictionary ``rec``'s messages are compressed with, if any."""
    if rec.event_type != EventType.SESSION_SAVED:
        return None
    return blob_dictionary(upcast(rec.event_type, j.decode(rec)))


def _note_dictionary(j: Journal, rec: Record, needed: set[int]) -> None:
    ref = _dictionary_of(j, rec)
    if ref is not None:
        needed.add(ref)


def _without_dictionary(j: Journal, rec: Record) -> Record:
    """``rec`` with its messages compressed alone (same seq, time and session)."""
    ev = upcast(rec.event_type, j.decode(rec))
    ev["msgs"] = blob_of(j.dictionaries.unpack(ev["msgs"]))
    if ev.get("v", 1) <= 3:  # schema 3 only marked the dictionary blob
        ev["v"] = 2 if "md" in ev else 1
    codec, data = j._codec.encode(ev, compress=False)
    return attrs.evolve(rec, codec=codec, payload=data)


def _purged(rec: Record, sid: bytes, purge_seq: int) -> bool:
    """Whether purge removes this record. ``LegacyImported`` and
    ``CodexImported`` records stay: they hold only a file name, size and hash,
    and they stop a re-import from bringing the purged session back."""
    return (
        rec.session == sid
        and rec.seq < purge_seq
        and rec.event_type not in (EventType.LEGACY_IMPORTED, EventType.CODEX_IMPORTED)
    )


def _remove_derived_copies(j: Journal) -> list[str]:
    """Remove files that may hold copies of journal bytes: snapshots and quarantined tails."""
    gone = []
    fs = j._fs
    for sub in ("projections", "quarantine"):
        d = os.path.join(j.root, sub)
        try:
            names = fs.listdir(d)
        except FileNotFoundError:
            continue
        for name in names:
            path = os.path.join(d, name)
            with contextlib.suppress(FileNotFoundError):
                fs.unlink(path)
                gone.append(path)
        if gone and j.durability != "none":
            fs.fsync_dir(d)
    return gone
