"""pciefabric: a Python client of the PCIe fabric manager for schedulers.

FabricClient (pciefabric.client) has the scheduler's verbs; errors are
FabricError and its subclasses (pciefabric.errors). The protobuf messages are
the generated `fabric.v1` modules (resources_pb2, fabric_service_pb2), built
from proto/ by gen_stubs.py when the package is built or installed.
"""

from pciefabric.client import (Allocation, Attachment, FabricClient,
                               WatchEvent, parse_managers)
from pciefabric.errors import (AlreadyExistsError, DeadlineExceededError,
                               FabricError, FailedPreconditionError,
                               InvalidArgumentError, NotFoundError,
                               PermissionDeniedError, ResourceExhaustedError,
                               UnauthenticatedError, UnavailableError,
                               WaitTimeoutError, error_for)

__all__ = [
    "AlreadyExistsError", "Allocation", "Attachment", "DeadlineExceededError",
    "FabricClient", "FabricError", "FailedPreconditionError",
    "InvalidArgumentError", "NotFoundError", "PermissionDeniedError",
    "ResourceExhaustedError", "UnauthenticatedError", "UnavailableError",
    "WaitTimeoutError", "WatchEvent", "error_for", "parse_managers",
]
