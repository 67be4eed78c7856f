"""Admin changes persist in the file store's state file ("<config>.state"):
written atomically (temp file, fsync, rename, directory fsync), kept across
restarts, never torn by kill -9, refused when damaged, and combined with
the YAML file by the rule of src/admin/control.h:

  * the YAML seeds the managed part (services, routes, ...) on first start;
  * a restart or SIGHUP with the file's managed sections unchanged (same
    hash as the one saved in the state) keeps the state, admin changes
    included;
  * once the file's managed sections change, they are applied over the
    state like `porticoctl apply` (objects absent from the file are
    deleted), as one new version.

Tests:
  RestartTest        SIGTERM then start: same routes, same versions, served.
  KillLoopTest       25 rounds of: start, admin writes from a thread, SIGKILL
                     at a random moment, restart on the same state: it starts,
                     version in [last acknowledged, last acknowledged + 1],
                     ListRoutes equals the document recorded for that
                     version; temp files of killed commits do not pile up.
  DamagedStateTest   truncated / one flipped byte: exit 1, stderr names the
                     state file; the intact file starts again with the admin
                     changes (no silent fallback to the YAML).
  YamlRuleTest       unchanged YAML keeps admin changes (restart and SIGHUP);
                     changed YAML routes replace the state's.
  UnwritableTest     state directory not writable: the file's config is
                     served, admin writes get UNAVAILABLE naming the cause.

Gateway-only (skipped with PORTICO_DIRECT=1).
Run: cd tests/integration && /usr/bin/python3 -m unittest -v test_admin_persist
"""

import glob
import itertools
import os
import random
import signal
import threading
import time
import unittest
import uuid

import grpc

import harness
import wire
from adminclient import AdminClient

HOST = "127.0.0.1"
KILL_ROUNDS = int(os.environ.get("PORTICO_KILL_ROUNDS", "25"))
KILL_LOOP_BUDGET_S = 240.0


def base_config(be, routes=None, **top):
    cfg = {
        "listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1", "h2c"]}],
        "services": [{"name": "web", "instances": [be.instance()]}],
        "routes": routes if routes is not None else [
            {"name": "yaml-a", "path_prefix": "/echo/yaml-a", "service": "web"}],
    }
    cfg.update(top)
    return cfg


def get_status(port, path):
    with wire.RawConn(HOST, port, timeout=10) as c:
        c.send(wire.request_bytes("GET", path))
        return c.read_response().status


def routes_of(admin):
    return {r["name"]: r for r in admin.call_dict("ListRoutes", {"page_size": 1000}).get("routes", [])}


def version_of(admin):
    return int(admin.call_dict("Export").get("version", 0))


def start_expecting_exit(gw):
    try:
        gw.start()
    except harness.StartError:
        pass
    return gw.wait_exit(30)


class PersistCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if harness.DIRECT:
            raise unittest.SkipTest("gateway-only")
        cls.be = harness.HttpBackend().start()

    @classmethod
    def tearDownClass(cls):
        cls.be.stop()

    def gateway(self, cfg):
        gw = harness.Portico(cfg)
        self.addCleanup(gw.__exit__, None, None, None)
        return gw

    def admin_for(self, gw):
        port = int(gw.admin_addr.rsplit(":", 1)[1])
        harness.wait_until(lambda: harness.can_connect(HOST, port), timeout=30, message="admin port")
        a = AdminClient(gw.admin_addr)
        self.addCleanup(a.close)
        return a

    def state_path(self, gw):
        return gw.config_path + ".state"


class RestartTest(PersistCase):
    def test_changes_survive_sigterm_restart(self):
        gw = self.gateway(base_config(self.be))
        gw.start()
        admin = self.admin_for(gw)
        admin.call_dict("CreateService", {"service": {"name": "svc2", "instances": [self.be.instance()]}})
        admin.call_dict("CreateRoute", {"route": {"name": "adm-1", "path_prefix": "/echo/adm-1", "service": "svc2"}})
        r = admin.call_dict("CreateRoute", {"route": {"name": "adm-2", "path_prefix": "/echo/adm-2", "service": "web"}})
        admin.call_dict("UpdateRoute", {"route_id": "adm-2", "version": r["version"],
                                   "route": {"timeout_ms": 1234}, "update_mask": "timeoutMs"})
        admin.call_dict("DeleteRoute", {"route_id": "yaml-a"})
        before_routes, before = routes_of(admin), admin.call_dict("Export")
        self.assertEqual(gw.stop(), 0)
        self.assertTrue(os.path.exists(self.state_path(gw)))
        gw.start()
        admin = self.admin_for(gw)
        self.assertEqual(routes_of(admin), before_routes)
        self.assertEqual(admin.call_dict("Export"), before)
        self.assertEqual(int(before["version"]), 6)  # seed + 5 changes
        self.assertEqual(routes_of(admin)["adm-2"]["timeout_ms"], 1234)
        port = gw.port("main")
        self.assertEqual(get_status(port, "/echo/adm-1/x"), 200)
        self.assertEqual(get_status(port, "/echo/adm-2/x"), 200)
        self.assertEqual(get_status(port, "/echo/yaml-a/x"), 404)


class KillLoopTest(PersistCase):
    def test_kill_9_never_tears_the_state(self):
        gw = self.gateway(base_config(self.be))
        gw.start()
        admin = self.admin_for(gw)
        state = self.state_path(gw)
        # A temp file of a commit killed in an earlier life (another pid).
        stale = state + ".tmp.999999"
        with open(stale, "wb") as f:
            f.write(b"PTSTATE1 half-written")
        gw.stop()
        gw.start()
        self.assertFalse(os.path.exists(stale), "a stale temp file survived a start")
        admin = self.admin_for(gw)
        docs = {version_of(admin): routes_of(admin)}  # version -> ListRoutes
        acked = max(docs)
        rng = random.Random(int(os.environ.get("PORTICO_KILL_SEED", "0")) or None)
        deadline = time.monotonic() + KILL_LOOP_BUDGET_S
        landed_inflight = written = 0
        seq = itertools.count()  # unique values: no update is ever a no-op
        for rnd in range(KILL_ROUNDS):
            self.assertLess(time.monotonic(), deadline, "kill loop over its time budget")
            model = dict(docs[acked])
            box = {"acked": acked, "inflight": None, "error": None, "n": 0}
            stop = threading.Event()

            def hammer(admin=admin, model=model, box=box, stop=stop, rnd=rnd):
                while not stop.is_set():
                    k = next(seq)
                    names = sorted(n for n in model if n.startswith("h"))
                    nv = box["acked"] + 1
                    op = rng.choice(["create", "create", "update", "delete"]) if names else "create"
                    try:
                        if op == "create":
                            name = "h%d" % k
                            after = dict(model)
                            after[name] = None
                            box["inflight"] = (nv, after)
                            out = admin.call_dict("CreateRoute", {"route": {
                                "name": name, "path_prefix": "/echo/%s" % name, "service": "web",
                                "timeout_ms": 1000 + k}}, timeout=10)
                            model[name] = out
                        elif op == "update":
                            name = rng.choice(names)
                            after = dict(model)
                            after[name] = None
                            box["inflight"] = (nv, after)
                            out = admin.call_dict("UpdateRoute", {
                                "route_id": name, "version": model[name]["version"],
                                "route": {"timeout_ms": 5000 + k}, "update_mask": "timeoutMs"}, timeout=10)
                            model[name] = out
                        else:
                            name = rng.choice(names)
                            after = dict(model)
                            del after[name]
                            box["inflight"] = (nv, after)
                            admin.call_dict("DeleteRoute", {"route_id": name}, timeout=10)
                            del model[name]
                    except grpc.RpcError as exc:
                        if exc.code() != grpc.StatusCode.UNAVAILABLE:
                            box["error"] = "%s: %s %s" % (op, exc.code(), exc.details())
                        return
                    # Acknowledged: the document at nv is now known exactly.
                    if op != "delete" and int(out["version"]) != nv:
                        box["error"] = "%s answered version %s, expected %d" % (op, out["version"], nv)
                        return
                    docs[nv] = dict(model)
                    box["acked"] = nv
                    box["inflight"] = None
                    box["n"] += 1

            th = threading.Thread(target=hammer, daemon=True)
            th.start()
            time.sleep(rng.uniform(0.02, 0.5))
            os.kill(gw.pid, signal.SIGKILL)
            gw.proc.wait(timeout=30)
            stop.set()
            th.join(timeout=30)
            self.assertFalse(th.is_alive())
            self.assertIsNone(box["error"], "round %d" % rnd)
            written += box["n"]
            temps = glob.glob(glob.escape(state) + ".tmp.*")
            self.assertLessEqual(len(temps), 1, "temp files piled up: %s" % temps)
            admin.close()
            gw.start()  # must start: never a torn state
            self.assertEqual(glob.glob(glob.escape(state) + ".tmp.*"), [], "round %d" % rnd)
            admin = self.admin_for(gw)
            v, got = version_of(admin), routes_of(admin)
            last = box["acked"]
            self.assertIn(v, (last, last + 1), "round %d: version %d after last ack %d" % (rnd, v, last))
            if v == last:
                self.assertEqual(got, docs[last], "round %d: document of version %d" % (rnd, v))
            else:
                self.assertIsNotNone(box["inflight"], "round %d: version moved without a write" % rnd)
                iv, after = box["inflight"]
                self.assertEqual(iv, v)
                self.assertEqual(set(got), set(after), "round %d: in-flight write landed torn" % rnd)
                for name, r in after.items():
                    if r is not None:
                        self.assertEqual(got[name], r, "round %d: %s" % (rnd, name))
                landed_inflight += 1
                docs[v] = got
            acked = v
            if got:
                name = sorted(got)[-1]
                self.assertEqual(get_status(gw.port("main"), got[name]["path_prefix"] + "/x"), 200)
        self.assertGreater(written, KILL_ROUNDS, "too few acknowledged writes to mean anything")
        print("\nkill loop: %d rounds, %d acknowledged writes, %d in-flight writes landed"
              % (KILL_ROUNDS, written, landed_inflight))


class DamagedStateTest(PersistCase):
    def test_damaged_state_refuses_to_start(self):
        gw = self.gateway(base_config(self.be))
        gw.start()
        admin = self.admin_for(gw)
        admin.call_dict("CreateRoute", {"route": {"name": "keep-me", "path_prefix": "/echo/keep", "service": "web"}})
        want = routes_of(admin)
        admin.close()
        self.assertEqual(gw.stop(), 0)
        state = self.state_path(gw)
        with open(state, "rb") as f:
            good = f.read()
        damages = {
            "truncated": good[:len(good) // 2],
            "empty": b"",
            "flipped byte": good[:len(good) // 2] + bytes([good[len(good) // 2] ^ 0x10]) + good[len(good) // 2 + 1:],
            "flipped version": good[:8] + bytes([good[8] ^ 0x01]) + good[9:],
        }
        for what, data in damages.items():
            with open(state, "wb") as f:
                f.write(data)
            mark = len(gw.stderr)
            self.assertEqual(start_expecting_exit(gw), 1, what)
            err = gw.stderr[mark:]
            self.assertIn(state, err, "%s: the message must name the state file:\n%s" % (what, err))
            self.assertRegex(err, r"(?i)damaged|checksum|not a portico state file|length", what)
            with open(state, "rb") as f:
                self.assertEqual(f.read(), data, "%s: the damaged file was changed" % what)
        with open(state, "wb") as f:
            f.write(good)
        gw.start()
        admin = self.admin_for(gw)
        self.assertEqual(routes_of(admin), want)
        self.assertEqual(get_status(gw.port("main"), "/echo/keep/x"), 200)


class YamlRuleTest(PersistCase):
    def test_unchanged_yaml_keeps_admin_changes_changed_yaml_applies(self):
        cfg = base_config(self.be)
        gw = self.gateway(cfg)
        gw.start()
        admin = self.admin_for(gw)
        admin.call_dict("CreateRoute", {"route": {"name": "adm", "path_prefix": "/echo/adm", "service": "web"}})
        v1, routes1 = version_of(admin), routes_of(admin)
        self.assertEqual(set(routes1), {"yaml-a", "adm"})
        # Restart, YAML unchanged: the state (with "adm") runs.
        admin.close()
        gw.stop()
        gw.start()
        admin = self.admin_for(gw)
        self.assertEqual((version_of(admin), routes_of(admin)), (v1, routes1))
        # SIGHUP, YAML unchanged (rewritten identically): still the state.
        self.assertTrue(gw.reload(cfg, wait_for=r"configuration generation \d+ loaded", settle=10))
        self.assertEqual((version_of(admin), routes_of(admin)), (v1, routes1))
        self.assertEqual(get_status(gw.port("main"), "/echo/adm/x"), 200)
        # SIGHUP with the YAML's routes edited: the file's routes replace the state's.
        cfg2 = base_config(self.be, routes=[
            {"name": "yaml-a", "path_prefix": "/echo/yaml-a2", "service": "web"},
            {"name": "yaml-b", "path_prefix": "/echo/yaml-b", "service": "web"}])
        self.assertTrue(gw.reload(cfg2, wait_for=r"configuration generation \d+ loaded", settle=10))
        routes2 = routes_of(admin)
        self.assertEqual(set(routes2), {"yaml-a", "yaml-b"})
        self.assertEqual(routes2["yaml-a"]["path_prefix"], "/echo/yaml-a2")
        self.assertEqual(version_of(admin), v1 + 1)
        port = gw.port("main")
        self.assertEqual(get_status(port, "/echo/adm/x"), 404)
        self.assertEqual(get_status(port, "/echo/yaml-b/x"), 200)
        # An admin change on top, then a restart with the YAML edited again.
        admin.call_dict("CreateRoute", {"route": {"name": "adm2", "path_prefix": "/echo/adm2", "service": "web"}})
        admin.close()
        gw.stop()
        gw._template = base_config(self.be, routes=[
            {"name": "yaml-c", "path_prefix": "/echo/yaml-c", "service": "web"}])
        gw.start()
        admin = self.admin_for(gw)
        self.assertEqual(set(routes_of(admin)), {"yaml-c"})
        self.assertEqual(version_of(admin), v1 + 3)
        # And once more unchanged: the seed hash was saved, the state stays.
        admin.call_dict("CreateRoute", {"route": {"name": "adm3", "path_prefix": "/echo/adm3", "service": "web"}})
        v4, routes4 = version_of(admin), routes_of(admin)
        admin.close()
        gw.stop()
        gw.start()
        admin = self.admin_for(gw)
        self.assertEqual((version_of(admin), routes_of(admin)), (v4, routes4))


class UnwritableTest(PersistCase):
    def unwritable_state_path(self):
        if os.geteuid() != 0:
            d = harness.TempDir(prefix="portico-ro-")
            self.addCleanup(d.cleanup)
            os.chmod(d.path, 0o555)
            self.addCleanup(os.chmod, d.path, 0o755)
            return d.join("portico.state")
        # root ignores directory modes; sysfs refuses new files even to root.
        if os.access("/sys", os.W_OK) and not os.path.isdir("/sys/kernel"):
            self.skipTest("no directory that root cannot write to")
        return "/sys/portico-it-%s.state" % uuid.uuid4().hex[:12]

    def test_unwritable_state_dir_serves_file_refuses_writes(self):
        path = self.unwritable_state_path()
        admin_port = harness.free_port()
        cfg = base_config(self.be, admin={"address": "127.0.0.1:%d" % admin_port, "state_file": path})
        gw = self.gateway(cfg)
        gw.start()
        admin = self.admin_for(gw)
        self.assertEqual(get_status(gw.port("main"), "/echo/yaml-a/x"), 200)
        self.assertIn("yaml-a", routes_of(admin))
        self.assertIn(path, gw.stderr, "the log must say which state file cannot be written")
        with self.assertRaises(grpc.RpcError) as cm:
            admin.call_dict("CreateRoute", {"route": {"name": "no", "path_prefix": "/echo/no", "service": "web"}})
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertRegex(cm.exception.details(), r"(?i)store.*(not writable|permission|read-only)")
        self.assertEqual(get_status(gw.port("main"), "/echo/no/x"), 404)
        self.assertFalse(os.path.exists(path))


if __name__ == "__main__":
    unittest.main()
