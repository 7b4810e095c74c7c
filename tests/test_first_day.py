"""What a user's agent meets on its first day: a save writes only what its
caller changed, counts come from the messages, a purged session stays purged,
a conversation of another id is refused (issue 14).

The agent here is the usual one: it builds its metadata from what it last
saved, saves once a turn, and never reloads it; meanwhile a person (another
store, another process) tags, stars, renames and purges.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st
from msgspec.structs import replace

from journal import (
    ConversationSnapshot,
    InvalidArgument,
    SessionNotFound,
    SessionPurged,
    SessionState,
    SessionStore,
)
from journal._merge import merge_metadata
from tests._store_worker import conversation, message, metadata
from tests.conftest import ROOT, child_env


@pytest.fixture
def store(root: Path) -> Iterator[SessionStore]:
    with SessionStore.open(root, durability="none") as s:
        yield s


def keys(sid: UUID, n: int) -> list[str]:
    return [f"{sid}/{i}" for i in range(n)]


class Agent:
    """An agent that saves one session a turn from the metadata it built itself."""

    def __init__(self, store: SessionStore, title: str = "agent's title") -> None:
        self.store = store
        self.sid = uuid4()
        self.meta = metadata(self.sid, title, tags=["agent"])
        self.n = 0

    def turn(self, **changes: Any) -> int:
        self.n += 2
        self.meta = replace(self.meta, **changes)
        conv = conversation(self.sid, keys(self.sid, self.n))
        return self.store.save_session(self.sid, self.meta, conv, SessionState())


# -- a save writes only what its caller changed ----------------------------------------------


def test_a_save_keeps_the_tags_favorite_and_title_another_store_set_meanwhile(
    root: Path,
) -> None:
    with SessionStore.open(root) as agent_store, SessionStore.open(root) as cli:
        agent = Agent(agent_store)
        agent.turn()
        cli.tag(agent.sid, "bug")
        cli.set_favorite(agent.sid, True)
        cli.rename(agent.sid, "renamed")
        agent.turn()  # the agent's metadata knows nothing of the three
        for s in (agent_store, cli):
            got = s.get_metadata(agent.sid)
            assert (got.title, got.tags, got.is_favorite) == ("renamed", ("agent", "bug"), True)
            assert got.message_count == 4


def test_a_save_keeps_what_another_process_changed_meanwhile(root: Path) -> None:
    with SessionStore.open(root) as store:
        agent = Agent(store)
        agent.turn()
        run_child(
            root,
            f"s.tag({str(agent.sid)!r}, 'bug'); s.set_favorite({str(agent.sid)!r}, True); "
            f"s.rename({str(agent.sid)!r}, 'renamed')",
        )
        agent.turn(current_mode="build")
        got = store.get_metadata(agent.sid)
    assert (got.title, got.tags, got.is_favorite) == ("renamed", ("agent", "bug"), True)
    assert got.current_mode.value == "build"
    with SessionStore.open(root, readonly=True, snapshots=False) as replayed:
        assert replayed.get_metadata(agent.sid) == got


def test_a_field_both_changed_takes_the_later_save_and_its_audit_line_says_so(
    store: SessionStore,
) -> None:
    agent = Agent(store)
    agent.turn()
    store.rename(agent.sid, "by hand")
    store.untag(agent.sid, "agent")
    store.tag(agent.sid, "bug")
    agent.turn(title="by the agent", tags=("agent", "wip"))
    got = store.get_metadata(agent.sid)
    # The title: both changed it, the save is later. The tags merge as a set:
    # the agent added "wip" and left "agent" as it was, so the hand's removal
    # of "agent" and addition of "bug" stay.
    assert got.title == "by the agent"
    assert got.tags == ("bug", "wip")
    line = store.history(agent.sid)[-1].summary
    assert line.startswith("+2 messages (4 total); ")
    assert "title 'by the agent' (overrode a concurrent change)" in line
    assert "tags [bug, wip]" in line


def test_history_names_every_metadata_field_a_save_changes(store: SessionStore) -> None:
    agent = Agent(store)
    agent.turn()
    agent.turn(title="t2", is_favorite=True, model="o3", tags=("agent", "x"))
    agent.turn()  # only the messages
    lines = [h.summary for h in store.history(agent.sid)]
    assert lines[0] == "saved in full (2 messages)"
    assert lines[1] == (
        "+2 messages (4 total); title 't2', tags [agent, x], is_favorite True, "
        "model 'o3', turn_count 4"
    )
    assert lines[2] == "+2 messages (6 total); turn_count 6"


def test_a_full_save_of_a_known_session_names_what_it_changed(root: Path) -> None:
    with SessionStore.open(root, max_chain=1) as s:  # every save is a full one
        agent = Agent(s)
        agent.turn()
        agent.turn(title="t2")
        assert s.history(agent.sid)[-1].summary == (
            "saved in full (4 messages); title 't2', turn_count 4"
        )


def test_without_its_own_base_a_save_merges_against_the_last_saved_metadata(
    root: Path,
) -> None:
    # A restarted agent saves from the metadata it had built before: what was
    # changed since that save (the tag) stays.
    with SessionStore.open(root) as s:
        agent = Agent(s)
        agent.turn()
        s.tag(agent.sid, "bug")
    with SessionStore.open(root) as again:
        agent.store = again
        agent.turn()
        assert again.get_metadata(agent.sid).tags == ("agent", "bug")


def test_a_load_is_the_callers_base_too(store: SessionStore) -> None:
    agent = Agent(store)
    agent.turn()
    store.tag(agent.sid, "bug")
    agent.meta = store.get_metadata(agent.sid)  # the agent picks up the tag...
    agent.turn(tags=("agent",))  # ...and then removes it: that is its change
    assert store.get_metadata(agent.sid).tags == ("agent",)


class _Announced:
    """A stripe lock that says when a thread is about to wait for it."""

    def __init__(self, lock: Any) -> None:
        self.lock = lock
        self.waiting = threading.Event()

    def acquire(self, *args: Any) -> bool:
        self.waiting.set()
        return bool(self.lock.acquire(*args))

    def release(self) -> None:
        self.lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def test_of_two_saves_of_one_session_through_one_store_the_later_one_is_written_whole(
    store: SessionStore,
) -> None:
    # Two tasks of one agent save the session through one store. A save that
    # waits for the session's lock must merge against the store's base as it
    # is when it gets the lock: taken before, the other task's save (made
    # meanwhile through this very store) would read as another writer's change
    # and its title would stay beside this save's messages.
    sid = uuid4()
    store.save_session(sid, metadata(sid, "t"), conversation(sid, keys(sid, 2)), SessionState())
    stripe = _Announced(store._lock_for(sid))
    store._locks[store._locks.index(stripe.lock)] = stripe  # type: ignore[call-overload]
    with stripe.lock:
        stripe.waiting.clear()
        later = threading.Thread(
            target=store.save_session,
            args=(sid, metadata(sid, "t"), conversation(sid, keys(sid, 6)), SessionState()),
        )
        later.start()
        assert stripe.waiting.wait(timeout=60)
        # The other task's save, which got the lock first.
        store.save_session(
            sid, metadata(sid, "other"), conversation(sid, keys(sid, 4)), SessionState()
        )
    later.join()
    meta, conv, _ = store.load_session(sid)
    assert (meta.title, len(conv.messages)) == ("t", 6)


WIRE_VALUES = st.sampled_from([0, 1, 2])


@given(
    base=st.dictionaries(st.sampled_from(["ti", "md", "tc"]), WIRE_VALUES),
    mine=st.fixed_dictionaries({"ti": WIRE_VALUES, "md": WIRE_VALUES, "tc": WIRE_VALUES}),
    held=st.fixed_dictionaries({"ti": WIRE_VALUES, "md": WIRE_VALUES, "tc": WIRE_VALUES}),
)
def test_a_merge_keeps_each_field_of_whoever_changed_it(
    base: dict[str, int], mine: dict[str, int], held: dict[str, int]
) -> None:
    m = merge_metadata(base, mine, held)
    for k in mine:
        b = base.get(k, held[k])
        if mine[k] == b:
            assert m.meta[k] == held[k]  # the caller did not change it
        else:
            assert m.meta[k] == mine[k]  # the caller did: its value
        assert (k in m.overridden) == (b != mine[k] and b != held[k] != mine[k])
        assert (k in m.changed) == (m.meta[k] != held[k])


# -- counts come from what is stored ---------------------------------------------------------


def test_message_count_and_turn_count_are_the_conversations(store: SessionStore) -> None:
    sid = uuid4()
    conv = conversation(sid, keys(sid, 120))  # turn indexes 0..119
    stale = replace(metadata(sid, "t"), message_count=4, turn_count=2)
    store.save_session(sid, stale, conv, SessionState())
    got = store.get_metadata(sid)
    assert (got.message_count, got.turn_count) == (120, 120)
    one = ConversationSnapshot(sid, [message("only")])  # turn index 0: says nothing
    wrong = replace(metadata(sid, "t"), message_count=99, turn_count=7)
    store.save_session(sid, wrong, one, SessionState())
    assert (store.get_metadata(sid).message_count, store.get_metadata(sid).turn_count) == (1, 7)
    assert [m.message_count for m in store.list_sessions()] == [1]


# -- a mismatched id is refused -------------------------------------------------------------


def test_a_conversation_of_another_id_is_refused_and_nothing_written(
    store: SessionStore,
) -> None:
    sid = uuid4()
    before = store.journal.last_seq
    with pytest.raises(InvalidArgument, match=r"conversation\.id .* does not match session id"):
        store.save_session(
            sid, metadata(sid, "t"), conversation(uuid4(), ["m"]), SessionState()
        )
    assert store.journal.last_seq == before


def test_tag_and_untag_without_tags_are_refused(store: SessionStore) -> None:
    agent = Agent(store)
    agent.turn()
    before = store.journal.last_seq
    for call in (store.tag, store.untag):
        with pytest.raises(InvalidArgument, match="at least one tag"):
            call(agent.sid)
    assert store.journal.last_seq == before


# -- purge leaves a tombstone, delete does not -----------------------------------------------


def test_a_save_to_a_purged_session_is_refused_naming_the_purge(root: Path) -> None:
    with SessionStore.open(root) as s:
        agent = Agent(s)
        agent.turn()
        purge_seq = s.purge(agent.sid).purge_seq
        before = s.journal.last_seq
        with pytest.raises(SessionPurged, match=f"was purged \\(seq {purge_seq}, ") as info:
            agent.turn()
        assert (info.value.session_id, info.value.purge_seq) == (agent.sid, purge_seq)
        assert isinstance(info.value, SessionNotFound)
        assert s.journal.last_seq == before
        for call in (s.get_metadata, s.load_session, lambda x: s.tag(x, "t")):
            with pytest.raises(SessionPurged):
                call(agent.sid)
    # The tombstone outlives a reopen (from the snapshot, and replayed) and a compaction.
    for snapshots in (True, False):
        with SessionStore.open(root, snapshots=snapshots) as s, pytest.raises(SessionPurged):
            s.save_session(agent.sid, agent.meta, conversation(agent.sid, []), SessionState())
    with SessionStore.open(root, segment_size=4096) as s:
        s.compact(timedelta(0), seal=True)
        with pytest.raises(SessionPurged):
            s.save_session(agent.sid, agent.meta, conversation(agent.sid, []), SessionState())


def test_reuse_purged_starts_a_new_session_under_a_purged_id(store: SessionStore) -> None:
    agent = Agent(store)
    agent.turn()
    agent.turn()
    store.purge(agent.sid)
    conv = conversation(agent.sid, ["fresh"])
    store.save_session(agent.sid, agent.meta, conv, SessionState(), reuse_purged=True)
    assert store.load_session(agent.sid)[1] == conv
    store.delete_session(agent.sid)  # gone again, but only deleted: no tombstone
    store.save_session(agent.sid, agent.meta, conv, SessionState())
    assert store.session_exists(agent.sid)


def test_a_save_after_a_delete_creates_the_session_again(store: SessionStore) -> None:
    agent = Agent(store)
    agent.turn()
    store.delete_session(agent.sid)
    agent.turn()
    meta, conv, _ = store.load_session(agent.sid)
    assert meta.message_count == len(conv.messages) == 4
    assert store.history(agent.sid)[-1].summary == "saved in full (4 messages)"


CHILD = """
import json, sys
from journal import SessionStore
s = SessionStore.open(sys.argv[1])
{code}
s.close()
"""


def run_child(root: Path, code: str) -> None:
    subprocess.run(
        [sys.executable, "-c", CHILD.format(code=code), str(root)],
        check=True,
        env=child_env(),
        cwd=ROOT,
        timeout=60,
    )


WRITER = """
import json, sys
from journal import SessionPurged, SessionState, SessionStore
from tests._store_worker import conversation, metadata
from uuid import UUID
s = SessionStore.open(sys.argv[1])
sid = UUID(sys.argv[2])
meta = metadata(sid, "agent")
n = 0
for line in sys.stdin:
    n += 1
    try:
        conv = conversation(sid, [f"m{i}" for i in range(n)])
        seq = s.save_session(sid, meta, conv, SessionState())
        print(json.dumps({"seq": seq}), flush=True)
    except SessionPurged as exc:
        print(json.dumps({"purged": exc.purge_seq, "message": str(exc)}), flush=True)
s.close()
"""


@pytest.fixture
def writer(root: Path) -> Iterator[tuple[subprocess.Popen[str], UUID]]:
    sid = uuid4()
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root), str(sid)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=ROOT,
    )
    try:
        yield proc, sid
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.stdout.close()


def ask(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("save\n")
    proc.stdin.flush()
    reply: dict[str, Any] = json.loads(proc.stdout.readline())
    return reply


def test_a_running_writer_in_another_process_cannot_bring_a_purged_session_back(
    root: Path, writer: tuple[subprocess.Popen[str], UUID]
) -> None:
    proc, sid = writer
    assert "seq" in ask(proc)
    assert "seq" in ask(proc)
    with SessionStore.open(root) as s:
        report = s.purge(sid)
        reply = ask(proc)  # the agent's next turn, store still open
        assert reply == {"purged": report.purge_seq, "message": reply["message"]}
        assert str(sid) in reply["message"] and "reuse_purged=True" in reply["message"]
        assert not s.session_exists(sid)
        assert all(r.session != sid.bytes or r.seq >= report.purge_seq for r in s.journal.scan())


def test_the_merge_refreshes_under_the_commit_lock_when_another_process_wrote(
    root: Path,
) -> None:
    # The agent merged against the log before another process's tag landed:
    # the check under the commit lock sees the tag and merges again.
    with SessionStore.open(root, max_chain=1) as store:
        agent = Agent(store)
        agent.turn()
        real_sync = store._sync
        calls = 0

        def sync_then_tag() -> None:
            nonlocal calls
            real_sync()
            calls += 1
            if calls == 1:  # after the save's first look at the log
                run_child(root, f"s.tag({str(agent.sid)!r}, 'late')")

        store._sync = sync_then_tag  # type: ignore[method-assign]
        agent.turn()
        store._sync = real_sync  # type: ignore[method-assign]
        assert store.get_metadata(agent.sid).tags == ("agent", "late")



# -- stats: reclaimable is what a compaction would drop --------------------------------------


def test_reclaimable_bytes_are_what_the_dry_run_of_compaction_would_reclaim(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SessionStore.open(root, segment_size=4096, max_chain=4, durability="none") as s:
        agents = [Agent(s) for _ in range(3)]
        for _ in range(12):
            for a in agents:
                a.turn()
        assert s.statistics().reclaimable_bytes == 0  # nothing is a week old yet
        real = time.time_ns
        monkeypatch.setattr(time, "time_ns", lambda: real() + 8 * 86400 * 10**9)
        for step in ("before", "after a purge"):
            stats = s.statistics()
            dry = s.compact(dry_run=True)
            assert stats.reclaimable_bytes == dry.reclaimed_bytes > 0, step
            if step == "before":
                monkeypatch.setattr(time, "time_ns", real)
                s.purge(agents[0].sid)
                monkeypatch.setattr(time, "time_ns", lambda: real() + 8 * 86400 * 10**9)
        assert s.compact().reclaimed_bytes == stats.reclaimable_bytes
        assert s.statistics().reclaimable_bytes == 0


# -- compact says why it did nothing, and can seal the active segment -------------------------


def test_compact_says_why_nothing_was_compacted_and_seal_compacts_the_active_segment(
    store: SessionStore,
) -> None:
    agent = Agent(store)
    for _ in range(5):
        agent.turn()
    report = store.compact(timedelta(0))
    assert report.records_before == 0
    assert "every record is in the active segment" in report.note
    assert "--seal" in report.note
    dry = store.compact(timedelta(0), seal=True, dry_run=True)
    assert (dry.records_before, dry.records_after, dry.note) == (5, 1, "")
    assert store.journal.statistics().segments == 1  # a dry run seals nothing
    done = store.compact(timedelta(0), seal=True)
    assert (done.records_before, done.records_after) == (5, 1)
    assert done.reclaimed_bytes == dry.reclaimed_bytes
    again = store.compact(timedelta(0))
    assert "already compacted" in again.note or "active segment" in again.note
    assert store.load_session(agent.sid)[0].message_count == 10
    week = store.compact()
    assert "newer than the retention window (7d" in week.note or "active" in week.note


# -- papercuts: the library ------------------------------------------------------------------


def test_dir_and_help_of_journal_show_the_public_api_and_no_plumbing() -> None:
    import pydoc

    import journal

    names = dir(journal)
    assert names == sorted(journal.__all__)
    for name in ("SessionStore", "AsyncSessionStore", "recover", "salvage", "PurgeReport"):
        assert name in names
    for plumbing in ("Any", "TYPE_CHECKING", "importlib"):
        assert plumbing not in names
    text = pydoc.render_doc(journal, renderer=pydoc.plaintext)
    assert "SessionStore.open()" in text and "salvage(source, target)" in text


def test_every_async_method_has_a_docstring() -> None:
    import inspect

    from journal import AsyncPointInTimeView, AsyncSessionStore

    for cls in (AsyncSessionStore, AsyncPointInTimeView):
        for name, fn in vars(cls).items():
            if inspect.iscoroutinefunction(fn) and not name.startswith("__"):
                assert fn.__doc__, f"{cls.__name__}.{name}"


def test_public_docstrings_do_not_send_users_to_private_modules() -> None:
    import re

    from journal import AsyncSessionStore, PointInTimeView

    for cls in (SessionStore, AsyncSessionStore, PointInTimeView):
        for name, fn in vars(cls).items():
            doc = getattr(fn, "__doc__", None) or ""
            if not name.startswith("_"):
                assert not re.search(r"journal\._[a-z]", doc), f"{cls.__name__}.{name}"


def test_opening_a_file_as_a_store_says_it_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "passwd"
    f.write_text("root:x:0:0\n")
    for readonly in (False, True):
        with pytest.raises(InvalidArgument, match="is a file, not a directory") as info:
            SessionStore.open(f, readonly=readonly)
        assert "disk space" not in str(info.value)
    assert f.read_text() == "root:x:0:0\n"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.anyio
async def test_the_async_opener_is_awaitable_and_an_async_context_manager(root: Path) -> None:
    from journal import AsyncSessionStore

    async with AsyncSessionStore.open(root, durability="none") as s:
        agent_sid = uuid4()
        await s.save_session(
            agent_sid, metadata(agent_sid, "t"), conversation(agent_sid, ["m"]), SessionState()
        )
    assert s.sync._closed  # closed at the block's end
    s = await AsyncSessionStore.open(root)
    try:
        assert await s.session_exists(agent_sid)
    finally:
        await s.close()
    async with await AsyncSessionStore.open(root) as again:  # the old spelling still works
        assert await again.session_exists(agent_sid)


def test_an_async_store_built_from_a_path_is_refused_pointing_to_open(root: Path) -> None:
    from journal import AsyncSessionStore

    with pytest.raises(InvalidArgument, match=r"AsyncSessionStore\.open"):
        AsyncSessionStore(str(root))  # type: ignore[arg-type]


# -- papercuts: the command line -------------------------------------------------------------


def test_a_root_that_does_not_exist_is_named_and_root_blamed(tmp_path: Path) -> None:
    from tests.test_cli import agcx, fails

    missing = tmp_path / "nonexistent"
    fails(agcx("ls", root=missing), 1, f"{missing} does not exist", "check --root")
    assert "set AGCX_ROOT" not in agcx("ls", root=missing).stderr


def test_ls_at_a_time_before_the_journal_existed_says_so(root: Path) -> None:
    from tests.test_cli import agcx

    with SessionStore.open(root) as s:
        Agent(s).turn()
    time.sleep(0.01)
    r = agcx("ls", "--at", "1h30m ago", root=root)  # a compound relative time, too
    assert r.returncode == 0, r.stderr
    assert "before the journal's first event" in r.stdout
    assert "seq 0" not in r.stdout


def test_relative_times_and_durations_may_add_up_units() -> None:
    from datetime import UTC, datetime

    from tools._when import parse_duration, parse_when

    now = datetime(2024, 5, 1, tzinfo=UTC)
    assert parse_when("1h30m ago", now) == parse_when("1.5h ago", now) == now - timedelta(
        minutes=90
    )
    assert parse_when("1d 12h ago", now) == now - timedelta(hours=36)
    assert parse_duration("1d12h") == timedelta(hours=36)


def test_stats_labels_oldest_and_newest_as_creation_times(root: Path) -> None:
    from tests.test_cli import agcx

    with SessionStore.open(root) as s:
        Agent(s).turn()
    r = agcx("stats", root=root)
    assert r.returncode == 0, r.stderr
    assert "oldest created" in r.stdout and "newest created" in r.stdout
    assert "reclaimable by `agcx compact` (7d retention)" in r.stdout


def test_log_follow_starts_from_the_last_ten_events(root: Path) -> None:
    from tests.test_cli import agcx

    with SessionStore.open(root) as s:
        agent = Agent(s)
        for _ in range(15):
            agent.turn()
    r = agcx("log", "--follow", "--json", "--timeout", "0.2", root=root)
    assert r.returncode == 0, r.stderr
    assert [json.loads(x)["seq"] for x in r.stdout.splitlines()] == list(range(6, 16))
    r = agcx("log", "--follow", "--json", "--timeout", "0.2", "--since", "seq:0", root=root)
    assert len(r.stdout.splitlines()) == 15


def test_compact_and_purge_print_reports_like_the_other_commands(root: Path) -> None:
    from tests.test_cli import agcx

    with SessionStore.open(root) as s:
        agent = Agent(s)
        for _ in range(4):
            agent.turn()
    r = agcx("compact", "--retain", "0s", root=root)
    assert r.returncode == 0, r.stderr
    assert "nothing to compact: every record is in the active segment" in r.stdout
    assert "--seal" in r.stdout
    r = agcx("compact", "--seal", "--retain", "0s", root=root)
    assert r.returncode == 0, r.stderr
    assert "4 -> 1 (folded)" in r.stdout and "reclaimed" in r.stdout
    for raw in ("dry run", "True", "e-05", "seconds"):
        assert raw not in r.stdout
    r = agcx("purge", str(agent.sid), "--yes", root=root)
    assert r.returncode == 0, r.stderr
    assert 'purged "agent\'s title"' in r.stdout
    assert "derived file" in r.stdout and ".snap" not in r.stdout
    assert "SessionPurged" in r.stdout


def test_a_legacy_session_with_its_own_conversation_id_saves_back_with_it(
    store: SessionStore,
) -> None:
    from journal._import import session_saved_entry

    sid, cid = uuid4(), uuid4()  # the legacy store gave conversations ids of their own
    conv = conversation(cid, ["old"])
    store._append([session_saved_entry(metadata(sid, "imported"), conv, SessionState())])
    meta, loaded, state = store.load_session(sid)
    longer = replace(loaded, messages=(*loaded.messages, message("new", 1)))
    store.save_session(sid, meta, longer, state)  # its own id: taken
    assert store.load_session(sid)[1] == longer
    with pytest.raises(InvalidArgument, match="does not match session id"):
        store.save_session(sid, meta, replace(longer, id=uuid4()), state)


def test_an_append_cannot_bring_a_purged_session_back_either(store: SessionStore) -> None:
    # The Agents SDK session appends, creating the session when it is missing.
    agent = Agent(store)
    agent.turn()
    store.purge(agent.sid)
    before = store.journal.last_seq
    with pytest.raises(SessionPurged):
        store.append_messages(agent.sid, [message("again")], metadata=agent.meta)
    assert store.journal.last_seq == before
