"""Interop with Python's websockets library (Debian python3-websockets):
echo of 0 B to 1 MiB, fragmented sends, ping/pong, close codes both ways,
and the article's scenario as that library's users would write it.

Runs on /usr/bin/python3, where Debian installs the library.
"""
import asyncio
import json
import os
import sys

from wsclient import Server, finish, report, skipped

try:
    import websockets
except ImportError:
    websockets = None

SIZES = [0, 1, 125, 126, 127, 65535, 65536, 100000, 1 << 20]


def check(name, coro):
    try:
        asyncio.run(asyncio.wait_for(coro, 60))
        report("websockets: " + name, True)
    except Exception as e:  # the failure is the test's result
        report("websockets: " + name, False, "%s: %s" % (type(e).__name__, e))


def expect(cond, why):
    if not cond:
        raise AssertionError(why)


async def echo_sizes(url):
    async with websockets.connect(url, max_size=4 << 20) as ws:
        for n in SIZES:
            text = ("é" * (n // 2)) + ("x" * (n % 2))        # 2-byte characters
            await ws.send(text.encode()[:n].decode("utf-8", "ignore"))
            got = await ws.recv()
            expect(got == text.encode()[:n].decode("utf-8", "ignore"), "text of %d bytes" % n)
            data = os.urandom(n)
            await ws.send(data)
            expect(await ws.recv() == data, "binary of %d bytes" % n)


async def fragments(url):
    async with websockets.connect(url) as ws:
        await ws.send(["frag", "mented ", "κόσμε"])       # one message, three frames
        expect(await ws.recv() == "fragmented κόσμε", "fragmented text")
        await ws.send([b"\x00\x01", b"", b"\xff"])
        expect(await ws.recv() == b"\x00\x01\xff", "fragmented binary")


async def ping_pong(url):
    async with websockets.connect(url) as ws:
        for payload in (b"", b"hello", os.urandom(125)):
            waiter = await ws.ping(payload)
            await asyncio.wait_for(waiter, 5)
        await ws.send("after pings")
        expect(await ws.recv() == "after pings", "echo after pings")


async def close_codes(url):
    for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999):
        ws = await websockets.connect(url)
        await ws.close(code, "reason %d" % code)
        expect(ws.close_code == code, "code %d came back as %r" % (code, ws.close_code))


async def closed_with(ws, code):
    """Wait for the server to close ws; it must use this code, and must
    not send anything first."""
    try:
        got = await asyncio.wait_for(ws.recv(), 10)
    except websockets.ConnectionClosed as e:
        expect(e.code == code, "closed with %r, expected %d" % (e.code, code))
    else:
        raise AssertionError("expected close %d, got a reply %r" % (code, got[:60]))


async def server_closes(json_url, small_url):
    async with websockets.connect(json_url) as ws:
        await ws.send(b"binary")
        await closed_with(ws, 1003)
    async with websockets.connect(small_url) as ws:
        await ws.send("x" * 2000)
        await closed_with(ws, 1009)


async def scenario(url):
    async with websockets.connect(url, subprotocols=["echo-protocol"]) as u1, \
            websockets.connect(url, subprotocols=["echo-protocol"]) as u2, \
            websockets.connect(url, subprotocols=["echo-protocol"]) as adm:
        expect(u1.subprotocol == "echo-protocol", "subprotocol")
        await adm.send(json.dumps({"req": "get connections"}))
        roles = json.loads(await adm.recv())["content"]
        keys = [k for k, role in roles.items() if role == "user"]
        expect(len(keys) == 2 and list(roles.values()) == ["user", "user", "admin"], roles)
        for key, user in zip(keys, (u1, u2)):
            await adm.send(json.dumps({"req": "push a user", "userkey": key,
                                       "text": "for " + key}))
            expect(json.loads(await user.recv())["content"] == "for " + key, "push")
            expect(json.loads(await adm.recv())["content"] == "Already sent.", "ack")
        await u1.send(json.dumps({"req": "text", "text": "echo me"}))
        expect(json.loads(await u1.recv()) == {"resp": "text", "content": "echo me"}, "echo")
        await u2.close()            # returns once the close handshake is done
        await adm.send(json.dumps({"req": "push a user", "userkey": keys[1], "text": "late"}))
        reply = json.loads(await adm.recv())
        expect(reply == {"resp": "text", "content": "Refresh user list complete. Try again!"},
               "push to a user who left: %r" % reply)


async def kicked(url):
    async with websockets.connect(url) as adm, websockets.connect(url) as user:
        await adm.send(json.dumps({"req": "get connections"}))
        roles = json.loads(await adm.recv())["content"]
        key = [k for k, role in roles.items() if role == "user"][0]
        await adm.send(json.dumps({"req": "kick", "userkey": key}))
        await closed_with(user, 4000)
        expect(user.close_reason == "closed by the teacher", "reason %r" % user.close_reason)


def main():
    if websockets is None:
        name = "websockets: Python's websockets library"
        why = "Python's websockets is missing for %s (apt-get install python3-websockets)" % sys.executable
        (report(name, False, why) if os.environ.get("CI") else skipped(name, why))
        finish()
    with Server("-e", "-q", name="interop-py-echo") as echo_srv, \
            Server("-q", name="interop-py-json") as json_srv, \
            Server("-q", "-m", "1000", name="interop-py-small") as small_srv:
        echo_url = "ws://127.0.0.1:%d/" % echo_srv.port
        json_url = "ws://127.0.0.1:%d/" % json_srv.port
        check("echo of text and binary, 0 B to 1 MiB", echo_sizes(echo_url))
        check("fragmented sends", fragments(echo_url))
        check("ping and pong", ping_pong(echo_url))
        check("every close code is echoed", close_codes(echo_url))
        check("server closes with 1003 and 1009",
              server_closes(json_url, "ws://127.0.0.1:%d/" % small_srv.port))
        check("the tutorial's scenario", scenario(json_url))
        check("kick: close 4000 with its reason", kicked(json_url))
    finish()


if __name__ == "__main__":
    main()
