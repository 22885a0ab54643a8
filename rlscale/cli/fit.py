"""`rlscale fit`: fit, validate, save and use scaling laws of RL post-training (the work is
:func:`rlscale.fit` and :class:`rlscale.Fit`, in rlscale/api/fit.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from rlscale.cli._command import Context, tool
from rlscale.cli._shared import SeedOpt, parse_csv_list, progress, report_skipped
from rlscale.core.errors import OptionError, RlscaleError, UsageError

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


def _law_help() -> str:
    from rlscale.core.laws.registry import help_text  # names only: no numpy at --help time

    return f"{help_text()}, or module:function returning your own Law; a,b,c compares laws."


def _opt(flag: str, text: str, **options):
    """``typer.Option(flag, help=text, ...)``, short enough for 40 declarations."""
    return typer.Option(flag, help=text, **options)


Texts = list[str] | None


@tool(NAME)
def command(
    ctx: Context,
    example: Annotated[str | None, _opt("--example", "Fit curves shipped with rlscale instead of "
                                                     "input: paper-base or paper-instruct (Tan et "
                                                     "al. 2025, y field L).")] = None,
    law: Annotated[str | None, _opt("--law", _law_help(), show_default=False)] = None,
    x: Annotated[str | None, _opt("--x", "x field (default: C; D for decomposition, step for "
                                         "reuse).")] = None,
    y: Annotated[str | None, _opt("--y", "y field (default: loss; pass@1 for sigmoid).")] = None,
    group: Annotated[str | None, _opt("--group", "group field: model size (default: N; tau for "
                                                 "reuse; '' for none).")] = None,
    run: Annotated[str, _opt("--run", "run id field; runs of a group are averaged per step "
                                      "(ignored if absent).")] = "run_id",
    step_field: Annotated[str, _opt("--step-field", "field runs are aligned on (falls back to x "
                                                    "when absent).")] = "step",
    where: Annotated[Texts, _opt("--where", "Keep records with FIELD=VALUE (also != < <= > >=); "
                                            "repeatable.", metavar="EXPR")] = None,
    x_min: Annotated[str | None, _opt("--x-min", "Drop points with x below.")] = None,
    x_max: Annotated[str | None, _opt("--x-max", "Drop points with x above.")] = None,
    warmup_clip: Annotated[int, _opt("--warmup-clip", "Drop the first K points of each curve.",
                                     min=0)] = 0,
    ending_clip: Annotated[int, _opt("--ending-clip", "Drop the last K points of each curve.",
                                     min=0)] = 0,
    replicates: Annotated[str, _opt("--replicates", "average: runs of a group averaged per step; "
                                                    "keep: fit every run's points; mean: also "
                                                    "average records repeated at one (run, step), "
                                                    "which are an error otherwise.")] = "average",
    fix: Annotated[Texts, _opt("--fix", "Hold a global parameter at a value, e.g. L_inf=0.3 (ties "
                                        "a direction the data do not determine); repeatable.",
                                       metavar="NAME=VALUE")] = None,
    strict: Annotated[bool, _opt("--strict", "Exit 1 instead of warning when the data cannot "
                                             "determine the law (too few points or groups, a flat "
                                             "direction, a parameter on a bound).")] = False,
    intercept: Annotated[str, _opt("--intercept", "saturating only: E(N) per-group | "
                                                  "loglinear-in-N | saturating.")] = "per-group",
    log_base: Annotated[str, _opt("--log-base", "Base of intercepts and log metrics: 10 (the "
                                                "paper) or e.")] = "10",
    space: Annotated[str | None, _opt("--space", "Objective in log or linear space (linear + "
                                                 "group-equal = the paper's).")] = None,
    huber: Annotated[float | None, _opt("--huber", "Huber loss with this delta (residual units of "
                                                   "--space).", metavar="DELTA")] = None,
    weights: Annotated[str, _opt("--weights", "group-equal (each group the same total weight, the "
                                              "paper) or point.")] = "group-equal",
    x_weight_power: Annotated[float, _opt("--x-weight-power", "Down-weight large x within a group "
                                                              "by (x/x_min)^-P.")] = 0.0,
    starts: Annotated[int, _opt("--starts", "Random starts added to the grid.", min=0)] = 8,
    refine: Annotated[int, _opt("--refine", "Best starts refined by least squares.", min=1)] = 4,
    bootstrap: Annotated[int, _opt("--bootstrap", "Bootstrap replicates for intervals (0: none).",
                                                 min=0, metavar="B")] = 0,
    bootstrap_by: Annotated[str, _opt("--bootstrap-by", "auto | runs | points (auto: runs when "
                                                        "every group has 2+).")] = "auto",
    ci_level: Annotated[float, _opt("--ci-level", "Interval level.")] = 0.95,
    holdout_group: Annotated[Texts, _opt("--holdout-group", "Fit without this group and predict it "
                                                            "(pure and calibrated); repeatable.",
                                                           metavar="VALUE")] = None,
    fit_fraction: Annotated[float | None, _opt("--fit-fraction", "Fit the first fraction of each "
                                                                 "curve, score the rest.")] = None,
    reference: Annotated[str | None, _opt("--reference", "reuse: group compared against (default "
                                                         "tau = 1).")] = None,
    predict: Annotated[str | None, _opt("--predict", "Emit these records (FILE or -) with <y>_pred "
                                                     "(and an interval).", metavar="FILE")] = None,
    load: Annotated[str | None, _opt("--load", "Use a saved fit instead of fitting.",
                                              metavar="FIT.json")] = None,
    save: Annotated[str | None, _opt("--save", "Also write the fit object to FILE.",
                                              metavar="FILE")] = None,
    budget: Annotated[str | None, _opt("--budget", "Compute-optimal size for budgets (x units), "
                                                   "comma-separated.")] = None,
    sizes: Annotated[str | None, _opt("--sizes", "--budget: candidate sizes (default: fitted "
                                                 "groups).")] = None,
    size_range: Annotated[str | None, _opt("--size-range",
                                           "--budget: search sizes in LO:HI.")] = None,
    plot: Annotated[str | None, _opt("--plot", "Write a figure (png/pdf/svg).",
                                              metavar="FILE")] = None,
    plan: Annotated[bool, _opt("--plan", "The groups are values of a discrete setting (rollout "
                                         "group size G, tau, model size): report the best value "
                                         "per --budget and the crossover budgets over "
                                         "--budget-range (default: the fitted x range), with "
                                         "intervals after --bootstrap.")] = False,
    budget_range: Annotated[str | None, _opt("--budget-range", "--plan: search crossovers in LO:HI "
                                                               "(x units).")] = None,
    compare: Annotated[bool, _opt("--compare", "Fit several laws (--law a,b,c; default "
                                               "saturating,loglinear,decomposition,sigmoid) on the "
                                               "same points and protocol (default --fit-fraction "
                                               "0.3) and rank them by held-out error per curve."
                                              )] = False,
    transfer: Annotated[str | None, _opt("--transfer", "Transfer study (paper §4): per benchmark "
                                                       "named by this field (e.g. data_source), "
                                                       "the slope of --y against log10 --x pooled "
                                                       "over --group sizes and per size, with its "
                                                       "--ci-level interval and a verdict "
                                                       "(improves / flat / degrades / "
                                                       "insufficient); one record per benchmark "
                                                       "and size; --plot draws one panel per "
                                                       "benchmark.", metavar="FIELD")] = None,
    out_format: Annotated[str, _opt("--format", "json (one object, the default) | table | "
                                                "markdown: a readable fit or ranking on stdout."
                                               )] = "json",
    seed: SeedOpt = 0,
) -> None:
    from rlscale.api import fit as api
    from rlscale.io.jsonl import RecordReader, RecordWriter, refuse_overlap

    inputs, output, say = ctx.inputs, ctx.output, lambda m: ctx.say(f"rlscale fit: {m}")
    refuse_overlap({"-o": output, "--save": save, "--plot": plot, "--rejects": ctx.rejects},
                   inputs)
    law_given, law = law is not None, law or ("loglinear" if plan else "saturating")
    if plan and (sizes or size_range):
        raise UsageError("--sizes and --size-range plan model sizes; --plan chooses among the "
                         "fitted groups")
    if budget_range and not plan:
        raise UsageError("--budget-range goes with --plan")
    if example is not None:
        from rlscale.core.laws.paper import example as find_example
        from rlscale.core.laws.paper import example_where
        from rlscale.io.curves import curves_path

        find_example(example)
        if inputs or load is not None:
            raise UsageError("--example fits the shipped curves; give no input files or --load")
        inputs, where, y = [curves_path()], [example_where(example), *(where or [])], y or "L"
    api.check_options(log_base=log_base, weights=weights, bootstrap_by=bootstrap_by,
                      replicates=replicates)
    for option, path in (("--save", save), ("--plot", plot), ("--output", output)):
        _check_parent(option, path)
    reader_for = lambda: RecordReader(inputs, skip_invalid=ctx.skip_invalid,  # noqa: E731
                                      rejects=ctx.rejects_file, input_format=ctx.input_format,
                                      wide=ctx.wide)
    if transfer is not None:  # a separate analysis: its own records
        from rlscale.core.laws.transfer import TransferError, verdict_line

        if load or predict or budget or save or plan or compare or example:
            raise UsageError("--transfer does not go with --load, --predict, --budget, --save, "
                             "--plan, --compare or --example")
        reader = reader_for()
        try:
            rows = api.transfer((record for record, _ in reader), transfer, x=x or "C",
                                y=y or "loss", group="N" if group is None else group or None,
                                ci_level=ci_level, plot=plot)
        except TransferError as exc:
            raise RlscaleError(str(exc)) from None
        with ctx.writer(source=reader) as writer:
            for row in rows:
                writer.write(row)
        for row in (row for row in rows if row[group or "N"] is None):
            say(verdict_line(row))
        return
    api.check_options(space=space, huber=huber, ci_level=ci_level)
    if predict is not None and budget is not None:
        raise UsageError("use either --predict or --budget, not both")
    if load is not None and inputs:
        raise UsageError("--load uses a saved fit; give records to predict with --predict")
    if load is not None and (holdout_group or fit_fraction is not None or bootstrap):
        raise UsageError("--holdout-group, --fit-fraction and --bootstrap need a fit, not --load")
    if predict == "-" and load is None and not inputs:
        raise UsageError("--predict - reads stdin, so give the runs to fit as files (or use "
                         "--load)")
    if (sizes or size_range) and budget is None:
        raise UsageError("--sizes and --size-range go with --budget")
    if sizes and size_range:
        raise UsageError("use either --sizes or --size-range, not both")
    budgets = [api.number("budget", b) for b in parse_csv_list(budget, "--budget")]
    candidates = [api.number("sizes", s) for s in parse_csv_list(sizes, "--sizes")] or None
    search_range = _range("size_range", size_range, "1e8:1e12")
    from rlscale.core.laws.compare import DEFAULT_COMPARE, DEFAULT_FRACTION
    from rlscale.core.laws.render import FORMATS

    if out_format not in FORMATS:
        raise OptionError("format", f"{out_format!r}: expected one of {', '.join(FORMATS)}")
    names = parse_csv_list(law, "--law") or ["saturating"]
    names = list(DEFAULT_COMPARE) if compare and not law_given else names
    comparing = compare or len(names) > 1
    if comparing and (load or predict or budget or save or plot or plan):
        raise UsageError("--compare (or several --law) ranks laws; it does not go with --load, "
                         "--predict, --budget, --save or --plot")
    if out_format != "json" and (predict is not None or budgets or plan):
        raise UsageError("--format table|markdown renders a fit; --predict and --budget write "
                         "records")
    api.check_options(law=names)
    if comparing and len(names) < 2:
        raise UsageError("--compare needs at least two laws (--law a,b)")
    if not comparing and ":" not in law and intercept != "per-group" and law != "saturating":
        # rlscale.fit refuses it too, but --load fits nothing and the command refuses it there
        raise UsageError(f"--intercept applies only to --law saturating, not {law}")
    if load is not None:
        result = api.Fit.load(load, log_base=log_base, x=x, y=y, group=group)
    else:
        if names[0] == "reuse" and (x or "step") == "step" and x_min is None and x_max is None:
            say("reuse: fitting steps 10-100 like the paper (change with --x-min/--x-max)")
        from rlscale.cli._shared import warn_if_waiting_on_tty
        from rlscale.core.laws.data import EmptyInput

        warn_if_waiting_on_tty(inputs, ctx.quiet)
        reader = reader_for()

        def on_data(dataset) -> None:  # skipped lines are reported once the input is read
            report_skipped(NAME, reader.n_skipped, ctx.rejects, ctx.quiet)

        options = dict(x=x, y=y, group=group, run=run, step_field=step_field, where=where,
                       x_min=x_min, x_max=x_max, warmup_clip=warmup_clip, ending_clip=ending_clip,
                       replicates=replicates, fix=fix, intercept=intercept, log_base=log_base,
                       space=space, huber=huber, weights=weights, x_weight_power=x_weight_power,
                       starts=starts, refine=refine, bootstrap=bootstrap,
                       bootstrap_by=bootstrap_by, ci_level=ci_level, holdout_group=holdout_group,
                       fit_fraction=fit_fraction, reference=reference, seed=seed,
                       on_data=on_data)
        try:
            if comparing:
                ranking = api.compare(reader, law=law if law_given else names, notes=say,
                                      **options)
            else:
                result = api.fit(reader, law=law, strict=strict, **options, notes=say,
                                 progress=lambda it: progress(it, description="bootstrap",
                                                              total=bootstrap, quiet=ctx.quiet))
        except EmptyInput as exc:  # empty input is valid: no fit, no output
            report_skipped(NAME, reader.n_skipped, ctx.rejects, ctx.quiet)
            say(str(exc))
            return
        except api.NotDetermined as exc:
            raise RlscaleError(f"--strict: {exc.detail}") from None
        if comparing:
            if holdout_group is None and fit_fraction is None:
                say(f"--compare: holding out the tail of every curve (--fit-fraction "
                    f"{DEFAULT_FRACTION:g}); choose with --fit-fraction or --holdout-group")
            _compare(ranking, out_format, output, say)
            return
    if save is not None:
        result.save(save)
    if plot is not None:
        try:
            result.plot(plot)
        except (OSError, ValueError) as exc:
            raise RlscaleError(f"--plot {plot}: {exc}") from None
    if out_format != "json":  # text for people; --predict/--budget/--plan were refused
        _write_text(output, result.to_text(out_format))
        return
    with RecordWriter(output) as writer:
        if predict is not None:
            queries = RecordReader([predict], skip_invalid=ctx.skip_invalid)
            for row in result.predict_records(queries, notes=say):
                writer.write(row)
        elif plan:
            writer.write(_plan(result, budgets, budget_range, say))
        elif budgets:
            for b in budgets:
                try:
                    writer.write(result.optimal_size(b, sizes=candidates, size_range=search_range))
                except ValueError as exc:
                    raise RlscaleError(f"--budget: {exc}") from None
        else:
            writer.write(result.to_dict())


def _range(name: str, value: str | None, example: str) -> tuple[float, float] | None:
    from rlscale.api.fit import number

    if not value:
        return None
    parts = value.split(":")
    if len(parts) != 2:
        raise OptionError(name, f"{value!r}: expected LO:HI, e.g. {example}")
    return number(name, parts[0]), number(name, parts[1])


def _write_text(output: str | None, text: str) -> None:
    import sys

    from rlscale.io.jsonl import atomic_write_bytes

    if output in (None, "-"):
        sys.stdout.buffer.write(text.encode())
        sys.stdout.buffer.flush()
    else:
        atomic_write_bytes(output, text.encode())


def _compare(result, out_format, output, say) -> None:
    from rlscale.core.laws.render import render_compare
    from rlscale.io.jsonl import RecordWriter

    for row in (row for row in result["compare"] if "error" in row):
        say(f"warning: --law {row['law']} cannot be fitted: {row['error']}")
    best = next((r for r in result["compare"] if r.get("rank") == 1), None)
    if best is not None:
        say(f"--compare: {best['law']} predicts the held-out points best (mean RMSE per curve "
            f"{best['heldout_rmse_mean']:.4g})")
    if out_format != "json":
        _write_text(output, render_compare(result, out_format))
        return
    with RecordWriter(output) as writer:
        writer.write(result)


def _plan(result, budgets, budget_range, say) -> dict:
    from rlscale.core.laws.planner import shared_x_range

    search = _range("budget_range", budget_range, "1e18:1e22")
    if search is None:
        try:
            search = shared_x_range((result.report.get("data") or {}).get("x_range") or {})
        except ValueError as exc:
            raise UsageError(f"--plan: {exc}") from None
    try:
        return result.plan(budgets, search, notes=lambda line: say(f"--plan: {line}"))
    except ValueError as exc:
        raise RlscaleError(f"--plan: {exc}") from None


def _check_parent(option: str, path: str | None) -> None:
    """An output whose folder is missing fails now, in one line, not after the fit."""
    import os

    if path in (None, "-"):
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise RlscaleError(f"{option} {path}: directory {folder} does not exist")
