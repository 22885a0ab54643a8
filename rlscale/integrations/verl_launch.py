"""A complete VeRL 0.9.1 ``main_ppo`` launch from rlscale's GRPO options (pure; no torch).

Every option either maps to a VeRL key or is refused with the reason (an ``OptionError`` that
names the option: the parameter here and in :func:`rlscale.grpo_step`, the flag on the command
line); where
the two meanings differ slightly the mapping is exact where VeRL allows it and the difference is
returned in ``caveats``. The output is checked against VeRL 0.9.1's own Hydra compose and
``validate_config`` in tests/test_verl_launch.py.

Defaults are the paper's recipe (paper-method.md §2.1): 512 prompts x 8 rollouts, 4 PPO
mini-batches, lr 1e-6 constant, weight decay 0.1, grad clip 1.0, clip 0.2/0.2 with dual clip 3,
k3 KL at 0.001 as a loss, token-mean, prompt/response 2048/4096, validation at T = 0.7, 1 epoch.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field

from rlscale.core.errors import OptionError, OptionsError, UsageError
from rlscale.core.grading.registry import names as grader_names
from rlscale.core.grpo import KL_ESTIMATORS, LOSS_AGG_MODES, STD_MODES, VERL_KL_NAMES

ROLLOUT_ENGINES = ("vllm", "sglang")
# Stand-ins for "off" where VeRL has no switch: the dual clip bound -A*c and the grad-norm
# clip are never reached at these values.
NO_DUAL_CLIP = 1e9
NO_GRAD_CLIP = 1e12
_PLAIN = re.compile(r"^[A-Za-z0-9_.:/@+-]+$")


@dataclass
class LaunchOptions:
    """rlscale's options for one VeRL run; defaults are the paper's."""

    policy: str
    train_files: list[str] = field(default_factory=list)
    val_files: list[str] = field(default_factory=list)
    train_batch_size: int = 512
    group_size: int = 8
    mini_batches: int = 4
    micro_batch_size: int = 8
    max_tokens_per_micro_batch: int | None = None
    lr: float = 1e-6
    weight_decay: float = 0.1
    max_grad_norm: float = 1.0
    clip_low: float = 0.2
    clip_high: float = 0.2
    dual_clip: float = 3.0
    kl_coef: float = 0.001
    kl: str = "k3"
    loss_agg: str = "token-mean"
    loss_scale: float | None = None
    entropy_coef: float = 0.0
    std: str = "unbiased"
    temperature: float = 1.0
    val_temperature: float = 0.7
    val_n: int = 1
    shuffle: bool = False
    lora: bool = False
    lora_rank: int = 32
    lora_alpha: int = 64
    lora_dropout: float = 0.0
    lora_target: str = "all-linear"
    gradient_checkpointing: bool = True
    max_prompt_length: int = 2048
    max_response_length: int = 4096
    rollout_engine: str = "vllm"
    tensor_parallel: int = 1
    n_gpus_per_node: int = 8
    nnodes: int = 1
    total_epochs: int = 1
    total_training_steps: int | None = None
    test_freq: int = 5
    save_freq: int = -1
    project: str = "rlscale"
    experiment: str | None = None
    grader: str = "paper"
    seed: int | None = None


def _choice(value: str, choices, name: str) -> None:
    if value not in choices:
        raise OptionError(name, f"must be one of {', '.join(choices)}, got {value!r}")


def _hydra_value(value: str, name: str) -> str:
    """A string Hydra reads back unchanged (no quoting games: refuse what needs them)."""
    if not _PLAIN.match(value):
        raise OptionError(name, f"{value!r}: VeRL's Hydra overrides need a value of letters, "
                         "digits and ._:/@+- only")
    return value


def _path_or_id(value: str, name: str) -> str:
    """A local path becomes absolute; anything else (a hub id) is passed as given."""
    return _hydra_value(os.path.abspath(value) if os.path.exists(value) else value, name)


def _files(values: list[str], name: str, required: bool) -> str:
    if not values and not required:
        return "???"  # Hydra's mandatory value: VeRL refuses to start until it is given
    if not values:
        raise OptionError(name, "is required (the parquet written by `rlscale curate "
                          "--to-verl`)")
    paths = [_path_or_id(v, name) for v in values]
    return paths[0] if len(paths) == 1 else "[" + ",".join(paths) + "]"


def plugin_path() -> str:
    """The reward plug-in's file, which VeRL loads by path."""
    import rlscale.integrations as integrations

    return os.path.join(os.path.dirname(os.path.abspath(integrations.__file__)), "verl.py")


def launch(opts: LaunchOptions, data_required: bool = True) -> dict:
    """The ``main_ppo`` launch: ``{"command", "overrides", "env", "caveats"}``.

    Raises OptionError (with the reason) for a setting VeRL cannot express. Without
    ``data_required`` missing data files are left as Hydra's ``???`` (VeRL then refuses to start
    and names the key).
    """
    o = opts
    _choice(o.std, STD_MODES, "std")
    _choice(o.kl, KL_ESTIMATORS, "kl")
    _choice(o.loss_agg, LOSS_AGG_MODES, "loss_agg")
    _choice(o.rollout_engine, ROLLOUT_ENGINES, "rollout_engine")
    # any registered grader: the plug-in (integrations/verl.py) reads RLSCALE_GRADER from it
    _choice(o.grader, grader_names(), "grader")
    for name in ("train_batch_size", "group_size", "mini_batches", "micro_batch_size",
                 "n_gpus_per_node", "nnodes", "total_epochs", "val_n", "tensor_parallel",
                 "max_prompt_length", "max_response_length"):
        if getattr(o, name) < 1:
            raise OptionError(name, f"must be >= 1, got {getattr(o, name)}")
    if o.std == "biased":
        raise OptionsError("{std} biased: VeRL's GRPO advantage divides by the unbiased std "
                           "only (use {std} unbiased or none)")
    if o.lora and o.lora_dropout:
        raise OptionError("lora_dropout", ": VeRL's FSDP LoRA has no dropout setting (use 0)")
    if o.train_batch_size % o.mini_batches:
        raise OptionsError(f"{{train_batch_size}} {o.train_batch_size} is not divisible by "
                           f"{{mini_batches}} {o.mini_batches} (VeRL's mini-batches are equal)")
    if o.val_n > 1 and o.val_temperature <= 0:
        raise OptionsError("{val_n} > 1 needs {val_temperature} > 0 (greedy samples are "
                           "identical)")
    n_gpus = o.n_gpus_per_node * o.nnodes
    mini = o.train_batch_size // o.mini_batches
    if (o.train_batch_size * o.group_size) % n_gpus or (mini * o.group_size) % n_gpus:
        raise UsageError(f"{o.train_batch_size} prompts x {o.group_size} rollouts (and each "
                         f"mini-batch of {mini} prompts) must split evenly over {n_gpus} GPUs")
    if o.max_tokens_per_micro_batch is None and (mini * o.group_size // n_gpus) \
            % o.micro_batch_size:
        raise OptionError("micro_batch_size", f"{o.micro_batch_size} must divide the "
                         f"{mini * o.group_size // n_gpus} sequences per GPU of a mini-batch")
    if o.total_training_steps is not None and o.total_training_steps < 1:
        raise OptionError("total_training_steps", "must be >= 1")

    caveats: list[str] = []
    if not (o.train_files and o.val_files):
        caveats.append("no data files: give them with `rlscale verl launch --train-files "
                       "--val-files` (the parquet of `rlscale curate --to-verl`)")
    actor = "actor_rollout_ref.actor"
    rollout = "actor_rollout_ref.rollout"
    model = "actor_rollout_ref.model"
    policy = _path_or_id(o.policy, "policy")
    if not os.path.exists(o.policy):
        caveats.append(f"--policy {o.policy} is not a local path: VeRL loads it as a hub id")
    experiment = o.experiment or os.path.basename(policy.rstrip("/")) or "run"
    ov = [
        "algorithm.adv_estimator=grpo",
        f"algorithm.norm_adv_by_std_in_grpo={o.std != 'none'}",
        "algorithm.use_kl_in_reward=False",
        f"data.train_files={_files(o.train_files, 'train_files', data_required)}",
        f"data.val_files={_files(o.val_files, 'val_files', data_required)}",
        f"data.train_batch_size={o.train_batch_size}",
        f"data.max_prompt_length={o.max_prompt_length}",
        f"data.max_response_length={o.max_response_length}",
        "data.filter_overlong_prompts=True",
        "data.truncation=error",
        f"{model}.path={policy}",
        f"{model}.enable_gradient_checkpointing={o.gradient_checkpointing}",
        f"{actor}.optim.lr={o.lr!r}",
        f"{actor}.optim.lr_warmup_steps=0",
        f"{actor}.optim.weight_decay={o.weight_decay!r}",
        f"{actor}.optim.clip_grad={o.max_grad_norm if o.max_grad_norm else NO_GRAD_CLIP!r}",
        f"{actor}.ppo_mini_batch_size={mini}",
        f"{actor}.ppo_epochs=1",
        f"{actor}.shuffle={o.shuffle}",
        f"{actor}.clip_ratio_low={o.clip_low!r}",
        f"{actor}.clip_ratio_high={o.clip_high!r}",
        f"{actor}.clip_ratio_c={o.dual_clip if o.dual_clip else NO_DUAL_CLIP!r}",
        f"{actor}.use_kl_loss={o.kl_coef > 0}",
        f"{actor}.kl_loss_coef={o.kl_coef!r}",
        f"{actor}.kl_loss_type={VERL_KL_NAMES[o.kl]}",
        f"{actor}.loss_agg_mode={o.loss_agg}",
        f"{actor}.entropy_coeff={o.entropy_coef!r}",
        f"{rollout}.name={o.rollout_engine}",
        f"{rollout}.n={o.group_size}",
        f"{rollout}.temperature={o.temperature!r}",
        f"{rollout}.tensor_model_parallel_size={o.tensor_parallel}",
        f"{rollout}.val_kwargs.temperature={o.val_temperature!r}",
        f"{rollout}.val_kwargs.n={o.val_n}",
        f"{rollout}.val_kwargs.do_sample={o.val_temperature > 0}",
    ]
    if o.max_tokens_per_micro_batch is not None:
        if o.max_tokens_per_micro_batch < o.max_prompt_length + o.max_response_length:
            raise OptionError("max_tokens_per_micro_batch",
                              f"{o.max_tokens_per_micro_batch} is "
                             "below one full sequence (max prompt + response length)")
        ov += [f"{actor}.use_dynamic_bsz=True",
               f"{actor}.ppo_max_token_len_per_gpu={o.max_tokens_per_micro_batch}"]
        caveats.append("--max-tokens-per-micro-batch maps to VeRL's per-GPU token budget "
                       "(use_dynamic_bsz); VeRL counts prompt and response tokens without padding")
    else:
        # VeRL needs the log-prob micro-batches of the reference and rollout too
        ov += [f"{actor}.ppo_micro_batch_size_per_gpu={o.micro_batch_size}",
               f"actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu={o.micro_batch_size}",
               f"{rollout}.log_prob_micro_batch_size_per_gpu={o.micro_batch_size}"]
    if o.loss_scale is not None:
        if not o.loss_scale > 0:
            raise OptionError("loss_scale", "must be > 0")
        if o.loss_agg != "seq-mean-token-sum-norm":
            raise OptionsError("{loss_scale} only applies to {loss_agg} seq-mean-token-sum-norm")
        ov.append(f"{actor}.loss_scale_factor={o.loss_scale!r}")
    elif o.loss_agg == "seq-mean-token-sum-norm":
        caveats.append("seq-mean-token-sum-norm: VeRL divides by the padded response length "
                       f"({o.max_response_length}), local grpo-step by the step's longest "
                       f"completion; pass --loss-scale {o.max_response_length} to grpo-step for "
                       "identical steps")
    if o.lora:
        targets = o.lora_target
        if targets != "all-linear":
            names = [_hydra_value(t.strip(), "lora_target") for t in targets.split(",")
                     if t.strip()]
            if not names:
                raise OptionError("lora_target", ": no module names")
            targets = "[" + ",".join(names) + "]"
        ov += [f"{model}.lora_rank={o.lora_rank}", f"{model}.lora_alpha={o.lora_alpha}",
               f"{model}.target_modules={targets}"]
    if not o.dual_clip:
        caveats.append(f"VeRL always applies the dual clip; clip_ratio_c={NO_DUAL_CLIP:g} stands "
                       "in for --dual-clip 0 (its bound is never reached)")
    if not o.max_grad_norm:
        caveats.append(f"VeRL always clips the gradient norm; clip_grad={NO_GRAD_CLIP:g} stands "
                       "in for --max-grad-norm 0")
    if o.kl_coef > 0:
        caveats.append("VeRL's KL reference is the initial policy (actor_rollout_ref.model.path)")
    ov += [
        f"reward.custom_reward_function.path={plugin_path()}",
        "reward.custom_reward_function.name=compute_score",
        f"trainer.n_gpus_per_node={o.n_gpus_per_node}",
        f"trainer.nnodes={o.nnodes}",
        f"trainer.total_epochs={o.total_epochs}",
        f"trainer.test_freq={o.test_freq}",
        f"trainer.save_freq={o.save_freq}",
        "trainer.val_before_train=True",
        "trainer.logger=[console,file]",
        f"trainer.project_name={_hydra_value(o.project, 'project')}",
        f"trainer.experiment_name={_hydra_value(experiment, 'experiment')}",
    ]
    if o.total_training_steps is not None:
        ov.append(f"trainer.total_training_steps={o.total_training_steps}")
    if o.seed is not None:
        ov.append(f"data.seed={o.seed}")
    env = {"VERL_FILE_LOGGER_PATH": f"{o.project}/{experiment}.jsonl"}
    caveats.append("VeRL's file logger truncates its file on start: a resumed run needs a new "
                   "VERL_FILE_LOGGER_PATH (flops --from-verl-log merges the pieces)")
    if o.grader != "paper":
        env["RLSCALE_GRADER"] = o.grader
        caveats.append("RLSCALE_GRADER reaches the reward workers of a single-node Ray cluster "
                       "started by main_ppo; on a multi-node cluster set it on every node")
    command = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    command += " python3 -m verl.trainer.main_ppo " + shlex.join(ov)
    return {"command": command, "overrides": ov, "env": env, "caveats": caveats}
