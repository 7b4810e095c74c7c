"""Reader of the legacy v2 history (the Rust ``SessionStore``'s files).

See ``LEGACY_V2.md`` for the byte format. This module only reads: it never
modifies, renames or deletes a legacy file, and it refuses symbolic links
rather than following them out of the history directory.

Every way a file can be damaged (empty, truncated, trailing bytes, wrong
magic or version, corrupt zstd, undecodable msgpack, a value of the wrong
shape, more output than ``max_output``) is reported as
:class:`LegacyFormatError` naming the file and the reason; nothing else
escapes the decoders.

Interpretation choices beyond the letter of the format:

* Timestamps: any RFC 3339 offset is accepted and converted to UTC; 1 to 9
  fraction digits are accepted and truncated to microseconds (Python's
  resolution), so nanoseconds are lost. A leap second (``:60``) reads as
  ``:59.999999``.
* Structs are read from arrays (field order) or from maps keyed by field name
  (unknown names ignored, missing ``Option`` fields read as ``None``). An
  array with more or fewer fields than the struct is an error, except that a
  ``SessionState`` array of 6 fields is read as the older layout without the
  serde-default ``active_panel``/``panel_sizes``.
* Tagged enums are an array with the tag first, or a map with a ``type``
  key. An unknown ``ResponseItem``/``ContentItem``/``ReasoningSummary`` tag
  is kept verbatim (the decoded array or map) in ``UnknownItem``/
  ``UnknownContent``/``UnknownSummary``. The entries of ``reasoning.content``
  decode like message content items.
* A ``Uuid`` is 16 bytes of bin (also accepted: its text form, which the
  ``uuid`` crate reads too).
* msgpack maps inside verbatim data may have non-string keys; they are kept.
* ``SessionMetadata.format_version`` keeps the value in the file (2).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID

import attrs
import msgpack
import zstandard

from journal._errors import InvalidArgument, JournalError
from journal._model import (
    AstIndexState,
    CheckpointMetadata,
    ContentItem,
    ConversationContext,
    ConversationSnapshot,
    EmbeddingCacheState,
    FileContext,
    FilterSettings,
    FunctionCall,
    FunctionCallOutput,
    InputImage,
    InputText,
    LocalShellAction,
    LocalShellCall,
    Message,
    MessageMetadata,
    MessageSnapshot,
    OperatingMode,
    OutputText,
    Reasoning,
    ReasoningSummary,
    ResponseItem,
    SessionMetadata,
    SessionState,
    SummaryText,
    ToolCallMetadata,
    UnknownContent,
    UnknownItem,
    UnknownSummary,
)
from journal._wire import checked

__all__ = [
    "DEFAULT_MAX_OUTPUT",
    "LEGACY_MAGIC",
    "LEGACY_VERSION",
    "LegacyCheckpointFile",
    "LegacyFormatError",
    "LegacyInventory",
    "LegacyProblem",
    "LegacySession",
    "LegacySessionFile",
    "decode_legacy_checkpoint_bytes",
    "decode_legacy_session_bytes",
    "read_legacy_checkpoint",
    "read_legacy_session",
    "scan_legacy_root",
]

LEGACY_MAGIC = b"AGCX"
LEGACY_VERSION = 2
DEFAULT_MAX_OUTPUT = 1 << 30
"""Default cap on the decompressed size of one legacy file (1 GiB)."""

_HEADER_LEN = 16
# One zstd block yields at most 128 KiB and takes at least a few bytes, so
# feeding ``room // 2**16`` input bytes at a time can never overshoot the cap
# by more than one small step's worth of output.
_EXPANSION_BOUND = 1 << 16
_MIN_STEP = 256


class LegacyFormatError(JournalError):
    """A legacy ``.agcx``/``.ckpt`` file (or name) cannot be read.

    ``path`` is the file (or the ``source`` label given to a bytes decoder) and
    ``reason`` says what is wrong with it. The file itself is left untouched.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(
            f"cannot read legacy file {self.path}: {reason} "
            "(the file is left as it is; other files can still be imported)"
        )


@attrs.frozen
class LegacySession:
    """The content of one legacy ``.agcx`` file (``SessionData``)."""

    metadata: SessionMetadata
    conversation: ConversationSnapshot
    state: SessionState
    checksum: int | None


@attrs.frozen
class LegacySessionFile:
    """``sessions/<session-uuid>.agcx``."""

    path: Path
    session_id: UUID


@attrs.frozen
class LegacyCheckpointFile:
    """``checkpoints/<session-uuid>_<checkpoint-uuid>.ckpt``."""

    path: Path
    session_id: UUID
    checkpoint_id: UUID


@attrs.frozen
class LegacyProblem:
    """A directory entry that looks like a legacy file but cannot be used."""

    path: Path
    reason: str


@attrs.frozen
class LegacyInventory:
    """What :func:`scan_legacy_root` found, sorted by path."""

    root: Path
    sessions: tuple[LegacySessionFile, ...]
    checkpoints: tuple[LegacyCheckpointFile, ...]
    problems: tuple[LegacyProblem, ...]


class _Bad(Exception):
    """A value inside the msgpack document has the wrong shape."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}" if where else what)


def _desc(v: object) -> str:
    return f"{type(v).__name__} {v!r:.60}"


# --------------------------------------------------------------------------
# Container: header, zstd, msgpack


def _unwrap(data: bytes, source: str, max_output: int) -> bytes:
    n = len(data)
    if n == 0:
        raise LegacyFormatError(source, "empty file")
    if n < _HEADER_LEN:
        raise LegacyFormatError(
            source, f"truncated header: {n} bytes, a legacy file starts with {_HEADER_LEN}"
        )
    if data[:4] != LEGACY_MAGIC:
        raise LegacyFormatError(source, f"bad magic {bytes(data[:4])!r}, expected b'AGCX'")
    version = int.from_bytes(data[4:8], "little")
    if version != LEGACY_VERSION:
        hint = " (a journal segment, not a legacy file)" if version == 3 else ""
        raise LegacyFormatError(source, f"format version {version}, expected 2{hint}")
    declared = int.from_bytes(data[8:16], "little")
    actual = n - _HEADER_LEN
    if declared > actual:
        raise LegacyFormatError(
            source,
            f"truncated: the header declares {declared} bytes of payload, the file has {actual}",
        )
    if declared < actual:
        raise LegacyFormatError(
            source,
            f"{actual - declared} bytes of trailing garbage after the {declared}-byte payload",
        )
    if declared == 0:
        raise LegacyFormatError(source, "the header declares an empty payload")
    return _decompress(memoryview(data)[_HEADER_LEN:], source, max_output)


def _decompress(payload: memoryview, source: str, max_output: int) -> bytes:
    # The frame declares no content size, so stream it with a cap. A frame cut
    # short decompresses to less without any zstd error: eof tells them apart.
    dctx = zstandard.ZstdDecompressor()
    out = bytearray()
    pos = 0
    n = len(payload)
    try:
        while pos < n:
            dobj = dctx.decompressobj()
            while not dobj.eof:
                if pos >= n:
                    raise LegacyFormatError(source, "truncated zstd frame (its end is missing)")
                step = max(_MIN_STEP, (max_output - len(out)) // _EXPANSION_BOUND)
                chunk = payload[pos : pos + step]
                pos += len(chunk)
                out += dobj.decompress(chunk)
                if len(out) > max_output:
                    raise LegacyFormatError(
                        source, f"decompresses to more than max_output={max_output} bytes"
                    )
            pos -= len(dobj.unused_data)
    except zstandard.ZstdError as exc:
        raise LegacyFormatError(source, f"corrupt zstd data: {exc}") from None
    return bytes(out)


def _unpack(raw: bytes, source: str) -> Any:
    n = len(raw)
    if n == 0:
        raise LegacyFormatError(source, "the zstd payload decompresses to nothing")
    # Every container entry takes at least one byte (two for a map entry), so
    # limits relative to the input size reject absurd headers before any
    # allocation without refusing anything valid.
    unpacker = msgpack.Unpacker(
        raw=False,
        strict_map_key=False,
        max_buffer_size=n,
        max_str_len=n,
        max_bin_len=n,
        max_ext_len=n,
        max_array_len=n,
        max_map_len=n // 2,
    )
    unpacker.feed(raw)
    try:
        obj = unpacker.unpack()
    except msgpack.OutOfData:
        raise LegacyFormatError(source, "truncated msgpack document") from None
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as exc:
        raise LegacyFormatError(source, f"undecodable msgpack: {exc}") from None
    if unpacker.tell() != n:
        raise LegacyFormatError(source, f"{n - unpacker.tell()} bytes after the msgpack document")
    return obj


# --------------------------------------------------------------------------
# Primitives


def _str(v: object, where: str) -> str:
    if not isinstance(v, str):
        raise _Bad(where, f"expected a string, got {_desc(v)}")
    return v


def _opt_str(v: object, where: str) -> str | None:
    return None if v is None else _str(v, where)


def _bool(v: object, where: str) -> bool:
    if not isinstance(v, bool):
        raise _Bad(where, f"expected a bool, got {_desc(v)}")
    return v


def _uint(v: object, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise _Bad(where, f"expected an unsigned integer, got {_desc(v)}")
    return v


def _opt_uint(v: object, where: str) -> int | None:
    return None if v is None else _uint(v, where)


def _f32(v: object, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _Bad(where, f"expected a float, got {_desc(v)}")
    return float(v)


def _list(v: object, where: str) -> list[Any]:
    if not isinstance(v, list):
        raise _Bad(where, f"expected an array, got {_desc(v)}")
    return v


def _pair(v: object, where: str) -> tuple[Any, Any]:
    p = _list(v, where)
    if len(p) != 2:
        raise _Bad(where, f"expected a 2-tuple, got {len(p)} elements")
    return p[0], p[1]


def _str_list(v: object, where: str) -> tuple[str, ...]:
    return tuple([_str(x, f"{where}[{i}]") for i, x in enumerate(_list(v, where))])


def _uuid(v: object, where: str) -> UUID:
    if isinstance(v, bytes) and len(v) == 16:
        return UUID(bytes=v)
    if isinstance(v, str):
        try:
            return UUID(v)
        except ValueError:
            pass
    raise _Bad(where, f"expected a UUID (16 bytes), got {_desc(v)}")


def _opt_uuid(v: object, where: str) -> UUID | None:
    return None if v is None else _uuid(v, where)


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


def _datetime(v: object, where: str) -> datetime:
    if not isinstance(v, str):
        raise _Bad(where, f"expected an RFC 3339 timestamp string, got {_desc(v)}")
    m = _RFC3339.fullmatch(v)
    if m is None:
        raise _Bad(where, f"not an RFC 3339 timestamp: {v!r:.60}")
    year, month, day, hour, minute, second, frac, z, sign, oh, om = m.groups()
    micro = int((frac or "0").ljust(6, "0")[:6])
    sec = int(second)
    if sec == 60:
        # chrono writes a leap second as :60; datetime has no room for it.
        sec, micro = 59, 999_999
    try:
        if z:
            tz = UTC
        else:
            offset = timedelta(hours=int(oh), minutes=int(om))
            tz = timezone(-offset if sign == "-" else offset)
        dt = datetime(int(year), int(month), int(day), int(hour), int(minute), sec, micro, tz)
        return dt if tz is UTC else dt.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise _Bad(where, f"invalid timestamp {v!r:.60}: {exc}") from None


_MODES = {"Plan": OperatingMode.PLAN, "Build": OperatingMode.BUILD, "Review": OperatingMode.REVIEW}


def _mode(v: object, where: str) -> OperatingMode:
    mode = _MODES.get(v) if isinstance(v, str) else None
    if mode is None:
        raise _Bad(where, f"expected 'Plan', 'Build' or 'Review', got {_desc(v)}")
    return mode


# --------------------------------------------------------------------------
# Structs: an array of field values in declaration order, or a map keyed by
# field name (rmp-serde reads both).


@attrs.frozen
class _Struct:
    name: str
    fields: tuple[str, ...]
    # Option<T> fields: a map without them reads None (serde's rule).
    options: frozenset[str] = frozenset()
    # #[serde(default)] fields: raw values used when absent.
    defaults: Mapping[str, Any] = attrs.field(factory=dict)
    # Older array layouts, by length: which fields they hold.
    layouts: Mapping[int, tuple[str, ...]] = attrs.field(factory=dict)

    def read(self, v: object, where: str) -> dict[str, Any]:
        if isinstance(v, list):
            names = self.fields
            if len(v) != len(names):
                names = self.layouts.get(len(v), ())
                if not names:
                    raise _Bad(
                        where,
                        f"{self.name}: expected {len(self.fields)} fields, got {len(v)}",
                    )
            out = dict(zip(names, v, strict=True))
            for f in self.fields:
                if f not in out:
                    out[f] = self.defaults[f]
            return out
        if isinstance(v, dict):
            out = {}
            for f in self.fields:
                if f in v:
                    out[f] = v[f]
                elif f in self.defaults:
                    out[f] = self.defaults[f]
                elif f in self.options:
                    out[f] = None
                else:
                    raise _Bad(where, f"{self.name}: missing field {f!r}")
            return out
        raise _Bad(where, f"{self.name}: expected an array or map, got {_desc(v)}")


def _s(name: str, fields: str, options: str = "", **kw: Any) -> _Struct:
    return _Struct(name, tuple(fields.split()), frozenset(options.split()), **kw)


_SESSION_DATA = _s("SessionData", "metadata conversation state checksum", "checksum")
_SESSION_METADATA = _s(
    "SessionMetadata",
    "id title created_at updated_at last_accessed message_count turn_count current_mode "
    "model tags is_favorite file_size compression_ratio format_version checkpoints",
)
_CHECKPOINT_METADATA = _s(
    "CheckpointMetadata", "id name created_at message_index description", "description"
)
_CONVERSATION = _s("ConversationSnapshot", "id messages context mode_history")
_MESSAGE_SNAPSHOT = _s("MessageSnapshot", "item timestamp turn_index metadata")
_MESSAGE_METADATA = _s(
    "MessageMetadata",
    "edited edit_history branch_point branch_id parent_message_id message_id "
    "file_context tool_calls",
    "branch_id parent_message_id",
)
_FILE_CONTEXT = _s("FileContext", "path line_range snippet language", "line_range snippet language")
_TOOL_CALL = _s("ToolCallMetadata", "tool_name execution_time_ms success error", "error")
_CONTEXT = _s(
    "ConversationContext",
    "working_directory environment_variables open_files ast_index_state embedding_cache",
    "ast_index_state embedding_cache",
)
_AST = _s("AstIndexState", "indexed_files total_symbols cache_size_bytes last_update")
_EMBEDDING = _s("EmbeddingCacheState", "cached_chunks model cache_size_bytes")
_STATE = _s(
    "SessionState",
    "cursor_position scroll_offset selected_message expanded_messages active_panel "
    "panel_sizes search_query filter_settings",
    "selected_message search_query",
    defaults={"active_panel": "", "panel_sizes": {}},
    layouts={
        6: (
            "cursor_position",
            "scroll_offset",
            "selected_message",
            "expanded_messages",
            "search_query",
            "filter_settings",
        )
    },
)
_FILTER = _s(
    "FilterSettings",
    "show_system show_tool_calls show_reasoning role_filter date_range",
    "role_filter date_range",
)
_SHELL_ACTION = _s(
    "LocalShellAction", "command timeout_ms working_directory", "timeout_ms working_directory"
)
# ResponseItem variants (fields after the tag).
_V_MESSAGE = _s("message", "id role content", "id")
_V_REASONING_3 = _s("reasoning", "id summary encrypted_content", "encrypted_content")
_V_REASONING_4 = _s(
    "reasoning", "id summary content encrypted_content", "content encrypted_content"
)
_V_SHELL = _s("local_shell_call", "id call_id status action", "id call_id")
_V_FUNCTION_CALL = _s("function_call", "id name arguments call_id", "id")
_V_FUNCTION_OUTPUT = _s("function_call_output", "call_id output")
_V_TEXT = _s("text", "text")
_V_IMAGE = _s("input_image", "image_url")


def _tagged(v: object, where: str) -> tuple[str, Any]:
    """Split an internally tagged enum value into its tag and its field values."""
    if isinstance(v, list):
        if not v or not isinstance(v[0], str):
            raise _Bad(where, f"expected an array starting with a type tag, got {_desc(v)}")
        return v[0], v[1:]
    if isinstance(v, dict):
        tag = v.get("type")
        if not isinstance(tag, str):
            raise _Bad(where, f"expected a map with a string 'type', got {_desc(v)}")
        return tag, v
    raise _Bad(where, f"expected a tagged array or map, got {_desc(v)}")


# --------------------------------------------------------------------------
# Response items


def _content(v: object, where: str) -> ContentItem:
    tag, body = _tagged(v, where)
    if tag == "input_text":
        return InputText(_str(_V_TEXT.read(body, where)["text"], f"{where}.text"))
    if tag == "output_text":
        return OutputText(_str(_V_TEXT.read(body, where)["text"], f"{where}.text"))
    if tag == "input_image":
        url = _V_IMAGE.read(body, where)["image_url"]
        return InputImage(_str(url, f"{where}.image_url"))
    return UnknownContent(_verbatim(v))


def _verbatim(v: object) -> Any:
    # What the legacy reader keeps of an unknown variant: the decoded array or map.
    return v


def _contents(v: object, where: str) -> tuple[ContentItem, ...]:
    return tuple([_content(c, f"{where}[{i}]") for i, c in enumerate(_list(v, where))])


def _summary(v: object, where: str) -> ReasoningSummary:
    tag, body = _tagged(v, where)
    if tag == "summary_text":
        return SummaryText(_str(_V_TEXT.read(body, where)["text"], f"{where}.text"))
    return UnknownSummary(_verbatim(v))


def _item(v: object, where: str) -> ResponseItem:
    tag, body = _tagged(v, where)
    if tag == "message":
        f = _V_MESSAGE.read(body, where)
        return Message(
            _str(f["role"], f"{where}.role"),
            _contents(f["content"], f"{where}.content"),
            _opt_str(f["id"], f"{where}.id"),
        )
    if tag == "reasoning":
        # Builds with the optional `content` field write 4 fields (3 when it
        # was None); a map names them.
        three = isinstance(body, list) and len(body) == 3
        spec = _V_REASONING_3 if three else _V_REASONING_4
        f = spec.read(body, where)
        content = f.get("content")
        summary = _list(f["summary"], f"{where}.summary")
        return Reasoning(
            _str(f["id"], f"{where}.id"),
            tuple([_summary(s, f"{where}.summary[{i}]") for i, s in enumerate(summary)]),
            _opt_str(f["encrypted_content"], f"{where}.encrypted_content"),
            None if content is None else _contents(content, f"{where}.content"),
        )
    if tag == "local_shell_call":
        f = _V_SHELL.read(body, where)
        aw = f"{where}.action"
        a = _SHELL_ACTION.read(f["action"], aw)
        action = LocalShellAction(
            _str_list(a["command"], f"{aw}.command"),
            _opt_uint(a["timeout_ms"], f"{aw}.timeout_ms"),
            _opt_str(a["working_directory"], f"{aw}.working_directory"),
        )
        return LocalShellCall(
            _str(f["status"], f"{where}.status"),
            action,
            _opt_str(f["id"], f"{where}.id"),
            _opt_str(f["call_id"], f"{where}.call_id"),
        )
    if tag == "function_call":
        f = _V_FUNCTION_CALL.read(body, where)
        return FunctionCall(
            _str(f["name"], f"{where}.name"),
            _str(f["arguments"], f"{where}.arguments"),
            _str(f["call_id"], f"{where}.call_id"),
            _opt_str(f["id"], f"{where}.id"),
        )
    if tag == "function_call_output":
        f = _V_FUNCTION_OUTPUT.read(body, where)
        return FunctionCallOutput(
            _str(f["call_id"], f"{where}.call_id"), _str(f["output"], f"{where}.output")
        )
    return UnknownItem(_verbatim(v))


# --------------------------------------------------------------------------
# Conversation


def _file_context(v: object, where: str) -> FileContext:
    f = _FILE_CONTEXT.read(v, where)
    lr = f["line_range"]
    line_range = None
    if lr is not None:
        a, b = _pair(lr, f"{where}.line_range")
        line_range = (_uint(a, f"{where}.line_range[0]"), _uint(b, f"{where}.line_range[1]"))
    return FileContext(
        _str(f["path"], f"{where}.path"),
        line_range,
        _opt_str(f["snippet"], f"{where}.snippet"),
        _opt_str(f["language"], f"{where}.language"),
    )


def _tool_call(v: object, where: str) -> ToolCallMetadata:
    f = _TOOL_CALL.read(v, where)
    return ToolCallMetadata(
        _str(f["tool_name"], f"{where}.tool_name"),
        _uint(f["execution_time_ms"], f"{where}.execution_time_ms"),
        _bool(f["success"], f"{where}.success"),
        _opt_str(f["error"], f"{where}.error"),
    )


def _message_metadata(v: object, where: str) -> MessageMetadata:
    f = _MESSAGE_METADATA.read(v, where)
    history = []
    for i, e in enumerate(_list(f["edit_history"], f"{where}.edit_history")):
        ew = f"{where}.edit_history[{i}]"
        t, it = _pair(e, ew)
        history.append((_datetime(t, f"{ew}[0]"), _item(it, f"{ew}[1]")))
    fcs = _list(f["file_context"], f"{where}.file_context")
    tcs = _list(f["tool_calls"], f"{where}.tool_calls")
    return MessageMetadata(
        _bool(f["edited"], f"{where}.edited"),
        tuple(history),
        _bool(f["branch_point"], f"{where}.branch_point"),
        _opt_uuid(f["branch_id"], f"{where}.branch_id"),
        _opt_uuid(f["parent_message_id"], f"{where}.parent_message_id"),
        _uuid(f["message_id"], f"{where}.message_id"),
        tuple([_file_context(x, f"{where}.file_context[{i}]") for i, x in enumerate(fcs)]),
        tuple([_tool_call(x, f"{where}.tool_calls[{i}]") for i, x in enumerate(tcs)]),
    )


def _message(v: object, where: str) -> MessageSnapshot:
    f = _MESSAGE_SNAPSHOT.read(v, where)
    return MessageSnapshot(
        _item(f["item"], f"{where}.item"),
        _datetime(f["timestamp"], f"{where}.timestamp"),
        _uint(f["turn_index"], f"{where}.turn_index"),
        _message_metadata(f["metadata"], f"{where}.metadata"),
    )


def _str_map(v: object, where: str) -> dict[str, str]:
    if not isinstance(v, dict):
        raise _Bad(where, f"expected a map, got {_desc(v)}")
    return {_str(k, f"{where} key"): _str(x, f"{where}[{k!r}]") for k, x in v.items()}


def _context(v: object, where: str) -> ConversationContext:
    f = _CONTEXT.read(v, where)
    ast = None
    if f["ast_index_state"] is not None:
        aw = f"{where}.ast_index_state"
        a = _AST.read(f["ast_index_state"], aw)
        ast = AstIndexState(
            _str_list(a["indexed_files"], f"{aw}.indexed_files"),
            _uint(a["total_symbols"], f"{aw}.total_symbols"),
            _uint(a["cache_size_bytes"], f"{aw}.cache_size_bytes"),
            _datetime(a["last_update"], f"{aw}.last_update"),
        )
    emb = None
    if f["embedding_cache"] is not None:
        ew = f"{where}.embedding_cache"
        e = _EMBEDDING.read(f["embedding_cache"], ew)
        emb = EmbeddingCacheState(
            _uint(e["cached_chunks"], f"{ew}.cached_chunks"),
            _str(e["model"], f"{ew}.model"),
            _uint(e["cache_size_bytes"], f"{ew}.cache_size_bytes"),
        )
    return ConversationContext(
        _str(f["working_directory"], f"{where}.working_directory"),
        _str_map(f["environment_variables"], f"{where}.environment_variables"),
        _str_list(f["open_files"], f"{where}.open_files"),
        ast,
        emb,
    )


def _conversation(v: object, where: str) -> ConversationSnapshot:
    f = _CONVERSATION.read(v, where)
    messages = _list(f["messages"], f"{where}.messages")
    modes = []
    for i, p in enumerate(_list(f["mode_history"], f"{where}.mode_history")):
        mw = f"{where}.mode_history[{i}]"
        m, t = _pair(p, mw)
        modes.append((_mode(m, f"{mw}[0]"), _datetime(t, f"{mw}[1]")))
    return ConversationSnapshot(
        _uuid(f["id"], f"{where}.id"),
        tuple([_message(m, f"{where}.messages[{i}]") for i, m in enumerate(messages)]),
        _context(f["context"], f"{where}.context"),
        tuple(modes),
    )


def _state(v: object, where: str) -> SessionState:
    f = _STATE.read(v, where)
    fw = f"{where}.filter_settings"
    fs = _FILTER.read(f["filter_settings"], fw)
    date_range = None
    if fs["date_range"] is not None:
        a, b = _pair(fs["date_range"], f"{fw}.date_range")
        date_range = (_datetime(a, f"{fw}.date_range[0]"), _datetime(b, f"{fw}.date_range[1]"))
    panels = f["panel_sizes"]
    if not isinstance(panels, dict):
        raise _Bad(f"{where}.panel_sizes", f"expected a map, got {_desc(panels)}")
    expanded = _list(f["expanded_messages"], f"{where}.expanded_messages")
    return SessionState(
        _uint(f["cursor_position"], f"{where}.cursor_position"),
        _uint(f["scroll_offset"], f"{where}.scroll_offset"),
        _opt_uuid(f["selected_message"], f"{where}.selected_message"),
        tuple([_uuid(u, f"{where}.expanded_messages[{i}]") for i, u in enumerate(expanded)]),
        _str(f["active_panel"], f"{where}.active_panel"),
        {
            _str(k, f"{where}.panel_sizes key"): _f32(x, f"{where}.panel_sizes[{k!r}]")
            for k, x in panels.items()
        },
        _opt_str(f["search_query"], f"{where}.search_query"),
        FilterSettings(
            _bool(fs["show_system"], f"{fw}.show_system"),
            _bool(fs["show_tool_calls"], f"{fw}.show_tool_calls"),
            _bool(fs["show_reasoning"], f"{fw}.show_reasoning"),
            _opt_str(fs["role_filter"], f"{fw}.role_filter"),
            date_range,
        ),
    )


# --------------------------------------------------------------------------
# Session metadata


def _checkpoint_meta(v: object, where: str) -> CheckpointMetadata:
    f = _CHECKPOINT_METADATA.read(v, where)
    return CheckpointMetadata(
        _uuid(f["id"], f"{where}.id"),
        _str(f["name"], f"{where}.name"),
        _datetime(f["created_at"], f"{where}.created_at"),
        _uint(f["message_index"], f"{where}.message_index"),
        _opt_str(f["description"], f"{where}.description"),
    )


def _session_metadata(v: object, where: str) -> SessionMetadata:
    f = _SESSION_METADATA.read(v, where)
    checkpoints = _list(f["checkpoints"], f"{where}.checkpoints")
    return SessionMetadata(
        id=_uuid(f["id"], f"{where}.id"),
        title=_str(f["title"], f"{where}.title"),
        created_at=_datetime(f["created_at"], f"{where}.created_at"),
        updated_at=_datetime(f["updated_at"], f"{where}.updated_at"),
        last_accessed=_datetime(f["last_accessed"], f"{where}.last_accessed"),
        message_count=_uint(f["message_count"], f"{where}.message_count"),
        turn_count=_uint(f["turn_count"], f"{where}.turn_count"),
        current_mode=_mode(f["current_mode"], f"{where}.current_mode"),
        model=_str(f["model"], f"{where}.model"),
        tags=_str_list(f["tags"], f"{where}.tags"),
        is_favorite=_bool(f["is_favorite"], f"{where}.is_favorite"),
        file_size=_uint(f["file_size"], f"{where}.file_size"),
        compression_ratio=_f32(f["compression_ratio"], f"{where}.compression_ratio"),
        format_version=_uint(f["format_version"], f"{where}.format_version"),
        checkpoints=tuple(
            [_checkpoint_meta(c, f"{where}.checkpoints[{i}]") for i, c in enumerate(checkpoints)]
        ),
    )


def _session_data(v: object) -> LegacySession:
    f = _SESSION_DATA.read(v, "SessionData")
    checksum = f["checksum"]
    session = LegacySession(
        _session_metadata(f["metadata"], "metadata"),
        _conversation(f["conversation"], "conversation"),
        _state(f["state"], "state"),
        None if checksum is None else _uint(checksum, "checksum"),
    )
    # The model's constructors do not check types: msgspec does, in C.
    checked(session.metadata, SessionMetadata, "metadata")
    checked(session.conversation, ConversationSnapshot, "conversation")
    checked(session.state, SessionState, "state")
    return session


def _checkpoint_data(v: object) -> tuple[ConversationSnapshot, SessionState]:
    conv, state = _pair(v, "checkpoint (ConversationSnapshot, SessionState)")
    out = _conversation(conv, "conversation"), _state(state, "state")
    checked(out[0], ConversationSnapshot, "conversation")
    checked(out[1], SessionState, "state")
    return out


# --------------------------------------------------------------------------
# Entry points


def _decode(data: bytes, source: str, max_output: int, build: Callable[[Any], Any]) -> Any:
    doc = _unpack(_unwrap(data, source, max_output), source)
    try:
        return build(doc)
    except _Bad as exc:
        raise LegacyFormatError(source, f"unexpected content at {exc}") from None
    except (InvalidArgument, ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        # The shape checks above should catch everything; this keeps the
        # "only LegacyFormatError" promise if one was missed.
        raise LegacyFormatError(source, f"invalid content: {exc}") from exc


def decode_legacy_session_bytes(
    data: bytes, *, source: str, max_output: int = DEFAULT_MAX_OUTPUT
) -> LegacySession:
    """Decode the bytes of a legacy ``.agcx`` file (no I/O).

    ``source`` names the data in errors. Raises :class:`LegacyFormatError`.
    """
    result: LegacySession = _decode(data, source, max_output, _session_data)
    return result


def decode_legacy_checkpoint_bytes(
    data: bytes, *, source: str, max_output: int = DEFAULT_MAX_OUTPUT
) -> tuple[ConversationSnapshot, SessionState]:
    """Decode the bytes of a legacy ``.ckpt`` file (no I/O).

    ``source`` names the data in errors. Raises :class:`LegacyFormatError`.
    """
    result: tuple[ConversationSnapshot, SessionState] = _decode(
        data, source, max_output, _checkpoint_data
    )
    return result


def _read_regular_file(path: Path) -> bytes:
    # O_NOFOLLOW makes the symlink refusal race-free; lstat first gives the
    # clearer message in the common case.
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise LegacyFormatError(path, f"cannot stat: {exc.strerror or exc}") from None
    if stat.S_ISLNK(st.st_mode):
        raise LegacyFormatError(path, "is a symbolic link; refusing to follow it")
    if not stat.S_ISREG(st.st_mode):
        raise LegacyFormatError(path, "not a regular file")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise LegacyFormatError(path, f"cannot open: {exc.strerror or exc}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LegacyFormatError(path, "not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    except OSError as exc:
        raise LegacyFormatError(path, f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def read_legacy_session(path: Path, *, max_output: int = DEFAULT_MAX_OUTPUT) -> LegacySession:
    """Read one legacy ``sessions/<id>.agcx`` file.

    Raises :class:`LegacyFormatError` (with the path and the reason) for a
    damaged or unreadable file, or a symbolic link. Never modifies the file.
    """
    path = Path(path)
    return decode_legacy_session_bytes(
        _read_regular_file(path), source=str(path), max_output=max_output
    )


def read_legacy_checkpoint(
    path: Path, *, max_output: int = DEFAULT_MAX_OUTPUT
) -> tuple[ConversationSnapshot, SessionState]:
    """Read one legacy ``checkpoints/<session>_<checkpoint>.ckpt`` file.

    Raises :class:`LegacyFormatError` like :func:`read_legacy_session`.
    """
    path = Path(path)
    return decode_legacy_checkpoint_bytes(
        _read_regular_file(path), source=str(path), max_output=max_output
    )


def _parse_uuid(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None


def _entries(
    root: Path, sub: str, suffix: str, problems: list[LegacyProblem]
) -> list[tuple[Path, str]]:
    """Regular files ``root/sub/*suffix`` (with their stems); the rest become problems."""
    d = root / sub
    try:
        st = os.lstat(d)
    except FileNotFoundError:
        return []
    except OSError as exc:
        problems.append(LegacyProblem(d, f"cannot stat: {exc.strerror or exc}"))
        return []
    if stat.S_ISLNK(st.st_mode):
        problems.append(LegacyProblem(d, "is a symbolic link; refusing to follow it"))
        return []
    if not stat.S_ISDIR(st.st_mode):
        problems.append(LegacyProblem(d, "not a directory"))
        return []
    try:
        names = sorted(os.listdir(d))
    except OSError as exc:
        problems.append(LegacyProblem(d, f"cannot list: {exc.strerror or exc}"))
        return []
    out = []
    for name in names:
        if not name.endswith(suffix):
            continue  # not a legacy file of this kind (the seed wrote no others here)
        p = d / name
        try:
            mode = os.lstat(p).st_mode
        except OSError as exc:
            problems.append(LegacyProblem(p, f"cannot stat: {exc.strerror or exc}"))
            continue
        if stat.S_ISLNK(mode):
            problems.append(LegacyProblem(p, "is a symbolic link; refusing to follow it"))
        elif not stat.S_ISREG(mode):
            problems.append(LegacyProblem(p, "not a regular file"))
        else:
            out.append((p, name[: -len(suffix)]))
    return out


def scan_legacy_root(root: Path) -> LegacyInventory:
    """List the legacy session and checkpoint files under ``root``.

    Finds ``sessions/*.agcx`` and ``checkpoints/<session>_<checkpoint>.ckpt``;
    a file whose name does not parse, a symbolic link or a non-regular file is
    listed under ``problems`` rather than raising. Reads directory entries
    only: file contents are not opened and nothing is modified. Raises
    :class:`LegacyFormatError` if ``root`` is not a directory.
    """
    root = Path(root)
    if not root.is_dir():
        raise LegacyFormatError(root, "not a directory (expected a legacy history root)")
    problems: list[LegacyProblem] = []
    sessions = []
    for p, stem in _entries(root, "sessions", ".agcx", problems):
        sid = _parse_uuid(stem)
        if sid is None:
            problems.append(LegacyProblem(p, f"file name {stem!r} is not a session UUID"))
        else:
            sessions.append(LegacySessionFile(p, sid))
    checkpoints = []
    for p, stem in _entries(root, "checkpoints", ".ckpt", problems):
        parts = stem.split("_")
        sid = _parse_uuid(parts[0]) if len(parts) == 2 else None
        cid = _parse_uuid(parts[1]) if len(parts) == 2 else None
        if sid is None or cid is None:
            problems.append(
                LegacyProblem(p, f"file name {stem!r} is not <session-uuid>_<checkpoint-uuid>")
            )
        else:
            checkpoints.append(LegacyCheckpointFile(p, sid, cid))
    return LegacyInventory(
        root, tuple(sessions), tuple(checkpoints), tuple(sorted(problems, key=lambda x: x.path))
    )
