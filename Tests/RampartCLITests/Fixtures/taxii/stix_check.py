"""Checks STIX 2.1 documents as a partner without Rampart would: stix2-validator --strict on each,
and the stix2 library parses each back with allow_custom=False.

Usage: stix_check.py FILE... (a bundle, or a TAXII envelope, which is checked as a bundle of its
objects). Exits non-zero naming the first file that fails.
"""
import json
import sys
import uuid

import stix2
from stix2validator import ValidationOptions, validate_instance

for path in sys.argv[1:]:
    document = json.load(open(path))
    if document.get("type") != "bundle":
        document = {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": document.get("objects", [])}
    if not document["objects"]:
        print(f"FAIL {path}: no objects")
        sys.exit(1)
    results = validate_instance(document, ValidationOptions(strict=True, version="2.1"))
    if not results.is_valid:
        print(f"FAIL {path}: " + "; ".join(str(e) for e in results.errors[:5]) + "; " + "; ".join(str(w) for w in results.warnings[:5]))
        sys.exit(1)
    parsed = stix2.parse(json.dumps(document), allow_custom=False)
    print(f"ok {path}: {len(parsed.objects)} objects valid under --strict, parsed by stix2")
