"""pciefabric: the Python client of the PCIe fabric manager.

    python3 setup.py build      # or: pip install client/python
    python3 setup.py install

build_py first generates the protobuf and gRPC modules from the checkout's
proto/ (or PCIEFABRIC_PROTO_DIR) into the build tree with the system protoc
and grpc_python_plugin (Debian: protobuf-compiler, protobuf-compiler-grpc):
the packages fabric.v1 and, when the googleapis protos are installed,
google.api (a namespace package next to google.protobuf). Nothing generated
is committed.
"""

import os
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_stubs  # noqa: E402  (the generator next to this file)


class BuildWithStubs(build_py):
    """build_py that writes the generated modules into build_lib."""

    def run(self):
        proto_dir = os.environ.get("PCIEFABRIC_PROTO_DIR") or os.path.join(
            HERE, "..", "..", "proto")
        if not self.dry_run:
            gen_stubs.generate(
                os.path.abspath(proto_dir), os.path.abspath(self.build_lib),
                protoc=os.environ.get("PROTOC", "protoc"),
                grpc_plugin=os.environ.get(
                    "GRPC_PYTHON_PLUGIN", "/usr/bin/grpc_python_plugin"))
        super().run()


setup(
    name="pciefabric",
    version="0.1.0",
    description="Python client of the PCIe fabric manager for schedulers",
    packages=["pciefabric"],
    python_requires=">=3.9",
    install_requires=["grpcio>=1.51", "protobuf>=3.21"],
    cmdclass={"build_py": BuildWithStubs},
)
