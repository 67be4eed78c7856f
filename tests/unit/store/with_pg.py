"""Run a test program against a throw-away PostgreSQL (tests/integration/pgserver.py).

    with_pg.py PROGRAM [ARGS...]

The program gets, in its environment:
  PT_TEST_PG_URI_PREFIX  "postgresql://portico@127.0.0.1:<port>/": append a database name
  PT_TEST_PG_CTL         "<read fd>,<write fd>": write "stop\n" or "start\n" to the
                         write fd to stop or start the server; "ok\n" (or "error ...")
                         comes back on the read fd once it is done.
Exit status: the program's.
"""
import os
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "integration"))
from pgserver import PgServer  # noqa: E402


def serve(pg, cmd_r, reply_w):
    with os.fdopen(cmd_r, "r") as cmds, os.fdopen(reply_w, "w") as replies:
        for line in cmds:
            try:
                {"stop": pg.stop, "start": pg.start}[line.strip()]()
                replies.write("ok\n")
            except Exception as e:  # reported to the program, which fails the test
                replies.write("error %s\n" % str(e).replace("\n", " "))
            replies.flush()


def main():
    pg = PgServer()
    try:
        pg.start()
        cmd_r, cmd_w = os.pipe()      # program -> us
        reply_r, reply_w = os.pipe()  # us -> program
        env = dict(os.environ,
                   PT_TEST_PG_URI_PREFIX=pg.uri_for(""),
                   PT_TEST_PG_CTL="%d,%d" % (reply_r, cmd_w))
        proc = subprocess.Popen(sys.argv[1:], env=env, pass_fds=(reply_r, cmd_w))
        os.close(reply_r)
        os.close(cmd_w)
        t = threading.Thread(target=serve, args=(pg, cmd_r, reply_w), daemon=True)
        t.start()
        rc = proc.wait()
        if rc != 0:
            sys.stderr.write("--- postgres log (tail) ---\n%s\n" % pg.log_tail())
        return rc
    finally:
        pg.cleanup()


if __name__ == "__main__":
    sys.exit(main())
