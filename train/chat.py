"""From a record to chat messages to text, the same way for training, evaluation and scoring.

`render_prompt(record, tokenizer)` is THE prompt a model sees for a record: training tokenizes
exactly this text before the response (see data.encode_record), and active learning scores the
same text, so the two never drift apart.

A record is the Alpaca triple (the user turn is the instruction, then a blank line and the input
when there is one; the assistant turn is the output) or a `messages` list (OpenAI format).

Tokenizers without a chat template get ChatML written as plain text (`<|im_start|>user ...`),
with the tokenizer's end-of-sequence token after each assistant turn so generation knows where to
stop. `chat_template: model` refuses that fallback instead.
"""

from __future__ import annotations

from pathlib import Path

from seedloop.core.errors import ConfigError, InputError
from seedloop.core.record import record_messages

CHATML_FALLBACK = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' }}"
    "{% if message['role'] == 'assistant' and eos_token %}{{ eos_token }}{% endif %}"
    "{{ '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def setup_chat_template(tokenizer, choice: str = "auto") -> str:
    """Give `tokenizer` the template to use, and return where it came from (recorded in metrics).

    choice: auto (the model's own, else the ChatML fallback), model (the model's own or fail),
    chatml (the fallback even if the model has one), or a path to a Jinja file.
    """
    own = getattr(tokenizer, "chat_template", None)
    if choice in ("auto", "model") and own:
        return "model"
    if choice == "model":
        raise InputError("the model's tokenizer has no chat template: pass chat_template=auto (ChatML "
                         "fallback) or chat_template=PATH.jinja", field="chat_template")
    if choice in ("auto", "chatml"):
        tokenizer.chat_template = CHATML_FALLBACK
        return "fallback:chatml"
    path = Path(choice)
    if not path.is_file():
        raise ConfigError(f"chat_template: no file {path} (use auto, model, chatml or a .jinja path)")
    tokenizer.chat_template = path.read_text(encoding="utf-8")
    return f"file:{path.name}"


def render(tokenizer, messages: list[dict], *, generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def render_prompt(record: dict, tokenizer) -> str:
    """The text a model is given for `record`: every turn before the final answer, then the
    template's opening of the assistant turn."""
    return render(tokenizer, record_messages(record, with_output=False), generation_prompt=True)


def render_segments(record: dict, tokenizer) -> list[tuple[str, bool]]:
    """The rendered conversation cut into (text, is_response) pieces, in order.

    Each assistant turn is a response piece: from the end of the generation prompt before it to the
    end of that turn as the template writes it (end-of-turn marker included, so the model learns to
    stop). Requires that the template renders each prefix of a conversation as a prefix of the
    whole, which holds for ChatML, Llama, Mistral and Gemma templates.
    """
    messages = record_messages(record)
    full = render(tokenizer, messages)
    pieces, done = [], 0
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(tokenizer, messages[:i], generation_prompt=True) if i else ""
        through = render(tokenizer, messages[: i + 1])
        if not (full.startswith(before) and full.startswith(through) and done <= len(before) <= len(through)):
            raise InputError("the chat template does not render this conversation's beginning as the beginning "
                             "of the whole; cannot tell prompt from response (use chat_template=chatml)",
                             line=f"record {record.get('id')}", field="messages")
        pieces += [(full[done:len(before)], False), (full[len(before):len(through)], True)]
        done = len(through)
    if done < len(full):
        pieces.append((full[done:], False))
    return [(text, is_response) for text, is_response in pieces if text]
