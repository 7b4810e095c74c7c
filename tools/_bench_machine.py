"""The machine's own limits, measured in the same run as ``agcx bench``.

These bound what any store can do on this disk and CPU, so the driver prints
them next to the store figures: fsync latency of a 4 KiB append (the cost of a
durable append that grows a file), fdatasync latency of a 4 KiB overwrite inside
a preallocated file (no size change, so no metadata to flush: the floor for a
journal that preallocates segments), sequential write bandwidth, and zstd and
msgpack speeds on the workload's own bytes.

All throughputs are MB/s with MB = 10**6 bytes.  Probes create and remove their
own scratch files in the directory given; they never touch anything else.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import msgpack
import zstandard

__all__ = [
    "CodecSpeed",
    "IoCounters",
    "LatencyStats",
    "fdatasync_prealloc_latency",
    "fsync_append_latency",
    "msgpack_mbps",
    "peak_rss_bytes",
    "percentile",
    "proc_io_write_bytes",
    "sequential_write_mbps",
    "zstd_mbps",
]

_BLOCK = 4096


def percentile(sorted_samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in [0, 100]) of already sorted samples."""
    if not sorted_samples:
        raise ValueError("no samples")
    rank = max(1, -(-len(sorted_samples) * q // 100))  # ceil(n*q/100), at least 1
    return sorted_samples[min(len(sorted_samples), int(rank)) - 1]


@attrs.frozen
class LatencyStats:
    """Summary of latency samples, in seconds."""

    n: int
    p50: float
    p99: float
    mean: float
    max: float

    @classmethod
    def from_samples(cls, samples: Sequence[float]) -> LatencyStats:
        """Summarise raw samples (seconds); the driver can reuse this for saves."""
        s = sorted(samples)
        return cls(
            n=len(s),
            p50=percentile(s, 50),
            p99=percentile(s, 99),
            mean=sum(s) / len(s),
            max=s[-1],
        )


@attrs.frozen
class CodecSpeed:
    """Encode/decode throughput in MB/s of *uncompressed* bytes, and the size ratio."""

    encode_mbps: float
    decode_mbps: float
    ratio: float  # encoded size / input size


@attrs.frozen
class IoCounters:
    """This process's I/O counters from ``/proc/self/io`` (bytes).

    ``write_bytes`` is what reached the block layer (page cache writeback
    included), ``wchar`` what was passed to write calls; ``cancelled_write_bytes``
    are dirtied pages later discarded (truncated or deleted files).  Diff two
    snapshots to attribute I/O to a phase.
    """

    wchar: int
    write_bytes: int
    cancelled_write_bytes: int
    rchar: int
    read_bytes: int

    def __sub__(self, other: IoCounters) -> IoCounters:
        return IoCounters(
            self.wchar - other.wchar,
            self.write_bytes - other.write_bytes,
            self.cancelled_write_bytes - other.cancelled_write_bytes,
            self.rchar - other.rchar,
            self.read_bytes - other.read_bytes,
        )


def proc_io_write_bytes() -> IoCounters | None:
    """Snapshot of ``/proc/self/io``, or None where it does not exist."""
    try:
        with open("/proc/self/io", encoding="ascii") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return None
    try:
        return IoCounters(
            wchar=int(fields["wchar"]),
            write_bytes=int(fields["write_bytes"]),
            cancelled_write_bytes=int(fields.get("cancelled_write_bytes", "0")),
            rchar=int(fields["rchar"]),
            read_bytes=int(fields["read_bytes"]),
        )
    except (KeyError, ValueError):
        return None


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return int(rss) if sys.platform == "darwin" else int(rss) * 1024


def _fdatasync(fd: int) -> None:
    # macOS has no fdatasync; fsync is the nearest equivalent there.
    sync = getattr(os, "fdatasync", os.fsync)
    sync(fd)


def fsync_append_latency(directory: Path, n: int = 200) -> LatencyStats:
    """Latency of "append 4 KiB, then fsync", ``n`` times on one new file.

    Every append grows the file, so each fsync must also persist the inode's size
    (a journal commit on ext4/xfs): what append-only stores without
    preallocation pay per durable write.
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    path = directory / ".bench-fsync-append.tmp"
    block = os.urandom(_BLOCK)  # incompressible, in case the fs compresses
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    samples: list[float] = []
    try:
        os.fsync(fd)  # the file's creation is not part of the measurement
        for _ in range(n):
            t0 = time.perf_counter()
            os.write(fd, block)
            os.fsync(fd)
            samples.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return LatencyStats.from_samples(samples)


def fdatasync_prealloc_latency(directory: Path, n: int = 200) -> LatencyStats:
    """Latency of "overwrite 4 KiB, then fdatasync" inside a preallocated file.

    The file is preallocated by *writing* zeros (and fsyncing), not with
    fallocate: fallocated extents are "unwritten" on ext4/xfs, and the first write
    to one converts it, which is a metadata change that fdatasync must flush.
    Written zeros leave nothing but data to flush, so this is the floor for a
    durable write.  Offsets increase like appends to a preallocated segment.
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    path = directory / ".bench-fdatasync-prealloc.tmp"
    block = os.urandom(_BLOCK)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    samples: list[float] = []
    try:
        zeros = bytes(1 << 20)
        remaining = n * _BLOCK
        while remaining > 0:
            remaining -= os.write(fd, zeros[: min(remaining, len(zeros))])
        os.fsync(fd)
        for i in range(n):
            t0 = time.perf_counter()
            os.pwrite(fd, block, i * _BLOCK)
            _fdatasync(fd)
            samples.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return LatencyStats.from_samples(samples)


def sequential_write_mbps(directory: Path, mb: int = 256) -> float:
    """MB/s of writing ``mb`` MB in 1 MiB chunks to a new file, final fsync included."""
    if mb < 1:
        raise ValueError("mb must be >= 1")
    path = directory / ".bench-seqwrite.tmp"
    chunk = os.urandom(1 << 20)
    total = mb * 1_000_000
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        t0 = time.perf_counter()
        written = 0
        while written < total:
            written += os.write(fd, chunk[: min(len(chunk), total - written)])
        os.fsync(fd)
        elapsed = time.perf_counter() - t0
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return total / 1e6 / elapsed


def _best_time(fn: Any, repeat: int) -> float:
    best = float("inf")
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return max(best, 1e-9)


def zstd_mbps(data: bytes | Sequence[bytes], level: int = 3, repeat: int = 3) -> CodecSpeed:
    """zstd compress and decompress speed at ``level`` (best of ``repeat``).

    ``data`` is one buffer or several (e.g. one per session, as the old store
    compresses sessions one by one); contexts are reused, as a careful caller does.
    """
    chunks = [data] if isinstance(data, bytes) else list(data)
    size = sum(len(c) for c in chunks)
    if size == 0:
        raise ValueError("no data")
    cctx = zstandard.ZstdCompressor(level=level)
    dctx = zstandard.ZstdDecompressor()
    frames: list[bytes] = [cctx.compress(c) for c in chunks]  # warm-up + input for decode
    t_c = _best_time(lambda: [cctx.compress(c) for c in chunks], repeat)
    t_d = _best_time(lambda: [dctx.decompress(f) for f in frames], repeat)
    return CodecSpeed(size / 1e6 / t_c, size / 1e6 / t_d, sum(len(f) for f in frames) / size)


def msgpack_mbps(obj: Any, repeat: int = 3) -> CodecSpeed:
    """msgpack pack and unpack speed of ``obj`` in MB/s of packed bytes (best of ``repeat``)."""
    packed: bytes = msgpack.packb(obj, use_bin_type=True)
    if not packed:
        raise ValueError("nothing to pack")
    t_p = _best_time(lambda: msgpack.packb(obj, use_bin_type=True), repeat)
    t_u = _best_time(lambda: msgpack.unpackb(packed, raw=False), repeat)
    return CodecSpeed(len(packed) / 1e6 / t_p, len(packed) / 1e6 / t_u, 1.0)
