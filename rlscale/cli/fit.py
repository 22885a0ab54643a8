"""`rlscale fit`: fit, validate, save and use scaling laws of RL post-training."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from rlscale.cli._shared import (
    DebugOpt,
    InputFormatOpt,
    InputsArg,
    OutputOpt,
    QuietOpt,
    RejectsOpt,
    SeedOpt,
    SkipInvalidOpt,
    WideOpt,
    check_input_format,
    handle_errors,
    open_rejects,
    parse_csv_list,
    progress,
    report_skipped,
    run_meta,
    say,
    warn_if_waiting_on_tty,
)
from rlscale.core.errors import RlscaleError, UsageError

NAME = "fit"
HELP = (
    "Fit a scaling law to learning curves (one record per run and step: x such as C or D, "
    "loss, model size N), and validate, save, predict or plan with it. Laws: saturating "
    "(Tan et al. 2025: log L = -k(N) log X + E(N), k(N) = K_max/(1+N_0/N)), loglinear "
    "(per-group k), decomposition (their App. D), sigmoid (ScaleRL, on pass rate), reuse "
    "(per-tau fits vs step). Deterministic multi-start least squares; --bootstrap B adds "
    "percentile intervals. Reads JSONL, CSV/TSV or parquet (--wide for wandb exports); says "
    "when the data cannot identify the law (--strict: exit 1); --compare ranks laws by "
    "held-out error per curve; --plan finds the best value of a discrete setting per budget. "
    "Needs all input; writes one JSON object (the fit, or --format table|markdown for people), "
    "or with --predict/--budget one record per query."
)
EPILOG = (
    "Examples:\n\n"
    "  rlscale flops runs.jsonl | rlscale fit --x C --y loss --group N --bootstrap 200 "
    "--save fit.json\n\n"
    "  rlscale fit runs.jsonl --holdout-group 72e9 --plot fit.png\n\n"
    "  rlscale fit runs.jsonl --x D --fit-fraction 0.3 --where 'model=base'\n\n"
    "  rlscale fit --load fit.json --budget 1e21 --size-range 1e8:1e12\n\n"
    "  rlscale fit --example paper-base --space linear --holdout-group 72e9 --format table\n\n"
    "  rlscale fit runs.csv --compare\n\n"
    "  rlscale fit g_ablation.csv --plan --group G --bootstrap 200"
)

LAW_NAMES = ("saturating", "loglinear", "decomposition", "sigmoid", "reuse", "efficiency")


def _choice(value: str, option: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise UsageError(f"{option} {value!r}: expected one of {', '.join(allowed)}")
    return value


def _number(value: str, option: str) -> float:
    from rlscale.core.laws.data import parse_size

    parsed = parse_size(value)
    if parsed is None:
        raise UsageError(f"{option}: cannot read {value!r} as a number")
    return parsed


def command(
    inputs: InputsArg = None,
    example: Annotated[str | None, typer.Option("--example", help="Fit curves shipped with "
                                                "rlscale instead of input: paper-base or "
                                                "paper-instruct (Tan et al. 2025, y field L).")
                       ] = None,
    input_format: InputFormatOpt = None,
    wide: WideOpt = None,
    law: Annotated[str | None, typer.Option("--law", help="saturating (default) | loglinear "
                                            "(default with --plan) | decomposition | sigmoid | "
                                            "reuse | efficiency (k vs N), or module:function "
                                            "returning your own Law; a,b,c compares laws.",
                                            show_default=False)] = None,
    x: Annotated[str | None, typer.Option("--x", help="x field (default: C; D for "
                                          "decomposition, step for reuse).")] = None,
    y: Annotated[str | None, typer.Option("--y", help="y field (default: loss; pass@1 for "
                                          "sigmoid).")] = None,
    group: Annotated[str | None, typer.Option("--group", help="group field: model size "
                                              "(default: N; tau for reuse; '' for none).")
                     ] = None,
    run: Annotated[str, typer.Option("--run", help="run id field; runs of a group are "
                                     "averaged per step (ignored if absent).")] = "run_id",
    step: Annotated[str, typer.Option("--step-field", help="field runs are aligned on "
                                      "(falls back to x when absent).")] = "step",
    where: Annotated[list[str] | None, typer.Option("--where", help="Keep records with "
                                                    "FIELD=VALUE (also != < <= > >=); "
                                                    "repeatable.", metavar="EXPR")] = None,
    x_min: Annotated[str | None, typer.Option("--x-min", help="Drop points with x below.")] = None,
    x_max: Annotated[str | None, typer.Option("--x-max", help="Drop points with x above.")] = None,
    warmup_clip: Annotated[int, typer.Option("--warmup-clip", min=0, help="Drop the first K "
                                             "points of each curve.")] = 0,
    ending_clip: Annotated[int, typer.Option("--ending-clip", min=0, help="Drop the last K "
                                             "points of each curve.")] = 0,
    replicates: Annotated[str, typer.Option("--replicates", help="average: runs of a group "
                                            "averaged per step; keep: fit every run's "
                                            "points; mean: also average records repeated at "
                                            "one (run, step), which are an error otherwise.")
                          ] = "average",
    fix: Annotated[list[str] | None, typer.Option("--fix", help="Hold a global parameter at "
                                                  "a value, e.g. L_inf=0.3 (ties a direction "
                                                  "the data do not determine); repeatable.",
                                                  metavar="NAME=VALUE")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 instead of warning when "
                                         "the data cannot determine the law (too few points "
                                         "or groups, a flat direction, a parameter on a "
                                         "bound).")] = False,
    intercept: Annotated[str, typer.Option("--intercept", help="saturating only: E(N) "
                                           "per-group | loglinear-in-N | saturating.")
                         ] = "per-group",
    log_base: Annotated[str, typer.Option("--log-base", help="Base of intercepts and log "
                                          "metrics: 10 (the paper) or e.")] = "10",
    space: Annotated[str | None, typer.Option("--space", help="Objective in log or linear "
                                              "space (linear + group-equal = the paper's).")
                     ] = None,
    huber: Annotated[float | None, typer.Option("--huber", help="Huber loss with this delta "
                                                "(residual units of --space).",
                                                metavar="DELTA")] = None,
    weights: Annotated[str, typer.Option("--weights", help="group-equal (each group the same "
                                         "total weight, the paper) or point.")] = "group-equal",
    x_weight_power: Annotated[float, typer.Option("--x-weight-power", help="Down-weight "
                                                  "large x within a group by (x/x_min)^-P.")
                              ] = 0.0,
    starts: Annotated[int, typer.Option("--starts", min=0, help="Random starts added to the "
                                        "grid.")] = 8,
    refine: Annotated[int, typer.Option("--refine", min=1, help="Best starts refined by "
                                        "least squares.")] = 4,
    n_bootstrap: Annotated[int, typer.Option("--bootstrap", min=0, help="Bootstrap "
                                             "replicates for intervals (0: none).",
                                             metavar="B")] = 0,
    bootstrap_by: Annotated[str, typer.Option("--bootstrap-by", help="auto | runs | points "
                                              "(auto: runs when every group has 2+).")
                            ] = "auto",
    level: Annotated[float, typer.Option("--ci-level", help="Interval level.")] = 0.95,
    holdout: Annotated[list[str] | None, typer.Option("--holdout-group", help="Fit without "
                                                      "this group and predict it (pure and "
                                                      "calibrated); repeatable.",
                                                      metavar="VALUE")] = None,
    fit_fraction: Annotated[float | None, typer.Option("--fit-fraction", help="Fit the first "
                                                       "fraction of each curve, score the "
                                                       "rest.")] = None,
    reference: Annotated[str | None, typer.Option("--reference", help="reuse: group compared "
                                                  "against (default tau = 1).")] = None,
    predict: Annotated[str | None, typer.Option("--predict", help="Emit these records (FILE "
                                                "or -) with <y>_pred (and an interval).",
                                                metavar="FILE")] = None,
    load: Annotated[str | None, typer.Option("--load", help="Use a saved fit instead of "
                                             "fitting.", metavar="FIT.json")] = None,
    save: Annotated[str | None, typer.Option("--save", help="Also write the fit object to "
                                             "FILE.", metavar="FILE")] = None,
    budget: Annotated[str | None, typer.Option("--budget", help="Compute-optimal size for "
                                               "budgets (x units), comma-separated.")] = None,
    sizes: Annotated[str | None, typer.Option("--sizes", help="--budget: candidate sizes "
                                              "(default: fitted groups).")] = None,
    size_range: Annotated[str | None, typer.Option("--size-range", help="--budget: search "
                                                   "sizes in LO:HI.")] = None,
    plot: Annotated[str | None, typer.Option("--plot", help="Write a figure (png/pdf/svg).",
                                             metavar="FILE")] = None,
    plan: Annotated[bool, typer.Option("--plan", help="The groups are values of a discrete "
                                       "setting (rollout group size G, tau, model size): "
                                       "report the best value per --budget and the crossover "
                                       "budgets over --budget-range (default: the fitted x "
                                       "range), with intervals after --bootstrap.")] = False,
    budget_range: Annotated[str | None, typer.Option("--budget-range", help="--plan: search "
                                                     "crossovers in LO:HI (x units).")] = None,
    compare: Annotated[bool, typer.Option("--compare", help="Fit several laws (--law a,b,c; "
                                          "default saturating,loglinear,decomposition,sigmoid) "
                                          "on the same points and protocol (default "
                                          "--fit-fraction 0.3) and rank them by held-out "
                                          "error per curve.")] = False,
    transfer: Annotated[str | None, typer.Option("--transfer", help="Transfer study (paper "
                                               "§4): per benchmark named by this field (e.g. "
                                               "data_source), the slope of --y against log10 "
                                               "--x pooled over --group sizes and per size, "
                                               "with its --ci-level interval and a verdict "
                                               "(improves / flat / degrades / insufficient); "
                                               "one record per benchmark and size; --plot "
                                               "draws one panel per benchmark.",
                                               metavar="FIELD")] = None,
    out_format: Annotated[str, typer.Option("--format", help="json (one object, the default) "
                                            "| table | markdown: a readable fit or ranking "
                                            "on stdout.")] = "json",
    output: OutputOpt = None,
    seed: SeedOpt = 0,
    skip_invalid: SkipInvalidOpt = False,
    rejects: RejectsOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    def body() -> None:
        import orjson

        from rlscale.io.jsonl import RecordReader, RecordWriter, atomic_write_bytes
        from rlscale.core.laws.data import DataSpec, EmptyInput, build_dataset, parse_where
        from rlscale.core.laws.fit import FitOptions
        from rlscale.core.laws.forms import get_law
        from rlscale.core.laws.model import from_fit_json
        from rlscale.core.laws.pipeline import FitRequest, run_fit
        from rlscale.core.laws.render import render_fit

        # ---- validate options before reading anything
        nonlocal inputs, where, y, law
        from rlscale.io.jsonl import refuse_overlap

        refuse_overlap({"-o": output, "--save": save, "--plot": plot, "--rejects": rejects},
                       inputs)
        law_given = law is not None
        law = law or ("loglinear" if plan else "saturating")
        if plan and (sizes or size_range):
            raise UsageError("--sizes and --size-range plan model sizes; --plan chooses among "
                             "the fitted groups")
        if budget_range and not plan:
            raise UsageError("--budget-range goes with --plan")
        check_input_format(input_format)
        if example is not None:
            from rlscale.core.laws.paper import EXAMPLES, curves_path, example_where

            _choice(example, "--example", tuple(EXAMPLES))
            if inputs or load is not None:
                raise UsageError("--example fits the shipped curves; give no input files "
                                 "or --load")
            inputs, where = [curves_path()], [example_where(example), *(where or [])]
            y = y or "L"
        _choice(log_base, "--log-base", ("10", "e"))
        _choice(weights, "--weights", ("group-equal", "point"))
        _choice(bootstrap_by, "--bootstrap-by", ("auto", "runs", "points"))
        _choice(replicates, "--replicates", ("average", "keep", "mean"))
        for option, path in (("--save", save), ("--plot", plot), ("--output", output)):
            _check_parent(option, path)
        if transfer is not None:  # a separate analysis: its own reader and records
            from rlscale.core.laws.transfer import TransferError, run_transfer, verdict_line

            if load or predict or budget or save or plan or compare or example:
                raise UsageError("--transfer does not go with --load, --predict, --budget, "
                                 "--save, --plan, --compare or --example")
            if not 0.0 < level < 1.0:
                raise UsageError(f"--ci-level must be between 0 and 1, got {level:g}")
            with open_rejects(rejects, skip_invalid) as rejects_file:
                reader = RecordReader(inputs, skip_invalid=skip_invalid, rejects=rejects_file,
                                      input_format=input_format, wide=wide)
                try:
                    rows = run_transfer((record for record, _ in reader), transfer,
                                        x=x or "C", y=y or "loss",
                                        group="N" if group is None else group or None,
                                        level=level, plot=plot)
                except TransferError as exc:
                    raise RlscaleError(str(exc)) from None
            with RecordWriter(output, tool=NAME, source=reader) as writer:
                for row in rows:
                    writer.write(row)
            for row in rows:
                if row[group or "N"] is None:
                    say(f"rlscale fit: {verdict_line(row)}", quiet)
            return
        if space is not None:
            _choice(space, "--space", ("log", "linear"))
        if huber is not None and not huber > 0:
            raise UsageError(f"--huber must be > 0, got {huber:g}")
        if not 0.0 < level < 1.0:
            raise UsageError(f"--ci-level must be between 0 and 1, got {level:g}")
        if predict is not None and budget is not None:
            raise UsageError("use either --predict or --budget, not both")
        if load is not None and inputs:
            raise UsageError("--load uses a saved fit; give records to predict with --predict")
        if load is not None and (holdout or fit_fraction is not None or n_bootstrap):
            raise UsageError("--holdout-group, --fit-fraction and --bootstrap need a fit, "
                             "not --load")
        if predict == "-" and load is None and not inputs:
            raise UsageError("--predict - reads stdin, so give the runs to fit as files "
                             "(or use --load)")
        if (sizes or size_range) and budget is None:
            raise UsageError("--sizes and --size-range go with --budget")
        if sizes and size_range:
            raise UsageError("use either --sizes or --size-range, not both")
        budgets = [_number(b, "--budget") for b in parse_csv_list(budget, "--budget")]
        candidate_sizes = ([_number(s, "--sizes") for s in parse_csv_list(sizes, "--sizes")]
                           or None)
        search_range = None
        if size_range:
            parts = size_range.split(":")
            if len(parts) != 2:
                raise UsageError(f"--size-range {size_range!r}: expected LO:HI, e.g. 1e8:1e12")
            search_range = (_number(parts[0], "--size-range"), _number(parts[1], "--size-range"))
        from rlscale.core.laws.compare import DEFAULT_COMPARE
        from rlscale.core.laws.render import FORMATS

        _choice(out_format, "--format", FORMATS)
        names = parse_csv_list(law, "--law") or ["saturating"]
        if compare and not law_given:
            names = list(DEFAULT_COMPARE)
        comparing = compare or len(names) > 1
        if comparing and (load or predict or budget or save or plot or plan):
            raise UsageError("--compare (or several --law) ranks laws; it does not go with "
                             "--load, --predict, --budget, --save or --plot")
        if out_format != "json" and (predict is not None or budgets or plan):
            raise UsageError("--format table|markdown renders a fit; --predict and --budget "
                             "write records")
        for name in names:
            if ":" not in name:  # module:function names a user's own law
                _choice(name, "--law", LAW_NAMES)
        try:
            laws = [get_law(n, intercept=intercept if n == "saturating" or ":" in n
                            else "per-group") for n in names]
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        the_law = laws[0]
        if comparing and len(laws) < 2:
            raise UsageError("--compare needs at least two laws (--law a,b)")
        if not comparing and ":" not in law and intercept != "per-group" and law != "saturating":
            raise UsageError(f"--intercept applies only to --law saturating, not {law}")
        default_space = "log" if comparing else the_law.default_space  # one space: AIC comparable
        options = FitOptions(space=space or default_space, log_base=log_base,
                             huber=huber, weights=weights, x_weight_power=x_weight_power,
                             random_starts=starts, refine=refine, seed=seed)
        filters = tuple(parse_where(w) for w in (where or []))

        report: dict[str, Any]
        outcome = None
        if load is not None:
            try:
                with open(load, "rb") as handle:
                    saved = orjson.loads(handle.read())
                fitted, saved_base = from_fit_json(saved)
            except FileNotFoundError:
                raise RlscaleError(f"{load}: no such file") from None
            except (orjson.JSONDecodeError, ValueError, TypeError, KeyError) as exc:
                raise RlscaleError(f"{load}: not a saved rlscale fit ({exc})") from None
            report = dict(saved)
            if saved_base != log_base:  # re-express intercepts in the requested base
                report["params"] = fitted.params_json(fitted.values, log_base)
                report["log_base"] = log_base
            x_field = x or saved.get("x", the_law.default_x)
            y_field = y or saved.get("y", the_law.default_y)
            group_field = group or saved.get("group", the_law.default_group)
        else:
            x_field = x or the_law.default_x
            y_field = y or the_law.default_y
            group_field = the_law.default_group if group is None else group
            if the_law.numeric_groups and not group_field:
                raise UsageError(f"--law {law} needs a --group field (the model size)")
            lo = _number(x_min, "--x-min") if x_min is not None else None
            hi = _number(x_max, "--x-max") if x_max is not None else None
            if the_law.name == "reuse" and x_field == "step" and lo is None and hi is None:
                lo, hi = 10.0, 100.0  # the paper's reuse window (T25 §4.4): steps 10-100
                say("rlscale fit: reuse: fitting steps 10-100 like the paper (change with "
                    "--x-min/--x-max)", quiet)
            spec = DataSpec(
                x=x_field, y=y_field, group=group_field, run=run or None, step=step or None,
                where=filters,
                x_min=lo, x_max=hi,
                warmup_clip=warmup_clip, ending_clip=ending_clip,
                numeric_groups=any(one.numeric_groups for one in laws),
                positive_y=options.space == "log" or the_law.name != "sigmoid",
                average=replicates != "keep",
                duplicates="mean" if replicates == "mean" else "error")
            warn_if_waiting_on_tty(inputs, quiet)
            with open_rejects(rejects, skip_invalid) as rejects_file:
                reader = RecordReader(inputs, skip_invalid=skip_invalid, rejects=rejects_file,
                                      input_format=input_format, wide=wide)
                try:
                    dataset = build_dataset(reader, spec, reader.invalid)
                except EmptyInput as exc:  # empty input is valid: no fit, no output
                    report_skipped(NAME, reader.n_skipped, rejects, quiet)
                    say(f"rlscale fit: {exc}", quiet)
                    return
            report_skipped(NAME, reader.n_skipped, rejects, quiet)
            if dataset.counts.get("step0_dropped"):
                say(f"rlscale fit: dropped {dataset.counts['step0_dropped']} record(s) at step 0 "
                    f"with {x_field} = 0 (log 0 is undefined)", quiet)
            request = FitRequest(the_law, options, n_bootstrap=n_bootstrap,
                                 bootstrap_by=bootstrap_by, level=level, holdout=holdout or [],
                                 fit_fraction=fit_fraction, reference=reference,
                                 fixed=_fixed(fix))
            if comparing:
                _compare(dataset, laws, request, out_format, output, seed, quiet)
                return
            outcome = run_fit(dataset, request,
                              progress=lambda it: progress(it, description="bootstrap",
                                                           total=n_bootstrap, quiet=quiet))
            fitted = outcome.fitted
            report = {**outcome.report, **run_meta(seed)}
            if ":" in law:  # how --load finds a user's law again
                report["law_factory"] = law
            if strict:
                from rlscale.core.laws.fit import STRICT_CODES

                refused = [w for w in report["warnings"] if w["code"] in STRICT_CODES]
                if refused:
                    raise RlscaleError(f"--strict: {refused[0]['message']}"
                                       + (f" (and {len(refused) - 1} more)" if len(refused) > 1
                                          else ""))
            for warning in report["warnings"]:
                if warning["severity"] == "warning":
                    say(f"rlscale fit: warning: {warning['message']}", quiet)
            boot = report.get("bootstrap") or {}
            if boot.get("failed"):
                say(f"rlscale fit: warning: {boot['failed']} of {n_bootstrap} bootstrap refits "
                    f"failed and were left out", quiet)
            say(_summary(report), quiet)
            from rlscale.core.laws.validate import validation_summary

            held = validation_summary(report.get("validation") or {})
            if held:
                say(f"rlscale fit: {held}", quiet)

        if save is not None:
            atomic_write_bytes(save, orjson.dumps(report, option=orjson.OPT_SERIALIZE_NUMPY
                                                  | orjson.OPT_INDENT_2) + b"\n")
        if plot is not None:
            _plot(plot, fitted, outcome, report, x_field, y_field, group_field, options)
        if out_format != "json":  # text for people; --predict/--budget/--plan were refused
            _write_text(output, render_fit(report, out_format))
            return
        with RecordWriter(output) as writer:
            if predict is not None:
                _predict(predict, fitted, writer, x_field, y_field, group_field, skip_invalid,
                         quiet)
            elif plan:
                writer.write(_plan(fitted, report, budgets, budget_range, x_field, group_field,
                                   quiet))
            elif budgets:
                from rlscale.core.laws.planner import plan_budget

                for b in budgets:
                    try:
                        writer.write({**plan_budget(fitted, b, sizes=candidate_sizes,
                                                    size_range=search_range),
                                      "x": x_field, "law": fitted.law.name})
                    except ValueError as exc:
                        raise RlscaleError(f"--budget: {exc}") from None
            else:
                writer.write(report)

    handle_errors(NAME, debug, body)


def _write_text(output: str | None, text: str) -> None:
    import sys

    from rlscale.io.jsonl import atomic_write_bytes

    if output in (None, "-"):
        sys.stdout.buffer.write(text.encode())
        sys.stdout.buffer.flush()
    else:
        atomic_write_bytes(output, text.encode())


def _compare(dataset, laws, request, out_format, output, seed, quiet) -> None:
    import dataclasses

    from rlscale.io.jsonl import RecordWriter
    from rlscale.core.laws.compare import compare_laws, with_fraction
    from rlscale.core.laws.pipeline import run_fit
    from rlscale.core.laws.render import render_compare

    base = with_fraction(request)
    if base is not request:
        say(f"rlscale fit: --compare: holding out the tail of every curve (--fit-fraction "
            f"{base.fit_fraction:g}); choose with --fit-fraction or --holdout-group", quiet)
    result = compare_laws(dataset, laws, lambda law: dataclasses.replace(base, law=law), run_fit)
    result.update({"x": dataset.spec.x, "y": dataset.spec.y, "group": dataset.spec.group,
                   "space": request.options.space, **run_meta(seed)})
    for row in result["compare"]:
        if "error" in row:
            say(f"rlscale fit: warning: --law {row['law']} cannot be fitted: {row['error']}",
                quiet)
    best = next((r for r in result["compare"] if r.get("rank") == 1), None)
    if best is not None:
        say(f"rlscale fit: --compare: {best['law']} predicts the held-out points best (mean "
            f"RMSE per curve {best['heldout_rmse_mean']:.4g})", quiet)
    if out_format == "json":
        with RecordWriter(output) as writer:
            writer.write(result)
    else:
        _write_text(output, render_compare(result, out_format))


def _plan(fitted, report, budgets, budget_range, x_field, group_field, quiet) -> dict[str, Any]:
    from rlscale.core.laws.planner import plan_discrete, shared_x_range

    if budget_range:
        parts = budget_range.split(":")
        if len(parts) != 2:
            raise UsageError(f"--budget-range {budget_range!r}: expected LO:HI, e.g. 1e18:1e22")
        search = (_number(parts[0], "--budget-range"), _number(parts[1], "--budget-range"))
    else:
        try:
            search = shared_x_range((report.get("data") or {}).get("x_range") or {})
        except ValueError as exc:
            raise UsageError(f"--plan: {exc}") from None
    try:
        out = plan_discrete(fitted, budgets=budgets, budget_range=search)
    except ValueError as exc:
        raise RlscaleError(f"--plan: {exc}") from None
    for c in out["crossovers"]:
        ci = c.get("budget_ci")
        shown = f" (95% interval {ci[0]:.3g}-{ci[1]:.3g})" if ci else ""
        say(f"rlscale fit: --plan: {group_field}={c['to']} overtakes {group_field}={c['from']} "
            f"at {x_field} = {c['budget']:.4g}{shown}", quiet)
    if not out["crossovers"]:
        say(f"rlscale fit: --plan: {group_field}={out['best_at_range_start']} is best over the "
            f"whole range {search[0]:.3g}-{search[1]:.3g}", quiet)
    return {**out, "setting": group_field, "x": x_field, "law": fitted.law.name}


def _fixed(items: list[str] | None) -> dict[str, float]:
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--fix {item!r}: expected NAME=VALUE, e.g. L_inf=0.3")
        out[name.strip()] = _number(value, f"--fix {name.strip()}")
    return out


def _check_parent(option: str, path: str | None) -> None:
    """An output whose folder is missing fails now, in one line, not after the fit."""
    import os

    if path in (None, "-"):
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise RlscaleError(f"{option} {path}: directory {folder} does not exist")


def _summary(report: dict[str, Any]) -> str:
    metrics = report["metrics"]
    params = report["params"]
    shown = []
    for name, value in params.items():
        if isinstance(value, (int, float)):
            shown.append(f"{name}={value:.4g}")
    r2 = metrics.get("r2")
    return (f"rlscale fit: {report['law']} on {metrics['n_points']} points, "
            f"{metrics['n_groups']} group(s): {' '.join(shown) or 'per-group parameters'}"
            + (f", R2={r2:.4f}" if r2 is not None else ""))


def _plot(path, fitted, outcome, report, x_field, y_field, group_field, options) -> None:
    from rlscale.core.laws.pipeline import independent_slopes, points_by_group
    from rlscale.io.plot import plot_fit

    slopes = None
    points = held = None
    if outcome is not None:
        points = points_by_group(outcome.fit_data)
        held = points_by_group(outcome.held_out)
        if fitted.law.name == "saturating":
            slopes = independent_slopes(outcome.fit_data, options)
            if outcome.held_out is not None and outcome.report.get("validation", {}).get(
                    "protocol") == "holdout-group":
                slopes.update(independent_slopes(outcome.held_out, options))
    try:
        plot_fit(path, fitted, x_label=x_field, y_label=y_field, points=points,
                 x_range=(report.get("data") or {}).get("x_range"), held_out=held,
                 group_slopes=slopes, group_label=group_field,
                 calibrated=outcome.calibrated if outcome is not None else None)
    except (OSError, ValueError) as exc:
        raise RlscaleError(f"--plot {path}: {exc}") from None


def _predict(source, fitted, writer, x_field, y_field, group_field, skip_invalid, quiet) -> None:
    import numpy as np

    from rlscale.io.jsonl import RecordReader
    from rlscale.core.laws.data import group_key

    reader = RecordReader([source], required={x_field: "number"}, skip_invalid=skip_invalid)
    rows, xs, groups = [], [], []
    warned = set()
    for record, where in reader:
        value = record.get(group_field) if group_field else "all"  # no grouping: one curve
        if value is None or isinstance(value, (dict, list, bool)):
            reader.invalid(where, f"missing required field '{group_field}' (the group field)")
            continue
        if record[x_field] <= 0:
            reader.invalid(where, f"field '{x_field}' must be > 0, got {record[x_field]:g}")
            continue
        try:
            fitted.group_values_for(fitted.values, value)
        except ValueError as exc:
            reader.invalid(where, str(exc))
            continue
        key = group_key(value)
        if fitted.is_extrapolated(value) and key not in warned:
            warned.add(key)
            say(f"rlscale fit: {group_field}={key} is not a fitted group; its "
                f"{', '.join(p.name for p in fitted.law.group_params)} is interpolated in "
                f"log {group_field}", quiet)
        rows.append(record)
        xs.append(float(record[x_field]))
        groups.append(value)
    if not rows:
        return
    x = np.array(xs)
    pred = fitted.predict(x, groups)
    interval = fitted.predict_interval(x, groups)
    for i, record in enumerate(rows):
        out = {**record, f"{y_field}_pred": float(pred[i])}
        if interval is not None:
            out[f"{y_field}_pred_lo"] = float(interval[0][i])
            out[f"{y_field}_pred_hi"] = float(interval[1][i])
        writer.write(out)
