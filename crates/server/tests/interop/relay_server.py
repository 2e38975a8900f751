"""Drives the real `relay-sdk` against a running `switchyard serve --metadata-spec …`.

Usage: relay_server.py URL_WITH_TOKEN (http://token:<token>@127.0.0.1:<port>)
The spec served (see the Rust test) holds a plain value, a secret the server does not have,
secrets the server reads from an environment variable and from a file (binary), a connection
from a JSON file and two parameters; relay-sdk reads each kind. The server's events are
checked by the Rust test. Prints one JSON summary line; failed checks raise.
"""

import json
import sys

import requests
from relay_sdk import Dynamic as D
from relay_sdk import Interface, UnresolvableException

url = sys.argv[1]
step = Interface(api_url=url)

assert step.get(D.greeting) == "hello"
assert step.get('greeting') == "hello"
# The secret is not configured on the server: relay-sdk raises its own exception.
try:
    step.get(D.azure.secret)
    raise AssertionError("an unresolvable secret was returned")
except UnresolvableException:
    pass
# Each kind of reference the server's config resolves, read as a step reads it.
read = []
assert step.get(D.db.password) == "hunter2-from-env"
read.append("secret")
# Not UTF-8: the server sends it as {"$encoding": "base64"}, relay-sdk decodes it to bytes.
assert step.get(D.db.key) == b"\x00\xffkey"
read.append("binary secret")
assert step.get(D.db.connection) == {
    "accessKeyID": "AKIAEXAMPLE",
    "secretAccessKey": "wJalr/EXAMPLEKEY",
}
read.append("connection")
assert step.get(D.environment) == "staging"
assert step.get(D.replicas) == 3
read.append("parameter")
step.outputs.set("image", "registry/app:1.2")
step.events.emit({"tag": "v1"}, key="push-1")
run = step.workflows.run("nightly", parameters={"branch": "main"})
assert run.run_number == 1, run
again = step.workflows.run("nightly")
assert again.run_number == 2, again
step.decorators.set_link("pr", "Pull request", "https://example.com/pr/1")

wrong = Interface(api_url=url.replace("token:", "token:x", 1))
try:
    wrong.get(D.greeting)
    raise AssertionError("a wrong token was accepted")
except requests.HTTPError as e:
    assert e.response.status_code == 401, e

print(json.dumps({"runs": [run.run_number, again.run_number], "read": read}))
