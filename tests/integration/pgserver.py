"""A throw-away PostgreSQL server for tests.

    from pgserver import PgServer
    pg = PgServer()          # initdb into a temp dir (nothing started yet)
    pg.start()               # postgres on 127.0.0.1:<free port>, socket in the temp dir
    pg.uri                   # "postgresql://portico@127.0.0.1:<port>/postgres"
    pg.uri_for("other")      # same server, another database
    pg.psql("SELECT 1")      # run SQL through psql, returns stdout (raises on error)
    pg.create_database("t1")
    pg.stop()                # fast shutdown of the postmaster, by its PID
    pg.restart()             # stop + start on the same port and data directory
    pg.cleanup()             # stop and remove the temp dir (also on interpreter exit)

PostgreSQL refuses to run as root. When the tests run as root (CI on a fresh
Debian 12) the server runs as the `postgres` user the Debian package creates,
or as `nobody`; the temp dir is handed to that user. Binaries come from
$PORTICO_PG_BIN, else the newest /usr/lib/postgresql/<v>/bin, else PATH.

Run as a script it starts a server, prints its URI and waits for stdin to
close (handy by hand): /usr/bin/python3 tests/integration/pgserver.py
"""

import atexit
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SUPERUSER = "portico"


def _bindir():
    env = os.environ.get("PORTICO_PG_BIN")
    if env:
        return env
    dirs = glob.glob("/usr/lib/postgresql/*/bin")
    dirs.sort(key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0)
    for d in reversed(dirs):
        if os.path.exists(os.path.join(d, "postgres")):
            return d
    found = shutil.which("postgres")
    if found:
        return os.path.dirname(found)
    raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as():
    """(uid, gid) to run the server as, or None to run as ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pw = pwd.getpwnam(name)
            return pw.pw_uid, pw.pw_gid
        except KeyError:
            continue
    raise RuntimeError("running as root and neither user postgres nor nobody exists")


class PgServer:
    def __init__(self, port=None):
        self.bindir = _bindir()
        self.dir = tempfile.mkdtemp(prefix="portico-pg-")
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "postgres.log")
        self.port = port or _free_port()
        self.proc = None
        self._as = _run_as()
        if self._as:
            os.chown(self.dir, *self._as)
        self._user_kw = {}
        if self._as:
            self._user_kw = {"user": self._as[0], "group": self._as[1], "extra_groups": []}
        subprocess.run(
            [os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", SUPERUSER,
             "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            cwd=self.dir, **self._user_kw)
        atexit.register(self.cleanup)

    @property
    def uri(self):
        return self.uri_for("postgres")

    def uri_for(self, dbname):
        return "postgresql://%s@127.0.0.1:%d/%s" % (SUPERUSER, self.port, dbname)

    def start(self, timeout=30):
        if self.proc and self.proc.poll() is None:
            return
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [os.path.join(self.bindir, "postgres"), "-D", self.data, "-p", str(self.port),
             "-k", self.dir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
             "-c", "full_page_writes=off", "-c", "synchronous_commit=off"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=self.dir,
            start_new_session=True, **self._user_kw)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited with %d:\n%s" % (self.proc.returncode,
                                                                    self.log_tail()))
            r = subprocess.run([os.path.join(self.bindir, "pg_isready"), "-q", "-h", "127.0.0.1",
                                "-p", str(self.port), "-U", SUPERUSER, "-d", "postgres"])
            if r.returncode == 0:
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("postgres did not become ready in %ds:\n%s" % (timeout, self.log_tail()))

    def stop(self, timeout=30):
        """Fast shutdown (SIGINT to the postmaster): clients are disconnected."""
        if not self.proc:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGQUIT)  # immediate shutdown
                self.proc.wait(timeout)
        self.proc = None

    def restart(self):
        self.stop()
        self.start()

    def cleanup(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n=4000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def psql(self, sql, dbname="postgres"):
        """Run sql with psql (unaligned, tuples only); stdout, or CalledProcessError."""
        r = subprocess.run(
            [os.path.join(self.bindir, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-d", self.uri_for(dbname), "-c", sql],
            check=True, capture_output=True, text=True)
        return r.stdout

    def create_database(self, name):
        self.psql('CREATE DATABASE "%s"' % name.replace('"', '""'))
        return self.uri_for(name)


if __name__ == "__main__":
    pg = PgServer()
    pg.start()
    print(pg.uri, flush=True)
    try:
        sys.stdin.read()
    finally:
        pg.cleanup()
