"""FabricClient: the scheduler's verbs over fabric.v1.FabricService.

    client = FabricClient("127.0.0.1:7070", tls_cert="user-sched.crt",
                          tls_key="user-sched.key", tls_ca="ca.crt",
                          server_name="m1")
    alloc = client.allocate_memory("n1", "n3", 64 << 20)   # waits for READY
    client.release(alloc.name)

Behaviour, as the C++ FabricClient (client/fabric_client.h) does it:
  - Every call has a deadline (`timeout`, seconds). A call that fails with
    UNAVAILABLE is made again with the same request, after `retry_backoff`
    doubling, up to `max_attempts` attempts. Each mutation carries a request
    id (uuid4) generated once per logical call and reused by every retry, so
    the manager applies it at most once.
  - `managers` may name several managers of one fabric (HA): the client
    follows the leader (common/leader_channel.h). A standby answers
    UNAVAILABLE with the leader's address in the `fabric-leader` trailing
    metadata: the call is made again there at once. A standby naming no
    leader, or a manager out of reach or not answering within
    `attempt_timeout`, moves the client to the next address; such calls are
    retried, with backoff up to `max_retry_backoff`, until the call's
    deadline, so they ride through a failover.
  - Errors raise FabricError (pciefabric.errors), subclassed by code.

TLS: mutual TLS with `tls_cert`, `tls_key` and `tls_ca` (PEM files), each
defaulting to FABRIC_TLS_CERT, FABRIC_TLS_KEY and FABRIC_TLS_CA as in
fabricctl; plaintext only with insecure=True, and only to loopback. The
manager is checked in one of two ways:
  - by default, the host of the address must be named in its certificate
    (deploy/pki.sh writes localhost, 127.0.0.1 and ::1, and each --host);
  - with `server_name=NAME`, the certificate must carry the URI SAN
    spiffe://fabric.local/manager/NAME, whatever the address: the identity
    fabricctl checks (a dict {address: NAME} when several managers have
    different names).

Not thread-safe for concurrent calls that move between managers; use one
client per thread or guard it.
"""

import ipaddress
import os
import time
import uuid

import grpc

from fabric.v1 import fabric_service_pb2 as service_pb2
from fabric.v1 import fabric_service_pb2_grpc as service_grpc
from fabric.v1 import resources_pb2

from pciefabric import errors

Allocation = resources_pb2.Allocation
Attachment = resources_pb2.Attachment
WatchEvent = service_pb2.WatchEvent

# common/leader_channel.h
LEADER_METADATA_KEY = "fabric-leader"
_STANDBY_PREFIX = "this manager is a standby; "
# Messages of an UNAVAILABLE that gRPC made itself: the manager was not
# reached (it did not answer).
_UNREACHED = ("failed to connect to all addresses", "Socket closed",
              "Connection reset", "Broken pipe", "DNS resolution failed",
              "Connection refused")
_SPIFFE_MANAGER = "spiffe://fabric.local/manager/"
# The largest page the manager serves (server/service/paginate.h).
MAX_PAGE_SIZE = 1000


def parse_managers(managers):
    """["HOST:PORT", ...] from "HOST:PORT[,HOST:PORT...]" or a list;
    ValueError naming the bad entry."""
    if isinstance(managers, str):
        managers = managers.split(",")
    out = []
    for entry in managers:
        entry = entry.strip()
        host, sep, port = entry.rpartition(":")
        if not sep or not host or not port.isdigit() or not (
                0 < int(port) < 65536):
            raise ValueError(
                "managers: %r is not HOST:PORT with a port in 1-65535" % entry)
        if entry not in out:
            out.append(entry)
    if not out:
        raise ValueError("managers: empty; expected HOST:PORT[,HOST:PORT...]")
    return out


def _is_loopback(address):
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read(path, what):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError("%s: cannot read %s: %s" % (what, path, e.strerror))


class FabricClient:
    """A client of the fabric managers at `managers` (see the module doc)."""

    def __init__(self, managers, *, tls_cert=None, tls_key=None, tls_ca=None,
                 insecure=False, server_name=None, timeout=10.0,
                 attempt_timeout=2.0, max_attempts=3, retry_backoff=0.2,
                 max_retry_backoff=0.5, page_size=MAX_PAGE_SIZE):
        self._targets = parse_managers(managers)
        self._following = len(self._targets) > 1
        self._current = 0
        self.timeout = timeout
        self.attempt_timeout = attempt_timeout
        self.max_attempts = max(1, max_attempts)
        self.retry_backoff = retry_backoff
        self.max_retry_backoff = max_retry_backoff
        self.page_size = page_size
        self._server_name = server_name
        self._channels = {}
        if insecure:
            if tls_cert or tls_key or tls_ca:
                raise ValueError("insecure and tls_cert/tls_key/tls_ca exclude "
                                 "each other; choose one")
            for t in self._targets:
                if not _is_loopback(t):
                    raise ValueError(
                        "insecure on %s: plaintext is allowed only on loopback "
                        "addresses; give tls_cert/tls_key/tls_ca" % t)
            self._creds = None
        else:
            tls_cert = tls_cert or os.environ.get("FABRIC_TLS_CERT")
            tls_key = tls_key or os.environ.get("FABRIC_TLS_KEY")
            tls_ca = tls_ca or os.environ.get("FABRIC_TLS_CA")
            missing = [n for n, v in (("tls_cert", tls_cert),
                                      ("tls_key", tls_key), ("tls_ca", tls_ca))
                       if not v]
            if missing:
                raise ValueError(
                    "TLS needs tls_cert, tls_key and tls_ca (or FABRIC_TLS_CERT,"
                    " FABRIC_TLS_KEY, FABRIC_TLS_CA); missing %s; pass "
                    "insecure=True for plaintext on loopback" % ", ".join(missing))
            self._creds = grpc.ssl_channel_credentials(
                root_certificates=_read(tls_ca, "tls_ca"),
                private_key=_read(tls_key, "tls_key"),
                certificate_chain=_read(tls_cert, "tls_cert"))

    # -- lifecycle ---------------------------------------------------------

    def close(self):
        for channel, _ in self._channels.values():
            channel.close()
        self._channels.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def target(self):
        """The manager calls go to now (the leader, when following one)."""
        return self._targets[self._current]

    # -- channels and leader following -------------------------------------

    def _name_for(self, target):
        if isinstance(self._server_name, dict):
            return self._server_name.get(target)
        return self._server_name

    def _stub(self, target):
        entry = self._channels.get(target)
        if entry is None:
            options = [("grpc.initial_reconnect_backoff_ms", 100),
                       ("grpc.min_reconnect_backoff_ms", 1000),
                       ("grpc.max_reconnect_backoff_ms", 250)]
            if self._creds is None:
                channel = grpc.insecure_channel(target, options)
            else:
                name = self._name_for(target)
                if name:
                    # gRPC matches this against the certificate's SANs: the
                    # brackets keep the spiffe URI whole as the "host".
                    options.append(("grpc.ssl_target_name_override",
                                    "[%s%s]" % (_SPIFFE_MANAGER, name)))
                channel = grpc.secure_channel(target, self._creds, options)
            entry = (channel, service_grpc.FabricServiceStub(channel))
            self._channels[target] = entry
        return entry[1]

    def _follow(self, leader):
        if leader not in self._targets:
            self._targets.append(leader)
        self._current = self._targets.index(leader)

    def _advance(self):
        self._current = (self._current + 1) % len(self._targets)

    @staticmethod
    def _leader_of(err):
        for key, value in err.trailing_metadata() or ():
            if key == LEADER_METADATA_KEY and value:
                return value
        return None

    def _observe(self, target, err, deadline):
        """After `err` from `target`: moves to where the leader is. Returns
        (moved, no_leader): whether the call may be made again at once, and
        whether no leader answered (a standby, a manager out of reach or
        silent, or one switching to leader)."""
        code = err.code()
        details = err.details() or ""
        if code == grpc.StatusCode.CANCELLED:
            return False, True  # a standby's server handing the port over
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            if self._following and time.monotonic() < deadline:
                self._advance()  # paused: not followed
                return True, True
            return False, False
        if code != grpc.StatusCode.UNAVAILABLE:
            return False, False
        leader = self._leader_of(err)
        if leader == target:
            return False, True  # it won the election; its server is starting
        if leader:
            self._follow(leader)
            return True, True
        standby = details.startswith(_STANDBY_PREFIX)
        unreached = any(s in details for s in _UNREACHED)
        if standby or unreached:
            if len(self._targets) > 1:
                self._advance()
                return True, True
            return False, True
        return False, False  # the manager's own UNAVAILABLE

    def _call(self, method, request, retry=True):
        """Calls FabricService.`method` with deadline, retries and leader
        following; returns the response or raises FabricError."""
        start = time.monotonic()
        deadline = start + self.timeout
        backoff = self.retry_backoff
        tried = []
        attempt = 0
        quick = 0
        while True:
            attempt += 1
            target = self.target
            if target not in tried:
                tried.append(target)
            left = deadline - time.monotonic()
            per_attempt = (min(left, self.attempt_timeout)
                           if self._following and retry else left)
            try:
                return getattr(self._stub(target), method)(
                    request, timeout=max(per_attempt, 0.001))
            except grpc.RpcError as err:
                moved, no_leader = self._observe(target, err, deadline)
                code = err.code()
                retriable = code == grpc.StatusCode.UNAVAILABLE or (
                    no_leader and code in (grpc.StatusCode.CANCELLED,
                                           grpc.StatusCode.DEADLINE_EXCEEDED))
                left = deadline - time.monotonic()
                if not retry or not retriable:
                    raise _error(err)
                if self._following and no_leader:
                    if left <= backoff:
                        raise errors.error_for(
                            grpc.StatusCode.UNAVAILABLE,
                            "%s (managers tried until the deadline: %s)" %
                            (err.details(), ", ".join(tried)))
                    # Once per known address at once (as LeaderChannel::Call),
                    # then with backoff.
                    if moved and quick < len(self._targets) + 1:
                        quick += 1
                    else:
                        quick = 0
                        time.sleep(backoff)
                        backoff = min(backoff * 2, self.max_retry_backoff)
                    continue
                if moved and attempt <= len(self._targets) + 1 and left > 0:
                    continue  # a named leader: made again there at once
                if attempt >= self.max_attempts or left <= backoff:
                    raise _error(err)
                time.sleep(backoff)
                backoff *= 2

    def _pages(self, method, request, field):
        """Yields every item of a List* call, page by page."""
        request.page_size = self.page_size if request.page_size <= 0 else \
            request.page_size
        request.page_token = ""
        while True:
            resp = self._call(method, request)
            yield from getattr(resp, field)
            if not resp.next_page_token:
                return
            if resp.next_page_token == request.page_token:
                raise errors.error_for(
                    grpc.StatusCode.INTERNAL,
                    "server returned the same next_page_token twice")
            request.page_token = resp.next_page_token

    # -- reads -------------------------------------------------------------

    def get_fabric(self, name):
        return self._call("GetFabric",
                          service_pb2.GetFabricRequest(name=_named("fabrics", name)))

    def list_fabrics(self, page_size=0):
        return self._pages("ListFabrics",
                           service_pb2.ListFabricsRequest(page_size=page_size),
                           "fabrics")

    def get_node(self, name):
        return self._call("GetNode",
                          service_pb2.GetNodeRequest(name=_named("nodes", name)))

    def list_nodes(self, fabric="", page_size=0):
        return self._pages("ListNodes", service_pb2.ListNodesRequest(
            fabric=_named("fabrics", fabric), page_size=page_size), "nodes")

    def get_allocation(self, name):
        return self._call("GetAllocation", service_pb2.GetAllocationRequest(
            name=_named("allocations", name)))

    def list_allocations(self, fabric="", node="", owner="", page_size=0):
        """A generator of the allocations matching the filters (all pages)."""
        return self._pages("ListAllocations", service_pb2.ListAllocationsRequest(
            fabric=_named("fabrics", fabric), node=node, owner=owner,
            page_size=page_size), "allocations")

    def list_virtual_functions(self, fabric="", node="", page_size=0):
        return self._pages(
            "ListVirtualFunctions", service_pb2.ListVirtualFunctionsRequest(
                fabric=_named("fabrics", fabric), node=node,
                page_size=page_size), "virtual_functions")

    def get_attachment(self, name):
        return self._call("GetAttachment", service_pb2.GetAttachmentRequest(
            name=_named("attachments", name)))

    def list_attachments(self, fabric="", node="", owner="", page_size=0):
        return self._pages("ListAttachments", service_pb2.ListAttachmentsRequest(
            fabric=_named("fabrics", fabric), node=node, owner=owner,
            page_size=page_size), "attachments")

    def ping(self):
        self._call("Ping", service_pb2.PingRequest())

    # -- mutations ---------------------------------------------------------

    def create_fabric(self, spec, request_id=None):
        """Declares a fabric from a resources_pb2.FabricSpec."""
        return self._call("CreateFabric", service_pb2.CreateFabricRequest(
            spec=spec, request_id=request_id or _request_id()))

    def allocate_memory(self, borrower, target, size, *, owner="", labels=None,
                        ttl_seconds=0, wait=True, wait_timeout=30.0,
                        request_id=None):
        """Lends `size` bytes of `target`'s memory to `borrower` and, with
        `wait`, waits until it is READY (WaitTimeoutError after wait_timeout
        seconds, FailedPreconditionError when it was RELEASED first).
        Retries reuse one request id (`request_id`, default a new uuid4)."""
        alloc = Allocation(borrower=borrower, target=target, size=size,
                           owner=owner, labels=labels or {})
        if ttl_seconds:
            alloc.ttl.FromSeconds(int(ttl_seconds))
        return self._create(
            "CreateAllocation", service_pb2.CreateAllocationRequest(
                allocation=alloc, request_id=request_id or _request_id()),
            "allocations", Allocation.READY, Allocation.RELEASED,
            wait and wait_timeout)

    def _create(self, method, request, collection, ready, gone, wait_timeout):
        """Calls `method`; then, unless wait_timeout is falsy, waits for the
        created resource as _await does."""
        created = self._call(method, request)
        if not wait_timeout:
            return created
        return self._await(collection, created, ready, gone, wait_timeout)

    def release(self, name, request_id=None):
        """Releases allocation `name`; returns it with state RELEASED."""
        return self._call("DeleteAllocation", service_pb2.DeleteAllocationRequest(
            name=_named("allocations", name),
            request_id=request_id or _request_id()))

    def attach_vf(self, vf, borrower, *, vm="", interrupts=None, dma_size=0,
                  wait=True, wait_timeout=30.0, request_id=None):
        """Lends VF `vf` ("nodes/N/vfs/0000-3b-02.0" or "N/0000:3b:02.0") to
        `borrower` (its VM `vm`, or the host); with `wait`, until READY."""
        att = Attachment(vf=vf, borrower=borrower, vm=vm, dma_size=dma_size,
                         interrupts=interrupts or Attachment.AUTO)
        return self._create(
            "CreateAttachment", service_pb2.CreateAttachmentRequest(
                attachment=att, request_id=request_id or _request_id()),
            "attachments", Attachment.READY, Attachment.DETACHED,
            wait and wait_timeout)

    def detach(self, name, request_id=None):
        """Undoes attachment `name`; returns it with state DETACHED."""
        return self._call("DeleteAttachment", service_pb2.DeleteAttachmentRequest(
            name=_named("attachments", name),
            request_id=request_id or _request_id()))

    # -- watch -------------------------------------------------------------

    def watch(self, collections=(), fabric="", initial_state=False,
              timeout=None):
        """A generator of WatchEvents of `collections` ("fabrics", "nodes",
        "links", "allocations", "attachments"; empty: all), optionally of one
        fabric. With initial_state, every current resource comes first as
        ADDED, then a SYNCED event. Ends after `timeout` seconds (None: never)
        without an error; closing the generator cancels the stream. Opening
        it follows the leader and retries like other calls."""
        request = service_pb2.WatchRequest(
            collections=list(collections), fabric=_named("fabrics", fabric),
            initial_state=initial_state)
        end = None if timeout is None else time.monotonic() + timeout
        return self._watch(request, end)

    def _open_watch(self, request, end):
        """Opens a Watch stream on the leader; returns (call, first event or
        None when it ended at `end`)."""
        deadline = time.monotonic() + self.timeout
        backoff = self.retry_backoff
        while True:
            target = self.target
            left = None if end is None else max(end - time.monotonic(), 0.001)
            call = self._stub(target).Watch(request, timeout=left)
            try:
                return call, next(call)
            except StopIteration:
                return call, None
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED and (
                        end is not None and time.monotonic() >= end):
                    return call, None
                moved, no_leader = self._observe(target, err, deadline)
                if not (moved or no_leader) or time.monotonic() + backoff >= deadline:
                    raise _error(err)
                if not moved:
                    time.sleep(backoff)
                    backoff = min(backoff * 2, self.max_retry_backoff)

    def _watch(self, request, end):
        call, first = self._open_watch(request, end)
        try:
            if first is None:
                return
            yield first
            for event in call:
                yield event
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED and end is not None:
                return
            if err.code() == grpc.StatusCode.CANCELLED and call.cancelled():
                return
            raise _error(err)
        finally:
            call.cancel()

    def _await(self, collection, resource, ready, gone, wait_timeout):
        """Follows `resource` (an Allocation or Attachment) on the Watch
        stream until its state is `ready` (returned), `gone` (raises
        FailedPreconditionError) or wait_timeout passes (WaitTimeoutError).
        The stream starts with the current state (initial_state), so no change
        between the create and the stream is missed."""
        kind = "allocation" if collection == "allocations" else "attachment"
        current = resource
        if current.state == ready:
            return current
        events = self.watch([collection], fabric=resource.fabric,
                            initial_state=True, timeout=wait_timeout)
        try:
            for event in events:
                if event.WhichOneof("resource") != kind:
                    continue
                seen = getattr(event, kind)
                if seen.name != resource.name:
                    continue
                current = seen
                if current.state == ready:
                    return current
                if current.state == gone or event.type == WatchEvent.DELETED:
                    raise errors.error_for(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        "%s %s became %s before %s (%s)" % (
                            kind, resource.name,
                            type(resource).State.Name(current.state),
                            type(resource).State.Name(ready),
                            current.state_reason), current)
        finally:
            events.close()
        raise errors.WaitTimeoutError(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "%s %s is still %s after %gs (%s)" % (
                kind, resource.name, type(resource).State.Name(current.state),
                wait_timeout, current.state_reason), current)


def _error(err):
    """A FabricError from grpc.RpcError `err`, with a hint when the manager's
    certificate did not carry the expected name."""
    hint = ""
    if "not in peer certificate" in (err.details() or ""):
        hint = (" (the manager's certificate does not name this address:"
                " give server_name=NAME of its manager/NAME certificate, or"
                " issue it with deploy/pki.sh --host)")
    return errors.from_rpc_error(err, hint)


def _request_id():
    return str(uuid.uuid4())


def _named(collection, name):
    """"COLLECTION/NAME" for a bare NAME; a full name or "" as given."""
    if not name or "/" in name:
        return name
    return "%s/%s" % (collection, name)
