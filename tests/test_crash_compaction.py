"""Power loss at any point of a compaction and a purge (crash-state enumeration).

The history is written first (durable, not recorded); then a compaction and a
purge run through the recording file system. For every prefix of their file
operations, each state a power loss could leave must open as the old or the
new journal: every live session answers as before, the purged session is
either intact (purge not acknowledged) or gone, and once the purge was
acknowledged no byte of it is anywhere under the root. With dictionaries, one
of them is trained on the purged session's messages and holds them verbatim.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from journal import SessionState, SessionStore
from journal._dictionary import read_dictionary_event
from journal._events import EventType, upcast
from journal._format import pack_record
from tests._store_worker import QuickTrainer
from tests.faultfs import CrashState, HarnessFS, enumerate_crash_states, report_figures
from tests.test_compact import History, _decompressed, answers

SEG = 4096
SECRET = "PURGE-ME-7f3a9c"
VICTIM = UUID(int=3)


def _history(base: Path, dictionaries: bool = False) -> None:
    with SessionStore.open(base / "j", segment_size=SEG, max_chain=3) as s:
        if dictionaries:
            s._trainer = QuickTrainer(train_bytes=200)
        h = History(s)
        for k in range(14):
            h.save(UUID(int=k % 3 + 1), [f"turn {k} " * 6])
            if k == 4:
                s.create_checkpoint(UUID(int=1), UUID(int=90), h.convs[UUID(int=1)], SessionState())
            if k == 6:
                s.tag(UUID(int=2), "bug")
        if dictionaries:
            s.journal.seal_active()  # the next samples, the victim's first, train one
        h.save(VICTIM, [f"{SECRET} in a message"])
        s.rename(VICTIM, f"{SECRET} as a title")  # in the index snapshot written on close
        if dictionaries:
            h.save(UUID(int=2), ["sampled with the victim " * 3])
            h.save(UUID(int=1), ["compressed with that dictionary " * 4])
            assert _trained_on(s, VICTIM)
        else:  # (the dictionary stays in the active segment, for the purge to find)
            s.journal.seal_active()
        h.save(UUID(int=1), ["after the cut"])
        # A torn record of the victim's at the end of the active segment: the
        # next writer's open keeps its bytes in quarantine/.
        seg = s.journal._segs[-1]
        path, end = seg.path, seg.scanned_to
    torn = pack_record(10**6, 1, 7, 0, VICTIM.bytes, f"{SECRET} torn".encode() * 4)[:-3]
    with open(path, "r+b") as f:
        f.seek(end)
        f.write(torn)
    with SessionStore.open(base / "j", segment_size=SEG):
        pass
    assert any(SECRET.encode() in q.read_bytes() for q in (base / "j/quarantine").iterdir())
    assert SECRET.encode() in (base / "j/projections/index.snap").read_bytes()


def _dictionaries(root: Path) -> list[bytes]:
    """The raw dictionaries in the journal (to look inside frames compressed with them)."""
    with SessionStore.open(root, segment_size=SEG, readonly=True) as s:
        return [
            read_dictionary_event(upcast(r.event_type, s.journal.decode(r)))[0]
            for r in s.journal.scan()
            if r.event_type == EventType.DICTIONARY_TRAINED
        ]


def _trained_on(s: SessionStore, sid: UUID) -> bool:
    return any(
        sid.bytes in read_dictionary_event(upcast(r.event_type, s.journal.decode(r)))[1]
        for r in s.journal.scan()
        if r.event_type == EventType.DICTIONARY_TRAINED
    )


def _expected(base: Path) -> dict[str, Any]:
    with SessionStore.open(base / "j", segment_size=SEG, readonly=True) as s:
        return answers(s)


def test_power_loss_at_any_step_of_compaction_and_purge_leaves_the_old_or_the_new_journal(
    tmp_path: Path,
) -> None:
    _run(tmp_path, dictionaries=False)


def test_the_same_with_a_dictionary_trained_on_the_purged_session(tmp_path: Path) -> None:
    _run(tmp_path, dictionaries=True)


def _run(tmp_path: Path, dictionaries: bool) -> None:
    before: dict[str, Any] = {}
    after_purge: dict[str, Any] = {}
    dicts: list[bytes] = []

    def setup(base: Path) -> None:
        _history(base, dictionaries)
        dicts.extend(_dictionaries(base / "j"))
        assert not dictionaries or dicts
        before.update(_expected(base))
        after_purge.update(
            {k: v for k, v in before.items() if str(VICTIM) not in k and k != "list"}
        )

    def workload(base: Path, fs: HarnessFS) -> None:
        with SessionStore.open(base / "j", segment_size=SEG, fs=fs) as s:
            s.compact(timedelta(0))
            fs.ack("compacted")
            s.purge(VICTIM)
            fs.ack("purged")

    def check(base: Path, state: CrashState) -> None:
        root = base / "j"
        if "purged" in state.acked:
            # As the power cut left it, before anything opens it (a close
            # rewrites the snapshots): no byte of the victim, raw or inside
            # any zstd frame, with or without a dictionary.
            for f in root.rglob("*"):
                if f.is_file():
                    data = f.read_bytes()
                    assert SECRET.encode() not in data + _decompressed(data, dicts), f
        with SessionStore.open(root, segment_size=SEG) as s:  # a writer: cleans leftovers
            got = answers(s)
            for rec in s.journal.scan():
                s.journal.decode(rec)
            trained_on_victim = _trained_on(s, VICTIM)
        if "purged" in state.acked:
            assert {k: v for k, v in got.items() if k != "list"} == after_purge
            assert not trained_on_victim
            for f in root.rglob("*"):
                if f.is_file():
                    data = f.read_bytes()
                    assert SECRET.encode() not in data + _decompressed(data, dicts), f
        elif any(str(VICTIM) in k for k in got):
            assert got == before
        else:  # the purge's SessionPurged was written, its rewrite not yet complete
            assert {k: v for k, v in got.items() if k != "list"} == after_purge

    report = enumerate_crash_states(workload, check, tmp_path / "run", setup=setup, cap=60)
    what = "compaction+purge with dictionaries" if dictionaries else "compaction+purge"
    report_figures(f"crash: {what}", report.as_dict())
    assert report.checked > 50
