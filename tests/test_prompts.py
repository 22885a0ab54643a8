"""The one prompt renderer (rlscale.core.prompts) on a Qwen-style and a Llama-style tokenizer,
both built in code: string and message prompts, with and without the chat template."""

from __future__ import annotations

import doctest
import subprocess
import sys

import pytest

from rlscale.core import prompts
from rlscale.core.prompts import has_chat_template, render_prompt_ids

QUESTION = "What is 12 + 7? Please output the final answer within \\boxed{}."
CORPUS = [QUESTION, "The answer is \\boxed{19}. system user assistant",
          "You are a helpful assistant. 0 1 2 3 4 5 6 7 8 9"]
# Llama 3's template, minus the tool and date branches: it writes the BOS itself
LLAMA_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content']"
    " + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}"
)
LLAMA_SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                 "<|end_header_id|>", "<|eot_id|>"]


@pytest.fixture(scope="module")
def qwen():
    """ChatML template, no BOS: the tokenizer adds no special tokens to raw text."""
    from rlscale.engines.tiny import train_tokenizer

    return train_tokenizer(CORPUS)


@pytest.fixture(scope="module")
def llama():
    """Llama 3 style: a post-processor adds <|begin_of_text|> to raw text, and the chat template
    writes it as text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(CORPUS, trainer=trainers.BpeTrainer(
        vocab_size=300, special_tokens=LLAMA_SPECIAL, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    bos = backend.token_to_id("<|begin_of_text|>")
    backend.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", bos)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|begin_of_text|>",
                                        eos_token="<|eot_id|>")
    tokenizer.chat_template = LLAMA_TEMPLATE
    return tokenizer


@pytest.fixture(params=["qwen", "llama"])
def tokenizer(request):
    return request.getfixturevalue(request.param)


def test_doctests():
    result = doctest.testmod(prompts)
    assert result.attempted >= 2 and result.failed == 0


@pytest.mark.parametrize("chat_template", [True, False])
def test_a_string_and_the_same_user_message_give_the_same_ids(tokenizer, chat_template):
    as_text = render_prompt_ids(tokenizer, QUESTION, chat_template=chat_template)
    as_message = render_prompt_ids(tokenizer, [{"role": "user", "content": QUESTION}],
                                   chat_template=chat_template)
    assert as_text == as_message and QUESTION in tokenizer.decode(as_text)


def test_raw_text_gets_the_tokenizers_own_special_tokens(qwen, llama):
    assert render_prompt_ids(qwen, QUESTION, chat_template=False) == \
        qwen(QUESTION, add_special_tokens=False)["input_ids"]  # no BOS
    ids = render_prompt_ids(llama, QUESTION, chat_template=False)
    assert ids == [llama.bos_token_id] + llama(QUESTION, add_special_tokens=False)["input_ids"]


def test_the_chat_template_writes_the_special_tokens_once(qwen, llama):
    ids = render_prompt_ids(llama, QUESTION)
    assert ids[0] == llama.bos_token_id and ids.count(llama.bos_token_id) == 1
    text = llama.decode(ids)
    assert text.startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>")
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    ids = render_prompt_ids(qwen, QUESTION)
    assert qwen.decode(ids) == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                                f"<|im_start|>user\n{QUESTION}<|im_end|>\n"
                                "<|im_start|>assistant\n")


def test_a_conversation_renders_every_message(tokenizer):
    conversation = [{"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": QUESTION}]
    text = tokenizer.decode(render_prompt_ids(tokenizer, conversation))
    assert text.count("You are a helpful assistant.") == 1 and QUESTION in text
    with pytest.raises(ValueError, match="list of 2 messages; --no-chat-template needs"):
        render_prompt_ids(tokenizer, conversation, chat_template=False)


def test_rollout_encodes_with_the_one_renderer(tokenizer):
    from rlscale.engines.hf_rollout import PromptEncoder

    for chat_template in (True, False):
        encoder = PromptEncoder(tokenizer, chat_template=chat_template)
        for prompt in (QUESTION, [{"role": "user", "content": QUESTION}]):
            assert encoder(prompt, 512) == render_prompt_ids(tokenizer, prompt,
                                                             chat_template=chat_template)


def test_refusals(qwen):
    from transformers import PreTrainedTokenizerFast

    with pytest.raises(ValueError, match="^field 'prompt' is an empty string$"):
        render_prompt_ids(qwen, "")
    with pytest.raises(ValueError, match="^prompt message 0: 'content' must be a string$"):
        render_prompt_ids(qwen, [{"role": "user"}])
    bare = PreTrainedTokenizerFast(tokenizer_object=qwen.backend_tokenizer)
    assert not has_chat_template(bare) and has_chat_template(qwen)
    with pytest.raises(ValueError, match="^the tokenizer has no chat template$"):
        render_prompt_ids(bare, QUESTION)
    assert render_prompt_ids(bare, QUESTION, chat_template=False) == \
        render_prompt_ids(qwen, QUESTION, chat_template=False)


def test_a_template_that_raises_is_a_bad_prompt(qwen):
    import copy

    strict = copy.deepcopy(qwen)
    strict.chat_template = "{{ raise_exception('only one user turn') }}"
    with pytest.raises(ValueError, match="^the chat template rejects this prompt: only one"):
        render_prompt_ids(strict, QUESTION)


def test_the_renderer_imports_no_transformers():
    code = ("import sys, rlscale.core.prompts; "
            "assert not {'torch', 'transformers'} & set(sys.modules), sys.modules.keys()")
    subprocess.run([sys.executable, "-c", code], check=True)
