"""More slots than ``n_batch`` on the real default model: it loads and batches, nothing aborts.

llama.cpp reserves an output row per sequence when it makes the context and aborts the process
(``GGML_ASSERT(n_outputs_max <= cparams.n_outputs_max)``) when that exceeds ``n_batch``; and one
decode may not hold more than ``n_batch`` tokens. The check runs in a child process, so a
regression fails this test instead of killing the test session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

SCRIPT = """
import json, os, threading
from slm_agents.runtimes.llamacpp import LlamaCppRuntime

rt = LlamaCppRuntime(n_threads=int(os.environ.get("SLM_AGENTS_TEST_THREADS", "1")), n_batch=2, slots=4)
backend = rt._loaded.batch.backend
decode, widths = backend.decode, []

def spy(rows):
    widths.append(sum(len(tokens) for _, tokens, _, _ in rows))
    decode(rows)

backend.decode = spy

def ask(i):
    return rt.complete([{"role": "user", "content": f"Count to {i}."}], max_tokens=20).content

together = {}
threads = [threading.Thread(target=lambda i=i: together.__setitem__(i, ask(i))) for i in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
alone = {i: ask(i) for i in range(3)}
print(json.dumps({"same": together == alone, "widest": max(widths), "peak": rt.stats()["batch_peak"]}))
"""


def test_more_slots_than_n_batch_load_and_answer_as_alone() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # never more tokens in one decode than n_batch, and still several requests per decode
    assert result == {"same": True, "widest": 2, "peak": 2}
