"""GRPO math (rlscale.core.grpo, rlscale.engines.grpo_kernel) against hand-computed values (docs §6 A-G1..A-G3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from rlscale.core import grpo
from rlscale.engines import grpo_kernel
from tests.conftest import jsonl, run_cli

# --- advantages ------------------------------------------------------------------------------


def test_advantages_one_correct_of_eight_match_the_paper_check():
    result = grpo.group_advantages([1, 0, 0, 0, 0, 0, 0, 0], ["q"] * 8)
    # mean 0.125, unbiased std sqrt(0.125); eps 1e-6 moves the 6th digit only
    assert result.advantages[0] == pytest.approx(2.474874, rel=1e-5)
    assert result.advantages[1:] == pytest.approx([-0.353553] * 7, rel=1e-5)
    assert result.advantages[0] == pytest.approx(0.875 / (math.sqrt(0.125) + 1e-6), rel=1e-12)
    assert result.group_std[0] == pytest.approx(math.sqrt(0.125))
    assert result.n_zero_adv_groups == 0


def test_biased_and_none_std_modes():
    rewards = [1.0, 0.0, 0.0, 0.0]
    biased = grpo.group_advantages(rewards, ["a"] * 4, std_mode="biased", eps=0.0)
    # mean .25, population std sqrt(.1875)
    assert biased.advantages == pytest.approx(np.array([0.75, -0.25, -0.25, -0.25])
                                              / math.sqrt(0.1875))
    dr = grpo.group_advantages(rewards, ["a"] * 4, std_mode="none")
    assert dr.advantages == pytest.approx([0.75, -0.25, -0.25, -0.25])


def test_all_equal_groups_are_zero_and_counted_and_groups_may_interleave():
    rewards = [1, 1, 1, 1, 0.3, 0, 0.3]
    keys = ["a", "b", "a", "a", "c", "b", "c"]
    result = grpo.group_advantages(rewards, keys)
    assert result.group_keys == ["a", "b", "c"]
    assert result.advantages[[0, 2, 3]] == pytest.approx([0, 0, 0], abs=0)
    assert result.advantages[4] == 0.0 and result.advantages[6] == 0.0  # 0.3 == 0.3 exactly 0
    assert result.advantages[1] == pytest.approx(0.5 / (math.sqrt(0.5) + 1e-6))
    assert result.advantages[5] == pytest.approx(-0.5 / (math.sqrt(0.5) + 1e-6))
    assert result.zero_groups.tolist() == [True, False, True]
    assert result.n_zero_adv_groups == 2


def test_group_of_one_uses_mean_zero_std_one_like_verl():
    result = grpo.group_advantages([0.7, 0.0], ["lone", "zero"])
    assert result.advantages[0] == pytest.approx(0.7 / (1 + 1e-6))
    assert result.advantages[1] == 0.0
    assert result.zero_groups.tolist() == [False, True]


def test_bad_advantage_inputs():
    with pytest.raises(ValueError, match="std_mode must be one of"):
        grpo.group_advantages([1.0], ["a"], std_mode="sample")
    with pytest.raises(ValueError, match="2 rewards but 1 group keys"):
        grpo.group_advantages([1.0, 0.0], ["a"])
    with pytest.raises(ValueError, match="finite"):
        grpo.group_advantages([float("nan")], ["a"])


# rewards on a 1/4 grid: the std of a non-flat group is then bounded away from 0, so
# float rounding of shifted rewards cannot be amplified into large advantage differences
group_rewards = st.lists(st.lists(st.integers(-20, 20).map(lambda k: k / 4), min_size=2,
                                  max_size=8), min_size=1, max_size=5)


@given(group_rewards, st.sampled_from(grpo.STD_MODES), st.integers(-100, 100))
def test_property_zero_mean_per_group_and_shift_invariance(groups, std_mode, shift):
    rewards = [r for g in groups for r in g]
    keys = [k for k, g in enumerate(groups) for _ in g]
    result = grpo.group_advantages(rewards, keys, std_mode=std_mode)
    shifted = grpo.group_advantages([r + shift for r in rewards], keys, std_mode=std_mode)
    for k in range(len(groups)):
        members = result.group_index == k
        assert abs(result.advantages[members].sum()) < 1e-6 * max(1, np.abs(
            result.advantages[members]).max())
    # the group mean absorbs any constant shift
    assert np.allclose(result.advantages, shifted.advantages, atol=1e-9)
    assert result.n_zero_adv_groups == shifted.n_zero_adv_groups


@given(group_rewards, st.floats(0.1, 10))
def test_property_scale_invariance_with_std(groups, factor):
    rewards = [r for g in groups for r in g]
    keys = [k for k, g in enumerate(groups) for _ in g]
    base = grpo.group_advantages(rewards, keys, eps=0.0)
    scaled = grpo.group_advantages([r * factor for r in rewards], keys, eps=0.0)
    assert np.allclose(base.advantages, scaled.advantages, atol=1e-6)


# --- policy loss -----------------------------------------------------------------------------


@pytest.mark.parametrize(("advantage", "ratio", "expected", "clipped", "dual"), [
    (+1.0, 1.5, -1.2, 1.0, 0.0),   # ratio clipped to 1 + 0.2
    (-1.0, 1.5, +1.5, 0.0, 0.0),   # pessimistic branch keeps the unclipped ratio
    (-1.0, 5.0, +3.0, 0.0, 1.0),   # dual clip caps at -A * 3
    (+1.0, 0.5, -0.5, 0.0, 0.0),   # min() keeps the smaller objective
    (-1.0, 0.5, +0.8, 1.0, 0.0),   # clipped at 1 - 0.2
    (+1.0, 1.0, -1.0, 0.0, 0.0),
])
def test_dual_clip_policy_loss_elementwise(advantage, ratio, expected, clipped, dual):
    logp = torch.tensor([[math.log(ratio)]])
    terms = grpo_kernel.policy_loss_terms(logp, torch.zeros(1, 1), torch.tensor([[advantage]]))
    assert terms.losses.item() == pytest.approx(expected, rel=1e-6)
    assert terms.ratio.item() == pytest.approx(ratio, rel=1e-6)
    assert terms.clipped.item() == clipped
    assert terms.dual_clipped.item() == dual


def test_separate_clip_bounds_and_dual_clip_off():
    logp = torch.log(torch.tensor([[1.5, 0.5, 5.0]]))
    adv = torch.tensor([[1.0, -1.0, -1.0]])
    terms = grpo_kernel.policy_loss_terms(logp, torch.zeros(1, 3), adv, clip_low=0.1, clip_high=0.28,
                                   dual_clip=None)
    assert terms.losses.tolist()[0] == pytest.approx([-1.28, 0.9, 5.0], rel=1e-6)
    with pytest.raises(ValueError, match="dual clip constant must be > 1"):
        grpo_kernel.policy_loss_terms(logp, torch.zeros(1, 3), adv, dual_clip=0.5)


def test_policy_gradient_flows_only_through_unclipped_tokens():
    logp = torch.log(torch.tensor([[1.5, 1.1]])).requires_grad_()
    terms = grpo_kernel.policy_loss_terms(logp, torch.zeros(1, 2), torch.tensor([[1.0]]))
    terms.losses.sum().backward()
    # d(-A * ratio)/d logp = -A * ratio where unclipped; 0 where the clip is active
    assert logp.grad.tolist()[0] == pytest.approx([0.0, -1.1], rel=1e-6)


# --- KL --------------------------------------------------------------------------------------


def test_kl_estimators_by_hand():
    logp, ref = torch.tensor([0.1, 0.0, -0.3]), torch.tensor([0.0, 0.0, 0.2])
    assert grpo_kernel.kl_estimate(logp, ref, "k3").tolist() == pytest.approx(
        [math.exp(-0.1) + 0.1 - 1, 0.0, math.exp(0.5) - 0.5 - 1], rel=1e-6)
    assert grpo_kernel.kl_estimate(logp, ref, "k3")[0].item() == pytest.approx(0.0048374, abs=5e-8)
    exact = grpo_kernel.kl_estimate(torch.tensor([0.1], dtype=torch.float64),
                             torch.tensor([0.0], dtype=torch.float64), "k3")
    assert exact.item() == pytest.approx(0.0048374180, abs=1e-10)
    assert grpo_kernel.kl_estimate(logp, ref, "k1").tolist() == pytest.approx([0.1, 0.0, -0.5])
    assert grpo_kernel.kl_estimate(logp, ref, "k2").tolist() == pytest.approx([0.005, 0.0, 0.125])
    with pytest.raises(ValueError, match="KL estimator must be one of k1, k2, k3"):
        grpo_kernel.kl_estimate(logp, ref, "low_var")


def test_k3_is_clamped_to_ten():
    # ref - logp = 5: e^5 - 5 - 1 = 142.4 -> 10
    value = grpo_kernel.kl_estimate(torch.tensor([-5.0]), torch.tensor([0.0]), "k3")
    assert value.item() == 10.0


# --- aggregation -----------------------------------------------------------------------------

LOSS = torch.tensor([[1.0, 2.0, 3.0, 0.0], [4.0, 0.0, 0.0, 0.0], [9.0, 9.0, 9.0, 9.0]])
MASK = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.float32)


@pytest.mark.parametrize(("mode", "expected"), [
    ("token-mean", (1 + 2 + 3 + 4) / 4),
    ("seq-mean-token-mean", ((1 + 2 + 3) / 3 + 4 / 1) / 2),  # the empty row does not count
    ("seq-mean-token-sum", ((1 + 2 + 3) + 4) / 2),
    ("seq-mean-token-sum-norm", ((1 + 2 + 3) + 4) / 2 / 4),  # horizon = padded length 4
])
def test_each_aggregation_mode_by_hand(mode, expected):
    assert grpo_kernel.aggregate_loss(LOSS, MASK, mode).item() == pytest.approx(expected)


def test_aggregation_with_explicit_normalisers():
    assert grpo_kernel.aggregate_loss(LOSS, MASK, "token-mean", n_tokens=8).item() == pytest.approx(10 / 8)
    assert grpo_kernel.aggregate_loss(LOSS, MASK, "seq-mean-token-sum-norm", n_seqs=4,
                               scale=10).item() == pytest.approx(10 / 40)
    with pytest.raises(ValueError, match="loss aggregation must be one of"):
        grpo_kernel.aggregate_loss(LOSS, MASK, "sum")


@given(st.lists(st.integers(0, 5), min_size=2, max_size=9), st.integers(1, 4),
       st.sampled_from(grpo.LOSS_AGG_MODES), st.integers(0, 2**31 - 1))
def test_property_micro_batch_losses_sum_to_the_full_batch_loss(lengths, n_micro, mode, seed):
    """With mini-batch normalisers, any split into micro-batches adds up to the whole."""
    generator = torch.Generator().manual_seed(seed)
    width = max(max(lengths), 1)
    loss = torch.randn(len(lengths), width, generator=generator, dtype=torch.float64)
    mask = torch.tensor([[1.0] * n + [0.0] * (width - n) for n in lengths], dtype=torch.float64)
    norms = {"n_tokens": sum(lengths), "n_seqs": sum(1 for n in lengths if n), "scale": width}
    full = grpo_kernel.aggregate_loss(loss, mask, mode, scale=width)
    parts = sum(grpo_kernel.aggregate_loss(loss[k::n_micro], mask[k::n_micro], mode, **norms)
                for k in range(n_micro))
    assert float(parts) == pytest.approx(float(full), abs=1e-9)


# --- log-probs, entropy, mini-batch split ----------------------------------------------------


def test_token_logprobs_and_entropy_match_log_softmax():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 7, generator=generator)
    ids = torch.randint(0, 7, (2, 3), generator=generator)
    reference = torch.log_softmax(logits, -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(grpo_kernel.token_logprobs(logits, ids), reference, atol=1e-6)
    probs = torch.softmax(logits, -1)
    assert torch.allclose(grpo_kernel.entropy_from_logits(logits),
                          -(probs * torch.log_softmax(logits, -1)).sum(-1), atol=1e-6)


def test_split_groups():
    assert grpo.split_groups(8, 4) == [range(0, 2), range(2, 4), range(4, 6), range(6, 8)]
    assert [len(r) for r in grpo.split_groups(7, 3)] == [3, 2, 2]
    with pytest.raises(ValueError, match="4 mini-batches need at least 4 prompt groups, got 3"):
        grpo.split_groups(3, 4)


# --- --emit advantages (no model) ------------------------------------------------------------


def test_emit_advantages_passes_records_through_in_order():
    records = [{"prompt_id": "a", "sample_idx": i, "reward": float(i == 0), "keep": i}
               for i in range(8)]
    records.insert(3, {"prompt_id": 7, "sample_idx": 0, "reward": 1})
    records.append({"prompt_id": 7, "sample_idx": 1, "reward": 1})
    result = run_cli(["grpo-step", "--emit", "advantages"], input=jsonl(records))
    assert result.exit_code == 0, result.stderr
    out = result.records
    assert [r["keep"] for r in out if "keep" in r] == list(range(8))
    assert [r["advantage"] for r in out if r["prompt_id"] == 7] == [0.0, 0.0]
    a = [r["advantage"] for r in out if r["prompt_id"] == "a"]
    assert a[0] == pytest.approx(2.474874, rel=1e-5) and a[1] == pytest.approx(-0.353553, rel=1e-5)
    assert "10 records, 2 groups, 1 with zero advantage" in result.stderr


def test_emit_advantages_std_none_and_bad_line():
    good = jsonl([{"prompt_id": "a", "reward": 1}, {"prompt_id": "a", "reward": 0}])
    result = run_cli(["grpo-step", "--emit", "advantages", "--std", "none", "-q"], input=good)
    assert [r["advantage"] for r in result.records] == [0.5, -0.5]
    bad = good + '{"prompt_id": "a", "reward": "yes"}\n'
    result = run_cli(["grpo-step", "--emit", "advantages"], input=bad)
    assert result.exit_code == 1
    assert result.stderr.strip() == ("rlscale grpo-step: <stdin>:3: field 'reward' must be a "
                                     'number, got string "yes"')
    result = run_cli(["grpo-step", "--emit", "advantages", "--std", "sample"], input=good)
    assert result.exit_code == 2
    assert result.stderr.strip() == ("rlscale grpo-step: --std must be one of unbiased, biased, "
                                     "none, got 'sample'")


@pytest.mark.parametrize(("temperature", "use_bias", "chunk_values"), [
    (1.0, False, 1 << 22), (0.7, True, 16)])
def test_fused_logprobs_match_full_logits_values_and_gradients(temperature, use_bias,
                                                               chunk_values, monkeypatch):
    monkeypatch.setattr(grpo_kernel, "FUSED_CHUNK_VALUES", chunk_values)  # 16: one row per chunk
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(6, 5, generator=generator, dtype=torch.float64)
    weight = torch.randn(11, 5, generator=generator, dtype=torch.float64)
    bias = torch.randn(11, generator=generator, dtype=torch.float64) if use_bias else None
    ids = torch.randint(0, 11, (6,), generator=generator)
    g_logp, g_ent = torch.randn(6, generator=generator), torch.randn(6, generator=generator)

    def run(fused):
        leaves = [t.clone().requires_grad_() for t in (hidden, weight)]
        b = bias.clone().requires_grad_() if use_bias else None
        if fused:
            logp, ent = grpo_kernel.fused_token_logprobs(*leaves, b, ids, temperature=temperature,
                                                  with_entropy=True)
        else:
            logits = leaves[0] @ leaves[1].T + (b if use_bias else 0)
            logits = logits / temperature
            logp = grpo_kernel.token_logprobs(logits[None], ids[None])[0]
            ent = grpo_kernel.entropy_from_logits(logits[None])[0]
        ((logp * g_logp).sum() + (ent * g_ent).sum()).backward()
        grads = [t.grad for t in leaves] + ([b.grad] if use_bias else [])
        return logp.detach(), ent.detach(), grads

    logp_f, ent_f, grads_f = run(True)
    logp_r, ent_r, grads_r = run(False)
    assert torch.allclose(logp_f.double(), logp_r.double(), atol=1e-5)
    assert torch.allclose(ent_f.double(), ent_r.double(), atol=1e-5)
    for a, b in zip(grads_f, grads_r, strict=True):
        assert torch.allclose(a.double(), b.double(), atol=1e-4)


def test_emit_verl_maps_every_setting():
    result = run_cli(["grpo-step", "--emit", "verl", "--policy", "/m", "--kl", "k2", "--std",
                      "none", "--mini-batches", "4", "--train-batch-size", "256",
                      "--clip-high", "0.28", "--dual-clip", "0", "--lora", "--lora-rank", "16"])
    assert result.exit_code == 0, result.stderr
    (record,) = result.records
    overrides = dict(item.split("=", 1) for item in record["verl_overrides"])
    assert overrides["algorithm.adv_estimator"] == "grpo"
    assert overrides["algorithm.norm_adv_by_std_in_grpo"] == "False"
    assert overrides["actor_rollout_ref.actor.ppo_mini_batch_size"] == "64"
    assert overrides["actor_rollout_ref.actor.kl_loss_type"] == "mse"
    assert overrides["actor_rollout_ref.actor.clip_ratio_high"] == "0.28"
    assert overrides["actor_rollout_ref.actor.loss_agg_mode"] == "token-mean"
    assert overrides["actor_rollout_ref.model.lora_rank"] == "16"
    assert overrides["actor_rollout_ref.model.path"] == "/m"
    assert "python3 -m verl.trainer.main_ppo algorithm." in record["command"]
    assert any("dual clip" in c for c in record["caveats"])
    assert "rlscale grpo-step: note: VeRL always applies the dual clip" in result.stderr
    # VeRL has no biased std: refused with the reason (it was a caveat before)
    result = run_cli(["grpo-step", "--emit", "verl", "--policy", "/m", "--std", "biased"])
    assert result.exit_code == 2
    assert result.stderr.startswith("rlscale grpo-step: --std biased: VeRL's GRPO advantage")


def test_doctests_of_the_core_math_and_the_kernel():
    import doctest

    from rlscale.core import grpo as core_grpo

    for module in (core_grpo, grpo_kernel):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_core_grpo_imports_no_torch():
    import subprocess
    import sys

    probe = "import sys, rlscale.core.grpo; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
