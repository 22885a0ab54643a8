"""From run records to the arrays a scaling-law fit needs.

Input records are one per (run, step) -- e.g. from ``rlscale eval --by step,N`` piped through
``rlscale flops`` -- with the x field (C, D, step ...), the y field (loss) and a group field
(model size N). This module filters them (``--where``, x range), drops the untrained step 0
(log 0 is undefined; the paper drops it too, T25 §4.1 step 4), clips the first/last points of
each curve, and either averages the runs of a group per step (the paper's
``merge_duplicate_steps``, §1.1) or keeps them as replicates. Curves stay available so the
bootstrap can resample whole runs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlscale.core.errors import OptionError, RlscaleError
from rlscale.core.identity import label
from rlscale.core.records import check_fields

# --- group values ---------------------------------------------------------------------------

_SIZE_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}
_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([kKmMbBgGtT]?)\s*$")


_NAME_SIZE_RE = re.compile(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)([kKmMbBtT])(?![A-Za-z0-9])")


def parse_size(value: Any) -> float | None:
    """Numeric value of a group field: numbers as is, labels such as ``7B`` or ``500M`` scaled,
    and model names with exactly one size token (``Qwen2.5-7B-Instruct``).

    >>> parse_size(7e9), parse_size("0.5B"), parse_size("70m"), parse_size("7e9"), parse_size("x")
    (7000000000.0, 500000000.0, 70000000.0, 7000000000.0, None)
    >>> parse_size("Qwen2.5-0.5B-Instruct"), parse_size("Qwen3-30B-A3B"), parse_size("Qwen2.5")
    (500000000.0, 30000000000.0, None)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        match = _SIZE_RE.match(value)
        if match:
            number = float(match.group(1))
            return number * _SIZE_SUFFIX.get(match.group(2).lower(), 1.0)
        tokens = _NAME_SIZE_RE.findall(value)
        if len(tokens) == 1:
            number, suffix = tokens[0]
            return float(number) * _SIZE_SUFFIX[suffix.lower()]
    return None


def same_group(key: str, value: Any) -> bool:
    """True if a user-given group value (``7e9``, ``7B``) names the group with ``key``."""
    if key == str(value):
        return True
    a, b = parse_size(key), parse_size(value)
    return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9)


# --- --where filters ------------------------------------------------------------------------

_WHERE_RE = re.compile(r"^\s*([^!<>=\s]+)\s*(==|!=|>=|<=|=|>|<)\s*(.*?)\s*$")


@dataclass(frozen=True)
class Filter:
    """One ``--where`` condition: ``field OP value`` with OP in = == != < <= > >=."""

    field: str
    op: str
    value: str

    def matches(self, record: Mapping[str, Any]) -> bool:
        if self.field not in record:
            return False
        actual = record[self.field]
        want_num = parse_size(self.value)
        have_num = parse_size(actual) if not isinstance(actual, str) or want_num is not None else None
        if self.op in ("=", "=="):
            if have_num is not None and want_num is not None:
                return math.isclose(have_num, want_num, rel_tol=1e-9, abs_tol=0.0)
            return _as_text(actual) == self.value
        if self.op == "!=":
            return not Filter(self.field, "=", self.value).matches(record)
        if have_num is None or want_num is None:
            return False  # ordering needs numbers on both sides
        return {"<": have_num < want_num, "<=": have_num <= want_num,
                ">": have_num > want_num, ">=": have_num >= want_num}[self.op]


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def parse_where(expression: str) -> Filter:
    """Parse ``field=value`` (also ``!=``, ``<``, ``<=``, ``>``, ``>=``) into a :class:`Filter`.

    >>> parse_where("N>=1e9")
    Filter(field='N', op='>=', value='1e9')
    >>> parse_where("oops")
    Traceback (most recent call last):
    ...
    rlscale.core.errors.OptionError: where 'oops': expected FIELD=VALUE (or !=, <, <=, >, >=)
    """
    match = _WHERE_RE.match(expression)
    if not match or not match.group(3):
        raise OptionError("where", f"{expression!r}: expected FIELD=VALUE (or !=, <, <=, >, >=)")
    field_name, op, value = match.groups()
    if value[0] in "<>=!":  # 'N>>5', 'N=>5': a mistyped operator would match nothing
        raise OptionError("where", f"{expression!r}: cannot read the operator; expected one "
                          f"of = != < <= > >=")
    if op in ("<", "<=", ">", ">=") and parse_size(value) is None:
        raise OptionError("where", f"{expression!r}: {op} compares numbers, and {value!r} is "
                          f"not one")
    return Filter(field_name, op, value)


# --- specification and containers -----------------------------------------------------------


@dataclass(frozen=True)
class DataSpec:
    """Which fields to read and how to select and clean the points."""

    x: str = "C"
    y: str = "loss"
    group: str = "N"
    run: str | None = "run_id"
    step: str | None = "step"
    where: tuple[Filter, ...] = ()
    x_min: float | None = None
    x_max: float | None = None
    warmup_clip: int = 0
    ending_clip: int = 0
    numeric_groups: bool = True
    positive_y: bool = True
    average: bool = True
    # two records of one run at one step (a restarted or overlapping job): "error", or "mean"
    duplicates: str = "error"


@dataclass
class Curve:
    """One run of one group, sorted by step (or x)."""

    group: int
    run: str
    x: np.ndarray
    y: np.ndarray
    align: np.ndarray  # step (or x when there is no step field): what runs are averaged on
    where: list[str]  # file:line of every point, for error messages


@dataclass
class Points:
    """Flat arrays of fit points: one per (group, step) when averaged, else one per record."""

    x: np.ndarray
    y: np.ndarray
    gidx: np.ndarray
    align: np.ndarray
    n_runs: np.ndarray  # how many runs were averaged into each point

    def subset(self, mask: np.ndarray) -> Points:
        return Points(self.x[mask], self.y[mask], self.gidx[mask], self.align[mask],
                      self.n_runs[mask])


@dataclass
class Dataset:
    spec: DataSpec
    keys: list[str]  # group keys, sorted by numeric value when numeric
    n_values: np.ndarray  # numeric group value per group (NaN if not numeric)
    curves: list[Curve]
    aligned_by: str  # "step" or "x"
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def n_groups(self) -> int:
        return len(self.keys)

    def runs_per_group(self) -> list[int]:
        runs = [set() for _ in self.keys]
        for curve in self.curves:
            runs[curve.group].add(curve.run)
        return [len(r) for r in runs]

    def points(self, curves: Sequence[Curve] | None = None) -> Points:
        """Average runs per (group, step), or keep every record when ``spec.average`` is off."""
        curves = self.curves if curves is None else curves
        if not curves:
            empty = np.empty(0)
            return Points(empty, empty, np.empty(0, dtype=int), empty, np.empty(0, dtype=int))
        if not self.spec.average:
            return Points(
                np.concatenate([c.x for c in curves]), np.concatenate([c.y for c in curves]),
                np.concatenate([np.full(len(c.x), c.group) for c in curves]),
                np.concatenate([c.align for c in curves]),
                np.ones(sum(len(c.x) for c in curves), dtype=int))
        gidx = np.concatenate([np.full(len(c.x), c.group) for c in curves])
        align = np.concatenate([c.align for c in curves])
        xs = np.concatenate([c.x for c in curves])
        ys = np.concatenate([c.y for c in curves])
        order = np.lexsort((align, gidx))
        gidx, align, xs, ys = gidx[order], align[order], xs[order], ys[order]
        new = np.ones(len(gidx), dtype=bool)
        new[1:] = (gidx[1:] != gidx[:-1]) | (align[1:] != align[:-1])
        starts = np.nonzero(new)[0]
        counts = np.diff(np.append(starts, len(gidx)))
        return Points(np.add.reduceat(xs, starts) / counts, np.add.reduceat(ys, starts) / counts,
                      gidx[starts], align[starts], counts)

    def without_groups(self, drop: Iterable[int]) -> Dataset:
        """The same data with some groups removed (groups are renumbered)."""
        drop = set(drop)
        keep = [g for g in range(self.n_groups) if g not in drop]
        renumber = {old: new for new, old in enumerate(keep)}
        curves = [Curve(renumber[c.group], c.run, c.x, c.y, c.align, c.where)
                  for c in self.curves if c.group in renumber]
        return Dataset(self.spec, [self.keys[g] for g in keep], self.n_values[keep], curves,
                       self.aligned_by, dict(self.counts))

    def only_group(self, g: int) -> Dataset:
        return self.without_groups(h for h in range(self.n_groups) if h != g)

    def first_where(self, g: int) -> str:
        for curve in self.curves:
            if curve.group == g and curve.where:
                return curve.where[0]
        return "?"


# --- building a dataset from records --------------------------------------------------------


def _numeric(record: Mapping[str, Any], name: str) -> float:
    if name in record and record[name] is None:
        raise ValueError(f"field '{name}' is null, expected a number")
    check_fields(record, {name: "number"})
    return float(record[name])


def build_dataset(records: Iterable[tuple[dict[str, Any], Any]], spec: DataSpec,
                  invalid) -> Dataset:
    """Select, check and clip the points of ``records`` (pairs of record and location).

    ``invalid(where, message)`` reports a bad record (raise, or skip under --skip-invalid), as
    :meth:`rlscale.io.jsonl.RecordReader.invalid` does. Raises :class:`RlscaleError` for
    problems with the whole input (no points left, a group with fewer than 2 points).
    """
    counts = {"records": 0, "filtered_out": 0, "out_of_range": 0, "step0_dropped": 0,
              "clipped": 0, "invalid": 0}
    by_curve: dict[tuple[str, str], list[tuple[float, float, float, str]]] = {}
    group_raw: dict[str, Any] = {}
    size_keys: dict[float | None, str] = {}
    all_have_step = True
    for record, where in records:
        counts["records"] += 1
        if not all(f.matches(record) for f in spec.where):
            counts["filtered_out"] += 1
            continue
        try:
            x = _numeric(record, spec.x)
            y = _numeric(record, spec.y)
            if not spec.group:
                raw_group = "all"  # no grouping: one curve
            elif spec.group not in record or record[spec.group] is None:
                raise ValueError(f"missing required field '{spec.group}' (the --group field)")
            else:
                raw_group = record[spec.group]
            if isinstance(raw_group, (dict, list)):
                raise ValueError(f"field '{spec.group}' must be a number or a string")
            if spec.numeric_groups:
                size = parse_size(raw_group)
                if size is None or size <= 0:
                    raise ValueError(f"field '{spec.group}' must be a positive model size "
                                     f"(a number or a label like 7B), got {raw_group!r}")
            step = None
            if spec.step and spec.step in record and record[spec.step] is not None:
                step = _numeric(record, spec.step)
        except ValueError as exc:
            counts["invalid"] += 1
            invalid(where, str(exc))
            continue
        if step is None:
            all_have_step = False
        if x == 0 and step == 0:
            counts["step0_dropped"] += 1  # the untrained checkpoint: log 0 is undefined
            continue
        if (spec.x_min is not None and x < spec.x_min) or (spec.x_max is not None and x > spec.x_max):
            counts["out_of_range"] += 1
            continue
        problem = None
        if x <= 0:
            problem = (f"field '{spec.x}' must be > 0 for a log-log fit, got {x:g} "
                       f"(drop such points with --x-min or --where)")
        elif spec.positive_y and y <= 0:
            problem = (f"field '{spec.y}' must be > 0 to take its logarithm, got {y:g} "
                       f"(use --space linear, or drop the point with --where)")
        if problem:
            counts["invalid"] += 1
            invalid(where, problem)
            continue
        key = label(raw_group)
        if spec.numeric_groups:  # "7B" and 7e9 are the same model size: one group
            key = size_keys.setdefault(parse_size(raw_group), key)
        group_raw.setdefault(key, raw_group)
        run = "" if not spec.run or record.get(spec.run) is None else str(record[spec.run])
        by_curve.setdefault((key, run), []).append((x, y, step if step is not None else x,
                                                    str(where)))
    if not by_curve:
        if counts["records"] == 0:
            raise EmptyInput("no input records: nothing to fit")
        raise RlscaleError(_nothing_left(counts, spec))
    keys = list(group_raw)
    n_values = np.array([parse_size(group_raw[k]) or math.nan for k in keys])
    if spec.numeric_groups or (len(keys) and np.all(np.isfinite(n_values))):
        order = sorted(range(len(keys)), key=lambda i: (n_values[i], keys[i]))
        keys = [keys[i] for i in order]
        n_values = n_values[order]
    index = {k: i for i, k in enumerate(keys)}
    aligned_by = "step" if all_have_step else "x"
    curves = []
    for (key, run), rows in by_curve.items():
        if not all_have_step:
            rows = [(x, y, x, w) for x, y, _, w in rows]
        rows.sort(key=lambda r: r[2])
        rows = _merge_duplicates(rows, key, run, spec, counts)
        n_rows = len(rows)
        kept = rows[spec.warmup_clip:max(0, n_rows - spec.ending_clip)]
        counts["clipped"] += n_rows - len(kept)
        if kept:
            arr = np.array([r[:3] for r in kept], dtype=float)
            curves.append(Curve(index[key], run, arr[:, 0], arr[:, 1], arr[:, 2],
                                [r[3] for r in kept]))
    dataset = Dataset(spec, keys, n_values, curves, aligned_by, counts)
    points = dataset.points()
    for g, key in enumerate(keys):
        n_points = len(np.unique(points.align[points.gidx == g]))
        if n_points < 2:
            first = next((r[3] for (k, _), rows in by_curve.items() if k == key for r in rows), "?")
            raise RlscaleError(
                f"{first}: group {spec.group}={key} has {n_points} point(s) left after "
                f"filtering and clipping; each group needs at least 2 (check --where, "
                f"--x-min/--x-max, --warmup-clip/--ending-clip)")
    return dataset


def _merge_duplicates(rows, key, run, spec, counts):
    """Refuse (or, with ``duplicates="mean"``, average) repeated (run, step) rows of a curve."""
    out: list = []
    for row in rows:
        if out and out[-1][0][2] == row[2]:
            out[-1].append(row)
        else:
            out.append([row])
    if len(out) == len(rows):
        return rows
    first = next(group for group in out if len(group) > 1)
    if spec.duplicates != "mean":
        on = "step" if spec.step else spec.x
        who = f"run {run!r}" if run else f"group {spec.group}={key} (no --run field)"
        raise RlscaleError(
            f"{first[1][3]}: duplicate record: {who} already has {on} {first[0][2]:g} (at "
            f"{first[0][3]}); {sum(len(g) - 1 for g in out)} such record(s) in this curve. "
            f"Two jobs wrote one step? Fix the input, give each run its own --run id, or "
            f"average them with --replicates mean")
    counts["duplicates_averaged"] = counts.get("duplicates_averaged", 0) + len(rows) - len(out)
    return [(float(np.mean([r[0] for r in g])), float(np.mean([r[1] for r in g])), g[0][2],
             g[0][3]) for g in out]


class EmptyInput(RlscaleError):
    """No records at all: valid input for a JSONL tool, which then writes nothing."""


def _nothing_left(counts: Mapping[str, int], spec: DataSpec) -> str:
    reasons = []
    if counts["filtered_out"]:
        reasons.append(f"{counts['filtered_out']} removed by --where")
    if counts["out_of_range"]:
        reasons.append(f"{counts['out_of_range']} outside --x-min/--x-max")
    if counts["step0_dropped"]:
        reasons.append(f"{counts['step0_dropped']} at step 0")
    if counts["invalid"]:
        reasons.append(f"{counts['invalid']} invalid")
    detail = f" ({', '.join(reasons)})" if reasons else ""
    return f"no points left to fit out of {counts['records']} record(s){detail}"


def split_by_fraction(dataset: Dataset, fraction: float) -> tuple[Dataset, Dataset]:
    """Split every group's curve: its first ``fraction`` of steps to fit, the rest to test.

    The cut is on the step (or x) values of the group, so replicate runs are cut at the same
    place; at least 2 steps are always kept for fitting (T25 §1.10 intra-model protocol: fit the
    first 30 % of steps, predict the rest).
    """
    if not 0.0 < fraction < 1.0:
        raise OptionError("fit_fraction", f"must be between 0 and 1 (exclusive), got {fraction:g}")
    cut = []
    for g in range(dataset.n_groups):
        steps = np.unique(np.concatenate([c.align for c in dataset.curves if c.group == g]))
        n_fit = min(len(steps), max(2, math.ceil(fraction * len(steps))))
        cut.append(steps[n_fit - 1])
    fit_curves, test_curves = [], []
    for c in dataset.curves:
        head = c.align <= cut[c.group]
        for curves, mask in ((fit_curves, head), (test_curves, ~head)):
            if mask.any():
                curves.append(Curve(c.group, c.run, c.x[mask], c.y[mask], c.align[mask],
                                    [w for w, m in zip(c.where, mask, strict=True) if m]))
    make = lambda curves: Dataset(dataset.spec, dataset.keys, dataset.n_values, curves,  # noqa: E731
                                  dataset.aligned_by, dict(dataset.counts))
    return make(fit_curves), make(test_curves)
