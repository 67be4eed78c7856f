"""The PostgreSQL store end to end: real portico processes on one real
PostgreSQL (tests/integration/pgserver.py), changed through the Admin API.

MigrateSeedTest (one server, a database per test):
  * `portico --migrate --store URI` applies the migrations; a second run
    applies nothing (exit 0 both); a gateway on an unmigrated database exits
    non-zero telling to run --migrate.
  * an empty migrated database is seeded from the first instance's file
    (served, stored with its projection columns); a later instance with
    another file serves the database's objects (its file ignored, warned);
    two instances starting together on an empty database both end up
    serving, and writable, the one seeded document.

ClusterTest (one server, three gateways A, B, C with their own listeners and
admin ports, a real HTTP backend):
  * CreateRoute / UpdateRoute / DeleteRoute through A are served by B and C
    within 1 s (measured and printed); ListRoutes on C shows the version A
    returned.
  * two clients update one route at the same version through A and B at the
    same moment: one succeeds, the other gets ABORTED, the version goes up
    once.
  * PostgreSQL stopped: traffic keeps flowing, writes fail UNAVAILABLE
    promptly, GetHealth says store_connected false; restarted: writes work
    again without restarting a gateway and propagate to all three.
  * A alone loses its connections (pg_terminate_backend on
    application_name portico-<pid>) and cannot reconnect for a while (its
    role NOLOGIN); a change through B meanwhile reaches A once it is back,
    with no further NOTIFY.
  * an invalid change (route to an unknown service) is INVALID_ARGUMENT with
    google.rpc.BadRequest naming route.service, and nothing is written.

Gateway-only (skipped with PORTICO_DIRECT=1). Needs the PostgreSQL server
binaries (Debian package postgresql); skipped when they are missing.

Run: cd tests/integration && /usr/bin/python3 -m unittest -v test_admin_pg
"""

import http.client
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import unittest

import grpc

import harness
import pgserver
from adminclient import AdminClient
from adminclient import messages as admin_messages

HOST = "127.0.0.1"
RPC_TIMEOUT = 10.0
PROPAGATION_LIMIT_S = 1.0

try:
    pgserver._bindir()
    HAVE_PG = True
except RuntimeError:
    HAVE_PG = False
# CI installs PostgreSQL (scripts/setup.sh --test): there a missing server is
# a failure, not a skip.
if os.environ.get("CI") and not HAVE_PG:
    raise RuntimeError("CI=true but the PostgreSQL server binaries are not installed")


def log(msg):
    sys.stderr.write("\n    [pg] %s" % msg)
    sys.stderr.flush()


# admin messages: adminclient.messages() (a FileDescriptorSet made by protoc
# at test time; see test_metrics.py for why)
_messages = admin_messages


class Admin(object):
    """portico.admin.v1.Admin on one gateway."""

    def __init__(self, address):
        self.m = _messages()
        self.channel = grpc.insecure_channel(address, options=harness.GRPC_CHANNEL_OPTIONS)

    def call(self, method, request, response, timeout=RPC_TIMEOUT, **fields):
        m = self.m
        rpc = self.channel.unary_unary("/portico.admin.v1.Admin/" + method,
                                       request_serializer=lambda x: x.SerializeToString(),
                                       response_deserializer=m[response].FromString)
        return rpc(m[request](**fields), timeout=timeout)

    def route(self, **fields):
        return self.m["portico.config.v1.Route"](**fields)

    def create_route(self, timeout=RPC_TIMEOUT, **fields):
        return self.call("CreateRoute", "portico.admin.v1.CreateRouteRequest",
                         "portico.config.v1.Route", timeout=timeout, route=self.route(**fields))

    def update_route(self, route, version, paths=None):
        mask = self.m["google.protobuf.FieldMask"](paths=paths or [])
        return self.call("UpdateRoute", "portico.admin.v1.UpdateRouteRequest",
                         "portico.config.v1.Route", route_id=route.name, route=route,
                         update_mask=mask, version=version)

    def delete_route(self, name, version=0):
        return self.call("DeleteRoute", "portico.admin.v1.DeleteRouteRequest",
                         "google.protobuf.Empty", route_id=name, version=version)

    def get_route(self, name):
        return self.call("GetRoute", "portico.admin.v1.GetRouteRequest",
                         "portico.config.v1.Route", route_id=name)

    def list_routes(self):
        return self.call("ListRoutes", "portico.admin.v1.ListRequest",
                         "portico.admin.v1.ListRoutesResponse", page_size=1000).routes

    def health(self, timeout=RPC_TIMEOUT):
        return self.call("GetHealth", "portico.admin.v1.GetHealthRequest",
                         "portico.admin.v1.Health", timeout=timeout)

    def bad_request(self, err):
        """The google.rpc.BadRequest in an RpcError's status details, or None."""
        for key, value in err.trailing_metadata() or ():
            if key != "grpc-status-details-bin":
                continue
            status = self.m["google.rpc.Status"].FromString(value)
            for any_ in status.details:
                if any_.type_url.endswith("/google.rpc.BadRequest"):
                    return self.m["google.rpc.BadRequest"].FromString(any_.value)
        return None

    def close(self):
        self.channel.close()


# ---------------------------------------------------------------------------
# gateways and traffic


def http_status(port, path, timeout=3.0):
    """Status of GET path through the gateway, or None (connection failed)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def gateway_config(uri, services=(), routes=()):
    cfg = {
        "workers": 1,
        "listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1", "h2c"]}],
        "admin": {"address": "127.0.0.1:%d" % harness.free_port(), "store": uri},
    }
    if services:
        cfg["services"] = list(services)
    if routes:
        cfg["routes"] = list(routes)
    return cfg


def wait_admin(gw, timeout=30.0):
    """Start-up completes with the admin server listening; wait for it."""
    host, port = harness.split_address(gw.admin_addr)
    harness.wait_until(lambda: not gw.running() or harness.can_connect(host, port, 0.5),
                       timeout=timeout, message="admin port of %s" % gw.admin_addr)
    if not gw.running():
        raise AssertionError("gateway exited (%s):\n%s" % (gw.proc.returncode, gw.stderr[-3000:]))


def start_gateway(uri, services=(), routes=()):
    gw = harness.Portico(gateway_config(uri, services, routes))
    gw.__enter__()
    try:
        wait_admin(gw)
    except BaseException:
        gw.__exit__(None, None, None)
        raise
    return gw


SANITIZER_RX = re.compile(r"ERROR: (Address|Leak|Thread)Sanitizer|runtime error:")


def stop_gateway(gw):
    """Stop a gateway (SIGTERM) and check it went cleanly: exit 0 and no
    sanitizer report (ASan builds). Returns a problem description or None."""
    problem = None
    if gw.running():
        try:
            rc = gw.stop(timeout=30)
        except harness.HarnessError as e:
            rc, problem = None, str(e)
        if problem is None and rc != 0:
            problem = "exit code %s" % rc
    if problem is None and SANITIZER_RX.search(gw.stderr):
        problem = "sanitizer report"
    if problem:
        problem = "gateway %s: %s; stderr tail:\n%s" % (gw.admin_addr, problem, gw.stderr[-4000:])
    gw.__exit__(None, None, None)
    return problem


def stop_all(gws):
    problems = [p for p in (stop_gateway(g) for g in gws) if p]
    if problems:
        raise AssertionError("\n".join(problems))


def migrate(uri, timeout=60):
    return subprocess.run([harness.portico_bin(), "--migrate", "--store", uri],
                          capture_output=True, text=True, timeout=timeout)


def wait_statuses(gws, path, want, timeout, interval=0.005):
    """Poll GET path on each gateway until it answers `want`; {name:
    seconds since the call} (AssertionError naming the laggards after
    `timeout`)."""
    start = time.monotonic()
    pending = dict(gws)
    seen = {}
    last = {}
    while pending:
        for name, gw in list(pending.items()):
            st = http_status(gw.port(), path)
            last[name] = st
            if st == want:
                seen[name] = time.monotonic() - start
                del pending[name]
        if pending and time.monotonic() - start > timeout:
            raise AssertionError("%s: not %d within %.1fs on %s (last %s)"
                                 % (path, want, timeout, sorted(pending), last))
        if pending:
            time.sleep(interval)
    return seen


def echo_service(backend, name="echo"):
    return {"name": name, "protocol": "http1", "instances": [backend.instance()]}


def prefix_route(name, prefix, service="echo"):
    return {"name": name, "path_prefix": prefix, "service": service, "strip_prefix": True}


@unittest.skipIf(harness.DIRECT, "gateway-only")
@unittest.skipUnless(HAVE_PG, "PostgreSQL server binaries not installed")
class MigrateSeedTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = pgserver.PgServer()
        cls.pg.start()
        cls.backend = harness.HttpBackend().start()

    @classmethod
    def tearDownClass(cls):
        cls.backend.stop()
        cls.pg.cleanup()

    def fresh_db(self, migrated=True):
        name = "t_%s" % self._testMethodName[-40:].lower()
        uri = self.pg.create_database(name)
        if migrated:
            r = migrate(uri)
            self.assertEqual(r.returncode, 0, r.stderr)
        return name, uri

    def test_migrate_twice_then_refuse_unmigrated(self):
        name, uri = self.fresh_db(migrated=False)
        # An unmigrated database: the gateway refuses to start and says why.
        gw = harness.Portico(gateway_config(uri))
        try:
            try:
                gw.start()
            except harness.StartError:
                pass
            rc = gw.wait_exit(30)
            self.assertIsNotNone(rc, "gateway kept running on an unmigrated database")
            self.assertNotEqual(rc, 0)
            self.assertIn("--migrate", gw.stderr)
        finally:
            kept = gw.tmp.path
            gw.__exit__(None, None, None)
            if kept and not harness.KEEP_TMP:
                shutil.rmtree(kept, ignore_errors=True)  # the harness keeps a failed start's files
        nsql = len([f for f in os.listdir(os.path.join(harness.REPO_ROOT, "sql"))
                    if f.endswith(".sql")])
        first = migrate(uri)
        self.assertEqual(first.returncode, 0, first.stderr)
        self.assertIn("(%d migration(s) applied now)" % nsql, first.stdout)
        rows = self.pg.psql("SELECT count(*) FROM schema_migrations", name).strip()
        self.assertEqual(rows, str(nsql))
        second = migrate(uri)
        self.assertEqual(second.returncode, 0, second.stderr)
        self.assertIn("(0 migration(s) applied now)", second.stdout)
        self.assertEqual(self.pg.psql("SELECT count(*) FROM schema_migrations", name).strip(),
                         str(nsql))
        # Now it starts.
        gw = start_gateway(uri)
        try:
            self.assertTrue(gw.running())
        finally:
            stop_all([gw])

    def test_seed_once_then_database_wins(self):
        name, uri = self.fresh_db()
        be = self.backend
        seed_routes = [prefix_route("seeded", "/seeded"),
                       {"name": "exact", "path": "/echo", "methods": ["GET", "HEAD"],
                        "service": "echo", "timeout_ms": 1500}]
        a = start_gateway(uri, [echo_service(be)], seed_routes)
        try:
            self.assertEqual(http_status(a.port(), "/seeded/echo"), 200)
            self.assertEqual(http_status(a.port(), "/echo"), 200)
            self.assertEqual(self.pg.psql("SELECT version FROM config_state", name).strip(), "1")
            svc = self.pg.psql("SELECT name, protocol, load_balancer, instances::text, version "
                               "FROM services", name).strip()
            self.assertEqual(svc, 'echo|http1|round_robin|[{"host": "127.0.0.1", "port": %d, '
                                  '"weight": 1}]|1' % be.port)
            routes = self.pg.psql(
                "SELECT r.name, r.path, coalesce(array_to_string(r.methods, ','), ''), "
                "s.name, r.strip_prefix, r.timeout_ms, r.enabled, r.version "
                "FROM routes r LEFT JOIN services s ON s.id = r.service_id ORDER BY r.name",
                name).strip().splitlines()
            self.assertEqual(routes, ["exact|/echo|GET,HEAD|echo|f|1500|t|1",
                                      "seeded|/seeded||echo|t|0|t|1"])
            # Another instance with a different file: the database wins.
            other = echo_service(be, "other")
            b = start_gateway(uri, [other], [prefix_route("mine", "/mine", "other")])
            try:
                self.assertEqual(http_status(b.port(), "/seeded/echo"), 200)
                self.assertEqual(http_status(b.port(), "/mine/echo"), 404)
                self.assertRegex(b.stderr, r"configuration file's .* ignored: the database "
                                           r"\(version 1\) holds them")
                self.assertEqual(self.pg.psql("SELECT version FROM config_state", name).strip(),
                                 "1")
                self.assertEqual(self.pg.psql("SELECT count(*) FROM routes WHERE name = 'mine'",
                                              name).strip(), "0")
            finally:
                stop_all([b])
        finally:
            stop_all([a])

    def test_two_instances_seed_an_empty_database_together(self):
        """Both files try to seed version 1 at the same moment; one wins.
        The other must end up serving the database's document and accept
        admin writes. To make both commits meet, a psql session holds an
        uncommitted config_state row: both seeding commits wait on it
        (after loading version 0) and go on when it commits."""
        name, uri = self.fresh_db()
        be = self.backend
        holder = subprocess.Popen(
            [os.path.join(self.pg.bindir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
             "-d", uri], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        gws = {}
        try:
            holder.stdin.write("BEGIN;\nUPDATE config_state SET version = 0 WHERE id = 1;\n"
                               "SELECT pg_sleep(0);\n")
            holder.stdin.flush()
            harness.wait_until(lambda: self.pg.psql(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE a.datname = '%s' AND a.application_name = 'psql' AND "
                "l.locktype = 'transactionid'" % name).strip() == "1" or holder.poll() is not None,
                timeout=10, message="the holding transaction")
            if holder.poll() is not None:
                self.fail("psql: %s" % holder.stderr.read())
            for n in ("x", "y"):
                gws[n] = harness.Portico(gateway_config(
                    uri, [echo_service(be, "svc-" + n)],
                    [prefix_route("r-" + n, "/" + n, "svc-" + n)]))
            threads = [threading.Thread(target=g.start) for g in gws.values()]
            for t in threads:
                t.start()
            # Both seeding commits wait for the holder (statement_timeout is 5 s).
            harness.wait_until(lambda: self.pg.psql(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' AND "
                "application_name LIKE 'portico-%%' AND wait_event_type = 'Lock'"
                % name).strip() == "2", timeout=4, interval=0.02,
                message="both seeding commits waiting")
            holder.stdin.write("COMMIT;\n")
            holder.stdin.close()
            if holder.wait(10) != 0:
                self.fail("psql: %s" % holder.stderr.read())
            for t in threads:
                t.join(60)
            for g in gws.values():
                wait_admin(g)
            self.assertEqual(self.pg.psql("SELECT version FROM config_state", name).strip(), "1")
            winner = self.pg.psql("SELECT name FROM routes", name).strip()
            self.assertIn(winner, ("r-x", "r-y"))
            prefix = "/" + winner[2:]
            loser = "/y" if prefix == "/x" else "/x"
            for n, g in gws.items():
                wait_statuses({n: g}, prefix + "/echo", 200, 5.0)
                self.assertEqual(http_status(g.port(), loser + "/echo"), 404, n)
            # Both accept writes (a lost seeding race must not leave one read-only).
            for n, g in gws.items():
                adm = Admin(g.admin_addr)
                try:
                    created = adm.create_route(name="added-" + n, path_prefix="/added-" + n,
                                               service="svc-" + winner[2:], strip_prefix=True)
                    self.assertGreater(created.version, 1)
                finally:
                    adm.close()
            for n in gws:
                wait_statuses(gws, "/added-%s/echo" % n, 200, 5.0)
        finally:
            if holder.poll() is None:
                holder.kill()
                holder.wait(10)
            holder.stderr.close()
            stop_all(gws.values())


@unittest.skipIf(harness.DIRECT, "gateway-only")
@unittest.skipUnless(HAVE_PG, "PostgreSQL server binaries not installed")
class StartWithoutDatabaseTest(unittest.TestCase):
    """The state file caches the database's document: a gateway restarted
    while PostgreSQL is down serves its last good configuration (admin
    writes refused) and catches up when the database returns; without a
    cache it refuses to start."""

    def setUp(self):
        self.pg = pgserver.PgServer()
        self.pg.start()
        self.backend = harness.HttpBackend().start()
        self.tmp = harness.TempDir(prefix="portico-pgcache-")

    def tearDown(self):
        self.backend.stop()
        self.pg.cleanup()
        self.tmp.cleanup()

    def config(self, uri, state):
        cfg = gateway_config(uri, [echo_service(self.backend)], [prefix_route("cached", "/cached")])
        cfg["admin"]["state_file"] = state
        return cfg

    def test_restart_while_database_is_down(self):
        uri = self.pg.create_database("t_cache")
        self.assertEqual(migrate(uri).returncode, 0)
        state = self.tmp.join("portico.state")
        gw = harness.Portico(self.config(uri, state))
        gw.__enter__()
        wait_admin(gw)
        admin = AdminClient(gw.admin_addr)
        admin.call("CreateRoute", route=prefix_route("added", "/added"))
        admin.close()
        stop_all([gw])
        self.assertTrue(os.path.exists(state))

        self.pg.stop()
        gw = harness.Portico(self.config(uri, state))
        gw.__enter__()
        try:
            wait_admin(gw)
            self.assertIn("serving the cached configuration", gw.stderr)
            self.assertEqual(http_status(gw.port(), "/cached/echo"), 200)
            self.assertEqual(http_status(gw.port(), "/added/echo"), 200)  # the admin change too
            admin = AdminClient(gw.admin_addr)
            self.assertFalse(admin.call("GetHealth").store_connected)
            e = admin.error("CreateRoute", route=prefix_route("while-down", "/down"))
            self.assertEqual(e.code(), grpc.StatusCode.UNAVAILABLE)

            self.pg.start()
            deadline = time.monotonic() + 20
            while True:
                try:
                    admin.call("CreateRoute", route=prefix_route("after", "/after"), _timeout=5)
                    break
                except grpc.RpcError as err:
                    if time.monotonic() > deadline:
                        raise AssertionError("writes still refused after the database returned: %s"
                                             % err.details())
                    time.sleep(0.2)
            self.assertEqual(http_status(gw.port(), "/after/echo"), 200)
            # The change watch reconnects on its own backoff timer, possibly
            # after the write's connection did.
            harness.wait_until(lambda: admin.call("GetHealth").store_connected, timeout=15,
                               message="store_connected after the database returned")
            admin.close()
        finally:
            stop_all([gw])

        # No cache and no database: refuse to start, saying why.
        self.pg.stop()
        gw = harness.Portico(self.config(uri, self.tmp.join("none.state")))
        try:
            try:
                gw.start()
            except harness.StartError:
                pass
            rc = gw.wait_exit(30)
            self.assertIsNotNone(rc)
            self.assertNotEqual(rc, 0)
            self.assertIn("configuration store", gw.stderr)
        finally:
            kept = gw.tmp.path
            gw.__exit__(None, None, None)
            if kept and not harness.KEEP_TMP:
                shutil.rmtree(kept, ignore_errors=True)


@unittest.skipIf(harness.DIRECT, "gateway-only")
@unittest.skipUnless(HAVE_PG, "PostgreSQL server binaries not installed")
class ClusterTest(unittest.TestCase):
    """Three instances A, B, C on one database. A connects as its own
    (superuser) role portico_a so that test_resync can keep it out."""

    @classmethod
    def setUpClass(cls):
        cls.pg = pgserver.PgServer()
        cls.gws = {}
        cls.admins = {}
        cls.backend = None
        try:
            cls.pg.start()
            cls.db = "cluster"
            uri = cls.pg.create_database(cls.db)
            r = migrate(uri)
            if r.returncode != 0:
                raise RuntimeError("migrate: %s" % r.stderr)
            cls.pg.psql("CREATE ROLE portico_a SUPERUSER LOGIN")
            uri_a = uri.replace("://%s@" % pgserver.SUPERUSER, "://portico_a@")
            cls.backend = harness.HttpBackend().start()
            seed = ([echo_service(cls.backend)], [prefix_route("base", "/base")])
            for n, u in (("A", uri_a), ("B", uri), ("C", uri)):
                cls.gws[n] = start_gateway(u, *seed)
                cls.admins[n] = Admin(cls.gws[n].admin_addr)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for a in cls.admins.values():
            a.close()
        try:
            stop_all(cls.gws.values())
        finally:
            if cls.backend:
                cls.backend.stop()
            cls.pg.cleanup()

    def setUp(self):
        self.pg.start()  # a failed earlier test may have left it stopped
        self.wait_converged()

    def tearDown(self):
        for n, g in self.gws.items():
            self.assertTrue(g.running(), "gateway %s exited:\n%s" % (n, g.stderr[-3000:]))

    # -- helpers -------------------------------------------------------------

    def stored_version(self):
        return int(self.pg.psql("SELECT version FROM config_state", self.db).strip())

    def wait_converged(self, timeout=15.0):
        """Every instance connected and at the database's version."""
        def ok():
            v = self.stored_version()
            return all(h.store_connected and h.config_version == v
                       for h in (a.health() for a in self.admins.values()))
        harness.wait_until(ok, timeout=timeout, interval=0.1, message="instances converged")
        return self.stored_version()

    def others(self, *names):
        return {n: self.gws[n] for n in names}

    def assert_propagated(self, what, path, want, names=("B", "C")):
        seen = wait_statuses(self.others(*names), path, want, timeout=5.0)
        log("%s: %s -> %d after %s" % (what, path, want,
                                      ", ".join("%s %.0f ms" % (n, seen[n] * 1000)
                                                for n in sorted(seen))))
        for n, t in seen.items():
            self.assertLess(t, PROPAGATION_LIMIT_S, "%s reached %s after %.3fs" % (what, n, t))
        return seen

    # -- tests ---------------------------------------------------------------

    def test_create_update_delete_propagate(self):
        a, c = self.admins["A"], self.admins["C"]
        for n in ("B", "C"):
            self.assertEqual(http_status(self.gws[n].port(), "/t3/echo"), 404, n)
        created = a.create_route(name="t3", path_prefix="/t3", service="echo", strip_prefix=True)
        self.assert_propagated("CreateRoute", "/t3/echo", 200)
        self.assertEqual(self.stored_version(), created.version)
        on_c = {r.name: r for r in c.list_routes()}
        self.assertIn("t3", on_c)
        self.assertEqual(on_c["t3"].version, created.version)
        self.assertEqual(on_c["t3"].path_prefix, "/t3")

        changed = a.route(name="t3", path_prefix="/t3b")
        updated = a.update_route(changed, created.version, paths=["path_prefix"])
        self.assertEqual(updated.version, created.version + 1)
        self.assertTrue(updated.strip_prefix)  # the mask kept it
        self.assert_propagated("UpdateRoute", "/t3b/echo", 200)
        self.assert_propagated("UpdateRoute (old path)", "/t3/echo", 404)
        on_c = {r.name: r for r in c.list_routes()}
        self.assertEqual((on_c["t3"].path_prefix, on_c["t3"].version), ("/t3b", updated.version))

        a.delete_route("t3", version=updated.version)
        self.assert_propagated("DeleteRoute", "/t3b/echo", 404)
        self.assertNotIn("t3", [r.name for r in c.list_routes()])
        self.assertEqual(self.stored_version(), updated.version + 1)
        self.assertEqual(self.pg.psql("SELECT count(*) FROM routes WHERE name = 't3'",
                                      self.db).strip(), "0")

    def test_concurrent_conflicting_updates(self):
        a, b = self.admins["A"], self.admins["B"]
        a.create_route(name="t4", path_prefix="/t4", service="echo", strip_prefix=True)
        for rnd in range(5):
            v0 = self.wait_converged()
            base = a.get_route("t4")
            self.assertEqual(base.version, b.get_route("t4").version)
            barrier = threading.Barrier(2)
            results = {}

            def update(name, adm, timeout_ms):
                r = adm.route(name="t4", timeout_ms=timeout_ms)
                barrier.wait(10)
                try:
                    results[name] = adm.update_route(r, base.version, paths=["timeout_ms"])
                except grpc.RpcError as e:
                    results[name] = e
            threads = [threading.Thread(target=update, args=("A", a, 1000 + rnd)),
                       threading.Thread(target=update, args=("B", b, 2000 + rnd))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            ok = {n: r for n, r in results.items() if not isinstance(r, grpc.RpcError)}
            failed = {n: r for n, r in results.items() if isinstance(r, grpc.RpcError)}
            self.assertEqual(len(ok), 1, "round %d: %s" % (rnd, results))
            self.assertEqual(len(failed), 1, "round %d: %s" % (rnd, results))
            (winner, route), = ok.items()
            (_, err), = failed.items()
            self.assertEqual(err.code(), grpc.StatusCode.ABORTED, err)
            self.assertEqual(route.version, v0 + 1)
            self.assertEqual(self.stored_version(), v0 + 1)
            want_ms = (1000 if winner == "A" else 2000) + rnd
            self.assertEqual(self.pg.psql("SELECT timeout_ms, version FROM routes WHERE name='t4'",
                                          self.db).strip(), "%d|%d" % (want_ms, v0 + 1))
            self.wait_converged()
            for n in ("A", "B", "C"):
                r = self.admins[n].get_route("t4")
                self.assertEqual((r.timeout_ms, r.version), (want_ms, v0 + 1), n)
        a.delete_route("t4")

    def test_database_stop_and_restart(self):
        a = self.admins["A"]
        a.create_route(name="t5", path_prefix="/t5", service="echo", strip_prefix=True)
        wait_statuses(self.gws, "/t5/echo", 200, 5.0)
        v0 = self.wait_converged()
        self.pg.stop()
        try:
            harness.wait_until(lambda: not any(x.health().store_connected
                                               for x in self.admins.values()),
                               timeout=10, interval=0.1, message="store_connected false")
            # Traffic keeps flowing for a while on every instance.
            end = time.monotonic() + 2.0
            n_req = 0
            while time.monotonic() < end:
                for n, g in self.gws.items():
                    for path in ("/t5/echo", "/base/echo"):
                        self.assertEqual(http_status(g.port(), path), 200, (n, path))
                        n_req += 1
            # Writes are refused promptly, on every instance.
            for n, adm in self.admins.items():
                t0 = time.monotonic()
                with self.assertRaises(grpc.RpcError) as cm:
                    adm.create_route(name="t5-" + n, path_prefix="/t5-" + n, service="echo")
                took = time.monotonic() - t0
                self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE, cm.exception)
                self.assertLess(took, 5.0, n)
                log("PostgreSQL down: %s write UNAVAILABLE after %.0f ms (%r)"
                    % (n, took * 1000, cm.exception.details()))
                h = adm.health()
                self.assertFalse(h.store_connected, n)
                self.assertEqual(h.config_version, v0, n)
            log("PostgreSQL down: %d requests, all 200" % n_req)
            for n, g in self.gws.items():
                self.assertTrue(g.running(), n)
        finally:
            t_up = time.monotonic()
            self.pg.start()
        # No gateway restarted: a write through B works again soon.
        b = self.admins["B"]

        def write():
            try:
                return b.create_route(name="t5-after", path_prefix="/t5-after", service="echo",
                                      strip_prefix=True)
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                return None
        created = harness.wait_until(write, timeout=15.0, interval=0.2,
                                     message="a write through B after the restart")
        log("PostgreSQL back: write through B succeeded %.0f ms after the restart"
            % ((time.monotonic() - t_up) * 1000))
        self.assertEqual(created.version, v0 + 1)
        seen = wait_statuses(self.gws, "/t5-after/echo", 200, 10.0)
        log("after the restart: /t5-after/echo served by %s"
            % ", ".join("%s %.0f ms" % (n, t * 1000) for n, t in sorted(seen.items())))
        self.assertEqual(self.wait_converged(), v0 + 1)
        for n in ("A", "B", "C"):
            self.assertNotIn("t5-" + n, [r.name for r in self.admins[n].list_routes()])
        a.delete_route("t5")
        a.delete_route("t5-after")

    def test_instance_resynchronises_after_missing_notifications(self):
        a_gw = self.gws["A"]
        app = "portico-%d" % a_gw.pid
        conns = self.pg.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s'"
                             % app, self.db).strip()
        self.assertEqual(conns, "2", "A's query and watch connections, by application_name")
        v0 = self.wait_converged()
        self.pg.psql("ALTER ROLE portico_a NOLOGIN")
        try:
            killed = self.pg.psql("SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM "
                                  "pg_stat_activity WHERE application_name = '%s') t" % app,
                                  self.db).strip()
            self.assertEqual(killed, "2")
            harness.wait_until(lambda: not self.admins["A"].health().store_connected,
                               timeout=5, interval=0.05, message="A notices the loss")
            b = self.admins["B"]
            b.create_route(name="t6", path_prefix="/t6", service="echo", strip_prefix=True)
            self.assert_propagated("CreateRoute through B", "/t6/echo", 200, names=("B", "C"))
            # A missed it: it keeps serving what it had.
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                self.assertEqual(http_status(a_gw.port(), "/t6/echo"), 404)
                time.sleep(0.05)
            self.assertEqual(self.admins["A"].health().config_version, v0)
        finally:
            self.pg.psql("ALTER ROLE portico_a LOGIN")
            t_login = time.monotonic()
        # No NOTIFY from here on: A must catch up by itself on reconnecting.
        self.assertEqual(self.stored_version(), v0 + 1)
        seen = wait_statuses({"A": a_gw}, "/t6/echo", 200, 15.0, interval=0.02)
        log("A resynchronised %.0f ms after its login was allowed again"
            % ((time.monotonic() - t_login) * 1000))
        del seen
        h = self.admins["A"].health()
        self.assertEqual(h.config_version, v0 + 1)
        self.assertEqual(self.admins["A"].get_route("t6").version, v0 + 1)
        self.assertEqual(self.stored_version(), v0 + 1)
        harness.wait_until(lambda: self.admins["A"].health().store_connected, timeout=10,
                           message="A connected")
        self.admins["A"].delete_route("t6")

    def test_invalid_change_is_rejected_and_not_written(self):
        v0 = self.wait_converged()
        a = self.admins["A"]
        with self.assertRaises(grpc.RpcError) as cm:
            a.create_route(name="t7", path_prefix="/t7", service="no-such-service")
        err = cm.exception
        self.assertEqual(err.code(), grpc.StatusCode.INVALID_ARGUMENT, err)
        br = a.bad_request(err)
        self.assertIsNotNone(br, "no google.rpc.BadRequest in %r" % (err.trailing_metadata(),))
        fields = [v.field for v in br.field_violations]
        self.assertIn("route.service", fields)
        self.assertEqual(self.stored_version(), v0)
        self.assertEqual(self.pg.psql("SELECT count(*) FROM routes WHERE name = 't7'",
                                      self.db).strip(), "0")
        for n, adm in self.admins.items():
            self.assertEqual(adm.health().config_version, v0, n)
            self.assertNotIn("t7", [r.name for r in adm.list_routes()], n)


if __name__ == "__main__":
    unittest.main()
