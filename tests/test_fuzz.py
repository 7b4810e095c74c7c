"""Hostile input: damaged, random and absurd bytes given to open, scan and decode.

Whatever the bytes, the journal answers with a typed error (a
:class:`journal.JournalError` subclass) or with the records that are really
there: never another exception, a hang or an allocation its limits do not
allow. Inputs are small (a few KiB), every test has a timeout, and peak
memory is measured for the cases that claim huge sizes. The long-running
modes (many more inputs) run with ``--run-slow``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import shutil
import stat
import struct
import tempfile
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import journal._segment as segment_module
from journal import CorruptJournal, Entry, Journal, JournalError
from journal._codec import RAW, ZSTD, Codec, unpack_bounded
from journal._errors import CorruptPayload
from journal._format import (
    CONTINUED,
    FRAME_HEADER,
    HEADER_SIZE,
    decode_manifest,
    pack_record,
)
from tests.faultfs import report_figures

SEG = 4096
MAX_RECORD = 64 << 10  # small limits, so "bounded" is measurable
COUNTS: dict[str, int] = {}


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Iterator[None]:
    """Report how many hostile inputs each test tried (docs/RELIABILITY.md)."""
    yield
    if COUNTS:
        report_figures("fuzz inputs", {"total": sum(COUNTS.values()), **COUNTS})


def _count(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1


# -- a template journal to damage ----------------------------------------------------------


@functools.cache
def _template() -> tuple[dict[str, bytes], tuple[tuple[str, Any], ...]]:
    """The files of a small valid journal, and what the test wrote into it:
    for seq 1, 2, ... the segment file holding that record and its payload."""
    tmp = Path(tempfile.mkdtemp(prefix="agcx-fuzz-"))
    try:
        root = tmp / "j"
        rng = random.Random(5)
        written: list[Any] = []
        with Journal.open(root, segment_size=SEG, preallocate=0) as j:
            for b in range(30):
                batch = [
                    {
                        "b": b,
                        "k": k,
                        "text": "word " * rng.choice([1, 40, 200]),
                        "blob": rng.randbytes(rng.choice([0, 10, 300])),
                        "nest": {"a": [1, 2.5, None, True, {"z": b"\0"}]},
                    }
                    for k in range(rng.choice([1, 1, 2, 3]))
                ]
                j.append_many([Entry(1 + k, p) for k, p in enumerate(batch)])
                written.extend(batch)
            # Which file holds each seq: from the manifest's bases (the oracle
            # itself is ``written``, the payloads as the test made them).
            bases = [(s.base_seq, f"segments/{s.name}") for s in j.manifest.segments]
        where = tuple(
            (max(name for base, name in bases if base <= seq), written[seq - 1])
            for seq in range(1, len(written) + 1)
        )
        files = {}
        for p in sorted(root.rglob("*")):
            if p.is_file() and p.name != "LOCK":
                files[str(p.relative_to(root))] = p.read_bytes()
        assert sum(1 for f in files if f.startswith("segments/")) >= 3
        return files, where
    finally:
        shutil.rmtree(tmp)


def template() -> dict[str, bytes]:
    """The files of a small valid journal: sealed segments, an active one, a manifest.

    Its batches hold raw and zstd payloads, nested maps, and several records each.
    """
    return _template()[0]


def written() -> tuple[tuple[str, Any], ...]:
    """For seq 1, 2, ...: the template segment holding it and the payload the test wrote."""
    return _template()[1]


def segments() -> list[str]:
    """The template's segment files in order (the last is the active one)."""
    return sorted(f for f in template() if f.startswith("segments/"))


def fresh(tmp: Path) -> Path:
    """A new journal path under ``tmp`` (hypothesis reuses a test's ``tmp_path``)."""
    return Path(tempfile.mkdtemp(dir=tmp)) / "j"


def write_journal(root: Path, files: dict[str, bytes]) -> None:
    """Lay out ``files`` as a journal directory at ``root``."""
    (root / "segments").mkdir(parents=True, mode=0o700)
    for name, data in files.items():
        (root / name).write_bytes(data)


def exercise(root: Path, *, trusted: frozenset[str] | None = None, whole: int = 0) -> int:
    """Open read-only and as a writer; scan, decode, read, append. Return records read.

    A :class:`JournalError` ends one pass quietly (that is the expected answer
    to damage); any other exception escapes and fails the test. The oracle is
    what the test wrote (:func:`written`): a record read back from a segment
    file named in ``trusted`` (not damaged, or damaged without its checksums
    fixed) must decode to the payload written at its seq, never to something
    else; and the read-only pass must yield at least the first ``whole``
    records (those in files before the damage).
    """
    truth = written()
    if trusted is None:
        trusted = frozenset(name for name, _ in truth)
    seen = 0
    for readonly in (True, False):
        got = 0
        try:
            with Journal.open(
                root, readonly=readonly, segment_size=SEG, max_record_size=MAX_RECORD
            ) as j:
                for rec in j.scan():
                    seen += 1
                    got += 1
                    try:
                        value = j.decode(rec)
                    except CorruptJournal:
                        value = _UNREADABLE
                    if rec.seq <= len(truth) and truth[rec.seq - 1][0] in trusted:
                        assert value == truth[rec.seq - 1][1], f"seq {rec.seq} misread"
                st = j.statistics()
                if st.last_seq:
                    j.read(st.last_seq)
                if not readonly:
                    j.append(1, {"after": "damage"})
        except JournalError:
            pass
        if readonly:
            assert got >= whole, f"only {got} of the {whole} undamaged records came back"
    return seen


_UNREADABLE = object()


def fix_crcs(data: bytes) -> bytes:
    """Recompute the header and record CRCs of a (damaged) segment, so that a
    reader gets past the checksums and meets the damage itself."""
    buf = bytearray(data)
    if len(buf) >= HEADER_SIZE:
        buf[60:64] = struct.pack("<I", zlib.crc32(bytes(buf[:60])))
    pos = HEADER_SIZE
    while pos + 8 <= len(buf):
        (body_len, _) = FRAME_HEADER.unpack_from(buf, pos)
        if body_len == 0 or pos + 8 + body_len > len(buf):
            break
        buf[pos + 4 : pos + 8] = struct.pack(
            "<I", zlib.crc32(bytes(buf[pos + 8 : pos + 8 + body_len]))
        )
        pos += 8 + body_len
    return bytes(buf)


def manifest_bytes(body: Any, *, raw: bytes | None = None) -> bytes:
    """A manifest file with a correct header and CRC around ``body`` (msgpack'd)."""
    data = raw if raw is not None else msgpack.packb(body, use_bin_type=True)
    return struct.pack("<4sHHII", b"AGCM", 1, 0, len(data), zlib.crc32(data)) + data


def template_manifest() -> dict[str, Any]:
    """The template's manifest body as a map."""
    m: dict[str, Any] = msgpack.unpackb(template()["MANIFEST"][16:], raw=False)
    return m


# -- mutations -------------------------------------------------------------------------------


def mutate(data: bytes, rng: random.Random, n: int) -> bytes:
    """Apply ``n`` random byte-level mutations (flip, set, cut, insert, delete, repeat)."""
    buf = bytearray(data)
    for _ in range(n):
        kind = rng.randrange(7)
        at = rng.randrange(len(buf) + 1)
        if kind == 0 and buf:
            i = min(at, len(buf) - 1)
            buf[i] ^= 1 << rng.randrange(8)
        elif kind == 1 and buf:
            i = min(at, len(buf) - 1)
            buf[i] = rng.choice([0, 0xFF, 0x7F, 0x80, rng.randrange(256)])
        elif kind == 2:
            del buf[at:]
        elif kind == 3:
            buf[at:at] = rng.randbytes(rng.randrange(1, 40))
        elif kind == 4:
            del buf[at : at + rng.randrange(1, 64)]
        elif kind == 5 and buf:
            j = rng.randrange(len(buf))
            buf[at:at] = buf[j : j + rng.randrange(1, 200)]
        else:  # a big little-endian number where a length or seq may be
            i = min(at, max(0, len(buf) - 8))
            buf[i : i + 8] = struct.pack("<Q", rng.choice([2**32 - 1, 2**63, 2**64 - 1, 1 << 40]))
    return bytes(buf)


def run_mutation(tmp: Path, rng: random.Random, name: str) -> None:
    """One hostile journal: a random file of the template damaged, CRCs maybe fixed.

    Records in files left alone, and in the damaged file unless its checksums
    were recomputed, must read back as written; a sealed segment damaged in
    place past its header (same length) still lets every record before it through.
    """
    files = dict(template())
    victim = rng.choice([*segments(), "MANIFEST"])
    data = mutate(files[victim], rng, rng.randrange(1, 6))
    fixed = rng.random() < 0.6
    if fixed:
        data = fix_crcs(data) if victim != "MANIFEST" else manifest_bytes(None, raw=data[16:])
    trusted = {n for n, _ in written()} - ({victim} if fixed else set())
    whole = 0
    # A damaged header refuses the whole journal at open (a typed error naming
    # the segment: salvage is the way on), so only damage past the header of a
    # segment promises the records before it.
    same_header = data[:HEADER_SIZE] == files[victim][:HEADER_SIZE]
    if victim == segments()[-1] and same_header:
        whole = sum(1 for n, _ in written() if n < victim)  # every sealed record
    elif victim in segments() and len(data) == len(files[victim]) and same_header:
        whole = sum(1 for n, _ in written() if n < victim)
    files[victim] = data
    root = fresh(tmp)
    write_journal(root, files)
    try:
        exercise(root, trusted=frozenset(trusted), whole=whole)
        _count(name)
    finally:
        shutil.rmtree(root.parent)


# -- record layouts at the edges of read chunks ------------------------------------------


@settings(max_examples=60)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=40),
    chunk=st.integers(min_value=64, max_value=700),
    first=st.integers(min_value=8, max_value=700),
)
def test_every_record_is_found_wherever_the_read_chunks_end(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int], chunk: int, first: int
) -> None:
    """A chunk ending on a record boundary (or inside a frame header) is not the end of data."""
    root = tmp_path_factory.mktemp("chunks") / "j"
    payloads = [bytes([1 + i % 250]) * n for i, n in enumerate(sizes)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(segment_module, "_CHUNK", chunk)
        mp.setattr(segment_module, "_FIRST_CHUNK", first)
        with Journal.open(root, compression_level=1) as j:
            half = len(payloads) // 2
            j.append_many([Entry(1, p) for p in payloads[:half]])
            with Journal.open(root, readonly=True) as reader:
                assert reader.last_seq == half
                # An incremental catch-up from the middle, then a full scan.
                j.append_many([Entry(1, p) for p in payloads[half:]])
                assert reader.last_seq == len(payloads)
                assert [reader.decode(r) for r in reader.scan()] == payloads
        with Journal.open(root) as j:
            assert [j.decode(r) for r in j.scan()] == payloads
            assert j.append(1, b"next") == len(payloads) + 1
        with Journal.open(root, readonly=True) as j:
            assert [j.decode(r) for r in j.scan()] == [*payloads, b"next"]


def test_a_record_ending_exactly_where_the_first_read_chunk_ends_is_not_the_end(
    root: Path,
) -> None:
    """Regression: 16 records of 1 KiB end exactly at the 16 KiB first chunk."""
    body = os.urandom(1024 - 44 - 3)  # 44 bytes of framing, 3 of msgpack bin16 header
    with Journal.open(root, compression_level=1) as j:
        j.append_many([Entry(1, body) for _ in range(21)])
    with Journal.open(root) as j:
        assert len(list(j.scan())) == 21
        assert j.append(1, b"x") == 22
    with Journal.open(root, readonly=True) as j:
        assert [r.seq for r in j.scan()] == list(range(1, 23))


# -- random and mutated files (hypothesis) ------------------------------------------------

_FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@_FUZZ
@pytest.mark.timeout(120)
@given(seed=st.integers(min_value=0, max_value=2**32))
def test_randomly_damaged_segments_and_manifests_give_only_typed_errors(
    tmp_path: Path, seed: int
) -> None:
    run_mutation(tmp_path, random.Random(seed), "mutated journal files")


@_FUZZ
@pytest.mark.timeout(120)
@given(
    body=st.binary(max_size=3000),
    where=st.sampled_from(["active", "sealed"]),
    keep_header=st.booleans(),
)
def test_random_bytes_as_a_segment_give_only_typed_errors(
    tmp_path: Path, body: bytes, where: str, keep_header: bool
) -> None:
    files = dict(template())
    victim = segments()[-1] if where == "active" else segments()[0]
    files[victim] = (files[victim][:HEADER_SIZE] if keep_header else b"") + body
    root = fresh(tmp_path)
    write_journal(root, files)
    exercise(root)
    shutil.rmtree(root.parent)
    _count("random segment bytes")


_seq = st.one_of(
    st.integers(min_value=0, max_value=2**64 - 1),
    st.sampled_from([0, 1, 2, 2**63 - 1, 2**63, 2**64 - 1]),
)
_payload = st.one_of(
    st.binary(max_size=200),
    st.builds(
        lambda v: msgpack.packb(v, use_bin_type=True),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers(min_value=-(2**63), max_value=2**64 - 1)
            | st.text(max_size=20)
            | st.binary(max_size=20),
            lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c, max_size=4),
            max_leaves=20,
        ),
    ),
    st.builds(lambda b: zstandard.ZstdCompressor().compress(b), st.binary(max_size=300)),
)


@_FUZZ
@pytest.mark.timeout(120)
@given(
    records=st.lists(
        st.tuples(
            _seq,
            st.integers(min_value=-(2**63), max_value=2**63 - 1),
            st.integers(min_value=0, max_value=0xFFFF),
            st.integers(min_value=0, max_value=255),
            st.integers(min_value=0, max_value=255),
            st.binary(min_size=16, max_size=16),
            _payload,
        ),
        max_size=12,
    ),
    where=st.sampled_from(["active", "sealed"]),
)
def test_well_framed_records_with_absurd_fields_give_only_typed_errors(
    tmp_path: Path,
    records: list[tuple[int, int, int, int, int, bytes, bytes]],
    where: str,
) -> None:
    """Valid frames and checksums around any seq, time, type, codec, flags and payload."""
    files = dict(template())
    victim = segments()[-1] if where == "active" else segments()[0]
    files[victim] = files[victim][:HEADER_SIZE] + b"".join(_frame(*r) for r in records)
    root = fresh(tmp_path)
    write_journal(root, files)
    # The frames' checksums are right: what they hold is what the victim now says.
    exercise(root, trusted=frozenset(n for n, _ in written() if n != victim))
    shutil.rmtree(root.parent)
    _count("well-framed absurd records")


def _frame(
    seq: int, ts: int, etype: int, codec: int, flags: int, sid: bytes, payload: bytes
) -> bytes:
    """A record frame with any field values, its CRC correct."""
    body = struct.pack("<QqHBB16s", seq, ts, etype, codec, flags, sid) + payload
    return FRAME_HEADER.pack(len(body), zlib.crc32(body)) + body


_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64 - 1),
    st.sampled_from([0, 1, -1, 64, 2**31, 2**63 - 1, 2**63, 2**64 - 1]),
    st.text(max_size=30),
    st.binary(max_size=20),
    st.floats(allow_nan=True),
    st.lists(st.integers(), max_size=3),
)


@_FUZZ
@pytest.mark.timeout(120)
@given(
    changes=st.lists(
        st.tuples(
            st.sampled_from(["jid", "gen", "hs", "ht", "c", "segs", "x"]),
            _value,
        ),
        max_size=3,
    ),
    seg_changes=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=5),
            st.sampled_from(["b", "s", "f", "l", "n", "t0", "t1", "len", "nm", "zz"]),
            st.one_of(_value, st.sampled_from(["../MANIFEST", "/etc/passwd", "x.agcx"])),
        ),
        max_size=4,
    ),
    drop=st.lists(st.sampled_from(["b", "s", "l", "n", "len"]), max_size=2),
)
def test_manifests_with_any_field_values_give_only_typed_errors(
    tmp_path: Path,
    changes: list[tuple[str, Any]],
    seg_changes: list[tuple[int, str, Any]],
    drop: list[str],
) -> None:
    body = template_manifest()
    for key, value in changes:
        body[key] = value
    segs = body.get("segs")
    if isinstance(segs, list) and segs:
        for i, key, value in seg_changes:
            s = segs[i % len(segs)]
            if isinstance(s, dict):
                s[key] = value
        for key in drop:
            if isinstance(segs[0], dict):
                segs[0].pop(key, None)
    files = dict(template())
    try:
        files["MANIFEST"] = manifest_bytes(body)
    except (OverflowError, TypeError, ValueError):
        return  # not encodable: not a manifest anyone can write
    root = fresh(tmp_path)
    write_journal(root, files)
    exercise(root)
    shutil.rmtree(root.parent)
    _count("manifest field values")


@_FUZZ
@pytest.mark.timeout(60)
@given(codec=st.integers(min_value=0, max_value=3), data=st.binary(max_size=400))
def test_payload_decoding_of_any_bytes_raises_only_corrupt_payload(codec: int, data: bytes) -> None:
    c = Codec(max_payload=1 << 16)
    for raw in (data, b"\x28\xb5\x2f\xfd" + data):
        with contextlib.suppress(CorruptPayload):
            c.decode(codec, raw)
    _count("payload bytes")


# -- explicit hostile cases -------------------------------------------------------------------


def _peak(fn: Callable[[], object]) -> int:
    """Peak bytes Python allocated while running ``fn``."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _with_active(tmp_path: Path, tail: bytes, *, sealed: bool = False) -> Path:
    files = dict(template())
    victim = segments()[0] if sealed else segments()[-1]
    if sealed:
        data = files[victim]
        files[victim] = data[: len(data) - len(tail)] + tail  # same length as listed
    else:
        files[victim] += tail
    root = tmp_path / ("sealed" if sealed else "active")
    write_journal(root, files)
    return root


@pytest.mark.timeout(60)
def test_a_record_claiming_4_gib_is_refused_before_anything_is_allocated(tmp_path: Path) -> None:
    huge = struct.pack("<II", 0xFFFFFFFF, 0) + os.urandom(100)
    for sealed in (False, True):
        root = _with_active(tmp_path, huge, sealed=sealed)
        peak = _peak(lambda root=root: exercise(root))  # type: ignore[misc]
        assert peak < 8 * MAX_RECORD + (4 << 20), peak
    # A writer cuts it as a torn tail of the active segment (and keeps the bytes aside).
    root = _with_active(tmp_path / "again", huge)
    with Journal.open(root, segment_size=SEG) as j:
        n = j.last_seq
        assert j.append(1, "next") == n + 1
    assert list((root / "quarantine").iterdir())
    sealed_root = _with_active(tmp_path / "s", huge, sealed=True)
    with (
        pytest.raises(CorruptJournal, match="sealed segment damaged"),
        Journal.open(sealed_root) as j,
    ):
        list(j.scan())


@pytest.mark.timeout(60)
def test_a_length_under_the_limit_but_past_the_file_allocates_no_more_than_the_file(
    tmp_path: Path,
) -> None:
    """A frame claiming 60 MiB (within the default 64 MiB max_record_size) in a 20 KiB
    active segment: the reader reads what the file holds, not what the frame claims."""
    files = dict(template())
    last = segments()[-1]
    files[last] = files[last][:HEADER_SIZE] + struct.pack("<II", 60 << 20, 1) + os.urandom(20000)
    root = tmp_path / "j"
    write_journal(root, files)

    def read() -> None:
        with Journal.open(root, readonly=True) as j:
            assert [r.seq for r in j.scan()][-1] < 10**6

    assert _peak(read) < 2 << 20


@pytest.mark.timeout(60)
def test_a_zstd_frame_declaring_a_huge_size_is_refused_before_decompressing(
    tmp_path: Path,
) -> None:
    frame = bytearray(zstandard.ZstdCompressor(write_content_size=True).compress(b"x" * 1000))
    # Rewrite the frame header: single segment, 8-byte content size of 2**40.
    liar = zstandard.ZstdCompressor(write_content_size=True).compress(b"y" * (1 << 16))
    params = zstandard.get_frame_parameters(liar)
    assert params.content_size == 1 << 16
    declared = _zstd_with_content_size(bytes(frame), 1 << 40)
    assert zstandard.frame_content_size(declared) == 1 << 40
    c = Codec(max_payload=1 << 20)
    with pytest.raises(CorruptPayload, match="declares"):
        c.decode(ZSTD, declared)
    # In a journal: the record is whole and checksummed; decoding it is refused.
    files = dict(template())
    last = segments()[-1]
    seq = 10**6
    files[last] += pack_record(seq, 2**62, 1, ZSTD, bytes(16), declared)
    write_journal(tmp_path / "j", files)
    with Journal.open(tmp_path / "j", readonly=True, max_record_size=MAX_RECORD) as j:
        rec = j.read(seq)

        def decode() -> None:
            with pytest.raises(CorruptJournal, match=f"seq {seq}: .*declares"):
                j.decode(rec)

        assert _peak(decode) < 1 << 20
    # A frame that declares less than it holds stops at what it declared.
    small = _zstd_with_content_size(zstandard.ZstdCompressor().compress(b"z" * 5000), 10)
    with pytest.raises(CorruptPayload):
        c.decode(ZSTD, small)
    # A frame that does not declare its size is refused too.
    unsized = zstandard.ZstdCompressor(write_content_size=False).compress(b"q" * 100)
    with pytest.raises(CorruptPayload, match="does not declare"):
        c.decode(ZSTD, unsized)


def _zstd_with_content_size(frame: bytes, size: int) -> bytes:
    """``frame`` with its header rewritten to declare ``size`` bytes (8-byte field)."""
    fhd = frame[4]
    single = (fhd >> 5) & 1
    fcs_flag = fhd >> 6
    did_flag = fhd & 3
    window = 0 if single else 1
    did = [0, 1, 2, 4][did_flag]
    fcs = [single, 2, 4, 8][fcs_flag]
    rest = frame[5 + window + did + fcs :]
    new_fhd = (3 << 6) | (fhd & 0b0011_1111) | (1 << 5)  # 8-byte size, single segment
    head = frame[:4] + bytes([new_fhd]) + frame[5 + window : 5 + window + did]
    return head + struct.pack("<Q", size) + rest


@pytest.mark.timeout(60)
def test_deeply_nested_and_huge_length_msgpack_is_refused(tmp_path: Path) -> None:
    cases = [
        b"\x91" * 200_000 + b"\xc0",  # 200k nested arrays
        b"\x81\xa1k" * 100_000 + b"\xc0",  # 100k nested maps
        b"\xdd\xff\xff\xff\xff",  # array32 of 4 Gi elements
        b"\xdf\xff\xff\xff\xff",  # map32 of 4 Gi pairs
        b"\xdb\xff\xff\xff\xff",  # str32 of 4 GiB
        b"\xc6\xff\xff\xff\xff",  # bin32 of 4 GiB
        b"\xc9\xff\xff\xff\xff\x05",  # ext32 of 4 GiB
        b"\xc1",  # never used byte
        b"\xa3\xff\xfe\xfd",  # invalid UTF-8 str
    ]
    for raw in cases:
        peak = _peak(lambda raw=raw: _refused(raw))  # type: ignore[misc]
        assert peak < 8 << 20, (raw[:8], peak)
    # And inside a journal record, decoded through the journal.
    files = dict(template())
    last = segments()[-1]
    for i, raw in enumerate(cases):
        files[last] += pack_record(10**6 + i, 2**62, 1, RAW, bytes(16), raw)
    write_journal(tmp_path / "j", files)
    with Journal.open(tmp_path / "j", readonly=True) as j:
        bad = 0
        for rec in j.scan():
            try:
                j.decode(rec)
            except CorruptJournal as exc:
                assert exc.offset is not None and f"seq {rec.seq}" in str(exc)
                bad += 1
        assert bad == len(cases)


def _refused(raw: bytes) -> None:
    with pytest.raises(CorruptPayload):
        unpack_bounded(raw)


def test_msgpack_extension_types_stay_inert_values() -> None:
    """Ext types are never turned into objects of the sender's choosing: an ExtType
    (code, bytes) or a Timestamp comes back, exactly as msgpack would write it."""
    raw = msgpack.packb(
        {"e": msgpack.ExtType(42, b"payload"), "t": msgpack.Timestamp(5, 6), "n": -1},
        use_bin_type=True,
    )
    out = Codec(max_payload=1 << 16).decode(RAW, raw)
    assert type(out["e"]) is msgpack.ExtType and out["e"] == (42, b"payload")
    assert type(out["t"]) is msgpack.Timestamp and out["t"] == msgpack.Timestamp(5, 6)
    for code in range(-128, 128):
        data = b"\xd7" + struct.pack("b", code) + bytes(8)  # fixext 8
        if code == -1:
            assert type(unpack_bounded(data)) is msgpack.Timestamp
        elif code < 0:  # reserved by msgpack: refused
            with pytest.raises(CorruptPayload):
                unpack_bounded(data)
        else:
            assert type(unpack_bounded(data)) is msgpack.ExtType
    # What is read can be written back unchanged.
    assert msgpack.packb(out, use_bin_type=True) == raw


@pytest.mark.timeout(60)
def test_manifests_listing_absurd_segments_are_refused(tmp_path: Path) -> None:
    base = template_manifest()
    segs = base["segs"]
    sealed = segs[0]

    def variant(**over: Any) -> dict[str, Any]:
        m = dict(base)
        m.update(over)
        return m

    big = [dict(sealed, b=1 + i * 10, l=i * 10 + 5, f=1 + i * 10) for i in range(5000)]
    cases: dict[str, dict[str, Any]] = {
        "huge count": variant(segs=[dict(sealed, n=2**63), *segs[1:]]),
        "huge length": variant(segs=[dict(sealed, len=2**64 - 1), *segs[1:]]),
        "length past i64": variant(segs=[dict(sealed, len=2**63), *segs[1:]]),
        "5000 segments": variant(segs=[*big, dict(segs[-1], b=50_001)]),
        "negative base": variant(segs=[dict(sealed, b=-1), *segs[1:]]),
        "zero base": variant(segs=[dict(sealed, b=0), *segs[1:]]),
        "duplicate bases": variant(segs=[sealed, sealed, *segs[1:]]),
        "base past 2**63": variant(segs=[dict(segs[-1], b=2**63)]),
        "last seq past 2**63": variant(segs=[dict(sealed, l=2**63 + 5), *segs[1:]]),
        "decreasing bases": variant(segs=list(reversed(segs))),
        "unsealed in the middle": variant(segs=[dict(sealed, s=False), *segs[1:]]),
        "no segments": variant(segs=[]),
        "segments not a list": variant(segs={"a": 1}),
        "segment not a map": variant(segs=[1, 2, 3]),
        "jid too short": variant(jid=b"abc"),
        "jid a string": variant(jid="x" * 16),
        "time past i64": variant(segs=[dict(sealed, t1=2**64 - 1), *segs[1:]]),
        "file name escaping": variant(segs=[dict(sealed, nm="../../etc/passwd"), *segs[1:]]),
    }
    for name, body in cases.items():
        root = tmp_path / name.replace(" ", "-")
        files = dict(template())
        files["MANIFEST"] = manifest_bytes(body)
        write_journal(root, files)
        for readonly in (True, False):
            with pytest.raises(CorruptJournal), Journal.open(root, readonly=readonly) as j:
                list(j.scan())
                pytest.fail(f"{name}: opened and scanned")


@pytest.mark.timeout(60)
def test_seqs_beyond_the_signed_64_bit_range_are_damage_not_crashes(tmp_path: Path) -> None:
    files = dict(template())
    last = segments()[-1]
    files[last] += _frame(2**63, 2**62, 1, RAW, 0, bytes(16), b"\xc0")
    write_journal(tmp_path / "j", files)
    with Journal.open(tmp_path / "j", readonly=True) as j:
        good = j.last_seq
        assert good < 2**63 and [r.seq for r in j.scan()][-1] == good
    with Journal.open(tmp_path / "j") as j:  # a writer cuts it as a torn tail
        assert j.append(1, "next") == good + 1


@pytest.mark.timeout(60)
def test_a_batch_that_never_closes_is_a_torn_tail_or_corruption(tmp_path: Path) -> None:
    files = dict(template())
    last = segments()[-1]
    chain = b"".join(
        _frame(10**6 + i, 2**62, 1, RAW, CONTINUED, bytes(16), b"\xc0") for i in range(50)
    )
    files[last] += chain
    write_journal(tmp_path / "j", files)
    with Journal.open(tmp_path / "j", readonly=True) as j:
        good = j.last_seq
        assert good < 10**6
    with Journal.open(tmp_path / "j") as j:
        assert j.append(1, "next") == good + 1
    # In a sealed segment (same length as listed) it is corruption.
    first = segments()[0]
    data = template()[first]
    files = dict(template())
    files[first] = data[: len(data) - len(chain)] + chain
    write_journal(tmp_path / "s", files)
    with pytest.raises(CorruptJournal), Journal.open(tmp_path / "s") as j:
        list(j.scan())


@pytest.mark.timeout(30)
def test_a_fifo_or_directory_in_place_of_a_journal_file_does_not_hang(tmp_path: Path) -> None:
    for victim in ("MANIFEST", segments()[-1], segments()[0]):
        for kind in ("fifo", "dir"):
            root = tmp_path / f"{kind}-{victim.replace('/', '-')}"
            files = dict(template())
            del files[victim]
            write_journal(root, files)
            if kind == "fifo":
                os.mkfifo(root / victim, 0o600)
            else:
                (root / victim).mkdir()
            exercise(root)  # typed errors only, and it returns


# -- long-running campaigns (--run-slow) ------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_long_random_mutation_campaign(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("AGCX_FUZZ_SEED", "20261125")))
    n = int(os.environ.get("AGCX_FUZZ_INPUTS", "20000"))
    for _ in range(n):
        run_mutation(tmp_path, random.Random(rng.getrandbits(64)), "campaign: mutated files")


@pytest.mark.slow
@pytest.mark.timeout(3600)
@settings(
    max_examples=5000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(body=st.binary(max_size=6000), keep_header=st.booleans())
def test_long_random_segment_bytes(
    tmp_path_factory: pytest.TempPathFactory, body: bytes, keep_header: bool
) -> None:
    files = dict(template())
    last = segments()[-1]
    files[last] = (files[last][:HEADER_SIZE] if keep_header else b"") + body
    root = tmp_path_factory.mktemp("seg") / "j"
    write_journal(root, files)
    exercise(root)
    _count("campaign: random segment bytes")


@pytest.mark.slow
@pytest.mark.timeout(3600)
@settings(max_examples=20000, deadline=None)
@given(codec=st.integers(min_value=0, max_value=3), data=st.binary(max_size=2000))
def test_long_payload_decoding(codec: int, data: bytes) -> None:
    test_payload_decoding_of_any_bytes_raises_only_corrupt_payload.hypothesis.inner_test(
        codec=codec, data=data
    )


def test_the_manifest_decoder_refuses_what_it_cannot_use() -> None:
    """Direct decoder checks, no files: shapes refused with CorruptJournal."""
    bodies: list[Any] = [{}, {"segs": None}, {"jid": b"x" * 16, "gen": 1, "segs": [{}]}, [], 5]
    for body in bodies:
        with pytest.raises(CorruptJournal):
            decode_manifest(manifest_bytes(body), "MANIFEST")
    _count("manifest shapes")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("how", ["deleted", "directory", "fifo", "symlink"])
def test_a_lost_manifest_is_reported_and_never_replaced_by_a_new_journal(
    tmp_path: Path, how: str
) -> None:
    root = tmp_path / "j"
    write_journal(root, template())
    before = {p.name: p.read_bytes() for p in (root / "segments").iterdir()}
    manifest = root / "MANIFEST"
    manifest.unlink()
    if how == "directory":
        manifest.mkdir()
    elif how == "fifo":
        os.mkfifo(manifest)
    elif how == "symlink":
        (tmp_path / "elsewhere").write_bytes(template()["MANIFEST"])
        manifest.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(CorruptJournal, match="MANIFEST"):
        Journal.open(root)
    with pytest.raises(JournalError):
        Journal.open(root, readonly=True)
    assert {p.name: p.read_bytes() for p in (root / "segments").iterdir()} == before


# -- security basics ------------------------------------------------------------------------


def test_every_file_and_directory_is_private_even_under_a_permissive_umask(
    tmp_path: Path,
) -> None:
    """0700 directories and 0600 files, whatever the umask: segments, manifest, lock,
    quarantined tails (made by cutting a torn tail), temp files."""
    root = tmp_path / "new" / "j"  # the missing parents are created too
    old = os.umask(0)
    try:
        with Journal.open(root, segment_size=SEG) as j:
            j.append_many([Entry(1, os.urandom(300)) for _ in range(30)])
            active = j._segs[-1]
            path, end = active.path, active.scanned_to
        with open(path, "r+b") as f:  # a torn record for the next writer to cut
            f.seek(end)
            f.write(b"\x40\x00\x00\x00garbage")
        with Journal.open(root, segment_size=SEG) as j:
            j.append(1, "after the cut")
    finally:
        os.umask(old)
    assert list((root / "quarantine").iterdir())
    for p in [tmp_path / "new", root, *root.rglob("*")]:
        mode = stat.S_IMODE(p.lstat().st_mode)
        assert not p.is_symlink()
        assert mode == (0o700 if p.is_dir() else 0o600), (p, oct(mode))


def test_a_symlinked_manifest_is_not_followed_by_a_reader_either(tmp_path: Path) -> None:
    root = tmp_path / "j"
    write_journal(root, template())
    (tmp_path / "elsewhere").write_bytes(template()["MANIFEST"])
    (root / "MANIFEST").unlink()
    (root / "MANIFEST").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(JournalError, match="MANIFEST"):
        Journal.open(root, readonly=True)
