"""Behaviour of the data model: validation, JSON shapes, wire round trips."""

from __future__ import annotations

import contextlib
import copy
import enum
import pickle
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgpack
import msgspec
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
    item_from_json,
    item_to_json,
)
from journal._wire import (
    checked,
    checkpoint_meta_from_wire,
    checkpoint_meta_to_wire,
    datetime_from_wire,
    datetime_to_wire,
    metadata_from_wire,
    metadata_to_wire,
)
from journal._wire_v3 import (
    context_from_wire,
    conversation_from_wire,
    messages_from_wire,
    mode_history_from_wire,
    state_from_wire,
)
from tests.v3_wire import (
    context_to_wire,
    conversation_to_wire,
    item_from_wire,
    item_to_wire,
    message_from_wire,
    message_to_wire,
    messages_to_wire,
    mode_history_to_wire,
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


def _mutations(w: Any, replacement: st.SearchStrategy[Any] | None = None) -> st.SearchStrategy[Any]:
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
    if replacement is None:
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


# ---------------------------------------------------------------- the fast decode path
#
# Decoders build values in C (msgspec). These tests pin that the result is
# always what the public constructors build: equal, with fields of the same
# types, and never something a save would refuse.


def _rebuild(v: Any) -> Any:
    """``v`` rebuilt bottom-up through the public constructors."""
    if isinstance(v, msgspec.Struct):
        fields = v.__struct_fields__
        return type(v)(**{f: _rebuild(getattr(v, f)) for f in fields})
    if type(v) is tuple:
        return tuple(_rebuild(x) for x in v)
    return v


def _assert_same_shape(a: Any, b: Any, path: str = "value") -> None:
    """``a`` and ``b`` are equal and of the same types all the way down."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, msgspec.Struct):
        for f in a.__struct_fields__:
            _assert_same_shape(getattr(a, f), getattr(b, f), f"{path}.{f}")
    elif type(a) is tuple:
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same_shape(x, y, f"{path}[{i}]")
    elif isinstance(a, Mapping):
        assert list(a) == list(b), path
        for k in a:
            _assert_same_shape(a[k], b[k], f"{path}[{k!r}]")
    elif type(a) is datetime:
        # The same instant; what was decoded is in UTC (a MessageSnapshot keeps
        # the zone it was built with until it is stored).
        assert a == b and (a.tzinfo is UTC or b.tzinfo is UTC), path
    elif type(a) is uuid.UUID:
        assert a.int == b.int and a.is_safe is b.is_safe, path
    else:
        assert a == b, path


# Values that pickle (mappingproxy does not, so neither do context/state).
_PICKLABLE = {"item", "message", "messages", "mode_history", "checkpoint", "metadata"}


@pytest.mark.parametrize("name", sorted(WIRE_PAIRS))
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_decoded_values_are_exactly_what_the_public_constructors_build(
    name: str, data: st.DataObject
) -> None:
    strategy, to_wire, from_wire = WIRE_PAIRS[name]
    value = data.draw(strategy)  # built by the public constructors
    if name == "mode_history":  # a bare tuple: as ConversationSnapshot stores it
        value = ConversationSnapshot(SID, mode_history=value).mode_history
    decoded = from_wire(through_msgpack(to_wire(value)))
    assert decoded == value
    _assert_same_shape(decoded, value)
    rebuilt = _rebuild(decoded)  # every validator and converter run again
    assert rebuilt == decoded
    _assert_same_shape(rebuilt, decoded)
    if name in _PICKLABLE:
        assert pickle.loads(pickle.dumps(decoded)) == decoded


class _Str(str):
    pass


class _Int(enum.IntEnum):
    ONE = 1


# What wire decoders might be handed instead of the right value: the near
# misses of every type test (bool for int, int for bool or float, out of u64
# range, bytes for str, subclasses that take the constructor path, ...).
_CONFUSING = st.sampled_from(
    [
        True,
        False,
        0,
        1,
        -1,
        2**63,
        2**64 - 1,
        2**64,
        -(2**63),
        0.0,
        1.5,
        float("inf"),
        "",
        "x",
        "plan",
        _Str("x"),
        _Int.ONE,
        b"",
        b"0123456789abcdef",
        None,
        [],
        ["a"],
        [1, 2],
        [0, 2**64],
        [True, 1],
        {},
        {"t": "it", "x": 1},
    ]
)


@pytest.mark.parametrize("name", sorted(WIRE_PAIRS))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_type_confused_wire_data_raises_corrupt_payload_or_decodes_to_a_valid_value(
    name: str, data: st.DataObject
) -> None:
    strategy, to_wire, from_wire = WIRE_PAIRS[name]
    damaged = data.draw(_mutations(to_wire(data.draw(strategy)), _CONFUSING | S.MSGPACK_VALUES))
    try:
        decoded = from_wire(damaged)
    except CorruptPayload:
        return
    # Accepted: then the public constructors accept it too, unchanged.
    rebuilt = _rebuild(decoded)
    assert rebuilt == decoded
    _assert_same_shape(rebuilt, decoded)


def _snap_wire(**changes: Any) -> dict[str, Any]:
    """A valid message wire map with ``changes`` applied."""
    w = {"it": {"t": "fo", "ci": "", "o": ""}, "ts": 0, "ti": 0, "md": {"id": SID.bytes}}
    return {**w, **changes}


def _md_wire(**changes: Any) -> dict[str, Any]:
    """A valid message wire map whose metadata has ``changes`` applied."""
    return _snap_wire(md={"id": SID.bytes, **changes})


def _meta_wire(**changes: Any) -> dict[str, Any]:
    """A valid (minimal) session metadata wire map with ``changes`` applied."""
    return {"id": SID.bytes, "ti": "", "ca": 0, "ua": 0, "la": 0, **changes}


FAST_PATH_MALFORMED = [
    ("turn index str", message_from_wire, _snap_wire(ti="0")),
    ("turn index bool", message_from_wire, _snap_wire(ti=True)),
    ("turn index negative", message_from_wire, _snap_wire(ti=-1)),
    ("timestamp bool", message_from_wire, _snap_wire(ts=True)),
    ("message id int", message_from_wire, _snap_wire(md={"id": 5})),
    ("metadata only a wrong key", message_from_wire, _snap_wire(md={"x": SID.bytes})),
    ("metadata a list", message_from_wire, _snap_wire(md=[SID.bytes])),
    ("item a list", message_from_wire, _snap_wire(it=["fo"])),
    ("edited int", message_from_wire, _md_wire(e=1)),
    ("tool ms bool", message_from_wire, _md_wire(tc=[{"n": "t", "ms": True, "ok": True}])),
    ("tool ok int", message_from_wire, _md_wire(tc=[{"n": "t", "ms": 1, "ok": 1}])),
    ("line range 3", message_from_wire, _md_wire(fc=[{"p": "p", "lr": [1, 2, 3]}])),
    ("line range negative", message_from_wire, _md_wire(fc=[{"p": "p", "lr": [-1, 2]}])),
    ("line range bool", message_from_wire, _md_wire(fc=[{"p": "p", "lr": [True, 2]}])),
    ("output bytes", item_from_wire, {"t": "fo", "ci": "", "o": b"x"}),
    ("call id None", item_from_wire, {"t": "fo", "ci": None, "o": ""}),
    ("arguments int", item_from_wire, {"t": "fc", "n": "f", "a": 1, "ci": "c"}),
    ("item id int", item_from_wire, {"t": "fc", "n": "f", "a": "{}", "ci": "c", "i": 1}),
    ("text int", item_from_wire, {"t": "m", "r": "user", "c": [{"t": "it", "x": 1}]}),
    ("text bytes", item_from_wire, {"t": "m", "r": "user", "c": [{"t": "ot", "x": b"x"}]}),
    ("content item a str", item_from_wire, {"t": "m", "r": "user", "c": ["it"]}),
    ("unknown content tag", item_from_wire, {"t": "m", "r": "user", "c": [{"t": "zz"}]}),
    ("unknown raw a str", item_from_wire, {"t": "?", "raw": "x"}),
    ("summary text None", item_from_wire, {"t": "r", "i": "r", "s": [{"t": "st", "x": None}]}),
    ("tag a str subclass", item_from_wire, {"t": _Str("fo"), "ci": "", "o": ""}),
    ("command a str", item_from_wire, {"t": "sh", "st": "x", "a": {"cm": "ls"}}),
    ("command item int", item_from_wire, {"t": "sh", "st": "x", "a": {"cm": [1]}}),
    ("timeout bool", item_from_wire, {"t": "sh", "st": "x", "a": {"cm": [], "to": True}}),
    ("timeout negative", item_from_wire, {"t": "sh", "st": "x", "a": {"cm": [], "to": -1}}),
    ("title int", metadata_from_wire, _meta_wire(ti=1)),
    ("created float", metadata_from_wire, _meta_wire(ca=0.0)),
    ("accessed huge", metadata_from_wire, _meta_wire(la=2**62)),
    ("count str", metadata_from_wire, _meta_wire(mc="1")),
    ("count bool", metadata_from_wire, _meta_wire(tc=True)),
    ("version negative", metadata_from_wire, _meta_wire(v=-1)),
    ("favorite int", metadata_from_wire, _meta_wire(fv=1)),
    ("ratio str", metadata_from_wire, _meta_wire(cr="1.0")),
    ("ratio bool", metadata_from_wire, _meta_wire(cr=True)),
    ("mode list", metadata_from_wire, _meta_wire(mo=["plan"])),
    ("mode None", metadata_from_wire, _meta_wire(mo=None)),
    ("tag int", metadata_from_wire, _meta_wire(tg=["a", 1])),
    ("tags None", metadata_from_wire, _meta_wire(tg=None)),
    ("checkpoints None", metadata_from_wire, _meta_wire(ck=None)),
    ("checkpoint a list", metadata_from_wire, _meta_wire(ck=[[SID.bytes]])),
    (
        "checkpoint name None",
        checkpoint_meta_from_wire,
        {"id": SID.bytes, "n": None, "at": 0, "mi": 0},
    ),
    ("mode history bad mode", mode_history_from_wire, [["Plan", 0]]),
    ("conversation message a list", conversation_from_wire, {"id": SID.bytes, "m": [[]]}),
]


@pytest.mark.parametrize(
    ("why", "decode", "wire"), FAST_PATH_MALFORMED, ids=[m[0] for m in FAST_PATH_MALFORMED]
)
def test_wire_values_the_constructors_refuse_raise_corrupt_payload(
    why: str, decode: Callable[[Any], Any], wire: Any
) -> None:
    with pytest.raises(CorruptPayload):
        decode(wire)


def test_values_msgpack_never_yields_decode_to_the_plain_types() -> None:
    # Subclasses, and ints for floats: msgspec builds the field's own type.
    fc = item_from_wire({"t": "fc", "n": _Str("f"), "a": "{}", "ci": "c"})
    assert fc == FunctionCall("f", "{}", "c")
    snap = message_from_wire(_snap_wire(ti=_Int.ONE))
    assert snap.turn_index == 1
    meta = metadata_from_wire(_meta_wire(cr=2, mo=_Str("build")))
    assert meta.compression_ratio == 2.0 and type(meta.compression_ratio) is float
    assert meta.current_mode is OperatingMode.BUILD


# SessionMetadata wire keys that may be missing, and the fields they hold.
_META_OPTIONAL_KEYS = {
    "mc": "message_count",
    "tc": "turn_count",
    "mo": "current_mode",
    "md": "model",
    "tg": "tags",
    "fv": "is_favorite",
    "fs": "file_size",
    "cr": "compression_ratio",
    "v": "format_version",
    "ck": "checkpoints",
}


@settings(max_examples=100, deadline=None)
@given(S.session_metadata(), st.sets(st.sampled_from(sorted(_META_OPTIONAL_KEYS))))
def test_metadata_keys_missing_from_the_wire_decode_to_the_field_defaults(
    meta: SessionMetadata, missing: set[str]
) -> None:
    w = metadata_to_wire(meta)
    for k in missing:
        del w[k]
    defaults: dict[str, Any] = {f.name: f.default for f in msgspec.structs.fields(SessionMetadata)}
    expected = msgspec.structs.replace(
        meta, **{_META_OPTIONAL_KEYS[k]: defaults[_META_OPTIONAL_KEYS[k]] for k in missing}
    )
    decoded = metadata_from_wire(w)
    assert decoded == expected
    _assert_same_shape(decoded, expected)


@settings(max_examples=50, deadline=None)
@given(S.message_snapshot(), S.JSON_VALUES)
def test_message_metadata_with_unknown_keys_decodes_like_without(
    snap: MessageSnapshot, extra: Any
) -> None:
    w = message_to_wire(snap)
    w["md"]["zz"] = extra  # never a key of ours: ignored, so never the "id only" shortcut
    decoded = message_from_wire(w)
    assert decoded == snap
    _assert_same_shape(decoded, snap)


def test_decoded_values_are_frozen_hashable_and_evolvable() -> None:
    snap = MessageSnapshot(FunctionCall("f", "{}", "c"), T0, 3, MessageMetadata(message_id=SID))
    decoded = message_from_wire(through_msgpack(message_to_wire(snap)))
    assert decoded.metadata == MessageMetadata(message_id=SID)
    assert hash(decoded.item) == hash(snap.item)
    with pytest.raises(AttributeError):
        decoded.turn_index = 4  # type: ignore[misc]
    assert msgspec.structs.replace(decoded, turn_index=4).turn_index == 4
    with pytest.raises(InvalidArgument, match=r"MessageSnapshot.turn_index"):
        checked(msgspec.structs.replace(decoded, turn_index=-1), MessageSnapshot, "message")


_MIN_US = datetime_to_wire(datetime.min.replace(tzinfo=UTC))
_MAX_US = datetime_to_wire(datetime.max.replace(tzinfo=UTC))


@settings(max_examples=500)
@given(
    st.integers(min_value=_MIN_US, max_value=_MAX_US)
    | st.sampled_from([_MIN_US, _MAX_US, -1, 0, 1, 2**53 + 1, -(2**53) - 1, 999_999])
)
def test_timestamps_decode_exactly_at_microsecond_precision(n: int) -> None:
    t = datetime_from_wire(n)
    assert type(t) is datetime and t.tzinfo is UTC
    assert t == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=n)
    assert datetime_to_wire(t) == n
    ckpt = checkpoint_meta_from_wire({"id": SID.bytes, "n": "", "at": n, "mi": 0})
    assert ckpt.created_at == t and ckpt.created_at.tzinfo is UTC


@pytest.mark.parametrize(
    "n", [_MIN_US - 1, _MAX_US + 1, 2**62, -(2**62), 2**64, -(2**64), 2**200, True, 1.0, "0"]
)
def test_timestamps_out_of_range_or_not_ints_raise_corrupt_payload(n: Any) -> None:
    with pytest.raises(CorruptPayload):
        datetime_from_wire(n)
    with pytest.raises(CorruptPayload):
        checkpoint_meta_from_wire({"id": SID.bytes, "n": "", "at": n, "mi": 0})
    with pytest.raises(CorruptPayload):
        metadata_from_wire(_meta_wire(ua=n))


@settings(max_examples=200)
@given(st.binary(min_size=16, max_size=16) | st.sampled_from([bytes(16), b"\xff" * 16]))
def test_uuids_decode_exactly_as_uuid_from_bytes(b: bytes) -> None:
    got = checkpoint_meta_from_wire({"id": b, "n": "", "at": 0, "mi": 0}).id
    ref = uuid.UUID(bytes=b)
    assert type(got) is uuid.UUID
    assert got == ref and hash(got) == hash(ref) and str(got) == str(ref)
    assert got.bytes == b and got.is_safe is ref.is_safe and got.version == ref.version
    assert pickle.dumps(got) == pickle.dumps(ref)
    assert copy.copy(got) == ref and {got: 1}[ref] == 1


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
    # Refused where it is built, or (MessageSnapshot, the hot class of every
    # load, which has no normalising hook) by the save that writes it.
    with pytest.raises(InvalidArgument, match=r"naive|timezone"):
        value = build(t)
        checked(value, type(value), "value")


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
        lambda: SessionMetadata(SID, "t", T0, T0, T0, message_count=-1),
        lambda: SessionMetadata(SID, "t", T0, T0, T0, message_count=True),
        lambda: SessionMetadata(SID, "t", T0, T0, T0, file_size=2**64),
        lambda: SessionMetadata(SID, "t", T0, T0, T0, compression_ratio="1"),
        lambda: SessionMetadata(SID, "t", T0, T0, T0, current_mode="Plan"),
        lambda: SessionMetadata(SID, "t", T0, T0, T0, is_favorite=1),
        lambda: Message("user", [Message("user", [])]),
        lambda: Message(None, []),
        lambda: MessageSnapshot({"type": "message"}, T0, 0),
        lambda: FileContext("p", (1, 2, 3)),
        lambda: ConversationContext(environment_variables={"A": 1}),
        lambda: ConversationContext(environment_variables=[("A", "b")]),
        lambda: SessionState(panel_sizes={"a": "x"}),
        lambda: SessionState(expanded_messages=["not a uuid"]),
        lambda: UnknownItem("web"),
        lambda: ToolCallMetadata("t", 1, "yes"),
        lambda: LocalShellAction(["ls"], timeout_ms=-5),
    ],
)
def test_wrongly_typed_fields_are_refused_with_the_class_and_field_named_before_a_write(
    build: Callable[[], Any],
) -> None:
    # A constructor normalises (tuples, paths, modes, UTC) and refuses what it
    # cannot; the types of the rest are checked, in C, by what writes the value.
    with pytest.raises(InvalidArgument):
        value = build()
        checked(value, type(value), "value")


def test_a_wrong_type_deep_inside_names_its_class_field_and_place() -> None:
    conv = ConversationSnapshot(SID, [MessageSnapshot(Message("user", [InputText(5)]), T0, 0)])
    with pytest.raises(InvalidArgument) as info:
        checked(conv, ConversationSnapshot, "conversation")
    assert str(info.value) == (
        "InputText.text at conversation.messages[0].item.content[0].text: Expected `str`, got `int`"
    )


def test_a_path_is_accepted_wherever_a_path_is_held_and_stored_as_text() -> None:
    from pathlib import Path, PurePosixPath

    ctx = ConversationContext(Path("/repo"), open_files=[PurePosixPath("a.py"), "b.py"])
    assert ctx == ConversationContext("/repo", open_files=("a.py", "b.py"))
    assert FileContext(Path("src/x.py")).path == "src/x.py"
    assert AstIndexState([Path("f")], 1, 2, T0).indexed_files == ("f",)
    assert LocalShellAction(["ls"], working_directory=Path("/w")).working_directory == "/w"


def test_values_are_immutable() -> None:
    meta = SessionMetadata(SID, "t", T0, T0, T0)
    with pytest.raises(AttributeError):
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


# ---------------------------------------------------------------- cheap construction


def test_a_message_snapshot_built_without_metadata_gets_a_fresh_random_version_4_id() -> None:
    a = MessageSnapshot(Message("user", []), T0, 0)
    b = MessageSnapshot(Message("user", []), T0, 0)
    for m in (a, b):
        mid = m.metadata.message_id
        assert type(mid) is uuid.UUID and mid.version == 4
        assert mid.variant == uuid.RFC_4122 and mid.is_safe is uuid.SafeUUID.unknown
        assert pickle.loads(pickle.dumps(mid)) == mid
        assert uuid.UUID(str(mid)) == mid and hash(uuid.UUID(bytes=mid.bytes)) == hash(mid)
        assert msgspec.structs.replace(m.metadata, message_id=SID) == MessageMetadata(
            message_id=SID
        )
    assert a.metadata.message_id != b.metadata.message_id


def test_a_conversation_takes_a_tuple_of_snapshots_as_it_is_and_a_save_checks_anything_else() -> (
    None
):
    msgs = tuple(MessageSnapshot(Message("user", []), T0, i) for i in range(50))
    conv = ConversationSnapshot(SID, msgs)
    assert conv.messages is msgs
    assert conv.context == ConversationContext() and conv.mode_history == ()
    assert ConversationSnapshot(SID, list(msgs)) == conv
    assert ConversationSnapshot(SID, iter(msgs)).messages == msgs

    class Sub(MessageSnapshot):
        pass

    sub = Sub(Message("user", []), T0, 0)
    assert ConversationSnapshot(SID, (*msgs, sub)).messages[-1] is sub
    bad: list[Any] = [
        (*msgs, Message("user", [])),
        (Message("user", []), *msgs),
        (*msgs[:3], None, *msgs[3:]),
        (*msgs, message_to_wire(msgs[0])),
        "not messages",
        {"a": msgs[0]},
        5,
    ]
    for value in bad:
        with pytest.raises(InvalidArgument, match="messages"):
            checked(ConversationSnapshot(SID, value), ConversationSnapshot, "conversation")


_MESSAGE_DECODERS = [m for m in FAST_PATH_MALFORMED if m[1] in (message_from_wire, item_from_wire)]


@pytest.mark.parametrize(
    ("why", "decode", "wire"), _MESSAGE_DECODERS, ids=[m[0] for m in _MESSAGE_DECODERS]
)
def test_a_list_of_messages_refuses_what_one_message_refuses(
    why: str, decode: Callable[[Any], Any], wire: Any
) -> None:
    one = wire if decode is message_from_wire else {**_snap_wire(), "it": wire}
    good = _snap_wire()
    with pytest.raises(CorruptPayload, match="message #1"):
        messages_from_wire([good, one, good])
