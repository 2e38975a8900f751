"""A conftest that runs swh-webhooks' own test suite against `switchyard serve`.

swh-webhooks ships its tests (`swh/webhooks/tests`) with a conftest that starts a Svix server
in Docker. The Rust test `swh_webhooks_own_tests_pass_against_the_server` copies those test
modules, unchanged, next to this file (renamed `conftest.py`), which provides the same
fixtures with a `switchyard serve` process instead:

- a fresh server on a fresh data directory for every test, where their conftest wipes the
  Svix organisation after each test;
- its API token where theirs generates a JWT;
- the receiving `httpserver` on 127.0.0.1, which the server may deliver to (allow_subnets);
- `datadir`, `origin_create_event_type`, `origin_visit_event_type` and `mock_sleep`, as
  theirs define them.

Needs SWITCHYARD_BIN (the `switchyard` binary).
"""

import json
import os
from pathlib import Path
import subprocess
import threading
import time

import pytest

from swh.webhooks.interface import EventType

SWITCHYARD_BIN = os.environ["SWITCHYARD_BIN"]
TOKEN = "swh-webhooks-own-tests-0123456789"
# Captured before `mock_sleep` replaces `time.sleep` for the test.
_monotonic = time.monotonic


def _wait(seconds):
    threading.Event().wait(seconds)


@pytest.fixture
def svix_server_url(tmp_path_factory):
    """A fresh `switchyard serve` for this test; its URL."""
    workdir = tmp_path_factory.mktemp("switchyard")
    config = workdir / "switchyard.toml"
    config.write_text(
        "\n".join(
            [
                'bind = "127.0.0.1:0"',
                f'data_dir = "{workdir / "data"}"',
                f'tokens = ["{TOKEN}"]',
                'log_format = "json"',
                "[delivery]",
                'allow_subnets = ["127.0.0.0/8"]',
                "retry_schedule_secs = [1, 1, 1]",
                "",
            ]
        )
    )
    log_path = workdir / "server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [SWITCHYARD_BIN, "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={k: v for k, v in os.environ.items() if k != "RUST_LOG"},
        )
    try:
        deadline = _monotonic() + 30
        addr = None
        while addr is None:
            assert server.poll() is None, log_path.read_text()
            assert _monotonic() < deadline, "switchyard did not start"
            for line in log_path.read_text().splitlines():
                entry = json.loads(line)
                if entry.get("message") == "switchyard serving":
                    addr = entry["addr"]
            if addr is None:
                _wait(0.02)
        yield f"http://{addr}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
def svix_auth_token():
    return TOKEN


@pytest.fixture(scope="session")
def httpserver_listen_address():
    return ("127.0.0.1", 0)


@pytest.fixture
def datadir(request):
    return str(Path(request.fspath).parent / "data")


@pytest.fixture
def swh_webhooks(svix_server_url, svix_auth_token):
    from swh.webhooks.interface import Webhooks

    return Webhooks(svix_server_url=svix_server_url, svix_auth_token=svix_auth_token)


@pytest.fixture
def origin_create_event_type(datadir):
    return EventType(
        name="origin.create",
        description=(
            "This event is triggered when a new software origin is added to the archive"
        ),
        schema=json.loads(Path(datadir, "origin_create.json").read_text()),
    )


@pytest.fixture
def origin_visit_event_type(datadir):
    return EventType(
        name="origin.visit",
        description=(
            "This event is triggered when a new visit of a software origin was performed"
        ),
        schema=json.loads(Path(datadir, "origin_visit.json").read_text()),
    )


@pytest.fixture(autouse=True)
def mock_sleep(mocker):
    return mocker.patch("time.sleep")
