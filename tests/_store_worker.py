"""Shared pieces of the SessionStore tests, and a child process for the multi-process ones.

As a module it offers deterministic builders (a message is named by a key,
so every process builds the very same value from it) and :class:`Oracle`, a
plain in-memory model of what a :class:`journal.SessionStore` must answer.

As a script, ``python tests/_store_worker.py PLAN_JSON`` opens the store at
``plan["root"]``, prints ``ready``, waits for a line on stdin, then runs
``plan["count"]`` random operations (seeded) on its own and on the shared
sessions, printing one JSON line per operation: what it did and, for a save,
the seq it got (other operations identify themselves by a unique tag, title
or actor, which the parent finds in the journal). After each operation on a
shared session it loads that session and prints what it saw. Finally it
saves a ``hello`` session and polls ``list_sessions()`` (without reopening)
until it sees every peer's ``hello``.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from uuid import NAMESPACE_URL, UUID, uuid5

import attrs
from msgspec.structs import replace

from journal import (
    CheckpointMetadata,
    ConversationContext,
    ConversationSnapshot,
    InputText,
    Message,
    MessageMetadata,
    MessageSnapshot,
    OperatingMode,
    SessionConflict,
    SessionMetadata,
    SessionNotFound,
    SessionState,
    SessionStore,
)
from journal._dictionary import Trainer

T0 = datetime(2024, 1, 1, tzinfo=UTC)


class QuickTrainer(Trainer):
    """Trains after a few hundred bytes, on a raw-content dictionary (the recent
    samples themselves): zstd's trainer refuses a handful of tiny messages, and
    the rules of journal/_dictionary.py do not depend on how a dictionary was made."""

    def train(self) -> tuple[int, bytes, frozenset[bytes]] | None:
        with self._lock:
            base, sources = self._base, frozenset(self._sources)
            data = b"".join(self._samples)[-2048:]
        return base, data, sources


_NS = uuid5(NAMESPACE_URL, "https://agcx.test/store")


def uid(name: str) -> UUID:
    """A UUID every process derives from the same name."""
    return uuid5(_NS, name)


def message(key: str, turn: int = 0) -> MessageSnapshot:
    """The message named ``key`` (its text), the same in every process."""
    role = "assistant" if turn % 2 else "user"
    return MessageSnapshot(
        Message(role, [InputText(key)]),
        T0 + timedelta(seconds=turn),
        turn,
        MessageMetadata(message_id=uid(f"msg/{key}")),
    )


def key_of(m: MessageSnapshot) -> str:
    item = m.item
    assert isinstance(item, Message) and isinstance(item.content[0], InputText)
    return item.content[0].text


def conversation(cid: UUID, keys: Sequence[str], workdir: str = "/repo") -> ConversationSnapshot:
    return ConversationSnapshot(
        cid,
        [message(k, i) for i, k in enumerate(keys)],
        ConversationContext(working_directory=workdir),
        [(OperatingMode.BUILD, T0)],
    )


def metadata(
    sid: UUID,
    title: str,
    *,
    tags: Iterable[str] = (),
    last_accessed: datetime = T0,
    favorite: bool = False,
) -> SessionMetadata:
    return SessionMetadata(
        sid,
        title,
        T0,
        T0,
        last_accessed,
        tags=tuple(tags),
        is_favorite=favorite,
        model="gpt-test",
    )


# -- the oracle -----------------------------------------------------------------------------


@attrs.define
class OracleSession:
    meta: SessionMetadata
    conversation: ConversationSnapshot
    state: SessionState
    checkpoints: dict[UUID, tuple[CheckpointMetadata, ConversationSnapshot, SessionState]]


def comparable(meta: SessionMetadata) -> SessionMetadata:
    """``meta`` without the fields the store derives itself (sizes, checkpoints)."""
    return replace(meta, file_size=0, compression_ratio=1.0, checkpoints=())


class Oracle:
    """What a SessionStore must answer, as plain dictionaries."""

    def __init__(self) -> None:
        self.sessions: dict[UUID, OracleSession] = {}

    def save(
        self,
        sid: UUID,
        meta: SessionMetadata,
        conv: ConversationSnapshot,
        state: SessionState,
    ) -> None:
        # The store derives the counts from the messages (turns: the distinct
        # turn indexes, unless every one is 0).
        turns = {m.turn_index for m in conv.messages}
        meta = replace(
            meta,
            message_count=len(conv.messages),
            turn_count=meta.turn_count if turns <= {0} else len(turns),
        )
        old = self.sessions.get(sid)
        self.sessions[sid] = OracleSession(
            comparable(meta), conv, state, old.checkpoints if old else {}
        )

    def delete(self, sid: UUID) -> None:
        self.sessions.pop(sid, None)

    def _edit(self, sid: UUID, **changes: object) -> None:
        s = self.sessions.get(sid)
        if s is not None:
            s.meta = replace(s.meta, **changes)

    def change_tags(self, sid: UUID, add: Sequence[str] = (), remove: Sequence[str] = ()) -> None:
        s = self.sessions.get(sid)
        if s is None:
            return
        tags = [t for t in s.meta.tags if t not in set(remove)]
        for t in add:
            if t not in tags:
                tags.append(t)
        self._edit(sid, tags=tuple(tags))

    def set_favorite(self, sid: UUID, flag: bool) -> None:
        self._edit(sid, is_favorite=flag)

    def rename(self, sid: UUID, title: str) -> None:
        self._edit(sid, title=title)

    def touch(self, sid: UUID, at: datetime) -> None:
        self._edit(sid, last_accessed=at)

    def create_checkpoint(
        self,
        sid: UUID,
        meta: CheckpointMetadata,
        conv: ConversationSnapshot,
        state: SessionState,
    ) -> None:
        self.sessions[sid].checkpoints[meta.id] = (meta, conv, state)

    def delete_checkpoint(self, sid: UUID, cid: UUID) -> None:
        del self.sessions[sid].checkpoints[cid]

    def cleanup(self, max_age_days: float | None, max_count: int | None) -> list[UUID]:
        """The seed's rule. Ages must be chosen far from the cutoff: the oracle's
        "now" is not the store's."""
        by_age = sorted(self.sessions.values(), key=lambda s: _age_key(s.meta))
        doomed: list[UUID] = []
        if max_age_days is not None:
            cutoff = datetime.now(UTC) - timedelta(days=max_age_days)
            doomed = [
                s.meta.id
                for s in by_age
                if not s.meta.is_favorite and s.meta.last_accessed < cutoff
            ]
        if max_count is not None:
            alive = [s for s in by_age if s.meta.id not in doomed]
            excess = len(alive) - max_count
            for s in alive:
                if excess <= 0:
                    break
                if not s.meta.is_favorite:
                    doomed.append(s.meta.id)
                    excess -= 1
        order = {s.meta.id: i for i, s in enumerate(by_age)}
        doomed.sort(key=order.__getitem__)
        for sid in doomed:
            self.delete(sid)
        return doomed

    def checkpoint_list(self, sid: UUID) -> list[CheckpointMetadata]:
        metas = [c[0] for c in self.sessions[sid].checkpoints.values()]
        return sorted(metas, key=lambda c: (c.created_at, c.id.bytes))

    def listing(self) -> list[SessionMetadata]:
        """``list_sessions()`` as the oracle sees it: most recently accessed first."""
        metas = [s.meta for s in self.sessions.values()]
        return sorted(metas, key=_age_key, reverse=True)

    def search(self, query: str) -> list[SessionMetadata]:
        q = query.lower()
        return [
            m
            for m in self.listing()
            if not q or q in m.title.lower() or any(q in t.lower() for t in m.tags)
        ]

    def total_checkpoints(self) -> int:
        return sum(len(s.checkpoints) for s in self.sessions.values())


def _age_key(m: SessionMetadata) -> tuple[datetime, bytes]:
    return (m.last_accessed, m.id.bytes)


def assert_listing_matches(got: Sequence[SessionMetadata], oracle: Oracle) -> None:
    """``got`` (a ``list_sessions()`` answer) is the oracle's listing, field by field."""
    want = oracle.listing()
    assert [m.id for m in got] == [m.id for m in want]
    for g, w in zip(got, want, strict=True):
        assert comparable(g) == w
        assert g.checkpoints == tuple(oracle.checkpoint_list(g.id))
        assert g.file_size > 0
        assert g.compression_ratio > 0


# -- the child process ----------------------------------------------------------------------


def _say(obj: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def run(plan: dict[str, object]) -> None:
    root = str(plan["root"])
    w = int(plan["worker"])
    count = int(plan["count"])
    kinds = list(plan["kinds"])
    shared = [UUID(s) for s in plan["shared"]]
    base_keys = list(plan["base_keys"])
    peers = list(plan["peers"])
    rng = random.Random(int(plan["seed"]))
    own = [uid(f"w{w}/own{k}") for k in range(2)]
    # This process's idea of each session's conversation: shared ones extend the
    # common base with this process's own messages, so saves of different
    # processes never extend each other.
    local: dict[UUID, tuple[UUID, list[str]]] = {sid: (sid, []) for sid in own}
    for sid in shared:
        local[sid] = (sid, list(base_keys))
    my_tags: dict[UUID, list[str]] = {sid: [] for sid in own + shared}
    # This process's store's base for each session's metadata merge (what it
    # last saved or loaded: title and tags), logged with each save for the oracle.
    bases: dict[UUID, dict[str, object]] = {}
    store = SessionStore.open(
        root,
        lock_timeout=60,
        durability=str(plan["durability"]),
        segment_size=int(plan.get("segment_size", 64 << 20)),
    )
    if plan.get("dictionaries"):
        store._trainer = QuickTrainer(train_bytes=int(plan["dictionaries"]))
    _say({"op": "ready"})
    sys.stdin.readline()
    for i in range(count):
        kind = rng.choice(kinds)
        sid = rng.choice(shared if kind.endswith("shared") else own)
        try:
            if kind.startswith("save"):
                cid, keys = local[sid]
                if keys and rng.random() < 0.1:
                    keys = keys[: len(keys) // 2]  # a rewrite: written whole
                keys = [*keys, *(f"w{w}.{i}.{j}" for j in range(rng.randint(1, 2)))]
                local[sid] = (cid, keys)
                title = f"w{w} save {i}"
                tags = rng.choice([(), ("keep",)])
                seq = store.save_session(
                    sid,
                    metadata(sid, title, tags=tags, last_accessed=T0 + timedelta(seconds=i)),
                    conversation(cid, keys),
                    SessionState(cursor_position=i),
                )
                _say(
                    {
                        "op": "save",
                        "sid": str(sid),
                        "seq": seq,
                        "cid": str(cid),
                        "keys": keys,
                        "title": title,
                        "tags": list(tags),
                        "cursor": i,
                        "base": bases.get(sid),
                    }
                )
                bases[sid] = {"title": title, "tags": list(tags)}
            elif kind.startswith("tag"):
                tag = f"t{w}.{i}"
                store.tag(sid, tag)
                my_tags[sid].append(tag)
                _say({"op": "tag", "sid": str(sid), "tag": tag})
            elif kind.startswith("untag"):
                if not my_tags[sid]:
                    continue
                tag = my_tags[sid].pop(rng.randrange(len(my_tags[sid])))
                store.untag(sid, tag)
                _say({"op": "untag", "sid": str(sid), "tag": tag})
            elif kind.startswith("rename"):
                title = f"w{w} rename {i}"
                store.rename(sid, title)
                _say({"op": "rename", "sid": str(sid), "title": title})
            elif kind.startswith("delete"):
                actor = f"w{w}.{i}"
                store.delete_session(sid, actor=actor)
                bases.pop(sid, None)
                _say({"op": "delete", "sid": str(sid), "actor": actor})
            else:
                raise ValueError(f"unknown operation kind {kind!r}")
        except (SessionNotFound, SessionConflict) as exc:
            # A legitimate refusal: another process deleted the session (and
            # perhaps saved it again, a new life) between this one's look and
            # its commit. Nothing was written, so the oracle must not expect it.
            refused = "conflict" if isinstance(exc, SessionConflict) else "notfound"
            _say({"op": refused, "kind": kind, "sid": str(sid)})
        if sid in shared:
            try:
                meta, conv, state = store.load_session(sid)
                bases[sid] = {"title": meta.title, "tags": list(meta.tags)}
                seen: object = {
                    "cid": str(conv.id),
                    "keys": [key_of(m) for m in conv.messages],
                    "cursor": state.cursor_position,
                }
            except SessionNotFound:
                seen = None
            _say({"op": "load", "sid": str(sid), "seen": seen})
    hello = uid(f"w{w}/hello")
    store.save_session(
        hello, metadata(hello, f"hello {w}"), conversation(hello, []), SessionState()
    )
    want = {uid(f"w{p}/hello") for p in peers}
    polls = 0
    deadline = time.monotonic() + 60
    while True:
        polls += 1
        ids = {m.id for m in store.list_sessions()}
        if want <= ids or time.monotonic() > deadline:
            break
        time.sleep(0.005)
    _say({"op": "saw", "peers": sorted(str(s) for s in want & ids), "polls": polls})
    store.close()
    _say({"op": "done"})


if __name__ == "__main__":
    run(json.loads(sys.argv[1]))
