"""The ``agcx`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from journal import Journal, JournalError

DEFAULT_ROOT = os.path.join("~", ".agcodex", "history")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agcx", description="agcx session journal")
    parser.add_argument("--root", default=os.environ.get("AGCX_ROOT", DEFAULT_ROOT))
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="segments, records, bytes, seq and time range")
    sub.add_parser("demo", help="fill a journal and show what agcx does")
    args = parser.parse_args(argv)
    root = os.path.expanduser(args.root)
    try:
        with Journal.open(root) as j:
            st = j.statistics()
        print(f"journal {root}: {st.records} records in {st.segments} segments, {st.bytes} bytes")
    except JournalError as exc:
        print(f"agcx: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
