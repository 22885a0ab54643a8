"""Run VeRL 0.9.1's own code on requests from the tests (tests/test_verl_*.py).

VeRL's config stack (hydra-core 1.3 -> antlr4 4.9) cannot share an interpreter with math-verify's
antlr4 4.13, so VeRL lives in its own directory (``.venv/verl-oracle``, installed by
``make install``) and runs in a child interpreter with that directory first on sys.path: the
environment of a real VeRL worker. Ray is stubbed: nothing asked of VeRL here starts a cluster.

Reads one JSON request on stdin, writes one JSON answer on stdout.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import sys
import types

ORACLE_DIR = os.path.join(sys.prefix, "verl-oracle")


class _RayUnavailable:
    """Any ray attribute: usable as a type or decorator at import time, raises when called."""

    def __init__(self, name):
        self._name = name

    def __call__(self, *args, **kwargs):
        if len(args) == 1 and not kwargs and callable(args[0]) and self._name.endswith("remote"):
            return args[0]
        raise RuntimeError(f"{self._name}: Ray is stubbed in rlscale's VeRL checks")

    def __getattr__(self, item):
        if item.startswith("__"):
            raise AttributeError(item)
        return _RayUnavailable(f"{self._name}.{item}")

    def __mro_entries__(self, bases):
        return (object,)

    def __getitem__(self, item):
        return self


class _RayModule(types.ModuleType):
    def __getattr__(self, item):
        if item.startswith("__"):
            raise AttributeError(item)
        return _RayUnavailable(f"{self.__name__}.{item}")


class _RayStub(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name == "ray" or name.startswith("ray."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _RayModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        if module.__name__ == "ray":
            module.is_initialized = lambda: False


def validate(override_sets):
    """Compose each override list with ppo_trainer.yaml and run main_ppo's validate_config."""
    # validate_config checks a LoRA rank with vllm_rollout.utils.get_vllm_max_lora_rank, whose
    # module imports vLLM at the top; the function itself needs no vLLM, so VeRL's own
    # definition is read out of that file and served alone
    import ast
    import io
    import typing
    from contextlib import redirect_stdout

    import verl.trainer.main_ppo as main_ppo
    import verl.workers.rollout as rollout_pkg
    from hydra import compose, initialize_config_dir

    name = "verl.workers.rollout.vllm_rollout"
    folder = os.path.join(os.path.dirname(rollout_pkg.__file__), "vllm_rollout")
    if name + ".utils" not in sys.modules:
        with open(os.path.join(folder, "utils.py")) as handle:
            tree = ast.parse(handle.read())
        (function,) = [node for node in tree.body if isinstance(node, ast.FunctionDef)
                       and node.name == "get_vllm_max_lora_rank"]
        utils = types.ModuleType(name + ".utils")
        utils.__dict__.update(Literal=typing.Literal, get_args=typing.get_args)
        exec(compile(ast.Module([function], []), os.path.join(folder, "utils.py"), "exec"),
             utils.__dict__)
        package = types.ModuleType(name)
        package.__path__ = [folder]
        package.utils = utils
        sys.modules[name], sys.modules[name + ".utils"] = package, utils
    config_dir = os.path.join(os.path.dirname(main_ppo.__file__), "config")
    results = []
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        for overrides in override_sets:
            try:
                config = compose("ppo_trainer", overrides=overrides)
                with redirect_stdout(io.StringIO()):
                    main_ppo.validate_config(
                        config=config,
                        use_reference_policy=main_ppo.need_reference_policy(config),
                        use_critic=main_ppo.need_critic(config))
                from omegaconf import OmegaConf

                picked = {key: OmegaConf.select(config, key) for key in request_keys}
                results.append({"ok": True, "values": json.loads(json.dumps(
                    picked, default=lambda v: OmegaConf.to_container(v)))})
            except Exception as exc:  # noqa: BLE001 - the test reports VeRL's own message
                results.append({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    return results


def reward(request):
    """Load the plug-in through get_custom_reward_fn and grade the given cases."""
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import get_custom_reward_fn

    config = OmegaConf.create({"reward": {"custom_reward_function": request["config"]}})
    fn = get_custom_reward_fn(config)
    return [fn(*case) for case in request["cases"]]


def log_lines(request):
    """Console lines as VeRL's console logger prints them, and validation metrics as VeRL's
    trainer names them."""
    import numpy as np
    from verl.trainer.ppo.metric_utils import process_validation_metrics
    from verl.utils.logger.aggregate_logger import concat_dict_to_str

    lines = []
    for step in request["steps"]:
        metrics = {k: (np.float64(v) if isinstance(v, float) else v)
                   for k, v in step["metrics"].items()}
        if "validation" in step:
            val = step["validation"]
            infos = {key: list(values) for key, values in val["infos"].items()}
            processed = process_validation_metrics(val["data_sources"], val["uids"], infos)
            # the naming rule of verl/trainer/ppo/v1/trainer_base.py (_validate)
            for source, per_var in processed.items():
                core_var = "acc" if "acc" in per_var else "reward"
                for var, per_metric in per_var.items():
                    n_max = max(int(n.split("@")[-1].split("/")[0]) for n in per_metric)
                    for name, value in per_metric.items():
                        core = (var == core_var and name.startswith(("mean", "maj", "best"))
                                and f"@{n_max}" in name)
                        family = "val-core" if core else "val-aux"
                        metrics[f"{family}/{source}/{var}/{name}"] = value
        lines.append(concat_dict_to_str(metrics, step=step["step"]))
    return lines


def file_log(request):
    """Write steps with VeRL's own file logger (trainer.logger=[file]) to request['path']."""
    os.environ["VERL_FILE_LOGGER_PATH"] = request["path"]
    from verl.utils.tracking import FileLogger

    logger = FileLogger(project_name="p", experiment_name="e")
    for step in request["steps"]:
        logger.log(step["metrics"], step=step["step"])
    logger.finish()
    return request["path"]


def algos(request):
    """VeRL's core_algos on the given tensors: advantages, policy loss, KL, aggregation."""
    import numpy as np
    import torch
    from omegaconf import OmegaConf
    from verl.trainer.ppo import core_algos

    mask = torch.tensor(request["mask"], dtype=torch.float64)
    logp = torch.tensor(request["logp"], dtype=torch.float64)
    old = torch.tensor(request["old_logp"], dtype=torch.float64)
    ref = torch.tensor(request["ref_logp"], dtype=torch.float64)
    scores = torch.tensor(request["rewards"], dtype=torch.float64)
    # the outcome reward sits on the last response token, as VeRL's reward manager puts it
    token_rewards = torch.zeros_like(mask)
    last = mask.sum(-1).long() - 1
    token_rewards[torch.arange(len(last)), last] = scores
    out = {"advantages": {}, "pg_loss": {}, "kl": {}, "agg": {}}
    for norm in (True, False):
        adv, _ = core_algos.compute_grpo_outcome_advantage(
            token_rewards, mask, np.array(request["groups"], dtype=object),
            norm_adv_by_std_in_grpo=norm)
        out["advantages"][str(norm)] = adv[:, 0].tolist()
    adv, _ = core_algos.compute_grpo_outcome_advantage(
        token_rewards, mask, np.array(request["groups"], dtype=object))
    for mode in request["modes"]:
        config = OmegaConf.create({"clip_ratio": 0.2, "clip_ratio_low": 0.2,
                                   "clip_ratio_high": 0.28, "clip_ratio_c": 3.0,
                                   "global_batch_info": {}})
        loss, _ = core_algos.compute_policy_loss_vanilla(old, logp, adv, mask, mode, config)
        out["pg_loss"][mode] = float(loss)
        mat = torch.tensor(request["loss_mat"], dtype=torch.float64)
        out["agg"][mode] = float(core_algos.agg_loss(mat, mask, mode))
    for name in ("kl", "mse", "low_var_kl"):
        out["kl"][name] = core_algos.kl_penalty(logp, ref, name).tolist()
    return out


request_keys: list[str] = []

if __name__ == "__main__":
    sys.meta_path.insert(0, _RayStub())
    request = json.load(sys.stdin)
    request_keys = request.get("keys", [])
    answer = {}
    out, sys.stdout = sys.stdout, sys.stderr  # VeRL prints progress; stdout is the answer
    if "validate" in request:
        answer["validate"] = validate(request["validate"])
    if "reward" in request:
        answer["reward"] = reward(request["reward"])
    if "log" in request:
        answer["log"] = log_lines(request["log"])
    if "algos" in request:
        answer["algos"] = algos(request["algos"])
    if "file_log" in request:
        answer["file_log"] = file_log(request["file_log"])
    json.dump(answer, out)
