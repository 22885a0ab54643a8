"""rlscale.core.grpo and rlscale.engines.grpo_kernel against VeRL 0.9.1's core_algos on random tensors (the GRPO math)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.verl_support import needs_verl, oracle

torch = pytest.importorskip("torch", reason="the GRPO math needs torch (rlscale[train])")

MODES = ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"]


@needs_verl
@pytest.mark.parametrize("seed", [0, 1])
def test_grpo_math_matches_core_algos(seed):
    from rlscale.core.grpo import VERL_KL_NAMES, group_advantages
    from rlscale.engines.grpo_kernel import aggregate_loss, kl_estimate, policy_loss_terms

    rng = np.random.default_rng(seed)
    n_groups, g, t = 4, 5, 7
    b = n_groups * g
    lengths = rng.integers(1, t + 1, size=b)
    mask = (np.arange(t)[None, :] < lengths[:, None]).astype(float)
    logp = rng.normal(-1.5, 0.8, size=(b, t))
    old = logp + rng.normal(0, 0.4, size=(b, t))  # ratios well outside the clip range
    ref = logp + rng.normal(0, 0.6, size=(b, t))
    rewards = rng.integers(0, 2, size=b).astype(float)
    rewards[:g] = 1.0  # one group with equal rewards (advantage 0)
    groups = [f"p{i // g}" for i in range(b)]
    loss_mat = rng.normal(size=(b, t))
    verl = oracle({"algos": {"mask": mask.tolist(), "logp": logp.tolist(),
                             "old_logp": old.tolist(), "ref_logp": ref.tolist(),
                             "rewards": rewards.tolist(), "groups": groups, "modes": MODES,
                             "loss_mat": loss_mat.tolist()}})["algos"]
    for std_mode, key in (("unbiased", "True"), ("none", "False")):
        ours = group_advantages(rewards, groups, std_mode=std_mode).advantages
        np.testing.assert_allclose(ours, verl["advantages"][key], atol=1e-7)
    t_mask, t_logp = torch.tensor(mask), torch.tensor(logp)
    adv = torch.tensor(group_advantages(rewards, groups).advantages)[:, None]
    terms = policy_loss_terms(t_logp, torch.tensor(old), adv, clip_low=0.2, clip_high=0.28,
                              dual_clip=3.0)
    for mode in MODES:
        scale = t if mode == "seq-mean-token-sum-norm" else None  # VeRL: padded length
        pg = aggregate_loss(terms.losses, t_mask, mode, scale=scale)
        assert float(pg) == pytest.approx(verl["pg_loss"][mode], abs=1e-7), mode
        agg = aggregate_loss(torch.tensor(loss_mat), t_mask, mode, scale=scale)
        assert float(agg) == pytest.approx(verl["agg"][mode], abs=1e-7), mode
    assert VERL_KL_NAMES == {"k1": "kl", "k2": "mse", "k3": "low_var_kl"}
    for ours_name, verl_name in VERL_KL_NAMES.items():
        ours = kl_estimate(t_logp, torch.tensor(ref), ours_name)
        np.testing.assert_allclose(ours.numpy(), verl["kl"][verl_name], atol=1e-7)
