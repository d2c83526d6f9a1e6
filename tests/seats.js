// seats.js -- a student's seat through a Wi-Fi that drops, in headless
// Chromium with wspush's own pages. The user's page reaches wspush through
// a relay standing in for the Wi-Fi: it can go silent (nothing passes
// either way), reset the page's side of a connection while wspush's side
// stays open and silent (a ghost, as a phone's dead socket leaves), reset
// both, and refuse new connections while the Wi-Fi is down. The page
// reconnects by itself. An admin on this machine (the npm package ws)
// pushes by key and collects the receipts; the admin page pushes too.
//   (a) silent 2 s, then reset (a ghost left): pushes before, during and
//       after, to the old key, to the new key and from the admin page, are
//       each shown once, in order; then down and reset both sides: the
//       row says away, pushes are queued, and arrive when the Wi-Fi is
//       back; one row throughout; every receipt ends "seen".
//   (b) away past -g 3: the queued push is reported lost, the row goes.
//   (c) two tabs of one browser are two seats; a reload keeps its seat.
// node seats.js [RUNS]: the whole of it RUNS times (default 1).
// node seats.js --outage SECONDS RUNS: README's figure: the Wi-Fi down for
// SECONDS (both sides reset, then no connection), a push made meanwhile;
// prints how many of RUNS pushes were shown exactly once.
'use strict';
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const { OUT, test, expect, startServer, finish, skipped, CHROMIUM,
        CHROMIUM_FLAGS: FLAGS, needChromium } = require('./harness');

const WAIT = { timeout: 15000 };
const chromium = needChromium('seats in Chromium');
let WebSocket;
try {
  WebSocket = require('ws');
} catch (e) {
  skipped('seats in Chromium', 'the npm package ws is not installed: cd tests && npm ci');
  process.exit(process.env.CI ? 1 : 0);
}

// The Wi-Fi: every connection to it is passed on to wspush, byte for byte.
class Relay {
  constructor(target) {
    this.target = target;
    this.pairs = new Set();
    this.down = false;
  }

  start() {
    this.server = net.createServer((page) => this.accept(page));
    return new Promise((resolve) => this.server.listen(0, '127.0.0.1', () => {
      this.port = this.server.address().port;
      resolve(this);
    }));
  }

  accept(page) {
    page.on('error', () => {});
    if (this.down) {            // no Wi-Fi: the page's attempt fails at once
      page.resetAndDestroy();
      return;
    }
    const server = net.connect(this.target, '127.0.0.1');
    const pair = { page, server, silent: false, ghost: false };
    server.on('error', () => {});
    page.on('data', (d) => { if (!pair.silent) server.write(d); });
    server.on('data', (d) => { if (!pair.silent) page.write(d); });
    page.on('close', () => { if (!pair.ghost) server.destroy(); this.pairs.delete(pair); });
    server.on('close', () => { if (!pair.silent) page.destroy(); this.pairs.delete(pair); });
    this.pairs.add(pair);
  }

  // Nothing passes on the connections open now, either way.
  silence() {
    for (const pair of this.pairs) pair.silent = true;
  }

  // Reset the page's side of the silent connections; wspush's side stays
  // open and silent (a ghost), unless ghost is false.
  reset(ghost) {
    for (const pair of this.pairs) {
      if (!pair.silent) continue;
      pair.ghost = ghost;
      pair.page.resetAndDestroy();
      if (!ghost) pair.server.resetAndDestroy();
    }
  }

  close() {
    for (const pair of this.pairs) {
      pair.page.destroy();
      pair.server.destroy();
    }
    this.server.close();
  }
}

// An admin on this machine: pushes by key with a ref; keeps every receipt.
function adminClient(port) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, 'echo-protocol');
  const admin = { ws, receipts: new Map(), replies: [] };
  ws.on('message', (data) => {
    const obj = JSON.parse(data);
    if (obj.resp === 'receipt') admin.receipts.set(obj.ref, obj.state);
    else admin.replies.push(obj);
  });
  admin.push = (key, text, ref) => ws.send(JSON.stringify({ req: 'push a user', userkey: key,
                                                            text, ref }));
  return new Promise((resolve, reject) => {
    ws.on('open', () => {
      ws.send(JSON.stringify({ req: 'get connections' }));
      resolve(admin);
    });
    ws.on('error', reject);
  });
}

// Wait until fn() is true, checking every 20 ms; fail after ms.
async function until(fn, why, ms = WAIT.timeout) {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error('gave up waiting: ' + why);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function keyOf(page) {
  await page.waitForFunction(() => /^[A-Za-z0-9+/]{22}==$/.test(
    document.getElementById('key').textContent), null, WAIT);
  return page.textContent('#key');
}

const pushesShown = (page) => page.$$eval('#log li.push span', (s) => s.map((e) => e.textContent));
const userRows = (admin) => admin.$$eval('#user-rows tr', (rs) => rs.map((r) => ({
  number: r.dataset.number, key: r.dataset.key, away: r.classList.contains('away') })));

async function newContext() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'wspush-seats-chromium-'));
  return chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true,
                                                     args: FLAGS });
}

// (a): the whole of a drop, as a class would live it.
async function dropped(context, run) {
  const srv = await startServer(['-g', '60'], `seats-a-${run}`);
  const relay = await new Relay(srv.port).start();
  const admin = await adminClient(srv.port);
  const console_ = await context.newPage();
  const user = await context.newPage();
  const rowsSeen = [];
  const lists = [];             // each list the console got: its users' numbers, for a failure
  console_.on('websocket', (ws) => ws.on('framereceived', (f) => {
    const obj = /^\{"resp":"users"/.test(f.payload) ? JSON.parse(f.payload) : null;
    if (obj) lists.push(obj.content.filter((u) => u.role === 'user').map((u) => u.number));
  }));
  let step = 'start';
  let watching = true;          // one sample at a time, so that none overtakes another
  const watch = (async () => {
    while (watching) {
      try {
        const n = (await userRows(console_)).length;
        if (rowsSeen.length === 0 || rowsSeen[rowsSeen.length - 1].n !== n) rowsSeen.push({ n, step });
      } catch (e) { /* closing */ }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  try {
    await console_.goto(`http://127.0.0.1:${srv.port}/admin.html`);
    await user.goto(`http://127.0.0.1:${relay.port}/user.html`);
    await user.locator('#status.open').waitFor(WAIT);
    await user.waitForFunction(() => /^#\d+$/.test(document.getElementById('seat').textContent),
                               null, WAIT);
    const number = (await user.textContent('#seat')).slice(1);
    const oldKey = await keyOf(user);
    await until(async () => (await userRows(console_)).length === 1, 'the row');
    const shown = async (n) => (await pushesShown(user)).length >= n;

    admin.push(oldKey, '1 before', 'r1');
    await until(() => shown(1), '1 before');

    step = 'silent';
    relay.silence();            // the Wi-Fi goes silent
    admin.push(oldKey, '2 during', 'r2');
    await until(() => admin.receipts.get('r2') === 'sent', 'r2 sent into the silence');
    await new Promise((r) => setTimeout(r, 2000));
    step = 'reset, a ghost left';
    relay.reset(true);          // the page's side dies; a ghost stays at wspush
    await user.waitForFunction((old) => {
      const k = document.getElementById('key').textContent;
      return /^[A-Za-z0-9+/]{22}==$/.test(k) && k !== old;
    }, oldKey, WAIT);
    const newKey = await keyOf(user);
    expect((await user.textContent('#seat')) === '#' + number, 'a new seat after the drop');
    await until(() => shown(2), '2 during, sent again');
    step = 'back';
    admin.push(oldKey, '3 after, to the old key', 'r3');
    admin.push(newKey, '4 after, to the new key', 'r4');
    await until(() => shown(4), '3 and 4');
    await console_.check(`#user-rows tr[data-number="${number}"] input[type=checkbox]`);
    await console_.fill('#stext', '5 from the admin page');
    await console_.click('#btn');
    await until(() => shown(5), '5');
    await console_.locator('#log .receipts[data-seen="1"][data-of="1"]').first().waitFor(WAIT);

    step = 'down';
    relay.silence();            // then it drops for a while, both sides
    relay.down = true;
    relay.reset(false);
    await until(async () => (await userRows(console_)).some((r) => r.away), 'the row away');
    admin.push(oldKey, '6 while away', 'r6');
    await console_.fill('#stext', '7 while away, from the page');
    await console_.click('#btn');
    await until(() => admin.receipts.get('r6') === 'queued', 'r6 queued');
    await console_.locator('#log .receipts', { hasText: 'queued' }).first().waitFor(WAIT);
    if (run === 1) await console_.screenshot({ path: path.join(OUT, 'screenshots', 'admin-away.png') });
    step = 'up again';
    relay.down = false;         // the Wi-Fi is back: the page comes back by itself
    await until(() => shown(7), '6 and 7 when back', 20000);
    await until(async () => !(await userRows(console_)).some((r) => r.away), 'the row back');

    for (const ref of ['r1', 'r2', 'r3', 'r4', 'r6']) {
      await until(() => admin.receipts.get(ref) === 'seen', `${ref} seen`);
    }
    await until(async () => (await console_.locator('#log .receipts[data-seen="1"]').count()) === 2,
                'both pushes of the admin page seen');
    const want = ['1 before', '2 during', '3 after, to the old key', '4 after, to the new key',
                  '5 from the admin page', '6 while away', '7 while away, from the page'];
    await new Promise((r) => setTimeout(r, 300));     // anything shown twice would be here
    const got = await pushesShown(user);
    expect(JSON.stringify(got) === JSON.stringify(want), 'shown: ' + JSON.stringify(got));
    const since = rowsSeen.slice(rowsSeen.findIndex((r) => r.n === 1));  // from its first row
    expect(since.length === 1, 'rows (count, at step): ' + JSON.stringify(since)
           + '; the lists it got: ' + JSON.stringify(lists));
    if (run === 1) await console_.screenshot({ path: path.join(OUT, 'screenshots', 'admin-seats.png') });
  } finally {
    watching = false;
    await watch;
    admin.ws.close();
    await user.close();
    await console_.close();
    relay.close();
    await srv.stop();
  }
}

// (b): away past -g 3, the push is lost and the row goes.
async function goneAfterGrace(context, run) {
  const srv = await startServer(['-g', '3'], `seats-b-${run}`);
  const relay = await new Relay(srv.port).start();
  const admin = await adminClient(srv.port);
  const console_ = await context.newPage();
  const user = await context.newPage();
  try {
    await console_.goto(`http://127.0.0.1:${srv.port}/admin.html`);
    await user.goto(`http://127.0.0.1:${relay.port}/user.html`);
    await user.waitForFunction(() => /^#\d+$/.test(document.getElementById('seat').textContent),
                               null, WAIT);
    const number = await user.textContent('#seat');
    const key = await keyOf(user);
    relay.silence();
    relay.down = true;
    relay.reset(false);
    await until(async () => (await userRows(console_)).some((r) => r.away), 'away');
    const t0 = Date.now();
    admin.push(key, 'never seen', 'lost');
    await until(() => admin.receipts.get('lost') === 'lost', 'reported lost', 8000);
    expect(Date.now() - t0 < 3000 + 1000, `lost after ${Date.now() - t0} ms with -g 3`);
    await until(async () => (await userRows(console_)).length === 0, 'the row goes');
    relay.down = false;
    await user.waitForFunction((old) => /^#\d+$/.test(document.getElementById('seat').textContent)
      && document.getElementById('seat').textContent !== old, number, { timeout: 20000 });
    expect(!(await pushesShown(user)).includes('never seen'), 'a lost push was shown');
  } finally {
    admin.ws.close();
    await user.close();
    await console_.close();
    relay.close();
    await srv.stop();
  }
}

// (c): two tabs are two seats; a reload keeps its own.
async function twoTabs(context, run) {
  const srv = await startServer([], `seats-c-${run}`);
  try {
    const tabs = [await context.newPage(), await context.newPage()];
    const numbers = [];
    for (const tab of tabs) {
      await tab.goto(`http://127.0.0.1:${srv.port}/user.html`);
      await tab.waitForFunction(() => /^#\d+$/.test(document.getElementById('seat').textContent),
                                null, WAIT);
      numbers.push(await tab.textContent('#seat'));
    }
    expect(numbers[0] !== numbers[1], 'two tabs share a seat: ' + numbers);
    await tabs[1].reload();
    await tabs[1].waitForFunction(() => /^#\d+$/.test(document.getElementById('seat').textContent),
                                  null, WAIT);
    expect((await tabs[1].textContent('#seat')) === numbers[1], 'a reload lost its seat');
    for (const tab of tabs) await tab.close();
  } finally {
    await srv.stop();
  }
}

// One outage of the given seconds: returns how often the push made during
// it was shown (1 is right), and how many rows the admin saw at most.
async function outage(context, seconds, run) {
  const srv = await startServer(['-q'], `seats-outage-${run}`);
  const relay = await new Relay(srv.port).start();
  const admin = await adminClient(srv.port);
  const user = await context.newPage();
  try {
    await user.goto(`http://127.0.0.1:${relay.port}/user.html`);
    await user.waitForFunction(() => /^#\d+$/.test(document.getElementById('seat').textContent),
                               null, WAIT);
    const key = await keyOf(user);
    relay.silence();
    relay.down = true;
    relay.reset(false);
    admin.push(key, 'made while the Wi-Fi was down', 'o1');
    await new Promise((r) => setTimeout(r, seconds * 1000));
    relay.down = false;
    await until(() => admin.receipts.get('o1') === 'seen', 'seen', 60000);
    await new Promise((r) => setTimeout(r, 300));
    return (await pushesShown(user)).filter((t) => t === 'made while the Wi-Fi was down').length;
  } finally {
    admin.ws.close();
    await user.close();
    relay.close();
    await srv.stop();
  }
}

(async () => {
  if (process.argv[2] === '--outage') {
    const seconds = +process.argv[3], runs = +(process.argv[4] || 1);
    const context = await newContext();
    let once = 0;
    for (let run = 1; run <= runs; run++) {
      const shown = await outage(context, seconds, run).catch((e) => { console.log(e.message); return 0; });
      once += shown === 1;
      console.log(`outage of ${seconds} s, run ${run}: shown ${shown} time(s)`);
    }
    console.log(`a push made while the Wi-Fi was down for ${seconds} s was shown exactly once: `
                + `${once} of ${runs}`);
    await context.close();
    return;
  }
  const runs = +(process.argv[2] || 1);
  fs.mkdirSync(path.join(OUT, 'screenshots'), { recursive: true });
  const context = await newContext();
  try {
    for (let run = 1; run <= runs; run++) {
      const of = runs > 1 ? ` (run ${run} of ${runs})` : '';
      await test('seats in Chromium: a drop of 2 s, then down and back: every push shown once, '
                 + 'in order; one row; all seen' + of, () => dropped(context, run), 90);
      await test('seats in Chromium: away past -g 3, a push is lost and the row goes' + of,
                 () => goneAfterGrace(context, run), 60);
      await test('seats in Chromium: two tabs are two seats; a reload keeps its seat' + of,
                 () => twoTabs(context, run), 30);
    }
  } finally {
    await context.close();
    finish();
  }
})();
