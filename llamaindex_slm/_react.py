"""LlamaIndex's ReActAgent, read from its prompt: the tools it describes, so the SLM can decode
ReAct steps under a grammar (``tool_format="react"`` in the core runtime).

ReActAgent hands the LLM no tool objects: it lists them in its system prompt, one block each
(``> Tool Name: …`` / ``Tool Description: …`` / ``Tool Args: <JSON schema>``), and parses the
text that comes back. Reading those blocks back into OpenAI tool specs is a translation of the
framework's format; the grammar and the call-or-answer decision live in the core.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["react_tools"]

_BLOCK = re.compile(r"> Tool Name: ([^\n]+)\nTool Description: (.*?)\nTool Args: ([^\n]*)\n", re.S)
_MARKERS = ("Action Input:", "Observation:")


def react_tools(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tools a ReActAgent system prompt describes, as OpenAI tool specs ([] when it is not one).

    Example:
        >>> prompt = ("> Tool Name: get_weather\\nTool Description: Weather in a city\\n"
        ...           'Tool Args: {"properties": {"city": {"type": "string"}}, "required": ["city"], '
        ...           '"type": "object"}\\nAction Input: ... Observation: ...')
        >>> [t["function"]["name"] for t in react_tools([{"role": "system", "content": prompt}])]
        ['get_weather']
    """
    system = next((m for m in messages if m.get("role") == "system"), None)
    text = system.get("content") if system else None
    if not isinstance(text, str) or not all(marker in text for marker in _MARKERS):
        return []
    tools = []
    for name, description, args in _BLOCK.findall(text):
        try:
            schema = json.loads(args)
        except json.JSONDecodeError:
            return []  # not a schema we can decode under: leave the step to free text
        if not isinstance(schema, dict) or schema.get("type", "object") != "object":
            return []
        schema = {k: v for k, v in schema.items() if k != "title"}
        tools.append({"type": "function", "function": {
            "name": name.strip(), "description": description.strip(), "parameters": schema}})
    return tools
