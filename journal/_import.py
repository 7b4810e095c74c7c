"""Import of a legacy v2 history (the Rust ``SessionStore``'s files) into the journal.

The entry point is :meth:`journal.SessionStore.import_legacy`, which calls
:func:`run_legacy_import`. The legacy files are only read (through
:mod:`journal._legacy`); nothing under the legacy root is ever modified.

What one file becomes
---------------------
* ``sessions/<id>.agcx`` -> one full ``SessionSaved`` whose metadata is the
  file's, verbatim (original timestamps, ``format_version`` 2, the file's
  ``message_count``), followed by ``LegacyImported``
  ``{"v": 1, "path", "sha256", "kind": "session"}``, in the same append.
* ``checkpoints/<id>_<ckpt>.ckpt`` -> ``CheckpointCreated`` followed by its
  ``LegacyImported`` (``"kind": "checkpoint"``), in the same append. Its
  metadata (name, created_at, message_index, description) is the entry with
  the same id in the session file's ``checkpoints`` list; a checkpoint the
  list does not name still imports, named ``""``, created at the file's mtime,
  with ``message_index`` = its number of messages.

Deciding what to do (in this order, per file)
---------------------------------------------
1. **Already imported**: a ``LegacyImported`` event recorded this file's
   SHA-256 for the same kind, session and file name. Nothing is written, and
   the file is not even decoded.
2. **Damaged** (empty, truncated, wrong magic or version, corrupt zstd,
   undecodable msgpack, trailing bytes, a symbolic link, a file name that is
   not a UUID, a session file whose ``metadata.id`` differs from its name, an
   event over the journal's ``max_record_size``): reported as ``failed`` with
   the reason; the import goes on.
3. **The journal already has the session (or checkpoint id)**:
   * with the same content (metadata apart from the store-owned
     ``file_size``/``compression_ratio``/``checkpoints``, conversation and
     state; for a checkpoint its conversation and state): ``already
     imported``. Only the ``LegacyImported`` event is written (if the hash is
     not known yet), so the next run takes the fast path. This is also how a
     run after a crash that kept a ``SessionSaved`` but lost its
     ``LegacyImported`` (a torn batch) completes correctly.
   * with different content (the user went on with the session in agcx, or
     the legacy file changed after an earlier import): ``skipped`` with the
     reason. Newer history is never overwritten. To import such a file
     anyway, delete the session in agcx and run the import again.
4. **A checkpoint whose session is not available** (its session file failed
   or was skipped, or neither a session file nor the journal has the
   session, or the session was deleted in agcx after an earlier import):
   ``skipped`` with the reason.
5. Otherwise the file is **imported** (``would import`` in a dry run).

A session imported earlier and deleted in agcx since stays deleted as long as
its file is unchanged (rule 1); if the legacy file changed meanwhile, it is a
new file and is imported again.

Speed and atomicity
-------------------
Events are appended in batches (up to 256 files or about 8 MiB of payload per
``append_many``, so one lock hold and one fsync), a session's events before
its checkpoints'. Under the commit lock, once caught up with every other
process, each file's premise is checked again (hash still unknown, session
still absent, checkpoint id still absent); a file whose premise no longer
holds is left out of the batch and reported (``already imported`` if another
process imported the same file meanwhile, otherwise ``skipped``).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import attrs
from msgspec.structs import replace

from journal._errors import (
    CheckpointNotFound,
    InvalidArgument,
    JournalError,
    ReadOnlyJournal,
    RecordTooLarge,
    SessionNotFound,
)
from journal._events import EventType, upcast
from journal._legacy import (
    LegacyCheckpointFile,
    LegacyFormatError,
    LegacySession,
    LegacySessionFile,
    _read_regular_file,
    decode_legacy_checkpoint_bytes,
    decode_legacy_session_bytes,
    scan_legacy_root,
)
from journal._log import Entry
from journal._model import (
    CheckpointMetadata,
    ConversationSnapshot,
    SessionMetadata,
    SessionState,
)
from journal._wire import metadata_to_wire

if TYPE_CHECKING:
    from journal._store import SessionStore

__all__ = [
    "ACTIONS",
    "ALREADY_IMPORTED",
    "FAILED",
    "IMPORTED",
    "IMPORT_ACTOR",
    "KINDS",
    "SKIPPED",
    "WOULD_IMPORT",
    "ImportItem",
    "ImportProblem",
    "ImportReport",
    "run_legacy_import",
]

SESSION = "session"
CHECKPOINT = "checkpoint"
KINDS = (SESSION, CHECKPOINT)

IMPORTED = "imported"
WOULD_IMPORT = "would import"
ALREADY_IMPORTED = "already imported"
FAILED = "failed"
SKIPPED = "skipped"
ACTIONS = (IMPORTED, WOULD_IMPORT, ALREADY_IMPORTED, FAILED, SKIPPED)

IMPORT_ACTOR = "agcx import"
"""The ``actor`` of the ``SessionSaved`` events an import writes (for audit)."""

_BATCH_FILES = 256
_BATCH_BYTES = 8 << 20
# What msgpack raises for data it cannot carry (decoded legacy data always
# packs again; this keeps one odd file from stopping the import).
_UNPACKABLE = (TypeError, ValueError, OverflowError)


@attrs.frozen
class ImportProblem:
    """A file (or directory) that was not imported, and why."""

    path: str
    reason: str


@attrs.frozen
class ImportItem:
    """What happened to one legacy file.

    ``kind`` is ``"session"`` or ``"checkpoint"``; ``session_id`` is the id
    the file name gives (``None`` when the name does not parse); ``action``
    is one of ``"imported"``, ``"would import"`` (dry run), ``"already
    imported"``, ``"failed"`` (the file cannot be used: see the problem with
    the same path) or ``"skipped"`` (readable but deliberately not imported:
    see the problem with the same path).
    """

    path: str
    kind: str
    session_id: UUID | None
    action: str


@attrs.frozen
class ImportReport:
    """The outcome of :meth:`journal.SessionStore.import_legacy`.

    In a dry run, ``sessions_imported`` and ``checkpoints_imported`` count
    what *would* be imported (``dry_run`` says which). ``already_imported``
    counts files (sessions and checkpoints) the journal already held.
    ``items`` lists every legacy file in processing order (each session file
    followed by its checkpoints, then checkpoints without a session file, then
    the files the directory scan refused: names that do not parse, symbolic
    links, non-regular files); ``problems`` gives a reason for every
    failed or skipped file, and for directories that could not be read.
    """

    root: str
    sessions_imported: int
    checkpoints_imported: int
    already_imported: int
    problems: tuple[ImportProblem, ...]
    items: tuple[ImportItem, ...]
    dry_run: bool
    seconds: float

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict with stable keys (UUIDs as strings)."""
        return {
            "root": self.root,
            "dry_run": self.dry_run,
            "sessions_imported": self.sessions_imported,
            "checkpoints_imported": self.checkpoints_imported,
            "already_imported": self.already_imported,
            "seconds": self.seconds,
            **outcome_json(self.problems, self.items),
        }


def outcome_json(
    problems: Sequence[ImportProblem], items: Sequence[ImportItem]
) -> dict[str, Any]:
    """The ``problems`` and ``items`` of an import report as JSON (UUIDs as strings)."""
    return {
        "problems": [{"path": p.path, "reason": p.reason} for p in problems],
        "items": [
            {
                "path": i.path,
                "kind": i.kind,
                "session_id": None if i.session_id is None else str(i.session_id),
                "action": i.action,
            }
            for i in items
        ],
    }


# --------------------------------------------------------------------------
# Events. The payloads are the ones SessionStore.save_session (a full save)
# and SessionStore._append_checkpoint write; tests/test_import.py checks that
# they stay byte-for-byte the same.


def session_saved_entry(
    metadata: SessionMetadata,
    conversation: ConversationSnapshot,
    state: SessionState,
    *,
    actor: str | None = IMPORT_ACTOR,
) -> Entry:
    """A full ``SessionSaved`` of ``metadata.id``, the metadata kept as given."""
    from journal._store import full_save_payload

    meta_wire = metadata_to_wire(metadata)
    meta_wire.pop("ck", None)  # checkpoints are the store's, from checkpoint events
    payload = full_save_payload(
        meta_wire,
        conversation.id,
        conversation.messages,
        conversation.context,
        conversation.mode_history,
        state,
        actor,
    )
    return Entry(EventType.SESSION_SAVED, payload, metadata.id, compress=False)


def checkpoint_created_entry(
    session_id: UUID,
    meta: CheckpointMetadata,
    conversation: ConversationSnapshot,
    state: SessionState,
) -> Entry:
    """A ``CheckpointCreated`` of ``session_id`` with ``meta`` kept as given."""
    from journal._store import checkpoint_payload

    payload = checkpoint_payload(meta, conversation, state)
    return Entry(EventType.CHECKPOINT_CREATED, payload, session_id, compress=False)


def legacy_imported_entry(session_id: UUID, path: str, sha256: str, kind: str) -> Entry:
    """The ``LegacyImported`` record of one file."""
    return Entry(
        EventType.LEGACY_IMPORTED,
        {"v": 1, "path": path, "sha256": sha256, "kind": kind},
        session_id,
    )


def _entry_bytes(e: Entry) -> int:
    """Rough payload size of an entry (its nested blobs), for batch sizing."""
    p = e.payload
    return 256 + sum(len(v) for v in p.values() if isinstance(v, bytes))


def _strip(m: SessionMetadata) -> SessionMetadata:
    """The metadata without the fields the store derives."""
    return replace(m, file_size=0, compression_ratio=1.0, checkpoints=())


def _mtime(path: Path) -> datetime:
    ns = os.lstat(path).st_mtime_ns
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).replace(
        microsecond=(ns % 1_000_000_000) // 1000
    )


# --------------------------------------------------------------------------
# One run


@attrs.define
class _Group:
    """One file's events, queued for a batched append."""

    item: int  # index into the run's items
    path: str
    kind: str
    sid: UUID
    cid: UUID | None
    sha: str
    entries: list[Entry]
    content: bool  # False: only the LegacyImported record (the content is there already)
    size: int
    dropped: str | None = None  # set under the commit lock: "" = imported meanwhile


class _Run:
    def __init__(
        self,
        store: SessionStore,
        root: str,
        dry_run: bool,
        progress: Callable[[int, int], None] | None,
        total: int,
    ) -> None:
        self.store = store
        self.root = root
        self.dry_run = dry_run
        self.progress = progress
        self.total = total
        self.done = 0
        self.items: list[ImportItem] = []
        self.problems: list[ImportProblem] = []
        self.sessions_imported = 0
        self.checkpoints_imported = 0
        self.already = 0
        self.pending: list[_Group] = []
        self.pending_bytes = 0
        self.new_sessions: set[bytes] = set()  # sessions this run imports (or would)
        self.unavailable: dict[bytes, str] = {}  # session -> why its checkpoints cannot attach

    # -- bookkeeping ----------------------------------------------------------------------

    def item(self, path: str, kind: str, sid: UUID | None, action: str) -> int:
        self.items.append(ImportItem(path, kind, sid, action))
        return len(self.items) - 1

    def problem(self, path: str, kind: str, sid: UUID | None, action: str, reason: str) -> None:
        self.item(path, kind, sid, action)
        self.problems.append(ImportProblem(path, reason))

    def already_imported(self, path: str, kind: str, sid: UUID) -> None:
        self.item(path, kind, sid, ALREADY_IMPORTED)
        self.already += 1

    def tick(self) -> None:
        """One more file handled: report progress (the last report after the last write)."""
        self.done += 1
        if self.done >= self.total:
            self.flush()
        if self.progress is not None:
            self.progress(self.done, self.total)

    # -- journal state --------------------------------------------------------------------

    def recorded(self, sha: str, kind: str, sid: UUID, name: str) -> bool:
        """Whether a LegacyImported event recorded this very file (hash, kind, session, name)."""
        store = self.store
        with store._runner.lock:
            seq = store._index.imports.get(sha)
        if seq is None:
            return False
        j = store._journal
        try:
            rec = j.read(seq)
            ev = upcast(rec.event_type, j.decode(rec))
        except JournalError:
            # The record is gone (compacted away) or unreadable: trust the hash
            # rather than import the same bytes twice.
            return True
        return (
            rec.session == sid.bytes
            and ev.get("kind") == kind
            and os.path.basename(str(ev.get("path", ""))) == name
        )

    def sha_known(self, sha: str) -> bool:
        with self.store._runner.lock:
            return sha in self.store._index.imports

    def session_live(self, sid: UUID) -> bool:
        with self.store._runner.lock:
            return sid.bytes in self.store._index.sessions

    def checkpoint_exists(self, sid: UUID, cid: UUID) -> bool:
        with self.store._runner.lock:
            chain = self.store._contents.chains.get(sid.bytes)
            return chain is not None and cid.bytes in chain.checkpoints

    # -- files ----------------------------------------------------------------------------

    def session(self, f: LegacySessionFile, ckpts: Sequence[LegacyCheckpointFile]) -> None:
        """Import one session file, then its checkpoint files."""
        path, sid = str(f.path), f.session_id
        data = b""
        legacy: LegacySession | None = None
        try:
            data = _read_regular_file(f.path)
            sha = hashlib.sha256(data).hexdigest()
            if self.recorded(sha, SESSION, sid, f.path.name):
                self.already_imported(path, SESSION, sid)
            else:
                legacy = decode_legacy_session_bytes(data, source=path)
                if legacy.metadata.id != sid:
                    raise LegacyFormatError(
                        path,
                        f"the file name says session {sid} but its metadata.id is "
                        f"{legacy.metadata.id}",
                    )
                self._session_content(path, sid, sha, legacy, ckpts)
        except LegacyFormatError as exc:
            self.problem(path, SESSION, sid, FAILED, exc.reason)
            self.unavailable[sid.bytes] = f"its session file {path} could not be imported"
        self.tick()

        # The checkpoints' metadata comes from the session file: decoded only
        # if one of them needs it (an already imported file is not decoded).
        def meta_for(cid: UUID) -> CheckpointMetadata | None:
            nonlocal legacy
            if legacy is None and data:
                try:
                    legacy = decode_legacy_session_bytes(data, source=path)
                except LegacyFormatError:
                    return None
            if legacy is None:
                return None
            return next((c for c in legacy.metadata.checkpoints if c.id == cid), None)

        for c in ckpts:
            self.checkpoint(c, meta_for, has_session_file=True)

    def _session_content(
        self,
        path: str,
        sid: UUID,
        sha: str,
        legacy: LegacySession,
        ckpts: Sequence[LegacyCheckpointFile],
    ) -> None:
        current = None
        if self.session_live(sid):
            try:
                current = self.store.load_session(sid)
            except SessionNotFound:
                current = None
        if current is not None:
            meta, conv, state = current
            if (
                _strip(meta) == _strip(legacy.metadata)
                and conv == legacy.conversation
                and state == legacy.state
            ):
                self._record_only(path, SESSION, sid, None, sha)
            else:
                reason = (
                    f"the journal already has session {sid} with different content (it was "
                    "changed in agcx, or this file changed after an earlier import); it is "
                    "not overwritten. To import this file anyway, delete the session in agcx "
                    "and run the import again"
                )
                self.problem(path, SESSION, sid, SKIPPED, reason)
                self.unavailable[sid.bytes] = f"its session was skipped: {reason}"
            return
        self.new_sessions.add(sid.bytes)
        have = {c.checkpoint_id for c in ckpts}
        for cm in legacy.metadata.checkpoints:
            if cm.id not in have:
                self.problems.append(
                    ImportProblem(
                        path,
                        f"its metadata lists checkpoint {cm.id} ({cm.name!r}) but there is no "
                        f"checkpoint file {sid}_{cm.id}.ckpt: only that listing is lost",
                    )
                )
        if self.dry_run:
            self.item(path, SESSION, sid, WOULD_IMPORT)
            self.sessions_imported += 1
            return
        try:
            clean = self.store._redact_import
            entries = [
                session_saved_entry(
                    clean(legacy.metadata), clean(legacy.conversation), clean(legacy.state)
                ),
                legacy_imported_entry(sid, path, sha, SESSION),
            ]
        except _UNPACKABLE as exc:
            raise LegacyFormatError(path, f"its content cannot be stored: {exc}") from None
        self._queue(path, SESSION, sid, None, sha, entries, content=True)

    def checkpoint(
        self,
        f: LegacyCheckpointFile,
        meta_for: Callable[[UUID], CheckpointMetadata | None] | None,
        *,
        has_session_file: bool,
    ) -> None:
        """Import one checkpoint file (its session is handled already)."""
        path, sid = str(f.path), f.session_id
        try:
            data = _read_regular_file(f.path)
            sha = hashlib.sha256(data).hexdigest()
            if self.recorded(sha, CHECKPOINT, sid, f.path.name):
                self.already_imported(path, CHECKPOINT, sid)
            else:
                self._checkpoint_content(path, f, sha, data, meta_for, has_session_file)
        except LegacyFormatError as exc:
            self.problem(path, CHECKPOINT, sid, FAILED, exc.reason)
        self.tick()

    def _checkpoint_content(
        self,
        path: str,
        f: LegacyCheckpointFile,
        sha: str,
        data: bytes,
        meta_for: Callable[[UUID], CheckpointMetadata | None] | None,
        has_session_file: bool,
    ) -> None:
        sid, cid = f.session_id, f.checkpoint_id
        why = self.unavailable.get(sid.bytes)
        if why is None and not (sid.bytes in self.new_sessions or self.session_live(sid)):
            if has_session_file:
                why = (
                    f"session {sid} is not in the journal (deleted there after its "
                    "session file was imported)"
                )
            else:
                why = (
                    f"no session {sid} to attach it to: there is no session file "
                    f"{sid}.agcx and the journal has no such session"
                )
        if why is not None:
            self.problem(path, CHECKPOINT, sid, SKIPPED, why)
            return
        conv, state = decode_legacy_checkpoint_bytes(data, source=path)
        if self.checkpoint_exists(sid, cid):
            try:
                current: tuple[ConversationSnapshot, SessionState] | None = (
                    self.store.load_checkpoint(sid, cid)
                )
            except (SessionNotFound, CheckpointNotFound):
                current = None
            if current == (conv, state):
                self._record_only(path, CHECKPOINT, sid, cid, sha)
                return
            if current is not None:
                self.problem(
                    path,
                    CHECKPOINT,
                    sid,
                    SKIPPED,
                    f"the journal already has checkpoint {cid} of session {sid} with "
                    "different content; it is not overwritten",
                )
                return
        meta = meta_for(cid) if meta_for is not None else None
        if meta is None:
            try:
                created = _mtime(f.path)
            except OSError as exc:
                raise LegacyFormatError(path, f"cannot stat: {exc.strerror or exc}") from None
            meta = CheckpointMetadata(cid, "", created, len(conv.messages))
        if self.dry_run:
            self.item(path, CHECKPOINT, sid, WOULD_IMPORT)
            self.checkpoints_imported += 1
            return
        try:
            clean = self.store._redact_import
            entries = [
                checkpoint_created_entry(sid, clean(meta), clean(conv), clean(state)),
                legacy_imported_entry(sid, path, sha, CHECKPOINT),
            ]
        except _UNPACKABLE as exc:
            raise LegacyFormatError(path, f"its content cannot be stored: {exc}") from None
        self._queue(path, CHECKPOINT, sid, cid, sha, entries, content=True)

    def _record_only(self, path: str, kind: str, sid: UUID, cid: UUID | None, sha: str) -> None:
        """The journal holds this file's content already: record the file, nothing more."""
        if self.dry_run or self.sha_known(sha):
            self.already_imported(path, kind, sid)
            return
        entries = [legacy_imported_entry(sid, path, sha, kind)]
        self._queue(path, kind, sid, cid, sha, entries, content=False)

    # -- batched appends ------------------------------------------------------------------

    def _queue(
        self,
        path: str,
        kind: str,
        sid: UUID,
        cid: UUID | None,
        sha: str,
        entries: list[Entry],
        *,
        content: bool,
    ) -> None:
        action = IMPORTED if content else ALREADY_IMPORTED
        size = sum(_entry_bytes(e) for e in entries)
        g = _Group(
            self.item(path, kind, sid, action), path, kind, sid, cid, sha, entries, content, size
        )
        self.pending.append(g)
        self.pending_bytes += size
        if len(self.pending) >= _BATCH_FILES or self.pending_bytes >= _BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Append what is queued (one ``append_many``)."""
        groups, self.pending, self.pending_bytes = self.pending, [], 0
        if groups:
            self._commit(groups)

    def _commit(self, groups: list[_Group]) -> None:
        entries = [e for g in groups for e in g.entries]
        try:
            self.store._append(entries, lambda: self._prepare(groups))
        except RecordTooLarge as exc:
            # Nothing of this batch was written. Find the file(s) at fault.
            if len(groups) > 1:
                for g in groups:
                    self._commit([g])
                return
            g = groups[0]
            g.dropped = f"too large for the journal: {exc}"
            self._settle(g, FAILED)
            return
        for g in groups:
            self._settle(g, SKIPPED)

    def _prepare(self, groups: list[_Group]) -> list[Entry] | None:
        """Under the commit lock, caught up with every process: check each file's premise."""
        store = self.store
        store._sync()
        changed = False
        with store._runner.lock:
            imports = store._index.imports
            sessions = store._index.sessions
            chains = store._contents.chains
            added: set[bytes] = set()
            blocked = dict(self.unavailable)
            for g in groups:
                g.dropped = None
                sid = g.sid.bytes
                if g.sha in imports:
                    g.dropped = ""  # another process imported this very file meanwhile
                elif not g.content:
                    pass
                elif g.kind == SESSION:
                    if sid in sessions:
                        g.dropped = (
                            f"session {g.sid} appeared in the journal during the import "
                            "(saved by another process); run the import again to compare"
                        )
                        blocked[sid] = f"its session was skipped: {g.dropped}"
                    else:
                        added.add(sid)
                elif sid in blocked:
                    g.dropped = blocked[sid]
                elif sid not in sessions and sid not in added:
                    g.dropped = f"session {g.sid} is no longer in the journal (deleted meanwhile)"
                else:
                    chain = chains.get(sid)
                    assert g.cid is not None
                    if chain is not None and g.cid.bytes in chain.checkpoints:
                        g.dropped = (
                            f"checkpoint {g.cid} appeared in the journal during the import; "
                            "run the import again to compare"
                        )
                changed = changed or g.dropped is not None
        if not changed:
            return None
        return [e for g in groups if g.dropped is None for e in g.entries]

    def _settle(self, g: _Group, drop_action: str) -> None:
        """Record the outcome of a group once its batch is committed (or refused)."""
        if g.dropped is None:
            if not g.content:
                self.already += 1
            elif g.kind == SESSION:
                self.sessions_imported += 1
            else:
                self.checkpoints_imported += 1
            return
        if g.dropped == "" or not g.content:
            self.items[g.item] = attrs.evolve(self.items[g.item], action=ALREADY_IMPORTED)
            self.already += 1
            return
        self.items[g.item] = attrs.evolve(self.items[g.item], action=drop_action)
        self.problems.append(ImportProblem(g.path, g.dropped))
        if g.kind == SESSION:
            self.unavailable[g.sid.bytes] = f"its session was not imported: {g.dropped}"

    # -- the whole run --------------------------------------------------------------------

    def scan_problem(self, path: Path, reason: str) -> None:
        """A file the directory scan refused (bad name, symbolic link, not a regular file)."""
        parent = path.parent.name
        if path.suffix == ".agcx" and parent == "sessions":
            kind = SESSION
        elif path.suffix == ".ckpt" and parent == "checkpoints":
            kind = CHECKPOINT
        else:  # a directory that cannot be read: no file item
            self.problems.append(ImportProblem(str(path), reason))
            return
        self.problem(str(path), kind, _name_session_id(path.stem), FAILED, reason)


def _name_session_id(stem: str) -> UUID | None:
    """The session id a legacy file name starts with, if it parses."""
    try:
        return UUID(stem.split("_")[0])
    except ValueError:
        return None


def run_legacy_import(
    store: SessionStore,
    path: str | os.PathLike[str] | None = None,
    *,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Import the legacy v2 history under ``path`` (default: the store's root).

    See the module docstring for the rules. ``progress(done, total)`` is
    called after each file (``total`` = session and checkpoint files found);
    the last call comes after the last write. Raises :class:`LegacyFormatError`
    if ``path`` is not a directory, :class:`ReadOnlyJournal` for a real run
    on a read-only store, and any journal error an append meets (what was
    appended before stays, and a later run continues from there).
    """
    started = time.perf_counter()
    if not isinstance(dry_run, bool):
        raise InvalidArgument(f"dry_run must be a bool, got {type(dry_run).__name__}")
    if progress is not None and not callable(progress):
        raise InvalidArgument("progress must be a callable (done, total) or None")
    if path is None:
        root = os.path.abspath(store.root)
    else:
        if not isinstance(path, str | os.PathLike):
            raise InvalidArgument(f"path must be a str or path, got {type(path).__name__}")
        root = os.path.abspath(os.path.expanduser(os.fspath(path)))
    if not dry_run and store.journal.readonly:
        raise ReadOnlyJournal(
            f"the store {store.root} was opened read-only; open it writable to import "
            "(or use a dry run)"
        )
    inventory = scan_legacy_root(Path(root))
    by_session: dict[UUID, list[LegacyCheckpointFile]] = {}
    for c in inventory.checkpoints:
        by_session.setdefault(c.session_id, []).append(c)
    total = len(inventory.sessions) + len(inventory.checkpoints)
    run = _Run(store, root, dry_run, progress, total)
    for p in inventory.problems:
        sid = _name_session_id(p.path.stem) if p.path.suffix == ".agcx" else None
        if sid is not None:  # e.g. a symbolic link: its checkpoints have no session
            run.unavailable[sid.bytes] = f"its session file {p.path} could not be imported"
    store._sync()
    for s in inventory.sessions:
        run.session(s, by_session.pop(s.session_id, []))
    for ckpts in by_session.values():
        for c in ckpts:
            run.checkpoint(c, None, has_session_file=False)
    run.flush()
    for p in inventory.problems:
        run.scan_problem(p.path, p.reason)
    return ImportReport(
        root=root,
        sessions_imported=run.sessions_imported,
        checkpoints_imported=run.checkpoints_imported,
        already_imported=run.already,
        problems=tuple(run.problems),
        items=tuple(run.items),
        dry_run=dry_run,
        seconds=time.perf_counter() - started,
    )
