"""Demo gRPC backend: demo.v1.Greeter on HOST PORT (python3-grpcio)."""
import sys
from concurrent import futures

import grpc

import demo_proto

pb = demo_proto.load()


def say_hello(req, ctx):
    return pb.HelloReply(message="hello, %s" % (req.name or "world"))


def stream_hellos(req, ctx):
    for i in range(min(req.count or 3, 1000)):
        yield pb.HelloReply(message="hello #%d, %s" % (i + 1, req.name or "world"))


def main():
    host, port = sys.argv[1], sys.argv[2]
    handler = grpc.method_handlers_generic_handler("demo.v1.Greeter", {
        "SayHello": grpc.unary_unary_rpc_method_handler(
            say_hello, pb.HelloRequest.FromString, pb.HelloReply.SerializeToString),
        "StreamHellos": grpc.unary_stream_rpc_method_handler(
            stream_hellos, pb.HelloRequest.FromString, pb.HelloReply.SerializeToString),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port("%s:%s" % (host, port))
    server.start()
    server.wait_for_termination()


if __name__ == "__main__":
    main()
