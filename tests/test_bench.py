"""Smoke test of the ``agcx bench`` driver and its agcx adapter (a few seconds).

Runs the whole driver on a tiny workload (every store, every phase, the
child-process RSS phase included) and checks the JSON it writes; and that the
agcx adapter round-trips the workload like the peers do.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

# The repo root is not installed; make `tools` importable however pytest is run.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools import bench
from tools._bench_agcx import AgcxPeer
from tools._bench_workload import Workload

TINY = [
    "--quick",
    "--sessions",
    "6",
    "--turns",
    "3",
    "--long-turns",
    "20",
    "--tiny-sessions",
    "30",
    "--tag-events",
    "16",
]


def test_driver_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args([*TINY, "--json", str(out), "--dir", str(tmp_path)])
    assert bench.run(args) == 0
    printed = capsys.readouterr().out
    assert "== targets ==" in printed
    assert "PASS" in printed or "MISS" in printed

    res = json.loads(out.read_text())
    w = Workload(seed=0, sessions=6, turns=3, agents=4)
    assert res["workload"]["fingerprint"] == w.fingerprint()
    assert res["workload"]["saves"] == w.n_saves
    assert set(res["stores"]) == set(bench.DURABLE + bench.NONDURABLE)
    for name, f in res["stores"].items():
        assert f["saves_per_s"] > 0 and f["saves1_per_s"] > 0, name
        assert 0 < f["save_lat"]["p50"] <= f["save_lat"]["p99"], name
        assert f["size_on_disk"] > 0, name
        assert f["tags1_per_s"] > 0 and f["tags8_per_s"] > 0, name
        if not name.startswith("old-store"):  # --quick skips the old store's long one
            assert f["long_first_s"] > 0 and f["long_last_s"] > 0, name
    assert res["stores"]["agcx"]["load_native_lat"]["p50"] > 0
    a = res["agcx"]
    assert a["10x"]["records"] == 10 * a["1x"]["records"]
    assert a["10x"]["replay_events_per_s"] > 0 and a["open_state_ratio"] > 0
    assert a["1x"]["open_state_replayed"] == 0  # opened from projection state
    assert a["at_s"] > 0
    tiny = res["tiny"]
    assert set(tiny) == {"agcx", "sqlite-full", "jsonl-fsync"}
    for g in tiny.values():
        assert g["sessions"] == 30 and g["peak_rss"] >= g["baseline_rss"] > 0
    assert len(res["targets"]) == 18
    assert all(t["ok"] in (True, False) for t in res["targets"])
    m = res["machine"]
    assert m["fsync_append_s"]["p50"] > 0 and m["zstd3_compress_mb_per_s"] > 0
    # The temp dir is removed; only the JSON is left.
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]


def test_agcx_adapter_round_trip(tmp_path: Path) -> None:
    w = Workload(seed=3, sessions=5, turns=4, agents=2)
    peer = AgcxPeer("none")
    peer.open(tmp_path)
    for op in w.iter_saves():
        peer.save(op)
    sid = w.session_ids[0]
    peer.set_tag(sid, "starred")
    peer.set_tag(sid, "starred")
    peer.delete(w.session_ids[1])
    peer.delete(w.session_ids[1])
    with pytest.raises(KeyError):
        peer.load(w.session_ids[1])
    with pytest.raises(KeyError):
        peer.set_tag(w.session_ids[1], "x")
    before = peer.list_sessions()
    assert [i.session_id for i in before if i.session_id == sid]
    peer.close()

    again = AgcxPeer("none")
    again.open(tmp_path)
    assert again.list_sessions() == before
    for s in w.session_ids:
        if s != w.session_ids[1]:
            assert again.load(s) == w.messages_of(s)
    # A save after a reopen keeps the tags added before it.
    last = [op for op in w.iter_saves() if op.session_id == sid][-1]
    again.save(last)
    tags = {i.session_id: i.tags for i in again.list_sessions()}
    assert "starred" in tags[sid]
    assert again.load(sid) == w.messages_of(sid)
    # And a new session saves and loads after a reopen.
    long = w.long_conversation(2)
    for op in long:
        again.save(op)
    assert again.load(long[0].session_id) == long[1].messages
    again.close()
