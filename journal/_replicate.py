"""Continuous replication of a journal to an object store: the shipping side.

A :class:`Replicator` follows a journal the way ``agcx log --follow`` does:
read-only, without the commit lock, so writers never wait for it. It ships
the journal's segment files, byte for byte, to a replica (``journal/_objstore.py``:
``file:///path`` or ``s3://bucket/prefix``). This module also reads the
replica's layout (:class:`_Remote`); restoring and verifying are in
``journal/_replica_restore.py``.

Replica layout (keys relative to the URL's prefix; every object is written
once and never rewritten, except ``LEASE``)::

    LEASE                      who is replicating into this replica: JSON
                               {owner, host, pid, journal, started, expires};
                               created with If-None-Match, renewed with If-Match
    gens/<n:08d>.agcr          generation manifest n (below)
    segs/<name>/<start:012d>-<end:012d>.<last seq>.<last ts ns>.<sha256 hex>
                               bytes [start, end) of segment file <name>: a
                               range. The ranges of a segment tile it from 0
                               (the 64-byte header is in the first) and are
                               cut at whole-batch boundaries, so any chain of
                               them from 0 is a valid segment prefix
    segs/<name>/SEALED         the segment was sealed: its manifest entry
                               (seq and time range, count, length) and the
                               sha256 of the whole file

A **sealed segment** seen for the first time goes up as one range. The
**active segment** goes up in increments: every ``interval`` seconds (or when
4 MiB have gathered) the bytes appended since the last increment, each as its
own range object; when the segment is sealed its last range and the
``SEALED`` marker follow. Before an increment is read the replicator
``fdatasync``\\ s the segment, so it never ships bytes a machine crash could
still take back: the replica is always a prefix of what the journal holds
durably (acknowledged, or about to be).

A **generation** (as in Litestream before its LTX rewrite) is a lineage of
the journal within which data only grows. Its manifest
(``"AGCR" | u16 version 1 | u16 0 | u32 body_len | u32 crc32(body) | body``,
body a msgpack map ``{jid, n, jg, hs, ht, c, purge, pm, segs}``) lists the
journal's segments when the generation began (sealed ones with their
manifest entry and sha256). Its *lineage* is that list followed by every
plain-named segment (``<base:020d>.agcx``, made only by rolls) with a higher
base seq: rolls need no new generation. Compaction and purge replace
segments, which starts a new generation. The ranges of a segment are shared
by every generation that lists it, so nothing is uploaded twice.

* After a **compaction** the older generations stay for ``retention``
  (default 7 days) after their successor began, so a point before the new
  horizon can still be restored from the replica; then their manifests and
  the segments no other generation uses are deleted.
* A **purge** is replicated as a purge: as soon as the purge's manifest is
  seen (the next cycle, at most ``interval`` seconds, or the next start when no
  replicator was running), its new generation is written and then every older
  generation and every object not in the new generation's lineage is
  deleted, so the purged session's bytes leave the replica too. A rewrite
  that keeps the horizon is a purge; so is any rewrite when the journal holds
  a ``SessionPurged`` record newer than the previous generation knew.

Resuming after any failure (object store down, timeout, 5xx, throttling, a
killed process) starts from a listing of the replica: the end of each
segment's chain of ranges is where shipping resumes, after checking that the
local file still holds the bytes already shipped (same sha256), so there is
never a gap or a duplicate. A segment whose local bytes differ from the
replica's raises :class:`ReplicaDiverged` (the journal was replaced: use a
new URL). Two replicators of one journal to one URL are refused twice: a
``flock`` on a file in the journal root (same machine) and the lease object
(any machine).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import logging
import os
import re
import socket
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import attrs
import msgpack

from journal._codec import unpack_bounded
from journal._errors import InvalidArgument, JournalError
from journal._events import EventType
from journal._format import (
    HEADER_SIZE,
    SEGMENT_FILE_RE,
    Manifest,
    SegmentInfo,
)
from journal._log import Journal
from journal._objstore import (
    ObjectStore,
    PreconditionFailed,
    ReplicaError,
    ReplicaUnavailable,
    open_store,
    safe_url,
)

__all__ = [
    "CorruptReplica",
    "ReplicaBusy",
    "ReplicaDiverged",
    "ReplicaError",
    "ReplicaUnavailable",
    "ReplicationStatistics",
    "Replicator",
    "replicate",
]

log = logging.getLogger("agcx.replicate")

DEFAULT_INTERVAL = 1.0
DEFAULT_RETENTION = timedelta(days=7)
MAX_PENDING = 4 << 20  # ship early once this many bytes have gathered
LEASE_TTL = 30.0  # seconds a lease holds without renewal
_LEASE_KEY = "LEASE"
_GEN_MAGIC = b"AGCR"
_SEAL_MAGIC = b"AGCS"
_META_VERSION = 1
_META_HEADER = struct.Struct("<4sHHII")
_RANGE_RE = re.compile(
    r"^segs/(?P<name>[^/]+)/(?P<start>\d{12})-(?P<end>\d{12})\."
    r"(?P<seq>\d+)\.(?P<ts>-?\d+)\.(?P<sha>[0-9a-f]{64})$"
)
_GEN_RE = re.compile(r"^gens/(\d{8})\.agcr$")
_SEALED_RE = re.compile(r"^segs/(?P<name>[^/]+)/SEALED$")


class ReplicaBusy(ReplicaError):
    """Another replicator holds this journal or this replica (it is named)."""


class ReplicaDiverged(ReplicaError):
    """The replica holds bytes of this journal that the journal no longer has
    (the journal was replaced or restored): replicate to a new URL."""


class CorruptReplica(ReplicaError):
    """An object of the replica is missing, damaged or inconsistent."""


# -- the replica's own records -----------------------------------------------------------


def _pack_meta(magic: bytes, body: dict[str, Any]) -> bytes:
    data: bytes = msgpack.packb(body, use_bin_type=True)
    return _META_HEADER.pack(magic, _META_VERSION, 0, len(data), zlib.crc32(data)) + data


def _unpack_meta(magic: bytes, data: bytes, where: str) -> dict[str, Any]:
    if len(data) < _META_HEADER.size:
        raise CorruptReplica(f"{where}: {len(data)} bytes, shorter than its header")
    m, version, _, body_len, crc = _META_HEADER.unpack_from(data)
    body = data[_META_HEADER.size :]
    if m != magic:
        raise CorruptReplica(f"{where}: bad magic {m!r}")
    if version != _META_VERSION:
        raise CorruptReplica(f"{where}: version {version}; this build reads {_META_VERSION}")
    if body_len != len(body) or zlib.crc32(body) != crc:
        raise CorruptReplica(f"{where}: checksum mismatch")
    try:
        out = unpack_bounded(body)
    except Exception as exc:
        raise CorruptReplica(f"{where}: undecodable: {exc!r}") from None
    if not isinstance(out, dict):
        raise CorruptReplica(f"{where}: not a map")
    return out


def _info_map(s: SegmentInfo) -> dict[str, Any]:
    return {
        "nm": s.name, "b": s.base_seq, "s": s.sealed, "f": s.first_seq, "l": s.last_seq,
        "n": s.count, "t0": s.first_ts, "t1": s.last_ts, "len": s.length,
    }


def _info_of(d: dict[str, Any]) -> SegmentInfo:
    name = str(d["nm"])
    m = SEGMENT_FILE_RE.match(name)
    if not m or int(m.group(1)) != d["b"]:
        raise ValueError(f"segment name {name!r} does not match base {d['b']!r}")
    return SegmentInfo(
        base_seq=int(d["b"]), sealed=bool(d["s"]), first_seq=int(d["f"]), last_seq=int(d["l"]),
        count=int(d["n"]), first_ts=int(d["t0"]), last_ts=int(d["t1"]), length=int(d["len"]),
        file="" if m.group(2) is None else name,
    )


@attrs.frozen
class _Gen:
    """A generation manifest."""

    number: int
    journal_id: bytes
    journal_gen: int
    horizon_seq: int
    horizon_ts: int
    created_ns: int
    purge: bool
    purge_mark: int  # the highest SessionPurged seq the journal held
    segs: tuple[tuple[SegmentInfo, str], ...]  # (entry, sha256 of the file; "" when active)

    @property
    def key(self) -> str:
        return f"gens/{self.number:08d}.agcr"

    def encode(self) -> bytes:
        return _pack_meta(_GEN_MAGIC, {
            "jid": self.journal_id, "n": self.number, "jg": self.journal_gen,
            "hs": self.horizon_seq, "ht": self.horizon_ts, "c": self.created_ns,
            "purge": self.purge, "pm": self.purge_mark,
            "segs": [{**_info_map(s), "sha": sha} for s, sha in self.segs],
        })

    @classmethod
    def decode(cls, data: bytes, where: str) -> _Gen:
        d = _unpack_meta(_GEN_MAGIC, data, where)
        try:
            return cls(
                number=int(d["n"]), journal_id=bytes(d["jid"]), journal_gen=int(d["jg"]),
                horizon_seq=int(d["hs"]), horizon_ts=int(d["ht"]), created_ns=int(d["c"]),
                purge=bool(d["purge"]), purge_mark=int(d["pm"]),
                segs=tuple((_info_of(s), str(s["sha"])) for s in d["segs"]),
            )
        except Exception as exc:
            raise CorruptReplica(f"{where}: bad shape: {exc!r}") from None


@attrs.frozen
class _Range:
    name: str
    start: int
    end: int
    last_seq: int
    last_ts: int
    sha: str

    @property
    def key(self) -> str:
        return (
            f"segs/{self.name}/{self.start:012d}-{self.end:012d}."
            f"{self.last_seq}.{self.last_ts}.{self.sha}"
        )


def _plain_base(name: str) -> int | None:
    """The base seq of a segment name made by a roll (not by a rewrite), else None."""
    m = SEGMENT_FILE_RE.match(name)
    return int(m.group(1)) if m and m.group(2) is None else None


class _Remote:
    """What a replica holds, from one listing."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.gens: dict[int, _Gen] = {}
        self.ranges: dict[str, list[_Range]] = {}
        self.sealed: dict[str, tuple[SegmentInfo, str]] = {}
        self.sizes: dict[str, int] = {}
        self._chains: dict[str, list[_Range]] = {}  # chain() answers, until a change

    def add(self, rg: _Range) -> None:
        self.ranges.setdefault(rg.name, []).append(rg)
        self._chains.pop(rg.name, None)

    def forget(self, name: str) -> list[_Range]:
        self._chains.pop(name, None)
        return self.ranges.pop(name, [])

    @classmethod
    def load(cls, store: ObjectStore) -> _Remote:
        r = cls(store)
        sealed_keys: list[tuple[str, str]] = []
        for o in store.list(""):
            r.sizes[o.key] = o.size
            m = _RANGE_RE.match(o.key)
            if m:
                rg = _Range(m["name"], int(m["start"]), int(m["end"]), int(m["seq"]),
                            int(m["ts"]), m["sha"])
                if o.size == rg.end - rg.start:  # anything else is not one of ours, whole
                    r.ranges.setdefault(rg.name, []).append(rg)
                continue
            m = _GEN_RE.match(o.key)
            if m:
                got = store.get(o.key)
                if got is not None:
                    g = _Gen.decode(got[0], f"{store.url}/{o.key}")
                    r.gens[g.number] = g
                continue
            m = _SEALED_RE.match(o.key)
            if m:
                sealed_keys.append((m["name"], o.key))
        for name, key in sealed_keys:
            got = store.get(key)
            if got is None:
                continue
            d = _unpack_meta(_SEAL_MAGIC, got[0], f"{store.url}/{key}")
            try:
                r.sealed[name] = (_info_of(d), str(d["sha"]))
            except Exception as exc:
                raise CorruptReplica(f"{store.url}/{key}: bad shape: {exc!r}") from None
        for lst in r.ranges.values():
            lst.sort(key=lambda x: (x.start, x.end))
        ids = {g.journal_id for g in r.gens.values()}
        if len(ids) > 1:
            raise CorruptReplica(f"{store.url} holds generations of {len(ids)} different journals")
        return r

    @property
    def journal_id(self) -> bytes | None:
        return next(iter(self.gens.values())).journal_id if self.gens else None

    def newest(self) -> _Gen | None:
        return self.gens[max(self.gens)] if self.gens else None

    def chain(self, name: str) -> list[_Range]:
        """The ranges of ``name`` that tile it from offset 0 as far as possible.

        Normally the ranges are exactly one chain. A range uploaded by a request
        that timed out but was stored anyway can overlap another; any chain is
        the same bytes (they come from one file), so the longest one is used.
        """
        cached = self._chains.get(name)
        if cached is not None:
            return cached
        ranges = self.ranges.get(name, [])
        if not ranges:
            return []
        by_start: dict[int, list[_Range]] = {}
        for rg in ranges:
            by_start.setdefault(rg.start, []).append(rg)
        best: dict[int, list[_Range]] = {}  # start -> the longest chain from it

        def longest(start: int) -> list[_Range]:
            # Iterative over starts in decreasing order would do too; chains are short.
            if start in best:
                return best[start]
            out: list[_Range] = []
            for rg in by_start.get(start, []):
                cand = [rg, *longest(rg.end)] if rg.end > rg.start else [rg]
                if not out or cand[-1].end > out[-1].end:
                    out = cand
            best[start] = out
            return out

        for s in sorted(by_start, reverse=True):  # fill bottom-up: no deep recursion
            longest(s)
        self._chains[name] = longest(0)
        return self._chains[name]

    def lineage(self, gen: _Gen) -> list[tuple[str, SegmentInfo | None, str]]:
        """The segments a restore of ``gen`` uses, in seq order: (name, sealed entry, sha).

        The entry is None for a segment not known to be sealed (the last one).
        """
        out: list[tuple[str, SegmentInfo | None, str]] = []
        for info, sha in gen.segs:
            if info.sealed:
                out.append((info.name, info, sha))
            elif info.name in self.sealed:
                s_info, s_sha = self.sealed[info.name]
                out.append((info.name, s_info, s_sha))
            else:
                out.append((info.name, None, ""))
        top = max(info.base_seq for info, _ in gen.segs)
        later = sorted(
            (b, n)
            for n in set(self.ranges) | set(self.sealed)
            if (b := _plain_base(n)) is not None and b > top
        )
        for _, name in later:
            if name in self.sealed:
                s_info, s_sha = self.sealed[name]
                out.append((name, s_info, s_sha))
            else:
                out.append((name, None, ""))
        # A restore stops at the first segment that is not sealed: the replica
        # ships segments in order, so anything after it is not yet whole.
        for i, entry in enumerate(out):
            if entry[1] is None:
                return out[: i + 1]
        return out


# -- statistics ---------------------------------------------------------------------------


@attrs.frozen
class ReplicationStatistics:
    """What a :class:`Replicator` has done so far (immutable)."""

    url: str
    generation: int
    seq: int  # every record up to this seq is in the replica
    ts_ns: int  # the time of that record
    objects_put: int
    bytes_put: int  # every byte uploaded, data and metadata
    data_bytes_put: int  # segment bytes uploaded
    objects_deleted: int
    cycles: int
    failures: int  # cycles that failed (and were retried)
    lags: tuple[float, ...]  # seconds from a record's time to its upload, per increment

    def to_json(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["lags"] = len(self.lags)
        return d


# -- the replicator -----------------------------------------------------------------------


class _Changed(Exception):
    """The journal changed under a cycle (a file replaced): start the cycle again."""


class Replicator:
    """Ships a journal to a replica; see the module docstring for the protocol.

    ``run_once()`` ships what is there now; ``run()`` keeps following until
    ``stop()`` (or the ``stop`` event) and retries failures with backoff. The
    replicator holds its local lock and the replica's lease from construction
    to :meth:`close`. Credentials come from the environment (see
    ``journal/_objstore.py``) and are never logged.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        url: str,
        *,
        interval: float = DEFAULT_INTERVAL,
        retention: timedelta = DEFAULT_RETENTION,
        max_pending: int = MAX_PENDING,
        lease_ttl: float = LEASE_TTL,
        store: ObjectStore | None = None,
    ) -> None:
        if not isinstance(interval, int | float) or interval <= 0:
            raise InvalidArgument(f"interval must be a positive number of seconds: {interval!r}")
        if not isinstance(retention, timedelta) or retention < timedelta(0):
            raise InvalidArgument(f"retention must be a timedelta >= 0, got {retention!r}")
        self.root = os.path.abspath(os.path.expanduser(os.fspath(root)))
        self.interval = float(interval)
        self.retention = retention
        self.max_pending = max_pending
        self.lease_ttl = lease_ttl
        self._store = store if store is not None else open_store(url)
        self.url = self._store.url if store is not None else safe_url(url)
        self._stop = threading.Event()
        self._lock_fd: int | None = None
        self._lease_etag: str | None = None
        self._lease_body: dict[str, Any] = {}
        self._lease_due = 0.0
        self._remote: _Remote | None = None
        self._joined: set[str] = set()  # active segments whose shipped tail was checked
        self._next_expiry = 0.0
        self._journal: Journal | None = None
        # statistics
        self._objects_put = self._bytes_put = self._data_bytes = self._deleted = 0
        self._cycles = self._failures = 0
        self._lags: deque[float] = deque(maxlen=100_000)
        try:
            self._journal = Journal.open(self.root, readonly=True)
            self._lock_locally()
            self._acquire_lease()
        except BaseException:
            self.close()
            raise

    # -- locks ----------------------------------------------------------------------------

    def _lock_locally(self) -> None:
        digest = hashlib.sha256(self.url.encode()).hexdigest()[:16]
        path = os.path.join(self.root, f"REPLICATE-{digest}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip()
            os.close(fd)
            raise ReplicaBusy(
                f"another agcx replicate ({holder or 'unknown process'}) is already shipping "
                f"{self.root} to {self.url}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, started {_now_text()}\n".encode(), 0)
        self._lock_fd = fd

    def _acquire_lease(self) -> None:
        st = self._store
        now = time.time()
        body = {
            "owner": f"{socket.gethostname()}:{os.getpid()}",
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "journal": self._j.journal_id.hex(),
            "started": now,
            "expires": now + self.lease_ttl,
        }
        cur = st.get(_LEASE_KEY)
        if cur is not None:
            other = _lease_of(cur[0])
            if other is not None and not _lease_stale(other, now):
                raise ReplicaBusy(
                    f"{self.url} is being replicated by {other.get('owner', '?')} since "
                    f"{_time_text(other.get('started'))} (lease until "
                    f"{_time_text(other.get('expires'))}); stop it first"
                )
        try:
            self._lease_etag = st.put(
                _LEASE_KEY, json.dumps(body).encode(), if_absent=cur is None,
                if_version=None if cur is None else cur[1],
            )
        except PreconditionFailed:
            got = st.get(_LEASE_KEY)
            other = _lease_of(got[0]) if got else None
            raise ReplicaBusy(
                f"{self.url} was just taken by {(other or {}).get('owner', 'another replicator')}"
            ) from None
        self._count_put(len(json.dumps(body)))
        self._lease_body = body
        self._lease_due = time.monotonic() + self.lease_ttl / 3

    def _renew_lease(self) -> None:
        if time.monotonic() < self._lease_due:
            return
        body = dict(self._lease_body, expires=time.time() + self.lease_ttl)
        data = json.dumps(body).encode()
        try:
            self._lease_etag = self._store.put(_LEASE_KEY, data, if_version=self._lease_etag)
        except PreconditionFailed:
            got = self._store.get(_LEASE_KEY)
            other = _lease_of(got[0]) if got else None
            raise ReplicaBusy(
                f"lost the lease of {self.url} to {(other or {}).get('owner', 'another process')}"
            ) from None
        self._count_put(len(data))
        self._lease_body = body
        self._lease_due = time.monotonic() + self.lease_ttl / 3

    def _release_lease(self) -> None:
        if self._lease_etag is None:
            return
        with contextlib.suppress(ReplicaError):
            got = self._store.get(_LEASE_KEY)
            if got is not None and got[1] == self._lease_etag:
                self._store.delete([_LEASE_KEY])
        self._lease_etag = None

    # -- the cycle ------------------------------------------------------------------------

    @property
    def _j(self) -> Journal:
        assert self._journal is not None
        return self._journal

    def run_once(self) -> ReplicationStatistics:
        """Ship everything the journal holds now; return the statistics.

        Raises :class:`ReplicaUnavailable` if the store fails (nothing shipped
        is lost: the next call resumes), :class:`ReplicaBusy` if the lease was
        lost, :class:`ReplicaDiverged` if the journal no longer matches.
        """
        for _ in range(8):
            try:
                self._cycle()
                break
            except _Changed:
                continue  # a compaction or purge replaced a file we were reading
            except ReplicaError:
                self._failures += 1
                self._remote = None  # learn what really landed before going on
                self._joined.clear()
                raise
            except OSError as exc:  # reading the journal's own files
                self._failures += 1
                raise JournalError(f"cannot read {self.root} to replicate it: {exc}") from exc
        self._cycles += 1
        return self.statistics()

    def _cycle(self) -> None:
        self._renew_lease()
        if self._remote is None:
            self._remote = _Remote.load(self._store)
            rid = self._remote.journal_id
            if rid is not None and rid != self._j.journal_id:
                raise ReplicaDiverged(
                    f"{self.url} is a replica of journal {rid.hex()}, not of "
                    f"{self._j.journal_id.hex()} ({self.root}): use another URL"
                )
            cleanup = getattr(self._store, "remove_stale_temporaries", None)
            if cleanup is not None:
                cleanup()  # a killed put's temporary files (file://); we hold the lease
        j = self._j
        j.refresh()
        m = j.manifest
        remote = self._remote
        gen = remote.newest()
        if gen is None or not _continues(gen, m, remote):
            self._new_generation(m, gen)
            gen = remote.newest()
        for info in m.segments:
            self._ship(info)
        if time.monotonic() >= self._next_expiry:
            self._expire()
            self._next_expiry = time.monotonic() + 60.0

    def pending_bytes(self) -> int:
        """Bytes the journal holds beyond what was shipped (a cheap estimate)."""
        remote = self._remote
        if remote is None:
            return self.max_pending
        stats = self._j.statistics()
        shipped = 0
        for info in self._j.manifest.segments:
            ch = remote.chain(info.name)
            shipped += ch[-1].end if ch else 0
        return max(0, stats.bytes - shipped)

    def _ship(self, info: SegmentInfo) -> None:
        remote = self._remote
        assert remote is not None
        name = info.name
        if name in remote.sealed:
            return
        chain = remote.chain(name)
        have = chain[-1].end if chain else 0
        path = os.path.join(self.root, "segments", name)
        if info.sealed:
            data = _read_file(path, 0, info.length)
            if len(data) != info.length:
                raise _Changed()
            self._check_shipped(name, chain, data)
            if have < info.length:
                self._put_range(name, data[have:], have, info.last_seq, info.last_ts, 0)
            sha = hashlib.sha256(data).hexdigest()
            seal = _pack_meta(_SEAL_MAGIC, {**_info_map(info), "sha": sha})
            self._put(f"segs/{name}/SEALED", seal)
            remote.sealed[name] = (info, sha)
            return
        # The active segment: the whole batches appended since the last range.
        if chain and name not in self._joined:
            # Once per segment and process: the local file still holds the bytes the
            # replica ends with (the seal checks every range again).
            last = chain[-1]
            self._check_shipped(name, [last], _read_file(path, last.start, last.end - last.start),
                                base=last.start)
            self._joined.add(name)
        j = self._j
        first = chain[-1].last_seq + 1 if chain and chain[-1].last_seq else info.base_seq
        start = end = max(have, HEADER_SIZE)
        first_ts = last_seq = last_ts = 0
        for rec in j.scan(from_seq=first):
            if rec.segment != info.base_seq:
                break  # rolled meanwhile: the next cycle sees it sealed
            if not first_ts:
                first_ts = rec.ts_ns
                if rec.offset != start:
                    raise ReplicaDiverged(
                        f"{path}: the replica's ranges end at offset {start} but the next "
                        f"record (seq {rec.seq}) starts at {rec.offset}: the journal is not "
                        f"the one replicated to {self.url}; use another URL"
                    )
            end = rec.offset + rec.size
            last_seq, last_ts = rec.seq, rec.ts_ns
        if end == have:
            return
        fd = _open_ro(path)
        if fd is None:
            raise _Changed()
        try:
            # Ship only what is on stable storage: a machine crash cannot take it back.
            os.fdatasync(fd)
            data = _pread_all(fd, end - have, have)
        finally:
            os.close(fd)
        if len(data) != end - have:
            raise _Changed()
        self._put_range(name, data, have, last_seq, last_ts, first_ts)

    def _check_shipped(self, name: str, chain: list[_Range], data: bytes, base: int = 0) -> None:
        """The local bytes must be those already in the replica (else: diverged)."""
        for rg in chain:
            piece = data[rg.start - base : rg.end - base]
            if len(piece) != rg.end - rg.start or hashlib.sha256(piece).hexdigest() != rg.sha:
                raise ReplicaDiverged(
                    f"segments/{name} bytes {rg.start}..{rg.end} differ from the replica's "
                    f"copy at {self.url}: the journal is not the one replicated there; "
                    "use another URL"
                )

    def _put_range(
        self, name: str, data: bytes, start: int, last_seq: int, last_ts: int, first_ts: int
    ) -> None:
        assert self._remote is not None
        rg = _Range(name, start, start + len(data), last_seq, last_ts,
                    hashlib.sha256(data).hexdigest())
        self._put(rg.key, data)
        self._data_bytes += len(data)
        self._remote.add(rg)
        if first_ts:
            self._lags.append(max(0.0, (time.time_ns() - first_ts) / 1e9))

    def _put(self, key: str, data: bytes) -> None:
        self._store.put(key, data)
        self._count_put(len(data))

    def _count_put(self, n: int) -> None:
        self._objects_put += 1
        self._bytes_put += n

    def _new_generation(self, m: Manifest, prev: _Gen | None) -> None:
        """Ship the journal's current segments and write a generation listing them."""
        remote = self._remote
        assert remote is not None
        for info in m.segments:
            self._ship(info)
        purge_mark = prev.purge_mark if prev is not None else 0
        for rec in self._j.scan(from_seq=purge_mark + 1):
            if rec.event_type == EventType.SESSION_PURGED:
                purge_mark = rec.seq
        purge = prev is not None and (
            m.horizon_seq == prev.horizon_seq or purge_mark > prev.purge_mark
        )
        segs = tuple(
            (info, remote.sealed[info.name][1] if info.sealed else "") for info in m.segments
        )
        gen = _Gen(
            number=(prev.number + 1) if prev is not None else 1,
            journal_id=m.journal_id, journal_gen=m.generation, horizon_seq=m.horizon_seq,
            horizon_ts=m.horizon_ts, created_ns=time.time_ns(), purge=purge,
            purge_mark=purge_mark, segs=segs,
        )
        self._put(gen.key, gen.encode())
        remote.gens[gen.number] = gen
        if purge:
            # The older generations hold the purged session: they go now, manifests
            # first (a restore never picks a generation whose objects are gone).
            self._delete([g.key for n, g in remote.gens.items() if n != gen.number])
            for n in [n for n in remote.gens if n != gen.number]:
                del remote.gens[n]
            self._collect()

    def _expire(self) -> None:
        """Remove generations whose successor began more than ``retention`` ago."""
        remote = self._remote
        assert remote is not None
        nums = sorted(remote.gens)
        cutoff = time.time_ns() - int(self.retention.total_seconds() * 1e9)
        doomed = [
            n for n, succ in itertools.pairwise(nums)
            if remote.gens[succ].created_ns <= cutoff
        ]
        if doomed:
            self._delete([remote.gens[n].key for n in doomed])
            for n in doomed:
                del remote.gens[n]
        self._collect()

    def _collect(self) -> None:
        """Delete the objects of segments that no generation's lineage uses."""
        remote = self._remote
        assert remote is not None
        if not remote.gens:
            return
        used: set[str] = set()
        for g in remote.gens.values():
            used.update(info.name for info, _ in g.segs)
            top = max(info.base_seq for info, _ in g.segs)
            for n in set(remote.ranges) | set(remote.sealed):
                b = _plain_base(n)
                if b is not None and b > top:
                    used.add(n)
        keys: list[str] = []
        for n in sorted((set(remote.ranges) | set(remote.sealed)) - used):
            keys += [rg.key for rg in remote.forget(n)]
            if remote.sealed.pop(n, None) is not None:
                keys.append(f"segs/{n}/SEALED")
        self._delete(keys)

    def _delete(self, keys: list[str]) -> None:
        if keys:
            self._store.delete(keys)
            self._deleted += len(keys)

    # -- running --------------------------------------------------------------------------

    def run(self, *, stop: threading.Event | None = None,
            on_error: Callable[[ReplicaError], None] | None = None) -> None:
        """Follow the journal until :meth:`stop` (or ``stop`` is set).

        Ships every ``interval`` seconds, or sooner once ``max_pending`` bytes
        have gathered. A failure of the store (:class:`ReplicaUnavailable`) is
        passed to ``on_error`` (default: logged) and retried with exponential
        backoff up to 30 s; nothing is lost locally meanwhile, the replica
        only lags. Other replica errors (busy, diverged) end the run.
        """
        ev = stop or self._stop
        backoff = 0.0
        poll = min(self.interval, 0.05)
        while not ev.is_set() and not self._stop.is_set():
            started = time.monotonic()
            try:
                self.run_once()
                backoff = 0.0
            except ReplicaUnavailable as exc:
                (on_error or _log_error)(exc)
                backoff = min(30.0, max(self.interval, backoff * 2))
                ev.wait(backoff)
                continue
            # Wait for the interval, or until enough bytes gathered.
            due = started + self.interval
            while not ev.is_set() and not self._stop.is_set():
                left = due - time.monotonic()
                if left <= 0:
                    break
                ev.wait(min(poll, left))
                with contextlib.suppress(JournalError):
                    if self.pending_bytes() >= self.max_pending:
                        break

    def stop(self) -> None:
        """Make :meth:`run` return after the cycle under way."""
        self._stop.set()

    def statistics(self) -> ReplicationStatistics:
        remote = self._remote
        gen = remote.newest() if remote else None
        seq = ts = 0
        if remote is not None:
            for info in self._j.manifest.segments:
                ch = remote.chain(info.name)
                if ch and ch[-1].last_seq:
                    seq, ts = ch[-1].last_seq, ch[-1].last_ts
        return ReplicationStatistics(
            url=self.url, generation=gen.number if gen else 0, seq=seq, ts_ns=ts,
            objects_put=self._objects_put, bytes_put=self._bytes_put,
            data_bytes_put=self._data_bytes, objects_deleted=self._deleted,
            cycles=self._cycles, failures=self._failures, lags=tuple(self._lags),
        )

    def close(self) -> None:
        """Release the lease and the local lock (after the cycle under way)."""
        with contextlib.suppress(Exception):
            self._release_lease()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        self._store.close()

    def __enter__(self) -> Replicator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def replicate(
    root: str | os.PathLike[str],
    url: str,
    *,
    once: bool = False,
    interval: float = DEFAULT_INTERVAL,
    retention: timedelta = DEFAULT_RETENTION,
    stop: threading.Event | None = None,
) -> ReplicationStatistics:
    """Replicate the journal at ``root`` to ``url`` (``s3://bucket/prefix`` or
    ``file:///path``): once (``once=True``), or until ``stop`` is set."""
    with Replicator(root, url, interval=interval, retention=retention) as r:
        if once:
            return r.run_once()
        r.run(stop=stop)
        return r.statistics()


# -- helpers ------------------------------------------------------------------------------


def _continues(gen: _Gen, m: Manifest, remote: _Remote) -> bool:
    """Whether manifest ``m`` only grew ``gen``'s lineage (appends and rolls)."""
    if m.horizon_seq != gen.horizon_seq or m.journal_id != gen.journal_id:
        return False
    listed = {info.name for info, _ in gen.segs}
    now = {s.name for s in m.segments}
    if not listed <= now:
        return False
    top = max(info.base_seq for info, _ in gen.segs)
    for name in now - listed:
        b = _plain_base(name)
        if b is None or b <= top:
            return False
    return True


def _open_ro(path: str) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None


def _pread_all(fd: int, n: int, offset: int) -> bytes:
    parts = []
    while n > 0:
        b = os.pread(fd, min(n, 64 << 20), offset)
        if not b:
            break
        parts.append(b)
        n -= len(b)
        offset += len(b)
    return b"".join(parts)


def _read_file(path: str, offset: int, n: int) -> bytes:
    fd = _open_ro(path)
    if fd is None:
        raise _Changed()
    try:
        return _pread_all(fd, n, offset)
    finally:
        os.close(fd)


def _lease_of(data: bytes) -> dict[str, Any] | None:
    try:
        d = json.loads(data)
    except ValueError:
        return None
    return d if isinstance(d, dict) else None


def _lease_stale(lease: dict[str, Any], now: float) -> bool:
    """Expired, or held by a process of this machine that no longer exists."""
    exp = lease.get("expires")
    if not isinstance(exp, int | float) or exp <= now:
        return True
    if lease.get("host") == socket.gethostname() and isinstance(lease.get("pid"), int):
        try:
            os.kill(lease["pid"], 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
    return False


def _time_text(t: Any) -> str:
    if not isinstance(t, int | float):
        return "?"
    return datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


def _now_text() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def _log_error(exc: ReplicaError) -> None:
    log.warning("replication failed, retrying: %s", exc)

