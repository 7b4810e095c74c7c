"""Reading legacy v2 files: exact decoding, damage reporting, directory scan."""

from __future__ import annotations

import contextlib
import os
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journal._errors import JournalError
from journal._legacy import (
    DEFAULT_MAX_OUTPUT,
    LegacyCheckpointFile,
    LegacyFormatError,
    LegacySession,
    LegacySessionFile,
    decode_legacy_checkpoint_bytes,
    decode_legacy_session_bytes,
    read_legacy_checkpoint,
    read_legacy_session,
    scan_legacy_root,
)
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
)

try:
    from tests import legacy_writer as W
    from tests import strategies as S
except ImportError:  # tests/ on sys.path rather than the project root
    import legacy_writer as W  # type: ignore[no-redef]
    import strategies as S  # type: ignore[no-redef]

T_WHOLE = datetime(2025, 8, 26, 10, 0, 0, tzinfo=UTC)
T_MILLI = datetime(2025, 8, 26, 10, 0, 1, 123000, tzinfo=UTC)
T_MICRO = datetime(2025, 8, 26, 10, 0, 2, 123456, tzinfo=UTC)
SID = uuid.UUID("0b7e6a2e-6f0e-4c47-9d7a-3a1c1f7b2d10")
CID1 = uuid.UUID("5f1d8d3e-1111-4a2b-8c3d-000000000001")
CID2 = uuid.UUID("5f1d8d3e-2222-4a2b-8c3d-000000000002")


def u(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)


# ---------------------------------------------------------------- fixtures


def rich_metadata() -> SessionMetadata:
    return SessionMetadata(
        id=SID,
        title="Refactor le parseur — 日本語 ✓",
        created_at=T_WHOLE,
        updated_at=T_MILLI,
        last_accessed=T_MICRO,
        message_count=9,
        turn_count=4,
        current_mode=OperatingMode.BUILD,
        model="gpt-5",
        tags=("rust", "überarbeiten", ""),
        is_favorite=True,
        file_size=70_000,
        compression_ratio=0.25,
        format_version=2,
        checkpoints=(
            CheckpointMetadata(CID1, "before cleanup", T_MILLI, 3, "first ✂"),
            CheckpointMetadata(CID2, "after", T_MICRO, 7, None),
        ),
    )


def every_item() -> list[Any]:
    return [
        Message("user", [InputText("héllo"), InputImage("data:image/png;base64,AAAA")]),
        Message(
            "assistant",
            [OutputText("done ✓"), UnknownContent(["refusal", "no"])],
            id="msg_1",
        ),
        Reasoning("rs_1", [SummaryText("thinking…"), UnknownSummary(["new_kind", 1])], "gAAAA"),
        Reasoning("rs_2", [], None),
        Reasoning("rs_3", [SummaryText("s")], None, [UnknownContent(["reasoning_text", "t"])]),
        Reasoning("rs_4", [], "enc", []),
        LocalShellCall(
            "completed",
            LocalShellAction(["bash", "-lc", "ls -la"], 10_000, "/home/ü"),
            id="lsh_1",
            call_id="call_1",
        ),
        LocalShellCall("in_progress", LocalShellAction([])),
        FunctionCall("shell", '{"command":["ls"]}', "call_2", id="fc_1"),
        FunctionCall("apply_patch", "{}", "call_3"),
        FunctionCallOutput("call_2", "total 0\n✓"),
        UnknownItem(["web_search_call", "ws_1", None, {"query": "x"}, b"\x00\xff", 1.5, -7]),
    ]


def rich_conversation() -> ConversationSnapshot:
    items = every_item()
    messages = []
    for i, item in enumerate(items):
        ts = [T_WHOLE, T_MILLI, T_MICRO][i % 3] + timedelta(minutes=i)
        meta = MessageMetadata(message_id=u(100 + i))
        if i == 0:
            meta = MessageMetadata(
                edited=True,
                edit_history=[(T_WHOLE, Message("user", [InputText("helo")]))],
                branch_point=True,
                branch_id=u(1),
                parent_message_id=u(2),
                message_id=u(100),
                file_context=[
                    FileContext("src/main.rs", (10, 20), "fn main() {}", "rust"),
                    FileContext("README.md"),
                ],
                tool_calls=[
                    ToolCallMetadata("shell", 1234, True),
                    ToolCallMetadata("apply_patch", 0, False, "rejected: ü"),
                ],
            )
        messages.append(MessageSnapshot(item, ts, i // 2, meta))
    context = ConversationContext(
        working_directory="/home/ü/project",
        environment_variables={"PATH": "/usr/bin", "LANG": "de_DE.UTF-8"},
        open_files=("src/main.rs", "Cargo.toml"),
        ast_index_state=AstIndexState(("src/main.rs",), 42, 2**40, T_MICRO),
        embedding_cache=EmbeddingCacheState(7, "text-embedding-3-small", 300),
    )
    return ConversationSnapshot(
        SID,
        messages,
        context,
        [
            (OperatingMode.PLAN, T_WHOLE),
            (OperatingMode.BUILD, T_MILLI),
            (OperatingMode.REVIEW, T_MICRO),
        ],
    )


def rich_state() -> SessionState:
    return SessionState(
        cursor_position=5,
        scroll_offset=300,
        selected_message=u(103),
        expanded_messages=(u(100), u(101)),
        active_panel="history",
        panel_sizes={"left": 0.25, "right": 0.75},
        search_query="größe",
        filter_settings=FilterSettings(True, False, True, "assistant", (T_WHOLE, T_MICRO)),
    )


def minimal() -> tuple[SessionMetadata, ConversationSnapshot, SessionState]:
    meta = SessionMetadata(u(9), "", T_WHOLE, T_WHOLE, T_WHOLE, format_version=2)
    return meta, ConversationSnapshot(u(9)), SessionState()


def valid_session_bytes() -> bytes:
    return W.session_file_bytes(rich_metadata(), rich_conversation(), rich_state(), 0xDEADBEEF)


# ---------------------------------------------------------------- exact decoding


def test_writer_frames_declare_no_content_size_and_no_checksum() -> None:
    data = valid_session_bytes()
    params = zstandard.get_frame_parameters(data[16:])
    assert params.content_size == zstandard.CONTENTSIZE_UNKNOWN
    assert not params.has_checksum


def test_every_type_and_variant_decodes_field_for_field() -> None:
    got = decode_legacy_session_bytes(valid_session_bytes(), source="rich.agcx")
    assert got.metadata == rich_metadata()
    assert got.state == rich_state()
    assert got.checksum == 0xDEADBEEF
    conv = rich_conversation()
    assert got.conversation.id == conv.id
    assert got.conversation.context == conv.context
    assert got.conversation.mode_history == conv.mode_history
    assert len(got.conversation.messages) == len(conv.messages)
    for mine, theirs in zip(got.conversation.messages, conv.messages, strict=True):
        assert mine == theirs
    assert got == LegacySession(rich_metadata(), conv, rich_state(), 0xDEADBEEF)


def test_legacy_metadata_keeps_format_version_2() -> None:
    got = decode_legacy_session_bytes(valid_session_bytes(), source="x")
    assert got.metadata.format_version == 2


def test_absent_optionals_decode_as_none_and_empty() -> None:
    meta, conv, state = minimal()
    got = decode_legacy_session_bytes(W.session_file_bytes(meta, conv, state), source="m")
    assert got == LegacySession(meta, conv, state, None)


@pytest.mark.parametrize("omit_none", [False, True])
def test_structs_written_as_maps_with_field_names_decode_the_same(omit_none: bool) -> None:
    writer = W.LegacyWriter(as_map=True, omit_none=omit_none)
    data = W.session_file_bytes(
        rich_metadata(), rich_conversation(), rich_state(), 7, writer=writer
    )
    got = decode_legacy_session_bytes(data, source="maps.agcx")
    assert got == LegacySession(rich_metadata(), rich_conversation(), rich_state(), 7)


@pytest.mark.parametrize("as_map", [False, True])
def test_session_state_without_its_serde_default_fields_decodes_to_defaults(as_map: bool) -> None:
    meta, conv, _ = minimal()
    state = SessionState(
        cursor_position=3,
        selected_message=u(5),
        search_query="q",
        filter_settings=FilterSettings(show_system=True),
    )
    writer = W.LegacyWriter(as_map=as_map, old_state_layout=True)
    got = decode_legacy_session_bytes(
        W.session_file_bytes(meta, conv, state, writer=writer), source="old"
    )
    assert got.state == state
    assert got.state.active_panel == "" and dict(got.state.panel_sizes) == {}


def test_nanosecond_fractions_are_truncated_to_microseconds() -> None:
    writer = W.LegacyWriter(timestamp=W.rfc3339_nanos(999))
    got = decode_legacy_session_bytes(
        W.session_file_bytes(rich_metadata(), rich_conversation(), rich_state(), writer=writer),
        source="ns",
    )
    assert got.metadata == rich_metadata()
    assert got.conversation == rich_conversation()


@pytest.mark.parametrize(("hours", "minutes"), [(5, 30), (-8, 0), (0, 0), (14, 0)])
def test_timestamps_with_any_offset_are_converted_to_utc(hours: int, minutes: int) -> None:
    writer = W.LegacyWriter(timestamp=W.rfc3339_offset(hours, minutes))
    got = decode_legacy_session_bytes(
        W.session_file_bytes(rich_metadata(), rich_conversation(), rich_state(), writer=writer),
        source="tz",
    )
    assert got.metadata == rich_metadata()
    assert got.metadata.created_at.tzinfo is UTC
    assert got.conversation == rich_conversation()


def test_timestamp_text_forms() -> None:
    # Written by the independent writer: 0, 3 and 6 fraction digits with Z.
    assert W.rfc3339(T_WHOLE) == "2025-08-26T10:00:00Z"
    assert W.rfc3339(T_MILLI) == "2025-08-26T10:00:01.123Z"
    assert W.rfc3339(T_MICRO) == "2025-08-26T10:00:02.123456Z"
    assert W.rfc3339_nanos(789)(T_MICRO) == "2025-08-26T10:00:02.123456789Z"


def test_reasoning_with_three_and_four_fields() -> None:
    three = W.LegacyWriter().item(Reasoning("r", [SummaryText("a")], "e"))
    four = W.LegacyWriter().item(Reasoning("r", [SummaryText("a")], "e", [OutputText("c")]))
    assert msgpack.unpackb(three) == ["reasoning", "r", [["summary_text", "a"]], "e"]
    assert msgpack.unpackb(four) == [
        "reasoning",
        "r",
        [["summary_text", "a"]],
        [["output_text", "c"]],
        "e",
    ]
    conv = ConversationSnapshot(
        SID,
        [
            MessageSnapshot(Reasoning("r", [SummaryText("a")], "e"), T_WHOLE, 0),
            MessageSnapshot(Reasoning("r", [], None, [OutputText("c")]), T_WHOLE, 0),
        ],
    )
    got = decode_legacy_checkpoint_bytes(W.checkpoint_file_bytes(conv, SessionState()), source="c")
    assert got == (conv, SessionState())


def test_unknown_item_tags_are_kept_as_the_decoded_array() -> None:
    item = UnknownItem(["computer_call", "cc_1", [1, 2, {"k": b"v"}]])
    conv = ConversationSnapshot(SID, [MessageSnapshot(item, T_WHOLE, 0)])
    got, _ = decode_legacy_checkpoint_bytes(
        W.checkpoint_file_bytes(conv, SessionState()), source="c"
    )
    assert got.messages[0].item == item
    assert got.messages[0].item.data == ["computer_call", "cc_1", [1, 2, {"k": b"v"}]]


def test_wire_bytes_match_the_documented_example() -> None:
    item = Message("assistant", [OutputText("hi")])
    assert W.LegacyWriter().item(item) == msgpack.packb(
        ["message", None, "assistant", [["output_text", "hi"]]]
    )


def test_uuid_is_bin16_and_mode_is_variant_name_on_disk() -> None:
    raw = msgpack.unpackb(W.LegacyWriter().metadata(rich_metadata()), raw=False)
    assert raw[0] == SID.bytes
    assert raw[7] == "Build"
    assert raw[2] == "2025-08-26T10:00:00Z"


def test_checkpoint_file_round_trips(tmp_path: Path) -> None:
    path = W.write_checkpoint_file(tmp_path, SID, CID1, rich_conversation(), rich_state())
    assert read_legacy_checkpoint(path) == (rich_conversation(), rich_state())


def test_session_file_is_read_from_disk_and_left_unchanged(tmp_path: Path) -> None:
    path = W.write_session_file(tmp_path, rich_metadata(), rich_conversation(), rich_state(), 1)
    before = (path.read_bytes(), os.stat(path).st_mtime_ns)
    got = read_legacy_session(path)
    assert got == LegacySession(rich_metadata(), rich_conversation(), rich_state(), 1)
    assert (path.read_bytes(), os.stat(path).st_mtime_ns) == before


def test_multiple_zstd_frames_are_concatenated() -> None:
    meta, conv, state = minimal()
    doc = W.LegacyWriter().session_data(meta, conv, state, None)
    frames = W.zstd_stream(doc[:10], 3) + W.zstd_stream(doc[10:], 3)
    got = decode_legacy_session_bytes(W.container(frames), source="frames")
    assert got == LegacySession(meta, conv, state, None)


# ---------------------------------------------------------------- damage


def _session_payload(doc: bytes) -> bytes:
    return W.container(W.zstd_stream(doc, 3))


def _rewrite_n(data: bytes, n: int) -> bytes:
    return data[:8] + n.to_bytes(8, "little") + data[16:]


GOOD = valid_session_bytes()
_frame = GOOD[16:]
DAMAGE: dict[str, tuple[bytes, str]] = {
    "empty file": (b"", "empty file"),
    "header cut short": (GOOD[:10], "truncated header"),
    "truncated payload": (GOOD[:-7], "truncated"),
    "only the header": (GOOD[:16], "truncated"),
    "trailing garbage": (GOOD + b"\x00garbage", "trailing garbage"),
    "wrong magic": (b"AGCY" + GOOD[4:], "bad magic"),
    "version 3": (GOOD[:4] + (3).to_bytes(4, "little") + GOOD[8:], "version 3"),
    "version 1": (GOOD[:4] + (1).to_bytes(4, "little") + GOOD[8:], "version 1"),
    "N larger than the file": (_rewrite_n(GOOD, len(_frame) + 1), "truncated"),
    "N enormous": (_rewrite_n(GOOD, 2**64 - 1), "truncated"),
    "N smaller than the file": (_rewrite_n(GOOD, len(_frame) - 1), "trailing garbage"),
    "N zero": (_rewrite_n(GOOD, 0)[:16], "empty payload"),
    "not zstd": (W.container(b"\x00" * 40), "corrupt zstd"),
    "corrupt zstd frame header": (W.container(b"\x28\xb5\x2f\xfd\xff" + _frame[5:]), "zstd"),
    "zstd frame cut, N adjusted": (W.container(_frame[:-3]), "truncated zstd frame"),
    "junk after the zstd frame": (W.container(_frame + b"\x01\x02\x03\x04"), "zstd"),
    "undecodable msgpack": (_session_payload(b"\xc1"), "undecodable msgpack"),
    "msgpack truncated": (_session_payload(b"\x93\x01\x02"), "truncated msgpack"),
    "msgpack trailing data": (_session_payload(msgpack.packb([]) + b"\x01"), "after the msgpack"),
    "empty msgpack": (_session_payload(b""), "decompresses to nothing"),
    "wrong document shape": (_session_payload(msgpack.packb("text")), "SessionData"),
    "metadata not a struct": (_session_payload(msgpack.packb([1, 2, 3, 4])), "metadata"),
    "wrong field count": (_session_payload(msgpack.packb([1, 2])), "expected 4 fields"),
    "invalid utf-8 string": (_session_payload(b"\xa2\xff\xfe"), "undecodable msgpack"),
    "absurd array header": (_session_payload(b"\xdd\xff\xff\xff\xff"), "msgpack"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_every_kind_of_damage_is_a_legacy_format_error_naming_path_and_reason(
    case: str, tmp_path: Path
) -> None:
    data, reason = DAMAGE[case]
    path = tmp_path / "sessions" / f"{SID}.agcx"
    path.parent.mkdir()
    path.write_bytes(data)
    with pytest.raises(LegacyFormatError) as info:
        read_legacy_session(path)
    err = info.value
    assert isinstance(err, JournalError)
    assert err.path == str(path)
    assert reason in err.reason
    assert str(path) in str(err) and err.reason in str(err)


def _bad_field_doc(mutate: Any) -> bytes:
    doc = msgpack.unpackb(W.LegacyWriter().session_data(*minimal(), None), raw=False)
    mutate(doc)
    return _session_payload(msgpack.packb(doc, use_bin_type=True))


def _set(path: tuple[int, ...], v: Any) -> Any:
    def mutate(doc: Any) -> None:
        node = doc
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = v

    return mutate


BAD_FIELDS = {
    "uuid of 15 bytes": (_set((0, 0), b"x" * 15), "metadata.id"),
    "title not a string": (_set((0, 1), 5), "metadata.title"),
    "naive-looking timestamp": (_set((0, 2), "2025-08-26T10:00:00"), "metadata.created_at"),
    "timestamp with bad month": (_set((0, 2), "2025-13-26T10:00:00Z"), "metadata.created_at"),
    "timestamp as int": (_set((0, 3), 1700000000), "metadata.updated_at"),
    "negative count": (_set((0, 5), -1), "metadata.message_count"),
    "unknown mode": (_set((0, 7), "Debug"), "metadata.current_mode"),
    "lowercase mode": (_set((0, 7), "plan"), "metadata.current_mode"),
    "favorite not bool": (_set((0, 10), 1), "metadata.is_favorite"),
    "ratio as str": (_set((0, 12), "1.0"), "metadata.compression_ratio"),
    "messages not an array": (_set((1, 1), {}), "conversation.messages"),
    "env values not str": (_set((1, 2, 1), {"A": 1}), "conversation.context.environment_variables"),
    "mode pair too short": (_set((1, 3), [["Plan"]]), "conversation.mode_history[0]"),
    "item without tag": (_set((1, 1), [[[1, 2], "2025-08-26T10:00:00Z", 0, []]]), "item"),
    "filter settings not a struct": (_set((2, 7), 3), "state"),
    "checksum negative": (_set((3,), -5), "checksum"),
}


@pytest.mark.parametrize("case", sorted(BAD_FIELDS))
def test_a_value_of_the_wrong_shape_is_reported_with_where_it_is(case: str) -> None:
    mutate, where = BAD_FIELDS[case]
    with pytest.raises(LegacyFormatError) as info:
        decode_legacy_session_bytes(_bad_field_doc(mutate), source="label.agcx")
    assert info.value.path == "label.agcx"
    assert where in info.value.reason


def test_a_frame_expanding_past_max_output_is_refused() -> None:
    meta, conv, state = minimal()
    data = W.session_file_bytes(meta, conv, state)
    size = len(W.LegacyWriter().session_data(meta, conv, state, None))
    assert decode_legacy_session_bytes(data, source="ok", max_output=size).metadata == meta
    with pytest.raises(LegacyFormatError, match="max_output"):
        decode_legacy_session_bytes(data, source="small", max_output=size - 1)


def test_a_zstd_bomb_stops_at_the_cap_without_inflating_it_all() -> None:
    bomb = W.container(W.zstd_stream(b"\x00" * (64 << 20), 19))
    assert len(bomb) < 64 << 10
    with pytest.raises(LegacyFormatError, match="max_output=1048576"):
        decode_legacy_session_bytes(bomb, source="bomb", max_output=1 << 20)


def test_default_max_output_is_one_gib() -> None:
    assert DEFAULT_MAX_OUTPUT == 1 << 30


def test_symlinked_files_are_refused(tmp_path: Path) -> None:
    real = W.write_session_file(tmp_path, *minimal())
    link = tmp_path / "link.agcx"
    link.symlink_to(real)
    with pytest.raises(LegacyFormatError, match="symbolic link") as info:
        read_legacy_session(link)
    assert info.value.path == str(link)
    with pytest.raises(LegacyFormatError, match="symbolic link"):
        read_legacy_checkpoint(link)


def test_missing_file_and_directory_are_legacy_format_errors(tmp_path: Path) -> None:
    with pytest.raises(LegacyFormatError, match="cannot stat"):
        read_legacy_session(tmp_path / "nope.agcx")
    with pytest.raises(LegacyFormatError, match="not a regular file"):
        read_legacy_session(tmp_path)


def test_checkpoint_that_is_not_a_pair_is_reported() -> None:
    data = W.container(W.zstd_stream(msgpack.packb([1, 2, 3]), 6))
    with pytest.raises(LegacyFormatError, match="2-tuple"):
        decode_legacy_checkpoint_bytes(data, source="c.ckpt")


# ---------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    meta=S.session_metadata(),
    conv=S.conversation_snapshot(max_messages=4),
    state=S.session_state(),
    checksum=st.none() | st.integers(min_value=0, max_value=2**32 - 1),
    as_map=st.booleans(),
    omit_none=st.booleans(),
)
def test_random_values_written_by_the_writer_read_back_equal(
    meta: SessionMetadata,
    conv: ConversationSnapshot,
    state: SessionState,
    checksum: int | None,
    as_map: bool,
    omit_none: bool,
) -> None:
    writer = W.LegacyWriter(as_map=as_map, omit_none=omit_none)
    data = W.session_file_bytes(meta, conv, state, checksum, writer=writer)
    assert decode_legacy_session_bytes(data, source="p") == LegacySession(
        meta, conv, state, checksum
    )
    ckpt = W.checkpoint_file_bytes(conv, state, writer=writer)
    assert decode_legacy_checkpoint_bytes(ckpt, source="c") == (conv, state)


def _mutations(data: bytes) -> st.SearchStrategy[bytes]:
    n = len(data)
    flip = st.builds(
        lambda i, b: data[:i] + bytes([data[i] ^ b]) + data[i + 1 :],
        st.integers(0, n - 1),
        st.integers(1, 255),
    )
    cut = st.builds(lambda i: data[:i], st.integers(0, n - 1))
    insert = st.builds(
        lambda i, b: data[:i] + b + data[i:], st.integers(0, n), st.binary(min_size=1, max_size=8)
    )
    delete = st.builds(
        lambda i, k: data[:i] + data[i + k :], st.integers(0, n - 1), st.integers(1, 8)
    )
    single = flip | cut | insert | delete
    # Several flips at once, and flips in the zstd payload with N kept right.
    many = st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, 255)), min_size=2, max_size=6)

    def apply(changes: list[tuple[int, int]]) -> bytes:
        b = bytearray(data)
        for i, x in changes:
            b[i] ^= x
        return bytes(b)

    return single | many.map(apply)


FUZZ_SEED = W.session_file_bytes(*minimal()[:2], rich_state(), 3)
FUZZ_RICH = valid_session_bytes()


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([FUZZ_SEED, FUZZ_RICH]).flatmap(_mutations))
def test_random_byte_damage_never_raises_anything_but_legacy_format_error(data: bytes) -> None:
    try:
        decode_legacy_session_bytes(data, source="fuzz", max_output=1 << 20)
    except LegacyFormatError as exc:
        assert exc.path == "fuzz"
    with contextlib.suppress(LegacyFormatError):
        decode_legacy_checkpoint_bytes(data, source="fuzz", max_output=1 << 20)


def _msgpack_mutations() -> st.SearchStrategy[bytes]:
    # Damage *inside* the zstd frame (which has no checksum): the msgpack layer
    # and the shape checks must hold the line on their own.
    doc = W.LegacyWriter().session_data(rich_metadata(), rich_conversation(), rich_state(), 1)
    return _mutations(doc).map(lambda d: W.container(W.zstd_stream(d, 3)))


@settings(max_examples=400, deadline=None)
@given(_msgpack_mutations())
def test_damaged_msgpack_documents_never_raise_anything_but_legacy_format_error(
    data: bytes,
) -> None:
    with contextlib.suppress(LegacyFormatError):
        decode_legacy_session_bytes(data, source="fuzz")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_raise_anything_but_legacy_format_error(data: bytes) -> None:
    for candidate in (data, b"AGCX\x02\x00\x00\x00" + len(data).to_bytes(8, "little") + data):
        with contextlib.suppress(LegacyFormatError):
            decode_legacy_session_bytes(candidate, source="any")


# ---------------------------------------------------------------- scanning


def _tree(root: Path) -> dict[str, tuple[bytes, int]]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p)] = (p.read_bytes(), p.stat().st_mtime_ns)
    return out


def test_scan_lists_sessions_and_checkpoints_with_their_ids(tmp_path: Path) -> None:
    s1 = W.write_session_file(tmp_path, *minimal())
    meta2 = SessionMetadata(SID, "t", T_WHOLE, T_WHOLE, T_WHOLE, format_version=2)
    s2 = W.write_session_file(tmp_path, meta2, ConversationSnapshot(SID), SessionState())
    c1 = W.write_checkpoint_file(tmp_path, SID, CID1, ConversationSnapshot(SID), SessionState())
    (tmp_path / "metadata").mkdir()
    (tmp_path / "metadata" / f"{SID}.meta").write_bytes(b"bincode")
    (tmp_path / "sessions.idx").write_bytes(b"\x90")
    (tmp_path / "sessions" / "notes.txt").write_text("ignored")

    inv = scan_legacy_root(tmp_path)
    assert inv.root == tmp_path
    assert set(inv.sessions) == {LegacySessionFile(s1, u(9)), LegacySessionFile(s2, SID)}
    assert inv.checkpoints == (LegacyCheckpointFile(c1, SID, CID1),)
    assert inv.problems == ()


def test_scan_reports_unparsable_names_and_links_as_problems_without_crashing(
    tmp_path: Path,
) -> None:
    good = W.write_session_file(tmp_path, *minimal())
    sessions = tmp_path / "sessions"
    (sessions / "backup.agcx").write_bytes(b"")
    (sessions / f"{SID}.agcx").symlink_to(good)
    (sessions / f"{CID1}.agcx").mkdir()
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    (ckpts / f"{SID}.ckpt").write_bytes(b"")
    (ckpts / f"{SID}_{CID1}_x.ckpt").write_bytes(b"")
    (ckpts / f"{SID}_nope.ckpt").write_bytes(b"")
    outside = tmp_path.parent / f"outside-{uuid.uuid4()}.ckpt"
    outside.write_bytes(b"secret")
    (ckpts / f"{SID}_{CID2}.ckpt").symlink_to(outside)
    before = _tree(tmp_path)

    inv = scan_legacy_root(tmp_path)
    assert inv.sessions == (LegacySessionFile(good, u(9)),)
    assert inv.checkpoints == ()
    reasons = {p.path.name: p.reason for p in inv.problems}
    assert set(reasons) == {
        "backup.agcx",
        f"{SID}.agcx",
        f"{CID1}.agcx",
        f"{SID}.ckpt",
        f"{SID}_{CID1}_x.ckpt",
        f"{SID}_nope.ckpt",
        f"{SID}_{CID2}.ckpt",
    }
    assert "symbolic link" in reasons[f"{SID}.agcx"]
    assert "symbolic link" in reasons[f"{SID}_{CID2}.ckpt"]
    assert "not a regular file" in reasons[f"{CID1}.agcx"]
    assert "not a session UUID" in reasons["backup.agcx"]
    assert _tree(tmp_path) == before
    outside.unlink()


def test_scan_refuses_a_symlinked_sessions_directory(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    W.write_session_file(elsewhere, *minimal())
    root = tmp_path / "root"
    root.mkdir()
    (root / "sessions").symlink_to(elsewhere / "sessions")
    inv = scan_legacy_root(root)
    assert inv.sessions == ()
    assert [p.path.name for p in inv.problems] == ["sessions"]


def test_scan_of_an_empty_root_finds_nothing(tmp_path: Path) -> None:
    inv = scan_legacy_root(tmp_path)
    assert (inv.sessions, inv.checkpoints, inv.problems) == ((), (), ())


def test_scan_of_a_missing_root_is_a_legacy_format_error(tmp_path: Path) -> None:
    with pytest.raises(LegacyFormatError, match="not a directory"):
        scan_legacy_root(tmp_path / "missing")


def test_legacy_timestamps_keep_microseconds_exactly() -> None:
    t = datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-3)))
    meta = SessionMetadata(u(1), "x", t, t, t, format_version=2)
    got = decode_legacy_session_bytes(
        W.session_file_bytes(meta, ConversationSnapshot(u(1)), SessionState()), source="t"
    )
    assert got.metadata.created_at == t
    assert got.metadata.created_at == datetime(2000, 1, 1, 2, 59, 59, 999999, tzinfo=UTC)
