"""The commit path: group commit across threads, the change counter in
``LOCK`` (reads skip the look at the files when no other process changed
anything, and never miss a change when one did), and preallocation."""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import struct
import threading
import time
from pathlib import Path

import pytest

from journal import Entry, InvalidArgument, Journal, JournalClosed, JournalPoisoned
from journal._fs import FileSystem

_COUNTER_AT = 16


class _CountingFS(FileSystem):
    """Counts the calls a refresh makes to look for other processes' changes."""

    def __init__(self) -> None:
        self.looks = 0

    def stat(self, path: str) -> os.stat_result:
        self.looks += 1
        return super().stat(path)

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        self.looks += 1
        return super().pread(fd, size, offset)


def _counter(root: Path) -> int:
    with open(root / "LOCK", "rb") as f:
        f.seek(_COUNTER_AT)
        return int(struct.unpack("<Q", f.read(8))[0])


def _set_counter(root: Path, value: int) -> None:
    with open(root / "LOCK", "r+b") as f, mmap.mmap(f.fileno(), 64) as m:
        struct.pack_into("<Q", m, _COUNTER_AT, value)


def test_each_commit_moves_the_counter_to_a_new_even_value(root: Path) -> None:
    with Journal.open(root) as j:
        before = _counter(root)
        j.append(1, "a")
        after = _counter(root)
        j.append(1, "b")
        assert before % 2 == after % 2 == _counter(root) % 2 == 0
        assert before < after < _counter(root)


def test_a_refresh_with_nothing_new_does_not_look_at_the_files(root: Path) -> None:
    fs = _CountingFS()
    with Journal.open(root, fs=fs) as j:
        j.append(1, "a")
        j.refresh()
        fs.looks = 0
        for _ in range(100):
            assert j.refresh() == 1
        assert fs.looks == 0


def test_appends_of_another_writer_are_seen_by_the_next_refresh(root: Path) -> None:
    fs = _CountingFS()
    with Journal.open(root, fs=fs) as j, Journal.open(root) as other:
        j.append(1, "a")
        assert j.refresh() == 1
        other.append(1, "b")
        assert j.refresh() == 2
        assert j.foreign_changes >= 1
        assert [j.decode(r) for r in j.scan()] == ["a", "b"]
        j.append(1, "c")  # the writer adopted "b" first: seqs go on from there
        assert [(r.seq, other.decode(r)) for r in other.scan()] == [(1, "a"), (2, "b"), (3, "c")]


def test_a_read_only_journal_follows_the_counter_too(root: Path) -> None:
    with Journal.open(root) as w:
        w.append(1, "a")
        fs = _CountingFS()
        with Journal.open(root, readonly=True, fs=fs) as r:
            assert r.refresh() == 1
            fs.looks = 0
            r.refresh()
            assert fs.looks == 0
            w.append(1, "b")
            assert r.refresh() == 2


def test_own_appends_do_not_count_as_foreign_changes(root: Path) -> None:
    with Journal.open(root) as j:
        j.append(1, "a")
        j.refresh()
        n = j.foreign_changes
        j.append_many([Entry(1, "b"), Entry(1, "c")])
        j.refresh()
        assert j.foreign_changes == n


def test_a_writer_that_died_mid_commit_leaves_an_odd_counter_and_its_tail_is_cut(
    root: Path,
) -> None:
    with Journal.open(root, preallocate=0) as j:
        j.append(1, "a")
        j.refresh()
        # Another process took the lock, marked the counter, wrote half a
        # record and died: the counter stays odd.
        seg = j._segs[-1]
        end = seg.scanned_to
        _set_counter(root, _counter(root) + 1)
        with open(seg.path, "r+b") as f:
            f.seek(end)
            f.write(b"\x40\x00\x00\x00" + b"\x99" * 20)  # a length, then too few bytes
        j.append(1, "b")
        assert _counter(root) % 2 == 0
        assert [j.decode(r) for r in j.scan()] == ["a", "b"]
    with Journal.open(root, readonly=True) as r:
        assert [r.decode(x) for x in r.scan()] == ["a", "b"]
    assert os.listdir(root / "quarantine")  # the torn bytes are kept, not destroyed


def test_a_counter_that_is_unchanged_but_stale_never_hides_a_torn_tail_from_a_new_writer(
    root: Path,
) -> None:
    # After a machine crash the mapped counter may say anything: a writer
    # opening the journal checks the tail in full whatever it says.
    with Journal.open(root, preallocate=0) as j:
        j.append(1, "a")
        path = j._segs[-1].path
        end = j._segs[-1].scanned_to
    with open(path, "r+b") as f:
        f.seek(end)
        f.write(b"\x40\x00\x00\x00" + b"\x99" * 20)
    with Journal.open(root) as j:
        j.append(1, "b")
        assert [j.decode(r) for r in j.scan()] == ["a", "b"]


def test_an_old_sixteen_byte_lock_file_is_grown_and_used(root: Path) -> None:
    with Journal.open(root) as j:
        j.append(1, "a")
    os.truncate(root / "LOCK", 16)
    with Journal.open(root) as j:
        assert os.path.getsize(root / "LOCK") == 64
        j.append(1, "b")
        assert [j.decode(r) for r in j.scan()] == ["a", "b"]


class _SlowSync(FileSystem):
    """An fdatasync that takes 2 ms, so threads queue behind it; counts syncs
    and how many ran at the same time."""

    def __init__(self) -> None:
        self.syncs = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()

    def fdatasync(self, fd: int) -> None:
        with self._lock:
            self.syncs += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(0.002)
            super().fdatasync(fd)
        finally:
            with self._lock:
                self.in_flight -= 1


def test_threads_appending_at_once_share_syncs_and_get_their_own_seqs_in_order(
    root: Path,
) -> None:
    fs = _SlowSync()
    threads, each = 8, 60
    got: dict[int, list[int]] = {}
    with Journal.open(root, fs=fs) as j:
        fs.syncs = 0

        def run(t: int) -> None:
            got[t] = [j.append(1, [t, i]) for i in range(each)]

        ts = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        records = {r.seq: j.decode(r) for r in j.scan()}
    seqs = sorted(s for xs in got.values() for s in xs)
    assert seqs == list(range(1, threads * each + 1))
    for t, xs in got.items():
        assert xs == sorted(xs)
        assert [records[s] for s in xs] == [[t, i] for i in range(each)]
    # Groups are written while a sync runs, and the next sync covers them all.
    assert fs.most_in_flight == 1
    assert fs.syncs < threads * each / 2


def test_a_batch_that_fails_in_a_group_commit_fails_alone(root: Path) -> None:
    fs = _SlowSync()
    errors: list[BaseException] = []
    with Journal.open(root, fs=fs) as j:

        def bad() -> None:
            raise InvalidArgument("refused by prepare")

        def run(t: int) -> None:
            for i in range(20):
                if t == 0 and i % 2:
                    try:
                        j.append_many([Entry(1, "never")], prepare=lambda: bad())
                    except InvalidArgument as exc:
                        errors.append(exc)
                else:
                    j.append(1, [t, i])

        ts = [threading.Thread(target=run, args=(t,)) for t in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        payloads = [j.decode(r) for r in j.scan()]
    assert len(errors) == 10
    assert "never" not in payloads
    assert len(payloads) == 4 * 20 - 10


def test_close_waits_for_the_commits_in_flight(root: Path) -> None:
    fs = _SlowSync()
    j = Journal.open(root, fs=fs)
    done: list[int] = []

    def append() -> None:
        with contextlib.suppress(JournalClosed):  # one that came after close
            done.append(j.append(1, "x"))

    ts = [threading.Thread(target=append) for _ in range(6)]
    for t in ts:
        t.start()
    time.sleep(0.001)
    j.close()
    for t in ts:
        t.join()
    with Journal.open(root, readonly=True) as r:
        assert r.last_seq == len(done)


@pytest.mark.parametrize(("durability", "zeros_ahead"), [("fsync", True), ("flush", False)])
def test_zeros_are_written_ahead_of_the_data_only_when_each_commit_syncs(
    root: Path, durability: str, zeros_ahead: bool
) -> None:
    with Journal.open(root, durability=durability) as j:  # type: ignore[arg-type]
        j.append(1, "a")
        seg = j._segs[-1]
        assert (os.path.getsize(seg.path) > seg.scanned_to) is zeros_ahead
    assert os.path.getsize(seg.path) == seg.scanned_to  # trimmed on close either way


class _FirstSyncFailsLate(FileSystem):
    """The first fdatasync waits until another group has been written, then fails."""

    def __init__(self) -> None:
        self.armed = False
        self.first_started = threading.Event()
        self.written_meanwhile = threading.Event()
        self.calls = 0

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        n = super().pwrite(fd, data, offset)
        if self.first_started.is_set():
            self.written_meanwhile.set()
        return n

    def fdatasync(self, fd: int) -> None:
        if not self.armed:
            return super().fdatasync(fd)
        self.calls += 1
        if self.calls == 1:
            self.first_started.set()
            self.written_meanwhile.wait(5)
            raise OSError(errno.EIO, "Input/output error (injected)")
        super().fdatasync(fd)


def test_a_group_written_while_a_failing_sync_runs_is_not_acknowledged(root: Path) -> None:
    fs = _FirstSyncFailsLate()
    outcome: dict[str, BaseException | int] = {}
    with Journal.open(root, fs=fs) as j:
        j.append(1, "before")
        fs.armed = True

        def append(name: str) -> None:
            try:
                outcome[name] = j.append(1, name)
            except JournalPoisoned as exc:
                outcome[name] = exc

        first = threading.Thread(target=append, args=("first",))
        first.start()
        assert fs.first_started.wait(5)  # "first" is written and syncing, lock released
        second = threading.Thread(target=append, args=("second",))
        second.start()
        first.join(10)
        second.join(10)
        assert fs.written_meanwhile.is_set()  # "second" was written during the sync
        assert isinstance(outcome["first"], JournalPoisoned)
        assert isinstance(outcome["second"], JournalPoisoned)
        with pytest.raises(JournalPoisoned):
            j.append(1, "after")
    with Journal.open(root) as j:
        assert j.decode(j.read(1)) == "before"


def test_rolls_while_syncs_are_in_flight_keep_every_record_in_order(root: Path) -> None:
    fs = _SlowSync()
    got: dict[int, list[int]] = {}
    with Journal.open(root, fs=fs, segment_size=8192) as j:

        def run(t: int) -> None:
            got[t] = [j.append(1, [t, i, os.urandom(300)]) for i in range(40)]

        ts = [threading.Thread(target=run, args=(t,)) for t in range(6)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert len(j.manifest.segments) > 5
    with Journal.open(root, readonly=True) as j:
        records = list(j.scan())
        assert [r.seq for r in records] == list(range(1, 6 * 40 + 1))
        by_seq = {r.seq: j.decode(r) for r in records}
        for m in j.manifest.segments[:-1]:
            assert m.sealed and m.count > 0
    for t, seqs in got.items():
        assert [by_seq[s][:2] for s in seqs] == [[t, i] for i in range(40)]
