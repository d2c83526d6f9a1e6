#!/usr/bin/env python3
"""tests/proxies.py -- wss:// through the configurations in contrib/: nginx
and Apache httpd (mod_proxy_wstunnel) run as ordinary processes on free
ports, with a throwaway self-signed certificate, in front of wspush.

Through each: Python's websockets over wss:// (echo, a push reaching a
user, close 1000); a proxied client without the token is refused admin;
two clients with different addresses are counted apart by -c; and
Chromium loads user.html and admin.html over https and the push reaches
the page. Runs on /usr/bin/python3 (Debian's websockets)."""
import asyncio
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

from wsclient import (OUT, ROOT, Client, Server, case, expect, finish, report, skipped, TIMEOUT)

try:
    import websockets
except ImportError:
    websockets = None

TOKEN = "proxy test token"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, seconds=15):
    deadline = time.time() + seconds
    while time.time() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def make_cert(folder):
    crt, key = os.path.join(folder, "test.crt"), os.path.join(folder, "test.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", key, "-out", crt], check=True, capture_output=True)
    return crt, key


def contrib(name, port, upstream, crt, key):
    """The file from contrib/, with this test's ports and certificate."""
    with open(os.path.join(ROOT, "contrib", name)) as f:
        text = f.read()
    listen = ("listen 443 ssl", "listen 127.0.0.1:%d ssl" % port) if "nginx" in name else \
             ("<VirtualHost *:443>", "<VirtualHost 127.0.0.1:%d>" % port)
    for old, new in (listen, ("127.0.0.1:8080", "127.0.0.1:%d" % upstream),
                     ("/etc/ssl/certs/wspush.crt", crt), ("/etc/ssl/private/wspush.key", key)):
        expect(old in text, "contrib/%s lacks %r" % (name, old))
        text = text.replace(old, new)
    return text


def start_nginx(folder, port, upstream, crt, key):
    conf = os.path.join(folder, "nginx.conf")
    with open(conf, "w") as f:
        f.write("daemon off;\nmaster_process off;\npid %s/nginx.pid;\n"
                "error_log %s/nginx-error.log;\nevents {}\nhttp {\n"
                "access_log off;\nclient_body_temp_path %s;\nproxy_temp_path %s;\n"
                "fastcgi_temp_path %s;\nuwsgi_temp_path %s;\nscgi_temp_path %s;\n%s\n}\n"
                % ((folder,) * 7 + (contrib("nginx-wspush.conf", port, upstream, crt, key),)))
    return subprocess.Popen(["nginx", "-p", folder, "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(OUT, "nginx.err"), "w"))


def start_apache(folder, port, upstream, crt, key):
    mods = "/usr/lib/apache2/modules"
    conf = os.path.join(folder, "httpd.conf")
    with open(conf, "w") as f:
        f.write("ServerRoot %s\nListen 127.0.0.1:%d\nPidFile %s/httpd.pid\n"
                "ErrorLog %s/apache-error.log\nLogLevel warn\nServerName localhost\n"
                "Mutex file:%s\n" % (folder, port, folder, folder, folder))
        for mod in ("mpm_event", "authz_core", "ssl", "socache_shmcb", "proxy", "proxy_http",
                    "proxy_wstunnel", "headers"):
            f.write("LoadModule %s_module %s/mod_%s.so\n" % (mod, mods, mod))
        if os.geteuid() == 0:
            f.write("User nobody\nGroup nogroup\n")
        f.write(contrib("apache-wspush.conf", port, upstream, crt, key))
    return subprocess.Popen(["apache2", "-X", "-f", conf], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(OUT, "apache.err"), "w"),
                            env=dict(os.environ, APACHE_RUN_DIR=folder, APACHE_LOCK_DIR=folder))


async def through(url, ctx, srv, name):
    """The websockets checks through one proxy at url (wss://...)."""
    async with websockets.connect(url, ssl=ctx, subprotocols=["echo-protocol"]) as user:
        await user.send('{"req":"text","text":"over wss"}')
        expect(await asyncio.wait_for(user.recv(), TIMEOUT) ==
               '{"resp":"text","content":"over wss"}', "%s: echo" % name)
        await user.send('{"req":"get my key"}')
        key = (await asyncio.wait_for(user.recv(), TIMEOUT)).split('"content":"')[1][:24]
        await user.send('{"req":"get connections"}')
        refused = await asyncio.wait_for(user.recv(), TIMEOUT)
        expect('"resp":"error"' in refused and "machine running wspush" in refused,
               "%s: a proxied client became admin: %s" % (name, refused))
        admin = Client(srv.port)                # a direct one, on this machine
        admin.send_json({"req": "get connections"})
        admin.recv_json()
        admin.send_json({"req": "push a user", "userkey": key, "text": "pushed over wss"})
        expect(admin.recv_json()["content"] == "Already sent.", "%s: push" % name)
        expect(await asyncio.wait_for(user.recv(), TIMEOUT) ==
               '{"resp":"text","content":"pushed over wss"}', "%s: the push arrived" % name)
        admin.close()
    expect(user.close_code == 1000, "%s: close code %r" % (name, user.close_code))


async def counted_apart(port, ctx, name):
    """Through the proxy, with -c 2: two sockets from 127.0.0.2 are let in,
    so is one from 127.0.0.3, and a third from 127.0.0.2 is refused."""
    async def connect(source):
        sock = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
        return await websockets.connect("wss://localhost:%d/ws" % port, ssl=ctx, sock=sock,
                                        server_hostname="localhost")
    a, b, c = await connect("127.0.0.2"), await connect("127.0.0.2"), await connect("127.0.0.3")
    try:
        await connect("127.0.0.2")
        raise AssertionError("%s: a second socket from 127.0.0.2 was let in" % name)
    except websockets.exceptions.InvalidStatusCode as e:
        expect(e.status_code == 503, "%s: status %d" % (name, e.status_code))
    for ws in (a, b, c):
        await ws.close()


async def spoofed(port, ctx, name):
    """Through the proxy, a student at 127.0.0.2 adds each header that
    could name another address (the teacher's, 127.0.0.4, among them).
    wspush believes only the proxy's own entry of X-Forwarded-For: the cap
    (-c 2) and the token's penalty hold for 127.0.0.2, and the teacher's
    right token still works."""
    async def connect(source, headers):
        sock = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
        return await websockets.connect("wss://localhost:%d/ws" % port, ssl=ctx, sock=sock,
                                        server_hostname="localhost", extra_headers=headers)

    async def ask(ws, token):
        await ws.send(json.dumps({"req": "get connections", "token": token}))
        return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))

    forged = [[("X-Real-IP", "127.0.0.4")], [("Forwarded", "for=127.0.0.4")],
              [("X-Forwarded-For", "127.0.0.4")],
              [("X-Real-IP", "10.0.0.1"), ("Forwarded", "for=10.0.0.2"),
               ("X-Forwarded-For", "10.0.0.3, 127.0.0.4")]]
    held = [await connect("127.0.0.2", forged[0]), await connect("127.0.0.2", forged[1])]
    for headers in forged[2:]:
        try:
            held.append(await connect("127.0.0.2", headers))
            raise AssertionError("%s: a third socket from 127.0.0.2 was let in with %s"
                                 % (name, headers))
        except websockets.exceptions.InvalidStatusCode as e:
            expect(e.status_code == 503, "%s: status %d" % (name, e.status_code))
    reply = await ask(held[0], "a wrong guess")
    expect(reply == {"resp": "error", "content": "wrong admin token"}, "%s: %r" % (name, reply))
    reply = await ask(held[1], "another guess")
    expect(reply["resp"] == "error" and "wait" in reply["content"],
           "%s: a forged header escaped the penalty: %r" % (name, reply))
    teacher = await connect("127.0.0.4", [])
    reply = await ask(teacher, TOKEN)
    expect(reply["resp"] == "get connections", "%s: the teacher was refused: %r" % (name, reply))
    for ws in held + [teacher]:
        await ws.close()


def browser(name, port):
    """Chromium, through the proxy: the pages over https; the push reaches one."""
    if shutil.which("node") is None or not os.path.isdir(os.path.join(ROOT, "tests", "node_modules",
                                                                      "playwright-core")):
        skipped("proxy %s: Chromium" % name, "needs node and 'cd tests && npm ci'")
        return
    out = subprocess.run(["node", os.path.join(ROOT, "tests", "proxies.js"),
                          "https://localhost:%d" % port, TOKEN, name],
                         capture_output=True, text=True, timeout=120)
    sys.stdout.write(out.stdout)
    if out.returncode != 0 and "FAIL" not in out.stdout:
        report("proxy %s: Chromium" % name, False, out.stderr[-800:])


def one_proxy(name, start):
    tool = {"nginx": "nginx", "Apache": "apache2"}[name]
    if shutil.which(tool) is None or shutil.which("openssl") is None:
        skipped("proxy %s" % name, "%s and openssl are not installed (apt-get install %s openssl)"
                % (tool, tool))
        return
    folder = tempfile.mkdtemp(prefix="wspush-%s-" % tool)
    os.chmod(folder, 0o755)
    crt, key = make_cert(folder)
    os.chmod(key, 0o644)
    ctx = ssl.create_default_context(cafile=crt)
    port = free_port()
    try:
        with Server("-c", "2", name="proxy-" + tool) as srv:
            proc = start(folder, port, srv.port, crt, key)
            try:
                @case("proxy %s: wss:// echo, a push to a user, close 1000; "
                      "no admin for a proxied client" % name)
                def checks():
                    expect(wait_port(port, proc), "%s did not start: %s" % (tool, open(
                        os.path.join(OUT, tool.replace("2", "") + ".err")).read()[-500:]))
                    asyncio.run(through("wss://localhost:%d/ws" % port, ctx, srv, name))
                    expect(srv.wait_log(r"Request from 127\.0\.0\.1|Admin refused for \S+ from "
                                        r"127\.0\.0\.1"), "the forwarded address is logged")
                checks()

                @case("proxy %s: two forwarded addresses are counted apart (-c 2)" % name)
                def apart():
                    asyncio.run(counted_apart(port, ctx, name))
                    expect(srv.wait_log(r"Request from 127\.0\.0\.2 refused: 503"),
                           "the refusal names the forwarded address")
                apart()
            finally:
                proc.terminate()
                proc.wait(timeout=10)
        with Server("-c", "2", "-t", TOKEN, "-v", name="proxy-spoof-" + tool) as srv:
            proc = start(folder, port, srv.port, crt, key)
            try:
                @case("proxy %s: X-Real-IP, Forwarded, X-Forwarded-For from a client change "
                      "nothing: -c and the penalty hold for its real address" % name)
                def spoof():
                    expect(wait_port(port, proc), "%s did not start" % tool)
                    asyncio.run(spoofed(port, ctx, name))
                    expect(srv.wait_log(r"Request from 127\.0\.0\.2 refused: 503") and
                           srv.wait_log(r"Admin attempts from 127\.0\.0\.2 wait"),
                           "the refusal and the penalty name the real address")
                    heads = [line for line in srv.log().splitlines() if "] <- " in line]
                    expect(not [h for h in heads if "X-Real-IP" in h or "] <- Forwarded:" in h],
                           "contrib's %s passed on X-Real-IP or Forwarded" % tool)
                spoof()
            finally:
                proc.terminate()
                proc.wait(timeout=10)
        with Server("-t", TOKEN, name="proxy-browser-" + tool) as srv:
            proc = start(folder, port, srv.port, crt, key)
            try:
                if wait_port(port, proc):
                    browser(name, port)
                else:
                    report("proxy %s: Chromium" % name, False, "%s did not start" % tool)
            finally:
                proc.terminate()
                proc.wait(timeout=10)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main():
    if websockets is None:
        skipped("proxies", "Python's websockets is missing (apt-get install python3-websockets)")
        finish()
    one_proxy("nginx", start_nginx)
    one_proxy("Apache", start_apache)
    finish()


if __name__ == "__main__":
    main()
