"""The file-system seam: every system call the journal makes that changes disk state.

Production code uses :data:`OS` which calls :mod:`os` directly. Tests pass a
subclass to record operations (crash-state enumeration) or to make the N-th
one fail (I/O error injection). Reads go through the seam too, so a test can
model a file whose unsynced tail was lost.
"""

from __future__ import annotations

import contextlib
import os
import stat as _stat

__all__ = ["OS", "FileSystem"]

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# No effect on regular files; a FIFO put where a journal file belongs opens at
# once (and then fails to read) instead of blocking the open forever.
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


class FileSystem:
    """Direct calls into the operating system. Subclass to observe or fail them."""

    def open(self, path: str, flags: int, mode: int = 0o600) -> int:
        # O_NOFOLLOW: a segment or manifest that is a symlink is refused, never followed.
        return os.open(path, flags | _O_NOFOLLOW | _O_CLOEXEC | _O_NONBLOCK, mode)

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
        os.rename(src, dst)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def mkdir(self, path: str, mode: int = 0o700) -> None:
        os.mkdir(path, mode)

    def fsync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | _O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def stat(self, path: str) -> os.stat_result:
        return os.stat(path, follow_symlinks=False)

    def is_regular(self, path: str) -> bool:
        try:
            return _stat.S_ISREG(os.stat(path, follow_symlinks=False).st_mode)
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


OS = FileSystem()
