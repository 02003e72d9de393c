"""``slm-agents demo``: a tool-calling conversation on the default local model, printed call by call.

Each question goes to the SLM with three tools bound; the SLM picks a tool and fills its
arguments under the grammar, the tool runs in Python, and the SLM answers from the result. Every
model call is printed: route, tool call, confidence, tokens and latency.
"""

from __future__ import annotations

import ast
import json
import operator
import time
from collections.abc import Callable
from typing import Any

from .runtimes.base import Runtime

__all__ = ["DEMO_TOOLS", "DEMO_QUESTIONS", "run_demo", "run_tool"]

_WEATHER = {"paris": "18°C and cloudy", "tokyo": "24°C and sunny", "london": "12°C with light rain"}
_UNITS = {("km", "mi"): 0.621371, ("mi", "km"): 1.609344, ("kg", "lb"): 2.204623, ("lb", "kg"): 0.453592}
_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
}

DEMO_TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Get the current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}},
                       "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "calculator", "description": "Evaluate an arithmetic expression with + - * /.",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                       "required": ["expression"]}}},
    {"type": "function", "function": {
        "name": "convert_units", "description": "Convert a value between km, mi, kg and lb.",
        "parameters": {"type": "object", "properties": {
            "value": {"type": "number"},
            "from_unit": {"type": "string", "enum": ["km", "mi", "kg", "lb"]},
            "to_unit": {"type": "string", "enum": ["km", "mi", "kg", "lb"]}},
            "required": ["value", "from_unit", "to_unit"]}}},
]

DEMO_QUESTIONS = [
    "What is the weather in Paris right now?",
    "What is 23 times 19?",
    "Convert 5 km to miles.",
]


def _calc(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _calc(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_calc(node.left), _calc(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_calc(node.operand)
    raise ValueError("only numbers and + - * / are allowed")


def run_tool(name: str, args: dict[str, Any]) -> str:
    """Run one of :data:`DEMO_TOOLS` (pure Python, no network)."""
    try:
        if name == "get_weather":
            return _WEATHER.get(str(args["city"]).strip().lower(), "no data for that city")
        if name == "calculator":
            expression = str(args["expression"]).replace("x", "*").replace("×", "*")
            return str(_calc(ast.parse(expression, mode="eval")))
        if name == "convert_units":
            factor = _UNITS.get((args["from_unit"], args["to_unit"]))
            if factor is None:
                return f"cannot convert {args['from_unit']} to {args['to_unit']}"
            return f"{float(args['value']) * factor:.2f} {args['to_unit']}"
    except (KeyError, ValueError, SyntaxError, ZeroDivisionError) as e:
        return f"error: {e}"
    return f"unknown tool {name}"


def _describe(step: str, completion: Any, echo: Callable[[str], None]) -> None:
    usage = completion.usage
    conf = f" confidence={completion.confidence:.2f}" if completion.confidence is not None else ""
    echo(
        f"  [{step}] route=slm finish={completion.finish_reason}{conf} tokens={usage.input_tokens}+"
        f"{usage.output_tokens} latency={completion.latency_ms:.0f}ms ttft={completion.ttft_ms or 0:.0f}ms"
    )


def run_demo(
    runtime: Runtime,
    questions: list[str] | None = None,
    *,
    echo: Callable[[str], None] = print,
    on_call: Callable[..., Any] | None = None,
    on_tool: Callable[[dict[str, Any]], Any] | None = None,
) -> list[dict[str, Any]]:
    """Run the demo conversation; return one summary dict per question.

    Args:
        runtime: Where the SLM runs.
        questions: Questions to ask (default :data:`DEMO_QUESTIONS`).
        echo: Where lines are printed.
        on_call: Called as ``on_call(completion, messages=..., tools=..., tool_choice=..., task=...)``
            after every model call; returns the call's id (the capture store's ``log_completion``).
        on_tool: Called with ``{"model_call_id", "call_id", "name", "arguments", "result",
            "latency_ms"}`` after every tool execution (the capture store's ``log_tool``).
    """
    results = []
    system = {"role": "system", "content": "You are a helpful assistant. Use the tools to answer."}
    for question in questions or DEMO_QUESTIONS:
        echo(f"\nuser: {question}")
        messages: list[dict[str, Any]] = [system, {"role": "user", "content": question}]
        pick = runtime.complete(messages, DEMO_TOOLS, "required", max_tokens=96)
        pick_id = None
        if on_call:
            pick_id = on_call(pick, messages=list(messages), tools=DEMO_TOOLS, tool_choice="required", task="pick_tool")
        _describe("pick_tool", pick, echo)
        messages.append(pick.message)
        calls = pick.parsed_tool_calls()
        for call in calls:
            started = time.perf_counter()
            result = run_tool(call["name"], call["arguments"])
            if on_tool:
                on_tool({"model_call_id": pick_id, "call_id": call["id"], "name": call["name"],
                         "arguments": call["arguments"], "result": result,
                         "latency_ms": (time.perf_counter() - started) * 1000})
            echo(f"  tool call: {call['name']}({json.dumps(call['arguments'], ensure_ascii=False)}) -> {result}")
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
        if not calls:
            echo(f"  no valid tool call ({pick.invalid_tool_calls or 'the model answered in text'})")
        # The answer step is its own small task: phrase the tool's result. It runs without the
        # tools in the prompt, which a 135M model answers better.
        answer = runtime.complete(messages, max_tokens=64)
        if on_call:
            on_call(answer, messages=list(messages), task="answer")
        _describe("answer", answer, echo)
        echo(f"assistant: {answer.content.strip()}")
        results.append({"question": question, "tool_calls": calls, "answer": answer.content.strip()})
    return results
