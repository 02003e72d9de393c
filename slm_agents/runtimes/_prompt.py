"""Rendering OpenAI-format conversations with a model's own Jinja chat template.

Templates that render tools themselves in the Hermes/Qwen ``<tool_call>`` format get the tools and
the structured history as they expect. Any other template gets plain messages: the tools are
described in the system prompt, earlier assistant tool calls are written back in the
``<tool_call>`` format and tool results become ``<tool_response>`` turns, followed by the user's
request they answer, so the model always sees the whole multi-turn history.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from functools import lru_cache
from typing import Any

from ..errors import InvalidRequest
from ..toolcalls import ToolChoice, format_tool_calls, tools_system_prompt
from ..types import Message

__all__ = ["ChatTemplate", "text_of"]

_FALLBACK_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def text_of(content: Any) -> str:
    """The text of a message's content (a string, None, or a list of content parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and part.get("type") == "text":
                parts.append(part.get("text", ""))
        return "".join(parts)
    return str(content)


@lru_cache(maxsize=16)
def _compile(source: str) -> Any:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise InvalidRequest(f"the model's chat template refused the conversation: {message}")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    env.filters["tojson"] = lambda v, indent=None, **_: json.dumps(v, ensure_ascii=False, indent=indent)
    return env.from_string(source)


class ChatTemplate:
    """A model's chat template, ready to render OpenAI-format conversations.

    Args:
        source: The Jinja template (from the GGUF's ``tokenizer.chat_template``); a ChatML
            template is used when the model has none.
        bos_token: Text of the BOS token, passed to the template.
        eos_token: Text of the EOS token, passed to the template.

    Example:
        >>> t = ChatTemplate(None)
        >>> t.render([{"role": "user", "content": "hi"}], [], ToolChoice("none"))
        '<|im_start|>user\\nhi<|im_end|>\\n<|im_start|>assistant\\n'
    """

    def __init__(self, source: str | None, bos_token: str = "", eos_token: str = ""):
        self.source = source or _FALLBACK_TEMPLATE
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.native_tools = "tools" in self.source and "<tool_call>" in self.source
        self._template = _compile(self.source)

    def render(self, messages: list[Message], tools: list[dict[str, Any]], choice: ToolChoice) -> str:
        """The prompt text, ending where the assistant's answer begins."""
        # Tools stay in the prompt with tool_choice="none" too: the prefix (system prompt + tools)
        # is then the same for every step of an agent and its KV cache is reused.
        show_tools = tools
        if self.native_tools:
            msgs = [self._native_message(m) for m in messages]
            extra = {"tools": show_tools or None}
        else:
            msgs = self._plain_messages(messages, show_tools, choice)
            extra = {}
        return self._template.render(
            messages=msgs,
            add_generation_prompt=True,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
            **extra,
        )

    def render_answer(self, message: Message) -> str:
        """The text the runtime generates for an assistant ``message``, end-of-turn token included.

        Tool calls are written as the tool-call grammar decodes them (``<tool_call>`` blocks, one
        per line); text as it is. With :meth:`render`, this is a training example's exact text:
        ``render(messages[:-1], ...) + render_answer(messages[-1])``.

        Example:
            >>> ChatTemplate(None, "", "<|im_end|>").render_answer({"role": "assistant", "content": "Hi."})
            'Hi.<|im_end|>'
        """
        calls = message.get("tool_calls")
        body = format_tool_calls(calls) if calls else text_of(message.get("content"))
        return body + self.eos_token

    @staticmethod
    def _native_message(m: Message) -> Message:
        out = dict(m)
        out["content"] = text_of(m.get("content"))
        if m.get("role") == "developer":
            out["role"] = "system"
        if m.get("tool_calls"):
            calls = []
            for call in m["tool_calls"]:
                fn = dict(call.get("function", call))
                if isinstance(fn.get("arguments"), str):
                    with contextlib.suppress(json.JSONDecodeError):
                        fn["arguments"] = json.loads(fn["arguments"] or "{}")
                calls.append({**call, "function": fn})
            out["tool_calls"] = calls
        return out

    @staticmethod
    def _plain_messages(messages: list[Message], tools: list[dict[str, Any]], choice: ToolChoice) -> list[Message]:
        out: list[Message] = []
        names: dict[str, str] = {}
        question = ""  # the user's latest request, restated after tool results (see below)
        restate: dict[int, str] = {}  # index of a block of tool results -> the request it answers
        for m in messages:
            role = m.get("role")
            content = text_of(m.get("content"))
            if role == "developer":
                role = "system"
            if role == "user":
                question = content
            if role == "assistant" and m.get("tool_calls"):
                for call in m["tool_calls"]:
                    names[call.get("id", "")] = call.get("function", call).get("name", "")
                calls = format_tool_calls(m["tool_calls"])
                content = f"{content}\n{calls}" if content else calls
            elif role == "tool":
                name = m.get("name") or names.get(m.get("tool_call_id", ""), "")
                body = json.dumps({"name": name, "content": content}, ensure_ascii=False)
                content, role = f"<tool_response>\n{body}\n</tool_response>", "user"
                if out and out[-1]["role"] == "user" and out[-1]["content"].endswith("</tool_response>"):
                    out[-1] = {"role": "user", "content": out[-1]["content"] + "\n" + content}
                    continue
                if question:
                    restate[len(out)] = question
            out.append({"role": role, "content": content})
        # Small models asked to answer right after a <tool_response> tend to talk about the JSON
        # instead of the question; restating the request after the results grounds the answer
        # (measured in bench/auto_decision.py: "answers use the tool result").
        for i, asked in restate.items():
            out[i] = {"role": "user", "content": f"{out[i]['content']}\n{asked}"}
        if tools:
            block = tools_system_prompt(tools)
            if out and out[0]["role"] == "system":
                out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{block}" if out[0]["content"] else block}
            else:
                out.insert(0, {"role": "system", "content": block})
        return out
