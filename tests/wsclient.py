"""A small WebSocket client and test harness for wspush's socket tests.

Python standard library only, written from RFC 6455, sharing no code with
the server, so the two cannot share a misreading. It builds frames by
hand, which lets the tests send exactly the broken bytes they mean to.

Every test prints "PASS: name", "FAIL: name: why" or "SKIPPED: name: why";
test.sh counts those lines.
"""
import base64
import hashlib
import json
import os
import re
import shlex
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "out")
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TIMEOUT = 5.0   # seconds any single wait may take

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10

failures = 0


def seed_dir():
    """The folder with the article's server.js and text: $WSPUSH_SEED, or
    shared/seed beside the checkout (or one level further up). Returns
    (folder or None, the places looked at)."""
    places = [os.environ["WSPUSH_SEED"]] if os.environ.get("WSPUSH_SEED") else [
        os.path.join(ROOT, "..", "shared", "seed"),
        os.path.join(ROOT, "..", "..", "shared", "seed")]
    for place in places:
        if os.path.exists(os.path.join(place, "server.js")):
            return os.path.abspath(place), places
    return None, places


def report(name, ok, why=""):
    """Print one result line; remember failures for the exit status."""
    global failures
    if ok:
        print("PASS: %s" % name, flush=True)
    else:
        failures += 1
        print("FAIL: %s: %s" % (name, why), flush=True)


def skipped(name, why):
    """A part that cannot run here. Under CI (CI=true), where .ci/run
    installs everything, that is a failure."""
    if os.environ.get("CI"):
        report(name, False, "cannot run: " + why)
    else:
        print("SKIPPED: %s: %s" % (name, why), flush=True)


class Skip:
    """Returned by a case that cannot run here."""
    def __init__(self, why):
        self.why = why


class Partly:
    """Returned by a case that passed all it could check here; the line
    says what it left out (memory, under a sanitizer)."""
    def __init__(self, left_out):
        self.left_out = left_out


def sanitized():
    """True when the server runs under a sanitizer or valgrind: its memory
    use means nothing then."""
    return os.environ.get("WSPUSH_TAG") in ("asan", "valgrind")


def binary():
    """The wspush under test: $WSPUSH's program (without a wrapper such as
    valgrind), or ./wspush."""
    return os.path.join(ROOT, shlex.split(os.environ.get("WSPUSH", "./wspush"))[-1])


def build_shim(source):
    """Compile C source into a shared object for LD_PRELOAD, or return a
    Skip when the build under test cannot take one (sanitizers, valgrind,
    a static musl build). The caller removes the folder it lies in."""
    if os.environ.get("WSPUSH_TAG") in ("asan", "valgrind", "musl"):
        return Skip("LD_PRELOAD does not work with the %s build" % os.environ["WSPUSH_TAG"])
    folder = tempfile.mkdtemp(prefix="wspush-shim-")
    with open(os.path.join(folder, "shim.c"), "w") as f:
        f.write(source)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", os.path.join(folder, "shim.so"),
                    os.path.join(folder, "shim.c"), "-ldl"], check=True)
    return os.path.join(folder, "shim.so")


def where(e):
    """The place in a test file (not in this helper) where e was raised."""
    frames = [f for f in traceback.extract_tb(e.__traceback__)
              if os.path.basename(f.filename) != "wsclient.py"]
    f = frames[-1] if frames else traceback.extract_tb(e.__traceback__)[-1]
    return "%s:%d" % (os.path.basename(f.filename), f.lineno)


def case(name):
    """Decorator: run the function as one test; an exception is a FAIL,
    reported with the test's own line."""
    def wrap(fn):
        def run(*args, **kw):
            try:
                result = fn(*args, **kw)
            except Exception as e:   # the test's own failure, reported
                report(name, False, "%s: %s (%s)" % (type(e).__name__, e, where(e)))
                return
            if result is None or result is True:
                report(name, True)
            elif isinstance(result, Skip):
                skipped(name, result.why)
            elif isinstance(result, Partly):
                report("%s [not checked here: %s]" % (name, result.left_out), True)
            else:
                report(name, False, str(result))
        run.__name__ = fn.__name__
        return run
    return wrap


def expect(cond, why):
    if not cond:
        raise AssertionError(why)


def mask_bytes(payload, key):
    """XOR payload with the 4-byte key repeated (RFC 6455 §5.3), fast
    enough for 16 MiB: one big-integer XOR instead of a byte loop."""
    n = len(payload)
    if n == 0:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(stream, "little")).to_bytes(n, "little")


def new_key():
    return base64.b64encode(os.urandom(16)).decode()


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


class Server:
    """wspush started on a free loopback port, its log in tests/out. With
    slow_log=N, its stdout is a pipe read at N bytes a second, as a slow
    terminal would (what is read still goes to the log file)."""

    def __init__(self, *args, env=None, cwd=None, name="wspush", preexec=None, slow_log=None):
        os.makedirs(OUT, exist_ok=True)
        # $WSPUSH may name another build or a wrapper ("valgrind ./wspush");
        # $WSPUSH_TAG prefixes the log names, so test.sh can find them.
        command = shlex.split(os.environ.get("WSPUSH", "./wspush"))
        command[-1] = os.path.join(ROOT, command[-1])
        tag = os.environ.get("WSPUSH_TAG")
        self.logpath = os.path.join(OUT, "%s%s-%d-%d.log" % (
            tag + "-" if tag else "", name, os.getpid(), int(time.time() * 1000) % 100000))
        self.logfile = open(self.logpath, "w+b")
        full_env = dict(os.environ)
        full_env.pop("WSPUSH_ADMIN_TOKEN", None)
        full_env.update(env or {})
        cmd = command + ["-p", "0"] + list(args)
        if "-b" not in args:
            cmd += ["-b", "127.0.0.1"]
        out = subprocess.PIPE if slow_log else self.logfile
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                     env=full_env, cwd=cwd or ROOT, preexec_fn=preexec)
        if slow_log:
            threading.Thread(target=self._read_slowly, args=(slow_log,), daemon=True).start()
        self.port = None
        deadline = time.time() + 30     # valgrind starts slowly
        while time.time() < deadline and self.port is None:
            m = re.search(rb"Server is listening on port (\d+)", self.log_bytes())
            if m:
                self.port = int(m.group(1))
            elif self.proc.poll() is not None:
                break
            else:
                time.sleep(0.01)
        if self.port is None:
            self.stop()
            raise RuntimeError("wspush did not start: %r" % self.log_bytes()[-500:])

    def _read_slowly(self, rate):
        """Copy the server's stdout to the log file, rate bytes a second."""
        tick = 0.05
        while True:
            chunk = self.proc.stdout.read1(max(1, int(rate * tick)))
            if not chunk:
                return
            self.logfile.write(chunk)
            self.logfile.flush()
            time.sleep(tick)

    def log_bytes(self):
        with open(self.logpath, "rb") as f:
            return f.read()

    def log(self):
        return self.log_bytes().decode("utf-8", "replace")

    def wait_log(self, pattern, timeout=TIMEOUT):
        """Wait until the log matches the regular expression."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if re.search(pattern, self.log()):
                return True
            time.sleep(0.02)
        return False

    def rss_kb(self, field="VmHWM"):
        """The server's peak (VmHWM) or current (VmRSS) memory, in KiB."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise RuntimeError("no %s" % field)

    def stop(self, sig=signal.SIGTERM):
        """Stop the server by its PID; return its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logfile.close()
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def http_request(port, raw, timeout=TIMEOUT, host="127.0.0.1", source=None):
    """Send raw bytes, read until the server closes; return (status,
    headers dict with lowercase names, body bytes)."""
    s = socket.create_connection((host, port), timeout=timeout, source_address=source)
    try:
        s.sendall(raw)
        data = read_all(s, timeout)
    finally:
        s.close()
    return parse_response(data)


def read_all(s, timeout=TIMEOUT):
    data = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        s.settimeout(max(0.01, deadline - time.time()))
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def parse_response(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", lines[0]) if lines else None
    status = int(m.group(1)) if m else None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.decode().strip().lower()] = value.decode().strip()
    return status, headers, body


def upgrade_request(key, protocols=("echo-protocol",), path="/", origin=None, extra="",
                    host="127.0.0.1"):
    req = ("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
           "Sec-WebSocket-Version: 13\r\n" % (path, host, key))
    if protocols:
        req += "Sec-WebSocket-Protocol: %s\r\n" % ", ".join(protocols)
    if origin:
        req += "Origin: %s\r\n" % origin
    return (req + extra + "\r\n").encode()


class HandshakeRefused(Exception):
    def __init__(self, status, headers, body):
        Exception.__init__(self, "handshake refused: %s %r" % (status, body))
        self.status, self.headers, self.body = status, headers, body


class Client:
    """One WebSocket connection with hand-built frames."""

    def __init__(self, port, key=None, protocols=("echo-protocol",), origin=None,
                 host="127.0.0.1", source=None, request=None, extra="", host_header=None):
        self.key = key or new_key()
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT,
                                             source_address=source)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.sock.sendall(request or upgrade_request(
            self.key, protocols, origin=origin, extra=extra,
            host=host_header or ("[%s]" % host if ":" in host else host)))
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        head, sep, self.buf = self.buf.partition(b"\r\n\r\n")
        status, headers, _ = parse_response(head + sep)
        self.status, self.headers = status, headers
        if status != 101:
            body = self.buf + read_all(self.sock, 1.0)
            self.sock.close()
            raise HandshakeRefused(status, headers, body)
        expect(headers.get("sec-websocket-accept") == accept_for(self.key),
               "wrong Sec-WebSocket-Accept: %r" % headers)
        self.protocol = headers.get("sec-websocket-protocol")

    # -- sending

    @staticmethod
    def frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length=None):
        """Bytes of one client frame; length overrides the length field."""
        n = len(payload) if length is None else length
        head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
        mbit = 0x80 if mask else 0
        if n < 126:
            head += bytes([mbit | n])
        elif n < 65536:
            head += bytes([mbit | 126]) + struct.pack("!H", n)
        else:
            head += bytes([mbit | 127]) + struct.pack("!Q", n)
        if not mask:
            return head + payload
        key = os.urandom(4)
        return head + key + mask_bytes(payload, key)

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", **kw):
        self.sock.sendall(self.frame(opcode, payload, **kw))

    def send_text(self, text):
        self.send_frame(OP_TEXT, text.encode() if isinstance(text, str) else text)

    def send_json(self, obj):
        self.send_text(json.dumps(obj, separators=(",", ":"), ensure_ascii=False))

    def close(self, code=1000):
        """Close handshake from our side: returns the code the server echoed."""
        self.send_frame(OP_CLOSE, struct.pack("!H", code) if code else b"")
        op, payload = self.recv_frame()
        expect(op == OP_CLOSE, "expected a close frame, got opcode %d" % op)
        expect(self.wait_eof(), "server did not close TCP after the close handshake")
        self.sock.close()
        return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None

    # -- receiving

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("no data from the server")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("server closed the connection")
            self.buf += chunk

    def recv_frame(self, timeout=TIMEOUT):
        """One server frame as (opcode, payload); checks it is unmasked,
        has no RSV bits and is not fragmented (wspush never fragments)."""
        deadline = time.time() + timeout
        self._fill(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        expect(b1 & 0x80 == 0, "server frames must not be masked")
        expect(b0 & 0x70 == 0, "server set RSV bits")
        expect(b0 & 0x80, "server sent a fragment")
        n, at = b1 & 0x7f, 2
        if n == 126:
            self._fill(4, deadline)
            n, at = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._fill(10, deadline)
            n, at = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._fill(at + n, deadline)
        payload = self.buf[at:at + n]
        self.buf = self.buf[at + n:]
        return b0 & 0x0f, payload

    def recv_text(self, timeout=TIMEOUT):
        op, payload = self.recv_frame(timeout)
        expect(op == OP_TEXT, "expected text, got opcode %d (%r)" % (op, payload[:80]))
        return payload

    def recv_json(self, timeout=TIMEOUT):
        return json.loads(self.recv_text(timeout))

    def expect_close(self, timeout=TIMEOUT):
        """Wait for the server's close frame, skipping data; return
        (code, reason), and check the TCP connection ends soon after."""
        deadline = time.time() + timeout
        while True:
            op, payload = self.recv_frame(max(0.01, deadline - time.time()))
            if op == OP_CLOSE:
                break
        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        return code, payload[2:].decode("utf-8", "replace")

    def wait_eof(self, timeout=TIMEOUT):
        """True if the server closes the TCP connection within timeout."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.time()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
            if not chunk:
                return True
        return False

    def end_of_stream(self, timeout=TIMEOUT):
        """How the server ended the TCP connection, reading (and dropping)
        what comes first: "eof" (FIN), "reset" (RST) or "timeout"."""
        deadline = time.time() + timeout
        self.buf = b""
        while time.time() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.time()))
            try:
                if not self.sock.recv(1 << 16):
                    return "eof"
            except socket.timeout:
                break
            except ConnectionResetError:
                return "reset"
        return "timeout"

    def quiet_for(self, seconds):
        """True if nothing arrives for that long."""
        if self.buf:
            return False
        self.sock.settimeout(seconds)
        try:
            chunk = self.sock.recv(1)
        except socket.timeout:
            return True
        self.buf += chunk
        return False

    def drop(self):
        self.sock.close()


def finish():
    """Exit non-zero if any test failed."""
    sys.exit(1 if failures else 0)
