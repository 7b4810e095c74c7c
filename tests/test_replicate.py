"""Replication to object storage (``journal/_replicate.py``) and restore from it.

Every behaviour is checked against both backends: ``file://`` and a real S3 API
(moto's server on loopback, started by a fixture). Faults are injected by a
proxy between the client and that server (``tests/_s3.py``). A restore goes
into an empty directory, as on a fresh machine, and is compared with the
source: the records byte for byte, and every query at the same point.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import boto3
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from journal import (
    ConversationSnapshot,
    CorruptReplica,
    EventType,
    HorizonError,
    InputText,
    Journal,
    Message,
    MessageSnapshot,
    ReplicaBusy,
    ReplicaDiverged,
    Replicator,
    ReplicaUnavailable,
    SessionMetadata,
    SessionState,
    SessionStore,
    recover_from_replica,
    verify_replica,
)
from journal._objstore import FileStore, S3Store, open_store
from tests._s3 import FaultProxy, Rule, free_port, moto_server
from tests.conftest import child_env
from tools.cli import main

SECRET = "wJalrXUtnFEMI-test-secret-never-printed"
T0 = datetime(2024, 5, 1, tzinfo=UTC)


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, s3_endpoint: str) -> str:
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTKEYID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    return s3_endpoint


@pytest.fixture
def bucket(aws_env: str) -> str:
    name = f"agcx-{uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["file", "s3"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return f"file://{tmp_path}/replica"
    return f"s3://{request.getfixturevalue('bucket')}/team/agcx"


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return tmp_path / "src"


# -- helpers ------------------------------------------------------------------------------


def open_store_at(root: Path) -> SessionStore:
    return SessionStore.open(root, durability="none", segment_size=4096)


def save(store: SessionStore, sid: UUID, n: int, title: str = "t") -> int:
    msgs = tuple(
        MessageSnapshot(
            item=Message(
                role="user",
                content=(InputText(f"{sid.hex[:6]} message {i} {_noise(sid, i)}"),),
            ),
            timestamp=T0 + timedelta(seconds=i),
            turn_index=i,
        )
        for i in range(n)
    )
    meta = SessionMetadata(id=sid, title=title, created_at=T0, updated_at=T0, last_accessed=T0)
    return store.save_session(
        sid, meta, ConversationSnapshot(sid, msgs), SessionState()
    )


def _noise(sid: UUID, i: int) -> str:
    """Text that does not compress away (so a few saves fill several segments)."""
    return hashlib.sha256(f"{sid}{i}".encode()).hexdigest() * 8


def records(root: Path, until: int | None = None) -> list[tuple[Any, ...]]:
    with Journal.open(root, readonly=True) as j:
        return [
            (r.seq, r.ts_ns, r.event_type, r.session, r.codec, bytes(r.payload))
            for r in j.scan(until_seq=until)
        ]


def answers(q: Any) -> list[Any]:
    """Every query of a store (or a point-in-time view): sessions and their contents."""
    out = []
    for m in sorted(q.list_sessions(), key=lambda m: m.id):
        out.append((m, q.load_session(m.id)))
    return out


def replica_bytes(url: str) -> dict[str, bytes]:
    st = open_store(url)
    try:
        return {o.key: st.get(o.key)[0] for o in st.list("")}  # type: ignore[index]
    finally:
        st.close()


def segment_objects(url: str) -> list[str]:
    st = open_store(url)
    try:
        return [o.key for o in st.list("segs/")]
    finally:
        st.close()


def assert_restores_exactly(url: str, out: Path, src: Path, expected: list[Any]) -> None:
    """A restore into ``out`` holds the source's records byte for byte and answers
    every query as ``expected`` (the source's answers)."""
    recover_from_replica(url, out)
    assert records(out) == records(src)
    with SessionStore.open(out, readonly=True) as restored:
        assert answers(restored) == expected


def fill(store: SessionStore, sids: list[UUID], n: int) -> None:
    for k, sid in enumerate(sids):
        save(store, sid, n + k, title=f"session {k}")


# -- restore equals the source --------------------------------------------------------------


def test_a_restore_answers_every_query_as_the_source_did_at_that_point(
    url: str, src: Path, tmp_path: Path
) -> None:
    sids = [UUID(int=i + 1) for i in range(6)]
    with open_store_at(src) as store, Replicator(src, url) as rep:
        fill(store, sids, 3)
        rep.run_once()
        store.tag(sids[0], "bug")
        fill(store, sids, 8)
        middle = store.journal.last_seq
        expected_middle = answers(store.at(middle))
        rep.run_once()
        store.delete_session(sids[1])
        store.rename(sids[2], "renamed")
        fill(store, sids[3:], 12)
        stats = rep.run_once()
        expected = answers(store)
        last = store.journal.last_seq
    assert stats.seq == last

    report = recover_from_replica(url, tmp_path / "restored")
    assert (report.seq, report.last_seq) == (last, last)
    assert records(tmp_path / "restored") == records(src)
    with SessionStore.open(tmp_path / "restored", readonly=True) as restored:
        assert answers(restored) == expected

    recover_from_replica(url, tmp_path / "at-middle", at=middle)
    assert records(tmp_path / "at-middle") == records(src, until=middle)
    with SessionStore.open(tmp_path / "at-middle", readonly=True) as restored:
        assert answers(restored) == expected_middle
    assert verify_replica(url).intact


def test_the_command_line_replicates_restores_and_verifies(
    src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"file://{tmp_path}/replica"
    with open_store_at(src) as store:
        fill(store, [UUID(int=i + 1) for i in range(4)], 5)
        expected = answers(store)
    assert main(["--root", str(src), "replicate", url, "--once"]) == 0
    assert "up to seq" in capsys.readouterr().out
    assert main(["verify", "--replica", url]) == 0
    assert "intact" in capsys.readouterr().out
    out = tmp_path / "restored"
    assert main(["recover", "--from", url, "--out", str(out)]) == 0
    assert main(["--root", str(out), "ls"]) == 0
    assert "session 3" in capsys.readouterr().out
    with SessionStore.open(out, readonly=True) as restored:
        assert answers(restored) == expected
    # A target that is not empty is refused before anything is downloaded.
    assert main(["recover", "--from", url, "--out", str(out)]) == 2


# -- what is uploaded ----------------------------------------------------------------------


def test_increments_are_uploaded_once_each_and_never_rewritten(url: str, src: Path) -> None:
    sids = [UUID(int=i + 1) for i in range(3)]
    with open_store_at(src) as store, Replicator(src, url) as rep:
        for round_ in range(12):
            fill(store, sids, 2 + round_)
            rep.run_once()
        stats = rep.run_once()  # nothing new: nothing uploaded
        journal_bytes = store.journal.statistics().bytes
        segments = store.journal.statistics().segments
    assert stats.data_bytes_put == journal_bytes  # every byte once, no re-upload
    objects = replica_bytes(url)
    ranges = [k for k in objects if k.startswith("segs/") and not k.endswith("SEALED")]
    assert sum(len(objects[k]) for k in ranges) == journal_bytes
    assert segments > 3  # the history rolled over several segments
    assert stats.objects_put == len(objects) + 1  # each object put once (+ the released lease)


# -- compaction, purge, retention ------------------------------------------------------------


def test_a_compaction_starts_a_generation_and_older_points_stay_restorable(
    url: str, src: Path, tmp_path: Path
) -> None:
    sids = [UUID(int=i + 1) for i in range(4)]
    with open_store_at(src) as store:
        fill(store, sids, 4)
        early = store.journal.last_seq
        expected_early = answers(store.at(early))
        with Replicator(src, url) as rep:
            rep.run_once()
            fill(store, sids, 9)
            store.compact(timedelta(0))
            fill(store, sids, 11)
            stats = rep.run_once()
            assert stats.generation == 2
            with pytest.raises(HorizonError):
                store.at(early)  # gone locally ...
            expected = answers(store)
    # ... but the replica still has it, from the older generation.
    recover_from_replica(url, tmp_path / "early", at=early)
    with SessionStore.open(tmp_path / "early", readonly=True) as restored:
        assert answers(restored) == expected_early
    assert_restores_exactly(url, tmp_path / "now", src, expected)
    assert verify_replica(url).intact
    # Past the retention window the older generation and its segments go.
    with Replicator(src, url, retention=timedelta(0)) as rep:
        rep.run_once()
    with pytest.raises(HorizonError):
        recover_from_replica(url, tmp_path / "too-early", at=early)
    assert sorted(k for k in replica_bytes(url) if k.startswith("gens/")) == ["gens/00000002.agcr"]
    assert verify_replica(url).intact


def test_a_purge_removes_the_session_from_the_replica_at_the_next_cycle(
    url: str, src: Path, tmp_path: Path
) -> None:
    # Random ids, not UUID(int=n): the check below counts the id's 16 bytes in
    # every object, and fifteen zero bytes and an n occur by chance in a segment
    # header (twenty reserved zero bytes, then a CRC whose first byte is n one
    # time in 256 per header).
    sids = [uuid4() for _ in range(4)]
    doomed = sids[1]
    with open_store_at(src) as store, Replicator(src, url) as rep:
        fill(store, sids, 4)
        fill(store, sids, 7)
        rep.run_once()
        store.compact(timedelta(0))  # an older generation holding the session is retained
        fill(store, sids, 9)
        rep.run_once()
        assert rep.statistics().generation == 2
        before = replica_bytes(url)
        assert sum(data.count(doomed.bytes) for data in before.values()) > 4
        store.purge(doomed)
        stats = rep.run_once()  # the very next cycle
        expected = answers(store)
    assert stats.generation == 3
    objects = replica_bytes(url)
    assert [k for k in objects if k.startswith("gens/")] == ["gens/00000003.agcr"]
    # No byte of the session is left: restore every object's segment and look.
    out = tmp_path / "restored"
    recover_from_replica(url, out)
    with Journal.open(out, readonly=True) as j:
        kinds = [r.event_type for r in j.scan() if r.session == doomed.bytes]
        assert kinds == [EventType.SESSION_PURGED]
    with SessionStore.open(out, readonly=True) as restored:
        assert answers(restored) == expected
    # The session id (in every record's clear header) is left only in that record.
    assert sum(data.count(doomed.bytes) for data in objects.values()) == 1
    assert verify_replica(url).intact


# -- two replicators ------------------------------------------------------------------------


def test_a_second_replicator_of_the_same_journal_and_replica_is_refused_naming_the_first(
    url: str, src: Path, tmp_path: Path
) -> None:
    with open_store_at(src) as store:
        fill(store, [UUID(int=1)], 3)
    with Replicator(src, url) as first:
        first.run_once()
        with pytest.raises(ReplicaBusy, match=f"pid {os.getpid()}"):
            Replicator(src, url)
        # Another journal (another machine, say) replicating to the same URL: the lease.
        other = tmp_path / "other"
        with open_store_at(other) as store:
            fill(store, [UUID(int=2)], 3)
        with pytest.raises(ReplicaBusy, match=f":{os.getpid()}"):
            Replicator(other, url)
    # Released on close: a new one starts, and refuses to mix journals.
    with pytest.raises(ReplicaDiverged, match="another URL"), Replicator(other, url) as r:
        r.run_once()
    with Replicator(src, url) as again:
        again.run_once()


# -- faults --------------------------------------------------------------------------------


@pytest.fixture
def proxy(aws_env: str) -> Iterator[FaultProxy]:
    p = FaultProxy(aws_env)
    try:
        yield p
    finally:
        p.close()


def flaky_store(bucket: str, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch) -> S3Store:
    """An S3 store through the proxy that gives up at the first failure (no retries).

    Its timeout stays the default: the proxy drops an answer instead of outwaiting
    the client (``tests/_s3.py``), so no request depends on the machine's load.
    """
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    return S3Store(bucket, "agcx", attempts=1)


def test_errors_and_timeouts_of_the_store_resume_without_gap_or_duplicate(
    bucket: str, proxy: FaultProxy, src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"s3://{bucket}/agcx"
    sids = [UUID(int=i + 1) for i in range(3)]
    faults = ["500", "503", "drop"]  # drop: stored, the answer lost (as in a timeout)
    with open_store_at(src) as store, Replicator(
        src, url, store=flaky_store(bucket, proxy, monkeypatch)
    ) as rep:
        fill(store, sids, 3)
        rep.run_once()
        failures = 0
        for round_, action in enumerate(faults * 2):
            fill(store, sids, 4 + round_)
            proxy.add(Rule("PUT", "/segs/", action))
            ranges = len(segment_objects(url))
            with pytest.raises(ReplicaUnavailable):
                rep.run_once()
            failures += 1
            # A 5xx stored nothing; a lost answer's range is there all the same.
            assert len(segment_objects(url)) == ranges + (action == "drop")
            fill(store, sids, 5 + round_)  # more arrives while the replica lags
            rep.run_once()
        stats = rep.run_once()
        assert stats.failures == failures
        expected = answers(store)
    # Every range is one link of one chain (none overlaps a lost answer's), and
    # the replica restores to exactly the journal.
    report = verify_replica(url)
    assert report.intact, report.problems
    assert_restores_exactly(url, tmp_path / "restored", src, expected)


def test_a_throttle_is_absorbed_by_the_clients_own_retries(
    bucket: str, proxy: FaultProxy, src: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    with open_store_at(src) as store:
        fill(store, [UUID(int=1)], 3)
    proxy.add(Rule("PUT", "/segs/", "503"))
    with Replicator(src, f"s3://{bucket}/agcx") as rep:
        stats = rep.run_once()
    assert stats.failures == 0 and stats.data_bytes_put > 0
    assert proxy.count(lambda m, p: m == "PUT" and "/segs/" in p) >= 2


def test_an_endpoint_that_is_down_fails_clearly_without_printing_credentials(
    bucket: str, src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with open_store_at(src) as store:
        fill(store, [UUID(int=1)], 3)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ReplicaUnavailable):
        Replicator(src, f"s3://{bucket}/agcx", store=S3Store(bucket, "agcx", attempts=1))
    monkeypatch.setattr(time, "sleep", lambda s: None)  # --once retries with backoff
    assert main(["--root", str(src), "replicate", f"s3://{bucket}/agcx", "--once"]) == 1
    assert main(["recover", "--from", f"s3://{bucket}/agcx", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "127.0.0.1" in err and SECRET not in err and "AKIATESTKEYID" not in err
    # Credentials in the URL are refused, and not echoed.
    assert main(["verify", "--replica", f"s3://AKIA:{SECRET}@{bucket}/x"]) == 2
    assert SECRET not in capsys.readouterr().err


def test_a_replicator_killed_mid_upload_resumes_without_gap_or_duplicate(
    bucket: str, proxy: FaultProxy, src: Path, tmp_path: Path
) -> None:
    url = f"s3://{bucket}/agcx"
    sids = [UUID(int=i + 1) for i in range(3)]
    with open_store_at(src) as store:
        fill(store, sids, 3)
        with Replicator(src, url) as rep:
            rep.run_once()
        fill(store, sids, 9)
        expected = answers(store)
    proxy.add(Rule("PUT", "/segs/", "hold"))
    env = dict(child_env(), AWS_ENDPOINT_URL=proxy.endpoint)
    child = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "--root", str(src), "replicate", url],
        env=env, stderr=subprocess.PIPE,
    )
    try:
        assert proxy.held.wait(60), "the replicator never uploaded"
        child.send_signal(signal.SIGKILL)  # mid-upload: the PUT is in flight
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
        assert child.stderr is not None
        child.stderr.close()
    # The lease of the dead process does not block a restart on this machine.
    with Replicator(src, url) as rep:
        rep.run_once()
    assert verify_replica(url).intact
    assert_restores_exactly(url, tmp_path / "restored", src, expected)


# -- beside writers --------------------------------------------------------------------------


def test_following_writers_a_compaction_and_a_purge_the_replica_is_always_a_prefix(
    url: str, src: Path, tmp_path: Path
) -> None:
    sids = [UUID(int=i + 1) for i in range(5)]
    with open_store_at(src) as store:
        fill(store, sids, 2)
    stop = threading.Event()
    rep = Replicator(src, url, interval=0.02)
    rep.run_once()  # a first generation exists before the writers start
    runner = threading.Thread(target=rep.run, kwargs={"stop": stop})
    runner.start()
    try:
        with open_store_at(src) as store:
            for round_ in range(25):
                fill(store, sids, 3 + round_)
                if round_ == 8:
                    # A restore taken while it runs is a prefix of the journal's
                    # records (taken before any rewrite, so they can be compared).
                    snapshot = recover_from_replica(url, tmp_path / "while-running")
                    assert records(tmp_path / "while-running") == records(
                        src, until=snapshot.seq
                    )
                if round_ == 12:
                    store.compact(timedelta(0))
                if round_ == 18:
                    store.purge(sids[0])
                    sids = sids[1:]
            expected = answers(store)
    finally:
        stop.set()
        runner.join(30)
    rep.run_once()
    rep.close()
    assert_restores_exactly(url, tmp_path / "restored", src, expected)


# -- damage --------------------------------------------------------------------------------


def test_a_damaged_object_is_reported_by_verify_and_refused_by_recover(
    src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"file://{tmp_path}/replica"
    with open_store_at(src) as store, Replicator(src, url) as rep:
        fill(store, [UUID(int=i + 1) for i in range(3)], 6)
        rep.run_once()
    victim = sorted((tmp_path / "replica" / "segs").rglob("0*-*"))[0]
    data = bytearray(victim.read_bytes())
    data[100] ^= 0x40
    victim.write_bytes(bytes(data))
    assert main(["verify", "--replica", url]) == 1
    assert "checksum mismatch" in capsys.readouterr().out
    with pytest.raises(CorruptReplica, match="checksum"):
        recover_from_replica(url, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch left


def test_a_compaction_and_a_purge_while_no_replicator_ran_are_replicated_as_a_purge(
    src: Path, tmp_path: Path
) -> None:
    url = f"file://{tmp_path}/replica"
    sids = [uuid4() for _ in range(4)]
    with open_store_at(src) as store:
        fill(store, sids, 4)
        fill(store, sids, 7)
        with Replicator(src, url) as rep:
            rep.run_once()
        store.compact(timedelta(0))  # moves the horizon ...
        fill(store, sids, 9)
        store.purge(sids[0])  # ... so only the SessionPurged record tells
        expected = answers(store)
    with Replicator(src, url) as rep:
        assert rep.run_once().generation == 2
    objects = replica_bytes(url)
    assert [k for k in objects if k.startswith("gens/")] == ["gens/00000002.agcr"]
    assert sum(data.count(sids[0].bytes) for data in objects.values()) == 1
    assert_restores_exactly(url, tmp_path / "restored", src, expected)


def test_overlapping_ranges_restore_through_the_longest_chain(src: Path, tmp_path: Path) -> None:
    # A range whose PUT timed out but was stored, and a longer one cut after it:
    # both are the same file's bytes; the restore takes the chain reaching furthest.
    url = f"file://{tmp_path}/replica"
    sids = [uuid4() for _ in range(2)]
    with open_store_at(src) as store, Replicator(src, url) as rep:
        save(store, sids[0], 2)
        rep.run_once()
        save(store, sids[0], 3)
        rep.run_once()
        save(store, sids[1], 3)
        rep.run_once()
        seg = store.journal.manifest.segments[-1].name
    files = sorted((tmp_path / "replica" / "segs" / seg).glob("0*"))
    assert len(files) >= 3
    # Join the last two ranges into one object starting where the second began.
    second, third = files[-2], files[-1]
    start = second.name.split("-")[0]
    merged = second.read_bytes() + third.read_bytes()
    rest = third.name.split("-", 1)[1]
    end = rest.split(".", 1)[0]
    digest = hashlib.sha256(merged).hexdigest()
    meta = rest.split(".")[1:3]
    (second.parent / f"{start}-{end}.{meta[0]}.{meta[1]}.{digest}").write_bytes(merged)
    third.unlink()  # only the long one reaches the end now
    recover_from_replica(url, tmp_path / "restored")
    assert records(tmp_path / "restored") == records(src)
    report = verify_replica(url)
    assert any("outside the chain" in p for p in report.problems)


def test_a_journal_rolled_back_under_its_replica_is_refused_not_mixed(
    src: Path, tmp_path: Path
) -> None:
    import shutil

    url = f"file://{tmp_path}/replica"
    sid = uuid4()
    with open_store_at(src) as store:
        save(store, sid, 1)
    shutil.copytree(src, tmp_path / "backup")
    with open_store_at(src) as store, Replicator(src, url) as rep:
        save(store, sid, 2)
        rep.run_once()
    shutil.rmtree(src)
    shutil.copytree(tmp_path / "backup", src)  # the journal restored from an older copy ...
    with open_store_at(src) as store:
        save(store, uuid4(), 2)  # ... writes other bytes where the replica has some
    before = replica_bytes(url)
    with pytest.raises(ReplicaDiverged, match="another URL"), Replicator(src, url) as rep:
        rep.run_once()
    assert replica_bytes(url) == before  # nothing written (the lease comes and goes)


def test_an_aws_profile_configures_the_endpoint_and_the_keys(
    bucket: str, aws_env: str, src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, creds = tmp_path / "aws-config", tmp_path / "aws-credentials"
    config.write_text(f"[profile team]\nregion = us-east-1\nendpoint_url = {aws_env}\n")
    creds.write_text(f"[team]\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = {SECRET}\n")
    for var in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_PROFILE", "team")
    with open_store_at(src) as store:
        fill(store, [uuid4()], 3)
        expected = answers(store)
    replicate_once = main(["--root", str(src), "replicate", f"s3://{bucket}/p", "--once"])
    assert replicate_once == 0
    assert_restores_exactly(f"s3://{bucket}/p", tmp_path / "restored", src, expected)


def test_sigterm_stops_a_running_replicator_after_its_cycle_and_releases_the_lease(
    src: Path, tmp_path: Path
) -> None:
    url = f"file://{tmp_path}/replica"
    with open_store_at(src) as store:
        fill(store, [uuid4() for _ in range(3)], 4)
    child = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "--root", str(src), "replicate", url,
         "--interval", "0.05"],
        env=child_env(), stderr=subprocess.PIPE, text=True,
    )
    try:
        lease = tmp_path / "replica" / "LEASE"
        gens = tmp_path / "replica" / "gens"
        deadline = time.monotonic() + 60
        while not (lease.exists() and gens.exists()) and time.monotonic() < deadline:
            time.sleep(0.05)  # waiting for a condition, bounded: not a timed assertion
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err
    assert "stopped at seq" in err
    assert not lease.exists()
    assert verify_replica(url).intact


# -- any schedule of faults -------------------------------------------------------------------


class FlakyFileStore(FileStore):
    """A ``file://`` store whose n-th next put fails: before storing, or after (the
    object is there, the answer lost)."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.fail_at: tuple[int, bool] | None = None  # (puts to let through, stored?)

    def put(self, key: str, data: bytes, *, if_absent: bool = False,
            if_version: str | None = None) -> str:
        if self.fail_at is not None and key != "LEASE":
            left, stored = self.fail_at
            if left == 0:
                self.fail_at = None
                if stored:
                    super().put(key, data, if_absent=if_absent, if_version=if_version)
                raise ReplicaUnavailable(f"injected failure of the put of {key}")
            self.fail_at = (left - 1, stored)
        return super().put(key, data, if_absent=if_absent, if_version=if_version)


steps = st.lists(
    st.one_of(
        st.tuples(st.just("save"), st.integers(0, 3)),
        st.tuples(st.just("cycle"), st.integers(0, 2), st.booleans()),
        st.tuples(st.just("compact")),
        st.tuples(st.just("purge"), st.integers(0, 3)),
    ),
    min_size=1,
    max_size=14,
)


@settings(max_examples=20, deadline=None)
@given(schedule=steps)
# A range stored although its put failed, then more data: the next range must not
# overlap it (the replicator lists the replica again after a failure).
@example(schedule=[("save", 0), ("cycle", 9, False), ("save", 0), ("cycle", 0, True),
                   ("save", 0), ("cycle", 9, False)])
def test_after_any_schedule_of_failed_puts_the_replica_restores_exactly(
    schedule: list[tuple[Any, ...]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp = tmp_path_factory.mktemp("schedule")
    src = tmp / "src"
    store_ = FlakyFileStore(str(tmp / "replica"))
    sids = [uuid4() for _ in range(4)]
    turns = dict.fromkeys(sids, 2)
    with open_store_at(src) as store, Replicator(src, store_.url, store=store_) as rep:
        for step in schedule:
            if step[0] == "save":
                sid = sids[step[1]]
                if sid in turns:
                    turns[sid] += 2
                    save(store, sid, turns[sid])
            elif step[0] == "cycle":
                store_.fail_at = (step[1], step[2])
                with contextlib.suppress(ReplicaUnavailable):
                    rep.run_once()
                store_.fail_at = None
            elif step[0] == "compact":
                store.compact(timedelta(0))
            elif sids[step[1]] in turns and sids[step[1]] in {m.id for m in store.list_sessions()}:
                store.purge(sids[step[1]])
                del turns[sids[step[1]]]
        rep.run_once()
        expected = answers(store)
    assert verify_replica(store_.url).intact
    assert_restores_exactly(store_.url, tmp / "restored", src, expected)
