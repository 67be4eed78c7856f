"""A small client of portico.admin.v1.Admin for the integration tests.

Messages come from test_metrics.load_admin_messages() (a FileDescriptorSet
made by protoc at test time, in a private descriptor pool); requests are
written as dicts in the proto3 JSON mapping (camelCase or field names) and
responses come back as dicts with field names (preserving_proto_field_name),
so a test compares plain data.

    admin = AdminClient(gw.admin_addr)
    route = admin.call("CreateRoute", {"route": {...}})   # dict
    admin.call("UpdateRoute", {...}, raw=True)            # the message
"""

import grpc
from google.protobuf import json_format

from test_metrics import load_admin_messages

ADMIN = "portico.admin.v1.Admin"
RPC_TIMEOUT = 30.0

# method -> (request type, response type), short names under portico.*.v1
METHODS = {
    "CreateRoute": ("admin.v1.CreateRouteRequest", "config.v1.Route"),
    "GetRoute": ("admin.v1.GetRouteRequest", "config.v1.Route"),
    "ListRoutes": ("admin.v1.ListRequest", "admin.v1.ListRoutesResponse"),
    "UpdateRoute": ("admin.v1.UpdateRouteRequest", "config.v1.Route"),
    "DeleteRoute": ("admin.v1.DeleteRouteRequest", None),
    "CreateService": ("admin.v1.CreateServiceRequest", "config.v1.Service"),
    "GetService": ("admin.v1.GetRequest", "config.v1.Service"),
    "ListServices": ("admin.v1.ListRequest", "admin.v1.ListServicesResponse"),
    "UpdateService": ("admin.v1.UpdateServiceRequest", "config.v1.Service"),
    "DeleteService": ("admin.v1.DeleteRequest", None),
    "Export": ("admin.v1.ExportRequest", "admin.v1.ExportResponse"),
    "Apply": ("admin.v1.ApplyRequest", "admin.v1.ApplyResponse"),
    "GetHealth": ("admin.v1.GetHealthRequest", "admin.v1.Health"),
}


class AdminClient(object):
    def __init__(self, address, timeout=RPC_TIMEOUT):
        self.m = load_admin_messages()
        self.timeout = timeout
        self.channel = grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        self._calls = {}
        for name, (req, resp) in METHODS.items():
            req_cls = self.m["portico." + req]
            resp_cls = self.m["portico." + resp] if resp else self.m["google.protobuf.Empty"]
            self._calls[name] = (req_cls, self.channel.unary_unary(
                "/%s/%s" % (ADMIN, name), request_serializer=req_cls.SerializeToString,
                response_deserializer=resp_cls.FromString))

    def call(self, method, request=None, raw=False, timeout=None):
        """Call `method` with `request` (a dict); the response as a dict (or
        the message with raw=True). grpc.RpcError on failure."""
        req_cls, rpc = self._calls[method]
        req = json_format.ParseDict(request or {}, req_cls())
        resp = rpc(req, timeout=timeout or self.timeout)
        if raw:
            return resp
        return json_format.MessageToDict(resp, preserving_proto_field_name=True)

    def close(self):
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
