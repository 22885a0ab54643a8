"""``rlscale eval``: test loss and pass@k per group from scored samples."""

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
    parse_assignments,
    parse_csv_list,
    progress,
    report_skipped,
    run_meta,
    say,
    warn_if_waiting_on_tty,
)
from rlscale.core.errors import UsageError

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


def command(
    inputs: InputsArg = None,
    output: OutputOpt = None,
    by: ByOpt = None,
    k: KOpt = "1",
    bootstrap: BootstrapOpt = 1000,
    seed: SeedOpt = 0,
    reward_field: RewardFieldOpt = "reward",
    prompt_field: PromptFieldOpt = "prompt_id",
    threshold: ThresholdOpt = 0.5,
    set_fields: SetOpt = None,
    input_format: InputFormatOpt = None,
    wide: WideOpt = None,
    skip_invalid: SkipInvalidOpt = False,
    rejects: RejectsOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    def body() -> None:
        import math

        import numpy as np

        from rlscale.core.evaluation import PromptTally, group_key, group_seed, summarize
        from rlscale.io.jsonl import MISSING, RecordReader, RecordWriter, get_path, refuse_overlap

        check_input_format(input_format)
        group_fields = parse_csv_list(by, "--by")
        constants = parse_assignments(set_fields, "--set")
        if len(set(group_fields)) != len(group_fields):
            raise UsageError(f"--by {by}: a field is named twice")
        ks = sorted(set(parse_csv_list(k, "--k", int)) | {1})
        if ks[0] < 1:
            raise UsageError(f"--k values must be integers >= 1, got {k!r}")
        if bootstrap < 0:
            raise UsageError(f"--bootstrap must be >= 0, got {bootstrap}")
        if not math.isfinite(threshold):
            raise UsageError(f"--threshold must be a finite number, got {threshold}")

        refuse_overlap({"-o": output, "--rejects": rejects}, inputs)
        warn_if_waiting_on_tty(inputs, quiet)
        groups: dict[tuple, tuple[list[Any], dict[Any, PromptTally]]] = {}
        non_binary = 0
        # (group, prompt, sample_idx) seen: a repeat means doubled input or a missing --by field
        seen_samples: set[tuple] = set()
        duplicates = 0
        with open_rejects(rejects, skip_invalid) as rejects_file:
            reader = RecordReader(inputs, required={prompt_field: "str|number"},
                                  skip_invalid=skip_invalid, rejects=rejects_file,
                                  input_format=input_format, wide=wide)
            for record, where in progress(reader, description="eval", quiet=quiet):
                reward = get_path(record, reward_field)
                if reward is MISSING:
                    reader.invalid(where, f"missing required field '{reward_field}'")
                    continue
                if isinstance(reward, bool):
                    reward = float(reward)
                elif not isinstance(reward, (int, float)) or not math.isfinite(reward):
                    shown = "null" if reward is None else repr(reward)[:40]
                    reader.invalid(where, f"field '{reward_field}' must be a finite number or "
                                          f"boolean, got {shown}")
                    continue
                values = []
                for name in group_fields:
                    value = get_path(record, name)
                    if value is MISSING:
                        reader.invalid(where, f"missing group field '{name}' (from --by {by})")
                        break
                    values.append(value)
                else:
                    key = group_key(values)
                    entry = groups.get(key)
                    if entry is None:
                        entry = groups[key] = (values, {})
                    prompt = record[prompt_field]
                    prompt_key = float(prompt) if not isinstance(prompt, str) else prompt
                    tally = entry[1].get(prompt_key)
                    if tally is None:
                        tally = entry[1][prompt_key] = PromptTally()
                    tally.add(float(reward), threshold)
                    non_binary += reward not in (0, 1)
                    sample = record.get("sample_idx")
                    if isinstance(sample, (int, str)):
                        marker = (key, prompt_key, sample)
                        duplicates += marker in seen_samples
                        seen_samples.add(marker)
        reader.require_complete("no test loss was computed")

        null_k: dict[int, list[int]] = {}
        meta = run_meta(seed, bootstrap=bootstrap, threshold=threshold)
        with RecordWriter(output, tool=NAME, source=reader) as writer:
            for key, (values, tallies) in groups.items():
                rng = np.random.default_rng(group_seed(seed, key)) if bootstrap else None
                stats = summarize(tallies.values(), ks, bootstrap, rng)
                clash = sorted(constants.keys() & {*stats, *group_fields, *meta})
                if clash:  # checked before the first record is written
                    raise UsageError(f"--set {clash[0]}: eval computes this field itself; "
                                     "choose another name")
                out = {**constants, **dict(zip(group_fields, values, strict=True))}
                out.update(stats)
                for name, value in meta.items():
                    out.setdefault(name, value)
                writer.write(out)
                for kk in ks[1:]:
                    if stats[f"pass@{kk}"] is None:
                        null_k.setdefault(kk, []).append(min(t.n for t in tallies.values()))
        for kk, mins in null_k.items():
            say(f"rlscale {NAME}: pass@{kk} is null in {len(mins)} group(s): some prompts have "
                f"fewer than {kk} samples (fewest: {min(mins)})", quiet)
        if duplicates:
            say(f"rlscale {NAME}: warning: {duplicates} sample(s) repeat a (prompt_id, sample_idx) "
                "already seen in their group; is the input doubled, or a --by field missing?",
                quiet)
        if non_binary:
            say(f"rlscale {NAME}: note: {non_binary} reward(s) are not 0/1; pass@k counts reward > "
                f"{threshold:g} as correct, mean_reward is the raw mean", quiet)
        report_skipped(NAME, reader.n_skipped, rejects, quiet)

    handle_errors(NAME, debug, body)
