"""Compile .proto files to Python at run time and build generic gRPC stubs.

grpc_tools (the Python protoc plugin for gRPC) is not packaged for Debian, so
this module does the two halves by hand:

* load_protos() runs `protoc --python_out` (message classes only) into a cache
  directory keyed by a hash of the inputs, puts that directory on sys.path and
  imports the generated modules;
* Stub and generic_handler() turn a ServiceDescriptor into client
  multicallables (channel.unary_unary & co. with explicit serializers) and a
  server-side grpc.GenericRpcHandler, from the descriptor's streaming flags.

Concurrent runs (ctest -j) are safe: each generation happens in a private
temporary directory that is renamed into place atomically.
"""

import hashlib
import importlib
import os
import shutil
import subprocess
import sys
import tempfile

import grpc
from google.protobuf import symbol_database

HERE = os.path.dirname(os.path.abspath(__file__))
INTEROP_PROTO_ROOT = os.path.join(HERE, "protos")
INTEROP_PROTOS = [
    "src/proto/grpc/testing/empty.proto",
    "src/proto/grpc/testing/messages.proto",
    "src/proto/grpc/testing/test.proto",
]

_PROTOC_TIMEOUT_S = 60


def _cache_base():
    base = os.environ.get("PORTICO_PROTO_CACHE")
    if not base:
        base = os.path.join(tempfile.gettempdir(), "portico-protogen-%d" % os.getuid())
    os.makedirs(base, exist_ok=True)
    return base


def _protoc():
    return os.environ.get("PROTOC", shutil.which("protoc") or "protoc")


def _input_hash(proto_root, files, protoc):
    h = hashlib.sha256()
    try:
        ver = subprocess.run([protoc, "--version"], capture_output=True, timeout=_PROTOC_TIMEOUT_S).stdout
    except OSError as exc:  # pragma: no cover - environment problem
        raise RuntimeError("protoc not found (%s): install protobuf-compiler" % exc)
    h.update(ver)
    for f in sorted(files):
        h.update(f.encode() + b"\0")
        with open(os.path.join(proto_root, f), "rb") as fh:
            h.update(fh.read())
        h.update(b"\0")
    return h.hexdigest()[:24]


def _add_init_files(top):
    """Make every generated directory a regular package so that no unrelated
    namespace package of the same name (e.g. a repository's src/) shadows it."""
    for dirpath, _dirnames, _files in os.walk(top):
        if dirpath == top:
            continue
        init = os.path.join(dirpath, "__init__.py")
        if not os.path.exists(init):
            open(init, "w").close()


def generate(proto_root, files):
    """Generate Python for `files` (relative to proto_root); return the output dir."""
    protoc = _protoc()
    key = _input_hash(proto_root, files, protoc)
    out = os.path.join(_cache_base(), key)
    if os.path.isdir(out):
        return out
    tmp = tempfile.mkdtemp(prefix=".gen-", dir=_cache_base())
    try:
        proc = subprocess.run(
            [protoc, "-I" + proto_root, "--python_out=" + tmp] + list(files),
            capture_output=True, text=True, timeout=_PROTOC_TIMEOUT_S)
        if proc.returncode != 0:
            raise RuntimeError("protoc failed:\n" + proc.stderr)
        _add_init_files(tmp)
        try:
            os.rename(tmp, out)
        except OSError:
            # Another process won the race; its output is identical.
            if not os.path.isdir(out):
                raise
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def load_protos(proto_root, files):
    """Generate, import and return the _pb2 modules of `files`, in order."""
    out = generate(proto_root, files)
    if out not in sys.path:
        sys.path.insert(0, out)
    mods = []
    for f in files:
        name = f[:-len(".proto")].replace("/", ".") + "_pb2"
        mods.append(importlib.import_module(name))
    return mods


def load_interop():
    """Return (empty_pb2, messages_pb2, test_pb2) for package grpc.testing."""
    return tuple(load_protos(INTEROP_PROTO_ROOT, INTEROP_PROTOS))


def message_class(descriptor):
    return symbol_database.Default().GetSymbol(descriptor.full_name)


def method_path(method):
    return "/%s/%s" % (method.containing_service.full_name, method.name)


class Stub(object):
    """Client stub for a ServiceDescriptor: one attribute per method, each the
    multicallable of the right arity (unary_unary, unary_stream, ...)."""

    def __init__(self, channel, service_descriptor):
        for m in service_descriptor.methods:
            req = message_class(m.input_type)
            resp = message_class(m.output_type)
            kind = {
                (False, False): channel.unary_unary,
                (False, True): channel.unary_stream,
                (True, False): channel.stream_unary,
                (True, True): channel.stream_stream,
            }[(m.client_streaming, m.server_streaming)]
            setattr(self, m.name, kind(method_path(m),
                                       request_serializer=req.SerializeToString,
                                       response_deserializer=resp.FromString))


def raw_method(channel, path, streaming=(False, False)):
    """A multicallable for an arbitrary method path that sends and receives raw
    bytes (used to call methods that no descriptor declares)."""
    kind = {
        (False, False): channel.unary_unary,
        (False, True): channel.unary_stream,
        (True, False): channel.stream_unary,
        (True, True): channel.stream_stream,
    }[streaming]
    return kind(path, request_serializer=lambda b: b, response_deserializer=lambda b: b)


def generic_handler(service_descriptor, servicer):
    """A grpc.GenericRpcHandler serving the methods of `servicer` (an object
    with one attribute per method name, the usual servicer signatures).
    Methods the servicer lacks are not registered, so they are UNIMPLEMENTED."""
    handlers = {}
    for m in service_descriptor.methods:
        fn = getattr(servicer, m.name, None)
        if fn is None:
            continue
        req = message_class(m.input_type)
        resp = message_class(m.output_type)
        make = {
            (False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler,
        }[(m.client_streaming, m.server_streaming)]
        handlers[m.name] = make(fn, request_deserializer=req.FromString,
                                response_serializer=resp.SerializeToString)
    return grpc.method_handlers_generic_handler(service_descriptor.full_name, handlers)
