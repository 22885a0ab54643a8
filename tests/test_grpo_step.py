"""`rlscale grpo-step` and the training engine on a tiny Qwen2 checkpoint (CPU)."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import random
import shutil

import pytest
import torch

from rlscale.core import grpo
from rlscale.core.errors import RlscaleError
from rlscale.engines import checkpoints, train
from rlscale.engines.train import PolicyTrainer, Sample, TrainConfig
from tests.conftest import CliResult, jsonl, run_cli
from tests.test_prompts import llama, qwen  # noqa: F401 - fixtures: tokenizers built in code


def invoke(args: list[str], input: str = "") -> CliResult:
    """Run the CLI in this process (no second torch import; the subprocess path is covered by
    the cron-loop test)."""
    from typer.testing import CliRunner

    from rlscale.cli.app import app

    result = CliRunner().invoke(app, args, input=input)
    return CliResult(result.exit_code, result.stdout, result.stderr)


@pytest.fixture(scope="module")
def tokenizer(tiny_checkpoint):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_checkpoint)


def make_records(tokenizer, n_prompts=4, group_size=4, seed=0):
    """Scored rollout records with token ids, as `rollout | reward` emits them."""
    rng = random.Random(seed)
    records = []
    for p in range(n_prompts):
        messages = [{"role": "user", "content": f"What is {p + seed} + 7?"}]
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        for s in range(group_size):
            words = f"The answer is \\boxed{{{p + s + rng.randint(0, 9)}}}. 1 2 3 4 5 6 7"
            ids = tokenizer(words, add_special_tokens=False)["input_ids"]
            completion = ids[:rng.randint(2, len(ids))] + [tokenizer.eos_token_id]
            records.append({"prompt_id": f"q{seed}-{p}", "sample_idx": s, "prompt": messages,
                            "prompt_ids": prompt_ids, "completion_ids": completion,
                            "reward": float(rng.random() < 0.4), "note": "kept"})
    return records


def to_samples(records, tokenizer, std="unbiased"):
    ids = [train.sample_from_record(r, tokenizer, 10**6) for r in records]
    adv = grpo.group_advantages([r["reward"] for r in records],
                                [r["prompt_id"] for r in records], std_mode=std)
    return [Sample(p, c, float(a), int(g), o)
            for (p, c, o), a, g in zip(ids, adv.advantages, adv.group_index, strict=True)]


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def file_digests(directory) -> dict[str, str]:
    return {name: hashlib.sha256(open(os.path.join(directory, name), "rb").read()).hexdigest()
            for name in sorted(os.listdir(directory))}


def load_weights(directory) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(os.path.join(directory, "model.safetensors"))


# --- log-probs ---------------------------------------------------------------------------------


def test_completion_logprobs_equal_an_unpadded_direct_forward(tiny_checkpoint, tokenizer):
    trainer = PolicyTrainer(tiny_checkpoint, None, TrainConfig(kl_coef=0.0), device="cpu")
    samples = to_samples(make_records(tokenizer, n_prompts=2, group_size=3), tokenizer)
    samples[0].prompt_ids = samples[0].prompt_ids[3:]  # unequal prompt lengths -> left padding
    batch = train.collate(samples, trainer.pad_id, trainer.device)
    with torch.no_grad():
        logp, _ = trainer._forward_logprobs(trainer.model, batch, want_entropy=False)
        for row, s in enumerate(samples):
            ids = torch.tensor([s.prompt_ids + s.completion_ids])
            logits = trainer.model(input_ids=ids).logits[0]
            start = len(s.prompt_ids)
            expected = torch.log_softmax(logits[start - 1:-1], -1).gather(
                -1, torch.tensor(s.completion_ids).unsqueeze(-1)).squeeze(-1)
            assert torch.allclose(logp[row, :len(s.completion_ids)], expected, atol=1e-5)


# --- gradient accumulation -------------------------------------------------------------------


def hand_loss(trainer, samples, old, ref, cfg):
    """The mini-batch loss written out sequence by sequence, with no padding or masks."""
    per_seq_pg, per_seq_kl = [], []
    for i, s in enumerate(samples):
        ids = torch.tensor([s.prompt_ids + s.completion_ids])
        logits = trainer.model(input_ids=ids).logits[0, len(s.prompt_ids) - 1:-1]
        logp = torch.log_softmax(logits.float(), -1).gather(
            -1, torch.tensor(s.completion_ids).unsqueeze(-1)).squeeze(-1)
        ratio = torch.exp(logp - old[i])
        a = s.advantage
        pg = torch.maximum(-a * ratio, -a * ratio.clamp(1 - cfg.clip_low, 1 + cfg.clip_high))
        if a < 0:
            pg = torch.minimum(pg, torch.full_like(pg, -a * cfg.dual_clip))
        x = ref[i] - logp
        kl = (torch.exp(x) - x - 1).clamp(-10, 10)
        per_seq_pg.append(pg)
        per_seq_kl.append(kl)

    def agg(rows):
        if cfg.loss_agg == "token-mean":
            return torch.cat(rows).sum() / sum(len(r) for r in rows)
        if cfg.loss_agg == "seq-mean-token-mean":
            return sum(r.mean() for r in rows) / len(rows)
        if cfg.loss_agg == "seq-mean-token-sum":
            return sum(r.sum() for r in rows) / len(rows)
        return sum(r.sum() for r in rows) / len(rows) / cfg.loss_scale

    return agg(per_seq_pg) + cfg.kl_coef * agg(per_seq_kl)


@pytest.mark.parametrize("mode", grpo.LOSS_AGG_MODES)
def test_micro_batch_accumulation_equals_the_full_batch_gradient(tiny_checkpoint, tokenizer,
                                                                 mode):
    cfg = TrainConfig(kl_coef=0.5, loss_agg=mode, loss_scale=16.0, micro_batch_size=3,
                      dual_clip=1.5, clip_low=0.05, clip_high=0.1)
    trainer = PolicyTrainer(tiny_checkpoint, tiny_checkpoint, cfg, device="cpu")
    samples = to_samples(make_records(tokenizer, n_prompts=3, group_size=3), tokenizer)
    gen = torch.Generator().manual_seed(1)
    # old / ref log-probs away from the current policy, so clipping and the KL are active
    ref_logp = [(-2 - torch.rand(len(s.completion_ids), generator=gen)) for s in samples]
    prepared = trainer.prepare(samples, set())
    for i, s in enumerate(samples):
        prepared.old_logp[i] = prepared.old_logp[i] + 0.3 * torch.randn(
            len(s.completion_ids), generator=gen)
        prepared.ref_logp[i] = ref_logp[i]
    members = list(range(len(samples)))
    params = [p for _, p in trainer.trainable]

    def gradient():
        trainer.optimizer.zero_grad(set_to_none=True)
        sums = trainer.accumulate_gradients(samples, members, prepared, cfg.loss_scale)
        return sums, [p.grad.clone() for p in params]

    sums_micro, micro = gradient()
    trainer.config = dataclasses.replace(cfg, micro_batch_size=64, max_tokens_per_micro_batch=90)
    assert len(train.micro_batches(members, samples, 64, 90)) >= 3  # token budget splits
    sums_tokens, by_tokens = gradient()
    trainer.config = dataclasses.replace(cfg, micro_batch_size=64)
    sums_full, full = gradient()
    trainer.optimizer.zero_grad(set_to_none=True)
    expected = hand_loss(trainer, samples, prepared.old_logp, prepared.ref_logp, cfg)
    expected.backward()
    assert sums_micro["loss"] == pytest.approx(expected.item(), rel=1e-5)
    assert sums_full["loss"] == pytest.approx(expected.item(), rel=1e-5)
    assert sums_tokens["loss"] == pytest.approx(expected.item(), rel=1e-5)
    assert sums_micro["clip_frac"] > 0  # the clip really was exercised
    for a, b, c, p in zip(micro, full, by_tokens, params, strict=True):
        assert torch.allclose(a, b, atol=1e-6) and torch.allclose(c, b, atol=1e-6)
        assert torch.allclose(a, p.grad, atol=1e-6)


# --- a step, the checkpoint, and the cron loop ----------------------------------------------


def test_cron_loop_of_cli_steps_equals_in_process_steps(tiny_checkpoint, tokenizer, tmp_path):
    """Two `grpo-step` invocations (in place, --out == --policy) == two steps in one process."""
    ref_digests = file_digests(tiny_checkpoint)
    policy = str(tmp_path / "policy")
    shutil.copytree(tiny_checkpoint, policy)
    batches = [make_records(tokenizer, seed=s) for s in (0, 1)]
    args = ["grpo-step", "--policy", policy, "--ref", tiny_checkpoint, "--out", policy,
            "--lr", "1e-3", "--kl-coef", "0.01", "--mini-batches", "2",
            "--micro-batch-size", "3", "--seed", "3"]
    metrics = []
    for batch in batches:
        result = run_cli(args, input=jsonl(batch))
        assert result.exit_code == 0, result.stderr
        metrics += result.records
    assert [m["step"] for m in metrics] == [1, 2]

    cfg = TrainConfig(lr=1e-3, kl_coef=0.01, mini_batches=2, micro_batch_size=3, seed=3)
    trainer = PolicyTrainer(tiny_checkpoint, tiny_checkpoint, cfg, device="cpu")
    initial = weights(trainer.model)
    for batch in batches:
        in_process = trainer.train_step(to_samples(batch, tokenizer))
    assert in_process["loss"] == pytest.approx(metrics[1]["loss"], rel=1e-5)
    final = load_weights(policy)
    changed = 0
    for name, value in weights(trainer.model).items():
        if name in final:
            assert torch.allclose(final[name], value, atol=1e-6), name
            changed += not torch.equal(value, initial[name])
    assert changed > 10  # the policy moved
    assert file_digests(tiny_checkpoint) == ref_digests  # the reference did not

    m = metrics[0]
    n_tokens = sum(len(r["prompt_ids"]) + len(r["completion_ids"]) for r in batches[0])
    assert m["n_tokens"] == n_tokens
    assert m["flops_step"] == 6 * m["n_params"] * n_tokens
    assert m["n_params"] == sum(p.numel() for p in trainer.model.parameters())
    assert m["reward_mean"] == pytest.approx(sum(r["reward"] for r in batches[0]) / 16)
    assert m["n_groups"] == 4 and m["n_samples"] == 16 and m["n_updates"] == 2
    assert m["old_logprobs"] == "recomputed"
    expected_zero = sum(len({r["reward"] for r in batches[0] if r["prompt_id"] == k}) == 1
                        for k in {r["prompt_id"] for r in batches[0]})
    assert m["n_zero_adv_groups"] == expected_zero
    for field in ("loss", "pg_loss", "kl", "clip_frac", "grad_norm", "entropy", "wall_s"):
        assert isinstance(m[field], float) and math.isfinite(m[field]), field
    assert metrics[1]["kl"] > 0
    assert m["run_meta"]["seed"] == 3


def test_resume_restores_optimizer_state_exactly(tiny_checkpoint, tokenizer, tmp_path):
    cfg = TrainConfig(lr=1e-3, kl_coef=0.0, mini_batches=1, weight_decay=0.0)
    first = PolicyTrainer(tiny_checkpoint, None, cfg, device="cpu")
    first.train_step(to_samples(make_records(tokenizer, seed=0), tokenizer))
    first.save(str(tmp_path / "s1"))
    batch = to_samples(make_records(tokenizer, seed=1), tokenizer)
    resumed = PolicyTrainer(str(tmp_path / "s1"), None, cfg, device="cpu")
    assert resumed.step == 1
    assert resumed.optimizer.state_dict()["state"][0]["step"].item() == 1.0
    resumed.train_step(batch)
    first.train_step(batch)
    for (name, a), (_, b) in zip(first.trainable, resumed.trainable, strict=True):
        assert torch.equal(a, b), name
    # without the saved moments the second update is different: the state file matters
    os.remove(tmp_path / "s1" / checkpoints.OPTIMIZER_FILE)
    fresh = PolicyTrainer(str(tmp_path / "s1"), None, cfg, device="cpu")
    fresh.train_step(batch)
    assert not all(torch.equal(a, b) for (_, a), (_, b) in zip(first.trainable, fresh.trainable,
                                                              strict=True))


def test_interrupted_save_leaves_the_previous_checkpoint_intact(tiny_checkpoint, tokenizer,
                                                                tmp_path, monkeypatch):
    policy = str(tmp_path / "policy")
    shutil.copytree(tiny_checkpoint, policy)
    before = file_digests(policy)
    trainer = PolicyTrainer(policy, None, TrainConfig(lr=1e-2, kl_coef=0.0, mini_batches=1),
                            device="cpu")
    trainer.train_step(to_samples(make_records(tokenizer), tokenizer))

    def crash(_tmp):
        raise KeyboardInterrupt  # as if killed after writing everything, before the swap

    with pytest.raises(KeyboardInterrupt):
        trainer.save(policy, _before_publish=crash)
    assert file_digests(policy) == before
    assert sorted(os.listdir(tmp_path)) == ["policy"]  # no temp directory left behind

    import safetensors.torch

    def broken_save_file(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", broken_save_file)
    with pytest.raises(OSError, match="No space left"):
        trainer.save(policy)
    assert file_digests(policy) == before
    assert sorted(os.listdir(tmp_path)) == ["policy"]
    monkeypatch.undo()
    trainer.save(policy)  # and a save that completes replaces it in place
    assert file_digests(policy) != before
    assert checkpoints.read_trainer_state(policy)["step"] == 1
    assert oct(os.stat(policy).st_mode & 0o777) == oct(0o777 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_publish_without_exchange_keeps_previous_until_the_new_one_is_in_place(tmp_path,
                                                                             monkeypatch):
    monkeypatch.setattr(checkpoints, "_exchange", lambda a, b: False)
    final, new = tmp_path / "ckpt", tmp_path / "new"
    final.mkdir()
    (final / "w").write_text("old")
    new.mkdir()
    (new / "w").write_text("new")
    checkpoints.publish_directory(str(new), str(final))
    assert (final / "w").read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]


def test_missing_checkpoint_points_at_an_interrupted_swap(tmp_path):
    (tmp_path / ".ckpt.previous-abc").mkdir()
    with pytest.raises(RlscaleError, match=r"no such directory \(an interrupted save left the "
                       r"previous checkpoint at .*\.ckpt\.previous-abc\)"):
        checkpoints.check_checkpoint_dir(str(tmp_path / "ckpt"), "--policy")


# --- LoRA ------------------------------------------------------------------------------------


def test_lora_step_trains_an_adapter_and_continues(tiny_checkpoint, tokenizer, tmp_path):
    base_digests = file_digests(tiny_checkpoint)
    lora = train.LoraSettings(rank=4, alpha=8)
    cfg = TrainConfig(lr=1e-2, kl_coef=0.1, mini_batches=1, lora=lora)
    trainer = PolicyTrainer(tiny_checkpoint, tiny_checkpoint, cfg, device="cpu")
    assert trainer.ref_is_base and trainer.ref_model is None  # no second copy of the base
    assert all("lora_" in name for name, _ in trainer.trainable)
    m1 = trainer.train_step(to_samples(make_records(tokenizer, seed=0), tokenizer))
    out = str(tmp_path / "adapter")
    trainer.save(out)
    assert {"adapter_config.json", "adapter_model.safetensors", checkpoints.OPTIMIZER_FILE,
            checkpoints.TRAINER_STATE_FILE}.issubset(os.listdir(out))
    assert m1["kl"] == 0.0 and m1["step"] == 1  # LoRA B starts at 0: policy == reference
    batch = to_samples(make_records(tokenizer, seed=1), tokenizer)
    resumed = PolicyTrainer(out, tiny_checkpoint, cfg, device="cpu")
    assert resumed.step == 1 and resumed.base_dir == os.path.abspath(tiny_checkpoint)
    m2 = resumed.train_step(batch)
    m2_in_process = trainer.train_step(batch)
    assert m2["step"] == 2 and m2["kl"] > 0
    assert m2["loss"] == pytest.approx(m2_in_process["loss"], rel=1e-5)
    for (name, a), (_, b) in zip(trainer.trainable, resumed.trainable, strict=True):
        assert torch.allclose(a, b, atol=1e-6), name
    assert file_digests(tiny_checkpoint) == base_digests
    with pytest.raises(RlscaleError, match="is a LoRA adapter; add --lora"):
        PolicyTrainer(out, None, TrainConfig(kl_coef=0.0), device="cpu")


# --- records without token ids, old log-probs from records -----------------------------------


def test_text_records_are_tokenised_like_the_chat_template(tokenizer):
    messages = [{"role": "user", "content": "What is 1 + 2?"}]
    record = {"prompt_id": 1, "reward": 1, "prompt": messages, "completion": "\\boxed{3}",
              "finish_reason": "stop"}
    prompt_ids, completion_ids, old = train.sample_from_record(record, tokenizer, 10**6)
    rendered = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n" \
               "<|im_start|>user\nWhat is 1 + 2?<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.decode(prompt_ids) == rendered
    assert completion_ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(completion_ids[:-1]) == "\\boxed{3}"
    assert old is None
    raw = train.sample_from_record({**record, "prompt": "2+2"}, tokenizer, 10**6,
                                   chat_template=False)[0]
    assert tokenizer.decode(raw) == "2+2"
    with pytest.raises(ValueError, match="outside the policy's vocabulary"):
        train.sample_from_record({**record, "prompt_ids": [1, 999]}, tokenizer, 500)
    with pytest.raises(ValueError, match="'old_logprobs' has 1 values for 2 completion tokens"):
        train.sample_from_record({**record, "completion_ids": [5, 6], "old_logprobs": [-1.0]},
                                 tokenizer, 500)


def test_old_logprobs_from_records_set_the_ratio(tiny_checkpoint, tokenizer):
    samples = to_samples(make_records(tokenizer, n_prompts=2, group_size=2), tokenizer)
    trainer = PolicyTrainer(tiny_checkpoint, None, TrainConfig(kl_coef=0.0, mini_batches=1),
                            device="cpu")
    own = trainer.prepare(samples, set())
    shifted = [dataclasses.replace(s, old_logprobs=(own.old_logp[i] - 0.5).tolist())
               for i, s in enumerate(samples)]
    metrics = trainer.train_step(shifted)
    # ratio = e^0.5 = 1.65 everywhere: every token with A > 0 is clipped, ppo_kl = -0.5
    assert metrics["ppo_kl"] == pytest.approx(-0.5, abs=1e-5)
    assert metrics["clip_frac"] > 0


# --- command-line errors ---------------------------------------------------------------------


def test_usage_errors_exit_2(tiny_checkpoint, tmp_path):
    result = invoke(["grpo-step", "--ref", "r"], input="")
    assert (result.exit_code, result.stderr.strip()) == (
        2, "rlscale grpo-step: --policy and --out are required (or use --emit advantages)")
    result = invoke(["grpo-step", "--policy", "p", "--out", "o"], input="")
    assert (result.exit_code, result.stderr.strip()) == (
        2, "rlscale grpo-step: --ref is required when --kl-coef > 0 (use --kl-coef 0 to train "
           "without a reference)")
    result = invoke(["grpo-step", "--policy", "p", "--ref", "r", "--out", "r"], input="")
    assert (result.exit_code, result.stderr.strip()) == (
        2, "rlscale grpo-step: --out must differ from --ref (the reference is never modified)")
    result = invoke(["grpo-step", "--policy", str(tmp_path / "nope"), "--out", "o",
                      "--kl-coef", "0", "--kl", "k9"], input="")
    assert (result.exit_code, result.stderr.strip()) == (
        2, "rlscale grpo-step: --kl must be one of k1, k2, k3, got 'k9'")
    result = invoke(["grpo-step", "--policy", str(tmp_path / "nope"), "--out", "o",
                      "--kl-coef", "0"], input="")
    assert (result.exit_code, result.stderr.strip()) == (
        1, f"rlscale grpo-step: --policy {tmp_path / 'nope'}: no such directory")


def test_bad_records_name_their_line(tiny_checkpoint, tokenizer, tmp_path):
    records = make_records(tokenizer, n_prompts=2, group_size=2)
    records[2]["completion_ids"] = [1, 10**7]
    records.append(dict(records[0]))
    base = ["grpo-step", "--policy", tiny_checkpoint, "--out", str(tmp_path / "o"),
            "--kl-coef", "0", "--mini-batches", "1"]
    result = invoke(base, input=jsonl(records))
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "rlscale grpo-step: <stdin>:3: field 'completion_ids': token id 10000000 is outside the "
        f"policy's vocabulary [0, {len(tokenizer)})")
    # too few groups is a usage error, found before the model loads (issue 13: was exit 1,
    # after loading, below a line announcing 3 updates)
    result = invoke([*base, "--skip-invalid", "--mini-batches", "3"], input=jsonl(records))
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "rlscale grpo-step: --mini-batches 3 needs at least 3 prompt groups; the input has 2 "
        "(lower --mini-batches or give more prompts)")
    assert not os.path.exists(tmp_path / "o")


def test_fused_head_equals_the_models_own_logits(tiny_checkpoint, tokenizer):
    cfg = TrainConfig(kl_coef=0.0, entropy_coef=0.01, temperature=0.9)
    trainer = PolicyTrainer(tiny_checkpoint, None, cfg, device="cpu")
    samples = to_samples(make_records(tokenizer, n_prompts=2, group_size=2), tokenizer)
    batch = train.collate(samples, trainer.pad_id, trainer.device)
    results = []
    for fused in (True, False):
        trainer.fused_head = fused
        trainer.model.zero_grad(set_to_none=True)
        logp, entropy = trainer._forward_logprobs(trainer.model, batch, want_entropy=True)
        (logp.sum() + (entropy * batch["completion_mask"]).sum()).backward()
        results.append((logp.detach(), entropy.detach() * batch["completion_mask"],
                        [p.grad.clone() for _, p in trainer.trainable]))
    (lf, ef, gf), (lr, er, gr) = results
    assert torch.allclose(lf, lr, atol=1e-5) and torch.allclose(ef, er, atol=1e-5)
    for a, b in zip(gf, gr, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_bf16_checkpoint_keeps_its_dtype_and_an_exact_float32_master(tiny_checkpoint, tokenizer,
                                                                      tmp_path):
    from transformers import AutoModelForCausalLM

    base = str(tmp_path / "bf16")
    AutoModelForCausalLM.from_pretrained(tiny_checkpoint, dtype=torch.bfloat16).save_pretrained(
        base)
    tokenizer.save_pretrained(base)
    cfg = TrainConfig(lr=1e-6, kl_coef=0.0, mini_batches=1)
    trainer = PolicyTrainer(base, None, cfg, device="cpu")
    trainer.train_step(to_samples(make_records(tokenizer), tokenizer))
    trainer.save(str(tmp_path / "s1"))
    saved = load_weights(str(tmp_path / "s1"))
    assert {v.dtype for v in saved.values()} == {torch.bfloat16}  # what rollout loads
    resumed = PolicyTrainer(str(tmp_path / "s1"), None, cfg, device="cpu")
    moved = 0
    for (name, a), (_, b) in zip(trainer.trainable, resumed.trainable, strict=True):
        assert torch.equal(a, b), name  # float32 master: lr 1e-6 updates are not rounded away
        moved += not torch.equal(a.to(torch.bfloat16), a)
    assert moved > 0


def test_out_that_is_not_a_checkpoint_is_never_replaced(tiny_checkpoint, tmp_path):
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.tex").write_text("keep me")
    result = invoke(["grpo-step", "--policy", tiny_checkpoint, "--out", str(precious),
                     "--kl-coef", "0"], input="")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"rlscale grpo-step: --out {precious}: exists and is not a model checkpoint (refusing "
        "to replace it; choose a new or checkpoint directory)")
    assert (precious / "thesis.tex").read_text() == "keep me"
    with pytest.raises(RlscaleError, match="does not exist"):
        checkpoints.check_output_dir(str(tmp_path / "missing" / "ckpt"))


# --- prompts rendered by the one renderer rollout samples with ---------------------------


@pytest.mark.parametrize("style", ["qwen", "llama"])
@pytest.mark.parametrize("chat_template", [True, False])
@pytest.mark.parametrize("prompt", ["What is 12 + 7?",
                                    [{"role": "user", "content": "What is 12 + 7?"}]])
def test_text_prompts_get_the_ids_rollout_sampled_from(style, chat_template, prompt, request):
    from rlscale.core.prompts import render_prompt_ids

    tokenizer = request.getfixturevalue(style)
    record = {"prompt_id": 1, "reward": 1, "prompt": prompt, "completion_ids": [5]}
    ids = train.sample_from_record(record, tokenizer, 10**6, chat_template=chat_template)[0]
    assert ids == render_prompt_ids(tokenizer, prompt, chat_template=chat_template)
    bos = tokenizer.bos_token_id
    if style == "llama":  # raw text gets the BOS; the template writes it itself
        assert ids[0] == bos and ids.count(bos) == 1
