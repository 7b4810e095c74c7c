"""A child process for crash and concurrency tests.

``python tests/_appender.py ROOT WRITER_ID COUNT [BATCH] [SEGMENT_SIZE]`` appends
COUNT events (payload ``{"w": WRITER_ID, "i": i}``) in batches and prints
``ack <seq> <i>`` on stdout after each acknowledged append, flushing at once so
the parent knows exactly what was acknowledged before it killed the child.
"""

from __future__ import annotations

import sys

from journal import Entry, Journal


def main() -> None:
    root, writer, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    batch = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    segment_size = int(sys.argv[5]) if len(sys.argv) > 5 else 64 << 20
    out = sys.stdout
    with Journal.open(root, segment_size=segment_size, lock_timeout=60) as j:
        out.write("ready\n")
        out.flush()
        i = 0
        while i < count:
            n = min(batch, count - i)
            entries = [Entry(7, {"w": writer, "i": i + k, "pad": "p" * (i % 97)}) for k in range(n)]
            seqs = j.append_many(entries)
            out.write("".join(f"ack {s} {i + k}\n" for k, s in enumerate(seqs)))
            out.flush()
            i += n


if __name__ == "__main__":
    main()
