"""Recipe: any OpenAI client -> `slm-agents serve` (SLM first, escalation, capture) by changing one base URL.

Starts `slm-agents serve` on 127.0.0.1 with the packaged SmolLM2 as the SLM, and a local
llama_cpp.server standing in for your frontier LLM (in real use: `--llm-base-url
https://api.openai.com/v1 --llm-model gpt-4o-mini`, key in $SLM_AGENTS_LLM_API_KEY). Then the
plain `openai` SDK calls it: a tool call answered by the SLM, the same call streamed, and a call
whose task has a strict confidence threshold in the policy, which escalates. SIGTERM stops the
gateway gracefully; the capture file holds every step.

Run: python cookbook/gateway_openai_client.py     (offline; needs slm-agents-gateway installed;
     the stand-in LLM needs slm-agents[server])
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import signal
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from openai import OpenAI
from sqlite_utils import Database

from slm_agents.testing import free_port, llama_server, wait_http

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
FORCED = {"type": "function", "function": {"name": "get_weather"}}


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)  # graceful: requests in flight finish, the capture store closes
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="slm-agents-gateway-"))
    db, policy = work / "capture.db", work / "policy.json"
    policy.write_text(json.dumps({"task_thresholds": {"strict": 0.9}}))  # `slm-agents calibrate` writes these
    gw_port = free_port()
    serve = [sys.executable, "-c", "from slm_agents.cli import cli; cli()", "serve",
             "--port", str(gw_port), "--db", str(db), "--policy", str(policy), "--n-ctx", "2048"]
    with ExitStack() as running:
        if importlib.util.find_spec("sse_starlette"):  # llama-cpp-python[server]: a local stand-in for the LLM
            llm = running.enter_context(llama_server(work, alias="stand-in-llm"))
            serve += ["--llm-base-url", llm.base_url, "--llm-model", llm.model]
        with open(work / "gateway.log", "wb") as log:
            gateway = subprocess.Popen(serve, stdout=log, stderr=subprocess.STDOUT)
        running.callback(lambda: gateway.poll() is None and stop(gateway))
        wait_http(f"http://127.0.0.1:{gw_port}/healthz", gateway, log=work / "gateway.log")

        # The only change an agent makes: its base URL.
        client = OpenAI(base_url=f"http://127.0.0.1:{gw_port}/v1", api_key="not-needed-on-loopback")

        # 1. A tool call; the task comes from the model alias. Route and reason: headers and r.slm_agents.
        raw = client.chat.completions.with_raw_response.create(
            model="slm-agents/weather", messages=ASK, tools=TOOLS, tool_choice=FORCED, max_tokens=48)
        r = raw.parse()
        call = r.choices[0].message.tool_calls[0]
        print(f"1. route={raw.headers['x-slm-agents-route']} call={call.function.name}{call.function.arguments} "
              f"confidence={r.model_extra['slm_agents']['confidence']:.2f}")
        assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)
        assert raw.headers["x-slm-agents-route"] == r.model_extra["slm_agents"]["route"]

        # 2. The same call streamed: tool-call deltas arrive as OpenAI streams them.
        stream = client.chat.completions.create(model="slm-agents/weather", messages=ASK, tools=TOOLS,
                                                tool_choice=FORCED, max_tokens=48, stream=True)
        args = "".join(d.function.arguments or "" for chunk in stream for c in chunk.choices
                       for d in c.delta.tool_calls or [] if d.function)
        print(f"2. streamed arguments: {args}")
        assert "city" in json.loads(args)

        # 3. The "strict" task needs confidence >= 0.9 (the policy file): the SLM's call escalates.
        r = client.chat.completions.create(model="slm-agents/strict", messages=ASK, tools=TOOLS,
                                           tool_choice=FORCED, max_tokens=48)
        meta = r.model_extra["slm_agents"]
        print(f"3. route={meta['route']} reason={meta['reason']} ({meta['detail']}), answered by {meta['model']}")
        if "--llm-base-url" in serve:
            assert meta["route"] == "llm" and meta["reason"] == "low_confidence", meta

        models = [m.id for m in client.models.list()]
        print("models:", models)
        assert models, "the gateway lists no models"
        stop(gateway)
        closing = [line.split(":", 1)[1].strip() for line in (work / "gateway.log").read_text().splitlines()
                   if "capture store" in line]
        print("gateway:", closing[-1])
        assert gateway.returncode in (0, -signal.SIGTERM) and "0 failed, 0 not written" in closing[-1]
    rows = list(Database(db).query("select route, task, escalation_reason from calls order by id"))
    print("captured:", [(x["route"], x["task"], x["escalation_reason"]) for x in rows])
    assert {x["task"] for x in rows} == {"weather", "strict"}, rows  # every step, escalated attempts included
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
