"""Start-up of `rlscale <cmd> --help` against the floor of the CLI library it is built on.

Issue target: under 0.3 s for the torch-free commands. The peer is a one-option typer app run the
same way (a fresh interpreter printing its --help): the time typer itself costs, which no command
can go below. Both are timed in the same run, interleaved, median of REPEATS runs each.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

COMMANDS = ("curate", "rollout", "reward", "grpo-step", "eval", "flops", "fit", "verl")
REPEATS = 7
PEER = ("import typer\napp = typer.Typer(add_completion=False)\n"
        "@app.command()\ndef main(x: int = 1) -> None: pass\napp()")


def _seconds(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    python = sys.executable
    rows = []
    for command in COMMANDS:
        ours, peer = [], []
        for _ in range(REPEATS):
            ours.append(_seconds([python, "-m", "rlscale", command, "--help"]))
            peer.append(_seconds([python, "-c", PEER, "--help"]))
        rows.append((command, statistics.median(ours), statistics.median(peer)))
    print(f"{'command':<10} {'rlscale --help':>15} {'typer floor':>12} {'ratio':>6}")
    for command, ours, peer in rows:
        print(f"{command:<10} {ours:>13.3f} s {peer:>10.3f} s {ours / peer:>6.2f}")
    slowest = max(ours for _, ours, _ in rows)
    print(f"slowest: {slowest:.3f} s (target < 0.3 s)")


if __name__ == "__main__":
    main()
