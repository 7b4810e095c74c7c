"""Secrets never reach the log (journal/_redact.py), and those already there
can be found and rewritten out (journal/_scrub.py).

Every pattern of journal/secret_patterns.toml is checked against its own
positive and negative examples; the store is checked end to end by looking
for the secrets in every byte under the journal's root, raw and decompressed
(with every dictionary the journal ever held), never by asking the code under
test.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import msgpack
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from journal import (
    ConversationContext,
    ConversationSnapshot,
    EventType,
    FunctionCallOutput,
    InvalidArgument,
    Journal,
    MessageSnapshot,
    RedactionPolicy,
    SessionState,
    SessionStore,
)
from journal._dictionary import read_dictionary_event
from journal._redact import KEY_FILE, MARKER_RE, Redactor, load_patterns
from tests._store_worker import (
    T0,
    QuickTrainer,
    comparable,
    conversation,
    message,
    metadata,
)
from tests.faultfs import FaultFS, run_fault_loop
from tools._verify import verify

PATTERNS, _, _ = load_patterns()
RULES = Redactor(RedactionPolicy(), bytes(32))

# Made-up credentials of the kinds agents handle every day.
OPENAI = "sk-proj-" + "Ab12Cd34Ef56Gh78" * 3 + "T3BlbkFJ" + "Ij90Kl12Mn34Op56Qr78"
GITHUB = "ghp_" + "0123456789abcdefghijABCDEFGHIJ012345"
AWS_ID = "AKIAIOSFODNN7EXAMPLE"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq98example\n-----END RSA PRIVATE KEY-----"
PASSWORD = "correct horse battery staple"  # a secret only by its variable's name
SECRETS = [OPENAI, GITHUB, AWS_ID, PEM, PASSWORD]


# -- the patterns ----------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", PATTERNS, ids=[p.kind for p in PATTERNS])
def test_each_pattern_redacts_its_examples_and_leaves_its_counterexamples(pattern: Any) -> None:
    assert pattern.match and pattern.no_match, "every pattern has examples of both"
    rx = re.compile(pattern.regex, re.ASCII)
    for text in pattern.match:
        assert rx.search(text), text
        out = RULES.text(text)
        assert f"[REDACTED:{pattern.kind}:" in out, text
        m = rx.search(text)
        assert m is not None and m.group(pattern.group) not in out
        # Every match holds a keyword, and the screen over encoded bytes sees
        # it inside a message, also right after a msgpack length byte that is
        # a letter (a str8 of 0x73 bytes: "s").
        assert any(k.lower() in m.group(0).lower() for k in pattern.keywords)
        assert RULES.suspect(msgpack.packb(["x", text, 1], use_bin_type=True))
        if len(text.encode()) < 0x73:
            padded = text + " " * (0x73 - len(text.encode()))
            packed = msgpack.packb(["x", padded, 1], use_bin_type=True)
            assert packed[packed.index(b"\xd9") + 1] == 0x73
            assert RULES.suspect(packed)
        assert RULES.text(out) == out  # a marker is never redacted again
    for text in pattern.no_match:
        assert not rx.search(text), text
        assert RULES.text(text) is text


def test_the_pattern_kinds_are_unique_and_fit_a_marker() -> None:
    kinds = [p.kind for p in PATTERNS]
    assert len(set(kinds)) == len(kinds)
    for kind in kinds:
        assert MARKER_RE.fullmatch(f"[REDACTED:{kind}:0123456789ab]")


_NOISE = st.text(st.characters(codec="utf-8", exclude_characters="-_"), max_size=40)


@given(_NOISE, st.sampled_from([OPENAI, GITHUB, AWS_ID, PEM]), _NOISE)
def test_a_secret_anywhere_in_a_text_is_replaced_and_the_rest_kept(
    before: str, secret: str, after: str
) -> None:
    text = f"{before} {secret} {after}"
    out = RULES.text(text)
    assert secret not in out
    assert out.startswith(f"{before} ") and out.endswith(f" {after}")
    assert RULES.text(out) == out
    assert RULES.suspect(text.encode())


@given(st.text(max_size=200))
def test_redacting_any_text_twice_changes_nothing_more(text: str) -> None:
    once = RULES.text(text)
    assert RULES.text(once) == once
    if RULES.spans(text) == []:
        assert once is text


def test_one_secret_gets_one_marker_per_journal_and_another_in_another_journal() -> None:
    a, b = Redactor(RedactionPolicy(), b"a" * 32), Redactor(RedactionPolicy(), b"b" * 32)
    assert a.text(f"{GITHUB} and {GITHUB}").count(a.text(GITHUB)) == 2
    assert a.text(GITHUB) != b.text(GITHUB)


def test_environment_variables_are_judged_by_name_and_by_value() -> None:
    env = {
        "OPENAI_API_KEY": OPENAI,
        "DB_PASSWORD": PASSWORD,
        "aws_secret_access_key": "x" * 40,
        "HOME": "/home/me",
        "SSH_PUBLIC_KEY": "ssh-ed25519 AAAAC3Nza",
        "EMPTY_TOKEN": "",
        "NOTES": f"paste {GITHUB} here",
    }
    out = dict(RULES.redact(ConversationContext(environment_variables=env)).environment_variables)
    assert out["OPENAI_API_KEY"].startswith("[REDACTED:openai-api-key:")
    assert out["DB_PASSWORD"].startswith("[REDACTED:env-secret:")
    assert out["aws_secret_access_key"].startswith("[REDACTED:env-secret:")
    assert out["HOME"] == "/home/me"
    assert out["SSH_PUBLIC_KEY"] == "ssh-ed25519 AAAAC3Nza"  # allowed by name
    assert out["EMPTY_TOKEN"] == ""
    assert out["NOTES"].startswith("paste [REDACTED:github-token:")


def test_a_policy_adds_patterns_and_names_allows_names_or_turns_it_off() -> None:
    policy = RedactionPolicy(
        extra_patterns={"acme-key": r"acme_[0-9a-f]{16}"},
        secret_names={"*_SEED"},
        allowed_names={"DB_PASSWORD"},
    )
    r = Redactor(policy, bytes(32))
    assert r.text("key acme_0123456789abcdef").startswith("key [REDACTED:acme-key:")
    env = r.redact(ConversationContext(environment_variables={"X_SEED": "7", "DB_PASSWORD": "p"}))
    assert env.environment_variables["X_SEED"].startswith("[REDACTED:env-secret:")
    assert env.environment_variables["DB_PASSWORD"] == "p"
    assert RedactionPolicy.off().enabled is False
    with pytest.raises(InvalidArgument, match="kind"):
        Redactor(RedactionPolicy(extra_patterns={"Bad Kind": "x"}), bytes(32))
    with pytest.raises(InvalidArgument, match="not valid"):
        Redactor(RedactionPolicy(extra_patterns={"k": "(?i)x"}), bytes(32))
    with pytest.raises(InvalidArgument, match="RedactionPolicy"):
        SessionStore.open("/nonexistent/never", redact="off")  # type: ignore[arg-type]


# -- the store -------------------------------------------------------------------------------


def _tool_output(text: str, turn: int) -> MessageSnapshot:
    return MessageSnapshot(FunctionCallOutput(f"call{turn}", text), T0, turn)


def _leaky(sid: UUID, turns: int = 3) -> ConversationSnapshot:
    messages = [message(f"{sid}/{i}", i) for i in range(turns)]
    messages.append(_tool_output(f"$ env\nOPENAI_API_KEY={OPENAI}\n$ cat id_rsa\n{PEM}\n", turns))
    env = {"OPENAI_API_KEY": OPENAI, "DB_PASSWORD": PASSWORD, "HOME": "/home/me"}
    return ConversationSnapshot(sid, messages, ConversationContext("/repo", env))


def _fill(s: SessionStore, sid: UUID) -> None:
    s.save_session(sid, metadata(sid, f"deploy with {GITHUB}"), _leaky(sid), SessionState())
    s.tag(sid, AWS_ID)
    s.rename(sid, f"renamed {GITHUB}")
    s.create_checkpoint(
        sid, uuid4(), _leaky(sid, 1), SessionState(search_query=OPENAI),
        name=f"before {AWS_ID}", description=PEM,
    )


def _plaintexts(root: Path, dictionaries: list[bytes]) -> Iterator[tuple[Path, bytes]]:
    """Every file under ``root``, and every zstd frame in it decompressed alone
    and with each of ``dictionaries`` (and the nested frames of those)."""
    decompressors = [zstandard.ZstdDecompressor()] + [
        zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(d))
        for d in dictionaries
    ]
    todo = [(p, p.read_bytes()) for p in root.rglob("*") if p.is_file()]
    while todo:
        path, data = todo.pop()
        yield path, data
        start = data.find(b"\x28\xb5\x2f\xfd")
        while start != -1:
            for d in decompressors:
                try:
                    todo.append((path, d.decompressobj().decompress(data[start:])))
                except zstandard.ZstdError:
                    continue
            start = data.find(b"\x28\xb5\x2f\xfd", start + 1)


def _dictionaries(root: Path) -> list[bytes]:
    with Journal.open(root, readonly=True) as j:
        return [
            read_dictionary_event(j.decode(r))[0]
            for r in j.scan()
            if r.event_type == EventType.DICTIONARY_TRAINED
        ]


def assert_no_secret_under(root: Path, dictionaries: list[bytes]) -> None:
    needles = [s.encode() for s in SECRETS] + [s.encode()[:24] for s in SECRETS]
    for path, data in _plaintexts(root, dictionaries):
        for needle in needles:
            assert needle not in data, f"{needle[:12]!r}... in {path}"


def test_a_save_keeps_no_secret_anywhere_under_the_root_and_loads_show_markers(
    root: Path,
) -> None:
    sid = uuid4()
    with SessionStore.open(root) as s:
        _fill(s, sid)
        meta, conv, _ = s.load_session(sid)
        ckpt = s.list_checkpoints(sid)[0]
        _, ck_state = s.load_checkpoint(sid, ckpt.id)
    assert meta.title.startswith("renamed [REDACTED:github-token:")
    assert meta.tags[0].startswith("[REDACTED:aws-access-key-id:")
    assert conv.context.environment_variables["HOME"] == "/home/me"
    assert conv.context.environment_variables["DB_PASSWORD"].startswith("[REDACTED:env-secret:")
    out = conv.messages[-1].item
    assert isinstance(out, FunctionCallOutput)
    assert "[REDACTED:private-key:" in out.output and "$ cat id_rsa" in out.output
    # One secret, one marker, wherever it was mentioned.
    env_marker = conv.context.environment_variables["OPENAI_API_KEY"]
    assert env_marker in out.output
    assert ckpt.name.startswith("before [REDACTED:aws-access-key-id:")
    assert ck_state.search_query == env_marker
    assert conv.messages[:3] == _leaky(sid).messages[:3]  # the rest is as saved
    assert_no_secret_under(root, [])
    assert stat.S_IMODE(os.stat(root / KEY_FILE).st_mode) == 0o600


def test_a_delta_save_redacts_only_its_new_messages_and_stays_a_delta(root: Path) -> None:
    sid = uuid4()
    with SessionStore.open(root) as s:
        conv = conversation(sid, ["a", "b"])
        s.save_session(sid, metadata(sid, "t"), conv, SessionState())
        longer = ConversationSnapshot(
            sid, [*conv.messages, _tool_output(f"token {GITHUB}", 2)], conv.context
        )
        seq = s.save_session(sid, metadata(sid, "t"), longer, SessionState())
        ev = s.journal.decode(s.journal.read(seq))
        assert ev["base"] == 2 and ev["n"] == 3
        _, back, _ = s.load_session(sid)
        # A later save of the caller's own (unredacted) list is a delta again.
        more = ConversationSnapshot(sid, [*longer.messages, message("c", 3)], conv.context)
        seq = s.save_session(sid, metadata(sid, "t"), more, SessionState())
        assert s.journal.decode(s.journal.read(seq))["base"] == 3
    assert back.messages[:2] == conv.messages
    item = back.messages[2].item
    assert isinstance(item, FunctionCallOutput)
    assert item.output.startswith("token [REDACTED:github-token:")
    assert_no_secret_under(root, [])


def test_untagging_a_redacted_tag_removes_it(root: Path) -> None:
    sid = uuid4()
    with SessionStore.open(root) as s:
        s.save_session(sid, metadata(sid, "t"), conversation(sid, ["a"]), SessionState())
        s.tag(sid, AWS_ID, "plain")
        s.untag(sid, AWS_ID)
        assert s.get_metadata(sid).tags == ("plain",)


def test_a_save_merges_its_redacted_metadata_so_an_unchanged_secret_keeps_others_changes(
    root: Path,
) -> None:
    # The agent keeps saving its own metadata, secret and all; meanwhile the
    # session is renamed and tagged elsewhere. The stored map holds markers,
    # so only a merge of the caller's map redacted compares like with like,
    # whether its base is what it saved or what it loaded (as stored).
    sid = uuid4()
    mine = metadata(sid, f"deploy with {GITHUB}", tags=[AWS_ID])
    conv = conversation(sid, ["a"])
    events = []
    with SessionStore.open(root) as person:
        with SessionStore.open(root) as agent:
            agent.save_session(sid, mine, conv, SessionState())
            person.tag(sid, "prod")
            seq = agent.save_session(sid, mine, conv, SessionState())
            events.append(agent.journal.decode(agent.journal.read(seq)))
        with SessionStore.open(root) as restarted:
            restarted.load_session(sid)  # the agent's own map: its tags as loaded
            person.rename(sid, "deploy")
            person.tag(sid, "urgent")
            mine = metadata(sid, f"deploy with {GITHUB}", tags=[AWS_ID, "prod"])
            seq = restarted.save_session(sid, mine, conv, SessionState())
            events.append(restarted.journal.decode(restarted.journal.read(seq)))
        meta = person.get_metadata(sid)
    assert meta.title == "deploy"
    assert meta.tags[0].startswith("[REDACTED:aws-access-key-id:")
    assert meta.tags[1:] == ("prod", "urgent")
    for ev in events:
        assert "ov" not in ev
        assert not {"ti", "tg"} & set(ev.get("md", ev.get("ch", ())))
    assert_no_secret_under(root, [])


def test_with_redaction_off_text_is_stored_as_given(root: Path) -> None:
    sid = uuid4()
    with SessionStore.open(root, redact=RedactionPolicy.off()) as s:
        leaky = _leaky(sid)
        s.save_session(sid, metadata(sid, GITHUB), leaky, SessionState())
        meta, conv, _ = s.load_session(sid)
    assert meta.title == GITHUB and conv == leaky
    assert not (root / KEY_FILE).exists()


def test_two_stores_of_one_journal_share_its_key_and_so_its_markers(root: Path) -> None:
    with SessionStore.open(root) as a, SessionStore.open(root) as b:
        assert a._redact(GITHUB) == b._redact(GITHUB) != GITHUB
    with SessionStore.open(root.parent / "other") as c:
        assert c._redact(GITHUB) != RULES.text(GITHUB)


# -- scan and scrub --------------------------------------------------------------------------


def _leaked_journal(root: Path, turns: int = 6) -> list[UUID]:
    """A journal written with redaction off: secrets in saves (full and delta),
    a checkpoint, tags and titles, and dictionaries trained on them."""
    ids = [uuid4() for _ in range(3)]
    with SessionStore.open(root, redact=RedactionPolicy.off(), segment_size=8192) as s:
        s._trainer = QuickTrainer(train_bytes=256)
        for k in range(turns):
            for sid in ids[:2]:
                conv = _leaky(sid, k + 1)
                s.save_session(sid, metadata(sid, f"turn {k}"), conv, SessionState())
            s.save_session(
                ids[2], metadata(ids[2], "clean"), conversation(ids[2], ["x"] * (k + 1)),
                SessionState(),
            )
        _fill(s, ids[0])
    # A quarantined tail may hold journal bytes too.
    (root / "quarantine").mkdir(exist_ok=True)
    (root / "quarantine" / "tail.bin").write_bytes(OPENAI.encode())
    return ids


def test_scan_names_every_record_with_secrets_by_seq_kind_and_session_never_the_value(
    root: Path,
) -> None:
    ids = _leaked_journal(root)
    with SessionStore.open(root, readonly=True) as s:
        found = s.scan_secrets()
    assert found
    kinds = {k for f in found for k in f.kinds}
    assert {"openai-api-key", "private-key", "github-token", "env-secret"} <= kinds
    assert {f.session_id for f in found if f.session_id} == set(ids[:2])
    assert {f.event for f in found} >= {
        "SessionSaved", "TagsChanged", "SessionRenamed", "CheckpointCreated"
    }
    text = repr(found) + repr([f.to_json() for f in found])
    assert not any(secret[:12] in text for secret in SECRETS)


def peer_title(root: Path, sid: UUID) -> str:
    with SessionStore.open(root, readonly=True) as s:
        return s.get_metadata(sid).title


def test_scrub_rewrites_every_secret_out_of_every_byte_and_keeps_everything_else(
    root: Path,
) -> None:
    ids = _leaked_journal(root)
    dictionaries = _dictionaries(root)
    assert dictionaries, "the test needs dictionaries trained on the secrets"
    # Another process, open all along: its projections hold the secret titles.
    peer = SessionStore.open(root, redact=RedactionPolicy.off())
    assert GITHUB in peer.get_metadata(ids[0]).title
    with SessionStore.open(root, redact=RedactionPolicy.off()) as s:
        clean_before = s.load_session(ids[2])
        records_before = [(r.seq, r.event_type, r.session) for r in s.journal.scan()]
        report = s.scrub_secrets(actor="test")
        assert report.records_rewritten > 0 and report.dictionaries_removed == len(dictionaries)
        assert dict(report.kinds)["private-key"] > 0
        assert s.scan_secrets() == []
        meta2, *rest = s.load_session(ids[2])
        # Sizes change where blobs lost their dictionary; nothing else does.
        assert (comparable(meta2), *rest) == (comparable(clean_before[0]), *clean_before[1:])
        meta, conv, _ = s.load_session(ids[0])
        assert meta.title.startswith("renamed [REDACTED:github-token:")
        assert conv.context.environment_variables["HOME"] == "/home/me"
        # Same records at the same seqs, minus the dictionaries, plus the audit event.
        after = [(r.seq, r.event_type, r.session) for r in s.journal.scan()]
        kept = [x for x in records_before if x[1] != EventType.DICTIONARY_TRAINED]
        assert after[:-1] == kept and after[-1][1] == EventType.SECRETS_SCRUBBED
        assert s.history()[-1].summary.startswith("secrets scrubbed from ")
    # It meets SecretsScrubbed, rebuilds from the rewritten log, and so never
    # writes the secrets back into its snapshots.
    assert peer.get_metadata(ids[0]).title.startswith("renamed [REDACTED:github-token:")
    assert peer._runner.rebuilds == 1
    peer.close()
    # A replay that began after the rewrite has nothing to rebuild.
    with SessionStore.open(root, snapshots=False) as fresh:
        assert fresh.get_metadata(ids[0]).title == peer_title(root, ids[0])
        assert fresh._runner.rebuilds == 0
    assert (root / "projections" / "index.snap").exists()
    assert not (root / "quarantine" / "tail.bin").exists()
    assert_no_secret_under(root, dictionaries)
    assert verify(str(root)).intact
    # Nothing left: a second scrub rewrites nothing.
    with SessionStore.open(root) as s:
        again = s.scrub_secrets()
    assert again.records_rewritten == again.segments_rewritten == 0


def test_agcx_secrets_scan_exits_1_naming_records_then_scrub_clears_them(root: Path) -> None:
    from tests.test_cli import agcx, agcx_json, fails

    _leaked_journal(root)
    found = agcx_json("secrets", "scan", root=root, code=1)
    assert found and {"seq", "event", "session_id", "kinds"} <= found[0].keys()
    text = agcx("secrets", "scan", root=root)
    assert text.returncode == 1 and "records hold secrets" in text.stdout
    assert not any(s[:12] in text.stdout + json.dumps(found) for s in SECRETS)
    fails(agcx("secrets", "scrub", root=root), 2, "--yes")
    report = agcx_json("secrets", "scrub", "--yes", root=root)
    assert report["records_rewritten"] == sum(f["event"] != "DictionaryTrained" for f in found)
    assert agcx_json("secrets", "scan", root=root, code=0) == []
    assert agcx("verify", root=root).returncode == 0


def _shape(s: SessionStore) -> list[tuple[UUID, int, int]]:
    """What a scrub must not change: the sessions, their message and checkpoint counts."""
    return [(m.id, m.message_count, len(m.checkpoints)) for m in s.list_sessions()]


def test_a_fault_at_any_step_of_a_scrub_leaves_the_old_or_the_scrubbed_journal(
    tmp_path: Path,
) -> None:
    template = tmp_path / "template"
    _leaked_journal(template, turns=2)
    with SessionStore.open(template) as s:
        before = s.scan_secrets()
        shape = _shape(s)

    def workload(root: Path, fs: FaultFS) -> None:
        shutil.copytree(template, root)
        with SessionStore.open(root, fs=fs, segment_size=8192) as s:
            s.scrub_secrets()

    def check(root: Path, fs: FaultFS, error: BaseException | None) -> None:
        if error is not None:
            assert str(error)
        with SessionStore.open(root, segment_size=8192) as s:
            assert _shape(s) == shape
            assert s.scan_secrets() in ([], before)
        assert verify(str(root)).intact
        with SessionStore.open(root, segment_size=8192) as s:
            s.scrub_secrets()  # it can run again, and then all is gone
            assert s.scan_secrets() == [] and _shape(s) == shape
            listed = {seg.name for seg in s.journal.manifest.segments}
        assert {p.name for p in (root / "segments").iterdir()} == listed

    report = run_fault_loop(workload, check, tmp_path / "runs", err=errno.EIO, persistent=False)
    assert report.injected > 20 and report.errors_seen


def test_a_legacy_import_stores_its_sessions_and_checkpoints_redacted(tmp_path: Path) -> None:
    from tests import legacy_writer as W

    sid, cid = uuid4(), uuid4()
    leaky = _leaky(sid)
    meta = metadata(sid, f"imported {GITHUB}")
    legacy = tmp_path / "legacy"
    W.write_session_file(legacy, meta, leaky, SessionState())
    W.write_checkpoint_file(legacy, sid, cid, leaky, SessionState(search_query=AWS_ID))
    with SessionStore.open(tmp_path / "j") as s:
        report = s.import_legacy(legacy)
        assert report.sessions_imported == 1 and report.checkpoints_imported == 1
        got, conv, _ = s.load_session(sid)
        ck_conv, ck_state = s.load_checkpoint(sid, cid)
        assert s.scan_secrets() == []
    assert got.title.startswith("imported [REDACTED:github-token:")
    assert conv.context.environment_variables["HOME"] == "/home/me"
    assert ck_state.search_query is not None and ck_state.search_query.startswith("[REDACTED:")
    assert ck_conv.messages[:3] == leaky.messages[:3]
    assert_no_secret_under(tmp_path / "j", [])


def test_appended_messages_and_fork_titles_are_redacted(root: Path) -> None:
    sid = uuid4()
    with SessionStore.open(root) as s:
        s.append_messages(sid, [message("hello", 0)], metadata=metadata(sid, f"new {AWS_ID}"))
        s.append_messages(sid, [_tool_output(f"token {GITHUB}", 1)])
        fork = s.fork_session(sid, title=f"try {OPENAI}")
        meta, conv, _ = s.load_session(sid)
        assert s.get_metadata(fork).title.startswith("try [REDACTED:openai-api-key:")
        assert s.scan_secrets() == []
    assert meta.title.startswith("new [REDACTED:aws-access-key-id:")
    item = conv.messages[1].item
    assert isinstance(item, FunctionCallOutput) and "[REDACTED:github-token:" in item.output
    assert_no_secret_under(root, [])


def test_the_key_is_made_once_past_a_crashed_attempt_and_a_damaged_one_is_refused(
    tmp_path: Path,
) -> None:
    from journal import JournalError
    from journal._redact import load_key

    (tmp_path / f"{KEY_FILE}.tmp.{os.getpid()}").write_bytes(b"half")  # a crash's leftover
    assert load_key(str(tmp_path), create=False) is None
    key = load_key(str(tmp_path), create=True)
    assert key is not None and len(key) == 32
    assert load_key(str(tmp_path), create=True) == key
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]
    (tmp_path / KEY_FILE).write_bytes(b"short")
    with pytest.raises(JournalError, match="remove it"):
        load_key(str(tmp_path), create=False)
