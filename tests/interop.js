// interop.js -- wspush against the npm WebSocket clients "ws" and
// "websocket" (the package the article's server is built on): echo of
// 0 B to 1 MiB, fragmented sends, ping/pong, close codes, the scenario.
'use strict';
const crypto = require('crypto');
const { test, expect, startServer, finish, skipped } = require('./harness');

let WebSocket, WebSocketClient;
try {
  WebSocket = require('ws');
  WebSocketClient = require('websocket').client;
} catch (e) {
  skipped('npm ws and websocket', 'not installed: cd tests && npm ci');
  process.exit(process.env.CI ? 1 : 0);
}

const SIZES = [0, 1, 125, 126, 127, 65535, 65536, 100000, 1 << 20];

// ws: a connection as a queue of incoming messages.
function wsOpen(url, protocols) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { maxPayload: 4 << 20 });
    const queue = [], waiting = [];
    ws.on('message', (data, isBinary) => {
      const m = { data, isBinary };
      if (waiting.length) waiting.shift()(m); else queue.push(m);
    });
    ws.next = () => new Promise((r) => (queue.length ? r(queue.shift()) : waiting.push(r)));
    ws.closed = new Promise((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
    ws.on('open', () => resolve(ws));
    ws.on('error', reject);
  });
}

async function wsEcho(url) {
  const ws = await wsOpen(url);
  for (const n of SIZES) {
    const text = 'é'.repeat(n >> 1) + 'x'.repeat(n & 1);
    ws.send(text);
    const t = await ws.next();
    expect(!t.isBinary && t.data.toString() === text, `text of ${Buffer.byteLength(text)} bytes`);
    const bin = crypto.randomBytes(n);
    ws.send(bin);
    const b = await ws.next();
    expect(b.isBinary && Buffer.compare(b.data, bin) === 0, `binary of ${n} bytes`);
  }
  ws.close(1000);
  expect((await ws.closed).code === 1000, 'close 1000 echoed');
}

async function wsFragments(url) {
  const ws = await wsOpen(url);
  ws.send('frag', { fin: false });
  ws.send('mented ', { fin: false });
  ws.send('κόσμε', { fin: true });
  const m = await ws.next();
  expect(m.data.toString() === 'fragmented κόσμε', `got ${m.data}`);
  ws.send(Buffer.from([0, 1]), { binary: true, fin: false });
  ws.send(Buffer.from([255]), { binary: true, fin: true });
  const b = await ws.next();
  expect(b.isBinary && b.data.equals(Buffer.from([0, 1, 255])), 'fragmented binary');
  ws.close();
}

async function wsPing(url) {
  const ws = await wsOpen(url);
  for (const payload of [Buffer.alloc(0), Buffer.from('hello'), crypto.randomBytes(125)]) {
    const pong = new Promise((r) => ws.once('pong', r));
    ws.ping(payload);
    expect(Buffer.compare(await pong, payload) === 0, 'pong carries the ping payload');
  }
  ws.close();
}

async function wsCloseCodes(url) {
  for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999]) {
    const ws = await wsOpen(url);
    ws.close(code, `reason ${code}`);
    const closed = await ws.closed;
    expect(closed.code === code, `code ${code} came back as ${closed.code}`);
  }
}

// ws sends 2000 messages of 60 KB in a loop (it buffers what the socket
// will not take yet) and gets every one back, in order.
async function wsFlood(jsonUrl) {
  const ws = await wsOpen(jsonUrl);
  const pad = 'y'.repeat(60000 - 8);
  for (let i = 0; i < 2000; i++) ws.send(JSON.stringify({ req: 'text', text: String(i).padStart(8, '0') + pad }));
  for (let i = 0; i < 2000; i++) {
    const m = JSON.parse((await ws.next()).data);
    expect(m.resp === 'text' && m.content.startsWith(String(i).padStart(8, '0')), `reply ${i} out of order`);
  }
  ws.close(1000);
  expect((await ws.closed).code === 1000, 'closed cleanly after the flood');
}

async function wsServerCloses(jsonUrl) {
  const ws = await wsOpen(jsonUrl);
  ws.send(Buffer.from('binary'));
  expect((await ws.closed).code === 1003, 'binary in JSON mode gets 1003');
  const plain = await wsOpen(jsonUrl);         // no subprotocol asked for
  expect(plain.protocol === '', 'no subprotocol answered');
  plain.send(JSON.stringify({ req: 'text', text: 'plain' }));
  expect(JSON.parse((await plain.next()).data).content === 'plain', 'served without subprotocol');
  plain.close();
}

// websocket (the article's library), as its client.
function wsLibConnect(url, config = {}) {
  return new Promise((resolve, reject) => {
    const client = new WebSocketClient({ maxReceivedMessageSize: 4 << 20,
                                         maxReceivedFrameSize: 4 << 20, ...config });
    client.on('connectFailed', reject);
    client.on('connect', (conn) => {
      const queue = [], waiting = [];
      conn.on('message', (m) => { if (waiting.length) waiting.shift()(m); else queue.push(m); });
      conn.next = () => new Promise((r) => (queue.length ? r(queue.shift()) : waiting.push(r)));
      conn.closed = new Promise((r) => conn.on('close', (code, desc) => r({ code, desc })));
      resolve(conn);
    });
    client.connect(url, 'echo-protocol');
  });
}

async function libEcho(url) {
  // fragmentOutgoingMessages splits every message over 1000 bytes into frames
  const conn = await wsLibConnect(url, { fragmentOutgoingMessages: true, fragmentationThreshold: 1000 });
  expect(conn.protocol === 'echo-protocol', 'echo-protocol negotiated');
  for (const n of SIZES) {
    const text = 'x'.repeat(n);
    conn.sendUTF(text);
    const m = await conn.next();
    expect(m.type === 'utf8' && m.utf8Data === text, `text of ${n} bytes`);
    const bin = crypto.randomBytes(n);
    conn.sendBytes(bin);
    const b = await conn.next();
    expect(b.type === 'binary' && b.binaryData.equals(bin), `binary of ${n} bytes`);
  }
  const pong = new Promise((r) => conn.once('pong', r));
  conn.ping(Buffer.from('are you there'));
  expect((await pong).toString() === 'are you there', 'pong');
  conn.close(4000, 'bye');
  expect((await conn.closed).code === 4000, 'close code 4000 echoed');
}

async function libScenario(url) {
  const u1 = await wsLibConnect(url), u2 = await wsLibConnect(url), adm = await wsLibConnect(url);
  adm.sendUTF(JSON.stringify({ req: 'get connections' }));
  const roles = JSON.parse((await adm.next()).utf8Data).content;
  const users = Object.keys(roles).filter((k) => roles[k] === 'user');
  expect(users.length === 2, JSON.stringify(roles));
  for (const [key, user] of [[users[0], u1], [users[1], u2]]) {
    adm.sendUTF(JSON.stringify({ req: 'push a user', userkey: key, text: 'to ' + key }));
    expect(JSON.parse((await user.next()).utf8Data).content === 'to ' + key, 'push arrives');
    expect(JSON.parse((await adm.next()).utf8Data).content === 'Already sent.', 'ack');
  }
  u1.sendUTF(JSON.stringify({ req: 'text', text: 'echo' }));
  expect((await u1.next()).utf8Data === '{"resp":"text","content":"echo"}', 'echo');
  for (const c of [u1, u2, adm]) c.close();
}

(async () => {
  const echo = await startServer(['-e', '-q'], 'interop-node-echo');
  const json = await startServer(['-q'], 'interop-node-json');
  const e = `ws://127.0.0.1:${echo.port}/`, j = `ws://127.0.0.1:${json.port}/`;
  await test('ws: echo of text and binary, 0 B to 1 MiB', () => wsEcho(e));
  await test('ws: fragmented sends', () => wsFragments(e));
  await test('ws: ping and pong', () => wsPing(e));
  await test('ws: every close code is echoed', () => wsCloseCodes(e));
  await test('ws: 1003 for binary in JSON mode; no subprotocol is fine', () => wsServerCloses(j));
  await test('ws: 2000 messages of 60 KB sent in a loop all come back, in order', () => wsFlood(j), 120);
  await test('websocket: echo 0 B to 1 MiB in 1000-byte fragments, ping, close', () => libEcho(e));
  await test('websocket: the tutorial\'s scenario', () => libScenario(j));
  await echo.stop();
  await json.stop();
  finish();
})();
