"""``agcx demo``: a small, realistic history to show what the journal keeps.

Four coding-agent sessions over simulated days: prompts, reasoning, shell tool
calls with their output, a patch, tags, a favorite, a checkpoint, a rename,
and a retention cleanup that deletes the session nobody opened for weeks. The
store stamps every record with the real clock; the simulated days live in the
sessions' own times (created, updated, last accessed).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import attrs

from journal import (
    ConversationContext,
    ConversationSnapshot,
    FunctionCall,
    FunctionCallOutput,
    InputText,
    Message,
    MessageMetadata,
    MessageSnapshot,
    OperatingMode,
    OutputText,
    Reasoning,
    SessionMetadata,
    SessionState,
    SessionStore,
    SummaryText,
    ToolCallMetadata,
)

__all__ = ["DemoFacts", "fill"]


@attrs.frozen
class DemoFacts:
    """What :func:`fill` wrote, for the tour that follows."""

    sessions: tuple[UUID, ...]
    deleted: tuple[UUID, ...]
    before_cleanup: int  # the last seq before the retention cleanup
    events: int


class _Conversation:
    """Builds one session's messages turn by turn, on a simulated clock."""

    def __init__(self, start: datetime) -> None:
        self.clock = start
        self.turn = 0
        self.messages: list[MessageSnapshot] = []
        self.calls = 0

    def _add(self, item: object, meta: MessageMetadata | None = None) -> None:
        self.clock += timedelta(seconds=37)
        self.messages.append(
            MessageSnapshot(
                item=item,  # type: ignore[arg-type]
                timestamp=self.clock,
                turn_index=self.turn,
                metadata=meta or MessageMetadata(),
            )
        )

    def user(self, text: str) -> None:
        self.turn += 1
        self._add(Message(role="user", content=(InputText(text),)))

    def think(self, text: str) -> None:
        self._add(
            Reasoning(id=f"rs_{self.turn}_{len(self.messages)}", summary=(SummaryText(text),))
        )

    def say(self, text: str) -> None:
        self._add(Message(role="assistant", content=(OutputText(text),)))

    def shell(self, command: list[str], output: str, ms: int = 800, ok: bool = True) -> None:
        self.calls += 1
        call_id = f"call_{self.calls:03d}"
        self._add(
            FunctionCall(name="shell", arguments=json.dumps({"command": command}), call_id=call_id),
            MessageMetadata(tool_calls=(ToolCallMetadata("shell", ms, ok),)),
        )
        self._add(FunctionCallOutput(call_id=call_id, output=output))

    def patch(self, path: str, diff: str) -> None:
        self.calls += 1
        call_id = f"call_{self.calls:03d}"
        self._add(
            FunctionCall(
                name="apply_patch",
                arguments=json.dumps({"path": path, "patch": diff}),
                call_id=call_id,
            )
        )
        self._add(FunctionCallOutput(call_id=call_id, output=f"patched {path}"))


_FAILING = """\
============================= test session starts ==============================
collected 5 items

tests/test_retry.py ..F..                                                 [100%]

=================================== FAILURES ===================================
____________________________ test_backoff_is_capped ____________________________

    def test_backoff_is_capped():
        delays = [backoff(n) for n in range(10)]
>       assert max(delays) <= 30.0
E       assert 51.2 <= 30.0

tests/test_retry.py:41: AssertionError
========================= 1 failed, 4 passed in 0.21s ==========================
"""

_PASSING = """\
============================= test session starts ==============================
collected 5 items

tests/test_retry.py .....                                                 [100%]

============================== 5 passed in 0.19s ===============================
"""

_PATCH = """\
--- a/http/retry.py
+++ b/http/retry.py
@@ def backoff(attempt: int) -> float:
-    return 0.1 * 2**attempt
+    return min(30.0, 0.1 * 2**attempt)
"""


def _meta(
    sid: UUID,
    title: str,
    conv: _Conversation,
    created: datetime,
    mode: OperatingMode,
    tags: tuple[str, ...] = (),
) -> SessionMetadata:
    return SessionMetadata(
        id=sid,
        title=title,
        created_at=created,
        updated_at=conv.clock,
        last_accessed=conv.clock,
        message_count=len(conv.messages),
        turn_count=conv.turn,
        current_mode=mode,
        model="gpt-5-codex",
        tags=tags,
    )


def fill(store: SessionStore, now: datetime | None = None) -> DemoFacts:
    """Write the demo history into ``store`` (an empty one)."""
    now = now or datetime.now(UTC)
    first_seq = store.journal.last_seq
    ctx = ConversationContext(
        working_directory="/home/dev/src/webapp", open_files=("http/retry.py",)
    )
    state = SessionState()

    # 1. A bug fix over two turns (delta saves), tagged, later a favorite.
    fix = fix_conv = uuid4()
    t0 = now - timedelta(days=9, hours=3)
    c = _Conversation(t0)
    c.user("The retry tests fail on CI since yesterday. Can you find out why?")
    c.think("Run the failing test first, then read http/retry.py around backoff().")
    c.shell(["pytest", "-q", "tests/test_retry.py"], _FAILING, ms=2100, ok=False)
    c.say("`backoff()` grows without bound: attempt 9 waits **51.2 s**, the test caps it at 30 s.")
    conv = ConversationSnapshot(fix_conv, tuple(c.messages), ctx)
    store.save_session(
        fix, _meta(fix, "Fix flaky retry test", c, t0, OperatingMode.PLAN), conv, state
    )
    store.tag(fix, "bug", "ci")
    c.user("Cap it at 30 seconds and rerun the tests.")
    c.patch("http/retry.py", _PATCH)
    c.shell(["pytest", "-q", "tests/test_retry.py"], _PASSING, ms=1900)
    c.say(
        "Fixed:\n\n```python\ndef backoff(attempt: int) -> float:\n"
        "    return min(30.0, 0.1 * 2**attempt)\n```\n\nAll 5 tests pass."
    )
    conv = ConversationSnapshot(fix_conv, tuple(c.messages), ctx)
    store.save_session(
        fix,
        _meta(fix, "Fix flaky retry test", c, t0, OperatingMode.BUILD, ("bug", "ci")),
        conv,
        state,
    )
    store.set_favorite(fix, True)

    # 2. A feature, planned then built, with a checkpoint and a rename.
    feat = feat_conv = uuid4()
    t1 = now - timedelta(days=5, hours=6)
    c = _Conversation(t1)
    c.user("Add a --json flag to the export command.")
    c.think("The export command builds a dict already; printing it as JSON is a small change.")
    c.say("Plan: 1. add the flag, 2. print `json.dumps(doc, indent=2)`, 3. test it.")
    conv = ConversationSnapshot(feat_conv, tuple(c.messages), ctx)
    store.save_session(feat, _meta(feat, "export json", c, t1, OperatingMode.PLAN), conv, state)
    store.tag(feat, "feature", "wip")
    store.create_checkpoint(feat, uuid4(), conv, state, name="plan agreed")
    c.user("Go ahead.")
    c.shell(
        ["git", "diff", "--stat"],
        " cli/export.py | 9 +++++++--\n 1 file changed, 7 insertions(+)\n",
        ms=40,
    )
    c.shell(
        ["pytest", "-q", "tests/test_export.py"],
        "....                                  [100%]\n4 passed in 0.08s\n",
    )
    c.say("Done: `agcx export SESSION --json` prints the session as one JSON document.")
    conv = ConversationSnapshot(feat_conv, tuple(c.messages), ctx)
    store.save_session(
        feat,
        _meta(feat, "export json", c, t1, OperatingMode.BUILD, ("feature", "wip")),
        conv,
        state,
    )
    store.rename(feat, "Add --json to the export command")
    store.untag(feat, "wip")

    # 3. An old exploration nobody opened for six weeks: retention deletes it.
    old = old_conv = uuid4()
    t2 = now - timedelta(days=44)
    c = _Conversation(t2)
    c.user("How is the segment header laid out?")
    c.shell(
        ["xxd", "-l", "64", "segments/00000000000000000001.agcx"],
        "00000000: 4147 4358 0300 4000 0100 0000 0000 0000  AGCX..@.........\n",
        ms=12,
    )
    c.say(
        "64 bytes: magic `AGCX`, version 3, header length, base seq, creation time, "
        "journal id, CRC."
    )
    conv = ConversationSnapshot(old_conv, tuple(c.messages), ctx)
    store.save_session(
        old, _meta(old, "Explore the segment format", c, t2, OperatingMode.PLAN), conv, state
    )

    # 4. A review from yesterday.
    rev = rev_conv = uuid4()
    t3 = now - timedelta(days=1, hours=2)
    c = _Conversation(t3)
    c.user("Review the compaction horizon change before I merge it.")
    c.think("Check that a point before the horizon is refused with the earliest recoverable seq.")
    c.say("Looks right. One nit: name the earliest recoverable *time* in the error too.")
    conv = ConversationSnapshot(rev_conv, tuple(c.messages), ctx)
    store.save_session(
        rev,
        _meta(rev, "Review: compaction horizon", c, t3, OperatingMode.REVIEW, ("review",)),
        conv,
        state,
    )

    before = store.journal.last_seq
    deleted = store.cleanup_old_sessions(max_age_days=30)
    return DemoFacts(
        sessions=(fix, feat, old, rev),
        deleted=tuple(deleted),
        before_cleanup=before,
        events=store.journal.last_seq - first_seq,
    )
