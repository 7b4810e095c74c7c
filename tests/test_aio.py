"""AsyncSessionStore under asyncio and trio: the store's behaviour, awaited.

Every test runs once per backend (pytest's anyio plugin). The async face
runs each call in a worker thread, so many tasks saving at once become
concurrent appends sharing group commits.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import anyio
import pytest

from journal import (
    AsyncPointInTimeView,
    AsyncSessionStore,
    CheckpointNotFound,
    FileSystem,
    InvalidArgument,
    PointInTimeView,
    ReadOnlyJournal,
    SessionNotFound,
    SessionState,
    SessionStore,
)
from tests._store_worker import (
    Oracle,
    assert_listing_matches,
    conversation,
    key_of,
    metadata,
    uid,
)

pytestmark = pytest.mark.anyio

# Half a day off whole days: no session is ever near a cleanup cutoff (30 or 80 days).
PAST = datetime.now(UTC) - timedelta(days=100, hours=12)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store(root: Path) -> AsyncIterator[AsyncSessionStore]:
    async with await AsyncSessionStore.open(root, durability="none") as s:
        yield s


def state(cursor: int = 0) -> SessionState:
    return SessionState(cursor_position=cursor)


async def test_every_store_operation_works_through_the_async_face(
    store: AsyncSessionStore,
) -> None:
    sid = cid = uuid4()
    conv = conversation(cid, ["a", "b"])
    seq = await store.save_session(
        sid, metadata(sid, "Async title", last_accessed=PAST), conv, state(1)
    )
    assert seq == 1
    meta, got, st = await store.load_session(sid)
    assert (got, st) == (conv, state(1))
    assert meta.message_count == 2
    assert await store.session_exists(sid)
    assert [m.id for m in await store.list_sessions()] == [sid]
    assert [m.id for m in await store.search_sessions("async")] == [sid]
    await store.tag(sid, "x", "y")
    await store.untag(sid, "x")
    await store.set_favorite(sid, True)
    await store.rename(sid, "renamed")
    before = datetime.now(UTC)
    await store.touch(sid)
    meta = await store.get_metadata(sid)
    assert (meta.tags, meta.is_favorite, meta.title) == (("y",), True, "renamed")
    assert before <= meta.last_accessed <= datetime.now(UTC)
    cp = await store.create_checkpoint(sid, uuid4(), conv, state(2), name="cp")
    assert await store.list_checkpoints(sid) == [cp]
    assert await store.load_checkpoint(sid, cp.id) == (conv, state(2))
    view = await store.at(1)
    assert isinstance(view, AsyncPointInTimeView)
    assert (await view.load_session(sid))[0].title == "Async title"
    assert (await view.get_metadata(sid)).title == "Async title"
    assert [h.summary for h in await store.history(sid)][:2] == [
        "saved in full (2 messages)",
        "tags +x +y",
    ]
    stats = await store.statistics()
    assert (stats.total_sessions, stats.total_checkpoints) == (1, 1)
    await store.delete_checkpoint(sid, cp.id)
    assert await store.list_checkpoints(sid) == []
    await store.set_favorite(sid, False)
    assert await store.cleanup_old_sessions(max_count=0) == [sid]
    assert await store.list_sessions() == []
    other = uuid4()
    await store.save_session(other, metadata(other, "o"), conversation(other, []), state())
    await store.delete_session(other)
    assert not await store.session_exists(other)


def public(cls: type) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_")}


def test_the_async_faces_offer_every_query_of_the_sync_ones() -> None:
    assert public(PointInTimeView) <= public(AsyncPointInTimeView)
    # Plumbing, not I/O: reachable through ``.sync``.
    assert public(SessionStore) - public(AsyncSessionStore) == {"journal", "root"}


async def test_errors_reach_the_awaiting_task_typed_and_nothing_is_written(
    store: AsyncSessionStore,
) -> None:
    sid = uuid4()
    await store.save_session(sid, metadata(sid, "t"), conversation(sid, ["m"]), state())
    last = store.sync.journal.last_seq
    with pytest.raises(InvalidArgument):
        await store.save_session("not-a-uuid", metadata(sid, "t"), conversation(sid, []), state())
    with pytest.raises(InvalidArgument):
        await store.tag(sid, "")
    with pytest.raises(SessionNotFound):
        await store.load_session(uuid4())
    with pytest.raises(SessionNotFound):
        await store.delete_session(uuid4())
    with pytest.raises(CheckpointNotFound):
        await store.load_checkpoint(sid, uuid4())
    with pytest.raises(InvalidArgument):
        await store.at(datetime(2024, 1, 1))
    assert store.sync.journal.last_seq == last


async def test_a_readonly_async_store_refuses_writes(root: Path) -> None:
    async with await AsyncSessionStore.open(root, durability="none") as w:
        sid = uuid4()
        await w.save_session(sid, metadata(sid, "t"), conversation(sid, ["m"]), state())
    async with await AsyncSessionStore.open(root, readonly=True) as r:
        assert await r.session_exists(sid)
        with pytest.raises(ReadOnlyJournal):
            await r.touch(sid)


async def test_random_operations_answer_like_the_oracle(root: Path, anyio_backend: str) -> None:
    rng = random.Random(f"aio-{anyio_backend}")
    oracle = Oracle()
    options = {"durability": "none", "segment_size": 4096, "max_chain": 3}
    s = await AsyncSessionStore.open(root, **options)
    ids = [uid(f"aio/{i}") for i in range(5)]
    convs: dict[UUID, list[str]] = {}
    try:
        for step in range(150):
            sid = rng.choice(ids)
            exists = sid in oracle.sessions
            op = rng.choice(
                [
                    "save",
                    "save",
                    "save",
                    "delete",
                    "tag",
                    "untag",
                    "favorite",
                    "rename",
                    "touch",
                    "checkpoint",
                    "cleanup",
                    "reopen",
                ]
            )
            if op == "save":
                keys = convs.get(sid, []) if rng.random() < 0.8 else []
                keys = [*keys, *(f"{step}.{k}" for k in range(rng.randint(0, 3)))]
                convs[sid] = keys
                meta = metadata(
                    sid,
                    rng.choice(["alpha", "Beta", "gamma"]),
                    tags=rng.sample(["p", "q", "r"], rng.randint(0, 2)),
                    last_accessed=PAST + timedelta(days=rng.randint(0, 50)),
                )
                conv, st = conversation(sid, keys), state(step)
                await s.save_session(sid, meta, conv, st)
                oracle.save(sid, meta, conv, st)
            elif op == "reopen":
                await s.close()
                s = await AsyncSessionStore.open(root, **options)
                assert s.sync._runner.restored_from_snapshot
            elif op == "cleanup":
                age, count = rng.choice([None, 30, 80]), rng.choice([None, 1, 3])
                assert await s.cleanup_old_sessions(age, count) == oracle.cleanup(age, count)
            elif not exists:
                with pytest.raises(SessionNotFound):
                    await s.touch(sid)
            elif op == "delete":
                await s.delete_session(sid)
                oracle.delete(sid)
            elif op in ("tag", "untag"):
                tags = rng.sample(["p", "q", "r"], rng.randint(1, 2))
                if op == "tag":
                    await s.tag(sid, *tags)
                    oracle.change_tags(sid, add=tags)
                else:
                    await s.untag(sid, *tags)
                    oracle.change_tags(sid, remove=tags)
            elif op == "favorite":
                flag = rng.random() < 0.5
                await s.set_favorite(sid, flag)
                oracle.set_favorite(sid, flag)
            elif op == "rename":
                title = f"renamed {step}"
                await s.rename(sid, title)
                oracle.rename(sid, title)
            elif op == "touch":
                await s.touch(sid)
                oracle.touch(sid, (await s.get_metadata(sid)).last_accessed)
            elif op == "checkpoint":
                cconv = conversation(uuid4(), convs[sid][:1])
                cmeta = await s.create_checkpoint(sid, uuid4(), cconv, state(step))
                oracle.create_checkpoint(sid, cmeta, cconv, state(step))
            assert_listing_matches(await s.list_sessions(), oracle)
            for sid, want in oracle.sessions.items():
                _, conv, st = await s.load_session(sid)
                assert (conv, st) == (want.conversation, want.state)
                for cid, (_, cconv, cst) in want.checkpoints.items():
                    assert await s.load_checkpoint(sid, cid) == (cconv, cst)
            assert [m.id for m in await s.search_sessions("a")] == [
                m.id for m in oracle.search("a")
            ]
    finally:
        await s.close()


async def test_fifty_tasks_saving_different_sessions_concurrently_all_load_back(
    root: Path,
) -> None:
    async with await AsyncSessionStore.open(root) as s:  # fsync: the commits are shared
        ids = [uuid4() for _ in range(50)]
        seqs: dict[UUID, list[int]] = {}

        async def agent(i: int, sid: UUID) -> None:
            keys: list[str] = []
            seqs[sid] = []
            for turn in range(4):
                keys.append(f"{sid}/{turn}")
                seqs[sid].append(
                    await s.save_session(
                        sid, metadata(sid, f"agent {i}"), conversation(sid, keys), state(turn)
                    )
                )

        async with anyio.create_task_group() as tg:
            for i, sid in enumerate(ids):
                tg.start_soon(agent, i, sid)
        all_seqs = sorted(q for v in seqs.values() for q in v)
        assert all_seqs == list(range(1, 201))
        for sid in ids:
            assert seqs[sid] == sorted(seqs[sid])
            _, conv, st = await s.load_session(sid)
            assert [key_of(m) for m in conv.messages] == [f"{sid}/{t}" for t in range(4)]
            assert st == state(3)
        assert len(await s.list_sessions()) == 50
        assert s.sync.journal.statistics().records == 200


async def test_concurrent_saves_of_one_session_end_as_one_of_them_never_a_mix(
    root: Path,
) -> None:
    async with await AsyncSessionStore.open(root, durability="none") as s:
        sid = cid = uuid4()
        base = [f"base{i}" for i in range(4)]
        await s.save_session(sid, metadata(sid, "t"), conversation(cid, base), state())
        saves: dict[int, tuple[tuple[str, ...], int]] = {}
        seen: list[tuple[tuple[str, ...], int]] = []

        async def writer(w: int) -> None:
            keys = list(base)
            for i in range(10):
                keys.append(f"w{w}.{i}")
                seq = await s.save_session(
                    sid, metadata(sid, f"w{w}"), conversation(cid, keys), state(w)
                )
                saves[seq] = (tuple(keys), w)
                _, conv, st = await s.load_session(sid)
                seen.append((tuple(key_of(m) for m in conv.messages), st.cursor_position))

        async with anyio.create_task_group() as tg:
            for w in range(20):
                tg.start_soon(writer, w)
        assert len(saves) == 200
        assert set(seen) <= set(saves.values())
        keys, w = saves[max(saves)]
        meta, conv, st = await s.load_session(sid)
        assert (conv, st, meta.title) == (conversation(cid, keys), state(w), f"w{w}")


class GatedSync(FileSystem):
    """Holds the next fdatasync until released (a slow disk)."""

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


async def test_a_slow_save_does_not_block_other_tasks(root: Path) -> None:
    fs = GatedSync()
    async with await AsyncSessionStore.open(root, fs=fs) as s:
        sid = uuid4()
        ticks = 0

        async def heartbeat() -> None:
            nonlocal ticks
            while not fs.release.is_set():
                ticks += 1
                await anyio.sleep(0.005)

        async def release_later() -> None:
            await anyio.to_thread.run_sync(fs.entered.wait, 10)
            await anyio.sleep(0.1)
            fs.release.set()

        fs.armed = True
        async with anyio.create_task_group() as tg:
            tg.start_soon(heartbeat)
            tg.start_soon(release_later)
            await s.save_session(sid, metadata(sid, "t"), conversation(sid, ["m"]), state())
        assert ticks >= 5
        assert await s.session_exists(sid)


async def test_a_cancelled_save_is_written_whole_or_not_at_all(root: Path) -> None:
    fs = GatedSync()
    async with await AsyncSessionStore.open(root, fs=fs) as s:
        sid = uuid4()
        conv = conversation(sid, ["m1", "m2"])
        fs.armed = True
        timer = threading.Timer(0.2, fs.release.set)
        timer.start()
        started = time.monotonic()
        with anyio.move_on_after(0.02) as scope:
            await s.save_session(sid, metadata(sid, "t"), conv, state(5))
        timer.join()
        assert scope.cancel_called
        # The worker thread is not abandoned: the save completed before the task
        # saw its cancellation, and the store holds all of it.
        assert time.monotonic() - started >= 0.15
        assert (await s.load_session(sid))[1:] == (conv, state(5))
        assert (await s.get_metadata(sid)).message_count == 2


async def test_maintenance_runs_through_the_async_face(store: AsyncSessionStore) -> None:
    sid = uuid4()
    await store.save_session(sid, metadata(sid, "t"), conversation(sid, ["m"]), state())
    assert (await store.compact(timedelta(0), dry_run=True)).dry_run
    assert await store.resolve_point(1) == 1
    report = await store.purge(sid, actor="test")
    assert report.records_removed >= 1 and not await store.session_exists(sid)
