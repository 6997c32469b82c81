"""The prompt template as a Jinja chat template, for serving a merged export with another server.

``carexpert export RUN --merged OUT`` writes a plain model folder without a chat template;
vLLM (or any server that renders OpenAI messages with a tokenizer's Jinja template) needs
one to answer ``/v1/chat/completions`` in the format the model was trained on. This module
writes ``carexpert.prompt.render_prompt``'s format (closed-book: no ``### Context:``
section) as such a template; tests/test_serve_chat_template.py checks that both render the
same text.

    python -m carexpert.serve.chat_template > carexpert.jinja
    vllm serve OUT --chat-template carexpert.jinja
"""

from __future__ import annotations

import json

from carexpert.prompt import INSTRUCTION_HEADER, RESPONSE_HEADER, SYSTEM_PROMPT


def chat_template(default_system: str | None = SYSTEM_PROMPT) -> str:
    """A Jinja chat template equal to ``render_prompt`` (system line, earlier turns, the question)."""
    default = json.dumps(default_system.strip()) if default_system else "''"
    return (
        "{%- if messages and messages[0]['role'] == 'system' -%}"
        "{%- set system = messages[0]['content'] | trim -%}{%- set turns = messages[1:] -%}"
        "{%- else -%}"
        f"{{%- set system = {default} -%}}{{%- set turns = messages -%}}"
        "{%- endif -%}"
        "{%- if system -%}{{ system }}{{ '\\n\\n' }}{%- endif -%}"
        "{%- for message in turns -%}"
        "{%- if message['role'] == 'user' -%}"
        f"{{{{ {json.dumps(INSTRUCTION_HEADER)} }}}}{{{{ message['content'] | trim }}}}{{{{ '\\n\\n' }}}}"
        f"{{%- if not loop.last or add_generation_prompt -%}}{{{{ {json.dumps(RESPONSE_HEADER)} }}}}{{%- endif -%}}"
        "{%- elif message['role'] == 'assistant' -%}"
        "{{ message['content'] | trim }}{{ '\\n\\n' }}"
        "{%- endif -%}"
        "{%- endfor -%}"
    )


if __name__ == "__main__":
    print(chat_template())
