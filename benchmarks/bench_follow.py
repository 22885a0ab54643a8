"""A sampling/training loop with long-running ``--follow`` stages against one call per step.

Issue target (the demo's budget): cut the per-call start-up of ``rollout`` and ``grpo-step``
(importing torch and transformers, ~4-5 s of CPU each on a 2-core machine) by keeping the
stages running. The peer is the same loop as separate calls, one ``rollout`` and one
``grpo-step`` process per step, as a cron loop runs it. Both loops run the same STEPS steps on
the same tiny checkpoint in this run; the metrics of the two are checked to be equal.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import orjson

STEPS = 5
PROBLEMS = 8
GROUP = 4
SAMPLE = ["--no-chat-template", "-n", str(GROUP), "--max-tokens", "12", "--seed", "0", "-q"]


def _end(n: int) -> bytes:
    return orjson.dumps({"rlscale_end": {"tool": "bench", "records": n}}) + b"\n"


def _problems(step: int) -> bytes:
    lines = [orjson.dumps({"prompt_id": f"s{step}-{i}", "prompt": f"{i} plus {step} is"})
             for i in range(PROBLEMS)]
    return b"\n".join(lines) + b"\n" + _end(PROBLEMS)


def _scored(answer: bytes) -> bytes:
    """The samples with a made-up reward (a digit in the completion), ended as a batch."""
    records = [orjson.loads(line) for line in answer.splitlines()
               if line.strip() and not line.startswith(b'{"rlscale_end"')]
    lines = [orjson.dumps({**r, "reward": float(any(c.isdigit() for c in r["completion"]))})
             for r in records]
    return b"\n".join(lines) + b"\n" + _end(len(lines))


def _cli(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "rlscale", *args]


def _separate(policy: str, ref: str) -> list[dict]:
    metrics = []
    for step in range(STEPS):
        samples = subprocess.run(_cli(["rollout", "--model", policy, *SAMPLE]),
                                 input=_problems(step), capture_output=True, check=True).stdout
        done = subprocess.run(_cli(["grpo-step", "--policy", policy, "--ref", ref, "--out",
                                    policy, "--lr", "1e-3", "-q"]),
                              input=_scored(samples), capture_output=True, check=True)
        metrics.append(orjson.loads(done.stdout.splitlines()[0]))
    return metrics


def _answer(proc: subprocess.Popen, batch: bytes) -> bytes:
    proc.stdin.write(batch)
    proc.stdin.flush()
    lines = []
    while True:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the stage stopped: {proc.stderr.read().decode()}")
        lines.append(line)
        if line.startswith(b'{"rlscale_end"'):
            return b"".join(lines)


def _follow(policy: str, ref: str) -> list[dict]:
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    sampler = subprocess.Popen(_cli(["rollout", "--follow", "--model", policy, *SAMPLE]),
                               **pipes)
    trainer = subprocess.Popen(_cli(["grpo-step", "--follow", "--policy", policy, "--ref", ref,
                                     "--out", policy, "--lr", "1e-3", "-q"]), **pipes)
    metrics = []
    for step in range(STEPS):
        samples = _answer(sampler, _problems(step))
        metrics.append(orjson.loads(_answer(trainer, _scored(samples)).splitlines()[0]))
    for proc in (sampler, trainer):
        proc.stdin.close()
        if proc.wait() != 0:
            raise RuntimeError(proc.stderr.read().decode())
    return metrics


def _timed(loop, policy: str, ref: str) -> tuple[float, float, list[dict]]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    metrics = loop(policy, ref)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, metrics


def main() -> None:
    from rlscale.engines.tiny import build_tiny_checkpoint

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        ref = build_tiny_checkpoint(os.path.join(tmp, "ref"), seed=0)
        results = {}
        for name, loop in (("separate calls", _separate), ("--follow", _follow)):
            policy = os.path.join(tmp, name.strip("-").replace(" ", "-"))
            shutil.copytree(ref, policy)
            results[name] = _timed(loop, policy, ref)
    same = all({k: v for k, v in a.items() if k not in ("wall_s", "policy", "out")}
               == {k: v for k, v in b.items() if k not in ("wall_s", "policy", "out")}
               for a, b in zip(results["separate calls"][2], results["--follow"][2], strict=True))
    print(f"{STEPS} steps of rollout ({PROBLEMS} problems x {GROUP}) + grpo-step, tiny model")
    print(f"{'loop':<16} {'wall':>8} {'CPU':>8}")
    for name, (wall, cpu, _) in results.items():
        print(f"{name:<16} {wall:>6.1f} s {cpu:>6.1f} s")
    (wall_s, cpu_s, _), (wall_f, cpu_f, _) = results["separate calls"], results["--follow"]
    print(f"--follow / separate: wall {wall_f / wall_s:.2f}x, CPU {cpu_f / cpu_s:.2f}x; "
          f"the same metrics: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
