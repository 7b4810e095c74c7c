"""Codex CLI rollouts written from the schema (openai/codex protocol.rs, models.rs).

Used by tests/test_codex.py and the Codex bench script (docs/bench_codex.py).
"""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path
from typing import Any

import zstandard


def ts(i: int) -> str:
    return f"2025-10-01T12:{(i // 60) % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z"


def line(i: int, kind: str, payload: Any, **extra: Any) -> dict[str, Any]:
    return {"timestamp": ts(i), "type": kind, "payload": payload, **extra}


def session_meta(sid: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": sid,
        "timestamp": "2025-10-01T12:00:00.000Z",
        "cwd": "/home/u/project",
        "originator": "codex_cli_rs",
        "cli_version": "0.46.0",
        "source": "cli",
        "model_provider": "openai",
        "base_instructions": {"text": "You are Codex."},
        "git": {"commit_hash": "abc123", "branch": "main", "repository_url": "git@x:y.git"},
        **extra,
    }


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def assistant(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "message", "role": "assistant",
        "content": [{"type": "output_text", "text": text}], **extra,
    }


# Every response item variant the schema has (and one from the future).
ITEM_VARIANTS: list[dict[str, Any]] = [
    user("fix the tests"),
    {"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "look"}, {"type": "input_image", "image_url": "data:x"}]},
    assistant("done", id="msg_1", end_turn=True, phase="final_answer"),
    {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "<p>"}]},
    {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "think"}],
     "content": [{"type": "reasoning_text", "text": "deep"}], "encrypted_content": "gAAA"},
    {"type": "reasoning", "id": "", "summary": [], "encrypted_content": None},
    {"type": "local_shell_call", "call_id": "c1", "status": "completed", "action": {
        "type": "exec", "command": ["ls", "-la"], "timeout_ms": 1000,
        "working_directory": "/tmp", "env": {"A": "1"}, "user": None}},
    {"type": "local_shell_call", "call_id": "c2", "status": "completed",
     "action": {"type": "exec", "command": ["pwd"]}},
    {"type": "function_call", "name": "shell", "arguments": "{\"command\":[\"ls\"]}",
     "call_id": "call_1"},
    {"type": "function_call", "name": "read", "namespace": "fs", "arguments": "{}",
     "call_id": "call_2", "id": "fc_2"},
    {"type": "function_call_output", "call_id": "call_1", "output": "a\nb\n"},
    {"type": "function_call_output", "call_id": "call_2", "output": [
        {"type": "input_text", "text": "x"}, {"type": "input_image", "image_url": "data:y"}]},
    {"type": "custom_tool_call", "status": "completed", "call_id": "ct1", "name": "apply_patch",
     "input": "*** Begin Patch"},
    {"type": "custom_tool_call_output", "call_id": "ct1", "output": "ok"},
    {"type": "web_search_call", "status": "completed", "action": {"type": "search", "query": "q"}},
    {"type": "image_generation_call", "id": "ig", "status": "completed", "result": "b64"},
    {"type": "compaction", "encrypted_content": "enc"},
    {"type": "ghost_snapshot", "ghost_commit": {"id": "g"}},
    {"type": "a_type_from_the_future", "x": [1, 2.5, None, True]},
]

EVENT_VARIANTS: list[dict[str, Any]] = [
    {"type": "task_started", "turn_id": "t1", "model_context_window": 272000},
    {"type": "user_message", "message": "fix the tests", "images": [], "kind": "plain"},
    {"type": "agent_reasoning", "text": "thinking"},
    {"type": "agent_message", "message": "done"},
    {"type": "token_count", "info": {"total_token_usage": {"input_tokens": 10}},
     "rate_limits": None},
    {"type": "context_compacted"},
    {"type": "turn_aborted", "reason": "interrupted"},
    {"type": "thread_rolled_back", "num_turns": 1},
    {"type": "task_complete", "turn_id": "t1", "last_agent_message": "done"},
    {"type": "entered_review_mode", "target": {"type": "uncommittedChanges"}},
]

TURN_CONTEXT = {
    "cwd": "/home/u/project", "approval_policy": "on-request",
    "sandbox_policy": {"type": "workspace-write", "network_access": False},
    "model": "gpt-5-codex", "effort": "medium", "summary": "auto",
}


def every_line_type(sid: str) -> list[dict[str, Any]]:
    """A rollout with every line type and every item and event variant."""
    out = [line(0, "session_meta", session_meta(sid)), line(1, "turn_context", TURN_CONTEXT)]
    i = 2
    for ev in EVENT_VARIANTS[:2]:
        out.append(line(i, "event_msg", ev))
        i += 1
    for item in ITEM_VARIANTS:
        out.append(line(i, "response_item", item))
        i += 1
    out.append(line(i, "response_item", assistant("with metadata"), metadata={"turn": 1},
                    ordinal=7))
    for ev in EVENT_VARIANTS[2:]:
        i += 1
        out.append(line(i, "event_msg", ev))
    out.append(line(i + 1, "compacted", {"message": "summary", "replacement_history": [
        ITEM_VARIANTS[0], user("summary of it all"), ITEM_VARIANTS[2]]}))
    out.append(line(i + 2, "compacted", {"message": "old style"}))
    out.append(line(i + 3, "a_line_type_from_the_future", {"k": "v"}))
    out.append({"timestamp": ts(i + 4), "type": "response_item", "payload": user("again")})
    return out


def conversation(sid: str, turns: int, *, output_size: int = 2000, compact_every: int = 10,
                 seed: int = 0) -> list[dict[str, Any]]:
    """A long session: turns of user / reasoning / tool call / output / answer,
    and every ``compact_every`` turns a ``compacted`` line repeating the history
    so far (as Codex's compaction does)."""
    out = [line(0, "session_meta", session_meta(sid)), line(1, "turn_context", TURN_CONTEXT)]
    history: list[dict[str, Any]] = []
    rng = random.Random(f"{sid}{seed}")
    i = 2
    for t in range(turns):
        ask = f"turn {t} of session {sid[:8]}: please change function f{seed}_{t}"
        items = [
            user(ask),
            {"type": "reasoning", "id": f"rs_{t}", "summary": [
                {"type": "summary_text", "text": f"plan for {t}"}], "encrypted_content": None},
            {"type": "function_call", "name": "shell",
             "arguments": json.dumps({"command": ["cat", f"src/f{t}.py"]}), "call_id": f"c{t}"},
            {"type": "function_call_output", "call_id": f"c{t}",
             "output": _tool_output(rng, output_size)},
            assistant(f"changed f{seed}_{t}"),
        ]
        out.append(line(i, "event_msg", {"type": "user_message", "message": ask, "images": []}))
        for it in items:
            out.append(line(i, "response_item", it))
            i += 1
        answer = {"type": "agent_message", "message": f"changed f{seed}_{t}"}
        out.append(line(i, "event_msg", answer))
        out.append(line(i, "event_msg", {"type": "token_count", "info": {"n": t}}))
        history.extend(items)
        if compact_every and (t + 1) % compact_every == 0:
            out.append(line(i, "compacted", {"message": f"summary {t}",
                                             "replacement_history": list(history)}))
    return out


_WORDS = [
    "def", "return", "self", "if", "else", "for", "in", "import", "from", "class", "None",
    "True", "False", "while", "try", "except", "with", "as", "yield", "lambda", "assert",
    "raise", "pass", "break", "continue", "and", "or", "not", "is", "len", "range", "print",
    "value", "result", "items", "index", "count", "path", "data", "error", "config", "session",
    "store", "journal", "record",
]


def _tool_output(rng: random.Random, size: int) -> str:
    """Source-like text of about ``size`` bytes: words, names and numbers, as
    varied as a real file dump (a fixed pattern would flatter every compressor)."""
    out: list[str] = []
    n = 0
    while n < size:
        words = [rng.choice(_WORDS) for _ in range(rng.randint(2, 7))]
        words.append(f"v{rng.randint(0, 99999)}")
        text = "    " * rng.randint(0, 3) + " ".join(words) + "\n"
        out.append(text)
        n += len(text)
    return "".join(out)


def encode(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(x, separators=(",", ":")).encode() + b"\n" for x in lines)


def write_rollout(home: Path, sid: str, data: bytes, *, archived: bool = False,
                  zst: bool = False, day: str = "2025/10/01") -> Path:
    folder = home / "archived_sessions" if archived else home / "sessions" / day
    folder.mkdir(parents=True, exist_ok=True)
    name = f"rollout-2025-10-01T12-00-00-{sid}.jsonl"
    path = folder / name
    if zst:
        path = folder / (name + ".zst")
        data = zstandard.ZstdCompressor(level=3).compress(data)
    path.write_bytes(data)
    return path


def new_id() -> str:
    return str(uuid.uuid4())


def read_lines(data: bytes) -> list[Any]:
    return [json.loads(x) for x in data.split(b"\n") if x]


__all__ = [name for name in dir() if not name.startswith("_") and name not in ("os",)]
