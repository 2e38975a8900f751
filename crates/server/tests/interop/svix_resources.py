"""Drives every method of the official `svix` Python client's resources that Svix's open
source server answers (applications, event types, endpoints, messages, attempts,
authentication, health) against a running `switchyard serve`, and counts the calls that
work.

Usage: svix_resources.py SERVER_URL TOKEN

Written for the models of the pydantic clients (1.9x and 2.x: `eventTypes`/`throttleRate`);
where 2.x renamed a method (`update` became `upsert`, `update_headers` `set_headers`) the
name the client has is used, and a method it dropped (`dashboard_access`) is not tried. The
client's methods for the commercial service only (transformations, replays, bulk
operations, OpenAPI import, pre-checks, token expiry, streams) are tried too and reported
apart: the open source server has none of them either. Prints one JSON summary line.
"""

import json
import sys
import threading
import time
import traceback
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import svix
from svix.api import (
    EndpointGetStatsOptions,
    EventTypeDeleteOptions,
    MessageAttemptListByEndpointOptions,
    MessageAttemptListByMsgOptions,
    MessageListOptions,
    Svix,
    SvixOptions,
)
from svix import models as m

SERVER_URL, TOKEN = sys.argv[1], sys.argv[2]
try:
    from importlib.metadata import version

    VERSION = version("svix")
except Exception:  # pragma: no cover - a client on PYTHONPATH without metadata
    VERSION = getattr(svix, "__version__", "unknown")


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=receiver.serve_forever, daemon=True).start()
HOOK = f"http://127.0.0.1:{receiver.server_address[1]}/hook"

client = Svix(TOKEN, SvixOptions(server_url=SERVER_URL))
results = []  # (name, in the open source API, worked, detail)


def call(name, fn, oss=True):
    try:
        value = fn()
        results.append((name, oss, True, ""))
        return value
    except Exception as error:  # noqa: BLE001 - every failure is a result here
        detail = f"{type(error).__name__}: {error}"[:300]
        if oss:
            detail += "\n" + traceback.format_exc(limit=3)
        results.append((name, oss, False, detail))
        return None


def either(resource, *names):
    """The first of `names` the resource has (the method's name in this client version)."""
    for name in names:
        if hasattr(resource, name):
            return getattr(resource, name)
    raise AttributeError(f"none of {names}")


def model(*names):
    """The first of the model `names` this client version has."""
    for name in names:
        if hasattr(m, name):
            return getattr(m, name)
    raise AttributeError(f"none of {names}")


def until(what, check, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


app_uid = f"resources-{int(time.time() * 1000)}"
now = datetime.now(timezone.utc)

# Health.
call("health.get", lambda: client.health.get())

# Applications.
app = call(
    "application.create",
    lambda: client.application.create(m.ApplicationIn(name="Resources", uid=app_uid)),
)
call("application.list", lambda: client.application.list())
call(
    "application.get_or_create",
    lambda: client.application.get_or_create(m.ApplicationIn(name="Resources", uid=app_uid)),
)
call("application.get", lambda: client.application.get(app_uid))
call(
    "application.update",
    lambda: either(client.application, "update", "upsert")(
        app_uid, m.ApplicationIn(name="Resources 2", uid=app_uid, throttle_rate=100)
    ),
)
patched = call(
    "application.patch",
    lambda: client.application.patch(app_uid, m.ApplicationPatch(name="Resources 3")),
)
assert patched is None or patched.name == "Resources 3"

# Event types.
schema = {
    "type": "object",
    "properties": {"url": {"type": "string"}},
    "examples": [{"url": "https://example.org/"}],
}
event = f"resources.e{int(time.time() * 1000)}"
call(
    "event_type.create",
    lambda: client.event_type.create(
        m.EventTypeIn(name=event, description="a visit", schemas={"1": schema})
    ),
)
call("event_type.list", lambda: client.event_type.list())
call("event_type.get", lambda: client.event_type.get(event))
call(
    "event_type.update",
    lambda: either(client.event_type, "update", "upsert")(
        event, model("EventTypeUpdate", "EventTypeUpsertIn")(description="a visit, updated", schemas={"1": schema})
    ),
)
call(
    "event_type.patch",
    lambda: client.event_type.patch(event, m.EventTypePatch(description="patched")),
)
spare = event + "x"
call(
    "event_type.create (spare)",
    lambda: client.event_type.create(m.EventTypeIn(name=spare, description="spare")),
)
call(
    "event_type.delete",
    lambda: client.event_type.delete(spare, EventTypeDeleteOptions()),
)

# Endpoints.
endpoint = call(
    "endpoint.create",
    lambda: client.endpoint.create(
        app_uid,
        m.EndpointIn(url=HOOK, uid="ep-1", event_types=[event], channels=["c1"]),
    ),
)
call("endpoint.list", lambda: client.endpoint.list(app_uid))
call("endpoint.get", lambda: client.endpoint.get(app_uid, "ep-1"))
call(
    "endpoint.update",
    lambda: either(client.endpoint, "update", "upsert")(
        app_uid, "ep-1", model("EndpointUpdate", "EndpointUpsertIn")(url=HOOK, uid="ep-1", description="updated")
    ),
)
call(
    "endpoint.patch",
    lambda: client.endpoint.patch(app_uid, "ep-1", m.EndpointPatch(description="patched")),
)
call("endpoint.get_secret", lambda: client.endpoint.get_secret(app_uid, "ep-1"))
call(
    "endpoint.rotate_secret",
    lambda: client.endpoint.rotate_secret(app_uid, "ep-1", m.EndpointSecretRotateIn()),
)
call("endpoint.get_headers", lambda: client.endpoint.get_headers(app_uid, "ep-1"))
call(
    "endpoint.update_headers",
    lambda: either(client.endpoint, "update_headers", "set_headers")(
        app_uid, "ep-1", m.EndpointHeadersIn(headers={"X-Tenant": "1"})
    ),
)
call(
    "endpoint.patch_headers",
    lambda: client.endpoint.patch_headers(
        app_uid, "ep-1", m.EndpointHeadersPatchIn(headers={"X-Region": "eu"})
    ),
)
call(
    "endpoint.get_stats",
    lambda: client.endpoint.get_stats(app_uid, "ep-1", EndpointGetStatsOptions()),
)
call(
    "endpoint.send_example",
    lambda: client.endpoint.send_example(app_uid, "ep-1", m.EventExampleIn(event_type=event)),
)
call(
    "endpoint.recover",
    lambda: client.endpoint.recover(
        app_uid, "ep-1", m.RecoverIn(since=now - timedelta(hours=1))
    ),
)

# Messages and attempts.
message = call(
    "message.create",
    lambda: client.message.create(
        app_uid,
        m.MessageIn(event_type=event, payload={"url": "u"}, event_id="evt-1", channels=["c1"]),
    ),
)
msg_id = message.id if message else "msg_missing"
call("message.list", lambda: client.message.list(app_uid, MessageListOptions()))
call("message.get", lambda: client.message.get(app_uid, msg_id))
attempts = call(
    "message_attempt.list_by_msg",
    lambda: until(
        "an attempt",
        lambda: client.message_attempt.list_by_msg(
            app_uid, msg_id, MessageAttemptListByMsgOptions()
        ).data,
    ),
)
attempt_id = attempts[0].id if attempts else "atmpt_missing"
call(
    "message_attempt.list_by_endpoint",
    lambda: client.message_attempt.list_by_endpoint(
        app_uid, "ep-1", MessageAttemptListByEndpointOptions()
    ),
)
call(
    "message_attempt.list_attempted_messages",
    lambda: client.message_attempt.list_attempted_messages(app_uid, "ep-1"),
)
call(
    "message_attempt.list_attempted_destinations",
    lambda: client.message_attempt.list_attempted_destinations(app_uid, msg_id),
)
call("message_attempt.get", lambda: client.message_attempt.get(app_uid, msg_id, attempt_id))
call("message_attempt.resend", lambda: client.message_attempt.resend(app_uid, msg_id, "ep-1"))
call(
    "message_attempt.expunge_content",
    lambda: client.message_attempt.expunge_content(app_uid, msg_id, attempt_id),
)
call("message.expunge_content", lambda: client.message.expunge_content(app_uid, msg_id))

# Authentication.
access = call(
    "authentication.app_portal_access",
    lambda: client.authentication.app_portal_access(app_uid, m.AppPortalAccessIn()),
)
if hasattr(client.authentication, "dashboard_access"):
    call(
        "authentication.dashboard_access",
        lambda: client.authentication.dashboard_access(app_uid),
    )
if access is not None:
    portal = Svix(access.token, SvixOptions(server_url=SERVER_URL))
    call("endpoint.list (application token)", lambda: portal.endpoint.list(app_uid))
    call("authentication.logout", lambda: portal.authentication.logout())

# The commercial service's methods: tried, not expected to work.
for name, fn in [
    ("endpoint.transformation_get", lambda: client.endpoint.transformation_get(app_uid, "ep-1")),
    (
        "endpoint.replay_missing",
        lambda: client.endpoint.replay_missing(app_uid, "ep-1", m.ReplayIn(since=now)),
    ),
    ("message.expunge_all_contents", lambda: client.message.expunge_all_contents(app_uid)),
    (
        "authentication.expire_all",
        lambda: client.authentication.expire_all(app_uid, m.ApplicationTokenExpireIn()),
    ),
]:
    call(name, fn, oss=False)

# Cleaning up: endpoint and application deleted.
call("endpoint.delete", lambda: client.endpoint.delete(app_uid, "ep-1"))
call("application.delete", lambda: client.application.delete(app_uid))

oss = [r for r in results if r[1]]
other = [r for r in results if not r[1]]
print(
    json.dumps(
        {
            "client": VERSION,
            "tried": len(oss),
            "worked": sum(1 for r in oss if r[2]),
            "failed": {r[0]: r[3] for r in oss if not r[2]},
            "outside_oss_tried": len(other),
            "outside_oss_worked": [r[0] for r in other if r[2]],
        }
    )
)
