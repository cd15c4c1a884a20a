"""TAXII 2.1 acceptance: what taxii2-client 2.3.0 (and raw requests) do against a server.

Usage: taxii_acc.py DISCOVERY_URL USER PASSWORD [--medallion]. Every check is a client behaviour; it prints one
line per check and exits non-zero on the first failure. Built from the sketch of a differential
test against medallion 3.0.0 (the reference server); passes on both. `--medallion`: medallion
3.0.0 reports re-adding an object it holds as a failure ("Unable to process object"), which
TAXII 2.1 section 5.5 says a server must not; that one check then only counts the objects.
"""
import json
import sys
import uuid

import requests
import stix2
from taxii2client.v21 import Server, as_pages

base, user, password = sys.argv[1], sys.argv[2], sys.argv[3]
medallion = "--medallion" in sys.argv[4:]
auth = (user, password)
H = {"Accept": "application/taxii+json;version=2.1"}
passed = 0


def check(name, condition, detail=""):
    global passed
    if not condition:
        print(f"FAIL {name} {detail}")
        sys.exit(1)
    passed += 1
    print(f"ok {name}")


srv = Server(base, user=user, password=password)
check("discovery title", bool(srv.title))
root = srv.default or srv.api_roots[0]
check("api root versions", "application/taxii+json;version=2.1" in root.versions and root.max_content_length > 0)
col = next(c for c in root.collections if c.can_write and c.can_read)
check("collection id in url", col.id in col.url)
run = uuid.uuid4().hex[:6]
addresses = [f"77.90.{int(run[:2], 16)}.{i + 1}" for i in range(5)]
inds = [
    stix2.Indicator(name=f"ip {i}", description="acc", pattern=f"[ipv4-addr:value = '{a}']", pattern_type="stix",
                    valid_from="2026-01-01T00:00:00Z")
    for i, a in enumerate(addresses)
]
env = lambda objs: {"objects": [json.loads(o.serialize()) for o in objs]}  # a TAXII envelope, not a bundle
st = col.add_objects(env(inds[:3]))
check("add 3 complete", st.status == "complete" and st.success_count == 3, st._raw)
check("status, slashed url", root.get_status(st.id).total_count == 3)
raw = requests.get(root.url + "status/" + st.id, auth=auth, headers=H)
check("status, url without slash", raw.status_code == 200 and raw.json()["id"] == st.id, raw.text)
st2 = col.add_objects(env(inds[3:] + inds[:1]))
check("re-add is no failure", (medallion or st2.failure_count == 0) and st2.total_count == 3, st2._raw)

pages = list(as_pages(col.get_objects, per_request=2, type="indicator"))
mine = [o for p in pages for o in p.get("objects", []) if o["id"] in {i.id for i in inds}]
check("paging with as_pages", len(mine) == 5 and all(len(p.get("objects", [])) <= 2 for p in pages), [len(p.get("objects", [])) for p in pages])
check("get_object", col.get_object(inds[0].id)["objects"][0]["id"] == inds[0].id)
check("object_versions", bool(col.object_versions(inds[0].id)["versions"]))
manifest = col.get_manifest()
check("manifest media type", manifest["objects"][0]["media_type"] == "application/stix+json;version=2.1")

r = requests.get(col.url + "objects/", auth=auth, headers=H, params={"limit": 1000})
check("objects content type", r.headers["Content-Type"].replace(" ", "").startswith("application/taxii+json;version=2.1"))
first_batch = [o for o in r.json()["objects"] if o["id"] in {i.id for i in inds[:3]}]
check("date-added headers", "X-TAXII-Date-Added-First" in r.headers and "X-TAXII-Date-Added-Last" in r.headers)
r1 = requests.get(col.url + "manifest/", auth=auth, headers=H, params={"match[id]": inds[2].id})
last_of_batch1 = r1.json()["objects"][0]["date_added"]
r2 = requests.get(col.url + "objects/", auth=auth, headers=H, params={"added_after": last_of_batch1})
check("added_after", {o["id"] for o in r2.json()["objects"]} >= {inds[3].id, inds[4].id}
      and not ({o["id"] for o in r2.json()["objects"]} & {i.id for i in inds[:3]}), ([o["name"] for o in r2.json()["objects"]], last_of_batch1, r1.text))
check("401 without credentials", requests.get(base, headers=H).status_code == 401)
check("406 for application/json", requests.get(base, auth=auth, headers={"Accept": "application/json"}).status_code == 406)
r = requests.post(col.url + "objects/", auth=auth, data="{}", headers={**H, "Content-Type": "application/json"})
check("415 for application/json", r.status_code == 415)
r = requests.get(root.url + "collections/00000000-0000-4000-8000-000000000000/", auth=auth, headers=H)
check("404 unknown collection", r.status_code == 404)
check("404 is taxii+json", r.headers["Content-Type"].startswith("application/taxii+json"))
check("400 bad next", requests.get(col.url + "objects/", auth=auth, headers=H, params={"next": "bogus"}).status_code == 400)
print(f"TAXII acceptance: {passed} passed, 0 failed")
