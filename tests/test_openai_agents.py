"""The OpenAI Agents SDK on the journal: ``JournalSession`` as the SDK's ``Session``.

The SDK runs offline (``agents.testing.ScriptedModel``, tracing off). The
cases of the SDK's own ``SQLiteSession`` tests (tests/memory/test_session.py
in openai/openai-agents-python) are ported here to ``JournalSession``:
ordering, ``limit``, pop to empty, clear, separate sessions, unicode,
concurrent writers, session settings and the runner's override of them.
Then what the journal adds: tool calls never split from their outputs by
``limit``, pop and clear as events, the sessions in ``agcx``, and four
processes of several threads each writing into one directory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid5

import pytest
from agents import Agent, RunConfig, Runner, set_tracing_disabled
from agents.memory import Session, SessionSettings
from agents.memory.session import _session_accepts_wrapper
from agents.testing import ScriptedModel, assistant_message

from journal import SessionStore
from journal.integrations.openai_agents import (
    KIND_TAG,
    NAMESPACE,
    JournalSession,
    session_uuid,
)
from tests.conftest import PYTHON, ROOT, child_env

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the SDK runs on asyncio


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "")
    set_tracing_disabled(True)


@pytest.fixture
def store(root: Path) -> Iterator[SessionStore]:
    with SessionStore.open(root, durability="none") as s:
        yield s


def session(store: SessionStore, name: str, **kw: Any) -> JournalSession:
    return JournalSession(name, store=store, **kw)


def contents(items: list[Any]) -> list[Any]:
    return [i.get("content") for i in items]


# -- the protocol ----------------------------------------------------------------------------


async def test_it_is_an_sdk_session_whose_methods_all_take_the_wrapper(
    store: SessionStore,
) -> None:
    s = session(store, "s")
    assert isinstance(s, Session)
    assert _session_accepts_wrapper(s)
    await s.add_items([{"role": "user", "content": "hi"}], wrapper=object())
    assert await s.get_items(wrapper=object()) == [{"role": "user", "content": "hi"}]


def test_string_ids_map_to_uuids_deterministically() -> None:
    u = "9f1c3b0e-2a4d-4c8e-9d7a-1b2c3d4e5f60"
    assert session_uuid(u) == UUID(u)
    assert session_uuid("chat-42") == uuid5(NAMESPACE, "chat-42") == session_uuid("chat-42")
    assert session_uuid("chat-42") != session_uuid("chat-43")


# -- the runner, offline ---------------------------------------------------------------------


async def test_a_second_run_sees_the_first_turn(store: SessionStore) -> None:
    model = ScriptedModel([[assistant_message("San Francisco")], [assistant_message("California")]])
    agent = Agent(name="test", model=model)
    s = session(store, "golden-gate")
    r1 = await Runner.run(agent, "What city is the Golden Gate Bridge in?", session=s)
    assert r1.final_output == "San Francisco"
    r2 = await Runner.run(agent, "What state is it in?", session=s)
    assert r2.final_output == "California"
    second = model.calls[-1].input
    assert isinstance(second, list)
    texts = json.dumps(second)
    assert "Golden Gate" in texts and "San Francisco" in texts and "What state" in texts
    # Stored as one journal session with the SDK's items, in order.
    items = await s.get_items()
    assert len(items) == 4
    assert items[0] == {"content": "What city is the Golden Gate Bridge in?", "role": "user"}


async def test_different_sessions_keep_separate_histories(store: SessionStore) -> None:
    model = ScriptedModel(
        [[assistant_message("cats")], [assistant_message("dogs")], [assistant_message("cats!")]]
    )
    agent = Agent(name="test", model=model)
    one, two = session(store, "session_1"), session(store, "session_2")
    await Runner.run(agent, "I like cats", session=one)
    await Runner.run(agent, "I like dogs", session=two)
    await Runner.run(agent, "What did I say I like?", session=one)
    seen = json.dumps(model.calls[-1].input)
    assert "I like cats" in seen and "dogs" not in seen


async def test_list_input_is_appended_to_the_history(store: SessionStore) -> None:
    model = ScriptedModel([[assistant_message("ok")]])
    s = session(store, "list-input")
    history = [
        {"role": "user", "content": "Earlier message"},
        {"role": "assistant", "content": "Saved reply"},
    ]
    await s.add_items(history)
    new = [{"role": "user", "content": "Test message"}]
    await Runner.run(Agent(name="test", model=model), new, session=s)
    assert model.calls[-1].input == history + new


async def test_the_run_configs_session_settings_override_the_sessions(
    store: SessionStore,
) -> None:
    s = session(store, "override", session_settings=SessionSettings(limit=100))
    await s.add_items([{"role": "user", "content": f"Turn {i}"} for i in range(10)])
    model = ScriptedModel([[assistant_message("Got it")]])
    await Runner.run(
        Agent(name="test", model=model),
        "New question",
        session=s,
        run_config=RunConfig(session_settings=SessionSettings(limit=2)),
    )
    got = model.calls[-1].input
    assert isinstance(got, list)
    assert [i.get("content") for i in got if i.get("content") != "New question"] == [
        "Turn 8",
        "Turn 9",
    ]


# -- the SDK's SQLiteSession cases, ported ---------------------------------------------------


async def test_items_come_back_in_order_and_clear_empties(store: SessionStore) -> None:
    s = session(store, "direct_test")
    items = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there!"}]
    await s.add_items(items)
    assert await s.get_items() == items
    await s.clear_session()
    assert await s.get_items() == []
    await s.add_items(items[:1])
    assert await s.get_items() == items[:1]


async def test_pop_returns_the_newest_until_empty(store: SessionStore) -> None:
    s = session(store, "pop_test")
    assert await s.pop_item() is None
    await s.add_items(
        [
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi there!"},
            {"role": "user", "content": "How are you?"},
        ]
    )
    assert (await s.pop_item()) == {"role": "user", "content": "How are you?"}
    assert contents(await s.get_items()) == ["Hello", "Hi there!"]
    assert (await s.pop_item()) == {"role": "assistant", "content": "Hi there!"}
    assert (await s.pop_item()) == {"role": "user", "content": "Hello"}
    assert await s.pop_item() is None
    assert await s.get_items() == []


async def test_pop_affects_only_its_session(store: SessionStore) -> None:
    one, two = session(store, "session_1"), session(store, "session_2")
    await one.add_items([{"role": "user", "content": "Session 1 message"}])
    await two.add_items(
        [
            {"role": "user", "content": "Session 2 message 1"},
            {"role": "user", "content": "Session 2 message 2"},
        ]
    )
    assert (await two.pop_item() or {}).get("content") == "Session 2 message 2"
    assert contents(await one.get_items()) == ["Session 1 message"]
    assert contents(await two.get_items()) == ["Session 2 message 1"]


async def test_limit_returns_the_latest_items_oldest_first(store: SessionStore) -> None:
    s = session(store, "count_test")
    texts = ["Message 1", "Response 1", "Message 2", "Response 2", "Message 3", "Response 3"]
    await s.add_items([{"role": "user", "content": t} for t in texts])
    assert contents(await s.get_items()) == texts
    assert contents(await s.get_items(limit=2)) == texts[-2:]
    assert contents(await s.get_items(limit=4)) == texts[-4:]
    assert contents(await s.get_items(limit=10)) == texts
    assert await s.get_items(limit=0) == []


async def test_session_settings_limit_is_the_default_and_an_explicit_limit_wins(
    store: SessionStore,
) -> None:
    assert session(store, "d").session_settings == SessionSettings()
    s = session(store, "settings", session_settings=SessionSettings(limit=3))
    await s.add_items([{"role": "user", "content": f"Message {i}"} for i in range(10)])
    assert contents(await s.get_items()) == ["Message 7", "Message 8", "Message 9"]
    assert contents(await s.get_items(limit=2)) == ["Message 8", "Message 9"]


async def test_unicode_and_special_characters_are_kept(store: SessionStore) -> None:
    s = session(store, "unicode_test")
    items = [
        {"role": "user", "content": "こんにちは"},
        {"role": "assistant", "content": "😊👍"},
        {"role": "user", "content": "O'Reilly"},
        {"role": "assistant", "content": "Robert'); DROP TABLE students;--"},
    ]
    await s.add_items(items)
    assert await s.get_items() == items


async def test_concurrent_writers_lose_nothing(store: SessionStore) -> None:
    s = session(store, "concurrent_test")
    items = [{"role": "user", "content": f"Message {i}"} for i in range(10)]

    def add(item: dict[str, Any]) -> None:
        asyncio.run(s.add_items([item]))

    with concurrent.futures.ThreadPoolExecutor(max_workers=5) as pool:
        list(pool.map(add, items))
    assert sorted(contents(await s.get_items())) == sorted(i["content"] for i in items)
    # Sessions sharing the store, written at once.
    one, two = session(store, "a"), session(store, "b")
    await asyncio.gather(
        one.add_items([{"role": "user", "content": "a"}]),
        two.add_items([{"role": "user", "content": "b"}]),
    )
    assert contents(await one.get_items()) == ["a"]
    assert contents(await two.get_items()) == ["b"]


# -- what the journal adds -------------------------------------------------------------------


def call(cid: str) -> dict[str, Any]:
    return {"type": "function_call", "call_id": cid, "name": "f", "arguments": "{}"}


def output(cid: str) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": cid, "output": "42"}


async def test_limit_never_separates_a_tool_call_from_its_output(store: SessionStore) -> None:
    s = session(store, "tools")
    items = [
        {"role": "user", "content": "q"},
        call("c1"),
        call("c2"),
        output("c1"),
        output("c2"),
        {"role": "assistant", "content": "a"},
    ]
    await s.add_items(items)
    assert await s.get_items(limit=1) == items[-1:]
    assert await s.get_items(limit=2) == items[1:]  # c2's output pulls in both calls
    assert await s.get_items(limit=3) == items[1:]
    assert await s.get_items(limit=5) == items[1:]
    assert await s.get_items(limit=6) == items


async def test_items_are_the_stores_response_items_and_unknown_ones_are_verbatim(
    store: SessionStore,
) -> None:
    s = session(store, "typed")
    odd = {"type": "future_thing", "payload": {"nested": [1, 2.5, None, True]}}
    await s.add_items([call("c1"), output("c1"), odd])
    assert await s.get_items() == [call("c1"), output("c1"), odd]
    _, conv, _ = store.load_session(s.uuid)
    assert [type(m.item).__name__ for m in conv.messages] == [
        "FunctionCall",
        "FunctionCallOutput",
        "UnknownItem",
    ]


async def test_sessions_are_listed_with_their_kind_and_name_and_pop_and_clear_are_events(
    store: SessionStore,
) -> None:
    s = session(store, "chat-7")
    await s.add_items([{"role": "user", "content": "x"}, {"role": "user", "content": "y"}])
    before = store.journal.last_seq
    await s.pop_item()
    await s.clear_session()
    meta = store.get_metadata(s.uuid)
    assert meta.title == "chat-7" and KIND_TAG in meta.tags and meta.message_count == 0
    events = [e.event for e in store.history(s.uuid)]
    assert events == ["SessionSaved", "SessionTruncated", "SessionTruncated"]
    view = store.at(before)
    assert [key.item.data["content"] for key in view.load_session(s.uuid)[1].messages] == [
        "x",
        "y",
    ]


async def test_a_session_opened_by_path_owns_its_store(root: Path) -> None:
    async with JournalSession("own", root) as s:
        await s.add_items([{"role": "user", "content": "kept"}])
    with JournalSession("own", root) as s2:
        assert contents(await s2.get_items()) == ["kept"]


_WORKER = """
import asyncio, sys, threading
from journal import SessionStore
from journal.integrations.openai_agents import JournalSession

root, proc, threads, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
store = SessionStore.open(root, durability="flush", segment_size=64 << 10)

def work(t):
    own = JournalSession(f"p{proc}-t{t}", store=store)
    shared = JournalSession("shared", store=store)
    async def run():
        for i in range(rounds):
            mine = [{"role": "user", "content": f"{i}"}, {"role": "x", "content": "pop me"}]
            await own.add_items(mine)
            popped = await own.pop_item()
            assert popped == {"role": "x", "content": "pop me"}, popped
            await shared.add_items([{"role": "user", "content": f"p{proc}-t{t}-{i}"}])
    asyncio.run(run())

ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
for t in ts: t.start()
for t in ts: t.join()
store.close()
"""


def test_four_processes_of_several_threads_share_one_directory(root: Path) -> None:
    procs, threads, rounds = 4, 3, 8
    env = child_env()
    children = [
        subprocess.Popen(
            [PYTHON, "-c", _WORKER, str(root), str(p), str(threads), str(rounds)],
            env=env,
            cwd=ROOT,
            stderr=subprocess.PIPE,
        )
        for p in range(procs)
    ]
    for c in children:
        _, err = c.communicate(timeout=240)
        assert c.returncode == 0, err.decode()

    async def check() -> None:
        with SessionStore.open(root) as store:
            for p in range(procs):
                for t in range(threads):
                    s = JournalSession(f"p{p}-t{t}", store=store)
                    assert contents(await s.get_items()) == [f"{i}" for i in range(rounds)]
            shared = contents(await JournalSession("shared", store=store).get_items())
            want = {
                f"p{p}-t{t}-{i}"
                for p in range(procs)
                for t in range(threads)
                for i in range(rounds)
            }
            assert sorted(shared) == sorted(want)  # nothing lost, nothing twice
            # Each writer's own items are in its order.
            for p in range(procs):
                for t in range(threads):
                    mine = [x for x in shared if x.startswith(f"p{p}-t{t}-")]
                    assert mine == [f"p{p}-t{t}-{i}" for i in range(rounds)]
            assert len(store.list_sessions()) == procs * threads + 1

    asyncio.run(check())
    assert os.path.isdir(root)


async def test_agcx_lists_audits_verifies_compacts_and_recovers_agents_sessions(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tools.cli import main

    def cli(*args: str) -> Any:
        capsys.readouterr()
        assert main(["--root", str(root), *args, "--json"]) == 0, capsys.readouterr().err
        return json.loads(capsys.readouterr().out)

    with SessionStore.open(root, durability="none", segment_size=4096) as store:
        s = session(store, "chat-9")
        await s.add_items([{"role": "user", "content": f"m{i}" * 50} for i in range(30)])
        plain = store.fork_session(s.uuid, title="a plain fork")  # kind: session (no tag kept)
        store.untag(plain, KIND_TAG)
        await s.pop_item()
        popped_at = store.journal.last_seq
        await s.clear_session()
    listed = cli("ls", "--kind", "openai-agents")["sessions"]
    assert [m["title"] for m in listed] == ["chat-9"]
    assert [m["title"] for m in cli("ls", "--kind", "session")["sessions"]] == ["a plain fork"]
    events = [e["event"] for e in cli("log", "--session", s.uuid.hex[:8])["events"]]
    assert events == ["SessionSaved", "SessionTruncated", "SessionTruncated"]
    stats = cli("stats")
    assert stats["events_by_type"]["SessionTruncated"] == 2
    assert cli("verify")["intact"] is True
    cli("compact", "--retain", "0s")
    target = tmp_path / "restored"
    cli("recover", "--out", str(target), "--at", f"seq:{popped_at}")
    async with JournalSession("chat-9", target) as back:
        assert len(await back.get_items()) == 29
    with SessionStore.open(root) as store:
        assert await JournalSession("chat-9", store=store).get_items() == []
        assert len(store.load_session(plain)[1].messages) == 30


@pytest.mark.parametrize("streamed", [False, True])
async def test_agcx_show_and_export_read_an_sdk_run_like_any_session(
    root: Path, capsys: pytest.CaptureFixture[str], streamed: bool
) -> None:
    from tools.cli import main

    model = ScriptedModel([[assistant_message("Paris, of course")]])
    with SessionStore.open(root, durability="none") as store:
        s = session(store, "trip")
        if streamed:
            run = Runner.run_streamed(Agent(name="t", model=model), "Capital of France?", session=s)
            async for _ in run.stream_events():
                pass
        else:
            await Runner.run(Agent(name="t", model=model), "Capital of France?", session=s)
        items = await s.get_items()
    assert items[0] == {"content": "Capital of France?", "role": "user"}
    assert items[1]["type"] == "message" and items[1]["content"][0]["text"] == "Paris, of course"
    capsys.readouterr()
    assert main(["--root", str(root), "show", s.uuid.hex[:8]]) == 0
    shown = capsys.readouterr().out
    assert "unknown item" not in shown
    assert "Capital of France?" in shown and "Paris, of course" in shown
    assert main(["--root", str(root), "export", s.uuid.hex[:8], "--format", "markdown"]) == 0
    md = capsys.readouterr().out
    assert "### user" in md and "### assistant" in md and "Paris, of course" in md


async def test_a_session_takes_an_async_store_and_refuses_path_with_store(root: Path) -> None:
    from journal import AsyncSessionStore, InvalidArgument

    async with await AsyncSessionStore.open(root, durability="none") as astore:
        s = JournalSession("async-shared", store=astore)
        await s.add_items([{"role": "user", "content": "via the async store"}])
        assert s.store is astore.sync
        with pytest.raises(InvalidArgument):
            JournalSession("both", root, store=astore)
        _, conv, _ = await astore.load_session(s.uuid)
        assert len(conv.messages) == 1
