"""Behaviour of the data model: validation, JSON shapes, wire round trips."""

from __future__ import annotations

import contextlib
import copy
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journal._errors import CorruptPayload, InvalidArgument
from journal._model import (
    AstIndexState,
    CheckpointMetadata,
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
    SessionMetadata,
    SessionState,
    SummaryText,
    ToolCallMetadata,
    UnknownContent,
    UnknownItem,
    UnknownSummary,
    checkpoint_meta_from_wire,
    checkpoint_meta_to_wire,
    context_from_wire,
    context_to_wire,
    conversation_from_wire,
    conversation_to_wire,
    datetime_from_wire,
    datetime_to_wire,
    item_from_json,
    item_from_wire,
    item_to_json,
    item_to_wire,
    message_from_wire,
    message_to_wire,
    messages_from_wire,
    messages_to_wire,
    metadata_from_wire,
    metadata_to_wire,
    mode_history_from_wire,
    mode_history_to_wire,
    state_from_wire,
    state_to_wire,
)

try:
    from tests import strategies as S
except ImportError:  # tests/ on sys.path rather than the project root
    import strategies as S  # type: ignore[no-redef]

T0 = datetime(2025, 8, 26, 10, 0, tzinfo=UTC)
SID = uuid.UUID("12345678-1234-5678-1234-567812345678")


def through_msgpack(w: Any) -> Any:
    return msgpack.unpackb(msgpack.packb(w, use_bin_type=True), raw=False)


# (strategy, to_wire, from_wire) for every public wire pair.
WIRE_PAIRS: dict[str, tuple[st.SearchStrategy[Any], Callable[[Any], Any], Callable[[Any], Any]]] = {
    "item": (S.response_item(), item_to_wire, item_from_wire),
    "message": (S.message_snapshot(), message_to_wire, message_from_wire),
    "messages": (
        st.lists(S.message_snapshot(), max_size=4).map(tuple),
        messages_to_wire,
        messages_from_wire,
    ),
    "mode_history": (
        st.lists(st.tuples(S.operating_mode(), S.aware_datetimes()), max_size=4).map(tuple),
        mode_history_to_wire,
        mode_history_from_wire,
    ),
    "context": (S.conversation_context(), context_to_wire, context_from_wire),
    "conversation": (
        S.conversation_snapshot(max_messages=4),
        conversation_to_wire,
        conversation_from_wire,
    ),
    "state": (S.session_state(), state_to_wire, state_from_wire),
    "checkpoint": (S.checkpoint_metadata(), checkpoint_meta_to_wire, checkpoint_meta_from_wire),
    "metadata": (S.session_metadata(), metadata_to_wire, metadata_from_wire),
}


# ---------------------------------------------------------------- wire round trips


@pytest.mark.parametrize("name", sorted(WIRE_PAIRS))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_wire_round_trip_returns_an_equal_value(name: str, data: st.DataObject) -> None:
    strategy, to_wire, from_wire = WIRE_PAIRS[name]
    value = data.draw(strategy)
    assert from_wire(to_wire(value)) == value


@pytest.mark.parametrize("name", sorted(WIRE_PAIRS))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_wire_round_trip_through_msgpack_returns_an_equal_value(
    name: str, data: st.DataObject
) -> None:
    strategy, to_wire, from_wire = WIRE_PAIRS[name]
    value = data.draw(strategy)
    assert from_wire(through_msgpack(to_wire(value))) == value


def _keys_outside_verbatim(w: Any, free: bool = False) -> list[str]:
    """Every map key in a wire value, skipping verbatim data and user mappings."""
    keys: list[str] = []
    if isinstance(w, dict):
        for k, v in w.items():
            if not free:
                keys.append(k)
            # "raw" holds verbatim data; "env"/"ps" hold user-chosen keys.
            keys.extend(_keys_outside_verbatim(v, free=k in ("raw", "env", "ps") or free))
    elif isinstance(w, list):
        for v in w:
            keys.extend(_keys_outside_verbatim(v, free))
    return keys


@settings(max_examples=50, deadline=None)
@given(S.conversation_snapshot(max_messages=3), S.session_metadata(), S.session_state())
def test_wire_maps_use_short_string_keys(
    conv: ConversationSnapshot, meta: SessionMetadata, state: SessionState
) -> None:
    for w in (conversation_to_wire(conv), metadata_to_wire(meta), state_to_wire(state)):
        for k in _keys_outside_verbatim(w):
            assert isinstance(k, str) and 1 <= len(k) <= 3, k


def test_wire_encodes_uuids_as_16_bytes_and_datetimes_as_epoch_microseconds() -> None:
    ckpt = CheckpointMetadata(SID, "c", datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=UTC), 3)
    w = checkpoint_meta_to_wire(ckpt)
    assert w == {"id": SID.bytes, "n": "c", "at": 1_000_005, "mi": 3}
    assert datetime_to_wire(datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)) == -1
    assert datetime_from_wire(-1) == datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def test_wire_encodes_enums_as_their_string_values() -> None:
    meta = SessionMetadata(SID, "t", T0, T0, T0, current_mode=OperatingMode.REVIEW)
    assert metadata_to_wire(meta)["mo"] == "review"
    assert mode_history_to_wire(((OperatingMode.BUILD, T0),)) == [["build", datetime_to_wire(T0)]]


def test_wire_tags_response_items_under_key_t() -> None:
    items = [
        Message("user", [InputText("hi")]),
        Reasoning("r1", [SummaryText("s")]),
        LocalShellCall("completed", LocalShellAction(["ls"])),
        FunctionCall("f", "{}", "c1"),
        FunctionCallOutput("c1", "ok"),
        UnknownItem({"type": "web_search_call"}),
    ]
    assert [item_to_wire(i)["t"] for i in items] == ["m", "r", "sh", "fc", "fo", "?"]
    assert item_to_wire(items[-1]) == {"t": "?", "raw": {"type": "web_search_call"}}


def test_message_metadata_at_defaults_is_just_its_id_on_the_wire() -> None:
    snap = MessageSnapshot(Message("user", []), T0, 0, MessageMetadata(message_id=SID))
    assert message_to_wire(snap)["md"] == {"id": SID.bytes}


def test_old_wire_data_missing_optional_keys_decodes_to_defaults() -> None:
    assert state_from_wire({}) == SessionState()
    assert context_from_wire({}) == ConversationContext()
    conv = conversation_from_wire({"id": SID.bytes})
    assert conv == ConversationSnapshot(SID)
    meta = metadata_from_wire({"id": SID.bytes, "ti": "t", "ca": 0, "ua": 0, "la": 0})
    assert meta.format_version == 3 and meta.current_mode is OperatingMode.PLAN


@settings(max_examples=50, deadline=None)
@given(S.session_metadata(), S.session_state(), st.dictionaries(st.text(min_size=4), S.JSON_VALUES))
def test_wire_decoders_ignore_unknown_keys(
    meta: SessionMetadata, state: SessionState, extra: dict[str, Any]
) -> None:
    assert metadata_from_wire({**extra, **metadata_to_wire(meta)}) == meta
    assert state_from_wire({**extra, **state_to_wire(state)}) == state


def test_reasoning_content_none_and_empty_stay_distinct_on_the_wire_and_in_json() -> None:
    none = Reasoning("r", [], content=None)
    empty = Reasoning("r", [], content=[])
    for item in (none, empty):
        assert item_from_wire(through_msgpack(item_to_wire(item))) == item
        assert item_from_json(item_to_json(item)) == item
    assert none != empty


# ---------------------------------------------------------------- malformed wire data

MALFORMED = [
    ("not a map", item_from_wire, ["m"]),
    ("unknown tag", item_from_wire, {"t": "zz"}),
    ("missing role", item_from_wire, {"t": "m", "c": []}),
    ("content not a list", item_from_wire, {"t": "m", "r": "user", "c": "abc"}),
    ("content map", item_from_wire, {"t": "m", "r": "user", "c": {"a": 1}}),
    ("role int", item_from_wire, {"t": "m", "r": 1, "c": []}),
    ("bad action", item_from_wire, {"t": "sh", "st": "x", "a": []}),
    ("uuid wrong length", checkpoint_meta_from_wire, {"id": b"123", "n": "", "at": 0, "mi": 0}),
    ("uuid as str", checkpoint_meta_from_wire, {"id": str(SID), "n": "", "at": 0, "mi": 0}),
    ("float time", checkpoint_meta_from_wire, {"id": SID.bytes, "n": "", "at": 1.5, "mi": 0}),
    ("huge time", checkpoint_meta_from_wire, {"id": SID.bytes, "n": "", "at": 2**62, "mi": 0}),
    ("negative index", checkpoint_meta_from_wire, {"id": SID.bytes, "n": "", "at": 0, "mi": -1}),
    (
        "bad mode",
        metadata_from_wire,
        {"id": SID.bytes, "ti": "", "ca": 0, "ua": 0, "la": 0, "mo": "x"},
    ),
    (
        "tags as str",
        metadata_from_wire,
        {"id": SID.bytes, "ti": "", "ca": 0, "ua": 0, "la": 0, "tg": "ab"},
    ),
    (
        "missing message id",
        message_from_wire,
        {"it": {"t": "fo", "ci": "", "o": ""}, "ts": 0, "ti": 0, "md": {}},
    ),
    ("messages not a list", messages_from_wire, {"it": 1}),
    ("mode pair too long", mode_history_from_wire, [["plan", 0, 1]]),
    ("env values not str", context_from_wire, {"env": {"A": 1}}),
    ("panel size str", state_from_wire, {"ps": {"a": "wide"}}),
    ("date range single", state_from_wire, {"fs": {"dr": [0]}}),
    ("expanded not bytes", state_from_wire, {"ex": [1]}),
    ("conversation id missing", conversation_from_wire, {"m": []}),
]


@pytest.mark.parametrize(("why", "decode", "wire"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_wire_data_raises_corrupt_payload(
    why: str, decode: Callable[[Any], Any], wire: Any
) -> None:
    with pytest.raises(CorruptPayload):
        decode(wire)


def _mutations(w: Any) -> st.SearchStrategy[Any]:
    """A copy of ``w`` with one nested map value replaced or removed."""
    paths: list[tuple[Any, ...]] = []

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                paths.append((*path, k))
                walk(v, (*path, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                paths.append((*path, i))
                walk(v, (*path, i))

    walk(w, ())
    if not paths:
        return st.just(w)
    replacement = S.MSGPACK_VALUES | st.sampled_from([None, -1, 2**64, "", b"", [], {}])

    def mutate(path: tuple[Any, ...], drop: bool, new: Any) -> Any:
        out = copy.deepcopy(w)
        node = out
        for k in path[:-1]:
            node = node[k]
        if drop and isinstance(node, dict):
            del node[path[-1]]
        else:
            node[path[-1]] = new
        return out

    return st.builds(mutate, st.sampled_from(paths), st.booleans(), replacement)


@pytest.mark.parametrize("name", sorted(WIRE_PAIRS))
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_damaged_wire_data_decodes_or_raises_corrupt_payload_only(
    name: str, data: st.DataObject
) -> None:
    strategy, to_wire, from_wire = WIRE_PAIRS[name]
    damaged = data.draw(_mutations(to_wire(data.draw(strategy))))
    with contextlib.suppress(CorruptPayload):
        from_wire(damaged)


# ---------------------------------------------------------------- JSON items


def test_json_shapes_of_every_known_item_type() -> None:
    shapes = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {
            "type": "message",
            "id": "m1",
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": "héllo ✓"},
                {"type": "input_image", "image_url": "data:image/png;base64,AA=="},
            ],
        },
        {"type": "function_call", "name": "shell", "arguments": '{"cmd":"ls"}', "call_id": "c1"},
        {"type": "function_call", "id": "fc1", "name": "f", "arguments": "{}", "call_id": "c2"},
        {"type": "function_call_output", "call_id": "c1", "output": "a\nb"},
        {
            "type": "reasoning",
            "id": "r1",
            "summary": [{"type": "summary_text", "text": "thinking"}],
            "encrypted_content": "gAAA",
        },
        {"type": "reasoning", "id": "r2", "summary": []},
        {
            "type": "local_shell_call",
            "id": "s1",
            "call_id": "c3",
            "status": "completed",
            "action": {
                "type": "exec",
                "command": ["ls", "-la"],
                "timeout_ms": 1000,
                "working_directory": "/tmp",
            },
        },
        {
            "type": "local_shell_call",
            "status": "in_progress",
            "action": {"type": "exec", "command": []},
        },
    ]
    for d in shapes:
        item = item_from_json(d)
        assert not isinstance(item, UnknownItem), d
        assert item_to_json(item) == d


def test_json_message_decodes_to_the_expected_model() -> None:
    d = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    assert item_from_json(d) == Message("user", (InputText("hi"),))


@settings(max_examples=200, deadline=None)
@given(S.response_item(unknown="json"))
def test_json_round_trip_of_items_is_exact(item: Any) -> None:
    d = item_to_json(item)
    assert item_from_json(d) == item
    assert item_to_json(item_from_json(d)) == d


@settings(max_examples=100, deadline=None)
@given(S.verbatim(S.ITEM_TAGS, "json"))
def test_unknown_json_items_are_kept_verbatim_through_json_wire_and_msgpack(
    d: dict[str, Any],
) -> None:
    item = item_from_json(d)
    assert item == UnknownItem(d)
    assert item_to_json(item) == d
    assert item_to_json(item_from_wire(through_msgpack(item_to_wire(item)))) == d


@settings(max_examples=100, deadline=None)
@given(S.verbatim(S.ITEM_TAGS, "legacy"))
def test_unknown_legacy_items_survive_wire_and_msgpack_unchanged(data: list[Any]) -> None:
    item = UnknownItem(data)
    assert item_from_wire(through_msgpack(item_to_wire(item))).data == data


def test_unknown_content_and_summary_variants_are_kept_verbatim() -> None:
    refusal = {"type": "refusal", "refusal": "no"}
    text = {"type": "reasoning_text", "text": "t"}
    d = {"type": "message", "role": "assistant", "content": [refusal]}
    r = {"type": "reasoning", "id": "r", "summary": [text], "content": [text]}
    assert item_from_json(d) == Message("assistant", [UnknownContent(refusal)])
    assert item_from_json(r) == Reasoning("r", [UnknownSummary(text)], None, [UnknownContent(text)])
    assert item_to_json(item_from_json(d)) == d
    assert item_to_json(item_from_json(r)) == r


def test_shell_call_with_an_unknown_action_variant_is_kept_verbatim() -> None:
    d = {"type": "local_shell_call", "status": "x", "action": {"type": "spawn", "argv": []}}
    assert item_from_json(d) == UnknownItem(d)


def test_json_null_optional_keys_read_as_absent() -> None:
    d = {"type": "function_call", "id": None, "name": "f", "arguments": "", "call_id": "c"}
    assert item_from_json(d) == FunctionCall("f", "", "c")
    assert "id" not in item_to_json(item_from_json(d))


def test_legacy_unknown_item_has_a_best_effort_json_form() -> None:
    assert item_to_json(UnknownItem(["web_search_call", "ws1", "done"])) == {
        "type": "web_search_call",
        "legacy_fields": ["ws1", "done"],
    }


BAD_JSON = [
    ["message"],
    "message",
    None,
    {},
    {"type": 3},
    {"type": "message", "content": []},
    {"type": "message", "role": "user"},
    {"type": "message", "role": "user", "content": "hi"},
    {"type": "message", "role": 1, "content": []},
    {"type": "message", "role": "user", "content": ["hi"]},
    {"type": "message", "role": "user", "content": [{"text": "no type"}]},
    {"type": "message", "role": "user", "content": [{"type": "input_text"}]},
    {"type": "message", "role": "user", "content": [], "id": 5},
    {"type": "function_call", "name": "f", "arguments": {}, "call_id": "c"},
    {"type": "function_call", "name": "f", "arguments": ""},
    {"type": "function_call_output", "call_id": "c"},
    {"type": "function_call_output", "call_id": "c", "output": 1},
    {"type": "reasoning", "summary": []},
    {"type": "reasoning", "id": "r", "summary": None},
    {"type": "reasoning", "id": "r", "summary": [], "content": "x"},
    {"type": "reasoning", "id": "r", "summary": [{"type": "summary_text"}]},
    {"type": "local_shell_call", "status": "s"},
    {"type": "local_shell_call", "status": "s", "action": "ls"},
    {"type": "local_shell_call", "status": "s", "action": {"command": ["ls"]}},
    {"type": "local_shell_call", "status": "s", "action": {"type": "exec", "command": "ls"}},
    {"type": "local_shell_call", "status": "s", "action": {"type": "exec", "command": [1]}},
    {
        "type": "local_shell_call",
        "status": "s",
        "action": {"type": "exec", "command": [], "timeout_ms": -1},
    },
    {"type": "local_shell_call", "action": {"type": "exec", "command": []}},
]


@pytest.mark.parametrize("d", BAD_JSON, ids=[repr(d)[:50] for d in BAD_JSON])
def test_bad_json_items_raise_invalid_argument(d: Any) -> None:
    with pytest.raises(InvalidArgument):
        item_from_json(d)


def test_invalid_argument_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        item_from_json({"type": "message"})


# ---------------------------------------------------------------- construction


NAIVE_CONSTRUCTORS: list[Callable[[datetime], Any]] = [
    lambda t: MessageSnapshot(Message("user", []), t, 0),
    lambda t: MessageMetadata(edit_history=[(t, Message("user", []))]),
    lambda t: AstIndexState([], 0, 0, t),
    lambda t: ConversationSnapshot(SID, mode_history=[(OperatingMode.PLAN, t)]),
    lambda t: FilterSettings(date_range=(T0, t)),
    lambda t: CheckpointMetadata(SID, "c", t, 0),
    lambda t: SessionMetadata(SID, "t", t, T0, T0),
    lambda t: SessionMetadata(SID, "t", T0, t, T0),
    lambda t: SessionMetadata(SID, "t", T0, T0, t),
]


@pytest.mark.parametrize("build", NAIVE_CONSTRUCTORS)
@settings(max_examples=10, deadline=None)
@given(t=S.naive_datetimes())
def test_naive_datetimes_are_rejected_everywhere(
    build: Callable[[datetime], Any], t: datetime
) -> None:
    with pytest.raises(InvalidArgument, match="naive"):
        build(t)


@given(S.aware_datetimes())
def test_aware_datetimes_are_normalised_to_utc(t: datetime) -> None:
    ckpt = CheckpointMetadata(SID, "c", t, 0)
    assert ckpt.created_at == t
    assert ckpt.created_at.tzinfo is UTC
    assert ckpt.created_at.utcoffset() == timedelta(0)


def test_lists_are_accepted_and_stored_as_tuples() -> None:
    meta = SessionMetadata(SID, "t", T0, T0, T0, tags=["a", "b"])
    assert meta.tags == ("a", "b")
    msg = Message("user", [InputText("x")])
    assert msg.content == (InputText("x"),)
    assert FileContext("p", [1, 2]).line_range == (1, 2)


def test_modes_may_be_given_by_value() -> None:
    assert SessionMetadata(SID, "t", T0, T0, T0, current_mode="build").current_mode is (
        OperatingMode.BUILD
    )


@pytest.mark.parametrize(
    "build",
    [
        lambda: SessionMetadata(SID, "t", T0, T0, T0, tags="ab"),
        lambda: SessionMetadata(SID, "t", T0, T0, T0, tags=[1]),
        lambda: SessionMetadata(SID, "t", T0, T0, T0, tags={"a": 1}),
        lambda: SessionMetadata(str(SID), "t", T0, T0, T0),
        lambda: SessionMetadata(SID, "t", T0, T0, T0, message_count=-1),
        lambda: SessionMetadata(SID, "t", T0, T0, T0, message_count=True),
        lambda: SessionMetadata(SID, "t", T0, T0, T0, file_size=2**64),
        lambda: SessionMetadata(SID, "t", T0, T0, T0, compression_ratio="1"),
        lambda: SessionMetadata(SID, "t", T0, T0, T0, current_mode="Plan"),
        lambda: SessionMetadata(SID, "t", T0, T0, T0, is_favorite=1),
        lambda: SessionMetadata(SID, "t", "2025-01-01T00:00:00Z", T0, T0),
        lambda: Message("user", [Message("user", [])]),
        lambda: Message(None, []),
        lambda: MessageSnapshot({"type": "message"}, T0, 0),
        lambda: FileContext("p", (1, 2, 3)),
        lambda: ConversationContext(environment_variables={"A": 1}),
        lambda: ConversationContext(environment_variables=[("A", "b")]),
        lambda: SessionState(panel_sizes={"a": "x"}),
        lambda: SessionState(expanded_messages=[str(SID)]),
        lambda: UnknownItem(("web", 1)),
        lambda: ToolCallMetadata("t", 1, "yes"),
        lambda: LocalShellAction(["ls"], timeout_ms=-5),
    ],
)
def test_wrongly_typed_constructor_arguments_raise_invalid_argument(
    build: Callable[[], Any],
) -> None:
    with pytest.raises(InvalidArgument):
        build()


def test_values_are_immutable() -> None:
    meta = SessionMetadata(SID, "t", T0, T0, T0)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        meta.title = "x"  # type: ignore[misc]
    ctx = ConversationContext(environment_variables={"A": "b"})
    with pytest.raises(TypeError):
        ctx.environment_variables["A"] = "c"  # type: ignore[index]


def test_mappings_are_copied_so_later_changes_to_the_source_do_not_leak_in() -> None:
    env = {"A": "b"}
    ctx = ConversationContext(environment_variables=env)
    env["A"] = "c"
    assert ctx.environment_variables == {"A": "b"}
    assert ctx == ConversationContext(environment_variables={"A": "b"})


def test_defaults_mirror_the_seed() -> None:
    meta = SessionMetadata(SID, "t", T0, T0, T0)
    assert (meta.current_mode, meta.format_version, meta.compression_ratio) == (
        OperatingMode.PLAN,
        3,
        1.0,
    )
    fs = FilterSettings()
    assert (fs.show_system, fs.show_tool_calls, fs.show_reasoning) == (False, True, True)
    assert SessionState().filter_settings == fs
    assert MessageMetadata().message_id != MessageMetadata().message_id


def test_operating_mode_values() -> None:
    assert [m.value for m in OperatingMode] == ["plan", "build", "review"]


def test_scalar_only_values_are_hashable() -> None:
    assert hash(FunctionCall("f", "{}", "c")) == hash(FunctionCall("f", "{}", "c"))
    assert len({OutputText("a"), OutputText("a"), InputImage("u")}) == 2
    assert EmbeddingCacheState(1, "m", 2) == EmbeddingCacheState(1, "m", 2)
    assert ToolCallMetadata("t", 1, True) != ToolCallMetadata("t", 1, False)


def test_non_utc_offset_round_trips_as_the_same_instant() -> None:
    t = datetime(2025, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=-5)))
    ckpt = CheckpointMetadata(SID, "c", t, 0)
    back = checkpoint_meta_from_wire(checkpoint_meta_to_wire(ckpt))
    assert back.created_at == datetime(2025, 1, 1, 17, 0, tzinfo=UTC)
