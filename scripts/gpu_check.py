"""One-shot GPU check of ``rlscale rollout``: hf on CUDA and vLLM, on a tiny Qwen2 built in code.

Run through ``scripts/gpu_check.sh`` (which installs vLLM). Checks, each printed PASS/FAIL/INFO:

1. hf on CUDA (float32) equals ``torch.manual_seed(seed); model.generate(do_sample=True)`` per
   sample (the exponential-race draw must match CUDA's multinomial).
2. ``rollout --backend hf --device cuda``, ``--backend vllm`` and ``--backend openai`` (against
   ``vllm serve`` of the same checkpoint) runs (bf16, ``--logprobs``):
   record contract (counts, finish_reason, exact token counts, stop token at the end iff
   "stop"), wall time, tokens/s, and ``old_logprobs`` against a float32 teacher-forced forward.
3. vLLM resume: a file holding samples {0, 3, 5} of every prompt plus half a line, resumed with
   another batch size, against the fresh run. The resumed requests are ``n=1``/``n=2`` with seeds
   ``prompt_seed + i``; equality confirms vLLM seeds child i of ``SamplingParams(n, seed)`` with
   ``seed + i`` (INFO with the identical fraction: vLLM is not bitwise batch-invariant in bf16).
4. LoRA (skipped with --quick or when time is short): greedy ``--lora`` on vLLM and hf, compared
   with each other and with the base model.

Writes ``gpu_check.json`` (all numbers) and the rollout files to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

START = time.perf_counter()
RESULTS: dict = {"checks": {}}
FAILED: list[str] = []
HAVE_VLLM = False


def log(message: str) -> None:
    print(f"[{time.perf_counter() - START:6.1f}s] {message}", flush=True)


def check(name: str, ok: bool, detail: str = "") -> None:
    RESULTS["checks"][name] = {"ok": bool(ok), "detail": detail}
    if not ok:
        FAILED.append(name)
    log(f"{'PASS' if ok else 'FAIL'} {name} {detail}")


def info(name: str, detail) -> None:
    RESULTS["checks"][name] = {"info": detail}
    log(f"INFO {name} {detail}")


def rollout(args: list[str], out_file: str, timeout: int = 400) -> dict:
    command = [sys.executable, "-m", "rlscale", "rollout", *args, "-o", out_file]
    log("$ rlscale rollout " + " ".join(args) + f" -o {os.path.basename(out_file)}")
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - started
    stderr_tail = "\n".join(proc.stderr.strip().splitlines()[-6:])
    if proc.returncode != 0:
        log(f"exit {proc.returncode}; stderr tail:\n{stderr_tail}")
    match = re.search(r"(\d+) completion tokens in ([\d.]+) s \((\d+) tokens/s", proc.stderr)
    return {"exit": proc.returncode, "wall_s": round(seconds, 1), "stderr_tail": stderr_tail,
            "completion_tokens": int(match.group(1)) if match else None,
            "generate_s": float(match.group(2)) if match else None,
            "tokens_per_s": int(match.group(3)) if match else None}


def read(path: str) -> list[dict]:
    """The samples of a rollout file (its end-of-stream record left out)."""
    with open(path) as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    return [r for r in records if "rlscale_end" not in r]


def serve_check(checkpoint: str, common: list[str], out: str, n_problems: int, n: int,
                max_tokens: int, stops: set[int]) -> None:
    """``rollout --backend openai`` against a real ``vllm serve`` of the same checkpoint."""
    import urllib.request

    port = 8765
    name = "gpu-check-step-0"
    log_path = os.path.join(out, "vllm_serve.log")
    with open(log_path, "w") as server_log:
        server = subprocess.Popen(
            [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", checkpoint,
             "--served-model-name", name, "--port", str(port), "--enforce-eager",
             "--gpu-memory-utilization", "0.4", "--dtype", "bfloat16"],
            stdout=server_log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/v1"
        deadline = time.perf_counter() + 300
        while time.perf_counter() < deadline and server.poll() is None:
            try:
                urllib.request.urlopen(url + "/models", timeout=2).read()
                break
            except OSError:
                time.sleep(2)
        else:
            check("openai_serve_started", False, f"see {log_path}")
            return
        served_file = os.path.join(out, "openai.jsonl")
        run = rollout([*common, "--backend", "openai", "--base-url", url, "--model", name,
                       "--tokenizer", checkpoint, "--expect-step", "0", "--logprobs"], served_file)
        RESULTS["openai_run"] = run
        if run["exit"] != 0:
            check("openai_rollout_contract", False, run["stderr_tail"])
            return
        records = read(served_file)
        ok, detail = contract_ok(records, n_problems, n, max_tokens, stops)
        check("openai_rollout_contract", ok, f"{detail}; {run}")
        check("openai_seed_honoured", records[0]["sampling"].get("seed_honoured") == "yes",
              str(records[0]["sampling"].get("seed_honoured")))
        logprob_gap("openai", checkpoint, records[:32])
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()


def contract_ok(records: list[dict], n_problems: int, n: int, max_tokens: int,
                stops: set[int]) -> tuple[bool, str]:
    problems = {}
    for r in records:
        problems.setdefault(str(r["prompt_id"]), set()).add(r["sample_idx"])
        ids = r["completion_ids"]
        if r["finish_reason"] not in ("stop", "length"):
            return False, f"finish_reason {r['finish_reason']!r}"
        if r["n_completion_tokens"] != len(ids) or len(ids) > max_tokens:
            return False, f"token count {r['n_completion_tokens']} vs {len(ids)}"
        if r["n_prompt_tokens"] != len(r["prompt_ids"]):
            return False, "prompt token count"
        if r["finish_reason"] == "stop" and (not ids or ids[-1] not in stops):
            return False, "stop without a stop token at the end"
        if r["finish_reason"] == "length" and len(ids) != max_tokens:
            return False, f"length finish with {len(ids)} < {max_tokens} tokens"
        if "answer" not in r:
            return False, "pass-through field 'answer' lost"
    if len(problems) != n_problems or any(v != set(range(n)) for v in problems.values()):
        return False, f"{len(problems)} prompts / sample sets wrong"
    n_stop = sum(r["finish_reason"] == "stop" for r in records)
    return True, f"{len(records)} samples, {n_stop} stopped, {len(records) - n_stop} at length"


def build(out: str) -> str:
    from rlscale.engines.tiny import TinyConfig, build_tiny_checkpoint

    # head_dim 64: vLLM's attention kernels do not take the 8-wide heads of the test model
    config = TinyConfig(hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2,
                        max_position_embeddings=1024)
    return build_tiny_checkpoint(os.path.join(out, "tiny-qwen2"), config=config, seed=0)


def hf_exactness(checkpoint: str) -> None:
    import torch

    from rlscale.core.sampling import SampleRequest, SamplingParams, sample_seed
    from rlscale.engines.hf_rollout import HfRollout

    params = SamplingParams(n=2, temperature=1.0, max_tokens=48, seed=0)
    engine = HfRollout(checkpoint, params, device="cuda", dtype="float32")
    stops = list(engine.stop_ids())
    requests, expected = [], []
    for i in range(6):
        prompt_ids = engine.encode_prompt(f"What is {i} + {i + 5}?")
        for k in range(params.n):
            seed = sample_seed(0, f"q{i}", k)
            requests.append(SampleRequest(tuple(prompt_ids), k, seed))
            torch.manual_seed(seed)
            with torch.inference_mode():
                out = engine.model.generate(torch.tensor([prompt_ids], device="cuda"),
                                            do_sample=True, temperature=1.0, top_k=0,
                                            max_new_tokens=48, eos_token_id=stops,
                                            pad_token_id=engine.pad_id)
            generated = out[0, len(prompt_ids):].tolist()
            cut = next((j + 1 for j, t in enumerate(generated) if t in stops), len(generated))
            expected.append(generated[:cut])
    got = [list(o.completion_ids) for o in engine.generate(requests)]
    same = sum(a == b for a, b in zip(got, expected, strict=True))
    check("hf_cuda_matches_direct_generate", same == len(expected), f"{same}/{len(expected)}")
    del engine
    torch.cuda.empty_cache()


def logprob_gap(name: str, checkpoint: str, records: list[dict]) -> None:
    """old_logprobs of a bf16 rollout vs a float32 teacher-forced forward (train-inference gap)."""
    import torch
    from transformers import AutoModelForCausalLM

    from rlscale.engines.hf_rollout import dtype_kwarg

    model = AutoModelForCausalLM.from_pretrained(checkpoint, **dtype_kwarg(torch.float32))
    model = model.cuda().eval()
    gaps = []
    for record in records:
        ids = record["prompt_ids"] + record["completion_ids"]
        with torch.inference_mode():
            logits = model(torch.tensor([ids], device="cuda")).logits[0].float()
        start = len(record["prompt_ids"])
        logp = torch.log_softmax(logits[start - 1:-1], dim=-1)
        expected = logp.gather(1, torch.tensor(record["completion_ids"], device="cuda")[:, None])
        got = torch.tensor(record["old_logprobs"], device="cuda")
        gaps.append((got - expected.squeeze(1)).abs())
    gap = torch.cat(gaps)
    ok = len(records) > 0 and bool(torch.isfinite(gap).all())
    check(f"{name}_old_logprobs_vs_fp32_forward", ok and float(gap.mean()) < 0.1,
          f"mean |diff| {float(gap.mean()):.4f}, max {float(gap.max()):.4f} over {gap.numel()} "
          "tokens (bf16 rollout vs fp32 recompute)")
    del model
    torch.cuda.empty_cache()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="gpu_check_out")
    parser.add_argument("--quick", action="store_true", help="skip the LoRA check")
    parser.add_argument("--budget-s", type=float, default=270.0,
                        help="skip the LoRA check when this much time has passed")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    out = os.path.abspath(args.out)

    import torch

    RESULTS["env"] = {"torch": torch.__version__, "cuda": torch.version.cuda,
                      "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    global HAVE_VLLM
    try:
        import vllm

        RESULTS["env"]["vllm"] = vllm.__version__
        HAVE_VLLM = True
    except ImportError as exc:
        RESULTS["env"]["vllm"] = f"not importable: {exc}"
    try:
        import transformers

        RESULTS["env"]["transformers"] = transformers.__version__
    except ImportError:
        pass
    log(f"env {RESULTS['env']}")
    if not torch.cuda.is_available():
        log("no CUDA device; nothing to check")
        return 2

    checkpoint = build(out)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    stops = {tokenizer.eos_token_id}
    n_problems, n, max_tokens = 64, 8, 256
    problems = os.path.join(out, "problems.jsonl")
    with open(problems, "w") as handle:
        for i in range(n_problems):
            handle.write(json.dumps({
                "prompt_id": f"q{i}", "answer": str(3 * i + 1), "data_source": "gpu_check",
                "prompt": [{"role": "user", "content": f"What is {i} + {2 * i + 1}? Please output "
                            "the final answer within \\boxed{}."}]}) + "\n")
    log(f"built {checkpoint}")

    hf_exactness(checkpoint)

    common = [problems, "--model", checkpoint, "-n", str(n), "--max-tokens", str(max_tokens),
              "--seed", "0", "--dtype", "bfloat16"]
    vllm_args = ["--vllm-arg", "enforce_eager=true", "--vllm-arg", "gpu_memory_utilization=0.5"]

    hf_file = os.path.join(out, "hf.jsonl")
    hf = rollout([*common, "--backend", "hf", "--device", "cuda", "--batch-size", "16",
                  "--logprobs"], hf_file)
    RESULTS["hf_run"] = hf
    if hf["exit"] == 0:
        ok, detail = contract_ok(read(hf_file), n_problems, n, max_tokens, stops)
        check("hf_cuda_rollout_contract", ok, f"{detail}; {hf}")
        logprob_gap("hf", checkpoint, read(hf_file)[:32])
    else:
        check("hf_cuda_rollout_contract", False, hf["stderr_tail"])

    if not HAVE_VLLM:
        info("vllm", f"skipped: {RESULTS['env']['vllm']}")
    fresh_file = os.path.join(out, "vllm_fresh.jsonl")
    fresh = {"exit": None} if not HAVE_VLLM else rollout([*common, "--backend", "vllm", *vllm_args, "--logprobs"], fresh_file)
    RESULTS["vllm_run"] = fresh
    if fresh["exit"] is None:
        pass
    elif fresh["exit"] != 0:
        check("vllm_rollout_contract", False, fresh["stderr_tail"])
    else:
        fresh_records = read(fresh_file)
        ok, detail = contract_ok(fresh_records, n_problems, n, max_tokens, stops)
        check("vllm_rollout_contract", ok, f"{detail}; {fresh}")
        logprob_gap("vllm", checkpoint, fresh_records[:32])

        partial_file = os.path.join(out, "vllm_resumed.jsonl")
        kept = [r for r in fresh_records if r["sample_idx"] in (0, 3, 5)]
        with open(partial_file, "w") as handle:
            for r in kept:
                handle.write(json.dumps(r) + "\n")
            handle.write('{"prompt_id": "q0", "sampl')  # a run killed mid-line
        resumed = rollout([*common, "--backend", "vllm", *vllm_args, "--batch-size", "8",
                           "--resume"], partial_file)
        RESULTS["vllm_resume_run"] = resumed
        if resumed["exit"] != 0:
            check("vllm_resume", False, resumed["stderr_tail"])
        else:
            records = read(partial_file)
            ok, detail = contract_ok(records, n_problems, n, max_tokens, stops)
            check("vllm_resume_contract", ok, detail)
            by_key = {(r["prompt_id"], r["sample_idx"]): r["completion_ids"] for r in fresh_records}
            redrawn = [r for r in records if r["sample_idx"] not in (0, 3, 5)]
            same = sum(by_key[(r["prompt_id"], r["sample_idx"])] == r["completion_ids"]
                       for r in redrawn)
            first_token = sum(by_key[(r["prompt_id"], r["sample_idx"])][:1] ==
                              r["completion_ids"][:1] for r in redrawn)
            info("vllm_resumed_samples_identical_to_fresh",
                 f"{same}/{len(redrawn)} whole samples, {first_token}/{len(redrawn)} first tokens "
                 "(first tokens equal => per-sample seeds line up with n-fanout seeds)")

    if HAVE_VLLM:
        common_served = [problems, "-n", str(n), "--max-tokens", str(max_tokens), "--seed", "0"]
        serve_check(checkpoint, common_served, out, n_problems, n, max_tokens, stops)

    if hf["exit"] == 0:
        grpo_check(checkpoint, hf_file, out)

    elapsed = time.perf_counter() - START
    if args.quick or elapsed > args.budget_s:
        info("lora", f"skipped ({'--quick' if args.quick else f'{elapsed:.0f} s elapsed'})")
    else:
        lora_check(checkpoint, problems, out, vllm_args)

    with open(os.path.join(out, "gpu_check.json"), "w") as handle:
        json.dump(RESULTS, handle, indent=2)
    log(f"done: {len(FAILED)} failed {FAILED}")
    return 1 if FAILED else 0


def grpo_check(checkpoint: str, rollouts: str, out: str) -> None:
    """`rlscale reward | rlscale grpo-step --device cuda` on the CUDA rollouts: runs, finite
    metrics, and the policy moves while the reference stays put."""
    from safetensors.torch import load_file

    scored = os.path.join(out, "scored.jsonl")
    with open(rollouts, "rb") as src, open(scored, "wb") as dst:
        proc = subprocess.run([sys.executable, "-m", "rlscale", "reward", "-q"], stdin=src,
                              stdout=dst, stderr=subprocess.PIPE, text=False, timeout=300)
    if proc.returncode != 0:
        check("grpo_step_cuda", False, "reward failed: " + proc.stderr.decode()[-400:])
        return
    # A random tiny model scores 0 everywhere; alternate rewards so advantages are non-zero.
    records = read(scored)
    with open(scored, "w") as handle:
        for r in records:
            handle.write(json.dumps({**r, "reward": float(r["sample_idx"] % 2)}) + "\n")
    new = os.path.join(out, "policy-step1")
    for precision in ("bf16", "fp32"):
        target = f"{new}-{precision}"
        started = time.perf_counter()
        with open(scored, "rb") as src:
            proc = subprocess.run(
                [sys.executable, "-m", "rlscale", "grpo-step", "--policy", checkpoint, "--ref",
                 checkpoint, "--out", target, "--device", "cuda", "--precision", precision,
                 "--lr", "1e-4", "--mini-batches", "2", "--micro-batch-size", "32"],
                stdin=src, capture_output=True, timeout=300)
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            check(f"grpo_step_cuda_{precision}", False, proc.stderr.decode()[-600:])
            continue
        metrics = json.loads(proc.stdout.decode().strip().splitlines()[-1])
        before = load_file(os.path.join(checkpoint, "model.safetensors"))
        after = load_file(os.path.join(target, "model.safetensors"))
        moved = sum(float((after[k].float() - before[k].float()).abs().max()) > 0 for k in before)
        finite = all(isinstance(metrics.get(k), (int, float)) for k in ("loss", "kl", "grad_norm"))
        check(f"grpo_step_cuda_{precision}", finite and moved > 0,
              f"{moved}/{len(before)} tensors moved, wall {seconds:.1f} s, metrics "
              f"{ {k: metrics.get(k) for k in ('loss', 'pg_loss', 'kl', 'grad_norm', 'clip_frac', 'n_tokens', 'wall_s')} }")


def lora_check(checkpoint: str, problems: str, out: str, vllm_args: list[str]) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(checkpoint)
    torch.manual_seed(1)
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, init_lora_weights=False,
                                            target_modules=["q_proj", "k_proj", "v_proj",
                                                            "o_proj"]))
    adapter = os.path.join(out, "lora-adapter")
    model.save_pretrained(adapter)
    greedy = [problems, "--model", checkpoint, "-n", "1", "--temperature", "0", "--max-tokens",
              "32", "--dtype", "bfloat16"]
    files = {name: os.path.join(out, f"lora_{name}.jsonl") for name in ("vllm", "hf", "base")}
    if not HAVE_VLLM:
        del files["vllm"]
    runs = {
        **({"vllm": rollout([*greedy, "--backend", "vllm", "--lora", adapter, *vllm_args],
                            files["vllm"])} if HAVE_VLLM else {}),
        "hf": rollout([*greedy, "--backend", "hf", "--device", "cuda", "--lora", adapter],
                      files["hf"]),
        "base": rollout([*greedy, "--backend", "hf", "--device", "cuda"], files["base"]),
    }
    RESULTS["lora_runs"] = runs
    if any(run["exit"] != 0 for run in runs.values()):
        check("lora", False, "; ".join(f"{k}: {v['stderr_tail']}" for k, v in runs.items()
                                       if v["exit"]))
        return
    ids = {name: [r["completion_ids"] for r in read(path)] for name, path in files.items()}
    changed = sum(a != b for a, b in zip(ids["hf"], ids["base"], strict=True))
    check("lora_changes_outputs", changed > 0, f"{changed}/{len(ids['hf'])} differ from base")
    if not HAVE_VLLM:
        return
    agree = sum(a == b for a, b in zip(ids["vllm"], ids["hf"], strict=True))
    first = sum(a[:4] == b[:4] for a, b in zip(ids["vllm"], ids["hf"], strict=True))
    info("lora_vllm_vs_hf_greedy", f"{agree}/{len(ids['hf'])} identical, {first} agree on the "
         "first 4 tokens (bf16 kernels differ, so exact agreement is not expected)")


if __name__ == "__main__":
    sys.exit(main())
