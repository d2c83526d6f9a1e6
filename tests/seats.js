// seats.js -- a student's seat through a Wi-Fi that drops, in headless
// Chromium with wspush's own pages. The user's page reaches wspush through
// a relay standing in for the Wi-Fi: it can go silent (nothing passes
// either way), reset the page's side of a connection while wspush's side
// stays open and silent (a ghost, as a phone's dead socket leaves), reset
// both, and refuse new connections while the Wi-Fi is down. The page
// reconnects by itself. An admin on this machine (the npm package ws)
// pushes by key or to all and collects the receipts; the admin page
// pushes too.
//   (a) silent 2 s, then reset (a ghost left): pushes before, during and
//       after, to the old key, to the new key and from the admin page, are
//       each shown once, in order; then down and reset both sides: the
//       row says away, pushes are queued, and arrive when the Wi-Fi is
//       back; one row throughout; every receipt ends "seen".
//   (b) away past -g 3: the queued push is reported lost, the row goes.
//   (c) two tabs of one browser are two seats; a reload keeps its seat.
//   A class of four pages on a slow Wi-Fi (400 ms each way), then on one
//   that blinks, pushes to all during drops and handshakes: every push
//   shown once, in order, each student counted once, numbers never
//   reused, never two rows. A reload shows the pushes shown. The admin
//   page's "not seen" and "Push again"; a row's reason for being away,
//   and its drops.
// node seats.js [RUNS [PART...]]: the whole of it (or the parts named:
// drop, grace, tabs, slow, blinks, reload, not-seen, why) RUNS times.
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

// The Wi-Fi: every connection to it is passed on to wspush, byte for
// byte, each way after delay ms (a slow phone: 400 ms). A connection can
// blink (its bytes held, both ways, then passed on: a phone's Wi-Fi gone
// for a moment and back). A WebSocket's pair knows its Sec-WebSocket-Key;
// onHandshake(pair), if set, is called when a handshake reaches wspush.
class Relay {
  constructor(target, delay = 0) {
    this.target = target;
    this.delay = delay;
    this.pairs = new Set();
    this.down = false;
    this.onHandshake = null;
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
    const pair = { page, server, silent: false, ghost: false, key: null, holdUntil: 0 };
    const toServer = this.pipe(pair, server);
    const toPage = this.pipe(pair, page);
    server.on('error', () => {});
    page.on('data', (d) => {
      const key = pair.key === null
        && /\r\nSec-WebSocket-Key: *([^\r]+)/i.exec(d.toString('latin1'));
      if (key) pair.key = key[1];
      if (pair.silent) return;
      toServer(d);
      if (key) toServer(() => this.onHandshake && this.onHandshake(pair));
    });
    server.on('data', (d) => { if (!pair.silent) toPage(d); });
    page.on('close', () => {
      if (!pair.ghost) toServer(() => server.destroy());
      this.pairs.delete(pair);
    });
    server.on('close', () => {
      if (!pair.silent) toPage(() => page.destroy());
      this.pairs.delete(pair);
    });
    this.pairs.add(pair);
  }

  // One way of a pair: what comes (bytes, or a function to call then) goes
  // on in order, this.delay ms after it came, and not while it blinks.
  pipe(pair, to) {
    const queue = [];
    let timer = null;
    const drain = () => {
      timer = null;
      while (queue.length && queue[0].at <= Date.now() && pair.holdUntil <= Date.now()) {
        const { what } = queue.shift();
        if (typeof what === 'function') what();
        else if (!to.destroyed) to.write(what);
      }
      if (queue.length)
        timer = setTimeout(drain, Math.max(queue[0].at, pair.holdUntil) - Date.now());
    };
    return (what) => {
      queue.push({ what, at: Date.now() + this.delay });
      if (!timer) drain();
    };
  }

  // The WebSocket pairs whose page holds one of keys (all pairs if none).
  some(keys) {
    return [...this.pairs].filter((p) => !keys || keys.includes(p.key));
  }

  // Nothing passes on the connections open now, either way.
  silence(keys) {
    for (const pair of this.some(keys)) pair.silent = true;
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

  // The connections of keys hold their bytes for ms, then pass them on.
  blink(ms, keys) {
    for (const pair of this.some(keys)) pair.holdUntil = Date.now() + ms;
  }

  close() {
    for (const pair of this.pairs) {
      pair.page.destroy();
      pair.server.destroy();
    }
    this.server.close();
  }
}

// An admin on this machine: pushes by key with a ref, or to all; keeps
// every receipt (the last state of each ref in receipts, all in all),
// every other reply, and, if it watches, every list of users.
function adminClient(port, watch = false) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, 'echo-protocol');
  const admin = { ws, receipts: new Map(), all: [], replies: [], lists: [] };
  ws.on('message', (data) => {
    const obj = JSON.parse(data);
    if (obj.resp === 'receipt') {
      admin.receipts.set(obj.ref, obj.state);
      admin.all.push(obj);
    } else if (obj.resp === 'users') {
      admin.lists.push(obj.content.filter((u) => u.role === 'user'));
    } else {
      admin.replies.push(obj);
    }
  });
  admin.push = (key, text, ref) => ws.send(JSON.stringify({ req: 'push a user', userkey: key,
                                                            text, ref }));
  admin.pushAll = (text, ref) => ws.send(JSON.stringify({ req: 'push all', text, ref }));
  return new Promise((resolve, reject) => {
    ws.on('open', () => {
      ws.send(JSON.stringify({ req: 'get connections' }));
      if (watch) ws.send(JSON.stringify({ req: 'watch users' }));
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

// The number of page's seat (without its "#").
async function seatOf(page) {
  await page.waitForFunction(() => /^#\d+$/.test(document.getElementById('seat').textContent),
                             null, WAIT);
  return (await page.textContent('#seat')).slice(1);
}

// The key of page's connection once it is open (and, given a relay, once
// the relay carries it).
async function liveKey(page, relay) {
  let key = null;
  await until(async () => {
    key = await page.evaluate(() => document.getElementById('status').classList.contains('open')
                              && document.getElementById('key').textContent);
    return /^[A-Za-z0-9+/]{22}==$/.test(key) && (!relay || relay.some([key]).length > 0);
  }, 'the page connected');
  return key;
}

// Whatever wspush sent page before now has arrived once the echo of a
// text sent now has (one connection keeps its order).
async function barrier(page, relay, text) {
  await liveKey(page, relay);
  await page.fill('#stext', text);
  await page.click('#btn');
  await page.locator('#log li.echo', { hasText: text }).waitFor(WAIT);
}
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
    await console_.locator('#log .unseen .who[data-state="queued"]').first().waitFor(WAIT);
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
    await barrier(user, relay, 'the end');    // anything shown twice would be here by now
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

// The class on a slow or a blinking Wi-Fi: PAGES pages, ROUNDS rounds.
const PAGES = 4;
const ROUNDS = 6;

// The first word of a push's text: its ref.
const refOf = (text) => text.split(' ')[0];

// What is wrong with the pushes a page showed (got), against those it
// should show (want): '' if nothing.
function misshown(got, want) {
  const why = [];
  const twice = got.filter((t, i) => got.indexOf(t) !== i);
  const never = want.filter((t) => !got.includes(t));
  const once = got.filter((t, i) => got.indexOf(t) === i && want.includes(t));
  const order = once.findIndex((t, i) => t !== want.filter((w) => once.includes(w))[i]);
  if (twice.length) why.push('showed twice: ' + twice.map(refOf).join(', '));
  if (never.length) why.push('never showed: ' + never.map(refOf).join(', '));
  if (got.some((t) => !want.includes(t))) why.push('showed pushes never made');
  if (order >= 0) {
    why.push('showed out of order: '
             + once.slice(Math.max(0, order - 1), order + 4).map(refOf).join(' ') + ' ...');
  }
  return why.join('; ');
}

// A class of PAGES pages on a Wi-Fi that is slow (400 ms each way: pages
// dropped, left as ghosts, reloaded) or that blinks (held for 0.6 to 3 s,
// then back; past 2 s, wspush's -i 1 -k 1 drops the connection), while
// the teacher pushes to all: before each drop or blink, during it, into
// each handshake that follows (on the slow Wi-Fi 300 ms in, before the
// page's first request can arrive), and after. Every page shows every push once, in order; each push counts
// each student once, seen once; the numbers are the pages' own throughout;
// no list wspush sends and no sample of the admin page's rows holds a
// student twice, or anyone else.
async function classroom(context, run, slow) {
  const name = slow ? 'slow' : 'blinks';
  const srv = await startServer(['-q', '-g', '60', ...(slow ? [] : ['-i', '1', '-k', '1'])],
                                `seats-${name}-${run}`);
  const relay = await new Relay(srv.port, slow ? 400 : 30).start();
  const admin = await adminClient(srv.port, true);
  const console_ = await context.newPage();
  const pages = [];
  const bad = [];               // rows that should never be, as they were seen
  const texts = [];             // every push, in the order made: its ref is 'a' + (index + 1)
  let step = 'start';
  let watching = true;
  let watch = null;
  let later = 0;                // pushes to come, 300 ms into a handshake
  const pushAll = (when) => {
    const text = `a${texts.length + 1} ${when} (${step})`;
    texts.push(text);
    admin.pushAll(text, 'a' + texts.length);
  };
  try {
    await console_.goto(`http://127.0.0.1:${srv.port}/admin.html`);
    for (let i = 0; i < PAGES; i++) pages.push(await context.newPage());
    await Promise.all(pages.map((p) => p.goto(`http://127.0.0.1:${relay.port}/user.html`,
                                              { timeout: 30000 })));
    const numbers = await Promise.all(pages.map(seatOf));
    expect(new Set(numbers).size === PAGES, 'the seats: ' + numbers);
    const checkRows = (ns, where) => {
      ns = ns.map(String);
      const strangers = ns.filter((n) => !numbers.includes(n));
      if (ns.length > PAGES || new Set(ns).size < ns.length || strangers.length)
        bad.push(`${where}: ${ns.join(', ')}`);
    };
    await until(async () => (await userRows(console_)).length === PAGES, 'the rows');
    const first = admin.lists.length;   // the admin page is an admin now, no longer a user
    watch = (async () => {      // one sample at a time, so that none overtakes another
      while (watching) {
        try {
          checkRows((await userRows(console_)).map((r) => r.number), `the admin page at ${step}`);
        } catch (e) { /* closing */ }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const seenAll = () => {
      const seen = new Set(admin.all.filter((r) => r.state === 'seen')
                                    .map((r) => r.ref + ' ' + r.number));
      return texts.every((t, i) => numbers.every((n) => seen.has(`a${i + 1} ${n}`)));
    };
    relay.onHandshake = () => {
      later++;
      setTimeout(() => { pushAll('in a handshake'); later--; }, slow ? 300 : 10);
    };
    const kinds = slow ? ['dropped', 'left a ghost', 'reloaded'] : [0.6, 3, 'dropped', 1.5];
    for (let r = 0; r < ROUNDS; r++) {
      const victims = r % 2 ? [r % PAGES, (r + 1) % PAGES] : [r % PAGES];
      const how = kinds[r % kinds.length];
      step = `round ${r + 1}, #${victims.map((i) => numbers[i]).join(' and #')} `
        + (typeof how === 'number' ? `blinks ${how} s` : how);
      const keys = await Promise.all(victims.map((i) => liveKey(pages[i], relay)));
      pushAll('before');
      let reloads = [];
      if (how === 'dropped' || how === 'left a ghost') {
        relay.silence(keys);
        relay.reset(how === 'left a ghost');
      } else if (how === 'reloaded') {
        reloads = victims.map((i) => pages[i].reload({ timeout: 30000 }));
      } else {
        relay.blink(how * 1000, keys);
      }
      pushAll('during');
      await Promise.all(reloads);
      await until(seenAll, `every push seen by every page, ${step}`, 30000);
      pushAll('after');
    }
    step = 'the end';
    relay.onHandshake = null;
    await until(() => later === 0 && seenAll(), 'every push seen by every page', 30000);
    for (const [i, page] of pages.entries()) await barrier(page, relay, 'the end ' + i);

    const wrong = [];           // everything that went wrong, for one report
    for (const [i, page] of pages.entries()) {
      const why = misshown(await pushesShown(page), texts);
      if (why) wrong.push(`#${numbers[i]} ${why}`);
    }
    const twice = [];
    for (const [i, text] of texts.entries()) {
      const got = admin.all.filter((r) => r.ref === 'a' + (i + 1));
      const who = [...new Set(got.map((r) => String(r.number)))].sort();
      if (who.join() !== [...numbers].sort().join())
        wrong.push(`receipts of ${refOf(text)} for #${who.join(', #')}`);
      for (const n of numbers) {
        if (got.filter((r) => String(r.number) === n && r.state === 'seen').length !== 1)
          twice.push(`${refOf(text)} by #${n}`);
      }
      if (got.some((r) => r.state === 'lost')) wrong.push(`${refOf(text)} lost`);
    }
    if (twice.length) wrong.push('not seen exactly once: ' + twice.join(', '));
    const replies = admin.replies.filter((o) => /^Sent to/.test(o.content)).map((o) => o.content);
    if (replies.length !== texts.length)
      wrong.push(`${replies.length} replies to ${texts.length} pushes`);
    const counts = replies.filter((reply) => {
      const m = /^Sent to (\d+) users?(?:; queued for (\d+) away)?\.$/.exec(reply);
      return !m || +m[1] + +(m[2] || 0) !== PAGES;
    });
    if (counts.length) wrong.push(`replies for ${PAGES} students: "${counts.join('", "')}"`);
    admin.lists.slice(first).forEach((list, i) => checkRows(list.map((u) => u.number),
                                                            `wspush's list ${first + i + 1}`));
    if (bad.length) {
      wrong.push(`${bad.length} lists or samples with a student twice or a number not a `
                 + 'page\'s: ' + bad.slice(0, 3).join('; '));
    }
    if ((await Promise.all(pages.map(seatOf))).join() !== numbers.join())
      wrong.push('a page changed seats');
    expect(wrong.length === 0, `the pages are #${numbers.join(', #')}: ` + wrong.join('. '));
    await until(async () => {
      const rows = await userRows(console_);
      return rows.length === PAGES && !rows.some((r) => r.away);
    }, 'every row here at the end');
  } finally {
    relay.onHandshake = null;
    watching = false;
    await watch;
    admin.ws.close();
    for (const page of pages) await page.close();
    await console_.close();
    relay.close();
    await srv.stop();
  }
}

// A reload of the same tab shows the pushes it had shown, in order, each
// once; one pushed while it reloads comes after them; twice.
async function reloaded(context, run) {
  const srv = await startServer([], `seats-reload-${run}`);
  const admin = await adminClient(srv.port);
  const user = await context.newPage();
  const want = ['r1 first', 'r2 second', 'r3 while it reloads'];
  try {
    await user.goto(`http://127.0.0.1:${srv.port}/user.html`);
    const number = await seatOf(user);
    const key = await liveKey(user);
    admin.push(key, want[0], 'r1');
    admin.push(key, want[1], 'r2');
    await until(() => admin.receipts.get('r1') === 'seen' && admin.receipts.get('r2') === 'seen',
                'r1 and r2 seen');
    const reloading = user.reload();
    admin.push(key, want[2], 'r3');
    await reloading;
    await until(() => admin.receipts.get('r3') === 'seen', 'r3 seen');
    for (const time of ['after a reload', 'after a second reload']) {
      expect((await seatOf(user)) === number, 'a reload lost the seat');
      await barrier(user, null, 'the end');
      const got = await pushesShown(user);
      expect(JSON.stringify(got) === JSON.stringify(want), time + ': ' + JSON.stringify(got));
      if (time === 'after a reload') await user.reload();
    }
  } finally {
    admin.ws.close();
    await user.close();
    await srv.stop();
  }
}

// The admin page's "not seen": a push to all while #A and #B are away is
// queued for them, and seen by #C; then lost for #A (64 more pushes
// waited); the line names #A (its name, lost and why) and #B (queued), and
// offers to push it again to #A; the click reaches #A only, and #B and
// #C show it once.
async function notSeen(context, run) {
  const srv = await startServer(['-g', '60'], `seats-not-seen-${run}`);
  const relay = await new Relay(srv.port).start();
  const admin = await adminClient(srv.port);
  const console_ = await context.newPage();
  const [a, b, c] = [await context.newPage(), await context.newPage(), await context.newPage()];
  const text = 'n1 while away';
  try {
    await console_.goto(`http://127.0.0.1:${srv.port}/admin.html`);
    await a.goto(`http://127.0.0.1:${relay.port}/user.html`);
    await b.goto(`http://127.0.0.1:${relay.port}/user.html`);
    await c.goto(`http://127.0.0.1:${srv.port}/user.html`);
    const [na, nb, nc] = [await seatOf(a), await seatOf(b), await seatOf(c)];
    const keyA = await liveKey(a);
    await a.fill('#name', 'Ann');
    await a.click('#name-btn');
    await until(async () => (await console_.textContent('#user-rows')).includes('Ann'), 'Ann');
    relay.silence();            // #A and #B lose the Wi-Fi
    relay.down = true;
    relay.reset(false);
    await until(async () => (await userRows(console_)).filter((r) => r.away).length === 2, 'away');
    await console_.fill('#stext', text);
    await console_.click('#all-btn');
    const line = console_.locator('#log li.you', { hasText: 'to all users: ' + text });
    const who = (n, state) => line.locator(`.unseen .who[data-number="${n}"]`
                                           + `[data-state="${state}"]`);
    await who(na, 'queued').waitFor(WAIT);
    await who(nb, 'queued').waitFor(WAIT);
    await line.locator('.receipts[data-seen="1"][data-of="3"]').waitFor(WAIT);
    expect(!(await line.locator('button.again').count()), 'push again offered for queued pushes');
    for (let i = 1; i <= 64; i++) admin.push(keyA, `filler ${i}`, 'f' + i);
    await who(na, 'lost').waitFor(WAIT);
    const unseen = await line.locator('.unseen').textContent();
    expect(unseen.includes(`#${na} (Ann) lost: more pushes waited than a seat keeps`)
           && unseen.includes(`#${nb} queued (away)`) && !unseen.includes(`#${nc}`), unseen);
    const again = line.locator('button.again');
    expect((await again.textContent()) === `Push again to #${na} (Ann)`, await again.textContent());
    if (run === 1)
      await console_.screenshot({ path: path.join(OUT, 'screenshots', 'admin-not-seen.png') });
    await again.click();
    const second = console_.locator('#log li.you', { hasText: `again, to #${na} (Ann): ${text}` });
    await second.locator(`.unseen .who[data-number="${na}"][data-state="queued"]`).waitFor(WAIT);
    expect(!(await line.locator('button.again').count()), 'push again still offered');
    expect((await line.locator('.unseen').textContent()).includes('pushed again'), 'not marked');
    relay.down = false;         // the Wi-Fi is back
    await second.locator('.receipts[data-seen="1"][data-of="1"]').waitFor({ timeout: 20000 });
    await line.locator('.receipts[data-seen="2"][data-of="3"]').waitFor(WAIT);
    for (const page of [a, b, c]) await barrier(page, page === c ? null : relay, 'the end');
    const [ga, gb, gc] = [await pushesShown(a), await pushesShown(b), await pushesShown(c)];
    expect(ga.filter((t) => t === text).length === 1 && ga[ga.length - 1] === text,
           '#A showed ' + JSON.stringify(ga.slice(-3)));
    expect(JSON.stringify(gb) === JSON.stringify([text]), '#B showed ' + JSON.stringify(gb));
    expect(JSON.stringify(gc) === JSON.stringify([text]), '#C showed ' + JSON.stringify(gc));
  } finally {
    admin.ws.close();
    for (const page of [a, b, c, console_]) await page.close();
    relay.close();
    await srv.stop();
  }
}

// The row says why a student is away, and counts the drops: the Wi-Fi
// lost (no close), then back (only the count stays), a ghost left and
// taken over (4001), then the tab closed (close 1001).
async function whyAway(context, run) {
  const srv = await startServer(['-g', '60'], `seats-why-${run}`);
  const relay = await new Relay(srv.port).start();
  const console_ = await context.newPage();
  const user = await context.newPage();
  try {
    await console_.goto(`http://127.0.0.1:${srv.port}/admin.html`);
    await user.goto(`http://127.0.0.1:${relay.port}/user.html`);
    const number = await seatOf(user);
    const row = (more) => console_.locator(`#user-rows tr[data-number="${number}"]${more}`);
    const says = async (more, words, not) => {
      await row(more).waitFor(WAIT);
      const text = await row('').textContent();
      expect(words.every((w) => text.includes(w)) && !not.some((w) => text.includes(w)),
             `the row says "${text}"`);
    };
    let key = await liveKey(user, relay);
    relay.silence();
    relay.down = true;
    relay.reset(false);
    await says('.away[data-why="lost"][data-drops="1"]', ['away since', 'the connection was lost',
                                                          'unstable Wi-Fi: 1 drop in 10 min'], []);
    relay.down = false;
    await says(':not(.away)[data-drops="1"]', ['unstable Wi-Fi: 1 drop in 10 min'],
               ['away', 'lost', 'closed']);
    key = await liveKey(user, relay);
    relay.silence([key]);
    relay.reset(true);          // a ghost: the page's next connection takes the seat over
    await user.waitForFunction((old) => document.getElementById('key').textContent !== old
      && document.getElementById('status').classList.contains('open'), key, WAIT);
    await says(':not(.away)[data-drops="2"]', ['unstable Wi-Fi: 2 drops in 10 min'], ['away']);
    await user.close();         // close 1001
    await says('.away[data-why="closed"][data-drops="2"]',
               ['away since', 'the page was closed or reloaded', '2 drops'], ['lost']);
    if (run === 1)
      await console_.screenshot({ path: path.join(OUT, 'screenshots', 'admin-why-away.png') });
  } finally {
    if (!user.isClosed()) await user.close();
    await console_.close();
    relay.close();
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
    await barrier(user, relay, 'the end');
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
  const only = process.argv.slice(3);
  const parts = [
    ['drop', 'a drop of 2 s, then down and back: every push shown once, in order; one row; '
     + 'all seen', (context, run) => dropped(context, run), 90],
    ['grace', 'away past -g 3, a push is lost and the row goes', goneAfterGrace, 60],
    ['tabs', 'two tabs are two seats; a reload keeps its seat', twoTabs, 30],
    ['slow', `${PAGES} pages, 400 ms each way, dropped, left as ghosts and reloaded, pushes to `
     + 'all during handshakes: each shown once, in order; each student counted once; numbers '
     + 'never reused; never two rows', (context, run) => classroom(context, run, true), 120],
    ['blinks', `${PAGES} pages on a Wi-Fi that blinks 0.6 to 3 s (-i 1 -k 1), pushes to all `
     + 'meanwhile: each shown once, in order; each student counted once; numbers never '
     + 'reused; never two rows', (context, run) => classroom(context, run, false), 120],
    ['reload', 'a reload shows the pushes shown, in order, each once', reloaded, 30],
    ['not-seen', 'the admin page lists who has not seen a push, and why; "push again" '
     + 'reaches only those it was lost for', notSeen, 60],
    ['why', 'a row says why the student is away, and counts the drops', whyAway, 60],
  ];
  fs.mkdirSync(path.join(OUT, 'screenshots'), { recursive: true });
  const context = await newContext();
  try {
    for (let run = 1; run <= runs; run++) {
      const of = runs > 1 ? ` (run ${run} of ${runs})` : '';
      for (const [part, name, fn, seconds] of parts) {
        if (only.length === 0 || only.includes(part))
          await test('seats in Chromium: ' + name + of, () => fn(context, run), seconds);
      }
    }
  } finally {
    await context.close();
    finish();
  }
})();
