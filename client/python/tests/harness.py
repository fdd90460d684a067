"""A real fabric for the Python client's tests: fabric-manager on SQLite and
four simulated agents (n1..n4 on a ring, n3 lending SR-IOV VFs), as
deploy/demo.sh starts them, over mutual TLS with certificates made by
deploy/pki.sh in a temporary directory.

    with harness.Fabric() as fab:          # or fab.start() / fab.stop()
        client = fab.client("sched")       # user/sched, role scheduler

FABRIC_BIN_DIR names the binaries (default: build/bin of the checkout) and
FABRIC_SOURCE_DIR the checkout (default: three levels above this file).
Everything listens on 127.0.0.1 port 0. stop() kills every child and removes
the directory, also after a failed start.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from google.protobuf import json_format

from fabric.v1 import resources_pb2
import pciefabric

SOURCE_DIR = os.environ.get("FABRIC_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BIN_DIR = os.environ.get("FABRIC_BIN_DIR") or os.path.join(
    SOURCE_DIR, "build", "bin")
NODES = ("n1", "n2", "n3", "n4")
FABRIC = "lab"
# user name -> role
USERS = {"admin": "admin", "sched": "scheduler", "other": "scheduler"}
START_TIMEOUT = 20.0


def wait_until(what, check, timeout=START_TIMEOUT, interval=0.02):
    """Calls check() until it returns a true value (returned); raises
    AssertionError naming `what` after `timeout` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= end:
            raise AssertionError("timed out after %gs waiting for %s" %
                                 (timeout, what))
        time.sleep(interval)


class Fabric:
    """The processes and files of one test fabric."""

    def __init__(self):
        self.dir = None
        self.pki = None
        self.manager = None
        self.address = None
        self.agents = []

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- files -------------------------------------------------------------

    def cert(self, kind, name):
        """(cert, key) of KIND-NAME."""
        base = os.path.join(self.pki, "%s-%s" % (kind, name))
        return base + ".crt", base + ".key"

    def tls_flags(self, kind, name):
        cert, key = self.cert(kind, name)
        return ["--tls-cert", cert, "--tls-key", key,
                "--tls-ca", os.path.join(self.pki, "ca.crt")]

    def tls_kwargs(self, user):
        cert, key = self.cert("user", user)
        return {"tls_cert": cert, "tls_key": key,
                "tls_ca": os.path.join(self.pki, "ca.crt"),
                "server_name": "m1"}

    def client(self, user="admin", **options):
        """A FabricClient of the manager as user/USER."""
        kwargs = self.tls_kwargs(user)
        kwargs.update(options)
        return pciefabric.FabricClient(self.address, **kwargs)

    def _pki(self):
        self.pki = os.path.join(self.dir, "pki")
        script = os.path.join(SOURCE_DIR, "deploy", "pki.sh")
        cmds = [["init", self.pki], ["issue", self.pki, "manager", "m1"]]
        cmds += [["issue", self.pki, "node", n] for n in NODES]
        cmds += [["issue", self.pki, "user", u, "--role", r]
                 for u, r in USERS.items()]
        for args in cmds:
            subprocess.run([script] + args, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    # -- processes ---------------------------------------------------------

    def _spawn(self, args, log):
        with open(os.path.join(self.dir, log), "wb") as out:
            return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)

    def log(self, name):
        try:
            with open(os.path.join(self.dir, name), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="pciefabric-test-")
        try:
            self._start()
        except BaseException:
            sys.stderr.write(self.log("manager.log"))
            self.stop()
            raise

    def _start(self):
        self._pki()
        self.manager = self._spawn(
            [os.path.join(BIN_DIR, "fabric-manager"),
             "--db", os.path.join(self.dir, "fabric.db"),
             "--listen", "127.0.0.1:0", "--heartbeat-timeout", "2s",
             "--policy", os.path.join(SOURCE_DIR, "deploy", "policy",
                                      "policy.textproto"),
             "--audit-log", os.path.join(self.dir, "audit.log")] +
            self.tls_flags("manager", "m1"), "manager.log")

        def port():
            if self.manager.poll() is not None:
                raise AssertionError("fabric-manager exited: %s" %
                                     self.log("manager.log"))
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)",
                          self.log("manager.log"))
            return m and m.group(1)
        self.address = "127.0.0.1:" + wait_until("the manager's port", port)
        for n in NODES:
            extra = []
            if n == "n3":  # an SR-IOV NIC and an NVMe drive it lends
                extra = ["--sim-hardware", os.path.join(
                    SOURCE_DIR, "deploy", "examples", "lender-host.json")]
            self.agents.append(self._spawn(
                [os.path.join(BIN_DIR, "fabric-agent"), "--manager",
                 self.address, "--node", n, "--backend", "sim",
                 "--sim-dir", os.path.join(self.dir, "sim")] +
                self.tls_flags("node", n) + extra, "agent-%s.log" % n))
        admin = self.client("admin")
        with open(os.path.join(SOURCE_DIR, "deploy", "examples",
                               "ring-vf.json")) as f:
            spec = json_format.Parse(f.read(), resources_pb2.FabricSpec())
        admin.create_fabric(spec)
        self._await_agents(admin)
        admin.close()

    def _await_agents(self, client):
        """Until every node's agent is READY, from the Watch stream."""
        ready = set()
        for event in client.watch(["nodes"], fabric=FABRIC, initial_state=True,
                                  timeout=START_TIMEOUT):
            if event.WhichOneof("resource") != "node":
                continue
            name = event.node.name.split("/")[-1]
            if event.node.agent_state == resources_pb2.Node.READY:
                ready.add(name)
            else:
                ready.discard(name)
            if ready == set(NODES):
                return
        raise AssertionError("agents not READY after %gs: only %s" %
                             (START_TIMEOUT, sorted(ready)))

    def stop(self):
        procs = self.agents + ([self.manager] if self.manager else [])
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
        for p in procs:
            p.wait()
        self.agents = []
        self.manager = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
