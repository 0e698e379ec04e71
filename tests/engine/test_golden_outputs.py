"""Serialised outputs stay byte-identical to the golden file written before.

The golden file holds every tool answer, keyed record, digest artifact,
follow-up and velocity row the engine produces for one fixed simulated stream
(``tests/support/golden.py``). A change in how any payload is serialised —
timestamps, field order, number formats — fails here with the output's name.
Regenerate it (``python -m tests.support.golden``) only for an intended change
of a contract.
"""

from __future__ import annotations

import orjson

from tests.support.golden import GOLDEN, render


def test_every_output_is_byte_identical_to_the_golden_file() -> None:
    golden = orjson.loads(GOLDEN.read_bytes())
    now = render()
    assert sorted(now) == sorted(golden)
    changed = [name for name in sorted(golden) if now[name] != golden[name]]
    assert not changed, f"{len(changed)} outputs changed, first: {changed[:5]}"
