"""Runs dispatch cases through the real Autohive Integrations SDK and prints its results.

Reads one JSON case per line on stdin and prints one JSON result per line: the
IntegrationResult as the SDK's lambda wrapper serialises it ({"version", "type", "result"}
with the result dataclass turned into a dict by dataclasses.asdict).

A case: {"config": path, "op": "action" | "account", "action": name, "register": bool,
"behaviour": {"kind": "result", "data": ..., "cost": ...} | {"kind": "action_error",
"message": ..., "cost": ...} | {"kind": "account", "info": {...}}, "inputs": {...},
"auth": {...}}.

get_connected_account raises ValidationError where execute_action returns a result; the
script converts it exactly as execute_action's own except clause does.
"""
import asyncio
import dataclasses
import json
import sys

from autohive_integrations_sdk import (
    ActionError,
    ActionHandler,
    ActionResult,
    ConnectedAccountHandler,
    ConnectedAccountInfo,
    ExecutionContext,
    Integration,
    IntegrationResult,
    ResultType,
    ValidationError,
)


def serialise(result):
    payload = result.result
    if dataclasses.is_dataclass(payload):
        payload = dataclasses.asdict(payload)
    return {"version": result.version, "type": result.type.value, "result": payload}


def run(case):
    integration = Integration.load(case["config"])
    behaviour = case.get("behaviour", {})

    class Handler(ActionHandler):
        async def execute(self, inputs, context):
            if behaviour["kind"] == "result":
                return ActionResult(data=behaviour["data"], cost_usd=behaviour.get("cost"))
            return ActionError(message=behaviour["message"], cost_usd=behaviour.get("cost"))

    class Account(ConnectedAccountHandler):
        async def get_account_info(self, context):
            return ConnectedAccountInfo(**behaviour["info"])

    context = ExecutionContext(auth=case.get("auth", {}))
    if case["op"] == "account":
        if case.get("register", True):
            integration.connected_account()(Account)
        try:
            return asyncio.run(integration.get_connected_account(context))
        except ValidationError as e:
            # get_connected_account raises where execute_action returns a result; convert the
            # exception exactly as execute_action's own handler does.
            return IntegrationResult(
                version=__import__("autohive_integrations_sdk").__version__,
                type=ResultType.VALIDATION_ERROR,
                result={"message": str(e), "property": None, "value": None,
                        "source": getattr(e, "source", "legacy")},
            )
    if case.get("register", True):
        integration.action(case["action"])(Handler)
    return asyncio.run(integration.execute_action(case["action"], case.get("inputs", {}), context))


for line in sys.stdin:
    if line.strip():
        print(json.dumps(serialise(run(json.loads(line)))), flush=True)
