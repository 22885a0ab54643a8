"""`rlscale verl launch`: the VeRL main_ppo command for rlscale's GRPO settings."""

from __future__ import annotations

from typing import Annotated

import typer

from rlscale.cli._command import Context, tool

NAME = "verl"
HELP = (
    "launch: print a complete VeRL 0.9.1 `python3 -m verl.trainer.main_ppo` command (and its "
    "overrides, env and caveats as one JSON record) that runs GRPO with these settings on many "
    "GPUs: data, lengths, rollout engine, micro-batches, trainer settings, the console+file "
    "loggers `rlscale flops --from-verl-log` reads back, and rlscale's grader as VeRL's reward. "
    "Defaults are the paper's recipe (512 prompts x 8 rollouts, 4 mini-batches, lr 1e-6, "
    "weight decay 0.1, grad clip 1.0, clip 0.2/0.2, dual clip 3, k3 KL 0.001, token-mean, "
    "prompt/response 2048/4096, validation T=0.7 n=1, 1 epoch). A setting VeRL cannot express "
    "is refused (exit 2) with the reason; where the meanings differ the record's caveats say so."
)
EPILOG = (
    "Examples:\n\n"
    "  rlscale verl launch --policy Qwen/Qwen2.5-7B-Instruct --train-files train.parquet "
    "--val-files holdout.parquet\n\n"
    "  rlscale verl launch --policy ./Qwen2.5-0.5B --train-files t.parquet --val-files v.parquet "
    "--lora --lora-target q_proj,v_proj --n-gpus-per-node 4 | jq -r .command | sh"
)

_P = " (paper: {})"


@tool(NAME, shared=("output", "quiet", "debug"))
def command(
    ctx: Context,
    action: Annotated[str, typer.Argument(help="launch", metavar="ACTION")],
    policy: Annotated[str, typer.Option("--policy", help="Model VeRL starts from: a local "
                                        "directory (made absolute) or a hub id (kept).")],
    train_files: Annotated[list[str], typer.Option(
        "--train-files", help="Training parquet (from `rlscale curate --to-verl`; repeatable).")
    ] = None,
    val_files: Annotated[list[str], typer.Option(
        "--val-files", help="Validation parquet (repeatable).")] = None,
    train_batch_size: Annotated[int, typer.Option(
        "--train-batch-size", help="Prompts per step" + _P.format(512))] = 512,
    group_size: Annotated[int, typer.Option(
        "--group-size", help="Rollouts per prompt" + _P.format(8))] = 8,
    mini_batches: Annotated[int, typer.Option(
        "--mini-batches", help="Optimizer updates per step" + _P.format(4))] = 4,
    micro_batch_size: Annotated[int, typer.Option(
        "--micro-batch-size", help="Sequences per GPU per forward/backward (also the "
        "log-prob micro-batch of reference and rollout).")] = 8,
    max_tokens_per_micro_batch: Annotated[int | None, typer.Option(
        "--max-tokens-per-micro-batch", help="Per-GPU token budget instead of a fixed "
        "micro-batch (VeRL's use_dynamic_bsz).")] = None,
    lr: Annotated[float, typer.Option("--lr", help="AdamW lr, constant" + _P.format("1e-6"))
                  ] = 1e-6,
    weight_decay: Annotated[float, typer.Option(
        "--weight-decay", help="AdamW weight decay" + _P.format(0.1))] = 0.1,
    max_grad_norm: Annotated[float, typer.Option(
        "--max-grad-norm", help="Gradient-norm clip, 0: none" + _P.format(1.0))] = 1.0,
    clip: Annotated[float, typer.Option("--clip", help="PPO clip, low side" + _P.format(0.2))
                    ] = 0.2,
    clip_high: Annotated[float, typer.Option(
        "--clip-high", help="PPO clip, high side" + _P.format(0.2))] = 0.2,
    dual_clip: Annotated[float, typer.Option(
        "--dual-clip", help="Dual-clip c, 0: off" + _P.format(3.0))] = 3.0,
    kl_coef: Annotated[float, typer.Option("--kl-coef", help="KL loss coefficient, 0: no "
                                           "reference" + _P.format(0.001))] = 0.001,
    kl: Annotated[str, typer.Option("--kl", help="k1, k2 or k3" + _P.format("k3"))] = "k3",
    loss_agg: Annotated[str, typer.Option(
        "--loss-agg", help="token-mean, seq-mean-token-mean, seq-mean-token-sum or "
        "seq-mean-token-sum-norm" + _P.format("token-mean"))] = "token-mean",
    loss_scale: Annotated[float | None, typer.Option(
        "--loss-scale", help="Normaliser of seq-mean-token-sum-norm (VeRL default: max "
        "response length).")] = None,
    entropy_coef: Annotated[float, typer.Option("--entropy-coef", help="Entropy bonus"
                                                + _P.format(0))] = 0.0,
    std: Annotated[str, typer.Option("--std", help="Advantage std: unbiased or none (Dr. "
                                     "GRPO); biased is refused" + _P.format("unbiased"))
                   ] = "unbiased",
    temperature: Annotated[float, typer.Option("--temperature", help="Rollout temperature"
                                               + _P.format(1.0))] = 1.0,
    val_temperature: Annotated[float, typer.Option(
        "--val-temperature", help="Validation temperature, 0: greedy" + _P.format(0.7))] = 0.7,
    val_n: Annotated[int, typer.Option("--val-n", help="Validation samples per problem"
                                       + _P.format(1))] = 1,
    shuffle: Annotated[bool, typer.Option("--shuffle", help="Shuffle within a step's "
                                          "mini-batches (paper: no).")] = False,
    lora: Annotated[bool, typer.Option("--lora", help="Train LoRA adapters (paper: full).")
                    ] = False,
    lora_rank: Annotated[int, typer.Option("--lora-rank", help="LoRA rank.")] = 32,
    lora_alpha: Annotated[int, typer.Option("--lora-alpha", help="LoRA alpha.")] = 64,
    lora_dropout: Annotated[float, typer.Option(
        "--lora-dropout", help="Only 0 (VeRL's FSDP LoRA has no dropout).")] = 0.0,
    lora_target: Annotated[str, typer.Option(
        "--lora-target", help="'all-linear' or comma-separated module names.")] = "all-linear",
    gradient_checkpointing: Annotated[bool, typer.Option(
        "--gradient-checkpointing/--no-gradient-checkpointing",
        help="Recompute activations in backward.")] = True,
    max_prompt_length: Annotated[int, typer.Option(
        "--max-prompt-length", help="Longer prompts are filtered out" + _P.format(2048))] = 2048,
    max_response_length: Annotated[int, typer.Option(
        "--max-response-length", help="Response token cap" + _P.format(4096))] = 4096,
    rollout_engine: Annotated[str, typer.Option("--rollout-engine", help="vllm or sglang.")
                              ] = "vllm",
    tensor_parallel: Annotated[int, typer.Option(
        "--tensor-parallel", help="Rollout tensor-parallel size.")] = 1,
    n_gpus_per_node: Annotated[int, typer.Option("--n-gpus-per-node", help="GPUs per node.")
                               ] = 8,
    nnodes: Annotated[int, typer.Option("--nnodes", help="Nodes.")] = 1,
    total_epochs: Annotated[int, typer.Option("--total-epochs", help="Epochs over the "
                                              "training file" + _P.format(1))] = 1,
    total_training_steps: Annotated[int | None, typer.Option(
        "--total-training-steps", help="Stop after this many steps (default: the epochs).")
    ] = None,
    test_freq: Annotated[int, typer.Option("--test-freq", help="Validate every N steps "
                                           "(each validation is a point of the fit).")] = 5,
    save_freq: Annotated[int, typer.Option("--save-freq", help="Checkpoint every N steps "
                                           "(-1: never).")] = -1,
    project: Annotated[str, typer.Option("--project", help="trainer.project_name.")
                       ] = "rlscale",
    experiment: Annotated[str | None, typer.Option(
        "--experiment", help="trainer.experiment_name (default: the policy's name).")] = None,
    grader: Annotated[str, typer.Option("--grader", help="Reward in VeRL: any `rlscale reward --grader` (paper, the paper's scorer, by default).")
                      ] = "paper",
    seed: Annotated[int | None, typer.Option("--seed", help="data.seed (prompt order).")
                    ] = None,
) -> None:
    from rlscale.cli._shared import check_choice
    from rlscale.integrations.verl_launch import LaunchOptions, launch

    check_choice(action, ("launch",), "ACTION")
    result = launch(LaunchOptions(
        policy=policy, train_files=list(train_files or []), val_files=list(val_files or []),
        train_batch_size=train_batch_size, group_size=group_size, mini_batches=mini_batches,
        micro_batch_size=micro_batch_size,
        max_tokens_per_micro_batch=max_tokens_per_micro_batch, lr=lr,
        weight_decay=weight_decay, max_grad_norm=max_grad_norm, clip_low=clip,
        clip_high=clip_high, dual_clip=dual_clip, kl_coef=kl_coef, kl=kl, loss_agg=loss_agg,
        loss_scale=loss_scale, entropy_coef=entropy_coef, std=std, temperature=temperature,
        val_temperature=val_temperature, val_n=val_n, shuffle=shuffle, lora=lora,
        lora_rank=lora_rank, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
        lora_target=lora_target, gradient_checkpointing=gradient_checkpointing,
        max_prompt_length=max_prompt_length, max_response_length=max_response_length,
        rollout_engine=rollout_engine, tensor_parallel=tensor_parallel,
        n_gpus_per_node=n_gpus_per_node, nnodes=nnodes, total_epochs=total_epochs,
        total_training_steps=total_training_steps, test_freq=test_freq,
        save_freq=save_freq, project=project, experiment=experiment, grader=grader,
        seed=seed))
    with ctx.writer() as writer:
        writer.write(result)
    for caveat in result["caveats"]:
        ctx.say(f"rlscale {NAME}: note: {caveat}")
