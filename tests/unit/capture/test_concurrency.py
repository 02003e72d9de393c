"""Many threads and processes writing one file; a writer killed mid-burst."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from sqlite_utils import Database

from slm_agents.capture import CaptureStore

from .conftest import REPO, msg, run_python

CHILD = """
import sys
from slm_agents.capture import CaptureStore
path, worker, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = CaptureStore(path, redactor=None, flush_interval=0.01, batch_size=50)
for i in range(n):
    store.log({"id": f"{worker}-{i:05d}", "messages": [{"role": "user", "content": f"w{worker} #{i}"}],
               "route": "slm"})
store.close()
s = store.stats
print(s.written, s.failed_writes, s.dropped)
"""


def test_threads_write_every_row(db_path):
    n_threads, per_thread = 8, 500
    with CaptureStore(db_path, redactor=None, queue_size=n_threads * per_thread) as store:
        def work(k):
            for i in range(per_thread):
                store.log({"messages": msg(f"{k}:{i}"), "task": f"t{k}"})

        threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.flush(30)
        assert store.stats.dropped == 0 and store.stats.failed_writes == 0
        assert store.db["calls"].count == n_threads * per_thread
        per_task = dict(store.db.execute("select task, count(*) from calls group by task").fetchall())
        assert per_task == {f"t{k}": per_thread for k in range(n_threads)}


def test_processes_and_threads_share_one_file_without_losing_rows(db_path):
    n_procs, per_proc, per_thread = 4, 1500, 500
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-c", CHILD, str(db_path), f"p{k}", str(per_proc)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for k in range(n_procs)
    ]
    with CaptureStore(db_path, redactor=None, flush_interval=0.01) as store:  # and this process too
        for i in range(per_thread):
            store.log({"id": f"main-{i:05d}", "messages": msg()})
        outputs = [p.communicate(timeout=120) for p in procs]
        assert store.flush(30)
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        assert "database is locked" not in err
        assert out.split() == [str(per_proc), "0", "0"], (out, err)
    db = Database(db_path)
    assert db["calls"].count == n_procs * per_proc + per_thread
    assert db.execute("select count(distinct id) from calls").fetchone()[0] == n_procs * per_proc + per_thread
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


CRASHER = """
import sys, time
from slm_agents.capture import CaptureStore
path = sys.argv[1]
store = CaptureStore(path, redactor=None, flush_interval=0.005, batch_size=100)
flushed = 0
i = 0
while True:
    store.log({"id": f"c-{i:07d}", "messages": [{"role": "user", "content": "x" * 300}]})
    i += 1
    if i % 500 == 0:
        if store.flush(10):
            flushed = i
            print(flushed, flush=True)
"""


def test_killed_mid_burst_keeps_every_flushed_row_and_a_sound_file(db_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", CRASHER, str(db_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    flushed = 0
    deadline = time.monotonic() + 60
    try:
        while flushed < 3000 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            flushed = int(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # mid-burst: more rows are queued and being written
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    assert flushed >= 3000, proc.stderr.read()
    db = Database(db_path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    present = {r[0] for r in db.execute("select id from calls")}
    missing = [f"c-{i:07d}" for i in range(flushed) if f"c-{i:07d}" not in present]
    assert not missing, f"{len(missing)} flushed rows lost, e.g. {missing[:3]}"
    assert len(present) >= flushed


def test_forked_child_gets_its_own_writer(db_path):
    code = f"""
import os
from slm_agents.capture import CaptureStore
store = CaptureStore({str(db_path)!r}, redactor=None)
store.log({{"id": "parent-1", "messages": []}})
store.flush(10)
pid = os.fork()
if pid == 0:
    store.log({{"id": "child-1", "messages": []}})
    ok = store.flush(10)
    store.close()
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
store.log({{"id": "parent-2", "messages": []}})
store.close()
print(os.waitstatus_to_exitcode(status))
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"
    ids = {r[0] for r in Database(db_path).execute("select id from calls")}
    assert ids == {"parent-1", "child-1", "parent-2"}
