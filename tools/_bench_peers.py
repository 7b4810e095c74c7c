"""Peer stores that ``agcx bench`` measures agcx against.

Each peer is implemented the way its most careful users would, so that a ratio
agcx/peer means something:

* :class:`OldStore` - the store agcx replaces: one zstd(msgpack) file per session,
  rewritten whole on each save, plus a whole-file index; and its durable variant.
* :class:`SQLitePeer` - WAL mode, a row per session and a row per message, only new
  messages inserted, one transaction per save; ``synchronous=FULL`` or ``NORMAL``.
* :class:`JsonlPeer` - Codex-CLI style append-only ``<id>.jsonl`` per session,
  only new messages appended per save; with or without an fsync per save.

All peers satisfy :class:`Peer`.  Every method may be called from several threads
at once (the "8 concurrent writers" figure calls ``set_tag`` on one instance from
8 threads, each thread on its own sessions); the concurrency a peer actually gets
is its own (SQLite serialises writers, the old store serialises index rewrites,
JSONL appends to distinct files in parallel).

Semantics shared by all peers, so the driver and tests can treat them alike:
``SaveOp.tags`` are stored when a session is first saved; ``set_tag`` adds a tag
(no duplicates) without changing ``updated``; ``list_sessions`` is most recently
updated first (ties by id); ``load``/``set_tag`` of an unknown id raise
``KeyError``; ``delete`` of an unknown id is a no-op.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import struct
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Literal, Protocol

import attrs
import msgpack
import zstandard

from tools._bench_workload import Message, SaveOp

__all__ = [
    "JsonlPeer",
    "OldStore",
    "Peer",
    "SQLitePeer",
    "SessionInfo",
    "all_peers",
    "dir_size",
    "fsync_dir",
]


@attrs.frozen
class SessionInfo:
    """One row of a session listing (what a session picker shows)."""

    session_id: str
    title: str
    updated: float
    message_count: int
    tags: tuple[str, ...]


class Peer(Protocol):
    """What the bench driver needs from a store (agcx's adapter included).

    Lifecycle: ``open(root)`` (creates or reopens the store in ``root``; the
    driver times ``open`` + ``list_sessions`` after a reopen), any number of
    operations, ``close()``.  ``size_on_disk()`` also works after ``close()``.
    """

    @property
    def name(self) -> str:
        """Short stable label, e.g. ``"sqlite-full"``."""
        ...

    @property
    def durable(self) -> bool:
        """True if an acknowledged save/set_tag/delete survives power loss."""
        ...

    def open(self, root: Path) -> None:
        """Create or reopen the store under ``root`` (created if missing)."""
        ...

    def save(self, op: SaveOp) -> None:
        """Persist the session state of ``op`` (new messages are ``op.new_messages``)."""
        ...

    def load(self, session_id: str) -> list[Message]:
        """Decode and return all messages of a session, in order."""
        ...

    def list_sessions(self) -> list[SessionInfo]:
        """All sessions, most recently updated first."""
        ...

    def delete(self, session_id: str) -> None:
        """Remove a session and its messages."""
        ...

    def set_tag(self, session_id: str, tag: str) -> None:
        """Add ``tag`` to a session: a tiny event, durable in durable variants."""
        ...

    def close(self) -> None:
        """Release files and connections (state must survive a reopen)."""
        ...

    def size_on_disk(self) -> int:
        """Sum of the sizes of all files under ``root``."""
        ...


def all_peers() -> list[Peer]:
    """Fresh instances of every peer variant, non-durable before durable."""
    return [
        OldStore(durable=False),
        OldStore(durable=True),
        SQLitePeer("NORMAL"),
        SQLitePeer("FULL"),
        JsonlPeer(fsync=False),
        JsonlPeer(fsync=True),
    ]


def dir_size(root: Path) -> int:
    """Sum of ``st_size`` of the regular files under ``root`` (0 if missing)."""
    total = 0
    stack = [str(root)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except FileNotFoundError:
            continue
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                stack.append(e.path)
            elif e.is_file(follow_symlinks=False):
                # An SQLite -shm/-wal may vanish between scandir and stat.
                with contextlib.suppress(FileNotFoundError):
                    total += e.stat(follow_symlinks=False).st_size
    return total


def fsync_dir(path: Path) -> None:
    """fsync a directory so that renames/creations/unlinks in it are durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# Compact JSON, as stores that care about size write it; one shared encoder
# avoids json.dumps building a new encoder for non-default options on every call.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


def _dumps(obj: Any) -> bytes:
    return _JSON.encode(obj).encode("utf-8")


def _require_root(root: Path | None) -> Path:
    if root is None:
        raise RuntimeError("peer is not open")
    return root


# ----------------------------------------------------------------------------
# Old store
# ----------------------------------------------------------------------------

_OLD_HEADER = struct.Struct("<4sIQ")  # magic, version, length of the zstd payload
_OLD_MAGIC = b"AGCX"
_OLD_VERSION = 2


class OldStore:
    """The store agcx replaces: every save rewrites the session's whole file.

    ``sessions/<id>.agcx`` = ``b"AGCX"`` + u32 version 2 + u64 payload length (all
    little-endian) + zstd level 3 of msgpack of the whole session (metadata and
    all messages).  Like the original it also keeps ``sessions/sessions.idx``, a
    msgpack map ``id -> {title, created, updated, message_count, tags}``, rewritten
    whole on every save, tag change and delete; ``open`` reads only that index.

    Non-durable (the original): both files are rewritten in place (``open('wb')``,
    write), no fsync.  Durable: each file is written to a temp file, fsynced and
    renamed over the old one; one directory fsync after the index rename makes
    both renames durable (both files live in one directory for that reason), so
    a save costs 3 fsyncs.

    ``set_tag`` reads, decodes, re-encodes and rewrites the session file: the
    tags live in it and the old store only ever wrote sessions whole.
    """

    def __init__(self, durable: bool = False) -> None:
        self.durable = durable
        self.name = "old-store-durable" if durable else "old-store"
        self._root: Path | None = None
        self._dir: Path | None = None
        self._index: dict[str, dict[str, Any]] = {}
        self._index_lock = threading.Lock()
        self._session_locks: dict[str, threading.Lock] = {}
        # zstd contexts are not thread-safe: one pair per thread.
        self._local = threading.local()

    def open(self, root: Path) -> None:
        """Create or reopen; loads the index file."""
        self._root = root
        self._dir = root / "sessions"
        self._dir.mkdir(parents=True, exist_ok=True)
        try:
            raw = (self._dir / "sessions.idx").read_bytes()
        except FileNotFoundError:
            self._index = {}
        else:
            self._index = msgpack.unpackb(raw, raw=False)

    def close(self) -> None:
        """Forget in-memory state (files are already complete after each call)."""
        self._index = {}
        self._session_locks.clear()
        self._dir = None

    def size_on_disk(self) -> int:
        """Sum of file sizes under root."""
        return dir_size(_require_root(self._root))

    # -- encoding ----------------------------------------------------------

    def _encode(self, doc: dict[str, Any]) -> bytes:
        cctx = getattr(self._local, "cctx", None)
        if cctx is None:
            cctx = self._local.cctx = zstandard.ZstdCompressor(level=3)
        payload: bytes = cctx.compress(msgpack.packb(doc, use_bin_type=True))
        return _OLD_HEADER.pack(_OLD_MAGIC, _OLD_VERSION, len(payload)) + payload

    def _decode(self, blob: bytes) -> dict[str, Any]:
        magic, version, length = _OLD_HEADER.unpack_from(blob)
        if magic != _OLD_MAGIC or version != _OLD_VERSION:
            raise ValueError("not an old-store session file")
        if len(blob) - _OLD_HEADER.size != length:
            raise ValueError("truncated old-store session file")
        dctx = getattr(self._local, "dctx", None)
        if dctx is None:
            dctx = self._local.dctx = zstandard.ZstdDecompressor()
        doc: dict[str, Any] = msgpack.unpackb(dctx.decompress(blob[_OLD_HEADER.size :]), raw=False)
        return doc

    # -- file writing --------------------------------------------------------

    def _write(self, path: Path, data: bytes) -> None:
        if not self.durable:
            with open(path, "wb") as f:
                f.write(data)
            return
        # Per-thread temp name: concurrent writers must not share a temp file.
        tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)

    def _write_index_locked(self) -> None:
        d = self._dir
        assert d is not None
        self._write(d / "sessions.idx", msgpack.packb(self._index, use_bin_type=True))
        if self.durable:
            fsync_dir(d)  # covers this rename and the session file's before it

    def _lock_for(self, session_id: str) -> threading.Lock:
        lock = self._session_locks.get(session_id)
        if lock is None:
            lock = self._session_locks.setdefault(session_id, threading.Lock())
        return lock

    def _path(self, session_id: str) -> Path:
        return _require_root(self._dir) / f"{session_id}.agcx"

    # -- operations ------------------------------------------------------------

    def save(self, op: SaveOp) -> None:
        """Rewrite the session file and the index."""
        with self._lock_for(op.session_id):
            prev = self._index.get(op.session_id)
            created = prev["created"] if prev else op.ts
            tags = list(prev["tags"]) if prev else list(op.tags)
            doc = {
                "id": op.session_id,
                "title": op.title,
                "created": created,
                "updated": op.ts,
                "tags": tags,
                "messages": op.messages,
            }
            self._write(self._path(op.session_id), self._encode(doc))
            entry = {
                "title": op.title,
                "created": created,
                "updated": op.ts,
                "message_count": len(op.messages),
                "tags": tags,
            }
            with self._index_lock:
                self._index[op.session_id] = entry
                self._write_index_locked()

    def load(self, session_id: str) -> list[Message]:
        """Read, decompress and unpack the whole session file."""
        try:
            blob = self._path(session_id).read_bytes()
        except FileNotFoundError:
            raise KeyError(session_id) from None
        messages: list[Message] = self._decode(blob)["messages"]
        return messages

    def list_sessions(self) -> list[SessionInfo]:
        """Sort the in-memory copy of the index."""
        with self._index_lock:
            items = list(self._index.items())
        infos = [
            SessionInfo(sid, e["title"], e["updated"], e["message_count"], tuple(e["tags"]))
            for sid, e in items
        ]
        infos.sort(key=lambda i: (-i.updated, i.session_id))
        return infos

    def delete(self, session_id: str) -> None:
        """Unlink the session file and rewrite the index."""
        with self._lock_for(session_id):
            try:
                self._path(session_id).unlink()
            except FileNotFoundError:
                return
            with self._index_lock:
                self._index.pop(session_id, None)
                self._write_index_locked()

    def set_tag(self, session_id: str, tag: str) -> None:
        """Read-modify-rewrite the session file, then the index."""
        with self._lock_for(session_id):
            path = self._path(session_id)
            try:
                doc = self._decode(path.read_bytes())
            except FileNotFoundError:
                raise KeyError(session_id) from None
            if tag in doc["tags"]:
                return
            doc["tags"].append(tag)
            self._write(path, self._encode(doc))
            with self._index_lock:
                self._index[session_id]["tags"] = list(doc["tags"])
                self._write_index_locked()


# ----------------------------------------------------------------------------
# SQLite
# ----------------------------------------------------------------------------

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions(
    sid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    message_count INTEGER NOT NULL,
    tags TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_updated ON sessions(updated DESC);
CREATE TABLE IF NOT EXISTS messages(
    sid INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY(sid, idx)
);
"""

_SQL_UPSERT = """
INSERT INTO sessions(id, title, created, updated, message_count, tags)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT(id) DO UPDATE SET
    title = excluded.title,
    updated = excluded.updated,
    message_count = excluded.message_count
RETURNING sid
"""
_SQL_INSERT_MSG = "INSERT INTO messages(sid, idx, data) VALUES (?, ?, ?)"
_SQL_LOAD = """
SELECT m.data FROM messages AS m JOIN sessions AS s ON m.sid = s.sid
WHERE s.id = ? ORDER BY m.idx
"""
_SQL_LIST = """
SELECT id, title, updated, message_count, tags FROM sessions
ORDER BY updated DESC, id
"""
_SQL_SET_TAG = """
UPDATE sessions SET tags = json_insert(tags, '$[#]', ?1)
WHERE id = ?2 AND NOT EXISTS (SELECT 1 FROM json_each(sessions.tags) WHERE value = ?1)
"""


class SQLitePeer:
    """SQLite in WAL mode: a row per session, a row per message.

    A save is one ``BEGIN IMMEDIATE`` transaction: upsert the session row and
    insert only the new messages.  ``synchronous=FULL`` fsyncs the WAL on every
    commit (durable); ``NORMAL`` only at checkpoints (in WAL mode a commit may be
    lost on power failure, but the database stays consistent).

    Choices a careful user would make, and why:

    * messages are JSON text: what applications that keep chat histories in
      SQLite store (readable, queryable with the json1 functions); Python's C JSON
      codec is about as fast as msgpack here, and SQLite has no compression, so a
      blob format would not change the picture much.  JSON is encoded before
      ``BEGIN`` so the write lock is held only for the inserts.
    * an integer surrogate key ``sid``, so the messages' primary-key index holds
      8-byte integers rather than 36-char uuids; ``messages`` keeps its rowid
      because SQLite advises WITHOUT ROWID only for rows well under ~1/20 of a
      page, and tool outputs are up to 8 KiB.
    * ``BEGIN IMMEDIATE`` takes the write lock up front so concurrent writers
      wait in the busy handler (busy_timeout) instead of failing on a lock
      upgrade; one connection per thread (sqlite3 connections are not shared);
      the sqlite3 module's statement cache reuses the prepared statements.
    """

    def __init__(self, synchronous: Literal["FULL", "NORMAL"] = "FULL") -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(synchronous)
        self.synchronous = synchronous
        self.durable = synchronous == "FULL"
        self.name = f"sqlite-{synchronous.lower()}"
        self._root: Path | None = None
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._generation = 0  # bumped by close() so stale thread-locals reconnect

    def _connect(self) -> sqlite3.Connection:
        root = _require_root(self._root)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves.  check_same_thread
        # is off only so close() may close other threads' connections at the end.
        conn = sqlite3.connect(
            root / "bench.sqlite3",
            isolation_level=None,
            check_same_thread=False,
            cached_statements=64,
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA busy_timeout=60000")
        with self._conns_lock:
            self._conns.append(conn)
        self._local.conn = conn
        self._local.generation = self._generation
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or self._local.generation != self._generation:
            conn = self._connect()
        return conn

    def open(self, root: Path) -> None:
        """Connect (in the calling thread) and create the schema if missing."""
        root.mkdir(parents=True, exist_ok=True)
        self._root = root
        conn = self._conn()
        conn.executescript(_SQLITE_SCHEMA)

    def close(self) -> None:
        """Close every thread's connection (the last close checkpoints the WAL)."""
        with self._conns_lock:
            conns, self._conns = self._conns, []
            self._generation += 1
        for conn in conns:
            conn.close()
        self._local = threading.local()

    def size_on_disk(self) -> int:
        """Database + ``-wal`` + ``-shm`` file sizes."""
        return dir_size(_require_root(self._root))

    def save(self, op: SaveOp) -> None:
        """One transaction: upsert the session row, insert the new messages."""
        conn = self._conn()
        rows = [_JSON.encode(m) for m in op.new_messages]
        tags = _JSON.encode(list(op.tags))
        conn.execute("BEGIN IMMEDIATE")
        try:
            (sid,) = conn.execute(
                _SQL_UPSERT, (op.session_id, op.title, op.ts, op.ts, len(op.messages), tags)
            ).fetchone()
            conn.executemany(
                _SQL_INSERT_MSG, [(sid, i, d) for i, d in enumerate(rows, op.new_from)]
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def load(self, session_id: str) -> list[Message]:
        """SELECT the session's messages in order and decode them."""
        rows = self._conn().execute(_SQL_LOAD, (session_id,)).fetchall()
        if not rows:
            raise KeyError(session_id)
        return [json.loads(d) for (d,) in rows]

    def list_sessions(self) -> list[SessionInfo]:
        """SELECT all session rows ordered by the ``updated`` index."""
        return [
            SessionInfo(sid, title, updated, count, tuple(json.loads(tags)))
            for sid, title, updated, count, tags in self._conn().execute(_SQL_LIST)
        ]

    def delete(self, session_id: str) -> None:
        """Delete the session row and its messages in one transaction."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT sid FROM sessions WHERE id = ?", (session_id,)).fetchone()
            if row is not None:
                conn.execute("DELETE FROM messages WHERE sid = ?", row)
                conn.execute("DELETE FROM sessions WHERE sid = ?", row)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def set_tag(self, session_id: str, tag: str) -> None:
        """One UPDATE in its own IMMEDIATE transaction."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            cur = conn.execute(_SQL_SET_TAG, (tag, session_id))
            if (
                cur.rowcount == 0
                and conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone()
                is None
            ):
                raise KeyError(session_id)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


# ----------------------------------------------------------------------------
# JSONL
# ----------------------------------------------------------------------------

_META_TYPE = "session_meta"


@attrs.define
class _Handle:
    """Per-session lock and (possibly closed, -1) append descriptor."""

    lock: threading.Lock = attrs.field(factory=threading.Lock)
    fd: int = -1


class JsonlPeer:
    """Codex-CLI style: ``sessions/<id>.jsonl``, appended to, never rewritten.

    A save appends, in one ``write``, one compact JSON line per new message and
    then a small ``{"type": "session_meta", ...}`` line (id, title, created,
    updated, message_count, tags); ``set_tag`` appends just a new meta line.  So
    the *last line of every file is its current metadata*, which is how listing
    stays fast without an index: ``open`` scans the directory and reads only the
    tail of each file (Codex also lists by scanning session files; reading the
    tail instead of the head gives ``updated`` and ``message_count`` too).  No
    separate index means no second file to keep consistent or fsync.

    Append descriptors stay open per session (an LRU of ``max_open``), as an agent
    keeps its rollout file open.  The durable variant fsyncs the file after each
    save/set_tag, plus the directory when a file is created or deleted.
    ``load`` parses every line; a torn last line (crash mid-append) is ignored.
    """

    def __init__(self, fsync: bool = False, max_open: int = 64) -> None:
        self.fsync = fsync
        self.durable = fsync
        self.name = "jsonl-fsync" if fsync else "jsonl"
        self._max_open = max_open
        self._root: Path | None = None
        self._dir: Path | None = None
        self._lock = threading.Lock()  # guards the dicts below; never held while blocking
        self._handles: dict[str, _Handle] = {}
        self._open_lru: OrderedDict[str, None] = OrderedDict()
        self._meta: dict[str, dict[str, Any]] = {}

    def open(self, root: Path) -> None:
        """Scan the session files and read each one's last (meta) line."""
        self._root = root
        self._dir = root / "sessions"
        self._dir.mkdir(parents=True, exist_ok=True)
        meta: dict[str, dict[str, Any]] = {}
        with os.scandir(self._dir) as it:
            for e in it:
                if e.name.endswith(".jsonl"):
                    m = _read_last_meta(Path(e.path))
                    if m is not None:
                        meta[m["id"]] = m
        with self._lock:
            self._meta = meta

    def close(self) -> None:
        """Close every open append descriptor."""
        with self._lock:
            handles, self._handles = self._handles, {}
            self._open_lru.clear()
            self._meta = {}
        for h in handles.values():
            with h.lock:
                if h.fd >= 0:
                    os.close(h.fd)
                    h.fd = -1

    def size_on_disk(self) -> int:
        """Sum of file sizes under root."""
        return dir_size(_require_root(self._root))

    def _path(self, session_id: str) -> Path:
        return _require_root(self._dir) / f"{session_id}.jsonl"

    def _handle(self, session_id: str) -> _Handle:
        with self._lock:
            h = self._handles.get(session_id)
            if h is None:
                h = self._handles[session_id] = _Handle()
            return h

    def _append_locked(self, session_id: str, h: _Handle, data: bytes) -> None:
        """Append ``data`` (caller holds ``h.lock``), fsync in the durable variant."""
        created = False
        if h.fd < 0:
            path = self._path(session_id)
            try:
                h.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            except FileNotFoundError:
                h.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
                created = True
            self._note_open(session_id)
        else:
            with self._lock:
                if session_id in self._open_lru:
                    self._open_lru.move_to_end(session_id)
        _write_all(h.fd, data)
        if self.fsync:
            os.fsync(h.fd)
            if created:
                fsync_dir(_require_root(self._dir))

    def _note_open(self, session_id: str) -> None:
        with self._lock:
            self._open_lru[session_id] = None
            if len(self._open_lru) <= self._max_open:
                return
            # Evict least recently used descriptors whose session is idle; a busy
            # one is skipped rather than waited for (no lock-order deadlock).
            for sid in list(self._open_lru):
                if len(self._open_lru) <= self._max_open:
                    break
                if sid == session_id:
                    continue
                other = self._handles.get(sid)
                if other is None or not other.lock.acquire(blocking=False):
                    continue
                try:
                    if other.fd >= 0:
                        os.close(other.fd)
                        other.fd = -1
                finally:
                    other.lock.release()
                del self._open_lru[sid]

    def save(self, op: SaveOp) -> None:
        """Append the new messages and a meta line in one write."""
        lines = [_dumps(m) for m in op.new_messages]
        h = self._handle(op.session_id)
        with h.lock:
            prev = self._meta.get(op.session_id)
            meta = {
                "type": _META_TYPE,
                "id": op.session_id,
                "title": op.title,
                "created": prev["created"] if prev else op.ts,
                "updated": op.ts,
                "message_count": len(op.messages),
                "tags": list(prev["tags"]) if prev else list(op.tags),
            }
            lines.append(_dumps(meta))
            lines.append(b"")
            self._append_locked(op.session_id, h, b"\n".join(lines))
            with self._lock:
                self._meta[op.session_id] = meta

    def load(self, session_id: str) -> list[Message]:
        """Read the file and decode every message line."""
        try:
            data = self._path(session_id).read_bytes()
        except FileNotFoundError:
            raise KeyError(session_id) from None
        if not data.endswith(b"\n"):  # torn final append: ignore the partial line
            data = data[: data.rfind(b"\n") + 1]
        # One json.loads over the whole file (lines joined into an array) is far
        # cheaper than one call per line.
        items: list[dict[str, Any]] = json.loads(
            b"[" + data.rstrip(b"\n").replace(b"\n", b",") + b"]"
        )
        return [m for m in items if m.get("type") != _META_TYPE]

    def list_sessions(self) -> list[SessionInfo]:
        """Sort the metadata gathered at open and kept current by saves."""
        with self._lock:
            metas = list(self._meta.values())
        infos = [
            SessionInfo(m["id"], m["title"], m["updated"], m["message_count"], tuple(m["tags"]))
            for m in metas
        ]
        infos.sort(key=lambda i: (-i.updated, i.session_id))
        return infos

    def delete(self, session_id: str) -> None:
        """Unlink the session file (plus a directory fsync when durable)."""
        h = self._handle(session_id)
        with h.lock:
            if h.fd >= 0:
                os.close(h.fd)
                h.fd = -1
            with self._lock:
                self._open_lru.pop(session_id, None)
                self._meta.pop(session_id, None)
                self._handles.pop(session_id, None)
            try:
                self._path(session_id).unlink()
            except FileNotFoundError:
                return
            if self.fsync:
                fsync_dir(_require_root(self._dir))

    def set_tag(self, session_id: str, tag: str) -> None:
        """Append one small meta line (fsynced when durable)."""
        h = self._handle(session_id)
        with h.lock:
            prev = self._meta.get(session_id)
            if prev is None:
                raise KeyError(session_id)
            if tag in prev["tags"]:
                return
            meta = {**prev, "tags": [*prev["tags"], tag]}
            self._append_locked(session_id, h, _dumps(meta) + b"\n")
            with self._lock:
                self._meta[session_id] = meta


def _read_last_meta(path: Path) -> dict[str, Any] | None:
    """The last complete meta line of a JSONL session file, reading from the end."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        block = 4096
        while True:
            start = max(0, size - block)
            f.seek(start)
            tail = f.read(size - start)
            # Drop a torn last line, then look at the last complete line.
            end = tail.rfind(b"\n")
            nl = tail.rfind(b"\n", 0, end) if end >= 0 else -1
            if nl >= 0 or start == 0:
                break
            block *= 4
    if end < 0:
        return None
    line = json.loads(tail[nl + 1 : end])
    if isinstance(line, dict) and line.get("type") == _META_TYPE:
        return line
    # The last complete line is not metadata (a torn save): fall back to a scan.
    last: dict[str, Any] | None = None
    with open(path, "rb") as f:
        for raw in f:
            if raw.endswith(b"\n") and b'"type":"session_meta"' in raw:
                last = json.loads(raw)
    return last
