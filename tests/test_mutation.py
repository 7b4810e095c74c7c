"""The mutation check (tests/mutation/run.py): every listed one-line bug fails a test."""

from __future__ import annotations

import pytest

from tests.mutation.run import MUTANTS, run


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_the_mutant_fails_a_test(mutant: object) -> None:
    caught, _, last = run(mutant)  # type: ignore[arg-type]
    assert caught, f"the mutant survived: {last}"
