"""Interop driver for the Python `cloudevents` SDK (2.x), run by tests/python_interop.rs.

`encode`: build events with the Python SDK, write each as an HTTP message (JSON line with
headers, base64 body) together with the attributes and data the SDK holds for it.
`decode`: read HTTP messages (same JSON lines) from stdin, decode each with the SDK and
write back the attributes and data it found.
"""

import base64
import json
import sys
from datetime import datetime, timedelta, timezone

from cloudevents.core.bindings.http import HTTPMessage, from_http, to_binary, to_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v03.event import CloudEvent as CloudEventV03
from cloudevents.core.v1.event import CloudEvent as CloudEventV1

FORMAT = JSONFormat()


def describe(event):
    """The event's attributes as canonical strings, and its data with its kind."""
    attributes = {}
    for name, value in event.get_attributes().items():
        if value is None:
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        attributes[name] = str(value)
    data = event.get_data()
    if data is None:
        described = None
    elif isinstance(data, (bytes, bytearray)):
        described = {"kind": "bytes", "value": base64.b64encode(data).decode()}
    elif isinstance(data, str):
        described = {"kind": "text", "value": data}
    else:
        described = {"kind": "json", "value": data}
    return {"attributes": attributes, "data": described}


def sample_events():
    berlin = timezone(timedelta(hours=1))
    common = {
        "type": "com.example.interop",
        "source": "https://example.com/python-producer",
        "time": datetime(2026, 11, 24, 10, 30, 15, 250000, tzinfo=berlin),
    }
    yield "v1-json", CloudEventV1(
        {**common, "id": "py-1", "specversion": "1.0", "datacontenttype": "application/json",
         "subject": "Grüße aus Köln", "dataschema": "https://example.com/schema.json"},
        {"message": "Hello World!", "n": [1, 2, 3]},
    )
    yield "v1-text", CloudEventV1(
        {**common, "id": "py-2", "specversion": "1.0", "datacontenttype": "text/plain"},
        "plain text, with \"quotes\" and 100%",
    )
    yield "v1-bytes", CloudEventV1(
        {**common, "id": "py-3", "specversion": "1.0", "datacontenttype": "application/octet-stream"},
        bytes(range(0, 256, 7)),
    )
    yield "v1-extensions", CloudEventV1(
        {**common, "id": "py-4", "specversion": "1.0", "extstring": "a value with spaces",
         "extinteger": 42, "extboolean": True, "time": datetime(2020, 1, 2, 3, 4, 5, tzinfo=timezone.utc)},
        None,
    )
    yield "v03-json", CloudEventV03(
        {**common, "id": "py-5", "specversion": "0.3", "datacontenttype": "application/json",
         "schemaurl": "https://example.com/schema.json", "subject": "s"},
        {"v03": True},
    )
    yield "v03-bytes", CloudEventV03(
        {**common, "id": "py-6", "specversion": "0.3", "datacontenttype": "application/octet-stream"},
        b"\x00\x01\x02binary\xff",
    )


def encode():
    for name, event in sample_events():
        for mode, writer in (("binary", to_binary), ("structured", to_structured)):
            message = writer(event, FORMAT)
            line = {
                "name": f"{name}/{mode}",
                "headers": dict(message.headers),
                "body": base64.b64encode(message.body).decode(),
                **describe(event),
            }
            print(json.dumps(line))


def decode():
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        message = HTTPMessage(headers=request["headers"], body=base64.b64decode(request["body"]))
        try:
            result = {"name": request["name"], **describe(from_http(message, FORMAT))}
        except Exception as error:  # reported to the Rust side as a failure
            result = {"name": request["name"], "error": f"{type(error).__name__}: {error}"}
        print(json.dumps(result))


if __name__ == "__main__":
    {"encode": encode, "decode": decode}[sys.argv[1]]()
