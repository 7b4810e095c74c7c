"""Several processes sharing one store: saving, tagging, renaming and deleting at once.

Each child (``tests/_store_worker.py``) logs what it did; the seqs of its
operations are its saves' return values and, for the others, the records
that carry its unique tag, title or actor. Replaying every process's
operations in seq order into a plain oracle must give exactly what the
store answers, to a store that stayed open the whole time and to a fresh
one. Every load a child made must equal some acknowledged save (never a mix
of two), and no delta may ever be written on a base other than the save
before it.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from pathlib import Path
from typing import Any
from uuid import UUID

from journal import EventType, Journal, SessionState, SessionStore
from journal._events import blob_dictionary
from journal._payloads import messages_of
from tests._store_worker import conversation, key_of, metadata, uid
from tests.conftest import PYTHON, ROOT, child_env
from tools._verify import verify

WORKER = str(ROOT / "tests" / "_store_worker.py")

Log = list[dict[str, Any]]


def run_workers(
    root: Path, plans: list[dict[str, Any]], tmp: Path, worker: str = WORKER
) -> list[Log]:
    """Start every worker (``worker``, a script), let them all go at once, and
    return their logs."""
    procs, outs = [], []
    for plan in plans:
        out = tmp / f"worker{plan['worker']}.log"
        outs.append(out)
        with open(out, "w") as f:
            procs.append(
                subprocess.Popen(
                    [PYTHON, worker, json.dumps({"root": str(root), **plan})],
                    stdin=subprocess.PIPE,
                    stdout=f,
                    text=True,
                    env=child_env(),
                )
            )
    try:
        deadline = time.monotonic() + 60
        for out, p in zip(outs, procs, strict=True):
            while '"ready"' not in out.read_text():
                assert p.poll() is None, f"worker exited early: {out.read_text()}"
                assert time.monotonic() < deadline, "worker did not start"
                time.sleep(0.01)
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            assert p.wait(timeout=120) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return [[json.loads(line) for line in out.read_text().splitlines()] for out in outs]


def plans(
    n: int, count: int, kinds: list[str], shared: list[UUID], base_keys: list[str]
) -> list[dict[str, Any]]:
    return [
        {
            "worker": w,
            "count": count,
            "kinds": kinds,
            "shared": [str(s) for s in shared],
            "base_keys": base_keys,
            "peers": [p for p in range(n) if p != w],
            "seed": 1000 + w,
            "durability": "fsync",
        }
        for w in range(n)
    ]


def seed_shared(store: SessionStore, shared: list[UUID], base_keys: list[str]) -> Log:
    """The parent's saves of the shared sessions' common base, as log lines."""
    log = []
    for sid in shared:
        cid = sid
        seq = store.save_session(
            sid, metadata(sid, "base"), conversation(cid, base_keys), SessionState()
        )
        log.append(
            {
                "op": "save",
                "sid": str(sid),
                "seq": seq,
                "cid": str(cid),
                "keys": base_keys,
                "title": "base",
                "tags": [],
                "cursor": 0,
            }
        )
    return log


def assign_seqs(root: Path, ops: Log) -> list[tuple[int, dict[str, Any]]]:
    """Each logged operation with the seq of the record it wrote, checking that
    every record in the journal is one of them."""
    by_key: dict[tuple[str, str], int] = {}
    saves: set[int] = set()
    with Journal.open(root, readonly=True) as j:
        for rec in j.scan():
            ev = j.decode(rec)
            t = rec.event_type
            if t == EventType.SESSION_SAVED:
                saves.add(rec.seq)
                continue
            if t == EventType.DICTIONARY_TRAINED:
                continue  # the store's own, not an operation of the workers
            if t == EventType.TAGS_CHANGED:
                keys = [("tag", x) for x in ev["add"]] + [("untag", x) for x in ev["rm"]]
            elif t == EventType.SESSION_RENAMED:
                keys = [("rename", ev["title"])]
            elif t == EventType.SESSION_DELETED:
                keys = [("delete", ev["actor"])]
            else:
                raise AssertionError(f"unexpected record {rec}")
            assert len(keys) == 1
            assert keys[0] not in by_key, f"written twice: {keys[0]}"
            by_key[keys[0]] = rec.seq
    out = []
    for op in ops:
        kind = op["op"]
        if kind == "save":
            seq = op["seq"]
            saves.remove(seq)
        else:
            name = {"tag": "tag", "untag": "tag", "rename": "title", "delete": "actor"}[kind]
            seq = by_key.pop((kind, op[name]))
        out.append((seq, op))
    assert not saves and not by_key, f"records no operation accounts for: {saves} {by_key}"
    return sorted(out, key=lambda x: x[0])


def merged(mine: Any, base: Any, held: Any) -> Any:
    """A save's value of one metadata field: the caller's if it changed it
    since its base, else the one held; tags merge as a set when both changed."""
    if mine == base:
        return held
    if held in (base, mine) or not isinstance(mine, list):
        return mine
    out = [x for x in held if x in mine or x not in base]
    return out + [x for x in mine if x not in base and x not in out]


def replay(ops: list[tuple[int, dict[str, Any]]]) -> dict[UUID, dict[str, Any]]:
    """The oracle: apply the operations in seq order to plain dictionaries."""
    sessions: dict[UUID, dict[str, Any]] = {}
    last_saved: dict[UUID, dict[str, Any]] = {}  # title and tags as the last save left them
    for _, op in ops:
        sid = UUID(op["sid"])
        s = sessions.get(sid)
        kind = op["op"]
        if kind == "save":
            title, tags = op["title"], list(op["tags"])
            if s is not None:  # merged against the saver's base (or the last save's)
                base = op.get("base") or last_saved[sid]
                title = merged(title, base["title"], s["title"])
                tags = merged(tags, base["tags"], s["tags"])
            sessions[sid] = {
                "cid": UUID(op["cid"]),
                "keys": op["keys"],
                "title": title,
                "tags": list(tags),
                "cursor": op["cursor"],
            }
            last_saved[sid] = {"title": title, "tags": list(tags)}
        elif s is None:
            continue  # acknowledged, but the session was deleted meanwhile: no effect
        elif kind == "delete":
            del sessions[sid]
        elif kind == "tag" and op["tag"] not in s["tags"]:
            s["tags"].append(op["tag"])
        elif kind == "untag" and op["tag"] in s["tags"]:
            s["tags"].remove(op["tag"])
        elif kind == "rename":
            s["title"] = op["title"]
    return sessions


def assert_store_is(store: SessionStore, want: dict[UUID, dict[str, Any]]) -> None:
    listing = {m.id: m for m in store.list_sessions()}
    assert set(listing) == set(want)
    for sid, w in want.items():
        m = listing[sid]
        assert (m.title, list(m.tags), m.message_count) == (w["title"], w["tags"], len(w["keys"]))
        _, conv, state = store.load_session(sid)
        assert conv == conversation(w["cid"], w["keys"])
        assert state.cursor_position == w["cursor"]


def assert_every_load_was_a_whole_save(logs: list[Log], ops: Log) -> int:
    saved: dict[str, set[tuple[str, tuple[str, ...], int]]] = {}
    for op in ops:
        if op["op"] == "save":
            saved.setdefault(op["sid"], set()).add((op["cid"], tuple(op["keys"]), op["cursor"]))
    loads = 0
    for log in logs:
        for line in log:
            if line["op"] == "load" and line["seen"] is not None:
                seen = line["seen"]
                assert (seen["cid"], tuple(seen["keys"]), seen["cursor"]) in saved[line["sid"]]
                loads += 1
    return loads


def assert_no_delta_on_a_stale_base(root: Path, ops: Log) -> int:
    """Walk each session's saves in the raw log: a delta (``base`` > 0) must
    extend exactly the save before it, with nothing deleted in between."""
    keys_at = {op["seq"]: op["keys"] for op in ops if op["op"] == "save"}
    last: dict[bytes, int | None] = {}
    deltas = 0
    with Journal.open(root, readonly=True) as j:
        for rec in j.scan():
            if rec.event_type == EventType.SESSION_DELETED:
                last[rec.session] = None
            if rec.event_type != EventType.SESSION_SAVED:
                continue
            ev = j.decode(rec)
            keys = keys_at[rec.seq]
            assert ev["n"] == len(keys)
            new = [key_of(m) for m in messages_of(ev, "messages", j.dictionaries)]
            if ev["base"]:
                deltas += 1
                prev = last.get(rec.session)
                assert prev is not None, f"seq {rec.seq}: a delta on a deleted session"
                assert keys_at[prev] == keys[: ev["base"]], f"seq {rec.seq}: stale base"
                assert len(keys_at[prev]) == ev["base"]
                assert new == keys[ev["base"] :]
            else:
                assert new == keys
            last[rec.session] = rec.seq
    return deltas


def test_processes_saving_tagging_renaming_and_deleting_at_once_match_the_replayed_oracle(
    root: Path, tmp_path: Path
) -> None:
    _mixed_workers(root, tmp_path)


def test_the_same_with_dictionaries_trained_often_in_small_segments(
    root: Path, tmp_path: Path
) -> None:
    # Each process trains its own dictionaries or takes a peer's, in 4 KiB
    # segments that the others seal under it: every blob must stay decodable.
    _mixed_workers(root, tmp_path, dictionaries=128, segment_size=4096)
    with Journal.open(root, readonly=True) as j:
        trained = [r for r in j.scan() if r.event_type == EventType.DICTIONARY_TRAINED]
        uses = [
            r
            for r in j.scan()
            if r.event_type == EventType.SESSION_SAVED
            and blob_dictionary(j.decode(r)) is not None
        ]
    assert len(trained) > 3 and len(uses) > 20
    assert verify(str(root)).intact


def _mixed_workers(root: Path, tmp_path: Path, **options: Any) -> None:
    shared = [uid("shared/0"), uid("shared/1")]
    base_keys = [f"base{i}" for i in range(3)]
    kinds = [
        "save-own", "save-own", "save-shared", "save-shared", "save-shared",
        "tag-own", "tag-shared", "untag-own", "untag-shared",
        "rename-own", "rename-shared", "delete-shared",
    ]  # fmt: skip
    with SessionStore.open(root) as watcher:  # open before, during and after
        seeded = seed_shared(watcher, shared, base_keys)
        worker_plans = [p | options for p in plans(3, 40, kinds, shared, base_keys)]
        logs = run_workers(root, worker_plans, tmp_path)
        ops = seeded + [
            {**line, "w": w}
            for w, log in enumerate(logs)
            for line in log
            if line["op"] in ("save", "tag", "untag", "rename", "delete")
        ]
        for log in logs:
            done = [line for line in log if line["op"] == "saw"]
            assert len(done) == 1 and len(done[0]["peers"]) == 2, "a peer's save was never seen"
            assert log[-1]["op"] == "done"
        hellos = [
            {
                "op": "save",
                "sid": str(uid(f"w{w}/hello")),
                "cid": str(uid(f"w{w}/hello")),
                "keys": [],
                "title": f"hello {w}",
                "tags": [],
                "cursor": 0,
                "seq": next(
                    h.seq for h in watcher.history(uid(f"w{w}/hello")) if h.event == "SessionSaved"
                ),
            }
            for w in range(3)
        ]
        ordered = assign_seqs(root, ops + hellos)
        want = replay(ordered)
        assert_store_is(watcher, want)  # saw every other process's change without reopening
    with SessionStore.open(root, snapshots=False) as fresh:
        assert_store_is(fresh, want)
    assert sum(1 for _, op in ordered if op["op"] == "delete") > 0
    writers = [op["w"] for _, op in ordered if "w" in op]
    switches = sum(1 for a, b in itertools.pairwise(writers) if a != b)
    assert switches > 20, "the processes did not run at the same time"
    assert assert_every_load_was_a_whole_save(logs, ops) > 20
    assert_no_delta_on_a_stale_base(root, ops + hellos)


def test_two_processes_saving_one_session_end_as_one_save_and_never_write_a_stale_delta(
    root: Path, tmp_path: Path
) -> None:
    sid = uid("contended")
    base_keys = [f"base{i}" for i in range(5)]
    with SessionStore.open(root) as s:
        seeded = seed_shared(s, [sid], base_keys)
    logs = run_workers(root, plans(2, 60, ["save-shared"], [sid], base_keys), tmp_path)
    saves = seeded + [line for log in logs for line in log if line["op"] == "save"]
    hello_seqs = []
    with Journal.open(root, readonly=True) as j:
        hello_seqs = [r.seq for r in j.scan() if r.session != sid.bytes]
    assert sorted([op["seq"] for op in saves] + hello_seqs) == list(range(1, 124))
    last = max(saves, key=lambda op: op["seq"])
    with SessionStore.open(root, snapshots=False) as fresh:
        meta, conv, state = fresh.load_session(sid)
    # The final state is exactly the save with the highest seq.
    assert conv == conversation(UUID(last["cid"]), last["keys"])
    assert (meta.title, state.cursor_position) == (last["title"], last["cursor"])
    assert assert_every_load_was_a_whole_save(logs, saves) == 120
    hello_ops = [{"op": "save", "seq": q, "keys": []} for q in hello_seqs]
    deltas = assert_no_delta_on_a_stale_base(root, saves + hello_ops)
    assert deltas > 0  # the check above had deltas to look at


def test_two_open_stores_see_each_others_changes_on_their_next_query(root: Path) -> None:
    with SessionStore.open(root) as a, SessionStore.open(root) as b:
        sid = uid("seen")
        assert not b.session_exists(sid)
        a.save_session(sid, metadata(sid, "from a"), conversation(sid, ["x"]), SessionState())
        assert b.get_metadata(sid).title == "from a"
        b.tag(sid, "from b")
        assert a.get_metadata(sid).tags == ("from b",)
        b.delete_session(sid)
        assert not a.session_exists(sid)
