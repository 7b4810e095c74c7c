"""Crash-state enumeration: every state a power loss can leave is recovered without loss.

Each test records a workload through :class:`tests.faultfs.RecordingFS`, then
builds every on-disk state a power loss after each recorded operation could
leave (unsynced writes dropped or torn at any record boundary and inside
records, entry changes not made durable by a directory fsync undone or kept)
and checks it: every batch acknowledged before the crash is there, whole and
intact; no batch is there in part; a reader, a recovering writer and a fresh
reader after one more append all agree. The fast variants run in CI; the
exhaustive ones (every byte of every torn write, bigger workloads) with
``--run-slow``. See docs/RELIABILITY.md for the model and the figures.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from journal import Entry, Journal
from journal._format import pack_record
from tests.faultfs import (
    CrashState,
    ExpectedLog,
    HarnessFS,
    RecordingFS,
    check_journal_recovers,
    enumerate_crash_states,
    report_figures,
)

SEG = 4096  # the smallest segment size: rolls every few records


def _appends(expected: ExpectedLog, **opts: Any) -> Callable[[Path, HarnessFS], None]:
    """Workload: open (creating) the journal, append every batch, acknowledging each."""

    def run(base: Path, fs: HarnessFS) -> None:
        with Journal.open(base / "j", fs=fs, segment_size=SEG, **opts) as j:
            for b in range(len(expected.batches)):
                j.append_many(expected.entries(b))
                fs.ack(b)

    return run


def _reopening(expected: ExpectedLog, at: int) -> Callable[[Path, HarnessFS], None]:
    """Workload: append batches ``0..at-1``, close, reopen (catch up, clean up), append the rest."""

    def run(base: Path, fs: HarnessFS) -> None:
        for batches in (range(at), range(at, len(expected.batches))):
            with Journal.open(base / "j", fs=fs, segment_size=SEG) as j:
                for b in batches:
                    j.append_many(expected.entries(b))
                    fs.ack(b)

    return run


def _checker(
    expected: ExpectedLog, *, always: tuple[int, ...] = (), ordered: bool = True
) -> Callable[[Path, CrashState], None]:
    def check(base: Path, state: CrashState) -> None:
        check_journal_recovers(
            base / "j", expected, (*always, *state.acked), ordered=ordered, segment_size=SEG
        )

    return check


def _run(
    name: str,
    tmp_path: Path,
    workload: Callable[[Path, HarnessFS], None],
    check: Callable[[Path, CrashState], None],
    **kw: Any,
) -> None:
    report = enumerate_crash_states(workload, check, tmp_path, **kw)
    report_figures(name, report.as_dict())
    assert report.acks > 0 and report.checked > 0


# -- CI: fast variants -------------------------------------------------------------------


SMALL = ExpectedLog.generate(
    [1, 2, 1, 3, 1, 1, 2, 1, 4, 1, 1, 2, 5, 1, 3, 6, 1, 2, 2, 1, 4, 1, 3], seed=1, big=900
)


def test_power_loss_after_any_operation_of_creating_appending_and_rolling_loses_nothing_acked(
    tmp_path: Path,
) -> None:
    _run("crash: create+append+roll", tmp_path, _appends(SMALL), _checker(SMALL))


def test_power_loss_around_a_close_and_reopen_loses_nothing_acked(tmp_path: Path) -> None:
    """Closing trims the preallocation and leaves a tail hint (unsynced) for the next open."""
    # After a close, the unsynced tail hint multiplies every later state by ~20:
    # here each of its states and each of the segment's is combined with the other
    # file's extremes only; every combination with --run-slow.
    _run("crash: close and reopen", tmp_path, _reopening(SMALL, 17), _checker(SMALL), cap=8)


def test_a_process_crash_under_the_flush_policy_loses_nothing_acked(tmp_path: Path) -> None:
    _run(
        "crash: process crash, flush policy",
        tmp_path,
        _appends(SMALL, durability="flush"),
        _checker(SMALL),
        power_loss=False,
    )


def _torn_tail_setup(expected: ExpectedLog, first: int) -> Callable[[Path], None]:
    """A journal holding batches ``0..first-1`` and a torn record after them."""

    def setup(base: Path) -> None:
        with Journal.open(base / "j", segment_size=SEG) as j:
            for b in range(first):
                j.append_many(expected.entries(b))
            last = j.last_seq
            seg = j._segs[-1]
            path, end = seg.path, seg.scanned_to
        torn = pack_record(last + 1, 1, 7, 0, bytes(16), b"\x91\xa4torn" * 20)[:50]
        with open(path, "r+b") as f:
            f.seek(end)
            f.write(torn)

    return setup


def _resume(expected: ExpectedLog, first: int) -> Callable[[Path, HarnessFS], None]:
    """Workload: reopen a journal with a torn tail (cut, quarantined), append the rest."""

    def run(base: Path, fs: HarnessFS) -> None:
        with Journal.open(base / "j", fs=fs, segment_size=SEG) as j:
            for b in range(first, len(expected.batches)):
                j.append_many(expected.entries(b))
                fs.ack(b)

    return run


def test_power_loss_while_recovering_a_torn_tail_loses_nothing(tmp_path: Path) -> None:
    first = 5
    _run(
        "crash: torn-tail recovery",
        tmp_path,
        _resume(SMALL, first),
        _checker(SMALL, always=tuple(range(first))),
        setup=_torn_tail_setup(SMALL, first),
    )


def _threads(expected: ExpectedLog, n_threads: int) -> Callable[[Path, HarnessFS], None]:
    """Workload: threads appending their share of the batches at once (group commit)."""

    def run(base: Path, fs: HarnessFS) -> None:
        with Journal.open(base / "j", fs=fs, segment_size=SEG) as j:

            def work(t: int) -> None:
                for b in range(t, len(expected.batches), n_threads):
                    j.append_many(expected.entries(b))
                    fs.ack(b)

            threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

    return run


def test_power_loss_during_group_commits_of_several_threads_loses_nothing_acked(
    tmp_path: Path,
) -> None:
    _run(
        "crash: group commit, 3 threads",
        tmp_path,
        _threads(SMALL, 3),
        _checker(SMALL, ordered=False),
    )


def test_a_record_larger_than_a_segment_survives_any_crash(tmp_path: Path) -> None:
    log = ExpectedLog(
        [
            [{"b": 0, "k": 0, "n": 1, "x": b"a"}],
            [{"b": 1, "k": 0, "n": 1, "x": os.urandom(SEG + 500)}],
            [{"b": 2, "k": 0, "n": 2, "x": b"c"}, {"b": 2, "k": 1, "n": 2, "x": b"d"}],
        ]
    )
    _run("crash: record larger than a segment", tmp_path, _appends(log), _checker(log))


# -- exhaustive (--run-slow) -----------------------------------------------------------

BIG = ExpectedLog.generate(
    [1, 3, 1, 1, 2, 5, 1, 1, 1, 2, 1, 3, 1, 1, 8, 1, 2, 1, 1, 1] * 2, seed=2, big=1500
)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("preallocate", [1 << 20, 0], ids=["preallocated", "growing"])
def test_exhaustive_power_loss_at_every_byte_of_every_write(
    tmp_path: Path, preallocate: int
) -> None:
    _run(
        f"crash (exhaustive): create+append+roll, {preallocate=}",
        tmp_path,
        _appends(BIG, preallocate=preallocate),
        _checker(BIG),
        exhaustive=True,
        cap=5000,
    )


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_exhaustive_power_loss_around_a_close_and_reopen(tmp_path: Path) -> None:
    _run(
        "crash (exhaustive): close and reopen",
        tmp_path,
        _reopening(BIG, 34),
        _checker(BIG),
        exhaustive=True,
        cap=2000,
    )


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_exhaustive_power_loss_while_recovering_a_torn_tail(tmp_path: Path) -> None:
    first = 6
    _run(
        "crash (exhaustive): torn-tail recovery",
        tmp_path,
        _resume(BIG, first),
        _checker(BIG, always=tuple(range(first))),
        setup=_torn_tail_setup(BIG, first),
        exhaustive=True,
        cap=5000,
    )


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_exhaustive_power_loss_during_group_commits(tmp_path: Path) -> None:
    _run(
        "crash (exhaustive): group commit, 4 threads",
        tmp_path,
        _threads(BIG, 4),
        _checker(BIG, ordered=False),
        exhaustive=True,
        cap=5000,
    )


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_exhaustive_process_crash_under_every_policy(tmp_path: Path) -> None:
    for policy in ("fsync", "flush", "none"):
        _run(
            f"crash (exhaustive): process crash, {policy} policy",
            tmp_path / policy,
            _appends(BIG, durability=policy),
            _checker(BIG),
            power_loss=False,
        )


def test_entries_helper_round_trips(tmp_path: Path) -> None:
    """The workload's payloads survive the journal unchanged (sanity of the harness)."""
    with Journal.open(tmp_path / "j") as j:
        j.append_many([Entry(7, p) for p in SMALL.batches[3]])
        assert [j.decode(r) for r in j.scan()] == SMALL.batches[3]


# -- the model's finer points: pages, syncs running while others write ---------------------


def test_a_lost_page_before_a_persisted_one_never_brings_back_half_a_batch(
    tmp_path: Path,
) -> None:
    """A power cut kept the second page of an unsynced two-record batch, not the first.

    The data ends at the zeros of the first page; the second holds the batch's
    last record, whole. An append of a record exactly as long as the lost first
    one would end where that record begins, and bring it back as if committed:
    the writer's open cuts everything after the zeros instead.
    """
    root, twin = tmp_path / "j", tmp_path / "twin"
    first, second = {"k": "first " * 20}, {"k": "second " * 30}
    with Journal.open(root) as j:
        j.append(7, "committed")
    shutil.copytree(root, twin)
    with Journal.open(twin) as t:
        start = t._segs[-1].scanned_to
        t.append_many([Entry(7, first), Entry(7, second)])
        path, end = t._segs[-1].path, t._segs[-1].scanned_to
    lost_batch = Path(path).read_bytes()[start:end]
    with Journal.open(twin, readonly=True) as t:
        cut = t.read(3).offset  # where the second record begins
    seg = next((root / "segments").iterdir())
    data = bytearray(seg.read_bytes())
    data[start:end] = bytes(cut - start) + lost_batch[cut - start :]
    seg.write_bytes(bytes(data))
    with Journal.open(root) as j:
        assert j.last_seq == 1
        j.append(7, first)  # as long as the lost first record: ends where the second begins
    with Journal.open(root, readonly=True) as j:
        assert [j.decode(r) for r in j.scan()] == ["committed", first]
    assert list((root / "quarantine").iterdir()), "the stray bytes are kept for inspection"


def test_a_group_written_while_a_sync_runs_is_acknowledged_only_after_its_own_sync(
    tmp_path: Path,
) -> None:
    """Thread A's segment sync is held open until thread B has written its group.

    The recording notes when each sync began: B's write came after, so only a
    later sync covers it. A journal that acknowledged B on A's sync would lose
    B in the crash states where B's write did not persist.
    """
    log = ExpectedLog.generate([1, 1, 2, 1], seed=3)
    written = threading.Event()

    class HoldingFS(RecordingFS):
        held = False

        def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
            n = super().pwrite(fd, data, offset)
            if self.held and threading.current_thread().name == "B":
                written.set()
            return n

        def syncing(self, fd: int) -> None:
            if threading.current_thread().name == "A" and not self.held:
                name = self._names_of_fd(fd)
                if name.endswith(".agcx"):
                    self.held = True
                    started.set()
                    assert written.wait(30), "B never wrote while A's sync was held"

        def _names_of_fd(self, fd: int) -> str:
            return self.recording.names.get(self._fds.get(fd, -1), "")

    started = threading.Event()

    def workload(base: Path, fs: HarnessFS) -> None:
        with Journal.open(base / "j", fs=fs, segment_size=1 << 20) as j:
            j.append_many(log.entries(0))
            fs.ack(0)

            def a() -> None:
                j.append_many(log.entries(1))
                fs.ack(1)

            def b() -> None:
                assert started.wait(30)
                j.append_many(log.entries(2))
                fs.ack(2)

            ta = threading.Thread(target=a, name="A")
            tb = threading.Thread(target=b, name="B")
            ta.start()
            tb.start()
            ta.join()
            tb.join()
            j.append_many(log.entries(3))
            fs.ack(3)

    def check(base: Path, state: CrashState) -> None:
        check_journal_recovers(base / "j", log, state.acked, ordered=False)

    report = enumerate_crash_states(workload, check, tmp_path, recorder=HoldingFS)
    report_figures("crash: a group written during another's sync", report.as_dict())
    assert written.is_set() and report.checked > 0
