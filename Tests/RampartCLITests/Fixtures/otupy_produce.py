# otupy (https://pypi.org/project/otupy/, mattereppe/openc2lib) as an OpenC2 producer against
# Rampart's POST /.well-known/openc2: query features, deny, then delete by the rule number the
# deny answered. otupy's HTTP transfer sends no credentials, so the admin token is added to its
# requests (it posts with requests.post). Prints what it decided; exits non-zero on a mismatch.
# Arguments: HOST PORT ADMIN_TOKEN ADDRESS
import sys

import requests

host, port, token, address = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
post = requests.post


def authenticated(*args, headers=None, **kwargs):
    return post(*args, headers={**(headers or {}), "Authorization": "Bearer " + token}, **kwargs)


requests.post = authenticated

import otupy as oc2  # noqa: E402
import otupy.profiles.slpf as slpf  # noqa: E402
from otupy.encoders.json import JSONEncoder  # noqa: E402
from otupy.transfers.http import HTTPTransfer  # noqa: E402

producer = oc2.Producer("soar.example", JSONEncoder(), HTTPTransfer(host, port))
features = producer.sendcmd(oc2.Command(oc2.Actions.query, oc2.Features([oc2.Feature.versions, oc2.Feature.profiles, oc2.Feature.pairs])))
if features.status != oc2.StatusCode.OK or features.content["results"]["versions"] != ["1.0"] or "slpf" not in features.content["results"]["profiles"]:
    sys.exit(f"query features: {features}")
if features.from_ != "otupy-test" or features.to != ["soar.example"]:
    sys.exit(f"query features: the envelope's from/to: {features}")
deny = producer.sendcmd(oc2.Command(oc2.Actions.deny, oc2.IPv4Net(address),
                                    slpf.Args({"response_requested": oc2.ResponseType.complete}), actuator=slpf.Specifiers({})))
if deny.status != oc2.StatusCode.OK:
    sys.exit(f"deny: {deny}")
number = deny.content["results"]["rule_number"]
print(f"rule_number {number}")
deleted = producer.sendcmd(oc2.Command(oc2.Actions.delete, slpf.RuleID(number), actuator=slpf.Specifiers({})))
if deleted.status != oc2.StatusCode.OK:
    sys.exit(f"delete: {deleted}")
print("ok")
