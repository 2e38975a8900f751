"""Posts CloudEvents made by the Python `cloudevents` SDK (2.x) to a running `switchyard serve`,
in binary, structured and batch mode, v1.0 and v0.3, and checks that a CEL-filtered
subscription receives each one, in order, with its type, id and data, and with its context
attributes (its own source, subject, time and extensions) kept in `cloudevent`, where the
filter reads them too.

Usage: cloudevents_ingest.py SERVER_URL TOKEN
Prints one JSON summary line; any failed check raises (non-zero exit).
"""

import json
import sys
from datetime import datetime, timezone

import requests
from cloudevents.core.bindings.http import to_binary, to_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v03.event import CloudEvent as CloudEventV03
from cloudevents.core.v1.event import CloudEvent as CloudEventV1

SERVER_URL, TOKEN = sys.argv[1], sys.argv[2]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FORMAT = JSONFormat()
INGEST = f"{SERVER_URL}/runtime/v1/sources/python/events"


def event(version, n, data):
    cls = CloudEventV1 if version == "1.0" else CloudEventV03
    return cls(
        {"id": f"py-{version}-{n}", "specversion": version, "type": f"com.example.py.{n}",
         "source": "https://example.com/python", "datacontenttype": "application/json",
         "subject": f"item/{n}", "time": datetime(2026, 12, 5, 10, n, tzinfo=timezone.utc),
         # Extensions: a string the filter selects on, and an integer.
         "tenant": "acme", "priority": n},
        data,
    )


subscription = requests.post(
    f"{SERVER_URL}/runtime/v1/subscriptions",
    json={
        "source": "python",
        "filter": "event_type.startsWith('com.example.py.') && data.keep"
        " && cloudevent.tenant == 'acme' && cloudevent.source == 'https://example.com/python'"
        " && cloudevent.subject.startsWith('item/')",
    },
    headers=AUTH,
)
assert subscription.status_code == 201, subscription.text
sub_id = subscription.json()["id"]

sent = []
n = 0
for version in ("1.0", "0.3"):
    for mode, writer in (("binary", to_binary), ("structured", to_structured)):
        n += 1
        ev = event(version, n, {"keep": True, "mode": mode, "version": version})
        message = writer(ev, FORMAT)
        reply = requests.post(INGEST, data=message.body, headers={**dict(message.headers), **AUTH})
        assert reply.status_code == 202, (reply.status_code, reply.text)
        assert reply.json() == {"events": 1, "queued": 1}, reply.json()
        sent.append(ev)
    # A batch of two: one the filter keeps, one it drops.
    n += 1
    kept = event(version, n, {"keep": True, "mode": "batch", "version": version})
    n += 1
    dropped = event(version, n, {"keep": False, "mode": "batch", "version": version})
    batch = "[" + ",".join(FORMAT.write(e).decode() for e in (kept, dropped)) + "]"
    reply = requests.post(
        INGEST, data=batch.encode(),
        headers={"Content-Type": "application/cloudevents-batch+json", **AUTH},
    )
    assert reply.status_code == 202, (reply.status_code, reply.text)
    assert reply.json() == {"events": 2, "queued": 1}, reply.json()
    sent.append(kept)

received = []
while True:
    reply = requests.post(
        f"{SERVER_URL}/runtime/v1/next", json={"ids": [sub_id], "timeout_ms": 200}, headers=AUTH
    )
    if reply.status_code == 204:
        break
    assert reply.status_code == 200, (reply.status_code, reply.text)
    received.append(reply.json())

assert [r["id"] for r in received] == [e.get_id() for e in sent], received
for got, ev in zip(received, sent):
    assert got["source"] == "python", got
    assert got["event_type"] == ev.get_type(), got
    assert got["data"] == ev.get_data(), got
    attributes = got["cloudevent"]
    assert attributes["source"] == "https://example.com/python", got
    assert attributes["specversion"] == ev.get_specversion(), got
    assert attributes["id"] == ev.get_id(), got
    assert attributes["type"] == ev.get_type(), got
    assert attributes["subject"] == ev.get_subject(), got
    assert attributes["time"] == ev.get_time().strftime("%Y-%m-%dT%H:%M:%SZ"), got
    assert attributes["tenant"] == "acme", got
    # Binary mode carries every extension as a header string; the JSON formats keep numbers.
    assert str(attributes["priority"]) == str(ev.get_extension("priority")), got

# A malformed CloudEvent is refused with a typed error, and nothing is queued.
bad = requests.post(
    INGEST, data=b"{}",
    headers={"ce-specversion": "9.9", "ce-id": "x", "ce-type": "t", "ce-source": "s", **AUTH},
)
assert bad.status_code == 400 and bad.json()["code"] == "invalid_cloudevent", bad.text
assert requests.delete(f"{SERVER_URL}/runtime/v1/subscriptions/{sub_id}", headers=AUTH).status_code == 204

print(json.dumps({"sent": len(sent), "received": len(received)}))
