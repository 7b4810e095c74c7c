"""I/O error injection: the N-th file operation fails, for every N (the SQLite loop).

For each N = 1, 2, ... the workload runs on a :class:`tests.faultfs.FaultFS`
whose N-th operation fails, once (one-shot) or from then on (persistent),
with ``EIO`` or ``ENOSPC`` (a failing ``ENOSPC`` write first writes half its
data), until a run completes without meeting the fault. After each run:

* the error the workload saw was a :class:`journal.JournalError` naming the
  failure, never a bare ``OSError`` (an I/O failure is not reported as
  :class:`journal.CorruptJournal`: the bytes are not damaged, the disk is);
* an append that raised poisons the handle (later appends raise
  :class:`journal.JournalPoisoned` until a reopen), except a write the full
  file system refused (:class:`journal.JournalFull`): the same batch is then
  appended again and succeeds once there is space;
* reopened on a healthy disk, the journal holds every acknowledged batch,
  whole batches only, recovers, and takes new appends.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

import pytest

from journal import (
    CorruptJournal,
    Entry,
    FileSystem,
    Journal,
    JournalError,
    JournalFull,
    JournalPoisoned,
)
from tests.faultfs import (
    ExpectedLog,
    FaultFS,
    HarnessFS,
    check_journal_recovers,
    report_figures,
    run_fault_loop,
)

SEG = 4096


def _workload(expected: ExpectedLog, split: int) -> Callable[[Path, HarnessFS], None]:
    """Create a journal and append batches (rolling segments), reopen, append, read.

    On an error from an append, one more append must fail too (the handle is
    poisoned, or the cause persists); then the error ends the run.
    """

    def append_all(j: Journal, fs: HarnessFS, batches: range) -> None:
        for b in batches:
            try:
                j.append_many(expected.entries(b))
            except JournalFull:
                # A full disk stores nothing of the batch and leaves the handle
                # usable: once there is space (a one-shot fault), the same
                # batch saves without a reopen; a persistent one fails again.
                j.append_many(expected.entries(b))
            except JournalError as exc:
                poisoned = isinstance(exc, JournalPoisoned)
                with pytest.raises(JournalPoisoned if poisoned else JournalError):
                    j.append(1, "after a failure")
                raise
            fs.ack(b)

    def run(root: Path, fs: HarnessFS) -> None:
        with Journal.open(root, fs=fs, segment_size=SEG) as j:
            append_all(j, fs, range(split))
        with Journal.open(root, fs=fs, segment_size=SEG) as j:
            append_all(j, fs, range(split, len(expected.batches)))
            payloads = [j.decode(r) for r in j.scan()]
            expected.check(payloads, fs.acked)
            assert j.read(1).seq == 1
            assert j.statistics().records == len(payloads)

    return run


def _check(expected: ExpectedLog) -> Callable[[Path, FaultFS, BaseException | None], None]:
    def check(root: Path, fs: FaultFS, error: BaseException | None) -> None:
        if error is not None:
            assert not isinstance(error, CorruptJournal), f"an I/O error reported as {error!r}"
            # The message names the failure; the OSError is kept as the cause.
            assert "injected" in str(error) or isinstance(error, JournalPoisoned), str(error)
            causes = []
            e: BaseException | None = error
            while e is not None:
                causes.append(e)
                e = e.__cause__
            assert any(isinstance(c, OSError) and c.errno == fs.err for c in causes), causes
        check_journal_recovers(root, expected, fs.acked, segment_size=SEG)

    return check


LOG = ExpectedLog.generate([1, 2, 1, 3, 1, 1, 4, 1, 2, 1, 1, 2], seed=3, big=900)


@pytest.mark.parametrize("persistent", [False, True], ids=["one-shot", "persistent"])
@pytest.mark.parametrize("err", [errno.EIO, errno.ENOSPC], ids=["EIO", "ENOSPC"])
def test_a_failing_file_operation_at_any_point_loses_nothing_acknowledged(
    tmp_path: Path, err: int, persistent: bool
) -> None:
    report = run_fault_loop(
        _workload(LOG, split=7), _check(LOG), tmp_path, err=err, persistent=persistent
    )
    report_figures(
        f"faults: {errno.errorcode[err]} {'persistent' if persistent else 'one-shot'}",
        report.as_dict(),
    )
    assert report.injected > 50


BIG = ExpectedLog.generate([1, 3, 1, 1, 2, 5, 1, 1, 1, 2, 1, 3, 1, 1, 8, 1, 2, 1, 1, 1] * 2, seed=4)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("persistent", [False, True], ids=["one-shot", "persistent"])
@pytest.mark.parametrize(
    "err", [errno.EIO, errno.ENOSPC, errno.EDQUOT, errno.EROFS], ids=errno.errorcode.get
)
def test_exhaustive_fault_injection_over_a_longer_workload(
    tmp_path: Path, err: int, persistent: bool
) -> None:
    report = run_fault_loop(
        _workload(BIG, split=17), _check(BIG), tmp_path, err=err, persistent=persistent
    )
    report_figures(
        f"faults (exhaustive): {errno.errorcode[err]} {'persistent' if persistent else 'one-shot'}",
        report.as_dict(),
    )


# -- the errors, one by one --------------------------------------------------------------


def _chain(exc: BaseException) -> list[BaseException]:
    out = []
    e: BaseException | None = exc
    while e is not None:
        out.append(e)
        e = e.__cause__
    return out


def test_opening_on_a_failing_disk_raises_a_journal_error_wrapping_the_os_error(
    root: Path,
) -> None:
    with Journal.open(root) as j:
        j.append(1, "kept")
    for op in ("open", "pread", "fstat", "is_regular", "mkdir", "listdir"):
        fs = FaultFS(1, errno.EIO, persistent=True, only=[op])
        with pytest.raises(JournalError) as err:
            Journal.open(root if op != "mkdir" else root / "new", fs=fs)
        assert not isinstance(err.value, CorruptJournal), op
        assert str(root) in str(err.value) and "Input/output error" in str(err.value), op
        assert "try again" in str(err.value)
        assert isinstance(err.value.__cause__, OSError), op
    with Journal.open(root, readonly=True) as j:
        assert [j.decode(r) for r in j.scan()] == ["kept"]


def test_reading_on_a_failing_disk_raises_a_journal_error(root: Path) -> None:
    with Journal.open(root, segment_size=SEG) as j:
        j.append_many([Entry(1, "x" * 300) for _ in range(40)])
    fs = FaultFS(None, errno.EIO, only=["pread"])
    with Journal.open(root, fs=fs, readonly=True) as j:
        fs.fail_at, fs.persistent = fs.count + 1, True
        for read in (lambda: list(j.scan()), lambda: j.read(3), lambda: j.last_seq):
            with pytest.raises(JournalError, match="cannot read journal") as err:
                # Every segment is indexed already; new ones need reading.
                j._segs[0].complete = False
                read()
            assert isinstance(err.value.__cause__, OSError)


class _FailingLockHint(FileSystem):
    """Fails every write of the lock holder's pid into ``LOCK`` (16 bytes at 0)."""

    failed = 0

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        if offset == 0 and len(data) == 16 and bytes(data).endswith(b"\n"):
            self.failed += 1
            raise OSError(errno.EIO, "Input/output error (injected)")
        return super().pwrite(fd, data, offset)


def test_a_failure_writing_the_lock_holder_hint_neither_fails_nor_keeps_the_lock(
    root: Path,
) -> None:
    fs = _FailingLockHint()
    with Journal.open(root, fs=fs) as j:
        j.append(1, "a")
        with Journal.open(root, lock_timeout=0.5) as other:  # not JournalBusy
            other.append(1, "b")
        j.append(1, "c")
    # Only the first hint goes through pwrite (taken on open, before LOCK is
    # mapped); later ones are stores into the mapped page, with no I/O to fail.
    assert fs.failed == 1
    with Journal.open(root, readonly=True) as j:
        assert [j.decode(r) for r in j.scan()] == ["a", "b", "c"]


def test_closing_never_raises_even_when_the_os_fails_to_close(root: Path) -> None:
    fs = FaultFS(None, errno.EIO, persistent=True, only=["close"])
    j = Journal.open(root, fs=fs)
    j.append(1, "a")
    fs.fail_at = fs.count + 1
    j.close()
    assert j.closed and fs.injected


def test_a_failed_write_poisons_the_handle_and_a_reopen_continues(root: Path) -> None:
    fs = FaultFS(None, errno.EIO, persistent=True, only=["pwrite"])
    with Journal.open(root, fs=fs) as j:
        j.append(1, "durable")
        fs.fail_at = fs.count + 1  # the lock hint (ignored), then the records
        with pytest.raises(JournalPoisoned, match="Input/output error"):
            j.append(1, "failed")
        with pytest.raises(JournalPoisoned, match="reopen"):
            j.append(1, "refused")
    with Journal.open(root) as j:
        assert [j.decode(r) for r in j.scan()] == ["durable"]
        j.append(1, "after reopen")


def test_a_full_disk_fails_the_save_cleanly_and_the_same_handle_saves_once_there_is_space(
    root: Path,
) -> None:
    """ENOSPC on a write is not a failed sync: nothing was lost by the kernel. The
    half-written records are cut off at once (a reader must never see them), the
    save fails with JournalFull naming the journal, and the handle is not poisoned."""
    fs = FaultFS(None, errno.ENOSPC, persistent=True, only=["pwrite"])
    with Journal.open(root, fs=fs, preallocate=0) as j, Journal.open(root, readonly=True) as r:
        j.append(1, "durable")
        size = j._segs[-1].file_size()
        fs.fail_at = fs.count + 1  # the records: half written, then ENOSPC
        for _ in range(3):
            with pytest.raises(JournalFull, match=f"journal {root}: the file system is full"):
                j.append_many([Entry(1, "first of a batch " * 30), Entry(1, "second " * 30)])
            assert j._segs[-1].file_size() == size, "the half-written batch was left in the file"
            assert [r.decode(x) for x in r.scan()] == ["durable"]  # readers keep working
        fs.fail_at = None  # space was freed
        assert j.append(1, "after the disk filled") == 2
    with Journal.open(root, readonly=True) as j:
        assert [j.decode(x) for x in j.scan()] == ["durable", "after the disk filled"]
