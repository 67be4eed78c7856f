"""A Python client for portico's admin API, generated at test time.

The message classes come from a FileDescriptorSet that protoc makes from
proto/ (cached under PORTICO_PROTO_CACHE), in a private descriptor pool:
generated *_pb2 modules would need Python packages Debian does not ship
(google.api) and could shadow google.protobuf.

    c = AdminClient(gw.admin_addr, token=None)
    route = c.call("CreateRoute", route={"name": "r", "path_prefix": "/x", "service": "s"})
    c.call("UpdateRoute", route_id="r", route={...}, update_mask={"paths": ["timeout_ms"]},
           version=route.version)
    err = c.error("GetRoute", route_id="missing")   # grpc.RpcError
    c.violations(err)                              # [(field, description)] from BadRequest
    c.call_dict("ListRoutes", {"page_size": 5})    # request and response as plain dicts
"""

import grpc
from google.protobuf import json_format

import test_metrics  # the descriptor-set loader lives there

ADMIN = "portico.admin.v1.Admin"
RPC_TIMEOUT = 30.0


def messages():
    return test_metrics._msgs()


class AdminClient(object):
    def __init__(self, address, token=None):
        self.m = messages()
        self.address = address
        # A private subchannel: tests that restart gateways on the same port
        # must not reuse another client's connection.
        self.channel = grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        self.metadata = [("authorization", "Bearer " + token)] if token else None
        self._service = None

    def _method(self, name):
        pool_msg = self.m["portico.admin.v1.ListRequest"].DESCRIPTOR
        svc = pool_msg.file.pool.FindServiceByName(ADMIN)
        md = svc.FindMethodByName(name)
        if md is None:
            raise KeyError(name)
        req_cls = self.m[md.input_type.full_name]
        resp_cls = self.m[md.output_type.full_name]
        rpc = self.channel.unary_unary("/%s/%s" % (ADMIN, name),
                                       request_serializer=req_cls.SerializeToString,
                                       response_deserializer=resp_cls.FromString)
        return req_cls, rpc

    def request(self, method, **fields):
        req_cls, _ = self._method(method)
        return json_format.ParseDict(fields, req_cls(), ignore_unknown_fields=False)

    def call(self, method, _timeout=RPC_TIMEOUT, **fields):
        req_cls, rpc = self._method(method)
        req = json_format.ParseDict(fields, req_cls())
        return rpc(req, timeout=_timeout, metadata=self.metadata)

    def call_dict(self, method, request=None, timeout=None):
        """`method` with a dict request (proto3 JSON names); the response as
        a dict with field names."""
        return self.to_dict(self.call(method, _timeout=timeout or RPC_TIMEOUT, **(request or {})))

    def error(self, method, **fields):
        """The grpc.RpcError the call fails with (AssertionError if it succeeds)."""
        try:
            resp = self.call(method, **fields)
        except grpc.RpcError as e:
            return e
        raise AssertionError("%s succeeded: %s" % (method, resp))

    def violations(self, err):
        """[(field, description)] of the google.rpc.BadRequest in the error's
        grpc-status-details-bin trailer ([] when there is none)."""
        raw = None
        for k, v in (err.trailing_metadata() or ()):
            if k == "grpc-status-details-bin":
                raw = v
        if raw is None:
            return []
        status = self.m["google.rpc.Status"].FromString(raw)
        out = []
        for any_ in status.details:
            if any_.type_url.endswith("/google.rpc.BadRequest"):
                br = self.m["google.rpc.BadRequest"].FromString(any_.value)
                out.extend((v.field, v.description) for v in br.field_violations)
        return out

    @staticmethod
    def to_dict(msg):
        return json_format.MessageToDict(msg, preserving_proto_field_name=True)

    def close(self):
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
