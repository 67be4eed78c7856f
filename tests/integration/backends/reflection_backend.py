#!/usr/bin/python3
"""A gRPC backend that serves only server reflection, written here from a
descriptor set (Debian ships no grpcio-reflection): the schema is the
.proto files given, compiled by protoc at start (--include_imports).

grpc.reflection.v1 and v1alpha ServerReflectionInfo (the same messages):
  list_services            every service of the given files
  file_containing_symbol   the file declaring the symbol - only that file,
                           so clients must ask for imports by name
  file_by_filename         that file
  anything else / unknown  error_response NOT_FOUND
With --no-reflection nothing is served (every call: UNIMPLEMENTED); with
--v1alpha-only, v1 is not served; with --hang no request is ever answered. Every request is logged to stderr.
With --serve the unary methods of the given files' services are served too:
each answers its request copied field by field (same names) into its
response message, with a string field `method` (if any) set to the method's
name.

Usage: reflection_backend.py --host H --port P --proto-dir D --proto F [--proto F ...]
                             [--no-reflection] [--v1alpha-only] [--hang] [--serve]
Prints "READY port=<port>" on stdout once serving; SIGTERM stops it.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent import futures

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
THIRD = os.path.join(REPO, "proto", "third_party")


def compile_set(tmp, proto_dir, files, out):
    path = os.path.join(tmp, out)
    subprocess.check_call(["protoc", "-I" + proto_dir, "-I" + THIRD, "-I/usr/include", "--include_imports",
                           "--descriptor_set_out=" + path] + files, cwd=proto_dir, timeout=60)
    with open(path, "rb") as f:
        return descriptor_pb2.FileDescriptorSet.FromString(f.read())


def serve_handlers(schema, services):
    """Generic handlers for every unary method of services (full names)."""
    pool = descriptor_pool.DescriptorPool()
    for fp in schema.file:
        pool.Add(fp)
    get_class = getattr(message_factory, "GetMessageClass", None)
    if get_class is None:
        get_class = message_factory.MessageFactory(pool).GetPrototype
    out = []
    for name in services:
        sd = pool.FindServiceByName(name)
        methods = {}
        for md in sd.methods:
            if md.client_streaming or md.server_streaming:
                continue
            Req, Resp = get_class(md.input_type), get_class(md.output_type)

            def call(req, context, Resp=Resp, md=md):
                resp = Resp()
                for f, v in req.ListFields():
                    rf = Resp.DESCRIPTOR.fields_by_name.get(f.name)
                    if rf is not None and rf.type == f.type and rf.label == f.label:
                        if f.label == f.LABEL_REPEATED:
                            getattr(resp, f.name).extend(v)
                        elif f.type == f.TYPE_MESSAGE:
                            getattr(resp, f.name).CopyFrom(v)
                        else:
                            setattr(resp, f.name, v)
                mf = Resp.DESCRIPTOR.fields_by_name.get("method")
                if mf is not None and mf.type == mf.TYPE_STRING:
                    resp.method = md.name
                return resp
            methods[md.name] = grpc.unary_unary_rpc_method_handler(
                call, request_deserializer=Req.FromString,
                response_serializer=lambda m: m.SerializeToString())
        out.append(grpc.method_handlers_generic_handler(name, methods))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--server-id")
    ap.add_argument("--proto-dir", required=True)
    ap.add_argument("--proto", action="append", required=True)
    ap.add_argument("--no-reflection", action="store_true")
    ap.add_argument("--v1alpha-only", action="store_true")
    ap.add_argument("--hang", action="store_true", help="never answer a reflection request")
    ap.add_argument("--serve", action="store_true", help="serve the unary methods too")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="reflection-backend-") as tmp:
        schema = compile_set(tmp, args.proto_dir, args.proto, "schema.desc")
        refl = compile_set(tmp, THIRD, ["grpc/reflection/v1/reflection.proto"], "refl.desc")
    files = {fp.name: fp for fp in schema.file}
    services = []
    symbols = {}
    for fp in schema.file:
        pkg = fp.package + "." if fp.package else ""
        for s in fp.service:
            symbols[pkg + s.name] = fp.name
            for m in s.method:
                symbols[pkg + s.name + "." + m.name] = fp.name
            if fp.name in args.proto:
                services.append(pkg + s.name)
        for m in fp.message_type:
            symbols[pkg + m.name] = fp.name

    pool = descriptor_pool.DescriptorPool()
    for fp in refl.file:
        pool.Add(fp)
    factory = message_factory.MessageFactory(pool)
    Req = factory.GetPrototype(pool.FindMessageTypeByName("grpc.reflection.v1.ServerReflectionRequest"))
    Resp = factory.GetPrototype(pool.FindMessageTypeByName("grpc.reflection.v1.ServerReflectionResponse"))

    def answer(req):
        r = Resp()
        r.original_request.CopyFrom(req)
        kind = req.WhichOneof("message_request")
        sys.stderr.write("reflection: %s %s\n" % (kind, getattr(req, kind) if kind else ""))
        sys.stderr.flush()
        if kind == "list_services":
            for s in services:
                r.list_services_response.service.add(name=s)
            r.list_services_response.service.add(name="grpc.reflection.v1.ServerReflection")
            return r
        name = None
        if kind == "file_containing_symbol":
            name = symbols.get(req.file_containing_symbol)
        elif kind == "file_by_filename":
            name = req.file_by_filename if req.file_by_filename in files else None
        if name is None:
            r.error_response.error_code = grpc.StatusCode.NOT_FOUND.value[0]
            r.error_response.error_message = "not found: %s" % (getattr(req, kind) if kind else "")
            return r
        r.file_descriptor_response.file_descriptor_proto.append(files[name].SerializeToString())
        return r

    done = threading.Event()

    def info(request_iterator, context):
        for req in request_iterator:
            if args.hang:
                sys.stderr.write("reflection: hanging\n")
                sys.stderr.flush()
                done.wait(120)  # bounded; ends at SIGTERM
            yield answer(req)

    handler = grpc.stream_stream_rpc_method_handler(info, request_deserializer=Req.FromString,
                                                    response_serializer=lambda m: m.SerializeToString())
    handlers = []
    if not args.no_reflection:
        versions = ["v1alpha"] if args.v1alpha_only else ["v1", "v1alpha"]
        for v in versions:
            handlers.append(grpc.method_handlers_generic_handler(
                "grpc.reflection.%s.ServerReflection" % v, {"ServerReflectionInfo": handler}))
    if args.serve:
        handlers += serve_handlers(schema, services)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), handlers=handlers)
    port = server.add_insecure_port("%s:%d" % (args.host, args.port))
    server.start()
    sys.stdout.write("READY port=%d\n" % port)
    sys.stdout.flush()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    done.wait()
    server.stop(1).wait(5)


if __name__ == "__main__":
    main()
