"""Drives the official `svix` Python client, whichever version is importable, against a
running `switchyard serve`.

Usage: svix_client.py SERVER_URL TOKEN

The Rust test runs it once per client version (1.62, what swh-webhooks pins; the latest 1.x;
the latest 2.x), each from its own directory on PYTHONPATH. Field names changed between them
(`filterTypes` became `eventTypes`, `rateLimit` became `throttleRate`, attempts gained a
required `statusText`, `rotate_secret` started parsing its answer), so the script asks each
model which names it has and uses those. A loopback receiver takes the deliveries; their
signatures are checked with the same client's `Webhook`. Prints one JSON summary line; any
failed check raises.
"""

import json
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import svix
from svix.api import (
    ApplicationIn,
    EndpointIn,
    EndpointSecretRotateIn,
    EventTypeIn,
    MessageIn,
    Svix,
    SvixOptions,
)
from svix.webhooks import Webhook

SERVER_URL, TOKEN = sys.argv[1], sys.argv[2]
VERSION = getattr(svix, "__version__", None)
if VERSION is None:
    from importlib.metadata import version

    VERSION = version("svix")

received = []
received_lock = threading.Lock()


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with received_lock:
            received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=receiver.serve_forever, daemon=True).start()
RECEIVER = f"http://127.0.0.1:{receiver.server_address[1]}"


def fields(model):
    return set(model.model_fields)


def event_types_field(model):
    """The name this client gives an endpoint's event-type filter."""
    return "event_types" if "event_types" in fields(model) else "filter_types"


def rate_field(model):
    return "throttle_rate" if "throttle_rate" in fields(model) else "rate_limit"


def wait_for(what, predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


client = Svix(TOKEN, SvixOptions(server_url=SERVER_URL))
failures = []


@contextmanager
def check(name):
    """Runs one check; a failure is recorded and the script goes on, so one run names every
    wrong answer (the script fails at the end if any)."""
    try:
        yield
    except Exception as error:  # noqa: BLE001 - recorded and re-raised at the end
        failures.append(f"{name}: {type(error).__name__}: {error}")


# ----- applications: the rate limit under this client's name, read back -----
app = client.application.create(
    ApplicationIn(name="Shop", uid="shop", **{rate_field(ApplicationIn): 100})
)
with check("application rate limit"):
    assert getattr(app, rate_field(type(app))) == 100, app
assert client.application.get("shop").id == app.id

# ----- event types -----
for name in ("invoice.paid", "invoice.voided"):
    client.event_type.create(EventTypeIn(name=name, description=name))

# ----- endpoints: a filtered one must only get its type (2.x sent `eventTypes`, which the
# server used to ignore: the endpoint then received everything) -----
filter_name = event_types_field(EndpointIn)
paid = client.endpoint.create(
    "shop",
    EndpointIn(
        url=f"{RECEIVER}/paid",
        uid="paid",
        **{filter_name: ["invoice.paid"], rate_field(EndpointIn): 50},
    ),
)
voided = client.endpoint.create(
    "shop", EndpointIn(url=f"{RECEIVER}/voided", uid="voided", **{filter_name: ["invoice.voided"]})
)
everything = client.endpoint.create("shop", EndpointIn(url=f"{RECEIVER}/all", uid="all"))
out_filter = event_types_field(type(paid))
with check("endpoint event-type filter read back"):
    assert getattr(paid, out_filter) == ["invoice.paid"], paid
    assert getattr(client.endpoint.get("shop", "paid"), out_filter) == ["invoice.paid"]
    assert getattr(everything, out_filter) is None, everything
with check("endpoint rate limit read back"):
    assert getattr(paid, rate_field(type(paid))) == 50, paid

# ----- secrets: rotation answers every client (2.x parses the answer) -----
old_secret = client.endpoint.get_secret("shop", "paid").key
given = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0MjQyNDI0"
rotated = None
with check("secret rotation"):
    rotated = client.endpoint.rotate_secret("shop", "paid", EndpointSecretRotateIn(key=given))
    if rotated is not None:  # 2.x returns the new secret; 1.x returns None
        assert rotated.key == given, rotated
    assert client.endpoint.get_secret("shop", "paid").key == given
    assert given != old_secret
    fresh = client.endpoint.rotate_secret("shop", "voided", EndpointSecretRotateIn())
    if fresh is not None:
        assert fresh.key == client.endpoint.get_secret("shop", "voided").key, fresh
secrets = {
    path: client.endpoint.get_secret("shop", uid).key
    for path, uid in (("/paid", "paid"), ("/voided", "voided"), ("/all", "all"))
}

# ----- messages: the event id is kept; an unregistered event type is taken -----
paid_msg = client.message.create(
    "shop", MessageIn(event_type="invoice.paid", payload={"amount": 12}, event_id="inv-1-paid")
)
with check("event id kept"):
    assert paid_msg.event_id == "inv-1-paid", paid_msg
    assert client.message.get("shop", paid_msg.id).event_id == "inv-1-paid"
voided_msg = client.message.create(
    "shop", MessageIn(event_type="invoice.voided", payload={"amount": 12})
)
expected = {
    ("/paid", paid_msg.id),
    ("/voided", voided_msg.id),
    ("/all", paid_msg.id),
    ("/all", voided_msg.id),
}
with check("unregistered event type taken"):
    unregistered = client.message.create(
        "shop", MessageIn(event_type="customer.created", payload={"name": "Ada"})
    )
    assert unregistered.event_type == "customer.created"
    expected.add(("/all", unregistered.id))


def got():
    with received_lock:
        return {(path, headers["webhook-id"]) for path, headers, _ in received}


with check("deliveries routed by event type"):
    wait_for("every delivery", lambda: got() >= expected, timeout=15)
with check("no delivery misrouted"):
    time.sleep(0.5)  # anything misrouted would arrive by now
    assert got() == expected, (got() - expected, expected - got())
with received_lock:
    deliveries = list(received)
with check("signatures verify"):
    for path, headers, body in deliveries:
        Webhook(secrets[path]).verify(body, headers)

# ----- attempts: every required field, `statusText` among them (1.76+) -----
attempts = []
with check("attempts listed"):
    wait_for(
        "the attempts to be listed",
        lambda: len(client.message_attempt.list_by_msg("shop", paid_msg.id).data) >= 1,
        timeout=15,
    )
    attempts = client.message_attempt.list_by_msg("shop", paid_msg.id).data
    for attempt in attempts:
        assert attempt.response_status_code == 200, attempt
        assert int(attempt.status) == 0, attempt
        if hasattr(attempt, "status_text"):
            assert str(getattr(attempt.status_text, "value", attempt.status_text)) == "success"
    by_endpoint = client.message_attempt.list_by_endpoint("shop", "paid").data
    assert [a.msg_id for a in by_endpoint] == [paid_msg.id], by_endpoint
    assert {a.endpoint_id for a in attempts} == {paid.id, everything.id}, attempts

if failures:
    raise AssertionError(f"svix {VERSION}: " + "; ".join(failures))

print(
    json.dumps(
        {
            "svix": VERSION,
            "filter_field": filter_name,
            "deliveries": len(deliveries),
            "attempts": len(attempts),
            "rotate_returns_secret": rotated is not None,
        }
    )
)
receiver.shutdown()
