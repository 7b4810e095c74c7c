"""A child for tests/test_disk_full.py: saves to a store until told to stop.

``python tests/_full_disk_worker.py ROOT FLAGS`` saves one session (its own)
over and over, printing ``ack N`` after each acknowledged save of N messages
and ``full`` after each save refused with JournalFull (any other error ends
it with a traceback). It stops once the file ``FLAGS/stop`` exists.
"""

from __future__ import annotations

import os
import sys
import time
from uuid import UUID

from journal import JournalFull, SessionStore
from tests.test_compact import History


def main() -> None:
    root, flags = sys.argv[1], sys.argv[2]
    sid = UUID(int=99)
    with SessionStore.open(root, lock_timeout=60) as s:
        h = History(s)
        print("ready", flush=True)
        n = 0
        while not os.path.exists(os.path.join(flags, "stop")):
            try:
                h.save(sid, [f"child message {n} " * 20])
            except JournalFull:
                h.convs[sid] = h.convs[sid].__class__(sid, h.convs[sid].messages[:-1])
                print("full", flush=True)
                time.sleep(0.001)  # (only to leave the CPU to the others while the disk is full)
                continue
            n += 1
            print(f"ack {n}", flush=True)


if __name__ == "__main__":
    main()
