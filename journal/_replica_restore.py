"""Restoring and checking a replica: the reading side of replication.

:func:`recover_from_replica` lists a replica (``journal/_replicate.py``
describes its layout), picks the generation that holds the point asked for,
downloads its lineage (8 objects at a time, at most 128 MiB ahead) checking
every object's sha256 and every sealed segment's length and sha256, writes the
segment files and a manifest into a scratch journal next to the target and
hands it to :func:`journal.recover`, the code path of ``agcx recover --at``
(every record's CRC, the horizon, a new journal id). :func:`verify_replica`
checks a replica where it is, downloading each object once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

import attrs

from journal._errors import CorruptJournal, InvalidArgument
from journal._format import (
    HEADER_SIZE,
    SEGMENT_FILE_RE,
    Manifest,
    ScanStop,
    SegmentHeader,
    SegmentInfo,
    encode_manifest,
    iter_frames,
    pack_header,
    unpack_header,
)
from journal._log import Journal, from_ns, to_ns
from journal._objstore import ObjectStore, ReplicaError, ReplicaUnavailable, open_store
from journal._recover import RecoverReport, recover
from journal._replicate import CorruptReplica, _Gen, _Range, _Remote

__all__ = ["ReplicaReport", "recover_from_replica", "verify_replica"]

_RESTORE_THREADS = 8
_RESTORE_WINDOW = 128 << 20  # bytes in flight at most (plus one object larger than that)
_RESTORE_BATCH = 32 << 20  # records per commit of the restored journal (one fsync each)


def _choose(remote: _Remote, at: datetime | int | None, url: str) -> _Gen:
    if not remote.gens:
        raise ReplicaError(f"{url} holds no replica (no generation manifest)")
    gens = [remote.gens[n] for n in sorted(remote.gens)]
    if at is None:
        return gens[-1]
    point = at if isinstance(at, int) and not isinstance(at, bool) else None
    ts = to_ns(at) if isinstance(at, datetime) else None
    for g in reversed(gens):
        if not g.horizon_seq:
            return g
        if point is not None and point >= g.horizon_seq:
            return g
        if ts is not None and ts >= g.horizon_ts:
            return g
    return gens[0]  # recover refuses the point, naming the earliest it has


def _download(store: ObjectStore, rg: _Range) -> bytes:
    got = store.get(rg.key)
    if got is None:
        raise CorruptReplica(f"{store.url}/{rg.key} is missing")
    data = got[0]
    if len(data) != rg.end - rg.start or hashlib.sha256(data).hexdigest() != rg.sha:
        raise CorruptReplica(f"{store.url}/{rg.key}: checksum mismatch (damaged object)")
    return data


def _fetch(
    store: ObjectStore,
    pool: ThreadPoolExecutor,
    ranges: list[_Range],
    sink: Callable[[_Range, bytes], None],
) -> None:
    """Download ``ranges`` with the pool, passing each one's bytes to ``sink`` in order.

    Up to ``2 x`` threads objects and ``_RESTORE_WINDOW`` bytes are in flight,
    across segment boundaries (a segment shipped whole is one object).
    """
    window: deque[tuple[Future[bytes], _Range]] = deque()
    pending = 0  # bytes downloading or downloaded and not yet passed on
    for rg in ranges:
        while window and (
            len(window) >= 2 * _RESTORE_THREADS or pending + rg.end - rg.start > _RESTORE_WINDOW
        ):
            fut, done = window.popleft()
            sink(done, fut.result())
            pending -= done.end - done.start
        window.append((pool.submit(_download, store, rg), rg))
        pending += rg.end - rg.start
    while window:
        fut, done = window.popleft()
        sink(done, fut.result())


def _assemble(
    store: ObjectStore, remote: _Remote, gen: _Gen, dest: str,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write ``gen``'s lineage as a journal in ``dest``; return the bytes written."""
    plan: list[tuple[str, SegmentInfo | None, str, list[_Range]]] = []
    for name, info, sha in remote.lineage(gen):
        chain = remote.chain(name)
        if info is not None and (not chain or chain[-1].end != info.length):
            raise CorruptReplica(
                f"{store.url}: segment {name} is incomplete (ranges end at "
                f"{chain[-1].end if chain else 0} of {info.length} bytes)"
            )
        if chain:
            plan.append((name, info, sha, chain))
    seg_dir = os.path.join(dest, "segments")
    os.makedirs(seg_dir, mode=0o700)
    total = sum(chain[-1].end for *_, chain in plan)
    ends = {name: chain[-1] for name, _, _, chain in plan}
    hashes = {name: hashlib.sha256() for name, *_ in plan}
    fds: dict[str, int] = {}
    done = 0

    def sink(rg: _Range, data: bytes) -> None:
        # Ranges arrive in order: a segment's file is open from its first to its last.
        nonlocal done
        fd = fds.get(rg.name)
        if fd is None:
            path = os.path.join(seg_dir, rg.name)
            fd = fds[rg.name] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        hashes[rg.name].update(data)
        # No fsync: the scratch journal is only read by recover(), which makes its
        # own copy durable, and is removed afterwards.
        os.write(fd, data)
        if rg is ends[rg.name]:
            os.close(fds.pop(rg.name))
        done += len(data)
        if progress is not None:
            progress(done, total)

    try:
        with ThreadPoolExecutor(_RESTORE_THREADS) as pool:
            _fetch(store, pool, [rg for *_, chain in plan for rg in chain], sink)
    finally:
        for fd in fds.values():
            os.close(fd)
    infos: list[SegmentInfo] = []
    for name, info, sha, _ in plan:
        if info is None:
            infos.append(SegmentInfo(base_seq=_base_of(name), file=_file_field(name)))
            continue
        if hashes[name].hexdigest() != sha:
            raise CorruptReplica(f"{store.url}: segment {name}: checksum mismatch")
        infos.append(attrs.evolve(info, sealed=True))
    if not infos or infos[-1].sealed:
        # Every segment is sealed: add the empty active segment a journal needs.
        last = max((i.last_seq for i in infos), default=0)
        base = max(last + 1, (infos[-1].base_seq + 1) if infos else 1)
        with open(os.path.join(seg_dir, f"{base:020d}.agcx"), "wb") as f:
            f.write(pack_header(SegmentHeader(base, time.time_ns(), gen.journal_id)))
        infos.append(SegmentInfo(base_seq=base))
    m = Manifest(
        journal_id=gen.journal_id, generation=gen.journal_gen, segments=tuple(infos),
        horizon_seq=gen.horizon_seq, horizon_ts=gen.horizon_ts, created_ns=time.time_ns(),
    )
    with open(os.path.join(dest, "MANIFEST"), "wb") as f:
        f.write(encode_manifest(m))
    return done


def _collector(parts: list[bytes]) -> Callable[[_Range, bytes], None]:
    def sink(_: _Range, data: bytes) -> None:
        parts.append(data)

    return sink


def _base_of(name: str) -> int:
    m = SEGMENT_FILE_RE.match(name)
    assert m is not None
    return int(m.group(1))


def _file_field(name: str) -> str:
    m = SEGMENT_FILE_RE.match(name)
    return "" if m is None or m.group(2) is None else name


def recover_from_replica(
    url: str,
    target: str | os.PathLike[str],
    *,
    at: datetime | int | None = None,
    progress: Callable[[int, int], None] | None = None,
    store: ObjectStore | None = None,
) -> RecoverReport:
    """Build a working journal at ``target`` from the replica at ``url``.

    It holds exactly the replicated events up to ``at`` (a timezone-aware
    datetime or a seq; default: everything the replica holds). Every object is
    checked against its sha256 and every sealed segment against its length and
    sha256; the segments are assembled into a scratch journal next to
    ``target`` and copied by :func:`journal.recover` (which checks every
    record's CRC and the point in time as ``agcx recover --at`` does); the
    scratch journal is then removed. ``progress(done, total)`` counts bytes
    downloaded.
    """
    st = store if store is not None else open_store(url)
    try:
        final = os.path.abspath(os.path.expanduser(os.fspath(target)))
        parent = os.path.dirname(final)
        if not os.path.isdir(parent):
            raise InvalidArgument(f"the parent directory of the target, {parent}, does not exist")
        if os.path.exists(final) and (not os.path.isdir(final) or os.listdir(final)):
            raise InvalidArgument(f"target {final} exists and is not an empty directory")
        remote = _Remote.load(st)
        gen = _choose(remote, at, st.url)
        scratch = os.path.join(
            parent, f".{os.path.basename(final)}.agcx-replica-{os.getpid()}-{time.time_ns()}"
        )
        try:
            _assemble(st, remote, gen, scratch, progress)
            point: datetime | int
            if at is None:
                with Journal.open(scratch, readonly=True) as sj:
                    point = sj.last_seq
            else:
                point = at
            report = recover(scratch, final, at=point, batch_bytes=_RESTORE_BATCH)
            return attrs.evolve(report, source=st.url)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    finally:
        if store is None:
            st.close()


# -- verify -------------------------------------------------------------------------------


@attrs.frozen
class ReplicaReport:
    """What :func:`verify_replica` found."""

    url: str
    generations: int
    segments: int
    objects: int
    bytes: int
    records: int
    last_seq: int
    last_ts: datetime | None
    problems: tuple[str, ...]
    seconds: float

    @property
    def intact(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["last_ts"] = self.last_ts.isoformat() if self.last_ts else None
        d["problems"] = list(self.problems)
        d["intact"] = self.intact
        return d


def verify_replica(url: str, *, store: ObjectStore | None = None,
                   max_record_size: int = 64 << 20) -> ReplicaReport:
    """Check a replica where it is, downloading each object once.

    Every generation's lineage must be complete (sealed segments whole, ranges
    contiguous from 0), every object must match its sha256, every sealed
    segment its length and sha256, and every segment's records must scan
    cleanly (header and journal id, CRCs, increasing seqs, whole batches)
    and agree with the segment's manifest entry.
    """
    started = time.monotonic()
    st = store if store is not None else open_store(url)
    problems: list[str] = []
    remote: _Remote | None = None
    names: dict[str, tuple[SegmentInfo | None, str]] = {}
    records = objects = nbytes = 0
    last_seq = last_ts = 0
    try:
        remote = _Remote.load(st)
        if not remote.gens:
            problems.append("no generation manifest: not a replica (or an empty one)")
        for n in sorted(remote.gens):
            for name, info, sha in remote.lineage(remote.gens[n]):
                if name not in names or names[name][0] is None:
                    names[name] = (info, sha)
        jid = remote.journal_id
        with ThreadPoolExecutor(_RESTORE_THREADS) as pool:
            for name in sorted(names, key=_base_of):
                info, sha = names[name]
                chain = remote.chain(name)
                extra = len(remote.ranges.get(name, [])) - len(chain)
                if extra:
                    problems.append(f"{name}: {extra} range object(s) outside the chain")
                parts: list[bytes] = []
                try:
                    _fetch(st, pool, chain, _collector(parts))
                except CorruptReplica as exc:
                    problems.append(str(exc))
                    continue
                buf = b"".join(parts)
                objects += len(chain)
                nbytes += len(buf)
                where = f"{name}"
                if info is not None:
                    if len(buf) != info.length:
                        problems.append(f"{where}: {len(buf)} bytes, the manifest says "
                                        f"{info.length}")
                        continue
                    if hashlib.sha256(buf).hexdigest() != sha:
                        problems.append(f"{where}: sha256 differs from the manifest's")
                if len(buf) < HEADER_SIZE:
                    if buf or info is not None:
                        problems.append(f"{where}: shorter than a segment header")
                    continue
                try:
                    h = unpack_header(buf[:HEADER_SIZE], where)
                except CorruptJournal as exc:
                    problems.append(f"{where}: {exc.reason}")
                    continue
                if jid is not None and h.journal_id != jid:
                    problems.append(f"{where}: belongs to another journal")
                stop: list[ScanStop] = []
                count = first = 0
                seq = ts = 0
                for fr in iter_frames(buf, HEADER_SIZE, 0, max_record_size, h.base_seq - 1, 0,
                                      stop):
                    count += 1
                    first = first or fr[2]
                    seq, ts = fr[2], fr[3]
                if stop[0].kind != ScanStop.END or stop[0].offset != len(buf):
                    problems.append(f"{where}: {stop[0].kind} at offset {stop[0].at}")
                if info is not None and (count, seq) != (info.count, info.last_seq) and count:
                    problems.append(
                        f"{where}: {count} records up to seq {seq}, the manifest says "
                        f"{info.count} up to {info.last_seq}"
                    )
                records += count
                if seq > last_seq:
                    last_seq, last_ts = seq, ts
    except ReplicaUnavailable:
        raise
    except ReplicaError as exc:
        problems.append(str(exc))
    finally:
        if store is None:
            st.close()
    return ReplicaReport(
        url=st.url, generations=len(remote.gens) if remote is not None else 0,
        segments=len(names), objects=objects, bytes=nbytes,
        records=records, last_seq=last_seq, last_ts=from_ns(last_ts) if last_ts else None,
        problems=tuple(problems), seconds=time.monotonic() - started,
    )
