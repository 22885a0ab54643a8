"""``rlscale reward``: grade model responses against ground-truth answers."""

from __future__ import annotations

from typing import Annotated

import typer

from rlscale.cli._command import Context, tool
from rlscale.cli._shared import progress
from rlscale.core.grading import registry  # light: the graders load when an item needs them

NAME = "reward"
HELP = (
    "Grade model responses against ground-truth answers: adds `reward` (1.0/0.0), `pred` (the "
    "extracted answer or null) and `verdict` (correct, wrong, no_answer, timeout, error) to each "
    "record. --grader math (default) takes the text after the last </think>, the last "
    "\\boxed{} (fallbacks in order: a final-answer phrase, the last $...$ math span, '#### n', "
    "the last number standing alone), and decides equivalence by "
    "normalised strings, exact numbers, then Math-Verify. --grader paper reproduces the VeRL "
    "scorer of Tan et al. 2025 (routed by `data_source`, quirks included), and routes the "
    "out-of-domain benchmarks of their transfer study to --grader code (the solution runs "
    "with the test program in a sandbox), logic (Zebra grids; adds cell_accuracy) and choice "
    "(option letters); errors add a `reason`. Every item is limited "
    "to --timeout seconds and --memory-mb in a pool of worker processes; a runaway item gives "
    "verdict timeout (or error, out of memory) and the stream goes on. Streams: one output "
    "record per input record, in input order."
)
EPILOG = (
    "Examples:\n\n"
    "  rlscale reward rollouts.jsonl > scored.jsonl\n\n"
    "  rlscale reward --grader paper --timeout 5 rollouts.jsonl -o scored.jsonl\n\n"
    "  rlscale reward --response-field text --answer-field gt --fallbacks none samples.jsonl\n\n"
    "  rlscale rollout ... | rlscale reward | rlscale eval --by step,N"
)

GraderOpt = Annotated[str, typer.Option(
    "--grader", "-g", help=registry.summary(), metavar="|".join(registry.names()))]
ResponseFieldOpt = Annotated[str, typer.Option(
    "--response-field", help="Field holding the model response.", metavar="FIELD")]
AnswerFieldOpt = Annotated[str, typer.Option(
    "--answer-field", help="Field holding the ground truth: a string or number, or for "
    "code/logic an object (a {\"functional\": ...} test program, a {header, rows} grid).",
    metavar="FIELD")]
SourceFieldOpt = Annotated[str, typer.Option(
    "--data-source-field", help="Field that routes --grader paper (absent: naive_dapo, the "
    "scorer of the paper's training and held-out data).", metavar="FIELD")]
TimeoutOpt = Annotated[float, typer.Option(
    "--timeout", help="Seconds allowed per item (hard limit; the worker is killed).",
    metavar="SECONDS")]
MemoryOpt = Annotated[int, typer.Option(
    "--memory-mb", help="Address space allowed per worker process, in MiB (RLIMIT_AS); an "
    "item that needs more gets verdict error and its worker is replaced.", metavar="MIB")]
WorkersOpt = Annotated[int, typer.Option(
    "--workers", "-j", help="Worker processes for items that need symbolic comparison "
    "(0: one per CPU core). Easy items are graded in the main process.", metavar="N")]
FallbacksOpt = Annotated[str, typer.Option(
    "--fallbacks", help="--grader math: where to look when there is no \\boxed{}, in order "
    "(comma list of answer-is, math-span, hashes, last-number; 'none' for boxed answers only).",
    metavar="LIST")]
KeepThinkingOpt = Annotated[bool, typer.Option(
    "--keep-thinking", help="--grader math: search the whole response, not just the text "
    "after the last </think>.")]


@tool(NAME, follow=True)
def command(
    ctx: Context,
    grader: GraderOpt = "math",
    response_field: ResponseFieldOpt = "completion",
    answer_field: AnswerFieldOpt = "answer",
    data_source_field: SourceFieldOpt = "data_source",
    timeout: TimeoutOpt = 2.0,
    workers: WorkersOpt = 0,
    memory_mb: MemoryOpt = 1024,
    fallbacks: FallbacksOpt = "answer-is,math-span,hashes,last-number",
    keep_thinking: KeepThinkingOpt = False,
) -> None:
    from rlscale.api.reward import reward

    counts: dict[str, int] = {}
    # a response with broken bytes is still graded (they become U+FFFD), not lost
    reader = ctx.reader(replace_invalid_utf8=True)
    scored = reward(reader, grader=grader, response_field=response_field,
                    answer_field=answer_field, data_source_field=data_source_field,
                    timeout=timeout, workers=workers, memory_mb=memory_mb, fallbacks=fallbacks,
                    keep_thinking=keep_thinking, counts=counts,
                    progress=lambda items: progress(items, description="grading",
                                                    quiet=ctx.quiet))
    first = next(scored, None)  # a bad first record fails before the output file is opened
    with ctx.writer(source=reader) as writer:
        if first is not None:
            writer.write(first)
        for record in scored:
            writer.write(record)
    ctx.report_skipped()
    total = sum(counts.values())
    if total:
        shown = ", ".join(f"{verdict} {n}" for verdict, n in counts.items() if n)
        ctx.say(f"rlscale reward: graded {total}: mean reward {counts['correct'] / total:.4f} "
                f"({shown})")
