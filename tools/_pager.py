"""Paging like git: long output on a terminal goes through a pager.

The pager is ``$AGCX_PAGER``, else ``$PAGER``, else ``less -FRX`` when ``less``
is installed (``-F``: quit at once when the text fits one screen, ``-R``: keep
colours, ``-X``: leave the text on the screen after quitting). An empty value or
``cat`` means no pager. Nothing is paged when stdout is not a terminal or with
``--no-pager``.

Text is held back until it passes one screen: a short answer is written
straight to the terminal and no pager is started at all; a long one starts the
pager, which gets the first screen at once and the rest as it is produced.

The pager closed early (``q``) or a reader gone (``agcx log | head``) shows up
as :class:`BrokenPipeError` in the writer; the command line ends quietly with
exit code 0 then. While the pager runs, Ctrl-C belongs to it (``less`` uses it
to stop a search): the command stops producing, and waits for the pager to
exit before giving the terminal back.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import TextIO

__all__ = ["Output", "paged", "pager_command"]

_DEFAULT = "less -FRX"


def pager_command(env: dict[str, str] | os._Environ[str] | None = None) -> str | None:
    """The shell command of the pager to use, or ``None`` for none."""
    env = os.environ if env is None else env
    for name in ("AGCX_PAGER", "PAGER"):
        if name in env:
            cmd = env[name].strip()
            return None if cmd in ("", "cat") else cmd
    return _DEFAULT if shutil.which("less") else None


class Output(io.TextIOBase):
    """A text stream: stdout, or (once the text passes ``rows`` lines) a pager."""

    def __init__(self, stream: TextIO, command: str | None, rows: int) -> None:
        self._stream = stream
        self._command = command
        self._rows = max(1, rows)
        self._held: list[str] = []
        self._held_lines = 0
        self._pager: subprocess.Popen[bytes] | None = None
        self._pipe: TextIO | None = None

    @property
    def paging(self) -> bool:
        """Whether a pager has been started."""
        return self._pager is not None

    def isatty(self) -> bool:
        # What the text ends up on (so rich keeps colours and the width when paging).
        return self._stream.isatty()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self._pipe is not None:
            self._pipe.write(text)
        elif self._command is None:
            self._stream.write(text)
        else:
            self._held.append(text)
            self._held_lines += text.count("\n")
            if self._held_lines >= self._rows:
                self._start()
        return len(text)

    def _start(self) -> None:
        assert self._command is not None
        env = dict(os.environ)
        env.setdefault("LESS", "FRX")
        env.setdefault("LV", "-c")
        self._stream.flush()
        try:
            self._pager = subprocess.Popen(
                self._command, shell=True, stdin=subprocess.PIPE, env=env, close_fds=True
            )
        except OSError:
            self._command = None  # no pager after all: write to the terminal
            self._stream.write("".join(self._held))
            self._held = []
            return
        assert self._pager.stdin is not None
        encoding = getattr(self._stream, "encoding", None) or "utf-8"
        self._pipe = io.TextIOWrapper(self._pager.stdin, encoding=encoding, errors="replace")
        held, self._held = "".join(self._held), []
        self._pipe.write(held)
        self._pipe.flush()

    def flush(self) -> None:
        if self._pipe is not None:
            self._pipe.flush()
        elif self._command is None:
            self._stream.flush()

    def finish(self) -> None:
        """Write what is held back; close the pager's input and wait for it to exit."""
        if self._pager is None:
            if self._held:
                self._stream.write("".join(self._held))
                self._held = []
            self._stream.flush()
            return
        pager, pipe = self._pager, self._pipe
        self._pager = self._pipe = None
        with _sigint_ignored():
            try:
                if pipe is not None:
                    with contextlib.suppress(BrokenPipeError, OSError, ValueError):
                        pipe.close()
            finally:
                pager.wait()


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while waiting for the pager (it is the pager's to handle)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


@contextlib.contextmanager
def paged(enabled: bool = True, stream: TextIO | None = None) -> Iterator[Output]:
    """An :class:`Output` for one command's text, paged when ``enabled``, the
    stream is a terminal and a pager is configured."""
    stream = stream or sys.stdout
    command = pager_command() if enabled and stream.isatty() else None
    rows = shutil.get_terminal_size().lines - 1 if command else 1
    out = Output(stream, command, rows)
    try:
        yield out
    finally:
        # On the way out from an interruption too: the pager keeps what it
        # was given, and the terminal is handed back only when it exits.
        out.finish()
