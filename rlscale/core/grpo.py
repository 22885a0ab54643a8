"""GRPO math: group advantages, the names of the loss settings, and the mini-batch split.

Pure functions over numpy arrays and Python values; no torch, no model, no I/O, no state. The
per-token losses that use these names (the dual-clip PPO loss, the KL estimators, the loss
aggregations, the fused LM-head log-probs) are torch code in :mod:`rlscale.engines.grpo_kernel`.
Definitions follow what the paper's VeRL runs computed (Tan et al. 2025, arXiv 2509.25300,
App. A.2 and ``verl/trainer/ppo/core_algos.py``; see docs §1.3), not the paper's formula where
the two differ (token-mean aggregation instead of the per-sequence 1/|o_i|).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from rlscale.core.errors import OptionError

# VeRL compute_grpo_outcome_advantage: (r - mean) / (std + epsilon), epsilon = 1e-6.
ADVANTAGE_EPS = 1e-6
# VeRL kl_penalty("low_var_kl"): the k3 estimate is clamped to [-10, 10] for stability.
K3_CLAMP = 10.0
# VeRL clamps log-ratios to [-20, 20] before exp() so a huge ratio cannot overflow.
LOG_RATIO_CLAMP = 20.0

STD_MODES = ("unbiased", "biased", "none")
# rlscale's KL estimator names (Schulman 2020) -> VeRL's kl_loss_type for the same estimate
VERL_KL_NAMES = {"k1": "kl", "k2": "mse", "k3": "low_var_kl"}
KL_ESTIMATORS = tuple(VERL_KL_NAMES)
LOSS_AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum",
                  "seq-mean-token-sum-norm")


# --- advantages (numpy) --------------------------------------------------------------------


@dataclass(frozen=True)
class AdvantageResult:
    """Per-sample advantages and per-group statistics.

    Attributes:
        advantages: ``(n,)`` float64, one scalar per sample (broadcast over its tokens).
        group_index: ``(n,)`` int, index of each sample's group in ``group_keys``.
        group_keys: the distinct group keys in order of first appearance.
        group_mean / group_std: ``(n_groups,)`` the statistics used (std is 1 for a group of
            size 1 and for ``std_mode="none"``).
        zero_groups: ``(n_groups,)`` bool, True where every advantage of the group is 0
            (all rewards equal in a group of two or more; a lone sample with reward 0).
    """

    advantages: np.ndarray
    group_index: np.ndarray
    group_keys: list
    group_mean: np.ndarray
    group_std: np.ndarray
    zero_groups: np.ndarray

    @property
    def n_zero_adv_groups(self) -> int:
        return int(self.zero_groups.sum())


def group_advantages(
    rewards: Sequence[float] | np.ndarray,
    group_keys: Sequence[Hashable],
    *,
    std_mode: str = "unbiased",
    eps: float = ADVANTAGE_EPS,
) -> AdvantageResult:
    """GRPO outcome advantages, normalised within each prompt group.

    ``A_i = (r_i - mean_g) / (std_g + eps)`` with ``std_g`` unbiased (N-1, ``torch.std``'s
    default, as VeRL), biased (N) or omitted (``"none"``: ``A_i = r_i - mean_g``, Dr. GRPO,
    Liu et al. 2025). A group of size 1 uses mean 0 and std 1 (so ``A = r``), as VeRL does.
    Groups whose rewards are all equal get exactly 0 (not ``0/eps`` rounding noise).

    Args:
        rewards: ``(n,)`` scalar reward per sample.
        group_keys: ``(n,)`` hashable group id per sample (the prompt id); groups need not be
            contiguous.
        std_mode: ``"unbiased"``, ``"biased"`` or ``"none"``.
        eps: added to the std before dividing.

    >>> r = group_advantages([1, 0, 0, 0, 0, 0, 0, 0], ["p"] * 8, eps=0.0)
    >>> [round(float(a), 6) for a in r.advantages[:2]]   # 0.875/√0.125, -0.125/√0.125
    [2.474874, -0.353553]
    >>> group_advantages([1.0, 1.0], ["a", "a"]).n_zero_adv_groups
    1
    """
    if std_mode not in STD_MODES:
        raise ValueError(f"std_mode must be one of {', '.join(STD_MODES)}, got {std_mode!r}")
    values = np.asarray(rewards, dtype=np.float64).reshape(-1)
    if len(group_keys) != values.size:
        raise ValueError(f"{values.size} rewards but {len(group_keys)} group keys")
    if not np.all(np.isfinite(values)):
        raise ValueError("rewards must be finite")
    index_of: dict[Hashable, int] = {}
    group_index = np.empty(values.size, dtype=np.int64)
    for i, key in enumerate(group_keys):
        group_index[i] = index_of.setdefault(key, len(index_of))
    n_groups = len(index_of)

    sizes = np.bincount(group_index, minlength=n_groups).astype(np.float64)
    sums = np.bincount(group_index, weights=values, minlength=n_groups)
    means = np.divide(sums, sizes, out=np.zeros(n_groups), where=sizes > 0)
    deviations = values - means[group_index]
    squares = np.bincount(group_index, weights=deviations**2, minlength=n_groups)
    if std_mode == "none":
        stds = np.ones(n_groups)
    else:
        dof = sizes - 1.0 if std_mode == "unbiased" else sizes
        stds = np.sqrt(np.divide(squares, dof, out=np.zeros(n_groups), where=dof > 0))
    group_min = np.full(n_groups, np.inf)
    group_max = np.full(n_groups, -np.inf)
    np.minimum.at(group_min, group_index, values)
    np.maximum.at(group_max, group_index, values)
    all_equal = group_min == group_max

    singleton = sizes == 1
    means = np.where(singleton, 0.0, means)
    stds = np.where(singleton, 1.0, stds)
    if std_mode == "none":
        advantages = values - means[group_index]
    else:
        with np.errstate(divide="ignore", invalid="ignore"):  # flat groups are zeroed below
            advantages = (values - means[group_index]) / (stds[group_index] + eps)
    # all-equal groups of size >= 2 carry no signal: exactly zero, not (r - mean)/eps noise
    flat = all_equal & ~singleton
    advantages = np.where(flat[group_index], 0.0, advantages)
    zero = np.ones(n_groups, dtype=bool)
    np.logical_and.at(zero, group_index, advantages == 0.0)
    return AdvantageResult(advantages, group_index, list(index_of), means, stds, zero)


def split_groups(n_groups: int, n_parts: int) -> list[range]:
    """Split ``n_groups`` consecutive prompt groups into ``n_parts`` near-equal mini-batches.

    Sizes differ by at most one (earlier parts are larger).

    >>> split_groups(10, 4)
    [range(0, 3), range(3, 6), range(6, 8), range(8, 10)]
    """
    if n_parts < 1:
        raise ValueError("need at least one mini-batch")
    if n_groups < n_parts:
        raise ValueError(f"{n_parts} mini-batches need at least {n_parts} prompt groups, "
                         f"got {n_groups}")
    base, extra = divmod(n_groups, n_parts)
    out, start = [], 0
    for part in range(n_parts):
        size = base + (1 if part < extra else 0)
        out.append(range(start, start + size))
        start += size
    return out




def check_step_options(*, lr: float = 1e-6, clip: float = 0.2, clip_high: float = 0.2,
                       dual_clip: float | None = 3.0, kl_coef: float = 0.001, kl: str = "k3",
                       loss_agg: str = "token-mean", loss_scale: float | None = None,
                       mini_batches: int = 4, micro_batch_size: int = 8,
                       max_tokens_per_micro_batch: int | None = None,
                       max_grad_norm: float | None = 1.0, weight_decay: float = 0.1,
                       temperature: float = 1.0) -> None:
    """Refuse a bad hyper-parameter of a GRPO step with :class:`OptionError` naming it.

    Names and meanings are :func:`rlscale.grpo_step`'s; ``dual_clip`` and ``max_grad_norm``
    are off at 0 (or None). Checked in this order, so the first bad one is reported.

    >>> check_step_options(kl="k9")
    Traceback (most recent call last):
    ...
    rlscale.core.errors.OptionError: kl must be one of k1, k2, k3, got 'k9'
    """
    checks = [
        ("lr", lr > 0, f"must be > 0, got {lr}"),
        ("clip", 0 <= clip < 1, f"must be in [0, 1), got {clip}"),
        ("clip_high", clip_high >= 0, f"must be >= 0, got {clip_high}"),
        ("dual_clip", not dual_clip or dual_clip > 1,
         f"must be > 1 (or 0 to disable), got {dual_clip}"),
        ("kl_coef", kl_coef >= 0, f"must be >= 0, got {kl_coef}"),
        ("kl", kl in KL_ESTIMATORS,
         f"must be one of {', '.join(KL_ESTIMATORS)}, got {kl!r}"),
        ("loss_agg", loss_agg in LOSS_AGG_MODES,
         f"must be one of {', '.join(LOSS_AGG_MODES)}, got {loss_agg!r}"),
        ("loss_scale", loss_scale is None or loss_scale > 0, f"must be > 0, got {loss_scale}"),
        ("mini_batches", mini_batches >= 1, f"must be >= 1, got {mini_batches}"),
        ("micro_batch_size", micro_batch_size >= 1, f"must be >= 1, got {micro_batch_size}"),
        ("max_tokens_per_micro_batch",
         max_tokens_per_micro_batch is None or max_tokens_per_micro_batch >= 1,
         f"must be >= 1, got {max_tokens_per_micro_batch}"),
        ("max_grad_norm", not max_grad_norm or max_grad_norm > 0,
         f"must be > 0 (or 0 to disable), got {max_grad_norm}"),
        ("weight_decay", weight_decay >= 0, f"must be >= 0, got {weight_decay}"),
        ("temperature", temperature > 0, f"must be > 0, got {temperature}"),
    ]
    for name, ok, message in checks:
        if not ok:
            raise OptionError(name, message)
