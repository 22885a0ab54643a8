"""Checkpoints that are safe to share and to overlap (issue 13): files `grpo-step --out` does not
own survive a step, overlapping steps never both succeed, killed saves leave nothing behind for
long, and broken checkpoints or inputs fail in one line before any model is loaded."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import time

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from rlscale.core.sampling import check_prompt_chars, longest_token_chars
from rlscale.engines import checkpoints
from rlscale.engines.checkpoints import CheckpointLock
from rlscale.engines.train import PolicyTrainer, TrainConfig
from tests.conftest import REPO, CliResult, jsonl, run_cli, run_inprocess
from tests.test_grpo_step import make_records, to_samples


@pytest.fixture(scope="module")
def tokenizer(tiny_checkpoint):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_checkpoint)


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def tree_digests(directory) -> dict[str, str]:
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            out[os.path.relpath(path, directory)] = digest(path)
    return out


def step_args(policy, out, *extra):
    return ["grpo-step", "--policy", str(policy), "--out", str(out), "--kl-coef", "0",
            "--mini-batches", "2", "--lr", "1e-3", *extra]


def policy_copy(tiny_checkpoint, tmp_path, name="ckpt"):
    """`cp -r Qwen2.5-0.5B ckpt`, as the README's workflow starts."""
    path = tmp_path / name
    shutil.copytree(tiny_checkpoint, path)
    return path


# --- item 2: files --out does not own --------------------------------------------------------


def test_step_in_place_keeps_files_it_does_not_own(tiny_checkpoint, tokenizer, tmp_path):
    ckpt = policy_copy(tiny_checkpoint, tmp_path)
    (ckpt / "NOTES.md").write_text("lr sweep, run 3\n")
    (ckpt / "LICENSE").write_text("Apache-2.0\n")
    (ckpt / "vocab.json").write_text('{"a": 0}')  # a tokenizer file save_pretrained skips
    (ckpt / "evals" / "step0").mkdir(parents=True)
    (ckpt / "evals" / "step0" / "runs.jsonl").write_text('{"loss": 0.5}\n')
    (ckpt / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(ckpt / "run.sh", 0o750)
    (ckpt / "pytorch_model.bin").write_bytes(b"old weights in another format")
    foreign = ["LICENSE", "NOTES.md", "evals/step0/runs.jsonl", "run.sh", "vocab.json"]
    before = tree_digests(ckpt)

    result = run_inprocess(step_args(ckpt, ckpt), input=jsonl(make_records(tokenizer)))
    assert result.exit_code == 0, result.stderr
    assert result.records[0]["step"] == 1
    after = tree_digests(ckpt)
    for name in foreign:
        assert after[name] == before[name], name
    assert stat.S_IMODE(os.stat(ckpt / "run.sh").st_mode) == 0o750
    # the old weights in another format would be stale next to the new ones: left out, said so
    assert "pytorch_model.bin" not in after
    assert after["model.safetensors"] != before["model.safetensors"]
    assert ("rlscale grpo-step: note: left out pytorch_model.bin of the old "
            f"{ckpt} (weights, configs or tokenizer files the new checkpoint replaces)"
            ) in result.stderr.splitlines()
    # and they keep travelling: a second step carries them again
    result = run_inprocess(step_args(ckpt, ckpt), input=jsonl(make_records(tokenizer, seed=1)))
    assert result.exit_code == 0, result.stderr
    assert result.records[0]["step"] == 2
    assert {k: v for k, v in tree_digests(ckpt).items() if k in foreign} == \
        {k: before[k] for k in foreign}


def test_carry_over_rules(tmp_path):
    new, old, tok = tmp_path / "new", tmp_path / "old", tmp_path / "tok"
    for d in (new, old, tok):
        d.mkdir()
    for name in ("model.safetensors", "config.json", "tokenizer.json", "README.md"):
        (new / name).write_text(f"new {name}")
    for name in ("model.safetensors", "model-00001-of-00002.safetensors",
                 "model.safetensors.index.json", "rlscale_master.safetensors",
                 "adapter_config.json", "vocab.json", "merges.txt", "NOTES.md", "README.md"):
        (old / name).write_text(f"old {name}")
    (old / "evals").mkdir()
    (old / "evals" / "x.bin").write_text("user data, not weights")
    (tok / "vocab.json").write_text("policy vocab")
    (tok / "merges.txt").write_text("policy merges")

    # --out is another model's checkpoint: its tokenizer files are not the policy's
    carried, dropped = checkpoints.carry_over(str(new), str(old), str(tok))
    assert sorted(carried) == ["NOTES.md", "README.md", "evals", "merges.txt", "vocab.json"]
    assert sorted(dropped) == ["adapter_config.json", "merges.txt",
                               "model-00001-of-00002.safetensors",
                               "model.safetensors.index.json", "rlscale_master.safetensors",
                               "vocab.json"]
    assert (new / "vocab.json").read_text() == "policy vocab"
    assert (new / "README.md").read_text() == "old README.md"  # the user's, not a model card
    assert (new / "model.safetensors").read_text() == "new model.safetensors"
    assert (new / "evals" / "x.bin").read_text() == "user data, not weights"

    # in place (--out is where the tokenizer came from): its own tokenizer files travel
    new2 = tmp_path / "new2"
    new2.mkdir()
    (new2 / "model.safetensors").write_text("new")
    carried, dropped = checkpoints.carry_over(str(new2), str(old), str(old))
    assert "vocab.json" in carried and "merges.txt" in carried
    assert (new2 / "vocab.json").read_text() == "old vocab.json"


# --- item 3: overlapping steps ----------------------------------------------------------------


def test_a_step_on_a_locked_checkpoint_fails_before_loading(tiny_checkpoint, tokenizer,
                                                            tmp_path):
    ckpt = policy_copy(tiny_checkpoint, tmp_path)
    before = tree_digests(ckpt)
    with CheckpointLock(str(ckpt)):  # what a running grpo-step holds
        result = run_cli(step_args(ckpt, ckpt), input=jsonl(make_records(tokenizer)))
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"rlscale grpo-step: --out {ckpt}: another grpo-step (pid {os.getpid()}) is updating "
        "this checkpoint; not training on rollouts of the weights it is replacing")
    assert result.stdout == ""
    assert tree_digests(ckpt) == before
    # released: the next step runs
    result = run_inprocess(step_args(ckpt, ckpt), input=jsonl(make_records(tokenizer)))
    assert result.exit_code == 0, result.stderr


def _start_paused_step(ckpt, pause_dir, records_text):
    env = dict(os.environ, RLSCALE_TEST_PAUSE=str(pause_dir))
    proc = subprocess.Popen([sys.executable, "-m", "rlscale", *step_args(ckpt, ckpt)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=REPO)
    proc.stdin.write(records_text.encode())
    proc.stdin.close()
    proc.stdin = None  # all input given; communicate() must not flush it again
    return proc


def _wait_for(path, proc, limit_s=300):
    """Wait for the paused process to reach its pause point (a safety limit, not a timing
    assertion: the test's outcome does not depend on how long it takes)."""
    deadline = time.monotonic() + limit_s
    while not os.path.exists(path):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the step never reached its save"
        time.sleep(0.05)


def test_two_overlapping_steps_never_both_succeed(tiny_checkpoint, tokenizer, tmp_path):
    ckpt = policy_copy(tiny_checkpoint, tmp_path)
    pause = tmp_path / "pause"
    pause.mkdir()
    first = _start_paused_step(ckpt, pause, jsonl(make_records(tokenizer, seed=0)))
    try:
        _wait_for(pause / "in-save", first)  # the first step has trained and is saving
        second = run_cli(step_args(ckpt, ckpt), input=jsonl(make_records(tokenizer, seed=1)))
        (pause / "resume").write_text("")
        out, err = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err.decode()
    assert second.exit_code == 1
    assert second.stderr.strip() == (
        f"rlscale grpo-step: --out {ckpt}: another grpo-step (pid {first.pid}) is updating "
        "this checkpoint; not training on rollouts of the weights it is replacing")
    assert [r["step"] for r in CliResult(0, out.decode(), "").records] == [1]
    assert checkpoints.read_trainer_state(str(ckpt))["step"] == 1


def test_publish_refuses_a_checkpoint_that_moved_since_it_was_loaded(tiny_checkpoint, tokenizer,
                                                                     tmp_path):
    """The step check: a writer that bypassed the lock (an older rlscale, a copy) saved in
    between; publishing anyway would silently drop its update."""
    ckpt = str(policy_copy(tiny_checkpoint, tmp_path))
    cfg = TrainConfig(lr=1e-3, kl_coef=0.0, mini_batches=1)
    loaded = checkpoints.checkpoint_identity(ckpt)
    slow = PolicyTrainer(ckpt, None, cfg, device="cpu")
    fast = PolicyTrainer(ckpt, None, cfg, device="cpu")
    fast.train_step(to_samples(make_records(tokenizer, seed=1), tokenizer))
    fast.save(ckpt, expect=loaded)
    published = tree_digests(ckpt)
    slow.train_step(to_samples(make_records(tokenizer, seed=0), tokenizer))
    with pytest.raises(checkpoints.CheckpointMoved, match=(
            r"another run saved this checkpoint while this step ran \(step 0 when loaded, "
            r"step 1 now\); nothing saved \(its update would be lost\)")):
        slow.save(ckpt, expect=loaded)
    assert tree_digests(ckpt) == published
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]  # no temp folder left
    # against what it is now, the save goes through
    slow.save(ckpt, expect=checkpoints.checkpoint_identity(ckpt))
    assert checkpoints.read_trainer_state(ckpt)["step"] == 1


# --- item 8: leftovers of killed saves -----------------------------------------------------


def test_kill_9_inside_a_save_leaves_a_temp_folder_the_next_step_removes(
        tiny_checkpoint, tokenizer, tmp_path):
    ckpt = policy_copy(tiny_checkpoint, tmp_path)
    before = tree_digests(ckpt)
    pause = tmp_path / "pause"
    pause.mkdir()
    proc = _start_paused_step(ckpt, pause, jsonl(make_records(tokenizer)))
    try:
        _wait_for(pause / "in-save", proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    leftovers = [e for e in os.listdir(tmp_path) if e.startswith(".ckpt.tmp-")]
    assert len(leftovers) == 1  # a complete unpublished checkpoint, as after a real kill
    assert tree_digests(ckpt) == before  # the previous checkpoint is intact
    (tmp_path / ".ckpt.previous-old").mkdir()  # the rename fallback's stale old copy
    (tmp_path / ".other.tmp-1").mkdir()  # another checkpoint's: not ours to remove
    result = run_inprocess(step_args(ckpt, ckpt), input=jsonl(make_records(tokenizer)))
    assert result.exit_code == 0, result.stderr
    for name in (leftovers[0], ".ckpt.previous-old"):
        assert (f"rlscale grpo-step: removed {tmp_path / name} (left by an interrupted save)"
                in result.stderr.splitlines())
    assert sorted(e for e in os.listdir(tmp_path) if e != "pause") == [
        ".ckpt.lock", ".other.tmp-1", "ckpt"]


def test_previous_copy_is_kept_while_it_is_the_only_checkpoint(tmp_path):
    (tmp_path / ".ckpt.previous-x").mkdir()
    with CheckpointLock(str(tmp_path / "ckpt")) as lock:
        assert lock.removed == [] and lock.identity is None
    assert os.path.isdir(tmp_path / ".ckpt.previous-x")


# --- item 9: one line, before the model loads ------------------------------------------------


class _Refused:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_weights_are_refused_in_one_line(tiny_checkpoint, tokenizer, tmp_path):
    ckpt = policy_copy(tiny_checkpoint, tmp_path)
    os.remove(ckpt / "model.safetensors")
    torch.save({"model.embed_tokens.weight": _Refused()}, ckpt / "pytorch_model.bin")
    result = run_inprocess(step_args(ckpt, tmp_path / "out"), input=jsonl(make_records(tokenizer)))
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"rlscale grpo-step: {ckpt}: cannot load the model: pickled weights hold objects other "
        "than tensors (refused by torch.load(weights_only=True); convert trusted weights to "
        "safetensors)")
    assert "Traceback" not in result.stderr and "this must never run" not in result.stdout


def test_corrupt_optimizer_state_is_one_line(tiny_checkpoint, tokenizer, tmp_path):
    ckpt = policy_copy(tiny_checkpoint, tmp_path)
    trainer = PolicyTrainer(str(ckpt), None, TrainConfig(kl_coef=0.0, mini_batches=1),
                            device="cpu")
    trainer.train_step(to_samples(make_records(tokenizer), tokenizer))
    trainer.save(str(ckpt))
    (ckpt / checkpoints.OPTIMIZER_FILE).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    result = run_inprocess(step_args(ckpt, ckpt), input=jsonl(make_records(tokenizer)))
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"rlscale grpo-step: {ckpt / checkpoints.OPTIMIZER_FILE}: cannot load the optimizer state: "
        "Error while deserializing header: invalid header length")


def test_path_errors_come_before_the_model_loads(tiny_checkpoint, tokenizer, tmp_path):
    ckpt = policy_copy(tiny_checkpoint, tmp_path)
    records = jsonl(make_records(tokenizer))
    cases = [
        (step_args(ckpt, ckpt, "-o", str(tmp_path / "no" / "m.jsonl")), records,
         f"rlscale grpo-step: {tmp_path / 'no' / 'm.jsonl'}: directory {tmp_path / 'no'} does "
         "not exist"),
        (step_args(ckpt, tmp_path / "no" / "out"), records,
         f"rlscale grpo-step: --out {tmp_path / 'no' / 'out'}: directory {tmp_path / 'no'} "
         "does not exist"),
        (step_args(ckpt, ckpt, "--ref", str(tmp_path)), records,
         f"rlscale grpo-step: --ref {tmp_path}: no config.json or adapter_config.json (not a "
         "transformers checkpoint or PEFT adapter)"),
        ([*step_args(ckpt, ckpt), str(tmp_path / "missing.jsonl")], "",
         f"rlscale grpo-step: {tmp_path / 'missing.jsonl'}: no such file"),
    ]
    before = tree_digests(ckpt)
    for args, stdin, message in cases:
        result = run_inprocess(args, input=stdin)
        assert result.exit_code == 1, args
        assert result.stderr.strip().startswith(message), result.stderr  # and no "loading"
        assert "loading" not in result.stderr
    assert tree_digests(ckpt) == before
    assert not os.path.exists(tmp_path / "no")


def test_a_huge_prompt_is_refused_by_its_length(tiny_checkpoint, tokenizer, tmp_path):
    records = make_records(tokenizer, n_prompts=2, group_size=2)
    for r in records:
        del r["prompt_ids"]
    records[1]["prompt"] = "7 + 5 = ? " * 1_000_000  # 10 MB
    result = run_inprocess([*step_args(tiny_checkpoint, tmp_path / "out"), "--mini-batches", "1"],
                           input=jsonl(records))
    context = 512  # rlscale.engines.tiny's max_position_embeddings
    token_chars = longest_token_chars(tokenizer.get_vocab())
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"rlscale grpo-step: <stdin>:2: prompt has 10000000 characters, at least "
        f"{-(-10_000_000 // token_chars)} tokens: more than the model's context of {context} "
        "tokens")
    # prompt + completion over the context, in token ids: refused too (no silent extrapolation)
    records = make_records(tokenizer, n_prompts=1, group_size=2)
    records[0]["completion_ids"] = records[0]["completion_ids"] * 100
    result = run_inprocess([*step_args(tiny_checkpoint, tmp_path / "out"), "--mini-batches", "1"],
                           input=jsonl(records))
    assert result.exit_code == 1
    assert "more than the model's context of 512" in result.stderr.strip().splitlines()[-1]
    assert not os.path.exists(tmp_path / "out")


@given(st.text(min_size=1, max_size=300))
def test_the_character_bound_never_refuses_a_prompt_that_fits(tokenizer, text):
    """Soundness of the length check: a text of n characters has at least n / longest-token
    tokens, so whatever it refuses really is longer than the context."""
    token_chars = longest_token_chars(tokenizer.get_vocab())
    n_tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    assert n_tokens * token_chars >= len(text)
    check_prompt_chars(text, n_tokens, token_chars)  # a context that holds it: accepted
    with pytest.raises(ValueError, match="more than the model's context"):
        check_prompt_chars(text, (len(text) - 1) // token_chars, token_chars)


# --- item 11: -q hides library warnings ------------------------------------------------------


def test_quiet_hides_transformers_future_warnings(tiny_checkpoint, tokenizer, tmp_path):
    records = jsonl(make_records(tokenizer))
    args = ["grpo-step", "--policy", tiny_checkpoint, "--out", str(tmp_path / "a"), "--lora",
            "--lora-rank", "2", "--kl-coef", "0", "--mini-batches", "1"]
    loud = run_cli(args, input=records)
    assert loud.exit_code == 0, loud.stderr
    assert "FutureWarning" in loud.stderr  # peft/transformers warn on a LoRA step
    quiet = run_cli([*args[:4], str(tmp_path / "b"), *args[5:], "-q"], input=records)
    assert quiet.exit_code == 0, quiet.stderr
    assert quiet.stderr == ""
