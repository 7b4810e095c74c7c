"""SessionStore: the old store's features as events and projections.

Delta saves (bytes per save follow the new messages, not the session's size),
bad input (typed errors, nothing written), read-only stores (nothing on disk
changes), projection snapshots (reopen replays only the tail; stale, foreign
or damaged snapshots are ignored and rebuilt), the public API, and
regression tests for bugs these tests found.
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

import journal
import projections
from journal import (
    CheckpointNotFound,
    ConversationContext,
    ConversationSnapshot,
    FileSystem,
    FilterSettings,
    InvalidArgument,
    JournalError,
    MessageSnapshot,
    OperatingMode,
    ReadOnlyJournal,
    SessionMetadata,
    SessionNotFound,
    SessionState,
    SessionStore,
    UnknownItem,
)
from projections import SessionIndex
from tests import strategies as ms
from tests._store_worker import T0, conversation, key_of, message, metadata

PAST = datetime.now(UTC) - timedelta(days=30)


@pytest.fixture
def store(root: Path) -> Iterator[SessionStore]:
    with SessionStore.open(root, durability="none") as s:
        yield s


def state(cursor: int = 0) -> SessionState:
    return SessionState(cursor_position=cursor, active_panel="chat")


def new_session(s: SessionStore, n_messages: int = 2, **meta: Any) -> UUID:
    sid = uuid4()
    keys = [f"{sid}/{i}" for i in range(n_messages)]
    s.save_session(sid, metadata(sid, "a session", **meta), conversation(sid, keys), state())
    return sid


def chain_length(s: SessionStore, sid: UUID) -> int:
    """How many records a load of ``sid`` reads (its last full save and deltas since)."""
    s._sync()
    with s._runner.lock:
        return len(s._contents.chains[sid.bytes].seqs)


# -- the public API --------------------------------------------------------------------------


def test_journal_exports_exactly_the_pinned_public_api() -> None:
    # A deliberate change of the public API updates this list in the same commit.
    assert journal.__all__ == [
        "AstIndexState",
        "AsyncPointInTimeView",
        "AsyncSessionStore",
        "CheckpointMetadata",
        "CheckpointNotFound",
        "CodexImportReport",
        "CompactionReport",
        "ContentItem",
        "ConversationContext",
        "ConversationSnapshot",
        "CorruptJournal",
        "CorruptPayload",
        "CorruptReplica",
        "Durability",
        "EmbeddingCacheState",
        "Entry",
        "EventType",
        "FileContext",
        "FileSystem",
        "FilterSettings",
        "FunctionCall",
        "FunctionCallOutput",
        "HistoryEntry",
        "HorizonError",
        "ImportItem",
        "ImportProblem",
        "ImportReport",
        "InputImage",
        "InputText",
        "InvalidArgument",
        "Journal",
        "JournalBusy",
        "JournalClosed",
        "JournalError",
        "JournalFull",
        "JournalPoisoned",
        "JournalStatistics",
        "LocalShellAction",
        "LocalShellCall",
        "Message",
        "MessageMetadata",
        "MessageSnapshot",
        "OperatingMode",
        "OutputText",
        "PointInTimeView",
        "PurgeReport",
        "ReadOnlyJournal",
        "Reasoning",
        "ReasoningSummary",
        "Record",
        "RecordNotFound",
        "RecordTooLarge",
        "RecoverReport",
        "RedactionPolicy",
        "ReplicaBusy",
        "ReplicaDiverged",
        "ReplicaError",
        "ReplicaReport",
        "ReplicaUnavailable",
        "ReplicationStatistics",
        "Replicator",
        "ResponseItem",
        "SalvageReport",
        "ScrubReport",
        "SecretFinding",
        "SessionConflict",
        "SessionMetadata",
        "SessionNotFound",
        "SessionPage",
        "SessionPurged",
        "SessionState",
        "SessionStore",
        "StoreStatistics",
        "SummaryText",
        "ThreadDeleted",
        "ThreadShared",
        "ToolCallMetadata",
        "UnknownContent",
        "UnknownItem",
        "UnknownSummary",
        "UnsafeJournal",
        "UnsupportedVersion",
        "item_from_json",
        "item_to_json",
        "recover",
        "recover_from_replica",
        "replicate",
        "salvage",
        "verify_replica",
    ]


def test_every_exported_journal_name_resolves() -> None:
    for name in journal.__all__:
        assert getattr(journal, name) is not None, name
    with pytest.raises(AttributeError):
        _ = journal.NoSuchName


def test_projections_exports_exactly_the_pinned_public_api() -> None:
    assert projections.__all__ == [
        "Chain",
        "EventStatistics",
        "GraphCheckpoints",
        "Projection",
        "ProjectionRunner",
        "SessionContents",
        "SessionIndex",
    ]
    for name in projections.__all__:
        assert getattr(projections, name) is not None, name


def test_every_error_the_store_raises_is_a_journal_error() -> None:
    for cls in (InvalidArgument, SessionNotFound, CheckpointNotFound, ReadOnlyJournal):
        assert issubclass(cls, JournalError)
    assert issubclass(InvalidArgument, ValueError)
    assert issubclass(SessionNotFound, KeyError)
    assert issubclass(CheckpointNotFound, KeyError)


# -- saving and loading ----------------------------------------------------------------------


@settings(max_examples=40)
@given(
    conv=ms.conversation_snapshot(max_messages=4),
    st_=ms.session_state(),
    meta=ms.session_metadata(),
)
def test_any_session_round_trips_and_the_store_owns_sizes_and_checkpoints(
    tmp_path_factory: pytest.TempPathFactory,
    conv: ConversationSnapshot,
    st_: SessionState,
    meta: SessionMetadata,
) -> None:
    root = tmp_path_factory.mktemp("rt")
    conv = replace(conv, id=meta.id)
    with SessionStore.open(root, durability="none") as s:
        s.save_session(meta.id, meta, conv, st_)
        got, conv2, st2 = s.load_session(meta.id)
    assert (conv2, st2) == (conv, st_)
    # The counts are the conversation's: every message, every turn index (when set).
    turns = {m.turn_index for m in conv.messages}
    counts = {"message_count": len(conv.messages)}
    if turns - {0}:
        counts["turn_count"] = len(turns)
    assert replace(got, file_size=0, compression_ratio=1.0) == replace(
        meta, **counts, file_size=0, compression_ratio=1.0, checkpoints=()
    )
    assert got.file_size > 0 and got.compression_ratio > 0
    with SessionStore.open(root, readonly=True) as r:
        assert r.load_session(meta.id) == (got, conv, st_)


def test_first_messages_after_an_empty_save_keep_context_mode_history_and_state(
    store: SessionStore,
) -> None:
    # Regression: a save extending an empty base was written as a delta with
    # base=0, which reads as a full save, but without the unchanged context,
    # mode history and state: the load returned their defaults.
    sid = uuid4()
    empty = ConversationSnapshot(
        sid, (), ConversationContext(working_directory="/w"), [(OperatingMode.REVIEW, T0)]
    )
    store.save_session(sid, metadata(sid, "t"), empty, state(7))
    first = replace(empty, messages=[message("hello")])
    store.save_session(sid, metadata(sid, "t"), first, state(7))
    assert store.load_session(sid)[1:] == (first, state(7))
    store.close()
    with SessionStore.open(store.root, snapshots=False) as again:
        assert again.load_session(sid)[1:] == (first, state(7))


def test_a_delta_carries_only_what_changed_and_loads_back_whole(store: SessionStore) -> None:
    sid = cid = uuid4()
    keys = ["m0", "m1", "m2"]
    conv = conversation(cid, keys)
    store.save_session(sid, metadata(sid, "t"), conv, state(1))
    ctx = ConversationContext(working_directory="/elsewhere", open_files=["a.py"])
    conv2 = replace(
        conv,
        messages=(*conv.messages, message("m3", 3)),
        context=ctx,
        mode_history=(*conv.mode_history, (OperatingMode.PLAN, T0)),
    )
    seq = store.save_session(sid, metadata(sid, "t"), conv2, state(1))
    ev = store.journal.decode(store.journal.read(seq))
    assert (ev["base"], ev["n"]) == (3, 4)
    assert "cx" in ev and "mh" in ev and "st" not in ev  # state did not change
    conv3 = replace(conv2, messages=(*conv2.messages, message("m4", 4)))
    seq = store.save_session(sid, metadata(sid, "t"), conv3, state(2))
    ev = store.journal.decode(store.journal.read(seq))
    assert (ev["base"], "cx" in ev, "mh" in ev, "st" in ev) == (4, False, False, True)
    assert store.load_session(sid)[1:] == (conv3, state(2))
    assert [h.summary for h in store.history(sid)] == [
        "saved in full (3 messages)",
        "+1 messages (4 total); turn_count 4",  # the messages' turn indexes say so
        "+1 messages (5 total); turn_count 5",
    ]


def test_saving_turn_500_appends_about_what_saving_turn_1_did(root: Path) -> None:
    """Bytes per save follow the new messages: amortised over the full rewrites
    (a full save is written again once the deltas outweigh it, or the chain
    reaches max_chain), late saves cost a small factor of early ones, and the
    whole conversation costs a small fraction of 500 full saves."""
    filler = "lorem ipsum dolor sit amet, consectetur adipiscing elit "

    def run(max_chain: int) -> tuple[list[int], int]:
        path = root / f"chain{max_chain}"
        with SessionStore.open(path, durability="none", max_chain=max_chain) as s:
            sid = cid = uuid4()
            msgs: list[MessageSnapshot] = []
            per_save = []
            longest_chain = 0
            for turn in range(500):
                msgs.append(message(f"turn {turn} {uuid4()} {filler * (1 + turn % 3)}", turn))
                before = s.journal.statistics().bytes
                s.save_session(sid, metadata(sid, "t"), ConversationSnapshot(cid, msgs), state())
                per_save.append(s.journal.statistics().bytes - before)
                longest_chain = max(longest_chain, chain_length(s, sid))
            assert s.load_session(sid)[1].messages == tuple(msgs)
        return per_save, longest_chain

    per_save, longest_chain = run(max_chain=64)
    early, late = sum(per_save[:50]), sum(per_save[450:])
    assert late <= 3 * early, (early, late)
    # A typical (delta) save is as small late as early.
    assert statistics.median(per_save[450:]) <= 1.5 * statistics.median(per_save[:50])
    assert longest_chain <= 64
    full_saves, _ = run(max_chain=1)  # every save written whole: the old store's cost
    assert sum(per_save) * 10 < sum(full_saves), (sum(per_save), sum(full_saves))
    assert sum(full_saves[450:]) > 10 * late


def test_a_short_max_chain_bounds_the_records_a_load_reads(root: Path) -> None:
    with SessionStore.open(root, durability="none", max_chain=3, segment_size=4096) as s:
        sid = cid = uuid4()
        keys: list[str] = []
        for i in range(40):
            keys.append(f"k{i}")
            s.save_session(sid, metadata(sid, "t"), conversation(cid, keys), state(i))
            assert chain_length(s, sid) <= 3
            assert s.load_session(sid)[1:] == (conversation(cid, keys), state(i))
        assert s.statistics().segments > 1


_TEXT = st.text(alphabet="aAbBß İ-:", max_size=6)


@settings(max_examples=30, deadline=None)
@given(
    sessions=st.lists(st.tuples(_TEXT, st.lists(_TEXT, max_size=2)), min_size=1, max_size=5),
    query=_TEXT,
)
def test_search_answers_as_a_filter_over_the_listing(
    tmp_path_factory: pytest.TempPathFactory,
    sessions: list[tuple[str, list[str]]],
    query: str,
) -> None:
    """The search looks at the stored title and tags before decoding a
    session's metadata: it must answer as the plain filter does."""
    with SessionStore.open(tmp_path_factory.mktemp("s") / "j", durability="none") as s:
        for i, (title, tags) in enumerate(sessions):
            sid = uuid4()
            meta = metadata(sid, title, tags=tags, last_accessed=PAST + timedelta(hours=i))
            s.save_session(sid, meta, conversation(sid, [f"{sid}/0"]), state())
        q = query.lower()
        expected = [
            m.id for m in s.list_sessions()
            if q in m.title.lower() or any(q in t.lower() for t in m.tags)
        ]
        assert [m.id for m in s.search_sessions(query)] == expected


def test_list_sessions_is_most_recently_accessed_first_and_search_matches_title_or_tag(
    store: SessionStore,
) -> None:
    a = new_session(store, last_accessed=PAST, tags=["Rust"])
    b = new_session(store, last_accessed=PAST + timedelta(days=1))
    c = new_session(store, last_accessed=PAST - timedelta(days=1))
    store.rename(b, "Fix the RUSTY parser")
    assert [m.id for m in store.list_sessions()] == [b, a, c]
    assert [m.id for m in store.search_sessions("rust")] == [b, a]
    assert [m.id for m in store.search_sessions("")] == [b, a, c]
    assert store.search_sessions("nothing like it") == []
    store.touch(c)
    assert [m.id for m in store.list_sessions()] == [c, b, a]


def test_tags_favorite_rename_and_touch_edit_metadata_until_the_next_save(
    store: SessionStore,
) -> None:
    sid = new_session(store, tags=["a"])
    store.tag(sid, "b", "c", "b")
    store.untag(sid, "a", "zz")
    store.set_favorite(sid, True)
    store.rename(sid, "renamed")
    before = datetime.now(UTC)
    store.touch(sid)
    meta = store.get_metadata(sid)
    assert meta.tags == ("b", "c")
    assert meta.is_favorite and meta.title == "renamed"
    assert before <= meta.last_accessed <= datetime.now(UTC)
    # A save carries the caller's metadata: last writer wins, as in the old store.
    _, conv, st_ = store.load_session(sid)
    store.save_session(sid, metadata(sid, "saved"), conv, st_)
    meta = store.get_metadata(sid)
    assert (meta.tags, meta.is_favorite, meta.title) == ((), False, "saved")


def test_checkpoints_are_listed_oldest_first_loaded_and_deleted(store: SessionStore) -> None:
    sid = new_session(store)
    cps = []
    for i in range(3):
        conv = conversation(uuid4(), [f"cp{i}/{k}" for k in range(i)])
        meta = store.create_checkpoint(sid, uuid4(), conv, state(i), name=f"cp{i}")
        assert meta.message_index == i
        cps.append((meta, conv, state(i)))
    assert store.list_checkpoints(sid) == [c[0] for c in cps]
    assert store.get_metadata(sid).checkpoints == tuple(c[0] for c in cps)
    for meta, conv, st_ in cps:
        assert store.load_checkpoint(sid, meta.id) == (conv, st_)
    store.delete_checkpoint(sid, cps[1][0].id)
    assert store.list_checkpoints(sid) == [cps[0][0], cps[2][0]]
    assert store.statistics().total_checkpoints == 2
    # Checkpoints survive saves of their session, not its deletion.
    _, conv, st_ = store.load_session(sid)
    store.save_session(sid, metadata(sid, "again"), conv, st_)
    assert len(store.list_checkpoints(sid)) == 2
    store.delete_session(sid)
    store.save_session(sid, metadata(sid, "reborn"), conv, st_)
    assert store.list_checkpoints(sid) == []
    assert store.statistics().total_checkpoints == 0


def test_cleanup_deletes_by_age_then_count_oldest_first_and_never_favorites(
    store: SessionStore,
) -> None:
    ages = [40, 30, 20, 10, 5, 1]
    ids = [new_session(store, last_accessed=PAST - timedelta(days=d - 30)) for d in ages]
    oldest, _, _, _, _, newest = ids
    store.set_favorite(oldest, True)
    assert store.cleanup_old_sessions(max_age_days=15) == [ids[1], ids[2]]
    assert store.cleanup_old_sessions(max_count=2) == [ids[3], ids[4]]
    assert [m.id for m in store.list_sessions()] == [newest, oldest]
    assert store.cleanup_old_sessions(max_count=0) == [newest]
    assert store.cleanup_old_sessions(max_age_days=0, max_count=0) == []
    assert [m.id for m in store.list_sessions()] == [oldest]
    assert [h.summary for h in store.history(ids[1])][-1] == "deleted (retention)"


def test_an_age_beyond_the_calendar_deletes_nothing(store: SessionStore) -> None:
    new_session(store, last_accessed=PAST)
    assert store.cleanup_old_sessions(max_age_days=10**12) == []
    assert store.cleanup_old_sessions(max_age_days=1e300) == []


# -- bad input -------------------------------------------------------------------------------


@attrs.frozen
class World:
    """A store holding one session with one checkpoint, and another without."""

    store: SessionStore
    sid: UUID
    other: UUID
    cid: UUID
    meta: SessionMetadata
    conv: ConversationSnapshot


@pytest.fixture
def world(store: SessionStore) -> World:
    sid, other = new_session(store), new_session(store)
    _, conv, _ = store.load_session(sid)
    cid = uuid4()
    store.create_checkpoint(sid, cid, conv, state())
    return World(store, sid, other, cid, store.get_metadata(sid), conv)


UNENCODABLE = ConversationSnapshot(
    uuid4(), [MessageSnapshot(UnknownItem({"type": "new", "data": object()}), T0, 0)]
)
NAIVE = datetime(2024, 1, 1)

BAD_CALLS: list[tuple[str, type[JournalError], Callable[[World], object]]] = [
    (
        "save: id not a UUID",
        InvalidArgument,
        lambda w: w.store.save_session("not-a-uuid", w.meta, w.conv, state()),
    ),
    (
        "save: id an int",
        InvalidArgument,
        lambda w: w.store.save_session(12, w.meta, w.conv, state()),
    ),
    (
        "save: metadata a dict",
        InvalidArgument,
        lambda w: w.store.save_session(w.sid, {}, w.conv, state()),
    ),
    (
        "save: conversation a list",
        InvalidArgument,
        lambda w: w.store.save_session(w.sid, w.meta, [], state()),
    ),
    (
        "save: state None",
        InvalidArgument,
        lambda w: w.store.save_session(w.sid, w.meta, w.conv, None),
    ),
    (
        "save: metadata of another session",
        InvalidArgument,
        lambda w: w.store.save_session(w.other, w.meta, w.conv, state()),
    ),
    (
        "save: actor an int",
        InvalidArgument,
        lambda w: w.store.save_session(w.sid, w.meta, w.conv, state(), actor=1),
    ),
    (
        "save: data msgpack cannot encode",
        InvalidArgument,
        lambda w: w.store.save_session(w.sid, w.meta, UNENCODABLE, state()),
    ),
    ("load: id not a UUID", InvalidArgument, lambda w: w.store.load_session("nope")),
    ("load: id None", InvalidArgument, lambda w: w.store.load_session(None)),
    ("exists: id bytes", InvalidArgument, lambda w: w.store.session_exists(w.sid.bytes)),
    ("load: unknown id", SessionNotFound, lambda w: w.store.load_session(uuid4())),
    ("metadata: unknown id", SessionNotFound, lambda w: w.store.get_metadata(uuid4())),
    ("delete: unknown id", SessionNotFound, lambda w: w.store.delete_session(uuid4())),
    (
        "delete: bad reason",
        InvalidArgument,
        lambda w: w.store.delete_session(w.sid, reason="bored"),
    ),
    ("delete: actor an int", InvalidArgument, lambda w: w.store.delete_session(w.sid, actor=7)),
    ("tag: empty tag", InvalidArgument, lambda w: w.store.tag(w.sid, "")),
    ("tag: int tag", InvalidArgument, lambda w: w.store.tag(w.sid, 3)),
    ("tag: unknown id", SessionNotFound, lambda w: w.store.tag(uuid4(), "x")),
    ("untag: None tag", InvalidArgument, lambda w: w.store.untag(w.sid, None)),
    ("untag: unknown id", SessionNotFound, lambda w: w.store.untag(uuid4(), "x")),
    ("favorite: 'yes'", InvalidArgument, lambda w: w.store.set_favorite(w.sid, "yes")),
    ("favorite: 1", InvalidArgument, lambda w: w.store.set_favorite(w.sid, 1)),
    ("favorite: unknown id", SessionNotFound, lambda w: w.store.set_favorite(uuid4(), True)),
    ("rename: None", InvalidArgument, lambda w: w.store.rename(w.sid, None)),
    ("rename: unknown id", SessionNotFound, lambda w: w.store.rename(uuid4(), "t")),
    ("touch: id not a UUID", InvalidArgument, lambda w: w.store.touch("x")),
    ("touch: unknown id", SessionNotFound, lambda w: w.store.touch(uuid4())),
    ("search: None", InvalidArgument, lambda w: w.store.search_sessions(None)),
    ("cleanup: negative age", InvalidArgument, lambda w: w.store.cleanup_old_sessions(-1)),
    ("cleanup: age a str", InvalidArgument, lambda w: w.store.cleanup_old_sessions("3")),
    ("cleanup: age NaN", InvalidArgument, lambda w: w.store.cleanup_old_sessions(math.nan)),
    ("cleanup: age infinite", InvalidArgument, lambda w: w.store.cleanup_old_sessions(math.inf)),
    ("cleanup: age True", InvalidArgument, lambda w: w.store.cleanup_old_sessions(True)),
    (
        "cleanup: negative count",
        InvalidArgument,
        lambda w: w.store.cleanup_old_sessions(max_count=-1),
    ),
    (
        "cleanup: fractional count",
        InvalidArgument,
        lambda w: w.store.cleanup_old_sessions(max_count=1.5),
    ),
    (
        "cleanup: count True",
        InvalidArgument,
        lambda w: w.store.cleanup_old_sessions(max_count=True),
    ),
    (
        "checkpoint: id not a UUID",
        InvalidArgument,
        lambda w: w.store.create_checkpoint(w.sid, "cp", w.conv, state()),
    ),
    (
        "checkpoint: conversation a str",
        InvalidArgument,
        lambda w: w.store.create_checkpoint(w.sid, uuid4(), "c", state()),
    ),
    (
        "checkpoint: state a dict",
        InvalidArgument,
        lambda w: w.store.create_checkpoint(w.sid, uuid4(), w.conv, {}),
    ),
    (
        "checkpoint: name None",
        InvalidArgument,
        lambda w: w.store.create_checkpoint(w.sid, uuid4(), w.conv, state(), name=None),
    ),
    (
        "checkpoint: description an int",
        InvalidArgument,
        lambda w: w.store.create_checkpoint(w.sid, uuid4(), w.conv, state(), description=1),
    ),
    (
        "checkpoint: data msgpack cannot encode",
        InvalidArgument,
        lambda w: w.store.create_checkpoint(w.sid, uuid4(), UNENCODABLE, state()),
    ),
    (
        "checkpoint: unknown session",
        SessionNotFound,
        lambda w: w.store.create_checkpoint(uuid4(), uuid4(), w.conv, state()),
    ),
    (
        "load checkpoint: unknown id",
        CheckpointNotFound,
        lambda w: w.store.load_checkpoint(w.sid, uuid4()),
    ),
    (
        "load checkpoint: another session's",
        CheckpointNotFound,
        lambda w: w.store.load_checkpoint(w.other, w.cid),
    ),
    (
        "load checkpoint: unknown session",
        SessionNotFound,
        lambda w: w.store.load_checkpoint(uuid4(), w.cid),
    ),
    ("load checkpoint: id an int", InvalidArgument, lambda w: w.store.load_checkpoint(w.sid, 5)),
    (
        "delete checkpoint: unknown id",
        CheckpointNotFound,
        lambda w: w.store.delete_checkpoint(w.sid, uuid4()),
    ),
    (
        "delete checkpoint: unknown session",
        SessionNotFound,
        lambda w: w.store.delete_checkpoint(uuid4(), w.cid),
    ),
    (
        "list checkpoints: unknown session",
        SessionNotFound,
        lambda w: w.store.list_checkpoints(uuid4()),
    ),
    ("history: id not a UUID", InvalidArgument, lambda w: w.store.history("x")),
    ("at: naive datetime", InvalidArgument, lambda w: w.store.at(NAIVE)),
    ("at: a str", InvalidArgument, lambda w: w.store.at("yesterday")),
    ("at: True", InvalidArgument, lambda w: w.store.at(True)),
    ("at: negative seq", InvalidArgument, lambda w: w.store.at(-1)),
    ("at: future seq", InvalidArgument, lambda w: w.store.at(10**9)),
    (
        "at: future time",
        InvalidArgument,
        lambda w: w.store.at(datetime.now(UTC) + timedelta(days=1)),
    ),
]


@pytest.mark.parametrize(("what", "error", "call"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_input_raises_a_typed_error_and_writes_nothing(
    world: World, what: str, error: type[JournalError], call: Callable[[World], object]
) -> None:
    before = world.store.journal.last_seq
    listing = world.store.list_sessions()
    with pytest.raises(error) as info:
        call(world)
    assert isinstance(info.value, JournalError)
    assert str(info.value)  # says what is wrong
    assert world.store.journal.last_seq == before
    assert world.store.list_sessions() == listing


def test_a_deleted_session_is_unknown_to_every_method(world: World) -> None:
    s, sid = world.store, world.sid
    s.delete_session(sid)
    before = s.journal.last_seq
    assert not s.session_exists(sid)
    for call in (
        lambda: s.load_session(sid),
        lambda: s.get_metadata(sid),
        lambda: s.delete_session(sid),
        lambda: s.tag(sid, "x"),
        lambda: s.touch(sid),
        lambda: s.list_checkpoints(sid),
        lambda: s.load_checkpoint(sid, world.cid),
    ):
        with pytest.raises(SessionNotFound):
            call()
    assert s.journal.last_seq == before


@pytest.mark.parametrize(
    "build",
    [
        lambda: SessionMetadata(uuid4(), "t", NAIVE, T0, T0),
        lambda: SessionMetadata(uuid4(), "t", T0, T0, NAIVE),
        lambda: replace(metadata(uuid4(), "t"), updated_at=NAIVE),
        lambda: MessageSnapshot(message("x").item, NAIVE, 0),
        lambda: ConversationSnapshot(
            uuid4(), (), ConversationContext(), [(OperatingMode.PLAN, NAIVE)]
        ),
        lambda: SessionState(filter_settings=FilterSettings(date_range=(NAIVE, NAIVE))),
    ],
    ids=["created_at", "last_accessed", "evolve", "message", "mode history", "filter range"],
)
def test_naive_datetimes_are_refused_before_anything_reaches_the_store(
    build: Callable[[], object], tmp_path: Path
) -> None:
    with SessionStore.open(tmp_path / "s", durability="none") as s:
        # Refused where it is built, or (a MessageSnapshot, which keeps its
        # timestamp as given) by the save that would write it.
        with pytest.raises(InvalidArgument, match=r"naive|timezone"):
            value = build()
            assert isinstance(value, MessageSnapshot)
            sid = uuid4()
            conv = ConversationSnapshot(sid, [value])
            s.save_session(sid, metadata(sid, "t"), conv, SessionState())
        assert s.journal.last_seq == 0


def test_opening_with_a_bad_option_creates_nothing(tmp_path: Path) -> None:
    for options in ({"max_chain": 0}, {"max_chain": "3"}, {"durability": "maybe"}):
        with pytest.raises(InvalidArgument):
            SessionStore.open(tmp_path / "store", **options)
    assert not (tmp_path / "store").exists()


def test_metadata_after_a_compaction_is_never_a_stale_cached_answer(root: Path) -> None:
    # Regression: metadata was cached under (index version, chain changes);
    # a compaction makes the runner rebuild, those counters start again, and
    # a later save could repeat the stamp of a cached answer from before: the
    # store (and every other open store) listed the old title and count.
    with SessionStore.open(root, durability="none", segment_size=4096) as s:
        sid = uuid4()
        keys = [f"k0 {os.urandom(1400).hex()}"]
        s.save_session(sid, metadata(sid, "first"), conversation(sid, keys), state())
        keys.append(f"k1 {os.urandom(1400).hex()}")
        s.save_session(sid, metadata(sid, "second"), conversation(sid, keys), state())
        # A checkpoint large enough to seal the segment holding both saves.
        s.create_checkpoint(sid, uuid4(), conversation(uuid4(), [os.urandom(1400).hex()]), state())
        with SessionStore.open(root, durability="none", snapshots=False) as other:
            for store in (s, other):
                assert store.get_metadata(sid).title == "second"  # cached now
            assert s.compact(retain=timedelta(0)).records_after == 1
            keys.append("k2")
            s.save_session(sid, metadata(sid, "third"), conversation(sid, keys), state())
            for store in (s, other):
                meta = store.get_metadata(sid)
                assert (meta.title, meta.message_count) == ("third", 3)
                assert [m.title for m in store.list_sessions()] == ["third"]


# -- concurrency within one process ----------------------------------------------------------


class GatedSync(FileSystem):
    """Holds the next fdatasync (so a commit leader stalls) until released."""

    def __init__(self) -> None:
        self.armed = False
        self.entered = threading.Event()
        self.release = threading.Event()

    def fdatasync(self, fd: int) -> None:
        if self.armed:
            self.armed = False
            self.entered.set()
            self.release.wait(10)
        super().fdatasync(fd)


@pytest.mark.parametrize("remove", ["retention cleanup", "purge"])
def test_a_delete_or_purge_and_a_delta_save_of_one_session_never_share_a_commit(
    root: Path, remove: str
) -> None:
    # Regression: queued behind one commit, a retention delete (or a purge) and
    # a delta save of the same session were written in one group. The save's
    # base check saw the log before the delete, so the delta landed on no base
    # and the session came back with only the new messages and default context
    # and state.
    fs = GatedSync()
    with SessionStore.open(root, fs=fs) as s:
        young = new_session(s, last_accessed=datetime.now(UTC))
        # The touch below holds young's save lock through its stalled commit
        # (metadata events of a session wait for its saves): old takes another.
        old = next(u for u in iter(uuid4, None) if s._lock_for(u) is not s._lock_for(young))
        conv = conversation(old, ["m0"], workdir="/kept")
        s.save_session(old, metadata(old, "old", last_accessed=PAST), conv, state(3))
        fs.armed = True
        leader = threading.Thread(target=s.touch, args=(young,))
        leader.start()
        assert fs.entered.wait(10)
        if remove == "purge":
            remover = threading.Thread(target=s.purge, args=(old,))
        else:
            remover = threading.Thread(target=s.cleanup_old_sessions, args=(1,))
        remover.start()
        deadline = time.monotonic() + 10
        while not s.journal._queue and time.monotonic() < deadline:
            time.sleep(0.001)
        longer = replace(conv, messages=(*conv.messages, message("m1", 1)))
        # After a purge only a save that starts a new session under the id is taken.
        saver = threading.Thread(
            target=s.save_session,
            args=(old, metadata(old, "old"), longer, state(3)),
            kwargs={"reuse_purged": remove == "purge"},
        )
        saver.start()
        time.sleep(0.2)  # time for the save to queue behind the delete, were it allowed to
        fs.release.set()
        for t in (leader, remover, saver):
            t.join(10)
        # The save came after the delete: it is whole, and the session is exactly it.
        assert s.load_session(old)[1:] == (longer, state(3))
        s.close()
        with SessionStore.open(root, snapshots=False) as again:
            assert again.load_session(old)[1:] == (longer, state(3))


def test_threads_saving_one_session_end_as_one_of_the_saves(store: SessionStore) -> None:
    sid = cid = uuid4()
    base = [f"base{i}" for i in range(5)]
    store.save_session(sid, metadata(sid, "t"), conversation(cid, base), state())
    saves: dict[int, tuple[tuple[str, ...], int]] = {}
    seen: list[tuple[tuple[str, ...], int]] = []

    def work(t: int) -> None:
        keys = list(base)
        for i in range(15):
            keys.append(f"t{t}.{i}")
            conv = conversation(cid, keys)
            saves[store.save_session(sid, metadata(sid, f"t{t}"), conv, state(t))] = (
                tuple(keys),
                t,
            )
            _, conv, st_ = store.load_session(sid)
            seen.append((tuple(key_of(m) for m in conv.messages), st_.cursor_position))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(saves) == 90
    # Every load was one whole save, never a mix of two.
    assert set(seen) <= set(saves.values())
    keys, t = saves[max(saves)]
    assert store.load_session(sid)[1:] == (conversation(cid, keys), state(t))


# -- read-only stores ------------------------------------------------------------------------


def disk_state(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every file and directory under ``root`` with its size, mtime and mode."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames, "."]:
            p = os.path.join(dirpath, name)
            st_ = os.stat(p, follow_symlinks=False)
            out[os.path.relpath(p, root)] = (st_.st_size, st_.st_mtime_ns, st_.st_mode)
    return out


def populate(root: Path, sessions: int = 4) -> list[UUID]:
    with SessionStore.open(root, durability="none", segment_size=4096) as s:
        ids = [new_session(s, n_messages=3, last_accessed=PAST) for _ in range(sessions)]
        s.tag(ids[0], "t")
        s.create_checkpoint(ids[0], uuid4(), conversation(uuid4(), ["c"]), state())
        s.delete_session(ids[-1])
    return ids


@pytest.mark.parametrize("snaps", ["with snapshots", "without snapshots", "torn tail"])
def test_a_readonly_store_changes_nothing_on_disk(root: Path, snaps: str) -> None:
    ids = populate(root)
    if snaps != "with snapshots":
        shutil.rmtree(root / "projections")
    if snaps == "torn tail":  # half a record after the last one: only a writer may cut it
        with journal.Journal.open(root, readonly=True) as j:
            active, end = j._segs[-1].path, j._segs[-1].scanned_to
        with open(active, "r+b") as f:
            f.seek(end)
            f.write(b"\x40\x00\x00\x00\x12\x34")
    time.sleep(0.01)  # mtimes of anything written now would differ
    before = disk_state(root)
    with SessionStore.open(root, readonly=True) as r:
        assert len(r.list_sessions()) == 3
        assert r.search_sessions("session")
        sid = ids[0]
        meta, conv, st_ = r.load_session(sid)
        assert meta.tags == ("t",)
        cp = r.list_checkpoints(sid)[0]
        r.load_checkpoint(sid, cp.id)
        r.history()
        r.statistics()
        r.at(1).list_sessions()
        for write in (
            lambda: r.save_session(sid, meta, conv, st_),
            lambda: r.delete_session(sid),
            lambda: r.tag(sid, "x"),
            lambda: r.touch(sid),
            lambda: r.cleanup_old_sessions(max_count=0),
            lambda: r.create_checkpoint(sid, uuid4(), conv, st_),
            # Regression: compaction wrote its new segment file before failing.
            lambda: r.compact(retain=timedelta(0)),
            lambda: r.purge(sid),
        ):
            with pytest.raises(ReadOnlyJournal):
                write()
    assert disk_state(root) == before


def test_a_readonly_compaction_dry_run_creates_no_lock_file(root: Path) -> None:
    populate(root)
    (root / "COMPACT").unlink()
    before = disk_state(root)
    with SessionStore.open(root, readonly=True) as r:
        assert r.compact(retain=timedelta(0), dry_run=True).dry_run
    assert disk_state(root) == before


def test_a_readonly_store_on_a_missing_directory_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(JournalError):
        SessionStore.open(tmp_path / "absent", readonly=True)
    assert not (tmp_path / "absent").exists()


def test_a_readonly_store_sees_a_writers_changes_without_reopening(root: Path) -> None:
    populate(root)
    with (
        SessionStore.open(root, durability="none") as w,
        SessionStore.open(root, readonly=True) as r,
    ):
        n = len(r.list_sessions())
        sid = new_session(w)
        assert len(r.list_sessions()) == n + 1
        w.rename(sid, "seen")
        assert r.get_metadata(sid).title == "seen"


# -- projection snapshots --------------------------------------------------------------------


def answers(s: SessionStore) -> tuple[object, ...]:
    """Everything a reader can ask, for comparing two stores."""
    listing = s.list_sessions()
    loads = [s.load_session(m.id) for m in listing]
    cps = [(cp, s.load_checkpoint(m.id, cp.id)) for m in listing for cp in s.list_checkpoints(m.id)]
    stats = s.statistics()
    return listing, loads, cps, stats, s.search_sessions("t")


def test_reopening_restores_the_snapshot_and_replays_only_the_tail(root: Path) -> None:
    ids = populate(root, sessions=30)
    with SessionStore.open(root) as s:
        assert s._runner.restored_from_snapshot
        assert s._runner.replayed == 0
        want = answers(s)
        last = s.journal.last_seq
    # Another writer appends, then dies without closing (no snapshot of its own).
    crashed = SessionStore.open(root, durability="none")
    for sid in ids[:5]:
        crashed.touch(sid)
    crashed.journal.close()
    with SessionStore.open(root) as s:
        assert s._runner.restored_from_snapshot
        assert s._runner.replayed == 5
        assert s.journal.last_seq == last + 5
        assert answers(s)[0] != want[0]  # the touches are there
    with SessionStore.open(root) as s:
        assert s._runner.replayed == 0


def test_open_replays_nothing_however_long_the_log(root: Path) -> None:
    with SessionStore.open(root, durability="none") as s:
        sid = cid = uuid4()
        keys: list[str] = []
        for i in range(1500):
            keys.append(f"m{i}")
            s.save_session(sid, metadata(sid, "long"), conversation(cid, keys[-3:]), state(i))
            s.touch(sid)
    with SessionStore.open(root) as s:
        assert s._runner.restored_from_snapshot
        assert s._runner.replayed == 0
        assert s.journal.last_seq == 3000
        assert s.load_session(sid)[2] == state(1499)


def _damage(root: Path, how: str, other: Path) -> None:
    snaps = root / "projections"
    if how == "deleted":
        shutil.rmtree(snaps)
    elif how == "one missing":
        (snaps / "stats.snap").unlink()
    elif how == "truncated":
        p = snaps / "index.snap"
        p.write_bytes(p.read_bytes()[:-7])
    elif how == "bit flipped":
        p = snaps / "contents.snap"
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 1
        p.write_bytes(bytes(data))
    elif how == "garbage":
        (snaps / "index.snap").write_bytes(os.urandom(300))
    elif how == "empty":
        (snaps / "contents.snap").write_bytes(b"")
    elif how == "foreign":  # snapshots of another journal, of the same length even
        for p in (other / "projections").iterdir():
            shutil.copy(p, snaps / p.name)
    elif how == "from the future":  # the journal copied back to an earlier state
        for p in snaps.iterdir():
            shutil.copy(p, other / "projections" / p.name)
        shutil.rmtree(root)
        shutil.copytree(other, root)
    elif how == "of different moments":
        shutil.copy(other / "projections" / "index.snap", snaps / "index.snap")
    else:
        raise AssertionError(how)


DAMAGE = [
    "deleted",
    "one missing",
    "truncated",
    "bit flipped",
    "garbage",
    "empty",
    "foreign",
    "from the future",
    "of different moments",
]


@pytest.mark.parametrize("how", DAMAGE)
def test_a_missing_stale_foreign_or_damaged_snapshot_is_ignored_and_rebuilt(
    tmp_path: Path, how: str
) -> None:
    root, other = tmp_path / "store", tmp_path / "other"
    ids = populate(root)
    if how == "foreign":
        populate(other)
    else:  # the same journal, as it was one event ago (and its snapshots then)
        shutil.copytree(root, other)
        with SessionStore.open(root, durability="none") as s:
            s.rename(ids[0], "one more event")
    with SessionStore.open(root, readonly=True, snapshots=False) as ref:
        want = answers(ref)
    _damage(root, how, other)
    if how == "from the future":
        with SessionStore.open(root, readonly=True, snapshots=False) as ref:
            want = answers(ref)
    with SessionStore.open(root) as s:
        assert not s._runner.restored_from_snapshot
        assert s._runner.replayed == s.journal.last_seq
        assert answers(s) == want
    with SessionStore.open(root) as s:  # rebuilt and persisted again
        assert s._runner.restored_from_snapshot
        assert answers(s) == want


def test_an_older_snapshot_of_the_same_journal_is_used_and_the_rest_replayed(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    ids = populate(root)
    old = {p.name: p.read_bytes() for p in (root / "projections").iterdir()}
    with SessionStore.open(root, durability="none") as s:
        for sid in ids[:3]:
            s.set_favorite(sid, True)
        want = answers(s)
    for name, data in old.items():
        (root / "projections" / name).write_bytes(data)
    with SessionStore.open(root) as s:
        assert s._runner.restored_from_snapshot
        assert s._runner.replayed == 3
        assert answers(s) == want


def test_a_snapshot_of_another_projection_version_is_rebuilt(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    populate(root)
    monkeypatch.setattr(SessionIndex, "version", SessionIndex.version + 1)
    with SessionStore.open(root) as s:
        assert not s._runner.restored_from_snapshot
        assert len(s.list_sessions()) == 3


def test_a_store_without_snapshots_never_writes_them(root: Path) -> None:
    with SessionStore.open(root, durability="none", snapshots=False) as s:
        new_session(s)
    assert not (root / "projections").exists()
