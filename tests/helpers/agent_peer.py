#!/usr/bin/env python3
"""A hand-driven client of `qmigrate agent` for the tests: what the
qmigrate CLI will not do (no certificate, malformed or oversized lines,
vanishing at chosen moments). Speaks docs/PROTOCOL.md over mutual TLS.

  agent_peer.py HOST PORT CERTDIR|- ACTION [ARGS]
    hello                   hello, print the reply; exit 0 when ok
    raw TEXT                send TEXT (\\n escapes) after nothing, print the reply line
    rawall TEXT             the same, printing every reply line until the agent closes
    oversize                hello, then a 70000-byte line; print the reply
    status                  hello + status; print the reply
    prepare JOB PROFILE [K=V..]  hello + prepare; print the reply; then close
    hold JOB PROFILE        hello + prepare + QMP tunnel + migrate-incoming;
                            print "PORT <n>" then "RUNNING" once the destination
                            runs; then wait forever (the test kills us)
CERTDIR: ca-cert.pem client-cert.pem client-key.pem; '-' sends no certificate
(the CA is then read from $AGENT_CA).
"""
import json, os, socket, ssl, sys, time


def connect(host, port, certdir):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ca = os.path.join(certdir, "ca-cert.pem") if certdir != "-" else os.environ["AGENT_CA"]
    ctx.load_verify_locations(ca)
    if certdir != "-":
        ctx.load_cert_chain(os.path.join(certdir, "client-cert.pem"),
                            os.path.join(certdir, "client-key.pem"))
    s = socket.create_connection((host, int(port)), timeout=20)
    return ctx.wrap_socket(s, server_hostname=host)


class Lines:
    def __init__(self, s):
        self.s, self.buf = s, b""

    def send(self, obj):
        self.s.sendall((json.dumps(obj) + "\n").encode())

    def recv(self):
        while b"\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("closed")
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)


def hello(c):
    c.send({"op": "hello", "version": 1, "client": "agent_peer"})
    return c.recv()


def qmp_call(sock, buf, cmd, args=None):
    msg = {"execute": cmd}
    if args:
        msg["arguments"] = args
    sock.sendall((json.dumps(msg) + "\n").encode())
    while True:
        while b"\n" not in buf[0]:
            d = sock.recv(65536)
            if not d:
                raise EOFError("tunnel closed")
            buf[0] += d
        line, buf[0] = buf[0].split(b"\n", 1)
        m = json.loads(line)
        if "return" in m or "error" in m:
            return m


def main():
    host, port, certdir, action = sys.argv[1:5]
    rest = sys.argv[5:]
    try:
        s = connect(host, port, certdir)
        c = Lines(s)
        if action == "hello":
            r = hello(c)
            print(json.dumps(r))
            return 0 if r.get("ok") else 1
        if action == "raw":
            s.sendall(rest[0].encode().decode("unicode_escape").encode())
            print(json.dumps(c.recv()))
            return 0
        if action == "rawall":
            # every reply line until the agent closes (or 5 s of silence)
            s.sendall(rest[0].encode().decode("unicode_escape").encode())
            s.settimeout(5)
            try:
                while True:
                    print(json.dumps(c.recv()))
            except (EOFError, socket.timeout, ssl.SSLError, OSError):
                pass
            return 0
        if action == "oversize":
            hello(c)
            s.sendall(b'{"op":"ping","pad":"' + b"x" * 70000)
            print(json.dumps(c.recv()))
            return 0
        if action == "status":
            hello(c)
            c.send({"op": "status"})
            print(json.dumps(c.recv()))
            return 0
        if action in ("prepare", "hold"):
            hello(c)
            sets = dict(kv.split("=", 1) for kv in rest[2:])
            c.send({"op": "prepare", "job": rest[0], "profile": rest[1],
                    "vm": {}, "set": sets})
            r = c.recv()
            while r.get("status") == "queued":
                r = c.recv()
            print(json.dumps(r), flush=True)
            if action == "prepare" or not r.get("ok"):
                return 0 if r.get("ok") else 1
            t = connect(host, port, certdir)
            tl = Lines(t)
            hello(tl)
            tl.send({"op": "qmp", "job": rest[0], "token": r["token"]})
            tr = tl.recv()
            if not tr.get("ok"):
                print(json.dumps(tr))
                return 1
            buf = [tl.buf]
            qmp_call(t, buf, "qmp_capabilities")
            uri = "tcp:%s:%d" % (r["listen_addr"], r["port"])
            qmp_call(t, buf, "migrate-incoming", {"uri": uri})
            print("PORT %d" % r["port"], flush=True)
            while True:
                st = qmp_call(t, buf, "query-status")
                if st.get("return", {}).get("status") == "running":
                    print("RUNNING", flush=True)
                    break
                time.sleep(0.05)
            while True:
                time.sleep(3600)
        print("unknown action " + action, file=sys.stderr)
        return 2
    except (OSError, EOFError, ssl.SSLError, ValueError) as e:
        print("ERROR %s: %s" % (type(e).__name__, e))
        return 1


sys.exit(main())
