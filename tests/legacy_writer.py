"""An independent encoder of legacy v2 files, written from LEGACY_V2.md.

It shares nothing with ``journal._legacy`` (the reader under test): msgpack is
hand-encoded here the way ``rmp_serde::to_vec`` writes it (structs as arrays of
fields in declaration order, smallest integer forms, ``Uuid`` as bin 16,
``DateTime`` as RFC 3339 text with ``Z`` and 0/3/6 fraction digits, unit enum
variants as their names, internally tagged enums as arrays with the tag
first), and the zstd frame is written by a streaming compressor so it declares
no content size and carries no checksum.

``LegacyWriter(as_map=True)`` writes structs and tagged enums as maps keyed by
field name instead (which rmp-serde also reads); ``timestamp`` replaces the
datetime formatter, to produce other offsets or nanosecond fractions.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID

import zstandard

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

# ---------------------------------------------------------------- msgpack primitives


def nil() -> bytes:
    return b"\xc0"


def boolean(v: bool) -> bytes:
    return b"\xc3" if v else b"\xc2"


def uint(v: int) -> bytes:
    assert v >= 0
    if v < 0x80:
        return bytes([v])
    if v < 0x100:
        return b"\xcc" + struct.pack(">B", v)
    if v < 0x10000:
        return b"\xcd" + struct.pack(">H", v)
    if v < 0x1_0000_0000:
        return b"\xce" + struct.pack(">I", v)
    return b"\xcf" + struct.pack(">Q", v)


def sint(v: int) -> bytes:
    if v >= 0:
        return uint(v)
    if v >= -32:
        return struct.pack(">b", v)
    if v >= -0x80:
        return b"\xd0" + struct.pack(">b", v)
    if v >= -0x8000:
        return b"\xd1" + struct.pack(">h", v)
    if v >= -0x8000_0000:
        return b"\xd2" + struct.pack(">i", v)
    return b"\xd3" + struct.pack(">q", v)


def f32(v: float) -> bytes:
    return b"\xca" + struct.pack(">f", v)


def f64(v: float) -> bytes:
    return b"\xcb" + struct.pack(">d", v)


def string(s: str) -> bytes:
    b = s.encode("utf-8")
    n = len(b)
    if n < 32:
        return bytes([0xA0 | n]) + b
    if n < 0x100:
        return b"\xd9" + struct.pack(">B", n) + b
    if n < 0x10000:
        return b"\xda" + struct.pack(">H", n) + b
    return b"\xdb" + struct.pack(">I", n) + b


def binary(b: bytes) -> bytes:
    n = len(b)
    if n < 0x100:
        return b"\xc4" + struct.pack(">B", n) + b
    if n < 0x10000:
        return b"\xc5" + struct.pack(">H", n) + b
    return b"\xc6" + struct.pack(">I", n) + b


def array(items: list[bytes]) -> bytes:
    n = len(items)
    if n < 16:
        head = bytes([0x90 | n])
    elif n < 0x10000:
        head = b"\xdc" + struct.pack(">H", n)
    else:
        head = b"\xdd" + struct.pack(">I", n)
    return head + b"".join(items)


def map_(pairs: list[tuple[bytes, bytes]]) -> bytes:
    n = len(pairs)
    if n < 16:
        head = bytes([0x80 | n])
    elif n < 0x10000:
        head = b"\xde" + struct.pack(">H", n)
    else:
        head = b"\xdf" + struct.pack(">I", n)
    return head + b"".join(k + v for k, v in pairs)


def value(v: Any) -> bytes:
    """Any plain value (verbatim data of unknown variants), floats as f64."""
    if v is None:
        return nil()
    if isinstance(v, bool):
        return boolean(v)
    if isinstance(v, int):
        return sint(v)
    if isinstance(v, float):
        return f64(v)
    if isinstance(v, str):
        return string(v)
    if isinstance(v, bytes):
        return binary(v)
    if isinstance(v, list):
        return array([value(x) for x in v])
    if isinstance(v, dict):
        return map_([(value(k), value(x)) for k, x in v.items()])
    raise TypeError(f"cannot encode {type(v).__name__}")


# ---------------------------------------------------------------- chrono / uuid


def rfc3339(dt: datetime) -> str:
    """chrono's ``to_rfc3339_opts(SecondsFormat::AutoSi, true)`` of a UTC datetime."""
    dt = dt.astimezone(UTC)
    base = (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    )
    us = dt.microsecond
    if us == 0:
        frac = ""
    elif us % 1000 == 0:
        frac = f".{us // 1000:03d}"
    else:
        frac = f".{us:06d}"
    return f"{base}{frac}Z"


def rfc3339_nanos(extra: int = 789) -> Callable[[datetime], str]:
    """Always 9 fraction digits: the microseconds plus ``extra`` nanoseconds."""

    def fmt(dt: datetime) -> str:
        dt = dt.astimezone(UTC)
        ns = dt.microsecond * 1000 + extra
        return f"{dt.replace(microsecond=0, tzinfo=None).isoformat()}.{ns:09d}Z"

    return fmt


def rfc3339_offset(hours: int, minutes: int = 0) -> Callable[[datetime], str]:
    """The same instant written in another offset (``+05:30``)."""
    tz = timezone(timedelta(hours=hours, minutes=minutes if hours >= 0 else -minutes))

    def fmt(dt: datetime) -> str:
        local = dt.astimezone(tz)
        text = local.isoformat()  # includes +HH:MM and 6 fraction digits if any
        return text

    return fmt


_MODE_NAMES = {
    OperatingMode.PLAN: "Plan",
    OperatingMode.BUILD: "Build",
    OperatingMode.REVIEW: "Review",
}


class LegacyWriter:
    """Encoder of the legacy ``SessionData`` and checkpoint documents."""

    def __init__(
        self,
        *,
        as_map: bool = False,
        omit_none: bool = False,
        old_state_layout: bool = False,
        timestamp: Callable[[datetime], str] = rfc3339,
    ) -> None:
        self.as_map = as_map
        # Map form only: leave out Option fields that are None (serde reads a
        # missing Option as None).
        self.omit_none = omit_none
        # SessionState as written before the serde-default active_panel and
        # panel_sizes existed (only faithful when both are at their defaults).
        self.old_state_layout = old_state_layout
        self.timestamp = timestamp

    # -- generic shapes

    def struct(self, fields: list[tuple[str, bytes]]) -> bytes:
        if self.as_map:
            if self.omit_none:
                fields = [(k, v) for k, v in fields if v != nil()]
            return map_([(string(k), v) for k, v in fields])
        return array([v for _, v in fields])

    def tagged(self, tag: str, fields: list[tuple[str, bytes]]) -> bytes:
        return self.struct([("type", string(tag)), *fields])

    def dt(self, t: datetime) -> bytes:
        return string(self.timestamp(t))

    def uuid(self, u: UUID) -> bytes:
        return binary(u.bytes)

    def opt(self, v: Any, enc: Callable[[Any], bytes]) -> bytes:
        return nil() if v is None else enc(v)

    def strs(self, xs: tuple[str, ...]) -> bytes:
        return array([string(x) for x in xs])

    # -- response items

    def content(self, c: ContentItem) -> bytes:
        if isinstance(c, InputText):
            return self.tagged("input_text", [("text", string(c.text))])
        if isinstance(c, OutputText):
            return self.tagged("output_text", [("text", string(c.text))])
        if isinstance(c, InputImage):
            return self.tagged("input_image", [("image_url", string(c.image_url))])
        assert isinstance(c, UnknownContent)
        return value(c.data)

    def summary(self, s: ReasoningSummary) -> bytes:
        if isinstance(s, SummaryText):
            return self.tagged("summary_text", [("text", string(s.text))])
        assert isinstance(s, UnknownSummary)
        return value(s.data)

    def item(self, it: ResponseItem) -> bytes:
        if isinstance(it, Message):
            return self.tagged(
                "message",
                [
                    ("id", self.opt(it.id, string)),
                    ("role", string(it.role)),
                    ("content", array([self.content(c) for c in it.content])),
                ],
            )
        if isinstance(it, Reasoning):
            fields = [
                ("id", string(it.id)),
                ("summary", array([self.summary(s) for s in it.summary])),
            ]
            if it.content is not None:  # skip_serializing_if = "Option::is_none"
                fields.append(("content", array([self.content(c) for c in it.content])))
            fields.append(("encrypted_content", self.opt(it.encrypted_content, string)))
            return self.tagged("reasoning", fields)
        if isinstance(it, LocalShellCall):
            a = it.action
            action = self.struct(
                [
                    ("command", self.strs(a.command)),
                    ("timeout_ms", self.opt(a.timeout_ms, uint)),
                    ("working_directory", self.opt(a.working_directory, string)),
                ]
            )
            return self.tagged(
                "local_shell_call",
                [
                    ("id", self.opt(it.id, string)),
                    ("call_id", self.opt(it.call_id, string)),
                    ("status", string(it.status)),
                    ("action", action),
                ],
            )
        if isinstance(it, FunctionCall):
            return self.tagged(
                "function_call",
                [
                    ("id", self.opt(it.id, string)),
                    ("name", string(it.name)),
                    ("arguments", string(it.arguments)),
                    ("call_id", string(it.call_id)),
                ],
            )
        if isinstance(it, FunctionCallOutput):
            return self.tagged(
                "function_call_output",
                [("call_id", string(it.call_id)), ("output", string(it.output))],
            )
        assert isinstance(it, UnknownItem)
        return value(it.data)

    # -- conversation

    def file_context(self, f: FileContext) -> bytes:
        lr = f.line_range
        return self.struct(
            [
                ("path", string(f.path)),
                ("line_range", nil() if lr is None else array([uint(lr[0]), uint(lr[1])])),
                ("snippet", self.opt(f.snippet, string)),
                ("language", self.opt(f.language, string)),
            ]
        )

    def tool_call(self, t: ToolCallMetadata) -> bytes:
        return self.struct(
            [
                ("tool_name", string(t.tool_name)),
                ("execution_time_ms", uint(t.execution_time_ms)),
                ("success", boolean(t.success)),
                ("error", self.opt(t.error, string)),
            ]
        )

    def message_metadata(self, m: MessageMetadata) -> bytes:
        return self.struct(
            [
                ("edited", boolean(m.edited)),
                (
                    "edit_history",
                    array([array([self.dt(t), self.item(i)]) for t, i in m.edit_history]),
                ),
                ("branch_point", boolean(m.branch_point)),
                ("branch_id", self.opt(m.branch_id, self.uuid)),
                ("parent_message_id", self.opt(m.parent_message_id, self.uuid)),
                ("message_id", self.uuid(m.message_id)),
                ("file_context", array([self.file_context(f) for f in m.file_context])),
                ("tool_calls", array([self.tool_call(t) for t in m.tool_calls])),
            ]
        )

    def message(self, m: MessageSnapshot) -> bytes:
        return self.struct(
            [
                ("item", self.item(m.item)),
                ("timestamp", self.dt(m.timestamp)),
                ("turn_index", uint(m.turn_index)),
                ("metadata", self.message_metadata(m.metadata)),
            ]
        )

    def ast(self, a: AstIndexState) -> bytes:
        return self.struct(
            [
                ("indexed_files", self.strs(a.indexed_files)),
                ("total_symbols", uint(a.total_symbols)),
                ("cache_size_bytes", uint(a.cache_size_bytes)),
                ("last_update", self.dt(a.last_update)),
            ]
        )

    def embedding(self, e: EmbeddingCacheState) -> bytes:
        return self.struct(
            [
                ("cached_chunks", uint(e.cached_chunks)),
                ("model", string(e.model)),
                ("cache_size_bytes", uint(e.cache_size_bytes)),
            ]
        )

    def context(self, c: ConversationContext) -> bytes:
        return self.struct(
            [
                ("working_directory", string(c.working_directory)),
                (
                    "environment_variables",
                    map_([(string(k), string(v)) for k, v in c.environment_variables.items()]),
                ),
                ("open_files", self.strs(c.open_files)),
                ("ast_index_state", self.opt(c.ast_index_state, self.ast)),
                ("embedding_cache", self.opt(c.embedding_cache, self.embedding)),
            ]
        )

    def mode_pair(self, pair: tuple[OperatingMode, datetime]) -> bytes:
        return array([string(_MODE_NAMES[pair[0]]), self.dt(pair[1])])

    def conversation(self, c: ConversationSnapshot) -> bytes:
        return self.struct(
            [
                ("id", self.uuid(c.id)),
                ("messages", array([self.message(m) for m in c.messages])),
                ("context", self.context(c.context)),
                ("mode_history", array([self.mode_pair(p) for p in c.mode_history])),
            ]
        )

    # -- state and metadata

    def filter_settings(self, f: FilterSettings) -> bytes:
        dr = f.date_range
        return self.struct(
            [
                ("show_system", boolean(f.show_system)),
                ("show_tool_calls", boolean(f.show_tool_calls)),
                ("show_reasoning", boolean(f.show_reasoning)),
                ("role_filter", self.opt(f.role_filter, string)),
                ("date_range", nil() if dr is None else array([self.dt(dr[0]), self.dt(dr[1])])),
            ]
        )

    def state(self, s: SessionState) -> bytes:
        fields = [
            ("cursor_position", uint(s.cursor_position)),
            ("scroll_offset", uint(s.scroll_offset)),
            ("selected_message", self.opt(s.selected_message, self.uuid)),
            ("expanded_messages", array([self.uuid(u) for u in s.expanded_messages])),
            ("active_panel", string(s.active_panel)),
            ("panel_sizes", map_([(string(k), f32(v)) for k, v in s.panel_sizes.items()])),
            ("search_query", self.opt(s.search_query, string)),
            ("filter_settings", self.filter_settings(s.filter_settings)),
        ]
        if self.old_state_layout:
            fields = [f for f in fields if f[0] not in ("active_panel", "panel_sizes")]
        return self.struct(fields)

    def checkpoint_meta(self, c: CheckpointMetadata) -> bytes:
        return self.struct(
            [
                ("id", self.uuid(c.id)),
                ("name", string(c.name)),
                ("created_at", self.dt(c.created_at)),
                ("message_index", uint(c.message_index)),
                ("description", self.opt(c.description, string)),
            ]
        )

    def metadata(self, m: SessionMetadata) -> bytes:
        return self.struct(
            [
                ("id", self.uuid(m.id)),
                ("title", string(m.title)),
                ("created_at", self.dt(m.created_at)),
                ("updated_at", self.dt(m.updated_at)),
                ("last_accessed", self.dt(m.last_accessed)),
                ("message_count", uint(m.message_count)),
                ("turn_count", uint(m.turn_count)),
                ("current_mode", string(_MODE_NAMES[m.current_mode])),
                ("model", string(m.model)),
                ("tags", self.strs(m.tags)),
                ("is_favorite", boolean(m.is_favorite)),
                ("file_size", uint(m.file_size)),
                ("compression_ratio", f32(m.compression_ratio)),
                ("format_version", uint(m.format_version)),
                ("checkpoints", array([self.checkpoint_meta(c) for c in m.checkpoints])),
            ]
        )

    def session_data(
        self,
        metadata: SessionMetadata,
        conversation: ConversationSnapshot,
        state: SessionState,
        checksum: int | None = None,
    ) -> bytes:
        return self.struct(
            [
                ("metadata", self.metadata(metadata)),
                ("conversation", self.conversation(conversation)),
                ("state", self.state(state)),
                ("checksum", self.opt(checksum, uint)),
            ]
        )

    def checkpoint_data(self, conversation: ConversationSnapshot, state: SessionState) -> bytes:
        # A Rust tuple is always an array, whatever the struct encoding.
        return array([self.conversation(conversation), self.state(state)])


# ---------------------------------------------------------------- container


def zstd_stream(payload: bytes, level: int) -> bytes:
    """One zstd frame from a streaming encoder: no content size, no checksum."""
    cobj = zstandard.ZstdCompressor(level=level).compressobj()
    return cobj.compress(payload) + cobj.flush()


def container(frame: bytes, *, version: int = 2, magic: bytes = b"AGCX") -> bytes:
    """The 16-byte header (magic, u32 LE version, u64 LE length) and the frame."""
    return magic + version.to_bytes(4, "little") + len(frame).to_bytes(8, "little") + frame


def session_file_bytes(
    metadata: SessionMetadata,
    conversation: ConversationSnapshot,
    state: SessionState,
    checksum: int | None = None,
    *,
    writer: LegacyWriter | None = None,
) -> bytes:
    """The bytes of a ``.agcx`` file (zstd level 3)."""
    w = writer or LegacyWriter()
    return container(zstd_stream(w.session_data(metadata, conversation, state, checksum), 3))


def checkpoint_file_bytes(
    conversation: ConversationSnapshot,
    state: SessionState,
    *,
    writer: LegacyWriter | None = None,
) -> bytes:
    """The bytes of a ``.ckpt`` file (zstd level 6)."""
    w = writer or LegacyWriter()
    return container(zstd_stream(w.checkpoint_data(conversation, state), 6))


def write_session_file(
    root: Path,
    metadata: SessionMetadata,
    conversation: ConversationSnapshot,
    state: SessionState,
    checksum: int | None = None,
    *,
    writer: LegacyWriter | None = None,
) -> Path:
    """Write ``root/sessions/<metadata.id>.agcx``; return its path."""
    path = root / "sessions" / f"{metadata.id}.agcx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(session_file_bytes(metadata, conversation, state, checksum, writer=writer))
    return path


def write_checkpoint_file(
    root: Path,
    session_id: UUID,
    checkpoint_id: UUID,
    conversation: ConversationSnapshot,
    state: SessionState,
    *,
    writer: LegacyWriter | None = None,
) -> Path:
    """Write ``root/checkpoints/<session>_<checkpoint>.ckpt``; return its path."""
    path = root / "checkpoints" / f"{session_id}_{checkpoint_id}.ckpt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(checkpoint_file_bytes(conversation, state, writer=writer))
    return path
