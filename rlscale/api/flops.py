"""``rlscale.flops``: parameter counts and cumulative training compute per step (streaming)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from rlscale.api._options import OptionsError, listed
from rlscale.api._records import located
from rlscale.core.errors import OptionError, RlscaleError


def flops(
    records: Iterable[Mapping[str, Any]] | None = None,
    *,
    model: str | None = None,
    n_params: float | None = None,
    n_def: str = "nominal",
    prompts_per_step: float | None = None,
    count: str | Sequence[str] | None = None,
    run: str = "run_id",
    from_verl_log: Sequence[str] | Any | None = None,
    holdout_source: Sequence[str] | Mapping[str, float] | None = None,
    val_metric: str | None = None,
    run_id: str | None = None,
    all_steps: bool = False,
    keep: Sequence[str] | None = None,
    phi: bool = False,
    notes: list[str] | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> Iterator[dict[str, Any]]:
    """Add ``N``, ``flops_step`` = 6·N·n_tokens (the paper's C = 6NT), cumulative ``C``,
    prompts ``D`` and tokens ``T`` to per-step records (``n_tokens``, optional ``step``,
    ``n_groups``, ``N``), summed per run (the ``run`` field). One output record per input
    record, in order.

    N is ``n_params``, else ``model``'s size label (a Hugging Face directory or config.json;
    ``n_def`` "total" or "non-embedding" counts its parameters instead), else each record's
    ``N``. ``count`` adds 2·N·n_tokens per extra forward pass ("rollout", "reference",
    "old-logprob", or "all"). ``prompts_per_step`` overrides the records' ``n_groups`` (default
    512). ``phi`` adds the paper's compute factor ``phi`` and ``C_ideal`` = N·D·phi (it needs
    every record before the first comes out).

    ``from_verl_log`` (paths of VeRL logs, one run each, or a
    :class:`~rlscale.io.verl_log.VerlLogs`) reads logs instead of ``records``: per-step records
    with ``n_tokens``, ``score/<data_source>`` fields and ``loss`` = 1 - the weighted score of
    ``holdout_source`` (``["NAME=WEIGHT", ...]`` or ``{name: weight}``; default: the paper's
    held-out set); ``val_metric``, ``run_id``, ``all_steps`` and ``keep`` are the command's
    log options. With ``model`` and neither input, yields the model's parameter counts.
    ``notes``, when given, gets the lines the command prints on stderr. Options are checked
    when called, records as they stream.

    >>> steps = [{"step": 1, "n_tokens": 1000}, {"step": 2, "n_tokens": 1000}]
    >>> [(r["C"], r["D"]) for r in flops(steps, n_params=1e9)]
    [(6000000000000.0, 512), (12000000000000.0, 1024)]
    """
    from rlscale.core.flops import EXTRA_PASSES, N_DEFINITIONS, StepAccumulator

    if n_def not in N_DEFINITIONS:
        raise OptionError("n_def", f"must be one of {', '.join(N_DEFINITIONS)}, got {n_def!r}")
    extra = listed(count, "count")
    if extra == ["all"]:
        extra = list(EXTRA_PASSES)
    for name in extra:
        if name not in EXTRA_PASSES:
            raise OptionError("count", f": unknown pass {name!r}; expected "
                              f"{', '.join(EXTRA_PASSES)} or all")
    if prompts_per_step is not None and not 0 <= prompts_per_step < math.inf:
        raise OptionError("prompts_per_step", f"must be a number >= 0, got {prompts_per_step:g}")
    if from_verl_log is not None and records is not None:
        raise OptionsError("give either records or {from_verl_log}, not both")
    if from_verl_log is None and any((holdout_source, run_id, all_steps, keep, val_metric)):
        raise OptionsError("{holdout_source}, {run_id}, {all_steps}, {keep} and {val_metric} "
                           "need {from_verl_log}")
    if n_params is not None and n_def != "nominal":
        raise OptionsError(f"{{n_params}} sets the nominal N; with {{n_def}} {n_def} N is "
                           "counted from {model}, so drop one of them")
    if model is not None and records is None and from_verl_log is None:
        return iter([param_report(model)])
    fixed_n, n_source = _fixed_n(n_def, n_params, model)
    accumulator = StepAccumulator(extra)
    names: dict[tuple, Any] = {}  # run key -> the run's first value, to name it in notes
    if from_verl_log is not None:
        if fixed_n is None:
            raise OptionsError("{from_verl_log} needs {n_params} or {model} (a log has no N)")
        steps = _from_logs(from_verl_log, accumulator, names, fixed_n, holdout_source,
                           val_metric, run_id, all_steps, keep, prompts_per_step,
                           progress or iter)
        run = "run_id"
    elif records is None:
        raise OptionsError("give records, {from_verl_log} or {model}")
    else:
        steps = _from_records(records, accumulator, names, fixed_n, prompts_per_step, run,
                              progress or iter)
    return _finish(steps, accumulator, names, run, phi, fixed_n, n_source, extra, notes)


def param_report(model: str) -> dict[str, Any]:
    """Parameter counts of a Hugging Face model (a directory or its config.json; no weights
    needed): what ``flops(model=...)`` yields without records."""
    from rlscale.core.flops import count_params
    from rlscale.io.model_config import load_config, nominal_from_model

    config, config_path = load_config(model)
    counts = count_params(config)
    nominal, how = nominal_from_model(model, config, counts.total)
    return {"model": model, "config": config_path, "model_type": counts.model_type,
            "n_params_total": counts.total, "n_params_non_embedding": counts.non_embedding,
            "n_params_embedding": counts.embedding, "tied_embeddings": counts.tied_embeddings,
            "n_params_nominal": nominal, "nominal_from": how}


def _fixed_n(n_def: str, n_params: float | None, model: str | None) -> tuple[float | None, str]:
    """The N given as an option (None: take it from each record), and how it was found."""
    if n_params is not None and not 0 < n_params < math.inf:
        raise OptionError("n_params", f"must be a positive number, got {n_params:g}")
    if n_def == "nominal":
        if n_params is not None:
            return n_params, "--n-params"
        if model is not None:
            report = param_report(model)
            return report["n_params_nominal"], f"nominal, {report['nominal_from']}"
        return None, "record field N"
    if model is None:
        raise OptionsError(f"{{n_def}} {n_def} needs {{model}} (a config.json to count "
                           "parameters)")
    report = param_report(model)
    key = "n_params_total" if n_def == "total" else "n_params_non_embedding"
    return float(report[key]), f"{n_def} parameters of {report['config']}"


def _from_records(records, accumulator, names, fixed_n, prompts_per_step, run, progress):
    from rlscale.core.flops import PAPER_PROMPTS_PER_STEP
    from rlscale.core.identity import value_key

    items = located(records, required={"n_tokens": "number"},
                    optional={"step": "number", "n_groups": "number", "N": "number"})
    for record, where in progress(items):
        n_tokens = record["n_tokens"]
        if n_tokens < 0:
            items.invalid(where, f"field 'n_tokens' must be >= 0, got {n_tokens}")
            continue
        step = record.get("step")
        if step is not None and (step < 0 or step != int(step)):
            items.invalid(where, f"field 'step' must be an integer >= 0, got {step}")
            continue
        n = fixed_n
        if n is None:
            n = record.get("N")
            if n is None:
                items.invalid(where, "no N: the record has no field 'N'; pass --n-params or "
                              "--model")
                continue
            if n <= 0:
                items.invalid(where, f"field 'N' must be > 0, got {n}")
                continue
        # training prompts per step: never eval's n_prompts (the held-out set's size)
        prompts = prompts_per_step
        if prompts is None:
            prompts = record.get("n_groups")
            if prompts is None:
                prompts = PAPER_PROMPTS_PER_STEP
            elif prompts < 0:
                items.invalid(where, f"field 'n_groups' must be >= 0, got {prompts}")
                continue
        name = record.get(run)
        key = value_key(name)
        names.setdefault(key, name)
        try:
            fields = accumulator.add(key, None if step is None else int(step), n_tokens,
                                     prompts, n)
        except ValueError as exc:
            items.invalid(where, f"{'' if name is None else f'run {name}: '}{exc}")
            continue
        yield {**record, "N": n, **fields}


def _from_logs(logs, accumulator, names, n, holdout_source, val_metric, run_id, all_steps,
               keep, prompts_per_step, progress):
    from rlscale.core.flops import PAPER_PROMPTS_PER_STEP
    from rlscale.core.identity import value_key
    from rlscale.io.verl_log import (
        PAPER_HOLDOUT_SOURCES,
        VerlLogs,
        parse_holdout_sources,
        run_records,
    )

    if not isinstance(logs, VerlLogs):
        logs = VerlLogs([logs] if isinstance(logs, str) else logs)
    if run_id is not None and len(logs.paths) > 1:
        raise OptionsError("{run_id} needs a single {from_verl_log} (each log is one run)")
    if isinstance(holdout_source, Mapping):
        holdout_source = [f"{name}={weight}" for name, weight in holdout_source.items()]
    try:
        weights = (parse_holdout_sources(holdout_source) if holdout_source
                   else dict(PAPER_HOLDOUT_SOURCES))
    except ValueError as exc:
        raise OptionError("holdout_source", str(exc).removeprefix("--holdout-source ")) from None
    prompts = PAPER_PROMPTS_PER_STEP if prompts_per_step is None else prompts_per_step

    def steps():
        for log in logs:
            records = run_records(log, weights, keep or (), val_metric, all_steps)
            this_run = run_id if run_id is not None else log.source
            key = value_key(this_run)
            names.setdefault(key, this_run)
            for record in progress(records):
                fields = accumulator.add(key, record["step"], record["n_tokens"], prompts, n)
                if "loss" in record or all_steps:
                    yield {"run_id": this_run, **record, "N": n, **fields}

    return steps()


def _finish(steps, accumulator, names, run, phi, n, n_source, extra, notes):
    """The records, with phi when asked; then the notes the command prints."""
    if phi:
        steps = _with_phi(list(steps), run, notes)
    yield from steps
    if notes is None:
        return
    from rlscale.core.identity import label

    for key, previous, step in accumulator.gaps[:5]:
        after = "the start" if previous is None else f"step {previous}"
        notes.append(f"warning: run {label(names[key])}: step {step} follows {after}; C, D and T "
                     "count only the steps present")
    if len(accumulator.gaps) > 5:
        notes.append(f"warning: {len(accumulator.gaps) - 5} more step gap(s)")
    if accumulator.runs:
        n_text = f"{n:.4g} ({n_source})" if n is not None else "from each record's N"
        passes = "6NT" + (f" + 2NT x {len(set(extra))} ({', '.join(extra)})" if extra else "")
        top = max(t.C for t in accumulator.runs.values())
        notes.append(f"N = {n_text}; {passes}; {len(accumulator.runs)} run(s), "
                     f"{sum(t.n_steps for t in accumulator.runs.values())} step(s), "
                     f"max C = {top:.4g}")


def _with_phi(records: list[dict[str, Any]], run: str, notes: list[str] | None):
    from rlscale.core.flops import estimate_phi
    from rlscale.core.identity import value_key

    seen = set()
    points = []
    for index, record in enumerate(records):
        step = record.get("step")
        key = (value_key(record.get(run)), step)
        if step is not None and key in seen:
            continue  # several records of one step (e.g. per data source) count once
        seen.add(key)
        points.append((record["N"], index if step is None else step, record["C"], record["D"]))
    if not points:
        return records
    try:
        phi_global, per_size = estimate_phi(points)
    except ValueError as exc:
        raise RlscaleError(f"--phi: {exc}") from None
    if notes is not None:
        sizes = ", ".join(f"N={n:.3g}: {value:.4g}" for n, value in per_size.items())
        notes.append(f"phi = {phi_global:.4g} (per size: {sizes})")
    return [{**record, "phi": phi_global, "C_ideal": record["N"] * record["D"] * phi_global}
            for record in records]
