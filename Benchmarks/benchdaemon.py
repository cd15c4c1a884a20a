"""What the Python benchmarks share: a feed's addresses, and a daemon of theirs on 127.0.0.1:8475
with an API token."""
import sys, time, urllib.request

URL = "http://127.0.0.1:8475"


def feed_addresses(path, count, ipv4_only=False):
    """The first `count` distinct addresses of a feed (IP<TAB>..., '#' comments); past its end,
    distinct global unicast IPv4 addresses from 11.0.0.0, deterministic."""
    addresses, seen = [], set()
    with open(path) as f:
        for line in f:
            value = line.split()[0] if line.strip() and not line.startswith("#") else None
            if value and value not in seen and not (ipv4_only and ":" in value):
                seen.add(value)
                addresses.append(value)
            if len(addresses) == count:
                break
    n = 0x0B000000
    while len(addresses) < count:
        n += 1
        text = f"{n >> 24}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
        if text not in seen and (n & 255) not in (0, 255):
            seen.add(text)
            addresses.append(text)
    return addresses


def fresh_addresses(start):
    """Distinct IPv4 addresses from `start` (an integer) on, none ending in .0 or .255, in order."""
    n = start
    while True:
        n += 1
        if n & 255 not in (0, 255):
            yield f"{n >> 24}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def in_own_namespace(what):
    """Runs this script again inside a network namespace of its own (loopback up), deletes the
    namespace and exits with the script's status; inside it, returns. Needs root; `what` says
    what the namespace is for, in the refusal."""
    import os, shutil, subprocess
    inside = os.environ.get("RAMPART_BENCH_NS")
    if inside is None:
        if os.getuid() != 0 or shutil.which("ip") is None:
            sys.exit(f"{what} needs root and ip (a network namespace of its own)")
        namespace = f"rampart-bench-{os.getpid()}"
        subprocess.run(["ip", "netns", "add", namespace], check=True)
        try:
            subprocess.run(["ip", "-n", namespace, "link", "set", "lo", "up"], check=True)
            status = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, *sys.argv],
                                    env={**os.environ, "RAMPART_BENCH_NS": namespace}).returncode
        finally:
            subprocess.run(["ip", "netns", "del", namespace])
        sys.exit(status)
    if subprocess.run(["ip", "netns", "identify"], capture_output=True, text=True).stdout.strip() != inside:
        sys.exit(f"refusing to run {what} outside its own network namespace")


def wait_ready(daemon, work):
    """Until /readyz answers; exits, pointing at the log, if the daemon stops or never does."""
    for _ in range(400):
        if daemon.poll() is not None:
            sys.exit(f"the daemon exited with {daemon.returncode}; see {work}/daemon.log")
        try:
            urllib.request.urlopen(URL + "/readyz", timeout=1)
            return
        except Exception:
            time.sleep(0.05)
    sys.exit(f"the daemon did not become ready; see {work}/daemon.log")


def call(token, method, path, body=None, content_type="application/json"):
    """One API request with the token: (status, body)."""
    request = urllib.request.Request(URL + path, data=body, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("Content-Type", content_type)
    with urllib.request.urlopen(request, timeout=600) as answer:
        return answer.status, answer.read()


def start_daemon(binary, work, token, extra="", fresh=True, http=""):
    """`rampart serve` on 127.0.0.1:8475 from a configuration of its own in `work` (dry-run
    firewall, one API key with every role for `token`, big bodies allowed and `http` settings
    added to them, `extra` YAML added), once ready; `fresh`: its state directory emptied first."""
    import hashlib, os, shutil, subprocess
    if fresh:
        shutil.rmtree(f"{work}/state", ignore_errors=True)
    os.makedirs(f"{work}/playbooks", exist_ok=True)
    with open(f"{work}/rampart.yaml", "w") as f:
        f.write(f"""node: {{id: bench}}
listen: 127.0.0.1:8475
state_dir: state
playbooks: playbooks
firewall: {{backend: dry-run}}
safety: {{max_active_blocks: 5000000}}
http: {{max_items: 2000000, max_body: 256MiB{", " + http if http else ""}}}
api_keys:
  - {{name: bench, roles: [ingest, read, admin], token_sha256: "{hashlib.sha256(token.encode()).hexdigest()}"}}
log: {{level: warning}}
""" + extra)
    daemon = subprocess.Popen([binary, "serve", "--config", f"{work}/rampart.yaml"], stdout=open(f"{work}/daemon.log", "a"),
                              stderr=subprocess.STDOUT)
    wait_ready(daemon, work)
    return daemon


class Nodes:
    """The Rampart nodes of a benchmark: each with its directory `work/NAME`, an address and port
    (loopback unless told), a signing key of its own, a firewall backend (dry-run unless told)
    and an API key with every role for `token`, run in a network namespace of its own when told;
    killed when the script exits."""

    def __init__(self, binary, work, token):
        import atexit
        self.binary, self.work, self.token = binary, work, token
        self.processes, self.ports, self.hosts, self.namespaces, self.startups = {}, {}, {}, {}, []
        atexit.register(lambda: [p.kill() for p in self.processes.values()])

    def keygen(self, name):
        """Makes the node's signing key; returns its public key."""
        import subprocess
        out = subprocess.run([self.binary, "keygen", "--out", f"{self.work}/{name}.key"], capture_output=True, text=True, check=True).stdout
        return out.strip().split()[-1]

    def configure(self, name, port, peers, playbooks, firewall="dry-run", host="127.0.0.1", namespace=None):
        """Writes the node's configuration: `peers` are its `peers:` lines, `playbooks` its
        playbook (or a list of them), `firewall` its backend, `host` its address (in `namespace`,
        where it then runs)."""
        import hashlib, os
        self.ports[name], self.hosts[name], self.namespaces[name] = port, host, namespace
        os.makedirs(f"{self.work}/{name}/playbooks", exist_ok=True)
        for n, playbook in enumerate([playbooks] if isinstance(playbooks, str) else playbooks):
            open(f"{self.work}/{name}/playbooks/p{n}.yaml", "w").write(playbook)
        open(f"{self.work}/{name}/rampart.yaml", "w").write(f"""node: {{id: {name}}}
listen: {host}:{port}
state_dir: state
playbooks: playbooks
firewall: {{backend: {firewall}}}
safety: {{max_active_blocks: 5000000}}
api_keys:
  - {{name: bench, roles: [ingest, read, admin], token_sha256: "{hashlib.sha256(self.token.encode()).hexdigest()}"}}
signing: {{key_file: {self.work}/{name}.key}}
log: {{level: warning}}
peers:
""" + "".join(peers))

    def start(self, name, within=20):
        """Starts the node and returns its process once it is ready (`within` seconds at most;
        how long it took goes in `startups`); exits if its port is taken."""
        import socket, subprocess
        port, host, namespace = self.ports[name], self.hosts[name], self.namespaces[name]
        with socket.socket() as probe:
            if namespace is None and probe.connect_ex((host, port)) == 0:
                holders = subprocess.run(["ss", "-Htlnp", f"sport = :{port}"], capture_output=True, text=True).stdout.strip()
                sys.exit(f"port {port} is taken ({holders or 'by whom, ss does not say'}): is an earlier run still going?")
        command = [self.binary, "serve", "--config", f"{self.work}/{name}/rampart.yaml"]
        process = subprocess.Popen((["ip", "netns", "exec", namespace] if namespace else []) + command,
                                   stdout=open(f"{self.work}/{name}.log", "a"), stderr=subprocess.STDOUT)
        self.processes[name] = process
        began = time.monotonic()
        while time.monotonic() - began < within:
            if process.poll() is not None:
                sys.exit(f"node {name} exited with {process.returncode}; the end of its log:\n{self.log_tail(name)}")
            try:
                urllib.request.urlopen(f"http://{host}:{port}/readyz", timeout=1)
                self.startups.append(time.monotonic() - began)
                return process
            except Exception:
                time.sleep(0.05)
        sys.exit(f"node {name} did not become ready within {within} s; the end of its log:\n{self.log_tail(name)}")

    def log_tail(self, name):
        """The last lines of the node's log (its directory goes when the script exits)."""
        with open(f"{self.work}/{name}.log", errors="replace") as log:
            return "".join(log.readlines()[-15:])

    def api(self, name, path, body=None):
        """GET, or POST of a text/plain `body`, to the node's API; the answer's JSON."""
        import json
        request = urllib.request.Request(f"http://{self.hosts[name]}:{self.ports[name]}{path}", data=body, method="POST" if body else "GET")
        request.add_header("Authorization", f"Bearer {self.token}")
        if body:
            request.add_header("Content-Type", "text/plain")
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())

    def items(self, name):
        """How many items the node's store holds (read while it runs)."""
        import sqlite3
        db = sqlite3.connect(f"file:{self.work}/{name}/state/rampart.sqlite?mode=ro", uri=True)
        try:
            return db.execute("SELECT count(*) FROM item").fetchone()[0]
        finally:
            db.close()
