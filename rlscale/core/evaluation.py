"""Test loss and pass@k from graded samples (paper-method.md §1.1, §2.3).

The paper's test loss is ``L = 1 - R / R_max``: one minus the fraction of held-out problems
solved, i.e. ``L = 1 - pass@1`` (one sample per problem at temperature 0.7 in the paper). With
several samples per problem the natural generalisation, and the one used here, is the mean over
problems of each problem's fraction of correct samples, so every problem weighs the same however
many samples it has (per-prompt mean, then mean over prompts).

pass@k uses the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language Models
Trained on Code", Eq. 1): for a problem with ``n`` samples of which ``c`` are correct,
``pass@k = 1 - C(n - c, k) / C(n, k)``, the probability that a random k-subset of the n samples
holds at least one correct one; the group value is the mean over problems. It is defined only
when every problem has ``n >= k``.

A sample is correct when its reward exceeds a threshold (0.5 by default), which is exact for the
paper's binary 0/1 rewards and treats e.g. +1/-1 rewards sensibly; the raw mean reward is
reported separately. The 95 % interval of the loss is a percentile bootstrap over problems
(problems are the sampling unit of a benchmark; samples of one problem are not independent).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlscale.core.identity import group_key, prompt_key

DEFAULT_THRESHOLD = 0.5
DEFAULT_BOOTSTRAP = 1000
# Bootstrap draws are generated in blocks of at most this many indices, to bound memory.
_BOOTSTRAP_BLOCK = 4_000_000


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem with ``n`` samples, ``c`` of them correct (Chen et al. 2021).

    ``1 - C(n-c, k)/C(n, k)``, computed as ``1 - prod_{i=n-c+1}^{n} (1 - k/i)`` to avoid huge
    binomials.

    >>> pass_at_k(8, 1, 1), pass_at_k(8, 1, 8), pass_at_k(4, 2, 2), pass_at_k(5, 0, 3)
    (0.125, 1.0, 0.8333333333333333, 0.0)
    """
    if not (0 <= c <= n) or k < 1:
        raise ValueError(f"need 0 <= c <= n and k >= 1, got n={n}, c={c}, k={k}")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    remaining = 1.0
    for i in range(n - c + 1, n + 1):
        remaining *= 1.0 - k / i
    return 1.0 - remaining


@dataclass
class PromptTally:
    """Samples of one prompt in one group: count, correct count, and the sum of raw rewards."""

    n: int = 0
    correct: int = 0
    reward_sum: float = 0.0

    def add(self, reward: float, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.n += 1
        self.correct += reward > threshold
        self.reward_sum += reward


class GroupTallies:
    """Per-group, per-prompt tallies of scored samples, fed one sample at a time: what
    ``rlscale.evaluate`` keeps instead of the records. Groups keep their order of first
    appearance; groups and prompts are told apart by :mod:`rlscale.core.identity`.

    >>> tallies = GroupTallies()
    >>> for step, prompt, reward in [(1, "a", 1.0), (1, "a", 0.0), (2, "a", 1.0), (1.0, "b", 1.0)]:
    ...     tallies.add([step], prompt, reward)
    >>> [(values, stats["n_prompts"], stats["pass@1"]) for values, stats, _ in
    ...  tallies.summaries((1,), 0, 0)]
    [([1], 2, 0.75), ([2], 1, 1.0)]
    """

    def __init__(self, threshold: float = DEFAULT_THRESHOLD):
        self.threshold = threshold
        self.groups: dict[tuple, tuple[list[Any], dict[str, PromptTally]]] = {}
        self.non_binary = 0  # rewards other than 0 and 1
        self.duplicates = 0  # samples whose (group, prompt, sample_idx) was already seen
        self._seen: set[tuple] = set()

    def add(self, values: Sequence[Any], prompt_id: str | int | float, reward: float,
            sample_idx: Any = None) -> None:
        """Count one sample of prompt ``prompt_id`` in the group given by ``values``."""
        key = group_key(values)
        entry = self.groups.get(key)
        if entry is None:
            entry = self.groups[key] = (list(values), {})
        prompt = prompt_key(prompt_id)
        tally = entry[1].get(prompt)
        if tally is None:
            tally = entry[1][prompt] = PromptTally()
        tally.add(float(reward), self.threshold)
        self.non_binary += reward not in (0, 1)
        if isinstance(sample_idx, (int, str)):  # a repeat: doubled input or a missing group field
            marker = (key, prompt, sample_idx)
            self.duplicates += marker in self._seen
            self._seen.add(marker)

    def summaries(self, ks: Sequence[int] = (1,), n_boot: int = DEFAULT_BOOTSTRAP,
                  seed: int = 0) -> Iterator[tuple[list[Any], dict[str, Any], int]]:
        """``(group values, summarize() of the group, fewest samples of one prompt)`` per
        group; each group's bootstrap draws from :func:`group_seed`."""
        for key, (values, tallies) in self.groups.items():
            rng = np.random.default_rng(group_seed(seed, key)) if n_boot else None
            yield (values, summarize(tallies.values(), ks, n_boot, rng),
                   min(t.n for t in tallies.values()))


def group_seed(seed: int, key: tuple) -> np.random.SeedSequence:
    """A per-group seed from the run seed and the group key
    (:func:`rlscale.core.identity.group_key`), so a group's bootstrap interval does not change
    when other groups are added, removed or reordered."""
    digest = hashlib.blake2b(_seed_text(key).encode(), digest_size=8).digest()
    return np.random.SeedSequence([seed & 0xFFFFFFFFFFFFFFFF, int.from_bytes(digest, "little")])


def _seed_text(key: tuple) -> str:
    # Seeds hash numbers as floats, as they did when group keys held floats, so every interval
    # published before record identity moved to core/identity.py comes out the same.
    parts = []
    for part in key:
        if isinstance(part, tuple) and len(part) == 2 and part[0] == "n":
            with contextlib.suppress(OverflowError):  # beyond float range: the exact integer
                part = ("n", float(part[1]))
        parts.append(part)
    return repr(tuple(parts))


def bootstrap_mean_interval(values: np.ndarray, n_boot: int, rng: np.random.Generator,
                            level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampling values with
    replacement ``n_boot`` times).

    >>> rng = np.random.default_rng(0)
    >>> bootstrap_mean_interval(np.array([0.5, 0.5, 0.5]), 100, rng)
    (0.5, 0.5)
    """
    values = np.asarray(values, dtype=float)
    size = len(values)
    if size == 0 or n_boot < 1:
        raise ValueError("bootstrap needs at least one value and one resample")
    means = np.empty(n_boot)
    rows_per_block = max(1, _BOOTSTRAP_BLOCK // size)
    done = 0
    while done < n_boot:
        rows = min(rows_per_block, n_boot - done)
        idx = rng.integers(0, size, size=(rows, size))
        means[done:done + rows] = values[idx].mean(axis=1)
        done += rows
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(low), float(high)


def summarize(tallies: Iterable[PromptTally], ks: Sequence[int] = (1,),
              n_boot: int = DEFAULT_BOOTSTRAP,
              rng: np.random.Generator | None = None) -> dict[str, Any]:
    """Statistics of one group from its per-prompt tallies.

    Returns ``n_prompts``, ``n_samples``, ``pass@1``, ``loss`` (= 1 - pass@1), ``pass@k`` for
    every k in ``ks`` other than 1 (None when some prompt has fewer than k samples),
    ``mean_reward``, ``loss_se`` (standard error over prompts; None for one prompt) and ``ci95``
    ([low, high] percentile-bootstrap interval of the loss over prompts; None when ``n_boot`` is 0).

    >>> s = summarize([PromptTally(2, 1, 1.0), PromptTally(4, 4, 4.0)], ks=(1, 2), n_boot=0)
    >>> s["pass@1"], s["loss"], s["pass@2"], s["n_samples"]
    (0.75, 0.25, 1.0, 6)
    """
    tallies = list(tallies)
    if not tallies:
        raise ValueError("a group needs at least one prompt")
    n = np.array([t.n for t in tallies], dtype=np.int64)
    correct = np.array([t.correct for t in tallies], dtype=np.int64)
    rates = correct / n
    pass1 = float(rates.mean())
    stats: dict[str, Any] = {
        "n_prompts": len(tallies),
        "n_samples": int(n.sum()),
        "pass@1": pass1,
        "loss": 1.0 - pass1,
    }
    min_n = int(n.min())
    for k in ks:
        if k == 1:
            continue
        if k > min_n:
            stats[f"pass@{k}"] = None
        else:
            stats[f"pass@{k}"] = float(np.mean([pass_at_k(int(a), int(b), k)
                                                for a, b in zip(n, correct, strict=True)]))
    stats["mean_reward"] = float(np.mean([t.reward_sum / t.n for t in tallies]))
    stats["loss_se"] = (float(np.std(rates, ddof=1) / math.sqrt(len(rates)))
                        if len(rates) > 1 else None)
    if n_boot > 0:
        if rng is None:
            raise ValueError("a bootstrap needs a random generator")
        low, high = bootstrap_mean_interval(1.0 - rates, n_boot, rng)
        stats["ci95"] = [low, high]
    else:
        stats["ci95"] = None
    return stats
