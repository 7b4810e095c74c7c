"""Disk full under load: four writer threads and a second process fill a small tmpfs.

Each failed save raises :class:`journal.JournalFull` naming the journal; no
acknowledged save is lost; a reader keeps reading; once space is freed every
writer saves again on the same handle, without a reopen. The file system is a
2 MiB tmpfs the test mounts (root only; skipped elsewhere — the fault file
system covers the same path in tests/test_io_faults.py).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest

from journal import JournalFull, SessionStore
from tests.conftest import PYTHON, ROOT, child_env
from tests.faultfs import report_figures
from tests.test_compact import History

WORKER = str(ROOT / "tests" / "_full_disk_worker.py")


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(path: Path, leave: int) -> None:
    """Write zeros to ``path`` until the file system has about ``leave`` bytes free."""
    with open(path, "wb") as f:
        chunk = bytes(64 << 10)
        while True:
            st = os.statvfs(path.parent)
            free = st.f_bavail * st.f_frsize
            if free <= leave:
                return
            try:
                f.write(chunk[: min(len(chunk), free - leave)])
                f.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                return


@pytest.mark.timeout(300)
def test_saves_under_load_fail_cleanly_when_the_disk_fills_and_resume_when_space_is_freed(
    tmp_path: Path,
) -> None:
    with small_tmpfs(tmp_path / "fs", "3m") as fs:
        root, flags = fs / "j", tmp_path / "flags"
        flags.mkdir()
        with SessionStore.open(root) as s:
            History(s).save(UUID(int=1000), ["before the disk filled"])
        _fill(fs / "ballast", leave=256 << 10)
        child = subprocess.Popen(
            [PYTHON, WORKER, str(root), str(flags)], stdout=subprocess.PIPE, text=True,
            env=child_env(),
        )
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        child_lines: list[str] = []
        child_full = threading.Event()
        child_after = threading.Event()
        freed = threading.Event()

        def read_child() -> None:
            assert child.stdout is not None
            for line in child.stdout:
                child_lines.append(line.strip())
                if line.startswith("full"):
                    child_full.set()
                elif freed.is_set() and line.startswith("ack"):
                    child_after.set()

        reader_thread = threading.Thread(target=read_child)
        reader_thread.start()
        errors: list[BaseException] = []
        acked: dict[UUID, int] = {}
        full_seen = [threading.Event() for _ in range(4)]
        saved_after = [threading.Event() for _ in range(4)]
        failures = [0] * 4
        reads = [0]
        stop = threading.Event()
        with SessionStore.open(root, lock_timeout=60) as store:
            h = History(store)

            def writer(t: int) -> None:
                sid = UUID(int=t + 1)
                n = 0
                try:
                    while not (freed.is_set() and saved_after[t].is_set()):
                        try:
                            h.save(sid, [f"thread {t} message {n} " * 20])
                        except JournalFull as exc:
                            assert str(root) in str(exc)
                            h.convs[sid] = type(h.convs[sid])(sid, h.convs[sid].messages[:-1])
                            failures[t] += 1
                            full_seen[t].set()
                            stop.wait(0.001)  # (leave the CPU to the others while full)
                            continue
                        n += 1
                        acked[sid] = n
                        if freed.is_set():
                            saved_after[t].set()
                except BaseException as exc:
                    errors.append(exc)
                    full_seen[t].set()
                    saved_after[t].set()

            def reader() -> None:
                try:
                    with SessionStore.open(root, readonly=True) as r:
                        while not stop.is_set():
                            assert r.session_exists(UUID(int=1000))
                            for _ in r.journal.scan():
                                pass
                            reads[0] += 1
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
            rt = threading.Thread(target=reader)
            for th in [*threads, rt]:
                th.start()
            for e in full_seen:
                assert e.wait(120), "a writer never met the full disk"
            assert child_full.wait(120), "the second process never met the full disk"
            reads_while_full = reads[0]
            (fs / "ballast").unlink()  # space is freed
            freed.set()
            for t in threads:
                t.join(120)
            assert child_after.wait(120), "the second process did not save again"
            (flags / "stop").touch()
            child.wait(60)
            reader_thread.join(60)
            stop.set()
            rt.join(60)
            assert not errors, errors
            assert child.returncode == 0
            assert reads[0] > 0
        child_acked = max(int(x.split()[1]) for x in child_lines if x.startswith("ack"))
        with SessionStore.open(root, readonly=True) as s:
            for sid, n in acked.items():
                assert len(s.load_session(sid)[1].messages) == n, sid
            assert len(s.load_session(UUID(int=99))[1].messages) == child_acked
            for rec in s.journal.scan():
                s.journal.decode(rec)
        report_figures(
            "disk full under load",
            {
                "thread_saves_refused": sum(failures),
                "child_saves_refused": sum(1 for x in child_lines if x == "full"),
                "thread_saves_acked": sum(acked.values()),
                "child_saves_acked": child_acked,
                "reader_passes_while_full": reads_while_full,
            },
        )
