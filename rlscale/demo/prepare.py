"""Prepare the micro scaling study: the raw synthetic task and the pretrained tiny base models.

Two steps, so that the demo driver can pretrain two sizes at a time on two cores::

    python -m rlscale.demo.prepare task  --out demo-out --n-problems 480 --seed 0
    python -m rlscale.demo.prepare model --out demo-out --size s3 --steps 300 --seed 0

``task`` writes ``OUT/task.jsonl`` (the raw RL problem pool of digit sums, see
``rlscale.demo.task``: ``prompt_id``, ``prompt``, ``answer``, ``data_source``, ``level``,
``expression``) and ``OUT/tokenizer/`` (the shared BPE tokenizer trained on the task text).
``model`` builds one size of tiny Qwen2 from that tokenizer, pretrains it briefly on a corpus of
solution texts (the procedure written out only sometimes, some demonstrations wrong) for
problems drawn from the task distribution but never from the pool, saves it to
``OUT/models/SIZE/`` and prints one JSON summary line on stdout (size, parameters, final
pretraining loss, a sampled pass rate); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import time

import orjson

from rlscale.demo.task import (
    MAX_OPERANDS,
    MIN_OPERANDS,
    generate_problems,
    number_problems,
    pretraining_corpus,
)

# Levels (numbers of operands) the demo draws from: longer sums cost tokens at every step.
DEMO_LEVELS = (2, 3, 4)
# The pretraining corpus: half the demonstrations work the sum out, one in twenty of those slips;
# the other half guess the answer directly, and nine guesses in ten miss by a little. Every text boxes
# its answer, so the base models know the format; what they lack is doing the sum reliably.
WORKED_SHARE, SLIP_RATE, MISS_RATE = 0.5, 0.05, 0.9
# Separate seeded streams, so the pool, the pretraining corpus and the diagnostics never share draws.
POOL_STREAM, CORPUS_STREAM, TOKENIZER_STREAM, PROBE_STREAM = 1, 2, 3, 4


def _stream(seed: int, stream: int) -> random.Random:
    return random.Random(seed * 1_000_003 + stream)


def _say(message: str) -> None:
    print(f"demo.prepare: {message}", file=sys.stderr, flush=True)


def _parse_levels(text: str) -> tuple[int, ...]:
    levels: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        levels.extend(range(int(lo), int(hi or lo) + 1))
    bad = [lv for lv in levels if not MIN_OPERANDS <= lv <= MAX_OPERANDS]
    if bad or not levels:
        raise argparse.ArgumentTypeError(
            f"levels must lie in {MIN_OPERANDS}..{MAX_OPERANDS}, got {text!r}")
    return tuple(levels)


def write_task(out: str, n_problems: int, seed: int, levels: tuple[int, ...],
               vocab_size: int = 512) -> None:
    """Write the raw task pool and the shared tokenizer."""
    from rlscale.demo.pretrain import tokenizer_corpus
    from rlscale.engines.tiny import train_tokenizer

    os.makedirs(out, exist_ok=True)
    pool = list(number_problems(generate_problems(_stream(seed, POOL_STREAM), n_problems, levels),
                                prefix="sum"))
    with open(os.path.join(out, "task.jsonl"), "wb") as handle:
        for problem in pool:
            record = {"prompt_id": problem.pop("id"), **problem}
            handle.write(orjson.dumps(record) + b"\n")
    # The tokenizer sees the task's text (every level, like a base model's vocabulary would).
    sample = generate_problems(_stream(seed, TOKENIZER_STREAM), 4000, unique=False)
    tokenizer = train_tokenizer(tokenizer_corpus(sample), vocab_size=vocab_size)
    tokenizer.save_pretrained(os.path.join(out, "tokenizer"))
    _say(f"wrote {len(pool)} problems (levels {','.join(map(str, levels))}) to "
         f"{out}/task.jsonl and a {len(tokenizer)}-token tokenizer to {out}/tokenizer")


def write_model(out: str, size: str, steps: int, batch_size: int, lr: float | None, seed: int,
                levels: tuple[int, ...], probe: int) -> dict:
    """Build, pretrain and save one size; return its summary record."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from rlscale.demo.pretrain import (
        DEMO_SIZES,
        PretrainConfig,
        pretrain,
        sampled_pass_rate,
        scaled_lr,
    )
    from rlscale.engines.tiny import build_tiny_checkpoint

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if size not in DEMO_SIZES:
        raise SystemExit(f"demo.prepare: unknown size {size!r} (known: {', '.join(DEMO_SIZES)})")
    started = time.monotonic()
    tokenizer = AutoTokenizer.from_pretrained(os.path.join(out, "tokenizer"))
    final_dir = os.path.join(out, "models", size)
    work_dir = final_dir + ".tmp"
    shutil.rmtree(work_dir, ignore_errors=True)
    build_tiny_checkpoint(work_dir, config=DEMO_SIZES[size], tokenizer=tokenizer, seed=seed)
    model = AutoModelForCausalLM.from_pretrained(work_dir)
    n_params = sum(p.numel() for p in model.parameters())
    corpus_rng = _stream(seed, CORPUS_STREAM)
    with open(os.path.join(out, "task.jsonl"), "rb") as handle:
        pool = {orjson.loads(line)["prompt"] for line in handle}
    corpus = pretraining_corpus(
        corpus_rng, generate_problems(corpus_rng, 20_000, levels, unique=False, exclude=pool),
        worked_share=WORKED_SHARE, slip_rate=SLIP_RATE, miss_rate=MISS_RATE)
    if lr is None:
        lr = scaled_lr(DEMO_SIZES[size])
    config = PretrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed)
    history = pretrain(model, tokenizer, corpus, config, log_every=max(1, steps // 4),
                       log=lambda r: _say(f"{size}: step {r['step']:4d}  loss {r['loss']:.3f}"))
    probe_problems = generate_problems(_stream(seed, PROBE_STREAM), probe, levels, unique=False,
                                       exclude=pool)
    with torch.no_grad():
        pass_rate = sampled_pass_rate(model, tokenizer, probe_problems, n_samples=2, seed=seed)
    model.save_pretrained(work_dir, safe_serialization=True)
    shutil.rmtree(final_dir, ignore_errors=True)
    os.replace(work_dir, final_dir)
    summary = {
        "size": size, "n_params": n_params, "pretrain_steps": steps,
        "pretrain_examples": steps * batch_size, "pretrain_lr": lr, "final_loss": round(history[-1]["loss"], 4),
        "probe_pass_rate": round(pass_rate, 4), "wall_s": round(time.monotonic() - started, 1),
    }
    _say(f"{size}: {n_params:,} parameters, answer loss {summary['final_loss']:.3f}, sampled "
         f"pass rate {pass_rate:.1%} on {probe} fresh problems ({summary['wall_s']} s)")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlscale.demo.prepare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    task = sub.add_parser("task", help="write OUT/task.jsonl and OUT/tokenizer")
    task.add_argument("--out", required=True)
    task.add_argument("--n-problems", type=int, default=480)
    task.add_argument("--seed", type=int, default=0)
    task.add_argument("--levels", type=_parse_levels, default=DEMO_LEVELS)
    model = sub.add_parser("model", help="pretrain one size into OUT/models/SIZE")
    model.add_argument("--out", required=True)
    model.add_argument("--size", required=True)
    model.add_argument("--steps", type=int, default=300)
    model.add_argument("--batch-size", type=int, default=64)
    model.add_argument("--lr", type=float, default=None,
                       help="peak learning rate (default: 3e-3 * min(1, 64/hidden size))")
    model.add_argument("--seed", type=int, default=0)
    model.add_argument("--levels", type=_parse_levels, default=DEMO_LEVELS)
    model.add_argument("--probe", type=int, default=200,
                       help="fresh problems for the pass-rate diagnostic (2 samples each)")
    args = parser.parse_args(argv)
    if args.what == "task":
        write_task(args.out, args.n_problems, args.seed, args.levels)
    else:
        summary = write_model(args.out, args.size, args.steps, args.batch_size, args.lr,
                              args.seed, args.levels, args.probe)
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
