"""Brief supervised pretraining of tiny Qwen2 models on the demo's digit-sum task.

A real RL post-training run starts from a base model that already solves some problems; GRPO
only learns from groups whose rewards differ. The demo's tiny models get the same starting point
from a few hundred AdamW steps on solution texts (``rlscale.demo.task.pretraining_corpus``: the
procedure written out only sometimes, with slips), loss on the solution tokens.

Every model of the study shares one tokenizer trained on the task's text, so token counts (and
hence the 6·N·T compute) are comparable across sizes.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rlscale.demo.task import BOXED_SUFFIX, direct_solution, worked_solution
from rlscale.engines.tiny import TinyConfig

# Model sizes of the micro study, smallest first: ~58k, ~95k, ~0.34M and ~0.83M parameters with
# the demo tokenizer (~330 tokens; embeddings tied). A ~14x range of N that pretrains in minutes.
# s1 is no narrower than 48: at width 32 (29k) 11% of its held-out answers were garbled and
# unboxed after pretraining, so RL could have gained by learning the format (width 48: 1.6%).
DEMO_SIZES: dict[str, TinyConfig] = {
    "s1": TinyConfig(hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2),
    "s2": TinyConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2),
    "s3": TinyConfig(hidden_size=96, intermediate_size=256, num_hidden_layers=3,
                     num_attention_heads=4, num_key_value_heads=2),
    "s4": TinyConfig(hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                     num_attention_heads=4, num_key_value_heads=2),
}


def scaled_lr(config: TinyConfig, base_lr: float = 3e-3, base_width: int = 64) -> float:
    """Peak pretraining learning rate for a width: ``base_lr * min(1, base_width / hidden)``.

    AdamW's best rate falls roughly as 1/width (the muP rule for hidden weights); at one rate for
    all sizes the two widest demo models ended up no better than the 95k one (measured: s4 at
    3e-3 reached an answer loss of 0.48 and 12% pass rate, at 1.5e-3 0.39 and 16%).
    """
    return base_lr * min(1.0, base_width / config.hidden_size)


@dataclass(frozen=True)
class PretrainConfig:
    """Optimisation settings of the brief pretraining (the same for every size)."""

    steps: int = 300
    batch_size: int = 64
    lr: float = 3e-3
    warmup_steps: int = 20
    weight_decay: float = 0.01
    seed: int = 0


def tokenizer_corpus(problems: Sequence[dict]) -> list[str]:
    """Texts the shared BPE tokenizer is trained on: prompts, solutions and chat scaffolding."""
    texts = [p["prompt"] for p in problems]
    texts += [worked_solution(p) for p in problems] + [direct_solution(p) for p in problems]
    texts += ["system user assistant You are a helpful assistant.", BOXED_SUFFIX]
    return texts


def encode_example(tokenizer, problem: dict, chat_template: bool = False,
                   ) -> tuple[list[int], list[int]]:
    """Token ids of the prompt and of the answer (plus the end-of-text token that stops sampling).

    The answer is ``problem["solution"]`` when present (a pretraining text), else the correct
    worked solution.

    The prompt is tokenized exactly as ``rlscale rollout`` does: raw text for a base model
    (``--no-chat-template``, the demo's default: half the tokens of the ChatML rendering), or
    the chat template with the generation prompt. The answer follows after one space.
    """
    if chat_template:
        prompt_ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": problem["prompt"]}], add_generation_prompt=True,
            tokenize=True, return_dict=True)["input_ids"]
        answer = problem.get("solution") or worked_solution(problem)
    else:
        prompt_ids = tokenizer(problem["prompt"], add_special_tokens=False)["input_ids"]
        answer = " " + (problem.get("solution") or worked_solution(problem))
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    return list(prompt_ids), list(answer_ids) + [tokenizer.eos_token_id]


def pretrain(model, tokenizer, corpus: Sequence[dict], config: PretrainConfig,
             log_every: int = 0, log=None, chat_template: bool = False) -> list[dict]:
    """Train ``model`` in place on ``corpus`` problems; returns per-log-step records.

    Batches are drawn with replacement from ``corpus`` with a generator seeded by
    ``config.seed``; the learning rate warms up linearly then decays with a cosine to 10 %.
    Loss: mean cross-entropy over the answer tokens only.
    """
    import torch

    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    encoded = [encode_example(tokenizer, p, chat_template) for p in corpus]
    pad_id = tokenizer.pad_token_id
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay, betas=(0.9, 0.98))

    def lr_at(step: int) -> float:
        if step < config.warmup_steps:
            return config.lr * (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    model.train()
    history: list[dict] = []
    for step in range(config.steps):
        batch = [encoded[rng.randrange(len(encoded))] for _ in range(config.batch_size)]
        length = max(len(p) + len(a) for p, a in batch)
        input_ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), length), -100, dtype=torch.long)
        attention = torch.zeros((len(batch), length), dtype=torch.long)
        for row, (prompt, answer) in enumerate(batch):
            ids = prompt + answer
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention[row, : len(ids)] = 1
            labels[row, len(prompt): len(ids)] = torch.tensor(answer)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        out = model(input_ids=input_ids, attention_mask=attention, labels=labels)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if log_every and (step % log_every == 0 or step == config.steps - 1):
            record = {"step": step, "loss": out.loss.item(), "lr": lr_at(step)}
            history.append(record)
            if log is not None:
                log(record)
    model.eval()
    return history


BOXED_NUMBER = re.compile(r"\\boxed\{(-?\d+)\}")


def sampled_pass_rate(model, tokenizer, problems: Sequence[dict], *, n_samples: int = 4,
                      temperature: float = 1.0, max_new_tokens: int = 48, seed: int = 0,
                      batch_size: int = 256, chat_template: bool = False) -> float:
    """Quick diagnostic: mean exact-match of the boxed integer over ``n_samples`` samples each.

    Only for progress messages while preparing the demo; the study itself measures pass rates
    with ``rlscale rollout | rlscale reward``.
    """
    import torch

    torch.manual_seed(seed)
    tokenizer.padding_side = "left"
    prompts = [encode_example(tokenizer, p, chat_template)[0] for p in problems for _ in range(n_samples)]
    answers = [p["answer"] for p in problems for _ in range(n_samples)]
    correct = 0
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start: start + batch_size]
        width = max(len(p) for p in chunk)
        input_ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, ids in enumerate(chunk):
            input_ids[row, width - len(ids):] = torch.tensor(ids)
            attention[row, width - len(ids):] = 1
        with torch.no_grad():
            out = model.generate(input_ids=input_ids, attention_mask=attention, do_sample=True,
                                 temperature=temperature, top_p=1.0, top_k=0,
                                 max_new_tokens=max_new_tokens,
                                 pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=tokenizer.eos_token_id)
        texts = tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
        for text, answer in zip(texts, answers[start: start + batch_size], strict=True):
            match = BOXED_NUMBER.findall(text)
            correct += bool(match) and match[-1] == answer
    return correct / max(1, len(prompts))
