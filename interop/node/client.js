#!/usr/bin/env node
'use strict';
/*
 * gRPC interop test client on Node.js @grpc/grpc-js (the standard interop
 * test cases), the counterpart of interop/client.py on an unrelated HTTP/2
 * stack.
 *
 * Usage: client.js --server_host=HOST --server_port=PORT --test_case=CASE
 *        [--use_tls=true [--ca_file=CA.pem] [--server_host_override=NAME]]
 *
 * CASE is one of the names in CASES, a comma-separated list, or "all". Each
 * case prints one line, "PASS <case> (N ms)" or "FAIL <case>: <reason>"; the
 * exit status is 0 only when every case passed (1 on a failed case, 2 on a
 * usage error). Every RPC has a deadline (--rpc_timeout_s, default 30), so a
 * broken peer fails the case instead of hanging it.
 *
 * The schema is loaded at run time from interop/protos (or --proto_dir) with
 * @grpc/proto-loader; nothing is generated.
 */

const fs = require('fs');
const path = require('path');
const util = require('util');

let grpc;
let protoLoader;
try {
  grpc = require('@grpc/grpc-js');
  protoLoader = require('@grpc/proto-loader');
} catch (err) {
  process.stderr.write('FAIL setup: cannot load @grpc/grpc-js / @grpc/proto-loader (' + err.message +
                       '); run `npm ci` in ' + __dirname + '\n');
  process.exit(2);
}

const ECHO_INITIAL_KEY = 'x-grpc-test-echo-initial';
const ECHO_TRAILING_KEY = 'x-grpc-test-echo-trailing-bin';
const SPECIAL_STATUS_MESSAGE =
  '\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \u{1f608}\t\n';

const CASES = [
  'empty_unary',
  'large_unary',
  'client_streaming',
  'server_streaming',
  'ping_pong',
  'empty_stream',
  'timeout_on_sleeping_server',
  'cancel_after_begin',
  'cancel_after_first_response',
  'status_code_and_message',
  'special_status_message',
  'custom_metadata',
  'unimplemented_method',
  'unimplemented_service',
];

const Status = grpc.status;
const STATUS_NAME = {};
for (const [name, code] of Object.entries(Status)) STATUS_NAME[code] = name;

class CaseFailure extends Error {}

function expect(cond, msg) {
  if (!cond) throw new CaseFailure(typeof msg === 'function' ? msg() : msg);
}

function fmt(v) {
  return util.inspect(v, { breakLength: Infinity, depth: 4, maxArrayLength: 8, maxStringLength: 200 });
}

function statusName(code) {
  return STATUS_NAME[code] !== undefined ? STATUS_NAME[code] : String(code);
}

/* `err` is what grpc-js hands to a callback / 'error' event (a ServiceError)
 * or a status object from a 'status' event. */
function expectStatus(err, code, details) {
  expect(err !== null && err !== undefined, () => 'expected status ' + statusName(code) + ', got OK');
  expect(err.code === code, () => 'expected status ' + statusName(code) + ', got ' + statusName(err.code) +
         ' (' + fmt(err.details) + ')');
  if (details !== undefined) {
    expect(err.details === details, () => 'expected message ' + fmt(details) + ', got ' + fmt(err.details));
  }
}

function payload(size) {
  return { type: 'COMPRESSABLE', body: Buffer.alloc(size) };
}

function expectPayload(p, size) {
  expect(p !== null && p !== undefined, 'response has no payload');
  expect(p.type === 'COMPRESSABLE', () => 'payload type ' + fmt(p.type));
  const body = p.body || Buffer.alloc(0);
  expect(body.length === size, () => 'payload size ' + body.length + ', expected ' + size);
  expect(body.equals(Buffer.alloc(size)), 'payload body is not all zeros');
}

function withTimeout(promise, ms, what) {
  let timer;
  const guard = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new CaseFailure('no ' + what + ' after ' + ms + ' ms')), ms);
  });
  return Promise.race([promise, guard]).finally(() => clearTimeout(timer));
}

/*
 * Follows a streaming call: buffers responses, records initial metadata, the
 * error and the final status. next() resolves to the next response, or null
 * once the stream has finished; finish() resolves to the final status after
 * every response has been delivered.
 */
class CallReader {
  constructor(call, guardMs) {
    this.call = call;
    this.guardMs = guardMs;
    this.messages = [];
    this.received = 0;
    this.initialMetadata = null;
    this.error = null;
    this.status = null;
    this.ended = false;
    this.waiters = [];
    call.on('metadata', (md) => { this.initialMetadata = md; });
    call.on('data', (m) => { this.received++; this.messages.push(m); this._wake(); });
    call.on('error', (e) => { this.error = e; this._wake(); });
    call.on('status', (s) => { this.status = s; this._wake(); });
    call.on('end', () => { this.ended = true; this._wake(); });
  }

  _wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  _wait(pred, what) {
    if (pred()) return Promise.resolve();
    return withTimeout(new Promise((resolve) => {
      const check = () => (pred() ? resolve() : this.waiters.push(check));
      this.waiters.push(check);
    }), this.guardMs, what);
  }

  get done() {
    return this.status !== null && (this.ended || this.status.code !== Status.OK);
  }

  async next() {
    await this._wait(() => this.messages.length > 0 || this.done, 'response or status');
    return this.messages.length > 0 ? this.messages.shift() : null;
  }

  async finish() {
    await this._wait(() => this.status !== null, 'final status');
    if (this.status.code !== Status.OK && !this.ended) {
      // Responses pushed before a non-OK status are delivered before 'end';
      // give them a moment so a stray response is counted.
      await this._wait(() => this.ended, 'end of stream').catch(() => {});
    }
    return this.status;
  }

  async readAll() {
    const got = [];
    for (;;) {
      const m = await this.next();
      if (m === null) break;
      got.push(m);
    }
    await this.finish();
    return got;
  }
}

class Client {
  constructor(ctors, target, creds, options, rpcTimeoutS) {
    this.timeoutMs = rpcTimeoutS * 1000;
    this.guardMs = this.timeoutMs + 10000;
    this.stub = new ctors.TestService(target, creds, options);
    // Same channel (one HTTP/2 connection) for the second service.
    this.unimplStub = new ctors.UnimplementedService(target, creds,
      Object.assign({}, options, { channelOverride: this.stub.getChannel() }));
  }

  close() {
    this.stub.close();
  }

  opts(timeoutMs) {
    return { deadline: Date.now() + (timeoutMs === undefined ? this.timeoutMs : timeoutMs) };
  }

  /* A unary call; resolves to {err, resp, initialMetadata, status} once both
   * the callback and the 'status' event have come. */
  unary(stub, method, req, metadata) {
    return withTimeout(new Promise((resolve) => {
      const out = { err: null, resp: null, initialMetadata: null, status: null };
      let gotCallback = false;
      const maybeDone = () => { if (gotCallback && out.status !== null) resolve(out); };
      const call = stub[method](req, metadata || new grpc.Metadata(), this.opts(), (err, resp) => {
        out.err = err;
        out.resp = resp === undefined ? null : resp;
        gotCallback = true;
        maybeDone();
      });
      call.on('metadata', (md) => { out.initialMetadata = md; });
      call.on('status', (s) => { out.status = s; maybeDone(); });
    }), this.guardMs, method + ' completion');
  }

  static unexpected(err) {
    return new CaseFailure('unexpected RPC error ' + statusName(err.code) + ': ' + fmt(err.details));
  }

  async unaryOk(stub, method, req, metadata) {
    const r = await this.unary(stub, method, req, metadata);
    if (r.err) throw Client.unexpected(r.err);
    return r;
  }

  // -- cases -----------------------------------------------------------------

  async empty_unary() {
    const { resp } = await this.unaryOk(this.stub, 'EmptyCall', {});
    expect(resp !== null && typeof resp === 'object', 'no response');
    expect(Object.keys(resp).length === 0, () => 'response is not empty: ' + fmt(resp));
  }

  async large_unary() {
    const { resp } = await this.unaryOk(this.stub, 'UnaryCall', {
      response_type: 'COMPRESSABLE', response_size: 314159, payload: payload(271828),
    });
    expectPayload(resp.payload, 314159);
  }

  async client_streaming() {
    const sizes = [27182, 8, 1828, 45904];
    const resp = await withTimeout(new Promise((resolve, reject) => {
      const call = this.stub.StreamingInputCall(this.opts(), (err, r) => {
        if (err) reject(Client.unexpected(err)); else resolve(r);
      });
      for (const s of sizes) call.write({ payload: payload(s) });
      call.end();
    }), this.guardMs, 'StreamingInputCall response');
    expect(resp.aggregated_payload_size === 74922,
           () => 'aggregated_payload_size ' + resp.aggregated_payload_size + ', expected 74922');
  }

  async server_streaming() {
    const sizes = [31415, 9, 2653, 58979];
    const rd = new CallReader(this.stub.StreamingOutputCall({
      response_type: 'COMPRESSABLE',
      response_parameters: sizes.map((s) => ({ size: s })),
    }, this.opts()), this.guardMs);
    const got = await rd.readAll();
    if (rd.error) throw Client.unexpected(rd.error);
    expect(rd.status.code === Status.OK, () => 'status ' + statusName(rd.status.code));
    expect(got.length === sizes.length, () => got.length + ' responses, expected ' + sizes.length);
    got.forEach((r, i) => expectPayload(r.payload, sizes[i]));
  }

  async ping_pong() {
    const reqSizes = [27182, 8, 1828, 45904];
    const respSizes = [31415, 9, 2653, 58979];
    const call = this.stub.FullDuplexCall(this.opts());
    const rd = new CallReader(call, this.guardMs);
    try {
      for (let i = 0; i < reqSizes.length; i++) {
        call.write({
          response_type: 'COMPRESSABLE',
          response_parameters: [{ size: respSizes[i] }],
          payload: payload(reqSizes[i]),
        });
        const resp = await rd.next();
        if (resp === null) {
          if (rd.error) throw Client.unexpected(rd.error);
          throw new CaseFailure('stream ended after ' + i + ' responses');
        }
        expectPayload(resp.payload, respSizes[i]);
      }
      call.end();
      const rest = await rd.readAll();
      if (rd.error) throw Client.unexpected(rd.error);
      expect(rest.length === 0, () => rest.length + ' unexpected extra responses');
      expect(rd.status.code === Status.OK, () => 'status ' + statusName(rd.status.code));
    } finally {
      if (rd.status === null) call.cancel();
    }
  }

  async empty_stream() {
    const call = this.stub.FullDuplexCall(this.opts());
    const rd = new CallReader(call, this.guardMs);
    call.end();
    const got = await rd.readAll();
    if (rd.error) throw Client.unexpected(rd.error);
    expect(got.length === 0, () => got.length + ' responses to an empty stream');
    expect(rd.status.code === Status.OK, () => 'status ' + statusName(rd.status.code));
  }

  async timeout_on_sleeping_server() {
    const call = this.stub.FullDuplexCall(this.opts(1));
    const rd = new CallReader(call, this.guardMs);
    call.write({ payload: payload(27182) });
    const got = await rd.readAll();
    expect(rd.status.code !== Status.OK, () => 'call succeeded with ' + got.length + ' responses');
    expectStatus(rd.status, Status.DEADLINE_EXCEEDED);
  }

  async cancel_after_begin() {
    let call;
    const err = await withTimeout(new Promise((resolve) => {
      call = this.stub.StreamingInputCall(this.opts(), (e, r) => resolve(e || { code: Status.OK, response: r }));
      call.cancel();
    }), this.guardMs, 'StreamingInputCall completion');
    expectStatus(err, Status.CANCELLED);
  }

  async cancel_after_first_response() {
    const call = this.stub.FullDuplexCall(this.opts());
    const rd = new CallReader(call, this.guardMs);
    try {
      call.write({
        response_type: 'COMPRESSABLE',
        response_parameters: [{ size: 31415 }],
        payload: payload(27182),
      });
      const resp = await rd.next();
      if (resp === null) {
        throw rd.error ? Client.unexpected(rd.error) : new CaseFailure('stream ended without a response');
      }
      expectPayload(resp.payload, 31415);
      const before = rd.received;
      call.cancel();
      await rd.finish();
      expectStatus(rd.status, Status.CANCELLED);
      expect(rd.received === before, () => 'stream went on after cancel: ' + (rd.received - before) +
             ' more responses');
    } finally {
      if (rd.status === null) call.cancel();
    }
  }

  async statusCase(message) {
    const r = await this.unary(this.stub, 'UnaryCall', { response_status: { code: 2, message: message } });
    expect(r.err !== null, 'UnaryCall succeeded');
    expectStatus(r.err, Status.UNKNOWN, message);
  }

  async status_code_and_message() {
    const message = 'test status message';
    await this.statusCase(message);
    const call = this.stub.FullDuplexCall(this.opts());
    const rd = new CallReader(call, this.guardMs);
    call.write({ response_status: { code: 2, message: message } });
    call.end();
    const got = await rd.readAll();
    expect(rd.status.code !== Status.OK, () => 'FullDuplexCall succeeded with ' + got.length + ' responses');
    expectStatus(rd.error, Status.UNKNOWN, message);
  }

  async special_status_message() {
    await this.statusCase(SPECIAL_STATUS_MESSAGE);
  }

  async custom_metadata() {
    const initialValue = 'test_initial_metadata_value';
    const trailingValue = Buffer.from([0xab, 0xab, 0xab]);
    const md = () => {
      const m = new grpc.Metadata();
      m.set(ECHO_INITIAL_KEY, initialValue);
      m.set(ECHO_TRAILING_KEY, trailingValue);
      return m;
    };
    const check = (where, initial, trailing) => {
      expect(initial !== null, where + ': no initial metadata');
      expect(trailing !== null, where + ': no trailing metadata');
      const init = initial.get(ECHO_INITIAL_KEY);
      const trail = trailing.get(ECHO_TRAILING_KEY);
      expect(init.length === 1 && init[0] === initialValue,
             () => where + ': initial metadata ' + fmt(initial.getMap()));
      expect(trail.length === 1 && Buffer.isBuffer(trail[0]) && trail[0].equals(trailingValue),
             () => where + ': trailing metadata ' + fmt(trailing.getMap()));
    };
    const req = { response_type: 'COMPRESSABLE', response_size: 314159, payload: payload(271828) };
    const r = await this.unaryOk(this.stub, 'UnaryCall', req, md());
    expectPayload(r.resp.payload, 314159);
    check('UnaryCall', r.initialMetadata, r.status.metadata);

    const call = this.stub.FullDuplexCall(md(), this.opts());
    const rd = new CallReader(call, this.guardMs);
    call.write({
      response_type: 'COMPRESSABLE',
      response_parameters: [{ size: 314159 }],
      payload: payload(271828),
    });
    call.end();
    const got = await rd.readAll();
    if (rd.error) throw Client.unexpected(rd.error);
    expect(got.length === 1, () => got.length + ' responses, expected 1');
    expectPayload(got[0].payload, 314159);
    check('FullDuplexCall', rd.initialMetadata, rd.status.metadata);
  }

  async unimplemented_method() {
    const r = await this.unary(this.stub, 'UnimplementedCall', {});
    expect(r.err !== null, 'UnimplementedCall succeeded');
    expectStatus(r.err, Status.UNIMPLEMENTED);
  }

  async unimplemented_service() {
    const r = await this.unary(this.unimplStub, 'UnimplementedCall', {});
    expect(r.err !== null, 'UnimplementedService.UnimplementedCall succeeded');
    expectStatus(r.err, Status.UNIMPLEMENTED);
  }
}

// -- command line --------------------------------------------------------------

function parseBool(s, flag) {
  const v = String(s).trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(v)) return false;
  throw new UsageError(flag + ': not a boolean: ' + JSON.stringify(s));
}

class UsageError extends Error {}

const USAGE =
  'usage: client.js --server_host=HOST --server_port=PORT [--test_case=CASE|all]\n' +
  '                 [--use_tls=BOOL] [--use_test_ca=BOOL] [--ca_file=PEM]\n' +
  '                 [--server_host_override=NAME] [--rpc_timeout_s=S] [--proto_dir=DIR]\n' +
  'cases: ' + CASES.join(', ') + '\n';

function parseArgs(argv) {
  const a = {
    server_host: 'localhost', server_port: null, test_case: 'large_unary',
    use_tls: false, use_test_ca: false, ca_file: null, server_host_override: '',
    rpc_timeout_s: 30, proto_dir: path.join(__dirname, '..', 'protos'),
  };
  const bools = new Set(['use_tls', 'use_test_ca']);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') {
      process.stdout.write(USAGE);
      process.exit(0);
    }
    const m = /^--([a-z_]+)(?:=(.*))?$/s.exec(arg);
    if (!m || !(m[1] in a)) throw new UsageError('unknown argument ' + JSON.stringify(arg));
    const name = m[1];
    let value = m[2];
    if (value === undefined) {
      if (bools.has(name) && (i + 1 >= argv.length || argv[i + 1].startsWith('--'))) value = 'true';
      else if (i + 1 < argv.length) value = argv[++i];
      else throw new UsageError('--' + name + ' needs a value');
    }
    a[name] = value;
  }
  for (const b of bools) a[b] = parseBool(a[b], '--' + b);
  const port = Number(a.server_port);
  if (a.server_port === null || !Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new UsageError('--server_port: a port number is required');
  }
  a.server_port = port;
  a.rpc_timeout_s = Number(a.rpc_timeout_s);
  if (!(a.rpc_timeout_s > 0)) throw new UsageError('--rpc_timeout_s must be positive');
  if (a.test_case === 'all') {
    a.cases = CASES.slice();
  } else {
    a.cases = a.test_case.split(',').map((c) => c.trim()).filter((c) => c);
    const unknown = a.cases.filter((c) => !CASES.includes(c));
    if (unknown.length || !a.cases.length) {
      throw new UsageError('unknown test case(s): ' + (unknown.join(', ') || '(none)'));
    }
  }
  return a;
}

function loadServices(protoDir) {
  const def = protoLoader.loadSync('src/proto/grpc/testing/test.proto', {
    includeDirs: [protoDir],
    keepCase: true,
    longs: String,
    enums: String,
    bytes: Buffer,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def).grpc.testing;
  return { TestService: pkg.TestService, UnimplementedService: pkg.UnimplementedService };
}

function makeChannelArgs(a) {
  const h = a.server_host.includes(':') && !a.server_host.startsWith('[') ? '[' + a.server_host + ']' : a.server_host;
  const target = h + ':' + a.server_port;
  const options = {
    'grpc.max_receive_message_length': -1,
    'grpc.max_send_message_length': -1,
  };
  let creds;
  if (a.use_tls) {
    const root = a.ca_file ? fs.readFileSync(a.ca_file) : null;
    if (a.server_host_override) {
      // As in grpc C-core: verify the certificate against, send SNI for, and
      // use as :authority the override name.
      options['grpc.ssl_target_name_override'] = a.server_host_override;
      options['grpc.default_authority'] = a.server_host_override;
    }
    creds = grpc.credentials.createSsl(root);
  } else {
    creds = grpc.credentials.createInsecure();
  }
  return { target, creds, options };
}

async function runCases(client, cases, out) {
  let failed = 0;
  for (const c of cases) {
    const start = process.hrtime.bigint();
    try {
      await client[c]();
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      out.write('PASS ' + c + ' (' + ms.toFixed(0) + ' ms)\n');
    } catch (err) {
      failed++;
      let detail;
      if (err instanceof CaseFailure) detail = err.message;
      else if (err && typeof err.code === 'number' && 'details' in err) detail = Client.unexpected(err).message;
      else detail = (err && err.stack) || String(err);
      out.write('FAIL ' + c + ': ' + String(detail).trim().replace(/\n/g, '\\n') + '\n');
    }
  }
  return failed;
}

async function main(argv) {
  let a;
  try {
    a = parseArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(USAGE + 'client.js: error: ' + err.message + '\n');
    return 2;
  }
  let ctors;
  let chan;
  try {
    ctors = loadServices(a.proto_dir);
    chan = makeChannelArgs(a);
  } catch (err) {
    process.stdout.write('FAIL setup: ' + err.message + '\n');
    return 2;
  }
  const client = new Client(ctors, chan.target, chan.creds, chan.options, a.rpc_timeout_s);
  try {
    return (await runCases(client, a.cases, process.stdout)) ? 1 : 0;
  } finally {
    client.close();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    // Let stdout drain, then exit even if some handle would keep node alive.
    process.exitCode = code;
    setTimeout(() => process.exit(code), 100).unref();
  }, (err) => {
    process.stdout.write('FAIL client: ' + ((err && err.stack) || err) + '\n');
    process.exit(1);
  });
}

module.exports = { CASES };
