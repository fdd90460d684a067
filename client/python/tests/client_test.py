"""FabricClient against a real fabric-manager with four simulated agents
(tests/harness.py), over mutual TLS with deploy/pki.sh certificates. One
fabric serves the whole class; every test cleans up what it made."""

import unittest
import uuid

import grpc

import harness
import pciefabric
from pciefabric import Allocation, Attachment

MIB = 1 << 20


class ClientTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.fabric = harness.Fabric()
        cls.addClassCleanup(cls.fabric.stop)
        cls.fabric.start()
        cls.sched = cls.fabric.client("sched")
        cls.addClassCleanup(cls.sched.close)
        cls.admin = cls.fabric.client("admin")
        cls.addClassCleanup(cls.admin.close)

    def allocate(self, client=None, **kwargs):
        """An allocation n1 <- n2 (1 MiB), released after the test."""
        client = client or self.sched
        args = dict(borrower="n1", target="n2", size=MIB)
        args.update(kwargs)
        alloc = client.allocate_memory(**args)
        self.addCleanup(self.quietly, self.admin.release, alloc.name)
        return alloc

    @staticmethod
    def quietly(undo, name):
        """undo(name), ignoring a FabricError (the test undid it already)."""
        try:
            undo(name)
        except pciefabric.FabricError:
            pass

    def test_allocate_waits_until_ready(self):
        alloc = self.allocate(borrower="n1", target="n3", size=4 * MIB,
                              labels={"job": "j1"})
        self.assertEqual(alloc.state, Allocation.READY)
        self.assertTrue(alloc.name.startswith("allocations/"))
        self.assertEqual(alloc.owner, "user/sched")
        self.assertEqual(alloc.labels["job"], "j1")
        self.assertNotEqual(alloc.borrower_addr, 0)
        self.assertEqual(self.sched.get_allocation(alloc.name).state,
                         Allocation.READY)

    def test_same_request_id_returns_the_same_allocation(self):
        rid = str(uuid.uuid4())
        first = self.allocate(request_id=rid)
        again = self.sched.allocate_memory("n1", "n2", MIB, request_id=rid)
        self.assertEqual(again.name, first.name)
        mine = [a.name for a in self.sched.list_allocations()
                if a.state != Allocation.RELEASED]
        self.assertEqual(mine.count(first.name), 1)

    def test_release(self):
        alloc = self.allocate(wait=False)
        released = self.sched.release(alloc.name)
        self.assertEqual(released.name, alloc.name)
        self.assertEqual(released.state, Allocation.RELEASED)

    def test_attach_and_detach_a_vf(self):
        vfs = harness.wait_until("a HEALTHY VF on n3", lambda: [
            v for v in self.sched.list_virtual_functions(node="nodes/n3")
            if v.health == v.HEALTHY and v.state == v.FREE])
        att = self.sched.attach_vf(vfs[0].name, "n1", vm="vm1")
        self.addCleanup(self.quietly, self.admin.detach, att.name)
        self.assertEqual(att.state, Attachment.READY)
        self.assertEqual(att.lender, "nodes/n3")
        self.assertEqual(self.sched.get_attachment(att.name).state,
                         Attachment.READY)
        detached = self.sched.detach(att.name)
        self.assertEqual(detached.state, Attachment.DETACHED)

    def test_list_pages_through_everything(self):
        made = {self.allocate(borrower="n%d" % (1 + i % 4),
                              target="n%d" % (1 + (i + 1) % 4),
                              wait=False).name for i in range(5)}
        calls = []
        real_call = self.sched._call

        def counting(method, request, retry=True):
            calls.append(method)
            return real_call(method, request, retry)
        self.sched._call = counting
        try:
            listed = [a.name for a in self.sched.list_allocations(page_size=2)]
        finally:
            del self.sched._call
        self.assertGreaterEqual(calls.count("ListAllocations"), 3)
        self.assertEqual(len(listed), len(set(listed)))
        self.assertTrue(made <= set(listed), (made, listed))
        # Lazily: a generator, one page at a time.
        first = next(iter(self.admin.list_allocations(page_size=1)))
        self.assertTrue(first.name.startswith("allocations/"))
        self.assertEqual(len(list(self.admin.list_nodes("lab", page_size=3))),
                         4)

    def test_unknown_allocation_is_not_found(self):
        with self.assertRaises(pciefabric.NotFoundError) as ctx:
            self.sched.get_allocation("allocations/nosuch")
        self.assertEqual(ctx.exception.code, grpc.StatusCode.NOT_FOUND)
        self.assertIsInstance(ctx.exception, pciefabric.FabricError)
        self.assertIn("nosuch", ctx.exception.message)

    def test_bad_request_is_invalid_argument(self):
        with self.assertRaises(pciefabric.InvalidArgumentError) as ctx:
            self.sched.allocate_memory("n1", "n2", 0)
        self.assertEqual(ctx.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("size", ctx.exception.message)

    def test_scheduler_cannot_release_another_users_allocation(self):
        alloc = self.allocate()
        with self.fabric.client("other") as other:
            with self.assertRaises(pciefabric.FabricError) as ctx:
                other.release(alloc.name)
            self.assertIn(ctx.exception.code, (grpc.StatusCode.PERMISSION_DENIED,
                                               grpc.StatusCode.NOT_FOUND))
            # Nor sees it.
            self.assertNotIn(alloc.name,
                             [a.name for a in other.list_allocations()])
        self.assertEqual(self.sched.get_allocation(alloc.name).state,
                         Allocation.READY)

    def test_watch_streams_events(self):
        events = self.sched.watch(["allocations"], initial_state=True,
                                  timeout=10)
        try:
            for event in events:  # the initial state ends with SYNCED
                if event.type == event.SYNCED:
                    break
            alloc = self.allocate(wait=False)
            for event in events:
                if (event.WhichOneof("resource") == "allocation" and
                        event.allocation.name == alloc.name and
                        event.allocation.state == Allocation.READY):
                    break
            else:
                self.fail("no READY event for %s" % alloc.name)
        finally:
            events.close()

    def test_without_server_name_the_address_is_checked(self):
        # deploy/pki.sh names 127.0.0.1 in the manager's certificate (IP SAN)
        # by default: the address alone is then enough.
        self.assertTrue(self.fabric.address.startswith("127.0.0.1:"))
        with self.fabric.client("sched", server_name=None) as by_address:
            by_address.ping()

    def test_wrong_manager_name_is_refused(self):
        with self.fabric.client("sched", server_name="m2", timeout=2,
                                max_attempts=1) as wrong:
            with self.assertRaises(pciefabric.UnavailableError) as ctx:
                wrong.ping()
            self.assertIn("not in peer certificate", ctx.exception.message)
            self.assertIn("server_name", ctx.exception.message)


if __name__ == "__main__":
    unittest.main()
