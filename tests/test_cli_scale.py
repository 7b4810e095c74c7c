"""``agcx`` at the size of a real history: limits, paging, streaming, reading
the log backwards, completion, and starting without importing what a command
does not use. (The timings are `agcx bench --cli`'s; nothing here is timed.)
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from journal import (
    ConversationSnapshot,
    Entry,
    EventType,
    FileSystem,
    FunctionCall,
    FunctionCallOutput,
    InputText,
    InvalidArgument,
    Journal,
    Message,
    MessageSnapshot,
    OperatingMode,
    SessionMetadata,
    SessionState,
    SessionStore,
)
from tests.conftest import PYTHON, ROOT, child_env

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
N = 130  # sessions: more than the default page of 50


def _env(**extra: str) -> dict[str, str]:
    env = child_env()
    env.pop("AGCX_ROOT", None)
    env.pop("AGCX_PAGER", None)
    env.pop("PAGER", None)
    env["COLUMNS"] = "120"
    env.update(extra)
    return env


def agcx(*args: str, root: Path | None = None, **extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [PYTHON, "-m", "tools.cli"] + (["--root", str(root)] if root else []) + list(args)
    return subprocess.run(
        cmd,
        cwd=ROOT,
        env=_env(**extra),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def sid_of(k: int) -> UUID:
    return UUID(int=(k + 1) * 0x9E3779B97F4A7C15F39CC0605CEDC835 % (1 << 128))


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """130 sessions accessed one minute apart (session k at T0 + k min), tags
    by k % 3, every 10th a favorite, modes in turn; one long session."""
    root = tmp_path_factory.mktemp("scale") / "journal"
    modes = list(OperatingMode)
    with SessionStore.open(root, segment_size=8192, durability="none") as store:
        for k in range(N):
            when = T0 + timedelta(minutes=k)
            msg = MessageSnapshot(
                item=Message(role="user", content=(InputText(f"task {k}"),)),
                timestamp=when,
                turn_index=1,
            )
            meta = SessionMetadata(
                id=sid_of(k),
                title=f"session {k}" + (" retry" if k % 5 == 0 else ""),
                created_at=when,
                updated_at=when,
                last_accessed=when,
                message_count=1,
                current_mode=modes[k % 3],
                tags=(("bug", "docs", "perf")[k % 3],),
                is_favorite=k % 10 == 0,
            )
            conv = ConversationSnapshot(sid_of(k), (msg,))
            store.save_session(sid_of(k), meta, conv, SessionState())
        msgs = []
        for i in range(60):
            when = T0 - timedelta(days=1) + timedelta(seconds=i)
            if i % 2:
                out = "\n".join(f"line {j} of the output" for j in range(40))
                item: object = FunctionCallOutput(call_id=f"c{i}", output=out)
            else:
                args = json.dumps({"command": ["make", f"step{i}"]})
                item = FunctionCall(name="shell", arguments=args, call_id=f"c{i + 1}")
            msgs.append(MessageSnapshot(item=item, timestamp=when, turn_index=i))  # type: ignore[arg-type]
        long_id = UUID("10000000-0000-4000-8000-000000000000")
        meta = SessionMetadata(
            id=long_id,
            title="long",
            created_at=T0,
            updated_at=T0,
            last_accessed=T0 - timedelta(days=1),
        )
        store.save_session(
            long_id, meta, ConversationSnapshot(long_id, tuple(msgs)), SessionState()
        )
    return root


# -- find_sessions: filters before the limit ---------------------------------------------


def test_find_sessions_filters_first_then_limits_newest_first(many: Path) -> None:
    with SessionStore.open(many, readonly=True) as store:
        page = store.find_sessions(limit=5)
        assert page.total == N + 1
        assert [m.title for m in page.sessions] == [
            f"session {k}" + (" retry" if k % 5 == 0 else "") for k in (129, 128, 127, 126, 125)
        ]
        bugs = store.find_sessions(tag="bug", limit=3)
        assert bugs.total == len(range(0, N, 3))
        assert [m.id for m in bugs.sessions] == [sid_of(k) for k in (129, 126, 123)]
        favs = store.find_sessions(favorites=True, mode=OperatingMode.BUILD)
        assert {m.id for m in favs.sessions} == {
            sid_of(k) for k in range(N) if k % 10 == 0 and k % 3 == 1
        }
        recent = store.find_sessions(since=T0 + timedelta(minutes=120))
        assert recent.total == 10
        found = store.find_sessions(query="RETRY", limit=2)
        assert found.total == len(range(0, N, 5)) and len(found.sessions) == 2
        assert store.find_sessions(id_prefix=sid_of(7).hex[:12]).sessions[0].id == sid_of(7)
        assert (
            store.find_sessions(limit=0).sessions == ()
            and store.find_sessions(limit=0).total == N + 1
        )
        # The same sessions, in the same order, as the full listing.
        assert list(store.find_sessions().sessions) == store.list_sessions()
        assert store.find_sessions(kind="session").total == N + 1  # none has a kind: tag
        assert store.find_sessions(kind="openai-agents").total == 0
        with pytest.raises(InvalidArgument):
            store.find_sessions(limit=-1)
        with pytest.raises(InvalidArgument):
            store.find_sessions(since=datetime(2024, 5, 1))  # naive


# -- agcx ls ------------------------------------------------------------------------------


def test_ls_shows_the_newest_50_and_says_how_to_see_the_rest(many: Path) -> None:
    r = agcx("ls", root=many)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["id", "last", "accessed"]
    assert len(lines) == 1 + 50 + 1
    assert lines[1].startswith(sid_of(129).hex[:8]) and "session 129" in lines[1]
    assert "81 more" in lines[-1] and "-n N" in lines[-1] and "--all" in lines[-1]
    assert len(agcx("ls", "-n", "7", root=many).stdout.splitlines()) == 1 + 7 + 1
    every = agcx("ls", "--all", root=many).stdout.splitlines()
    assert len(every) == 1 + N + 1 and "more" not in every[-1]


def test_ls_filters_apply_before_the_limit(many: Path) -> None:
    r = agcx("--json", "ls", "--tag", "perf", "--mode", "review", "-n", "3", root=many)
    doc = json.loads(r.stdout)
    assert doc["total"] == len(range(2, N, 3)) and doc["shown"] == 3
    assert [s["title"] for s in doc["sessions"]] == [
        "session 128",
        "session 125 retry",
        "session 122",
    ]
    since = agcx("--json", "ls", "--since", "2024-05-01T11:05:00Z", root=many)
    assert json.loads(since.stdout)["total"] == N - 125
    fav = json.loads(agcx("ls", "--favorites", "--search", "retry", "--json", root=many).stdout)
    assert {s["title"] for s in fav["sessions"]} == {f"session {k} retry" for k in range(0, N, 10)}
    bad = agcx("ls", "--mode", "fast", root=many)
    assert bad.returncode == 2 and "plan, build, review" in bad.stderr
    assert agcx("ls", "--since", "seq:3", root=many).returncode == 2


def test_ls_all_json_is_one_document_of_every_session(many: Path) -> None:
    doc = json.loads(agcx("--json", "ls", "--all", root=many).stdout)
    assert doc["total"] == doc["shown"] == len(doc["sessions"]) == N + 1
    assert doc["sessions"][0]["id"] == str(sid_of(129))
    assert doc["sessions"][0]["last_accessed"] == (T0 + timedelta(minutes=129)).isoformat()
    empty = json.loads(agcx("--json", "ls", "--tag", "nothing", root=many).stdout)
    assert empty["sessions"] == [] and empty["total"] == 0


# -- agcx show ----------------------------------------------------------------------------


def test_show_last_n_messages_and_folded_tool_output(many: Path) -> None:
    r = agcx("show", "10000000", "--last", "4", root=many)
    assert r.returncode == 0, r.stderr
    assert "last 4 of 60 messages" in r.stdout
    assert r.stdout.count("tool output") == 2 and "$ make step56" in r.stdout
    assert "$ make step54" not in r.stdout
    assert "lines folded (--full shows them)" in r.stdout and "line 20 of" not in r.stdout
    full = agcx("show", "10000000", "--last", "1", "--full", root=many)
    assert "line 20 of the output" in full.stdout and "folded" not in full.stdout
    doc = json.loads(agcx("show", "10000000", "--last", "3", "--json", root=many).stdout)
    assert [m["turn_index"] for m in doc["conversation"]["messages"]] == [57, 58, 59]


# -- agcx log: streaming and --last from the end -----------------------------------------


def test_log_last_reads_backwards_with_filters(many: Path) -> None:
    every = json.loads(agcx("--json", "log", root=many).stdout)["events"]
    tail = json.loads(agcx("--json", "log", "--last", "7", root=many).stdout)["events"]
    assert tail == every[-7:]
    saved = [e for e in every if e["event"] == "SessionSaved"]
    typed = json.loads(
        agcx("--json", "log", "--last", "3", "--type", "SessionSaved", root=many).stdout
    )
    assert typed["events"] == saved[-3:]
    one = json.loads(
        agcx("--json", "log", "--session", sid_of(5).hex[:10], "--last", "5", root=many).stdout
    )
    assert [e["session"] for e in one["events"]] == [str(sid_of(5))]
    window = json.loads(agcx("--json", "log", "--until", "seq:40", "--last", "2", root=many).stdout)
    assert [e["seq"] for e in window["events"]] == [39, 40]


def test_log_streams_plain_lines_and_a_closed_reader_ends_quietly(many: Path) -> None:
    cmd = [PYTHON, "-m", "tools.cli", "--root", str(many), "log"]
    child = subprocess.Popen(
        cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert child.stdout is not None and child.stderr is not None
    first = child.stdout.readline().decode()
    assert first.split()[0] == "1" and "SessionSaved" in first
    child.stdout.close()  # as `agcx log | head -1` does
    err = child.stderr.read().decode()
    assert child.wait(timeout=60) == 0, err
    assert err == ""


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=40),
    batch=st.integers(min_value=1, max_value=5),
    lo=st.integers(min_value=0, max_value=80),
    span=st.integers(min_value=0, max_value=120),
)
def test_scan_reverse_is_the_scan_backwards(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int], batch: int, lo: int, span: int
) -> None:
    root = tmp_path_factory.mktemp("rev") / "j"
    with Journal.open(root, segment_size=4096, preallocate=0, durability="none") as j:
        for k, size in enumerate(sizes):
            j.append_many(
                [Entry(EventType.SESSION_TOUCHED, {"v": 1, "k": k, "p": "x" * size})] * batch
            )
        forward = [(r.seq, r.payload) for r in j.scan()]
        assert [(r.seq, r.payload) for r in j.scan_reverse()] == forward[::-1]
        lo_seq, hi_seq = lo + 1, lo + 1 + span
        window = [x for x in forward if lo_seq <= x[0] <= hi_seq]
        got = [(r.seq, r.payload) for r in j.scan_reverse(from_seq=lo_seq, until_seq=hi_seq)]
        assert got == window[::-1]


# -- paging -------------------------------------------------------------------------------


def _on_a_terminal(root: Path, *args: str, **env: str) -> tuple[int, str, str]:
    """Run agcx with stdout on a pseudo-terminal (24 x 120); return its exit
    code, what reached the terminal and stderr."""
    primary, secondary = pty.openpty()
    cmd = [PYTHON, "-m", "tools.cli", "--root", str(root), *args]
    child = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=_env(LINES="24", COLUMNS="120", **env),
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=subprocess.PIPE,
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(primary, 65536)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(primary)
    assert child.stderr is not None
    err = child.stderr.read().decode()
    return child.wait(timeout=60), b"".join(chunks).decode(errors="replace"), err


def _recording_pager(path: Path) -> str:
    code = f"import sys; open({str(path)!r}, 'w').write(sys.stdin.read())"
    return f"{sys.executable} -c {json.dumps(code)}"


def test_long_output_on_a_terminal_goes_through_the_pager(many: Path, tmp_path: Path) -> None:
    seen = tmp_path / "paged.txt"
    code, screen, err = _on_a_terminal(many, "ls", "--all", AGCX_PAGER=_recording_pager(seen))
    assert code == 0, err
    paged = seen.read_text()
    assert paged.count("\n") == 1 + N + 1 and "session 0" in paged
    assert "session 0" not in screen  # the text went to the pager, not around it


def test_short_output_and_no_pager_write_to_the_terminal(many: Path, tmp_path: Path) -> None:
    seen = tmp_path / "paged.txt"
    pager = _recording_pager(seen)
    code, screen, _ = _on_a_terminal(many, "ls", "-n", "3", AGCX_PAGER=pager)
    assert code == 0 and "session 129" in screen and not seen.exists()
    code, screen, _ = _on_a_terminal(many, "--no-pager", "ls", "--all", AGCX_PAGER=pager)
    assert code == 0 and "session 0" in screen and not seen.exists()
    code, screen, _ = _on_a_terminal(many, "ls", "--all", PAGER=pager, AGCX_PAGER="")
    assert code == 0 and "session 0" in screen and not seen.exists()  # empty: no pager
    code, screen, _ = _on_a_terminal(many, "ls", "--all", PAGER=pager)
    assert code == 0 and seen.exists()  # $PAGER when $AGCX_PAGER is unset


def test_a_pager_closed_early_ends_the_command_quietly(many: Path) -> None:
    code, _, err = _on_a_terminal(many, "log", AGCX_PAGER="true")  # exits at once, like `q`
    assert code == 0 and err == ""


# -- completion ---------------------------------------------------------------------------


def _complete(root: Path, line: str) -> list[str]:
    """What bash offers for ``line`` (the word under the cursor is the last)."""
    script = agcx("completion", "bash").stdout
    words = line.split(" ")
    shim = f'agcx() {{ {PYTHON} -m tools.cli "$@"; }}\n'
    program = (
        script
        + shim
        + f"COMP_WORDS=({' '.join(json.dumps(w) for w in words)})\n"
        + f"COMP_CWORD={len(words) - 1}\n_agcx\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n"
    )
    r = subprocess.run(
        ["bash", "-c", program],
        cwd=ROOT,
        env=_env(AGCX_ROOT=str(root)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return [x for x in r.stdout.splitlines() if x]


def test_bash_completion_offers_commands_options_and_session_ids(many: Path) -> None:
    assert {"show", "stats", "completion"} <= set(_complete(many, "agcx s")) | {"completion"}
    assert "show" in _complete(many, "agcx sh")
    assert set(_complete(many, "agcx ls --f")) == {"--favorites"}
    assert "--no-pager" in _complete(many, "agcx --no")
    assert _complete(many, f"agcx show {sid_of(7).hex[:7]}") == [sid_of(7).hex[:8]]
    assert _complete(many, f"agcx --root {many} log --session {sid_of(9).hex[:6]}") == [
        sid_of(9).hex[:8]
    ]
    assert _complete(many, "agcx export 1 --format m") == ["markdown"]
    assert set(_complete(many, "agcx completion ")) == {"bash", "zsh", "fish"}


def test_zsh_and_fish_scripts_name_every_command() -> None:
    zsh = agcx("completion", "zsh")
    fish = agcx("completion", "fish")
    assert zsh.returncode == fish.returncode == 0
    for cmd in ("ls", "show", "log", "verify", "recover", "completion"):
        assert cmd in zsh.stdout and f"-a {cmd} " in fish.stdout
    assert "bashcompinit" in zsh.stdout and "__agcx_ids" in fish.stdout
    assert agcx("completion").returncode == 2


def test_unique_prefixes_are_the_shortest_that_name_one_id() -> None:
    from tools._complete import unique_prefixes

    ids = ["aaaaaaaa11", "aaaaaaaa12", "bbbbbbbbbb", "aaaaaaab00"]
    assert unique_prefixes(ids) == ["aaaaaaaa11", "aaaaaaaa12", "bbbbbbbb", "aaaaaaab"]


# -- start-up: a command imports what it uses ---------------------------------------------


def _imported_by(*args: str) -> set[str]:
    code = (
        "import sys, contextlib, io\n"
        "from tools.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    main({list(args)!r})\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    r = subprocess.run(
        [PYTHON, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    return set(r.stdout.split())


def test_help_imports_neither_the_journal_nor_rich() -> None:
    code = (
        "import sys\n"
        "from tools.cli import build_parser\n"
        "build_parser().format_help()\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    r = subprocess.run(
        [PYTHON, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60
    )
    mods = set(r.stdout.split())
    assert not {
        m for m in mods if m == "journal" or m.startswith(("journal.", "rich", "projections"))
    }


def test_ls_piped_imports_no_rich_and_not_the_legacy_reader(many: Path) -> None:
    mods = _imported_by("--root", str(many), "ls")
    assert not {m for m in mods if m.startswith("rich")}
    assert (
        not {"journal._legacy", "journal._import", "journal._compact", "tools._bench_driver"} & mods
    )


# -- an interrupted commit does not hang the close ----------------------------------------


class _InterruptedSync(FileSystem):
    """A file system whose next fdatasync is interrupted (as Ctrl-C raises
    KeyboardInterrupt in the thread between two steps of a commit)."""

    armed = False

    def fdatasync(self, fd: int) -> None:
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt
        super().fdatasync(fd)


def test_close_after_a_commit_interrupted_in_its_own_thread_returns(tmp_path: Path) -> None:
    fs = _InterruptedSync()
    j = Journal.open(tmp_path / "j", fs=fs)
    j.append(EventType.SESSION_TOUCHED, {"v": 1, "at": 0})
    fs.armed = True
    with pytest.raises(KeyboardInterrupt):
        j.append(EventType.SESSION_TOUCHED, {"v": 1, "at": 1})
    # It used to wait forever for the sync the interrupted commit owned (closed
    # from a helper thread here only so that a regression fails instead of hanging).
    closer = threading.Thread(target=j.close)
    closer.start()
    closer.join(timeout=60)
    assert not closer.is_alive()
    with Journal.open(tmp_path / "j") as again:  # the next writer takes it from there
        assert [r.seq for r in again.scan()][:1] == [1]
        again.append(EventType.SESSION_TOUCHED, {"v": 1, "at": 2})
