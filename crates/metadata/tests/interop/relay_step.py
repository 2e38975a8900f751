"""Drives Switchyard's metadata service with the real Python relay-sdk 0.3.1.

Acts as two steps of one workflow: `build` (BUILD_URL) and `deploy` (DEPLOY_URL), each URL
carrying the step's token as `token:<token>@`. Prints one JSON object: what each call
returned or raised. The Rust test (tests/python_interop.rs) asserts on it.
"""
import base64
import json
import os
import sys

import requests
from relay_sdk import Dynamic as D
from relay_sdk import Interface, UnresolvableException


def outcome(call):
    try:
        value = call()
    except UnresolvableException:
        return {"raised": "UnresolvableException"}
    except requests.HTTPError as e:
        return {"raised": "HTTPError", "status": e.response.status_code}
    if isinstance(value, bytes):
        return {"bytes": base64.standard_b64encode(value).decode()}
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses
        return {"dataclass": type(value).__name__, "fields": dataclasses.asdict(value)}
    return {"value": value}


build = Interface(api_url=os.environ["BUILD_URL"])
deploy = Interface(api_url=os.environ["DEPLOY_URL"])
results = {}

results["build_whole_spec"] = outcome(lambda: build.get())
results["deploy_whole_spec"] = outcome(lambda: deploy.get())
results["dynamic"] = outcome(lambda: deploy.get(D.azure.connection.secret))
results["bracket_string"] = outcome(lambda: deploy.get('azure["connection"]["clientID"]'))
results["dotted_string"] = outcome(lambda: deploy.get("azure.connection.clientID"))
results["single_quoted"] = outcome(lambda: deploy.get("azure['connection']['clientID']"))
results["index"] = outcome(lambda: deploy.get("items[1].name"))
results["string_index"] = outcome(lambda: deploy.get('items["0"]["name"]'))
results["dotted_key"] = outcome(lambda: deploy.get('labels["app.kubernetes.io/name"]'))
results["text_secret"] = outcome(lambda: deploy.get(D.password))
results["binary_secret"] = outcome(lambda: deploy.get(D.signing_key))
results["parameter"] = outcome(lambda: deploy.get(D.environment))
results["unresolvable_secret"] = outcome(lambda: deploy.get(D.missing))
results["output_before_set"] = outcome(lambda: deploy.get(D.image))
results["not_found"] = outcome(lambda: deploy.get(D.azure.nope))
results["bad_query"] = outcome(lambda: deploy.get("azure[connection]"))

results["outputs_set"] = outcome(lambda: build.outputs.set("image", "registry/app:1.2"))
results["outputs_set_slash"] = outcome(lambda: build.outputs.set("dir/with space", {"n": 1}))
results["outputs_set_bytes"] = outcome(lambda: build.outputs.set("blob", b"\xff\x00"))
results["output_after_set"] = outcome(lambda: deploy.get(D.image))
results["binary_output"] = outcome(lambda: deploy.get(D.blob))

results["emit"] = outcome(lambda: build.events.emit({"tag": "v1", "n": 2}, key="push-1"))
results["emit_without_key"] = outcome(lambda: build.events.emit({"tag": "v2"}))
results["run"] = outcome(lambda: build.workflows.run("nightly build", parameters={"branch": "main"}))
results["run_again"] = outcome(lambda: build.workflows.run("nightly build"))
results["decorator"] = outcome(
    lambda: build.decorators.set_link("pr", "Pull request", "https://example.com/pr/1"))

wrong = Interface(api_url=os.environ["BUILD_URL"].replace("build-token", "wrong-token"))
results["wrong_token"] = outcome(lambda: wrong.get(D.source))

keys = ["a.b", 'say "hi"', "back\\slash", "café", "\U0001F389", "tab\there", "\x01\x7f", "a/b", "0", ""]
results["dynamic_renderings"] = [[key, str(getattr(D.root, key))] for key in keys]
results["dynamic_root"] = str(D.azure.connection.secret)

json.dump(results, sys.stdout)
