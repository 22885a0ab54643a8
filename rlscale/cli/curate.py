"""``rlscale curate``: raw problem sets -> deduplicated, decontaminated, curriculum-ordered
training data, a held-out set and data-reuse subsets, as JSONL or VeRL parquet."""

from __future__ import annotations

import dataclasses
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
    progress,
    report_skipped,
    run_meta,
    say,
    warn_if_waiting_on_tty,
)
from rlscale.core.errors import RlscaleError, UsageError

NAME = "curate"
HELP = (
    "Build RL math training data the way Tan et al. (2025) did: read problems (JSONL, VeRL "
    "parquet or CSV/TSV, by extension or --input-format), drop exact, normalised and (--near-dup) MinHash "
    "near-duplicates, drop problems overlapping benchmarks (--exclude), label easy/hard from a "
    "pass rate (a field, or mean reward per prompt_id from scored rollouts), order easy->hard "
    "(curriculum), hold out a stratified test set and draw data-reuse subsets (budget // tau "
    "unique problems, easy share and order kept). Writes JSONL records (prompt_id, prompt, "
    "answer, data_source, pass_rate, difficulty, split + pass-through fields) or VeRL parquet "
    "(--to-verl). Streams (one record in, at most one out) with --order keep and no --holdout "
    "or --reuse; curriculum/random order, --holdout and --reuse need all input in memory. "
    "prompt_id: kept if the input has one; else data_source#extra_info.index when an index "
    "exists; else p-<sha1 of the normalised problem text>[:16] (stable across runs and "
    "templates). A missing pass rate counts as 0.0 (hardest) for ordering and filters and as "
    "hard, as in the paper. Same input and --seed give byte-identical output."
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

_ORDERS = "curriculum|random|keep"
_STRATIFY = "easy-hard|proportional"
_DEDUP = "normalised|exact|none"




def _check_fraction(value: float | None, option: str, low_open: bool = True) -> None:
    if value is None:
        return
    if not (0.0 < value <= 1.0 if low_open else 0.0 <= value <= 1.0):
        raise UsageError(f"{option} must be in {'(0' if low_open else '[0'}, 1]; got {value}")


def _read_template(template: str) -> tuple[str, str | None]:
    from rlscale.core.curation import TEMPLATES

    if template in TEMPLATES:
        return template, None
    if not os.path.isfile(template):
        raise UsageError(f"--template must be none, paper, bare or a template file; "
                         f"{template!r} is not a file")
    with open(template, encoding="utf-8") as handle:
        text = handle.read()
    if "{prompt}" not in text:
        raise UsageError(f"--template {template}: the file must contain {{prompt}} where the "
                         "problem goes")
    return "file", text


def _default_data_source(path: str) -> str:
    """``math__<file stem>`` (the paper's naming: VeRL routes math__* to the math scorer)."""
    if path == "-":
        return "math"
    stem = os.path.basename(path)
    for suffix in (".gz", ".jsonl", ".json", ".parquet", ".pq", ".csv", ".tsv", ".tab"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem if stem.startswith("math__") else f"math__{stem}"


def _problems(reader, spec, data_source):
    """Resolve each input record into a Problem; bad records go through reader.invalid."""
    from rlscale.core.curation import resolve_problem

    current = None
    file_spec = spec
    for record, where in reader:
        if reader.current_path != current:
            current = reader.current_path
            file_spec = dataclasses.replace(
                spec, default_data_source=data_source or _default_data_source(current))
        try:
            yield resolve_problem(record, str(where), file_spec)
        except ValueError as exc:
            reader.invalid(where, str(exc), record)


def _load_exclusions(paths, prompt_field, ngram, overlap, skip_invalid, quiet):
    from rlscale.core.curation import PROMPT_FIELDS, ContaminationIndex, FieldSpec
    from rlscale.io.verl_parquet import InputReader

    index = ContaminationIndex(ngram=ngram, overlap=overlap)
    names = ",".join(([prompt_field] if prompt_field else []) + list(PROMPT_FIELDS))
    spec = FieldSpec(prompt_field=names, answer_required=False)
    reader = InputReader(paths, skip_invalid=skip_invalid)
    for problem in _problems(reader, spec, "benchmark"):
        index.add(problem.text, problem.where)
    if reader.n_skipped:
        say(f"rlscale curate: skipped {reader.n_skipped} unreadable --exclude record(s)", quiet)
    return index


def _load_scored(path, reward_field):
    from rlscale.core.curation import mean_by_key
    from rlscale.io.jsonl import RecordReader

    reader = RecordReader([path], required={"prompt_id": "str|number"})
    pairs = []
    for record, where in reader:
        value = record.get(reward_field)
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, (int, float)) or value != value:
            reader.invalid(where, f"field '{reward_field}' must be a number (the reward of "
                                  "one sample); name another with --reward-field")
            continue
        if not 0.0 <= value <= 1.0:
            reader.invalid(where, f"field '{reward_field}' must be in [0, 1] to average into "
                                  f"a pass rate, got {value}")
            continue
        pairs.append((str(record["prompt_id"]), float(value)))
    return mean_by_key(pairs)


class _Staged:
    """curate's output files, written to temp files and published together once all of them
    are complete: a failure leaves none (and never half) of them. stdout comes last."""

    def __init__(self, reader):
        self.reader = reader
        self.files: list[Any] = []
        self.stdout_rows: list[Any] | None = None

    def writer(self, path):
        from rlscale.io.jsonl import RecordWriter

        writer = RecordWriter(path, tool=NAME, source=self.reader)
        self.files.append(writer)
        return writer

    def write(self, path, records_or_rows, as_parquet, meta) -> None:
        if path in (None, "-"):
            self.stdout_rows = list(records_or_rows)
        elif as_parquet:
            import pyarrow.parquet as pq

            from rlscale.io.jsonl import AtomicFile
            from rlscale.io.verl_parquet import verl_table

            table = verl_table(records_or_rows, meta)
            out = AtomicFile(path, compress=False)
            self.files.append(out)
            pq.write_table(table, out.handle, compression="snappy")
        else:
            self.writer(path).write_all(records_or_rows)

    def publish(self) -> None:
        for staged in self.files:
            staged.commit() if hasattr(staged, "commit") else staged.close(ok=True)
        if self.stdout_rows is not None:
            from rlscale.io.jsonl import RecordWriter

            with RecordWriter(None, tool=NAME, source=self.reader) as writer:
                writer.write_all(self.stdout_rows)

    def abort(self) -> None:
        for staged in self.files:
            staged.abort() if hasattr(staged, "abort") else staged.close(ok=False)


def _check_outputs(outputs: dict[str, str | None], inputs: list[str]) -> None:
    """Before any work: outputs are distinct, none is an input, every folder exists."""
    from rlscale.io.jsonl import refuse_overlap

    refuse_overlap(outputs, inputs)
    for option, path in outputs.items():
        if path not in (None, "-"):
            directory = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(directory):
                raise RlscaleError(f"{option} {path}: directory {directory} does not exist")


def command(
    inputs: InputsArg = None,
    output: OutputOpt = None,
    to_verl: Annotated[str | None, typer.Option(
        "--to-verl", metavar="FILE",
        help="Write the training rows as VeRL parquet to FILE (JSONL then only with -o).",
        rich_help_panel="Output")] = None,
    prompt_field: Annotated[str | None, typer.Option(
        "--prompt-field", metavar="NAMES",
        help="Field(s) holding the problem, tried in order (default: prompt,problem,question). "
             "A string or a list of {role, content} messages.",
        rich_help_panel="Input")] = None,
    answer_field: Annotated[str | None, typer.Option(
        "--answer-field", metavar="NAMES",
        help="Field(s) holding the answer (default: answer,ground_truth,"
             "reward_model.ground_truth,solution); from a 'solution' the last \\boxed{} is "
             "taken.", rich_help_panel="Input")] = None,
    data_source: Annotated[str | None, typer.Option(
        "--data-source", metavar="NAME",
        help="data_source for records without one (default: math__<file stem>).",
        rich_help_panel="Input")] = None,
    dedup: Annotated[str, typer.Option(
        "--dedup", metavar=_DEDUP,
        help="Drop copies: 'exact' same prompt string; 'normalised' also same text after "
             "folding case, whitespace, LaTeX spacing and the paper's template.",
        rich_help_panel="Dedup and decontamination")] = "normalised",
    near_dup: Annotated[float | None, typer.Option(
        "--near-dup", metavar="SIM",
        help="Also drop near-duplicates: MinHash-estimated Jaccard similarity of character "
             "n-grams >= SIM (e.g. 0.9).", rich_help_panel="Dedup and decontamination")] = None,
    near_dup_ngram: Annotated[int, typer.Option(
        "--near-dup-ngram", metavar="N", help="Character n-gram length for --near-dup.",
        rich_help_panel="Dedup and decontamination")] = 5,
    num_perm: Annotated[int, typer.Option(
        "--num-perm", metavar="K", help="MinHash signature length for --near-dup.",
        rich_help_panel="Dedup and decontamination")] = 128,
    exclude: Annotated[list[str] | None, typer.Option(
        "--exclude", metavar="FILE",
        help="Benchmark file(s) (JSONL or parquet; repeat or comma-separate) whose problems "
             "must not be trained on.", rich_help_panel="Dedup and decontamination")] = None,
    exclude_ngram: Annotated[int, typer.Option(
        "--exclude-ngram", metavar="N", help="Token n-gram length for --exclude overlap.",
        rich_help_panel="Dedup and decontamination")] = 13,
    exclude_overlap: Annotated[float, typer.Option(
        "--exclude-overlap", metavar="FRAC",
        help="Drop a problem sharing >= FRAC of the n-grams of one benchmark problem (of the "
             "smaller n-gram set); an exact normalised match always counts.",
        rich_help_panel="Dedup and decontamination")] = 0.5,
    pass_rate_field: Annotated[str | None, typer.Option(
        "--pass-rate-field", metavar="NAMES",
        help="Pass-rate field(s), looked up at top level then in extra_info "
             "(default: pass_rate,qwen2.5_7b_pass_rate).", rich_help_panel="Difficulty")] = None,
    pass_rates: Annotated[str | None, typer.Option(
        "--pass-rates", metavar="FILE",
        help="Scored rollouts (JSONL with prompt_id and a reward in [0, 1], e.g. from "
             "'rlscale reward'): pass rate = mean reward per prompt_id.",
        rich_help_panel="Difficulty")] = None,
    reward_field: Annotated[str, typer.Option(
        "--reward-field", metavar="NAME", help="Reward field in --pass-rates records.",
        rich_help_panel="Difficulty")] = "reward",
    min_pass_rate: Annotated[float | None, typer.Option(
        "--min-pass-rate", metavar="P", help="Drop problems with pass rate < P.",
        rich_help_panel="Difficulty")] = None,
    max_pass_rate: Annotated[float | None, typer.Option(
        "--max-pass-rate", metavar="P", help="Drop problems with pass rate > P.",
        rich_help_panel="Difficulty")] = None,
    easy_threshold: Annotated[float, typer.Option(
        "--easy-threshold", metavar="P", help="Easy iff pass rate >= P (paper: 0.3).",
        rich_help_panel="Difficulty")] = 0.3,
    order: Annotated[str, typer.Option(
        "--order", metavar=_ORDERS,
        help="curriculum: pass rate descending (easy->hard), stable, ties in seeded random "
             "order; random: seeded shuffle; keep: input order (streams).",
        rich_help_panel="Order and splits")] = "curriculum",
    holdout: Annotated[int, typer.Option(
        "--holdout", metavar="N", help="Hold out N problems (written to --holdout-out).",
        rich_help_panel="Order and splits")] = 0,
    holdout_out: Annotated[str | None, typer.Option(
        "--holdout-out", metavar="FILE",
        help="Where the held-out problems go (.parquet: VeRL parquet, else JSONL).",
        rich_help_panel="Order and splits")] = None,
    stratify: Annotated[str, typer.Option(
        "--stratify", metavar=_STRATIFY,
        help="easy-hard: N/2 easy + N/2 hard (the paper's 250/250); proportional: the input's "
             "easy share.", rich_help_panel="Order and splits")] = "easy-hard",
    reuse: Annotated[int | None, typer.Option(
        "--reuse", metavar="TAU",
        help="Data reuse: keep budget // TAU unique problems from the first --budget "
             "training rows, easy share and order kept (train TAU epochs unshuffled).",
        rich_help_panel="Order and splits")] = None,
    budget: Annotated[int | None, typer.Option(
        "--budget", metavar="N",
        help="Pool and prompt budget for --reuse (default: all training rows; paper: 51200).",
        rich_help_panel="Order and splits")] = None,
    expand: Annotated[bool, typer.Option(
        "--expand", help="Write the --reuse subset TAU times in epoch order (adds epoch).",
        rich_help_panel="Order and splits")] = False,
    nested: Annotated[bool, typer.Option(
        "--nested",
        help="Draw --reuse subsets as the released files were (pandas sample, seeds S and "
             "S+1): smaller subsets nest in larger ones; with --seed 42 on the paper's pool this "
             "reproduces them. Default: independent per TAU.",
        rich_help_panel="Order and splits")] = False,
    template: Annotated[str, typer.Option(
        "--template", metavar="none|paper|bare|FILE",
        help="paper: add the paper's instruction prefix and \\boxed{} instruction when "
             "missing; bare: remove them; FILE: text with {prompt} where the problem goes.",
        rich_help_panel="Output")] = "none",
    dropped: Annotated[str | None, typer.Option(
        "--dropped", metavar="FILE",
        help="Write every removed problem to FILE with drop_reason and drop_detail.",
        rich_help_panel="Output")] = None,
    batch_size: Annotated[int | None, typer.Option(
        "--batch-size", metavar="N",
        help="Prompts per training step (paper: 512): report steps per epoch, total steps and "
             "rows never seen with drop_last on stderr.", rich_help_panel="Output")] = None,
    seed: Annotated[int, typer.Option(
        "--seed", help="Random seed for tie order, shuffles and samples (paper: 42).")] = 42,
    input_format: InputFormatOpt = None,
    wide: WideOpt = None,
    skip_invalid: SkipInvalidOpt = False,
    rejects: RejectsOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    def body() -> None:
        from rlscale.core.curation import CurateOptions, Curator, FieldSpec, output_record
        from rlscale.io.jsonl import RecordWriter
        from rlscale.io.verl_parquet import InputReader

        check_choice(order, _ORDERS.split("|"), "--order")
        check_input_format(input_format)
        check_choice(stratify, _STRATIFY.split("|"), "--stratify")
        check_choice(dedup, _DEDUP.split("|"), "--dedup")
        _check_fraction(near_dup, "--near-dup")
        _check_fraction(exclude_overlap, "--exclude-overlap")
        _check_fraction(easy_threshold, "--easy-threshold", low_open=False)
        _check_fraction(min_pass_rate, "--min-pass-rate", low_open=False)
        _check_fraction(max_pass_rate, "--max-pass-rate", low_open=False)
        for value, option in ((near_dup_ngram, "--near-dup-ngram"), (num_perm, "--num-perm"),
                              (exclude_ngram, "--exclude-ngram")):
            if value < 1:
                raise UsageError(f"{option} must be >= 1; got {value}")
        if min_pass_rate is not None and max_pass_rate is not None \
                and min_pass_rate > max_pass_rate:
            raise UsageError("--min-pass-rate is larger than --max-pass-rate")
        if pass_rates and pass_rate_field:
            raise UsageError("use either --pass-rates or --pass-rate-field, not both")
        if holdout < 0:
            raise UsageError(f"--holdout must be >= 0; got {holdout}")
        if holdout and not holdout_out:
            raise UsageError("--holdout needs --holdout-out FILE")
        if holdout_out and not holdout:
            raise UsageError("--holdout-out needs --holdout N")
        if reuse is None and (budget is not None or expand or nested):
            raise UsageError("--budget, --expand and --nested need --reuse TAU")
        if reuse is not None and reuse < 1:
            raise UsageError(f"--reuse must be >= 1; got {reuse}")
        if batch_size is not None and batch_size < 1:
            raise UsageError(f"--batch-size must be >= 1; got {batch_size}")
        if budget is not None and budget < 1:
            raise UsageError(f"--budget must be >= 1; got {budget}")
        template_mode, template_text = _read_template(template)
        exclude_paths = [p.strip() for item in (exclude or []) for p in item.split(",")
                         if p.strip()]

        options = CurateOptions(
            dedup=dedup, near_dup=near_dup, near_dup_ngram=near_dup_ngram, num_perm=num_perm,
            min_pass_rate=min_pass_rate, max_pass_rate=max_pass_rate,
            easy_threshold=easy_threshold, order=order, holdout=holdout, stratify=stratify,
            reuse=reuse, budget=budget, nested=nested, expand=expand, template=template_mode,
            template_text=template_text, seed=seed)
        spec = FieldSpec(prompt_field=prompt_field, answer_field=answer_field,
                         pass_rate_field=pass_rate_field)

        contamination = None
        if exclude_paths:
            contamination = _load_exclusions(exclude_paths, prompt_field, exclude_ngram,
                                             exclude_overlap, skip_invalid, quiet)
        scored = _load_scored(pass_rates, reward_field) if pass_rates else None
        curator = Curator(options, contamination, scored)
        meta = run_meta(seed, command=NAME, order=order, dedup=dedup, near_dup=near_dup,
                        template=template, holdout=holdout, stratify=stratify, reuse=reuse,
                        budget=budget, nested=nested, expand=expand,
                        easy_threshold=easy_threshold)

        _check_outputs({"-o": output, "--to-verl": to_verl, "--holdout-out": holdout_out,
                        "--dropped": dropped, "--rejects": rejects},
                       [*(inputs or []), *exclude_paths, *([pass_rates] if pass_rates else [])])
        warn_if_waiting_on_tty(inputs, quiet)
        jsonl_out = output
        write_jsonl = to_verl is None or output is not None  # --to-verl alone: parquet only
        with open_rejects(rejects, skip_invalid) as rejects_file:
            reader = InputReader(inputs, skip_invalid=skip_invalid, rejects=rejects_file,
                                 input_format=input_format, wide=wide)
            staged = _Staged(reader)
            dropped_writer = staged.writer(dropped) if dropped else None
            kept = []
            n_easy = n_written = 0
            # with --order keep and no splits, records are written as they are screened
            main_writer = None
            if write_jsonl and options.streams:
                main_writer = (RecordWriter(None, tool=NAME, source=reader)
                               if jsonl_out in (None, "-") else staged.writer(jsonl_out))
            streamed = main_writer is not None and main_writer not in staged.files
            try:
                for problem in progress(_problems(reader, spec, data_source),
                                        description="curating", quiet=quiet):
                    verdict = curator.screen(problem)
                    if verdict is not None:
                        if dropped_writer is not None:
                            record = output_record(problem, options, "dropped")
                            record["drop_reason"], record["drop_detail"] = verdict
                            dropped_writer.write(record)
                        continue
                    if main_writer is not None:
                        main_writer.write(output_record(problem, options, "train"))
                        n_easy += problem.difficulty == "easy"
                        n_written += 1
                    if main_writer is None or to_verl:
                        kept.append(problem)
                if holdout:  # a split acts on the whole batch: never on a cut one
                    reader.require_complete("nothing was written")
            except BaseException:
                staged.abort()  # no half-written output files
                if streamed:
                    main_writer.close(ok=False)
                raise
            if streamed:
                main_writer.close(ok=True)

        report_skipped(NAME, reader.n_skipped, rejects, quiet)
        if scored is not None and curator.stats.missing_pass_rate:
            say(f"rlscale curate: {curator.stats.missing_pass_rate} problem(s) have no scored "
                f"rollouts in {pass_rates}; counted as pass rate 0 (hard)", quiet)
        if options.order == "curriculum" and curator.stats.kept \
                and curator.stats.missing_pass_rate == curator.stats.kept:
            say("rlscale curate: no pass rates found (see --pass-rate-field/--pass-rates); "
                "curriculum order is a seeded shuffle", quiet)

        try:
            rows, test, n_easy, n_written = _outputs(
                staged, curator, options, kept, write_jsonl, jsonl_out, to_verl, holdout,
                holdout_out, meta, n_easy, n_written)
        except BaseException:
            staged.abort()
            raise
        staged.publish()
        _summary(curator, n_written, n_easy, test, holdout_out, quiet)
        if batch_size:
            from rlscale.core.curation import training_schedule

            # an expanded file is one pass for the trainer; a plain subset is replayed tau times
            plan = training_schedule(len(rows), batch_size, 1 if expand else (reuse or 1))
            say(f"rlscale curate: at {batch_size} prompts/step (unshuffled, drop_last): "
                f"{plan.steps_per_epoch} step(s) per epoch x {plan.epochs} epoch(s) = "
                f"{plan.total_steps} steps, {plan.prompts_seen} prompts; {plan.never_seen} "
                "row(s) never seen", quiet)

    handle_errors(NAME, debug, body)



def _outputs(staged, curator, options, kept, write_jsonl, jsonl_out, to_verl, holdout,
             holdout_out, meta, n_easy, n_written):
    """Split and stage every output (published by the caller only if all succeed)."""
    from rlscale.core.curation import output_record
    from rlscale.io.verl_parquet import is_parquet_path

    if options.streams:
        rows = [(p, None) for p in kept]
        test = []
        if not write_jsonl:
            n_easy = sum(p.difficulty == "easy" for p in kept)
            n_written = len(kept)
    else:
        try:
            result = curator.finish(kept)
        except ValueError as exc:
            raise RlscaleError(str(exc)) from None
        rows, test = result.train, result.test
        n_easy = sum(p.difficulty == "easy" for p, _ in rows)
        n_written = len(rows)
        if write_jsonl:
            staged.write(jsonl_out, (output_record(p, options, "train", e) for p, e in rows),
                         False, meta)
    if to_verl:
        from rlscale.core.curation import verl_fields

        staged.write(to_verl, [verl_fields(p, options, "train", e) for p, e in rows], True, meta)
    if holdout:
        as_parquet = is_parquet_path(holdout_out)
        if as_parquet:
            from rlscale.core.curation import verl_fields

            test_rows = [verl_fields(p, options, "test") for p in test]
        else:
            test_rows = [output_record(p, options, "test") for p in test]
        staged.write(holdout_out, test_rows, as_parquet, meta)
    return rows, test, n_easy, n_written


def _summary(curator, n_written, n_easy, test, holdout_out, quiet) -> None:
    stats, dedup = curator.stats, curator.dedup.counts
    parts = [f"read {stats.read}",
             f"dropped {dedup.exact} exact + {dedup.normalised} normalised + {dedup.near} near "
             f"duplicate(s) ({dedup.answer_conflicts} with a different answer)"]
    if curator.contamination is not None:
        parts.append(f"{stats.contaminated} contaminated")
    if stats.below_min or stats.above_max:
        parts.append(f"{stats.below_min + stats.above_max} outside the pass-rate range")
    parts.append(f"{stats.missing_pass_rate} without a pass rate")
    if stats.renamed_ids:
        parts.append(f"{stats.renamed_ids} repeated prompt_id(s) renamed with ~N")
    share = f"{n_easy / n_written:.4f}" if n_written else "n/a"
    parts.append(f"wrote {n_written} training row(s) ({n_easy} easy, {n_written - n_easy} hard, "
                 f"easy share {share})")
    if holdout_out:
        test_easy = sum(p.difficulty == "easy" for p in test)
        parts.append(f"{len(test)} held out to {holdout_out} ({test_easy} easy, "
                     f"{len(test) - test_easy} hard)")
    say("rlscale curate: " + "; ".join(parts), quiet)
    for note in stats.notes:
        say(f"rlscale curate: {note}", quiet)
