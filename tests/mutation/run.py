"""A small mutation check of the core lines: each deliberate one-line bug must fail a test.

Run: ``python3 -m tests.mutation.run`` (all mutants, a few minutes) or
``python3 -m tests.mutation.run NAME ...``; ``tests/test_mutation.py`` runs
it under ``--run-slow``. Each mutant is applied to a copy of the tree (the
checkout is never touched) and the tests named for it are run there; a
mutant is *caught* when they fail. The output is one line per mutant, and
the exit status is 1 if any survived. docs/RELIABILITY.md lists the mutants
and the results.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parents[2]


@attrs.frozen
class Mutant:
    name: str
    path: str  # relative to the root
    old: str  # exact text, found once
    new: str
    tests: tuple[str, ...]  # pytest node ids or files, relative to the root


MUTANTS = (
    Mutant(
        "ack a group written during a sync, on that sync",
        "journal/_log.py",
        "self._tickets_durable = max(self._tickets_durable, target)",
        "self._tickets_durable = max(self._tickets_durable, self._tickets_issued)",
        ("tests/test_crash_states.py",),
    ),
    Mutant(
        "no fdatasync before acknowledging",
        "journal/_log.py",
        "                self._fs.fdatasync(seg.fd)\n            except OSError as exc:\n"
        "                error = exc",
        "                pass\n            except OSError as exc:\n                error = exc",
        ("tests/test_crash_states.py",),
    ),
    Mutant(
        "no record CRC check",
        "journal/_format.py",
        "if crc32(buf[pos + 8 : body_end]) != crc:",
        "if False:",
        ("tests/test_fuzz.py",),
    ),
    Mutant(
        "no sealed-segment last seq / count check against the manifest",
        "journal/_log.py",
        "if seg.count != info.count or (info.count and seg.last_seq != info.last_seq):",
        "if seg.count != info.count:",
        ("tests/test_log.py",),
    ),
    Mutant(
        "no sealed-segment length check against the manifest",
        "journal/_log.py",
        "                if size != info.length:",
        "                if False:",
        ("tests/test_log.py",),
    ),
    Mutant(
        "never cut a torn tail",
        "journal/_log.py",
        "if stop.kind != ScanStop.END and writer:",
        "if False:",
        ("tests/test_crash_states.py",),
    ),
    Mutant(
        "never cut stray bytes after zeros (a lost earlier page)",
        "journal/_log.py",
        "                    self._cut_stray_bytes()\n",
        "                    pass\n",
        ("tests/test_crash_states.py",),
    ),
    Mutant(
        "purge leaves quarantined tails",
        "journal/_compact.py",
        'for sub in ("projections", "quarantine"):',
        'for sub in ("projections",):',
        ("tests/test_crash_compaction.py",),
    ),
    Mutant(
        "purge leaves projection snapshots",
        "journal/_compact.py",
        'for sub in ("projections", "quarantine"):',
        'for sub in ("quarantine",):',
        ("tests/test_crash_compaction.py", "tests/test_compact.py"),
    ),
)


def run(mutant: Mutant) -> tuple[bool, float, str]:
    """Apply ``mutant`` to a copy of the tree, run its tests: (caught, seconds, last line)."""
    with tempfile.TemporaryDirectory(prefix="agcx-mutant-") as tmp:
        copy = Path(tmp) / "tree"
        shutil.copytree(
            ROOT,
            copy,
            ignore=shutil.ignore_patterns(".git", "__pycache__", ".mypy_cache", ".ruff_cache"),
        )
        target = copy / mutant.path
        text = target.read_text()
        if text.count(mutant.old) != 1:
            raise SystemExit(f"{mutant.name}: the line to mutate is not in {mutant.path} once")
        target.write_text(text.replace(mutant.old, mutant.new))
        env = dict(os.environ, PYTHONPATH=str(copy))
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *mutant.tests],
            cwd=copy,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
        return proc.returncode != 0, time.monotonic() - started, lines[-1] if lines else ""


def main(argv: list[str]) -> int:
    chosen = [m for m in MUTANTS if not argv or any(a in m.name for a in argv)]
    survived = 0
    for m in chosen:
        caught, seconds, last = run(m)
        survived += not caught
        verdict = "caught" if caught else "SURVIVED"
        print(f"{verdict:8} {seconds:6.1f}s  {m.name}  ({' '.join(m.tests)}: {last})", flush=True)
    print(f"{len(chosen) - survived} of {len(chosen)} mutants caught")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
