"""Pretraining of the demo's tiny base models: tokenization contract and that it learns."""

from __future__ import annotations

import random

import pytest

from rlscale.demo.pretrain import (
    DEMO_SIZES,
    PretrainConfig,
    encode_example,
    pretrain,
    sampled_pass_rate,
    tokenizer_corpus,
)
from rlscale.demo.task import generate_problems, pretraining_corpus


@pytest.fixture(scope="module")
def tokenizer():
    from rlscale.engines.tiny import train_tokenizer

    problems = generate_problems(random.Random(0), 500, unique=False)
    return train_tokenizer(tokenizer_corpus(problems), vocab_size=512)


def test_encoding_is_what_rollout_samples_from(tokenizer):
    problem = {"prompt": "What is 9 + 5 + 8? Please output the final answer within \\boxed{}.",
               "answer": "22", "expression": "9 + 5 + 8"}
    prompt_ids, answer_ids = encode_example(tokenizer, problem)
    # raw prompt (rollout --no-chat-template tokenizes the prompt string alone) ...
    assert prompt_ids == tokenizer(problem["prompt"], add_special_tokens=False)["input_ids"]
    # ... then one space, the worked solution and the end-of-text token that stops sampling
    assert answer_ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(answer_ids[:-1]) == " 9+5=14 14+8=22 \\boxed{22}"
    # digits are single tokens, so the answer digits are learnable one at a time
    assert [tokenizer.decode([t]) for t in answer_ids[-4:-2]] == ["2", "2"]
    direct = {**problem, "solution": "\\boxed{21}"}
    assert tokenizer.decode(encode_example(tokenizer, direct)[1][:-1]) == " \\boxed{21}"


def test_chat_template_encoding_matches_the_template(tokenizer):
    problem = {"prompt": "What is 3 + 4? Please output the final answer within \\boxed{}.",
               "answer": "7", "expression": "3 + 4"}
    prompt_ids, answer_ids = encode_example(tokenizer, problem, chat_template=True)
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": problem["prompt"]}],
                                             add_generation_prompt=True, tokenize=False)
    assert tokenizer.decode(prompt_ids) == rendered
    assert tokenizer.decode(answer_ids[:-1]) == "3+4=7 \\boxed{7}"


def test_brief_pretraining_lowers_the_answer_loss_and_is_seeded(tmp_path, tokenizer):
    from transformers import AutoModelForCausalLM

    from rlscale.engines.tiny import build_tiny_checkpoint

    corpus = pretraining_corpus(random.Random(1), generate_problems(
        random.Random(2), 2000, levels=[2], unique=False), worked_share=1.0, slip_rate=0.0,
        miss_rate=0.0)
    config = PretrainConfig(steps=24, batch_size=16, lr=1e-2, warmup_steps=2, seed=0)
    losses = []
    for run in range(2):
        directory = build_tiny_checkpoint(str(tmp_path / f"m{run}"), config=DEMO_SIZES["s1"],
                                          tokenizer=tokenizer, seed=0)
        model = AutoModelForCausalLM.from_pretrained(directory)
        history = pretrain(model, tokenizer, corpus, config, log_every=8)
        losses.append([record["loss"] for record in history])
    assert losses[0] == losses[1]  # same seed, same data order, same losses
    assert losses[0][-1] < 0.4 * losses[0][0]
    assert len(losses[0]) == 4  # logged at steps 0, 8, 16 and the last (23)
    rate = sampled_pass_rate(model, tokenizer, corpus[:20], n_samples=2, seed=0)
    assert 0.0 <= rate <= 1.0
