"""``rlscale.evaluate``: test loss and pass@k per group from scored samples."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from rlscale.api._options import listed
from rlscale.api._records import located
from rlscale.core.errors import OptionError


def evaluate(
    records: Iterable[Mapping[str, Any]],
    *,
    by: str | Sequence[str] | None = None,
    k: str | Sequence[int] = "1",
    bootstrap: int = 1000,
    seed: int = 0,
    reward_field: str = "reward",
    prompt_field: str = "prompt_id",
    threshold: float = 0.5,
    set_fields: Mapping[str, Any] | None = None,
    notes: list[str] | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> list[dict[str, Any]]:
    """One record per group (``by``: field names, ``a.b`` for a nested field; none: one group):
    ``n_prompts``, ``n_samples``, ``pass@1``, ``loss`` = 1 - pass@1, unbiased ``pass@k`` for
    each of ``k``, ``mean_reward``, ``loss_se`` and a bootstrap ``ci95`` of the loss over
    prompts (``bootstrap`` resamples, seeded per group from ``seed``; 0: none).

    Each prompt weighs the same however many samples it has; a sample is correct when its
    reward exceeds ``threshold``. ``set_fields`` are constants added to every output record
    (``{"step": 40}``). Groups come out in order of first appearance. ``notes``, when given,
    gets the remarks the command prints on stderr (null pass@k, repeated samples, rewards
    other than 0/1).

    >>> scored = [{"step": 1, "prompt_id": "a", "reward": 1.0},
    ...           {"step": 1, "prompt_id": "a", "reward": 0.0},
    ...           {"step": 2, "prompt_id": "a", "reward": 1.0}]
    >>> [(r["step"], r["loss"]) for r in evaluate(scored, by="step", bootstrap=0)]
    [(1, 0.5), (2, 0.0)]
    """
    from rlscale import __version__
    from rlscale.core.evaluation import GroupTallies
    from rlscale.io.jsonl import MISSING, RecordReader, get_path

    group_fields = listed(by, "by")
    by_text = by if isinstance(by, str) else ",".join(group_fields)
    if len(set(group_fields)) != len(group_fields):
        raise OptionError("by", f"{by_text}: a field is named twice")
    ks = sorted(set(listed(k, "k", int)) | {1})
    if ks[0] < 1:
        raise OptionError("k", f"values must be integers >= 1, got {k!r}")
    if bootstrap < 0:
        raise OptionError("bootstrap", f"must be >= 0, got {bootstrap}")
    if not math.isfinite(threshold):
        raise OptionError("threshold", f"must be a finite number, got {threshold}")
    constants = dict(set_fields or {})

    tallies = GroupTallies(threshold)
    items = located(records, required={prompt_field: "str|number"})
    for record, where in (progress or iter)(items):
        reward = get_path(record, reward_field)
        if reward is MISSING:
            items.invalid(where, f"missing required field '{reward_field}'")
            continue
        if isinstance(reward, bool):
            reward = float(reward)
        elif not isinstance(reward, (int, float)) or not math.isfinite(reward):
            shown = "null" if reward is None else repr(reward)[:40]
            items.invalid(where, f"field '{reward_field}' must be a finite number or boolean, "
                          f"got {shown}")
            continue
        values = [get_path(record, name) for name in group_fields]
        if MISSING in values:
            name = group_fields[values.index(MISSING)]
            items.invalid(where, f"missing group field '{name}' (from --by {by_text})")
            continue
        tallies.add(values, record[prompt_field], reward, record.get("sample_idx"))
    if isinstance(records, RecordReader):
        records.require_complete("no test loss was computed")

    meta = {"rlscale_version": __version__, "seed": seed, "bootstrap": bootstrap,
            "threshold": threshold}
    runs = []
    null_k: dict[int, list[int]] = {}
    for values, stats, fewest in tallies.summaries(ks, bootstrap, seed):
        clash = sorted(constants.keys() & {*stats, *group_fields, *meta})
        if clash:
            raise OptionError("set_fields", f"{clash[0]}: eval computes this field itself; "
                              "choose another name")
        out = {**constants, **dict(zip(group_fields, values, strict=True)), **stats}
        for name, value in meta.items():
            out.setdefault(name, value)  # a group field named like the metadata wins
        runs.append(out)
        for kk in ks[1:]:
            if stats[f"pass@{kk}"] is None:
                null_k.setdefault(kk, []).append(fewest)
    if notes is not None:
        notes.extend(f"pass@{kk} is null in {len(mins)} group(s): some prompts have fewer "
                     f"than {kk} samples (fewest: {min(mins)})" for kk, mins in null_k.items())
        if tallies.duplicates:
            notes.append(f"warning: {tallies.duplicates} sample(s) repeat a (prompt_id, "
                         "sample_idx) already seen in their group; is the input doubled, or a "
                         "--by field missing?")
        if tallies.non_binary:
            notes.append(f"note: {tallies.non_binary} reward(s) are not 0/1; pass@k counts "
                         f"reward > {threshold:g} as correct, mean_reward is the raw mean")
    return runs
