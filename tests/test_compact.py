"""Compaction, retention and purge: cleanup that never loses what it must keep."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import msgpack
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from journal import (
    ConversationSnapshot,
    HorizonError,
    InputText,
    JournalBusy,
    JournalError,
    Message,
    MessageSnapshot,
    SessionMetadata,
    SessionNotFound,
    SessionState,
    SessionStore,
)
from journal._compact import plan_cut
from journal._fs import FileSystem
from journal._log import Journal
from tests.conftest import PYTHON, child_env
from tests.faultfs import FaultFS, run_fault_loop

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def message(text: str, turn: int = 0) -> MessageSnapshot:
    return MessageSnapshot(Message("user", [InputText(text)]), T0, turn)


class History:
    """Drives a store with small, deterministic sessions."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store
        self.convs: dict[UUID, ConversationSnapshot] = {}

    def save(self, sid: UUID, texts: list[str], *, extend: bool = True) -> None:
        old = self.convs.get(sid)
        msgs = list(old.messages) if (old is not None and extend) else []
        msgs += [message(t, len(msgs)) for t in texts]
        conv = ConversationSnapshot(sid, msgs)
        self.convs[sid] = conv
        meta = SessionMetadata(sid, f"title {sid.hex[:4]}", T0, T0, T0 + timedelta(len(msgs)))
        self.store.save_session(sid, meta, conv, SessionState(cursor_position=len(msgs)))


def answers(view: Any) -> dict[str, Any]:
    """Everything a user can ask of a store or a point-in-time view."""
    sessions = view.list_sessions()
    out: dict[str, Any] = {
        "list": [
            (m.id, m.title, m.tags, m.is_favorite, m.last_accessed, m.message_count,
             tuple(c.id for c in m.checkpoints))
            for m in sessions
        ],
        "search": [m.id for m in view.search_sessions("bug")],
    }
    for m in sessions:
        _, conv, state = view.load_session(m.id)
        out[f"load {m.id}"] = (conv, state)
        for c in m.checkpoints:
            out[f"ckpt {m.id} {c.id}"] = view.load_checkpoint(m.id, c.id)
    return out


def verify(root: Path) -> None:
    """Every record readable, every payload decodable (what `agcx verify` checks)."""
    with SessionStore.open(root, readonly=True) as s:
        for rec in s.journal.scan():
            s.journal.decode(rec)


# -- equivalence ---------------------------------------------------------------------------

_ops = st.lists(
    st.tuples(
        st.sampled_from(
            ["save", "save", "save", "rewrite", "delete", "tag", "untag", "rename", "favorite",
             "checkpoint", "drop_checkpoint", "touch", "seal"]
        ),
        st.integers(0, 3),
        st.text(alphabet="abc xyz", max_size=30),
    ),
    min_size=1,
    max_size=35,
)


def _apply(h: History, sids: list[UUID], op: str, i: int, text: str) -> None:
    s, sid = h.store, sids[i]
    alive = s.session_exists(sid)
    if op in ("save", "rewrite"):
        h.save(sid, [text or "-", text[::-1] or "+"], extend=op == "save" and alive)
    elif not alive:
        return
    elif op == "delete":
        s.delete_session(sid)
        h.convs.pop(sid, None)
    elif op == "tag":
        s.tag(sid, "bug" if i % 2 else "wip")
    elif op == "untag":
        s.untag(sid, "bug")
    elif op == "rename":
        s.rename(sid, text)
    elif op == "favorite":
        s.set_favorite(sid, bool(len(text) % 2))
    elif op == "touch":
        s.touch(sid)
    elif op == "checkpoint":
        s.create_checkpoint(sid, uuid4(), h.convs[sid], SessionState(), name=text)
    elif op == "drop_checkpoint":
        for c in s.list_checkpoints(sid)[:1]:
            s.delete_checkpoint(sid, c.id)
    elif op == "seal":
        s.journal.seal_active()


@settings(max_examples=30)
@given(ops=_ops, more=_ops, seg=st.sampled_from([4096, 8192, 1 << 20]))
def test_compaction_answers_every_query_and_later_point_in_time_exactly_as_before(
    tmp_path_factory: pytest.TempPathFactory, ops: list[Any], more: list[Any], seg: int
) -> None:
    root = tmp_path_factory.mktemp("eq") / "j"
    sids = [uuid4() for _ in range(4)]
    with SessionStore.open(root, segment_size=seg, max_chain=3, durability="flush") as s:
        h = History(s)
        for op in ops:
            _apply(h, sids, op[0], op[1], op[2])
        s.journal.seal_active()
        for op in more:  # records after the cut, some of them in sealed segments
            _apply(h, sids, op[0], op[1], op[2])
        last = s.journal.last_seq
        prefix = plan_cut(s.journal, timedelta(0))
        cut = max((seg.last_seq for seg in prefix if seg.count), default=0)
        before = {p: answers(s.at(p)) for p in range(cut, last + 1)}
        live_before = answers(s)
        report = s.compact(timedelta(0))
        horizon = report.horizon_seq
        assert horizon == cut
        assert answers(s) == live_before
        for p in range(0, last + 1):
            if p >= horizon:
                assert answers(s.at(p)) == before[p], p
            else:
                with pytest.raises(HorizonError, match=f"seq {horizon}"):
                    s.at(p)
        # A second compaction after more history merges with the first.
        _apply(h, sids, "save", 0, "again")
        s.journal.seal_active()
        live = answers(s)
        s.compact(timedelta(0))
        assert answers(s) == live
    with SessionStore.open(root, segment_size=seg) as s:
        assert answers(s) == live
    verify(root)


def test_compaction_keeps_recent_segments_and_the_active_one(tmp_path: Path) -> None:
    with SessionStore.open(tmp_path / "j", segment_size=4096) as s:
        h = History(s)
        for k in range(30):
            h.save(UUID(int=k % 3 + 1), [f"m{k}" * 20])
        before = answers(s)
        assert s.compact(timedelta(days=7)).records_after == 0  # nothing is old enough
        assert s.statistics().horizon_seq == 0
        report = s.compact(timedelta(0))
        active = s.journal.manifest.segments[-1]
        assert not active.sealed and report.horizon_seq < active.base_seq
        assert answers(s) == before


def test_a_point_in_time_before_the_horizon_names_the_earliest_recoverable_time(
    tmp_path: Path,
) -> None:
    with SessionStore.open(tmp_path / "j", segment_size=4096) as s:
        h = History(s)
        for k in range(40):
            h.save(UUID(int=k % 2 + 1), [f"m{k}" * 30])
        report = s.compact(timedelta(0))
        assert report.horizon_time is not None
        with pytest.raises(HorizonError) as err:
            s.at(report.horizon_time - timedelta(seconds=1))
        assert report.horizon_time.isoformat() in str(err.value)
        assert err.value.earliest_seq == report.horizon_seq


def test_dry_run_says_what_would_be_reclaimed_and_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "j"
    with SessionStore.open(root, segment_size=4096, max_chain=4) as s:
        h = History(s)
        for k in range(60):
            h.save(UUID(int=k % 4 + 1), [f"turn {k} " * 10])
        files = sorted(p.name for p in (root / "segments").iterdir())
        stats = s.statistics()
        dry = s.compact(timedelta(0), dry_run=True)
        assert dry.dry_run and dry.reclaimed_bytes > 0
        # The statistics' figure is the default retention's dry run.
        assert stats.reclaimable_bytes == s.compact(dry_run=True).reclaimed_bytes
        assert sorted(p.name for p in (root / "segments").iterdir()) == files
        real = s.compact(timedelta(0))
        assert real.records_after == dry.records_after
        assert abs(real.bytes_after - dry.bytes_after) <= 64 * real.segments_after


def test_a_compacted_journal_shrinks_to_within_1_5x_of_one_full_save_per_live_session(
    tmp_path: Path,
) -> None:
    sids = [UUID(int=k + 1) for k in range(8)]
    # A short max_chain: full saves every 8, each superseding the ones before.
    with SessionStore.open(tmp_path / "j", segment_size=1 << 16, max_chain=8) as s:
        h = History(s)
        # Enough turns for the superseded records to outweigh the live ones
        # 5 to 1 (delta saves carry only the metadata keys that changed).
        for turn in range(60):
            for sid in sids:
                h.save(sid, [f"{sid.hex[:6]} turn {turn}: " + os.urandom(40).hex()])
        s.delete_session(sids[0])
        convs = dict(h.convs)
        s.journal.seal_active()
        grown = s.statistics().total_size_bytes
        s.compact(timedelta(0))
        compacted = s.statistics().total_size_bytes
    with SessionStore.open(tmp_path / "once") as once:
        for sid in sids[1:]:
            meta = SessionMetadata(sid, "t", T0, T0, T0)
            once.save_session(sid, meta, convs[sid], SessionState())
        one_full_save_each = once.statistics().total_size_bytes
    assert compacted < grown / 5
    assert compacted <= 1.5 * one_full_save_each


# -- crash safety: every step of compaction fails or "crashes" in turn ---------------------


def _history(root: Path) -> dict[str, Any]:
    with SessionStore.open(root, segment_size=4096, max_chain=4) as s:
        h = History(s)
        for k in range(24):
            h.save(UUID(int=k % 3 + 1), [f"turn {k} " * 8])
            if k == 5:
                s.create_checkpoint(UUID(int=1), UUID(int=99), h.convs[UUID(int=1)], SessionState())
            if k == 9:
                s.tag(UUID(int=2), "bug")
        s.delete_session(UUID(int=3))
        h.save(UUID(int=4), ["after the delete"])
        s.journal.seal_active()
        return answers(s)


@pytest.mark.parametrize(
    ("err", "persistent"),
    [(errno.EIO, False), (errno.ENOSPC, True)],
    ids=["one-shot EIO", "persistent ENOSPC (a crash: nothing after it runs)"],
)
def test_a_fault_at_any_step_of_compaction_leaves_the_old_or_the_new_journal(
    tmp_path: Path, err: int, persistent: bool
) -> None:
    template = tmp_path / "template"
    expected = _history(template)

    def workload(root: Path, fs: FaultFS) -> None:
        shutil.copytree(template, root)
        with SessionStore.open(root, fs=fs, segment_size=4096) as s:
            s.compact(timedelta(0))

    def check(root: Path, fs: FaultFS, error: BaseException | None) -> None:
        if error is not None:
            assert str(error), "the error the user saw says nothing"
        with SessionStore.open(root, segment_size=4096) as s:
            assert answers(s) == expected
            horizon = s.statistics().horizon_seq
        verify(root)
        with SessionStore.open(root, segment_size=4096) as s:
            # Leftovers of the interrupted compaction are gone; it can run again.
            s.compact(timedelta(0))
            assert answers(s) == expected
            assert s.statistics().horizon_seq >= horizon
        with SessionStore.open(root, readonly=True) as s:
            listed = {seg.name for seg in s.journal.manifest.segments}
        assert {p.name for p in (root / "segments").iterdir()} == listed

    report = run_fault_loop(workload, check, tmp_path / "runs", err=err, persistent=persistent)
    assert report.injected > 20


def test_a_compaction_or_purge_refuses_to_run_beside_another(tmp_path: Path) -> None:
    with SessionStore.open(tmp_path / "j") as s:
        History(s).save(UUID(int=1), ["x"])
        with s.journal.rewrite_lock():
            holder = subprocess.run(
                [PYTHON, "-c", (
                    "import sys; from datetime import timedelta; from journal import SessionStore\n"
                    f"s = SessionStore.open({str(tmp_path / 'j')!r})\n"
                    "try:\n    s.compact(timedelta(0))\n"
                    "except Exception as e:\n    print(type(e).__name__)\n"
                )],
                capture_output=True, text=True, env=child_env(), timeout=60,
            )
        assert holder.stdout.strip() == JournalBusy.__name__


# -- concurrency -----------------------------------------------------------------------------


def test_appends_from_a_thread_and_another_process_during_compaction_all_survive(
    tmp_path: Path,
) -> None:
    root = tmp_path / "j"
    with SessionStore.open(root, segment_size=4096) as s:
        h = History(s)
        for k in range(60):
            h.save(UUID(int=k % 5 + 1), [f"old {k} " * 10])
        s.journal.seal_active()
        child = subprocess.Popen(
            [PYTHON, "-c", (
                "import sys\nfrom datetime import datetime, timezone\nfrom uuid import UUID\n"
                "from journal import *\n"
                f"s = SessionStore.open({str(root)!r}, segment_size=4096)\n"
                "t = datetime(2025, 1, 1, tzinfo=timezone.utc)\nmsgs = []\n"
                "sid = UUID(int=1000)\n"
                "print('ready', flush=True)\n"
                "for k in range(150):\n"
                "    item = Message('user', [InputText(f'child {k}')])\n"
                "    msgs.append(MessageSnapshot(item, t, k))\n"
                "    s.save_session(sid, SessionMetadata(sid, 'child', t, t, t),"
                " ConversationSnapshot(sid, msgs), SessionState())\n"
                "    seen = {m.id for m in s.list_sessions()}\n"
                "    assert UUID(int=1) in seen, 'the child lost sight of the parent sessions'\n"
                "print(len(s.load_session(sid)[1].messages), flush=True)\n"
            )],
            stdout=subprocess.PIPE, text=True, env=child_env(),
        )
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        stop = threading.Event()
        thread_saves: list[int] = []

        def agent() -> None:
            sid = UUID(int=2000)
            msgs: list[MessageSnapshot] = []
            while not stop.is_set() or len(msgs) < 50:
                msgs.append(message(f"thread {len(msgs)}", len(msgs)))
                meta = SessionMetadata(sid, "thread", T0, T0, T0)
                s.save_session(sid, meta, ConversationSnapshot(sid, msgs), SessionState())
                thread_saves.append(len(msgs))

        t = threading.Thread(target=agent)
        t.start()
        reports = [s.compact(timedelta(0)) for _ in range(3)]
        stop.set()
        t.join()
        out, _ = child.communicate(timeout=120)
        assert child.returncode == 0 and out.strip() == "150"
        assert any(r.records_after for r in reports)
        assert len(s.load_session(UUID(int=2000))[1].messages) == thread_saves[-1]
        assert len(s.load_session(UUID(int=1000))[1].messages) == 150
        for k in range(5):
            assert s.load_session(UUID(int=k + 1))[1] == h.convs[UUID(int=k + 1)]
    verify(root)


# -- purge -------------------------------------------------------------------------------------


def _all_bytes_under(root: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in root.rglob("*") if p.is_file()]


def _decompressed(data: bytes, dictionaries: Sequence[bytes] = ()) -> bytes:
    """Every zstd frame found in ``data``, decompressed, and their nested blobs
    (recursively). A frame made with a dictionary is decompressed with each of
    ``dictionaries`` (the raw dictionaries the journal held) until one fits."""
    out = []
    magic = b"\x28\xb5\x2f\xfd"
    decompressors = [zstandard.ZstdDecompressor()] + [
        zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(d))
        for d in dictionaries
    ]
    start = data.find(magic)
    while start != -1:
        for dec in decompressors:
            try:
                raw = dec.decompressobj().decompress(data[start:])
            except zstandard.ZstdError:
                continue
            out.append(raw)
            try:
                obj = msgpack.unpackb(raw, raw=False, strict_map_key=False)
            except Exception:
                break
            values = obj.values() if isinstance(obj, dict) else ()
            blobs = [v for v in values if isinstance(v, bytes)]
            out += blobs
            out += [_decompressed(b, dictionaries) for b in blobs]
            break
        start = data.find(magic, start + 1)
    return b"".join(out)


def test_purge_leaves_no_byte_of_the_session_anywhere_under_the_root(tmp_path: Path) -> None:
    root = tmp_path / "j"
    secret = "SECRET-" + uuid4().hex
    victim, other = UUID(int=7), UUID(int=8)
    with SessionStore.open(root, segment_size=4096) as s:
        h = History(s)
        for k in range(20):
            h.save(other, [f"other {k} " * 5])
            h.save(victim, [f"{secret} pasted in turn {k} " * 3])
        s.tag(victim, secret[:20])
        s.rename(victim, f"title with {secret}")
        s.create_checkpoint(victim, UUID(int=70), h.convs[victim], SessionState(), name=secret)
        s.compact(timedelta(0))
        other_before = s.load_session(other)
        for k in range(5):
            h.save(victim, [f"{secret} later {k}"])
        middle = s.journal.last_seq - 2
        assert victim in {m.id for m in s.at(middle).list_sessions()}
    # Another process's snapshot may hold the victim's title and tags too.
    with SessionStore.open(root) as s:
        pass
    with SessionStore.open(root) as s:
        report = s.purge(victim, actor="privacy-test")
        assert report.records_removed > 0
        assert not s.session_exists(victim)
        assert s.load_session(other) == other_before
        assert victim not in {m.id for m in s.at(middle).list_sessions()}
        history = s.history(victim)
        assert [e.event for e in history] == ["SessionPurged"]
    marker = secret.encode()
    for path, data in _all_bytes_under(root):
        assert marker not in data, path
        assert marker[:20] not in _decompressed(data), path
    with SessionStore.open(root) as s:
        assert s.load_session(other) == other_before
        assert not s.session_exists(victim)
    verify(root)


def test_purge_removes_the_snapshots_even_when_they_cannot_be_written_again(
    tmp_path: Path,
) -> None:
    """The snapshots on disk hold the victim's title. Writing new ones fails (a full
    disk: snapshots are only a cache, so that is not an error); the old ones must
    still be gone when the purge returns."""
    root = tmp_path / "j"
    secret = "SECRET-" + uuid4().hex
    victim = UUID(int=7)
    with SessionStore.open(root) as s:
        h = History(s)
        h.save(victim, ["hello"])
        h.save(UUID(int=8), ["other"])
        s.rename(victim, f"title {secret}")
    assert secret.encode() in (root / "projections" / "index.snap").read_bytes()

    class NoSpaceForSnapshots(FileSystem):
        def open(self, path: str, flags: int, mode: int = 0o600) -> int:
            if "projections" in path and flags & os.O_CREAT:
                raise OSError(errno.ENOSPC, "No space left on device (injected)", path)
            return super().open(path, flags, mode)

    with SessionStore.open(root, fs=NoSpaceForSnapshots()) as s:
        s.purge(victim)
        for path, data in _all_bytes_under(root):
            assert secret.encode() not in data + _decompressed(data), path


def test_purging_an_unknown_session_is_refused(tmp_path: Path) -> None:
    with SessionStore.open(tmp_path / "j") as s:
        History(s).save(UUID(int=1), ["x"])
        with pytest.raises(SessionNotFound):
            s.purge(UUID(int=2))
        with pytest.raises(JournalError):
            s.purge("not-a-uuid")
        assert s.journal.last_seq == 1



class _CompactsOnceWhileOpening(FileSystem):
    """A reader's file system: the first time it opens a rewritten segment, another
    compaction switches the manifest and removes that file first (the race a
    reader without the lock can meet)."""

    def __init__(self, compact: Any) -> None:
        self.compact = compact
        self.raced = False

    def open(self, path: str, flags: int, mode: int = 0o600) -> int:
        if not self.raced and "-r" in os.path.basename(path):
            self.raced = True
            self.compact()
        return super().open(path, flags, mode)


def test_a_reader_whose_manifest_is_replaced_while_it_opens_the_segments_reads_the_new_one(
    tmp_path: Path,
) -> None:
    root = tmp_path / "j"
    sid = uuid4()
    with SessionStore.open(root, segment_size=4096, durability="flush") as s:
        h = History(s)
        for k in range(30):
            h.save(sid, [f"turn {k} " * 20])
        s.journal.seal_active()
        s.compact(timedelta(0))

        def compact_again() -> None:
            h.save(sid, ["one more"])
            s.journal.seal_active()
            s.compact(timedelta(0))

        fs = _CompactsOnceWhileOpening(compact_again)
        with Journal.open(root, readonly=True) as r:
            r._fs = fs  # from here on: the reader meets the race on its next refresh
            h.save(sid, ["seen by the reader"])
            s.journal.seal_active()
            s.compact(timedelta(0))
            r.refresh()
            assert fs.raced
            assert r.manifest.generation == s.journal.manifest.generation
            assert [x.seq for x in r.scan()] == [x.seq for x in s.journal.scan()]
