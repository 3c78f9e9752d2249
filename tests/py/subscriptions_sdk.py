"""Drives the official Python SDK's (`knockapi`) subscription calls against a Tidings
server, unchanged: objects.add_subscriptions, list_subscriptions (filters, mode),
delete_subscriptions, users.list_subscriptions and the bulk variants.

Env: KNOCK_API_KEY (secret key), KNOCK_BASE_URL (server origin). Exits non-zero on any
failed assertion or SDK error.
"""

import os

import knockapi
from knockapi import Knock

client = Knock(api_key=os.environ["KNOCK_API_KEY"], base_url=os.environ["KNOCK_BASE_URL"], max_retries=0)

client.objects.set("projects", "p1", name="Apollo")
client.objects.set("projects", "p2", name="Gemini")
client.users.update("ann", name="Ann")

added = client.objects.add_subscriptions(
    "projects", "p1", recipients=["ann", {"id": "bob", "name": "Bob"}], properties={"role": "viewer"}
)
assert [s.recipient.id for s in added] == ["ann", "bob"], added
assert added[0].properties == {"role": "viewer"}, added[0]
assert added[0].object.id == "p1"

listed = [s.recipient.id for s in client.objects.list_subscriptions("projects", "p1")]
assert listed == ["ann", "bob"], listed
only = client.objects.list_subscriptions("projects", "p1", recipients=["bob"])
assert [s.recipient.id for s in only.entries] == ["bob"], only

client.objects.add_subscriptions("projects", "p2", recipients=["ann", {"id": "p1", "collection": "projects"}])
follows = client.users.list_subscriptions("ann")
assert [s.object.id for s in follows.entries] == ["p1", "p2"], follows
filtered = client.users.list_subscriptions("ann", objects=[{"id": "p2", "collection": "projects"}])
assert [s.object.id for s in filtered.entries] == ["p2"], filtered
p1_follows = client.objects.list_subscriptions("projects", "p1", mode="recipient")
assert [s.object.id for s in p1_follows.entries] == ["p2"], p1_follows

removed = client.objects.delete_subscriptions("projects", "p1", recipients=["bob"])
assert [s.recipient.id for s in removed] == ["bob"], removed

try:
    client.objects.add_subscriptions("projects", "p1", recipients=[{"id": "p1", "collection": "projects"}])
    raise AssertionError("subscribing an object to itself must fail")
except knockapi.UnprocessableEntityError:
    pass

op = client.objects.bulk.add_subscriptions(
    "projects", subscriptions=[{"id": "p2", "recipients": [{"id": "cy"}, {"id": "dee"}]}]
)
assert op.success_count == 2, op
op = client.objects.bulk.delete_subscriptions("projects", subscriptions=[{"id": "p2", "recipients": ["cy"]}])
assert op.success_count == 1, op

print("python subscriptions sdk: ok")
