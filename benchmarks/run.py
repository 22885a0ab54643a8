"""`make bench`: run every benchmarks/bench_*.py module and print its report.

Each module exposes ``main() -> None`` and prints a table comparing rlscale with the peer named
in its issue, measured in the same run (ratios, never absolute timing assertions).
Run one with ``python -m benchmarks.run NAME`` (e.g. ``jsonl``).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import benchmarks


def main(argv: list[str]) -> int:
    names = sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules(benchmarks.__path__)
                   if m.name.startswith("bench_"))
    wanted = argv or names
    for name in wanted:
        if name not in names:
            print(f"unknown benchmark {name!r}; have: {', '.join(names)}", file=sys.stderr)
            return 2
        module = importlib.import_module(f"benchmarks.bench_{name}")
        print(f"\n== {name} ==", flush=True)
        start = time.perf_counter()
        module.main()
        print(f"({name}: {time.perf_counter() - start:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
