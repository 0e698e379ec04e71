"""Timeline against a plain sorted list (the obvious oracle)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.intel import timeline as tl
from app.intel.timeline import Timeline

ops = st.lists(st.tuples(st.booleans(), st.integers(0, 60), st.sampled_from("abcdef")),
               max_size=400)


@settings(max_examples=200, deadline=None)
@given(ops=ops, low=st.integers(-1, 61), high=st.integers(-1, 61), cutoff=st.integers(0, 61))
def test_timeline_matches_sorted_list(monkeypatch_chunk, ops, low, high, cutoff):
    line, oracle = Timeline(), []
    for add, started, iid in ops:
        if add:
            line.add(started, iid)
            oracle.append((started, iid))
            oracle.sort()
        else:
            line.remove(started, iid)
            if (started, iid) in oracle:
                oracle.remove((started, iid))
    assert len(line) == len(oracle)
    assert line.window(low, high) == [e for e in oracle if low < e[0] <= high]
    assert line.count(low, high) == sum(1 for e in oracle if low < e[0] <= high)
    assert list(line.newest_first(low, high)) == [e for e in reversed(oracle)
                                                  if low <= e[0] <= high]
    assert line.drop_before(cutoff) == sum(1 for e in oracle if e[0] < cutoff)
    assert line.window(-10, 100) == [e for e in oracle if e[0] >= cutoff]


@pytest.fixture(autouse=True, scope="module")
def monkeypatch_chunk():
    """Tiny chunks, so that splits and chunk boundaries are exercised."""
    old = tl._CHUNK
    tl._CHUNK = 2
    yield
    tl._CHUNK = old
