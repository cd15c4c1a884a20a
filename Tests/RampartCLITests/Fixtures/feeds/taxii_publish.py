"""Publishes STIX indicators to a TAXII 2.1 collection with taxii2-client, for the TAXII feed test.

Usage: taxii_publish.py COLLECTION_URL USER PASSWORD STATE ACTION ADDRESS...
ACTION add: a new indicator per address (their ids are kept in the STATE file, a JSON map);
ACTION revoke: a newer version of each address's indicator with revoked: true."""
import json, os, sys

import stix2
from taxii2client.v21 import Collection

url, user, password, state_path, action, addresses = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]
state = json.load(open(state_path)) if os.path.exists(state_path) else {}
collection = Collection(url, user=user, password=password)
objects = []
for address in addresses:
    if action == "add":
        indicator = stix2.Indicator(name=f"ip {address}", description="published", pattern=f"[ipv4-addr:value = '{address}']",
                                    pattern_type="stix", valid_from="2026-01-01T00:00:00Z")
        state[address] = json.loads(indicator.serialize())
    else:
        indicator = stix2.parse(json.dumps(state[address])).new_version(revoked=True)
    objects.append(json.loads(indicator.serialize()))
status = collection.add_objects({"objects": objects})
assert status.success_count == len(objects), status._raw
json.dump(state, open(state_path, "w"))
print(f"published {len(objects)}")
