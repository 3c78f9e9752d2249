"""Drives the official Python SDK (`knockapi`) against a Tidings server, unchanged.

Env: KNOCK_API_KEY (secret key), KNOCK_BASE_URL (server origin), TIDINGS_CHANNEL_ID (the
in-app channel UUID). Exits non-zero on any failed assertion or SDK error.
"""

import os
import time
import uuid

import knockapi
from knockapi import Knock

channel_id = os.environ["TIDINGS_CHANNEL_ID"]
client = Knock(api_key=os.environ["KNOCK_API_KEY"], base_url=os.environ["KNOCK_BASE_URL"], max_retries=0)
suffix = f"{os.getpid()}-{int(time.time() * 1000)}"
user_id = f"py-user-{suffix}"


def wait_for_entries(count, **query):
    deadline = time.monotonic() + 10
    while True:
        entries = list(client.users.feeds.list_items(user_id, channel_id, **query))
        if len(entries) >= count or time.monotonic() > deadline:
            return entries
        time.sleep(0.05)


user = client.users.update(user_id, name="Py User", email="py@example.com")
assert user.id == user_id and user.name == "Py User", user

tenant = client.tenants.set(f"py-tenant-{suffix}", name="Py Tenant")
assert tenant.id == f"py-tenant-{suffix}", tenant

run = client.workflows.trigger(
    "new-comment",
    recipients=[user_id],
    actor={"id": f"py-actor-{suffix}", "name": "Py Actor"},
    data={"page_title": "Py page", "page_url": "https://example.com/py", "comment_preview": "From python"},
    tenant=tenant.id,
)
assert uuid.UUID(run.workflow_run_id).version == 4, run

entries = wait_for_entries(1, tenant=tenant.id)
assert len(entries) == 1, entries
item = entries[0]
assert item.source.key == "new-comment", item.source
assert item.tenant == tenant.id, item
body = next(b for b in item.blocks if b.name == "body")
assert "<strong>Py Actor</strong>" in body.rendered, item.blocks

message = client.messages.mark_as_read(item.id)
assert message.id == item.id and message.read_at is not None, message

# Opting out of the in-app channel type stops new feed items (a skip, not an error).
prefs = client.users.set_preferences(user_id, "default", channel_types={"in_app_feed": False})
assert prefs.channel_types is not None, prefs
# One trigger for the opted-out user and a marker user: a run's items commit in one
# transaction, so once the marker's item is visible the opted-out user's outcome is final.
marker_user = f"py-marker-{suffix}"
client.workflows.trigger(
    "new-comment",
    recipients=[user_id, marker_user],
    data={"page_title": "Muted", "page_url": "https://example.com/muted", "comment_preview": "x"},
)
deadline = time.monotonic() + 10
while not list(client.users.feeds.list_items(marker_user, channel_id)) and time.monotonic() < deadline:
    time.sleep(0.05)
assert list(client.users.feeds.list_items(marker_user, channel_id)), "the marker recipient got its item"
entries = list(client.users.feeds.list_items(user_id, channel_id))
assert len(entries) == 1, f"the opted-out trigger must not create an item: {entries}"

try:
    client.workflows.trigger("no-such-workflow", recipients=[user_id])
    raise AssertionError("unknown workflow must fail")
except knockapi.NotFoundError as err:
    assert err.status_code == 404

try:
    client.users.get(f"never-identified-{suffix}")
    raise AssertionError("unknown user must 404")
except knockapi.NotFoundError:
    pass

print(f"python sdk: ok (user {user_id}, run {run.workflow_run_id}, message {item.id})")
