"""The sampler's shortlist: every logit at least the k-th largest, found in one pass."""

from __future__ import annotations

import numpy as np
import pytest

from worker.engine.sampling import shortlist


def kth_largest(logits: np.ndarray, k: int) -> float:
    return float(np.sort(logits)[-k])


@pytest.mark.parametrize("n", [1000, 32_000, 128_256, 262_144])
@pytest.mark.parametrize("k", [1, 40, 128])
def test_the_k_largest_and_their_ties_are_all_on_it(n: int, k: int) -> None:
    rng = np.random.default_rng(n + k)
    for _ in range(20):
        logits = (rng.standard_normal(n) * 3).astype(np.float32)
        logits[rng.integers(0, n, 50)] = logits.max()  # ties at the top
        found = shortlist(logits, k)
        assert found is not None
        picked, threshold = found
        assert logits[picked].min() >= threshold
        assert np.all(np.diff(picked) > 0)  # ascending ids, as llama.cpp lists candidates
        assert set(np.flatnonzero(logits >= kth_largest(logits, k))) <= set(picked.tolist())
        assert len(picked) <= max(16 * k, n // 50, 100)  # a shortlist, not the vocabulary


def test_an_unlucky_sample_falls_back_to_the_exact_threshold() -> None:
    """The sampled logits (every 64th) happen to be the largest of all, so the guessed
    threshold lets fewer than k through: the exact k-th largest is used instead."""
    logits = np.zeros(262_144, dtype=np.float32)
    logits[::64] = np.arange(4096, dtype=np.float32) + 1.0
    found = shortlist(logits, 40)
    assert found is not None
    assert found[0].tolist() == list(range(64 * (4096 - 40), 262_144, 64))


def test_the_last_threshold_serves_while_it_lets_in_k_to_a_few_thousand() -> None:
    rng = np.random.default_rng(5)
    logits = (rng.standard_normal(128_256) * 3).astype(np.float32)
    kth = kth_largest(logits, 40)
    found = shortlist(logits, 40, guess=kth - 0.5)
    assert found is not None and found[1] == kth - 0.5  # used as it was
    for wrong in (kth + 0.01, float(np.median(logits))):  # too few; far too many
        found = shortlist(logits, 40, guess=wrong)
        assert found is not None and found[1] != wrong
        assert set(np.flatnonzero(logits >= kth)) <= set(found[0].tolist())


def test_no_shortlist_from_nan_logits() -> None:
    logits = np.full(100_000, np.nan, dtype=np.float32)
    assert shortlist(logits, 40) is None
