"""``rlscale flops``: parameter counts and cumulative training compute per step."""

from __future__ import annotations

from typing import Annotated

import typer

from rlscale.cli._command import Context, tool
from rlscale.cli._shared import progress
from rlscale.core.errors import UsageError

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


@tool(NAME)
def command(
    ctx: Context,
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
) -> None:
    from rlscale.api.flops import flops
    from rlscale.io.verl_log import VerlLogs

    logs = records = None
    if from_verl_log:
        if ctx.inputs:
            raise UsageError("give either JSONL inputs or --from-verl-log, not both")
        if ctx.input_format is not None or ctx.wide is not None:
            raise UsageError("--input-format and --wide read record inputs, not --from-verl-log")
        ctx.refuse_overlap(from_verl_log)
        logs = VerlLogs(from_verl_log, skip_invalid=ctx.skip_invalid, rejects=ctx.rejects_file)
        ctx.readers.append(logs)  # its skipped lines are reported like a reader's
    elif model is None or ctx.inputs:  # --model alone: its parameter counts ('-': stdin)
        records = ctx.reader()
    notes: list[str] = []
    steps = flops(records, model=model, n_params=n_params, n_def=n_def,
                  prompts_per_step=prompts_per_step, count=count, run=run, from_verl_log=logs,
                  holdout_source=holdout_source, val_metric=val_metric, run_id=run_id,
                  all_steps=all_steps, keep=keep, phi=phi, notes=notes,
                  progress=lambda items: progress(
                      items, description="flops", quiet=ctx.quiet,
                      total=len(items) if isinstance(items, list) else None))
    with ctx.writer(source=records) as writer:
        writer.write_all(steps)
    for note in notes:
        ctx.say(f"rlscale {NAME}: {note}")
