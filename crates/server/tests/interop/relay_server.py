"""Drives the real `relay-sdk` against a running `switchyard serve --metadata-spec …`.

Usage: relay_server.py URL_WITH_TOKEN (http://token:<token>@127.0.0.1:<port>)
The spec served is {"greeting": "hello", "azure": {"secret": <Secret "az">}}; the server's
events are checked by the Rust test. Prints one JSON summary line; failed checks raise.
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

print(json.dumps({"runs": [run.run_number, again.run_number]}))
