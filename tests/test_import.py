"""Importing a legacy v2 history into the journal (``SessionStore.import_legacy``).

Fixtures are written by ``tests/legacy_writer.py`` (an independent encoder
following LEGACY_V2.md to the byte) from the model objects of
``tests/test_legacy.py``; the imported sessions are compared with those
objects, not with what the reader makes of the files.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import attrs
import pytest
from msgspec.structs import replace

from journal import (
    CheckpointMetadata,
    ConversationSnapshot,
    EventType,
    ImportItem,
    ImportProblem,
    ImportReport,
    InputText,
    Message,
    MessageSnapshot,
    OutputText,
    ReadOnlyJournal,
    SessionMetadata,
    SessionState,
    SessionStore,
)
from journal._import import (
    checkpoint_created_entry,
    legacy_imported_entry,
    session_saved_entry,
)
from journal._legacy import LegacyFormatError

try:
    from tests import legacy_writer as W
    from tests.test_legacy import (
        CID1,
        CID2,
        DAMAGE,
        SID,
        T_MICRO,
        T_MILLI,
        T_WHOLE,
        minimal,
        rich_conversation,
        rich_metadata,
        rich_state,
        u,
    )
except ImportError:  # tests/ on sys.path rather than the project root
    import legacy_writer as W  # type: ignore[no-redef,import-not-found]
    from test_legacy import (  # type: ignore[no-redef,import-not-found]
        CID1,
        CID2,
        DAMAGE,
        SID,
        T_MICRO,
        T_MILLI,
        T_WHOLE,
        minimal,
        rich_conversation,
        rich_metadata,
        rich_state,
        u,
    )

CID3 = UUID("5f1d8d3e-3333-4a2b-8c3d-000000000003")
MTIME_NS = 1_700_000_000_123_456_789  # 2023-11-14T22:13:20.123456789Z


# ---------------------------------------------------------------- fixtures


@attrs.frozen
class Ckpt:
    """A checkpoint file as written, and the metadata the import should give it."""

    meta: CheckpointMetadata
    conversation: ConversationSnapshot
    state: SessionState


@attrs.frozen
class Session:
    """A session file as written, with its checkpoint files."""

    meta: SessionMetadata
    conversation: ConversationSnapshot
    state: SessionState
    checkpoints: tuple[Ckpt, ...] = ()

    @property
    def id(self) -> UUID:
        return self.meta.id


def strip(m: SessionMetadata) -> SessionMetadata:
    """Metadata without the fields the store derives (file size, ratio, checkpoint list)."""
    return replace(m, file_size=0, compression_ratio=1.0, checkpoints=())


def variant(sid: UUID, title: str, **changes: Any) -> tuple[SessionMetadata, ConversationSnapshot]:
    meta = replace(rich_metadata(), id=sid, title=title, **changes)
    return meta, replace(rich_conversation(), id=sid)


def write(
    root: Path, s: Session, writer: W.LegacyWriter | None = None, checksum: int | None = None
) -> None:
    W.write_session_file(root, s.meta, s.conversation, s.state, checksum, writer=writer)
    for c in s.checkpoints:
        W.write_checkpoint_file(root, s.id, c.meta.id, c.conversation, c.state, writer=writer)


def history_fixture(root: Path) -> list[Session]:
    """Sessions covering every type and variant, optional fields present and absent,
    non-ASCII text, whole and fractional seconds, and each struct encoding."""
    conv = rich_conversation()
    out = []

    # A: every response item, content and summary variant, all optionals present;
    # two checkpoints the metadata lists and one it does not (mtime fallback).
    meta = rich_metadata()
    c1 = Ckpt(meta.checkpoints[0], replace(conv, messages=conv.messages[:3]), SessionState())
    c2 = Ckpt(meta.checkpoints[1], replace(conv, messages=conv.messages[:7]), rich_state())
    c3_conv = replace(conv, messages=conv.messages[:5])
    mtime = datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    c3 = Ckpt(CheckpointMetadata(CID3, "", mtime, 5, None), c3_conv, rich_state())
    a = Session(meta, conv, rich_state(), (c1, c2, c3))
    write(root, a, checksum=0xDEADBEEF)
    os.utime(root / "checkpoints" / f"{SID}_{CID3}.ckpt", ns=(MTIME_NS, MTIME_NS))
    out.append(a)

    # B: the minimal session, as a map with absent optionals left out.
    m, cv, st = minimal()
    b = Session(m, cv, st)
    write(root, b, W.LegacyWriter(as_map=True, omit_none=True))
    out.append(b)

    # C: structs as maps with field names, nanosecond timestamps (read as microseconds).
    cm = CheckpointMetadata(u(0xC1), "ça marche ✓", T_WHOLE, 2, "déjà vu — 日本")
    meta_c, conv_c = variant(u(0xC), "Café ☕ — map form", checkpoints=(cm,))
    c = Session(
        meta_c,
        conv_c,
        rich_state(),
        (Ckpt(cm, replace(conv_c, messages=conv_c.messages[:2]), rich_state()),),
    )
    write(root, c, W.LegacyWriter(as_map=True, timestamp=W.rfc3339_nanos(999)))
    out.append(c)

    # D: the older SessionState layout, timestamps in +05:30.
    meta_d, conv_d = variant(
        u(0xD), "Ώρα — offsets", checkpoints=(), tags=(), is_favorite=False, model="o3"
    )
    state_d = SessionState(cursor_position=2, selected_message=u(101), search_query="ß")
    d = Session(meta_d, conv_d, state_d)
    write(root, d, W.LegacyWriter(old_state_layout=True, timestamp=W.rfc3339_offset(5, 30)))
    out.append(d)

    # E: whole-second timestamps everywhere, one message, Review mode.
    meta_e = SessionMetadata(
        u(0xE),
        "只有一条消息",
        T_WHOLE,
        T_WHOLE,
        T_WHOLE,
        1,
        1,
        "review",
        "gpt-4o",
        ("ein", "zwei"),
        False,
        10,
        0.5,
        2,
    )
    conv_e = ConversationSnapshot(
        u(0xE), [MessageSnapshot(Message("user", [InputText("你好")]), T_WHOLE, 0)]
    )
    e = Session(meta_e, conv_e, SessionState())
    write(root, e)
    out.append(e)
    return out


def tree_digest(root: Path) -> dict[str, tuple[str, int, int]]:
    """Every file under ``root``: its SHA-256, mtime and mode."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            data = b"" if os.path.islink(p) else Path(p).read_bytes()
            out[os.path.relpath(p, root)] = (
                hashlib.sha256(data).hexdigest(),
                st.st_mtime_ns,
                st.st_mode,
            )
    return out


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    return tmp_path / "legacy"


@pytest.fixture
def store(root: Path) -> Iterator[SessionStore]:
    s = SessionStore.open(root)
    try:
        yield s
    finally:
        s.close()


def check_imported(store: SessionStore, s: Session) -> None:
    meta, conv, state = store.load_session(s.id)
    assert strip(meta) == strip(s.meta)
    assert meta.format_version == 2
    assert meta.created_at == s.meta.created_at
    assert meta.updated_at == s.meta.updated_at
    assert meta.last_accessed == s.meta.last_accessed
    assert conv == s.conversation
    for mine, theirs in zip(conv.messages, s.conversation.messages, strict=True):
        assert mine == theirs
    assert state == s.state
    expected = sorted((c.meta for c in s.checkpoints), key=lambda c: (c.created_at, c.id.bytes))
    assert list(meta.checkpoints) == expected
    for c in s.checkpoints:
        assert store.load_checkpoint(s.id, c.meta.id) == (c.conversation, c.state)


def actions(report: ImportReport) -> dict[str, str]:
    return {os.path.basename(i.path): i.action for i in report.items}


def reasons(report: ImportReport) -> dict[str, str]:
    return {os.path.basename(p.path): p.reason for p in report.problems}


# ---------------------------------------------------------------- round trip


def test_imported_sessions_load_field_for_field_equal_to_the_legacy_files(
    legacy: Path, store: SessionStore
) -> None:
    sessions = history_fixture(legacy)
    report = store.import_legacy(legacy)
    assert report.sessions_imported == len(sessions)
    assert report.checkpoints_imported == sum(len(s.checkpoints) for s in sessions)
    assert report.already_imported == 0
    assert report.problems == ()
    assert not report.dry_run
    assert report.root == str(legacy)
    assert {i.action for i in report.items} == {"imported"}
    for s in sessions:
        check_imported(store, s)
    assert {m.id for m in store.list_sessions()} == {s.id for s in sessions}


def test_message_count_and_every_metadata_field_are_kept_as_the_file_has_them(
    legacy: Path, store: SessionStore
) -> None:
    # rich_metadata says 9 messages for a 12-message conversation: the import keeps
    # the file's value rather than recounting (save_session would fill only a 0).
    meta = rich_metadata()
    assert meta.message_count != len(rich_conversation().messages)
    write(legacy, Session(meta, rich_conversation(), rich_state()))
    store.import_legacy(legacy)
    got = store.get_metadata(SID)
    assert got.message_count == 9
    assert (got.title, got.tags, got.model, got.is_favorite) == (
        meta.title,
        meta.tags,
        meta.model,
        meta.is_favorite,
    )


def test_checkpoints_keep_their_legacy_metadata_matched_by_id(
    legacy: Path, store: SessionStore
) -> None:
    history_fixture(legacy)
    store.import_legacy(legacy)
    by_id = {c.id: c for c in store.list_checkpoints(SID)}
    assert by_id[CID1] == CheckpointMetadata(CID1, "before cleanup", T_MILLI, 3, "first ✂")
    assert by_id[CID2] == CheckpointMetadata(CID2, "after", T_MICRO, 7, None)


def test_a_checkpoint_its_session_does_not_list_takes_the_file_mtime_and_message_count(
    legacy: Path, store: SessionStore
) -> None:
    history_fixture(legacy)
    store.import_legacy(legacy)
    got = {c.id: c for c in store.list_checkpoints(SID)}[CID3]
    assert got.name == "" and got.description is None
    assert got.created_at == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    assert got.message_index == 5


def test_imported_sessions_appear_in_the_audit_history(legacy: Path, store: SessionStore) -> None:
    history_fixture(legacy)
    store.import_legacy(legacy)
    events = [(h.event, h.summary) for h in store.history(SID)]
    names = [e for e, _ in events]
    assert names[:2] == ["SessionSaved", "LegacyImported"]
    assert names.count("CheckpointCreated") == 3 and names.count("LegacyImported") == 4
    assert events[0][1] == "saved in full (12 messages)"
    assert events[1][1] == f"imported session {legacy / 'sessions' / f'{SID}.agcx'}"
    # Each checkpoint is directly followed by its own LegacyImported.
    for i, name in enumerate(names):
        if name == "CheckpointCreated":
            assert names[i + 1] == "LegacyImported"
            assert "imported checkpoint" in events[i + 1][1]


def test_legacy_imported_events_carry_path_hash_and_kind(legacy: Path, store: SessionStore) -> None:
    history_fixture(legacy)
    store.import_legacy(legacy)
    j = store.journal
    seen = {}
    for rec in j.scan():
        if rec.event_type == EventType.LEGACY_IMPORTED:
            ev = j.decode(rec)
            seen[ev["path"]] = (ev, rec.session_id)
    path = legacy / "sessions" / f"{SID}.agcx"
    ev, sid = seen[str(path)]
    assert ev == {
        "v": 1,
        "path": str(path),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "kind": "session",
    }
    assert sid == SID
    ck = legacy / "checkpoints" / f"{SID}_{CID1}.ckpt"
    assert seen[str(ck)][0]["kind"] == "checkpoint"
    assert len(seen) == len(list((legacy / "sessions").iterdir())) + len(
        list((legacy / "checkpoints").iterdir())
    )


def test_event_payloads_are_the_ones_the_store_itself_writes(tmp_path: Path) -> None:
    # Guards against drift between the import's batched events and
    # save_session / create_checkpoint.
    meta, conv, state = rich_metadata(), rich_conversation(), rich_state()
    # As the store writes them: the session's own conversation id and the
    # counts of its messages (an import keeps a legacy file's as they are).
    conv = replace(conv, id=SID)
    turns = len({m.turn_index for m in conv.messages})
    meta = replace(meta, message_count=len(conv.messages), turn_count=turns)
    with SessionStore.open(tmp_path / "j") as s:
        s.save_session(SID, meta, conv, state, actor="agcx import")
        cm = s.create_checkpoint(SID, CID1, conv, state, name="n", description="d")
        recs = list(s.journal.scan())
        saved = s.journal.decode(recs[0])
        created = s.journal.decode(recs[1])
    assert saved == session_saved_entry(meta, conv, state).payload
    assert created == checkpoint_created_entry(SID, cm, conv, state).payload
    e = legacy_imported_entry(SID, "/x", "ab", "session")
    assert (e.event_type, e.session_id, e.payload) == (
        EventType.LEGACY_IMPORTED,
        SID,
        {"v": 1, "path": "/x", "sha256": "ab", "kind": "session"},
    )


def test_path_none_reads_the_stores_own_root(root: Path) -> None:
    with SessionStore.open(root) as s:
        sessions = history_fixture(root)
        report = s.import_legacy()
        assert report.root == str(root)
        assert report.sessions_imported == len(sessions)
        for x in sessions:
            check_imported(s, x)


def test_a_path_with_tilde_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    history_fixture(tmp_path / "old")
    with SessionStore.open(tmp_path / "j") as s:
        report = s.import_legacy("~/old")
    assert report.root == str(tmp_path / "old")
    assert report.sessions_imported == 5


# ---------------------------------------------------------------- idempotence


def test_a_second_run_imports_nothing_and_says_so(legacy: Path, store: SessionStore) -> None:
    sessions = history_fixture(legacy)
    first = store.import_legacy(legacy)
    last = store.journal.last_seq
    second = store.import_legacy(legacy)
    assert (second.sessions_imported, second.checkpoints_imported) == (0, 0)
    assert second.already_imported == len(first.items)
    assert {i.action for i in second.items} == {"already imported"}
    assert second.problems == ()
    assert store.journal.last_seq == last
    for s in sessions:
        check_imported(store, s)


def test_a_third_run_imports_only_the_session_file_added_since(
    legacy: Path, store: SessionStore
) -> None:
    history_fixture(legacy)
    store.import_legacy(legacy)
    store.import_legacy(legacy)
    meta, conv = variant(u(0xF), "added later", checkpoints=())
    new = Session(meta, conv, SessionState(cursor_position=1))
    write(legacy, new)
    third = store.import_legacy(legacy)
    assert (third.sessions_imported, third.checkpoints_imported) == (1, 0)
    assert [i.path for i in third.items if i.action == "imported"] == [
        str(legacy / "sessions" / f"{u(0xF)}.agcx")
    ]
    assert third.already_imported == len(third.items) - 1
    check_imported(store, new)


def test_a_checkpoint_file_added_later_joins_its_imported_session(
    legacy: Path, store: SessionStore
) -> None:
    conv = rich_conversation()
    cm = rich_metadata().checkpoints[0]
    s = Session(rich_metadata(), conv, rich_state())
    write(legacy, s)
    store.import_legacy(legacy)
    W.write_checkpoint_file(legacy, SID, CID1, conv, SessionState())
    report = store.import_legacy(legacy)
    assert (report.sessions_imported, report.checkpoints_imported) == (0, 1)
    # Its metadata still comes from the (already imported) session file.
    assert store.list_checkpoints(SID) == [cm]


def test_a_session_deleted_after_import_is_not_brought_back(
    legacy: Path, store: SessionStore
) -> None:
    history_fixture(legacy)
    store.import_legacy(legacy)
    store.delete_session(SID)
    last = store.journal.last_seq
    report = store.import_legacy(legacy)
    assert not store.session_exists(SID)
    assert store.journal.last_seq == last
    assert actions(report)[f"{SID}.agcx"] == "already imported"


def test_two_checkpoints_with_identical_bytes_are_both_imported(
    legacy: Path, store: SessionStore
) -> None:
    # Two checkpoints taken with nothing new in between have the same file bytes.
    meta = replace(rich_metadata(), checkpoints=())
    conv = rich_conversation()
    write(legacy, Session(meta, conv, rich_state()))
    a = W.write_checkpoint_file(legacy, SID, CID1, conv, rich_state())
    b = W.write_checkpoint_file(legacy, SID, CID2, conv, rich_state())
    assert a.read_bytes() == b.read_bytes()
    first = store.import_legacy(legacy)
    assert first.checkpoints_imported == 2
    assert {c.id for c in store.list_checkpoints(SID)} == {CID1, CID2}
    last = store.journal.last_seq
    second = store.import_legacy(legacy)
    assert {i.action for i in second.items} == {"already imported"}
    assert store.journal.last_seq == last


def test_after_a_crash_between_save_and_record_a_rerun_only_records_the_file(
    legacy: Path, store: SessionStore
) -> None:
    # A torn batch can keep a SessionSaved without its LegacyImported.
    s = Session(rich_metadata(), rich_conversation(), rich_state())
    write(legacy, s)
    store.journal.append_many([session_saved_entry(s.meta, s.conversation, s.state)])
    report = store.import_legacy(legacy)
    assert actions(report) == {f"{SID}.agcx": "already imported"}
    assert report.already_imported == 1 and report.problems == ()
    assert [h.event for h in store.history(SID)] == ["SessionSaved", "LegacyImported"]
    last = store.journal.last_seq
    again = store.import_legacy(legacy)
    assert again.already_imported == 1 and store.journal.last_seq == last


def test_a_session_changed_in_agcx_is_skipped_never_overwritten(
    legacy: Path, store: SessionStore
) -> None:
    s = Session(rich_metadata(), rich_conversation(), rich_state())
    write(legacy, s)
    W.write_checkpoint_file(legacy, SID, CID1, rich_conversation(), SessionState())
    newer = replace(
        rich_conversation(),
        messages=(
            *rich_conversation().messages,
            MessageSnapshot(Message("assistant", [OutputText("later")]), T_MICRO, 9),
        ),
    )
    store.save_session(SID, rich_metadata(), newer, rich_state())
    report = store.import_legacy(legacy)
    assert report.sessions_imported == 0 and report.checkpoints_imported == 0
    assert actions(report)[f"{SID}.agcx"] == "skipped"
    assert "different content" in reasons(report)[f"{SID}.agcx"]
    assert "not overwritten" in reasons(report)[f"{SID}.agcx"]
    assert actions(report)[f"{SID}_{CID1}.ckpt"] == "skipped"
    assert "session was skipped" in reasons(report)[f"{SID}_{CID1}.ckpt"]
    assert store.load_session(SID)[1] == newer
    # As the reason says: delete the session in agcx, and the file imports.
    store.delete_session(SID)
    after = store.import_legacy(legacy)
    assert (after.sessions_imported, after.checkpoints_imported) == (1, 1)
    assert store.load_session(SID)[1] == rich_conversation()


def test_a_checkpoint_id_the_journal_holds_with_other_content_is_skipped(
    legacy: Path, store: SessionStore
) -> None:
    s = Session(replace(rich_metadata(), checkpoints=()), rich_conversation(), rich_state())
    write(legacy, s)
    W.write_checkpoint_file(legacy, SID, CID1, rich_conversation(), SessionState())
    store.import_legacy(legacy)  # imports both
    W.write_checkpoint_file(legacy, SID, CID1, rich_conversation(), rich_state())  # rewritten
    report = store.import_legacy(legacy)
    assert actions(report)[f"{SID}_{CID1}.ckpt"] == "skipped"
    assert "different content" in reasons(report)[f"{SID}_{CID1}.ckpt"]
    assert store.load_checkpoint(SID, CID1)[1] == SessionState()


# ---------------------------------------------------------------- damage


def _damaged_root(legacy: Path) -> tuple[list[Session], dict[str, str]]:
    """The fixture history plus one damaged session file per kind of damage.

    Returns the good sessions and, per damaged file name, a piece of its reason.
    """
    good = history_fixture(legacy)
    expected: dict[str, str] = {}
    for n, case in enumerate(sorted(DAMAGE)):
        data, reason = DAMAGE[case]
        name = f"{u(0xDA00 + n)}.agcx"
        (legacy / "sessions" / name).write_bytes(data)
        expected[name] = reason
    # metadata.id differs from the file name
    meta, conv = variant(u(0xBAD), "renamed file", checkpoints=())
    (legacy / "sessions" / f"{u(0xBAD0)}.agcx").write_bytes(
        W.session_file_bytes(meta, conv, SessionState())
    )
    expected[f"{u(0xBAD0)}.agcx"] = "metadata.id"
    # file names that are not UUIDs, a symlink, a damaged checkpoint
    (legacy / "sessions" / "notes.agcx").write_bytes(b"x")
    expected["notes.agcx"] = "not a session UUID"
    os.symlink(legacy / "sessions" / f"{SID}.agcx", legacy / "sessions" / f"{u(0x5111)}.agcx")
    expected[f"{u(0x5111)}.agcx"] = "symbolic link"
    bad_ck = f"{u(0xE)}_{u(0xEC)}.ckpt"
    (legacy / "checkpoints" / bad_ck).write_bytes(b"AGCX\x02\x00\x00\x00" + b"\x00" * 8)
    expected[bad_ck] = "empty payload"
    (legacy / "checkpoints" / "x_y.ckpt").write_bytes(b"")
    expected["x_y.ckpt"] = "is not <session-uuid>_<checkpoint-uuid>"
    return good, expected


def test_damaged_files_are_reported_by_path_and_reason_and_the_rest_imports(
    legacy: Path, store: SessionStore
) -> None:
    good, expected = _damaged_root(legacy)
    report = store.import_legacy(legacy)
    assert report.sessions_imported == len(good)
    assert report.checkpoints_imported == sum(len(s.checkpoints) for s in good)
    got = reasons(report)
    for name, piece in expected.items():
        assert piece in got[name], (name, got[name])
        assert actions(report)[name] == "failed"
    problem_paths = {p.path for p in report.problems}
    assert str(legacy / "sessions" / f"{u(0xBAD0)}.agcx") in problem_paths
    assert set(got) == set(expected)
    for s in good:
        check_imported(store, s)
    # Damaged files are never recorded: a second run reports them again, imports nothing.
    again = store.import_legacy(legacy)
    assert reasons(again) == got
    assert again.sessions_imported == again.checkpoints_imported == 0


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_each_kind_of_damage_fails_only_its_own_file(
    case: str, legacy: Path, store: SessionStore
) -> None:
    data, reason = DAMAGE[case]
    good = Session(*minimal())
    write(legacy, good)
    bad = legacy / "sessions" / f"{SID}.agcx"
    bad.write_bytes(data)
    report = store.import_legacy(legacy)
    assert report.problems == (ImportProblem(str(bad), report.problems[0].reason),)
    assert reason in report.problems[0].reason
    assert ImportItem(str(bad), "session", SID, "failed") in report.items
    assert report.sessions_imported == 1
    check_imported(store, good)


def test_checkpoints_of_a_failed_or_absent_session_are_reported(
    legacy: Path, store: SessionStore
) -> None:
    conv, state = rich_conversation(), rich_state()
    (legacy / "sessions").mkdir(parents=True)
    (legacy / "sessions" / f"{SID}.agcx").write_bytes(b"")
    W.write_checkpoint_file(legacy, SID, CID1, conv, state)
    W.write_checkpoint_file(legacy, u(0xAB5E), CID2, conv, state)
    report = store.import_legacy(legacy)
    got, acts = reasons(report), actions(report)
    assert acts[f"{SID}_{CID1}.ckpt"] == "skipped"
    assert "could not be imported" in got[f"{SID}_{CID1}.ckpt"]
    assert str(legacy / "sessions" / f"{SID}.agcx") in got[f"{SID}_{CID1}.ckpt"]
    assert acts[f"{u(0xAB5E)}_{CID2}.ckpt"] == "skipped"
    assert "no session" in got[f"{u(0xAB5E)}_{CID2}.ckpt"]
    assert report.checkpoints_imported == 0
    assert store.list_sessions() == []


def test_a_checkpoint_of_a_session_only_the_journal_has_is_imported(
    legacy: Path, store: SessionStore
) -> None:
    meta, conv, state = minimal()
    store.save_session(meta.id, meta, conv, state)
    W.write_checkpoint_file(legacy, meta.id, CID1, rich_conversation(), state)
    report = store.import_legacy(legacy)
    assert report.checkpoints_imported == 1
    [cm] = store.list_checkpoints(meta.id)
    assert (cm.id, cm.name, cm.message_index) == (CID1, "", len(rich_conversation().messages))


def test_a_session_listing_a_checkpoint_without_its_file_is_reported(
    legacy: Path, store: SessionStore
) -> None:
    write(legacy, Session(rich_metadata(), rich_conversation(), rich_state()))
    report = store.import_legacy(legacy)
    assert report.sessions_imported == 1
    listed = [p.reason for p in report.problems]
    assert len(listed) == 2 and all("no checkpoint file" in r for r in listed)
    assert str(CID1) in listed[0] and str(CID2) in listed[1]
    assert store.list_checkpoints(SID) == []


def test_a_record_too_large_for_the_journal_fails_only_its_file(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy"
    big = base64.b64encode(os.urandom(48_000)).decode()
    meta, conv, state = minimal()
    huge = replace(conv, messages=[MessageSnapshot(Message("user", [InputText(big)]), T_WHOLE, 0)])
    write(legacy, Session(meta, huge, state))
    small = [
        Session(
            *variant(u(0x100 + i), f"s{i}", checkpoints=())[:1],
            ConversationSnapshot(u(0x100 + i)),
            SessionState(),
        )
        for i in range(3)
    ]
    for s in small:
        write(legacy, s)
    with SessionStore.open(tmp_path / "j", max_record_size=16_384) as store:
        report = store.import_legacy(legacy)
        assert report.sessions_imported == 3
        assert actions(report)[f"{meta.id}.agcx"] == "failed"
        assert "max_record_size" in reasons(report)[f"{meta.id}.agcx"]
        for s in small:
            check_imported(store, s)
        assert not store.session_exists(meta.id)


def test_a_missing_root_is_an_error(tmp_path: Path, store: SessionStore) -> None:
    with pytest.raises(LegacyFormatError) as info:
        store.import_legacy(tmp_path / "nowhere")
    assert "not a directory" in info.value.reason


def test_an_empty_root_imports_nothing(tmp_path: Path, store: SessionStore) -> None:
    report = store.import_legacy(tmp_path)
    assert (report.sessions_imported, report.items, report.problems) == (0, (), ())


def test_bad_arguments_are_refused(legacy: Path, store: SessionStore) -> None:
    from journal import InvalidArgument

    with pytest.raises(InvalidArgument):
        store.import_legacy(legacy, dry_run="yes")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        store.import_legacy(legacy, progress=3)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        store.import_legacy(42)  # type: ignore[arg-type]


# ---------------------------------------------------------------- nothing modified, dry run


def test_legacy_files_are_never_modified(legacy: Path, store: SessionStore) -> None:
    _damaged_root(legacy)
    before = tree_digest(legacy)
    store.import_legacy(legacy, dry_run=True)
    assert tree_digest(legacy) == before
    store.import_legacy(legacy)
    assert tree_digest(legacy) == before
    store.import_legacy(legacy)
    assert tree_digest(legacy) == before


def test_importing_from_the_stores_own_root_leaves_its_legacy_files_alone(root: Path) -> None:
    with SessionStore.open(root) as s:
        history_fixture(root)
        legacy_dirs = [root / "sessions", root / "checkpoints"]
        before = {d: tree_digest(d) for d in legacy_dirs}
        s.import_legacy()
        assert {d: tree_digest(d) for d in legacy_dirs} == before


def test_dry_run_lists_what_would_be_imported_and_writes_nothing(
    legacy: Path, store: SessionStore, root: Path
) -> None:
    good, expected = _damaged_root(legacy)
    last = store.journal.last_seq
    segments = tree_digest(root / "segments")
    calls: list[tuple[int, int]] = []
    dry = store.import_legacy(legacy, dry_run=True, progress=lambda d, t: calls.append((d, t)))
    assert dry.dry_run
    assert store.journal.last_seq == last
    assert tree_digest(root / "segments") == segments
    assert store.list_sessions() == []
    assert calls and calls[-1][0] == calls[-1][1]
    would = [i for i in dry.items if i.action == "would import"]
    assert dry.sessions_imported == len(good)
    assert len(would) == dry.sessions_imported + dry.checkpoints_imported
    assert set(reasons(dry)) == set(expected)
    real = store.import_legacy(legacy)
    assert (real.sessions_imported, real.checkpoints_imported) == (
        dry.sessions_imported,
        dry.checkpoints_imported,
    )
    assert [i.path for i in real.items if i.action == "imported"] == [i.path for i in would]
    again = store.import_legacy(legacy, dry_run=True)
    assert again.sessions_imported == again.checkpoints_imported == 0
    assert again.already_imported == real.sessions_imported + real.checkpoints_imported


def test_a_readonly_store_refuses_a_real_import_but_does_a_dry_run(
    legacy: Path, root: Path
) -> None:
    history_fixture(legacy)
    SessionStore.open(root).close()
    with SessionStore.open(root, readonly=True) as ro:
        with pytest.raises(ReadOnlyJournal):
            ro.import_legacy(legacy)
        assert ro.import_legacy(legacy, dry_run=True).sessions_imported == 5


# ---------------------------------------------------------------- report


def test_report_to_json_has_stable_keys_and_serialises(legacy: Path, store: SessionStore) -> None:
    _damaged_root(legacy)
    report = store.import_legacy(legacy)
    data = report.to_json()
    assert list(data) == [
        "root",
        "dry_run",
        "sessions_imported",
        "checkpoints_imported",
        "already_imported",
        "seconds",
        "problems",
        "items",
    ]
    assert json.loads(json.dumps(data)) == data
    sid_items = [i for i in data["items"] if i["session_id"] == str(SID)]
    assert sid_items[0] == {
        "path": str(legacy / "sessions" / f"{SID}.agcx"),
        "kind": "session",
        "session_id": str(SID),
        "action": "imported",
    }
    assert {"path", "reason"} == set(data["problems"][0])
    nameless = [i for i in data["items"] if i["session_id"] is None]
    assert {os.path.basename(i["path"]) for i in nameless} == {"notes.agcx", "x_y.ckpt"}
    assert data["seconds"] == report.seconds >= 0
    assert isinstance(report, ImportReport)


# ---------------------------------------------------------------- concurrency


def test_a_file_another_process_imports_meanwhile_is_not_imported_twice(
    legacy: Path, root: Path
) -> None:
    history_fixture(legacy)
    with SessionStore.open(root) as a, SessionStore.open(root) as b:
        other: list[ImportReport] = []

        def meanwhile(done: int, total: int) -> None:
            if done == 1:  # a has decided on the first file but not written it yet
                other.append(b.import_legacy(legacy))

        mine = a.import_legacy(legacy, progress=meanwhile)
        assert other[0].sessions_imported == 5
        assert mine.sessions_imported == mine.checkpoints_imported == 0
        assert {i.action for i in mine.items} == {"already imported"}
        n_imports = sum(1 for h in a.history() if h.event == "LegacyImported")
        assert n_imports == len(mine.items)


def test_a_session_saved_elsewhere_meanwhile_is_skipped_not_overwritten(
    legacy: Path, root: Path
) -> None:
    sessions = history_fixture(legacy)
    late = sessions[-1]
    with SessionStore.open(root) as a, SessionStore.open(root) as b:
        mine_first: list[ConversationSnapshot] = []

        def meanwhile(done: int, total: int) -> None:
            if done == 1:
                conv = ConversationSnapshot(late.id)
                b.save_session(late.id, late.meta, conv, SessionState())
                mine_first.append(conv)

        report = a.import_legacy(legacy, progress=meanwhile)
        name = f"{late.id}.agcx"
        assert actions(report)[name] == "skipped"
        assert "during the import" in reasons(report)[name]
        assert a.load_session(late.id)[1] == mine_first[0]
        assert report.sessions_imported == len(sessions) - 1


# ---------------------------------------------------------------- many sessions


def test_several_hundred_sessions_import_quickly_with_progress(
    legacy: Path, store: SessionStore, capsys: pytest.CaptureFixture[str]
) -> None:
    n = 400
    writer = W.LegacyWriter()
    base = rich_conversation()
    for i in range(n):
        sid = u(0x10_0000 + i)
        msgs = [
            MessageSnapshot(
                Message(
                    "user" if k % 2 == 0 else "assistant",
                    [InputText(f"turn {k} of session {i} — ✓")],
                ),
                T_WHOLE + timedelta(seconds=k),
                k // 2,
            )
            for k in range(20)
        ]
        meta = replace(rich_metadata(), id=sid, title=f"session {i}", checkpoints=())
        conv = replace(base, id=sid, messages=[*base.messages, *msgs])
        W.write_session_file(legacy, meta, conv, rich_state(), writer=writer)
        if i % 10 == 0:
            W.write_checkpoint_file(
                legacy, sid, u(0x20_0000 + i), conv, rich_state(), writer=writer
            )
    calls: list[tuple[int, int]] = []
    t0 = time.perf_counter()
    report = store.import_legacy(legacy, progress=lambda d, t: calls.append((d, t)))
    elapsed = time.perf_counter() - t0
    total = n + n // 10
    assert report.sessions_imported == n and report.checkpoints_imported == n // 10
    assert report.problems == ()
    assert calls[-1] == (total, total) and len(calls) == total
    assert [d for d, _ in calls] == list(range(1, total + 1))
    assert len(store.list_sessions()) == n
    rate = n / report.seconds
    with capsys.disabled():
        print(
            f"\nimported {n} sessions ({n // 10} checkpoints, 32 messages each) in "
            f"{report.seconds:.3f} s: {rate:.0f} sessions/s"
        )
    assert elapsed < 10, f"importing {n} sessions took {elapsed:.1f} s"
    t1 = time.perf_counter()
    again = store.import_legacy(legacy)
    assert again.already_imported == total
    second = time.perf_counter() - t1
    with capsys.disabled():
        print(f"second run (nothing to import): {second:.3f} s")
    loaded = store.load_session(u(0x10_0000 + 123))
    assert loaded[0].title == "session 123" and len(loaded[1].messages) == 32
