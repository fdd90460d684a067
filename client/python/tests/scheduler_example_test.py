"""The worked example (examples/scheduler.py) against a real manager with
simulated agents, as a scheduler-role user over mutual TLS."""

import os
import re
import subprocess
import sys
import unittest

import harness

EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                       "examples", "scheduler.py")


class SchedulerExampleTest(unittest.TestCase):

    def setUp(self):
        self.fabric = harness.Fabric()
        self.addCleanup(self.fabric.stop)
        self.fabric.start()

    def run_example(self, *extra):
        tls = self.fabric.tls_kwargs("sched")
        return subprocess.run(
            [sys.executable, EXAMPLE, "--manager", self.fabric.address,
             "--fabric", harness.FABRIC, "--tls-cert", tls["tls_cert"],
             "--tls-key", tls["tls_key"], "--tls-ca", tls["tls_ca"],
             "--server-name", "m1"] + list(extra),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            timeout=60)

    def test_places_ten_jobs_on_nearest_lenders_and_releases(self):
        run = self.run_example()
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        rows = re.findall(r"^job-(\d+)\s+(n\d)\s+(n\d)\s+(\d+)\s+(\S+)\s+(\S+)$",
                          run.stdout, re.M)
        self.assertEqual(len(rows), 10, run.stdout)
        for _, home, lender, hops, _, state in rows:
            self.assertEqual(state, "READY")
            self.assertNotEqual(home, lender)
            # On the 4-node ring every node has a neighbour with room.
            self.assertEqual(hops, "1", run.stdout)
        self.assertIn("released 10 allocations", run.stdout)
        with self.fabric.client("admin") as admin:
            live = [a for a in admin.list_allocations(fabric=harness.FABRIC)
                    if a.state != a.RELEASED]
            self.assertEqual(live, [])

    def test_fails_with_the_code_for_an_unknown_fabric(self):
        run = self.run_example("--fabric", "nosuch")
        self.assertEqual(run.returncode, 1, run.stdout + run.stderr)
        self.assertIn("NOT_FOUND", run.stderr)


if __name__ == "__main__":
    unittest.main()
