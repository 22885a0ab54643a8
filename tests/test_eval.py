"""rlscale.core.evaluation: pass@k against brute force, per-prompt means, the bootstrap."""

from __future__ import annotations

import doctest
import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rlscale.core.evaluation as evaluation
import rlscale.core.flops as flops
import rlscale.io.model_config as model_config
import rlscale.io.verl_log as verl_log
from rlscale.core.evaluation import (
    PromptTally,
    bootstrap_mean_interval,
    group_seed,
    pass_at_k,
    summarize,
)
from rlscale.core.identity import group_key


@pytest.mark.parametrize("module", [evaluation, flops, verl_log, model_config])
def test_docstring_examples(module):
    assert doctest.testmod(module).failed == 0


def brute_force_pass_at_k(n: int, c: int, k: int) -> float:
    """Fraction of all k-subsets of n samples (the first c correct) holding a correct one."""
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in subset) for subset in subsets) / len(subsets)


@given(st.integers(1, 10).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_equals_brute_force(case):
    n, c, k = case
    assert pass_at_k(n, c, k) == pytest.approx(brute_force_pass_at_k(n, c, k), abs=1e-12)


@given(st.integers(1, 200).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_equals_the_binomial_formula(case):
    n, c, k = case
    expected = 1 - math.comb(n - c, k) / math.comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_special_cases_and_errors():
    assert pass_at_k(1, 1, 1) == 1.0 and pass_at_k(1, 0, 1) == 0.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 is the fraction correct
    with pytest.raises(ValueError, match="pass@5 needs at least 5 samples, got 4"):
        pass_at_k(4, 1, 5)
    with pytest.raises(ValueError, match="need 0 <= c <= n"):
        pass_at_k(4, 5, 1)


def test_uneven_sample_counts_use_per_prompt_means():
    # prompt A: 1 of 2 correct, B: 4 of 4, C: 0 of 1. Per-prompt mean: (0.5 + 1 + 0) / 3 = 0.5,
    # not the pooled 5/7.
    tallies = [PromptTally(2, 1, 1.0), PromptTally(4, 4, 4.0), PromptTally(1, 0, 0.0)]
    stats = summarize(tallies, ks=(1, 2), n_boot=0)
    assert stats["pass@1"] == pytest.approx(0.5)
    assert stats["loss"] == pytest.approx(0.5)
    assert stats["n_prompts"] == 3 and stats["n_samples"] == 7
    assert stats["pass@2"] is None  # prompt C has one sample
    # standard error of the per-prompt rates (0.5, 1, 0): sd 0.5, / sqrt(3)
    assert stats["loss_se"] == pytest.approx(0.5 / math.sqrt(3))
    assert stats["ci95"] is None
    stats = summarize(tallies[:2], ks=(1, 2), n_boot=0)
    assert stats["pass@2"] == pytest.approx((pass_at_k(2, 1, 2) + 1.0) / 2) == 1.0


@given(st.lists(st.integers(1, 6).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))),
                min_size=1, max_size=6),
       st.integers(1, 6))
def test_group_pass_at_k_is_the_mean_of_brute_force_over_prompts(prompts, k):
    tallies = [PromptTally(n, c, float(c)) for n, c in prompts]
    stats = summarize(tallies, ks=(1, k), n_boot=0)
    if k > 1:
        if k > min(n for n, _ in prompts):
            assert stats[f"pass@{k}"] is None
        else:
            expected = np.mean([brute_force_pass_at_k(n, c, k) for n, c in prompts])
            assert stats[f"pass@{k}"] == pytest.approx(expected, abs=1e-12)
    assert stats["pass@1"] == pytest.approx(np.mean([c / n for n, c in prompts]), abs=1e-12)
    assert stats["loss"] == pytest.approx(1 - stats["pass@1"], abs=1e-15)
    assert 0.0 <= stats["pass@1"] <= 1.0


def test_prompt_tally_threshold_and_mean_reward():
    tally = PromptTally()
    for reward in (1.0, -1.0, 0.6, 0.5):
        tally.add(reward)
    assert (tally.n, tally.correct, tally.reward_sum) == (4, 2, pytest.approx(1.1))
    stats = summarize([tally], n_boot=0)
    assert stats["pass@1"] == 0.5 and stats["mean_reward"] == pytest.approx(1.1 / 4)
    strict = PromptTally()
    for reward in (1.0, 0.6):
        strict.add(reward, threshold=0.8)
    assert strict.correct == 1


def test_bootstrap_matches_a_plain_loop_with_the_same_generator():
    values = np.array([0.0, 1.0, 0.5, 0.25, 1.0, 0.0, 0.75])
    low, high = bootstrap_mean_interval(values, 200, np.random.default_rng(3))
    rng = np.random.default_rng(3)
    means = [values[rng.integers(0, len(values), size=len(values))].mean() for _ in range(200)]
    assert (low, high) == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])), abs=1e-15)


def test_bootstrap_blocks_do_not_change_the_draws(monkeypatch):
    values = np.linspace(0, 1, 50)
    whole = bootstrap_mean_interval(values, 300, np.random.default_rng(0))
    monkeypatch.setattr(evaluation, "_BOOTSTRAP_BLOCK", 120)  # two rows per block
    assert bootstrap_mean_interval(values, 300, np.random.default_rng(0)) == whole


def test_bootstrap_interval_covers_the_truth_most_of_the_time():
    """Coverage check: 500 prompts with pass rate 0.3; the 95% interval of the loss should hold
    the true loss 0.7 in roughly 95% of 60 independent samples (allow >= 85%)."""
    master = np.random.default_rng(123)
    covered = 0
    for _ in range(60):
        rates = (master.random(500) < 0.3).astype(float)
        low, high = bootstrap_mean_interval(1 - rates, 400, master)
        covered += low <= 0.7 <= high
    assert covered >= 51


def test_bootstrap_needs_data():
    with pytest.raises(ValueError):
        bootstrap_mean_interval(np.array([]), 10, np.random.default_rng(0))


def test_summarize_ci95_is_seeded_and_brackets_the_loss():
    tallies = [PromptTally(4, c, float(c)) for c in (0, 1, 2, 3, 4, 4, 1, 0, 2, 3)]
    a = summarize(tallies, n_boot=500, rng=np.random.default_rng(group_seed(0, ("x",))))
    b = summarize(tallies, n_boot=500, rng=np.random.default_rng(group_seed(0, ("x",))))
    c = summarize(tallies, n_boot=500, rng=np.random.default_rng(group_seed(1, ("x",))))
    assert a["ci95"] == b["ci95"]
    assert a["ci95"] != c["ci95"]
    assert a["ci95"][0] < a["loss"] < a["ci95"][1]


def test_group_keys_and_seeds():
    assert group_key([7e9, 1]) == group_key([7000000000, 1.0])
    assert group_key(["1"]) != group_key([1])
    assert group_key([None]) != group_key(["None"])
    assert group_key([{"a": 1, "b": 2}]) == group_key([{"b": 2, "a": 1}])
    s1 = group_seed(0, group_key([1])).generate_state(2)
    s2 = group_seed(0, group_key([2])).generate_state(2)
    assert list(s1) != list(s2)
    assert list(group_seed(0, group_key([1])).generate_state(2)) == list(s1)
