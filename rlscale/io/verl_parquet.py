"""Read and write VeRL RL-dataset parquet files (the paper's training and benchmark format).

Layout (spec §5.1, checked on the released files): five columns

* ``data_source``: string, e.g. ``math__deepscaler_preview`` (VeRL routes the reward by it);
* ``prompt``: list of ``{content, role}`` messages (one ``user`` message in the paper's data;
  no chat template applied, VeRL applies the model's);
* ``ability``: string (``math``);
* ``reward_model``: ``{ground_truth: string, style: 'rule'}``;
* ``extra_info``: struct with ``index`` (int64), pass-rate fields (double, e.g.
  ``qwen2.5_7b_pass_rate``), ``split`` (string) and any other scalars.

pandas index columns (``__index_level_0__``, present in the released reuse subsets) are dropped
on reading. Rows are numbered from 1 so errors can name ``file.parquet:<row>``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson

from rlscale.core.errors import RlscaleError

VERL_COLUMNS = ("data_source", "prompt", "ability", "reward_model", "extra_info")
PANDAS_INDEX_PREFIX = "__index_level_"


def is_parquet_path(path: str) -> bool:
    return path.lower().endswith((".parquet", ".pq"))


def _pa():
    import pyarrow as pa

    return pa


def verl_base_schema():
    """Arrow types of the fixed VeRL columns (``extra_info`` varies and is built per file)."""
    pa = _pa()
    message = pa.struct([("content", pa.string()), ("role", pa.string())])
    return {
        "data_source": pa.string(),
        "prompt": pa.list_(message),
        "ability": pa.string(),
        "reward_model": pa.struct([("ground_truth", pa.string()), ("style", pa.string())]),
    }


def _open_parquet(path: str):
    import pyarrow.lib
    import pyarrow.parquet as pq

    if not os.path.exists(path):
        raise RlscaleError(f"{path}: no such file")
    if os.path.isdir(path):
        raise RlscaleError(f"{path}: is a directory, expected a parquet file")
    try:
        return pq.ParquetFile(path)
    except (pyarrow.lib.ArrowException, OSError) as exc:
        raise RlscaleError(f"{path}: not a readable parquet file ({exc})") from None


def iter_parquet_rows(path: str, batch_size: int = 2048) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(row_number, row)`` from a parquet file (1-based rows), batch by batch.

    Nested columns come back as plain dicts and lists; pandas index columns are dropped.
    """
    import pyarrow.lib

    handle = _open_parquet(path)
    names = [name for name in handle.schema_arrow.names
             if not name.startswith(PANDAS_INDEX_PREFIX)]
    row_number = 0
    try:
        for batch in handle.iter_batches(batch_size=batch_size, columns=names):
            for row in batch.to_pylist():
                row_number += 1
                yield row_number, row
    except pyarrow.lib.ArrowException as exc:
        raise RlscaleError(f"{path}: cannot read row {row_number + 1}: {exc}") from None


def prompt_to_messages(prompt: str | Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The ``prompt`` column value: a text becomes one ``user`` message."""
    if isinstance(prompt, str):
        return [{"content": prompt, "role": "user"}]
    return [{"content": str(m.get("content", "")), "role": str(m.get("role", "user"))}
            for m in prompt]


def _extra_info_type(key: str):
    """Fixed types for the keys VeRL files share; None lets Arrow infer the rest."""
    pa = _pa()
    if key == "index":
        return pa.int64()
    if key == "split":
        return pa.string()
    if "pass_rate" in key:
        return pa.float64()
    return None


def _extra_info_array(rows: Sequence[Mapping[str, Any]]):
    """A struct array from per-row extra_info dicts: union of keys in first-seen order."""
    pa = _pa()
    keys: list[str] = []
    seen: set[str] = set()
    for row in rows:
        for key in row["extra_info"]:
            if key not in seen:
                seen.add(key)
                keys.append(key)
    arrays = []
    for key in keys:
        values = [row["extra_info"].get(key) for row in rows]
        kind = _extra_info_type(key)
        try:
            arrays.append(pa.array(values, type=kind))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            raise RlscaleError(
                f"cannot store extra_info field '{key}' in parquet: its values have mixed or "
                f"unsupported types ({exc})") from None
    if not keys:
        return pa.array([{} for _ in rows], type=pa.struct([]))
    return pa.StructArray.from_arrays(arrays, names=keys)


def verl_table(rows: Sequence[Mapping[str, Any]], metadata: Mapping[str, Any] | None = None):
    """Build an Arrow table in VeRL layout from rows with the five VeRL keys."""
    pa = _pa()
    base = verl_base_schema()
    columns = {name: pa.array([row[name] for row in rows], type=kind)
               for name, kind in base.items()}
    extra = _extra_info_array(rows)
    fields = [pa.field(name, columns[name].type) for name in base]
    fields.append(pa.field("extra_info", extra.type))
    schema_metadata = None
    if metadata:
        schema_metadata = {b"rlscale": orjson.dumps(metadata, option=orjson.OPT_SORT_KEYS)}
    schema = pa.schema(fields, metadata=schema_metadata)
    return pa.Table.from_arrays([columns["data_source"], columns["prompt"], columns["ability"],
                                 columns["reward_model"], extra], schema=schema)


def write_verl_parquet(path: str, rows: Sequence[Mapping[str, Any]],
                       metadata: Mapping[str, Any] | None = None) -> None:
    """Write rows atomically as VeRL parquet (snappy, like the released files).

    Same seed and input give a byte-identical file: no timestamps are written.
    """
    import pyarrow.parquet as pq

    from rlscale.io.jsonl import AtomicFile

    table = verl_table(rows, metadata)
    with AtomicFile(path, compress=False) as out:
        pq.write_table(table, out.handle, compression="snappy")


def verl_row(prompt: str | Sequence[Mapping[str, Any]], answer: str, data_source: str,
             extra_info: Mapping[str, Any], ability: str = "math",
             style: str = "rule") -> dict[str, Any]:
    """One VeRL row from its parts."""
    return {
        "data_source": data_source,
        "prompt": prompt_to_messages(prompt),
        "ability": ability,
        "reward_model": {"ground_truth": answer, "style": style},
        "extra_info": dict(extra_info),
    }


class InputReader:
    """Records from a mix of JSONL files (or stdin) and VeRL parquet files, with locations.

    Same contract as :class:`rlscale.io.jsonl.RecordReader`: iterating yields
    ``(record, where)``; :meth:`invalid` raises a ``file:line`` error or, with
    ``skip_invalid``, counts the record and copies it to ``rejects``. For parquet the "line" is
    the 1-based row number.
    """

    def __init__(self, inputs: Sequence[str] | None, *, skip_invalid: bool = False,
                 rejects=None, input_format: str | None = None, wide: str | None = None):
        self.inputs = list(inputs or []) or ["-"]
        # input_format / wide as for RecordReader; a parquet file read as a plain (not wide)
        # table keeps the VeRL reading below (nested columns, pandas index dropped)
        self.input_format, self.wide = input_format, wide
        self.skip_invalid = skip_invalid
        self.rejects = rejects
        self.n_skipped = 0
        self.n_read = 0
        self._jsonl = None
        self.current_path = self.inputs[0]
        self.problems: list[str] = []  # incomplete JSONL inputs (see RecordReader.problems)

    def require_complete(self, consequence: str) -> None:
        from rlscale.io.jsonl import require_complete

        require_complete(self.problems, consequence)

    def invalid(self, where, message: str, record: Mapping[str, Any] | None = None) -> None:
        from rlscale.core.errors import RecordError

        if not self.skip_invalid:
            raise RecordError(where.source, where.line, message)
        self.n_skipped += 1
        if self.rejects is not None:
            raw = where.raw or (orjson.dumps(record) if record is not None else b"")
            self.rejects.write(raw.rstrip(b"\r\n") + b"\n")

    def __iter__(self):
        from rlscale.io.jsonl import RecordReader, Where

        for path in self.inputs:
            self.current_path = path
            as_parquet = (self.input_format == "parquet"
                          or (self.input_format is None and is_parquet_path(path)))
            if as_parquet and self.wide is None and path != "-":
                for row_number, row in iter_parquet_rows(path):
                    self.n_read += 1
                    yield row, Where(path, row_number)
            else:
                reader = RecordReader([path], skip_invalid=self.skip_invalid,
                                      rejects=self.rejects, input_format=self.input_format,
                                      wide=self.wide)
                for record, where in reader:
                    self.n_read += 1
                    yield record, where
                self.n_skipped += reader.n_skipped
                self.problems += reader.problems
