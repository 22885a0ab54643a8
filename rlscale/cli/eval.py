"""``rlscale eval``: test loss and pass@k per group from scored samples."""

from __future__ import annotations

from typing import Annotated

import typer

from rlscale.cli._command import Context, tool
from rlscale.cli._shared import SeedOpt, parse_assignments, progress

NAME = "eval"
HELP = (
    "Aggregate scored samples (reward, prompt_id) into one record per group (--by step,N,...): "
    "n_prompts, n_samples, pass@1, loss = 1 - pass@1 (the paper's test loss), unbiased pass@k "
    "(Chen et al. 2021), mean_reward, loss_se and a bootstrap ci95 of the loss over prompts. Each "
    "prompt weighs the same however many samples it has (per-prompt mean, then mean over prompts). "
    "A sample is correct when reward > --threshold. The output of `eval --by step,N` is a "
    "runs.jsonl for `rlscale fit`. Needs all input (keeps per-prompt counts, not the records); "
    "groups come out in order of first appearance."
)
EPILOG = (
    "Examples:\n\n"
    "  rlscale reward rollouts.jsonl | rlscale eval --by step,N > runs.jsonl\n\n"
    "  rlscale eval scored.jsonl --by data_source --k 1,4,8 --bootstrap 2000 --seed 1\n\n"
    "  rlscale eval test-scored.jsonl --set run_id=a --set step=40 --set N=5e8 >> runs.jsonl\n\n"
    "  rlscale eval scored.jsonl --by model,extra_info.split --reward-field score"
)

ByOpt = Annotated[str | None, typer.Option(
    "--by", metavar="FIELDS",
    help="Comma-separated group fields (any fields; a.b reads a nested field). "
    "Default: one group for all input.")]
KOpt = Annotated[str, typer.Option(
    "--k", metavar="K,...", help="pass@k values to report (pass@1 is always reported); "
    "pass@k is null for a group where some prompt has fewer than k samples.")]
BootstrapOpt = Annotated[int, typer.Option(
    "--bootstrap", metavar="B", help="Bootstrap resamples of prompts for ci95 (0: no interval).")]
RewardFieldOpt = Annotated[str, typer.Option(
    "--reward-field", metavar="FIELD", help="Field holding the reward (number or boolean).")]
PromptFieldOpt = Annotated[str, typer.Option(
    "--prompt-field", metavar="FIELD", help="Field identifying the prompt (problem).")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", metavar="KEY=VALUE",
    help="Add a constant field to every output record (repeatable; JSON values keep their type), "
    "e.g. --set step=12 --set N=7e9 to make a runs.jsonl line.")]
ThresholdOpt = Annotated[float, typer.Option(
    "--threshold", metavar="T", help="A sample is correct when reward > T (0/1 rewards: exact).")]


@tool(NAME, flags={"set_fields": "--set"}, follow=True)  # the one flag that is not --dashed-name
def command(
    ctx: Context,
    by: ByOpt = None,
    k: KOpt = "1",
    bootstrap: BootstrapOpt = 1000,
    seed: SeedOpt = 0,
    reward_field: RewardFieldOpt = "reward",
    prompt_field: PromptFieldOpt = "prompt_id",
    threshold: ThresholdOpt = 0.5,
    set_fields: SetOpt = None,
) -> None:
    from rlscale.api.evaluate import evaluate

    constants = parse_assignments(set_fields, "--set")
    reader = ctx.reader()
    notes: list[str] = []
    runs = evaluate(reader, by=by, k=k, bootstrap=bootstrap, seed=seed,
                    reward_field=reward_field, prompt_field=prompt_field,
                    threshold=threshold, set_fields=constants, notes=notes,
                    progress=lambda items: progress(items, description="eval", quiet=ctx.quiet))
    with ctx.writer(source=reader) as writer:
        writer.write_all(runs)
    for note in notes:
        ctx.say(f"rlscale {NAME}: {note}")
