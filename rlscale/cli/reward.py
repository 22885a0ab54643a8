"""``rlscale reward``: grade model responses against ground-truth answers."""

from __future__ import annotations

from typing import Annotated

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
    progress,
    report_skipped,
    say,
    warn_if_waiting_on_tty,
)

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

def _grader_help() -> str:
    from rlscale.core.grading.registry import GRADER_HELP

    return "; ".join(f"{name}: {text}" for name, text in GRADER_HELP.items()) + "."


def _grader_metavar() -> str:
    from rlscale.core.grading.registry import GRADERS

    return "|".join(GRADERS)


GraderOpt = Annotated[str, typer.Option(
    "--grader", "-g", help=_grader_help(), metavar=_grader_metavar())]
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


def command(
    inputs: InputsArg = None,
    output: OutputOpt = None,
    grader: GraderOpt = "math",
    response_field: ResponseFieldOpt = "completion",
    answer_field: AnswerFieldOpt = "answer",
    data_source_field: SourceFieldOpt = "data_source",
    timeout: TimeoutOpt = 2.0,
    workers: WorkersOpt = 0,
    memory_mb: MemoryOpt = 1024,
    fallbacks: FallbacksOpt = "answer-is,math-span,hashes,last-number",
    keep_thinking: KeepThinkingOpt = False,
    input_format: InputFormatOpt = None,
    wide: WideOpt = None,
    skip_invalid: SkipInvalidOpt = False,
    rejects: RejectsOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    def body() -> None:
        from rlscale.core.errors import UsageError
        from rlscale.core.grading import FALLBACKS, GRADERS, VERDICTS
        from rlscale.core.grading.dispatch import Grader, GraderConfig, GradeTask
        from rlscale.core.grading.math_grader import MathOptions
        from rlscale.core.grading.registry import (
            STRUCTURED_GRADERS,
            ground_truth_text,
            paper_routes,
            resolve,
        )
        from rlscale.core.jsonl import RecordReader, RecordWriter, refuse_overlap

        check_choice(grader, GRADERS, "--grader")
        check_input_format(input_format)
        if not timeout > 0:
            raise UsageError(f"--timeout must be > 0, got {timeout}")
        if workers < 0:
            raise UsageError(f"--workers must be >= 0, got {workers}")
        if memory_mb < 64:
            raise UsageError(f"--memory-mb must be >= 64, got {memory_mb}")
        chosen = [] if fallbacks.strip() == "none" else [
            part.strip() for part in fallbacks.split(",") if part.strip()]
        unknown = [name for name in chosen if name not in FALLBACKS]
        if unknown:
            raise UsageError(f"--fallbacks: unknown {', '.join(unknown)}; expected some of "
                             f"{', '.join(FALLBACKS)} or none")
        config = GraderConfig(grader, MathOptions(tuple(chosen), not keep_thinking))
        refuse_overlap({"-o": output, "--rejects": rejects}, inputs)
        warn_if_waiting_on_tty(inputs, quiet)
        counts = dict.fromkeys(VERDICTS, 0)
        with open_rejects(rejects, skip_invalid) as rejects_file:
            reader = RecordReader(
                inputs, required={response_field: "str", answer_field: "any"},
                optional={data_source_field: "str"} if grader == "paper" else None,
                skip_invalid=skip_invalid, rejects=rejects_file,
                input_format=input_format, wide=wide,
                # a response with broken bytes is still graded (they become U+FFFD), not lost
                replace_invalid_utf8=True)

            def tasks():
                for record, where in progress(reader, description="grading", quiet=quiet):
                    source = record.get(data_source_field) if grader == "paper" else None
                    if grader == "paper" and not paper_routes(source):
                        reader.invalid(where, f"data_source {source!r} has no paper scorer "
                                       "(expected math*, aime*, math_dapo, openai/gsm8k, "
                                       "codegen__*, logic__zebra_puzzle* or stem__supergpqa*)")
                        continue
                    value = record[answer_field]
                    gold = ground_truth_text(value)
                    if gold is None:
                        reader.invalid(where, f"{answer_field}: expected a string, number, "
                                       "object or array")
                        continue
                    if isinstance(value, dict | list) and \
                            resolve(grader, source) not in STRUCTURED_GRADERS:
                        reader.invalid(where, f"{answer_field}: an object or array is a ground "
                                       "truth of the code or logic grader only, not "
                                       f"{resolve(grader, source)}")
                        continue
                    task = GradeTask(record[response_field], gold, source)
                    yield record, task

            with Grader(config, workers=workers, timeout=timeout, memory_mb=memory_mb) as pool, \
                    RecordWriter(output, tool=NAME, source=reader) as writer:
                for record, result in pool.stream(tasks()):
                    counts[result.verdict] += 1
                    writer.write({**record, "reward": result.reward, "pred": result.pred,
                                  "verdict": result.verdict, **(result.details or {})})
        report_skipped(NAME, reader.n_skipped, rejects, quiet)
        total = sum(counts.values())
        if total:
            shown = ", ".join(f"{verdict} {n}" for verdict, n in counts.items() if n)
            say(f"rlscale reward: graded {total}: mean reward {counts['correct'] / total:.4f} "
                f"({shown})", quiet)

    handle_errors(NAME, debug, body)
