"""Child processes of tests/test_langgraph.py: a small LangGraph graph, and a
worker that writes several threads' checkpoints into a shared journal.

``python tests/_lg_worker.py resume ROOT THREAD ANSWER``: resume the
interrupted graph of THREAD with ANSWER, print its final state as JSON.
``python tests/_lg_worker.py threads ROOT WORKER N_THREADS N_STEPS``: wait for
``ROOT/go``, then write N_STEPS chained checkpoints (each with a write) on
each of N_THREADS threads of its own, interleaved; print what it stored.
"""

from __future__ import annotations

import json
import operator
import os
import sys
import time
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from journal.integrations.langgraph import JournalSaver


class State(TypedDict):
    steps: Annotated[list[str], operator.add]
    answer: str


def _plan(state: State) -> dict[str, Any]:
    return {"steps": ["plan"]}


def _ask(state: State) -> dict[str, Any]:
    answer = interrupt("approve?")
    return {"steps": ["ask"], "answer": answer}


def _act(state: State) -> dict[str, Any]:
    return {"steps": [f"act:{state['answer']}"]}


def build(saver: JournalSaver) -> Any:
    """plan -> ask (interrupts for an answer) -> act."""
    g = StateGraph(State)
    g.add_node("plan", _plan)
    g.add_node("ask", _ask)
    g.add_node("act", _act)
    g.add_edge(START, "plan")
    g.add_edge("plan", "ask")
    g.add_edge("ask", "act")
    g.add_edge("act", END)
    return g.compile(checkpointer=saver)


def resume(root: str, thread: str, answer: str) -> None:
    with JournalSaver(root) as saver:
        out = build(saver).invoke(Command(resume=answer), {"configurable": {"thread_id": thread}})
    print(json.dumps(out))


def threads(root: str, worker: int, n_threads: int, n_steps: int) -> None:
    go = os.path.join(root, "go")
    while not os.path.exists(go):
        time.sleep(0.005)
    stored: dict[str, list[str]] = {}
    parents: dict[str, str | None] = {}
    with JournalSaver(root) as saver:
        names = [f"w{worker}-t{i}" for i in range(n_threads)]
        for step in range(n_steps):
            for name in names:
                config: dict[str, Any] = {"configurable": {"thread_id": name, "checkpoint_ns": ""}}
                if parents.get(name):
                    config["configurable"]["checkpoint_id"] = parents[name]
                cid = f"{step:08d}-{worker}-{name}"
                checkpoint = {
                    "v": 1, "id": cid, "ts": "", "channel_values": {"x": [name, step]},
                    "channel_versions": {"x": step + 1}, "versions_seen": {},
                    "updated_channels": None,
                }
                saved = saver.put(config, checkpoint, {"step": step}, {"x": step + 1})  # type: ignore[arg-type]
                saver.put_writes(saved, [("x", f"{name}:{step}")], f"task-{step}")
                parents[name] = cid
                stored.setdefault(name, []).append(cid)
    print(json.dumps(stored))


if __name__ == "__main__":
    cmd, root = sys.argv[1], sys.argv[2]
    if cmd == "resume":
        resume(root, sys.argv[3], sys.argv[4])
    else:
        threads(root, int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
