"""Deterministic coding-agent workload for ``agcx bench``.

Everything here is a pure function of a seed (``random.Random(seed)``; no global
randomness, no clock, no environment other than the text of the running Python's
standard library, which is the "real source text" the issue asks for).  The same
seed on the same Python version therefore yields byte-identical data; the
:meth:`Workload.fingerprint` is printed by the driver so two runs can be checked
to have measured the same thing.

Shape of the data (OpenAI Responses-API items, as coding agents store them):

* a *session* is a conversation of turns;
* a *turn* is a user prompt followed by 1-3 items, i.e. 2-4 messages a turn:
  assistant text, a ``function_call`` with its ``function_call_output``, and
  occasionally a ``reasoning`` item;
* tool outputs (``shell``/``read_file``) and file contents (``apply_patch``
  bodies) are 200 B - 8 KiB slices of real stdlib source;
* prose (prompts, answers, reasoning summaries) is built from stdlib docstring
  sentences and identifiers, so it compresses like real English-about-code;
* every item carries a ``timestamp`` (float seconds on a simulated clock).

Saves are scheduled as several agents would produce them: ``agents`` agents each
work on one session at a time, one save per turn; the save stream is the merge of
their simulated clocks, so sessions interleave with random jitter.
"""

from __future__ import annotations

import functools
import heapq
import json
import math
import random
import re
import sysconfig
import uuid
from collections.abc import Iterator, Sequence
from hashlib import sha256
from pathlib import Path
from typing import Any

import attrs
import msgpack

__all__ = [
    "MAX_SOURCE_BYTES",
    "MIN_SOURCE_BYTES",
    "Corpus",
    "Message",
    "SaveOp",
    "TagOp",
    "Workload",
    "load_corpus",
    "source_payloads",
]

Message = dict[str, Any]

#: Bounds (UTF-8 bytes) of every slice of source text used as tool output or file
#: contents.
MIN_SOURCE_BYTES = 200
MAX_SOURCE_BYTES = 8192

# Simulated wall clock origin: a fixed instant, so timestamps are deterministic.
_EPOCH = 1_700_000_000.0


@attrs.frozen
class SaveOp:
    """One save of one session, as an agent would issue it after a turn.

    ``messages`` is the *full* message list so far (a fresh list per op, but the
    dicts are shared with the workload: callers must not mutate them).
    ``messages[new_from:]`` are the messages not yet saved by earlier ops.
    ``tags`` are the tags the session was created with; they are constant over a
    session's saves (tags added later come from :class:`TagOp`).
    """

    session_id: str
    title: str
    tags: tuple[str, ...]
    messages: list[Message]
    new_from: int
    turn: int
    ts: float

    @property
    def new_messages(self) -> list[Message]:
        """The messages this save adds (``messages[new_from:]``)."""
        return self.messages[self.new_from :]


@attrs.frozen
class TagOp:
    """A tiny durable event: add ``tag`` to a session's tag set."""

    session_id: str
    tag: str


@attrs.frozen
class Corpus:
    """Real text taken from the running Python's standard library.

    ``files`` are ``(relative path, text)`` for the sorted top-level ``*.py`` files
    large enough to slice 8 KiB from; ``sentences`` are docstring sentences;
    ``identifiers`` are ``def``/``class`` names.  All tuples are in a fixed order.
    """

    files: tuple[tuple[str, str], ...]
    sentences: tuple[str, ...]
    identifiers: tuple[str, ...]


_DOCSTRING_RE = re.compile(r'"""(.*?)"""', re.DOTALL)
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+")
_IDENT_RE = re.compile(r"^\s*(?:def|class)\s+([A-Za-z_][A-Za-z0-9_]{3,})", re.MULTILINE)
_SPACE_RE = re.compile(r"\s+")


@functools.cache
def load_corpus() -> Corpus:
    """Read and index the stdlib corpus once per process (~5 MB, ~0.1 s)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files: list[tuple[str, str]] = []
    sentences: list[str] = []
    identifiers: set[str] = set()
    for path in sorted(stdlib.glob("*.py")):
        # errors="replace": a stray undecodable byte must not make the text
        # unencodable later (msgpack/JSON need valid str).
        text = path.read_text(encoding="utf-8", errors="replace")
        if len(text) >= 2 * MAX_SOURCE_BYTES:
            files.append((f"Lib/{path.name}", text))
        identifiers.update(m.group(1) for m in _IDENT_RE.finditer(text))
        for doc in _DOCSTRING_RE.findall(text):
            for sent in _SENTENCE_SPLIT_RE.split(_SPACE_RE.sub(" ", doc).strip()):
                # Keep sentence-like prose; drop doctest lines and signatures.
                if (
                    30 <= len(sent) <= 220
                    and sent[0].isupper()
                    and sent[-1] in ".!?"
                    and ">>>" not in sent
                    and sent.count("(") <= 2
                ):
                    sentences.append(sent)
    if not files or not sentences:
        raise RuntimeError(f"no usable stdlib source under {stdlib}")
    return Corpus(
        files=tuple(files),
        sentences=tuple(sentences),
        identifiers=tuple(sorted(identifiers)),
    )


_ASK_TEMPLATES = (
    "Can you look at `{ident}` in {path} and {verb} it?",
    "Please {verb} `{ident}` ({path}); the tests started failing after the last change.",
    "{Verb} the handling in `{ident}` in {path}.",
    "Why does `{ident}` behave this way? See {path}.",
    "Next, {verb} `{ident}` and keep the public API unchanged.",
    "Run the test suite, then {verb} whatever breaks around `{ident}`.",
)
_VERBS = (
    "fix",
    "refactor",
    "document",
    "simplify",
    "add tests for",
    "review",
    "speed up",
    "add type hints to",
)
_GERUNDS = ("Inspecting", "Planning", "Checking", "Tracing", "Comparing", "Reviewing")
_PROJECTS = ("cpython-fork", "webapp", "infra", "data-pipeline", "cli-tools")


def _hex_id(rng: random.Random, bits: int) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


class _Gen:
    """Message factory over one ``Random``; all randomness flows through ``rng``."""

    def __init__(self, rng: random.Random, corpus: Corpus) -> None:
        self.rng = rng
        self.corpus = corpus

    def sentences(self, lo: int, hi: int) -> str:
        rng, sents = self.rng, self.corpus.sentences
        return " ".join(sents[rng.randrange(len(sents))] for _ in range(rng.randint(lo, hi)))

    def ident(self) -> str:
        ids = self.corpus.identifiers
        return ids[self.rng.randrange(len(ids))]

    def source(self) -> tuple[str, int, str]:
        """A (path, first line number, text) slice of 200 B - 8 KiB of source."""
        rng = self.rng
        path, text = self.corpus.files[rng.randrange(len(self.corpus.files))]
        # Log-uniform size: many short outputs, a long tail up to 8 KiB, as tool
        # outputs are.
        size = int(math.exp(rng.uniform(math.log(MIN_SOURCE_BYTES), math.log(MAX_SOURCE_BYTES))))
        size = max(MIN_SOURCE_BYTES, min(MAX_SOURCE_BYTES, size))
        pos = rng.randrange(len(text) - 2 * size)
        start = text.find("\n", pos) + 1  # begin at a line start, like sed/cat output
        chunk = text[start : start + size]
        raw = chunk.encode("utf-8")
        if len(raw) > MAX_SOURCE_BYTES:  # non-ASCII text: clip on bytes
            chunk = raw[:MAX_SOURCE_BYTES].decode("utf-8", "ignore")
        line = text.count("\n", 0, start) + 1
        return path, line, chunk

    def user(self, ts: float) -> Message:
        rng = self.rng
        path = self.corpus.files[rng.randrange(len(self.corpus.files))][0]
        verb = _VERBS[rng.randrange(len(_VERBS))]
        ask = _ASK_TEMPLATES[rng.randrange(len(_ASK_TEMPLATES))].format(
            ident=self.ident(), path=path, verb=verb, Verb=verb.capitalize()
        )
        text = ask if rng.random() < 0.3 else f"{ask} {self.sentences(1, 3)}"
        return {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
            "timestamp": ts,
        }

    def assistant(self, ts: float) -> Message:
        text = self.sentences(1, 5)
        if self.rng.random() < 0.25:
            _, _, code = self.source()
            text = f"{text}\n\n```python\n{code[:600]}\n```\n\n{self.sentences(1, 2)}"
        return {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text}],
            "timestamp": ts,
        }

    def reasoning(self, ts: float) -> Message:
        gerund = _GERUNDS[self.rng.randrange(len(_GERUNDS))]
        text = f"**{gerund} `{self.ident()}`**\n\n{self.sentences(1, 3)}"
        return {
            "type": "reasoning",
            "id": f"rs_{_hex_id(self.rng, 128)}",
            "summary": [{"type": "summary_text", "text": text}],
            "timestamp": ts,
        }

    def tool_call(self, ts: float, ts_out: float) -> tuple[Message, Message]:
        rng = self.rng
        call_id = f"call_{_hex_id(rng, 96)}"
        path, line, chunk = self.source()
        kind = rng.random()
        if kind < 0.45:
            nlines = chunk.count("\n") + 1
            cmd = f"sed -n '{line},{line + nlines - 1}p' {path}"
            if rng.random() < 0.3:
                cmd = f"cat {path} | head -c {len(chunk)}"
            name = "shell"
            args = {"command": ["bash", "-lc", cmd], "workdir": "/src/project", "timeout_ms": 10000}
            output = chunk
        elif kind < 0.8:
            name = "read_file"
            args = {"path": path, "offset": line, "limit": chunk.count("\n") + 1}
            output = chunk
        else:
            # File contents travel in the arguments; the output is the short status
            # line real apply_patch tools print.
            name = "apply_patch"
            args = {
                "input": f"*** Begin Patch\n*** Update File: {path}\n@@\n{chunk}\n*** End Patch"
            }
            output = f"Success. Updated the following files:\nM {path}\n"
        call = {
            "type": "function_call",
            "name": name,
            "arguments": json.dumps(args),
            "call_id": call_id,
            "timestamp": ts,
        }
        out = {
            "type": "function_call_output",
            "call_id": call_id,
            "output": output,
            "timestamp": ts_out,
        }
        return call, out

    def turn(self, clock: float) -> tuple[list[Message], float]:
        """Messages of one turn starting at ``clock``; returns them and the end time."""
        rng = self.rng
        ts = round(clock, 3)
        msgs = [self.user(ts)]

        def tick() -> float:
            nonlocal ts
            ts = round(ts + rng.uniform(0.3, 25.0), 3)
            return ts

        # Turn shapes (messages after the prompt), by probability:
        # 10% reasoning+answer, 25% answer, 20% tool call+output,
        # 30% tool call+output+answer, 15% reasoning+tool call+output.
        shape = rng.random()
        if shape < 0.10 or shape >= 0.85:
            msgs.append(self.reasoning(tick()))
        if shape < 0.35:
            msgs.append(self.assistant(tick()))
        else:
            msgs.extend(self.tool_call(tick(), tick()))
            if 0.55 <= shape < 0.85:
                msgs.append(self.assistant(tick()))
        return msgs, ts


@attrs.define
class _Session:
    session_id: str
    title: str
    tags: tuple[str, ...]
    turns: int
    messages: list[Message] = attrs.field(factory=list)


def _new_session(rng: random.Random, agent: int, turns: int) -> _Session:
    sid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    project = _PROJECTS[rng.randrange(len(_PROJECTS))]
    # The title is filled in from the first prompt once that exists.
    return _Session(sid, "", (f"agent-{agent}", project), turns)


def _title_from(msg: Message) -> str:
    text: str = msg["content"][0]["text"]
    words = text.split()
    title = " ".join(words[:9])
    return title if len(title) <= 72 else title[:71] + "…"


@attrs.define
class Workload:
    """A deterministic multi-agent save workload (see module docstring).

    ``sessions`` sessions with lengths drawn uniformly from
    ``[turns // 2, turns + turns // 2]`` (mean ``turns``), worked on by ``agents``
    concurrent simulated agents.  Built eagerly in ``__init__`` (~0.45 s for 200 x 50,
    plus ~0.3 s once per process to read the corpus)
    so every peer is fed the very same objects by :meth:`iter_saves`.
    """

    seed: int = 0
    sessions: int = 200
    turns: int = 50
    agents: int = 4
    _sessions: list[_Session] = attrs.field(init=False, factory=list, repr=False)
    # (session index, new_from, end, turn, ts) per save, in save order.
    _schedule: list[tuple[int, int, int, int, float]] = attrs.field(
        init=False, factory=list, repr=False
    )
    _fingerprint: str | None = attrs.field(init=False, default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.sessions < 1 or self.turns < 1 or self.agents < 1:
            raise ValueError("sessions, turns and agents must be >= 1")
        rng = random.Random(self.seed)
        gen = _Gen(rng, load_corpus())
        lo, hi = max(1, self.turns // 2), self.turns + self.turns // 2
        next_session = 0
        done_turns: list[int] = []  # per session index
        # Heap of (agent clock, agent, session index or -1 when idle); ties are
        # broken by agent number so the merge order is fully determined.
        heap = [
            (_EPOCH + rng.uniform(0.0, 30.0), agent, -1)
            for agent in range(min(self.agents, self.sessions))
        ]
        heapq.heapify(heap)
        while heap:
            clock, agent, idx = heapq.heappop(heap)
            if idx < 0 or done_turns[idx] >= self._sessions[idx].turns:
                if next_session == self.sessions:
                    continue  # no more work: this agent retires
                idx, next_session = next_session, next_session + 1
                self._sessions.append(_new_session(rng, agent, rng.randint(lo, hi)))
                done_turns.append(0)
            sess = self._sessions[idx]
            new_from = len(sess.messages)
            msgs, end_ts = gen.turn(clock)
            if not sess.title:
                sess.title = _title_from(msgs[0])
            sess.messages.extend(msgs)
            done_turns[idx] += 1
            self._schedule.append((idx, new_from, len(sess.messages), done_turns[idx], end_ts))
            # Think time before the agent's next save: the jitter that interleaves
            # the agents' sessions.
            heapq.heappush(heap, (end_ts + rng.expovariate(1 / 20.0), agent, idx))
        # Agents are merged by when their turns *start*, but a save happens when a
        # turn ends: order the stream by save time (stable, so ties keep the
        # deterministic merge order; a session's own saves are already ordered).
        self._schedule.sort(key=lambda e: e[4])

    # -- the save stream -------------------------------------------------------

    def iter_saves(self) -> Iterator[SaveOp]:
        """All saves in schedule order (one per turn, sessions interleaved)."""
        sessions = self._sessions
        for idx, new_from, end, turn, ts in self._schedule:
            s = sessions[idx]
            yield SaveOp(s.session_id, s.title, s.tags, s.messages[:end], new_from, turn, ts)

    @property
    def n_saves(self) -> int:
        """Number of :class:`SaveOp` that :meth:`iter_saves` yields."""
        return len(self._schedule)

    @property
    def n_messages(self) -> int:
        """Total number of messages over all sessions (after the last save)."""
        return sum(len(s.messages) for s in self._sessions)

    @property
    def session_ids(self) -> tuple[str, ...]:
        """Session ids in creation order."""
        return tuple(s.session_id for s in self._sessions)

    def messages_of(self, session_id: str) -> list[Message]:
        """The final message list of a session (for checking loads)."""
        for s in self._sessions:
            if s.session_id == session_id:
                return s.messages
        raise KeyError(session_id)

    def all_messages(self) -> list[Message]:
        """Every message of every session (e.g. for the msgpack speed probe)."""
        return [m for s in self._sessions for m in s.messages]

    def session_blobs(self) -> list[bytes]:
        """msgpack of each session's final message list (for the zstd speed probe)."""
        return [msgpack.packb(s.messages, use_bin_type=True) for s in self._sessions]

    @functools.cached_property
    def total_bytes(self) -> int:
        """Logical payload size: sum of msgpack-encoded sizes of all messages."""
        packer = msgpack.Packer(use_bin_type=True)
        return sum(len(packer.pack(m)) for s in self._sessions for m in s.messages)

    # -- other deterministic op streams ----------------------------------------

    def tag_ops(self, n: int, writers: int = 1) -> list[list[TagOp]]:
        """``n`` tag events split over ``writers`` lists, one per concurrent writer.

        Writer ``w`` only touches sessions ``i`` with ``i % writers == w`` (as
        separate agents would); every tag is new, so every event changes state.
        """
        if writers < 1:
            raise ValueError("writers must be >= 1")
        rng = random.Random(f"tags:{self.seed}")
        ids = self.session_ids
        out: list[list[TagOp]] = [[] for _ in range(writers)]
        for k in range(n):
            w = k % writers
            mine = ids[w::writers] or ids
            out[w].append(TagOp(mine[rng.randrange(len(mine))], f"label-{k}"))
        return out

    def long_conversation(self, turns: int = 500) -> list[SaveOp]:
        """One session of exactly ``turns`` turns, one save per turn.

        Independent of the interleaved workload (own session id and ``Random``),
        for comparing save latency at turn 1 and turn ``turns``.
        """
        rng = random.Random(f"long:{self.seed}")
        gen = _Gen(rng, load_corpus())
        sess = _new_session(rng, 0, turns)
        clock = _EPOCH
        bounds: list[tuple[int, int, float]] = []
        for _ in range(turns):
            msgs, end_ts = gen.turn(clock)
            if not sess.title:
                sess.title = _title_from(msgs[0])
            start = len(sess.messages)
            sess.messages.extend(msgs)
            bounds.append((start, len(sess.messages), end_ts))
            clock = end_ts + rng.expovariate(1 / 20.0)
        return [
            SaveOp(sess.session_id, sess.title, sess.tags, sess.messages[:end], start, i + 1, ts)
            for i, (start, end, ts) in enumerate(bounds)
        ]

    def fingerprint(self) -> str:
        """Short hex digest of all sessions and the save schedule.

        sha256 over a msgpack encoding whose key order is fixed by construction,
        so equal data gives equal digests across runs (same Python stdlib).
        """
        if self._fingerprint is None:
            h = sha256()
            packer = msgpack.Packer(use_bin_type=True)
            h.update(packer.pack([self.seed, self.sessions, self.turns, self.agents]))
            for s in self._sessions:
                h.update(packer.pack([s.session_id, s.title, list(s.tags), s.messages]))
            h.update(packer.pack(self._schedule))
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint


def source_payloads(messages: Sequence[Message]) -> Iterator[str]:
    """The source-text slices in ``messages`` (tool outputs and patch bodies)."""
    names: dict[str, str] = {}
    for m in messages:
        if m["type"] == "function_call":
            names[m["call_id"]] = m["name"]
            if m["name"] == "apply_patch":
                body: str = json.loads(m["arguments"])["input"]
                _, _, rest = body.partition("\n@@\n")
                yield rest.removesuffix("\n*** End Patch")
        elif m["type"] == "function_call_output" and names.get(m["call_id"]) != "apply_patch":
            yield m["output"]
