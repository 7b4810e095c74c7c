"""Codex CLI rollouts in and out: import a ``$CODEX_HOME`` history, export a session as a rollout.

The entry points are :meth:`journal.SessionStore.import_codex` (which calls
:func:`run_codex_import`) and :func:`export_codex_lines`. Rollout files are
only read, never modified.

The rollout format (openai/codex ``codex-rs/protocol/src/protocol.rs``,
``codex-rs/protocol/src/models.rs``, ``codex-rs/rollout/src/``)
-------------------------------------------------------------------------
* Files: ``$CODEX_HOME/sessions/YYYY/MM/DD/rollout-<local time>-<uuid>.jsonl``
  and, archived, flat in ``$CODEX_HOME/archived_sessions/``; newer versions
  also write ``.jsonl.zst`` (one zstd stream of the same bytes). When both
  ``X.jsonl`` and ``X.jsonl.zst`` exist, the plain file wins.
* One JSON object per line, ``\\n``-terminated::

      {"timestamp": "2025-10-01T12:00:00.123Z", "type": T, "payload": {...}}

  (UTC, milliseconds; newer writers add ``ordinal``, and ``metadata`` beside
  the payload of ``response_item`` lines). ``T`` is one of:

  - ``session_meta`` (the first line): ``id``, ``forked_from_id?``,
    ``timestamp``, ``cwd``, ``originator``, ``cli_version``, ``source``,
    ``model_provider``, ``base_instructions`` (older: ``instructions``),
    ``git?: {commit_hash, branch, repository_url}``, ...
  - ``response_item``: a Responses-API item (``message``, ``reasoning``,
    ``local_shell_call``, ``function_call``, ``function_call_output``,
    ``custom_tool_call(_output)``, ``web_search_call``, ``compaction``, ...).
  - ``event_msg``: what the UI showed (``user_message``, ``agent_message``,
    ``token_count``, ``task_started``, ``turn_aborted``, ...).
  - ``turn_context``: ``cwd``, ``approval_policy``, ``sandbox_policy``,
    ``model``, ``effort?``, ``summary``, ...
  - ``compacted``: ``{message, replacement_history?: [item, ...]}``, the
    whole history again after a compaction.
  - anything newer.

What a rollout becomes
----------------------
One agcx session per rollout, with the rollout's id (``session_meta.id``,
else the UUID at the end of the file name). Each ``response_item`` line's
payload becomes a message (:func:`journal.item_from_json`; an item whose
typed form would not write back the same JSON is kept as
:class:`journal.UnknownItem`, verbatim). Metadata: the title is the first
``user_message`` event (else the first user text that is not an
``<environment_context>``-style block), ``created_at`` the
``session_meta`` time, ``updated_at`` the last line's, ``model`` the first
``turn_context.model``, the context's working directory the ``cwd``; tags
``codex``, ``originator:<o>``, ``branch:<git branch>`` and
``forked-from:<uuid>`` (the link to the session the rollout was forked
from: a Codex fork carries its own copy of the history, so it is imported
whole, not as an agcx fork).

Every other line is kept verbatim in a ``CodexLines`` event written in the
same append as the save, with the position of each line among the messages,
so that :func:`export_codex_lines` writes every line back, JSON-equal and in
order. A ``compacted`` line's ``replacement_history`` items that are equal to
an earlier message of the session are stored as that message's index (an
int: items are JSON objects, so an int cannot be an item), which is what
keeps a history that repeats itself small.

Events (docs/FORMAT.md)
-----------------------
* ``CodexLines`` (24, session): ``{"v": 1, "base": messages before,
  "from": number of the first line (1-based), "lines": blob}``; the blob is
  a msgpack list with one entry per line:
  ``0`` a response item: the next message, with the line as written (its
  ``payload`` is the message); ``[1, line]`` a line kept verbatim; ``[2,
  line]`` a ``compacted`` line whose ``replacement_history`` holds message
  indices; ``[3, line]`` a response-item line whose other keys (timestamp,
  ordinal, metadata) are kept, its ``payload`` null (the next message).
  Compaction keeps the records of live sessions; purge removes them.
* ``CodexImported`` (25, session): ``{"v": 1, "path", "sha256", "size",
  "mtime", "lines", "n"}``: the rollout's path, the SHA-256 and size of the
  bytes imported so far (whole lines), its mtime then (ns), the number of
  lines and of session messages they gave. Like ``LegacyImported`` it is
  kept by compaction and by purge, so a re-import does not bring back a
  deleted or purged session.

Deciding what to do (per file)
------------------------------
1. The last ``CodexImported`` of the session has this path, size and mtime:
   ``already imported`` without reading the file.
2. The file's first ``size`` bytes hash to that record's SHA-256: ``already
   imported`` if nothing was appended, else the new lines are added as a
   delta save (if the session still holds exactly the ``n`` messages the
   import gave; otherwise ``skipped``: it changed in agcx since).
3. A session with the id exists otherwise (imported from bytes that are not
   a prefix of this file, or made in agcx): ``skipped``, never overwritten.
4. Otherwise ``imported``. A line that is not a JSON object with a string
   ``type`` is reported (file and line number) and skipped; an unfinished
   last line (no ``\\n``: Codex may be writing it) is left for the next
   import.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import attrs
import msgspec
import zstandard
from msgspec.structs import replace

from journal._errors import InvalidArgument, JournalError
from journal._events import EventType, pack_blob, unpack_blob, upcast
from journal._import import (
    ALREADY_IMPORTED,
    FAILED,
    IMPORTED,
    SKIPPED,
    WOULD_IMPORT,
    ImportItem,
    ImportProblem,
    outcome_json,
    session_saved_entry,
)
from journal._log import Entry
from journal._model import (
    ConversationContext,
    ConversationSnapshot,
    InputText,
    Message,
    MessageSnapshot,
    OutputText,
    ResponseItem,
    SessionMetadata,
    SessionState,
    UnknownItem,
    item_from_json,
    item_to_json,
)
from journal._wire import metadata_to_wire

if TYPE_CHECKING:
    from journal._store import SessionStore

__all__ = ["CodexImportReport", "export_codex_lines", "run_codex_import", "scan_codex_home"]

IMPORT_ACTOR = "agcx import --codex"
ROLLOUT = "rollout"

_UUID_TAIL = re.compile(
    r"([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
)
_MAX_DECOMPRESSED = 1 << 36  # a hostile .zst cannot make us allocate more than this
_BATCH_FILES = 64
_BATCH_BYTES = 8 << 20

# Line entries of a CodexLines blob (see the module docstring).
_ITEM, _VERBATIM, _COMPACTED, _ITEM_LINE = 0, 1, 2, 3

_json_decode = msgspec.json.Decoder().decode
_json_encode = msgspec.json.Encoder().encode


@attrs.frozen
class CodexImportReport:
    """The outcome of :meth:`journal.SessionStore.import_codex`.

    ``sessions_imported`` counts rollouts imported whole, ``sessions_extended``
    rollouts that grew since an earlier import (only their new lines were
    added); in a dry run both count what *would* be done. ``items`` lists
    every rollout (``kind`` ``"rollout"``); ``problems`` gives a reason for
    every failed or skipped rollout and for every damaged line
    (``path:line``), which is skipped and never stops the import.
    """

    root: str
    sessions_imported: int
    sessions_extended: int
    already_imported: int
    lines_imported: int
    bytes_read: int
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
            "sessions_extended": self.sessions_extended,
            "already_imported": self.already_imported,
            "lines_imported": self.lines_imported,
            "bytes_read": self.bytes_read,
            "seconds": self.seconds,
            **outcome_json(self.problems, self.items),
        }


# --------------------------------------------------------------------------
# Files


def default_codex_home() -> str:
    """``$CODEX_HOME``, else ``~/.codex``."""
    return os.environ.get("CODEX_HOME") or os.path.join(os.path.expanduser("~"), ".codex")


def scan_codex_home(root: str | os.PathLike[str]) -> tuple[list[Path], list[ImportProblem]]:
    """Every rollout under ``sessions/`` and ``archived_sessions/``, sorted by
    path; the plain ``.jsonl`` when a ``.jsonl.zst`` of the same name exists
    too. Unreadable directories are reported, not fatal."""
    base = Path(root)
    found: dict[str, Path] = {}
    problems: list[ImportProblem] = []

    def onerror(exc: OSError) -> None:
        problems.append(ImportProblem(str(exc.filename), f"cannot read directory: {exc}"))

    for sub in ("sessions", "archived_sessions"):
        top = base / sub
        if not top.is_dir():
            continue
        for dirpath, _dirs, names in os.walk(top, onerror=onerror):
            for name in names:
                if not name.startswith("rollout-"):
                    continue
                if name.endswith(".jsonl"):
                    key = os.path.join(dirpath, name)
                elif name.endswith(".jsonl.zst"):
                    key = os.path.join(dirpath, name[: -len(".zst")])
                    if key in found:
                        continue  # the plain file wins
                else:
                    continue
                found[key] = Path(dirpath, name)
    return [found[k] for k in sorted(found)], problems


def _id_from_name(path: Path) -> UUID | None:
    stem = path.name.removesuffix(".zst").removesuffix(".jsonl")
    m = _UUID_TAIL.search(stem)
    return UUID(m.group(1)) if m else None


def _read_rollout(path: Path) -> bytes:
    """The rollout's JSONL bytes (decompressed for ``.zst``)."""
    with open(path, "rb") as f:
        data = f.read()
    if not path.name.endswith(".zst"):
        return data
    out = bytearray()
    try:
        with zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True) as r:
            while chunk := r.read(1 << 20):
                out += chunk
                if len(out) > _MAX_DECOMPRESSED:
                    raise _FileError(f"decompresses to more than {_MAX_DECOMPRESSED} bytes")
    except zstandard.ZstdError as exc:
        raise _FileError(f"not a valid zstd file: {exc}") from None
    return bytes(out)


class _FileError(Exception):
    """A rollout that cannot be used at all (reported as failed)."""


# --------------------------------------------------------------------------
# Lines -> messages and kept lines


def _ts(value: object, fallback: datetime) -> datetime:
    if isinstance(value, str):
        try:
            t = datetime.fromisoformat(value)
        except ValueError:
            return fallback
        return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    return fallback


def _as_item(payload: dict[str, Any]) -> ResponseItem:
    """``payload`` typed when that writes back the same JSON, else verbatim."""
    try:
        item = item_from_json(payload)
    except InvalidArgument:
        return UnknownItem(payload)
    if type(item) is not UnknownItem and item_to_json(item) != payload:
        return UnknownItem(payload)
    return item


def _key(payload: Any) -> bytes | None:
    try:
        return _json_encode(payload)
    except (TypeError, ValueError, OverflowError):
        return None


_NOT_TITLES = ("<environment_context>", "<user_instructions>", "# AGENTS.md", "<INSTRUCTIONS>")


def _title_of(text: str) -> str:
    line = " ".join(text.split())
    return line[:80] + ("…" if len(line) > 80 else "")


@attrs.define
class _Parsed:
    """What the new lines of one rollout give."""

    messages: list[MessageSnapshot]
    entries: list[Any]
    problems: list[tuple[int, str]]
    lines: int
    meta: dict[str, Any] | None = None
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    title: str | None = None
    fallback_title: str | None = None
    model: str | None = None
    turns: int = 0


def _split_lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    lines.pop()  # after the last "\n": empty (or the unfinished line, cut before)
    return lines


def _decode_lines(lines: list[bytes]) -> list[Any]:
    """Each line decoded; a damaged one as the exception. The whole batch is
    decoded in one call first (the common case: every line is good)."""
    try:
        out: list[Any] = _json_decode(b"[" + b",".join(lines) + b"]") if lines else []
        if len(out) == len(lines):
            return out
    except msgspec.DecodeError:
        pass
    decoded: list[Any] = []
    for raw in lines:
        try:
            decoded.append(_json_decode(raw))
        except msgspec.DecodeError as exc:
            decoded.append(exc)
    return decoded


def _parse(
    lines: list[bytes],
    first_line: int,
    base: int,
    known: dict[bytes, int],
    fallback: datetime,
    turns: int,
) -> _Parsed:
    """Turn the lines numbered from ``first_line`` into messages (numbered from
    ``base``) and CodexLines entries; ``known`` maps an item's JSON to the index
    of a message holding it (extended with the new ones)."""
    p = _Parsed([], [], [], 0, turns=turns)
    ts = fallback
    for i, line in enumerate(_decode_lines(lines)):
        number = first_line + i
        p.lines += 1
        if isinstance(line, Exception):
            if not lines[i].strip():
                p.entries.append([_VERBATIM, None])  # an empty line: written back empty
                continue
            p.problems.append((number, f"not JSON ({line}); skipped"))
            p.entries.append([_VERBATIM, _BAD, lines[i]])
            continue
        if type(line) is not dict or type(line.get("type")) is not str:
            p.problems.append((number, "not a JSON object with a string 'type'; skipped"))
            p.entries.append([_VERBATIM, _BAD, lines[i]])
            continue
        ts = _ts(line.get("timestamp"), ts)
        p.first_ts = p.first_ts or ts
        p.last_ts = ts
        kind = line["type"]
        payload = line.get("payload")
        if kind == "response_item" and type(payload) is dict and type(payload.get("type")) is str:
            item = _as_item(payload)
            if type(item) is Message and item.role == "user":
                p.turns += 1
                if p.fallback_title is None:
                    for c in item.content:
                        if type(c) is InputText and not c.text.lstrip().startswith(_NOT_TITLES):
                            p.fallback_title = _title_of(c.text)
                            break
            p.messages.append(MessageSnapshot(item, ts, max(p.turns - 1, 0)))
            k = _key(payload)
            if k is not None:
                known.setdefault(k, base + len(p.messages) - 1)
            if len(line) == 3 and type(line.get("timestamp")) is str:
                p.entries.append([_ITEM, line["timestamp"]])  # the common line: its time only
            else:
                p.entries.append([_ITEM_LINE, {**line, "payload": None}])
            continue
        if kind == "session_meta" and type(payload) is dict and p.meta is None:
            p.meta = payload
        elif kind == "turn_context" and type(payload) is dict and p.model is None:
            if type(payload.get("model")) is str:
                p.model = payload["model"]
        elif kind == "event_msg" and type(payload) is dict and p.title is None:
            said = payload.get("message") if payload.get("type") == "user_message" else None
            if type(said) is str and said.strip():
                p.title = _title_of(said)
        elif kind == "compacted" and type(payload) is dict:
            history = payload.get("replacement_history")
            if type(history) is list and not any(type(x) is int for x in history):
                refs: list[Any] = []
                hits = 0
                for x in history:
                    k = _key(x)
                    at = known.get(k) if k is not None else None
                    if at is None:
                        refs.append(x)
                    else:
                        refs.append(at)
                        hits += 1
                if hits:
                    p.entries.append(
                        [_COMPACTED, {**line, "payload": {**payload, "replacement_history": refs}}]
                    )
                    continue
        p.entries.append([_VERBATIM, line])
    return p


# A damaged line is kept too (as its bytes), so that export writes back
# exactly the lines Codex wrote; the marker tells it from a kept JSON line.
_BAD = "bad"


# --------------------------------------------------------------------------
# The run


def _imports(store: SessionStore) -> dict[bytes, tuple[int, dict[str, Any]]]:
    """The last ``CodexImported`` record of each session: seq and payload."""
    j = store.journal
    out: dict[bytes, tuple[int, dict[str, Any]]] = {}
    for rec in j.scan():
        if rec.event_type == EventType.CODEX_IMPORTED and rec.session is not None:
            try:
                out[rec.session] = (rec.seq, upcast(rec.event_type, j.decode(rec)))
            except JournalError:
                continue
    return out


@attrs.define
class _Group:
    item: int
    sid: UUID
    entries: list[Entry]
    expect_head: int | None  # None: the session must not exist; else its head seq
    size: int


class _Run:
    def __init__(
        self,
        store: SessionStore,
        root: str,
        dry_run: bool,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        self.store = store
        self.root = root
        self.dry_run = dry_run
        self.progress = progress
        self.items: list[ImportItem] = []
        self.problems: list[ImportProblem] = []
        self.imported = self.extended = self.already = self.lines = self.bytes = 0
        self.pending: list[_Group] = []
        self.pending_bytes = 0
        self.prior = _imports(store)
        self.claimed: set[bytes] = set()

    def item(self, path: str, sid: UUID | None, action: str, reason: str | None = None) -> int:
        self.items.append(ImportItem(path, ROLLOUT, sid, action))
        if reason is not None:
            self.problems.append(ImportProblem(path, reason))
        return len(self.items) - 1

    # -- one file -------------------------------------------------------------------------

    def rollout(self, path: Path) -> None:
        spath = str(path)
        try:
            st = os.stat(path)
        except OSError as exc:
            self.item(spath, None, FAILED, f"cannot read: {exc}")
            return
        name_id = _id_from_name(path)
        prior = self.prior.get(name_id.bytes) if name_id is not None else None
        if (
            prior is not None
            and prior[1].get("path") == spath
            and prior[1].get("mtime") == st.st_mtime_ns
            and prior[1].get("fsize") == st.st_size
        ):
            self.item(spath, name_id, ALREADY_IMPORTED)
            self.already += 1
            return
        try:
            data = _read_rollout(path)
        except OSError as exc:
            self.item(spath, name_id, FAILED, f"cannot read: {exc}")
            return
        except _FileError as exc:
            self.item(spath, name_id, FAILED, str(exc))
            return
        end = data.rfind(b"\n") + 1
        self.bytes += len(data)
        if end == 0:
            # Nothing but (maybe) a line being written: nothing recorded, so
            # the next run looks again.
            self.item(spath, name_id, SKIPPED)
            return
        sid = self._session_id(data[:end], name_id)
        if sid is None:
            self.item(spath, None, FAILED, "no session id: neither a session_meta line nor a "
                      "UUID at the end of the file name")
            return
        if sid.bytes in self.claimed:
            self.item(spath, sid, SKIPPED, f"another rollout of this run has session id {sid}")
            return
        prior = self.prior.get(sid.bytes)
        if end < len(data):
            number = data.count(b"\n", 0, end) + 1
            self.problems.append(ImportProblem(
                f"{spath}:{number}", "unfinished last line (no newline); left for the next import"
            ))
        if prior is not None:
            self._grown(spath, st, sid, data, end, prior)
        else:
            self._new(spath, st, sid, data, end)

    def _session_id(self, data: bytes, name_id: UUID | None) -> UUID | None:
        first = data[: data.find(b"\n") + 1] if data else b""
        try:
            line = _json_decode(first) if first.strip() else None
        except msgspec.DecodeError:
            line = None
        if type(line) is dict and line.get("type") == "session_meta":
            payload = line.get("payload")
            if type(payload) is dict and type(payload.get("id")) is str:
                try:
                    return UUID(payload["id"])
                except ValueError:
                    pass
        return name_id

    def _marker(
        self, spath: str, st: os.stat_result, sha: str, size: int, lines: int, n: int, sid: UUID
    ) -> Entry:
        payload = {
            "v": 1, "path": spath, "sha256": sha, "size": size, "fsize": st.st_size,
            "mtime": st.st_mtime_ns, "lines": lines, "n": n,
        }
        return Entry(EventType.CODEX_IMPORTED, payload, sid)

    def _report_lines(self, spath: str, problems: list[tuple[int, str]]) -> None:
        for number, reason in problems:
            self.problems.append(ImportProblem(f"{spath}:{number}", reason))

    def _new(self, spath: str, st: os.stat_result, sid: UUID, data: bytes, end: int) -> None:
        store = self.store
        with store._runner.lock:
            exists = sid.bytes in store._index.sessions
        if exists:
            self.item(spath, sid, SKIPPED, f"the journal already has session {sid} (not from "
                      "this rollout): never overwritten; delete it in agcx to import the file")
            return
        mtime = datetime.fromtimestamp(st.st_mtime_ns / 1e9, UTC)
        lines = _split_lines(data[:end])
        p = _parse(lines, 1, 0, {}, mtime, 0)
        self._report_lines(spath, p.problems)
        meta = p.meta or {}
        created = _ts(meta.get("timestamp"), p.first_ts or mtime)
        updated = p.last_ts or created
        tags = ["codex"]
        if type(meta.get("originator")) is str and meta["originator"]:
            tags.append(f"originator:{meta['originator']}")
        git = meta.get("git")
        if type(git) is dict and type(git.get("branch")) is str and git["branch"]:
            tags.append(f"branch:{git['branch']}")
        if type(meta.get("forked_from_id")) is str and meta["forked_from_id"]:
            tags.append(f"forked-from:{meta['forked_from_id']}")
        metadata = SessionMetadata(
            id=sid,
            title=p.title or p.fallback_title or "",
            created_at=created,
            updated_at=updated,
            last_accessed=updated,
            message_count=len(p.messages),
            turn_count=p.turns,
            model=p.model or "",
            tags=tuple(tags),
        )
        cwd = meta.get("cwd")
        context = ConversationContext(working_directory=cwd if type(cwd) is str else "")
        conversation = ConversationSnapshot(sid, tuple(p.messages), context)
        sha = hashlib.sha256(memoryview(data)[:end]).hexdigest()
        entries = [
            # Secrets are redacted as in a save (journal/_redact.py).
            session_saved_entry(
                store._redact_import(metadata),
                store._redact_import(conversation),
                SessionState(),
                actor=IMPORT_ACTOR,
            ),
            _lines_entry(sid, 0, 1, store._redact(p.entries)),
            self._marker(spath, st, sha, end, p.lines, len(p.messages), sid),
        ]
        self.claimed.add(sid.bytes)
        self.lines += p.lines
        self.imported += 1
        at = self.item(spath, sid, WOULD_IMPORT if self.dry_run else IMPORTED)
        self._queue(_Group(at, sid, entries, None, end))

    def _grown(
        self,
        spath: str,
        st: os.stat_result,
        sid: UUID,
        data: bytes,
        end: int,
        prior: tuple[int, dict[str, Any]],
    ) -> None:
        from journal._store import _meta_changes, delta_save_payload

        store = self.store
        old = prior[1]
        size = int(old.get("size", 0))
        if end < size or hashlib.sha256(memoryview(data)[:size]).hexdigest() != old.get("sha256"):
            self.item(spath, sid, SKIPPED, f"session {sid} was imported from other bytes "
                      f"({old.get('path')}, seq {prior[0]}) that this file does not start with; "
                      "never overwritten: delete the session in agcx to import the file again")
            return
        self.claimed.add(sid.bytes)
        if end == size:
            if old.get("path") != spath or old.get("mtime") != st.st_mtime_ns:
                # Same bytes, moved (archived) or touched: remember the new
                # stat so the next run takes the fast path.
                marker = self._marker(spath, st, str(old["sha256"]), size, int(old["lines"]),
                                      int(old["n"]), sid)
                if not self.dry_run:
                    store._append([marker])
            self.item(spath, sid, ALREADY_IMPORTED)
            self.already += 1
            return
        with store._runner.lock:
            live = sid.bytes in store._index.sessions
            chain = store._contents.chains.get(sid.bytes)
            head = chain.head if chain is not None else 0
        if not live:
            self.item(spath, sid, SKIPPED, f"session {sid} was deleted in agcx after its import; "
                      "its new lines are not imported")
            return
        meta, conv, state = store.load_session(sid)
        n = int(old["n"])
        if len(conv.messages) != n:
            self.item(spath, sid, SKIPPED, f"session {sid} changed in agcx since its import "
                      f"({len(conv.messages)} messages, the import gave {n}); the rollout's new "
                      "lines are not imported")
            return
        known: dict[bytes, int] = {}
        for i, m in enumerate(conv.messages):
            k = _key(item_to_json(m.item))
            if k is not None:
                known.setdefault(k, i)
        first = int(old["lines"]) + 1
        fallback = meta.updated_at
        turns = sum(1 for m in conv.messages if type(m.item) is Message and m.item.role == "user")
        p = _parse(_split_lines(data[size:end]), first, n, known, fallback, turns)
        self._report_lines(spath, p.problems)
        updated = p.last_ts or meta.updated_at
        new_meta = replace(
            meta,
            updated_at=max(updated, meta.updated_at),
            last_accessed=max(updated, meta.last_accessed),
            message_count=n + len(p.messages),
            turn_count=p.turns,
            title=meta.title or p.title or p.fallback_title or "",
        )
        meta_wire = metadata_to_wire(new_meta)
        meta_wire.pop("ck", None)
        with store._runner.lock:
            changes = _meta_changes(store._index.sessions, sid, meta_wire) or {}
        sha = hashlib.sha256(memoryview(data)[:end]).hexdigest()
        if n == 0:
            # A delta on no messages reads as a full save (base 0): write one.
            save = session_saved_entry(
                store._redact_import(new_meta),
                store._redact_import(replace(conv, messages=tuple(p.messages))),
                state,
                actor=IMPORT_ACTOR,
            )
        else:
            save = Entry(
                EventType.SESSION_SAVED,
                delta_save_payload(n, len(p.messages), store._messages_blob(p.messages),
                                   changes, IMPORT_ACTOR),
                sid,
                compress=False,
            )
        entries = [
            save,
            _lines_entry(sid, n, first, store._redact(p.entries)),
            self._marker(spath, st, sha, end, first - 1 + p.lines, n + len(p.messages), sid),
        ]
        self.lines += p.lines
        self.extended += 1
        at = self.item(spath, sid, WOULD_IMPORT if self.dry_run else IMPORTED)
        self._queue(_Group(at, sid, entries, head, end - size))

    # -- appending ------------------------------------------------------------------------

    def _queue(self, g: _Group) -> None:
        if self.dry_run:
            return
        self.pending.append(g)
        self.pending_bytes += g.size
        if len(self.pending) >= _BATCH_FILES or self.pending_bytes >= _BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        groups, self.pending, self.pending_bytes = self.pending, [], 0
        if not groups:
            return
        store = self.store

        def holds(g: _Group) -> bool:
            with store._runner.lock:
                if g.expect_head is None:
                    return g.sid.bytes not in store._index.sessions
                chain = store._contents.chains.get(g.sid.bytes)
                return chain is not None and chain.head == g.expect_head

        foreign = store.journal.foreign_changes
        dropped: list[_Group] = []

        def prepare() -> list[Entry] | None:
            # Under the commit lock, caught up with every process: a rollout
            # another process imported (or a session changed) meanwhile is
            # left out and reported.
            if store.journal.foreign_changes == foreign:
                return None
            store._sync()
            dropped[:] = [g for g in groups if not holds(g)]
            if not dropped:
                return None
            return [e for g in groups if g not in dropped for e in g.entries]

        entries = [e for g in groups for e in g.entries]
        store._append(entries, prepare)
        for g in dropped:
            old = self.items[g.item]
            self.items[g.item] = attrs.evolve(old, action=SKIPPED)
            self.problems.append(ImportProblem(
                old.path, f"session {g.sid} changed in another process during the import"
            ))


def _lines_entry(sid: UUID, base: int, first: int, entries: list[Any]) -> Entry:
    return Entry(
        EventType.CODEX_LINES,
        {"v": 1, "base": base, "from": first, "lines": pack_blob(entries)},
        sid,
        compress=False,
    )


def run_codex_import(
    store: SessionStore,
    path: str | os.PathLike[str] | None,
    *,
    dry_run: bool,
    progress: Callable[[int, int], None] | None,
) -> CodexImportReport:
    """Import every rollout under ``path`` (see the module docstring)."""
    started = time.perf_counter()
    root = os.path.abspath(os.fspath(path) if path is not None else default_codex_home())
    if not os.path.isdir(root):
        raise InvalidArgument(f"{root}: not a directory (expected a CODEX_HOME)")
    files, problems = scan_codex_home(root)
    run = _Run(store, root, dry_run, progress)
    run.problems.extend(problems)
    read = 0
    total = sum(_size(f) for f in files)
    for f in files:
        run.rollout(f)
        read += _size(f)
        if progress is not None:
            progress(read, total)
    run.flush()
    return CodexImportReport(
        root, run.imported, run.extended, run.already, run.lines, run.bytes,
        tuple(run.problems), tuple(run.items), dry_run, time.perf_counter() - started,
    )


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


# --------------------------------------------------------------------------
# Export


def _codex_records(store: SessionStore, sid: UUID, born: int) -> list[dict[str, Any]]:
    """The session's CodexLines payloads of its current life, in order."""
    j = store.journal
    out = []
    for rec in j.scan(from_seq=born):
        if rec.event_type == EventType.CODEX_LINES and rec.session == sid.bytes:
            out.append(upcast(rec.event_type, j.decode(rec)))
    return out


def _stamp(t: datetime) -> str:
    t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _line(ts: str, kind: str, payload: Any) -> dict[str, Any]:
    return {"timestamp": ts, "type": kind, "payload": payload}


def _text(item: Message) -> str:
    return "".join(c.text for c in item.content if isinstance(c, (InputText, OutputText)))


def _native_lines(
    messages: Sequence[MessageSnapshot], start: int, with_events: bool
) -> Iterator[dict[str, Any]]:
    """Response-item lines of ``messages[start:]``, each user and assistant
    message followed by the ``user_message``/``agent_message`` event the
    picker and the transcript read."""
    for m in messages[start:]:
        ts = _stamp(m.timestamp)
        yield _line(ts, "response_item", item_to_json(m.item))
        item = m.item
        if with_events and type(item) is Message:
            text = _text(item)
            if item.role == "user" and text:
                yield _line(ts, "event_msg", {"type": "user_message", "message": text,
                                              "images": []})
            elif item.role == "assistant" and text:
                yield _line(ts, "event_msg", {"type": "agent_message", "message": text})


def export_codex_lines(store: Any, session_id: UUID) -> Iterator[bytes]:
    """The session as rollout lines (each JSON, ``\\n``-terminated).

    An imported session gives back the rollout's lines, JSON-equal and in
    order (a damaged line as it was), followed by messages added in agcx
    since. Any other session (or an imported one cut shorter in agcx) is
    written as Codex writes a new one: ``session_meta``, ``turn_context``,
    the response items with their ``user_message``/``agent_message`` events.
    ``store`` is a store or a point-in-time view.
    """
    meta, conv, _state = store.load_session(session_id)
    messages = conv.messages
    with store._runner.lock:
        chain = store._contents.chains.get(session_id.bytes)
        born = chain.born if chain is not None else 0
    records = _codex_records(store, session_id, born) if born else []
    covered = _continuous(records) if records else None
    if covered is not None and covered <= len(messages):
        done = 0
        for r in records:
            for e in r["entries"]:
                kind = e[0]
                if kind == _ITEM:
                    line = _line(e[1], "response_item", item_to_json(messages[done].item))
                    done += 1
                elif kind == _ITEM_LINE:
                    line = dict(e[1])
                    line["payload"] = item_to_json(messages[done].item)
                    done += 1
                elif kind == _COMPACTED:
                    line = dict(e[1])
                    payload = dict(line["payload"])
                    payload["replacement_history"] = [
                        item_to_json(messages[x].item) if type(x) is int else x
                        for x in payload["replacement_history"]
                    ]
                    line["payload"] = payload
                elif len(e) == 3:  # a damaged line, as it was
                    yield bytes(e[2]) + b"\n"
                    continue
                elif e[1] is None:  # an empty line
                    yield b"\n"
                    continue
                else:
                    line = e[1]
                yield _json_encode(line) + b"\n"
        for line in _native_lines(messages, done, True):
            yield _json_encode(line) + b"\n"
        return
    yield from (_json_encode(x) + b"\n" for x in _native_rollout(meta, conv))


def _continuous(records: list[dict[str, Any]]) -> int | None:
    """The number of messages the records stand for, if each starts where the
    last ended (their entries decoded into ``"entries"``); else ``None``."""
    n = 0
    for r in records:
        if r.get("base") != n:
            return None
        r["entries"] = entries = unpack_blob(r["lines"], "CodexLines.lines")
        n += sum(1 for e in entries if e[0] in (_ITEM, _ITEM_LINE))
    return n


def _native_rollout(meta: SessionMetadata, conv: ConversationSnapshot) -> Iterable[dict[str, Any]]:
    created = _stamp(meta.created_at)
    cwd = conv.context.working_directory or "/"
    yield _line(created, "session_meta", {
        "id": str(meta.id),
        "timestamp": created,
        "cwd": cwd,
        "originator": "agcx",
        "cli_version": "0.0.0",
        "source": "cli",
        "model_provider": "openai",
        "base_instructions": None,
    })
    yield _line(created, "turn_context", {
        "cwd": cwd,
        "approval_policy": "on-request",
        "sandbox_policy": {"type": "read-only"},
        "model": meta.model or "gpt-5",
        "summary": "auto",
    })
    yield from _native_lines(conv.messages, 0, True)
