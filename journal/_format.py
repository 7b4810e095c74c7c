"""The AGCX byte layout: segment header, record frame, manifest. No I/O here.

Format version 3 (version 2 was the legacy one-file-per-session format). All
integers are little-endian. The authoritative description is docs/FORMAT.md;
keep the two in step.

Segment header (64 bytes)::

    0   4  magic "AGCX"
    4   2  u16 version (3)
    6   2  u16 header_len (64)
    8   8  u64 base_seq       seq of the first record this segment may hold
   16   8  i64 created_ns
   24  16  journal id         must equal the manifest's
   40   4  u32 flags          0
   44   4  u32 dict_id        0 (no zstd dictionary)
   48  12  reserved           zero
   60   4  u32 crc32 of bytes 0..60

Record::

    0   4  u32 body_len       36 + payload length
    4   4  u32 crc32(body)
    8      body:
           u64 seq | i64 ts_ns | u16 event_type | u8 codec | u8 flags
           | 16 B session id (all zero: none) | payload

A record whose ``body_len`` is 0 marks the end of the data: segments are
preallocated with zeros, so a zero frame header is where writing stopped.

Record flags: bit 0 (``CONTINUED``) says the next record belongs to the same
batch (one ``append_many``); the other bits are 0. The records of a batch are
written into one segment, and a reader yields none of them before it has read
the one that closes the batch (flag clear), so a crash that tore a batch's
write leaves all of it or none. Records written before the flag existed have
it clear: each was a batch of its own.

Manifest (``MANIFEST``)::

    0   4  magic "AGCM"
    4   2  u16 version (1)
    6   2  u16 reserved (0)
    8   4  u32 body_len
   12   4  u32 crc32(body)
   16      body: msgpack map (see ``encode_manifest``)
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import attrs
import msgpack

from journal._codec import unpack_bounded
from journal._errors import CorruptJournal, UnsupportedVersion

__all__ = [
    "BODY_HEADER",
    "CONTINUED",
    "FRAME_HEADER",
    "HEADER_SIZE",
    "MAGIC",
    "RECORD_OVERHEAD",
    "VERSION",
    "Manifest",
    "ScanStop",
    "SegmentHeader",
    "SegmentInfo",
    "decode_manifest",
    "encode_manifest",
    "iter_frames",
    "pack_header",
    "pack_record",
    "unpack_header",
]

MAGIC = b"AGCX"
VERSION = 3
HEADER_SIZE = 64
_HEADER = struct.Struct("<4sHHQq16sII12s")  # 60 bytes, then u32 crc
_CRC = struct.Struct("<I")

FRAME_HEADER = struct.Struct("<II")  # body_len, crc
BODY_HEADER = struct.Struct("<QqHBB16s")  # seq, ts_ns, event_type, codec, flags, session
RECORD_OVERHEAD = FRAME_HEADER.size + BODY_HEADER.size  # 44
CONTINUED = 0x01  # record flag: the next record belongs to the same batch
MAX_SEQ = (1 << 63) - 1  # seqs, offsets and times are kept in signed 64-bit arrays
NO_SESSION = bytes(16)

MANIFEST_MAGIC = b"AGCM"
MANIFEST_VERSION = 1
_MANIFEST_HEADER = struct.Struct("<4sHHII")


@attrs.frozen
class SegmentHeader:
    """The fixed header at the start of every segment file."""

    base_seq: int
    created_ns: int
    journal_id: bytes
    flags: int = 0
    dict_id: int = 0


def pack_header(h: SegmentHeader) -> bytes:
    """Encode a segment header (64 bytes, CRC included)."""
    head = _HEADER.pack(
        MAGIC,
        VERSION,
        HEADER_SIZE,
        h.base_seq,
        h.created_ns,
        h.journal_id,
        h.flags,
        h.dict_id,
        bytes(12),
    )
    return head + _CRC.pack(zlib.crc32(head))


def unpack_header(data: bytes, path: str) -> SegmentHeader:
    """Decode and check a segment header; damage raises :class:`CorruptJournal`."""
    if len(data) < HEADER_SIZE:
        raise CorruptJournal(
            path, 0, f"segment header is {len(data)} bytes, expected {HEADER_SIZE}"
        )
    magic, version, header_len, base_seq, created, jid, flags, dict_id, _ = _HEADER.unpack_from(
        data
    )
    if magic != MAGIC:
        raise CorruptJournal(path, 0, f"bad magic {magic!r}, expected {MAGIC!r}")
    (crc,) = _CRC.unpack_from(data, 60)
    if crc != zlib.crc32(data[:60]):
        raise CorruptJournal(path, 60, "segment header checksum mismatch")
    if version != VERSION:
        raise UnsupportedVersion(
            path, 4, f"segment format version {version}; this build reads version {VERSION}"
        )
    if header_len != HEADER_SIZE:
        raise CorruptJournal(path, 6, f"header_len {header_len}, expected {HEADER_SIZE}")
    return SegmentHeader(base_seq, created, jid, flags, dict_id)


def pack_record(
    seq: int,
    ts_ns: int,
    event_type: int,
    codec: int,
    session: bytes,
    payload: bytes,
    flags: int = 0,
) -> bytes:
    """Frame one record: length, CRC of the body, body."""
    body = BODY_HEADER.pack(seq, ts_ns, event_type, codec, flags, session) + payload
    return FRAME_HEADER.pack(len(body), zlib.crc32(body)) + body


class ScanStop:
    """Why a scan of a record area stopped before the end of the buffer.

    ``END`` means the data ended cleanly (end of buffer or a zero frame header,
    i.e. preallocated space); every other kind is damage at ``offset``.
    ``offset`` is where the whole data ends: when the scan stopped inside a
    batch, that is the batch's first record, and ``at`` is where the scan
    itself stopped (otherwise the two are equal).
    """

    END = "end"
    SHORT_HEADER = "incomplete frame header"
    SHORT_BODY = "record body extends past the end of the data"
    BAD_LENGTH = "impossible record length"
    TOO_LARGE = "record length exceeds max_record_size"
    BAD_CRC = "record checksum mismatch"
    BAD_SEQ = "seq does not increase"
    BAD_TS = "timestamp decreases"
    INCOMPLETE_BATCH = "batch incomplete: the data ends before the record closing it"

    __slots__ = ("at", "kind", "offset")

    def __init__(self, kind: str, offset: int, at: int | None = None) -> None:
        self.kind = kind
        self.offset = offset
        self.at = offset if at is None else at

    def __repr__(self) -> str:
        return f"ScanStop({self.kind!r}, {self.offset})"


# (offset, body_len, seq, ts_ns, event_type, codec, session, payload_start)
Frame = tuple[int, int, int, int, int, int, bytes, int]


def iter_frames(
    buf: bytes | memoryview,
    start: int,
    base_offset: int,
    max_record_size: int,
    prev_seq: int,
    prev_ts: int,
    stop: list[ScanStop],
    hold: bool = True,
) -> Iterator[Frame]:
    """Yield the whole, checksummed records in ``buf[start:]``.

    Offsets yielded are ``base_offset + position in buf`` (the file offset when
    ``buf`` was read from ``base_offset``). When the scan stops, one
    :class:`ScanStop` is appended to ``stop`` saying why and where: the caller
    decides whether that is a clean end, a torn tail or corruption.

    A record flagged ``CONTINUED`` is held back until the record closing its
    batch has been read: a batch is yielded whole or not at all. ``hold=False``
    yields records at once, for data already known to hold whole batches only
    (indexed before, or a sealed segment checked against the manifest).
    """
    end = len(buf)
    pos = start
    held: list[Frame] = []
    unpack_frame = FRAME_HEADER.unpack_from
    unpack_body = BODY_HEADER.unpack_from
    crc32 = zlib.crc32
    while True:
        if pos + 8 > end:
            # Whether a few trailing zero bytes are the end of the data or the
            # start of a frame cut by the end of a read buffer, only the caller
            # knows: it decides (``Segment.frames``).
            kind = ScanStop.END if pos == end else ScanStop.SHORT_HEADER
            stop.append(_stopped(kind, base_offset + pos, held))
            return
        body_len, crc = unpack_frame(buf, pos)
        if body_len == 0:
            kind = ScanStop.END if crc == 0 else ScanStop.BAD_LENGTH
            stop.append(_stopped(kind, base_offset + pos, held))
            return
        if body_len < BODY_HEADER.size:
            stop.append(_stopped(ScanStop.BAD_LENGTH, base_offset + pos, held))
            return
        if body_len > max_record_size:
            stop.append(_stopped(ScanStop.TOO_LARGE, base_offset + pos, held))
            return
        body_end = pos + 8 + body_len
        if body_end > end:
            stop.append(_stopped(ScanStop.SHORT_BODY, base_offset + pos, held))
            return
        if crc32(buf[pos + 8 : body_end]) != crc:
            stop.append(_stopped(ScanStop.BAD_CRC, base_offset + pos, held))
            return
        seq, ts, etype, codec, flags, session = unpack_body(buf, pos + 8)
        if seq <= prev_seq or seq > MAX_SEQ:
            stop.append(_stopped(ScanStop.BAD_SEQ, base_offset + pos, held))
            return
        if ts < prev_ts:
            stop.append(_stopped(ScanStop.BAD_TS, base_offset + pos, held))
            return
        frame = (base_offset + pos, body_len, seq, ts, etype, codec, session, pos + RECORD_OVERHEAD)
        if flags & CONTINUED and hold:
            held.append(frame)
        else:
            if held:
                yield from held
                held = []
            yield frame
        prev_seq = seq
        prev_ts = ts
        pos = body_end


def _stopped(kind: str, at: int, held: list[Frame]) -> ScanStop:
    """The stop of a scan at ``at``; inside a batch, the whole data ends at its start."""
    if not held:
        return ScanStop(kind, at)
    if kind == ScanStop.END:
        kind = ScanStop.INCOMPLETE_BATCH
    return ScanStop(kind, held[0][0], at)


@attrs.frozen
class SegmentInfo:
    """What the manifest knows of one segment.

    For the active (unsealed) segment only ``base_seq`` is authoritative; the
    rest is found by scanning it.
    """

    base_seq: int
    sealed: bool = False
    first_seq: int = 0
    last_seq: int = 0
    count: int = 0
    first_ts: int = 0
    last_ts: int = 0
    length: int = 0
    file: str = ""  # a rewritten segment's own file name; "" means segment_name(base_seq)

    @property
    def name(self) -> str:
        return self.file or segment_name(self.base_seq)


def segment_name(base_seq: int, rewrite: int = 0) -> str:
    """File name of the segment whose first seq is ``base_seq``.

    A segment written by compaction or purge carries the manifest generation
    that introduced it (``-r<gen>``), so it never has the name of a file it
    replaces: the old and the new journal coexist until the manifest switch.
    """
    if rewrite:
        return f"{base_seq:020d}-r{rewrite}.agcx"
    return f"{base_seq:020d}.agcx"


SEGMENT_FILE_RE = re.compile(r"^(\d{20})(?:-r(\d+))?\.agcx$")


@attrs.frozen
class Manifest:
    """The list of segments, the horizon and the journal's identity."""

    journal_id: bytes
    generation: int
    segments: tuple[SegmentInfo, ...]
    horizon_seq: int = 0  # seqs <= horizon_seq were folded by compaction
    horizon_ts: int = 0
    created_ns: int = 0


def encode_manifest(m: Manifest) -> bytes:
    """Encode a manifest: header with CRC, then a msgpack map with short keys."""
    body: bytes = msgpack.packb(
        {
            "jid": m.journal_id,
            "gen": m.generation,
            "hs": m.horizon_seq,
            "ht": m.horizon_ts,
            "c": m.created_ns,
            "segs": [
                {
                    "b": s.base_seq,
                    "s": s.sealed,
                    "f": s.first_seq,
                    "l": s.last_seq,
                    "n": s.count,
                    "t0": s.first_ts,
                    "t1": s.last_ts,
                    "len": s.length,
                    **({"nm": s.file} if s.file else {}),
                }
                for s in m.segments
            ],
        },
        use_bin_type=True,
    )
    head = _MANIFEST_HEADER.pack(MANIFEST_MAGIC, MANIFEST_VERSION, 0, len(body), zlib.crc32(body))
    return head + body


_MAX_MANIFEST = 64 << 20
_I64_MIN = -(1 << 63)


def decode_manifest(data: bytes, path: str) -> Manifest:
    """Decode and validate a manifest; any damage raises :class:`CorruptJournal`."""
    if len(data) < _MANIFEST_HEADER.size:
        raise CorruptJournal(path, 0, f"manifest is {len(data)} bytes, shorter than its header")
    magic, version, _, body_len, crc = _MANIFEST_HEADER.unpack_from(data)
    if magic != MANIFEST_MAGIC:
        raise CorruptJournal(path, 0, f"bad manifest magic {magic!r}")
    if version != MANIFEST_VERSION:
        raise UnsupportedVersion(
            path, 4, f"manifest version {version}; this build reads version {MANIFEST_VERSION}"
        )
    if body_len != len(data) - _MANIFEST_HEADER.size or body_len > _MAX_MANIFEST:
        raise CorruptJournal(
            path, 8, f"manifest body length {body_len} does not match the file ({len(data)} bytes)"
        )
    body = data[_MANIFEST_HEADER.size :]
    if zlib.crc32(body) != crc:
        raise CorruptJournal(path, 12, "manifest checksum mismatch")
    try:
        raw = unpack_bounded(body)
        segs = tuple(
            SegmentInfo(
                base_seq=_int(s["b"]),
                sealed=bool(s["s"]),
                first_seq=_int(s.get("f", 0)),
                last_seq=_int(s["l"]),
                count=_int(s["n"]),
                first_ts=_int(s["t0"], signed=True),
                last_ts=_int(s["t1"], signed=True),
                length=_int(s["len"]),
                file=_file_name(s.get("nm", "")),
            )
            for s in raw["segs"]
        )
        m = Manifest(
            journal_id=bytes(raw["jid"]),
            generation=_int(raw["gen"]),
            segments=segs,
            horizon_seq=_int(raw.get("hs", 0)),
            horizon_ts=_int(raw.get("ht", 0), signed=True),
            created_ns=_int(raw.get("c", 0), signed=True),
        )
    except CorruptJournal:
        raise
    except Exception as exc:  # any shape error in the map is damage
        raise CorruptJournal(
            path, _MANIFEST_HEADER.size, f"manifest body undecodable: {exc!r}"
        ) from exc
    _check_manifest(m, path)
    return m


def _file_name(v: Any) -> str:
    # A name from the manifest becomes a path: only our own pattern is accepted.
    if v == "":
        return ""
    if not isinstance(v, str) or not SEGMENT_FILE_RE.match(v):
        raise ValueError(f"segment file name {v!r} is not a segment name")
    return v


def _int(v: Any, signed: bool = False) -> int:
    # Every number of a manifest is a seq, time, count or length: signed 64-bit
    # (a larger one would overflow the index arrays or the next manifest write).
    if type(v) is not int or v < (_I64_MIN if signed else 0) or v > MAX_SEQ:
        raise ValueError(f"expected an integer, got {v!r}")
    return v


def _check_manifest(m: Manifest, path: str) -> None:
    if len(m.journal_id) != 16:
        raise CorruptJournal(path, None, "manifest journal id is not 16 bytes")
    if not m.segments:
        raise CorruptJournal(path, None, "manifest lists no segments")
    prev_last = 0
    for i, s in enumerate(m.segments):
        last = i == len(m.segments) - 1
        if s.base_seq < 1 or s.base_seq <= prev_last:
            raise CorruptJournal(path, None, f"segment {s.name}: base seq out of order")
        if s.sealed:
            if s.count and not (
                s.base_seq <= s.first_seq <= s.last_seq and s.first_ts <= s.last_ts
            ):
                raise CorruptJournal(path, None, f"segment {s.name}: impossible seq/time range")
            if s.length < HEADER_SIZE:
                raise CorruptJournal(path, None, f"segment {s.name}: impossible length {s.length}")
            if s.count > s.length // RECORD_OVERHEAD:
                raise CorruptJournal(path, None, f"segment {s.name}: impossible record count")
            prev_last = max(prev_last, s.last_seq, s.base_seq - 1)
        elif not last:
            raise CorruptJournal(
                path, None, f"segment {s.name}: only the last segment may be unsealed"
            )
