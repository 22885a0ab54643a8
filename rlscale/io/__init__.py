"""Reading and writing: JSONL records, tables (CSV/TSV/parquet), VeRL parquet and logs, atomic
and append writers, model config files and figures. Everything that touches a file lives here;
``rlscale.core`` computes on values it is handed."""
