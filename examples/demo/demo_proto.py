"""Compile proto/demo/v1/greeter.proto with protoc at run time (no generated
files in the tree) and return the module with HelloRequest / HelloReply."""
import importlib
import os
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def load():
    out = tempfile.mkdtemp(prefix="portico-demo-")
    subprocess.run(["protoc", "-I", os.path.join(ROOT, "proto"), "--python_out", out,
                    "demo/v1/greeter.proto"], check=True)
    sys.path.insert(0, out)
    return importlib.import_module("demo.v1.greeter_pb2")
