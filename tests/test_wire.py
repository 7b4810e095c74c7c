"""Schema 4 on the wire, Responses-API JSON without loss, checks at the save."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import msgpack
import pytest

import journal._store as store_module
from journal import (
    ConversationContext,
    ConversationSnapshot,
    InputText,
    InvalidArgument,
    Message,
    MessageSnapshot,
    SessionMetadata,
    SessionState,
    SessionStore,
    item_from_json,
    item_to_json,
)
from journal._events import SCHEMA_VERSION, EventType, unpack_blob_bytes

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
SID = UUID(int=7)

# Items as the OpenAI Responses API and Codex write them (every documented
# field of the known types, and the shapes the API allows).
API_ITEMS: list[dict[str, Any]] = [
    {
        "type": "message",
        "id": "msg_1",
        "status": "completed",
        "role": "assistant",
        "content": [
            {
                "type": "output_text",
                "text": "See [1].",
                "annotations": [
                    {"type": "url_citation", "start_index": 4, "end_index": 7, "url": "u"}
                ],
                "logprobs": [],
            },
            {"type": "refusal", "refusal": "no"},
        ],
    },
    {"type": "message", "role": "user", "content": "a plain string"},
    {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "x"}]},
    {
        "type": "message",
        "role": "user",
        "content": [
            {"type": "input_image", "detail": "high", "image_url": "data:image/png;base64,AA"},
            {"type": "input_image", "detail": "auto", "file_id": "file-1"},
            {"type": "input_file", "file_id": "file-2", "filename": "a.pdf"},
        ],
    },
    {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [{"type": "summary_text", "text": "thinking"}],
        "content": [{"type": "reasoning_text", "text": "step"}],
        "encrypted_content": "gAAA",
        "status": "completed",
    },
    {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_1",
        "name": "shell",
        "arguments": '{"cmd": ["ls"]}',
        "status": "completed",
    },
    {"type": "function_call_output", "id": "fco_1", "call_id": "call_1", "output": "ok"},
    {
        "type": "function_call_output",
        "call_id": "call_2",
        "output": [
            {"type": "input_text", "text": "see image"},
            {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"},
        ],
        "status": "completed",
    },
    {
        "type": "local_shell_call",
        "id": "lsh_1",
        "call_id": "call_3",
        "status": "completed",
        "action": {
            "type": "exec",
            "command": ["bash", "-lc", "ls"],
            "env": {"PATH": "/bin"},
            "timeout_ms": 1000,
            "user": "root",
            "working_directory": "/repo",
        },
    },
    {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"q": "x"}},
]


@pytest.mark.parametrize("d", API_ITEMS, ids=[f"{d['type']}-{i}" for i, d in enumerate(API_ITEMS)])
def test_responses_api_items_round_trip_through_json_and_the_journal_without_loss(
    d: dict[str, Any], tmp_path: Path
) -> None:
    original = copy.deepcopy(d)
    item = item_from_json(d)
    assert item_to_json(item) == original
    assert d == original  # the input is not changed
    conv = ConversationSnapshot(SID, [MessageSnapshot(item, T0, 0)])
    meta = SessionMetadata(SID, "t", T0, T0, T0)
    with SessionStore.open(tmp_path / "j", durability="none") as s:
        s.save_session(SID, meta, conv, SessionState())
    with SessionStore.open(tmp_path / "j", readonly=True) as s:
        _, got, _ = s.load_session(SID)
    assert got == conv
    assert item_to_json(got.messages[0].item) == original


def test_every_schema_4_record_reads_with_another_msgpack_library(tmp_path: Path) -> None:
    conv = ConversationSnapshot(
        SID,
        [MessageSnapshot(item_from_json(copy.deepcopy(d)), T0, i) for i, d in enumerate(API_ITEMS)],
        ConversationContext("/repo", {"A": "b"}, ["x.py"]),
    )
    with SessionStore.open(tmp_path / "j", durability="none") as s:
        s.save_session(SID, SessionMetadata(SID, "t", T0, T0, T0), conv, SessionState())
        s.create_checkpoint(SID, UUID(int=8), conv, SessionState(), name="c")
        j = s.journal
        seen = set()
        for rec in j.scan():
            ev = msgpack.unpackb(j._codec.decompress(rec.payload) if rec.codec else rec.payload)
            seen.add(rec.event_type)
            for key in ("msgs", "conv"):
                if key in ev:
                    assert ev["v"] == SCHEMA_VERSION
                    inner = msgpack.unpackb(unpack_blob_bytes(ev[key], key, j.dictionaries))
                    assert inner  # a list of message maps, or a conversation map
            for key in ("cx", "mh", "st"):
                if key in ev:
                    msgpack.unpackb(ev[key], timestamp=3)
    assert {EventType.SESSION_SAVED, EventType.CHECKPOINT_CREATED} <= seen
    messages = msgpack.unpackb(
        unpack_blob_bytes(_first_save(tmp_path)["msgs"], "m", None), timestamp=3
    )
    assert messages[0]["item"]["type"] == "message"
    assert messages[0]["timestamp"] == T0  # msgpack timestamps, UTC
    assert messages[0]["metadata"]["message_id"] == conv.messages[0].metadata.message_id.bytes


def _first_save(root: Path) -> dict[str, Any]:
    with SessionStore.open(root / "j", readonly=True) as s:
        j = s.journal
        rec = next(r for r in j.scan() if r.event_type == EventType.SESSION_SAVED)
        ev: dict[str, Any] = j.decode(rec)
        return ev


def _message(i: int) -> MessageSnapshot:
    return MessageSnapshot(Message("user", [InputText(f"turn {i}")]), T0 + timedelta(i), i)


def test_a_delta_save_checks_and_encodes_only_its_new_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked_counts: list[int] = []
    real = store_module.check_messages

    def spy(messages: Any, what: str = "messages") -> bytes:
        checked_counts.append(len(messages))
        return real(messages, what)

    monkeypatch.setattr(store_module, "check_messages", spy)
    msgs = [_message(i) for i in range(40)]
    meta = SessionMetadata(SID, "t", T0, T0, T0)
    with SessionStore.open(tmp_path / "j", durability="none") as s:
        s.save_session(SID, meta, ConversationSnapshot(SID, msgs[:30]), SessionState())
        for n in range(31, 41):
            s.save_session(SID, meta, ConversationSnapshot(SID, msgs[:n]), SessionState())
    assert checked_counts == [30] + [1] * 10


def test_a_wrong_type_in_a_delta_is_refused_naming_class_and_field_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    meta = SessionMetadata(SID, "t", T0, T0, T0)
    msgs = [_message(i) for i in range(3)]
    with SessionStore.open(tmp_path / "j", durability="none") as s:
        s.save_session(SID, meta, ConversationSnapshot(SID, msgs), SessionState())
        last = s.journal.last_seq
        bad = MessageSnapshot(Message("user", [InputText(b"bytes")]), T0, 3)  # type: ignore[arg-type]
        where = r"InputText\.text at .*\[0\]\.item\.content\[0\]"
        with pytest.raises(InvalidArgument, match=where):
            s.save_session(SID, meta, ConversationSnapshot(SID, [*msgs, bad]), SessionState())
        assert s.journal.last_seq == last
        assert s.load_session(SID)[1].messages == tuple(msgs)
