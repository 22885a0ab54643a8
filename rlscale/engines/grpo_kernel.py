"""GRPO token losses in torch: the dual-clip PPO loss, KL estimators, loss aggregation, and the
fused LM-head log-prob kernel the trainer (:mod:`rlscale.engines.train`) runs.

The names, constants and the advantage math these follow live in :mod:`rlscale.core.grpo`
(pure, no torch); the definitions are VeRL's (``verl/trainer/ppo/core_algos.py``, docs §1.3).

Symbols: ``B`` sequences in a (micro-)batch, ``T`` padded completion length, ``A`` advantage,
``ρ = π_θ / π_old`` the per-token probability ratio, ``ε_low``/``ε_high`` the clip range,
``c`` the dual-clip constant (VeRL ``clip_ratio_c``), ``β`` the KL coefficient.

Batch-wide normalisers (``n_tokens``, ``n_seqs``) can be passed to :func:`aggregate_loss` so that
summing the losses of micro-batches gives exactly the loss of the whole mini-batch: gradient
accumulation then equals one full-batch gradient (VeRL >= 0.5 does the same with its
"global batch info"; VeRL 0.3, which the paper ran, averaged per-micro-batch means instead,
which agrees when micro-batches hold equal token counts).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlscale.core.grpo import K3_CLAMP, KL_ESTIMATORS, LOG_RATIO_CLAMP, LOSS_AGG_MODES


def aggregate_loss(loss_mat, mask, mode: str = "token-mean", *, n_tokens: float | None = None,
                   n_seqs: float | None = None, scale: float | None = None):
    """Reduce a per-token loss matrix to a scalar (VeRL ``agg_loss``).

    Modes, with ``M`` the mask, ``L`` the loss matrix, ``|o_i| = Σ_t M_it``:

    * ``token-mean``: ``Σ_it M·L / Σ_it M`` (DAPO-style; VeRL's default and the paper's runs).
    * ``seq-mean-token-mean``: ``mean_i (Σ_t M·L / |o_i|)`` (the paper's written formula).
    * ``seq-mean-token-sum``: ``mean_i Σ_t M·L``.
    * ``seq-mean-token-sum-norm``: ``mean_i Σ_t M·L / scale`` (Dr. GRPO: a constant length
      normaliser; VeRL uses the padded response length ``T`` by default, TRL's ``dr_grpo`` the
      maximum completion length). VeRL <= 0.4 omitted the ``mean_i`` (a constant 1/B factor).

    Sequences with no unmasked token do not count in ``mean_i`` (as VeRL >= 0.5).

    Args:
        loss_mat: ``(B, T)`` per-token losses.
        mask: ``(B, T)`` 1 for completion tokens, 0 for padding.
        mode: one of :data:`LOSS_AGG_MODES`.
        n_tokens: divisor for ``token-mean`` (default: ``Σ M`` of this batch). Pass the
            mini-batch's count to make micro-batch losses sum to the mini-batch loss.
        n_seqs: divisor for the ``seq-mean-*`` modes (default: non-empty sequences here).
        scale: the ``seq-mean-token-sum-norm`` normaliser (default: ``T``).

    Returns:
        a scalar tensor.
    """
    mask = mask.to(loss_mat.dtype)
    masked = loss_mat * mask
    if mode == "token-mean":
        count = mask.sum() if n_tokens is None else torch.tensor(float(n_tokens))
        return masked.sum() / count.clamp(min=1)
    if mode not in LOSS_AGG_MODES:
        raise ValueError(f"loss aggregation must be one of {', '.join(LOSS_AGG_MODES)}, "
                         f"got {mode!r}")
    lengths = mask.sum(dim=-1)
    seqs = (lengths > 0).sum() if n_seqs is None else torch.tensor(float(n_seqs))
    seqs = seqs.clamp(min=1)
    token_sums = masked.sum(dim=-1)
    if mode == "seq-mean-token-mean":
        return (token_sums / lengths.clamp(min=1)).sum() / seqs
    if mode == "seq-mean-token-sum":
        return token_sums.sum() / seqs
    horizon = float(loss_mat.shape[-1]) if scale is None else float(scale)
    return token_sums.sum() / (seqs * horizon)


@dataclass
class PolicyLossTerms:
    """Per-token pieces of the dual-clip PPO loss, each ``(B, T)``.

    Attributes:
        losses: the clipped per-token policy-gradient loss (before aggregation).
        ratio: ``exp(logp - old_logp)``.
        clipped: 1.0 where the ε-clip was active (VeRL ``pg_clipfrac``).
        dual_clipped: 1.0 where the dual clip bound ``-A·c`` was active (A < 0 only).
    """

    losses: object
    ratio: object
    clipped: object
    dual_clipped: object


def policy_loss_terms(logp, old_logp, advantages, *, clip_low: float = 0.2,
                      clip_high: float = 0.2, dual_clip: float | None = 3.0) -> PolicyLossTerms:
    """Dual-clip PPO surrogate per token (Ye et al. 2020; VeRL ``compute_policy_loss``).

    ``L1 = -A·ρ``, ``L2 = -A·clip(ρ, 1-ε_low, 1+ε_high)``, ``L = max(L1, L2)``; for ``A < 0``
    the loss is further capped at ``-A·c`` so one very unlikely token with a huge ratio cannot
    dominate. ``dual_clip=None`` disables the cap (plain PPO clip).

    Args:
        logp: ``(B, T)`` log π_θ of the sampled tokens (carries the gradient).
        old_logp: ``(B, T)`` log π_old of the same tokens (no gradient).
        advantages: ``(B, T)`` or ``(B, 1)`` advantages (broadcast over tokens).
        clip_low, clip_high: ε_low, ε_high.
        dual_clip: c > 1, or None.

    >>> import torch
    >>> t = lambda *v: torch.tensor([list(v)])
    >>> policy_loss_terms(t(1.5).log(), t(0.0), t(1.0)).losses.item()   # A=+1, ρ=1.5
    -1.2000000476837158
    >>> policy_loss_terms(t(5.0).log(), t(0.0), t(-1.0)).losses.item()  # A=-1, ρ=5 -> c
    3.0
    """
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"dual clip constant must be > 1, got {dual_clip}")
    log_ratio = torch.clamp(logp - old_logp, -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    ratio = torch.exp(log_ratio)
    advantages = advantages.to(ratio.dtype)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    losses = torch.maximum(unclipped, clipped)
    clip_active = (clipped > unclipped).to(ratio.dtype)
    if dual_clip is None:
        return PolicyLossTerms(losses, ratio, clip_active, torch.zeros_like(ratio))
    cap = -advantages * dual_clip
    negative = advantages < 0
    dual_active = ((losses > cap) & negative).to(ratio.dtype)
    losses = torch.where(negative, torch.minimum(losses, cap), losses)
    return PolicyLossTerms(losses, ratio, clip_active, dual_active)


def kl_estimate(logp, ref_logp, estimator: str = "k3"):
    """Per-token estimate of KL(π_θ || π_ref) from sampled-token log-probs (Schulman 2020).

    * ``k1``: ``logp - ref`` (unbiased, high variance, can be negative);
    * ``k2``: ``(logp - ref)² / 2``;
    * ``k3``: ``exp(ref - logp) - (ref - logp) - 1`` (unbiased, >= 0; VeRL ``low_var_kl``),
      with ``ref - logp`` clamped to [-20, 20] and the result clamped to [-10, 10] as in VeRL.

    Args:
        logp, ref_logp: ``(B, T)`` log-probs of the sampled tokens.

    >>> import torch
    >>> round(kl_estimate(torch.tensor([0.1]), torch.tensor([0.0])).item(), 7)
    0.0048374
    """
    diff = logp - ref_logp
    if estimator == "k1":
        return diff
    if estimator == "k2":
        return 0.5 * diff.square()
    if estimator == "k3":
        log_ratio = torch.clamp(-diff, -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
        # expm1(x) - x == exp(x) - x - 1 with less cancellation for small x
        return torch.clamp(torch.expm1(log_ratio) - log_ratio, -K3_CLAMP, K3_CLAMP)
    raise ValueError(f"KL estimator must be one of {', '.join(KL_ESTIMATORS)}, got {estimator!r}")


def token_logprobs(logits, token_ids):
    """Log-probabilities of ``token_ids`` under ``logits`` without materialising log_softmax.

    Args:
        logits: ``(B, T, V)``. token_ids: ``(B, T)`` int64.

    Returns:
        ``(B, T)`` float32: ``logits[token] - logsumexp(logits)``.
    """
    logits = logits.float()
    picked = torch.gather(logits, -1, token_ids.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def entropy_from_logits(logits):
    """Entropy of the categorical distribution per position: ``logsumexp(z) - Σ softmax(z)·z``.

    Args:
        logits: ``(B, T, V)``.

    Returns:
        ``(B, T)`` float32 entropies in nats.

    >>> import torch
    >>> round(entropy_from_logits(torch.zeros(1, 1, 4)).item(), 6)  # uniform over 4: ln 4
    1.386294
    """
    logits = logits.float()
    probs = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(dim=-1)


class FusedTokenLogprobs(torch.autograd.Function):
    """Autograd function behind :func:`fused_token_logprobs` (the LM head applied in row
    chunks, recomputed chunk by chunk in backward)."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, inv_temperature, chunk, with_entropy,
                compute_dtype):
        ctx.set_materialize_grads(False)
        n = hidden.shape[0]
        logp = hidden.new_empty(n, dtype=torch.float32)
        entropy = hidden.new_zeros(n, dtype=torch.float32)
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            z = _chunk_logits(hidden[start:stop], weight, bias, inv_temperature,
                              compute_dtype)
            lse = torch.logsumexp(z, dim=-1)
            logp[start:stop] = z.gather(-1, targets[start:stop, None]).squeeze(-1) - lse
            if with_entropy:  # H = lse - Σ p·z, with p·z formed in place (one extra tile)
                weighted = torch.sub(z, lse[:, None]).exp_().mul_(z)
                entropy[start:stop] = lse - weighted.sum(-1)
        ctx.save_for_backward(hidden, weight, bias, targets, entropy)
        ctx.inv_temperature, ctx.chunk, ctx.compute_dtype = inv_temperature, chunk, \
            compute_dtype
        return logp, entropy

    @staticmethod
    def backward(ctx, grad_logp, grad_entropy):
        hidden, weight, bias, targets, entropy = ctx.saved_tensors
        grad_hidden = torch.zeros_like(hidden) if ctx.needs_input_grad[0] else None
        want_weight = ctx.needs_input_grad[1]
        want_bias = bias is not None and ctx.needs_input_grad[2]
        grad_weight = grad_bias = None
        n = hidden.shape[0]
        for start in range(0, n, ctx.chunk):
            stop = min(start + ctx.chunk, n)
            z = _chunk_logits(hidden[start:stop], weight, bias, ctx.inv_temperature,
                              ctx.compute_dtype)
            lse = torch.logsumexp(z, dim=-1, keepdim=True)
            entropy_term = None
            if grad_entropy is not None:
                # dH/dz_j = -p_j (log p_j + H)
                log_probs = z - lse
                h = entropy[start:stop, None]
                entropy_term = log_probs.exp() * (log_probs + h)
                entropy_term *= -grad_entropy[start:stop, None].float()
                del log_probs
            probs = z.sub_(lse).exp_()  # the logits tile becomes the softmax, in place
            if grad_logp is not None:
                # d log p_y / dz = onehot(y) - p
                g = grad_logp[start:stop, None].float()
                grad_z = probs.mul_(-g)
                grad_z.scatter_add_(-1, targets[start:stop, None], g)
                if entropy_term is not None:
                    grad_z += entropy_term
            else:
                grad_z = entropy_term
            if grad_z is None:
                continue
            if ctx.inv_temperature != 1.0:
                grad_z *= ctx.inv_temperature
            if want_bias:
                part = grad_z.sum(0)
                grad_bias = part if grad_bias is None else grad_bias.add_(part)
            dtype = ctx.compute_dtype or hidden.dtype
            grad_z = grad_z.to(dtype)
            if grad_hidden is not None:
                grad_hidden[start:stop] = (grad_z @ weight.to(dtype)).to(hidden.dtype)
            if want_weight:
                part = (grad_z.T @ hidden[start:stop].to(dtype)).float()
                grad_weight = part if grad_weight is None else grad_weight.add_(part)
        if grad_weight is not None:
            grad_weight = grad_weight.to(weight.dtype)
        if grad_bias is not None:
            grad_bias = grad_bias.to(bias.dtype)
        return grad_hidden, grad_weight, grad_bias, None, None, None, None, None


def _chunk_logits(hidden, weight, bias, inv_temperature, compute_dtype=None):
    """Logits of a row chunk in float32; the matmul itself runs in ``compute_dtype``."""
    dtype = compute_dtype or torch.float32
    z = (hidden.to(dtype) @ weight.to(dtype).T).float()
    if bias is not None:
        z = z + bias.float()
    return z * inv_temperature if inv_temperature != 1.0 else z


# logits materialised at once (float32 values), whatever the vocabulary: 16 MiB on CPU; on a GPU
# 64 MiB, so a chunk is ~100 rows of a 150k vocabulary and kernel launches stay few
FUSED_CHUNK_VALUES = 1 << 22
FUSED_CHUNK_VALUES_CUDA = 1 << 24


def fused_token_logprobs(hidden, weight, bias, token_ids, *, temperature: float = 1.0,
                         with_entropy: bool = False, compute_dtype=None):
    """Log-probs (and entropies) of ``token_ids`` from final hidden states, never holding the
    full ``(N, V)`` logits: the LM head is applied in row chunks in the forward pass and
    recomputed chunk by chunk in the backward pass (the memory trick of Liger-style fused
    linear cross-entropy, here for log-probs).

    Args:
        hidden: ``(N, H)`` final hidden states of the positions that predict ``token_ids``.
        weight: ``(V, H)`` LM-head weight; bias: ``(V,)`` or None.
        token_ids: ``(N,)`` int64 targets.
        temperature: logits are divided by it (the sampling temperature).
        with_entropy: also return the entropy per row (differentiable).
        compute_dtype: dtype of the LM-head matmuls (e.g. ``torch.bfloat16`` as under autocast;
            default float32); softmax statistics are always float32.

    Returns:
        ``(logp, entropy)``, each ``(N,)`` float32 (entropy is zeros unless ``with_entropy``).
        Equal to ``token_logprobs`` / ``entropy_from_logits`` on ``hidden @ weight.T / T``.
    """
    budget = FUSED_CHUNK_VALUES_CUDA if hidden.is_cuda else FUSED_CHUNK_VALUES
    chunk = max(1, budget // max(int(weight.shape[0]), 1))
    return FusedTokenLogprobs.apply(hidden, weight, bias, token_ids, 1.0 / temperature, chunk,
                                    with_entropy, compute_dtype)
