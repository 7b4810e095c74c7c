"""The file-system seam: every system call the journal makes that changes disk state.

Production code uses :data:`OS` which calls :mod:`os` directly. Tests pass a
subclass to record operations (crash-state enumeration) or to make the N-th
one fail (I/O error injection). Reads go through the seam too, so a test can
model a file whose unsynced tail was lost.

No symlink is followed inside a journal. A file is opened, created, renamed,
removed or looked at through a descriptor of its directory (``openat`` and
friends) with ``O_NOFOLLOW`` on the name, and the journal's own directories
(``segments/``, ``projections/``, ``quarantine/``) are themselves opened with
``O_NOFOLLOW``: one replaced by a symlink fails with ``ELOOP``/``ENOTDIR``
instead of leading the journal's writes or deletions elsewhere, even if it is
swapped between a check and the use. (The journal's root is the path the
user gave, and may be reached through symlinks.)
"""

from __future__ import annotations

import contextlib
import os
import stat as _stat
from collections.abc import Iterator

__all__ = ["OS", "PRIVATE_DIRS", "FileSystem", "check_private_dir"]

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# No effect on regular files; a FIFO put where a journal file belongs opens at
# once (and then fails to read) instead of blocking the open forever.
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


PRIVATE_DIRS = frozenset({"segments", "projections", "quarantine"})
"""The journal's subdirectories: never symlinks."""


def _dir_flags(path: str) -> int:
    flags = os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC
    if os.path.basename(os.path.normpath(path)) in PRIVATE_DIRS:
        flags |= _O_NOFOLLOW
    return flags


@contextlib.contextmanager
def _in_dir(path: str) -> Iterator[tuple[int, str]]:
    """A descriptor of ``path``'s directory (not followed if it is one of the
    journal's own) and the last component of ``path``."""
    parent, name = os.path.split(path)
    dfd = os.open(parent or ".", _dir_flags(parent or "."))
    try:
        yield dfd, name
    finally:
        os.close(dfd)


class FileSystem:
    """Direct calls into the operating system. Subclass to observe or fail them."""

    def open(self, path: str, flags: int, mode: int = 0o600) -> int:
        # O_NOFOLLOW: a segment or manifest that is a symlink is refused, never followed.
        with _in_dir(path) as (dfd, name):
            return os.open(name, flags | _O_NOFOLLOW | _O_CLOEXEC | _O_NONBLOCK, mode, dir_fd=dfd)

    def close(self, fd: int) -> None:
        os.close(fd)

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        return os.pwrite(fd, data, offset)

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        return os.pread(fd, size, offset)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def fdatasync(self, fd: int) -> None:
        os.fdatasync(fd)

    def ftruncate(self, fd: int, length: int) -> None:
        os.ftruncate(fd, length)

    def fstat(self, fd: int) -> os.stat_result:
        return os.fstat(fd)

    def rename(self, src: str, dst: str) -> None:
        with _in_dir(src) as (sfd, sname), _in_dir(dst) as (dfd, dname):
            os.rename(sname, dname, src_dir_fd=sfd, dst_dir_fd=dfd)

    def unlink(self, path: str) -> None:
        with _in_dir(path) as (dfd, name):
            os.unlink(name, dir_fd=dfd)

    def mkdir(self, path: str, mode: int = 0o700) -> None:
        with _in_dir(path) as (dfd, name):
            os.mkdir(name, mode, dir_fd=dfd)

    def fsync_dir(self, path: str) -> None:
        fd = os.open(path, _dir_flags(path))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def listdir(self, path: str) -> list[str]:
        fd = os.open(path, _dir_flags(path))
        try:
            return os.listdir(fd)
        finally:
            os.close(fd)

    def stat(self, path: str) -> os.stat_result:
        with _in_dir(path) as (dfd, name):
            return os.stat(name, dir_fd=dfd, follow_symlinks=False)

    def is_regular(self, path: str) -> bool:
        try:
            return _stat.S_ISREG(self.stat(path).st_mode)
        except FileNotFoundError:
            return False

    def read_file(self, path: str, limit: int) -> bytes:
        """Read a whole small file, refusing one larger than ``limit`` bytes."""
        fd = self.open(path, os.O_RDONLY)
        try:
            size = self.fstat(fd).st_size
            if size > limit:
                raise OSError(f"{path} is {size} bytes, more than the {limit} allowed")
            return self.pread(fd, size, 0)
        finally:
            self.close(fd)

    def write_file_atomic(self, path: str, data: bytes, *, sync: bool = True) -> None:
        """Replace ``path`` with ``data``: temp file, fsync, rename, fsync directory."""
        tmp = f"{path}.tmp.{os.getpid()}"
        fd = self.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            written = 0
            while written < len(view):
                written += self.pwrite(fd, view[written:], written)
            if sync:
                self.fsync(fd)
        except BaseException:
            self.close(fd)
            with contextlib.suppress(OSError):
                self.unlink(tmp)
            raise
        self.close(fd)
        self.rename(tmp, path)
        if sync:
            self.fsync_dir(os.path.dirname(path) or ".")


def check_private_dir(path: str, what: str) -> str | None:
    """Why the directory ``path`` is not safe for a journal, or ``None`` if it is.

    It must be a real directory (for the journal's own subdirectories, not a
    symlink to one), owned by this process's user, and not writable by the
    group or others (who could replace its files).
    """
    try:
        st = os.stat(path, follow_symlinks=os.path.basename(path) not in PRIVATE_DIRS)
    except FileNotFoundError:
        return None
    if _stat.S_ISLNK(st.st_mode):
        return f"{what} {path} is a symlink; a journal never follows one"
    if not _stat.S_ISDIR(st.st_mode):
        return f"{what} {path} is not a directory"
    if st.st_uid != os.geteuid():
        return (
            f"{what} {path} belongs to user id {st.st_uid}, not to this process's "
            f"user id {os.geteuid()}: another user could read or change the history"
        )
    if st.st_mode & (_stat.S_IWGRP | _stat.S_IWOTH):
        who = "others" if st.st_mode & _stat.S_IWOTH else "its group"
        return (
            f"{what} {path} is writable by {who} "
            f"(mode {_stat.S_IMODE(st.st_mode):o}): they could replace its files; "
            f"chmod 700 {path}"
        )
    return None


OS = FileSystem()
