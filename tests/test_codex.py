"""Codex CLI rollouts: imported whole, grown by their new lines, exported back JSON-equal."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journal import (
    EventType,
    FunctionCall,
    FunctionCallOutput,
    LocalShellCall,
    Message,
    MessageSnapshot,
    Reasoning,
    SessionStore,
    UnknownItem,
    item_to_json,
)
from tests import codex_rollouts as cx
from tests.conftest import PYTHON, ROOT, child_env


@pytest.fixture
def store(root: Path) -> Iterator[SessionStore]:
    s = SessionStore.open(root, durability="none")
    yield s
    s.close()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "codex"


def exported(store: Any, sid: str) -> list[Any]:
    return cx.read_lines(b"".join(store.export_codex(sid)))


def events(store: SessionStore, etype: int) -> list[dict[str, Any]]:
    j = store.journal
    return [j.decode(r) for r in j.scan() if r.event_type == etype]


def tree_digest(home: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(home.rglob("*"))
        if p.is_file()
    }


# -- import and export --------------------------------------------------------------------


def test_every_line_type_and_item_variant_exports_back_json_equal(
    store: SessionStore, home: Path
) -> None:
    sid = cx.new_id()
    lines = cx.every_line_type(sid)
    cx.write_rollout(home, sid, cx.encode(lines))
    report = store.import_codex(home)
    assert (report.sessions_imported, report.problems) == (1, ())
    assert report.lines_imported == len(lines)
    assert exported(store, sid) == lines


def test_response_items_become_messages_typed_when_lossless_else_verbatim(
    store: SessionStore, home: Path
) -> None:
    sid = cx.new_id()
    lines = cx.every_line_type(sid)
    cx.write_rollout(home, sid, cx.encode(lines))
    store.import_codex(home)
    _, conv, _ = store.load_session(sid)
    payloads = [x["payload"] for x in lines if x["type"] == "response_item"]
    assert [item_to_json(m.item) for m in conv.messages] == payloads
    kinds = [type(m.item) for m in conv.messages]
    for t in (Message, Reasoning, LocalShellCall, FunctionCall, FunctionCallOutput, UnknownItem):
        assert t in kinds
    by_payload = {json.dumps(p): m.item for p, m in zip(payloads, conv.messages, strict=True)}
    # An assistant message with end_turn/phase would lose them typed: kept verbatim.
    assert type(by_payload[json.dumps(cx.ITEM_VARIANTS[2])]) is UnknownItem
    assert type(by_payload[json.dumps(cx.ITEM_VARIANTS[0])]) is Message


def test_session_meta_becomes_metadata_title_cwd_model_tags(
    store: SessionStore, home: Path
) -> None:
    sid, source = cx.new_id(), cx.new_id()
    lines = cx.every_line_type(sid)
    lines[0]["payload"]["forked_from_id"] = source
    cx.write_rollout(home, sid, cx.encode(lines))
    store.import_codex(home)
    meta, conv, _ = store.load_session(sid)
    assert meta.id == UUID(sid)
    assert meta.title == "fix the tests"  # the first user_message event
    assert meta.model == "gpt-5-codex"
    assert conv.context.working_directory == "/home/u/project"
    assert set(meta.tags) == {
        "codex", "originator:codex_cli_rs", "branch:main", f"forked-from:{source}"
    }
    assert meta.created_at.isoformat() == "2025-10-01T12:00:00+00:00"
    assert meta.message_count == len(conv.messages) == len(cx.ITEM_VARIANTS) + 2
    assert store.search_sessions("forked-from:" + source[:8])[0].id == meta.id


def test_a_second_import_of_the_same_tree_writes_nothing(store: SessionStore, home: Path) -> None:
    for _ in range(3):
        sid = cx.new_id()
        cx.write_rollout(home, sid, cx.encode(cx.conversation(sid, 3)))
    first = store.import_codex(home)
    seq = store.journal.statistics().last_seq
    second = store.import_codex(home)
    assert (first.sessions_imported, second.sessions_imported) == (3, 0)
    assert second.already_imported == 3
    assert second.bytes_read == 0  # the stat matched: no file was even read
    assert store.journal.statistics().last_seq == seq


def test_a_touched_rollout_is_hashed_not_imported_again(store: SessionStore, home: Path) -> None:
    sid = cx.new_id()
    path = cx.write_rollout(home, sid, cx.encode(cx.conversation(sid, 2)))
    store.import_codex(home)
    path.touch()
    again = store.import_codex(home)
    assert again.already_imported == 1 and again.bytes_read > 0
    assert store.import_codex(home).bytes_read == 0  # the new stat was remembered


def test_a_rollout_appended_to_between_imports_adds_only_its_new_lines(
    store: SessionStore, home: Path
) -> None:
    sid = cx.new_id()
    lines = cx.conversation(sid, 6, compact_every=3)
    path = cx.write_rollout(home, sid, cx.encode(lines[:20]))
    store.import_codex(home)
    before = len(store.load_session(sid)[1].messages)
    path.write_bytes(cx.encode(lines))
    report = store.import_codex(home)
    assert (report.sessions_imported, report.sessions_extended) == (0, 1)
    assert report.lines_imported == len(lines) - 20
    saves = events(store, EventType.SESSION_SAVED)
    assert saves[-1]["base"] == before  # a delta save of the new messages
    parts = events(store, EventType.CODEX_LINES)
    assert [p["from"] for p in parts] == [1, 21]
    assert exported(store, sid) == lines
    assert store.get_metadata(sid).message_count == len(store.load_session(sid)[1].messages)


def test_a_rollout_rewritten_other_than_by_appending_is_skipped(
    store: SessionStore, home: Path
) -> None:
    sid = cx.new_id()
    lines = cx.conversation(sid, 2)
    path = cx.write_rollout(home, sid, cx.encode(lines))
    store.import_codex(home)
    path.write_bytes(cx.encode(lines[:-1]))
    report = store.import_codex(home)
    assert report.items[0].action == "skipped"
    assert "does not start with" in report.problems[0].reason
    assert exported(store, sid) == lines  # nothing was overwritten


def test_new_lines_are_not_added_to_a_session_changed_in_agcx(
    store: SessionStore, home: Path
) -> None:
    sid = cx.new_id()
    lines = cx.conversation(sid, 2)
    path = cx.write_rollout(home, sid, cx.encode(lines[:8]))
    store.import_codex(home)
    store.pop_message(sid)
    path.write_bytes(cx.encode(lines))
    report = store.import_codex(home)
    assert report.items[0].action == "skipped"
    assert "changed in agcx" in report.problems[0].reason


def test_a_session_that_exists_in_agcx_is_never_overwritten(
    store: SessionStore, home: Path
) -> None:
    sid = cx.new_id()
    other = cx.new_id()
    cx.write_rollout(home, other, cx.encode(cx.conversation(other, 1)))
    store.import_codex(home)
    # A second rollout, with other content, claiming the same session id
    lines = cx.conversation(sid, 2)
    lines[0]["payload"]["id"] = other
    cx.write_rollout(home, sid, cx.encode(lines), archived=True)
    report = store.import_codex(home)
    assert [i.action for i in report.items] == ["skipped", "already imported"]
    assert "does not start with" in report.problems[0].reason


def test_damaged_lines_are_reported_by_file_and_line_and_skipped(
    store: SessionStore, home: Path
) -> None:
    sid = cx.new_id()
    lines = cx.conversation(sid, 2)
    raw = cx.encode(lines).split(b"\n")
    raw[3] = b'{"timestamp": "2025-10-01T12:00:03.000Z", "type": "respo'  # torn
    raw[5] = b"[1, 2, 3]"  # JSON, but not a line
    raw[6] = b""  # an empty line: not a problem
    path = cx.write_rollout(home, sid, b"\n".join(raw))
    report = store.import_codex(home)
    assert report.sessions_imported == 1
    assert [p.path for p in report.problems] == [f"{path}:4", f"{path}:6"]
    assert "not JSON" in report.problems[0].reason
    assert "not a JSON object" in report.problems[1].reason
    # Everything else imported; export writes the file back as it was.
    assert b"".join(store.export_codex(sid)).split(b"\n") == [
        x if i not in (3, 5, 6) else raw[i] for i, x in enumerate(b"\n".join(raw).split(b"\n"))
    ]
    good = [x for i, x in enumerate(lines) if i not in (3, 5, 6)]
    assert [x for x in exported_good(store, sid)] == good


def exported_good(store: SessionStore, sid: str) -> Iterator[Any]:
    for raw in b"".join(store.export_codex(sid)).split(b"\n"):
        try:
            x = json.loads(raw)
        except ValueError:
            continue
        if isinstance(x, dict):
            yield x


def test_an_unfinished_last_line_is_left_for_the_next_import(
    store: SessionStore, home: Path
) -> None:
    sid = cx.new_id()
    lines = cx.conversation(sid, 2)
    data = cx.encode(lines)
    path = cx.write_rollout(home, sid, data[:-40])  # Codex is writing the last line
    first = store.import_codex(home)
    assert first.lines_imported == len(lines) - 1
    assert "unfinished last line" in first.problems[0].reason
    path.write_bytes(data)
    second = store.import_codex(home)
    assert (second.sessions_extended, second.lines_imported, second.problems) == (1, 1, ())
    assert exported(store, sid) == lines


def test_zstd_rollouts_import_and_the_plain_file_wins(store: SessionStore, home: Path) -> None:
    a, b = cx.new_id(), cx.new_id()
    la, lb = cx.conversation(a, 2), cx.conversation(b, 3)
    cx.write_rollout(home, a, cx.encode(la), zst=True)
    cx.write_rollout(home, b, cx.encode(lb), zst=True)
    cx.write_rollout(home, b, cx.encode(lb))  # the plain twin of b
    report = store.import_codex(home)
    assert report.sessions_imported == 2
    assert sorted(i.path.endswith(".zst") for i in report.items) == [False, True]
    assert exported(store, a) == la and exported(store, b) == lb


def test_a_damaged_zstd_file_fails_alone(store: SessionStore, home: Path) -> None:
    bad, good = cx.new_id(), cx.new_id()
    p = cx.write_rollout(home, bad, cx.encode(cx.conversation(bad, 2)), zst=True)
    p.write_bytes(b"\x00" + p.read_bytes()[1:])  # not a zstd frame
    cx.write_rollout(home, good, cx.encode(cx.conversation(good, 1)))
    report = store.import_codex(home)
    assert report.sessions_imported == 1
    assert [i.action for i in report.items if i.session_id == UUID(bad)] == ["failed"]
    assert "zstd" in report.problems[0].reason


def test_a_zstd_rollout_still_being_written_gives_its_whole_lines(
    store: SessionStore, home: Path
) -> None:
    import zstandard

    sid = cx.new_id()
    lines = cx.conversation(sid, 4)
    # Written as two frames (a writer that flushes), the second one cut short.
    z = zstandard.ZstdCompressor()
    one, two = z.compress(cx.encode(lines[:12])), z.compress(cx.encode(lines[12:]))
    p = cx.write_rollout(home, sid, b"", zst=True)
    p.write_bytes(one + two[:10])
    first = store.import_codex(home)
    assert (first.sessions_imported, first.lines_imported) == (1, 12)
    p.write_bytes(one + two)
    assert store.import_codex(home).sessions_extended == 1
    assert exported(store, sid) == lines


def test_an_empty_rollout_is_left_for_later(store: SessionStore, home: Path) -> None:
    sid = cx.new_id()
    p = cx.write_rollout(home, sid, b"")
    report = store.import_codex(home)
    assert report.items[0].action == "skipped" and not store.session_exists(sid)
    p.write_bytes(cx.encode(cx.conversation(sid, 1)))
    assert store.import_codex(home).sessions_imported == 1


def test_archived_rollouts_are_imported(store: SessionStore, home: Path) -> None:
    sid = cx.new_id()
    cx.write_rollout(home, sid, cx.encode(cx.conversation(sid, 1)), archived=True)
    assert store.import_codex(home).sessions_imported == 1
    assert store.session_exists(sid)


def test_a_rollout_moved_to_the_archive_is_already_imported(
    store: SessionStore, home: Path
) -> None:
    sid = cx.new_id()
    data = cx.encode(cx.conversation(sid, 1))
    path = cx.write_rollout(home, sid, data)
    store.import_codex(home)
    path.unlink()
    cx.write_rollout(home, sid, data, archived=True)
    report = store.import_codex(home)
    assert [i.action for i in report.items] == ["already imported"]


def test_rollouts_are_never_modified(store: SessionStore, home: Path) -> None:
    for zst in (False, True):
        sid = cx.new_id()
        cx.write_rollout(home, sid, cx.encode(cx.every_line_type(sid)), zst=zst)
    before = tree_digest(home)
    store.import_codex(home)
    store.import_codex(home)
    assert tree_digest(home) == before


def test_a_dry_run_writes_nothing(store: SessionStore, home: Path) -> None:
    sid = cx.new_id()
    cx.write_rollout(home, sid, cx.encode(cx.conversation(sid, 2)))
    seq = store.journal.statistics().last_seq
    report = store.import_codex(home, dry_run=True)
    assert report.dry_run and report.sessions_imported == 1
    assert report.items[0].action == "would import"
    assert store.journal.statistics().last_seq == seq
    assert not store.session_exists(sid)


def test_progress_is_reported_in_bytes(store: SessionStore, home: Path) -> None:
    sizes = []
    for n in (1, 2):
        sid = cx.new_id()
        sizes.append(cx.write_rollout(home, sid, cx.encode(cx.conversation(sid, n))).stat().st_size)
    calls: list[tuple[int, int]] = []
    store.import_codex(home, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (sum(sizes), sum(sizes))
    assert len(calls) == 2


def test_codex_home_defaults_to_the_environment(
    store: SessionStore, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = cx.new_id()
    cx.write_rollout(home, sid, cx.encode(cx.conversation(sid, 1)))
    monkeypatch.setenv("CODEX_HOME", str(home))
    assert store.import_codex().root == str(home)


# -- history that repeats itself ----------------------------------------------------------


def test_a_big_repeated_replacement_history_is_stored_as_references(
    store: SessionStore, home: Path
) -> None:
    sid = cx.new_id()
    lines = cx.conversation(sid, 40, output_size=4000, compact_every=4)
    data = cx.encode(lines)
    cx.write_rollout(home, sid, data)
    store.import_codex(home)
    assert exported(store, sid) == lines
    kept = events(store, EventType.CODEX_LINES)[0]
    # Ten compactions, each repeating the conversation so far: stored as indices.
    assert len(kept["lines"]) < len(data) // 200
    assert store.journal.statistics().bytes < len(data) // 10


def test_a_resumed_rollout_that_repeats_its_history_exports_back(
    store: SessionStore, home: Path
) -> None:
    sid = cx.new_id()
    lines = cx.conversation(sid, 4)
    resumed = lines + [x for x in lines if x["type"] == "response_item"] + lines[-3:]
    cx.write_rollout(home, sid, cx.encode(resumed))
    store.import_codex(home)
    assert exported(store, sid) == resumed


# -- the journal keeps it -----------------------------------------------------------------


def test_compaction_keeps_the_lines_of_live_sessions_only(
    store: SessionStore, home: Path
) -> None:
    keep, gone = cx.new_id(), cx.new_id()
    lk = cx.conversation(keep, 3)
    cx.write_rollout(home, keep, cx.encode(lk))
    cx.write_rollout(home, gone, cx.encode(cx.conversation(gone, 3)))
    store.import_codex(home)
    store.delete_session(gone)
    store.journal.seal_active()
    store.compact(timedelta(0))
    assert exported(store, keep) == lk
    assert [r.session for r in store.journal.scan() if r.event_type == EventType.CODEX_LINES] == [
        UUID(keep).bytes
    ]
    # The deleted session's CodexImported stays: a re-import does not bring it back.
    assert store.import_codex(home).already_imported == 2
    assert not store.session_exists(gone)


def test_purge_removes_the_lines_and_keeps_the_import_record(
    store: SessionStore, home: Path
) -> None:
    sid = cx.new_id()
    cx.write_rollout(home, sid, cx.encode(cx.conversation(sid, 2)))
    store.import_codex(home)
    store.purge(sid)
    kinds = {r.event_type for r in store.journal.scan() if r.session == UUID(sid).bytes}
    assert EventType.CODEX_LINES not in kinds and EventType.CODEX_IMPORTED in kinds
    assert store.import_codex(home).already_imported == 1
    assert not store.session_exists(sid)


def test_messages_added_in_agcx_follow_the_imported_lines(
    store: SessionStore, home: Path
) -> None:
    sid = cx.new_id()
    lines = cx.conversation(sid, 2)
    cx.write_rollout(home, sid, cx.encode(lines))
    store.import_codex(home)
    meta = store.get_metadata(sid)
    said = Message("user", (cx_text("and one more"),))
    store.append_messages(sid, [MessageSnapshot(said, meta.updated_at, 2)])
    out = exported(store, sid)
    assert out[: len(lines)] == lines
    assert [x["type"] for x in out[len(lines):]] == ["response_item", "event_msg"]
    assert out[-1]["payload"] == {"type": "user_message", "message": "and one more", "images": []}


def cx_text(text: str) -> Any:
    from journal import InputText

    return InputText(text)


# -- native sessions ----------------------------------------------------------------------


def test_a_native_session_exports_as_a_rollout_codex_resumes(store: SessionStore) -> None:
    from datetime import UTC, datetime

    from journal import ConversationSnapshot, OutputText, SessionMetadata, SessionState

    sid = UUID(cx.new_id())
    now = datetime(2025, 10, 2, 9, 30, tzinfo=UTC)
    msgs = (
        MessageSnapshot(Message("user", (cx_text("hello"),)), now, 0),
        MessageSnapshot(FunctionCall("shell", "{}", "c1"), now, 0),
        MessageSnapshot(FunctionCallOutput("c1", "ok"), now, 0),
        MessageSnapshot(Message("assistant", (OutputText("hi"),)), now, 0),
    )
    store.save_session(
        sid,
        SessionMetadata(id=sid, title="t", created_at=now, updated_at=now, last_accessed=now,
                        model="gpt-5"),
        ConversationSnapshot(sid, msgs),
        SessionState(),
    )
    out = exported(store, str(sid))
    assert [x["type"] for x in out] == [
        "session_meta", "turn_context", "response_item", "event_msg", "response_item",
        "response_item", "response_item", "event_msg",
    ]
    meta = out[0]["payload"]
    assert meta["id"] == str(sid) and meta["source"] == "cli" and "cwd" in meta
    assert out[0]["timestamp"] == "2025-10-02T09:30:00.000Z"
    assert out[1]["payload"]["model"] == "gpt-5"
    assert out[3]["payload"] == {"type": "user_message", "message": "hello", "images": []}
    assert out[7]["payload"] == {"type": "agent_message", "message": "hi"}
    assert [x["payload"] for x in out if x["type"] == "response_item"] == [
        item_to_json(m.item) for m in msgs
    ]


# -- the property -------------------------------------------------------------------------

_json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_json = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)
_item = st.one_of(
    st.sampled_from(cx.ITEM_VARIANTS),
    st.builds(cx.user, st.text(max_size=30)),
    st.builds(cx.assistant, st.text(max_size=30)),
    st.dictionaries(st.text(max_size=8), _json, max_size=3).map(lambda d: {**d, "type": "zz"}),
)


@st.composite
def rollouts(draw: st.DrawFn) -> list[dict[str, Any]]:
    sid = cx.new_id()
    out = [cx.line(0, "session_meta", cx.session_meta(sid))]
    items: list[dict[str, Any]] = []
    for i in range(1, draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(
            ["response_item", "response_item", "event_msg", "turn_context", "compacted", "new"]
        ))
        if kind == "response_item":
            it = draw(_item)
            items.append(it)
            extra = draw(st.sampled_from([{}, {"ordinal": i}, {"metadata": {"k": i}}]))
            out.append(cx.line(i, kind, it, **extra))
        elif kind == "event_msg":
            out.append(cx.line(i, kind, draw(st.sampled_from(cx.EVENT_VARIANTS))))
        elif kind == "turn_context":
            out.append(cx.line(i, kind, cx.TURN_CONTEXT))
        elif kind == "compacted":
            history = draw(st.lists(st.sampled_from(items) if items else _item, max_size=6))
            out.append(cx.line(i, kind, {"message": "m", "replacement_history": history}))
        else:
            out.append({"timestamp": cx.ts(i), "type": "zz_new", "payload": draw(_json)})
    return out


@settings(max_examples=40)
@given(rollout=rollouts(), cut=st.integers(0, 30))
def test_import_then_export_is_the_identity_on_lines(
    tmp_path_factory: pytest.TempPathFactory, rollout: list[dict[str, Any]], cut: int
) -> None:
    base = tmp_path_factory.mktemp("prop")
    home = base / "codex"
    sid = rollout[0]["payload"]["id"]
    cut = min(cut, len(rollout))
    path = cx.write_rollout(home, sid, cx.encode(rollout[:cut]))
    with SessionStore.open(base / "j", durability="none", snapshots=False) as s:
        s.import_codex(home)  # in two steps: what a growing rollout gives
        path.write_bytes(cx.encode(rollout))
        report = s.import_codex(home)
        assert report.problems == ()
        assert exported(s, sid) == rollout


# -- the command line ---------------------------------------------------------------------


def test_cli_imports_codex_home_and_exports_a_rollout_file(tmp_path: Path, home: Path) -> None:
    sid = cx.new_id()
    lines = cx.every_line_type(sid)
    cx.write_rollout(home, sid, cx.encode(lines))

    def agcx(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PYTHON, "-m", "tools.cli", "--root", str(tmp_path / "j"), *args],
            capture_output=True, text=True, env=child_env(), cwd=ROOT, check=False,
        )

    r = agcx("import", "--codex", str(home), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["sessions_imported"] == 1
    out = tmp_path / "back.jsonl"
    r = agcx("export", sid[:8], "--format", "codex", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert cx.read_lines(out.read_bytes()) == lines
    r = agcx("import", "--codex", str(home), str(home))
    assert r.returncode == 2 and "not both" in r.stderr
