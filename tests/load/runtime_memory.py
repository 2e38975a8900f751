"""Two idle runtime-event subscriptions fed 1,100 events of 1 MB each: the server's resident
memory before and after, with the default limits (issue 21's hostile report measured
15 MB -> 1,986 MB before there were byte limits).

Usage: python3 tests/load/runtime_memory.py target/release/switchyard
Prints one JSON line. Linux only (reads /proc/<pid>/status).
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

binary = sys.argv[1]
work = tempfile.mkdtemp()
token = "memory-token-0123456789abcdef"
config = os.path.join(work, "switchyard.toml")
with open(config, "w") as f:
    f.write(f'bind = "127.0.0.1:0"\ndata_dir = "{work}/data"\ntokens = ["{token}"]\n'
            'log_format = "json"\nbody_limit = 2000000\n')
log = open(os.path.join(work, "log"), "w")
server = subprocess.Popen([binary, "serve", "--config", config], stderr=log, stdout=subprocess.DEVNULL)
addr = None
while addr is None:
    time.sleep(0.05)
    for line in open(os.path.join(work, "log")):
        entry = json.loads(line)
        if entry.get("message") == "switchyard serving":
            addr = entry["addr"]

def call(method, path, body):
    request = urllib.request.Request(f"http://{addr}{path}", data=body, method=method,
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return response.status, response.read()

def rss_mb():
    for line in open(f"/proc/{server.pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

for _ in range(2):
    call("POST", "/runtime/v1/subscriptions", json.dumps({"source": "s", "filter": ""}).encode())
before = rss_mb()
blob = json.dumps({"blob": "x" * (1000 * 1000)}).encode()
started = time.monotonic()
for _ in range(1100):
    call("POST", "/runtime/v1/sources/s/events", blob)
elapsed = time.monotonic() - started
after = rss_mb()
print(json.dumps({"rss_before_mb": round(before, 1), "rss_after_mb": round(after, 1),
                  "events": 1100, "seconds": round(elapsed, 1)}))
server.terminate()
server.wait()
