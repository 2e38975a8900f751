"""Standard Webhooks interop driver for the Rust tests: the Python `svix` and `standardwebhooks`
libraries verify the signatures Switchyard produced, and sign the same messages for Switchyard
to verify.

Reads one JSON case per line on stdin: {"secret", "id", "timestamp", "body", "signature"}.
Writes one JSON line per case: {"svix_verified", "svix_error", "std_verified", "std_error",
"svix_signature", "std_signature"}.
"""

import json
import sys
from datetime import datetime, timezone

import standardwebhooks.webhooks as std
import svix.webhooks as svx


def verify(lib, case):
    headers = {
        "webhook-id": case["id"],
        "webhook-timestamp": str(case["timestamp"]),
        "webhook-signature": case["signature"],
    }
    try:
        lib.Webhook(case["secret"]).verify(case["body"].encode("utf-8"), headers)
        return True, None
    except Exception as error:  # noqa: BLE001 - the error text goes back to the Rust test
        return False, f"{type(error).__name__}: {error}"


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        case = json.loads(line)
        when = datetime.fromtimestamp(case["timestamp"], tz=timezone.utc)
        svix_ok, svix_error = verify(svx, case)
        std_ok, std_error = verify(std, case)
        print(
            json.dumps(
                {
                    "svix_verified": svix_ok,
                    "svix_error": svix_error,
                    "std_verified": std_ok,
                    "std_error": std_error,
                    "svix_signature": svx.Webhook(case["secret"]).sign(case["id"], when, case["body"]),
                    "std_signature": std.Webhook(case["secret"]).sign(case["id"], when, case["body"]),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
