"""Rollout throughput: ``rlscale rollout``'s hf backend vs a raw ``model.generate`` loop.

Same model (a ~2.3M-parameter Qwen2 built in code), same prompts rendered with the same chat
template, same batches (4 problems x 8 samples = 32 left-padded rows), same ``max_new_tokens``,
T = 1.0, and an EOS the model cannot emit, so both sides generate the same number of tokens.
rlscale's side is the whole pipeline minus model loading: planning, chat templating
and tokenization, per-sample seeded sampling, decoding and JSON serialisation of every record.
The raw side is only ``generate(do_sample=True)`` on pre-tokenized batches. Runs alternate. On a
shared machine wall time swings with other processes' load, so the ratio is also given on CPU
time (one torch thread: CPU time is the work done), which is the steadier number. Target (issue 6): ratio >= 0.95.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time

N_PROBLEMS = 16
N_SAMPLES = 8
BATCH_PROBLEMS = 4
MAX_TOKENS = 64
REPEATS = 5


def _build(directory: str) -> str:
    from rlscale.engines.tiny import TinyConfig, build_tiny_checkpoint

    config = TinyConfig(hidden_size=192, intermediate_size=768, num_hidden_layers=4,
                        num_attention_heads=4, num_key_value_heads=2)
    path = build_tiny_checkpoint(os.path.join(directory, "model"), config=config, seed=0)
    # Give the checkpoint an EOS the model cannot emit (an id past its output layer), so every
    # row runs exactly MAX_TOKENS steps on both sides: the two sides draw different samples,
    # and early stops would otherwise make their token counts differ by luck, not by speed.
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.add_special_tokens({"eos_token": "<|bench-unreachable-eos|>"})
    tokenizer.save_pretrained(path)
    config_path = os.path.join(path, "generation_config.json")
    with open(config_path) as handle:
        generation = json.load(handle)
    generation["eos_token_id"] = tokenizer.eos_token_id
    with open(config_path, "w") as handle:
        json.dump(generation, handle)
    return path


def _problems():
    return [{"prompt_id": f"q{i}", "prompt": f"What is {i} + {2 * i + 1}? Please output the final "
             "answer within \\boxed{}.", "answer": str(3 * i + 1)} for i in range(N_PROBLEMS)]


def _rlscale_run(engine, params) -> tuple[int, float, float]:
    from rlscale.core.sampling import plan_problems, rollout_records
    from rlscale.io.jsonl import Where, dumps

    def invalid(where, message):
        raise RuntimeError(f"{where}: {message}")

    start, cpu = time.perf_counter(), time.process_time()
    pairs = ((p, Where("bench", i + 1)) for i, p in enumerate(_problems()))
    planned = plan_problems(pairs, params=params, encode=engine.encode_prompt, invalid=invalid,
                            context_length=engine.context_length)
    tokens = 0
    for record in rollout_records(planned, engine, params, batch_size=BATCH_PROBLEMS,
                                  model="bench"):
        dumps(record)
        tokens += record["n_completion_tokens"]
    return tokens, time.perf_counter() - start, time.process_time() - cpu


def _raw_run(model, batches, stops, pad) -> tuple[int, float, float]:
    import torch

    start, cpu = time.perf_counter(), time.process_time()
    tokens = 0
    for input_ids, attention_mask in batches:
        with torch.inference_mode():
            out = model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                 do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                                 max_new_tokens=MAX_TOKENS, eos_token_id=stops, pad_token_id=pad)
        generated = out[:, input_ids.shape[1]:]
        for row in generated.tolist():
            cut = next((i + 1 for i, t in enumerate(row) if t in stops), len(row))
            tokens += cut
    return tokens, time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    import torch

    from rlscale.core.sampling import SamplingParams
    from rlscale.engines.hf_rollout import HfRollout

    torch.set_num_threads(1)  # steadier timings on a shared machine; both sides alike
    params = SamplingParams(n=N_SAMPLES, temperature=1.0, top_p=1.0, max_tokens=MAX_TOKENS)
    with tempfile.TemporaryDirectory() as directory:
        checkpoint = _build(directory)
        engine = HfRollout(checkpoint, params, device="cpu")
        model, stops, pad = engine.model, list(engine.stop_ids()), engine.pad_id
        assert min(stops) >= model.config.vocab_size, "the benchmark EOS must be unreachable"
        n_params = sum(p.numel() for p in model.parameters())

        # the raw loop gets the same rows, pre-tokenized and left-padded outside the timer
        rows = [engine.encode_prompt(p["prompt"]) for p in _problems() for _ in range(N_SAMPLES)]
        per_batch = BATCH_PROBLEMS * N_SAMPLES
        batches = []
        for start in range(0, len(rows), per_batch):
            chunk = rows[start:start + per_batch]
            width = max(map(len, chunk))
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for r, prompt in enumerate(chunk):
                ids[r, width - len(prompt):] = torch.tensor(prompt)
                mask[r, width - len(prompt):] = 1
            batches.append((ids, mask))

        _rlscale_run(engine, params), _raw_run(model, batches[:1], stops, pad)  # warm-up
        runs: dict[str, list[tuple[int, float, float]]] = {"ours": [], "raw": []}
        for _ in range(REPEATS):
            runs["ours"].append(_rlscale_run(engine, params))
            runs["raw"].append(_raw_run(model, batches, stops, pad))

    print(f"model: Qwen2 {n_params / 1e6:.1f}M params, CPU, 1 thread; {N_PROBLEMS} problems x "
          f"{N_SAMPLES} samples, batches of {per_batch} rows, max_tokens {MAX_TOKENS}, T=1.0; "
          f"{REPEATS} alternating runs; medians")
    print(f"{'':32} {'tokens/s wall':>14} {'tokens/CPU-s':>14}")
    rates = {}
    for name, label in (("ours", "rlscale rollout (hf backend)"), ("raw", "raw generate loop")):
        wall = statistics.median(t / w for t, w, _ in runs[name])
        cpu = statistics.median(t / c for t, _, c in runs[name])
        rates[name] = (wall, cpu)
        print(f"{label:32} {wall:>14.0f} {cpu:>14.0f}")
    paired = statistics.median(a[0] / a[1] / (b[0] / b[1])
                               for a, b in zip(runs["ours"], runs["raw"], strict=True))
    print(f"ratio rlscale / raw: {rates['ours'][1] / rates['raw'][1]:.3f} on CPU time, "
          f"{paired:.3f} on wall time (median of neighbouring pairs); target >= 0.95")

if __name__ == "__main__":
    main()
