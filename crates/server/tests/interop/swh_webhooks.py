"""Drives every method of swh-webhooks' `Webhooks` class against a running `switchyard serve`.

Usage: swh_webhooks.py SERVER_URL TOKEN

It runs a loopback receiver for the endpoints, checks every result, verifies each delivery's
signature with the `svix` library and its bytes against what the client sent, and prints one
JSON summary line. Any failed check raises (non-zero exit).
"""

import json
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema
import pydantic_core
from svix.webhooks import Webhook
from swh.webhooks.interface import Endpoint, EventType, Webhooks

SERVER_URL, TOKEN = sys.argv[1], sys.argv[2]

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
        self.wfile.write(b"thanks " + self.path.encode())

    def log_message(self, *args):
        pass


receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=receiver.serve_forever, daemon=True).start()
RECEIVER = f"http://127.0.0.1:{receiver.server_address[1]}"

webhooks = Webhooks(svix_server_url=SERVER_URL, svix_auth_token=TOKEN)

VISIT_SCHEMA = {
    "type": "object",
    "properties": {"origin_url": {"type": "string"}, "visit": {"type": "integer"}},
    "required": ["origin_url"],
}

# ----- event types -----
webhooks.event_type_create(EventType("origin.visit", "An origin was visited", VISIT_SCHEMA))
# Creating it again takes the `event_type_exists` path: an update.
webhooks.event_type_create(EventType("origin.visit", "An origin visit", VISIT_SCHEMA))
webhooks.event_type_create(EventType("origin.create", "An origin was created", {"type": "object"}))
visit = webhooks.event_type_get("origin.visit")
assert visit == EventType("origin.visit", "An origin visit", VISIT_SCHEMA), visit
names = sorted(t.name for t in webhooks.event_types_list())
assert names == ["origin.create", "origin.visit"], names

webhooks.event_type_delete("origin.create")
try:
    webhooks.event_type_get("origin.create")
    raise AssertionError("an archived event type was returned")
except ValueError as e:
    assert "archived" in str(e), e
assert [t.name for t in webhooks.event_types_list()] == ["origin.visit"]
# Creating an archived type again brings it back.
webhooks.event_type_create(EventType("origin.create", "Back again", {"type": "object"}))
assert webhooks.event_type_get("origin.create").description == "Back again"
for missing in (webhooks.event_type_get, webhooks.event_type_delete):
    try:
        missing("origin.nothing")
        raise AssertionError("a missing event type was found")
    except ValueError as e:
        assert "does not exist" in str(e), e

# ----- endpoints -----
plain = Endpoint(url=f"{RECEIVER}/plain", event_type_name="origin.visit")
channelled = Endpoint(url=f"{RECEIVER}/channel", event_type_name="origin.visit", channel="swh:1:ori:42")
GIVEN = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0MjQyNDI0"
with_secret = Endpoint(
    url=f"{RECEIVER}/secret", event_type_name="origin.visit", metadata={"owner": "ada"}
)
webhooks.endpoint_create(plain)
webhooks.endpoint_create(channelled)
webhooks.endpoint_create(with_secret, secret=GIVEN)
assert webhooks.endpoint_get_secret(with_secret) == GIVEN
first_secret = webhooks.endpoint_get_secret(plain)
assert first_secret.startswith("whsec_"), first_secret
# Creating an existing endpoint again takes the `conflict` path: its secret is rotated.
webhooks.endpoint_create(plain)
plain_secret = webhooks.endpoint_get_secret(plain)
assert plain_secret != first_secret
channel_secret = webhooks.endpoint_get_secret(channelled)

listed = list(webhooks.endpoints_list("origin.visit"))
assert sorted(e.url for e in listed) == sorted([plain.url, with_secret.url]), listed
listed = list(webhooks.endpoints_list("origin.visit", channel="swh:1:ori:42", ascending_order=True))
assert [e.url for e in listed] == [plain.url, channelled.url, with_secret.url], listed
assert listed[1].channel == "swh:1:ori:42", listed[1]
assert listed[2].metadata == {"owner": "ada"}, listed[2]
assert len(list(webhooks.endpoints_list("origin.visit", limit=1))) == 1

# ----- sending -----
before_sending = datetime.now(timezone.utc) - timedelta(seconds=2)
assert webhooks.event_send("origin.create", {"x": 1}) is not None  # stored, nobody listens
payload = {"visit": 3, "origin_url": "https://example.org/repo"}
msg_id, sent_at = webhooks.event_send("origin.visit", payload)
assert msg_id.startswith("msg_"), msg_id
assert abs((sent_at - datetime.now(timezone.utc)).total_seconds()) < 60, sent_at
channel_payload = {"origin_url": "https://example.org/other"}
channel_msg, _ = webhooks.event_send("origin.visit", channel_payload, channel="swh:1:ori:42")
try:
    webhooks.event_send("origin.visit", {"visit": 1})
    raise AssertionError("an invalid payload was sent")
except jsonschema.exceptions.ValidationError:
    pass
try:
    webhooks.event_send("origin.nothing", {})
    raise AssertionError("an unknown event type was sent")
except ValueError:
    pass

# Every endpoint without a channel gets both messages; the channelled one only its channel's.
expected = {
    ("/plain", msg_id), ("/secret", msg_id),
    ("/plain", channel_msg), ("/secret", channel_msg), ("/channel", channel_msg),
}
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    with received_lock:
        got = {(path, headers["webhook-id"]) for path, headers, _ in received}
    if got >= expected:
        break
    time.sleep(0.05)
with received_lock:
    deliveries = list(received)
got = {(path, headers["webhook-id"]) for path, headers, _ in deliveries}
assert got == expected, (got, expected)

secrets = {"/plain": plain_secret, "/secret": GIVEN, "/channel": channel_secret}
bodies = {msg_id: payload, channel_msg: channel_payload}
for path, headers, body in deliveries:
    # The svix library verifies the signature over the exact bytes received...
    Webhook(secrets[path]).verify(body, headers)
    # ...which are the bytes the svix client sent (pydantic's compact JSON of the sorted payload).
    sent = bodies[headers["webhook-id"]]
    assert body == pydantic_core.to_json(dict(sorted(sent.items()))), body
    assert headers["content-type"] == "application/json", headers
    assert headers["x-swh-event"] == "origin.visit", headers
    assert headers["user-agent"].startswith("Switchyard-Webhooks/"), headers

# ----- sent events -----
events = list(webhooks.sent_events_list_for_endpoint(plain))
assert sorted(e.msg_id for e in events) == sorted([msg_id, channel_msg]), events
for event in events:
    assert event.response_status_code == 200, event
    assert event.response == "thanks /plain", event
    assert event.endpoint_url == plain.url, event
    assert event.payload == bodies[event.msg_id], event
assert len(list(webhooks.sent_events_list_for_endpoint(plain, limit=1))) == 1
assert len(list(webhooks.sent_events_list_for_endpoint(plain, after=before_sending))) == 2
assert list(webhooks.sent_events_list_for_endpoint(plain, before=before_sending)) == []

by_type = list(webhooks.sent_events_list_for_event_type("origin.visit"))
assert sorted((e.endpoint_url, e.msg_id) for e in by_type) == sorted(
    (RECEIVER + path, msg) for path, msg in expected
), by_type
by_channel = list(webhooks.sent_events_list_for_event_type("origin.visit", channel="swh:1:ori:42"))
assert sorted(e.endpoint_url for e in by_channel) == sorted(
    [plain.url, with_secret.url, channelled.url]
), by_channel
assert all(e.msg_id == channel_msg for e in by_channel), by_channel
# swh-webhooks names the channel from the endpoint's metadata: only the channelled one has it.
assert {e.endpoint_url: e.channel for e in by_channel} == {
    plain.url: None, with_secret.url: None, channelled.url: "swh:1:ori:42"
}, by_channel

# ----- deleting -----
webhooks.endpoint_delete(channelled)
for gone in (webhooks.endpoint_get_secret, webhooks.endpoint_delete):
    try:
        gone(channelled)
        raise AssertionError("a deleted endpoint was found")
    except ValueError as e:
        assert "does not exist" in str(e), e
assert [e.url for e in webhooks.endpoints_list("origin.visit", channel="swh:1:ori:42")] == [
    with_secret.url,
    plain.url,
]

print(json.dumps({
    "event_types": names,
    "deliveries": len(deliveries),
    "sent_events_for_endpoint": len(events),
    "sent_events_for_type": len(by_type),
}))
receiver.shutdown()
