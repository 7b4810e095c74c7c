"""Symlinks and foreign files: a journal follows no symlink and trusts no other user.

The journal's directories (``segments/``, ``projections/``, ``quarantine/``)
and files (``MANIFEST``, ``LOCK``, segments) replaced by symlinks are refused,
also when swapped in while the journal is open; a journal directory owned by
another user or writable by others is refused with a message saying why; and
a second local user cannot read anything (files 0600, directories 0700).
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from uuid import UUID

import pytest

from journal import Entry, Journal, JournalError, SessionStore, UnsafeJournal
from tests.test_compact import History

NOBODY = 65534


def _journal(root: Path, n: int = 40) -> None:
    with SessionStore.open(root, segment_size=4096) as s:
        h = History(s)
        for k in range(n):
            h.save(UUID(int=k % 3 + 1), [f"turn {k} " * 10])


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


@pytest.mark.parametrize("sub", ["segments", "projections", "quarantine"])
def test_a_subdirectory_replaced_by_a_symlink_is_refused(tmp_path: Path, sub: str) -> None:
    root = tmp_path / "j"
    _journal(root)
    elsewhere = tmp_path / "elsewhere"
    if (root / sub).exists():
        shutil.move(root / sub, elsewhere)
    else:
        elsewhere.mkdir(mode=0o700)
    (root / sub).symlink_to(elsewhere, target_is_directory=True)
    before = _tree(elsewhere)
    for readonly in (False, True):
        with pytest.raises(UnsafeJournal, match=f"{sub} is a symlink"):
            SessionStore.open(root, readonly=readonly)
    assert _tree(elsewhere) == before


def test_segments_swapped_for_a_symlink_while_open_are_not_written_through(
    tmp_path: Path,
) -> None:
    """The check at open cannot see a later swap; the directory descriptors do."""
    root, elsewhere = tmp_path / "j", tmp_path / "elsewhere"
    with Journal.open(root, segment_size=4096) as j:
        j.append_many([Entry(1, os.urandom(100)) for _ in range(10)])
        (root / "segments").rename(tmp_path / "real")
        elsewhere.mkdir(mode=0o700)
        (root / "segments").symlink_to(elsewhere, target_is_directory=True)
        with pytest.raises(JournalError):
            for _ in range(100):  # until a roll creates a segment file
                j.append(1, os.urandom(200))
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("name", ["MANIFEST", "LOCK"])
def test_a_file_replaced_by_a_symlink_is_refused(tmp_path: Path, name: str) -> None:
    root = tmp_path / "j"
    _journal(root, 5)
    target = tmp_path / f"elsewhere-{name}"
    (root / name).rename(target)
    (root / name).symlink_to(target)
    before = target.read_bytes()
    with pytest.raises(JournalError):
        Journal.open(root)
    assert target.read_bytes() == before


def test_a_segment_replaced_by_a_symlink_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "j"
    _journal(root)
    seg = sorted((root / "segments").iterdir())[0]
    seg.rename(tmp_path / "moved")
    seg.symlink_to(tmp_path / "moved")
    with pytest.raises(JournalError), Journal.open(root, readonly=True) as j:
        list(j.scan())


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory away")
def test_a_journal_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "j"
    _journal(root, 3)
    os.chown(root, NOBODY, NOBODY)
    with pytest.raises(UnsafeJournal, match=f"belongs to user id {NOBODY}"):
        Journal.open(root)
    os.chown(root, 0, 0)
    os.chown(root / "segments", NOBODY, NOBODY)
    with pytest.raises(UnsafeJournal, match="segments belongs to user id"):
        Journal.open(root, readonly=True)


@pytest.mark.parametrize(("mode", "who"), [(0o777, "others"), (0o770, "its group")])
def test_a_journal_directory_others_may_write_to_is_refused(
    tmp_path: Path, mode: int, who: str
) -> None:
    root = tmp_path / "j"
    _journal(root, 3)
    before = _tree(root)
    root.chmod(mode)
    for readonly in (False, True):
        with pytest.raises(UnsafeJournal, match=f"writable by {who}.*chmod 700"):
            Journal.open(root, readonly=readonly)
    root.chmod(0o700)
    assert _tree(root) == before
    with Journal.open(root) as j:
        assert j.last_seq > 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to a second user")
def test_a_second_local_user_can_read_nothing(tmp_path: Path) -> None:
    root = tmp_path / "j"
    _journal(root)
    with SessionStore.open(root, segment_size=4096) as s:  # a quarantined tail too
        path, end = s.journal._segs[-1].path, s.journal._segs[-1].scanned_to
    with open(path, "r+b") as f:
        f.seek(end)
        f.write(b"\x40\x00\x00\x00torn")
    Journal.open(root).close()
    tmp_path.chmod(0o755)  # the second user may reach the journal directory itself
    paths = [root, *root.rglob("*")]
    assert any("quarantine" in str(p) for p in paths)
    assert any(p.name.endswith(".snap") for p in paths)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: become nobody, try everything
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            results = []
            for p in paths:
                try:
                    if p.is_dir():
                        os.listdir(p)
                    else:
                        os.close(os.open(p, os.O_RDONLY))
                    results.append(f"READ {p}")
                except PermissionError:
                    pass
                except OSError as exc:
                    results.append(f"{p}: {errno.errorcode[exc.errno or 0]}")
            try:
                Journal.open(root, readonly=True).close()
                results.append("Journal.open succeeded")
            except JournalError:
                pass
            os.write(w, "\n".join(results).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read().decode()
    os.waitpid(pid, 0)
    assert out == "", out
