"""The session data model and its msgpack wire encoding.

The classes mirror the Rust ``SessionStore`` types (same field names, same
meaning) as immutable attrs values:

* sequences are tuples (constructors accept any iterable of the right
  elements, but not a ``str``, ``bytes`` or mapping);
* mappings (``ConversationContext.environment_variables``,
  ``SessionState.panel_sizes``) are read-only ``MappingProxyType`` views of a
  private dict copy. They compare equal to any mapping with the same items but
  are not hashable, so neither are the values that hold them;
* datetimes must be timezone-aware and are normalised to UTC;
* integers that were ``usize``/``u64`` in the seed must lie in ``[0, 2**64)``.

Invalid constructor arguments raise :class:`~journal._errors.InvalidArgument`.
Values are equal when all their fields are equal.

Response items of a type this version does not know are kept verbatim in
:class:`UnknownItem` (likewise :class:`UnknownContent` and
:class:`UnknownSummary`): as the JSON ``dict`` they arrived as, or as the
decoded msgpack array of a legacy v2 file. Their ``data`` is stored and
returned as-is (not copied); treat it as read-only.

Wire encoding
-------------
``*_to_wire`` turn a value into plain msgpack-able data (dict/list/str/int/
float/bytes/bool/None) and ``*_from_wire`` turn it back;
``x_from_wire(x_to_wire(v)) == v`` for every value. Maps use short string
keys; a key whose value is ``None`` (and, in ``MessageMetadata``, a field at its
default) is omitted, and decoders take defaults for missing optional keys and
ignore unknown ones, so old events stay readable when fields are added. UUIDs
are 16-byte ``bytes``, datetimes int microseconds since the Unix epoch (UTC),
enums their string value, tuples lists. Malformed wire data raises
:class:`~journal._errors.CorruptPayload`.

Unknown data keeps Python types, so what is inside ``UnknownItem.data`` must be
msgpack-native (lists, not tuples; str map keys if the codec unpacks with
``strict_map_key=True``) to round-trip exactly.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, TypeAlias, TypeVar
from uuid import UUID, uuid4

import attrs

from journal._errors import CorruptPayload, InvalidArgument

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
    "checkpoint_meta_from_wire",
    "checkpoint_meta_to_wire",
    "context_from_wire",
    "context_to_wire",
    "conversation_from_wire",
    "conversation_to_wire",
    "datetime_from_wire",
    "datetime_to_wire",
    "item_from_json",
    "item_from_wire",
    "item_to_json",
    "item_to_wire",
    "message_from_wire",
    "message_to_wire",
    "messages_from_wire",
    "messages_to_wire",
    "metadata_from_wire",
    "metadata_to_wire",
    "mode_history_from_wire",
    "mode_history_to_wire",
    "state_from_wire",
    "state_to_wire",
]

_UTC = UTC
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_U64 = 1 << 64
_T = TypeVar("_T")


# --------------------------------------------------------------------------
# Validators and converters. Kept to plain functions: they run for every
# field of every message on every load, so no per-call reflection.


def _short(v: object) -> str:
    return f"{type(v).__name__} {v!r:.80}"


def _bad(inst: object, a: attrs.Attribute[Any], expected: str, v: object) -> InvalidArgument:
    return InvalidArgument(f"{type(inst).__name__}.{a.name}: expected {expected}, got {_short(v)}")


def _v_str(inst: object, a: attrs.Attribute[Any], v: object) -> None:
    if not isinstance(v, str):
        raise _bad(inst, a, "str", v)


def _v_opt_str(inst: object, a: attrs.Attribute[Any], v: object) -> None:
    if v is not None and not isinstance(v, str):
        raise _bad(inst, a, "str or None", v)


def _v_bool(inst: object, a: attrs.Attribute[Any], v: object) -> None:
    if not isinstance(v, bool):
        raise _bad(inst, a, "bool", v)


def _is_u64(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < _U64


def _v_u64(inst: object, a: attrs.Attribute[Any], v: object) -> None:
    if not _is_u64(v):
        raise _bad(inst, a, "int in [0, 2**64)", v)


def _v_opt_u64(inst: object, a: attrs.Attribute[Any], v: object) -> None:
    if v is not None and not _is_u64(v):
        raise _bad(inst, a, "int in [0, 2**64) or None", v)


def _v_uuid(inst: object, a: attrs.Attribute[Any], v: object) -> None:
    if not isinstance(v, UUID):
        raise _bad(inst, a, "uuid.UUID", v)


def _v_opt_uuid(inst: object, a: attrs.Attribute[Any], v: object) -> None:
    if v is not None and not isinstance(v, UUID):
        raise _bad(inst, a, "uuid.UUID or None", v)


def _v_verbatim(inst: object, a: attrs.Attribute[Any], v: object) -> None:
    # Only the two shapes unknown data arrives in; anything else (a tuple, say)
    # would not survive msgpack unchanged.
    if not isinstance(v, dict | list):
        raise _bad(inst, a, "dict (JSON) or list (legacy msgpack array)", v)


def _utc(value: datetime) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidArgument(f"expected a timezone-aware datetime, got {_short(value)}")
    tz = value.tzinfo
    if tz is _UTC:
        return value
    if tz is None or tz.utcoffset(value) is None:
        raise InvalidArgument(
            f"naive datetime {value.isoformat()} rejected: pass a timezone-aware datetime"
        )
    try:
        return value.astimezone(_UTC)
    except OverflowError as exc:
        raise InvalidArgument(f"datetime {value.isoformat()} is out of range in UTC") from exc


def _opt_utc(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


def _seq(value: Iterable[_T], what: str) -> tuple[_T, ...]:
    if isinstance(value, tuple):
        return value
    if isinstance(value, str | bytes | bytearray | Mapping):
        raise InvalidArgument(f"expected a sequence of {what}, got {_short(value)}")
    try:
        return tuple(value)
    except TypeError as exc:
        raise InvalidArgument(f"expected a sequence of {what}, got {_short(value)}") from exc


def _typed_seq(value: Iterable[Any], types: type | tuple[type, ...], what: str) -> tuple[Any, ...]:
    t = _seq(value, what)
    for x in t:
        if not isinstance(x, types):
            raise InvalidArgument(f"expected a sequence of {what}, found {_short(x)}")
    return t


def _str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return _typed_seq(value, str, "str")


def _uuid_tuple(value: Iterable[UUID]) -> tuple[UUID, ...]:
    return _typed_seq(value, UUID, "uuid.UUID")


def _str_map(value: Mapping[str, str]) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"expected a mapping of str to str, got {_short(value)}")
    d = dict(value)
    for k, v in d.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise InvalidArgument(f"expected a mapping of str to str, found {k!r:.40}: {v!r:.40}")
    return MappingProxyType(d)


def _float(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"expected a float, got {_short(value)}")
    return float(value)


def _float_map(value: Mapping[str, float]) -> Mapping[str, float]:
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"expected a mapping of str to float, got {_short(value)}")
    d: dict[str, float] = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise InvalidArgument(f"expected a mapping of str to float, found key {_short(k)}")
        d[k] = _float(v)
    return MappingProxyType(d)


def _mode(value: OperatingMode | str) -> OperatingMode:
    try:
        return OperatingMode(value)
    except ValueError as exc:
        raise InvalidArgument(
            f"expected an OperatingMode ('plan', 'build', 'review'), got {_short(value)}"
        ) from exc


def _opt_line_range(value: tuple[int, int] | None) -> tuple[int, int] | None:
    if value is None:
        return None
    t = _seq(value, "int")
    if len(t) != 2 or not (_is_u64(t[0]) and _is_u64(t[1])):
        raise InvalidArgument(f"line_range: expected (start, end) of ints >= 0, got {value!r:.80}")
    return (t[0], t[1])


def _opt_date_range(value: tuple[datetime, datetime] | None) -> tuple[datetime, datetime] | None:
    if value is None:
        return None
    t = _seq(value, "datetime")
    if len(t) != 2:
        raise InvalidArgument(f"date_range: expected (start, end), got {value!r:.80}")
    return (_utc(t[0]), _utc(t[1]))


def _mode_history(
    value: Iterable[tuple[OperatingMode, datetime]],
) -> tuple[tuple[OperatingMode, datetime], ...]:
    out = []
    for pair in _seq(value, "(OperatingMode, datetime)"):
        p: tuple[Any, ...] = _seq(pair, "(OperatingMode, datetime)")
        if len(p) != 2:
            raise InvalidArgument(f"mode_history: expected (mode, datetime), got {pair!r:.80}")
        out.append((_mode(p[0]), _utc(p[1])))
    return tuple(out)


# --------------------------------------------------------------------------
# Model


class OperatingMode(enum.Enum):
    """The agent's operating mode (the seed's ``Plan``/``Build``/``Review``)."""

    PLAN = "plan"
    BUILD = "build"
    REVIEW = "review"


@attrs.frozen
class InputText:
    """Content item ``input_text``."""

    text: str = attrs.field(validator=_v_str)


@attrs.frozen
class InputImage:
    """Content item ``input_image``."""

    image_url: str = attrs.field(validator=_v_str)


@attrs.frozen
class OutputText:
    """Content item ``output_text``."""

    text: str = attrs.field(validator=_v_str)


@attrs.frozen
class UnknownContent:
    """A content item of a type this version does not know, kept verbatim."""

    data: Any = attrs.field(validator=_v_verbatim)


ContentItem: TypeAlias = InputText | InputImage | OutputText | UnknownContent
_CONTENT_TYPES = (InputText, InputImage, OutputText, UnknownContent)


def _content_tuple(value: Iterable[ContentItem]) -> tuple[ContentItem, ...]:
    return _typed_seq(value, _CONTENT_TYPES, "content items")


def _opt_content_tuple(value: Iterable[ContentItem] | None) -> tuple[ContentItem, ...] | None:
    return None if value is None else _content_tuple(value)


@attrs.frozen
class SummaryText:
    """Reasoning summary variant ``summary_text``."""

    text: str = attrs.field(validator=_v_str)


@attrs.frozen
class UnknownSummary:
    """A reasoning summary variant this version does not know, kept verbatim."""

    data: Any = attrs.field(validator=_v_verbatim)


ReasoningSummary: TypeAlias = SummaryText | UnknownSummary
_SUMMARY_TYPES = (SummaryText, UnknownSummary)


def _summary_tuple(value: Iterable[ReasoningSummary]) -> tuple[ReasoningSummary, ...]:
    return _typed_seq(value, _SUMMARY_TYPES, "reasoning summaries")


@attrs.frozen
class LocalShellAction:
    """The ``exec`` action of a local shell call."""

    command: tuple[str, ...] = attrs.field(converter=_str_tuple)
    timeout_ms: int | None = attrs.field(default=None, validator=_v_opt_u64)
    working_directory: str | None = attrs.field(default=None, validator=_v_opt_str)


def _v_action(inst: object, a: attrs.Attribute[Any], v: object) -> None:
    if not isinstance(v, LocalShellAction):
        raise _bad(inst, a, "LocalShellAction", v)


@attrs.frozen
class Message:
    """Response item ``message``: a user, assistant or system turn."""

    role: str = attrs.field(validator=_v_str)
    content: tuple[ContentItem, ...] = attrs.field(converter=_content_tuple)
    id: str | None = attrs.field(default=None, validator=_v_opt_str)


@attrs.frozen
class Reasoning:
    """Response item ``reasoning``.

    ``content`` is ``None`` when the item had none (legacy builds without the
    field, or JSON without the key); its entries decode like message content,
    so a variant such as ``reasoning_text`` is kept as :class:`UnknownContent`.
    """

    id: str = attrs.field(validator=_v_str)
    summary: tuple[ReasoningSummary, ...] = attrs.field(converter=_summary_tuple)
    encrypted_content: str | None = attrs.field(default=None, validator=_v_opt_str)
    content: tuple[ContentItem, ...] | None = attrs.field(
        default=None, converter=_opt_content_tuple
    )


@attrs.frozen
class LocalShellCall:
    """Response item ``local_shell_call``."""

    status: str = attrs.field(validator=_v_str)
    action: LocalShellAction = attrs.field(validator=_v_action)
    id: str | None = attrs.field(default=None, validator=_v_opt_str)
    call_id: str | None = attrs.field(default=None, validator=_v_opt_str)


@attrs.frozen
class FunctionCall:
    """Response item ``function_call``; ``arguments`` is the raw JSON string."""

    name: str = attrs.field(validator=_v_str)
    arguments: str = attrs.field(validator=_v_str)
    call_id: str = attrs.field(validator=_v_str)
    id: str | None = attrs.field(default=None, validator=_v_opt_str)


@attrs.frozen
class FunctionCallOutput:
    """Response item ``function_call_output``."""

    call_id: str = attrs.field(validator=_v_str)
    output: str = attrs.field(validator=_v_str)


@attrs.frozen
class UnknownItem:
    """A response item of a type this version does not know.

    ``data`` is exactly what was read: the JSON ``dict``, or for a legacy v2
    file the decoded msgpack array (tag first). It is written back unchanged.
    """

    data: Any = attrs.field(validator=_v_verbatim)


ResponseItem: TypeAlias = (
    Message | Reasoning | LocalShellCall | FunctionCall | FunctionCallOutput | UnknownItem
)
_ITEM_TYPES = (Message, Reasoning, LocalShellCall, FunctionCall, FunctionCallOutput, UnknownItem)


def _v_item(inst: object, a: attrs.Attribute[Any], v: object) -> None:
    if not isinstance(v, _ITEM_TYPES):
        raise _bad(inst, a, "a response item", v)


def _edit_history(
    value: Iterable[tuple[datetime, ResponseItem]],
) -> tuple[tuple[datetime, ResponseItem], ...]:
    out = []
    for pair in _seq(value, "(datetime, response item)"):
        p: tuple[Any, ...] = _seq(pair, "(datetime, response item)")
        if len(p) != 2 or not isinstance(p[1], _ITEM_TYPES):
            raise InvalidArgument(
                f"edit_history: expected (datetime, response item), got {pair!r:.80}"
            )
        out.append((_utc(p[0]), p[1]))
    return tuple(out)


@attrs.frozen
class FileContext:
    """A file (optionally a line range of it) that a message refers to."""

    path: str = attrs.field(validator=_v_str)
    line_range: tuple[int, int] | None = attrs.field(default=None, converter=_opt_line_range)
    snippet: str | None = attrs.field(default=None, validator=_v_opt_str)
    language: str | None = attrs.field(default=None, validator=_v_opt_str)


@attrs.frozen
class ToolCallMetadata:
    """Timing and outcome of one tool call made for a message."""

    tool_name: str = attrs.field(validator=_v_str)
    execution_time_ms: int = attrs.field(validator=_v_u64)
    success: bool = attrs.field(validator=_v_bool)
    error: str | None = attrs.field(default=None, validator=_v_opt_str)


def _file_context_tuple(value: Iterable[FileContext]) -> tuple[FileContext, ...]:
    return _typed_seq(value, FileContext, "FileContext")


def _tool_calls_tuple(value: Iterable[ToolCallMetadata]) -> tuple[ToolCallMetadata, ...]:
    return _typed_seq(value, ToolCallMetadata, "ToolCallMetadata")


@attrs.frozen
class MessageMetadata:
    """Edit/branch bookkeeping of a message; ``message_id`` is random by default."""

    edited: bool = attrs.field(default=False, validator=_v_bool)
    edit_history: tuple[tuple[datetime, ResponseItem], ...] = attrs.field(
        default=(), converter=_edit_history
    )
    branch_point: bool = attrs.field(default=False, validator=_v_bool)
    branch_id: UUID | None = attrs.field(default=None, validator=_v_opt_uuid)
    parent_message_id: UUID | None = attrs.field(default=None, validator=_v_opt_uuid)
    message_id: UUID = attrs.field(factory=uuid4, validator=_v_uuid)
    file_context: tuple[FileContext, ...] = attrs.field(default=(), converter=_file_context_tuple)
    tool_calls: tuple[ToolCallMetadata, ...] = attrs.field(default=(), converter=_tool_calls_tuple)


def _v_message_metadata(inst: object, a: attrs.Attribute[Any], v: object) -> None:
    if not isinstance(v, MessageMetadata):
        raise _bad(inst, a, "MessageMetadata", v)


@attrs.frozen
class MessageSnapshot:
    """One message of a conversation as saved: the item, when, in which turn."""

    item: ResponseItem = attrs.field(validator=_v_item)
    timestamp: datetime = attrs.field(converter=_utc)
    turn_index: int = attrs.field(validator=_v_u64)
    # The default is built without re-running MessageMetadata's validators on
    # its own constants (the validator below still checks what is passed).
    metadata: MessageMetadata = attrs.field(
        factory=lambda: _default_message_metadata(), validator=_v_message_metadata
    )


_JUST_MESSAGE_SNAPSHOT = frozenset([MessageSnapshot])


@attrs.frozen
class AstIndexState:
    """State of the AST index at save time."""

    indexed_files: tuple[str, ...] = attrs.field(converter=_str_tuple)
    total_symbols: int = attrs.field(validator=_v_u64)
    cache_size_bytes: int = attrs.field(validator=_v_u64)
    last_update: datetime = attrs.field(converter=_utc)


@attrs.frozen
class EmbeddingCacheState:
    """State of the embedding cache at save time."""

    cached_chunks: int = attrs.field(validator=_v_u64)
    model: str = attrs.field(validator=_v_str)
    cache_size_bytes: int = attrs.field(validator=_v_u64)


def _v_opt_ast(inst: object, a: attrs.Attribute[Any], v: object) -> None:
    if v is not None and not isinstance(v, AstIndexState):
        raise _bad(inst, a, "AstIndexState or None", v)


def _v_opt_emb(inst: object, a: attrs.Attribute[Any], v: object) -> None:
    if v is not None and not isinstance(v, EmbeddingCacheState):
        raise _bad(inst, a, "EmbeddingCacheState or None", v)


def _empty_map() -> Mapping[str, Any]:
    return MappingProxyType({})


@attrs.frozen
class ConversationContext:
    """Working environment of a conversation.

    ``environment_variables`` is stored as a read-only mapping (see module doc).
    """

    working_directory: str = attrs.field(default="", validator=_v_str)
    environment_variables: Mapping[str, str] = attrs.field(factory=_empty_map, converter=_str_map)
    open_files: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    ast_index_state: AstIndexState | None = attrs.field(default=None, validator=_v_opt_ast)
    embedding_cache: EmbeddingCacheState | None = attrs.field(default=None, validator=_v_opt_emb)


def _messages_tuple(value: Iterable[MessageSnapshot]) -> tuple[MessageSnapshot, ...]:
    # Runs on every save over the whole conversation: a tuple whose elements
    # are all exactly MessageSnapshot (each validated when it was built) is
    # accepted by one scan in C; anything else (a subclass, a wrong element, a
    # list, ...) goes through the general check, which raises as before.
    if type(value) is tuple and (
        not value or frozenset(map(type, value)) == _JUST_MESSAGE_SNAPSHOT
    ):
        return value
    return _typed_seq(value, MessageSnapshot, "MessageSnapshot")


def _v_context(inst: object, a: attrs.Attribute[Any], v: object) -> None:
    if not isinstance(v, ConversationContext):
        raise _bad(inst, a, "ConversationContext", v)


# Immutable, so one instance serves as every conversation's default context.
_DEFAULT_CONTEXT = ConversationContext()


@attrs.frozen
class ConversationSnapshot:
    """A conversation: its messages, context and mode changes."""

    id: UUID = attrs.field(validator=_v_uuid)
    messages: tuple[MessageSnapshot, ...] = attrs.field(default=(), converter=_messages_tuple)
    context: ConversationContext = attrs.field(default=_DEFAULT_CONTEXT, validator=_v_context)
    mode_history: tuple[tuple[OperatingMode, datetime], ...] = attrs.field(
        default=(), converter=_mode_history
    )


@attrs.frozen
class FilterSettings:
    """Which messages the UI shows."""

    show_system: bool = attrs.field(default=False, validator=_v_bool)
    show_tool_calls: bool = attrs.field(default=True, validator=_v_bool)
    show_reasoning: bool = attrs.field(default=True, validator=_v_bool)
    role_filter: str | None = attrs.field(default=None, validator=_v_opt_str)
    date_range: tuple[datetime, datetime] | None = attrs.field(
        default=None, converter=_opt_date_range
    )


def _v_filter(inst: object, a: attrs.Attribute[Any], v: object) -> None:
    if not isinstance(v, FilterSettings):
        raise _bad(inst, a, "FilterSettings", v)


@attrs.frozen
class SessionState:
    """UI state of a session (cursor, scroll, panels, filter).

    ``panel_sizes`` is stored as a read-only mapping of str to float.
    """

    cursor_position: int = attrs.field(default=0, validator=_v_u64)
    scroll_offset: int = attrs.field(default=0, validator=_v_u64)
    selected_message: UUID | None = attrs.field(default=None, validator=_v_opt_uuid)
    expanded_messages: tuple[UUID, ...] = attrs.field(default=(), converter=_uuid_tuple)
    active_panel: str = attrs.field(default="", validator=_v_str)
    panel_sizes: Mapping[str, float] = attrs.field(factory=_empty_map, converter=_float_map)
    search_query: str | None = attrs.field(default=None, validator=_v_opt_str)
    filter_settings: FilterSettings = attrs.field(factory=FilterSettings, validator=_v_filter)


@attrs.frozen
class CheckpointMetadata:
    """A named checkpoint of a session at ``message_index``."""

    id: UUID = attrs.field(validator=_v_uuid)
    name: str = attrs.field(validator=_v_str)
    created_at: datetime = attrs.field(converter=_utc)
    message_index: int = attrs.field(validator=_v_u64)
    description: str | None = attrs.field(default=None, validator=_v_opt_str)


def _checkpoints_tuple(value: Iterable[CheckpointMetadata]) -> tuple[CheckpointMetadata, ...]:
    return _typed_seq(value, CheckpointMetadata, "CheckpointMetadata")


@attrs.frozen
class SessionMetadata:
    """What the session list shows about a session.

    ``format_version`` is 3 for sessions saved by agcx; imported legacy
    sessions keep the 2 they were written with.
    """

    id: UUID = attrs.field(validator=_v_uuid)
    title: str = attrs.field(validator=_v_str)
    created_at: datetime = attrs.field(converter=_utc)
    updated_at: datetime = attrs.field(converter=_utc)
    last_accessed: datetime = attrs.field(converter=_utc)
    message_count: int = attrs.field(default=0, validator=_v_u64)
    turn_count: int = attrs.field(default=0, validator=_v_u64)
    current_mode: OperatingMode = attrs.field(default=OperatingMode.PLAN, converter=_mode)
    model: str = attrs.field(default="", validator=_v_str)
    tags: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    is_favorite: bool = attrs.field(default=False, validator=_v_bool)
    file_size: int = attrs.field(default=0, validator=_v_u64)
    compression_ratio: float = attrs.field(default=1.0, converter=_float)
    format_version: int = attrs.field(default=3, validator=_v_u64)
    checkpoints: tuple[CheckpointMetadata, ...] = attrs.field(
        default=(), converter=_checkpoints_tuple
    )


# --------------------------------------------------------------------------
# OpenAI Responses-API JSON for response items.
#
# Optional keys are written only when the value is not None, and a key present
# with value null reads as absent; so a dict round-trips exactly when it holds
# no nulls and only the keys the model knows. Extra keys on a known type are
# ignored, as the seed's serde types did. A local_shell_call whose action is
# not "exec" is a variant this version does not know: the whole item is kept
# as UnknownItem.


def _json_dict(d: object, where: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise InvalidArgument(f"{where}: expected a JSON object (dict), got {_short(d)}")
    return d


def _j_str(d: dict[str, Any], key: str, where: str) -> str:
    try:
        v = d[key]
    except KeyError:
        raise InvalidArgument(f"{where}: missing required key {key!r}") from None
    if not isinstance(v, str):
        raise InvalidArgument(f"{where}.{key}: expected a string, got {_short(v)}")
    return v


def _j_opt_str(d: dict[str, Any], key: str, where: str) -> str | None:
    v = d.get(key)
    if v is not None and not isinstance(v, str):
        raise InvalidArgument(f"{where}.{key}: expected a string or null, got {_short(v)}")
    return v


def _j_list(d: dict[str, Any], key: str, where: str) -> list[Any]:
    try:
        v = d[key]
    except KeyError:
        raise InvalidArgument(f"{where}: missing required key {key!r}") from None
    if not isinstance(v, list):
        raise InvalidArgument(f"{where}.{key}: expected an array, got {_short(v)}")
    return v


def _tag(d: dict[str, Any], where: str) -> str:
    t = d.get("type")
    if not isinstance(t, str):
        raise InvalidArgument(f"{where}: expected a string 'type', got {_short(t)}")
    return t


def _content_from_json(c: object) -> ContentItem:
    d = _json_dict(c, "content item")
    t = _tag(d, "content item")
    if t == "input_text":
        return InputText(_j_str(d, "text", t))
    if t == "output_text":
        return OutputText(_j_str(d, "text", t))
    if t == "input_image":
        return InputImage(_j_str(d, "image_url", t))
    return UnknownContent(d)


def _content_to_json(c: ContentItem) -> Any:
    if isinstance(c, InputText):
        return {"type": "input_text", "text": c.text}
    if isinstance(c, OutputText):
        return {"type": "output_text", "text": c.text}
    if isinstance(c, InputImage):
        return {"type": "input_image", "image_url": c.image_url}
    return c.data


def _summary_from_json(s: object) -> ReasoningSummary:
    d = _json_dict(s, "reasoning summary")
    t = _tag(d, "reasoning summary")
    if t == "summary_text":
        return SummaryText(_j_str(d, "text", t))
    return UnknownSummary(d)


def _summary_to_json(s: ReasoningSummary) -> Any:
    if isinstance(s, SummaryText):
        return {"type": "summary_text", "text": s.text}
    return s.data


def _message_from_json(d: dict[str, Any]) -> ResponseItem:
    return Message(
        role=_j_str(d, "role", "message"),
        content=tuple(_content_from_json(c) for c in _j_list(d, "content", "message")),
        id=_j_opt_str(d, "id", "message"),
    )


def _reasoning_from_json(d: dict[str, Any]) -> ResponseItem:
    content = d.get("content")
    if content is not None and not isinstance(content, list):
        raise InvalidArgument(
            f"reasoning.content: expected an array or null, got {_short(content)}"
        )
    return Reasoning(
        id=_j_str(d, "id", "reasoning"),
        summary=tuple(_summary_from_json(s) for s in _j_list(d, "summary", "reasoning")),
        encrypted_content=_j_opt_str(d, "encrypted_content", "reasoning"),
        content=None if content is None else tuple(_content_from_json(c) for c in content),
    )


def _local_shell_call_from_json(d: dict[str, Any]) -> ResponseItem:
    where = "local_shell_call"
    if "action" not in d:
        raise InvalidArgument(f"{where}: missing required key 'action'")
    a = _json_dict(d["action"], f"{where}.action")
    if _tag(a, f"{where}.action") != "exec":
        return UnknownItem(d)
    command = _j_list(a, "command", f"{where}.action")
    timeout = a.get("timeout_ms")
    if timeout is not None and not _is_u64(timeout):
        raise InvalidArgument(f"{where}.action.timeout_ms: expected an int >= 0, got {timeout!r}")
    try:
        action = LocalShellAction(
            command=command,
            timeout_ms=timeout,
            working_directory=_j_opt_str(a, "working_directory", f"{where}.action"),
        )
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}.action: {exc}") from None
    return LocalShellCall(
        status=_j_str(d, "status", where),
        action=action,
        id=_j_opt_str(d, "id", where),
        call_id=_j_opt_str(d, "call_id", where),
    )


def _function_call_from_json(d: dict[str, Any]) -> ResponseItem:
    return FunctionCall(
        name=_j_str(d, "name", "function_call"),
        arguments=_j_str(d, "arguments", "function_call"),
        call_id=_j_str(d, "call_id", "function_call"),
        id=_j_opt_str(d, "id", "function_call"),
    )


def _function_call_output_from_json(d: dict[str, Any]) -> ResponseItem:
    return FunctionCallOutput(
        call_id=_j_str(d, "call_id", "function_call_output"),
        output=_j_str(d, "output", "function_call_output"),
    )


_JSON_ITEM_DECODERS: dict[str, Callable[[dict[str, Any]], ResponseItem]] = {
    "message": _message_from_json,
    "reasoning": _reasoning_from_json,
    "local_shell_call": _local_shell_call_from_json,
    "function_call": _function_call_from_json,
    "function_call_output": _function_call_output_from_json,
}


def item_from_json(d: dict[str, Any]) -> ResponseItem:
    """Build a response item from its OpenAI Responses-API JSON object.

    An object of an unknown ``type`` becomes :class:`UnknownItem` holding the
    dict itself. Raises :class:`InvalidArgument` if ``d`` is not a dict, has no
    string ``type``, or a known type lacks a required key or has a value of
    the wrong type.
    """
    d = _json_dict(d, "response item")
    decode = _JSON_ITEM_DECODERS.get(_tag(d, "response item"))
    if decode is None:
        return UnknownItem(d)
    return decode(d)


def item_to_json(item: ResponseItem) -> dict[str, Any]:
    """Return the Responses-API JSON object of ``item``.

    An :class:`UnknownItem` read from JSON returns its dict unchanged. One read
    from a legacy file (a msgpack array, tag first) has no JSON form; it is
    shown as ``{"type": <tag>, "legacy_fields": <the rest of the array>}``,
    which reads back as an unknown item holding that dict.
    """
    if isinstance(item, Message):
        out: dict[str, Any] = {"type": "message"}
        if item.id is not None:
            out["id"] = item.id
        out["role"] = item.role
        out["content"] = [_content_to_json(c) for c in item.content]
        return out
    if isinstance(item, FunctionCall):
        out = {"type": "function_call"}
        if item.id is not None:
            out["id"] = item.id
        out["name"] = item.name
        out["arguments"] = item.arguments
        out["call_id"] = item.call_id
        return out
    if isinstance(item, FunctionCallOutput):
        return {"type": "function_call_output", "call_id": item.call_id, "output": item.output}
    if isinstance(item, Reasoning):
        out = {
            "type": "reasoning",
            "id": item.id,
            "summary": [_summary_to_json(s) for s in item.summary],
        }
        if item.content is not None:
            out["content"] = [_content_to_json(c) for c in item.content]
        if item.encrypted_content is not None:
            out["encrypted_content"] = item.encrypted_content
        return out
    if isinstance(item, LocalShellCall):
        out = {"type": "local_shell_call"}
        if item.id is not None:
            out["id"] = item.id
        if item.call_id is not None:
            out["call_id"] = item.call_id
        out["status"] = item.status
        act = item.action
        action: dict[str, Any] = {"type": "exec", "command": list(act.command)}
        if act.timeout_ms is not None:
            action["timeout_ms"] = act.timeout_ms
        if act.working_directory is not None:
            action["working_directory"] = act.working_directory
        out["action"] = action
        return out
    if isinstance(item, UnknownItem):
        data = item.data
        if isinstance(data, dict):
            return data
        tag = data[0] if data and isinstance(data[0], str) else "unknown"
        return {"type": tag, "legacy_fields": data[1:]}
    raise InvalidArgument(f"expected a response item, got {_short(item)}")


# --------------------------------------------------------------------------
# Wire encoding. Hand-written per class: this runs for every message on every
# save and load. Decoders index required keys directly and let the public
# entry points turn any KeyError/TypeError/ValueError (InvalidArgument
# included) into CorruptPayload.
#
# Decoding builds each value through a fast constructor (``_new_*`` below)
# that skips the attrs validators and converters, but only once inline
# ``type(x) is ...`` tests have shown that the wire values are exactly what the
# public constructor would store unchanged (a ``str`` where a str is wanted,
# an ``int`` in [0, 2**64) for a u64, a tuple of checked elements for a
# sequence, a value built by another decoder for a nested field). Anything
# else goes to the public constructor with the same arguments, so it is
# refused (InvalidArgument, hence CorruptPayload) or accepted and converted
# exactly as before: the fast path changes speed, never outcomes.

_WIRE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError)


def _fast_constructor(cls: type[_T], **constants: object) -> Callable[..., _T]:
    """A function building ``cls`` from its fields, positionally, unchecked.

    The instance is made with ``object.__new__`` and each slot set through its
    member descriptor, which bypasses the frozen ``__setattr__``, ``__init__``
    and so every validator and converter. Only for values already checked.
    Fields named in ``constants`` are set to that (immutable) value and are not
    parameters.
    """
    names = [a.name for a in attrs.fields(cls)]  # type: ignore[arg-type]
    ns: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    params = [n for n in names if n not in constants]
    lines = [f"def new({', '.join(params)}):", "    self = _new(_cls)"]
    for n in names:
        ns[f"_set_{n}"] = cls.__dict__[n].__set__
        if n in constants:
            ns[f"_const_{n}"] = constants[n]
            lines.append(f"    _set_{n}(self, _const_{n})")
        else:
            lines.append(f"    _set_{n}(self, {n})")
    lines.append("    return self")
    exec("\n".join(lines), ns)  # the source holds nothing but attrs field names
    new: Callable[..., _T] = ns["new"]
    return new


_new_input_text = _fast_constructor(InputText)
_new_input_image = _fast_constructor(InputImage)
_new_output_text = _fast_constructor(OutputText)
_new_unknown_content = _fast_constructor(UnknownContent)
_new_summary_text = _fast_constructor(SummaryText)
_new_unknown_summary = _fast_constructor(UnknownSummary)
_new_shell_action = _fast_constructor(LocalShellAction)
_new_message = _fast_constructor(Message)
_new_reasoning = _fast_constructor(Reasoning)
_new_shell_call = _fast_constructor(LocalShellCall)
_new_function_call = _fast_constructor(FunctionCall)
_new_function_output = _fast_constructor(FunctionCallOutput)
_new_unknown_item = _fast_constructor(UnknownItem)
_new_file_context = _fast_constructor(FileContext)
_new_tool_call = _fast_constructor(ToolCallMetadata)
_new_message_metadata = _fast_constructor(MessageMetadata)
_new_snapshot = _fast_constructor(MessageSnapshot)
# MessageMetadata(message_id=...) with every other field at its default.
_new_default_message_metadata = _fast_constructor(
    MessageMetadata,
    edited=False,
    edit_history=(),
    branch_point=False,
    branch_id=None,
    parent_message_id=None,
    file_context=(),
    tool_calls=(),
)
_new_conversation = _fast_constructor(ConversationSnapshot)
_new_checkpoint = _fast_constructor(CheckpointMetadata)
_new_session_metadata = _fast_constructor(SessionMetadata)

_MODE_OF_VALUE: dict[str, OperatingMode] = {m.value: m for m in OperatingMode}
_NO_LIST: list[Any] = []  # default of a missing array key; never mutated


def _all_str(t: tuple[Any, ...]) -> bool:
    for x in t:  # noqa: SIM110 - a plain loop is much cheaper than all(<genexpr>)
        if type(x) is not str:
            return False
    return True


def _mode_from_wire(v: object) -> OperatingMode:
    m = _MODE_OF_VALUE.get(v) if type(v) is str else None
    return OperatingMode(v) if m is None else m


def datetime_to_wire(dt: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime."""
    d = dt - _EPOCH
    return (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds


_MICROSECOND = timedelta(microseconds=1)


def _dt(n: object) -> datetime:
    # timedelta * int is integer arithmetic, so exact for every int, and
    # cheaper than timedelta(microseconds=n); the epoch's tzinfo is
    # datetime.UTC, so the result needs no normalising. Out of range values
    # raise OverflowError.
    if type(n) is not int:
        raise CorruptPayload(f"expected a timestamp (int microseconds), got {_short(n)}")
    return _EPOCH + _MICROSECOND * n


def datetime_from_wire(n: object) -> datetime:
    """The UTC datetime of ``n`` microseconds since the Unix epoch."""
    try:
        return _dt(n)
    except OverflowError as exc:
        raise CorruptPayload(f"timestamp {n!r} is out of range") from exc


# uuid.UUID keeps its value in the slots ``int`` and ``is_safe``; setting them
# directly builds the same UUID (same int, so equal, same hash and str; same
# is_safe, so same pickle) as ``UUID(bytes=b)`` at a third of the cost, which
# spends most of its time parsing its five optional arguments.
_new_object = object.__new__
_int_from_bytes = int.from_bytes
_uuid_set_int: Any = getattr(UUID.__dict__.get("int"), "__set__", None)
_uuid_set_is_safe: Any = getattr(UUID.__dict__.get("is_safe"), "__set__", None)
_UUID_SAFE_UNKNOWN = UUID(int=0).is_safe


def _uuid_direct(b: object) -> UUID:
    if type(b) is not bytes or len(b) != 16:
        raise CorruptPayload(f"expected a UUID (16 bytes), got {_short(b)}")
    u: UUID = _new_object(UUID)
    _uuid_set_int(u, _int_from_bytes(b, "big"))
    _uuid_set_is_safe(u, _UUID_SAFE_UNKNOWN)
    return u


def _uuid_plain(b: object) -> UUID:
    if type(b) is not bytes or len(b) != 16:
        raise CorruptPayload(f"expected a UUID (16 bytes), got {_short(b)}")
    return UUID(bytes=b)


def _uuid_direct_is_exact() -> bool:
    """Whether this Python's UUID is the one ``_uuid_direct`` was written for."""
    slots = set(getattr(UUID, "__slots__", ())) - {"__weakref__"}
    if slots != {"int", "is_safe"} or _uuid_set_int is None or _uuid_set_is_safe is None:
        return False  # pragma: no cover - a different uuid module
    probe = bytes(range(0xF0, 0x100))
    try:
        a, b = _uuid_direct(probe), UUID(bytes=probe)
        return a == b and hash(a) == hash(b) and a.__getstate__() == b.__getstate__()
    except Exception:  # pragma: no cover - a different uuid module
        return False


_uuid = _uuid_direct if _uuid_direct_is_exact() else _uuid_plain

# The version and variant bits of a random (version 4) UUID, as uuid.UUID sets them.
_UUID4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_UUID4_SET = (0x8000 << 48) | (4 << 76)
_urandom = os.urandom


def _uuid4_direct() -> UUID:
    """``uuid.uuid4()``, built as ``_uuid_direct`` builds (the same value and slots)."""
    u: UUID = _new_object(UUID)
    _uuid_set_int(u, _int_from_bytes(_urandom(16), "big") & _UUID4_CLEAR | _UUID4_SET)
    _uuid_set_is_safe(u, _UUID_SAFE_UNKNOWN)
    return u


_uuid4 = _uuid4_direct if _uuid is _uuid_direct else uuid4


def _default_message_metadata() -> MessageMetadata:
    """``MessageMetadata()``: every field at its default, a random message id."""
    return _new_default_message_metadata(_uuid4())


def _opt_uuid(b: object) -> UUID | None:
    return None if b is None else _uuid(b)


def _list(v: object) -> list[Any]:
    # A str or map in a list's place would otherwise iterate as chars or keys.
    if type(v) is not list:
        raise CorruptPayload(f"expected an array, got {_short(v)}")
    return v


def _map(v: object) -> dict[Any, Any]:
    if type(v) is not dict:
        raise CorruptPayload(f"expected a map, got {_short(v)}")
    return v


# Content items: {"t": "it"|"ot"|"ii"|"?", "x": text | "u": url | "raw": data}


def _content_to_wire(c: ContentItem) -> dict[str, Any]:
    tc = type(c)
    if tc is InputText:
        return {"t": "it", "x": c.text}  # type: ignore[union-attr]
    if tc is OutputText:
        return {"t": "ot", "x": c.text}  # type: ignore[union-attr]
    if tc is InputImage:
        return {"t": "ii", "u": c.image_url}  # type: ignore[union-attr]
    return {"t": "?", "raw": c.data}  # type: ignore[union-attr]


def _content_from_wire(w: dict[str, Any]) -> ContentItem:
    t = w["t"]
    if t == "it":
        x = w["x"]
        return _new_input_text(x) if type(x) is str else InputText(x)
    if t == "ot":
        x = w["x"]
        return _new_output_text(x) if type(x) is str else OutputText(x)
    if t == "ii":
        u = w["u"]
        return _new_input_image(u) if type(u) is str else InputImage(u)
    if t == "?":
        d = w["raw"]
        td = type(d)
        return _new_unknown_content(d) if td is dict or td is list else UnknownContent(d)
    raise CorruptPayload(f"unknown content item tag {t!r:.40}")


def _contents_from_wire(v: object) -> tuple[ContentItem, ...]:
    if type(v) is list and len(v) == 1:  # most messages: skip the comprehension
        return (_content_from_wire(v[0]),)
    return tuple([_content_from_wire(c) for c in _list(v)])


def _summary_to_wire(s: ReasoningSummary) -> dict[str, Any]:
    if type(s) is SummaryText:
        return {"t": "st", "x": s.text}
    return {"t": "?", "raw": s.data}  # type: ignore[union-attr]


def _summary_from_wire(w: dict[str, Any]) -> ReasoningSummary:
    t = w["t"]
    if t == "st":
        x = w["x"]
        return _new_summary_text(x) if type(x) is str else SummaryText(x)
    if t == "?":
        d = w["raw"]
        td = type(d)
        return _new_unknown_summary(d) if td is dict or td is list else UnknownSummary(d)
    raise CorruptPayload(f"unknown reasoning summary tag {t!r:.40}")


# Response items: "t" is "m" message, "r" reasoning, "sh" local_shell_call,
# "fc" function_call, "fo" function_call_output, "?" unknown (data in "raw").
# "i" is the item id everywhere, "ci" the call id.


def _message_to_wire(m: Message) -> dict[str, Any]:
    w: dict[str, Any] = {"t": "m", "r": m.role, "c": [_content_to_wire(c) for c in m.content]}
    if m.id is not None:
        w["i"] = m.id
    return w


def _message_from_wire(w: dict[str, Any]) -> ResponseItem:
    r = w["r"]
    c = _contents_from_wire(w["c"])
    i = w.get("i")
    if type(r) is str and (i is None or type(i) is str):
        return _new_message(r, c, i)
    return Message(r, c, i)


def _reasoning_to_wire(r: Reasoning) -> dict[str, Any]:
    w: dict[str, Any] = {"t": "r", "i": r.id, "s": [_summary_to_wire(s) for s in r.summary]}
    if r.encrypted_content is not None:
        w["e"] = r.encrypted_content
    if r.content is not None:
        w["c"] = [_content_to_wire(c) for c in r.content]
    return w


def _reasoning_from_wire(w: dict[str, Any]) -> ResponseItem:
    i = w["i"]
    s = tuple([_summary_from_wire(x) for x in _list(w["s"])])
    e = w.get("e")
    c = w.get("c")
    content = None if c is None else _contents_from_wire(c)
    if type(i) is str and (e is None or type(e) is str):
        return _new_reasoning(i, s, e, content)
    return Reasoning(i, s, e, content)


def _shell_to_wire(s: LocalShellCall) -> dict[str, Any]:
    a = s.action
    aw: dict[str, Any] = {"cm": list(a.command)}
    if a.timeout_ms is not None:
        aw["to"] = a.timeout_ms
    if a.working_directory is not None:
        aw["wd"] = a.working_directory
    w: dict[str, Any] = {"t": "sh", "st": s.status, "a": aw}
    if s.id is not None:
        w["i"] = s.id
    if s.call_id is not None:
        w["ci"] = s.call_id
    return w


def _shell_from_wire(w: dict[str, Any]) -> ResponseItem:
    a = _map(w["a"])
    cm = tuple(_list(a["cm"]))
    to = a.get("to")
    wd = a.get("wd")
    if (
        _all_str(cm)
        and (to is None or (type(to) is int and 0 <= to < _U64))
        and (wd is None or type(wd) is str)
    ):
        action = _new_shell_action(cm, to, wd)
    else:
        action = LocalShellAction(cm, to, wd)
    st, i, ci = w["st"], w.get("i"), w.get("ci")
    if type(st) is str and (i is None or type(i) is str) and (ci is None or type(ci) is str):
        return _new_shell_call(st, action, i, ci)
    return LocalShellCall(st, action, i, ci)


def _function_call_to_wire(f: FunctionCall) -> dict[str, Any]:
    w: dict[str, Any] = {"t": "fc", "n": f.name, "a": f.arguments, "ci": f.call_id}
    if f.id is not None:
        w["i"] = f.id
    return w


def _function_call_from_wire(w: dict[str, Any]) -> ResponseItem:
    n, a, ci, i = w["n"], w["a"], w["ci"], w.get("i")
    if type(n) is str and type(a) is str and type(ci) is str and (i is None or type(i) is str):
        return _new_function_call(n, a, ci, i)
    return FunctionCall(n, a, ci, i)


def _function_output_to_wire(f: FunctionCallOutput) -> dict[str, Any]:
    return {"t": "fo", "ci": f.call_id, "o": f.output}


def _function_output_from_wire(w: dict[str, Any]) -> ResponseItem:
    ci, o = w["ci"], w["o"]
    if type(ci) is str and type(o) is str:
        return _new_function_output(ci, o)
    return FunctionCallOutput(ci, o)


def _unknown_to_wire(u: UnknownItem) -> dict[str, Any]:
    return {"t": "?", "raw": u.data}


def _unknown_from_wire(w: dict[str, Any]) -> ResponseItem:
    d = w["raw"]
    td = type(d)
    if td is dict or td is list:
        return _new_unknown_item(d)
    return UnknownItem(d)


_ITEM_ENCODERS: dict[type, Callable[[Any], dict[str, Any]]] = {
    Message: _message_to_wire,
    Reasoning: _reasoning_to_wire,
    LocalShellCall: _shell_to_wire,
    FunctionCall: _function_call_to_wire,
    FunctionCallOutput: _function_output_to_wire,
    UnknownItem: _unknown_to_wire,
}
_ITEM_DECODERS: dict[str, Callable[[dict[str, Any]], ResponseItem]] = {
    "m": _message_from_wire,
    "r": _reasoning_from_wire,
    "sh": _shell_from_wire,
    "fc": _function_call_from_wire,
    "fo": _function_output_from_wire,
    "?": _unknown_from_wire,
}


def _item_to_wire(item: ResponseItem) -> dict[str, Any]:
    return _ITEM_ENCODERS[type(item)](item)


def _item_from_wire(w: dict[str, Any]) -> ResponseItem:
    t = w["t"]
    decode = _ITEM_DECODERS.get(t) if type(t) is str else None
    if decode is None:
        # A tag this build never wrote; UnknownItem covers unknown *input*
        # types, so an unknown wire tag means damage or a newer schema.
        raise CorruptPayload(f"unknown response item tag {t!r:.40} on the wire")
    return decode(w)


# MessageMetadata: "id" message_id (always); the rest only when not default:
# "e" edited, "eh" [[ts, item]...], "bp" branch_point, "bi" branch_id,
# "pm" parent_message_id, "fc" file contexts, "tc" tool calls.
# FileContext: "p" path, "lr" [start, end], "sn" snippet, "lg" language.
# ToolCallMetadata: "n" tool_name, "ms" execution_time_ms, "ok" success, "er" error.


def _file_context_to_wire(f: FileContext) -> dict[str, Any]:
    w: dict[str, Any] = {"p": f.path}
    if f.line_range is not None:
        w["lr"] = list(f.line_range)
    if f.snippet is not None:
        w["sn"] = f.snippet
    if f.language is not None:
        w["lg"] = f.language
    return w


def _file_context_from_wire(w: dict[str, Any]) -> FileContext:
    p, sn, lg = w["p"], w.get("sn"), w.get("lg")
    lr: Any = w.get("lr")
    if lr is not None:
        lr = _list(lr)
        if len(lr) == 2:
            a, b = lr
            if type(a) is int and type(b) is int and 0 <= a < _U64 and 0 <= b < _U64:
                lr = (a, b)
    if (
        type(p) is str
        and (lr is None or type(lr) is tuple)
        and (sn is None or type(sn) is str)
        and (lg is None or type(lg) is str)
    ):
        return _new_file_context(p, lr, sn, lg)
    return FileContext(p, lr, sn, lg)


def _tool_call_to_wire(t: ToolCallMetadata) -> dict[str, Any]:
    w: dict[str, Any] = {"n": t.tool_name, "ms": t.execution_time_ms, "ok": t.success}
    if t.error is not None:
        w["er"] = t.error
    return w


def _tool_call_from_wire(w: dict[str, Any]) -> ToolCallMetadata:
    n, ms, ok, er = w["n"], w["ms"], w["ok"], w.get("er")
    if (
        type(n) is str
        and type(ms) is int
        and 0 <= ms < _U64
        and type(ok) is bool
        and (er is None or type(er) is str)
    ):
        return _new_tool_call(n, ms, ok, er)
    return ToolCallMetadata(n, ms, ok, er)


def _message_metadata_to_wire(m: MessageMetadata) -> dict[str, Any]:
    w: dict[str, Any] = {"id": m.message_id.int.to_bytes(16, "big")}  # == .bytes, cheaper
    if m.edited:
        w["e"] = True
    if m.edit_history:
        w["eh"] = [[datetime_to_wire(t), _item_to_wire(i)] for t, i in m.edit_history]
    if m.branch_point:
        w["bp"] = True
    if m.branch_id is not None:
        w["bi"] = m.branch_id.bytes
    if m.parent_message_id is not None:
        w["pm"] = m.parent_message_id.bytes
    if m.file_context:
        w["fc"] = [_file_context_to_wire(f) for f in m.file_context]
    if m.tool_calls:
        w["tc"] = [_tool_call_to_wire(t) for t in m.tool_calls]
    return w


def _pair(v: object) -> tuple[Any, Any]:
    p = _list(v)
    if len(p) != 2:
        raise CorruptPayload(f"expected a pair, got {len(p)} elements")
    return p[0], p[1]


def _message_metadata_from_wire(w: dict[str, Any]) -> MessageMetadata:
    message_id = _uuid(w["id"])
    if len(w) == 1:
        # Just the id (w["id"] above proved it is there): every other field
        # at its default, as most messages are.
        return _new_default_message_metadata(message_id)
    eh: tuple[tuple[datetime, ResponseItem], ...] = ()
    if "eh" in w:
        pairs = []
        for p in _list(w["eh"]):
            t, i = _pair(p)
            pairs.append((_dt(t), _item_from_wire(i)))
        eh = tuple(pairs)
    e = w.get("e", False)
    bp = w.get("bp", False)
    bi = _opt_uuid(w.get("bi"))
    pm = _opt_uuid(w.get("pm"))
    fc = w.get("fc")
    tc = w.get("tc")
    files = () if fc is None else tuple([_file_context_from_wire(f) for f in _list(fc)])
    tools = () if tc is None else tuple([_tool_call_from_wire(t) for t in _list(tc)])
    if type(e) is bool and type(bp) is bool:
        return _new_message_metadata(e, eh, bp, bi, pm, message_id, files, tools)
    return MessageMetadata(e, eh, bp, bi, pm, message_id, files, tools)


# MessageSnapshot: "it" item, "ts" timestamp, "ti" turn_index, "md" metadata.


def _snapshot_to_wire(m: MessageSnapshot) -> dict[str, Any]:
    return {
        "it": _ITEM_ENCODERS[type(m.item)](m.item),
        "ts": datetime_to_wire(m.timestamp),
        "ti": m.turn_index,
        "md": _message_metadata_to_wire(m.metadata),
    }


def _snapshot_from_wire(w: dict[str, Any]) -> MessageSnapshot:
    # The hot loop of every load: _item_from_wire, _dt and the common case of
    # _message_metadata_from_wire (a message id and nothing else) inlined.
    it = w["it"]
    t = it["t"]
    decode = _ITEM_DECODERS.get(t) if type(t) is str else None
    item = _item_from_wire(it) if decode is None else decode(it)  # the former raises
    ts = w["ts"]
    ts = _EPOCH + _MICROSECOND * ts if type(ts) is int else _dt(ts)  # the latter raises
    ti = w["ti"]
    md = w["md"]
    if type(md) is dict and len(md) == 1:
        metadata = _new_default_message_metadata(_uuid(md["id"]))
    else:
        metadata = _message_metadata_from_wire(md)
    if type(ti) is int and 0 <= ti < _U64:
        return _new_snapshot(item, ts, ti, metadata)
    return MessageSnapshot(item, ts, ti, metadata)


# Context: "wd", "env", "of" open files, "ast" {"f","ns","sz","lu"}, "emb" {"n","mo","sz"}.


def _context_to_wire(c: ConversationContext) -> dict[str, Any]:
    w: dict[str, Any] = {
        "wd": c.working_directory,
        "env": dict(c.environment_variables),
        "of": list(c.open_files),
    }
    a = c.ast_index_state
    if a is not None:
        w["ast"] = {
            "f": list(a.indexed_files),
            "ns": a.total_symbols,
            "sz": a.cache_size_bytes,
            "lu": datetime_to_wire(a.last_update),
        }
    e = c.embedding_cache
    if e is not None:
        w["emb"] = {"n": e.cached_chunks, "mo": e.model, "sz": e.cache_size_bytes}
    return w


def _context_from_wire(w: dict[str, Any]) -> ConversationContext:
    # Once per conversation: the public constructors are fast enough here.
    a = w.get("ast")
    e = w.get("emb")
    ast = None
    if a is not None:
        a = _map(a)
        ast = AstIndexState(_list(a.get("f", [])), a["ns"], a["sz"], _dt(a["lu"]))
    emb = None
    if e is not None:
        e = _map(e)
        emb = EmbeddingCacheState(e["n"], e["mo"], e["sz"])
    return ConversationContext(
        w.get("wd", ""), _map(w.get("env", {})), _list(w.get("of", [])), ast, emb
    )


def _mode_history_to_wire(mh: tuple[tuple[OperatingMode, datetime], ...]) -> list[Any]:
    return [[m._value_, datetime_to_wire(t)] for m, t in mh]


def _mode_history_from_wire(w: object) -> tuple[tuple[OperatingMode, datetime], ...]:
    out = []
    for p in _list(w):
        m, t = _pair(p)
        out.append((_mode_from_wire(m), _dt(t)))
    return tuple(out)


# ConversationSnapshot: "id", "m" messages, "cx" context, "mh" [[mode, ts]...].


def _conversation_to_wire(c: ConversationSnapshot) -> dict[str, Any]:
    return {
        "id": c.id.bytes,
        "m": [_snapshot_to_wire(m) for m in c.messages],
        "cx": _context_to_wire(c.context),
        "mh": _mode_history_to_wire(c.mode_history),
    }


def _conversation_from_wire(w: dict[str, Any]) -> ConversationSnapshot:
    # Every field is a UUID or built by a decoder: always the fast path.
    cx = w.get("cx")
    return _new_conversation(
        _uuid(w["id"]),
        tuple([_snapshot_from_wire(_map(m)) for m in _list(w.get("m", _NO_LIST))]),
        ConversationContext() if cx is None else _context_from_wire(_map(cx)),
        _mode_history_from_wire(w.get("mh", _NO_LIST)),
    )


# SessionState: "cp" cursor, "so" scroll, "sel", "ex" expanded, "ap" panel,
# "ps" panel sizes, "q" search, "fs" filter {"sy","tc","rs","rf","dr"}.


def _state_to_wire(s: SessionState) -> dict[str, Any]:
    f = s.filter_settings
    fw: dict[str, Any] = {"sy": f.show_system, "tc": f.show_tool_calls, "rs": f.show_reasoning}
    if f.role_filter is not None:
        fw["rf"] = f.role_filter
    if f.date_range is not None:
        fw["dr"] = [datetime_to_wire(f.date_range[0]), datetime_to_wire(f.date_range[1])]
    w: dict[str, Any] = {
        "cp": s.cursor_position,
        "so": s.scroll_offset,
        "ex": [u.bytes for u in s.expanded_messages],
        "ap": s.active_panel,
        "ps": dict(s.panel_sizes),
        "fs": fw,
    }
    if s.selected_message is not None:
        w["sel"] = s.selected_message.bytes
    if s.search_query is not None:
        w["q"] = s.search_query
    return w


def _state_from_wire(w: dict[str, Any]) -> SessionState:
    # Once per session: the public constructors are fast enough here.
    fw = w.get("fs")
    if fw is None:
        fs = FilterSettings()
    else:
        fw = _map(fw)
        dr = fw.get("dr")
        if dr is not None:
            start, end = _pair(dr)
            dr = (_dt(start), _dt(end))
        fs = FilterSettings(
            fw.get("sy", False), fw.get("tc", True), fw.get("rs", True), fw.get("rf"), dr
        )
    return SessionState(
        w.get("cp", 0),
        w.get("so", 0),
        _opt_uuid(w.get("sel")),
        [_uuid(u) for u in _list(w.get("ex", []))],
        w.get("ap", ""),
        _map(w.get("ps", {})),
        w.get("q"),
        fs,
    )


# CheckpointMetadata: "id", "n" name, "at" created_at, "mi" message_index, "d" description.


def _checkpoint_to_wire(c: CheckpointMetadata) -> dict[str, Any]:
    w: dict[str, Any] = {
        "id": c.id.bytes,
        "n": c.name,
        "at": datetime_to_wire(c.created_at),
        "mi": c.message_index,
    }
    if c.description is not None:
        w["d"] = c.description
    return w


def _checkpoint_from_wire(w: dict[str, Any]) -> CheckpointMetadata:
    cid, n, at, mi, d = _uuid(w["id"]), w["n"], _dt(w["at"]), w["mi"], w.get("d")
    if type(n) is str and type(mi) is int and 0 <= mi < _U64 and (d is None or type(d) is str):
        return _new_checkpoint(cid, n, at, mi, d)
    return CheckpointMetadata(cid, n, at, mi, d)


# SessionMetadata: "id", "ti" title, "ca"/"ua"/"la" created/updated/accessed,
# "mc" message_count, "tc" turn_count, "mo" mode, "md" model, "tg" tags,
# "fv" favorite, "fs" file_size, "cr" compression_ratio, "v" format_version,
# "ck" checkpoints.


def _metadata_to_wire(m: SessionMetadata) -> dict[str, Any]:
    return {
        "id": m.id.int.to_bytes(16, "big"),  # == m.id.bytes, cheaper
        "ti": m.title,
        "ca": datetime_to_wire(m.created_at),
        "ua": datetime_to_wire(m.updated_at),
        "la": datetime_to_wire(m.last_accessed),
        "mc": m.message_count,
        "tc": m.turn_count,
        "mo": m.current_mode._value_,  # a plain attribute; .value is a property
        "md": m.model,
        "tg": list(m.tags),
        "fv": m.is_favorite,
        "fs": m.file_size,
        "cr": m.compression_ratio,
        "v": m.format_version,
        "ck": [_checkpoint_to_wire(c) for c in m.checkpoints],
    }


def _metadata_from_wire(w: dict[str, Any]) -> SessionMetadata:
    sid = _uuid(w["id"])
    ti = w["ti"]
    ca, ua, la = w["ca"], w["ua"], w["la"]
    if type(ca) is int and type(ua) is int and type(la) is int:
        us = _MICROSECOND
        ca, ua, la = _EPOCH + us * ca, _EPOCH + us * ua, _EPOCH + us * la
    else:
        ca, ua, la = _dt(ca), _dt(ua), _dt(la)  # raises
    try:  # the encoder writes every key: subscripts are cheaper than get()
        mc, tc, mo, md, tg = w["mc"], w["tc"], w["mo"], w["md"], w["tg"]
        fv, fs, cr, v, ck = w["fv"], w["fs"], w["cr"], w["v"], w["ck"]
    except KeyError:  # older data: defaults for what is missing
        get = w.get
        mc, tc, mo, md = get("mc", 0), get("tc", 0), get("mo", "plan"), get("md", "")
        tg, fv, fs, cr = get("tg", _NO_LIST), get("fv", False), get("fs", 0), get("cr", 1.0)
        v, ck = get("v", 3), get("ck", _NO_LIST)
    try:
        mode = _MODE_OF_VALUE[mo]
    except (KeyError, TypeError):
        mode = OperatingMode(mo)  # raises, or takes a str subclass as before
    if type(tg) is not list:
        raise CorruptPayload(f"expected an array, got {_short(tg)}")
    tags = tuple(tg)
    if type(ck) is list and not ck:
        checkpoints: tuple[CheckpointMetadata, ...] = ()
    else:
        checkpoints = tuple([_checkpoint_from_wire(_map(c)) for c in _list(ck)])
    if (
        type(ti) is str
        and type(mc) is int
        and type(tc) is int
        and type(fs) is int
        and type(v) is int
        and (mc | tc | fs | v) >> 64 == 0  # all four in [0, 2**64)
        and type(md) is str
        and type(fv) is bool
        and type(cr) is float
        and (not tags or _all_str(tags))
    ):
        return _new_session_metadata(
            sid, ti, ca, ua, la, mc, tc, mode, md, tags, fv, fs, cr, v, checkpoints
        )
    return SessionMetadata(sid, ti, ca, ua, la, mc, tc, mode, md, tags, fv, fs, cr, v, checkpoints)


def _malformed(what: str, exc: Exception) -> CorruptPayload:
    detail = f"missing key {exc}" if type(exc) is KeyError else str(exc)
    return CorruptPayload(f"malformed {what} payload: {detail}")


def _guard(what: str, decode: Callable[[Any], _T], w: object) -> _T:
    try:
        return decode(_map(w))
    except (CorruptPayload, *_WIRE_ERRORS) as exc:
        raise _malformed(what, exc) from exc


def item_to_wire(item: ResponseItem) -> dict[str, Any]:
    """Wire form of a response item (a map; key ``"t"`` is the type tag)."""
    return _item_to_wire(item)


def item_from_wire(w: object) -> ResponseItem:
    """Inverse of :func:`item_to_wire`; raises :class:`CorruptPayload`."""
    return _guard("response item", _item_from_wire, w)


def message_to_wire(m: MessageSnapshot) -> dict[str, Any]:
    """Wire form of one :class:`MessageSnapshot`."""
    return _snapshot_to_wire(m)


def message_from_wire(w: object) -> MessageSnapshot:
    """Inverse of :func:`message_to_wire`; raises :class:`CorruptPayload`."""
    return _guard("message", _snapshot_from_wire, w)


def messages_to_wire(messages: Iterable[MessageSnapshot]) -> list[dict[str, Any]]:
    """Wire form of a run of messages (a whole list or a delta of one)."""
    return [_snapshot_to_wire(m) for m in messages]


def messages_from_wire(w: object) -> tuple[MessageSnapshot, ...]:
    """Inverse of :func:`messages_to_wire`; raises :class:`CorruptPayload`."""
    # On failure, len(out) is the index of the message that failed.
    out: list[MessageSnapshot] = []
    append = out.append
    try:
        for m in _list(w):
            append(_snapshot_from_wire(m if type(m) is dict else _map(m)))
        return tuple(out)
    except (CorruptPayload, *_WIRE_ERRORS) as exc:
        raise _malformed(f"message #{len(out)}", exc) from exc


def mode_history_to_wire(mh: tuple[tuple[OperatingMode, datetime], ...]) -> list[Any]:
    """Wire form of a mode history: ``[[mode value, microseconds], ...]``."""
    return _mode_history_to_wire(mh)


def mode_history_from_wire(w: object) -> tuple[tuple[OperatingMode, datetime], ...]:
    """Inverse of :func:`mode_history_to_wire`; raises :class:`CorruptPayload`."""
    try:
        return _mode_history_from_wire(w)
    except (CorruptPayload, *_WIRE_ERRORS) as exc:
        raise _malformed("mode history", exc) from exc


def context_to_wire(c: ConversationContext) -> dict[str, Any]:
    """Wire form of a :class:`ConversationContext`."""
    return _context_to_wire(c)


def context_from_wire(w: object) -> ConversationContext:
    """Inverse of :func:`context_to_wire`; raises :class:`CorruptPayload`."""
    return _guard("conversation context", _context_from_wire, w)


def conversation_to_wire(c: ConversationSnapshot) -> dict[str, Any]:
    """Wire form of a whole :class:`ConversationSnapshot`, messages included."""
    return _conversation_to_wire(c)


def conversation_from_wire(w: object) -> ConversationSnapshot:
    """Inverse of :func:`conversation_to_wire`; raises :class:`CorruptPayload`."""
    return _guard("conversation", _conversation_from_wire, w)


def state_to_wire(s: SessionState) -> dict[str, Any]:
    """Wire form of a :class:`SessionState`."""
    return _state_to_wire(s)


def state_from_wire(w: object) -> SessionState:
    """Inverse of :func:`state_to_wire`; raises :class:`CorruptPayload`."""
    return _guard("session state", _state_from_wire, w)


def checkpoint_meta_to_wire(c: CheckpointMetadata) -> dict[str, Any]:
    """Wire form of a :class:`CheckpointMetadata`."""
    return _checkpoint_to_wire(c)


def checkpoint_meta_from_wire(w: object) -> CheckpointMetadata:
    """Inverse of :func:`checkpoint_meta_to_wire`; raises :class:`CorruptPayload`."""
    return _guard("checkpoint metadata", _checkpoint_from_wire, w)


def metadata_to_wire(m: SessionMetadata) -> dict[str, Any]:
    """Wire form of a :class:`SessionMetadata`."""
    return _metadata_to_wire(m)


def metadata_from_wire(w: object) -> SessionMetadata:
    """Inverse of :func:`metadata_to_wire`; raises :class:`CorruptPayload`."""
    # _guard inlined: the session list decodes one of these per session.
    try:
        return _metadata_from_wire(w if type(w) is dict else _map(w))
    except (CorruptPayload, *_WIRE_ERRORS) as exc:
        raise _malformed("session metadata", exc) from exc
