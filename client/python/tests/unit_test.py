"""FabricClient without a fabric: retries, request ids and leader following
against in-process fake managers (plaintext on 127.0.0.1), argument checks,
the error mapping, and the generated packages' imports."""

import concurrent.futures
import os
import socket
import threading
import time
import unittest
import uuid

import grpc

from fabric.v1 import fabric_service_pb2 as pb
from fabric.v1 import fabric_service_pb2_grpc as pb_grpc
from fabric.v1 import resources_pb2
import pciefabric
from pciefabric import client as client_mod


class FakeManager(pb_grpc.FabricServiceServicer):
    """A manager that fails the first `failures` calls with UNAVAILABLE (as
    a standby naming `leader` when set), then answers. Records every
    CreateAllocation request id."""

    def __init__(self, failures=0, leader=None, standby=False):
        self.failures = failures
        self.leader = leader
        self.standby = standby
        self.calls = 0
        self.request_ids = []
        self.create_state = resources_pb2.Allocation.READY
        self.watch_events = []
        self.server = grpc.server(concurrent.futures.ThreadPoolExecutor(4))
        pb_grpc.add_FabricServiceServicer_to_server(self, self.server)
        self.address = "127.0.0.1:%d" % self.server.add_insecure_port(
            "127.0.0.1:0")
        self.server.start()

    def stop(self):
        self.server.stop(None)

    def _maybe_fail(self, context):
        self.calls += 1
        if self.standby or self.calls <= self.failures:
            if self.leader:
                context.set_trailing_metadata((("fabric-leader", self.leader),))
            if not self.standby:
                context.abort(grpc.StatusCode.UNAVAILABLE, "agent out of reach")
            context.abort(grpc.StatusCode.UNAVAILABLE,
                          "this manager is a standby; " +
                          ("the leader is " + self.leader if self.leader
                           else "no leader is elected yet"))

    def Ping(self, request, context):
        self._maybe_fail(context)
        return pb.PingResponse()

    def Watch(self, request, context):
        """The initial state (`watch_events`), SYNCED, then nothing until the
        client ends the stream."""
        yield from self.watch_events
        yield pb.WatchEvent(type=pb.WatchEvent.SYNCED)
        ended = threading.Event()
        context.add_callback(ended.set)
        ended.wait()

    def CreateAllocation(self, request, context):
        self.request_ids.append(request.request_id)
        self._maybe_fail(context)
        if request.allocation.size == 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "allocation.size: must be > 0")
        return resources_pb2.Allocation(name="allocations/a1",
                                        state=self.create_state)


def closed_port_address():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return "127.0.0.1:%d" % s.getsockname()[1]


class RetryTest(unittest.TestCase):

    def manager(self, **kwargs):
        m = FakeManager(**kwargs)
        self.addCleanup(m.stop)
        return m

    def client(self, managers, **kwargs):
        options = dict(insecure=True, timeout=5, retry_backoff=0.01)
        options.update(kwargs)
        c = pciefabric.FabricClient(managers, **options)
        self.addCleanup(c.close)
        return c

    def test_retries_unavailable_with_one_request_id_per_call(self):
        m = self.manager(failures=2)
        c = self.client(m.address)
        self.assertEqual(c.allocate_memory("n1", "n2", 1).name,
                         "allocations/a1")
        self.assertEqual(len(m.request_ids), 3)
        self.assertEqual(len(set(m.request_ids)), 1)
        self.assertEqual(uuid.UUID(m.request_ids[0]).version, 4)
        c.allocate_memory("n1", "n2", 1)
        self.assertNotEqual(m.request_ids[-1], m.request_ids[0])

    def test_gives_up_after_max_attempts(self):
        m = self.manager(failures=100)
        c = self.client(m.address, max_attempts=3)
        with self.assertRaises(pciefabric.UnavailableError) as ctx:
            c.ping()
        self.assertEqual(ctx.exception.code, grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(m.calls, 3)

    def test_other_codes_are_not_retried(self):
        m = self.manager()
        c = self.client(m.address)
        with self.assertRaises(pciefabric.InvalidArgumentError) as ctx:
            c.allocate_memory("n1", "n2", 0, wait=False)
        self.assertIn("allocation.size", ctx.exception.message)
        self.assertEqual(len(m.request_ids), 1)

    def test_follows_the_leader_a_standby_names(self):
        leader = self.manager()
        standby = self.manager(standby=True, leader=leader.address)
        c = self.client(standby.address)
        c.ping()
        self.assertEqual(c.target, leader.address)
        self.assertEqual((standby.calls, leader.calls), (1, 1))
        c.ping()  # stays with the leader
        self.assertEqual((standby.calls, leader.calls), (1, 2))

    def test_a_manager_list_skips_one_out_of_reach(self):
        leader = self.manager()
        c = self.client([closed_port_address(), leader.address])
        c.allocate_memory("n1", "n2", 1, wait=False)
        self.assertEqual(c.target, leader.address)

    def test_waits_for_a_leader_until_the_deadline(self):
        a = self.manager(standby=True)
        b = self.manager(standby=True)
        c = self.client([a.address, b.address], timeout=1,
                        attempt_timeout=0.5)
        with self.assertRaises(pciefabric.UnavailableError) as ctx:
            c.ping()
        self.assertIn("managers tried until the deadline", ctx.exception.message)
        self.assertGreater(a.calls + b.calls, 2)


class WaitTest(unittest.TestCase):

    def setUp(self):
        self.m = FakeManager()
        self.addCleanup(self.m.stop)
        self.m.create_state = resources_pb2.Allocation.PENDING
        self.c = pciefabric.FabricClient(self.m.address, insecure=True)
        self.addCleanup(self.c.close)

    def test_a_wait_that_times_out_carries_the_last_state(self):
        start = time.monotonic()
        with self.assertRaises(pciefabric.WaitTimeoutError) as ctx:
            self.c.allocate_memory("n1", "n2", 1, wait_timeout=0.3)
        self.assertLess(time.monotonic() - start, 5)
        self.assertEqual(ctx.exception.code, grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertEqual(ctx.exception.resource.state,
                         resources_pb2.Allocation.PENDING)
        self.assertIn("still PENDING", ctx.exception.message)

    def test_the_watch_brings_ready(self):
        self.m.watch_events = [pb.WatchEvent(
            type=pb.WatchEvent.MODIFIED, allocation=resources_pb2.Allocation(
                name="allocations/a1", state=resources_pb2.Allocation.READY))]
        alloc = self.c.allocate_memory("n1", "n2", 1, wait_timeout=5)
        self.assertEqual(alloc.state, resources_pb2.Allocation.READY)

    def test_released_while_waiting_is_failed_precondition(self):
        self.m.watch_events = [pb.WatchEvent(
            type=pb.WatchEvent.MODIFIED, allocation=resources_pb2.Allocation(
                name="allocations/a1", state=resources_pb2.Allocation.RELEASED,
                state_reason="ttl expired"))]
        with self.assertRaises(pciefabric.FailedPreconditionError) as ctx:
            self.c.allocate_memory("n1", "n2", 1, wait_timeout=5)
        self.assertIn("RELEASED", ctx.exception.message)
        self.assertIn("ttl expired", ctx.exception.message)


class ArgumentsTest(unittest.TestCase):

    def test_parse_managers(self):
        self.assertEqual(pciefabric.parse_managers("a:1, b:2,a:1"),
                         ["a:1", "b:2"])
        for bad in ("a", "a:0", "a:x", ":1", "a:1,,b:2"):
            with self.assertRaises(ValueError, msg=bad):
                pciefabric.parse_managers(bad)

    def test_insecure_only_on_loopback(self):
        pciefabric.FabricClient("localhost:1", insecure=True).close()
        with self.assertRaisesRegex(ValueError, "loopback"):
            pciefabric.FabricClient("10.0.0.1:7070", insecure=True)
        with self.assertRaisesRegex(ValueError, "exclude"):
            pciefabric.FabricClient("127.0.0.1:1", insecure=True,
                                    tls_ca="ca.crt")

    def test_tls_files_come_from_the_environment(self):
        saved = {k: os.environ.pop(k, None)
                 for k in ("FABRIC_TLS_CERT", "FABRIC_TLS_KEY", "FABRIC_TLS_CA")}
        try:
            with self.assertRaisesRegex(ValueError, "tls_cert, tls_key, tls_ca"):
                pciefabric.FabricClient("127.0.0.1:1")
            os.environ.update(FABRIC_TLS_CERT="/nonexistent/c.crt",
                              FABRIC_TLS_KEY="/nonexistent/c.key",
                              FABRIC_TLS_CA="/nonexistent/ca.crt")
            with self.assertRaisesRegex(ValueError, "/nonexistent/"):
                pciefabric.FabricClient("127.0.0.1:1")
        finally:
            for k, v in saved.items():
                os.environ.pop(k, None)
                if v is not None:
                    os.environ[k] = v

    def test_errors_by_code(self):
        e = pciefabric.error_for(grpc.StatusCode.NOT_FOUND, "allocations/x")
        self.assertIsInstance(e, pciefabric.NotFoundError)
        self.assertEqual((e.code, e.message),
                         (grpc.StatusCode.NOT_FOUND, "allocations/x"))
        self.assertIs(type(pciefabric.error_for(grpc.StatusCode.INTERNAL, "")),
                      pciefabric.FabricError)
        self.assertTrue(issubclass(pciefabric.WaitTimeoutError,
                                   pciefabric.DeadlineExceededError))

    def test_names(self):
        self.assertEqual(client_mod._named("allocations", "a1"),
                         "allocations/a1")
        self.assertEqual(client_mod._named("allocations", "allocations/a1"),
                         "allocations/a1")
        self.assertEqual(client_mod._named("fabrics", ""), "")


class GeneratedPackagesTest(unittest.TestCase):

    def test_google_protobuf_imports_next_to_generated_google_api(self):
        import google.protobuf
        from google.protobuf import timestamp_pb2
        import fabric.v1
        self.assertTrue(timestamp_pb2.Timestamp)
        gen_dir = os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(fabric.v1.__file__))))
        # google/ must stay a namespace package, or it would hide the
        # system's google.protobuf.
        self.assertFalse(os.path.exists(os.path.join(gen_dir, "google",
                                                     "__init__.py")))
        if os.path.isdir(os.path.join(gen_dir, "google", "api")):
            from google.api import annotations_pb2, http_pb2
            self.assertTrue(http_pb2.HttpRule)
            self.assertTrue(annotations_pb2.http)
        self.assertNotEqual(os.path.dirname(google.protobuf.__file__),
                            os.path.join(gen_dir, "google", "protobuf"))

    def test_service_stubs(self):
        self.assertTrue(pb_grpc.FabricServiceStub)
        self.assertIn("CreateAllocation",
                      pb.DESCRIPTOR.services_by_name["FabricService"]
                      .methods_by_name)


if __name__ == "__main__":
    unittest.main()
