"""Prompt rendering: how a record's ``prompt`` becomes the token ids a model sees.

One definition for every tool: ``rollout`` samples from these ids and ``grpo-step`` trains on
them when records carry no ``prompt_ids``, so the policy is trained on exactly what it saw.

The rule (VeRL's, paper-method.md §2.1):

* with the chat template, a string prompt is one user message; messages are rendered by
  ``tokenizer.apply_chat_template(..., add_generation_prompt=True)`` as text, then tokenised
  **without** adding special tokens (the template writes its own, a Llama-style ``<s>``
  included);
* without it, a string (or the content of a single message) is tokenised **with** the
  tokenizer's usual special tokens (a Llama-style tokenizer adds its BOS; a Qwen-style one adds
  nothing); a conversation of several messages has no raw form.

The tokenizer is duck-typed: anything with ``__call__(text, add_special_tokens=...)`` returning
``{"input_ids": [...]}``, ``apply_chat_template`` and a ``chat_template`` attribute, as a
transformers tokenizer has. Nothing here imports transformers or torch.
"""

from __future__ import annotations

from typing import Any

from rlscale.core.records import json_type_name

Prompt = str | list[dict[str, str]]


def check_prompt(value: Any) -> Prompt:
    """Validate a ``prompt`` field: a non-empty string, or a list of ``{role, content}`` messages.

    The message list is VeRL's parquet format (paper-method.md §5.1). Extra keys in a message are
    dropped. Raises ValueError with a user-facing message.

    >>> check_prompt([{"role": "user", "content": "Q", "name": "u"}])
    [{'role': 'user', 'content': 'Q'}]
    """
    if isinstance(value, str):
        if not value:
            raise ValueError("field 'prompt' is an empty string")
        return value
    if not isinstance(value, list):
        raise ValueError("field 'prompt' must be a string or a list of {role, content} messages, "
                         f"got {json_type_name(value)}")
    if not value:
        raise ValueError("field 'prompt' is an empty message list")
    messages = []
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise ValueError(f"prompt message {i} must be an object with 'role' and 'content', "
                             f"got {json_type_name(message)}")
        for key in ("role", "content"):
            if not isinstance(message.get(key), str):
                raise ValueError(f"prompt message {i}: '{key}' must be a string")
        messages.append({"role": message["role"], "content": message["content"]})
    return messages


def render_plan(prompt: Prompt, chat_template: bool) -> tuple[str, Any]:
    """Decide how a checked prompt becomes text: ``("chat", messages)`` or ``("raw", text)``.

    With the chat template a string prompt becomes one user message. Without it a string is
    used verbatim and a single message contributes its content; a multi-message conversation
    has no raw form (ValueError).

    >>> render_plan("Q", True), render_plan([{"role": "user", "content": "Q"}], False)
    (('chat', [{'role': 'user', 'content': 'Q'}]), ('raw', 'Q'))
    """
    if chat_template:
        if isinstance(prompt, str):
            return "chat", [{"role": "user", "content": prompt}]
        return "chat", prompt
    if isinstance(prompt, str):
        return "raw", prompt
    if len(prompt) == 1:
        return "raw", prompt[0]["content"]
    raise ValueError(f"prompt is a list of {len(prompt)} messages; --no-chat-template needs a "
                     "string or a single message")


def has_chat_template(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` can render messages (it has a non-empty ``chat_template``)."""
    return bool(getattr(tokenizer, "chat_template", None))


def render_prompt_ids(tokenizer: Any, prompt: Any, *, chat_template: bool = True) -> list[int]:
    """The token ids of ``prompt`` (a string or ``{role, content}`` messages), by the rule of
    the module docstring.

    Raises:
        ValueError: a bad prompt (:func:`check_prompt`), several messages without the chat
            template, a tokenizer without a chat template, or a template that rejects the
            messages; the message says which.
    """
    kind, content = render_plan(check_prompt(prompt), chat_template)
    if kind == "raw":
        return list(tokenizer(content, add_special_tokens=True)["input_ids"])
    if not has_chat_template(tokenizer):
        raise ValueError("the tokenizer has no chat template")
    try:
        text = tokenizer.apply_chat_template(content, add_generation_prompt=True, tokenize=False)
    except Exception as exc:  # jinja2 raises its own TemplateError subclasses
        raise ValueError(f"the chat template rejects this prompt: {exc}") from None
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])
