"""``rlscale.fit``: fit a scaling law to learning curves, and a :class:`Fit` to read, predict,
plan, plot and save with; ``compare`` ranks laws and ``transfer`` runs the transfer study.

>>> import rlscale
>>> from rlscale.core.laws.synthetic import paper_base_c_records
>>> result = rlscale.fit(paper_base_c_records(0, noise_sd=0.0))  # the paper's base-C law
>>> round(result.params["K_max"], 4), round(result.params["N_0"] / 1e9, 3), round(result.r2, 6)
(0.133, 13.782, 1.0)
>>> round(float(result.predict(1e21, group=7e9)[0]), 4)  # the loss of a 7B model at C = 1e21
0.58
>>> round(result.derived["k"]["7000000000"], 4), result.warnings  # k(7B) = K_max/(1+N_0/N)
(0.0448, [])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from rlscale.api._records import located
from rlscale.core.errors import OptionError, OptionsError, RlscaleError, UsageError

# The command's choices, in its words (rlscale fit --help).
LOG_BASES = ("10", "e")
WEIGHTS = ("group-equal", "point")
BOOTSTRAP_BY = ("auto", "runs", "points")
REPLICATES = ("average", "keep", "mean")
SPACES = ("log", "linear")
REUSE_WINDOW = (10.0, 100.0)  # the paper's reuse fits (T25 §4.4): steps 10-100


def _choice(name: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise OptionError(name, f"{value!r}: expected one of {', '.join(allowed)}")


def _number(name: str, value: Any, what: str = "") -> float:
    """A number, or text such as ``1e21`` or ``7B``; ``what`` names the part of the option
    (``fix`` ``L_inf``)."""
    from rlscale.core.laws.data import parse_size

    parsed = parse_size(value)
    if parsed is None:
        raise OptionError(name, f"{what}: cannot read {value!r} as a number")
    return parsed


def _texts(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _fixed(fix: Mapping[str, float] | Sequence[str] | str | None) -> dict[str, float]:
    if isinstance(fix, Mapping):
        return {str(name): _number("fix", value, str(name)) for name, value in fix.items()}
    out = {}
    for item in _texts(fix):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise OptionError("fix", f"{item!r}: expected NAME=VALUE, e.g. L_inf=0.3")
        out[name.strip()] = _number("fix", value, name.strip())
    return out


def _law(name: Any, intercept: str):
    """A Law from a registered name, ``module:function`` or a Law itself."""
    from rlscale.core.laws.forms import Law, get_law

    if isinstance(name, Law):
        return name
    _check_laws([name])
    try:
        return get_law(name, intercept=intercept if name == "saturating" or ":" in name
                       else "per-group")
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _check_level(ci_level: float) -> None:
    if not 0.0 < ci_level < 1.0:
        raise OptionError("ci_level", f"must be between 0 and 1, got {ci_level:g}")


def _check_huber(huber: float | None) -> None:
    if huber is not None and not huber > 0:
        raise OptionError("huber", f"must be > 0, got {huber:g}")


def _check_laws(names: Sequence[Any]) -> None:
    from rlscale.core.laws.registry import names as registered

    for name in names:
        if isinstance(name, str) and ":" not in name:  # module:function names a user's law
            _choice("law", name, registered())


_CHECKS: dict[str, Callable[[Any], None]] = {
    "log_base": lambda v: _choice("log_base", v, LOG_BASES),
    "weights": lambda v: _choice("weights", v, WEIGHTS),
    "bootstrap_by": lambda v: _choice("bootstrap_by", v, BOOTSTRAP_BY),
    "replicates": lambda v: _choice("replicates", v, REPLICATES),
    "space": lambda v: v is None or _choice("space", v, SPACES),
    "huber": _check_huber,
    "ci_level": _check_level,
    "law": lambda v: _check_laws([v] if isinstance(v, str) else v),
}


def check_options(**values: Any) -> None:
    """Raise OptionError for the first bad value among these options of :func:`fit`
    (``log_base``, ``weights``, ``bootstrap_by``, ``replicates``, ``space``, ``huber``,
    ``ci_level``, ``law``), before any record is read."""
    for name, value in values.items():
        _CHECKS[name](value)


def number(name: str, value: Any) -> float:
    """The option ``name``'s value as a number (``1e21``, ``7B``); OptionError if it is not."""
    return _number(name, value)


class NotDetermined(RlscaleError):
    """``strict``: the data cannot determine the law (too few points or groups, a flat
    direction, a parameter on a bound). ``refused``: those warnings."""

    def __init__(self, refused: list[dict[str, Any]]):
        self.refused = refused
        self.detail = refused[0]["message"] + (f" (and {len(refused) - 1} more)"
                                               if len(refused) > 1 else "")
        super().__init__(f"strict: {self.detail}")


def _prepare(records, laws, *, law_text, comparing, x, y, group, run, step_field, where, x_min,
             x_max, warmup_clip, ending_clip, replicates, fix, log_base, space, huber, weights,
             x_weight_power, starts, refine, bootstrap, bootstrap_by, ci_level, holdout_group,
             fit_fraction, reference, seed, example, on_data):
    """Read the points (a Dataset) and the FitRequest of the first law (``law_text``: how the
    caller named the laws, for messages)."""
    from rlscale.core.laws.data import DataSpec, build_dataset, parse_where
    from rlscale.core.laws.fit import FitOptions
    from rlscale.core.laws.pipeline import FitRequest

    the_law = laws[0]
    options = FitOptions(space=space or ("log" if comparing else the_law.default_space),
                         log_base=log_base, huber=huber, weights=weights,
                         x_weight_power=x_weight_power, random_starts=starts, refine=refine,
                         seed=seed)
    wheres = _texts(where)
    if example is not None:
        from rlscale.core.laws.paper import EXAMPLES, example_where

        _choice("example", example, tuple(EXAMPLES))
        if records is not None:
            raise OptionError("example", "fits the shipped curves; give no records")
        from rlscale.io.curves import paper_curves

        records, wheres, y = paper_curves(), [example_where(example), *wheres], y or "L"
    if records is None:
        raise OptionError("records", "are missing: give the learning curves to fit")
    filters = tuple(parse_where(w) for w in wheres)
    x_field, y_field = x or the_law.default_x, y or the_law.default_y
    group_field = the_law.default_group if group is None else group
    if the_law.numeric_groups and not group_field:
        raise OptionsError(f"{{law}} {law_text} needs a {{group}} field (the model size)")
    lo = _number("x_min", x_min) if x_min is not None else None
    hi = _number("x_max", x_max) if x_max is not None else None
    if the_law.name == "reuse" and x_field == "step" and lo is None and hi is None:
        lo, hi = REUSE_WINDOW
    spec = DataSpec(
        x=x_field, y=y_field, group=group_field, run=run or None, step=step_field or None,
        where=filters, x_min=lo, x_max=hi, warmup_clip=warmup_clip, ending_clip=ending_clip,
        numeric_groups=any(one.numeric_groups for one in laws),
        positive_y=options.space == "log" or the_law.name != "sigmoid",
        average=replicates != "keep", duplicates="mean" if replicates == "mean" else "error")
    items = located(records)
    dataset = build_dataset(items, spec, items.invalid)
    if on_data is not None:
        on_data(dataset)
    holdout = _texts(holdout_group)
    request = FitRequest(the_law, options, n_bootstrap=bootstrap, bootstrap_by=bootstrap_by,
                         level=ci_level, holdout=holdout, fit_fraction=fit_fraction,
                         reference=reference, fixed=_fixed(fix))
    return dataset, request


def _told_dropped(dataset: Any, say: Callable[[str], None]) -> None:
    if dataset.counts.get("step0_dropped"):
        say(f"dropped {dataset.counts['step0_dropped']} record(s) at step 0 with "
            f"{dataset.spec.x} = 0 (log 0 is undefined)")


def _meta(seed: int) -> dict[str, Any]:
    from rlscale import __version__

    return {"rlscale_version": __version__, "seed": seed}


def fit(
    records: Iterable[Mapping[str, Any]] | None = None,
    *,
    law: Any = None,
    x: str | None = None,
    y: str | None = None,
    group: str | None = None,
    run: str = "run_id",
    step_field: str = "step",
    where: str | Sequence[str] | None = None,
    x_min: float | str | None = None,
    x_max: float | str | None = None,
    warmup_clip: int = 0,
    ending_clip: int = 0,
    replicates: str = "average",
    fix: Mapping[str, float] | Sequence[str] | None = None,
    strict: bool = False,
    intercept: str = "per-group",
    log_base: str = "10",
    space: str | None = None,
    huber: float | None = None,
    weights: str = "group-equal",
    x_weight_power: float = 0.0,
    starts: int = 8,
    refine: int = 4,
    bootstrap: int = 0,
    bootstrap_by: str = "auto",
    ci_level: float = 0.95,
    holdout_group: str | Sequence[str] | None = None,
    fit_fraction: float | None = None,
    reference: str | None = None,
    seed: int = 0,
    example: str | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
    on_data: Callable[[Any], None] | None = None,
    notes: Callable[[str], None] | None = None,
) -> Fit:
    """Fit ``law`` to learning curves: one record per run and step with the x field (C, D or
    step), the y field (loss) and the group field (model size N). The options are those of
    ``rlscale fit`` (``--holdout-group`` is ``holdout_group``, ``--bootstrap`` ``bootstrap``,
    ``--ci-level`` ``ci_level``, ``--step-field`` ``step_field``).

    ``law``: a registered name (:mod:`rlscale.core.laws.registry`; None: ``saturating``),
    ``"module:function"`` or a :class:`~rlscale.core.laws.forms.Law`.
    ``example="paper-base"`` (or ``paper-instruct``) fits the paper's curves shipped with
    rlscale instead of ``records``. ``law="reuse"`` on ``x="step"`` fits steps 10-100, like the
    paper, unless ``x_min`` or ``x_max`` is given. ``strict``: raise :class:`NotDetermined`
    when the data cannot determine the law instead of listing it in :attr:`Fit.warnings`.
    ``progress`` wraps the bootstrap loop (a progress bar); ``on_data(dataset)`` is called once
    the points are read, before fitting. ``notes`` is told, one line each, what ``rlscale fit``
    tells a person: points dropped at step 0, warnings, failed bootstrap refits, the summary
    and the held-out score (``notes=print``).

    Bad options raise :class:`~rlscale.core.errors.OptionError` naming the parameter; a bad
    record raises :class:`~rlscale.core.errors.RecordError` naming its index (a
    :class:`~rlscale.io.jsonl.RecordReader` given as ``records`` skips it instead under
    ``skip_invalid``); no records at all raise :class:`~rlscale.core.laws.data.EmptyInput`.

    >>> paper = fit(example="paper-base", space="linear", holdout_group="72e9")
    >>> round(paper.params["K_max"], 4), round(paper.params["N_0"] / 1e9, 2)
    (0.1518, 17.37)
    """
    from rlscale.core.laws.pipeline import run_fit

    check_options(log_base=log_base, weights=weights, bootstrap_by=bootstrap_by,
                  replicates=replicates, space=space, huber=huber, ci_level=ci_level)
    law = "saturating" if law is None else law
    the_law = _law(law, intercept)
    if isinstance(law, str) and ":" not in law and intercept != "per-group" \
            and law != "saturating":
        raise OptionsError(f"{{intercept}} applies only to {{law}} saturating, not {law}")
    dataset, request = _prepare(
        records, [the_law], law_text=law if isinstance(law, str) else the_law.name,
        comparing=False, x=x, y=y, group=group, run=run,
        step_field=step_field, where=where, x_min=x_min, x_max=x_max, warmup_clip=warmup_clip,
        ending_clip=ending_clip, replicates=replicates, fix=fix, log_base=log_base, space=space,
        huber=huber, weights=weights, x_weight_power=x_weight_power, starts=starts,
        refine=refine, bootstrap=bootstrap, bootstrap_by=bootstrap_by, ci_level=ci_level,
        holdout_group=holdout_group, fit_fraction=fit_fraction, reference=reference, seed=seed,
        example=example, on_data=on_data)
    say = notes or (lambda line: None)
    _told_dropped(dataset, say)
    outcome = run_fit(dataset, request, progress=progress)
    report = {**outcome.report, **_meta(seed)}
    if isinstance(law, str) and ":" in law:  # how a reloaded fit finds a user's law again
        report["law_factory"] = law
    result = Fit(report, outcome.fitted, x=dataset.spec.x, y=dataset.spec.y,
                 group=dataset.spec.group, outcome=outcome, options=request.options)
    if strict and result.refusals():
        raise NotDetermined(result.refusals())
    for warning in (w for w in result.warnings if w["severity"] == "warning"):
        say(f"warning: {warning['message']}")
    failed = (report.get("bootstrap") or {}).get("failed")
    if failed:
        say(f"warning: {failed} of {bootstrap} bootstrap refits failed and were left out")
    say(result.summary())
    from rlscale.core.laws.validate import validation_summary

    held = validation_summary(result.validation or {})
    if held:
        say(held)
    return result


class Fit:
    """A fitted scaling law: what ``rlscale fit`` writes, and what you can do with it.

    Attributes: ``params`` (globals as numbers, per-group ones keyed by group label),
    ``metrics`` (``r2``, ``rmse``, ``aic`` ...), ``r2``, ``warnings`` (dicts with ``code``,
    ``severity``, ``message``), ``derived`` (per-group quantities such as the saturating law's
    ``k``), ``ci`` (bootstrap intervals, or None), ``validation`` (the
    held-out protocol's report, or None), ``law`` (its name), ``x``/``y``/``group`` (fields),
    ``groups`` (label -> numeric size), ``fitted`` (the
    :class:`~rlscale.core.laws.model.FittedLaw` that predicts).
    """

    def __init__(self, report: dict[str, Any], fitted: Any, *, x: str, y: str, group: str,
                 outcome: Any = None, options: Any = None):
        self.report, self.fitted = report, fitted
        self.x, self.y, self.group = x, y, group
        self.outcome, self.options = outcome, options

    # --- reading ------------------------------------------------------------------------

    law = property(lambda self: self.report["law"])
    params = property(lambda self: self.report["params"])
    groups = property(lambda self: self.report["groups"])
    metrics = property(lambda self: self.report.get("metrics", {}))
    r2 = property(lambda self: self.metrics.get("r2"))
    warnings = property(lambda self: self.report.get("warnings", []))
    ci = property(lambda self: self.report.get("ci"))
    validation = property(lambda self: self.report.get("validation"))
    derived = property(lambda self: self.report.get("derived", {}))  # e.g. k per group

    def to_dict(self) -> dict[str, Any]:
        """The JSON object ``rlscale fit -o`` writes (and ``--save`` saves)."""
        return self.report

    def refusals(self) -> list[dict[str, Any]]:
        """The warnings ``strict`` refuses: the data cannot determine the law."""
        from rlscale.core.laws.fit import STRICT_CODES

        return [w for w in self.warnings if w["code"] in STRICT_CODES]

    def summary(self) -> str:
        """One line: the law, points, groups, global parameters and R2."""
        shown = [f"{name}={value:.4g}" for name, value in self.params.items()
                 if isinstance(value, (int, float))]
        r2 = self.r2
        return (f"{self.law} on {self.metrics['n_points']} points, {self.metrics['n_groups']} "
                f"group(s): {' '.join(shown) or 'per-group parameters'}"
                + (f", R2={r2:.4f}" if r2 is not None else ""))

    def __repr__(self) -> str:
        return f"<Fit {self.summary() if 'metrics' in self.report else self.law}>"

    def to_text(self, fmt: str = "table") -> str:
        """The fit for people: ``table`` (plain columns) or ``markdown``."""
        from rlscale.core.laws.render import render_fit

        _choice("fmt", fmt, ("table", "markdown"))
        return render_fit(self.report, fmt)

    # --- predicting ------------------------------------------------------------------------

    def _queries(self, x: Any, group: Any):
        import numpy as np

        xs = np.atleast_1d(np.asarray(x, dtype=float))
        if group is None:
            if self.group:
                raise OptionError("group", f"is needed: the fit has one curve per {self.group}")
            group = "all"  # no grouping: one curve
        groups = [group] * len(xs) if isinstance(group, (str, int, float)) else list(group)
        if len(groups) != len(xs):
            raise OptionError("group", f"must be one value or one per x ({len(xs)}), got "
                              f"{len(groups)}")
        return xs, groups

    def predict(self, x: Any, group: Any = None):
        """Predicted y at ``x`` (a number or an array) for ``group`` (one value or one per x; a
        model size the law can interpolate may be new). Returns a numpy array."""
        xs, groups = self._queries(x, group)
        return self.fitted.predict(xs, groups)

    def interval(self, x: Any, group: Any = None):
        """The bootstrap ``ci_level`` interval of :meth:`predict` as (lo, hi) arrays, or None
        without a bootstrap."""
        xs, groups = self._queries(x, group)
        return self.fitted.predict_interval(xs, groups)

    def predict_records(self, records: Iterable[Mapping[str, Any]],
                        notes: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
        """Each record with ``<y>_pred`` added (and ``<y>_pred_lo``/``_hi`` after a bootstrap),
        read from its x and group fields. A group that is not in the fit is interpolated in
        log N when the law allows it (``notes`` is told once per group) and refused otherwise.
        """
        import numpy as np

        from rlscale.core.identity import label

        items = located(records, required={self.x: "number"})
        rows, xs, groups, told = [], [], [], set()
        for record, where in items:
            value = record.get(self.group) if self.group else "all"  # no grouping: one curve
            if value is None or isinstance(value, (dict, list, bool)):
                items.invalid(where, f"missing required field '{self.group}' (the group field)")
                continue
            if record[self.x] <= 0:
                items.invalid(where, f"field '{self.x}' must be > 0, got {record[self.x]:g}")
                continue
            try:
                self.fitted.group_values_for(self.fitted.values, value)
            except ValueError as exc:
                items.invalid(where, str(exc))
                continue
            key = label(value)
            if self.fitted.is_extrapolated(value) and key not in told:
                told.add(key)
                if notes is not None:
                    notes(f"{self.group}={key} is not a fitted group; its "
                          f"{', '.join(p.name for p in self.fitted.law.group_params)} is "
                          f"interpolated in log {self.group}")
            rows.append(record)
            xs.append(float(record[self.x]))
            groups.append(value)
        if not rows:
            return []
        pred = self.fitted.predict(np.array(xs), groups)
        interval = self.fitted.predict_interval(np.array(xs), groups)
        out = []
        for i, record in enumerate(rows):
            row = {**record, f"{self.y}_pred": float(pred[i])}
            if interval is not None:
                row[f"{self.y}_pred_lo"] = float(interval[0][i])
                row[f"{self.y}_pred_hi"] = float(interval[1][i])
            out.append(row)
        return out

    # --- planning ----------------------------------------------------------------------------

    def optimal_size(self, budget: float, *, sizes: Sequence[float] | None = None,
                     size_range: tuple[float, float] | None = None) -> dict[str, Any]:
        """The model size with the lowest predicted loss at x = ``budget``, among ``sizes``
        (default: the fitted groups) or in ``size_range`` (lo, hi). Raises ValueError when the
        law cannot predict them."""
        from rlscale.core.laws.planner import plan_budget

        return {**plan_budget(self.fitted, budget, sizes=sizes, size_range=size_range),
                "x": self.x, "law": self.fitted.law.name}

    def plan(self, budgets: Sequence[float] = (),
             budget_range: tuple[float, float] | None = None,
             notes: Callable[[str], None] | None = None) -> dict[str, Any]:
        """The groups are values of a discrete setting (G, tau, N): the best one per budget
        and the budgets where the best one changes, searched over ``budget_range`` (default:
        the x range every curve covers); ``notes`` is told each crossover in words. Raises
        ValueError when it cannot be planned."""
        from rlscale.core.laws.planner import plan_discrete, shared_x_range

        if budget_range is None:
            budget_range = shared_x_range((self.report.get("data") or {}).get("x_range") or {})
        out = plan_discrete(self.fitted, budgets=budgets, budget_range=budget_range)
        say, group = notes or (lambda line: None), self.group
        for c in out["crossovers"]:
            ci = c.get("budget_ci")
            shown = f" (95% interval {ci[0]:.3g}-{ci[1]:.3g})" if ci else ""
            say(f"{group}={c['to']} overtakes {group}={c['from']} at {self.x} = "
                f"{c['budget']:.4g}{shown}")
        if not out["crossovers"]:
            say(f"{group}={out['best_at_range_start']} is best over the whole range "
                f"{budget_range[0]:.3g}-{budget_range[1]:.3g}")
        return {**out, "setting": group, "x": self.x, "law": self.fitted.law.name}

    # --- files ---------------------------------------------------------------------------

    def plot(self, path: str) -> None:
        """Write a figure (the suffix names the format: png, pdf, svg): data, fitted curves
        and intervals per group, and k(N) for the saturating law. Needs matplotlib."""
        from rlscale.core.laws.pipeline import independent_slopes, points_by_group
        from rlscale.io.plot import plot_fit

        outcome, slopes, points, held = self.outcome, None, None, None
        if outcome is not None:
            points = points_by_group(outcome.fit_data)
            held = points_by_group(outcome.held_out)
            if self.fitted.law.name == "saturating":
                slopes = independent_slopes(outcome.fit_data, self.options)
                if outcome.held_out is not None and outcome.report.get("validation", {}).get(
                        "protocol") == "holdout-group":
                    slopes.update(independent_slopes(outcome.held_out, self.options))
        plot_fit(path, self.fitted, x_label=self.x, y_label=self.y, points=points,
                 x_range=(self.report.get("data") or {}).get("x_range"), held_out=held,
                 group_slopes=slopes, group_label=self.group,
                 calibrated=outcome.calibrated if outcome is not None else None)

    def save(self, path: str) -> None:
        """Write :meth:`to_dict` as indented JSON, atomically (what :meth:`load` reads)."""
        import orjson

        from rlscale.io.jsonl import atomic_write_bytes

        atomic_write_bytes(path, orjson.dumps(self.report, option=orjson.OPT_SERIALIZE_NUMPY
                                              | orjson.OPT_INDENT_2) + b"\n")

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any], *, log_base: str | None = None,
                  x: str | None = None, y: str | None = None, group: str | None = None) -> Fit:
        """A fit from the object ``rlscale fit`` writes, with intercepts re-expressed in
        ``log_base`` when given. Raises ValueError (or KeyError, TypeError) when it is not one."""
        from rlscale.core.laws.model import from_fit_json

        if log_base is not None:
            _choice("log_base", log_base, LOG_BASES)
        fitted, saved_base = from_fit_json(saved)
        report = dict(saved)
        if log_base is not None and saved_base != log_base:
            report["params"] = fitted.params_json(fitted.values, log_base)
            report["log_base"] = log_base
        law = fitted.law
        return cls(report, fitted, x=x or saved.get("x", law.default_x),
                   y=y or saved.get("y", law.default_y),
                   group=group or saved.get("group", law.default_group))

    @classmethod
    def load(cls, path: str, **options: Any) -> Fit:
        """A fit saved with :meth:`save` (or ``rlscale fit --save``); options as
        :meth:`from_dict`. Raises RlscaleError naming the file when it is missing or not one."""
        import orjson

        try:
            with open(path, "rb") as handle:
                saved = orjson.loads(handle.read())
            return cls.from_dict(saved, **options)
        except FileNotFoundError:
            raise RlscaleError(f"{path}: no such file") from None
        except (orjson.JSONDecodeError, ValueError, TypeError, KeyError) as exc:
            raise RlscaleError(f"{path}: not a saved rlscale fit ({exc})") from None


def compare(
    records: Iterable[Mapping[str, Any]] | None = None,
    *,
    law: str | Sequence[Any] | None = None,
    fit_fraction: float | None = None,
    holdout_group: str | Sequence[str] | None = None,
    intercept: str = "per-group",
    seed: int = 0,
    notes: Callable[[str], None] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Fit several laws (default saturating, loglinear, decomposition, sigmoid; ``law`` a list
    or ``"a,b"``) on the same points, in one space (default log), under one held-out protocol
    (default: the last 70 % of every curve, ``fit_fraction=0.3``), and rank them by the mean
    held-out RMSE per curve. Other options as :func:`fit`. Returns the ranking object of
    ``rlscale fit --compare``. ``notes`` is told of points dropped at step 0."""
    import dataclasses

    from rlscale.core.laws.compare import DEFAULT_COMPARE, compare_laws, with_fraction
    from rlscale.core.laws.pipeline import run_fit

    names = ([n.strip() for n in law.split(",") if n.strip()] if isinstance(law, str)
             else list(law or DEFAULT_COMPARE))
    laws = [_law(n, intercept) for n in names]
    if len(laws) < 2:
        raise OptionError("law", f"needs at least two laws to compare, got {len(laws)}")
    settings = {"x": None, "y": None, "group": None, "run": "run_id", "step_field": "step",
                "where": None, "x_min": None, "x_max": None, "warmup_clip": 0, "ending_clip": 0,
                "replicates": "average", "fix": None, "log_base": "10", "space": None,
                "huber": None, "weights": "group-equal", "x_weight_power": 0.0, "starts": 8,
                "refine": 4, "bootstrap": 0, "bootstrap_by": "auto", "ci_level": 0.95,
                "reference": None, "example": None, "on_data": None}
    unknown = set(options) - set(settings)
    if unknown:
        raise TypeError(f"compare() got unexpected options {', '.join(sorted(unknown))}")
    settings.update(options)
    check_options(**{name: settings[name] for name in ("log_base", "weights", "bootstrap_by",
                                                      "replicates", "space", "huber",
                                                      "ci_level")})
    dataset, request = _prepare(records, laws, law_text=law if isinstance(law, str) else names[0],
                                comparing=True, holdout_group=holdout_group,
                                fit_fraction=fit_fraction, seed=seed, **settings)
    if notes is not None:
        _told_dropped(dataset, notes)
    base = with_fraction(request)
    result = compare_laws(dataset, laws, lambda one: dataclasses.replace(base, law=one), run_fit)
    result.update({"x": dataset.spec.x, "y": dataset.spec.y, "group": dataset.spec.group,
                   "space": request.options.space, **_meta(seed)})
    return result


def transfer(records: Iterable[Mapping[str, Any]], benchmark: str, *, x: str = "C",
             y: str = "loss", group: str | None = "N", ci_level: float = 0.95,
             plot: str | None = None) -> list[dict[str, Any]]:
    """The transfer study (paper §4): per benchmark named by the field ``benchmark``, the slope
    of ``y`` against log10 ``x`` pooled over ``group`` sizes and per size, with its
    ``ci_level`` interval and a verdict (improves / flat / degrades / insufficient). One
    record per benchmark (``group: None``, all sizes) and per benchmark and size; ``plot``
    also writes one panel per benchmark to that path.

    >>> rows = transfer([{"bench": "a", "N": 1, "C": 10.0 ** k, "loss": 1 - 0.1 * k}
    ...                  for k in range(1, 5)], "bench")
    >>> rows[0]["verdict"], round(rows[0]["slope_per_decade"], 3)
    ('improves', -0.1)
    """
    from rlscale.core.laws.transfer import TransferError, collect, transfer_report

    _check_level(ci_level)
    data = collect(records, benchmark, x, y, group)
    label = group or "N"
    rows = transfer_report(data, ci_level, label)
    if plot and data:
        from rlscale.io.plot import plot_transfer

        try:
            plot_transfer(plot, data, rows, x_label=x, y_label=y, group=label)
        except (OSError, ValueError) as exc:
            raise TransferError(f"--plot {plot}: {exc}") from None
    return rows


__all__ = ["Fit", "NotDetermined", "check_options", "compare", "fit", "number", "transfer"]
