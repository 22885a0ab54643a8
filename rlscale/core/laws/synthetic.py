"""Synthetic learning curves from the paper's released fits, for tests, benchmarks and demos.

The constants are the full-data ``loglinear_kn`` fit of the Qwen2.5 base models with x = C_raw
(``fits_exp1.json`` @ 470039b; T25 method notes §3.3): K_max = 0.133042, N_0 = 13.782e9 and
one log10 intercept E0 per model size. Compute follows the simulation protocol of check A-S3:
``C = N * 512 * step * 2e4`` for steps 1..105 (512 prompts per step, ~2e4 FLOPs per parameter
and prompt), and Gaussian noise of sd 0.012 on L (about the run-to-run sd of §3.5).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rlscale.core.laws.forms import saturating_k

BASE_C_K_MAX = 0.133042
BASE_C_N_0 = 13.782e9
BASE_C_SIZES = (0.5e9, 1.5e9, 3e9, 7e9, 14e9, 32e9, 72e9)
BASE_C_E0 = (0.0640, 0.2074, 0.3741, 0.7045, 1.0848, 1.5359, 1.8957)
PROMPTS_PER_STEP = 512
FLOPS_PER_PARAM_PROMPT = 2e4
STEPS = 105
NOISE_SD = 0.012


def paper_base_c_records(seed: int = 0, *, steps: int = STEPS, noise_sd: float = NOISE_SD,
                         runs: int = 1, sizes: Sequence[float] = BASE_C_SIZES,
                         e0: Sequence[float] = BASE_C_E0, k_max: float = BASE_C_K_MAX,
                         n_0: float = BASE_C_N_0) -> list[dict]:
    """Records ``{run_id, N, step, C, loss}`` simulated from the paper's base-C fit.

    >>> recs = paper_base_c_records(0, steps=2, noise_sd=0.0, sizes=(7e9,), e0=(0.7045,))
    >>> [round(r["loss"], 4) for r in recs]
    [0.8895, 0.8623]
    """
    rng = np.random.default_rng(seed)
    records = []
    for run in range(runs):
        for n, e in zip(sizes, e0, strict=True):
            k = saturating_k(k_max, n_0, n)
            for step in range(1, steps + 1):
                c = n * PROMPTS_PER_STEP * step * FLOPS_PER_PARAM_PROMPT
                loss = 10 ** (e - k * np.log10(c)) + rng.normal(0.0, noise_sd)
                records.append({"run_id": f"run{run}", "N": n, "step": step, "C": c,
                                "D": PROMPTS_PER_STEP * step, "loss": float(loss)})
    return records
