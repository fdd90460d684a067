"""Errors of the fabric client: one exception type carrying the gRPC code.

Every failed call raises FabricError (or its subclass for the code), with
`code` (a grpc.StatusCode) and `message` (the server's message, which names
the field and the limit that was broken).
"""

import grpc


class FabricError(Exception):
    """A call failed. `code` is its grpc.StatusCode, `message` its text."""

    def __init__(self, code, message, resource=None):
        super().__init__("%s: %s" % (code.name, message))
        self.code = code
        self.message = message
        # For a wait that ended early: the resource as last seen.
        self.resource = resource


class InvalidArgumentError(FabricError):
    pass


class NotFoundError(FabricError):
    pass


class AlreadyExistsError(FabricError):
    pass


class PermissionDeniedError(FabricError):
    pass


class UnauthenticatedError(FabricError):
    pass


class FailedPreconditionError(FabricError):
    pass


class ResourceExhaustedError(FabricError):
    pass


class UnavailableError(FabricError):
    pass


class DeadlineExceededError(FabricError):
    pass


class WaitTimeoutError(DeadlineExceededError):
    """A wait (allocate/attach with wait) passed its timeout first; the
    resource is in `resource`, as last seen."""


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
}


def error_for(code, message, resource=None):
    """The FabricError subclass for `code` (FabricError itself for codes
    without one)."""
    return _BY_CODE.get(code, FabricError)(code, message, resource)


def from_rpc_error(err, suffix=""):
    """A FabricError from a grpc.RpcError (same code and message)."""
    return error_for(err.code(), (err.details() or "") + suffix)
