"""How ``agcx`` stops on Ctrl-C (SIGINT) and on SIGTERM.

Both signals raise an exception in the main thread (:class:`KeyboardInterrupt`
for SIGINT, :class:`Terminated` for SIGTERM) that unwinds the command: every
``with`` block closes its store (releasing the journal's locks), and
:func:`tools.cli.main` turns it into exit code 130 (SIGINT) or 143 (SIGTERM)
with one line on stderr, no traceback.

The handlers are installed explicitly, not left to the interpreter, which
installs its own only when SIGINT is at its default at start. A signal that
the process was started with *ignored* stays ignored: that is how a
non-interactive shell runs ``agcx log --follow &`` (and how ``nohup`` runs a
command), so that the Ctrl-C typed for the foreground job does not stop the
ones left in the background. Such a process is stopped with SIGTERM.
"""

from __future__ import annotations

import _thread
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

__all__ = [
    "EXIT_SIGINT",
    "EXIT_SIGTERM",
    "Terminated",
    "deferred",
    "exit_code",
    "ignore",
    "install",
    "restore",
]

EXIT_SIGINT = 128 + signal.SIGINT  # 130, as a shell reports a command Ctrl-C stopped
EXIT_SIGTERM = 128 + signal.SIGTERM  # 143


class Terminated(BaseException):
    """SIGTERM arrived: the command unwinds as for Ctrl-C (exit code 143)."""


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated


Handlers = dict[Any, Any]


def _unraisable(info: Any) -> None:
    """An interruption raised where Python cannot let it propagate (a weakref
    callback of the import machinery, a ``__del__``) would be printed as
    "Exception ignored" and lost: deliver the signal again instead, so that it
    is raised in the command's own code a moment later."""
    if isinstance(info.exc_value, KeyboardInterrupt | Terminated):
        _redeliver(signal.SIGTERM if isinstance(info.exc_value, Terminated) else signal.SIGINT)
        return
    (_previous_hook or sys.__unraisablehook__)(info)


_previous_hook: Any = None  # the hook _unraisable hands everything else to


def _redeliver(signum: int) -> None:
    # From a timer thread, a moment later: here the handler would run (and
    # raise) inside the hook at once.
    timer = threading.Timer(0.02, _thread.interrupt_main, (signum,))
    timer.daemon = True
    try:
        timer.start()
    except (KeyboardInterrupt, Terminated):
        _redeliver(signum)  # it came back before this hook returned: once more


def install() -> Handlers:
    """Raise :class:`KeyboardInterrupt` on SIGINT and :class:`Terminated` on SIGTERM,
    unless the process was started with that signal ignored (see the module doc).
    Returns the handlers replaced, for :func:`restore`."""
    if threading.current_thread() is not threading.main_thread():
        return {}  # called from a thread (tests, embedding): signals stay as they are
    global _previous_hook
    old: Handlers = {"unraisablehook": sys.unraisablehook}
    if sys.unraisablehook is not _unraisable:
        _previous_hook = sys.unraisablehook
        sys.unraisablehook = _unraisable
    for signum, handler in ((signal.SIGINT, _on_sigint), (signal.SIGTERM, _on_sigterm)):
        current = signal.getsignal(signum)
        if current != signal.SIG_IGN:
            old[signum] = current
            signal.signal(signum, handler)
    return old


def ignore() -> None:
    """Ignore both signals from now on: the command is done, only the exit is
    left, and a late Ctrl-C must not turn it into a traceback."""
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signum, signal.SIG_IGN)


def restore(old: Handlers) -> None:
    """Put back the handlers :func:`install` replaced (``main`` called in-process
    leaves the caller's Ctrl-C as it found it)."""
    for key, handler in old.items():
        if key == "unraisablehook":
            sys.unraisablehook = handler
            continue
        with contextlib.suppress(ValueError, OSError, TypeError):
            signal.signal(key, handler)


def exit_code(exc: BaseException) -> int:
    """The exit code for an interruption: 143 for SIGTERM, else 130."""
    return EXIT_SIGTERM if isinstance(exc, Terminated) else EXIT_SIGINT


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while the block runs; raise on leaving it if
    one came. For the few steps that must not stop halfway (waiting for the
    pager to exit so the terminal is given back in order)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def note(signum: int, frame: FrameType | None) -> None:
        got.append(signum)

    for s, h in old.items():
        if h != signal.SIG_IGN:
            signal.signal(s, note)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if got:
        if got[0] == signal.SIGTERM:
            raise Terminated
        raise KeyboardInterrupt
