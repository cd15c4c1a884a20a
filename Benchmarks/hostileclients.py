"""Hostile clients on the inbound side, run by Benchmarks/hostileclients.sh (release build).

1. CONNECTIONS connections send a request's header lines one every second, never finishing;
   meanwhile /healthz is timed every 20 ms. Reports /healthz p50/p99, and when the slow
   connections were closed (the daemon's http.idle_timeout is 10 s here).
2. 20 16 MiB bodies to POST /v1/peer/events from no peer: without a signature (one with Expect:
   100-continue), or with a fresh, well-formed one of no key. The answers, and the daemon's CPU
   time per request (from /proc, user and system).
3. Hostile requests, each on a connection of its own: JSON nested 100,000 deep (ingest and
   OpenC2), invalid UTF-8 and NUL bytes in text and JSON, a 1 MB header, 10^6 tiny lines. Each
   answer's status, media type (a 4xx problem+json expected), size and time; then /healthz.
Exits non-zero if a slow connection outlives 25 s, a peer body is not refused with 401, or a
hostile request gets anything but a 4xx problem+json.
"""
import atexit, os, resource, shutil, socket, statistics, sys, tempfile, threading, time, urllib.request

from benchdaemon import URL, start_daemon

binary, connections = sys.argv[1], int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_NOFILE, (connections + 256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
work = tempfile.mkdtemp(prefix="rampart-hostile-clients-")
atexit.register(shutil.rmtree, work, True)
daemon = start_daemon(binary, work, "rmp_bench_token", http="idle_timeout: 10s")

slow, closed_at, lock = [], [], threading.Lock()
started = time.time()
for n in range(connections):
    s = socket.create_connection(("127.0.0.1", 8475))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    slow.append(s)


def drip():
    while slow:
        for s in list(slow):
            try:
                s.sendall(b"X-Slow: 1\r\n")
            except OSError:
                with lock:
                    closed_at.append(time.time() - started)
                slow.remove(s)
        time.sleep(1)


threading.Thread(target=drip, daemon=True).start()
timings = []
while time.time() - started < 25:
    began = time.perf_counter()
    urllib.request.urlopen(URL + "/healthz", timeout=10).read()
    timings.append((time.perf_counter() - began) * 1000)
    time.sleep(0.02)
timings.sort()
failures = []
if slow:
    failures.append(f"{len(slow)} slow-header connections still open at 25 s")
print(f"{connections} slow-header connections: /healthz p50 {statistics.median(timings):.1f} ms, p99 {timings[int(len(timings) * 0.99)]:.1f} ms over {len(timings)};"
      f" {len(closed_at)} closed by the daemon, the last after {max(closed_at, default=0):.1f} s, {len(slow)} still open at 25 s")


def cpu():
    fields = open(f"/proc/{daemon.pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


body = b"[" * (16 << 20)
statuses = []
before = cpu()
for n in range(20):
    s = socket.create_connection(("127.0.0.1", 8475))
    expect = b"Expect: 100-continue\r\n" if n == 0 else b""
    signature = b"webhook-id: msg_x\r\nwebhook-timestamp: %d\r\nwebhook-signature: v1a,%s\r\n" % (int(time.time()), b"A" * 86 + b"==") if n % 2 else b""
    s.sendall(b"POST /v1/peer/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s%s\r\n" % (len(body), expect, signature))
    s.settimeout(30)
    if n != 0:
        # The body follows at once (a well-formed signature can only be checked against it).
        def send(s=s):
            try:
                s.sendall(body)
            except OSError:
                pass
        threading.Thread(target=send, daemon=True).start()
    head = s.recv(4096)
    statuses.append(("signed " if signature else "unsigned ") + ("100-continue " if expect else "") + head.split(b"\r\n", 1)[0].decode(errors="replace"))
    s.close()
spent = cpu() - before
if any(not status.endswith(" 401 Unauthorized") for status in statuses):
    failures.append("an unsigned or unknown peer body was not refused with 401")
print(f"20 16 MiB bodies to /v1/peer/events from no peer (half with a well-formed signature of no key): {sorted(set(statuses))};"
      f" daemon CPU {spent * 1000 / 20:.1f} ms a request")


def request(method, path, body=b"", headers=()):
    """One request on a connection of its own: (status, content type, body, milliseconds)."""
    s = socket.create_connection(("127.0.0.1", 8475))
    s.settimeout(30)
    head = [f"{method} {path} HTTP/1.1", "Host: x", "Authorization: Bearer rmp_bench_token", f"Content-Length: {len(body)}", "Connection: close", *headers]
    began = time.perf_counter()
    s.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    answer = b""
    while chunk := s.recv(1 << 20):
        answer += chunk
    s.close()
    spent = (time.perf_counter() - began) * 1000
    status_line, _, rest = answer.partition(b"\r\n")
    headers_text, _, content = rest.partition(b"\r\n\r\n")
    content_type = next((l.split(b":", 1)[1].strip().decode() for l in headers_text.split(b"\r\n") if l.lower().startswith(b"content-type:")), "")
    return int(status_line.split()[1]) if status_line else 0, content_type, content, spent


hostile = [
    ("JSON nested 100,000 deep", "POST", "/v1/indicators", b"[" * 100_000 + b"]" * 100_000, ["Content-Type: application/json"]),
    ("an OpenC2 command nested 100,000 deep", "POST", "/.well-known/openc2", b'{"action":' + b"[" * 100_000 + b"]" * 100_000 + b"}", ["Content-Type: application/openc2+json;version=1.0"]),
    ("invalid UTF-8 in a text line", "POST", "/v1/indicators", b"\xff\xfe.example\n", ["Content-Type: text/plain"]),
    ("invalid UTF-8 in a JSON string", "POST", "/v1/indicators", b'[{"value":"\xc3\x28"}]', ["Content-Type: application/json"]),
    ("a NUL byte in a text line", "POST", "/v1/indicators", b"8.8.4.4\x00\n", ["Content-Type: text/plain"]),
    ("a NUL byte in a JSON string", "POST", "/v1/indicators", b'[{"value":"8.8.4.4\x00"}]', ["Content-Type: application/json"]),
    ("an escaped NUL in a JSON string", "POST", "/v1/indicators", b'[{"value":"8.8.4.4\\u0000"}]', ["Content-Type: application/json"]),
    ("a 1 MB header", "GET", "/v1/decisions", b"", ["X-Big: " + "a" * (1 << 20)]),
    ("10^6 tiny lines", "POST", "/v1/indicators", b"x\n" * 1_000_000, ["Content-Type: text/plain"]),
]
print("hostile requests (status, media type, answer size, time):")
for name, method, path, body, headers in hostile:
    status, content_type, content, spent = request(method, path, body, headers)
    if not (400 <= status < 500 and content_type.startswith("application/problem+json")):
        failures.append(f"{name}: {status} {content_type}")
    print(f"  {name}: {status} {content_type or '(none)'}, {len(content):,} bytes, {spent:.1f} ms"
          f"{'' if 400 <= status < 500 and content_type.startswith('application/problem+json') else f'  <- not a 4xx problem: {content[:300]!r}'}")
alive = urllib.request.urlopen(URL + "/healthz", timeout=5).status
print(f"  /healthz after them: {alive}")
daemon.terminate()
daemon.wait()
for failure in failures:
    print(f"FAILED: {failure}")
sys.exit(1 if failures else 0)
