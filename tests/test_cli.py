"""The ``agcx`` command line, run as a real child process.

One journal per module is built in-process and shared; commands that write
(recover targets, import, compact, purge, damage for verify) work on copies.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import attrs
import pytest

from journal import (
    ConversationSnapshot,
    EventType,
    InputText,
    Journal,
    Message,
    MessageSnapshot,
    SessionMetadata,
    SessionState,
    SessionStore,
)
from journal._format import decode_manifest, encode_manifest
from projections import EventStatistics, ProjectionRunner, SessionContents, SessionIndex
from tests import legacy_writer as W
from tests.conftest import PYTHON, ROOT, child_env
from tools._demo import DemoFacts, fill
from tools._when import UsageError, parse_duration, parse_when

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
TWIN_A = UUID("aaaa1111-0000-4000-8000-000000000001")
TWIN_B = UUID("aaaa2222-0000-4000-8000-000000000002")


# -- running agcx -------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = child_env()
    env.pop("AGCX_ROOT", None)
    env["COLUMNS"] = "160"
    return env


ENV = _env()


def agcx(
    *args: str, root: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    cmd = [PYTHON, "-m", "tools.cli"]
    if root is not None:
        cmd += ["--root", str(root)]
    cmd += list(args)
    return subprocess.run(
        cmd,
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def agcx_json(*args: str, root: Path | None = None, code: int = 0) -> Any:
    r = agcx(*args, "--json", root=root)
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    return json.loads(r.stdout)


def fails(r: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    """The command failed with ``code`` and one line ``agcx: ...`` naming ``words``."""
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("agcx: "), r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


def tree(root: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def segments(root: Path) -> list[Path]:
    return sorted((root / "segments").glob("*.agcx"))


def twin(sid: UUID, title: str) -> tuple[SessionMetadata, ConversationSnapshot]:
    meta = SessionMetadata(id=sid, title=title, created_at=T0, updated_at=T0, last_accessed=T0)
    msg = MessageSnapshot(
        item=Message(role="user", content=(InputText(f"hello from {title}"),)),
        timestamp=T0,
        turn_index=0,
    )
    return meta, ConversationSnapshot(sid, (msg,))


# -- fixtures -----------------------------------------------------------------------------


@attrs.frozen
class Demo:
    root: Path
    facts: DemoFacts
    tree: dict[str, tuple[str, int]]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """The demo history (plus two sessions sharing an id prefix), several segments."""
    root = tmp_path_factory.mktemp("cli") / "journal"
    with SessionStore.open(root, segment_size=4096, durability="none") as store:
        facts = fill(store)
        for sid, title in ((TWIN_A, "twin a"), (TWIN_B, "twin b")):
            meta, conv = twin(sid, title)
            store.save_session(sid, meta, conv, SessionState())
    return Demo(root, facts, tree(root))


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A journal of 200 small events in 5 segments (4 sealed), for damage."""
    root = tmp_path_factory.mktemp("raw") / "journal"
    with Journal.open(root, segment_size=4096, preallocate=0, durability="none") as j:
        for k in range(200):
            j.append(EventType.SESSION_TOUCHED, {"v": 1, "i": k, "pad": "x" * (k % 60)})
    assert len(segments(root)) >= 5
    return root


@pytest.fixture
def damaged(raw: Path, tmp_path: Path) -> Iterator[Path]:
    copy = tmp_path / "journal"
    shutil.copytree(raw, copy)
    yield copy


def demo_copy(demo: Demo, tmp_path: Path) -> Path:
    copy = tmp_path / "journal"
    shutil.copytree(demo.root, copy)
    return copy


# -- help and usage -----------------------------------------------------------------------


def test_help_shows_examples_and_exit_codes() -> None:
    r = agcx("--help")
    assert r.returncode == 0
    for word in ("examples:", "exit codes:", "seq:N", "2h ago", "recover", "verify", "demo"):
        assert word in r.stdout
    r = agcx("bogus")
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_usage_errors_exit_2_with_one_line(demo: Demo) -> None:
    fails(agcx("ls", "--at", "2024-05-01T10:42:00", root=demo.root), 2, "no zone", "Z")
    fails(agcx("ls", "--at", "yesterday-ish", root=demo.root), 2, "bad time")
    fails(agcx("ls", "--at", "seq:100000", root=demo.root), 2, "future")
    fails(agcx("show", "aaaa", root=demo.root), 2, "matches 2 sessions")
    fails(agcx("show", "ffffffff", root=demo.root), 2, "no session")
    fails(agcx("log", "--type", "Nope", root=demo.root), 2, "unknown event type")


def test_a_directory_that_is_not_a_journal_exits_1(tmp_path: Path) -> None:
    fails(agcx("ls", root=tmp_path / "nothing"), 1, "not an agcx journal")
    fails(agcx("verify", root=tmp_path / "nothing"), 1, "not a directory")


# -- read commands ------------------------------------------------------------------------


def test_info(demo: Demo) -> None:
    doc = agcx_json("info", root=demo.root)
    assert doc["root"] == str(demo.root)
    assert doc["records"] == doc["last_seq"] >= demo.facts.events
    assert len(doc["segments"]) >= 2 and doc["segments"][0]["sealed"] is True
    assert doc["segments"][-1]["sealed"] is False
    assert sum(s["records"] for s in doc["segments"]) == doc["records"]
    assert doc["horizon"] == {"seq": 0, "ts": None}
    assert doc["projections"]["state"] == "current"
    assert doc["projections"]["seq"] == doc["last_seq"]
    human = agcx("info", root=demo.root)
    assert human.returncode == 0 and "horizon" in human.stdout and "sealed" in human.stdout


def test_ls_filters_and_points_in_time(demo: Demo) -> None:
    doc = agcx_json("ls", root=demo.root)
    titles = {s["title"] for s in doc["sessions"]}
    assert doc["at_seq"] is None and len(titles) == 5
    assert "Explore the segment format" not in titles  # deleted by the retention cleanup
    first = doc["sessions"][0]
    assert set(first) >= {"id", "title", "message_count", "current_mode", "tags", "last_accessed"}
    bug = agcx_json("ls", "--tag", "bug", root=demo.root)["sessions"]
    assert [s["title"] for s in bug] == ["Fix flaky retry test"]
    fav = agcx_json("ls", "--favorites", root=demo.root)["sessions"]
    assert [s["is_favorite"] for s in fav] == [True]
    before = agcx_json("ls", "--at", f"seq:{demo.facts.before_cleanup}", root=demo.root)
    assert before["at_seq"] == demo.facts.before_cleanup
    assert "Explore the segment format" in {s["title"] for s in before["sessions"]}
    human = agcx("ls", root=demo.root)
    assert human.returncode == 0
    assert "Fix flaky retry test" in human.stdout and "last accessed" in human.stdout


def test_show_a_session_by_prefix(demo: Demo) -> None:
    fix = demo.facts.sessions[0]
    doc = agcx_json("show", fix.hex[:6], root=demo.root)
    assert doc["metadata"]["id"] == str(fix)
    assert doc["metadata"]["tags"] == ["bug", "ci"]
    items = [m["item"] for m in doc["conversation"]["messages"]]
    assert {"message", "reasoning", "function_call", "function_call_output"} <= {
        i["type"] for i in items
    }
    call = next(i for i in items if i["type"] == "function_call")
    assert json.loads(call["arguments"])["command"][0] == "pytest"
    human = agcx("show", str(fix), root=demo.root)
    assert human.returncode == 0
    for word in ("Fix flaky retry test", "tool call shell", "$ pytest -q", "assert 51.2"):
        assert word in human.stdout


def test_show_a_checkpoint_and_a_deleted_session_in_the_past(demo: Demo) -> None:
    feat = demo.facts.sessions[1]
    meta = agcx_json("show", feat.hex[:8], root=demo.root)["metadata"]
    [cp] = meta["checkpoints"]
    doc = agcx_json("show", feat.hex[:8], "--checkpoint", cp["id"][:6], root=demo.root)
    assert doc["checkpoint"]["name"] == "plan agreed"
    assert len(doc["conversation"]["messages"]) == cp["message_index"] == 3
    old = demo.facts.deleted[0]
    fails(agcx("show", old.hex[:8], root=demo.root), 2, "no session")
    past = agcx_json(
        "show", old.hex[:8], "--at", f"seq:{demo.facts.before_cleanup}", root=demo.root
    )
    assert past["metadata"]["title"] == "Explore the segment format"


def test_log_filters_on_session_type_and_seq(demo: Demo) -> None:
    events = agcx_json("log", root=demo.root)["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert set(events[0]) == {
        "seq",
        "ts",
        "ts_ns",
        "event",
        "type",
        "session",
        "summary",
        "actor",
        "bytes",
    }
    assert events[demo.facts.before_cleanup]["summary"] == "deleted (retention)"
    feat = demo.facts.sessions[1]
    tags = agcx_json(
        "log", "--session", feat.hex[:8], "--type", "TagsChanged,session_renamed", root=demo.root
    )["events"]
    assert [e["summary"] for e in tags] == [
        "tags +feature +wip",
        "renamed to 'Add --json to the export command'",
        "tags -wip",
    ]
    assert all(e["session"] == str(feat) for e in tags)
    tail = agcx_json("log", "--since", "seq:3", "--until", "seq:9", "--last", "2", root=demo.root)
    assert [e["seq"] for e in tail["events"]] == [8, 9]
    recent = agcx_json("log", "--since", "1h ago", root=demo.root)["events"]
    assert len(recent) == len(events)
    human = agcx("log", "--last", "3", root=demo.root)
    assert human.returncode == 0 and "SessionSaved" in human.stdout


def test_stats_and_export(demo: Demo) -> None:
    st = agcx_json("stats", root=demo.root)
    assert st["total_sessions"] == 5 and st["total_checkpoints"] == 1
    assert st["events_by_type"]["SessionDeleted"] == 1
    assert st["live_bytes"] + st["reclaimable_bytes"] > 0
    fix = demo.facts.sessions[0]
    r = agcx("export", fix.hex[:8], root=demo.root)
    assert r.returncode == 0
    doc = json.loads(r.stdout)
    assert set(doc) == {"metadata", "conversation", "state"}
    assert doc["conversation"]["messages"][0]["item"]["content"][0]["type"] == "input_text"
    md = agcx("export", fix.hex[:8], "--format", "markdown", root=demo.root)
    assert md.returncode == 0
    assert md.stdout.startswith("# Fix flaky retry test")
    assert "### tool call `shell`" in md.stdout and "```" in md.stdout


def test_verify_and_replay_an_intact_journal(demo: Demo) -> None:
    doc = agcx_json("verify", root=demo.root)
    assert doc["intact"] is True and doc["problems"] == []
    assert doc["records"] == doc["last_seq"] and doc["segments"] >= 2
    assert doc["events"]["SessionSaved"] >= 6
    human = agcx("verify", root=demo.root)
    assert human.returncode == 0 and "intact" in human.stdout
    rep = agcx_json("replay", root=demo.root)
    assert rep["ok"] is True and rep["mismatches"] == []
    assert rep["snapshot_seq"] == rep["seq"] == doc["last_seq"]
    assert rep["events"] == doc["records"] and rep["events_per_second"] > 0
    part = agcx_json("replay", "--until", f"seq:{demo.facts.before_cleanup}", root=demo.root)
    assert part["seq"] == demo.facts.before_cleanup and part["ok"] is True


def test_read_commands_never_wrote_anything(demo: Demo) -> None:
    # Every command above ran against this journal read-only.
    assert tree(demo.root) == demo.tree


# -- log --follow -------------------------------------------------------------------------


def test_log_follow_prints_events_as_they_land(tmp_path: Path) -> None:
    root = tmp_path / "j"
    with Journal.open(root, durability="none") as j:
        j.append(EventType.SESSION_TOUCHED, {"v": 1, "at": 0})
        start = j.last_seq
    cmd = [PYTHON, "-m", "tools.cli", "--root", str(root), "log", "--follow", "--json"]
    cmd += ["--since", f"seq:{start}", "--max-events", "2", "--timeout", "30"]
    cmd += ["--type", "TagsChanged"]
    child = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        with Journal.open(root, durability="none") as j:
            j.append(EventType.SESSION_TOUCHED, {"v": 1, "at": 1})  # filtered out
            j.append(EventType.TAGS_CHANGED, {"v": 1, "add": ["a"], "rm": []})
            time.sleep(0.3)
            j.append(EventType.TAGS_CHANGED, {"v": 1, "add": [], "rm": ["a"]})
        out, _ = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 0
    lines = [json.loads(x) for x in out.splitlines()]
    assert [(e["seq"], e["summary"]) for e in lines] == [
        (start + 2, "tags +a"),
        (start + 3, "tags -a"),
    ]


def test_log_follow_stops_on_ctrl_c_with_exit_0(tmp_path: Path) -> None:
    root = tmp_path / "j"
    with Journal.open(root, durability="none") as j:
        j.append(EventType.SESSION_TOUCHED, {"v": 1, "at": 0})
    cmd = [PYTHON, "-m", "tools.cli", "--root", str(root), "log", "--follow", "--timeout", "30"]
    child = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        first = child.stdout.readline()
        assert "SessionTouched" in first
        child.send_signal(signal.SIGINT)
        child.wait(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 0


# -- verify finds every injected fault ----------------------------------------------------


def _records_of(root: Path, seg: Path) -> list[Any]:
    base = int(seg.name[:20])
    with Journal.open(root, readonly=True) as j:
        return [r for r in j.scan() if r.segment == base]


def inject(root: Path, fault: str) -> tuple[str, int | None, str]:
    """Damage ``root``; return (segment file, offset or None, words the report must hold)."""
    segs = segments(root)
    if fault == "bitflip":
        rec = _records_of(root, segs[1])[4]
        raw = bytearray(segs[1].read_bytes())
        raw[rec.offset + 30] ^= 0x04
        segs[1].write_bytes(bytes(raw))
        return segs[1].name, rec.offset, "checksum"
    if fault == "truncated":
        size = segs[2].stat().st_size
        with open(segs[2], "r+b") as f:
            f.truncate(size - 7)
        return segs[2].name, size - 7, "manifest says"
    if fault == "missing":
        segs[3].unlink()
        return segs[3].name, None, "missing"
    if fault == "manifest":
        m = decode_manifest((root / "MANIFEST").read_bytes(), "MANIFEST")
        infos = list(m.segments)
        infos[0] = attrs.evolve(infos[0], count=infos[0].count + 1)
        (root / "MANIFEST").write_bytes(encode_manifest(attrs.evolve(m, segments=tuple(infos))))
        return segs[0].name, None, "the manifest says"
    raise AssertionError(fault)


@pytest.mark.parametrize("fault", ["bitflip", "truncated", "missing", "manifest"])
def test_verify_finds_each_fault_and_names_its_location(damaged: Path, fault: str) -> None:
    seg, offset, word = inject(damaged, fault)
    before = tree(damaged)
    doc = agcx_json("verify", root=damaged, code=1)
    assert doc["intact"] is False
    hits = [p for p in doc["problems"] if p["path"] == f"segments/{seg}" and word in p["reason"]]
    assert hits, doc["problems"]
    if offset is not None:
        assert offset in {p["offset"] for p in hits}
    assert tree(damaged) == before  # verify never changes anything


def test_verify_reports_every_fault_in_one_run(damaged: Path) -> None:
    found = [inject(damaged, f) for f in ("bitflip", "truncated", "missing", "manifest")]
    r = agcx("verify", root=damaged)
    assert r.returncode == 1
    for seg, offset, _ in found:
        where = f"segments/{seg}" + (f" at offset {offset}" if offset is not None else "")
        assert where in r.stdout, (where, r.stdout)
    assert "problems found" in r.stdout


def test_verify_without_a_manifest_still_reads_every_segment(damaged: Path) -> None:
    (damaged / "MANIFEST").unlink()
    doc = agcx_json("verify", root=damaged, code=1)
    assert [p["path"] for p in doc["problems"]] == ["MANIFEST"]
    assert "missing" in doc["problems"][0]["reason"]
    assert doc["records"] == 200 and doc["segments"] == len(segments(damaged))


# -- replay against a wrong snapshot ------------------------------------------------------


def test_replay_detects_a_snapshot_that_differs_from_the_log(demo: Demo, tmp_path: Path) -> None:
    root = demo_copy(demo, tmp_path)
    with Journal.open(root, durability="none") as j:
        index = SessionIndex()
        runner = ProjectionRunner(
            j,
            [index, SessionContents(), EventStatistics()],
            snap_dir=str(root / "projections"),
        )
        runner.catch_up()
        index.sessions.pop(next(iter(index.sessions)))  # a wrong state, well-formed snap
        runner.persist()
    doc = agcx_json("replay", root=root, code=1)
    assert doc["ok"] is False and "index" in doc["mismatches"][0]


# -- recover ------------------------------------------------------------------------------


def test_recover_at_a_point_and_use_the_result(demo: Demo, tmp_path: Path) -> None:
    out = tmp_path / "restored"
    seq = demo.facts.before_cleanup
    doc = agcx_json("recover", "--at", f"seq:{seq}", "--out", str(out), root=demo.root)
    assert doc["seq"] == seq and doc["records"] == seq and doc["target"] == str(out)
    with (
        SessionStore.open(out, readonly=True) as rec,
        SessionStore.open(demo.root, readonly=True) as src,
    ):
        assert [m.id for m in rec.list_sessions()] == [m.id for m in src.at(seq).list_sessions()]
    fails(agcx("recover", "--at", f"seq:{seq}", "--out", str(out), root=demo.root), 2, "not empty")
    fails(agcx("recover", "--out", str(tmp_path / "x"), root=demo.root), 2, "exactly one")
    r = agcx("recover", "--at", "2000-01-01T00:00:00", "--out", str(tmp_path / "y"), root=demo.root)
    fails(r, 2, "no zone")


def test_recover_salvage_reports_what_it_skipped(damaged: Path, tmp_path: Path) -> None:
    seg, offset, _ = inject(damaged, "bitflip")
    doc = agcx_json("recover", "--salvage", "--out", str(tmp_path / "s"), root=damaged, code=1)
    [skip] = doc["skipped"]
    assert (skip["segment"], skip["start"]) == (seg, offset)
    assert doc["records"] == 199
    r = agcx("recover", "--salvage", "--out", str(tmp_path / "s2"), root=damaged)
    assert r.returncode == 1 and f"skipped: segments/{seg} offsets {offset}.." in r.stdout
    assert agcx("verify", root=tmp_path / "s").returncode == 0


def test_recover_salvage_of_an_intact_journal_exits_0(raw: Path, tmp_path: Path) -> None:
    doc = agcx_json("recover", "--salvage", "--out", str(tmp_path / "s"), root=raw)
    assert doc["intact"] is True and doc["records"] == 200


# -- commands that write ------------------------------------------------------------------


def test_import_legacy_files(tmp_path: Path) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    sid = UUID("1e9ac700-0000-4000-8000-000000000001")
    meta, conv = twin(sid, "legacy session")
    for d in (good, bad):
        W.write_session_file(d, meta, conv, SessionState())
    (bad / "sessions" / f"{UUID(int=77)}.agcx").write_bytes(b"AGCX\x02\x00\x00\x00garbage")
    root = tmp_path / "journal"
    dry = agcx_json("import", str(good), "--dry-run", root=root)
    assert dry["dry_run"] is True and dry["sessions_imported"] == 1 and dry["problems"] == []
    assert not root.exists()  # a dry run writes nothing, not even a new journal
    done = agcx_json("import", str(good), root=root)
    assert done["sessions_imported"] == 1
    again = agcx_json("import", str(bad), root=root, code=1)
    assert again["already_imported"] == 1 and len(again["problems"]) == 1
    assert agcx_json("ls", root=root)["sessions"][0]["title"] == "legacy session"


def test_compact_and_purge(demo: Demo, tmp_path: Path) -> None:
    root = demo_copy(demo, tmp_path)
    dry = agcx_json("compact", "--dry-run", root=root)
    assert dry["dry_run"] is True
    done = agcx_json("compact", "--retain", "0s", root=root)
    assert done["dry_run"] is False and done["horizon_seq"] > 0
    fails(agcx("ls", "--at", "seq:1", root=root), 2, "horizon", f"seq {done['horizon_seq']}")
    fix = demo.facts.sessions[0]
    fails(agcx("purge", fix.hex[:8], root=root), 2, "--yes")
    purged = agcx_json("purge", fix.hex[:8], "--yes", root=root)
    assert purged["session_id"] == str(fix)
    assert str(fix) not in {s["id"] for s in agcx_json("ls", root=root)["sessions"]}
    assert agcx("verify", root=root).returncode == 0


# -- the demo -----------------------------------------------------------------------------


def test_demo_tours_a_fresh_journal_in_seconds(tmp_path: Path) -> None:
    started = time.monotonic()
    r = agcx("demo", root=tmp_path / "demo")
    elapsed = time.monotonic() - started
    assert r.returncode == 0, r.stderr
    for word in (
        "$ agcx ls",
        "$ agcx log",
        "--at seq:",
        "is alive here",
        "$ agcx verify",
        "intact",
    ):
        assert word in r.stdout
    assert elapsed < 10
    fails(agcx("demo", root=tmp_path / "demo"), 2, "not empty")


def test_every_read_command_has_json(demo: Demo) -> None:
    # Cheap: argparse only. Each read command accepts --json (and the global --json).
    for cmd in ("info", "ls", "show", "log", "verify", "replay", "recover", "stats"):
        r = agcx(cmd, "--help")
        assert r.returncode == 0 and "--json" in r.stdout, cmd
    env_doc = subprocess.run(
        [PYTHON, "-m", "tools.cli", "--json", "stats"],
        cwd=ROOT,
        env={**ENV, "AGCX_ROOT": str(demo.root)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert env_doc.returncode == 0 and json.loads(env_doc.stdout)["total_sessions"] == 5


def test_when_and_duration_forms() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_when("seq:42", now) == 42
    assert parse_when("now", now) == now
    assert parse_when("2h ago", now) == now - timedelta(hours=2)
    assert parse_when("30m ago", now) == now - timedelta(minutes=30)
    assert parse_when("7d ago", now) == now - timedelta(days=7)
    assert parse_when("2024-05-01T10:42:00Z", now) == datetime(2024, 5, 1, 10, 42, tzinfo=UTC)
    assert parse_when("2024-05-01 12:42+02:00", now) == datetime(2024, 5, 1, 10, 42, tzinfo=UTC)
    for bad, words in [
        ("2024-05-01T10:42", "no zone"),
        ("2024-05-01", "no time of day and zone"),
        ("2024-05-01+02:00", "no time of day and zone"),
        ("5 parsecs ago", "unknown unit"),
        ("tomorrow", "RFC 3339"),
    ]:
        with pytest.raises(UsageError, match=words):
            parse_when(bad, now)
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration("90s") == timedelta(seconds=90)
    with pytest.raises(UsageError):
        parse_duration("7")
