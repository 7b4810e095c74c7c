"""The journal core: framing, durability, recovery, concurrency."""

from __future__ import annotations

import itertools
import os
import random
import signal
import stat
import struct
import subprocess
import threading
import time
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from journal import (
    CorruptJournal,
    Entry,
    FileSystem,
    InvalidArgument,
    Journal,
    JournalBusy,
    JournalError,
    JournalPoisoned,
    ReadOnlyJournal,
    RecordNotFound,
    RecordTooLarge,
)
from journal._format import HEADER_SIZE, RECORD_OVERHEAD, decode_manifest, encode_manifest
from tests.conftest import PYTHON, ROOT, child_env

APPENDER = str(ROOT / "tests" / "_appender.py")


def segment_files(root: Path) -> list[Path]:
    return sorted((root / "segments").glob("*.agcx"))


def payloads(j: Journal) -> list[object]:
    return [j.decode(r) for r in j.scan()]


# -- framing and round trip ------------------------------------------------------------


def test_every_header_field_and_payload_round_trips(root: Path) -> None:
    sid = uuid4()
    with Journal.open(root) as j:
        before = time.time_ns()
        seq = j.append(513, {"k": [1, "two", b"\x03", None, 4.5]}, session_id=sid)
        rec = j.read(seq)
    assert (rec.seq, rec.event_type, rec.session_id) == (1, 513, sid)
    assert before <= rec.ts_ns <= time.time_ns()
    with Journal.open(root) as j:
        assert j.decode(j.read(1)) == {"k": [1, "two", b"\x03", None, 4.5]}


def test_a_record_without_session_has_no_session_id(root: Path) -> None:
    with Journal.open(root) as j:
        assert j.read(j.append(1, None)).session_id is None


def test_empty_and_maximum_size_payloads_round_trip(root: Path) -> None:
    limit = 64 << 10
    with Journal.open(root, max_record_size=limit, compression_level=1) as j:
        empty = j.append(1, b"")
        # Random bytes do not compress: the record lands exactly at the limit.
        filler = os.urandom(limit - (RECORD_OVERHEAD - 8) - 3)  # 3 = msgpack bin16 header
        big = j.append(1, filler)
        assert j.read(big).size - 8 == limit
        assert j.decode(j.read(empty)) == b""
        assert j.decode(j.read(big)) == filler


def test_a_payload_over_the_limit_is_refused_before_anything_is_written(root: Path) -> None:
    with Journal.open(root, max_record_size=1024) as j:
        j.append(1, "ok")
        size_before = j.statistics().bytes
        with pytest.raises(RecordTooLarge, match="nothing was written"):
            j.append_many([Entry(1, "fits"), Entry(1, os.urandom(2000))])
        assert j.last_seq == 1
        assert j.statistics().bytes == size_before
        assert j.append(1, "next") == 2


def test_seqs_strictly_increase_and_timestamps_never_decrease(root: Path) -> None:
    with Journal.open(root, segment_size=4096) as j:
        j.append_many([Entry(1, i) for i in range(500)])
        recs = list(j.scan())
    assert [r.seq for r in recs] == list(range(1, 501))
    assert all(a.ts_ns <= b.ts_ns for a, b in itertools.pairwise(recs))


def test_timestamps_do_not_go_back_when_the_clock_does(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Journal.open(root) as j:
        j.append(1, "a")
        t = j.read(1).ts_ns
        monkeypatch.setattr(time, "time_ns", lambda: t - 10**12)
        j.append(1, "b")
        assert j.read(2).ts_ns == t


def test_bad_arguments_are_refused_with_typed_errors(root: Path) -> None:
    with Journal.open(root) as j:
        with pytest.raises(InvalidArgument):
            j.append(70000, "x")
        with pytest.raises(InvalidArgument):
            j.append(1, object())
        with pytest.raises(InvalidArgument):
            j.append(1, "x", session_id="not-a-uuid")  # type: ignore[arg-type]
        with pytest.raises(RecordNotFound):
            j.read(99)
        with pytest.raises(InvalidArgument):
            list(j.scan(since=datetime(2024, 1, 1)))
        assert j.last_seq == 0
    with pytest.raises(InvalidArgument):
        Journal.open(root, durability="sometimes")  # type: ignore[arg-type]


# -- segments, index, time seek ----------------------------------------------------------


def test_segments_roll_at_segment_size_and_reads_find_every_seq(root: Path) -> None:
    with Journal.open(root, segment_size=8192) as j:
        seqs = j.append_many([Entry(2, {"i": i, "x": os.urandom(40)}) for i in range(600)])
        st = j.statistics()
        assert st.segments > 3 and st.sealed_segments == st.segments - 1
        for f in segment_files(root)[:-1]:
            assert f.stat().st_size <= 8192
        for s in random.Random(1).sample(seqs, 100):
            assert j.decode(j.read(s))["i"] == s - 1
    with Journal.open(root, segment_size=8192) as j:
        assert [r.seq for r in j.scan(from_seq=300, until_seq=305)] == list(range(300, 306))
        assert j.statistics().records == 600


def test_time_seek_starts_at_the_first_record_at_or_after_since(root: Path) -> None:
    with Journal.open(root, segment_size=4096) as j:
        for i in range(300):
            j.append(1, i)
        recs = list(j.scan())
        mid = recs[170]
        got = list(j.scan(since=mid.ts_ns))
        assert got[0].ts_ns >= mid.ts_ns
        assert [r.seq for r in got] == [r.seq for r in recs if r.ts_ns >= mid.ts_ns]
        as_dt = datetime.fromtimestamp(mid.ts_ns / 1e9, UTC) + timedelta(microseconds=1)
        assert all(r.ts_ns >= mid.ts_ns for r in j.scan(since=as_dt))
        upto = list(j.scan(until=recs[50].ts_ns))
        assert upto[-1].seq >= 51 and all(r.ts_ns <= recs[50].ts_ns for r in upto)


def test_reading_does_not_scan_from_the_start(root: Path) -> None:
    class CountingFS(FileSystem):
        read_bytes = 0

        def pread(self, fd: int, size: int, offset: int) -> bytes:
            data = super().pread(fd, size, offset)
            CountingFS.read_bytes += len(data)
            return data

    with Journal.open(root, segment_size=1 << 22) as j:
        j.append_many([Entry(1, os.urandom(200)) for _ in range(10_000)])
    fs = CountingFS()
    with Journal.open(root, segment_size=1 << 22, fs=fs) as j:
        j.read(5000)  # builds the sealed segment's sparse index once
        CountingFS.read_bytes = 0
        for s in (10, 4321, 9999):
            j.read(s)
        assert CountingFS.read_bytes < 3 * 48 * 1024


# -- recovery -------------------------------------------------------------------------------


def _journal_with(root: Path, n: int, **opts: object) -> list[bytes]:
    data = [os.urandom(30 + i) for i in range(n)]
    with Journal.open(root, preallocate=0, **opts) as j:  # type: ignore[arg-type]
        for d in data:  # one batch each: a torn batch is cut whole (test_crash_states)
            j.append(1, d)
    return data


def test_truncation_at_every_byte_of_the_last_records_keeps_exactly_the_whole_ones(
    tmp_path: Path,
) -> None:
    src = tmp_path / "src"
    data = _journal_with(src, 6)
    seg = segment_files(src)[0]
    full = seg.read_bytes()
    ends = []
    pos = HEADER_SIZE
    while pos < len(full):
        pos += 8 + int.from_bytes(full[pos : pos + 4], "little")
        ends.append(pos)
    first_cut = ends[2]  # every offset within the last three records and the tail
    for cut in range(first_cut, len(full) + 1):
        root = tmp_path / f"cut{cut}"
        (root / "segments").mkdir(parents=True)
        (root / "MANIFEST").write_bytes((src / "MANIFEST").read_bytes())
        (root / "segments" / seg.name).write_bytes(full[:cut])
        whole = sum(1 for e in ends if e <= cut)
        with Journal.open(root) as j:
            assert payloads(j) == data[:whole], cut
            assert j.append(1, b"after") == whole + 1
            assert payloads(j)[-1] == b"after"
        with Journal.open(root) as j:
            assert payloads(j) == [*data[:whole], b"after"]


@pytest.mark.parametrize("tail", ["zeros", "garbage", "half-header"])
def test_a_damaged_tail_of_the_active_segment_is_cut_and_appends_continue(
    root: Path, tail: str
) -> None:
    data = _journal_with(root, 5)
    seg = segment_files(root)[0]
    extra = {
        "zeros": bytes(4096),
        "garbage": os.urandom(777),
        "half-header": b"\x10\x00\x00",
    }[tail]
    with open(seg, "ab") as f:
        f.write(extra)
    with Journal.open(root) as j:
        assert payloads(j) == data
        j.append(1, b"new")
    with Journal.open(root, readonly=True) as j:
        assert payloads(j) == [*data, b"new"]
    quarantined = list((root / "quarantine").glob("*")) if (root / "quarantine").exists() else []
    assert bool(quarantined) == (tail != "zeros")


def test_a_reader_never_cuts_a_tail(root: Path) -> None:
    _journal_with(root, 3)
    seg = segment_files(root)[0]
    with open(seg, "ab") as f:
        f.write(b"\x99" * 50)
    size = seg.stat().st_size
    with Journal.open(root, readonly=True) as j:
        assert j.last_seq == 3
    assert seg.stat().st_size == size


def test_a_flipped_bit_in_a_sealed_segment_is_reported_with_its_offset(tmp_path: Path) -> None:
    src = tmp_path / "src"
    with Journal.open(src, segment_size=4096, preallocate=0) as j:
        j.append_many([Entry(1, os.urandom(100)) for _ in range(100)])
    sealed = segment_files(src)[0]
    size = sealed.stat().st_size
    rng = random.Random(7)
    for trial in range(40):
        root = tmp_path / f"t{trial}"
        (root / "segments").mkdir(parents=True)
        for f in [src / "MANIFEST", *segment_files(src)]:
            dest = root / ("MANIFEST" if f.name == "MANIFEST" else f"segments/{f.name}")
            dest.write_bytes(f.read_bytes())
        victim = root / "segments" / sealed.name
        raw = bytearray(victim.read_bytes())
        bit = rng.randrange(size * 8)
        raw[bit // 8] ^= 1 << (bit % 8)
        victim.write_bytes(bytes(raw))
        with pytest.raises(CorruptJournal) as err, Journal.open(root) as j:
            list(j.scan())
        assert err.value.path.endswith(sealed.name)
        if bit // 8 >= HEADER_SIZE:
            assert err.value.offset is not None and err.value.offset <= bit // 8


def test_a_missing_or_resized_sealed_segment_is_corruption(root: Path) -> None:
    with Journal.open(root, segment_size=4096) as j:
        j.append_many([Entry(1, os.urandom(100)) for _ in range(100)])
    first = segment_files(root)[0]
    with open(first, "ab") as f:
        f.write(b"x")
    with pytest.raises(CorruptJournal, match="manifest says"):
        Journal.open(root)
    first.unlink()
    with pytest.raises(CorruptJournal, match="missing"):
        Journal.open(root)


@pytest.mark.parametrize("where", ["manifest", "segment"])
def test_a_sealed_segment_whose_last_seq_disagrees_with_the_manifest_is_corruption(
    root: Path, where: str
) -> None:
    """Same length, same record count, checksums right: only the last seq differs
    (in the manifest's entry, or in the segment's last record rewritten in place)."""
    with Journal.open(root, segment_size=4096, preallocate=0) as j:
        j.append_many([Entry(1, os.urandom(100)) for _ in range(100)])
        info = j.manifest.segments[0]
        last = j.read(info.last_seq)
    first = segment_files(root)[0]
    if where == "manifest":
        m = decode_manifest((root / "MANIFEST").read_bytes(), "MANIFEST")
        infos = list(m.segments)
        infos[0] = attrs.evolve(infos[0], last_seq=infos[0].last_seq - 1)
        (root / "MANIFEST").write_bytes(encode_manifest(attrs.evolve(m, segments=tuple(infos))))
    else:
        raw = bytearray(first.read_bytes())
        body = bytearray(raw[last.offset + 8 : last.offset + 8 + last.size - 8])
        struct.pack_into("<Q", body, 0, last.seq + 7)
        raw[last.offset + 8 : last.offset + last.size] = body
        struct.pack_into("<I", raw, last.offset + 4, zlib.crc32(bytes(body)))
        first.write_bytes(bytes(raw))
    for readonly in (True, False):
        with (
            pytest.raises(CorruptJournal, match="manifest says") as err,
            Journal.open(root, readonly=readonly) as j,
        ):
            list(j.scan())
        assert err.value.path.endswith(first.name)


def test_a_segment_the_manifest_does_not_list_is_removed_by_a_writer_only(root: Path) -> None:
    _journal_with(root, 2)
    stray = root / "segments" / f"{999:020d}.agcx"
    stray.write_bytes(b"AGCX leftover of a crashed roll")
    with Journal.open(root, readonly=True):
        pass
    assert stray.exists()
    with Journal.open(root) as j:
        assert j.last_seq == 2
    assert not stray.exists()


def test_a_damaged_manifest_is_reported(root: Path) -> None:
    _journal_with(root, 2)
    m = root / "MANIFEST"
    raw = bytearray(m.read_bytes())
    raw[-1] ^= 0xFF
    m.write_bytes(bytes(raw))
    with pytest.raises(CorruptJournal, match="MANIFEST"):
        Journal.open(root)


def test_a_symlinked_segment_is_refused(root: Path, tmp_path: Path) -> None:
    _journal_with(root, 2)
    seg = segment_files(root)[0]
    target = tmp_path / "elsewhere.agcx"
    target.write_bytes(seg.read_bytes())
    seg.unlink()
    seg.symlink_to(target)
    with pytest.raises(CorruptJournal, match="cannot be opened"):
        Journal.open(root)


# -- durability policy, poisoning, locking -----------------------------------------------


class FailingSync(FileSystem):
    def __init__(self) -> None:
        self.fail = False
        self.syncs = 0

    def fdatasync(self, fd: int) -> None:
        self.syncs += 1
        if self.fail:
            raise OSError(5, "Input/output error (injected)")
        super().fdatasync(fd)


def test_an_fsync_failure_poisons_the_journal_until_reopen(root: Path) -> None:
    fs = FailingSync()
    with Journal.open(root, fs=fs) as j:
        j.append(1, "durable")
        fs.fail = True
        with pytest.raises(JournalPoisoned, match="Input/output error"):
            j.append(1, "lost?")
        fs.fail = False
        with pytest.raises(JournalPoisoned, match="reopen"):
            j.append(1, "refused")
    with Journal.open(root) as j:
        assert payloads(j)[0] == "durable"
        j.append(1, "after reopen")
        assert payloads(j)[-1] == "after reopen"


def test_durability_policies_decide_whether_appends_sync(root: Path) -> None:
    for policy, expect_sync in (("fsync", True), ("flush", False), ("none", False)):
        fs = FailingSync()
        with Journal.open(root / policy, durability=policy, fs=fs) as j:  # type: ignore[arg-type]
            before = fs.syncs
            j.append(1, "x")
            assert (fs.syncs > before) == expect_sync, policy


def test_concurrent_appenders_in_one_process_share_syncs(root: Path) -> None:
    fs = FailingSync()
    n_threads, per_thread = 8, 50
    with Journal.open(root, fs=fs) as j:
        start = fs.syncs
        results: dict[int, list[int]] = {}

        def work(t: int) -> None:
            results[t] = [j.append(1, {"t": t, "i": i}) for i in range(per_thread)]

        threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        syncs = fs.syncs - start
        all_seqs = sorted(s for v in results.values() for s in v)
        assert all_seqs == list(range(1, n_threads * per_thread + 1))
        for seqs in results.values():
            assert seqs == sorted(seqs)
            assert [j.decode(j.read(s))["i"] for s in seqs] == list(range(per_thread))
        assert syncs < n_threads * per_thread


def test_a_held_lock_raises_journal_busy_naming_the_holder(root: Path) -> None:
    _journal_with(root, 1)
    holder = subprocess.Popen(
        [
            PYTHON,
            "-c",
            (
                "import fcntl,os,sys,time\n"
                f"fd=os.open({str(root / 'LOCK')!r}, os.O_RDWR)\n"
                "fcntl.flock(fd, fcntl.LOCK_EX)\n"
                "os.pwrite(fd, b'%-15d\\n' % os.getpid(), 0)\n"
                "print('held', flush=True); time.sleep(30)\n"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(JournalBusy) as err:
            Journal.open(root, lock_timeout=0.2)
        assert err.value.holder_pid == holder.pid
        assert str(holder.pid) in str(err.value)
        with Journal.open(root, readonly=True) as r:  # readers take no lock
            assert r.last_seq == 1
    finally:
        holder.kill()
        holder.wait()


def test_a_readonly_journal_refuses_writes_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="not an agcx journal"):
        Journal.open(tmp_path / "nothing", readonly=True)
    assert not (tmp_path / "nothing").exists()
    _journal_with(tmp_path / "j", 1)
    with Journal.open(tmp_path / "j", readonly=True) as j, pytest.raises(ReadOnlyJournal):
        j.append(1, "x")


def test_files_are_private_to_their_owner(root: Path) -> None:
    _journal_with(root, 3)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "segments").stat().st_mode) == 0o700
    for f in [root / "MANIFEST", root / "LOCK", *segment_files(root)]:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


# -- other processes -------------------------------------------------------------------------


def _spawn(
    root: Path, writer: int, count: int, batch: int = 1, seg: int = 64 << 20
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, APPENDER, str(root), str(writer), str(count), str(batch), str(seg)],
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
    )


def _acks(out: str) -> dict[int, int]:
    acks = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "ack":
            acks[int(parts[1])] = int(parts[2])
    return acks


def test_sigkilled_writers_lose_nothing_they_acknowledged(tmp_path: Path) -> None:
    rng = random.Random(42)
    for run in range(20):
        root = tmp_path / f"run{run}"
        child = _spawn(root, 1, 100_000, batch=rng.choice([1, 3]), seg=rng.choice([4096, 1 << 20]))
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.02, 0.25))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate()
        acks = _acks(out)
        assert acks, "the child acknowledged nothing before it was killed"
        with Journal.open(root) as j:
            got = {r.seq: j.decode(r)["i"] for r in j.scan()}
        for seq, i in acks.items():
            assert got.get(seq) == i, (run, seq)
        assert sorted(got) == list(range(1, len(got) + 1))


def test_many_processes_append_at_once_and_one_dies_mid_commit(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    with Journal.open(root):
        pass
    per = 1500
    children = {w: _spawn(root, w, per, batch=2, seg=256 << 10) for w in range(4)}
    victim = _spawn(root, 99, 10**6, batch=4, seg=256 << 10)
    for c in [*children.values(), victim]:
        assert c.stdout is not None and c.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    victim.send_signal(signal.SIGKILL)
    outs = {w: c.communicate(timeout=240)[0] for w, c in children.items()}
    victim_out, _ = victim.communicate()
    for c in children.values():
        assert c.returncode == 0
    with Journal.open(root) as j:
        recs = [(r.seq, j.decode(r)) for r in j.scan()]
    seqs = [s for s, _ in recs]
    assert seqs == list(range(1, len(seqs) + 1))
    by_writer: dict[int, list[int]] = {}
    for _, p in recs:
        by_writer.setdefault(p["w"], []).append(p["i"])
    for w in children:
        assert by_writer[w] == list(range(per)), w
        for seq, i in _acks(outs[w]).items():
            # The appender pads every record of a batch (of 2) by the batch's first i.
            assert recs[seq - 1][1] == {"w": w, "i": i, "pad": "p" * ((i - i % 2) % 97)}
    victim_acks = _acks(victim_out)
    for seq, i in victim_acks.items():
        assert recs[seq - 1][1]["w"] == 99 and recs[seq - 1][1]["i"] == i
    assert by_writer[99] == list(range(len(by_writer[99])))


def test_a_reader_sees_new_records_without_reopening_and_never_a_partial_one(
    tmp_path: Path,
) -> None:
    root = tmp_path / "shared"
    with Journal.open(root):
        pass
    writers = [_spawn(root, w, 800, batch=3, seg=64 << 10) for w in range(2)]
    seen: list[int] = []
    with Journal.open(root, readonly=True) as reader:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            last = seen[-1] if seen else 0
            for r in reader.scan(from_seq=last + 1):
                p = reader.decode(r)  # a partial record would fail its CRC or decode
                assert p["w"] in (0, 1)
                seen.append(r.seq)
            if len(seen) == 1600:
                break
            time.sleep(0.005)
    for w in writers:
        w.communicate(timeout=60)
    assert seen == list(range(1, 1601))


# -- property: whatever happens, the journal reads back what was appended -----------------


_op = st.one_of(
    st.tuples(st.just("append"), st.lists(st.binary(max_size=600), min_size=1, max_size=8)),
    st.tuples(st.just("reopen"), st.booleans()),
    st.tuples(st.just("read"), st.integers(min_value=1, max_value=200)),
)


@given(ops=st.lists(_op, max_size=40), seg=st.sampled_from([4096, 9000, 1 << 20]))
def test_any_sequence_of_appends_rolls_and_reopens_reads_back_what_was_appended(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, object]], seg: int
) -> None:
    root = tmp_path_factory.mktemp("prop") / "j"
    expected: list[bytes] = []
    j = Journal.open(root, segment_size=seg, durability="flush")
    try:
        for kind, arg in ops:
            if kind == "append":
                assert isinstance(arg, list)
                seqs = j.append_many([Entry(3, b) for b in arg])
                assert seqs == list(range(len(expected) + 1, len(expected) + len(arg) + 1))
                expected.extend(arg)
            elif kind == "reopen":
                j.close()
                j = Journal.open(root, segment_size=seg, durability="flush", readonly=bool(arg))
                if arg:
                    assert payloads(j) == expected
                    j.close()
                    j = Journal.open(root, segment_size=seg, durability="flush")
            else:
                assert isinstance(arg, int)
                if arg <= len(expected):
                    assert j.decode(j.read(arg)) == expected[arg - 1]
                else:
                    with pytest.raises(RecordNotFound):
                        j.read(arg)
        assert payloads(j) == expected
        assert j.statistics().records == len(expected)
    finally:
        j.close()



def test_copied_records_keep_their_seq_time_type_session_and_bytes(tmp_path: Path) -> None:
    sid = uuid4()
    with Journal.open(tmp_path / "a", segment_size=4096) as a:
        a.append_many([Entry(i % 5 + 1, {"i": i, "x": "y" * i}, sid) for i in range(200)])
        src = [r for r in a.scan() if r.seq % 3]  # gaps are fine
    with Journal.open(tmp_path / "b", segment_size=4096) as b:
        assert b.copy_records(src) == [r.seq for r in src]
        got = list(b.scan())
        with pytest.raises(InvalidArgument, match="does not follow"):
            b.copy_records(src[:1])
        assert b.append(1, "next") == src[-1].seq + 1
    key = [(r.seq, r.ts_ns, r.event_type, r.session, r.codec, r.payload) for r in src]
    assert [(r.seq, r.ts_ns, r.event_type, r.session, r.codec, r.payload) for r in got] == key


# -- the tail hint: reopening does not rescan the active segment ---------------------------


def test_reopening_reads_only_the_tail_when_the_tail_hint_matches(root: Path) -> None:
    class CountingFS(FileSystem):
        read_bytes = 0

        def pread(self, fd: int, size: int, offset: int) -> bytes:
            data = super().pread(fd, size, offset)
            CountingFS.read_bytes += len(data)
            return data

    payloads = [os.urandom(300) for _ in range(5000)]
    with Journal.open(root) as j:
        j.append_many([Entry(1, p) for p in payloads])
        size = j.statistics().bytes
    assert (root / "TAIL").exists()
    CountingFS.read_bytes = 0
    with Journal.open(root, fs=CountingFS()) as j:
        assert j.last_seq == 5000
        assert j.decode(j.read(1234)) == payloads[1233]
    assert CountingFS.read_bytes < size / 10


@pytest.mark.parametrize("damage", ["stale", "garbage", "foreign", "truncated-segment"])
def test_a_stale_or_damaged_tail_hint_is_ignored(root: Path, damage: str) -> None:
    with Journal.open(root, preallocate=0) as j:
        j.append_many([Entry(1, i) for i in range(100)])
    old_hint = (root / "TAIL").read_bytes()
    with Journal.open(root, preallocate=0) as j:
        for i in range(100, 150):
            j.append(1, i)
    if damage == "stale":
        (root / "TAIL").write_bytes(old_hint)
        expected = list(range(150))
    elif damage == "garbage":
        (root / "TAIL").write_bytes(b"AGCT" + os.urandom(200))
        expected = list(range(150))
    elif damage == "foreign":
        with Journal.open(root.parent / "other") as other:
            other.append_many([Entry(1, i) for i in range(150)])
        (root / "TAIL").write_bytes((root.parent / "other" / "TAIL").read_bytes())
        expected = list(range(150))
    else:
        seg = segment_files(root)[0]
        hint = (root / "TAIL").read_bytes()
        data = seg.read_bytes()
        seg.write_bytes(data[: len(data) - 20])  # the hinted last record is torn
        (root / "TAIL").write_bytes(hint)
        expected = list(range(149))
    with Journal.open(root) as j:
        assert payloads(j) == expected
        assert j.append(1, "next") == len(expected) + 1


# -- reading several records at once (read_many) ---------------------------------------------


def _varied_journal(root: Path, **opts: object) -> list[int]:
    """Records of 0 B to 40 KiB (some longer than one read), over several segments."""
    rng = random.Random(3)
    sizes = [rng.choice([0, 10, 300, 2000, 5000, 20_000, 40_000]) for _ in range(400)]
    with Journal.open(root, **opts) as j:  # type: ignore[arg-type]
        seqs = []
        for k in range(0, 400, 7):
            seqs += j.append_many(
                [Entry(1 + i % 3, os.urandom(n), uuid4()) for i, n in enumerate(sizes[k : k + 7])]
            )
    return seqs


@pytest.mark.parametrize("seg_size", [64 << 10, 64 << 20])
def test_read_many_returns_what_read_returns_in_the_order_asked(root: Path, seg_size: int) -> None:
    seqs = _varied_journal(root, segment_size=seg_size, preallocate=0)
    rng = random.Random(5)
    with Journal.open(root, segment_size=seg_size) as j:
        asks = [
            seqs,
            seqs[::-1],
            rng.sample(seqs, 60) + rng.sample(seqs, 5),  # unsorted, with repeats
            [seqs[0]],
            [seqs[-1], seqs[-1]],
            list(range(100, 140)),
            [],
        ]
        for ask in asks:
            assert j.read_many(ask) == [j.read(s) for s in ask]
        assert j.read_many(iter(seqs[:3])) == [j.read(s) for s in seqs[:3]]


def test_read_many_of_a_missing_seq_raises_record_not_found(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "a", segment_size=4096) as a:
        a.append_many([Entry(1, {"i": i}) for i in range(300)])
        src = [r for r in a.scan() if r.seq % 3]  # seqs 3, 6, 9 ... are gaps
    with Journal.open(tmp_path / "b", segment_size=4096) as b:
        b.copy_records(src)
        assert [b.decode(r)["i"] for r in b.read_many([1, 2, 4, 298])] == [0, 1, 3, 297]
        for ask in ([0], [301], [1, 2, 3], [150], [299, 300], [-1, 5]):
            with pytest.raises(RecordNotFound):
                b.read_many(ask)
        for bad in (["1"], [1.0], [True]):
            with pytest.raises(InvalidArgument):
                b.read_many(bad)  # type: ignore[list-item]


def test_read_many_reads_records_that_lie_together_with_one_pread(root: Path) -> None:
    class CountingFS(FileSystem):
        preads = 0

        def pread(self, fd: int, size: int, offset: int) -> bytes:
            CountingFS.preads += 1
            return super().pread(fd, size, offset)

    with Journal.open(root) as j:
        j.append_many([Entry(1, os.urandom(100)) for _ in range(5000)])
    with Journal.open(root, fs=CountingFS()) as j:
        j.refresh()
        CountingFS.preads = 0
        recs = j.read_many(range(2000, 2040))  # ~6 KiB together
        assert [r.seq for r in recs] == list(range(2000, 2040))
        assert CountingFS.preads <= 2


@pytest.mark.parametrize("where", ["sealed", "active"])
def test_read_many_reports_damage_with_the_segment_and_offset(root: Path, where: str) -> None:
    with Journal.open(root, segment_size=64 << 10, preallocate=0) as j:
        j.append_many([Entry(1, os.urandom(500)) for _ in range(300)])
        recs = list(j.scan())
    victim = recs[10] if where == "sealed" else recs[-5]
    files = segment_files(root)
    path = files[0] if where == "sealed" else files[-1]
    assert victim.segment == int(path.name.split(".")[0].split("-")[0])
    with Journal.open(root, segment_size=64 << 10) as j:
        assert j.read_many([victim.seq]) == [victim]  # indexed, sealed segment checked
        raw = bytearray(path.read_bytes())
        raw[victim.offset + RECORD_OVERHEAD + 7] ^= 0x10  # a payload byte: CRC mismatch
        path.write_bytes(bytes(raw))
        with pytest.raises(CorruptJournal) as err:
            j.read_many([victim.seq - 1, victim.seq])
        assert err.value.path == str(path)
        assert err.value.offset == victim.offset
        raw[victim.offset + RECORD_OVERHEAD + 7] ^= 0x10
        raw[victim.offset : victim.offset + 4] = (5).to_bytes(4, "little")  # impossible length
        path.write_bytes(bytes(raw))
        with pytest.raises(CorruptJournal) as err:
            j.read_many([victim.seq, victim.seq + 1])
        assert err.value.path == str(path) and err.value.offset == victim.offset
