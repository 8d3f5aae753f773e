"""How a record becomes the model's input: prompt templates, and the tokenizer's chat template.

A template names a record's fields in braces (``"{premise} Question: {hypothesis}?"``). It is filled
in one pass, so braces inside a field's text are never read as fields. With ``data.chat_template``
the filled prompt is the user message of the tokenizer's chat template, followed by the opening of
the assistant's turn (``add_generation_prompt=True``), as instruct models expect.
"""

from __future__ import annotations

import re
from typing import Mapping

from paczero.errors import PaczeroError

_FIELD = re.compile(r"\{([^{}]+)\}")


def template_fields(template: str) -> list[str]:
    """The field names of ``template``, in order of first appearance."""
    return list(dict.fromkeys(_FIELD.findall(template)))


def fill_template(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each ``{name}`` of ``values`` replaced by its value; other braces are left as they are."""
    return _FIELD.sub(lambda m: values.get(m[1], m[0]), template)


def chat_text(tokenizer, prompt: str) -> str:
    """``prompt`` as the user turn of ``tokenizer``'s chat template, up to the start of the assistant's answer."""
    if not getattr(tokenizer, "chat_template", None):
        raise PaczeroError("config: data.chat_template=true but the model's tokenizer has no chat template (use an "
                           "instruct model, or set data.chat_template=false)")
    from jinja2 import TemplateError

    try:
        return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
    except (TemplateError, ValueError, TypeError) as exc:
        raise PaczeroError(f"the tokenizer's chat template fails on a prompt: {exc}") from None


def prompt_ids(tokenizer, prompt: str, *, chat: bool) -> list[int]:
    """Token ids of ``prompt``: with the tokenizer's special tokens (a leading BOS), or, with ``chat``, of its
    chat-template text, which holds whatever special tokens the template writes (none added twice)."""
    if chat:
        return tokenizer(chat_text(tokenizer, prompt), add_special_tokens=False).input_ids
    return tokenizer(prompt).input_ids

