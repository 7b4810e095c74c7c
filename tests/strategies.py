"""Hypothesis strategies for every class of ``journal._model``.

Values are chosen so they can also be written in the legacy v2 format:
``usize``/``u64`` integers in ``[0, 2**64)``, ``f32`` fields
(``compression_ratio``, ``panel_sizes``) exactly representable as float32,
``format_version`` a ``u16``, timestamps at microsecond precision.

``unknown`` selects the shape of verbatim data in unknown items/content/
summaries: ``"json"`` (a dict with an unknown string ``type``, as
``item_from_json`` keeps it), ``"legacy"`` (a msgpack array, tag first, as the
legacy reader keeps it) or ``"both"``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

from hypothesis import strategies as st

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
from journal._redact import RedactionPolicy, Redactor

Unknown = Literal["json", "legacy", "both"]

ITEM_TAGS = frozenset(
    {"message", "reasoning", "local_shell_call", "function_call", "function_call_output"}
)
CONTENT_TAGS = frozenset({"input_text", "input_image", "output_text"})
SUMMARY_TAGS = frozenset({"summary_text"})

U64 = st.integers(min_value=0, max_value=2**64 - 1)
SMALL = st.integers(min_value=0, max_value=10_000)
TEXT = st.text(max_size=20)
OPT_TEXT = st.none() | TEXT
FLOAT32 = st.floats(width=32, allow_nan=False)

_OFFSETS = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
)


def aware_datetimes() -> st.SearchStrategy[datetime]:
    """Timezone-aware datetimes (various offsets), microsecond precision."""
    return st.datetimes(
        min_value=datetime(1900, 1, 2), max_value=datetime(2200, 12, 30), timezones=_OFFSETS
    )


def naive_datetimes() -> st.SearchStrategy[datetime]:
    """Datetimes without tzinfo (which the model must reject)."""
    return st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2200, 12, 30))


def operating_mode() -> st.SearchStrategy[OperatingMode]:
    return st.sampled_from(OperatingMode)


# Values msgpack and JSON both carry unchanged (str keys, lists not tuples).
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=10)
)
JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
# Legacy msgpack can also hold bin.
MSGPACK_VALUES: st.SearchStrategy[Any] = st.recursive(
    _SCALARS | st.binary(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


def verbatim(known: frozenset[str], unknown: Unknown = "both") -> st.SearchStrategy[Any]:
    """Data of an unknown variant: a dict with a new ``type`` or an array with a new tag."""
    tag = st.text(min_size=1, max_size=12).filter(lambda t: t not in known)
    as_json = st.builds(
        lambda t, rest: {**rest, "type": t},
        tag,
        st.dictionaries(st.text(max_size=6).filter(lambda k: k != "type"), JSON_VALUES, max_size=3),
    )
    as_legacy = st.builds(lambda t, rest: [t, *rest], tag, st.lists(MSGPACK_VALUES, max_size=3))
    if unknown == "json":
        return as_json
    if unknown == "legacy":
        return as_legacy
    return as_json | as_legacy


def content_item(unknown: Unknown = "both") -> st.SearchStrategy[ContentItem]:
    return st.one_of(
        st.builds(InputText, TEXT),
        st.builds(OutputText, TEXT),
        st.builds(InputImage, TEXT),
        st.builds(UnknownContent, verbatim(CONTENT_TAGS, unknown)),
    )


def reasoning_summary(unknown: Unknown = "both") -> st.SearchStrategy[ReasoningSummary]:
    return st.builds(SummaryText, TEXT) | st.builds(UnknownSummary, verbatim(SUMMARY_TAGS, unknown))


def local_shell_action() -> st.SearchStrategy[LocalShellAction]:
    return st.builds(
        LocalShellAction,
        st.lists(TEXT, max_size=4),
        st.none() | U64,
        OPT_TEXT,
    )


def response_item(unknown: Unknown = "both") -> st.SearchStrategy[ResponseItem]:
    contents = st.lists(content_item(unknown), max_size=3)
    return st.one_of(
        st.builds(Message, TEXT, contents, OPT_TEXT),
        st.builds(
            Reasoning,
            TEXT,
            st.lists(reasoning_summary(unknown), max_size=3),
            OPT_TEXT,
            st.none() | contents,
        ),
        st.builds(LocalShellCall, TEXT, local_shell_action(), OPT_TEXT, OPT_TEXT),
        st.builds(FunctionCall, TEXT, TEXT, TEXT, OPT_TEXT),
        st.builds(FunctionCallOutput, TEXT, TEXT),
        st.builds(UnknownItem, verbatim(ITEM_TAGS, unknown)),
    )


def file_context() -> st.SearchStrategy[FileContext]:
    return st.builds(FileContext, TEXT, st.none() | st.tuples(U64, U64), OPT_TEXT, OPT_TEXT)


def tool_call_metadata() -> st.SearchStrategy[ToolCallMetadata]:
    return st.builds(ToolCallMetadata, TEXT, U64, st.booleans(), OPT_TEXT)


def message_metadata(unknown: Unknown = "both") -> st.SearchStrategy[MessageMetadata]:
    return st.builds(
        MessageMetadata,
        edited=st.booleans(),
        edit_history=st.lists(st.tuples(aware_datetimes(), response_item(unknown)), max_size=2),
        branch_point=st.booleans(),
        branch_id=st.none() | st.uuids(),
        parent_message_id=st.none() | st.uuids(),
        message_id=st.uuids(),
        file_context=st.lists(file_context(), max_size=2),
        tool_calls=st.lists(tool_call_metadata(), max_size=2),
    )


def message_snapshot(unknown: Unknown = "both") -> st.SearchStrategy[MessageSnapshot]:
    return st.builds(
        MessageSnapshot,
        response_item(unknown),
        aware_datetimes(),
        U64,
        message_metadata(unknown),
    )


def ast_index_state() -> st.SearchStrategy[AstIndexState]:
    return st.builds(AstIndexState, st.lists(TEXT, max_size=3), U64, U64, aware_datetimes())


def embedding_cache_state() -> st.SearchStrategy[EmbeddingCacheState]:
    return st.builds(EmbeddingCacheState, U64, TEXT, U64)


# The default redaction policy replaces the values of secret-looking names
# (``*_KEY``, ...): generic sessions avoid them so that a store with the default
# policy gives them back as saved (tests/test_redact.py covers redaction).
_REDACTOR = Redactor(RedactionPolicy(), b"\0" * 32)
ENV_NAME = TEXT.filter(lambda name: not _REDACTOR.secret_name(name))


def conversation_context() -> st.SearchStrategy[ConversationContext]:
    return st.builds(
        ConversationContext,
        TEXT,
        st.dictionaries(ENV_NAME, TEXT, max_size=3),
        st.lists(TEXT, max_size=3),
        st.none() | ast_index_state(),
        st.none() | embedding_cache_state(),
    )


def conversation_snapshot(
    max_messages: int = 5, unknown: Unknown = "both"
) -> st.SearchStrategy[ConversationSnapshot]:
    return st.builds(
        ConversationSnapshot,
        st.uuids(),
        st.lists(message_snapshot(unknown), max_size=max_messages),
        conversation_context(),
        st.lists(st.tuples(operating_mode(), aware_datetimes()), max_size=3),
    )


def filter_settings() -> st.SearchStrategy[FilterSettings]:
    return st.builds(
        FilterSettings,
        st.booleans(),
        st.booleans(),
        st.booleans(),
        OPT_TEXT,
        st.none() | st.tuples(aware_datetimes(), aware_datetimes()),
    )


def session_state() -> st.SearchStrategy[SessionState]:
    return st.builds(
        SessionState,
        U64,
        U64,
        st.none() | st.uuids(),
        st.lists(st.uuids(), max_size=3),
        TEXT,
        st.dictionaries(TEXT, FLOAT32, max_size=3),
        OPT_TEXT,
        filter_settings(),
    )


def checkpoint_metadata() -> st.SearchStrategy[CheckpointMetadata]:
    return st.builds(CheckpointMetadata, st.uuids(), TEXT, aware_datetimes(), U64, OPT_TEXT)


def session_metadata() -> st.SearchStrategy[SessionMetadata]:
    return st.builds(
        SessionMetadata,
        id=st.uuids(),
        title=TEXT,
        created_at=aware_datetimes(),
        updated_at=aware_datetimes(),
        last_accessed=aware_datetimes(),
        message_count=U64,
        turn_count=U64,
        current_mode=operating_mode(),
        model=TEXT,
        tags=st.lists(TEXT, max_size=4),
        is_favorite=st.booleans(),
        file_size=U64,
        compression_ratio=FLOAT32,
        format_version=st.integers(min_value=0, max_value=2**16 - 1),
        checkpoints=st.lists(checkpoint_metadata(), max_size=3),
    )


__all__ = [
    "CONTENT_TAGS",
    "ITEM_TAGS",
    "JSON_VALUES",
    "MSGPACK_VALUES",
    "SUMMARY_TAGS",
    "ast_index_state",
    "aware_datetimes",
    "checkpoint_metadata",
    "content_item",
    "conversation_context",
    "conversation_snapshot",
    "embedding_cache_state",
    "file_context",
    "filter_settings",
    "local_shell_action",
    "message_metadata",
    "message_snapshot",
    "naive_datetimes",
    "operating_mode",
    "reasoning_summary",
    "response_item",
    "session_metadata",
    "session_state",
    "tool_call_metadata",
    "verbatim",
]
