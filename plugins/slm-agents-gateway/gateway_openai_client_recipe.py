"""Recipe: any OpenAI client -> `slm-agents serve` (SLM first, escalation, capture) by changing one base URL.

Starts `slm-agents serve` on 127.0.0.1 with the packaged SmolLM2 as the SLM, and a local
llama_cpp.server standing in for your frontier LLM (in real use: `--llm-base-url
https://api.openai.com/v1 --llm-model gpt-4o-mini`, key in $SLM_AGENTS_LLM_API_KEY). Then the
plain `openai` SDK calls it: a tool call answered by the SLM, the same call streamed, and a call
whose task has a strict confidence threshold in the policy, which escalates. SIGTERM stops the
gateway gracefully; the capture file holds every step.

Run: python cookbook/gateway_openai_client.py     (offline; needs slm-agents-gateway installed)
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from openai import OpenAI
from sqlite_utils import Database

from slm_agents.models import default_model_path

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
FORCED = {"type": "function", "function": {"name": "get_weather"}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(cmd: list[str], ready_url: str, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{cmd[2:4]} exited:\n{log.read_text()[-1500:]}")
        try:
            with urllib.request.urlopen(ready_url, timeout=2):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{ready_url} did not answer in 120 s")


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
    procs: list[subprocess.Popen[bytes]] = []
    try:
        serve = [sys.executable, "-c", "from slm_agents.cli import cli; cli()", "serve",
                 "--port", str(gw_port := free_port()), "--db", str(db), "--policy", str(policy), "--n-ctx", "2048"]
        if importlib.util.find_spec("sse_starlette"):  # llama-cpp-python[server]: a local stand-in for the LLM
            up = free_port()
            procs.append(start([sys.executable, "-m", "llama_cpp.server", "--model", str(default_model_path()),
                                "--model_alias", "stand-in-llm", "--port", str(up), "--host", "127.0.0.1",
                                "--n_ctx", "2048", "--chat_format", "chatml-function-calling"],
                               f"http://127.0.0.1:{up}/v1/models", work / "llm.log"))
            serve += ["--llm-base-url", f"http://127.0.0.1:{up}/v1", "--llm-model", "stand-in-llm"]
        procs.append(gateway := start(serve, f"http://127.0.0.1:{gw_port}/healthz", work / "gateway.log"))

        # The only change an agent makes: its base URL.
        client = OpenAI(base_url=f"http://127.0.0.1:{gw_port}/v1", api_key="not-needed-on-loopback")

        # 1. A tool call; the task comes from the model alias. Route and reason: headers and r.slm_agents.
        raw = client.chat.completions.with_raw_response.create(
            model="slm-agents/weather", messages=ASK, tools=TOOLS, tool_choice=FORCED, max_tokens=48)
        r = raw.parse()
        call = r.choices[0].message.tool_calls[0]
        print(f"1. route={raw.headers['x-slm-agents-route']} call={call.function.name}{call.function.arguments} "
              f"confidence={r.model_extra['slm_agents']['confidence']:.2f}")

        # 2. The same call streamed: tool-call deltas arrive as OpenAI streams them.
        stream = client.chat.completions.create(model="slm-agents/weather", messages=ASK, tools=TOOLS,
                                                tool_choice=FORCED, max_tokens=48, stream=True)
        args = "".join(d.function.arguments or "" for chunk in stream for c in chunk.choices
                       for d in c.delta.tool_calls or [] if d.function)
        print(f"2. streamed arguments: {args}")

        # 3. The "strict" task needs confidence >= 0.9 (the policy file): the SLM's call escalates.
        r = client.chat.completions.create(model="slm-agents/strict", messages=ASK, tools=TOOLS,
                                           tool_choice=FORCED, max_tokens=48)
        meta = r.model_extra["slm_agents"]
        print(f"3. route={meta['route']} reason={meta['reason']} ({meta['detail']}), answered by {meta['model']}")

        print("models:", [m.id for m in client.models.list()])
        stop(gateway)
        print("gateway:", [line.split(":", 1)[1].strip() for line in (work / "gateway.log").read_text().splitlines()
                           if "capture store" in line][-1])
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                stop(proc)
    rows = Database(db).query("select route, task, escalation_reason from calls order by id")
    print("captured:", [(x["route"], x["task"], x["escalation_reason"]) for x in rows])
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
