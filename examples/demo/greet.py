"""Call demo.v1.Greeter through portico: greet.py NAME [ADDRESS]."""
import sys

import grpc

import demo_proto

pb = demo_proto.load()
name = sys.argv[1] if len(sys.argv) > 1 else "world"
addr = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1:8080"
with grpc.insecure_channel(addr) as ch:
    say = ch.unary_unary("/demo.v1.Greeter/SayHello",
                         request_serializer=pb.HelloRequest.SerializeToString,
                         response_deserializer=pb.HelloReply.FromString)
    reply, call = say.with_call(pb.HelloRequest(name=name), timeout=5)
    print(reply.message)
    rid = dict(call.initial_metadata()).get("x-request-id")
    print("(x-request-id: %s)" % rid)
