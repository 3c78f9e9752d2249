"""The official Python SDK's `workflows.cancel`, unchanged, against Tidings. The Rust test
(tests/api/engine_sdk_cancel.rs) paused runs of `sdk-cancel` for `sdk-c1` and `sdk-c2`
under cancellation key `sdk-cancel-key` first, and checks afterwards that only `sdk-c2`
was cancelled (the node script cancels `sdk-c1`; this one is run on its own server).

Env: KNOCK_API_KEY, KNOCK_BASE_URL. Exits non-zero on any failure.
"""

import os

import knockapi
from knockapi import Knock

client = Knock(api_key=os.environ["KNOCK_API_KEY"], base_url=os.environ["KNOCK_BASE_URL"], max_retries=0)

client.workflows.cancel("sdk-cancel", cancellation_key="sdk-cancel-key", recipients=["sdk-c2"])
client.workflows.cancel("sdk-cancel", cancellation_key="no-such-key")
try:
    client.workflows.cancel("no-such-workflow", cancellation_key="x")
    raise AssertionError("an unknown workflow must be refused")
except knockapi.NotFoundError:
    pass
print("python sdk cancel: ok")
