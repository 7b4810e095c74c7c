"""Test harness for crashes and I/O faults, reusable for any workload.

Two file-system layers plug into the journal's seam (:class:`journal.FileSystem`):

* :class:`RecordingFS` runs a workload against the real disk and records every
  operation that changes disk state, in order. :func:`crash_states` then builds,
  for every prefix of that record, each on-disk state a power loss at that point
  could leave, and :func:`enumerate_crash_states` opens and checks each one.
* :class:`FaultFS` makes the N-th file operation fail (once, or from then on),
  and :func:`run_fault_loop` runs a workload for N = 1, 2, ... until it completes
  without meeting the fault.

The power-loss model (ALICE / CrashMonkey style):

* a file's durable content is what it held when its last completed
  ``fsync``/``fdatasync`` *began*: a write made while a sync was running is
  not covered by it (threads write while another syncs; the recording lets
  them, and notes the start and the end of each sync);
* the writes (and truncations) made since then may be lost as a suffix, and
  the first lost write may be torn: a prefix of it persisted, cut at any byte
  (record boundaries, inside frame headers and bodies, inside padding);
* or, page by page: each 4 KiB page of the file may hold any of the versions
  it went through since the durable one (the page cache writes pages back in
  any order, so any subset of the pages of one write may persist, and a later
  write's pages may persist while an earlier write's did not), with the file
  length any of the lengths it had;
* a directory entry (a created file or directory, a rename, an unlink) is
  durable only after an fsync of its directory. Until then any prefix of that
  directory's pending entry changes may have persisted, none of them
  ("undone": the file absent, the old name back) and all of them included;
  a file or directory whose entry did not persist vanishes with everything
  written to it.

A workload is a callable ``workload(root, fs)`` that drives the code under test
with ``fs`` as its file system and calls ``fs.ack(token)`` each time an
operation it made has been acknowledged as durable. A check is a callable
``check(root, state)`` run on each materialised crash state, where
``state.acked`` holds the tokens acknowledged before the crash point.
"""

from __future__ import annotations

import errno as errno_mod
import hashlib
import itertools
import json
import os
import random
import shutil
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from journal import Entry, FileSystem, Journal, JournalError

__all__ = [
    "CrashReport",
    "CrashState",
    "ExpectedLog",
    "FaultFS",
    "FaultReport",
    "HarnessFS",
    "Recording",
    "RecordingFS",
    "crash_states",
    "enumerate_crash_states",
    "materialize",
    "report_figures",
    "run_fault_loop",
]

# -- the workload's side -----------------------------------------------------------------


class HarnessFS(FileSystem):
    """A file system a workload runs on; it notes what the workload saw acknowledged."""

    def __init__(self) -> None:
        self.acked: list[Any] = []

    def ack(self, token: Any) -> None:
        """The workload was told that the operation named ``token`` is durable."""
        self.acked.append(token)


Workload = Callable[[Path, HarnessFS], None]


# -- recording ---------------------------------------------------------------------------

# A node in the model: ("f", inode) for a file, ("d", directory id) for a directory.
Node = tuple[str, int]


@attrs.frozen
class Op:
    """One recorded operation, with paths already resolved to model nodes.

    ``kind`` is one of ``link`` (a new entry ``name`` -> ``node`` in directory
    ``dir``), ``unlink``, ``rename`` (``name`` -> ``dst`` within ``dir``),
    ``dirsync``, ``write`` (``data`` at ``offset`` into inode ``ino``),
    ``truncate`` (``ino`` to ``offset`` bytes), ``syncstart`` (a sync of
    ``ino`` began; ``offset`` numbers it) and ``sync`` (that sync completed:
    what ``ino`` held when it began is durable).
    """

    kind: str
    dir: int = -1
    name: str = ""
    node: Node = ("f", -1)
    dst: str = ""
    ino: int = -1
    offset: int = 0
    data: bytes = b""


@attrs.define
class Recording:
    """What :class:`RecordingFS` saw: the initial state, the operations, the acks."""

    initial_dirs: dict[int, dict[str, Node]]
    initial_data: dict[int, bytes]
    names: dict[int, str]  # inode -> the path it was first known by
    ops: list[Op] = attrs.Factory(list)
    acks: list[tuple[int, Any]] = attrs.Factory(list)  # (number of ops done, token)
    ignored: int = 0  # operations on files whose content does not matter


class RecordingFS(HarnessFS):
    """Runs every call on the real disk and records what changes disk state.

    Only paths under ``base`` are modelled. Writes to files named in ``ignore``
    (the ``LOCK`` file, whose bytes only name the last lock holder) are carried
    out but not recorded, so they do not multiply the crash states.
    """

    def __init__(self, base: Path, *, ignore: Sequence[str] = ("LOCK",)) -> None:
        super().__init__()
        self.base = os.path.abspath(base)
        self.ignore = set(ignore)
        self._lock = threading.RLock()
        self._paths: dict[str, Node] = {".": ("d", 0)}
        self._fds: dict[int, int] = {}
        self._next = 1
        dirs: dict[int, dict[str, Node]] = {0: {}}
        data: dict[int, bytes] = {}
        names: dict[int, str] = {}
        for cur, subdirs, files in os.walk(self.base):
            rel_dir = os.path.relpath(cur, self.base)
            parent = self._paths[rel_dir][1]
            for d in sorted(subdirs):
                node = ("d", self._new_id())
                dirs[node[1]] = {}
                dirs[parent][d] = node
                self._paths[os.path.normpath(os.path.join(rel_dir, d))] = node
            for f in sorted(files):
                rel = os.path.normpath(os.path.join(rel_dir, f))
                ino = self._new_id()
                dirs[parent][f] = ("f", ino)
                self._paths[rel] = ("f", ino)
                data[ino] = Path(cur, f).read_bytes()
                names[ino] = rel
        self.recording = Recording(dirs, data, names)

    def _new_id(self) -> int:
        self._next += 1
        return self._next - 1

    def _rel(self, path: str) -> str | None:
        rel = os.path.relpath(os.path.abspath(path), self.base)
        return None if rel.startswith("..") else os.path.normpath(rel)

    def _parent(self, rel: str) -> tuple[int, str]:
        node = self._paths[os.path.dirname(rel) or "."]
        assert node[0] == "d", rel
        return node[1], os.path.basename(rel)

    def _record(self, op: Op) -> None:
        self.recording.ops.append(op)

    def _ignored(self, ino: int) -> bool:
        return os.path.basename(self.recording.names.get(ino, "")) in self.ignore

    # -- the seam ---------------------------------------------------------------------

    def ack(self, token: Any) -> None:
        with self._lock:
            super().ack(token)
            self.recording.acks.append((len(self.recording.ops), token))

    def open(self, path: str, flags: int, mode: int = 0o600) -> int:
        with self._lock:
            rel = self._rel(path)
            existed = rel is not None and rel in self._paths
            fd = super().open(path, flags, mode)
            if rel is None:
                return fd
            if not existed:
                d, name = self._parent(rel)
                ino = self._new_id()
                self._paths[rel] = ("f", ino)
                self.recording.names[ino] = rel
                self._record(Op("link", dir=d, name=name, node=("f", ino)))
            ino = self._paths[rel][1]
            self._fds[fd] = ino
            if existed and flags & os.O_TRUNC:
                self._record(Op("truncate", ino=ino, offset=0))
            return fd

    def close(self, fd: int) -> None:
        with self._lock:
            self._fds.pop(fd, None)
            super().close(fd)

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        with self._lock:
            n = super().pwrite(fd, data, offset)
            ino = self._fds.get(fd)
            if ino is not None:
                if self._ignored(ino):
                    self.recording.ignored += 1
                else:
                    self._record(Op("write", ino=ino, offset=offset, data=bytes(data[:n])))
            return n

    def _sync(self, fd: int, call: Callable[[int], None]) -> None:
        # The lock is not held during the sync itself: other threads write
        # meanwhile, as they do on a real disk, and those writes are not
        # covered by this sync (it covers what the file held when it began).
        with self._lock:
            ino = self._fds.get(fd)
            token = None
            if ino is not None and not self._ignored(ino):
                token = self._new_id()
                self._record(Op("syncstart", ino=ino, offset=token))
        self.syncing(fd)
        call(fd)
        if token is not None:
            with self._lock:
                self._record(Op("sync", ino=ino, offset=token))

    def syncing(self, fd: int) -> None:
        """Called between the start and the real sync (tests hold a sync open here)."""

    def fsync(self, fd: int) -> None:
        self._sync(fd, super().fsync)

    def fdatasync(self, fd: int) -> None:
        self._sync(fd, super().fdatasync)

    def ftruncate(self, fd: int, length: int) -> None:
        with self._lock:
            super().ftruncate(fd, length)
            ino = self._fds.get(fd)
            if ino is not None and not self._ignored(ino):
                self._record(Op("truncate", ino=ino, offset=length))

    def rename(self, src: str, dst: str) -> None:
        with self._lock:
            super().rename(src, dst)
            rs, rd = self._rel(src), self._rel(dst)
            if rs is None or rd is None:
                return
            node = self._paths.pop(rs)
            assert node[0] == "f", "directory renames are not modelled"
            ds, ns = self._parent(rs)
            dd, nd = self._parent(rd)
            self._paths[rd] = node
            if ds == dd:
                self._record(Op("rename", dir=ds, name=ns, dst=nd))
            else:  # two independent entry changes, each durable with its own directory
                self._record(Op("unlink", dir=ds, name=ns))
                self._record(Op("link", dir=dd, name=nd, node=node))

    def unlink(self, path: str) -> None:
        with self._lock:
            super().unlink(path)
            rel = self._rel(path)
            if rel is not None:
                self._paths.pop(rel)
                d, name = self._parent(rel)
                self._record(Op("unlink", dir=d, name=name))

    def mkdir(self, path: str, mode: int = 0o700) -> None:
        with self._lock:
            super().mkdir(path, mode)
            rel = self._rel(path)
            if rel is not None:
                d, name = self._parent(rel)
                node = ("d", self._new_id())
                self._paths[rel] = node
                self._record(Op("link", dir=d, name=name, node=node))

    def fsync_dir(self, path: str) -> None:
        with self._lock:
            super().fsync_dir(path)
            rel = self._rel(path)
            if rel is not None:
                self._record(Op("dirsync", dir=self._paths[rel][1]))


# -- crash states ------------------------------------------------------------------------


@attrs.frozen
class CrashState:
    """One on-disk state a power loss could leave.

    ``prefix`` operations of the recording had been carried out; ``acked`` are
    the tokens acknowledged before that; ``files`` maps relative paths to their
    bytes and ``dirs`` lists the directories; ``label`` says which choices made it;
    ``sampled`` that its prefix had more combinations than the cap (some not built).
    """

    prefix: int
    acked: tuple[Any, ...]
    files: dict[str, bytes]
    dirs: tuple[str, ...]
    label: str
    sampled: bool = False

    def digest(self) -> bytes:
        """A hash of the disk contents and of what was acknowledged."""
        h = hashlib.blake2b(digest_size=16)
        for d in self.dirs:
            h.update(b"d" + d.encode() + b"\0")
        for path in sorted(self.files):
            data = self.files[path]
            h.update(b"f" + path.encode() + b"\0" + len(data).to_bytes(8, "little") + data)
        h.update(repr(self.acked).encode())
        return h.digest()


_FRAME = struct.Struct("<II")
_SEGMENT_HEADER = 64


def _cut_points(name: str, op: Op, exhaustive: bool) -> list[int]:
    """Where a torn ``write`` may stop: byte counts strictly between 0 and its length.

    Exhaustive: every byte of the data up to its last non-zero byte, and a few
    in any zero padding after it. Otherwise, for a segment file: each record
    boundary, one byte into a record, the end of its frame header, the middle and
    the last byte of its body; for other files a handful of places.
    """
    data = op.data
    n = len(data)
    nz_end = len(data.rstrip(b"\0"))
    cuts: set[int] = {nz_end, (nz_end + n) // 2, n - 1}
    if exhaustive:
        cuts.update(range(1, nz_end + 1))
    elif name.endswith(".agcx"):
        pos = _SEGMENT_HEADER if op.offset == 0 and data[:4] == b"AGCX" else 0
        cuts.update((1, pos // 2, pos))
        while pos + 8 <= n:
            (body_len, _) = _FRAME.unpack_from(data, pos)
            if body_len == 0:
                break
            end = pos + 8 + body_len
            cuts.update((pos, pos + 1, pos + 4, pos + 8, pos + 8 + body_len // 2, end - 1, end))
            pos = end
    else:
        cuts.update((1, 4, 8, 16, n // 2, nz_end - 1))
    return sorted(c for c in cuts if 0 < c < n)


def _apply_data(buf: bytearray, op: Op, cut: int | None = None) -> None:
    if op.kind == "truncate":
        del buf[op.offset :]
        buf.extend(bytes(op.offset - len(buf)))
        return
    data = op.data if cut is None else op.data[:cut]
    end = op.offset + len(data)
    if len(buf) < op.offset:
        buf.extend(bytes(op.offset - len(buf)))
    buf[op.offset : end] = data


def _apply_entry(entries: dict[str, Node], op: Op) -> None:
    if op.kind == "link":
        entries[op.name] = op.node
    elif op.kind == "unlink":
        entries.pop(op.name, None)
    elif op.kind == "rename" and op.name in entries:
        entries[op.dst] = entries.pop(op.name)


def _total(sizes: list[int]) -> int:
    total = 1
    for s in sizes:
        total *= s
    return total


def _choices(sizes: list[int], cap: int, rng: random.Random) -> list[tuple[int, ...]]:
    """Index tuples over options of the given sizes: all of them, up to ``cap``.

    Over ``cap``, every option of each dimension still appears, with every other
    dimension at its first option and at its last (synced / everything kept),
    and random combinations fill up to ``cap``.
    """
    total = _total(sizes)
    if total <= cap:
        return list(itertools.product(*(range(s) for s in sizes)))
    first = [0] * len(sizes)
    last = [s - 1 for s in sizes]
    picked = set()
    for i, size in enumerate(sizes):
        for option in range(size):
            for base in (first, last):
                picked.add((*base[:i], option, *base[i + 1 :]))
    while len(picked) < cap:
        picked.add(tuple(rng.randrange(s) for s in sizes))
    return sorted(picked)


class _Model:
    """The disk as the recorded operations leave it: volatile and durable parts."""

    def __init__(self, rec: Recording) -> None:
        self.rec = rec
        self.dirs_vol = {d: dict(e) for d, e in rec.initial_dirs.items()}
        self.dirs_dur = {d: dict(e) for d, e in rec.initial_dirs.items()}
        self.dir_pending: dict[int, list[Op]] = {}
        self.data_vol = {i: bytearray(b) for i, b in rec.initial_data.items()}
        self.data_dur = dict(rec.initial_data)
        self.data_pending: dict[int, list[Op]] = {}
        self.data_done: dict[int, int] = {}  # writes+truncates applied, per inode
        self.data_durable: dict[int, int] = {}  # how many of those are durable
        self.sync_marks: dict[int, int] = {}  # sync token -> data_done when it began

    def apply(self, op: Op) -> None:
        if op.kind in ("link", "unlink", "rename"):
            _apply_entry(self.dirs_vol[op.dir], op)
            self.dir_pending.setdefault(op.dir, []).append(op)
            if op.kind == "link":
                kind, ident = op.node
                if kind == "d":
                    self.dirs_vol[ident] = {}
                    self.dirs_dur[ident] = {}
                else:
                    self.data_vol[ident] = bytearray()
                    self.data_dur[ident] = b""
        elif op.kind == "dirsync":
            self.dirs_dur[op.dir] = dict(self.dirs_vol[op.dir])
            self.dir_pending.pop(op.dir, None)
        elif op.kind in ("write", "truncate"):
            _apply_data(self.data_vol[op.ino], op)
            self.data_pending.setdefault(op.ino, []).append(op)
            self.data_done[op.ino] = self.data_done.get(op.ino, 0) + 1
        elif op.kind == "syncstart":
            self.sync_marks[op.offset] = self.data_done.get(op.ino, 0)
        elif op.kind == "sync":
            # Durable: what the file held when this sync began, not the writes since.
            n = self.sync_marks.pop(op.offset) - self.data_durable.get(op.ino, 0)
            if n > 0:
                pending = self.data_pending.get(op.ino, [])
                buf = bytearray(self.data_dur[op.ino])
                for w in pending[:n]:
                    _apply_data(buf, w)
                self.data_dur[op.ino] = bytes(buf)
                self.data_durable[op.ino] = self.data_durable.get(op.ino, 0) + n
                if pending[n:]:
                    self.data_pending[op.ino] = pending[n:]
                else:
                    self.data_pending.pop(op.ino, None)
        else:
            raise AssertionError(f"unknown op {op.kind}")

    def _page_versions(
        self, ino: int, pending: list[Op], exhaustive: bool
    ) -> Iterator[tuple[bytes, str]]:
        if not any(op.kind == "write" for op in pending):
            return
        buf = bytearray(self.data_dur[ino])
        versions = [bytes(buf)]
        for op in pending:
            _apply_data(buf, op)
            versions.append(bytes(buf))
        yield from _page_states(versions, exhaustive, random.Random(ino * 7919 + len(pending)))

    def tree(self, applied: dict[int, int]) -> tuple[dict[str, int], list[str]]:
        """Files (path -> inode) and directories reachable when ``applied[d]`` of
        each directory's pending entry changes persisted."""
        files: dict[str, int] = {}
        dirs: list[str] = []

        def walk(d: int, prefix: str) -> None:
            entries = dict(self.dirs_dur[d])
            for op in self.dir_pending.get(d, [])[: applied.get(d, 0)]:
                _apply_entry(entries, op)
            for name, (kind, ident) in sorted(entries.items()):
                path = f"{prefix}{name}"
                if kind == "d":
                    dirs.append(path)
                    walk(ident, path + "/")
                else:
                    files[path] = ident

        walk(0, "")
        return files, dirs

    def contents(self, ino: int, exhaustive: bool) -> list[tuple[bytes, str]]:
        """Every content the file may have after a power loss, with a label."""
        pending = self.data_pending.get(ino, [])
        buf = bytearray(self.data_dur[ino])
        out = [(bytes(buf), "synced")]
        name = self.rec.names.get(ino, "")
        for j, op in enumerate(pending):
            if op.kind == "write":
                for cut in _cut_points(name, op, exhaustive):
                    torn = bytearray(buf)
                    _apply_data(torn, op, cut)
                    out.append((bytes(torn), f"+{j} writes, torn at {cut}/{len(op.data)}"))
            _apply_data(buf, op)
            out.append((bytes(buf), f"+{j + 1} of {len(pending)} unsynced"))
        out.extend(self._page_versions(ino, pending, exhaustive))
        seen: set[bytes] = set()
        unique = []
        for data, label in out:
            if data not in seen:
                seen.add(data)
                unique.append((data, label))
        return unique


PAGE = 4096  # the unit the page cache writes back


def _page_states(
    versions: list[bytes], exhaustive: bool, rng: random.Random
) -> Iterator[tuple[bytes, str]]:
    """Contents a file may have when each page holds any one of its ``versions``
    (the file after 0, 1, 2, ... of its unsynced writes) and its length is any
    of theirs: pages written back in any order, any subset of one write's pages.

    Exhaustive: every combination up to 4096 of them; otherwise each page's
    each version with the other pages all old or all new, and a few random mixes.
    """
    lengths = sorted(set(len(v) for v in versions))
    n_pages = (max(lengths) + PAGE - 1) // PAGE
    pages: list[list[bytes]] = []
    for p in range(n_pages):
        seen: dict[bytes, None] = {}
        for v in versions:
            seen.setdefault(v[p * PAGE : (p + 1) * PAGE].ljust(PAGE, b"\0"))
        pages.append(list(seen))
    varying = [p for p in range(n_pages) if len(pages[p]) > 1]
    sizes = [len(lengths)] + [len(pages[p]) for p in varying]
    cap = 4096 if exhaustive else 12
    if not exhaustive:
        # Besides the extremes _choices always keeps, a few random mixes.
        cap = min(_total(sizes), max(cap, 2 * sum(sizes)))
    for choice in _choices(sizes, cap, rng):
        length = lengths[choice[0]]
        picked = [pages[p][0] for p in range(n_pages)]
        for p, c in zip(varying, choice[1:], strict=True):
            picked[p] = pages[p][c]
        label = ", ".join(f"page {p} v{c}" for p, c in zip(varying, choice[1:], strict=True))
        yield b"".join(picked)[:length], f"pages: {label or 'none vary'}, length {length}"


def crash_states(
    rec: Recording,
    *,
    exhaustive: bool = False,
    power_loss: bool = True,
    cap: int = 400,
    seed: int = 0,
) -> Iterator[CrashState]:
    """Yield the crash states of every prefix of ``rec.ops`` (duplicates included).

    At each prefix, every combination of how many pending entry changes each
    directory kept and which content each file with unsynced writes kept is one
    state; over ``cap`` combinations, ``cap`` of them are sampled. Without
    ``power_loss`` (a process crash: the kernel keeps everything) there is one
    state per prefix, with every operation done so far in it.
    """
    model = _Model(rec)
    rng = random.Random(seed)
    acks = rec.acks
    for k in range(len(rec.ops) + 1):
        acked = tuple(tok for at, tok in acks if at <= k)
        if not power_loss:
            every = {d: len(p) for d, p in model.dir_pending.items()}
            files, dirs = model.tree(every)
            content = {path: bytes(model.data_vol[ino]) for path, ino in files.items()}
            yield CrashState(k, acked, content, tuple(dirs), "process crash")
            if k < len(rec.ops):
                model.apply(rec.ops[k])
            continue
        pend_dirs = sorted(model.dir_pending)
        dir_sizes = [len(model.dir_pending[d]) + 1 for d in pend_dirs]
        sampled = _total(dir_sizes) > cap
        for dir_choice in _choices(dir_sizes, cap, rng):
            applied = dict(zip(pend_dirs, dir_choice, strict=True))
            files, dirs = model.tree(applied)
            varying = sorted(
                (path, ino) for path, ino in files.items() if model.data_pending.get(ino)
            )
            options = [model.contents(ino, exhaustive) for _, ino in varying]
            fixed = {path: model.data_dur[ino] for path, ino in files.items()}
            sizes = [len(o) for o in options]
            capped = sampled or _total(sizes) > cap
            for data_choice in _choices(sizes, cap, rng):
                content = dict(fixed)
                labels = [f"dirs {applied}"] if applied else []
                for (path, _), opts, c in zip(varying, options, data_choice, strict=True):
                    content[path] = opts[c][0]
                    labels.append(f"{path}: {opts[c][1]}")
                yield CrashState(k, acked, content, tuple(dirs), "; ".join(labels), capped)
        if k < len(rec.ops):
            model.apply(rec.ops[k])


def materialize(state: CrashState, dest: Path) -> None:
    """Write ``state`` under ``dest``: directories 0700, files 0600."""
    dest.mkdir(mode=0o700, parents=True)
    for d in state.dirs:
        (dest / d).mkdir(mode=0o700)
    for path, data in state.files.items():
        fd = os.open(dest / path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


@attrs.define
class CrashReport:
    """Figures of one enumeration."""

    ops: int = 0
    acks: int = 0
    generated: int = 0
    checked: int = 0  # distinct states (disk contents + acknowledged set)
    sampled_prefixes: int = 0  # prefixes with more combinations than the cap

    def as_dict(self) -> dict[str, int]:
        return attrs.asdict(self)


def enumerate_crash_states(
    workload: Workload,
    check: Callable[[Path, CrashState], None],
    scratch: Path,
    *,
    setup: Callable[[Path], None] | None = None,
    exhaustive: bool = False,
    power_loss: bool = True,
    cap: int = 400,
    recorder: type[RecordingFS] = RecordingFS,
) -> CrashReport:
    """Record ``workload``, then ``check`` every distinct crash state of it.

    ``setup`` prepares the initial disk state under the base directory (taken
    as durable) before recording starts; ``recorder`` is the recording file
    system (a subclass may hold a sync open). The workload and the checks see the
    base directory; a failing check is re-raised with the state's description,
    and the state is left on disk under ``scratch`` for inspection.
    """
    live = scratch / "live"
    live.mkdir(parents=True)
    if setup is not None:
        setup(live)
    fs = recorder(live)
    workload(live, fs)
    rec = fs.recording
    report = CrashReport(ops=len(rec.ops), acks=len(rec.acks))
    seen: set[bytes] = set()
    sampled: set[int] = set()
    states = scratch / "states"
    for state in crash_states(rec, exhaustive=exhaustive, power_loss=power_loss, cap=cap):
        report.generated += 1
        if state.sampled and state.prefix not in sampled:
            sampled.add(state.prefix)
            report.sampled_prefixes += 1
        key = state.digest()
        if key in seen:
            continue
        seen.add(key)
        report.checked += 1
        where = states / f"s{report.checked}"
        materialize(state, where)
        try:
            check(where, state)
        except BaseException as exc:
            raise AssertionError(
                f"crash state {report.checked} (after {state.prefix} of {len(rec.ops)} ops, "
                f"{len(state.acked)} acknowledged; {state.label or 'all synced'}) "
                f"failed its check, left at {where}: {exc!r}"
            ) from exc
        shutil.rmtree(where)
    return report


# -- fault injection ---------------------------------------------------------------------


class FaultFS(HarnessFS):
    """Fails the ``fail_at``-th file operation (counting from 1) with ``err``.

    ``persistent``: that operation and every later one fail. ``only`` limits
    the operations counted (and failed) to those named (``"pwrite"``,
    ``"fdatasync"``, ...). A failing ``pwrite`` of ``ENOSPC`` first writes half
    its data (a short write, as a full disk gives); a failing ``close`` still
    releases the descriptor, as Linux does.
    """

    def __init__(
        self,
        fail_at: int | None,
        err: int = errno_mod.EIO,
        *,
        persistent: bool = False,
        only: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.err = err
        self.persistent = persistent
        self.only = set(only)
        self.count = 0
        self.injected: list[str] = []
        self._lock = threading.Lock()

    def _gate(self, op: str) -> bool:
        """Count one operation; say whether it must fail."""
        if self.only and op not in self.only:
            return False
        with self._lock:
            self.count += 1
            n = self.count
            fail = self.fail_at is not None and (
                n == self.fail_at or (self.persistent and n > self.fail_at)
            )
            if fail:
                self.injected.append(f"{op} #{n}")
            return fail

    def _error(self, op: str) -> OSError:
        return OSError(self.err, f"{os.strerror(self.err)} (injected into {op})")

    def open(self, path: str, flags: int, mode: int = 0o600) -> int:
        if self._gate("open"):
            raise self._error("open")
        return super().open(path, flags, mode)

    def close(self, fd: int) -> None:
        fail = self._gate("close")
        super().close(fd)
        if fail:
            raise self._error("close")

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        if self._gate("pwrite"):
            if self.err == errno_mod.ENOSPC and len(data) > 1:
                super().pwrite(fd, data[: len(data) // 2], offset)
            raise self._error("pwrite")
        return super().pwrite(fd, data, offset)

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        if self._gate("pread"):
            raise self._error("pread")
        return super().pread(fd, size, offset)

    def fsync(self, fd: int) -> None:
        if self._gate("fsync"):
            raise self._error("fsync")
        super().fsync(fd)

    def fdatasync(self, fd: int) -> None:
        if self._gate("fdatasync"):
            raise self._error("fdatasync")
        super().fdatasync(fd)

    def ftruncate(self, fd: int, length: int) -> None:
        if self._gate("ftruncate"):
            raise self._error("ftruncate")
        super().ftruncate(fd, length)

    def fstat(self, fd: int) -> os.stat_result:
        if self._gate("fstat"):
            raise self._error("fstat")
        return super().fstat(fd)

    def rename(self, src: str, dst: str) -> None:
        if self._gate("rename"):
            raise self._error("rename")
        super().rename(src, dst)

    def unlink(self, path: str) -> None:
        if self._gate("unlink"):
            raise self._error("unlink")
        super().unlink(path)

    def mkdir(self, path: str, mode: int = 0o700) -> None:
        if self._gate("mkdir"):
            raise self._error("mkdir")
        super().mkdir(path, mode)

    def fsync_dir(self, path: str) -> None:
        if self._gate("fsync_dir"):
            raise self._error("fsync_dir")
        super().fsync_dir(path)

    def listdir(self, path: str) -> list[str]:
        if self._gate("listdir"):
            raise self._error("listdir")
        return super().listdir(path)

    def stat(self, path: str) -> os.stat_result:
        if self._gate("stat"):
            raise self._error("stat")
        return super().stat(path)

    def is_regular(self, path: str) -> bool:
        if self._gate("is_regular"):
            raise self._error("stat")
        return super().is_regular(path)


@attrs.define
class FaultReport:
    """Figures of one fault loop."""

    runs: int = 0
    injected: int = 0  # runs in which the fault was met
    errors_seen: dict[str, int] = attrs.Factory(dict)  # error class name -> count

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def run_fault_loop(
    workload: Workload,
    check: Callable[[Path, FaultFS, BaseException | None], None],
    scratch: Path,
    *,
    err: int,
    persistent: bool,
    limit: int = 100_000,
) -> FaultReport:
    """Run ``workload`` with the N-th operation failing, N = 1, 2, ..., until it completes.

    The workload must let only :class:`journal.JournalError` escape (anything
    else fails the loop). After each run ``check(root, fs, error)`` looks at
    what is on disk, with the error the workload stopped on (or ``None``).
    """
    report = FaultReport()
    for n in range(1, limit):
        root = scratch / f"n{n}"
        fs = FaultFS(n, err, persistent=persistent)
        error: BaseException | None = None
        try:
            workload(root, fs)
        except JournalError as exc:
            error = exc
        except BaseException as exc:
            raise AssertionError(
                f"fault {fs.injected} (N={n}, {errno_mod.errorcode[err]}, "
                f"{'persistent' if persistent else 'one-shot'}) let a {type(exc).__name__} "
                f"escape: {exc!r}"
            ) from exc
        report.runs += 1
        if error is not None:
            name = type(error).__name__
            report.errors_seen[name] = report.errors_seen.get(name, 0) + 1
        try:
            check(root, fs, error)
        except BaseException as exc:
            raise AssertionError(
                f"after fault {fs.injected} (N={n}, {errno_mod.errorcode[err]}, "
                f"{'persistent' if persistent else 'one-shot'}; the workload saw {error!r}) "
                f"the check failed: {exc!r}"
            ) from exc
        shutil.rmtree(root, ignore_errors=True)
        if not fs.injected:
            return report  # the workload ran to its end before operation N
        report.injected += 1
    raise AssertionError(f"the workload did not complete within {limit} operations")


# -- journal workloads and checks --------------------------------------------------------


@attrs.define
class ExpectedLog:
    """Batches of events a journal workload appends, each recognisable on its own.

    Event ``k`` of batch ``b`` (of ``n``) has the payload ``{"b": b, "k": k,
    "n": n, "x": filler}``, so a check can tell a whole batch from part of one.
    """

    batches: list[list[dict[str, Any]]] = attrs.Factory(list)

    @classmethod
    def generate(cls, sizes: Sequence[int], seed: int = 0, big: int = 600) -> ExpectedLog:
        """Batches of the given sizes with fillers up to ``big`` bytes, some compressible."""
        rng = random.Random(seed)
        out = cls()
        for b, n in enumerate(sizes):
            batch = []
            for k in range(n):
                size = rng.choice([0, 3, 40, 120, 300, big])
                filler = rng.randbytes(size) if rng.random() < 0.5 else bytes([65 + b % 26]) * size
                batch.append({"b": b, "k": k, "n": n, "x": filler})
            out.batches.append(batch)
        return out

    def entries(self, b: int) -> list[Entry]:
        """The entries of batch ``b``."""
        return [Entry(7, p) for p in self.batches[b]]

    def check(
        self, payloads: Sequence[Any], acked: Sequence[Any], *, ordered: bool = True
    ) -> list[int]:
        """Check the payloads read back: whole batches, each once, every acked one there.

        Returns the batch numbers found, in order.
        """
        found: list[int] = []
        i = 0
        while i < len(payloads):
            p = payloads[i]
            assert isinstance(p, dict) and "b" in p, f"record {i + 1} is not ours: {p!r}"
            b = p["b"]
            assert 0 <= b < len(self.batches), f"record {i + 1}: unknown batch {b}"
            batch = self.batches[b]
            got = list(payloads[i : i + len(batch)])
            assert got == batch, (
                f"batch {b} at record {i + 1} is not whole and intact: "
                f"{[(q.get('b'), q.get('k')) if isinstance(q, dict) else q for q in got]}"
            )
            assert b not in found, f"batch {b} appears twice"
            found.append(b)
            i += len(batch)
        if ordered:
            assert found == list(range(len(found))), f"batches out of order: {found}"
        missing = set(acked) - set(found)
        assert not missing, f"acknowledged batches lost: {sorted(missing)} (found {found})"
        return found


def read_all(root: Path, **opts: Any) -> tuple[list[Any], int]:
    """Open the journal read-only: every payload decoded, and the last seq.

    Also checks what every full scan must satisfy: seqs 1, 2, 3, ... and
    timestamps that never decrease.
    """
    with Journal.open(root, readonly=True, **opts) as j:
        recs = list(j.scan())
        seqs = [r.seq for r in recs]
        assert seqs == list(range(1, len(recs) + 1)), f"seqs not contiguous: {seqs}"
        assert all(a.ts_ns <= b.ts_ns for a, b in itertools.pairwise(recs))
        assert j.statistics().records == len(recs)
        return [j.decode(r) for r in recs], j.last_seq


def check_journal_recovers(
    root: Path, expected: ExpectedLog, acked: Sequence[Any], *, ordered: bool = True, **opts: Any
) -> list[int]:
    """The full check of a journal left by a crash or a fault.

    A reader sees whole batches only, each acknowledged one included; a writer
    opening it (which recovers the tail) sees the same; it can append; a fresh
    reader then sees everything plus the new event, all decodable.
    """
    if not (root / "MANIFEST").exists():
        assert not acked, f"no journal on disk, yet {len(acked)} batches were acknowledged"
        before: list[Any] = []
    else:
        before, _ = read_all(root, **opts)
    found = expected.check(before, acked, ordered=ordered)
    with Journal.open(root, **opts) as j:
        again = [j.decode(r) for r in j.scan()]
        assert again == before, "a writer's recovery changed what a reader saw"
        # A writer's open cuts a torn tail: nothing but preallocated zeros is
        # left after the last whole record (the cut bytes go to quarantine/).
        active = j._segs[-1]
        rest = os.pread(active.fd, 1 << 30, active.scanned_to)
        assert not rest.rstrip(b"\0"), f"{len(rest)} bytes after the last record were not cut"
        seq = j.append(1, "after the crash")
        assert seq == len(before) + 1
    after, last = read_all(root, **opts)
    assert after == [*before, "after the crash"] and last == seq
    return found


# -- figures -----------------------------------------------------------------------------


def report_figures(name: str, figures: dict[str, Any]) -> None:
    """Print the figures of a run; also append them to ``$AGCX_FIGURES`` (JSON lines)."""
    line = json.dumps({"test": name, **figures}, sort_keys=True)
    print(line)
    path = os.environ.get("AGCX_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
