// gRPC-Web client on Node.js: @improbable-eng/grpc-web with its Node HTTP
// transport (HTTP/1.1, application/grpc-web+proto), messages encoded with
// protobufjs from tests/integration/protos (no generated code). Runs a few
// calls against portico.test.Echo at the URL given and prints one JSON
// object with what each call returned; tests/integration/test_grpcweb.py
// checks it.
//
// usage: node client.js http://127.0.0.1:PORT PROTO_ROOT
'use strict';

const path = require('path');
const { grpc } = require('@improbable-eng/grpc-web');
const { NodeHttpTransport } = require('@improbable-eng/grpc-web-node-http-transport');
const protobuf = require('protobufjs');

const host = process.argv[2];
const protoRoot = process.argv[3];
if (!host || !protoRoot) {
  console.error('usage: node client.js URL PROTO_ROOT');
  process.exit(2);
}

// A class with the shape grpc-web expects of generated messages.
function messageClass(type) {
  return class {
    constructor(obj) { this.obj = obj || {}; }
    serializeBinary() { return type.encode(type.fromObject(this.obj)).finish(); }
    toObject() { return this.obj; }
    static deserializeBinary(bytes) {
      return new this(type.toObject(type.decode(bytes), { longs: String, defaults: true }));
    }
  };
}

function headersObject(md) {
  const out = {};
  if (md) md.forEach((name, values) => { out[name] = values; });
  return out;
}

async function main() {
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => path.join(protoRoot, target);
  await root.load('portico/test/echo.proto', { keepCase: true });
  const Req = messageClass(root.lookupType('portico.test.EchoRequest'));
  const Resp = messageClass(root.lookupType('portico.test.EchoResponse'));
  const service = { serviceName: 'portico.test.Echo' };
  const method = (name, stream) => ({
    methodName: name, service, requestStream: false, responseStream: stream,
    requestType: Req, responseType: Resp,
  });
  const transport = NodeHttpTransport();

  const call = (name, stream, req) => new Promise((resolve) => {
    const messages = [];
    let headers = {};
    const timer = setTimeout(() => resolve({ error: 'timeout' }), 30000);
    grpc.invoke(method(name, stream), {
      request: new Req(req), host, transport,
      metadata: new grpc.Metadata({ 'x-from-node': 'grpc-web' }),
      onHeaders: (md) => { headers = headersObject(md); },
      onMessage: (m) => {
        const o = m.toObject();
        messages.push({ message: o.message, index: o.index, method: o.method });
      },
      onEnd: (code, msg, trailers) => {
        clearTimeout(timer);
        resolve({ code, message: msg, messages, headers, trailers: headersObject(trailers) });
      },
    });
  });

  const out = {};
  out.unary = await call('Echo', false, { message: 'hello from node' });
  out.error = await call('Echo', false, { message: 'x', fail_code: 5, fail_message: 'caf\u00e9 100% \u263a' });
  out.stream = await call('Stream', true, { message: 'tick', stream_count: 3 });
  console.log(JSON.stringify(out));
}

main().catch((e) => { console.error(e && e.stack || String(e)); process.exit(1); });
