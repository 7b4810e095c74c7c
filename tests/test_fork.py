"""Forks, truncations and appends: one small event each, whatever the session's size.

A fork starts as its source's first N messages and goes its own way; loads
follow the reference into the source's records; compaction, purge,
point-in-time views and recovery keep every fork whole. A property test
drives random histories of saves, appends, pops, forks, deletes,
compactions and purges against an oracle (a dict of lists).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import anyio
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from journal import (
    AsyncSessionStore,
    InvalidArgument,
    SessionNotFound,
    SessionState,
    SessionStore,
    recover,
)
from journal._events import EventType
from tests._store_worker import conversation, key_of, message, metadata


@pytest.fixture
def store(root: Path) -> Iterator[SessionStore]:
    with SessionStore.open(root, durability="none", segment_size=16 << 10) as s:
        yield s


def keys(s: SessionStore, sid: UUID) -> list[str]:
    return [key_of(m) for m in s.load_session(sid)[1].messages]


def save(s: SessionStore, sid: UUID, ks: list[str], title: str = "a session") -> None:
    """Save ``ks`` as the session's messages, in the conversation it has (as an
    agent that loaded it does: a fork's conversation id is its source's)."""
    cid = s.load_session(sid)[1].id if s.session_exists(sid) else sid
    s.save_session(sid, metadata(sid, title), conversation(cid, ks), s_state())


def s_state() -> SessionState:
    return SessionState(cursor_position=0, active_panel="chat")


def records_of(s: SessionStore, etype: EventType) -> list[int]:
    return [r.seq for r in s.journal.scan() if r.event_type == etype]


def test_a_pop_or_a_clear_is_one_small_record_whatever_the_sessions_size(
    store: SessionStore,
) -> None:
    sizes = []
    for n in (3, 300):
        sid = uuid4()
        save(store, sid, [f"m{i}" * 200 for i in range(n)])
        store.pop_message(sid)
        store.truncate_session(sid, 0)
        sizes += [r.size for r in list(store.journal.scan())[-2:]]
    assert all(r < 160 for r in sizes), sizes


def test_a_fork_is_one_small_record_whatever_the_sources_size(store: SessionStore) -> None:
    small, big = uuid4(), uuid4()
    save(store, small, ["a"])
    save(store, big, [f"m{i}" * 200 for i in range(300)])
    sizes = []
    for src in (small, big):
        fork = store.fork_session(src)
        [rec] = [r for r in store.journal.scan() if r.session == fork.bytes]
        assert rec.event_type == EventType.SESSION_FORKED
        sizes.append(rec.size)
    assert max(sizes) < 400
    assert abs(sizes[0] - sizes[1]) < 16  # the same bytes: only the title differs


def test_a_fork_starts_as_the_sources_first_messages_and_goes_its_own_way(
    store: SessionStore,
) -> None:
    src = uuid4()
    save(store, src, ["a", "b", "c", "d"])
    whole = store.fork_session(src, title="whole")
    half = store.fork_session(src, at_message=2)
    assert keys(store, whole) == ["a", "b", "c", "d"]
    assert keys(store, half) == ["a", "b"]
    assert store.get_metadata(whole).title == "whole"
    assert store.get_metadata(half).title == "a session (fork)"
    assert store.get_metadata(half).message_count == 2
    # Each goes its own way: saves to one never show in the others.
    save(store, half, ["a", "b", "x"])
    save(store, src, ["a", "b", "c", "d", "e"])
    assert keys(store, half) == ["a", "b", "x"]
    assert keys(store, src) == ["a", "b", "c", "d", "e"]
    assert keys(store, whole) == ["a", "b", "c", "d"]
    # The fork's save was a delta on top of the source's records.
    last = list(store.journal.scan())[-2]
    assert last.session == half.bytes
    assert last.event_type == EventType.SESSION_SAVED
    ev = store.journal.decode(last)
    assert ev["base"] == 2 and ev["n"] == 3


def test_fork_arguments_are_checked(store: SessionStore) -> None:
    src = uuid4()
    save(store, src, ["a"])
    with pytest.raises(SessionNotFound):
        store.fork_session(uuid4())
    with pytest.raises(InvalidArgument, match="past the end"):
        store.fork_session(src, at_message=2)
    with pytest.raises(InvalidArgument):
        store.fork_session(src, at_message=-1)
    with pytest.raises(InvalidArgument, match="an id of its own"):
        store.fork_session(src, src)
    other = uuid4()
    save(store, other, ["z"])
    with pytest.raises(InvalidArgument, match="already exists"):
        store.fork_session(src, other)
    assert records_of(store, EventType.SESSION_FORKED) == []


def test_the_audit_trail_says_where_a_fork_came_from(store: SessionStore) -> None:
    src = uuid4()
    save(store, src, ["a", "b"])
    fork = store.fork_session(src, at_message=1)
    [entry] = store.history(fork)
    assert entry.event == "SessionForked"
    assert entry.summary == f"forked from {src.hex[:8]} at message 1"
    assert store.fork_origin(fork) == (src, 1, entry.seq)
    assert store.fork_origin(src) is None


def test_a_fork_outlives_its_sources_deletion_and_compaction(root: Path) -> None:
    src = uuid4()
    with SessionStore.open(root, durability="none", segment_size=4096) as s:
        save(s, src, [f"m{i}" for i in range(20)])
        fork = s.fork_session(src, at_message=5)
        save(s, fork, [*[f"m{i}" for i in range(5)], "own"])
        s.delete_session(src)
        for i in range(40):  # fill segments so the fork's are sealed
            save(s, uuid4(), [f"filler {i}" * 20])
        s.compact(timedelta(0))
        assert keys(s, fork) == [*[f"m{i}" for i in range(5)], "own"]
        assert s.fork_origin(fork) is not None
    with SessionStore.open(root, durability="none") as s:
        assert keys(s, fork) == [*[f"m{i}" for i in range(5)], "own"]
        assert s.fork_origin(fork) is not None


def test_purging_the_source_gives_each_fork_its_own_copy_first(store: SessionStore) -> None:
    src = uuid4()
    save(store, src, ["secret", "b", "c"])
    a = store.fork_session(src, at_message=2)
    b = store.fork_session(a)  # a fork of a fork reads the source's records too
    before = store.journal.last_seq
    store.purge(src)
    assert keys(store, a) == ["secret", "b"]
    assert keys(store, b) == ["secret", "b"]
    # No record of the source is left; each fork got one full save.
    assert not any(
        r.session == src.bytes
        for r in store.journal.scan()
        if r.event_type != EventType.SESSION_PURGED
    )
    own = [
        r
        for r in store.journal.scan()
        if r.seq > before and r.event_type == EventType.SESSION_SAVED
    ]
    assert sorted(r.session for r in own) == sorted([a.bytes, b.bytes])
    assert store.fork_origin(b) is not None


def test_point_in_time_views_and_recovery_before_and_after_a_fork(
    store: SessionStore, tmp_path: Path
) -> None:
    src = uuid4()
    save(store, src, ["a", "b", "c"])
    before = store.journal.last_seq
    fork = store.fork_session(src, at_message=1)
    save(store, fork, ["a", "z"])
    save(store, src, ["a", "b", "c", "d"])
    after = store.journal.last_seq
    assert not store.at(before).session_exists(fork)
    view = store.at(after)
    assert [key_of(m) for m in view.load_session(fork)[1].messages] == ["a", "z"]
    assert view.fork_origin(fork) is not None
    for point, want in ((before, None), (after, ["a", "z"])):
        out = tmp_path / f"restored-{point}"
        recover(store.root, out, at=point)
        with SessionStore.open(out) as r:
            assert (keys(r, fork) if r.session_exists(fork) else None) == want
            assert keys(r, src) == (["a", "b", "c"] if point == before else ["a", "b", "c", "d"])


def test_truncate_pop_and_append_are_one_event_each(store: SessionStore) -> None:
    sid = uuid4()
    save(store, sid, ["a", "b", "c"])
    n = store.journal.last_seq
    assert store.pop_message(sid) is not None
    assert keys(store, sid) == ["a", "b"]
    store.append_messages(sid, [message("x"), message("y")])
    assert keys(store, sid) == ["a", "b", "x", "y"]
    store.truncate_session(sid, 0)
    assert keys(store, sid) == []
    assert store.pop_message(sid) is None
    store.append_messages(sid, [message("again")])
    assert keys(store, sid) == ["again"]
    assert store.get_metadata(sid).message_count == 1
    assert store.journal.last_seq - n == 4  # pop, append, truncate, append
    summaries = [e.summary for e in store.history(sid)]
    assert "truncated to 2 messages" in summaries
    assert "cleared (0 messages)" in summaries
    with pytest.raises(InvalidArgument):
        store.truncate_session(sid, 5)


def test_append_creates_a_session_only_from_metadata(store: SessionStore) -> None:
    sid = uuid4()
    with pytest.raises(SessionNotFound):
        store.append_messages(sid, [message("a")])
    store.append_messages(sid, [message("a")], metadata=metadata(sid, "new"))
    store.append_messages(sid, [message("b")], metadata=metadata(sid, "ignored"))
    assert keys(store, sid) == ["a", "b"]
    assert store.get_metadata(sid).title == "new"


def test_the_async_store_forks_truncates_and_appends(root: Path) -> None:
    async def main() -> None:
        async with await AsyncSessionStore.open(root, durability="none") as s:
            src = uuid4()
            await s.append_messages(src, [message("a"), message("b")], metadata=metadata(src, "t"))
            fork = await s.fork_session(src, at_message=1)
            await s.append_messages(fork, [message("c")])
            assert (await s.pop_message(src)) is not None
            await s.truncate_session(fork, 1)
            _, conv, _ = await s.load_session(fork)
            assert [key_of(m) for m in conv.messages] == ["a"]
            assert await s.fork_origin(fork) is not None

    anyio.run(main)


# -- the oracle ------------------------------------------------------------------------------

_OPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["save", "append", "pop", "truncate", "fork", "delete", "compact", "purge"]
        ),
        st.integers(0, 5),
        st.integers(0, 8),
    ),
    min_size=4,
    max_size=40,
)


@settings(max_examples=60)
@given(ops=_OPS)
def test_random_histories_with_forks_answer_as_the_oracle_says(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int, int]]
) -> None:
    root = tmp_path_factory.mktemp("oracle")
    oracle: dict[UUID, list[str]] = {}
    order: list[UUID] = []
    points: list[tuple[int, dict[UUID, list[str]]]] = []
    counter = 0
    with SessionStore.open(root, durability="none", segment_size=4096) as s:
        for op, pick, n in ops:
            counter += 1
            live = [x for x in order if x in oracle]
            target = live[pick % len(live)] if live else None
            if op == "save" or target is None:
                sid = target if (target is not None and pick % 2) else uuid4()
                ks = [f"{counter}.{i} " + "x" * 150 for i in range(n)]
                if sid in oracle and pick % 3 == 0:
                    ks = oracle[sid] + ks  # an extending save: a delta
                save(s, sid, ks)
                oracle[sid] = ks
                if sid not in order:
                    order.append(sid)
            elif op == "append":
                new = [f"{counter}.{i} " + "y" * 150 for i in range(n)]
                s.append_messages(target, [message(k) for k in new])
                oracle[target] = oracle[target] + new
            elif op == "pop":
                got = s.pop_message(target)
                want = oracle[target].pop() if oracle[target] else None
                assert (key_of(got) if got else None) == want
            elif op == "truncate":
                keep = min(n, len(oracle[target]))
                s.truncate_session(target, keep)
                oracle[target] = oracle[target][:keep]
            elif op == "fork":
                at = None if n == 8 else min(n, len(oracle[target]))
                fork = s.fork_session(target, at_message=at)
                oracle[fork] = list(oracle[target] if at is None else oracle[target][:at])
                order.append(fork)
            elif op == "delete":
                s.delete_session(target)
                del oracle[target]
            elif op == "compact":
                report = s.compact(timedelta(0))
                event(f"compaction kept {min(report.records_after, 1)}+ records")
            elif op == "purge":
                s.purge(target)
                del oracle[target]
            assert {m.id for m in s.list_sessions()} == set(oracle)
            if op == "purge":
                points.clear()  # views before a purge no longer hold the purged session
            points.append((s.journal.last_seq, {k: list(v) for k, v in oracle.items()}))
        for sid, want in oracle.items():
            assert keys(s, sid) == want
            assert s.get_metadata(sid).message_count == len(want)
        # Point-in-time views (from the horizon on) answer as the oracle did then.
        horizon = s.statistics().horizon_seq
        for seq, then in [p for p in points if p[0] >= horizon][-4:]:
            view = s.at(seq)
            assert {m.id for m in view.list_sessions()} == set(then)
            for sid, want in then.items():
                assert [key_of(m) for m in view.load_session(sid)[1].messages] == want
        s.compact(timedelta(0))
        for sid, want in oracle.items():
            assert keys(s, sid) == want
    with SessionStore.open(root, durability="none", snapshots=False) as s:
        for sid, want in oracle.items():
            assert keys(s, sid) == want


# -- the command line ------------------------------------------------------------------------


def cli(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> Any:
    from tools.cli import main

    capsys.readouterr()
    assert main(["--root", str(root), *args, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_agcx_fork_show_and_log_say_where_a_fork_came_from(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = uuid4()
    with SessionStore.open(root, durability="none") as s:
        save(s, src, ["a", "b", "c"])
    out = cli(capsys, root, "fork", src.hex[:8], "--at-message", "2", "--title", "try B")
    fork = UUID(out["session"])
    assert out["source"] == str(src)
    shown = cli(capsys, root, "show", fork.hex[:8])
    assert shown["forked_from"]["session"] == str(src)
    assert shown["forked_from"]["at_message"] == 2
    assert shown["metadata"]["title"] == "try B"
    assert len(shown["conversation"]["messages"]) == 2
    log = cli(capsys, root, "log", "--session", fork.hex[:8])
    assert [e["event"] for e in log["events"]] == ["SessionForked"]
    from tools.cli import main

    assert main(["--root", str(root), "fork", src.hex[:8], "--at-message", "9"]) == 2
    assert "past the end" in capsys.readouterr().err


# -- power loss during a purge of a fork's source --------------------------------------------

_SECRET = "ONLY-IN-THE-SOURCE-41c9"


def test_power_loss_at_any_step_of_purging_a_forks_source_leaves_the_fork_whole(
    tmp_path: Path,
) -> None:
    from tests.faultfs import CrashState, HarnessFS, enumerate_crash_states, report_figures
    from tests.test_compact import _decompressed, answers

    victim, fork, fork2, other = (UUID(int=i) for i in (1, 2, 3, 4))
    expected: dict[str, Any] = {}

    def setup(base: Path) -> None:
        with SessionStore.open(base / "j", segment_size=4096) as s:
            save(s, other, ["unrelated " * 20])
            save(s, victim, ["shared " * 30, f"{_SECRET} " * 3])
            s.fork_session(victim, fork, at_message=1)
            save(s, fork, ["shared " * 30, "the fork's own"])
            s.fork_session(fork, fork2)
            s.journal.seal_active()
            save(s, other, ["unrelated " * 20, "after"])
            expected.update(
                {k: v for k, v in answers(s).items() if str(victim) not in k and k != "list"}
            )

    def workload(base: Path, fs: HarnessFS) -> None:
        with SessionStore.open(base / "j", segment_size=4096, fs=fs) as s:
            s.purge(victim)
            fs.ack("purged")

    def check(base: Path, state: CrashState) -> None:
        root = base / "j"
        with SessionStore.open(root, segment_size=4096) as s:  # a writer: cleans leftovers
            got = {k: v for k, v in answers(s).items() if k != "list"}
            for rec in s.journal.scan():
                s.journal.decode(rec)
        # The forks answer as before in every state; the victim is whole or gone.
        assert {k: v for k, v in got.items() if str(victim) not in k} == expected
        if "purged" in state.acked:
            assert not any(str(victim) in k for k in got)
            for f in root.rglob("*"):
                if f.is_file():
                    data = f.read_bytes()
                    assert _SECRET.encode() not in data + _decompressed(data), f

    report = enumerate_crash_states(workload, check, tmp_path / "run", setup=setup, cap=60)
    report_figures("crash: purge of a fork's source", report.as_dict())
    assert report.checked > 30


# -- another process writing between the read and the commit ---------------------------------


def _interleave(
    monkeypatch: pytest.MonkeyPatch, other: Any, sid: UUID, texts: list[str]
) -> list[int]:
    """Make another store append ``texts`` to ``sid`` right after this store's
    first read of a head: its commit must then notice and read again."""
    import journal._fork as fork_module

    real = fork_module._live_head
    reads: list[int] = []

    def live_head(store: SessionStore, s: UUID) -> tuple[int, int, int]:
        got = real(store, s)
        reads.append(got[1])
        if len(reads) == 1:
            other.append_messages(sid, [message(t) for t in texts])
        return got

    monkeypatch.setattr(fork_module, "_live_head", live_head)
    return reads


@pytest.fixture
def two(root: Path) -> Iterator[tuple[SessionStore, SessionStore]]:
    """Two stores on one directory: each sees the other's commits as foreign."""
    with (
        SessionStore.open(root, durability="none") as a,
        SessionStore.open(root, durability="none") as b,
    ):
        yield a, b


def test_a_pop_never_takes_what_another_process_appended_meanwhile_unseen(
    two: tuple[SessionStore, SessionStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    (a, b), sid = two, uuid4()
    save(a, sid, ["a1", "a2"])
    reads = _interleave(monkeypatch, b, sid, ["b1"])
    popped = a.pop_message(sid)
    assert len(reads) == 2  # the commit saw b's append and a read again
    assert popped is not None and key_of(popped) == "b1"
    assert keys(a, sid) == keys(b, sid) == ["a1", "a2"]


def test_a_fork_of_everything_includes_what_another_process_appended_meanwhile(
    two: tuple[SessionStore, SessionStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    (a, b), sid = two, uuid4()
    save(a, sid, ["a1"])
    reads = _interleave(monkeypatch, b, sid, ["b1", "b2"])
    fork = a.fork_session(sid)
    assert len(reads) == 2
    assert keys(a, fork) == keys(b, fork) == ["a1", "b1", "b2"]
    assert a.get_metadata(fork).message_count == 3


def test_bench_phase_compares_fork_and_pop_with_rewriting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tools import bench

    out = tmp_path / "fork.json"
    assert bench.main(["--fork", "--quick", "--dir", str(tmp_path), "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["fork"]
    assert [r["messages"] for r in rows] == sorted(r["messages"] for r in rows)
    for r in rows:  # sizes, not times: a fork and a pop are small whatever the source
        assert r["fork_bytes"] < 512 and r["pop_bytes"] < 512
        assert r["copy_bytes"] >= r["source_bytes"] > 4 * r["fork_bytes"]
    assert "fork and pop vs rewriting" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == [out]  # the temp dir is gone
