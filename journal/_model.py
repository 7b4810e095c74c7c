"""The session data model: frozen ``msgspec.Struct`` classes.

The classes mirror the Rust ``SessionStore`` types (same field names, same
meaning) and the OpenAI Responses API: response items, content parts and
reasoning summaries are tagged unions whose tag is the API's ``type`` string,
so the same classes are the journal's msgpack records (``journal._wire``) and
Responses-API JSON (:func:`item_from_json`, :func:`item_to_json`), both
encoded and decoded in C by msgspec.

What a caller may rely on:

* values are immutable, equal when their fields are equal, and hashable
  unless they hold a mapping or verbatim unknown data;
* sequences are tuples (a list or other iterable is accepted and stored as a
  tuple); paths (``working_directory``, ``open_files``, ``FileContext.path``,
  ``indexed_files``, a shell action's ``working_directory``) accept any
  ``os.PathLike`` and are stored as text;
* mappings (``ConversationContext.environment_variables``,
  ``SessionState.panel_sizes``) are read-only ``MappingProxyType`` copies;
* datetimes must be timezone-aware (a naive one raises
  :class:`~journal._errors.InvalidArgument`) and are normalised to UTC;
* the types of the other fields are checked where a value is written, not
  where it is built: a save validates what it writes (in C) and raises
  ``InvalidArgument`` naming the class and field (``journal._wire.checked``).

Response items of a type this version does not know are kept verbatim in
:class:`UnknownItem` (likewise :class:`UnknownContent`, :class:`UnknownSummary`):
as the JSON ``dict`` they arrived as, or as the decoded msgpack array of a
legacy v2 file. Their ``data`` is stored and returned as-is; treat it as
read-only. In records they are tagged ``"?"``; in JSON they are ``data`` itself.

The normalising ``__post_init__`` hooks also run when msgspec decodes a
record; each is a type test or two on the common path.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Annotated, Any, TypeAlias
from uuid import UUID, uuid4

import msgspec

from journal._errors import InvalidArgument

__all__ = [
    "AstIndexState",
    "CheckpointMetadata",
    "ContentItem",
    "ConversationContext",
    "ConversationSnapshot",
    "EmbeddingCacheState",
    "FileContext",
    "FilterSettings",
    "FunctionCall",
    "FunctionCallOutput",
    "InputImage",
    "InputText",
    "LocalShellAction",
    "LocalShellCall",
    "Message",
    "MessageMetadata",
    "MessageSnapshot",
    "OperatingMode",
    "OutputText",
    "Reasoning",
    "ReasoningSummary",
    "ResponseItem",
    "SessionMetadata",
    "SessionState",
    "SummaryText",
    "ToolCallMetadata",
    "UnknownContent",
    "UnknownItem",
    "UnknownSummary",
    "item_from_json",
    "item_to_json",
]

U64 = Annotated[int, msgspec.Meta(ge=0)]
"""An int in [0, 2**64): the seed's ``usize``/``u64`` (msgpack holds no more)."""
Aware = Annotated[datetime, msgspec.Meta(tz=True)]
"""A timezone-aware datetime (msgspec refuses a naive one)."""
Verbatim = dict[str, Any] | list[Any]
"""Unknown data: the JSON object it arrived as, or a legacy msgpack array."""

_set = msgspec.structs.force_setattr
_UNKNOWN = "?"  # the tag of verbatim unknown data in records


# -- normalisers: the only Python that runs per value -------------------------------------


def _short(v: object) -> str:
    return f"{type(v).__name__} {v!r:.80}"


def _utc(owner: object, field: str, value: Any) -> Any:
    """``value`` in UTC (a naive datetime raises); anything else is left for the save."""
    if type(value) is not datetime or value.tzinfo is UTC:
        return value
    tz = value.tzinfo
    if tz is None or tz.utcoffset(value) is None:
        raise InvalidArgument(
            f"{type(owner).__name__}.{field}: naive datetime {value.isoformat()} rejected: "
            "pass a timezone-aware datetime"
        )
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidArgument(
            f"{type(owner).__name__}.{field}: datetime {value.isoformat()} is out of range in UTC"
        ) from exc


def _tuple(owner: object, field: str, value: Any) -> Any:
    """A non-tuple iterable as a tuple (not a str, bytes or mapping: those are refused)."""
    if type(value) is tuple:
        return value
    if value is None or isinstance(value, str | bytes | bytearray | Mapping):
        raise InvalidArgument(
            f"{type(owner).__name__}.{field}: expected a sequence, got {_short(value)}"
        )
    try:
        return tuple(value)
    except TypeError as exc:
        raise InvalidArgument(
            f"{type(owner).__name__}.{field}: expected a sequence, got {_short(value)}"
        ) from exc


def _path(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _paths(owner: object, field: str, value: Any) -> tuple[Any, ...]:
    t = _tuple(owner, field, value)
    for x in t:
        if isinstance(x, os.PathLike):
            return tuple([_path(p) for p in t])
    return t  # type: ignore[no-any-return]


def _proxy(owner: object, field: str, value: Any) -> Any:
    """A private read-only copy of a mapping."""
    if type(value) is MappingProxyType:
        return value
    if not isinstance(value, Mapping):
        raise InvalidArgument(
            f"{type(owner).__name__}.{field}: expected a mapping, got {_short(value)}"
        )
    return MappingProxyType(dict(value))


def _empty() -> Mapping[Any, Any]:
    return MappingProxyType({})


class OperatingMode(enum.Enum):
    """The agent's operating mode (the seed's ``Plan``/``Build``/``Review``)."""

    PLAN = "plan"
    BUILD = "build"
    REVIEW = "review"


def _mode(owner: object, field: str, value: Any) -> OperatingMode:
    if type(value) is OperatingMode:
        return value
    try:
        return OperatingMode(value)
    except ValueError:
        raise InvalidArgument(
            f"{type(owner).__name__}.{field}: expected an OperatingMode ('plan', 'build', "
            f"'review'), got {_short(value)}"
        ) from None


class _Value(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """Base of every model class: frozen, fields at their default left out of
    records, and not tracked by the cyclic GC (``gc=False``, inherited): a value
    cannot refer back to itself, so a history of millions of messages costs the
    collector nothing to scan (only verbatim unknown data, a dict or list, is
    tracked, as any container)."""


class _Tagged(_Value, frozen=True, omit_defaults=True, tag_field="type"):
    """Base of the Responses-API tagged unions (tag = the API's ``type``)."""


# -- content parts ------------------------------------------------------------------------


class InputText(_Tagged, frozen=True, omit_defaults=True, tag="input_text"):
    """Content item ``input_text``."""

    text: str


class InputImage(_Tagged, frozen=True, omit_defaults=True, tag="input_image"):
    """Content item ``input_image``: an image by URL (or data URL) or by ``file_id``."""

    image_url: str | None = None
    detail: str | None = None
    file_id: str | None = None


class OutputText(_Tagged, frozen=True, omit_defaults=True, tag="output_text"):
    """Content item ``output_text``; ``annotations`` and ``logprobs`` verbatim,
    ``None`` when the item had no such key."""

    text: str
    annotations: tuple[Any, ...] | None = None
    logprobs: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        if self.annotations is not None and type(self.annotations) is not tuple:
            _set(self, "annotations", _tuple(self, "annotations", self.annotations))
        if self.logprobs is not None and type(self.logprobs) is not tuple:
            _set(self, "logprobs", _tuple(self, "logprobs", self.logprobs))


class UnknownContent(_Tagged, frozen=True, omit_defaults=True, tag=_UNKNOWN):
    """A content item of a type this version does not know, kept verbatim."""

    data: Verbatim


ContentItem: TypeAlias = InputText | InputImage | OutputText | UnknownContent


class SummaryText(_Tagged, frozen=True, omit_defaults=True, tag="summary_text"):
    """Reasoning summary variant ``summary_text``."""

    text: str


class UnknownSummary(_Tagged, frozen=True, omit_defaults=True, tag=_UNKNOWN):
    """A reasoning summary variant this version does not know, kept verbatim."""

    data: Verbatim


ReasoningSummary: TypeAlias = SummaryText | UnknownSummary


# -- response items -----------------------------------------------------------------------


class LocalShellAction(_Tagged, frozen=True, omit_defaults=True, tag="exec"):
    """The ``exec`` action of a local shell call."""

    command: tuple[str, ...]
    timeout_ms: U64 | None = None
    working_directory: str | None = None
    env: dict[str, str] | None = None
    user: str | None = None

    def __post_init__(self) -> None:
        if type(self.command) is not tuple:
            _set(self, "command", _tuple(self, "command", self.command))
        if isinstance(self.working_directory, os.PathLike):
            _set(self, "working_directory", _path(self.working_directory))


class Message(_Tagged, frozen=True, omit_defaults=True, tag="message"):
    """Response item ``message``: a user, assistant, system or developer turn.

    ``content`` is a tuple of content items, or the plain string an input
    message may carry instead (kept as a string, so it round-trips).
    """

    role: str
    content: tuple[ContentItem, ...] | str
    id: str | None = None
    status: str | None = None

    def __post_init__(self) -> None:
        c = self.content
        if type(c) is not tuple and type(c) is not str:
            _set(self, "content", _tuple(self, "content", c))


class Reasoning(_Tagged, frozen=True, omit_defaults=True, tag="reasoning"):
    """Response item ``reasoning``.

    ``content`` is ``None`` when the item had none (legacy builds without the
    field, or JSON without the key); its entries decode like message content,
    so a variant such as ``reasoning_text`` is kept as :class:`UnknownContent`.
    """

    id: str
    summary: tuple[ReasoningSummary, ...]
    encrypted_content: str | None = None
    content: tuple[ContentItem, ...] | None = None
    status: str | None = None

    def __post_init__(self) -> None:
        if type(self.summary) is not tuple:
            _set(self, "summary", _tuple(self, "summary", self.summary))
        if self.content is not None and type(self.content) is not tuple:
            _set(self, "content", _tuple(self, "content", self.content))


class LocalShellCall(_Tagged, frozen=True, omit_defaults=True, tag="local_shell_call"):
    """Response item ``local_shell_call``."""

    status: str
    action: LocalShellAction
    id: str | None = None
    call_id: str | None = None


class FunctionCall(_Tagged, frozen=True, omit_defaults=True, tag="function_call"):
    """Response item ``function_call``; ``arguments`` is the raw JSON string."""

    name: str
    arguments: str
    call_id: str
    id: str | None = None
    status: str | None = None


class FunctionCallOutput(_Tagged, frozen=True, omit_defaults=True, tag="function_call_output"):
    """Response item ``function_call_output``: a string, or content items."""

    call_id: str
    output: str | tuple[ContentItem, ...]
    id: str | None = None
    status: str | None = None

    def __post_init__(self) -> None:
        o = self.output
        if type(o) is not str and type(o) is not tuple:
            _set(self, "output", _tuple(self, "output", o))


class UnknownItem(_Tagged, frozen=True, omit_defaults=True, tag=_UNKNOWN):
    """A response item of a type this version does not know.

    ``data`` is exactly what was read: the JSON ``dict``, or for a legacy v2
    file the decoded msgpack array (tag first). It is written back unchanged.
    """

    data: Verbatim


ResponseItem: TypeAlias = (
    Message | Reasoning | LocalShellCall | FunctionCall | FunctionCallOutput | UnknownItem
)


# -- messages -----------------------------------------------------------------------------


class FileContext(_Value, frozen=True, omit_defaults=True):
    """A file (optionally a line range of it) that a message refers to."""

    path: str
    line_range: tuple[U64, U64] | None = None
    snippet: str | None = None
    language: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.path, os.PathLike):
            _set(self, "path", _path(self.path))
        lr = self.line_range
        if lr is not None and type(lr) is not tuple:
            _set(self, "line_range", _tuple(self, "line_range", lr))


class ToolCallMetadata(_Value, frozen=True, omit_defaults=True):
    """Timing and outcome of one tool call made for a message."""

    tool_name: str
    execution_time_ms: U64
    success: bool
    error: str | None = None


class MessageMetadata(_Value, frozen=True, omit_defaults=True):
    """Edit/branch bookkeeping of a message; ``message_id`` is random by default."""

    edited: bool = False
    edit_history: tuple[tuple[datetime, ResponseItem], ...] = ()
    branch_point: bool = False
    branch_id: UUID | None = None
    parent_message_id: UUID | None = None
    message_id: UUID = msgspec.field(default_factory=uuid4)
    file_context: tuple[FileContext, ...] = ()
    tool_calls: tuple[ToolCallMetadata, ...] = ()

    def __post_init__(self) -> None:
        eh = self.edit_history
        if eh or type(eh) is not tuple:
            pairs = _tuple(self, "edit_history", eh)
            for p in pairs:
                if type(p) is not tuple or (type(p[0]) is datetime and p[0].tzinfo is not UTC):
                    pairs = tuple(
                        [
                            (_utc(self, "edit_history", p[0]), *p[1:])
                            for p in [_tuple(self, "edit_history", p) for p in pairs]
                        ]
                    )
                    break
            if pairs is not eh:
                _set(self, "edit_history", pairs)
        if type(self.file_context) is not tuple:
            _set(self, "file_context", _tuple(self, "file_context", self.file_context))
        if type(self.tool_calls) is not tuple:
            _set(self, "tool_calls", _tuple(self, "tool_calls", self.tool_calls))


class MessageSnapshot(_Value, frozen=True, omit_defaults=True):
    """One message of a conversation as saved: the item, when, in which turn.

    The hot class of every load has no normalising hook: ``timestamp`` is
    kept as given (an aware datetime in any zone compares equal to its UTC
    form, and is stored and read back in UTC); a naive one is refused by the
    save.
    """

    item: ResponseItem
    timestamp: Aware
    turn_index: U64
    metadata: MessageMetadata = msgspec.field(default_factory=MessageMetadata)


# -- conversation, state, metadata --------------------------------------------------------


class AstIndexState(_Value, frozen=True, omit_defaults=True):
    """State of the AST index at save time."""

    indexed_files: tuple[str, ...]
    total_symbols: U64
    cache_size_bytes: U64
    last_update: datetime

    def __post_init__(self) -> None:
        _set(self, "indexed_files", _paths(self, "indexed_files", self.indexed_files))
        _set(self, "last_update", _utc(self, "last_update", self.last_update))


class EmbeddingCacheState(_Value, frozen=True, omit_defaults=True):
    """State of the embedding cache at save time."""

    cached_chunks: U64
    model: str
    cache_size_bytes: U64


class ConversationContext(_Value, frozen=True, omit_defaults=True):
    """Working environment of a conversation.

    ``environment_variables`` is stored as a read-only mapping (see module doc).
    """

    working_directory: str = ""
    environment_variables: Mapping[str, str] = msgspec.field(default_factory=_empty)
    open_files: tuple[str, ...] = ()
    ast_index_state: AstIndexState | None = None
    embedding_cache: EmbeddingCacheState | None = None

    def __post_init__(self) -> None:
        if isinstance(self.working_directory, os.PathLike):
            _set(self, "working_directory", _path(self.working_directory))
        env = self.environment_variables
        if type(env) is not MappingProxyType:
            _set(self, "environment_variables", _proxy(self, "environment_variables", env))
        if self.open_files:
            _set(self, "open_files", _paths(self, "open_files", self.open_files))
        elif type(self.open_files) is not tuple:
            _set(self, "open_files", _tuple(self, "open_files", self.open_files))


class ConversationSnapshot(_Value, frozen=True, omit_defaults=True):
    """A conversation: its messages, context and mode changes."""

    id: UUID
    messages: tuple[MessageSnapshot, ...] = ()
    context: ConversationContext = msgspec.field(default_factory=ConversationContext)
    mode_history: tuple[tuple[OperatingMode, datetime], ...] = ()

    def __post_init__(self) -> None:
        if type(self.messages) is not tuple:
            _set(self, "messages", _tuple(self, "messages", self.messages))
        mh = self.mode_history
        if mh:
            _set(
                self,
                "mode_history",
                tuple(
                    [
                        (_mode(self, "mode_history", p[0]), _utc(self, "mode_history", p[1]))
                        for p in [_pair(self, "mode_history", p) for p in _tuple(self, "mh", mh)]
                    ]
                ),
            )
        elif type(mh) is not tuple:
            _set(self, "mode_history", _tuple(self, "mode_history", mh))


def _pair(owner: object, field: str, value: Any) -> tuple[Any, Any]:
    t = _tuple(owner, field, value)
    if len(t) != 2:
        raise InvalidArgument(
            f"{type(owner).__name__}.{field}: expected pairs, got {_short(value)}"
        )
    return t  # type: ignore[no-any-return]


class FilterSettings(_Value, frozen=True, omit_defaults=True):
    """Which messages the UI shows."""

    show_system: bool = False
    show_tool_calls: bool = True
    show_reasoning: bool = True
    role_filter: str | None = None
    date_range: tuple[datetime, datetime] | None = None

    def __post_init__(self) -> None:
        dr = self.date_range
        if dr is not None:
            a, b = _pair(self, "date_range", dr)
            _set(self, "date_range", (_utc(self, "date_range", a), _utc(self, "date_range", b)))


class SessionState(_Value, frozen=True, omit_defaults=True):
    """UI state of a session (cursor, scroll, panels, filter).

    ``panel_sizes`` is stored as a read-only mapping of str to float.
    """

    cursor_position: U64 = 0
    scroll_offset: U64 = 0
    selected_message: UUID | None = None
    expanded_messages: tuple[UUID, ...] = ()
    active_panel: str = ""
    panel_sizes: Mapping[str, float] = msgspec.field(default_factory=_empty)
    search_query: str | None = None
    filter_settings: FilterSettings = msgspec.field(default_factory=FilterSettings)

    def __post_init__(self) -> None:
        if type(self.expanded_messages) is not tuple:
            _set(
                self,
                "expanded_messages",
                _tuple(self, "expanded_messages", self.expanded_messages),
            )
        if type(self.panel_sizes) is not MappingProxyType:
            _set(self, "panel_sizes", _proxy(self, "panel_sizes", self.panel_sizes))


class CheckpointMetadata(_Value, frozen=True, omit_defaults=True):
    """A named checkpoint of a session at ``message_index``."""

    id: UUID
    name: str
    created_at: datetime
    message_index: U64
    description: str | None = None

    def __post_init__(self) -> None:
        _set(self, "created_at", _utc(self, "created_at", self.created_at))


class SessionMetadata(_Value, frozen=True, omit_defaults=True):
    """What the session list shows about a session.

    ``format_version`` is 3 for sessions saved by agcx; imported legacy
    sessions keep the 2 they were written with.
    """

    id: UUID
    title: str
    created_at: datetime
    updated_at: datetime
    last_accessed: datetime
    message_count: U64 = 0
    turn_count: U64 = 0
    current_mode: OperatingMode = OperatingMode.PLAN
    model: str = ""
    tags: tuple[str, ...] = ()
    is_favorite: bool = False
    file_size: U64 = 0
    compression_ratio: float = 1.0
    format_version: U64 = 3
    checkpoints: tuple[CheckpointMetadata, ...] = ()

    def __post_init__(self) -> None:
        # One test for the common case (every session listed runs this).
        c, u, a = self.created_at, self.updated_at, self.last_accessed
        if (
            type(c) is datetime
            and type(u) is datetime
            and type(a) is datetime
            and c.tzinfo is UTC
            and u.tzinfo is UTC
            and a.tzinfo is UTC
            and type(self.current_mode) is OperatingMode
            and type(self.tags) is tuple
            and type(self.checkpoints) is tuple
            and type(self.compression_ratio) is not int
        ):
            return
        for f in ("created_at", "updated_at", "last_accessed"):
            _set(self, f, _utc(self, f, getattr(self, f)))
        if type(self.current_mode) is not OperatingMode:
            _set(self, "current_mode", _mode(self, "current_mode", self.current_mode))
        if type(self.tags) is not tuple:
            _set(self, "tags", _tuple(self, "tags", self.tags))
        if type(self.checkpoints) is not tuple:
            _set(self, "checkpoints", _tuple(self, "checkpoints", self.checkpoints))
        if type(self.compression_ratio) is int:
            _set(self, "compression_ratio", float(self.compression_ratio))


# -- OpenAI Responses-API JSON ------------------------------------------------------------
#
# A known type converts in C (msgspec.convert); every field the API documents
# for it is kept, and a key present with value null reads as absent. Extra
# keys the model does not know are not kept. Content, summary and output
# entries of a type this version does not know are kept verbatim; so is a
# whole local_shell_call whose action is not "exec", and any item of an
# unknown type.

_ITEM_CLASSES: dict[str, type[ResponseItem]] = {
    "message": Message,
    "reasoning": Reasoning,
    "local_shell_call": LocalShellCall,
    "function_call": FunctionCall,
    "function_call_output": FunctionCallOutput,
}
_ITEM_TAGS = frozenset(_ITEM_CLASSES)
_CONTENT_TAGS = frozenset(["input_text", "input_image", "output_text"])
_SUMMARY_TAGS = frozenset(["summary_text"])
_NESTED = (("content", _CONTENT_TAGS), ("summary", _SUMMARY_TAGS), ("output", _CONTENT_TAGS))


def _wrap_unknown(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` with nulls dropped and nested entries of unknown types wrapped as
    verbatim data (the slow path: only when the fast conversion failed)."""
    out = {k: v for k, v in d.items() if v is not None}
    for key, known in _NESTED:
        v = out.get(key)
        if type(v) is list:
            out[key] = [
                {"type": _UNKNOWN, "data": x}
                if type(x) is dict and type(x.get("type")) is str and x["type"] not in known
                else x
                for x in v
            ]
    return out


def item_from_json(d: dict[str, Any]) -> ResponseItem:
    """Build a response item from its OpenAI Responses-API JSON object.

    An object of an unknown ``type`` becomes :class:`UnknownItem` holding the
    dict itself. Raises :class:`InvalidArgument` if ``d`` is not a dict, has no
    string ``type``, or a known type lacks a required key or has a value of
    the wrong type.
    """
    if type(d) is not dict:
        raise InvalidArgument(f"response item: expected a JSON object (dict), got {_short(d)}")
    t = d.get("type")
    if type(t) is not str:
        raise InvalidArgument(f"response item: expected a string 'type', got {_short(t)}")
    if t not in _ITEM_TAGS:
        return UnknownItem(d)
    if t == "local_shell_call":
        a = d.get("action")
        if type(a) is dict and type(a.get("type")) is str and a["type"] != "exec":
            return UnknownItem(d)
    cls = _ITEM_CLASSES[t]  # convert() to a union is many times slower than to a class
    try:
        item: ResponseItem = msgspec.convert(d, cls)
        return item
    except msgspec.ValidationError:
        pass
    try:
        item = msgspec.convert(_wrap_unknown(d), cls)
        return item
    except msgspec.ValidationError as exc:
        raise InvalidArgument(f"{t}: {exc}") from None


_UNKNOWN_PARTS = (UnknownContent, UnknownSummary)


def _restore_verbatim(item: Any, out: dict[str, Any]) -> dict[str, Any]:
    """Put unknown parts back as the very data they hold (not their JSON copy)."""
    for key, _ in _NESTED:
        parts = getattr(item, key, None)
        if type(parts) is tuple:
            entries = out[key]
            for i, part in enumerate(parts):
                if isinstance(part, _UNKNOWN_PARTS):
                    entries[i] = part.data
    return out


_to_json = msgspec.json.Encoder(enc_hook=lambda o: _enc_hook(o)).encode
_from_json = msgspec.json.Decoder().decode


def item_to_json(item: ResponseItem) -> dict[str, Any]:
    """Return the Responses-API JSON object of ``item``.

    An :class:`UnknownItem` read from JSON returns its dict unchanged. One read
    from a legacy file (a msgpack array, tag first) has no JSON form; it is
    shown as ``{"type": <tag>, "legacy_fields": <the rest of the array>}``,
    which reads back as an unknown item holding that dict.
    """
    if type(item) is UnknownItem:
        data = item.data
        if isinstance(data, dict):
            return data
        tag = data[0] if data and isinstance(data[0], str) else "unknown"
        return {"type": tag, "legacy_fields": data[1:]}
    if not isinstance(item, _Tagged) or isinstance(item, UnknownItem):
        raise InvalidArgument(f"expected a response item, got {_short(item)}")
    # Through JSON and back, in C: lists for tuples, fields at their default left out.
    return _restore_verbatim(item, _from_json(_to_json(item)))


def _enc_hook(obj: Any) -> Any:
    """What msgspec cannot encode natively: read-only mappings and paths."""
    if type(obj) is MappingProxyType:
        return dict(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise NotImplementedError(f"cannot encode {_short(obj)}")
