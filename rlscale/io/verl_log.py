"""Read VeRL console logs (``output.log`` of a wandb run, or the trainer's stdout).

:class:`VerlLogs` reads log files (one run each) and :func:`run_records` turns one log's steps
into per-step records; everything between works on text and is pure.

VeRL's console logger prints one line per training step::

    step:12 - actor/pg_loss:0.013 - perf/total_num_tokens:3276800 - val/test_score/aime2024:0.1

(``key:value`` items joined by `` - ``; values printed with ``{:.3f}`` in older versions and
``pprint.pformat`` in newer ones, which under NumPy 2 gives ``np.float64(0.41)``). Ray often
prefixes worker output (``(TaskRunner pid=123) step:12 - ...``) and terminals add colour codes;
both are tolerated. A log is not JSONL: lines without a ``step:<int>`` marker are ordinary console
output and are ignored; a step line with an item that cannot be read is a bad line.

VeRL's ``file`` logger (``trainer.logger=[console,file]``) writes JSONL instead, one
``{"step": N, "data": {key: value}}`` per step; a log whose first line is such an object is
read as that format, every line strictly.

Validation scores per ``data_source`` come in three key families: ``val/test_score/<src>``
(VeRL <= 0.3, the paper's fork), ``val-core/<src>/reward/mean@N`` (0.4-0.5) and, from 0.6
through 0.9.1 with a scorer that returns ``acc`` (rlscale's plug-in, VeRL's own ``naive``
manager for float scorers), ``val-core/<src>/acc/mean@N`` plus ``best@N/mean``, ``maj@N/mean``
and ``val-aux/<src>/{reward,score}/mean@N``.

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
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from rlscale.core.errors import RecordError, RlscaleError

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
_VAL_FAMILY = re.compile(r"^val-(?:core|aux)/(.+)/(acc|reward|score)/(.+)$")
_MEAN_AT = re.compile(r"^mean@(\d+)$")
# the score read per data source unless --val-metric names another: accuracy first
VAL_VARIABLES = ("acc", "reward", "score")
VALIDATION_PREFIXES = ("val/", "val-core/", "val-aux/")


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


def source_scores(metrics: Mapping[str, Any], val_metric: str | None = None) -> dict[str, float]:
    """Per-``data_source`` validation scores from one step's metrics.

    Without ``val_metric``: ``val/test_score/<source>`` (VeRL <= 0.3 and the paper's
    Reasoning360 fork, which appends ``/unknown``, the reward-key name), else the mean accuracy
    ``val-*/<source>/<var>/mean@<n>`` with ``var`` the first of acc, reward, score that the
    source has (the largest n: every mean@n estimates the same per-sample accuracy).
    ``val_metric`` (e.g. ``maj@8/mean``, or ``reward/mean@1`` to name the variable too) picks
    ``val-*/<source>/<var>/<val_metric>`` instead.

    >>> source_scores({"val/test_score/openai/gsm8k/unknown": 0.8,
    ...                "val-core/aime/acc/mean@1": 0.1, "val-aux/aime/reward/mean@1": 0.2})
    {'openai/gsm8k': 0.8, 'aime': 0.1}
    >>> source_scores({"val-core/aime/acc/maj@8/mean": 0.3, "val-core/aime/acc/mean@8": 0.1},
    ...               "maj@8/mean")
    {'aime': 0.3}
    """
    scores: dict[str, float] = {}
    # source -> var -> (rank, value); rank orders candidates within one variable
    found: dict[str, dict[str, tuple[int, float]]] = {}
    want_var, _, want_name = (val_metric or "").rpartition("/") if val_metric else ("", "", "")
    if val_metric and want_var not in VAL_VARIABLES:
        want_var, want_name = "", val_metric  # e.g. "maj@8/mean": the metric name only
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if key.startswith(_TEST_SCORE) and val_metric is None:
            source = key[len(_TEST_SCORE):].removesuffix("/unknown")
            if source:
                scores[source] = float(value)
            continue
        match = _VAL_FAMILY.match(key)
        if match is None:
            continue
        source, var, name = match.groups()
        if val_metric is not None:
            if name != want_name or (want_var and var != want_var):
                continue
            rank = 0
        else:
            mean_at = _MEAN_AT.match(name)
            if mean_at is None:
                continue
            rank = int(mean_at.group(1))
        best = found.setdefault(source, {}).get(var)
        if best is None or rank > best[0]:
            found[source][var] = (rank, float(value))
    for source, per_var in found.items():
        for var in VAL_VARIABLES:
            if var in per_var:
                scores.setdefault(source, per_var[var][1])
                break
    return scores


def validation_keys(metrics: Mapping[str, Any]) -> list[str]:
    """The validation metric names of one step (for messages naming what a log holds)."""
    return sorted(k for k in metrics if k.startswith(VALIDATION_PREFIXES))


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
                keep: Iterable[str] = (), val_metric: str | None = None) -> dict[str, Any]:
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
    scores = source_scores(metrics, val_metric)
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


def parse_file_logger_line(line: str) -> tuple[int, dict[str, Any]]:
    """One line of VeRL's file logger: ``{"step": N, "data": {...}}`` -> ``(step, metrics)``.

    Non-numeric values (strings, lists) are left out, like the console logger does.

    >>> parse_file_logger_line('{"step": 3, "data": {"a": 0.5, "b": "x"}}')
    (3, {'a': 0.5})
    """
    import orjson

    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    if not isinstance(obj, dict) or "step" not in obj or not isinstance(obj.get("data"), dict):
        raise ValueError('expected a file-logger line {"step": N, "data": {...}}')
    step = obj["step"]
    if isinstance(step, bool) or not isinstance(step, (int, float)) or step != int(step) \
            or step < 0:
        raise ValueError(f"'step' must be an integer >= 0, got {step!r}"[:120])
    metrics = {k: v for k, v in obj["data"].items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return int(step), metrics


def read_steps(raw_lines: Iterable[bytes], bad) -> tuple[list[tuple[int, int, dict]], int]:
    """Read a console log or a file-logger JSONL log: ``([(line_no, step, metrics)], n_lines)``.

    ``bad(line_no, text, message)`` is called for each unreadable line (it may raise). A NUL
    byte or invalid UTF-8 where a metric could be, and a last step line without its newline
    (the run was still writing), are bad lines; other console output is ignored.
    """
    parsed: list[tuple[int, int, dict]] = []
    jsonl: bool | None = None
    line_no = 0
    for line_no, raw in enumerate(raw_lines, 1):
        text = raw.decode("utf-8", errors="replace")
        if b"\x00" in raw:
            bad(line_no, text, "binary data (NUL byte), not a text log")
            continue
        stripped = text.strip()
        if jsonl is None and stripped:
            jsonl = stripped.startswith("{") and '"step"' in stripped and '"data"' in stripped
        try:
            if jsonl:
                if not stripped:
                    continue
                result = parse_file_logger_line(stripped)
            else:
                result = parse_line(text)
                if result is not None and "\ufffd" in text:
                    raise ValueError("invalid UTF-8 in a step line")
        except ValueError as exc:
            bad(line_no, text, "invalid UTF-8 in a step line" if "\ufffd" in text else str(exc))
            continue
        if result is None:
            continue
        if not raw.endswith(b"\n"):
            bad(line_no, text, "truncated last line (no newline at the end; is the run still "
                "writing?)")
            continue
        parsed.append((line_no, *result))
    return parsed, line_no


def run_records(run: LogRun, weights: Mapping[str, float], keep: Iterable[str] = (),
                val_metric: str | None = None, all_steps: bool = False) -> list[dict[str, Any]]:
    """The per-step records of one log (:func:`step_record` of each step; a step that fails is
    refused through ``run.refuse``). Unless ``all_steps``, a log where no step has a usable
    validation score, or where a held-out source of ``weights`` is never scored, is an error."""
    patterns = list(keep)
    seen_sources: set[str] = set()
    records = []
    for entry in run.steps:
        try:
            record = step_record(entry, weights, patterns, val_metric)
        except ValueError as exc:
            run.refuse(entry, str(exc))
            continue
        seen_sources.update(k[len(SCORE_FIELD_PREFIX):] for k in record
                            if k.startswith(SCORE_FIELD_PREFIX))
        records.append(record)
    if all_steps:
        return records
    if not seen_sources:
        found = sorted({k for e in run.steps for k in validation_keys(e.metrics)})
        listed = ", ".join(found[:6]) + (f" and {len(found) - 6} more" if len(found) > 6 else "")
        wanted = f"--val-metric {val_metric}" if val_metric else "a mean@N score"
        raise RlscaleError(f"{run.source}: {len(run.steps)} step(s) but no usable validation "
                           f"metric ({wanted}); validation keys found: {listed or 'none'}"
                           "; choose one with --val-metric or use --all-steps")
    missing = [s for s in weights if s not in seen_sources]
    if missing:
        seen = ", ".join(sorted(seen_sources)) or "none"
        raise RlscaleError(
            f"{run.source}: held-out source(s) {', '.join(missing)} never scored in this log "
            f"(sources seen: {seen}); name yours with --holdout-source or use --all-steps")
    return records


# --- files ------------------------------------------------------------------------------------


def resolve_log(path: str) -> str:
    """A run directory stands for its output.log (wandb's files/output.log layout included)."""
    if path == "-" or not os.path.isdir(path):
        return path
    for candidate in (os.path.join(path, "output.log"), os.path.join(path, "files", "output.log")):
        if os.path.isfile(candidate):
            return candidate
    raise RlscaleError(f"{path}: is a directory without output.log")


def read_log_lines(path: str) -> Iterator[bytes]:
    """The raw lines of a log file (``-``: stdin); bytes, since :func:`read_steps` decides what
    undecodable bytes mean."""
    if path == "-":
        yield from sys.stdin.buffer
        return
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise RlscaleError(f"{path}: no such file") from None
    except OSError as exc:
        raise RlscaleError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with handle:
        yield from handle


@dataclass
class LogRun:
    """One log read: its name in messages, its merged steps, and ``refuse(step, why)`` for a
    step that cannot be used (raises, or skips its line like a bad line)."""

    source: str
    steps: list[LoggedStep]
    refuse: Callable[[LoggedStep, str], None]


class VerlLogs:
    """VeRL logs (paths; ``-``: stdin; a run directory: its output.log), one run each, read
    one at a time. Bad lines raise :class:`~rlscale.core.errors.RecordError` naming
    ``file:line``, or with ``skip_invalid`` are counted in ``n_skipped`` and copied to
    ``rejects``, like a :class:`~rlscale.io.jsonl.RecordReader`."""

    def __init__(self, paths: Iterable[str], *, skip_invalid: bool = False,
                 rejects: IO[bytes] | None = None):
        self.paths = list(paths)
        self.skip_invalid = skip_invalid
        self.rejects = rejects
        self.n_skipped = 0

    def invalid(self, source: str, line_no: int, text: str, message: str) -> None:
        if not self.skip_invalid:
            raise RecordError(source, line_no, message)
        self.n_skipped += 1
        if self.rejects is not None:
            self.rejects.write(text.rstrip("\r\n").encode() + b"\n")

    def __iter__(self) -> Iterator[LogRun]:
        paths = [resolve_log(given) for given in self.paths]
        sources = ["<stdin>" if path == "-" else path for path in paths]
        for index, source in enumerate(sources):
            if source in sources[:index]:  # one run twice would count its compute twice
                raise RlscaleError(f"{source}: given twice (each log is one run)")
        for path, source in zip(paths, sources, strict=True):
            yield self._read(path, source)

    def _read(self, path: str, source: str) -> LogRun:
        raw_lines: dict[int, str] = {}  # for --rejects and the line of a refused step

        def keep_raw(lines: Iterable[bytes]) -> Iterator[bytes]:
            for line_no, raw in enumerate(lines, 1):
                raw_lines[line_no] = raw.decode("utf-8", errors="replace")
                yield raw

        def bad(line_no: int, text: str, message: str) -> None:
            self.invalid(source, line_no, text, message)

        parsed, n_lines = read_steps(keep_raw(read_log_lines(path)), bad)
        steps = merge_steps(parsed)
        if not steps:
            raise RlscaleError(f"{source}: no step lines in {n_lines} line(s) (expected "
                               "VeRL's console 'step:N - key:value' or its file logger's "
                               '{"step": N, "data": {...}})')
        return LogRun(source, steps,
                      lambda entry, message: bad(entry.line, raw_lines.get(entry.line, ""),
                                                 message))
