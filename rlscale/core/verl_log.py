"""Read VeRL console logs (``output.log`` of a wandb run, or the trainer's stdout).

VeRL's console logger prints one line per training step::

    step:12 - actor/pg_loss:0.013 - perf/total_num_tokens:3276800 - val/test_score/aime2024:0.1

(``key:value`` items joined by `` - ``; values printed with ``{:.3f}`` in older versions and
``pprint.pformat`` in newer ones, which under NumPy 2 gives ``np.float64(0.41)``). Ray often
prefixes worker output (``(TaskRunner pid=123) step:12 - ...``) and terminals add colour codes;
both are tolerated. A log is not JSONL: lines without a ``step:<int>`` marker are ordinary console
output and are ignored; a step line with an item that cannot be read is a bad line.

Repeated steps (a run resumed from a checkpoint logs some steps again) are merged key by key, the
later line winning; this equals the paper's "keep the last occurrence" when the later line is
complete, and keeps the token count when a resumed run only re-logs validation scores.

The held-out loss follows the paper (paper-method.md §1.1): VeRL logs one mean score per
``data_source``; the paper recombines them weighted by problem counts,
``holdout = (335 * score[math__merged_deduped_dapo_or1_dataset]
+ 165 * score[math__deepscaler_preview]) / 500``, and ``loss = 1 - holdout``.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# The paper's held-out set: 500 problems from two data sources (paper-method.md §1.1, §2.3).
PAPER_HOLDOUT_SOURCES: dict[str, float] = {
    "math__merged_deduped_dapo_or1_dataset": 335.0,
    "math__deepscaler_preview": 165.0,
}
TOKENS_KEY = "perf/total_num_tokens"
SCORE_FIELD_PREFIX = "score/"

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# "step:<int>" at the start of the line or after whitespace / a Ray prefix, followed by " - " or
# the end of the line (so "global_step:3" or "step:3/100" do not match).
_STEP_MARK = re.compile(r"(?:^|(?<=[\s)\]|>]))step:(\d+)(?=\s+-\s|\s*$)")
_WRAPPED = re.compile(r"^[A-Za-z_][\w.]*\((.*)\)$")  # np.float64(0.5), tensor(0.5)
_TEST_SCORE = "val/test_score/"
_VAL_CORE = re.compile(r"^val-core/(.+)/reward/mean@(\d+)$")


def parse_value(text: str) -> float | int | bool:
    """Read one logged metric value.

    >>> parse_value("0.125"), parse_value("3276800"), parse_value("np.float64(0.5)")
    (0.125, 3276800, 0.5)
    >>> parse_value("True"), parse_value("nan")
    (True, nan)
    """
    text = text.strip()
    wrapped = _WRAPPED.match(text)
    if wrapped:
        text = wrapped.group(1).split(",")[0].strip()  # tensor(0.5, device='cuda:0') -> 0.5
    if text in ("True", "False"):
        return text == "True"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"cannot read value {text[:40]!r}") from None


def parse_line(line: str) -> tuple[int, dict[str, Any]] | None:
    """Parse one console line: ``(step, metrics)``, or None when it is not a step line.

    Raises ValueError with a user-facing message when the line is a step line but an item is
    not ``key:value``.

    >>> parse_line("(TaskRunner pid=7) step:3 - perf/total_num_tokens:1024 - val/test_score/a:0.5")
    (3, {'perf/total_num_tokens': 1024, 'val/test_score/a': 0.5})
    >>> parse_line("Training Progress: 10%") is None
    True
    """
    line = _ANSI.sub("", line).rstrip("\r\n")
    if "step:" not in line:
        return None
    mark = _STEP_MARK.search(line)
    if mark is None:
        return None
    step = int(mark.group(1))
    metrics: dict[str, Any] = {}
    rest = line[mark.end():].strip()
    if not rest:
        return step, metrics
    if not rest.startswith("-"):
        raise ValueError(f"step {step}: expected ' - ' after the step")
    for item in rest[1:].split(" - "):
        item = item.strip()
        key, sep, value = item.rpartition(":")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"step {step}: cannot read metric {item[:60]!r} (expected key:value)")
        try:
            metrics[key] = parse_value(value)
        except ValueError as exc:
            raise ValueError(f"step {step}: metric '{key}': {exc}") from None
    return step, metrics


@dataclass
class LoggedStep:
    """The merged metrics of one step and the last log line that mentioned it."""

    step: int
    metrics: dict[str, Any] = field(default_factory=dict)
    line: int = 0


def merge_steps(parsed: Iterable[tuple[int, int, Mapping[str, Any]]]) -> list[LoggedStep]:
    """Merge ``(line_no, step, metrics)`` tuples into one entry per step, sorted by step.

    Later lines override earlier ones key by key (see module docstring).

    >>> [(s.step, s.metrics) for s in merge_steps([(1, 1, {"a": 1, "b": 2}), (5, 1, {"b": 3})])]
    [(1, {'a': 1, 'b': 3})]
    """
    steps: dict[int, LoggedStep] = {}
    for line_no, step, metrics in parsed:
        entry = steps.setdefault(step, LoggedStep(step))
        entry.metrics.update(metrics)
        entry.line = line_no
    return [steps[s] for s in sorted(steps)]


def source_scores(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Per-``data_source`` validation scores from one step's metrics.

    Reads ``val/test_score/<source>`` (VeRL <= 0.3 and the paper's Reasoning360 fork, which
    appends ``/unknown``, the reward-key name) and, when absent,
    ``val-core/<source>/reward/mean@<n>`` (newer VeRL; the largest n).

    >>> source_scores({"val/test_score/openai/gsm8k/unknown": 0.8,
    ...                "val-core/aime/reward/mean@1": 0.1})
    {'openai/gsm8k': 0.8, 'aime': 0.1}
    """
    scores: dict[str, float] = {}
    core: dict[str, tuple[int, float]] = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if key.startswith(_TEST_SCORE):
            source = key[len(_TEST_SCORE):]
            source = source.removesuffix("/unknown")
            if source:
                scores[source] = float(value)
        elif (match := _VAL_CORE.match(key)) is not None:
            n = int(match.group(2))
            if match.group(1) not in core or n > core[match.group(1)][0]:
                core[match.group(1)] = (n, float(value))
    for source, (_, value) in core.items():
        scores.setdefault(source, value)
    return scores


def holdout_score(scores: Mapping[str, float], weights: Mapping[str, float]) -> float | None:
    """Weighted mean score over the held-out sources, or None when one is missing or NaN.

    >>> holdout_score({"a": 0.5, "b": 0.2}, {"a": 335, "b": 165})
    0.401
    """
    total_weight = 0.0
    weighted = 0.0
    for source, weight in weights.items():
        value = scores.get(source)
        if value is None or not math.isfinite(value):
            return None
        weighted += weight * value
        total_weight += weight
    if total_weight <= 0:
        return None
    return weighted / total_weight


def parse_holdout_sources(specs: Iterable[str]) -> dict[str, float]:
    """Parse ``--holdout-source NAME[=WEIGHT]`` values (weight defaults to 1).

    >>> parse_holdout_sources(["math__math=500", "aime2024"])
    {'math__math': 500.0, 'aime2024': 1.0}
    """
    weights: dict[str, float] = {}
    for spec in specs:
        name, sep, weight_text = spec.rpartition("=") if "=" in spec else (spec, "", "")
        name = name.strip()
        if not name:
            raise ValueError(f"--holdout-source {spec!r}: empty source name")
        weight = 1.0
        if sep:
            try:
                weight = float(weight_text)
            except ValueError:
                raise ValueError(f"--holdout-source {spec!r}: weight {weight_text!r} is not a "
                                 "number") from None
            if not math.isfinite(weight) or weight <= 0:
                raise ValueError(f"--holdout-source {spec!r}: weight must be a positive number")
        if name in weights:
            raise ValueError(f"--holdout-source {name!r} given twice")
        weights[name] = weight
    return weights


def step_record(entry: LoggedStep, weights: Mapping[str, float],
                keep: Iterable[str] = ()) -> dict[str, Any]:
    """Build the per-step record: ``step``, ``n_tokens``, ``score/<source>`` fields, and
    ``holdout_score`` / ``loss`` when every held-out source was scored at this step.

    Metrics whose key matches a ``keep`` glob pattern are copied under their VeRL name.
    Raises ValueError when a training step (step > 0) has no token count.
    """
    metrics = entry.metrics
    tokens = metrics.get(TOKENS_KEY)
    if tokens is None:
        if entry.step != 0:
            raise ValueError(f"step {entry.step} has no {TOKENS_KEY} (needed for FLOPs)")
        tokens = 0
    if isinstance(tokens, bool) or not math.isfinite(float(tokens)) or tokens < 0:
        raise ValueError(f"step {entry.step}: {TOKENS_KEY} must be a finite number >= 0, "
                         f"got {tokens}")
    record: dict[str, Any] = {"step": entry.step, "n_tokens": tokens}
    scores = source_scores(metrics)
    for source, value in scores.items():
        record[SCORE_FIELD_PREFIX + source] = value
    held = holdout_score(scores, weights)
    if held is not None:
        record["holdout_score"] = held
        record["loss"] = 1.0 - held
    patterns = list(keep)
    if patterns:
        for key, value in metrics.items():
            if any(fnmatch.fnmatchcase(key, pattern) for pattern in patterns):
                record[key] = value
    return record
