"""``rlscale flops``: parameter counts and cumulative training compute per step."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from rlscale.cli._shared import (
    DebugOpt,
    InputFormatOpt,
    InputsArg,
    OutputOpt,
    QuietOpt,
    RejectsOpt,
    SkipInvalidOpt,
    WideOpt,
    check_choice,
    check_input_format,
    handle_errors,
    open_rejects,
    parse_csv_list,
    progress,
    report_skipped,
    say,
    warn_if_waiting_on_tty,
)
from rlscale.core.errors import RecordError, RlscaleError, UsageError

NAME = "flops"
HELP = (
    "Add training compute to per-step records: flops_step = 6*N*n_tokens (the paper's C = 6NT), "
    "cumulative C, cumulative prompts D, cumulative tokens T and the N used, per run_id. N is the "
    "nominal size label by default (like the paper's analysis; --n-def total|non-embedding counts "
    "parameters from a Hugging Face config.json given with --model). With --model and no input, "
    "prints the parameter counts ('-' reads records from stdin). With --from-verl-log, reads "
    "VeRL console logs (output.log) into per-step records with n_tokens, score/<data_source> "
    "fields and the held-out loss, ready for `rlscale fit`. JSONL input streams (one output "
    "record per input record, in order); a log is read whole, since repeated steps after a "
    "restart are merged (later lines win). --phi needs all input."
)
EPILOG = (
    "Examples:\n\n"
    "  rlscale flops --model Qwen2.5-7B/config.json\n\n"
    "  rlscale flops --from-verl-log run1/output.log --n-params 7e9 > runs.jsonl\n\n"
    "  rlscale flops steps.jsonl --model ./Qwen2.5-7B --n-def non-embedding "
    "--count rollout,reference,old-logprob\n\n"
    "  rlscale flops steps.jsonl --n-params 1.5e9 --prompts-per-step 256 "
    "| rlscale fit --x C --y loss --group N"
)

ModelOpt = Annotated[str | None, typer.Option(
    "--model", metavar="DIR_OR_CONFIG",
    help="Hugging Face model directory or config.json: count parameters (no weights needed).")]
NParamsOpt = Annotated[float | None, typer.Option(
    "--n-params", metavar="N", help="Nominal N (e.g. 7e9); overrides --model's size label and "
    "the records' N field.")]
NDefOpt = Annotated[str, typer.Option(
    "--n-def", metavar="DEF",
    help="nominal, total or non-embedding: which N multiplies the tokens. nominal: "
    "--n-params, else --model's size label (e.g. '7B' in Qwen2.5-7B; without one, total "
    "rounded to 2 significant figures), else the record's N. total / non-embedding: counted "
    "from --model.")]
PromptsOpt = Annotated[float | None, typer.Option(
    "--prompts-per-step", metavar="P",
    help="Training prompts per step for D. Default: the record's n_groups field (grpo-step's "
    "prompts in the step), else 512 (the paper). A record's n_prompts (eval's held-out set "
    "size) is never used.")]
CountOpt = Annotated[str | None, typer.Option(
    "--count", metavar="PASSES",
    help="Also count extra forward passes, 2*N*n_tokens each: rollout, reference, old-logprob "
    "(comma-separated, or 'all'). Default: none, the paper's 6NT.")]
RunOpt = Annotated[str, typer.Option(
    "--run", metavar="FIELD", help="Field that identifies a run; sums restart per run.")]
VerlLogOpt = Annotated[list[str] | None, typer.Option(
    "--from-verl-log", metavar="FILE",
    help="Read a VeRL log instead of JSONL: console output (0.3-0.9.1) or the file logger's "
    "{step, data} JSONL (repeatable: one run per file).")]
ValMetricOpt = Annotated[str | None, typer.Option(
    "--val-metric", metavar="NAME",
    help="With --from-verl-log: the validation metric per data source, e.g. 'maj@8/mean' or "
    "'reward/mean@1'. Default: val/test_score/<src>, else the mean accuracy "
    "val-core/<src>/acc/mean@N (then reward, then score).")]
HoldoutOpt = Annotated[list[str] | None, typer.Option(
    "--holdout-source", metavar="NAME[=WEIGHT]",
    help="With --from-verl-log: data_source(s) whose weighted mean score gives loss = 1 - score "
    "(repeatable; weight default 1). Default: the paper's held-out set, its two sources "
    "weighted 335/165 by problem count.")]
RunIdOpt = Annotated[str | None, typer.Option(
    "--run-id", metavar="ID", help="With one --from-verl-log: run_id of its records "
    "(default: the log's path).")]
AllStepsOpt = Annotated[bool, typer.Option(
    "--all-steps", help="With --from-verl-log: also emit steps without held-out scores (they "
    "have no loss). C, D and T always count every step.")]
KeepOpt = Annotated[list[str] | None, typer.Option(
    "--keep", metavar="PATTERN", help="With --from-verl-log: copy metrics matching this glob "
    "(e.g. 'response_length/*') into the records (repeatable).")]

PhiOpt = Annotated[bool, typer.Option(
    "--phi", help="Also estimate the paper's compute factor phi (median C/(N*D) over the last half "
    "of each size's steps, then the median over sizes) and add phi and C_ideal = N*D*phi. Needs "
    "all input before writing.")]


class _PhiBuffer:
    """Holds the output records until phi, which needs every run, is known."""

    def __init__(self, run_field: str):
        self.run_field = run_field
        self.records: list[dict[str, Any]] = []

    def write(self, record: dict[str, Any]) -> None:
        self.records.append(record)

    def write_to(self, writer, quiet: bool) -> None:
        from rlscale.core.flops import estimate_phi

        seen = set()
        points = []
        for index, record in enumerate(self.records):
            step = record.get("step")
            key = (_run_key(record.get(self.run_field)), step)
            if step is not None and key in seen:
                continue  # several records of one step (e.g. per data source) count once
            seen.add(key)
            points.append((record["N"], index if step is None else step, record["C"], record["D"]))
        if not points:
            return
        try:
            phi_global, per_size = estimate_phi(points)
        except ValueError as exc:
            raise RlscaleError(f"--phi: {exc}") from None
        sizes = ", ".join(f"N={n:.3g}: {value:.4g}" for n, value in per_size.items())
        say(f"rlscale {NAME}: phi = {phi_global:.4g} (per size: {sizes})", quiet)
        for record in self.records:
            writer.write({**record, "phi": phi_global,
                          "C_ideal": record["N"] * record["D"] * phi_global})


def _param_summary(model: str) -> dict[str, Any]:
    from rlscale.core.flops import count_params, load_config, nominal_from_model

    config, config_path = load_config(model)
    counts = count_params(config)
    nominal, how = nominal_from_model(model, config, counts.total)
    return {"model": model, "config": config_path, "model_type": counts.model_type,
            "n_params_total": counts.total, "n_params_non_embedding": counts.non_embedding,
            "n_params_embedding": counts.embedding, "tied_embeddings": counts.tied_embeddings,
            "n_params_nominal": nominal, "nominal_from": how}


def _fixed_n(n_def: str, n_params: float | None, model: str | None) -> tuple[float | None, str]:
    """The N given on the command line (None: take it from each record), and how it was found."""
    if n_params is not None and (n_params <= 0 or n_params != n_params or n_params == float("inf")):
        raise UsageError(f"--n-params must be a positive number, got {n_params:g}")
    if n_def == "nominal":
        if n_params is not None:
            return n_params, "--n-params"
        if model is not None:
            summary = _param_summary(model)
            return summary["n_params_nominal"], f"nominal, {summary['nominal_from']}"
        return None, "record field N"
    if model is None:
        raise UsageError(f"--n-def {n_def} needs --model (a config.json to count parameters)")
    summary = _param_summary(model)
    key = "n_params_total" if n_def == "total" else "n_params_non_embedding"
    return float(summary[key]), f"{n_def} parameters of {summary['config']}"


def command(
    inputs: InputsArg = None,
    output: OutputOpt = None,
    model: ModelOpt = None,
    n_params: NParamsOpt = None,
    n_def: NDefOpt = "nominal",
    prompts_per_step: PromptsOpt = None,
    count: CountOpt = None,
    run: RunOpt = "run_id",
    from_verl_log: VerlLogOpt = None,
    holdout_source: HoldoutOpt = None,
    val_metric: ValMetricOpt = None,
    run_id: RunIdOpt = None,
    all_steps: AllStepsOpt = False,
    keep: KeepOpt = None,
    phi: PhiOpt = False,
    input_format: InputFormatOpt = None,
    wide: WideOpt = None,
    skip_invalid: SkipInvalidOpt = False,
    rejects: RejectsOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    def body() -> None:
        from rlscale.core.flops import EXTRA_PASSES, N_DEFINITIONS, StepAccumulator
        from rlscale.io.jsonl import RecordWriter

        check_choice(n_def, N_DEFINITIONS, "--n-def")
        check_input_format(input_format)
        extra = parse_csv_list(count, "--count")
        if extra == ["all"]:
            extra = list(EXTRA_PASSES)
        for name in extra:
            if name not in EXTRA_PASSES:
                raise UsageError(f"--count: unknown pass {name!r}; expected "
                                 f"{', '.join(EXTRA_PASSES)} or all")
        if prompts_per_step is not None and not (0 <= prompts_per_step < float("inf")):
            raise UsageError(f"--prompts-per-step must be a number >= 0, got {prompts_per_step:g}")
        log_only = (holdout_source, run_id, all_steps, keep, val_metric)
        if from_verl_log and inputs:
            raise UsageError("give either JSONL inputs or --from-verl-log, not both")
        if from_verl_log and (input_format is not None or wide is not None):
            raise UsageError("--input-format and --wide read record inputs, not "
                             "--from-verl-log")
        if not from_verl_log and any(log_only):
            raise UsageError("--holdout-source, --run-id, --all-steps, --keep and --val-metric "
                             "need --from-verl-log")

        if n_params is not None and n_def != "nominal":
            raise UsageError(f"--n-params sets the nominal N; with --n-def {n_def} N is counted "
                             "from --model, so drop one of them")
        # --model without input files: a parameter report (one record); '-' reads stdin instead.
        if model is not None and not inputs and not from_verl_log:
            with RecordWriter(output, tool=NAME) as writer:
                writer.write(_param_summary(model))
            return

        fixed_n, n_source = _fixed_n(n_def, n_params, model)
        accumulator = StepAccumulator(extra)
        with RecordWriter(output, tool=NAME, inputs=[*(inputs or []), *(from_verl_log or [])]) \
                as final_writer:
            writer = _PhiBuffer(run if not from_verl_log else "run_id") if phi else final_writer
            if from_verl_log:
                if fixed_n is None:
                    raise UsageError("--from-verl-log needs --n-params or --model (a log has no N)")
                n_skipped = _from_logs(from_verl_log, writer, accumulator, fixed_n, holdout_source,
                                       run_id, all_steps, keep or [], prompts_per_step,
                                       skip_invalid, rejects, quiet, val_metric)
            else:
                n_skipped = _from_records(inputs, writer, accumulator, fixed_n, prompts_per_step,
                                          run, skip_invalid, rejects, quiet, final_writer.follow,
                                          input_format, wide)
            if phi:
                writer.write_to(final_writer, quiet)
        _report(accumulator, fixed_n, n_source, extra, quiet)
        report_skipped(NAME, n_skipped, rejects, quiet)

    handle_errors(NAME, debug, body)


def _from_records(inputs, writer, accumulator, fixed_n, prompts_per_step, run, skip_invalid,
                  rejects, quiet, follow, input_format=None, wide=None) -> int:
    from rlscale.core.flops import PAPER_PROMPTS_PER_STEP
    from rlscale.io.jsonl import RecordReader

    warn_if_waiting_on_tty(inputs, quiet)
    optional = {"step": "number", "n_groups": "number", "N": "number"}

    with open_rejects(rejects, skip_invalid) as rejects_file:
        reader = RecordReader(inputs, required={"n_tokens": "number"}, optional=optional,
                              skip_invalid=skip_invalid, rejects=rejects_file,
                              input_format=input_format, wide=wide)
        follow(reader)  # no end record unless the input was complete
        for record, where in progress(reader, description="flops", quiet=quiet):
            n_tokens = record["n_tokens"]
            if n_tokens < 0:
                reader.invalid(where, f"field 'n_tokens' must be >= 0, got {n_tokens}")
                continue
            step = record.get("step")
            if step is not None and (step < 0 or step != int(step)):
                reader.invalid(where, f"field 'step' must be an integer >= 0, got {step}")
                continue
            n = fixed_n
            if n is None:
                n = record.get("N")
                if n is None:
                    reader.invalid(where, "no N: the record has no field 'N'; pass --n-params "
                                          "or --model")
                    continue
                if n <= 0:
                    reader.invalid(where, f"field 'N' must be > 0, got {n}")
                    continue
            # training prompts per step: never eval's n_prompts (the held-out set's size)
            prompts = prompts_per_step
            if prompts is None:
                prompts = record.get("n_groups")
                if prompts is None:
                    prompts = PAPER_PROMPTS_PER_STEP
                elif prompts < 0:
                    reader.invalid(where, f"field 'n_groups' must be >= 0, got {prompts}")
                    continue
            run_key = _run_key(record.get(run))
            try:
                fields = accumulator.add(run_key, None if step is None else int(step), n_tokens,
                                         prompts, n)
            except ValueError as exc:
                label = "" if record.get(run) is None else f"run {record.get(run)}: "
                reader.invalid(where, f"{label}{exc}")
                continue
            writer.write({**record, "N": n, **fields})
    return reader.n_skipped


def _run_key(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        import orjson

        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    if isinstance(value, float) and value == int(value):
        return int(value)  # run_id 1 and 1.0 are the same run
    return value


def _from_logs(paths, writer, accumulator, n, holdout_source, run_id, all_steps, keep,
               prompts_per_step, skip_invalid, rejects, quiet, val_metric=None) -> int:
    from rlscale.core.flops import PAPER_PROMPTS_PER_STEP
    from rlscale.io.verl_log import (
        PAPER_HOLDOUT_SOURCES,
        SCORE_FIELD_PREFIX,
        merge_steps,
        parse_holdout_sources,
        read_steps,
        step_record,
        validation_keys,
    )

    if run_id is not None and len(paths) > 1:
        raise UsageError("--run-id needs a single --from-verl-log (each log is one run)")
    try:
        weights = (parse_holdout_sources(holdout_source) if holdout_source
                   else dict(PAPER_HOLDOUT_SOURCES))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    prompts = PAPER_PROMPTS_PER_STEP if prompts_per_step is None else prompts_per_step
    n_skipped = 0
    with open_rejects(rejects, skip_invalid) as rejects_file:

        def bad(line_no: int, raw: str, message: str) -> None:
            nonlocal n_skipped
            if not skip_invalid:
                raise RecordError(source, line_no, message)
            n_skipped += 1
            if rejects_file is not None:
                rejects_file.write(raw.rstrip("\r\n").encode() + b"\n")

        for given in paths:
            path = _resolve_log(given)
            source = "<stdin>" if path == "-" else path
            raw_lines: dict[int, str] = {}

            def keep_raw(lines, store=raw_lines):  # for --rejects and bad-step messages
                for line_no, raw in enumerate(lines, 1):
                    store[line_no] = raw.decode("utf-8", errors="replace")
                    yield raw

            parsed, n_lines = read_steps(keep_raw(_read_log_lines(path)), bad)
            steps = merge_steps(parsed)
            if not steps:
                raise RlscaleError(f"{source}: no step lines in {n_lines} line(s) (expected "
                                   "VeRL's console 'step:N - key:value' or its file logger's "
                                   '{"step": N, "data": {...}})')
            seen_sources: set[str] = set()
            records = []
            for entry in steps:
                try:
                    record = step_record(entry, weights, keep, val_metric)
                except ValueError as exc:
                    bad(entry.line, raw_lines.get(entry.line, ""), str(exc))
                    continue
                seen_sources.update(k[len(SCORE_FIELD_PREFIX):] for k in record
                                    if k.startswith(SCORE_FIELD_PREFIX))
                records.append(record)
            missing = [s for s in weights if s not in seen_sources]
            if not seen_sources and not all_steps:
                found = sorted({k for e in steps for k in validation_keys(e.metrics)})
                listed = ", ".join(found[:6]) + (f" and {len(found) - 6} more" if len(found) > 6
                                                 else "")
                wanted = f"--val-metric {val_metric}" if val_metric else "a mean@N score"
                raise RlscaleError(f"{source}: {len(steps)} step(s) but no usable validation "
                                   f"metric ({wanted}); validation keys found: {listed or 'none'}"
                                   "; choose one with --val-metric or use --all-steps")
            if missing and not all_steps:
                seen = ", ".join(sorted(seen_sources)) or "none"
                raise RlscaleError(
                    f"{source}: held-out source(s) {', '.join(missing)} never scored in this log "
                    f"(sources seen: {seen}); name yours with --holdout-source or use --all-steps")
            this_run = run_id if run_id is not None else source
            for record in progress(records, description="flops", total=len(records), quiet=quiet):
                fields = accumulator.add(this_run, record["step"], record["n_tokens"], prompts, n)
                if "loss" in record or all_steps:
                    writer.write({"run_id": this_run, **record, "N": n, **fields})
    return n_skipped


def _resolve_log(path: str) -> str:
    """A run directory stands for its output.log (wandb's files/output.log layout included)."""
    if path == "-" or not os.path.isdir(path):
        return path
    for candidate in (os.path.join(path, "output.log"), os.path.join(path, "files", "output.log")):
        if os.path.isfile(candidate):
            return candidate
    raise RlscaleError(f"{path}: is a directory without output.log")


def _read_log_lines(path: str):
    if path == "-":
        import sys

        yield from sys.stdin.buffer
        return
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise RlscaleError(f"{path}: no such file") from None
    except OSError as exc:
        raise RlscaleError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with handle:
        yield from handle  # bytes: read_steps decides what undecodable bytes mean


def _report(accumulator, n, n_source, extra, quiet) -> None:
    if quiet:
        return
    for run_key, previous, step in accumulator.gaps[:5]:
        after = "the start" if previous is None else f"step {previous}"
        say(f"rlscale {NAME}: warning: run {run_key}: step {step} follows {after}; C, D and T "
            "count only the steps present")
    if len(accumulator.gaps) > 5:
        say(f"rlscale {NAME}: warning: {len(accumulator.gaps) - 5} more step gap(s)")
    if not accumulator.runs:
        return
    n_text = f"{n:.4g} ({n_source})" if n is not None else "from each record's N"
    passes = "6NT" + (f" + 2NT x {len(set(extra))} ({', '.join(extra)})" if extra else "")
    top = max(t.C for t in accumulator.runs.values())
    say(f"rlscale {NAME}: N = {n_text}; {passes}; {len(accumulator.runs)} run(s), "
        f"{sum(t.n_steps for t in accumulator.runs.values())} step(s), max C = {top:.4g}")
