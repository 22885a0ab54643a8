"""`rlscale verl launch` against VeRL 0.9.1 itself: its Hydra compose and validate_config."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli
from tests.verl_support import needs_verl, oracle

BASE = ["verl", "launch", "--policy", "Qwen/Qwen2.5-7B-Instruct", "--train-files",
        "/data/train.parquet", "--val-files", "/data/holdout.parquet", "--quiet"]
KEYS = ["actor_rollout_ref.model.target_modules", "actor_rollout_ref.actor.optim.clip_grad",
        "actor_rollout_ref.model.path", "reward.custom_reward_function.path",
        "data.max_response_length", "trainer.logger", "actor_rollout_ref.actor.loss_scale_factor",
        "actor_rollout_ref.actor.clip_ratio_c"]


def launch(*extra: str) -> dict:
    result = run_cli([*BASE, *extra])
    assert result.exit_code == 0, result.stderr
    return result.records[0]


# every choice rlscale offers, each at least once, in few combinations (one compose each)
MATRIX = [
    [],
    ["--lora", "--lora-target", "q_proj,v_proj"],
    ["--lora", "--lora-rank", "8", "--rollout-engine", "sglang"],
    ["--std", "none", "--kl", "k1", "--loss-agg", "seq-mean-token-mean"],
    ["--kl", "k2", "--loss-agg", "seq-mean-token-sum", "--clip-high", "0.28"],
    ["--loss-agg", "seq-mean-token-sum-norm", "--loss-scale", "4096", "--dual-clip", "0"],
    ["--max-grad-norm", "0", "--kl-coef", "0", "--entropy-coef", "0.001"],
    ["--max-tokens-per-micro-batch", "16384", "--n-gpus-per-node", "4", "--nnodes", "2"],
    ["--val-n", "8", "--total-training-steps", "100", "--shuffle", "--seed", "3",
     "--grader", "math", "--no-gradient-checkpointing", "--micro-batch-size", "4"],
]


@needs_verl
def test_every_option_combination_passes_verl_compose_and_validate_config(tmp_path):
    policy = tmp_path / "Qwen2.5-0.5B"
    policy.mkdir()
    records = [launch(*extra) for extra in MATRIX]
    records.append(launch("--policy", str(policy)))  # a local path, last --policy wins
    answer = oracle({"validate": [r["overrides"] for r in records], "keys": KEYS})
    for extra, result in zip([*MATRIX, ["local"]], answer["validate"], strict=True):
        assert result["ok"], f"{extra}: {result['error']}"
    values = [r["values"] for r in answer["validate"]]
    assert values[1]["actor_rollout_ref.model.target_modules"] == ["q_proj", "v_proj"]
    assert values[2]["actor_rollout_ref.model.target_modules"] == "all-linear"
    assert values[0]["actor_rollout_ref.actor.optim.clip_grad"] == 1.0
    assert values[6]["actor_rollout_ref.actor.optim.clip_grad"] == 1e12
    assert values[5]["actor_rollout_ref.actor.clip_ratio_c"] == 1e9
    assert values[5]["actor_rollout_ref.actor.loss_scale_factor"] == 4096
    assert values[0]["actor_rollout_ref.model.path"] == "Qwen/Qwen2.5-7B-Instruct"
    assert values[-1]["actor_rollout_ref.model.path"] == str(policy)
    assert values[0]["reward.custom_reward_function.path"].endswith("rlscale/integrations/verl.py")
    assert values[0]["data.max_response_length"] == 4096
    assert values[0]["trainer.logger"] == ["console", "file"]


@needs_verl
def test_the_old_fragment_fails_verl_and_a_missing_key_is_caught():
    """The checks can fail: drop the log-prob micro-batch sizes and validate_config refuses."""
    overrides = [o for o in launch()["overrides"] if "log_prob_micro_batch" not in o]
    (result,) = oracle({"validate": [overrides]})["validate"]
    assert not result["ok"] and "log_prob_micro_batch_size" in result["error"]
    bad_list = [o.replace("target_modules=[q_proj,v_proj]", "target_modules=q_proj,v_proj")
                for o in launch("--lora", "--lora-target", "q_proj,v_proj")["overrides"]]
    (result,) = oracle({"validate": [bad_list]})["validate"]
    assert not result["ok"] and "Ambiguous value" in result["error"]


def test_paper_defaults_map_to_verl_keys():
    record = launch()
    o = dict(item.split("=", 1) for item in record["overrides"])
    assert o["data.train_batch_size"] == "512" and o["actor_rollout_ref.rollout.n"] == "8"
    assert o["actor_rollout_ref.actor.ppo_mini_batch_size"] == "128"  # 512 / 4 mini-batches
    assert o["actor_rollout_ref.actor.kl_loss_type"] == "low_var_kl"
    assert o["actor_rollout_ref.actor.clip_ratio_c"] == "3.0"
    assert o["actor_rollout_ref.actor.optim.weight_decay"] == "0.1"
    assert o["actor_rollout_ref.rollout.val_kwargs.temperature"] == "0.7"
    assert o["data.max_prompt_length"] == "2048" and o["data.max_response_length"] == "4096"
    assert o["trainer.total_epochs"] == "1"
    assert "grad_clip" not in " ".join(record["overrides"])  # read by nothing in VeRL 0.9.1
    assert record["command"].startswith("VERL_FILE_LOGGER_PATH=rlscale/Qwen2.5-7B-Instruct.jsonl"
                                        " python3 -m verl.trainer.main_ppo algorithm.")


@pytest.mark.parametrize("extra, message", [
    (["--std", "biased"], "--std biased: VeRL's GRPO advantage divides by the unbiased std only"),
    (["--lora", "--lora-dropout", "0.1"], "--lora-dropout: VeRL's FSDP LoRA has no dropout"),
    (["--mini-batches", "3"], "--train-batch-size 512 is not divisible by --mini-batches 3"),
    (["--loss-scale", "10"], "--loss-scale only applies to --loss-agg seq-mean-token-sum-norm"),
    (["--experiment", "a b"], "--experiment 'a b': VeRL's Hydra overrides need"),
    (["--n-gpus-per-node", "3"], "512 prompts x 8 rollouts (and each mini-batch of 128 prompts) must split evenly over 3 GPUs"),
    (["--kl", "k4"], "--kl must be one of k1, k2, k3, got 'k4'"),
])
def test_what_verl_cannot_express_is_refused(extra, message):
    result = run_cli([*BASE, *extra])
    assert result.exit_code == 2
    assert result.stderr.startswith("rlscale verl: " + message)
    assert result.stderr.count("\n") == 1 and result.stdout == ""


def test_data_files_are_required_and_caveats_are_reported():
    result = run_cli(["verl", "launch", "--policy", "m", "--val-files", "v.parquet"])
    assert result.exit_code == 2
    assert "--train-files is required" in result.stderr
    result = run_cli([*BASE[:-1], "--dual-clip", "0", "--loss-agg", "seq-mean-token-sum-norm"])
    assert result.exit_code == 0
    assert "rlscale verl: note: VeRL always applies the dual clip" in result.stderr
    assert "pass --loss-scale 4096 to grpo-step" in result.stderr


def test_grpo_step_emit_verl_is_the_same_launch():
    args = ["--policy", "Qwen/Qwen2.5-7B-Instruct", "--train-files", "/data/train.parquet",
            "--val-files", "/data/holdout.parquet", "--kl", "k2", "--lora"]
    ours = run_cli(["verl", "launch", *args])
    theirs = run_cli(["grpo-step", "--emit", "verl", *args[:2], "--kl", "k2", "--lora"])
    assert theirs.exit_code == 0, theirs.stderr
    data = {"data.train_files=/data/train.parquet": "data.train_files=???",
            "data.val_files=/data/holdout.parquet": "data.val_files=???"}
    # grpo-step's defaults differ only in checkpointing (off locally) and the seed it echoes
    expected = [data.get(o, o).replace("checkpointing=True", "checkpointing=False")
                for o in ours.records[0]["overrides"]] + ["data.seed=0"]
    assert theirs.records[0]["overrides"] == expected
    assert any("no data files" in c for c in theirs.records[0]["caveats"])


