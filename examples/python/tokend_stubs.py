"""Generate tokend's Python gRPC stubs from proto/ at run time, and import them.

Nothing generated is committed: `load()` runs grpcio-tools' bundled protoc into a
temporary directory, puts it on sys.path and returns the modules. In a real project
you would run the same protoc command once at build time instead.
"""

import atexit
import importlib
import os
import shutil
import sys
import tempfile
from types import SimpleNamespace

from grpc_tools import protoc

# proto/ at the root of the repository, unless TOKEND_PROTO_DIR says otherwise.
PROTO_DIR = os.environ.get(
    "TOKEND_PROTO_DIR",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto"),
)
PROTOS = ["token", "introspection", "client"]


def load():
    """Return a namespace with `<name>_pb2` and `<name>_pb2_grpc` for each of PROTOS."""
    out = tempfile.mkdtemp(prefix="tokend-stubs-")
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    # google/protobuf/*.proto (Timestamp, Duration, FieldMask) ship inside grpc_tools.
    well_known = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    files = [os.path.join(PROTO_DIR, "tokend", "v1", f"{name}.proto") for name in PROTOS]
    rc = protoc.main(
        ["protoc", f"-I{PROTO_DIR}", f"-I{well_known}",
         f"--python_out={out}", f"--grpc_python_out={out}", *files]
    )
    if rc != 0:
        sys.exit(f"FAIL: protoc could not compile {PROTO_DIR} (exit {rc})")
    sys.path.insert(0, out)
    mods = {}
    for name in PROTOS:
        mods[f"{name}_pb2"] = importlib.import_module(f"tokend.v1.{name}_pb2")
        mods[f"{name}_pb2_grpc"] = importlib.import_module(f"tokend.v1.{name}_pb2_grpc")
    return SimpleNamespace(**mods)
