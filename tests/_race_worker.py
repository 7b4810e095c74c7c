"""A child process for tests/test_store_races.py: churns sessions or edits them.

``python tests/_race_worker.py PLAN_JSON`` opens the store at ``plan["root"]``,
prints ``ready``, waits for a line on stdin, then for ``plan["seconds"]``:

* role ``churn``: deletes one of the sessions and saves it again (a new life);
* role ``edit``: tags (a unique tag), renames (a unique title), marks favorite,
  touches or checkpoints one of the sessions.

One JSON line per operation: what it did and whether it was acknowledged
(``ok``) or refused with a typed error (``error``: its class name). Any other
exception ends the process with a traceback (the parent sees a non-zero exit).
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
import time
from uuid import UUID

from journal import SessionConflict, SessionNotFound, SessionState, SessionStore
from tests._store_worker import conversation, metadata, uid


def sessions(n: int) -> list[UUID]:
    return [uid(f"race/{k}") for k in range(n)]


def save(store: SessionStore, sid: UUID, life: int) -> int:
    return store.save_session(
        sid, metadata(sid, f"life {life}"), conversation(sid, [f"{sid}.{life}"]), SessionState()
    )


def _say(obj: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def run(plan: dict[str, object]) -> None:
    w = int(plan["worker"])  # type: ignore[call-overload]
    rng = random.Random(w)
    ids = sessions(int(plan["sessions"]))  # type: ignore[call-overload]
    store = SessionStore.open(str(plan["root"]), lock_timeout=60, durability="none")
    _say({"op": "ready"})
    sys.stdin.readline()
    deadline = time.monotonic() + float(plan["seconds"])  # type: ignore[arg-type]
    i = 0
    while time.monotonic() < deadline:
        i += 1
        sid = rng.choice(ids)
        op: dict[str, object] = {"sid": str(sid)}
        try:
            if plan["role"] == "churn":
                op["op"] = "churn"
                with contextlib.suppress(SessionNotFound):
                    store.delete_session(sid)
                save(store, sid, i)
            else:
                kind = rng.choice(["tag", "rename", "favorite", "touch", "checkpoint"])
                op["op"] = kind
                if kind == "tag":
                    op["tag"] = f"t{w}.{i}"
                    store.tag(sid, str(op["tag"]))
                elif kind == "rename":
                    op["title"] = f"r{w}.{i}"
                    store.rename(sid, str(op["title"]))
                elif kind == "favorite":
                    store.set_favorite(sid, True)
                elif kind == "touch":
                    store.touch(sid)
                else:
                    op["name"] = f"c{w}.{i}"
                    store.create_checkpoint(
                        sid, uid(f"ck/{w}.{i}"), conversation(sid, []), SessionState(),
                        name=str(op["name"]),
                    )
            op["ok"] = True
        except (SessionNotFound, SessionConflict) as exc:
            op["error"] = type(exc).__name__
        _say(op)
    store.close()


if __name__ == "__main__":
    run(json.loads(sys.argv[1]))
