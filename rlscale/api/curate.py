"""``rlscale.curate``: problems -> deduplicated, decontaminated, curriculum-ordered training
records, a held-out set and data-reuse subsets (what ``rlscale curate`` writes)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from rlscale.api._records import located
from rlscale.core.errors import OptionError, RecordError, RlscaleError

if TYPE_CHECKING:
    from rlscale.core.curation import CurateOptions, CurateStats, Schedule

Records = Iterable[Mapping[str, Any]]


def curate(
    records: Records,
    *,
    prompt_field: str | None = None,
    answer_field: str | None = None,
    data_source: str | None = None,
    dedup: str = "normalised",
    near_dup: float | None = None,
    near_dup_ngram: int = 5,
    num_perm: int = 128,
    exclude: str | Iterable[str] | Records | None = None,
    exclude_ngram: int = 13,
    exclude_overlap: float = 0.5,
    pass_rate_field: str | None = None,
    pass_rates: str | Iterable[str] | Records | None = None,
    reward_field: str = "reward",
    min_pass_rate: float | None = None,
    max_pass_rate: float | None = None,
    easy_threshold: float = 0.3,
    order: str = "curriculum",
    holdout: int = 0,
    stratify: str = "easy-hard",
    reuse: int | None = None,
    budget: int | None = None,
    expand: bool = False,
    nested: bool = False,
    template: str = "none",
    seed: int = 42,
    dropped: Callable[[dict[str, Any]], Any] | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> Curation:
    """Curate problems the way Tan et al. (2025) did; the options are ``rlscale curate``'s.

    ``records``: dicts with a prompt (``prompt``, ``problem`` or ``question``, or
    ``prompt_field``) and an answer, or a reader of files. Duplicates, benchmark overlaps
    (``exclude``: benchmark records or the paths of their files) and problems outside
    ``min_pass_rate``..``max_pass_rate`` are dropped (each to ``dropped``, when given, with
    ``drop_reason`` and ``drop_detail``); a pass rate is a record field or, with ``pass_rates``
    (scored rollouts, or the paths of JSONL files of them), the mean ``reward_field`` per prompt
    id. Returns a :class:`Curation`: an iterator of the training records, which streams (one
    record out per record in, as it is read) with ``order="keep"`` and no ``holdout`` or
    ``reuse``; ``.train`` and ``.holdout`` are the lists. ``progress``, when given, wraps the
    stream of resolved problems (a progress bar).

    Bad option values raise :class:`~rlscale.core.errors.OptionError` naming the parameter; a
    bad record raises :class:`~rlscale.core.errors.RecordError` naming ``<records>:N``.

    >>> problems = [{"prompt": "What is 1+1?", "answer": "2", "pass_rate": 0.25},
    ...             {"prompt": "What is 2+2?", "answer": "4", "pass_rate": 0.75},
    ...             {"prompt": "what is 1 + 1 ?", "answer": "2"}]
    >>> [(r["prompt"], r["difficulty"]) for r in curate(problems)]
    [('What is 2+2?', 'easy'), ('What is 1+1?', 'hard')]
    >>> split = curate(problems, holdout=1)  # the paper's stratified split: N/2 easy, rest hard
    >>> [r["prompt"] for r in split.train], [r["prompt"] for r in split.holdout]
    (['What is 2+2?'], ['What is 1+1?'])
    """
    from rlscale.core.curation import Curator, FieldSpec

    options = checked_options(locals())
    contamination = None
    if exclude is not None:
        contamination = _exclusions(exclude, prompt_field, exclude_ngram, exclude_overlap)
    scored = _scored(pass_rates, reward_field) if pass_rates is not None else None
    spec = FieldSpec(prompt_field=prompt_field, answer_field=answer_field,
                     pass_rate_field=pass_rate_field)
    problems = _problems(*_pairs(records), spec, data_source)
    return Curation(progress(problems) if progress else problems,
                    Curator(options, contamination, scored), dropped,
                    getattr(records, "require_complete", None))


def checked_options(values: Mapping[str, Any]) -> CurateOptions:
    """The checked :class:`~rlscale.core.curation.CurateOptions` of :func:`curate`'s parameters
    in ``values`` (by name; others, like outputs, are not looked at). ``template``: none, paper,
    bare, or the path of a file with ``{prompt}`` where the problem goes."""
    from rlscale.core.curation import CurateOptions

    if values.get("pass_rates") is not None and values.get("pass_rate_field"):
        raise OptionError("pass_rates", "and pass_rate_field exclude each other: give one")
    names = {field.name for field in dataclasses.fields(CurateOptions)} - {"template_text"}
    options = CurateOptions(**{name: values[name] for name in names if name in values})
    options.template, options.template_text = _template(options.template)
    options.check()
    return options


class Curation:
    """What :func:`curate` returns. Iterating yields the training records in output order (as
    the input is read when :attr:`streams`, else once all of it is read); or take the lists
    :attr:`train` and :attr:`holdout` (reading all input), or the same rows in VeRL layout with
    :meth:`verl` — one way or the other: records that streamed by are not kept."""

    def __init__(self, problems: Iterable, curator: Any, dropped: Callable | None,
                 require_complete: Callable[[str], None] | None):
        self._problems, self.curator, self._dropped = problems, curator, dropped
        self.options = curator.options
        self._require_complete = require_complete
        self._rows: list | None = None  # (problem, epoch) of the training rows, once known
        self._test: list = []
        self._iterator: Iterator[dict[str, Any]] | None = None
        self.n_train = self.n_easy = 0  # training rows (so far, while they stream)

    @property
    def streams(self) -> bool:
        """Whether the training records come out as the input is read."""
        return self.options.streams

    @property
    def stats(self) -> CurateStats:
        """Counts of what was read, kept and dropped (complete once the input is read)."""
        return self.curator.stats

    def __iter__(self) -> Curation:
        return self

    def __next__(self) -> dict[str, Any]:
        if self._iterator is None:
            self._iterator = (self._stream() if self.streams and self._rows is None
                              else iter(self.train))
        return next(self._iterator)

    @property
    def train(self) -> list[dict[str, Any]]:
        """The training records (split ``train``), in output order."""
        from rlscale.core.curation import output_record

        return [output_record(p, self.options, "train", e) for p, e in self._finish()]

    @property
    def holdout(self) -> list[dict[str, Any]]:
        """The held-out records (split ``test``); empty without ``holdout``."""
        from rlscale.core.curation import output_record

        self._finish()
        return [output_record(p, self.options, "test") for p in self._test]

    def verl(self, split: str = "train") -> list[dict[str, Any]]:
        """The ``train`` or ``holdout`` rows in VeRL layout (the five columns of
        :mod:`rlscale.io.verl_parquet`, for :func:`~rlscale.io.verl_parquet.write_verl_parquet`)."""
        from rlscale.core.curation import verl_fields

        if split not in ("train", "holdout"):
            raise OptionError("split", f"must be train or holdout, got {split!r}")
        rows = self._finish()
        if split == "train":
            return [verl_fields(p, self.options, "train", e) for p, e in rows]
        return [verl_fields(p, self.options, "test") for p in self._test]

    def summary(self, held_out_to: str | None = None) -> str:
        """One line on what was read, dropped and written (held out to ``held_out_to``)."""
        from rlscale.core.curation import summary

        return summary(self.curator, self.n_train, self.n_easy, self._test, held_out_to)

    def schedule(self, batch_size: int) -> Schedule:
        """What an unshuffled trainer with ``drop_last`` makes of the training rows at
        ``batch_size`` prompts per step: an expanded reuse subset is one pass, a plain one is
        replayed ``reuse`` times."""
        from rlscale.core.curation import training_schedule

        if batch_size < 1:
            raise OptionError("batch_size", f"must be >= 1; got {batch_size}")
        epochs = 1 if self.options.expand else (self.options.reuse or 1)
        return training_schedule(self.n_train, batch_size, epochs)

    def _screened(self) -> Iterator[Any]:
        """The problems that pass the per-record screens; the others go to ``dropped``."""
        from rlscale.core.curation import output_record

        for problem in self._problems:
            verdict = self.curator.screen(problem)
            if verdict is None:
                yield problem
            elif self._dropped is not None:
                record = output_record(problem, self.options, "dropped")
                record["drop_reason"], record["drop_detail"] = verdict
                self._dropped(record)

    def _stream(self) -> Iterator[dict[str, Any]]:
        from rlscale.core.curation import EASY, output_record

        for problem in self._screened():
            self.n_train += 1
            self.n_easy += problem.difficulty == EASY
            yield output_record(problem, self.options, "train")

    def _finish(self) -> list:
        """Read all input, then order, hold out and subsample (once)."""
        from rlscale.core.curation import EASY

        if self._rows is None:
            if self._iterator is not None:
                raise RlscaleError("the training records have streamed by: take .train, "
                                   ".holdout or .verl() before iterating, not after")
            kept = list(self._screened())
            if self.options.holdout and self._require_complete is not None:
                self._require_complete("nothing was written")  # a split needs the whole batch
            if self.streams:
                self._rows = [(problem, None) for problem in kept]
            else:
                try:
                    result = self.curator.finish(kept)
                except ValueError as exc:
                    raise RlscaleError(str(exc)) from None
                self._rows, self._test = result.train, result.test
            self.n_train = len(self._rows)
            self.n_easy = sum(problem.difficulty == EASY for problem, _ in self._rows)
        return self._rows


# --- inputs ---------------------------------------------------------------------------------

def _refuse(where: Any, message: str, record: Any = None) -> None:
    raise RecordError(where.source, where.line, message)


def _pairs(records: Any) -> tuple[Iterable, Callable[..., None]]:
    """(record, where) pairs and the way to refuse one (raise, or skip per ``--skip-invalid``)."""
    from rlscale.io.verl_parquet import InputReader

    if isinstance(records, InputReader):  # knows how to copy a parquet row to --rejects
        return records, records.invalid
    items = located(records)
    return items, lambda where, message, record=None: items.invalid(where, message)


def _paths(value: Any) -> list[str] | None:
    """The paths in ``value`` (one path, or a list of them), or None for records."""
    if isinstance(value, (str, os.PathLike)):
        return [os.fspath(value)]
    if isinstance(value, (list, tuple)) and value \
            and all(isinstance(item, (str, os.PathLike)) for item in value):
        return [os.fspath(item) for item in value]
    return None


def _side(records: Any, name: str) -> tuple[Iterable, Callable[..., None]]:
    """(record, where) pairs of a side input given as records (named ``<name>:N``)."""
    from rlscale.io.jsonl import RecordReader, Where
    from rlscale.io.verl_parquet import InputReader

    if isinstance(records, (RecordReader, InputReader)):
        return _pairs(records)

    def pairs():
        for line, record in enumerate(records, 1):
            where = Where(f"<{name}>", line)
            if not isinstance(record, Mapping):
                _refuse(where, f"expected a dict, got {type(record).__name__}")
            yield dict(record), where

    return pairs(), _refuse


def _problems(pairs: Iterable, invalid: Callable[..., None], spec: Any,
              data_source: str | None) -> Iterator[Any]:
    """Each record as a Problem; a bad one goes to ``invalid``."""
    from rlscale.core.curation import default_data_source, resolve_problem

    source, file_spec = None, spec
    for record, where in pairs:
        if where.source != source:  # records without data_source get their file's
            source = where.source
            file_spec = dataclasses.replace(
                spec, default_data_source=data_source or default_data_source(source))
        try:
            yield resolve_problem(record, str(where), file_spec)
        except ValueError as exc:
            invalid(where, str(exc), record)


def _exclusions(exclude: Any, prompt_field: str | None, ngram: int, overlap: float) -> Any:
    """The benchmark problems to keep out, indexed (a match names the benchmark's record)."""
    from rlscale.core.curation import PROMPT_FIELDS, ContaminationIndex, FieldSpec
    from rlscale.io.verl_parquet import InputReader

    paths = _paths(exclude)
    pairs = _pairs(InputReader(paths)) if paths is not None else _side(exclude, "exclude")
    index = ContaminationIndex(ngram=ngram, overlap=overlap)
    names = ",".join(([prompt_field] if prompt_field else []) + list(PROMPT_FIELDS))
    spec = FieldSpec(prompt_field=names, answer_required=False)
    for problem in _problems(*pairs, spec, "benchmark"):
        index.add(problem.text, problem.where)
    return index


def _scored(pass_rates: Any, reward_field: str) -> dict[str, tuple[float, int]]:
    """Pass rate (mean reward) and sample count per prompt id (as identity.prompt_key)."""
    from rlscale.core.curation import mean_by_key
    from rlscale.core.identity import prompt_key
    from rlscale.io.jsonl import RecordReader, check_fields

    paths = _paths(pass_rates)
    required = {"prompt_id": "str|number"}
    pairs, invalid = (_pairs(RecordReader(paths)) if paths is not None
                      else _side(pass_rates, "pass_rates"))
    values = []
    for record, where in pairs:
        try:
            check_fields(record, required)
        except ValueError as exc:
            invalid(where, str(exc))
            continue
        value = record.get(reward_field)
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, (int, float)) or value != value:
            invalid(where, f"field '{reward_field}' must be a number (the reward of one "
                           "sample); name another with reward_field")
            continue
        if not 0.0 <= value <= 1.0:
            invalid(where, f"field '{reward_field}' must be in [0, 1] to average into a pass "
                           f"rate, got {value}")
            continue
        values.append((prompt_key(record["prompt_id"]), float(value)))
    return mean_by_key(values)


def _template(template: str) -> tuple[str, str | None]:
    """(mode, text): a named template, or ``file`` and the text of the template file."""
    from rlscale.core.curation import TEMPLATES

    if template in TEMPLATES:
        return template, None
    if not os.path.isfile(template):
        raise OptionError("template", f"must be none, paper, bare or a template file; "
                          f"{template!r} is not a file")
    with open(template, encoding="utf-8") as handle:
        text = handle.read()
    if "{prompt}" not in text:
        raise OptionError("template", f"{template}: the file must contain {{prompt}} where "
                          "the problem goes")
    return "file", text
