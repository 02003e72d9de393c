"""The system prompt and tools every tool-calling core integration test shares (one KV-cache prefix)."""

from __future__ import annotations

from typing import Any

SYSTEM = {"role": "system", "content": "You are a helpful assistant. Use a tool when one fits."}
TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "convert_units", "description": "Convert a value between km and mi.",
        "parameters": {"type": "object", "properties": {
            "value": {"type": "number"}, "from_unit": {"enum": ["km", "mi"]}, "to_unit": {"enum": ["km", "mi"]}},
            "required": ["value", "from_unit", "to_unit"]}}},
]


def ask(question: str) -> list[dict[str, Any]]:
    return [SYSTEM, {"role": "user", "content": question}]
