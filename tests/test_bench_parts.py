"""Fast tests of the agcx-independent parts of ``agcx bench``.

Workload determinism and shape, peer round-trips (save/load/list/set_tag/delete,
reopen, concurrent tag writers), and that machine probes return sane numbers.
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

# The repo root is not installed; make `tools` importable however pytest is run.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools._bench_machine import (
    LatencyStats,
    fdatasync_prealloc_latency,
    fsync_append_latency,
    msgpack_mbps,
    peak_rss_bytes,
    percentile,
    proc_io_write_bytes,
    sequential_write_mbps,
    zstd_mbps,
)
from tools._bench_peers import (
    JsonlPeer,
    OldStore,
    Peer,
    SQLitePeer,
    all_peers,
    dir_size,
)
from tools._bench_workload import (
    MAX_SOURCE_BYTES,
    MIN_SOURCE_BYTES,
    Workload,
    source_payloads,
)

PEER_FACTORIES: list[Callable[[], Peer]] = [
    lambda: OldStore(durable=False),
    lambda: OldStore(durable=True),
    lambda: SQLitePeer("NORMAL"),
    lambda: SQLitePeer("FULL"),
    lambda: JsonlPeer(fsync=False),
    lambda: JsonlPeer(fsync=True),
]
PEER_IDS = [f().name for f in PEER_FACTORIES]


@pytest.fixture(scope="module")
def small() -> Workload:
    return Workload(seed=7, sessions=12, turns=6, agents=3)


# -- workload ------------------------------------------------------------------


def test_workload_is_deterministic() -> None:
    a = Workload(seed=1, sessions=5, turns=4)
    b = Workload(seed=1, sessions=5, turns=4)
    c = Workload(seed=2, sessions=5, turns=4)
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()
    assert len(a.fingerprint()) == 16
    assert list(a.iter_saves()) == list(b.iter_saves())
    assert a.long_conversation(5) == b.long_conversation(5)
    assert a.tag_ops(10, 2) == b.tag_ops(10, 2)
    assert a.total_bytes == b.total_bytes > 0


def test_turns_have_2_to_4_messages_and_sane_schedule(small: Workload) -> None:
    saved: dict[str, int] = {}
    turns: dict[str, int] = {}
    last_ts = 0.0
    for op in small.iter_saves():
        assert 2 <= len(op.new_messages) <= 4
        first = op.new_messages[0]
        assert first["type"] == "message" and first["role"] == "user"
        assert op.new_from == saved.get(op.session_id, 0)
        assert op.turn == turns.get(op.session_id, 0) + 1
        assert op.ts >= last_ts
        assert op.title and op.tags
        saved[op.session_id] = len(op.messages)
        turns[op.session_id] = op.turn
        last_ts = op.ts
    assert len(saved) == 12 == len(small.session_ids)
    assert sum(turns.values()) == small.n_saves
    assert sum(saved.values()) == small.n_messages
    # Several agents: the first saves come from different sessions.
    first_ids = [op.session_id for op in list(small.iter_saves())[:6]]
    assert len(set(first_ids)) >= 3


def test_message_shapes_and_source_sizes(small: Workload) -> None:
    msgs = small.all_messages()
    calls = {m["call_id"]: m for m in msgs if m["type"] == "function_call"}
    kinds = set()
    for m in msgs:
        kinds.add(m["type"])
        assert isinstance(m["timestamp"], float)
        if m["type"] == "message":
            part = m["content"][0]
            expected = "input_text" if m["role"] == "user" else "output_text"
            assert part["type"] == expected and part["text"]
        elif m["type"] == "function_call":
            assert m["name"] in {"shell", "read_file", "apply_patch"}
            json.loads(m["arguments"])
        elif m["type"] == "function_call_output":
            assert m["call_id"] in calls
        else:
            assert m["type"] == "reasoning"
            assert m["summary"][0]["type"] == "summary_text"
    assert kinds == {"message", "function_call", "function_call_output", "reasoning"}
    payloads = list(source_payloads(msgs))
    assert len(payloads) == len(calls)
    for text in payloads:
        assert MIN_SOURCE_BYTES <= len(text.encode("utf-8")) <= MAX_SOURCE_BYTES


def test_long_conversation(small: Workload) -> None:
    ops = small.long_conversation(20)
    assert [op.turn for op in ops] == list(range(1, 21))
    assert len({op.session_id for op in ops}) == 1
    assert ops[0].session_id not in small.session_ids
    for prev, op in itertools.pairwise(ops):
        assert op.new_from == len(prev.messages)
        assert op.messages[: op.new_from] == prev.messages


def test_tag_ops_split_by_writer(small: Workload) -> None:
    per_writer = small.tag_ops(40, writers=4)
    assert [len(w) for w in per_writer] == [10, 10, 10, 10]
    owners = [{op.session_id for op in w} for w in per_writer]
    for i, a in enumerate(owners):
        for b in owners[i + 1 :]:
            assert not a & b
    assert len({op.tag for w in per_writer for op in w}) == 40


# -- peers -----------------------------------------------------------------------


def _fill(peer: Peer, root: Path, workload: Workload) -> None:
    peer.open(root)
    for op in workload.iter_saves():
        peer.save(op)


def _expected_order(workload: Workload) -> list[str]:
    last: dict[str, float] = {}
    for op in workload.iter_saves():
        last[op.session_id] = op.ts
    return sorted(last, key=lambda s: (-last[s], s))


@pytest.mark.parametrize("factory", PEER_FACTORIES, ids=PEER_IDS)
def test_peer_round_trip(factory: Callable[[], Peer], small: Workload, tmp_path: Path) -> None:
    peer = factory()
    _fill(peer, tmp_path, small)
    ids = small.session_ids
    listing = peer.list_sessions()
    assert [i.session_id for i in listing] == _expected_order(small)
    for info in listing:
        assert info.message_count == len(small.messages_of(info.session_id))
        assert info.title
    for sid in ids:
        assert peer.load(sid) == small.messages_of(sid)

    peer.set_tag(ids[0], "starred")
    peer.set_tag(ids[0], "starred")  # idempotent
    peer.delete(ids[1])
    peer.delete(ids[1])  # no-op
    with pytest.raises(KeyError):
        peer.load(ids[1])
    with pytest.raises(KeyError):
        peer.set_tag(ids[1], "x")
    before = peer.list_sessions()
    tags0 = {i.session_id: i.tags for i in before}[ids[0]]
    assert tags0.count("starred") == 1 and len(tags0) == 3
    assert ids[1] not in {i.session_id for i in before}
    assert [i.session_id for i in before] == [s for s in _expected_order(small) if s != ids[1]]
    peer.close()
    assert peer.size_on_disk() == dir_size(tmp_path) > 0

    again = factory()
    again.open(tmp_path)
    assert again.list_sessions() == before
    assert again.load(ids[0]) == small.messages_of(ids[0])
    with pytest.raises(KeyError):
        again.load(ids[1])
    # Saving continues correctly after a reopen (created/tags are kept).
    op = small.long_conversation(2)[0]
    again.save(op)
    infos = {i.session_id: i for i in again.list_sessions()}
    assert infos[op.session_id].message_count == len(op.messages)
    assert infos[op.session_id].tags == op.tags
    assert again.load(op.session_id) == op.messages
    again.close()


@pytest.mark.parametrize("factory", PEER_FACTORIES, ids=PEER_IDS)
def test_peer_concurrent_tag_writers(
    factory: Callable[[], Peer], small: Workload, tmp_path: Path
) -> None:
    peer = factory()
    _fill(peer, tmp_path, small)
    per_writer = small.tag_ops(24, writers=4)
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for op in per_writer[w]:
                peer.set_tag(op.session_id, op.tag)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    peer.close()
    again = factory()
    again.open(tmp_path)
    tags = {i.session_id: set(i.tags) for i in again.list_sessions()}
    for w in per_writer:
        for op in w:
            assert op.tag in tags[op.session_id]
    again.close()


def test_all_peers_names_unique() -> None:
    peers = all_peers()
    assert len({p.name for p in peers}) == len(peers) == 6
    assert sorted(p.durable for p in peers) == [False] * 3 + [True] * 3


def test_jsonl_survives_torn_append_and_lru(small: Workload, tmp_path: Path) -> None:
    peer = JsonlPeer(fsync=False, max_open=2)
    _fill(peer, tmp_path, small)
    expected = peer.list_sessions()
    peer.close()
    sid = small.session_ids[0]
    with open(tmp_path / "sessions" / f"{sid}.jsonl", "ab") as f:
        f.write(b'{"type":"message","role":"user","cont')  # crash mid-append
    again = JsonlPeer()
    again.open(tmp_path)
    assert again.list_sessions() == expected
    assert again.load(sid) == small.messages_of(sid)
    again.close()


# -- machine probes ------------------------------------------------------------------


def test_percentile_and_stats() -> None:
    s = [float(i) for i in range(1, 101)]
    assert percentile(s, 50) == 50.0
    assert percentile(s, 99) == 99.0
    assert percentile(s, 100) == 100.0
    assert percentile([3.0], 99) == 3.0
    st = LatencyStats.from_samples([0.3, 0.1, 0.2])
    assert (st.n, st.p50, st.max) == (3, 0.2, 0.3)


def test_machine_probes(tmp_path: Path, small: Workload) -> None:
    for stats in (fsync_append_latency(tmp_path, 5), fdatasync_prealloc_latency(tmp_path, 5)):
        assert stats.n == 5 and 0 < stats.p50 <= stats.p99 <= stats.max
    assert sequential_write_mbps(tmp_path, 1) > 0
    z = zstd_mbps(small.session_blobs()[:3])
    assert z.encode_mbps > 0 and z.decode_mbps > 0 and 0 < z.ratio < 1
    m = msgpack_mbps(small.all_messages()[:50])
    assert m.encode_mbps > 0 and m.decode_mbps > 0
    assert list(tmp_path.iterdir()) == []  # probes clean up after themselves
    assert peak_rss_bytes() > 1 << 20
    io = proc_io_write_bytes()
    if Path("/proc/self/io").exists():
        assert io is not None and io.wchar > 0
        assert (io - io).wchar == 0
    else:
        assert io is None
