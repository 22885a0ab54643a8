"""Tiny Qwen2-architecture checkpoints built in code, for tests, benchmarks and the demo.

No hub access is needed: a byte-level BPE tokenizer is trained in memory on a corpus, wrapped
as a fast tokenizer with a ChatML chat template (the one Qwen2.5 uses), and saved beside a
randomly initialised ``Qwen2ForCausalLM`` with ``save_pretrained``. The result loads through
``AutoTokenizer`` / ``AutoModelForCausalLM`` exactly like a real checkpoint directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

# ChatML, as in Qwen2.5's tokenizer_config.json, minus the tool-calling branches.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

DEFAULT_CORPUS = (
    "What is 12 + 7? Please output the final answer within \\boxed{}.",
    "The answer is \\boxed{19}. 0 1 2 3 4 5 6 7 8 9 + - * / = ( ) { } [ ] . , ? !",
    "You are a knowledgeable math assistant. Answer the following questions and think step by step.",
    "system user assistant You are a helpful assistant.",
)


@dataclass(frozen=True)
class TinyConfig:
    """Shape of a tiny Qwen2 model. Defaults give ~0.1M parameters."""

    hidden_size: int = 32
    intermediate_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 512
    tie_word_embeddings: bool = True


def train_tokenizer(corpus: Iterable[str] = DEFAULT_CORPUS, vocab_size: int = 384):
    """Train a byte-level BPE tokenizer in memory and wrap it as a transformers fast tokenizer.

    Digits are split into single characters so arithmetic stays learnable by tiny models.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(list(corpus), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.padding_side = "left"
    return tokenizer


def build_tiny_checkpoint(
    out_dir: str,
    *,
    config: TinyConfig = TinyConfig(),
    corpus: Iterable[str] = DEFAULT_CORPUS,
    vocab_size: int = 384,
    seed: int = 0,
    tokenizer=None,
) -> str:
    """Create a tiny Qwen2 checkpoint (safetensors + tokenizer) in ``out_dir`` and return it.

    Args:
        out_dir: directory to create (parents included).
        config: model shape.
        corpus: texts the tokenizer is trained on (ignored when ``tokenizer`` is given).
        vocab_size: target BPE vocabulary size.
        seed: seeds the weight initialisation, so the same arguments give the same weights.
        tokenizer: reuse an existing tokenizer (models of several sizes sharing one vocabulary).
    """
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    if tokenizer is None:
        tokenizer = train_tokenizer(corpus, vocab_size)
    model_config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=config.tie_word_embeddings,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(model_config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir
