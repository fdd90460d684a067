#!/usr/bin/env python3
"""A toy scheduler: places 10 jobs' memory on the nearest lenders.

    scheduler.py --manager 127.0.0.1:7070 --fabric lab \
        --tls-cert user-sched.crt --tls-key user-sched.key --tls-ca ca.crt \
        --server-name m1

Each job runs on a node of the fabric (round robin) and needs memory from
another node. The scheduler picks the lender with the fewest hops from the
job's node, then the least loaded (lent bytes over exported bytes, counting
what it placed itself), lends it with FabricClient.allocate_memory (which
waits until READY), prints the placement table, and releases everything.
Exits 1 when a step fails (the error's gRPC code is printed), 2 on bad flags.

Hops come from the fabric's declaration (GetFabric, spec): on a RING, the
nodes are listed in ring order and a hop is one cable, so the distance of
nodes i and j is min(|i-j|, N-|i-j|); on a STAR every server is one hop from
the hub and two from each other; CUSTOM fabrics list their links, and the
distance is the shortest path over them. Load comes from the nodes
(ListNodes: lent_bytes, export_size). Only nodes whose agent is READY lend.
"""

import argparse
import collections
import os
import sys

import pciefabric
from fabric.v1 import resources_pb2

JOBS = 10


def hops_table(spec):
    """{(a, b): hops} between the declared nodes of `spec` (bare names)."""
    names = [n.name for n in spec.nodes]
    adjacent = collections.defaultdict(set)
    if spec.topology == resources_pb2.RING:
        for i, name in enumerate(names):
            peer = names[(i + 1) % len(names)]
            if peer != name:
                adjacent[name].add(peer)
                adjacent[peer].add(name)
    elif spec.topology == resources_pb2.STAR:
        for name in names:
            if name != spec.hub:
                adjacent[name].add(spec.hub)
                adjacent[spec.hub].add(name)
    else:
        for link in spec.links:
            adjacent[link.a].add(link.b)
            adjacent[link.b].add(link.a)
    table = {}
    for start in names:  # breadth first from every node
        dist = {start: 0}
        frontier = [start]
        while frontier:
            following = []
            for node in frontier:
                for peer in adjacent[node]:
                    if peer not in dist:
                        dist[peer] = dist[node] + 1
                        following.append(peer)
            frontier = following
        for node, d in dist.items():
            table[(start, node)] = d
    return table


def short(name):
    return name.rsplit("/", 1)[-1]


def schedule(client, fabric, job_size, out):
    """Places JOBS jobs, prints the table, releases them. Returns the
    allocations it made (all released)."""
    spec = client.get_fabric(fabric).spec
    hops = hops_table(spec)
    nodes = {short(n.name): n for n in client.list_nodes(fabric)}
    ready = sorted(n for n, node in nodes.items()
                   if node.agent_state == resources_pb2.Node.READY and
                   not node.hub)
    if len(ready) < 2:
        raise SystemExit("scheduler: fabric %s has %d nodes with a READY agent;"
                         " at least 2 are needed" % (fabric, len(ready)))
    lent = {n: nodes[n].lent_bytes for n in ready}
    placed = []
    try:
        for job in range(JOBS):
            home = ready[job % len(ready)]
            candidates = [
                n for n in ready
                if n != home and (home, n) in hops and
                nodes[n].export_size - lent[n] >= job_size]
            if not candidates:
                raise SystemExit("scheduler: no lender has %d bytes free for "
                                 "job-%d on %s" % (job_size, job, home))
            lender = min(candidates, key=lambda n: (
                hops[(home, n)], lent[n] / max(nodes[n].export_size, 1), n))
            alloc = client.allocate_memory(
                home, lender, job_size, labels={"job": "job-%d" % job})
            lent[lender] += job_size
            placed.append((job, home, lender, hops[(home, lender)], alloc))
        out.write("%-6s %-8s %-8s %4s  %-28s %s\n" % (
            "JOB", "NODE", "LENDER", "HOPS", "ALLOCATION", "STATE"))
        for job, home, lender, h, alloc in placed:
            out.write("%-6s %-8s %-8s %4d  %-28s %s\n" % (
                "job-%d" % job, home, lender, h, alloc.name,
                resources_pb2.Allocation.State.Name(alloc.state)))
    finally:
        for *_, alloc in placed:
            client.release(alloc.name)
    out.write("released %d allocations\n" % len(placed))
    return [p[-1] for p in placed]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manager", default=os.environ.get(
        "FABRIC_SERVER", "127.0.0.1:7070"),
                        help="HOST:PORT, or a comma-separated list (HA)")
    parser.add_argument("--fabric", default="lab")
    parser.add_argument("--tls-cert", help="default: $FABRIC_TLS_CERT")
    parser.add_argument("--tls-key", help="default: $FABRIC_TLS_KEY")
    parser.add_argument("--tls-ca", help="default: $FABRIC_TLS_CA")
    parser.add_argument("--server-name", default=None,
                        help="require the manager/NAME certificate (default:"
                             " the address's host must be in the certificate)")
    parser.add_argument("--insecure", action="store_true",
                        help="plaintext, loopback only")
    parser.add_argument("--job-size", type=int, default=16 << 20,
                        help="bytes of memory per job (default 16 MiB)")
    args = parser.parse_args(argv)
    try:
        client = pciefabric.FabricClient(
            args.manager, tls_cert=args.tls_cert, tls_key=args.tls_key,
            tls_ca=args.tls_ca, insecure=args.insecure,
            server_name=args.server_name)
    except ValueError as e:
        print("scheduler: %s" % e, file=sys.stderr)
        return 2
    try:
        with client:
            schedule(client, args.fabric, args.job_size, sys.stdout)
    except pciefabric.FabricError as e:
        print("scheduler: %s (code %s)" % (e.message, e.code.name),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
