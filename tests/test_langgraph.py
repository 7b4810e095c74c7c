"""JournalSaver, LangGraph's checkpointer on the journal.

LangGraph's own conformance suite (all 81 tests, the optional capabilities
included), a real StateGraph run end to end (interrupt, resume in another
process, history, forking from an old checkpoint), four processes writing
threads into one directory, and what the journal adds: a deleted thread
stays deleted, prune keeps what delta channels need, compaction keeps exactly
what live threads need, and the audit tools see graph events.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

pytest.importorskip("langgraph.checkpoint.conformance")

from langgraph.checkpoint.base import CheckpointTuple
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from journal import EventType, SessionStore, ThreadDeleted, ThreadShared, recover
from journal._graph import thread_key
from journal.integrations.langgraph import JournalSaver
from tests._lg_worker import build
from tests.conftest import PYTHON, ROOT, child_env
from tools._replay import replay
from tools._verify import verify

WORKER = str(ROOT / "tests" / "_lg_worker.py")


@pytest.fixture
def saver(root: Path) -> Iterator[JournalSaver]:
    with JournalSaver(root, durability="none") as s:
        yield s


def config(thread: str, checkpoint_id: str | None = None, ns: str = "") -> dict[str, Any]:
    c: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ns}
    if checkpoint_id is not None:
        c["checkpoint_id"] = checkpoint_id
    return {"configurable": c}


def checkpoint(cid: str, values: dict[str, Any], versions: dict[str, Any]) -> dict[str, Any]:
    return {
        "v": 1, "id": cid, "ts": "2026-12-04T00:00:00+00:00", "channel_values": values,
        "channel_versions": versions, "versions_seen": {}, "updated_channels": None,
    }


def put(
    s: Any, thread: str, cid: str, parent: str | None, values: dict[str, Any],
    versions: dict[str, Any], new: dict[str, Any] | None = None, ns: str = "", **metadata: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = s.put(
        config(thread, parent, ns), checkpoint(cid, values, versions), {"step": 0, **metadata},
        versions if new is None else new,
    )
    return out


def answers(s: Any, thread: str) -> list[tuple[Any, ...]]:
    """Everything a thread answers, for comparing two savers or two moments."""
    out = []
    for t in s.list(config(thread)):
        out.append(_plain(t))
    return out


def _plain(t: CheckpointTuple) -> tuple[Any, ...]:
    ck = t.checkpoint
    return (
        t.config["configurable"]["checkpoint_id"], t.config["configurable"]["checkpoint_ns"],
        ck["channel_values"], ck["channel_versions"], dict(t.metadata),
        t.parent_config["configurable"]["checkpoint_id"] if t.parent_config else None,
        t.pending_writes,
    )


# -- LangGraph's conformance suite --------------------------------------------------------


def test_conformance_suite_passes_in_full_with_every_optional_capability(tmp_path: Path) -> None:
    n = iter(range(100))

    @checkpointer_test(name="JournalSaver")
    async def factory() -> Any:
        async with JournalSaver(tmp_path / f"j{next(n)}") as s:
            yield s

    report = asyncio.run(validate(factory))
    assert report.passed_all(), report.results
    assert report.conformance_level() == "FULL"
    passed = sum(r.tests_passed for r in report.results.values())
    failed = sum(r.tests_failed for r in report.results.values())
    assert (passed, failed) == (81, 0)
    assert all(r.detected for r in report.results.values())


# -- the sync face and the semantics around it ---------------------------------------------


def test_sync_methods_answer_as_langgraphs_in_memory_saver(saver: JournalSaver) -> None:
    memory = InMemorySaver()
    for s in (saver, memory):
        put(s, "a", "1", None, {"x": 1, "y": "keep"}, {"x": 1, "y": 1})
        put(s, "a", "2", "1", {"x": 2, "y": "keep"}, {"x": 2, "y": 1}, {"x": 2}, run_id="r1")
        put(s, "a", "3", "2", {"y": "keep"}, {"x": 3, "y": 1}, {"x": 3})  # x has no value now
        s.put_writes(config("a", "3"), [("x", "w0"), ("__error__", "boom")], "task", "p")
        s.put_writes(config("a", "3"), [("x", "again"), ("__error__", "later")], "task", "p")
        put(s, "a", "9", None, {"x": "sub"}, {"x": 1}, ns="child")
        put(s, "b", "1", None, {"x": "other"}, {"x": 1})
    assert answers(saver, "a") == answers(memory, "a")
    tup = saver.get_tuple(config("a"))
    assert tup is not None and tup.checkpoint["id"] == "3"
    assert tup.checkpoint["channel_values"] == {"y": "keep"}
    # An ordinary write is stored once; a special channel's latest write wins.
    assert tup.pending_writes == [("task", "__error__", "later"), ("task", "x", "w0")]
    assert [t.checkpoint["id"] for t in saver.list(None)] == ["3", "2", "1", "9", "1"]
    assert [t.checkpoint["id"] for t in saver.list(config("a"), before=config("a", "3"))] == [
        "2", "1",
    ]
    assert [t.checkpoint["id"] for t in saver.list(None, filter={"run_id": "r1"})] == ["2"]
    assert [t.checkpoint["id"] for t in saver.list(config("a"), limit=1)] == ["3"]
    assert saver.get_tuple(config("a", "nope")) is None


def test_a_deleted_thread_stays_deleted_when_a_late_put_arrives(root: Path) -> None:
    with JournalSaver(root) as runner, JournalSaver(root) as admin:
        put(runner, "t", "1", None, {"x": 1}, {"x": 1})
        put(runner, "t", "2", "1", {"x": 2}, {"x": 2})
        admin.delete_thread("t")  # another handle: the runner learns of it under the lock
        before = runner.store.journal.last_seq
        with pytest.raises(ThreadDeleted) as err:
            put(runner, "t", "3", "2", {"x": 3}, {"x": 3})
        assert err.value.thread_id == "t"
        with pytest.raises(ThreadDeleted):
            runner.put_writes(config("t", "2"), [("x", 1)], "task")
        assert runner.store.journal.last_seq == before  # nothing written
        assert runner.get_tuple(config("t")) is None and list(admin.list(config("t"))) == []
        # A put without a parent starts the thread afresh.
        put(runner, "t", "10", None, {"x": "new"}, {"x": 5})
        put(runner, "t", "11", "10", {"x": "newer"}, {"x": 6})
        assert [t.checkpoint["id"] for t in admin.list(config("t"))] == ["11", "10"]
    # The tombstone is in the log, not in memory.
    with JournalSaver(root) as reopened, pytest.raises(ThreadDeleted):
        put(reopened, "t", "4", "2", {"x": 4}, {"x": 4})


@pytest.mark.parametrize("handles", [1, 2])
def test_a_run_racing_its_threads_deletion_never_writes_after_the_tombstone(
    root: Path, handles: int
) -> None:
    """A run keeps putting while the thread is deleted beside it (from the same
    handle, or another one: another process's view of the log). The run stops
    with ThreadDeleted, and the log holds no put of the old life after the
    tombstone."""
    started = threading.Event()
    outcome: list[BaseException] = []
    with JournalSaver(root) as runner, JournalSaver(root) as other:
        admin = runner if handles == 1 else other

        def run() -> None:
            parent = None
            try:
                for i in range(10_000):
                    saved = put(runner, "t", f"{i:06d}", parent, {"x": i}, {"x": i + 1})
                    parent = saved["configurable"]["checkpoint_id"]
                    if i == 5:
                        started.set()
            except ThreadDeleted as exc:
                outcome.append(exc)

        worker = threading.Thread(target=run)
        worker.start()
        assert started.wait(60)
        admin.delete_thread("t")
        worker.join(60)
        assert outcome and isinstance(outcome[0], ThreadDeleted)
        j = runner.store.journal
        events = [(r.seq, r.event_type) for r in j.scan() if r.session == thread_key("t")]
        tomb = next(seq for seq, t in events if t == EventType.GRAPH_THREAD_DELETED)
        assert all(t != EventType.GRAPH_CHECKPOINT_PUT for seq, t in events if seq > tomb)
        assert runner.get_tuple(config("t")) is None and other.get_tuple(config("t")) is None


def delta_thread(s: Any, thread: str) -> None:
    """A thread whose channel ``d`` is a delta channel: its value is stored every
    third step (a snapshot), its updates are writes in between."""
    parent = None
    for step in range(8):
        cid = f"{step:02d}"
        values = {"plain": step}
        if step % 3 == 0:
            values["d"] = ["snap", step]
        counters = {"d": [step % 3, step % 3]}
        put(s, thread, cid, parent, values, {"plain": step + 1, "d": step + 1},
            counters_since_delta_snapshot=counters)
        s.put_writes(config(thread, cid), [("d", f"delta{step}")], f"task{step}")
        parent = cid


def test_prune_keeps_what_delta_channels_are_rebuilt_from(saver: JournalSaver) -> None:
    memory = InMemorySaver()
    for s in (saver, memory):
        delta_thread(s, "d")
    want = memory.get_delta_channel_history(config=config("d"), channels=["d", "plain"])
    assert saver.get_delta_channel_history(config=config("d"), channels=["d", "plain"]) == want
    saver.prune(["d"])
    assert [t.checkpoint["id"] for t in saver.list(config("d"))] == ["07"]
    assert saver.get_tuple(config("d", "06")) is None  # kept hidden, never returned
    # The latest's delta channel still rebuilds from its ancestors back to the snapshot.
    got = saver.get_delta_channel_history(config=config("d"), channels=["d"])
    assert got["d"] == want["d"] and got["d"]["seed"] == ["snap", 6]
    with pytest.raises(ValueError):
        saver.prune(["d"], strategy="sometimes")


def test_copy_thread_is_one_small_event_whatever_the_source_size(saver: JournalSaver) -> None:
    parent = None
    for i in range(40):
        put(saver, "big", f"{i:03d}", parent, {"x": "v" * 2000 + str(i)}, {"x": i + 1})
        parent = f"{i:03d}"
    j = saver.store.journal
    size = j.statistics().bytes
    saver.copy_thread("big", "fork")
    assert j.statistics().bytes - size < 200
    assert answers(saver, "fork")[0][2:] == answers(saver, "big")[0][2:]
    put(saver, "fork", "100", "039", {"x": "mine"}, {"x": 100})
    saver.delete_thread("big")
    assert [t.checkpoint["id"] for t in saver.list(config("fork"))][:2] == ["100", "039"]
    assert len(answers(saver, "fork")) == 41


# -- compaction, point in time, the audit tools -------------------------------------------


def test_compaction_keeps_what_live_threads_need_and_drops_the_rest(root: Path) -> None:
    with JournalSaver(root, durability="none", segment_size=64 << 10) as s:
        for t in ("keep", "gone", "pruned", "src"):
            parent = None
            for i in range(12):
                secret = f"SECRET-{t}-{i}" if t == "gone" else f"{t}-{i}"
                put(s, t, f"{i:03d}", parent, {"x": secret * 50, "same": "once"},
                    {"x": i + 1, "same": 1}, {"x": i + 1} if i else None)
                s.put_writes(config(t, f"{i:03d}"), [("x", f"w{i}")], "task")
                parent = f"{i:03d}"
        delta_thread(s, "delta")
        s.copy_thread("src", "fork")
        s.delete_thread("src")
        s.delete_thread("gone")
        s.prune(["pruned", "delta"])
        names = ("keep", "pruned", "fork", "delta")
        before = {t: answers(s, t) for t in names}
        delta = s.get_delta_channel_history(config=config("delta"), channels=["d"])
        stats = s.store.statistics()
        assert stats.graph_threads == 4 and stats.graph_checkpoints == 12 + 1 + 12 + 1
        s.store.journal.seal_active()
        report = s.store.compact(retain=timedelta(0))
        assert report.records_after < report.records_before
        for t in names:
            assert answers(s, t) == before[t], t
        assert s.get_delta_channel_history(config=config("delta"), channels=["d"]) == delta
        with pytest.raises(ThreadDeleted):  # the tombstone survives compaction
            put(s, "gone", "999", "011", {"x": 1}, {"x": 99})
        assert s.get_tuple(config("gone")) is None
    data = b"".join(p.read_bytes() for p in (root / "segments").iterdir())
    assert b"SECRET-gone" not in data and b"SECRET" not in _decompressed(root)
    assert verify(str(root)).intact
    with JournalSaver(root) as reopened:  # rebuilt from the compacted log
        for t in names:
            assert answers(reopened, t) == before[t]


def _decompressed(root: Path) -> bytes:
    with SessionStore.open(root, readonly=True) as st:
        j = st.journal
        return b"".join(json.dumps(j.decode(r), default=repr).encode() for r in j.scan())


def test_point_in_time_recovery_and_the_audit_log_see_graph_threads(
    root: Path, tmp_path: Path
) -> None:
    with JournalSaver(root, durability="none") as s:
        put(s, "t", "1", None, {"x": 1}, {"x": 1})
        at = s.store.journal.last_seq
        put(s, "t", "2", "1", {"x": 2}, {"x": 2})
        s.delete_thread("t")
        log = s.store.history()
        assert [e.event for e in log] == ["GraphCheckpointPut"] * 2 + ["GraphThreadDeleted"]
        assert log[0].summary == "checkpoint 1 of thread 't', 1 new values"
        assert {e.session_id.bytes for e in log if e.session_id} == {thread_key("t")}
        events = s.store.statistics().events_by_type
        assert events["GraphCheckpointPut"] == 2 and events["GraphThreadDeleted"] == 1
    recover(root, tmp_path / "back", at=at)
    with JournalSaver(tmp_path / "back") as back:
        assert [t.checkpoint["id"] for t in back.list(config("t"))] == ["1"]
    assert verify(str(root)).intact
    assert int(EventType.GRAPH_THREAD_PRUNED) == 21


def test_the_index_restored_from_its_snapshot_answers_as_a_rebuild(root: Path) -> None:
    with JournalSaver(root, durability="none") as s:
        delta_thread(s, "a")
        s.copy_thread("a", "b")
        s.prune(["a"])
        want = {t: answers(s, t) for t in ("a", "b")}
    assert (root / "projections" / "graphs.snap").exists()
    with SessionStore.open(root, readonly=True) as st:  # what `agcx replay` checks
        report = replay(st.journal, st.journal.last_seq)
        assert report.ok and report.snapshot_seq == st.journal.last_seq, report.mismatches
    with JournalSaver(root) as restored:
        assert restored.store._runner.restored_from_snapshot
        assert {t: answers(restored, t) for t in ("a", "b")} == want
    (root / "projections" / "graphs.snap").unlink()
    with JournalSaver(root) as rebuilt:
        assert not rebuilt.store._runner.restored_from_snapshot
        assert {t: answers(rebuilt, t) for t in ("a", "b")} == want


# -- a real graph, and several processes ----------------------------------------------------


def test_a_real_graph_interrupts_resumes_in_another_process_and_forks(root: Path) -> None:
    cfg: dict[str, Any] = {"configurable": {"thread_id": "chat"}}
    with JournalSaver(root) as s:
        graph = build(s)
        out = graph.invoke({"steps": ["start"]}, cfg)
        assert out["__interrupt__"][0].value == "approve?"
        assert graph.get_state(cfg).next == ("ask",)
    # Another process resumes the interrupted run from the journal.
    done = subprocess.run(
        [PYTHON, WORKER, "resume", str(root), "chat", "yes"], env=child_env(),
        capture_output=True, text=True, timeout=120, check=True,
    )
    assert json.loads(done.stdout)["steps"] == ["start", "plan", "ask", "act:yes"]
    with JournalSaver(root) as s:
        graph = build(s)
        assert graph.get_state(cfg).values["steps"] == ["start", "plan", "ask", "act:yes"]
        history = list(graph.get_state_history(cfg))
        assert [h.next for h in history][:2] == [(), ("act",)]
        assert len(history) == 5
        # Fork from the checkpoint before "ask" and take another answer there.
        before_ask = next(h for h in history if h.next == ("ask",))
        forked = graph.update_state(before_ask.config, {"steps": ["edited"]})
        out = graph.invoke(None, forked)
        assert out["__interrupt__"][0].value == "approve?"
        out = graph.invoke(Command(resume="no"), cfg)
        assert out["steps"] == ["start", "plan", "edited", "ask", "act:no"]
        # The first branch is still there, in the history.
        ids = [h.config["configurable"]["checkpoint_id"] for h in graph.get_state_history(cfg)]
        assert history[0].config["configurable"]["checkpoint_id"] in ids


def test_four_processes_write_their_threads_into_one_directory(root: Path) -> None:
    with JournalSaver(root):
        pass  # created before the workers race to open it
    procs = [
        subprocess.Popen(
            [PYTHON, WORKER, "threads", str(root), str(w), "3", "12"], env=child_env(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for w in range(4)
    ]
    (root / "go").touch()
    stored: dict[str, list[str]] = {}
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        stored.update(json.loads(out))
    assert len(stored) == 12
    with JournalSaver(root) as s:
        for name, ids in stored.items():
            got = list(s.list(config(name)))
            assert [t.checkpoint["id"] for t in got] == ids[::-1], name
            for step, t in enumerate(reversed(got)):
                assert t.checkpoint["channel_values"] == {"x": [name, step]}
                assert t.pending_writes == [(f"task-{step}", "x", f"{name}:{step}")]
        assert len(list(s.list(None))) == 12 * 12
    assert verify(str(root)).intact


# -- random histories against an oracle ------------------------------------------------------


class Oracle(InMemorySaver):
    """LangGraph's InMemorySaver with the journal's semantics added: tombstones
    that refuse late writes, forks, prunes and deletion by run."""

    def __init__(self) -> None:
        super().__init__()
        self.tombs: set[str] = set()

    def _has(self, thread: str, ns: str, cid: str | None) -> bool:
        return cid is not None and cid in self.storage.get(thread, {}).get(ns, {})

    def put(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        c = config["configurable"]
        parent = c.get("checkpoint_id")
        if c["thread_id"] in self.tombs and parent and not self._has(
            c["thread_id"], c["checkpoint_ns"], parent
        ):
            raise ThreadDeleted("late", c["thread_id"], 0)
        return super().put(config, checkpoint, metadata, new_versions)

    def put_writes(self, config: Any, writes: Any, task_id: str, task_path: str = "") -> None:
        c = config["configurable"]
        if c["thread_id"] in self.tombs and not self._has(
            c["thread_id"], c["checkpoint_ns"], c["checkpoint_id"]
        ):
            raise ThreadDeleted("late", c["thread_id"], 0)
        super().put_writes(config, writes, task_id, task_path)

    def delete_thread(self, thread_id: str) -> None:
        super().delete_thread(thread_id)
        self.tombs.add(thread_id)

    def copy_thread(self, src: str, dst: str) -> None:
        if src == dst:
            return
        for ns, cks in list(self.storage.get(src, {}).items()):
            self.storage[dst][ns].update(cks)
        for (t, ns, cid), ws in list(self.writes.items()):
            if t == src:
                self.writes[(dst, ns, cid)].update(ws)
        for (t, ns, ch, v), blob in list(self.blobs.items()):
            if t == src:
                self.blobs[(dst, ns, ch, v)] = blob

    def _drop(self, thread: str, ns: str, cid: str) -> None:
        del self.storage[thread][ns][cid]
        self.writes.pop((thread, ns, cid), None)

    def prune(self, thread_ids: Any, *, strategy: str = "keep_latest") -> None:
        for t in thread_ids:
            if strategy == "delete":
                self.delete_thread(t)
                continue
            for ns, cks in list(self.storage.get(t, {}).items()):
                latest = max(cks, default=None)
                for cid in [c for c in cks if c != latest]:
                    self._drop(t, ns, cid)

    def delete_for_runs(self, run_ids: Any) -> None:
        for t, spaces in list(self.storage.items()):
            for ns, cks in list(spaces.items()):
                for cid, (_, md, _) in list(cks.items()):
                    if self.serde.loads_typed(md).get("run_id") in run_ids:
                        self._drop(t, ns, cid)


_THREADS = ["a", "b"]
_op = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(_THREADS), st.sampled_from(["", "sub"]),
              st.booleans(), st.sampled_from(["r1", "r2"]),
              st.lists(st.sampled_from(["x", "y", "z"]), max_size=3, unique=True)),
    st.tuples(st.just("writes"), st.sampled_from(_THREADS), st.sampled_from(["", "sub"]),
              st.sampled_from(["t1", "t2"]),
              st.lists(st.sampled_from(["x", "__error__", "__interrupt__"]), min_size=1,
                       max_size=3)),
    st.tuples(st.just("delete"), st.sampled_from(_THREADS)),
    st.tuples(st.just("copy"), st.sampled_from(_THREADS), st.sampled_from(_THREADS)),
    st.tuples(st.just("prune"), st.sampled_from(_THREADS), st.sampled_from(["keep_latest",
                                                                             "delete"])),
    st.tuples(st.just("runs"), st.sampled_from(["r1", "r2"])),
)


def _apply_ops(s: Any, ops: list[tuple[Any, ...]], version: list[int]) -> None:
    """Apply ``ops`` to a saver; a refused late write is part of the answer."""
    heads: dict[tuple[str, str], str] = {}
    for i, op in enumerate(ops):
        kind = op[0]
        try:
            if kind == "put":
                _, t, ns, fresh, run, changed = op
                cid = f"{i:04d}"
                parent = None if fresh else heads.get((t, ns))
                known = s.get_tuple(config(t, None, ns))
                versions = dict(known.checkpoint["channel_versions"]) if known else {}
                new = {}
                for ch in changed:
                    version[0] += 1
                    versions[ch] = new[ch] = version[0]
                values = {ch: f"{ch}{i}" for ch in new}
                put(s, t, cid, parent, values, versions, new, ns=ns, run_id=run)
                heads[(t, ns)] = cid
            elif kind == "writes":
                _, t, ns, task, channels = op
                head = heads.get((t, ns))
                if head is not None:
                    s.put_writes(config(t, head, ns), [(c, f"{c}{i}") for c in channels], task)
            elif kind == "delete":
                s.delete_thread(op[1])
            elif kind == "copy":
                s.copy_thread(op[1], op[2])
            elif kind == "prune":
                s.prune([op[1]], strategy=op[2])
            else:
                s.delete_for_runs([op[1]])
        except ThreadDeleted:
            heads.pop((op[1], op[2]), None)


def _everything(s: Any) -> list[tuple[Any, ...]]:
    return sorted(
        (t.config["configurable"]["thread_id"], *_plain(t)) for t in s.list(None)
    )


@settings(max_examples=40)
@given(ops=st.lists(_op, max_size=30))
@example(ops=[("put", "a", "", False, "r1", ["x"]), ("delete", "a"),
              ("put", "a", "", False, "r1", ["x"]), ("writes", "a", "", "t1", ["x"]),
              ("put", "a", "", True, "r2", ["y"]), ("put", "a", "", False, "r2", [])])
@example(ops=[("put", "a", "sub", False, "r1", ["x", "y"]), ("writes", "a", "sub", "t1", ["x"]),
              ("writes", "a", "sub", "t1", ["__error__", "x"]), ("copy", "a", "b"),
              ("put", "b", "sub", False, "r2", ["z"]), ("runs", "r1"),
              ("prune", "b", "keep_latest"), ("writes", "b", "sub", "t2", ["__interrupt__"]),
              ("delete", "a")])
def test_random_histories_answer_as_the_oracle_compacted_and_reopened(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[Any, ...]]
) -> None:
    root = tmp_path_factory.mktemp("lg") / "j"
    oracle = Oracle()
    _apply_ops(oracle, ops, [0])
    want = _everything(oracle)
    with JournalSaver(root, durability="none", segment_size=4096) as s:
        _apply_ops(s, ops, [0])
        assert _everything(s) == want
        s.store.journal.seal_active()
        s.store.compact(retain=timedelta(0))
        assert _everything(s) == want
    with JournalSaver(root) as reopened:
        assert _everything(reopened) == want
    assert verify(str(root)).intact


# -- the async face under trio, and the bench phase -------------------------------------------


def test_the_async_face_runs_under_trio(root: Path) -> None:
    trio = pytest.importorskip("trio")

    async def main() -> list[str]:
        async with JournalSaver(root, durability="none") as s:
            saved = await s.aput(config("t"), checkpoint("1", {"x": 1}, {"x": 1}), {}, {"x": 1})
            await s.aput_writes(saved, [("x", 2)], "task")
            tup = await s.aget_tuple(config("t"))
            assert tup is not None and tup.pending_writes == [("task", "x", 2)]
            await s.acopy_thread("t", "u")
            await s.aprune(["t"], strategy="delete")
            return [t.config["configurable"]["thread_id"] async for t in s.alist(None)]

    assert trio.run(main) == ["u"]


def test_bench_phase_compares_with_the_sqlite_saver(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tools import bench

    out = tmp_path / "lg.json"
    args = ["--langgraph", "--quick", "--dir", str(tmp_path), "--json", str(out)]
    assert bench.main(args) == 0
    figures = json.loads(out.read_text())
    for name in ("JournalSaver", "AsyncSqliteSaver"):
        f = figures["langgraph"][name]
        assert f["puts"] == 72 and f["bytes"] > 0 and f["puts_per_s"] > 0
    journal = figures["langgraph"]["JournalSaver"]
    assert journal["direct_put_median_ms"] > 0 and journal["fdatasync_median_ms"] > 0
    assert "target size <= 0.5x" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == [out]  # the temp dir is gone


def test_the_index_folded_from_memory_equals_one_folded_from_the_log(root: Path) -> None:
    """A put or write is folded from the payload it was built from, not read
    back: the graphs projection must be what a replay of the log makes."""
    with JournalSaver(root, durability="none") as s:
        delta_thread(s, "delta")
        put(s, "t", "1", None, {"x": b"\x00bytes", "y": [1, 2.5, "s"]}, {"x": 1, "y": "v1"})
        put(s, "t", "2", "1", {"x": 2, "y": None}, {"x": 2, "y": 2.5}, {"x": 2}, ns="sub")
        s.put_writes(config("t", "2", "sub"), [("x", 1), ("__error__", "boom")], "task", "p")
        s.put_writes(config("t", "2", "sub"), [("x", 2)], "task")
        s.copy_thread("t", "u")
        folded = s.store._graphs.plain_state()
    with SessionStore.open(root, snapshots=False) as replayed:
        assert replayed._graphs.plain_state() == folded


# -- purge of a thread ---------------------------------------------------------------------


def test_purge_refuses_a_thread_whose_records_a_fork_still_reads(root: Path) -> None:
    with JournalSaver(root, durability="none") as s:
        put(s, "src", "1", None, {"x": "SECRET" * 10}, {"x": 1})
        put(s, "src", "2", "1", {"x": "two"}, {"x": 2})
        s.put_writes(config("src", "2"), [("x", "w")], "task")
        s.copy_thread("src", "fork")
        before, last = answers(s, "fork"), s.store.journal.last_seq
        sid = UUID(bytes=thread_key("src"))
        with pytest.raises(ThreadShared) as err:
            s.store.purge(sid)
        assert err.value.thread_id == "src" and err.value.readers == ("fork",)
        assert "delete_thread" in str(err.value)
        assert s.store.journal.last_seq == last  # nothing written, nothing removed
        assert answers(s, "fork") == before and answers(s, "src")
        # Once the fork is gone, nothing reads the source's records: purge runs.
        s.delete_thread("fork")
        s.store.purge(sid)
        assert s.get_tuple(config("src")) is None and list(s.list(config("src"))) == []
        with pytest.raises(ThreadDeleted):  # a purged thread stays gone, like a deleted one
            put(s, "src", "3", "2", {"x": 3}, {"x": 3})
    data = b"".join(p.read_bytes() for p in (root / "segments").iterdir())
    assert b"SECRET" not in data and b"SECRET" not in _decompressed(root)
    assert verify(str(root)).intact
    with JournalSaver(root) as reopened:
        assert reopened.get_tuple(config("src")) is None
        with pytest.raises(ThreadDeleted):
            put(reopened, "src", "3", "2", {"x": 3}, {"x": 3})


def test_purge_of_a_fork_leaves_its_source_whole(root: Path) -> None:
    with JournalSaver(root, durability="none") as s:
        put(s, "src", "1", None, {"x": "one"}, {"x": 1})
        s.copy_thread("src", "fork")
        put(s, "fork", "2", "1", {"x": "mine"}, {"x": 2})
        before = answers(s, "src")
        s.store.purge(UUID(bytes=thread_key("fork")))
        assert answers(s, "src") == before and s.get_tuple(config("fork")) is None
    with JournalSaver(root) as reopened:
        assert answers(reopened, "src") == before and reopened.get_tuple(config("fork")) is None
