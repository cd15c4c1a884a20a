#!/usr/bin/env bash
# Installs the system packages Rampart's build, tests and benchmarks need on Debian 12, without
# questions. Swift itself (6.1 or later) is not a Debian package: install it from swift.org.
set -euo pipefail
packages=(
    libsqlite3-dev   # GRDB links the system SQLite
    zlib1g-dev       # gzip request bodies (CrowdSec bouncers' usage metrics)
    sqlite3          # tests alter the audit table behind the daemon's back
    curl             # README examples, tests, benchmarks
    ca-certificates
    nftables iproute2 iputils-ping   # firewall backends and network-namespace tests
    systemd                          # systemd-analyze checks deploy/rampart.service
    wrk python3 util-linux           # Benchmarks/ (util-linux has taskset)
    python3-venv                     # .venv: third-party implementations the tests check against
    crowdsec-firewall-bouncer        # Debian's CrowdSec firewall bouncer (0.0.25), run against the bouncer API
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
fi
# Python packages the interoperability tests compare Rampart with (from PyPI, into .venv).
cd "$(dirname "$0")/.."
# sigma-cli (pySigma) checks the Sigma rules Rampart installs; pycrowdsec consumes the bouncer API;
# schemathesis fuzzes the API from docs/openapi.yaml; otupy is an OpenC2 producer; taxii2-client
# reads and writes the TAXII server, medallion is the reference TAXII server the same checks run
# on, and stix2-validator with stix2 check every STIX export (stix2-validator 3.3.1's wheel lacks
# its schemas, so 3.2.0). otupy declares
# libvirt bindings (system headers) it does not need for HTTP: it goes in without its
# dependencies, followed by those its HTTP producer imports.
if ! { .venv/bin/python3 -c "import standardwebhooks, cryptography, pycrowdsec, otupy.transfers.http, taxii2client, medallion, stix2, stix2validator" && [ -x .venv/bin/sigma ] && [ -x .venv/bin/schemathesis ]; } 2>/dev/null; then
    python3 -m venv .venv
    { .venv/bin/pip install --quiet --disable-pip-version-check standardwebhooks cryptography sigma-cli pycrowdsec schemathesis \
            'taxii2-client==2.3.0' 'medallion==3.0.0' 'stix2==3.0.2' 'stix2-validator==3.2.0' \
        && .venv/bin/pip install --quiet --disable-pip-version-check --no-deps otupy==1.1.46 \
        && .venv/bin/pip install --quiet --disable-pip-version-check aenum cbor2 email-validator fqdn idna macaddress mediatype \
            rfc3987 requests flask gunicorn paho-mqtt kafka-python xmltodict==0.14.2 cyclonedx-python-lib; } </dev/null \
        || echo "warning: could not install the Python test packages; the interoperability tests will skip" >&2
fi
if ! command -v swift >/dev/null; then
    echo "swift is not on PATH: install Swift 6.1 or later from https://www.swift.org/install/linux/" >&2
    exit 1
fi
echo "development dependencies present"
