"""Many tenants on one `switchyard serve`: applications of one endpoint each, created one
after another through the Svix API by a sequential keep-alive client, as a new user would.
Issue 22's bounds at 10,000 applications: RSS under 150 MB, threads and open files the same
as at 10, idle CPU under 1 % of a core, restart to healthy under 3 s, GET /api/v1/app/{uid}
p99 under 5 ms, creation at least as fast as Svix's server (1,000 applications in about 8 s
with a sequential client, measured on this machine for the issue).

Usage: python3 tests/load/tenants.py target/release/switchyard [applications] [more binaries]
Each binary (the first, then any others, e.g. an older build to compare) gets a fresh data
directory and the same run; one JSON line each. Linux only (reads /proc/<pid>).
"""

import http.client
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

TOKEN = "tenants-token-0123456789abcdef"
TICKS = os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, binary, work):
        self.binary, self.work = binary, work
        self.config = os.path.join(work, "switchyard.toml")
        with open(self.config, "w") as f:
            f.write(f'bind = "127.0.0.1:0"\ndata_dir = "{work}/data"\ntokens = ["{TOKEN}"]\n'
                    'log_format = "json"\n')
        self.process, self.addr, self.conn = None, None, None

    def start(self):
        """Starts the server; returns seconds from spawn until /health answers 200."""
        log_path = os.path.join(self.work, "log")
        started = time.monotonic()
        log = open(log_path, "w")
        self.process = subprocess.Popen([self.binary, "serve", "--config", self.config],
                                        stderr=log, stdout=subprocess.DEVNULL)
        self.addr = None
        while self.addr is None:
            if self.process.poll() is not None:
                raise SystemExit(f"server exited: {open(log_path).read()[-2000:]}")
            time.sleep(0.005)
            for line in open(log_path):
                entry = json.loads(line)
                if entry.get("message") == "switchyard serving":
                    self.addr = entry["addr"]
        self.conn = http.client.HTTPConnection(*self.addr.rsplit(":", 1), timeout=60)
        while True:
            try:
                if self.call("GET", "/health")[0] == 200:
                    return time.monotonic() - started
            except OSError:
                self.conn.close()
            time.sleep(0.005)

    def stop(self):
        self.conn.close()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait()

    def call(self, method, path, body=None):
        headers = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
        self.conn.request(method, path, body=None if body is None else json.dumps(body),
                          headers=headers)
        response = self.conn.getresponse()
        return response.status, response.read()

    def status(self, key):
        for line in open(f"/proc/{self.process.pid}/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1])

    def sample(self, idle_seconds):
        """RSS (MB), threads, open files, and CPU (% of one core) while idle."""
        time.sleep(2)  # let the creations' after-effects settle
        fields = open(f"/proc/{self.process.pid}/stat").read().rsplit(")", 1)[1].split()
        before = int(fields[11]) + int(fields[12])
        time.sleep(idle_seconds)
        fields = open(f"/proc/{self.process.pid}/stat").read().rsplit(")", 1)[1].split()
        after = int(fields[11]) + int(fields[12])
        return {
            "rss_mb": round(self.status("VmRSS") / 1024, 1),
            "threads": self.status("Threads"),
            "open_files": len(os.listdir(f"/proc/{self.process.pid}/fd")),
            "idle_cpu_pct": round(100 * (after - before) / TICKS / idle_seconds, 2),
        }


def create(server, start, count):
    """Creates applications start..start+count, each with one endpoint; returns seconds."""
    began = time.monotonic()
    for i in range(start, start + count):
        status, body = server.call("POST", "/api/v1/app", {"name": f"tenant {i}", "uid": f"t-{i}"})
        assert status == 201, (status, body)
        status, body = server.call("POST", f"/api/v1/app/t-{i}/endpoint",
                                   {"url": f"https://hooks.example.com/{i}", "version": 1})
        assert status == 201, (status, body)
    return time.monotonic() - began


def percentile(samples, p):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def lookups(server, count, total):
    took = []
    for _ in range(total):
        uid = f"t-{random.randrange(count)}"
        began = time.perf_counter()
        status, _ = server.call("GET", f"/api/v1/app/{uid}")
        took.append(time.perf_counter() - began)
        assert status == 200
    return {"p50_ms": round(1000 * percentile(took, 0.5), 2),
            "p99_ms": round(1000 * percentile(took, 0.99), 2)}


def event_type_writes(server, name):
    """Seconds to create an event type, then to update it (median of 5 each)."""
    created, updated = [], []
    for n in range(5):
        began = time.perf_counter()
        status, body = server.call("POST", "/api/v1/event-type",
                                   {"name": f"{name}.e{n}", "description": "d"})
        created.append(time.perf_counter() - began)
        assert status == 201, (status, body)
        began = time.perf_counter()
        status, body = server.call("PUT", f"/api/v1/event-type/{name}.e{n}",
                                   {"description": "changed"})
        updated.append(time.perf_counter() - began)
        assert status == 200, (status, body)
    return {"create_ms": round(1000 * percentile(created, 0.5), 2),
            "update_ms": round(1000 * percentile(updated, 0.5), 2)}


def run(binary, apps):
    work = tempfile.mkdtemp()
    server = Server(binary, work)
    report = {"binary": binary, "applications": apps}
    report["first_start_s"] = round(server.start(), 2)
    create(server, 0, 10)
    report["at_10"] = server.sample(10)
    report["at_10"]["event_types"] = event_type_writes(server, "small")
    seconds = create(server, 10, apps - 10)
    report["created_per_1000_s"] = round(1000 * seconds / (apps - 10), 2)
    report[f"at_{apps}"] = server.sample(10)
    report[f"at_{apps}"]["event_types"] = event_type_writes(server, "large")
    report[f"at_{apps}"]["get_app_by_uid"] = lookups(server, apps, 2000)
    server.stop()
    report["restart_to_healthy_s"] = round(server.start(), 2)
    report["after_restart"] = server.sample(5)
    server.stop()
    return report


if __name__ == "__main__":
    binaries = [sys.argv[1]] + sys.argv[3:]
    apps = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    for binary in binaries:
        print(json.dumps(run(binary, apps)), flush=True)
