"""``rlscale curate``: raw problem sets -> deduplicated, decontaminated, curriculum-ordered
training data, a held-out set and data-reuse subsets, as JSONL or VeRL parquet."""

from __future__ import annotations

import contextlib
import os
from typing import Annotated

import typer

from rlscale.cli._command import Context, tool
from rlscale.cli._shared import progress, report_skipped, run_meta, warn_if_waiting_on_tty
from rlscale.core.errors import OptionError, RecordError, RlscaleError, UsageError

NAME = "curate"
HELP = (
    "Build RL math training data the way Tan et al. (2025) did: read problems (JSONL, VeRL "
    "parquet or CSV/TSV, by extension or --input-format), drop exact, normalised and (--near-dup) "
    "MinHash near-duplicates, drop problems overlapping benchmarks (--exclude), label easy/hard "
    "from a pass rate (a field, or mean reward per prompt_id from scored rollouts), order "
    "easy->hard (curriculum), hold out a stratified test set and draw data-reuse subsets (budget "
    "// tau unique problems, easy share and order kept). Writes JSONL records (prompt_id, prompt, "
    "answer, data_source, pass_rate, difficulty, split + pass-through fields) or VeRL parquet "
    "(--to-verl). Streams (one record in, at most one out) with --order keep and no --holdout or "
    "--reuse; curriculum/random order, --holdout and --reuse need all input in memory. prompt_id: "
    "kept if the input has one; else data_source#extra_info.index when an index exists; else "
    "p-<sha1 of the normalised problem text>[:16] (stable across runs and templates). A missing "
    "pass rate counts as 0.0 (hardest) for ordering and filters and as hard, as in the paper. "
    "Same input and --seed give byte-identical output."
)
EPILOG = (
    "Examples:\n\n"
    "  rlscale curate raw.jsonl --exclude math500.parquet --exclude aime2024.parquet "
    "--near-dup 0.9 --template paper --holdout 500 --holdout-out test.jsonl > train.jsonl\n\n"
    "  rlscale curate train.parquet --reuse 20 --budget 51200 --nested "
    "--to-verl math__sampled_1_20_2560.parquet\n\n"
    "  rlscale curate problems.jsonl --pass-rates scored.jsonl --max-pass-rate 0.9 "
    "--order curriculum -o train.jsonl\n\n"
    "  rlscale curate train.jsonl --order keep --reuse 4 --expand -o epochs.jsonl"
)
IN, DEDUP, DIFF, SPLITS, OUT = ("Input", "Dedup and decontamination", "Difficulty",
                                "Order and splits", "Output")


def _opt(flag: str, metavar: str | None, help: str, panel: str | None = None):
    return typer.Option(flag, metavar=metavar, help=help, rich_help_panel=panel)


def _check(*, holdout_out, batch_size, **options) -> None:
    """Usage errors before anything is opened: what needs what here, each value in the API."""
    from rlscale.api.curate import checked_options

    low, high, reuse = options["min_pass_rate"], options["max_pass_rate"], options["reuse"]
    for wrong, message in (
            (options["pass_rates"] and options["pass_rate_field"],
             "use either --pass-rates or --pass-rate-field, not both"),
            (None not in (low, high) and low > high,
             "--min-pass-rate is larger than --max-pass-rate"),
            (options["holdout"] > 0 and not holdout_out, "--holdout needs --holdout-out FILE"),
            (holdout_out and not options["holdout"], "--holdout-out needs --holdout N"),
            (reuse is None and (options["budget"] is not None or options["expand"]
                                or options["nested"]),
             "--budget, --expand and --nested need --reuse TAU"),
            (batch_size is not None and batch_size < 1,
             f"--batch-size must be >= 1; got {batch_size}")):
        if wrong:
            raise UsageError(message)
    checked_options(options)


@tool(NAME, check=_check)
def command(
    ctx: Context,
    to_verl: Annotated[str | None, _opt("--to-verl", "FILE", "Write the training rows as VeRL "
        "parquet to FILE (JSONL then only with -o).", OUT)] = None,
    prompt_field: Annotated[str | None, _opt("--prompt-field", "NAMES", "Field(s) holding the "
        "problem, tried in order (default: prompt,problem,question). A string or a list of "
        "{role, content} messages.", IN)] = None,
    answer_field: Annotated[str | None, _opt("--answer-field", "NAMES", "Field(s) holding the "
        "answer (default: answer,ground_truth,reward_model.ground_truth,solution); from a "
        "'solution' the last \\boxed{} is taken.", IN)] = None,
    data_source: Annotated[str | None, _opt("--data-source", "NAME", "data_source for records "
        "without one (default: math__<file stem>).", IN)] = None,
    dedup: Annotated[str, _opt("--dedup", "normalised|exact|none", "Drop copies: 'exact' same "
        "prompt string; 'normalised' also same text after folding case, whitespace, LaTeX "
        "spacing and the paper's template.", DEDUP)] = "normalised",
    near_dup: Annotated[float | None, _opt("--near-dup", "SIM", "Also drop near-duplicates: "
        "MinHash-estimated Jaccard similarity of character n-grams >= SIM (e.g. 0.9).",
        DEDUP)] = None,
    near_dup_ngram: Annotated[int, _opt("--near-dup-ngram", "N", "Character n-gram length for "
        "--near-dup.", DEDUP)] = 5,
    num_perm: Annotated[int, _opt("--num-perm", "K", "MinHash signature length for --near-dup.",
        DEDUP)] = 128,
    exclude: Annotated[list[str] | None, _opt("--exclude", "FILE", "Benchmark file(s) (JSONL or "
        "parquet; repeat or comma-separate) whose problems must not be trained on.",
        DEDUP)] = None,
    exclude_ngram: Annotated[int, _opt("--exclude-ngram", "N", "Token n-gram length for "
        "--exclude overlap.", DEDUP)] = 13,
    exclude_overlap: Annotated[float, _opt("--exclude-overlap", "FRAC", "Drop a problem sharing "
        ">= FRAC of the n-grams of one benchmark problem (of the smaller n-gram set); an exact "
        "normalised match always counts.", DEDUP)] = 0.5,
    pass_rate_field: Annotated[str | None, _opt("--pass-rate-field", "NAMES", "Pass-rate "
        "field(s), looked up at top level then in extra_info (default: "
        "pass_rate,qwen2.5_7b_pass_rate).", DIFF)] = None,
    pass_rates: Annotated[str | None, _opt("--pass-rates", "FILE", "Scored rollouts (JSONL with "
        "prompt_id and a reward in [0, 1], e.g. from 'rlscale reward'): pass rate = mean reward "
        "per prompt_id.", DIFF)] = None,
    reward_field: Annotated[str, _opt("--reward-field", "NAME", "Reward field in --pass-rates "
        "records.", DIFF)] = "reward",
    min_pass_rate: Annotated[float | None, _opt("--min-pass-rate", "P", "Drop problems with pass "
        "rate < P.", DIFF)] = None,
    max_pass_rate: Annotated[float | None, _opt("--max-pass-rate", "P", "Drop problems with pass "
        "rate > P.", DIFF)] = None,
    easy_threshold: Annotated[float, _opt("--easy-threshold", "P", "Easy iff pass rate >= P "
        "(paper: 0.3).", DIFF)] = 0.3,
    order: Annotated[str, _opt("--order", "curriculum|random|keep", "curriculum: pass rate "
        "descending (easy->hard), stable, ties in seeded random order; random: seeded shuffle; "
        "keep: input order (streams).", SPLITS)] = "curriculum",
    holdout: Annotated[int, _opt("--holdout", "N", "Hold out N problems (written to "
        "--holdout-out).", SPLITS)] = 0,
    holdout_out: Annotated[str | None, _opt("--holdout-out", "FILE", "Where the held-out "
        "problems go (.parquet: VeRL parquet, else JSONL).", SPLITS)] = None,
    stratify: Annotated[str, _opt("--stratify", "easy-hard|proportional", "easy-hard: N/2 easy "
        "+ N/2 hard (the paper's 250/250); proportional: the input's easy share.",
        SPLITS)] = "easy-hard",
    reuse: Annotated[int | None, _opt("--reuse", "TAU", "Data reuse: keep budget // TAU unique "
        "problems from the first --budget training rows, easy share and order kept (train TAU "
        "epochs unshuffled).", SPLITS)] = None,
    budget: Annotated[int | None, _opt("--budget", "N", "Pool and prompt budget for --reuse "
        "(default: all training rows; paper: 51200).", SPLITS)] = None,
    expand: Annotated[bool, _opt("--expand", None, "Write the --reuse subset TAU times in epoch "
        "order (adds epoch).", SPLITS)] = False,
    nested: Annotated[bool, _opt("--nested", None, "Draw --reuse subsets as the released files "
        "were (pandas sample, seeds S and S+1): smaller subsets nest in larger ones; with --seed "
        "42 on the paper's pool this reproduces them. Default: independent per TAU.",
        SPLITS)] = False,
    template: Annotated[str, _opt("--template", "none|paper|bare|FILE", "paper: add the paper's "
        "instruction prefix and \\boxed{} instruction when missing; bare: remove them; FILE: "
        "text with {prompt} where the problem goes.", OUT)] = "none",
    dropped: Annotated[str | None, _opt("--dropped", "FILE", "Write every removed problem to "
        "FILE with drop_reason and drop_detail.", OUT)] = None,
    batch_size: Annotated[int | None, _opt("--batch-size", "N", "Prompts per training step "
        "(paper: 512): report steps per epoch, total steps and rows never seen with drop_last "
        "on stderr.", OUT)] = None,
    seed: Annotated[int, _opt("--seed", None, "Random seed for tie order, shuffles and samples "
        "(paper: 42).")] = 42,
) -> None:
    options = {k: v for k, v in locals().items()  # curate's parameters, as given
               if k not in ("ctx", "to_verl", "holdout_out", "dropped", "batch_size")}
    from rlscale.api.curate import curate
    from rlscale.io.jsonl import AtomicFile, RecordWriter
    from rlscale.io.verl_parquet import InputReader, is_parquet_path, verl_table

    excluded = [p.strip() for item in exclude or [] for p in item.split(",") if p.strip()]
    ctx.also_writes({"--to-verl": to_verl, "--holdout-out": holdout_out, "--dropped": dropped})
    ctx.refuse_overlap([*(ctx.inputs or []), *excluded, *([pass_rates] if pass_rates else [])])
    for option, path in {"-o": ctx.output, **ctx.other_outputs}.items():
        directory = os.path.dirname(os.path.abspath(path or "-"))
        if path not in (None, "-") and not os.path.isdir(directory):
            raise RlscaleError(f"{option} {path}: directory {directory} does not exist")
    warn_if_waiting_on_tty(ctx.inputs, ctx.quiet)
    reader = InputReader(ctx.inputs, skip_invalid=ctx.skip_invalid, rejects=ctx.rejects_file,
                         input_format=ctx.input_format, wide=ctx.wide)  # VeRL parquet too
    benchmarks = InputReader(excluded, skip_invalid=ctx.skip_invalid) if excluded else None
    stdout = None
    try:
        with contextlib.ExitStack() as staged:  # files appear together once all are complete
            drops = staged.enter_context(RecordWriter(dropped, tool=NAME, source=reader)) \
                if dropped else None
            result = curate(reader, **{**options, "exclude": benchmarks},
                            dropped=drops.write if drops else None,
                            progress=lambda items: progress(items, description="curating",
                                                            quiet=ctx.quiet))
            if benchmarks is not None and benchmarks.n_skipped:
                ctx.say(f"rlscale curate: skipped {benchmarks.n_skipped} unreadable --exclude "
                        "record(s)")
            outputs = []  # (path, rows, as VeRL parquet); only the first may stream
            if to_verl is None or ctx.output is not None:  # --to-verl alone: parquet only
                outputs.append((ctx.output, result if result.streams and not to_verl
                                else result.train, False))
            if to_verl:
                outputs.append((to_verl, result.verl("train"), True))
            if holdout:
                parquet = is_parquet_path(holdout_out)
                outputs.append((holdout_out, result.verl("holdout") if parquet
                                else result.holdout, parquet))
            for path, rows, parquet in outputs:
                if path in (None, "-") and rows is result:  # streams, as the input is read
                    with ctx.writer(source=reader) as writer:
                        writer.write_all(rows)
                elif path in (None, "-"):
                    stdout = rows  # written last, once every file is in place
                elif parquet:
                    import pyarrow.parquet as pq

                    table = verl_table(rows, run_meta(seed, command=NAME, **{
                        k: options[k] for k in ("order", "dedup", "near_dup", "template",
                                                "holdout", "stratify", "reuse", "budget",
                                                "nested", "expand", "easy_threshold")}))
                    out = staged.enter_context(AtomicFile(path, compress=False))
                    pq.write_table(table, out.handle, compression="snappy")
                else:
                    staged.enter_context(RecordWriter(path, tool=NAME, source=reader)
                                         ).write_all(rows)
            report_skipped(NAME, reader.n_skipped, ctx.rejects, ctx.quiet)
            stats = result.stats
            if pass_rates and stats.missing_pass_rate:
                ctx.say(f"rlscale curate: {stats.missing_pass_rate} problem(s) have no scored "
                        f"rollouts in {pass_rates}; counted as pass rate 0 (hard)")
            if order == "curriculum" and stats.kept and stats.missing_pass_rate == stats.kept:
                ctx.say("rlscale curate: no pass rates found (see --pass-rate-field/"
                        "--pass-rates); curriculum order is a seeded shuffle")
    except OptionError as exc:  # a value the data rules out (--budget): exit 1, not 2
        raise RlscaleError(exc.with_flag()) from None
    except RecordError as exc:  # the library names its parameter, the command its flag
        raise RecordError(exc.source, exc.line, exc.message.replace(
            "with reward_field", "with --reward-field")) from None
    if stdout is not None:
        with ctx.writer(source=reader) as writer:
            writer.write_all(stdout)
    ctx.say(f"rlscale curate: {result.summary(holdout_out)}")
    for note in stats.notes:
        ctx.say(f"rlscale curate: {note}")
    if batch_size:
        plan = result.schedule(batch_size)
        ctx.say(f"rlscale curate: at {batch_size} prompts/step (unshuffled, drop_last): "
                f"{plan.steps_per_epoch} step(s) per epoch x {plan.epochs} epoch(s) = "
                f"{plan.total_steps} steps, {plan.prompts_seen} prompts; {plan.never_seen} "
                "row(s) never seen")
