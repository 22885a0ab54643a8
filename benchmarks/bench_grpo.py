"""GRPO loss + backward: rlscale's training engine against TRL's ``GRPOTrainer`` on one batch.

What is compared (same tiny Qwen2 model, same batch, same process layout, same run):

* **rlscale**: ``PolicyTrainer.accumulate_gradients`` on the whole batch as one micro-batch —
  the forward pass, completion log-probs, dual-clip PPO loss, k3 KL to precomputed reference
  log-probs, token-mean aggregation, entropy metric, ``backward()``: exactly what
  ``rlscale grpo-step`` runs for each micro-batch.
* **TRL**: ``GRPOTrainer.compute_loss(model, inputs)`` + ``backward()`` on the same tensors
  (``prompt_ids``/``completion_ids`` and masks, advantages, ``old_per_token_logps``,
  ``ref_per_token_logps``), ``loss_type="bnpo"`` (token mean over the batch, the same
  aggregation as rlscale's ``token-mean``), ``beta=0.001``, ``epsilon=0.2``. Generation,
  reward and reference passes are excluded on both sides: they are the precomputed inputs.

Timing: both sides in one subprocess, one warm-up step each, then ``REPEATS`` interleaved
steps (median wall time), so load on a shared machine hits both alike. Memory: each side in
its own fresh subprocess, one warm-up step, then the peak resident-set growth of one step on
CPU (``VmHWM`` reset via ``/proc/self/clear_refs``; glibc is told to serve every block >= 64 KiB
by mmap and unmap it on free, so resident memory follows live tensors rather than allocator
caches), or ``torch.cuda.max_memory_allocated`` growth on a GPU. Both sides must produce the
same loss (printed). Targets (issue 6): time and memory ratios <= 1.0.

Also reported: one full in-process ``train_step`` (reference + old log-probs, 2 updates) for
scale. Run: ``python -m benchmarks.run grpo`` (about a minute on 2 CPU cores).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

BATCH = 16          # sequences (2 prompts x 8 samples)
PROMPT_LEN = 48
COMPLETION_LEN = 160
REPEATS = 7         # interleaved; the median resists load spikes on a shared machine
MODEL = {"hidden_size": 128, "intermediate_size": 384, "num_hidden_layers": 4,
         "num_attention_heads": 4, "num_key_value_heads": 2}
VOCAB = None        # None: the tiny tokenizer's own vocabulary (2048)
if os.environ.get("BENCH_GRPO_SIZE") == "large":  # for a GPU: ~0.1B parameters, 32k vocabulary
    BATCH, PROMPT_LEN, COMPLETION_LEN, REPEATS = 32, 128, 512, 5
    MODEL = {"hidden_size": 768, "intermediate_size": 2048, "num_hidden_layers": 8,
             "num_attention_heads": 12, "num_key_value_heads": 4}
    VOCAB = 32768


def _build(workdir: str) -> tuple[str, str]:
    import random

    from rlscale.engines.tiny import TinyConfig, build_tiny_checkpoint, train_tokenizer

    corpus = [f"Problem {i}: compute {i} * {i + 3} and give \\boxed{{{i * (i + 3)}}}." for i in
              range(200)]
    tokenizer = train_tokenizer(corpus, vocab_size=2048)
    ckpt = build_tiny_checkpoint(os.path.join(workdir, "model"), config=TinyConfig(**MODEL),
                                 tokenizer=tokenizer, seed=0)
    vocab = len(tokenizer)
    if VOCAB is not None:  # same shape, larger (untrained) vocabulary: ids beyond the tokenizer
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(ckpt)
        config.vocab_size = vocab = VOCAB
        torch.manual_seed(0)
        AutoModelForCausalLM.from_config(config).save_pretrained(ckpt)
    rng = random.Random(0)
    records = []
    for i in range(BATCH):
        n_prompt = PROMPT_LEN - rng.randint(0, 8)
        n_completion = COMPLETION_LEN - rng.randint(0, 60)
        records.append({"prompt_id": i // 8, "sample_idx": i % 8,
                        "prompt_ids": [rng.randrange(3, vocab) for _ in range(n_prompt)],
                        "completion_ids": [rng.randrange(3, vocab) for _ in range(n_completion)],
                        "reward": float(rng.random() < 0.4)})
    batch = os.path.join(workdir, "batch.json")
    with open(batch, "w") as handle:
        json.dump(records, handle)
    return ckpt, batch


def _peak_tracker():
    """Returns (reset, peak_bytes) for the current device."""
    import torch

    if torch.cuda.is_available():
        def reset():
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return torch.cuda.memory_allocated()

        def peak():
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated()
        return reset, peak

    def status(key: str) -> int:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
        return 0

    def reset():
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # resets VmHWM to the current RSS
        return status("VmRSS:")

    return reset, lambda: status("VmHWM:")


def _prepare_common(ckpt: str, batch_path: str):
    import torch

    from rlscale.core.grpo import group_advantages
    from rlscale.engines.train import PolicyTrainer, Sample, TrainConfig

    torch.manual_seed(0)
    with open(batch_path) as handle:
        records = json.load(handle)
    adv = group_advantages([r["reward"] for r in records], [r["prompt_id"] for r in records])
    samples = [Sample(r["prompt_ids"], r["completion_ids"], float(a), int(g))
               for r, a, g in zip(records, adv.advantages, adv.group_index, strict=True)]
    config = TrainConfig(micro_batch_size=len(samples), mini_batches=1, kl_coef=0.001)
    trainer = PolicyTrainer(ckpt, ckpt, config, device="auto")
    # old log-probs slightly off-policy so the clip is exercised on both sides
    prepared = trainer.prepare(samples, set())
    gen = torch.Generator().manual_seed(0)
    for i, s in enumerate(samples):
        prepared.old_logp[i] = prepared.old_logp[i] + 0.05 * torch.randn(
            len(s.completion_ids), generator=gen)
    return trainer, samples, prepared


def _peak_growth(step) -> int:
    reset, peak = _peak_tracker()
    step()  # warm-up
    base = reset()
    step()
    return max(peak() - base, 0)


def _rlscale_step(ckpt: str, batch_path: str):
    trainer, samples, prepared = _prepare_common(ckpt, batch_path)
    members = list(range(len(samples)))
    trainer.model.train()

    def step() -> float:
        trainer.optimizer.zero_grad(set_to_none=True)
        sums = trainer.accumulate_gradients(samples, members, prepared, 1.0)
        return sums["loss"]

    def full_step() -> float:
        start = time.perf_counter()
        trainer.config = type(trainer.config)(micro_batch_size=8, mini_batches=2, kl_coef=0.001)
        trainer.train_step(samples)
        return time.perf_counter() - start

    return step, full_step


def _trl_step(ckpt: str, batch_path: str, workdir: str):
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from rlscale.engines.train import collate

    trainer_ours, samples, prepared = _prepare_common(ckpt, batch_path)
    device = trainer_ours.device
    batch = collate(samples, trainer_ours.pad_id, device)
    n_completion = batch["completion_ids"].shape[1]
    n_prompt = batch["input_ids"].shape[1] - n_completion
    old = torch.zeros(len(samples), n_completion)
    ref = torch.zeros(len(samples), n_completion)
    for i, s in enumerate(samples):
        old[i, :len(s.completion_ids)] = prepared.old_logp[i]
        ref[i, :len(s.completion_ids)] = prepared.ref_logp[i]
    inputs = {
        "prompt_ids": batch["input_ids"][:, :n_prompt],
        "prompt_mask": batch["attention_mask"][:, :n_prompt],
        "completion_ids": batch["completion_ids"],
        "completion_mask": batch["completion_mask"].long(),
        "advantages": torch.tensor([s.advantage for s in samples], device=device),
        "old_per_token_logps": old.to(device),
        "ref_per_token_logps": ref.to(device),
        "num_items_in_batch": batch["completion_mask"].sum(),
    }
    del trainer_ours
    tokenizer = AutoTokenizer.from_pretrained(ckpt)
    model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32).to(device)
    args = GRPOConfig(output_dir=workdir, per_device_train_batch_size=len(samples),
                      num_generations=8, max_completion_length=n_completion, beta=0.001,
                      epsilon=0.2, loss_type="bnpo", report_to=[],
                      use_cpu=not torch.cuda.is_available(), bf16=torch.cuda.is_available(),
                      logging_steps=10**6, save_strategy="no")
    dataset = Dataset.from_list([{"prompt": "x"}] * len(samples))
    trl = GRPOTrainer(model=model, reward_funcs=[lambda completions, **kw: [0.0] *
                                                  len(completions)],
                      args=args, train_dataset=dataset, processing_class=tokenizer)
    trl.current_gradient_accumulation_steps = 1
    trl.model.train()

    def step() -> float:
        trl.model.zero_grad(set_to_none=True)
        loss = trl.compute_loss(trl.model, inputs)
        loss.backward()
        return float(loss)

    return step


def worker(kind: str, ckpt: str, batch_path: str) -> dict:
    with tempfile.TemporaryDirectory() as workdir:
        if kind == "memory-rlscale":
            return {"peak_bytes": _peak_growth(_rlscale_step(ckpt, batch_path)[0])}
        if kind == "memory-trl":
            return {"peak_bytes": _peak_growth(_trl_step(ckpt, batch_path, workdir))}
        ours, full_step = _rlscale_step(ckpt, batch_path)
        peer = _trl_step(ckpt, batch_path, workdir)
        losses = {"rlscale": ours(), "trl": peer()}  # warm-up, and the two losses
        times: dict[str, list[float]] = {"rlscale": [], "trl": []}
        for _ in range(REPEATS):  # interleaved, so machine load drifts hit both sides alike
            for name, step in (("rlscale", ours), ("trl", peer)):
                start = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - start)
        return {"wall_s": {k: statistics.median(v) for k, v in times.items()},
                "loss": losses, "train_step_s": full_step()}


def _run_worker(name: str, ckpt: str, batch: str) -> dict:
    env = dict(os.environ, PYTHONWARNINGS="ignore", TRANSFORMERS_VERBOSITY="error")
    if name.startswith("memory"):
        # glibc: serve every block >= 64 KiB by mmap and unmap it on free, so resident memory
        # follows live tensors instead of what the allocator keeps cached
        env.update(MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_grpo", "--worker", name, ckpt,
                           batch], capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        ckpt, batch = _build(workdir)
        timing = _run_worker("time", ckpt, batch)
        memory = {name: _run_worker(f"memory-{name}", ckpt, batch)["peak_bytes"]
                  for name in ("rlscale", "trl")}
    wall, loss = timing["wall_s"], timing["loss"]
    mb = 1024 * 1024
    print(f"batch: {BATCH} sequences, prompt <= {PROMPT_LEN}, completion <= {COMPLETION_LEN} "
          f"tokens; model {MODEL}")
    print(f"{'':28}{'rlscale':>12}{'TRL':>12}{'ratio':>8}")
    print(f"{'loss + backward, s':28}{wall['rlscale']:12.4f}{wall['trl']:12.4f}"
          f"{wall['rlscale'] / wall['trl']:8.2f}")
    print(f"{'peak memory growth, MiB':28}{memory['rlscale'] / mb:12.1f}"
          f"{memory['trl'] / mb:12.1f}{memory['rlscale'] / max(memory['trl'], 1):8.2f}")
    print(f"{'loss value':28}{loss['rlscale']:12.6f}{loss['trl']:12.6f}")
    print(f"full rlscale train_step (ref/old log-probs + 2 updates): "
          f"{timing['train_step_s']:.3f} s")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        print(json.dumps(worker(sys.argv[2], sys.argv[3], sys.argv[4])))
    else:
        main()
