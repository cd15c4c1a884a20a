"""Hostile clients on the inbound side, run by Benchmarks/hostileclients.sh (release build).

1. CONNECTIONS connections send a request's header lines one every second, never finishing;
   meanwhile /healthz is timed every 20 ms. Reports /healthz p50/p99, and when the slow
   connections were closed (the daemon's http.idle_timeout is 10 s here).
2. 20 16 MiB bodies to POST /v1/peer/events from no peer: without a signature (one with Expect:
   100-continue), or with a fresh, well-formed one of no key. The answers, and the daemon's CPU
   time per request (from /proc, user and system).
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
print(f"20 16 MiB bodies to /v1/peer/events from no peer (half with a well-formed signature of no key): {sorted(set(statuses))};"
      f" daemon CPU {spent * 1000 / 20:.1f} ms a request")
daemon.terminate()
daemon.wait()
