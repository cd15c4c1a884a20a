# pycrowdsec (https://pypi.org/project/pycrowdsec/) as a stream consumer of Rampart's CrowdSec
# bouncer API: its StreamClient polls every second while this script makes and revokes decisions
# through Rampart's own API; exits non-zero as soon as the client's view fails to follow.
# Arguments: BOUNCER_API_URL MAIN_API_URL ADMIN_TOKEN BOUNCER_KEY
import ipaddress
import json
import sys
import time
import urllib.request

from pycrowdsec.client import QueryClient, StreamClient

lapi, api, token, key = sys.argv[1:5]


def call(method, path, body=None):
    request = urllib.request.Request(
        api + path, method=method, data=json.dumps(body).encode() if body else None,
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def follows(expected, within=8):
    want = {str(ipaddress.ip_network(value)) for value in expected}
    deadline = time.time() + within
    while time.time() < deadline:
        if set(client.get_current_decisions()) == want:
            return
        time.sleep(0.05)
    sys.exit(f"pycrowdsec holds {sorted(client.get_current_decisions())}, expected {sorted(want)}")


call("POST", "/v1/decisions", {"value": "77.90.185.40", "duration": "1h"})
client = StreamClient(api_key=key, lapi_url=lapi, interval=1, user_agent="python-bouncer/test")
client.run()
follows({"77.90.185.40"})
call("POST", "/v1/decisions", {"value": "45.9.0.0/20", "duration": "1h"})
call("POST", "/v1/decisions", {"value": "2a01:4f8::9", "duration": "1h"})
follows({"77.90.185.40", "45.9.0.0/20", "2a01:4f8::9"})
if client.get_action_for("45.9.3.3") != "ban":
    sys.exit("pycrowdsec's cache does not find 45.9.3.3 inside 45.9.0.0/20")
call("DELETE", "/v1/decisions?value=77.90.185.40")
follows({"45.9.0.0/20", "2a01:4f8::9"})
query = QueryClient(api_key=key, lapi_url=lapi)
if query.get_action_for("45.9.3.3") != "ban":
    sys.exit("pycrowdsec's QueryClient does not find 45.9.3.3")
print("ok")
