#!/usr/bin/env bash
# For comparison with Benchmarks/firewall.sh: Debian's fail2ban banning COUNT addresses
# one `fail2ban-client set JAIL banip` call each, with its nftables banaction, in a network
# namespace of its own, timed from the first call to every address in its nftables set.
# Needs root and the fail2ban package (apt-get install fail2ban).
# Usage: [FEED=FILE] Benchmarks/fail2ban.sh [COUNT]   (default 1000 addresses of ipsum-level1)
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-1000}
[ "$(id -u)" = 0 ] || { echo "needs root (network namespace, nftables)" >&2; exit 2; }
command -v fail2ban-server >/dev/null || { echo "fail2ban is not installed: apt-get install fail2ban" >&2; exit 2; }
WORK=$(mktemp -d /tmp/rampart-f2b-bench-XXXXXX)
NS=rampart-f2b-$$
ip netns add "$NS"
trap 'ip netns exec "$NS" fail2ban-client -c "$WORK/etc" stop >/dev/null 2>&1 || true; ip netns del "$NS"' EXIT
ip -n "$NS" link set lo up

# A private configuration: Debian's, plus one jail on an empty log, banning through nftables.
cp -r /etc/fail2ban "$WORK/etc"
rm -f "$WORK"/etc/jail.d/*
touch "$WORK/empty.log"
cat > "$WORK/etc/fail2ban.local" <<CONF
[Definition]
socket = $WORK/fail2ban.sock
pidfile = $WORK/fail2ban.pid
dbfile = $WORK/fail2ban.sqlite3
logtarget = $WORK/fail2ban.log
allowipv6 = auto
CONF
cat > "$WORK/etc/jail.local" <<CONF
[DEFAULT]
banaction = nftables-allports
bantime = 1h
[bench]
enabled = true
backend = polling
filter =
failregex = ^never <HOST> matches$
logpath = $WORK/empty.log
CONF

client() { ip netns exec "$NS" fail2ban-client -c "$WORK/etc" "$@"; }
client start >/dev/null 2>&1 || { cat "$WORK/fail2ban.log" >&2; exit 1; }
for _ in $(seq 100); do client ping >/dev/null 2>&1 && break; sleep 0.1; done

ADDRESSES=$(awk -v n="$COUNT" '!/^#/ && NF { print $1; if (++seen == n) exit }' "${FEED:-Benchmarks/fixtures/ipsum-10k.txt}" 2>/dev/null || true)
[ "$(echo "$ADDRESSES" | wc -l)" = "$COUNT" ] || ADDRESSES=$(for i in $(seq "$COUNT"); do echo "11.$((i / 65536 % 256)).$((i / 256 % 256)).$((i % 256))"; done)
in_set() { ip netns exec "$NS" nft -j list set inet f2b-table addr-set-bench 2>/dev/null | python3 -c 'import json,sys; print(sum(len(o["set"].get("elem", [])) for o in json.load(sys.stdin)["nftables"] if "set" in o))' 2>/dev/null || echo 0; }

start=$(date +%s.%N)
for address in $ADDRESSES; do client set bench banip "$address" >/dev/null; done
calls=$(date +%s.%N)
while [ "$(in_set)" -lt "$COUNT" ]; do sleep 0.05; done
done_at=$(date +%s.%N)
python3 - "$start" "$calls" "$done_at" "$COUNT" <<'PY'
import sys
start, calls, done, count = map(float, sys.argv[1:])
print(f"fail2ban {int(count):,} bans, one fail2ban-client call each: {done - start:.2f} s to all in its nftables set "
      f"({count / (done - start):.0f} bans/s; the calls alone took {calls - start:.2f} s)")
PY
