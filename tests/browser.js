// browser.js -- the consoles in headless Chromium, driven by playwright-core.
//
// A. wspush serves www/: the pages carry their safety headers; names show
//    in the admin's list; each push reaches only the users picked; a
//    picked user who leaves clears the pick; kick closes the right page,
//    which stays closed until Reconnect; echo; a script payload stays
//    text; the wire panel; 500 messages of 60 KB from a page all come
//    back; a message over -m ends in close 1009, cleanly; ?ws= cannot
//    point a page of wspush elsewhere; the pages reconnect after a
//    restart; phone width; no console errors.
// B. wspush on port 8080, as the tutorial expects: the tutorial's own
//    pages, unchanged (from its text; jQuery from the npm package): the
//    scenario; a push to a user who left reaches nobody; a user who joins
//    between picking and pushing does not get the push. Our pages served
//    by another web server, and as files.
// L. lessons 05 and 06 with the tutorial's pages: the same three cases.
// C. The admin token: asked for, refused, accepted; not sent unseen to a
//    server the page did not come from.
// Screenshots go to tests/out/screenshots.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn, execFileSync } = require('child_process');
const { ROOT, OUT, test, expect, startServer, seedDir, finish, skipped, report, CHROMIUM,
        CHROMIUM_FLAGS: FLAGS, needChromium } = require('./harness');

const SHOTS = path.join(OUT, 'screenshots');
const WAIT = { timeout: 10000 };
const chromium = needChromium('browser');

// A page that records its console errors and uncaught exceptions, and
// how many lines it logged.
async function openPage(context, url, errors, viewport) {
  const page = await context.newPage();
  page.logged = 0;
  if (viewport) await page.setViewportSize(viewport);
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push({ at: Date.now(), text: `${url}: ${m.text()}` });
    if (m.type() === 'log') page.logged++;
  });
  page.on('pageerror', (e) => errors.push({ at: Date.now(), text: `${url}: ${e.message}` }));
  page.response = await page.goto(url);
  return page;
}

async function keyOf(page) {
  await page.waitForFunction(() => /^[A-Za-z0-9+/]{22}==$/.test(
    document.getElementById('key').textContent), null, WAIT);
  return page.textContent('#key');
}

// Wait until the admin's list holds exactly these keys, in this order.
async function rowsAre(admin, keys) {
  await admin.waitForFunction((want) => {
    const have = [...document.querySelectorAll('#user-rows tr')].map((r) => r.dataset.key);
    return have.join() === want.join();
  }, keys, WAIT);
}

async function rowText(admin, key) {
  return admin.$eval(`#user-rows tr[data-key="${key}"]`, (r) => r.textContent);
}

async function pick(admin, key) {
  await admin.check(`#user-rows tr[data-key="${key}"] input[type=checkbox]`);
}

async function logHas(page, kind, text) {
  await page.locator(`#log li.${kind} span`, { hasText: text }).first().waitFor(WAIT);
}

async function logLacks(page, text) {
  const texts = await page.$$eval('#log li span', (spans) => spans.map((s) => s.textContent));
  return !texts.some((t) => t.includes(text));
}

async function pushPicked(admin, text) {
  await admin.fill('#stext', text);
  await admin.click('#btn');
}

async function phaseA(context) {
  const srv = await startServer(['-m', '1048576', '-g', '2'], 'browser-a');
  const base = `http://127.0.0.1:${srv.port}`;
  const errors = [];
  let u1, u2, u3, admin, k1, k2, k3;
  await test('browser: the pages load from wspush, with their safety headers, and connect', async () => {
    const index = await openPage(context, base + '/', errors);
    expect(await index.locator('a[href="user.html"]').count() === 1 &&
           await index.locator('a[href="admin.html"]').count() === 1, 'index links both consoles');
    const h = index.response.headers();
    expect(h['x-frame-options'] === 'DENY' && h['x-content-type-options'] === 'nosniff' &&
           /connect-src 'self'/.test(h['content-security-policy']) &&
           /frame-ancestors 'none'/.test(h['content-security-policy']), JSON.stringify(h));
    await index.screenshot({ path: path.join(SHOTS, 'index.png'), fullPage: true });
    await index.close();
    u1 = await openPage(context, base + '/user.html', errors);
    u2 = await openPage(context, base + '/user.html', errors);
    u3 = await openPage(context, base + '/user.html', errors);
    admin = await openPage(context, base + '/admin.html', errors);
    [k1, k2, k3] = [await keyOf(u1), await keyOf(u2), await keyOf(u3)];
    expect(new Set([k1, k2, k3]).size === 3, 'three users, three keys');
    for (const p of [u1, u2, u3, admin]) await p.locator('#status.open').waitFor(WAIT);
    expect((await u1.textContent('#status')).includes(`ws://127.0.0.1:${srv.port}/ws`), 'server');
    await rowsAre(admin, [k1, k2, k3]);
  });
  await test('browser: names show in the admin list, and change when the student changes them', async () => {
    await u1.fill('#name', 'Ann');
    await u1.click('#name-btn');
    await admin.waitForFunction((k) => document.querySelector(`tr[data-key="${k}"]`)
      .textContent.includes('Ann'), k1, WAIT);
    await u1.fill('#name', 'Ann Lee');
    await u1.click('#name-btn');
    await admin.waitForFunction((k) => document.querySelector(`tr[data-key="${k}"]`)
      .textContent.includes('Ann Lee'), k1, WAIT);
    expect(/#\d+Ann Lee127\.0\.0\.1/.test(await rowText(admin, k1)), await rowText(admin, k1));
    await u1.reload();              // the name is kept in the browser, sent again
    k1 = await keyOf(u1);
    await admin.waitForFunction((k) => { const r = document.querySelector(`tr[data-key="${k}"]`);
      return r && r.textContent.includes('Ann Lee'); }, k1, WAIT);
    await admin.screenshot({ path: path.join(SHOTS, 'admin.png'), fullPage: true });
  });
  await test('browser: a push reaches only the users picked, one or several', async () => {
    await pick(admin, k1);
    await pushPicked(admin, 'hello one');
    await logHas(u1, 'push', 'hello one');
    await logHas(admin, 'server', 'Already sent.');
    await pick(admin, k2);
    await pushPicked(admin, 'hello both');
    await logHas(u1, 'push', 'hello both');
    await logHas(u2, 'push', 'hello both');
    expect(await logLacks(u2, 'hello one'), 'user 2 got user 1\'s message');
    expect(await logLacks(u3, 'hello'), 'user 3 got a message for others');
  });
  await test('browser: a picked user who leaves is away, then gone (-g 2): the pick is cleared; '
             + 'the push reaches nobody', async () => {
    await u2.close();
    await admin.locator(`tr[data-key="${k2}"].away`).waitFor(WAIT);
    expect((await rowText(admin, k2)).includes('away since'), await rowText(admin, k2));
    await logHas(admin, 'error', 'left; the pick is cleared');
    expect(await admin.isDisabled('#btn'), 'Push is still enabled');
    expect(!(await admin.isChecked(`tr[data-key="${k1}"] input`)), 'user 1 is still picked');
    await admin.click('#btn', { force: true });
    await u1.waitForTimeout(300);
    expect(await logLacks(u1, 'push message to user'), 'user 1 got a push nobody meant for it');
    expect(await logLacks(u3, 'push message to user'), 'user 3 got a push');
  });
  await test('browser: kick closes the right page, which stays closed until Reconnect', async () => {
    await admin.click(`tr[data-key="${k3}"] button.kick`);
    await u3.locator('#status.closed', { hasText: 'closed by the teacher' }).waitFor(WAIT);
    await rowsAre(admin, [k1]);
    await u3.waitForTimeout(3000);      // it would reconnect within 1 s
    expect((await u3.textContent('#status')).includes('closed by the teacher'), 'it came back');
    expect(await u3.isVisible('#reconnect'), 'no Reconnect button');
    await u3.screenshot({ path: path.join(SHOTS, 'user-kicked.png') });
    await u1.locator('#status.open').waitFor(WAIT);
    await u3.click('#reconnect');
    await u3.locator('#status.open').waitFor(WAIT);
    k3 = await keyOf(u3);
    await rowsAre(admin, [k1, k3]);
  });
  await test('browser: echo, and an HTML/script payload shows as text and runs nothing', async () => {
    await u1.fill('#stext', 'echo me');
    await u1.click('#btn');
    await logHas(u1, 'echo', 'echo me');
    const evil = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';
    await pick(admin, k1);
    await pushPicked(admin, evil);
    await logHas(u1, 'push', '<img src=x onerror=');
    expect(await u1.evaluate(() => window.__pwned) === undefined, 'the payload ran');
    expect(await u1.$$eval('#log img, #log script', (els) => els.length) === 0, 'it became markup');
    await u1.screenshot({ path: path.join(SHOTS, 'user.png'), fullPage: true });
  });
  await test('browser: the wire panel shows each message as sent and received; events go to the console', async () => {
    await u1.check('#wire-on');
    await u1.fill('#stext', 'on the wire');
    await u1.click('#btn');
    await u1.locator('#wire li.sent code', { hasText: '{"req":"echo","text":"on the wire"}' }).waitFor(WAIT);
    await u1.locator('#wire li.received code',
      { hasText: '{"resp":"echo","content":"on the wire"}' }).waitFor(WAIT);
    expect(u1.logged > 0, 'nothing was logged to the console');
    await u1.screenshot({ path: path.join(SHOTS, 'user-wire.png'), fullPage: true });
  });
  await test('browser: a page sends 500 messages of 60 KB in a loop; all come back, in order', async () => {
    const ok = await u1.evaluate((url) => new Promise((resolve) => {
      const ws = new WebSocket(url);
      let next = 0;
      ws.onopen = () => {
        for (let i = 0; i < 500; i++) {
          ws.send(JSON.stringify({ req: 'text', text: String(i).padStart(4, '0') + 'z'.repeat(60000) }));
        }
      };
      ws.onmessage = (e) => {
        const content = JSON.parse(e.data).content;
        if (!content.startsWith(String(next).padStart(4, '0'))) resolve(`reply ${next} out of order`);
        if (++next === 500) { ws.close(); resolve('ok'); }
      };
      ws.onclose = (e) => resolve(next === 500 ? 'ok' : `closed ${e.code} after ${next}`);
    }), `ws://127.0.0.1:${srv.port}/ws`);
    expect(ok === 'ok', ok);
  }, 60);
  // Chromium reports wasClean false when the page's own message was never
  // fully sent (bufferedAmount > 0), however the server closes; so the
  // test asks for a clean close unless the browser still held bytes.
  await test('browser: a message over -m ends in close 1009, cleanly unless unsent', async () => {
    const closed = await u1.evaluate((url) => new Promise((resolve) => {
      const ws = new WebSocket(url);
      ws.onopen = () => ws.send('{"req":"text","text":"' + 'b'.repeat(2 << 20) + '"}');
      ws.onclose = (e) => resolve({ code: e.code, reason: e.reason, clean: e.wasClean,
                                    unsent: ws.bufferedAmount });
    }), `ws://127.0.0.1:${srv.port}/ws`);
    expect(closed.code === 1009 && /larger/.test(closed.reason)
           && (closed.clean || closed.unsent > 0), JSON.stringify(closed));
  });
  await test('browser: ?ws= cannot point a page served by wspush at another server', async () => {
    const other = await startServer([], 'browser-a-other');
    try {
      const p = await openPage(context, `${base}/admin.html?ws=ws://127.0.0.1:${other.port}/&token=x`, errors);
      await p.locator('#status.open').waitFor(WAIT);
      expect((await p.textContent('#status')).includes(`:${srv.port}/ws`), 'it went elsewhere');
      await p.close();
      expect(!other.log().includes('Connection accepted'), 'the other server was contacted');
    } finally {
      await other.stop();
    }
  });
  await test('browser: readable on a phone, no sideways scrolling', async () => {
    for (const name of ['index', 'user', 'admin']) {
      const p = await openPage(context, `${base}/${name === 'index' ? '' : name + '.html'}`,
                               [], { width: 360, height: 740 });
      const wide = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(wide <= 0, `${name}.html is ${wide}px wider than a phone`);
      await p.screenshot({ path: path.join(SHOTS, `${name}-phone.png`), fullPage: true });
      await p.close();
    }
  });
  let down = 0, up = 0;
  await test('browser: the pages show a lost server and reconnect when it is back', async () => {
    down = Date.now();
    await srv.stop();
    for (const p of [u1, admin]) await p.locator('#status.closed').waitFor(WAIT);
    const again = await startServer(['-p', String(srv.port)], 'browser-a2');
    try {
      for (const p of [u1, u3, admin]) await p.locator('#status.open').waitFor({ timeout: 15000 });
      up = Date.now();
      const k = await keyOf(u1);
      // The two users came back in either order: the admin lists both.
      const k3again = await keyOf(u3);
      await admin.waitForFunction((want) => {
        const have = [...document.querySelectorAll('#user-rows tr')].map((r) => r.dataset.key);
        return have.sort().join() === want.sort().join();
      }, [k, k3again], WAIT);
      await pick(admin, k);
      await pushPicked(admin, 'after the restart');
      await logHas(u1, 'push', 'after the restart');
    } finally {
      await again.stop();
    }
  });
  // While the server was down, "connection refused" errors are expected;
  // any other error, or any at another time, is a defect in the pages.
  const real = errors.filter((e) => !(e.at >= down && e.at <= up + 500 &&
    /ERR_CONNECTION_REFUSED|WebSocket connection to .* failed/.test(e.text)));
  report('browser: no console errors on the pages', real.length === 0,
         real.map((e) => e.text).join(' | '));
  for (const p of [u1, u3, admin]) await p.close();
}

// The tutorial's two pages, exactly as printed, from its text.
function articlePages() {
  const seed = seedDir().dir;
  if (!seed) return null;
  const text = fs.readFileSync(path.join(seed, 'article.txt'), 'utf8');
  const pages = [...text.matchAll(/<!DOCTYPE html>[\s\S]*?<\/html>\n<script>[\s\S]*?<\/script>\n/g)]
    .map((m) => m[0]);
  if (pages.length !== 2 || !pages[0].includes('Websocket - User') ||
      !pages[1].includes('Websocket - Admin')) return null;
  return { user: pages[0], admin: pages[1] };
}

const JQUERY_CDN = 'https://ajax.googleapis.com/ajax/libs/jquery/3.4.0/jquery.min.js';

// The tutorial's pages load jQuery from a CDN; it comes from node_modules instead.
async function routeJquery(context) {
  const jquery = fs.readFileSync(path.join(__dirname, 'node_modules', 'jquery', 'dist', 'jquery.min.js'));
  await context.route(JQUERY_CDN, (route) => route.fulfill({
    status: 200, contentType: 'text/javascript', body: jquery }));
}

async function articlePhase(context, base, errors, who) {
  const options = (p) => p.$$eval('#user-list option', (os) => os.map((o) => [o.value, o.textContent]));
  const opened = () => typeof socket !== 'undefined' && socket.readyState === 1;
  const user = async () => {
    const p = await openPage(context, base + '/user.html', errors);
    await p.waitForFunction(opened, null, WAIT);
    return p;
  };
  const rtext = (p) => p.textContent('#rtext');
  let u1, u2, admin;
  await test(`browser: the tutorial's pages, unchanged, pass the scenario against ${who}`, async () => {
    u1 = await user();
    u2 = await user();
    admin = await openPage(context, base + '/admin.html', errors);
    await admin.waitForFunction(() => document.querySelectorAll('#user-list option').length === 2,
                                null, WAIT);
    const [[k1, label1], [k2]] = await options(admin);
    expect(label1 === 'USER : user1', `label ${label1}`);
    for (const [key, page, text] of [[k1, u1, 'push message to user 1'],
                                     [k2, u2, 'push message to user 2']]) {
      await admin.selectOption('#user-list', key);
      await admin.fill('#stext', text);
      await admin.click('#btn');
      await page.locator('#rtext', { hasText: text }).waitFor(WAIT);
      await admin.locator('#rtext', { hasText: 'Already sent.' }).first().waitFor(WAIT);
    }
    expect(!(await rtext(u2)).includes('user 1'), 'user 2 got user 1\'s push');
    expect(!(await rtext(u1)).includes('user 2'), 'user 1 got user 2\'s push');
    await u1.fill('#stext', 'message from user 1');
    await u1.click('#btn');
    await u1.locator('#rtext', { hasText: 'message from user 1' }).waitFor(WAIT);
    await u1.screenshot({ path: path.join(SHOTS, 'article-user.png') });
    await admin.screenshot({ path: path.join(SHOTS, 'article-admin.png') });
  });
  await test(`browser: the tutorial's admin page and ${who}: a picked user who left gets nothing, nor does anyone`, async () => {
    const [, [k2]] = await options(admin);
    await admin.selectOption('#user-list', k2);
    await u2.close();
    await admin.waitForTimeout(500);   // the tutorial's page is not told; it keeps its list
    expect((await options(admin)).length === 2, 'the page was sent a list it did not ask for');
    await admin.fill('#stext', 'to the one who left');
    await admin.click('#btn');
    await admin.locator('#rtext', { hasText: 'Refresh user list complete. Try again!' }).waitFor(WAIT);
    await admin.waitForFunction(() => document.querySelectorAll('#user-list option').length === 1,
                                null, WAIT);
    expect(!(await rtext(u1)).includes('to the one who left'), 'user 1 got it');
  });
  await test(`browser: the tutorial's admin page and ${who}: a user who joins before Push does not get it`, async () => {
    const [[k1]] = await options(admin);
    await admin.selectOption('#user-list', k1);
    const u3 = await user();
    await admin.waitForTimeout(300);
    expect(await admin.$eval('#user-list', (s) => s.value) === k1, 'the pick moved');
    await admin.fill('#stext', 'only for user 1');
    await admin.click('#btn');
    await u1.locator('#rtext', { hasText: 'only for user 1' }).waitFor(WAIT);
    await u3.waitForTimeout(300);
    expect(!(await rtext(u3)).includes('only for user 1'), 'the newcomer got it');
    await u3.close();
  });
  for (const p of [u1, admin]) if (p) await p.close();
}

async function phaseB(context) {
  const pages = articlePages();
  if (!pages) {
    skipped('browser: the tutorial\'s own pages',
            `article.txt is in none of ${seedDir().places.join(', ')} (set WSPUSH_SEED)`);
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wspush-article-'));
  fs.writeFileSync(path.join(dir, 'user.html'), pages.user);
  fs.writeFileSync(path.join(dir, 'admin.html'), pages.admin);
  fs.copyFileSync(path.join(ROOT, 'www', 'style.css'), path.join(dir, 'style.css'));
  let srv;
  try {
    srv = await startServer(['-p', '8080', '-d', dir], 'browser-b');
  } catch (e) {
    report('browser: the tutorial\'s own pages', false, 'port 8080 is in use here: ' + e.message);
    fs.rmSync(dir, { recursive: true });
    return;
  }
  await routeJquery(context);
  const errors = [];
  await articlePhase(context, 'http://localhost:8080', errors, 'wspush');   // the pages say localhost
  const thrown = errors.filter((e) => !/Failed to load resource/.test(e.text));
  report('browser: the tutorial\'s pages throw no errors', thrown.length === 0,
         thrown.map((e) => e.text).join(' | '));

  // Our pages served by another web server (as with XAMPP), and as files.
  const other = spawn('python3', ['-m', 'http.server', '0', '--bind', '127.0.0.1',
                                   '--directory', path.join(ROOT, 'www')],
                      { stdio: ['ignore', 'pipe', 'pipe'] });
  const port = await new Promise((resolve) => {
    other.stdout.on('data', (d) => {
      const m = /port (\d+)/.exec(String(d));
      if (m) resolve(+m[1]);
    });
    setTimeout(() => resolve(0), 10000);
  });
  await test('browser: served by another web server, the pages find ws://host:8080/ws', async () => {
    expect(port, 'the other web server did not start');
    const p = await openPage(context, `http://127.0.0.1:${port}/user.html`, []);
    await keyOf(p);
    expect((await p.textContent('#status')).includes('ws://127.0.0.1:8080/ws'), 'wrong server');
    await p.close();
  });
  other.kill();
  await test('browser: opened as a file, with and without ?ws=URL', async () => {
    const file = 'file://' + path.join(ROOT, 'www', 'user.html');
    for (const url of [file, file + '?ws=ws://127.0.0.1:8080/']) {
      const p = await openPage(context, url, []);
      await keyOf(p);
      await p.close();
    }
  });
  await srv.stop();
  await phaseL(context, dir, '05-push', 'lesson 5');
  await phaseL(context, dir, '06-nonblocking', 'lesson 6');
  fs.rmSync(dir, { recursive: true });
}

// L. lessons 05 and 06 on port 8080 with the tutorial's pages, served by
// another web server (as XAMPP would): Python's http.server here, Apache
// httpd in tests/xampp.js.
async function phaseL(context, dir, name, label) {
  const web = spawn('python3', ['-m', 'http.server', '0', '--bind', '127.0.0.1', '--directory', dir],
                    { stdio: ['ignore', 'pipe', 'pipe'] });
  const port = await new Promise((resolve) => {
    web.stdout.on('data', (d) => { const m = /port (\d+)/.exec(String(d)); if (m) resolve(+m[1]); });
    setTimeout(() => resolve(0), 10000);
  });
  try {
    if (port) await lessonPhase(context, name, label, `http://localhost:${port}`);
    else report(`browser: the tutorial's pages with ${label}`, false, 'the web server did not start');
  } finally {
    web.kill();
  }
}

// Lesson `name' (05-push, say) on port 8080, built with its one command,
// and the tutorial's pages from base (a web server's folder holding them).
async function lessonPhase(context, name, label, base) {
  const binary = path.join(OUT, 'lesson-' + name);
  execFileSync('cc', ['-o', binary, `lessons/${name}.c`, 'sha1.c'], { cwd: ROOT });
  const log = fs.openSync(path.join(OUT, `lesson-${name}.log`), 'w');
  const lesson = spawn(binary, ['8080'], { stdio: ['ignore', log, log] });
  const exited = new Promise((resolve) => lesson.on('exit', resolve));
  try {
    const errors = [];
    await articlePhase(context, base, errors, label);
    report(`browser: the tutorial's pages throw no errors with ${label}`,
           errors.filter((e) => !/Failed to load resource/.test(e.text)).length === 0,
           errors.map((e) => e.text).join(' | '));
  } finally {
    lesson.kill();
    await exited;           // port 8080 is free for the next one
  }
}

async function phaseC(context) {
  const srv = await startServer(['-t', 's3cret phrase'], 'browser-c');
  const base = `http://127.0.0.1:${srv.port}`;
  await test('browser: the admin page asks for the token, says where it goes, and sends it', async () => {
    const user = await openPage(context, base + '/user.html', []);
    const k = await keyOf(user);
    const admin = await openPage(context, base + '/admin.html', []);
    await logHas(admin, 'error', 'admin token required');
    expect(await admin.isVisible('#token'), 'token field shown');
    expect((await admin.textContent('#token-goes')).includes(`ws://127.0.0.1:${srv.port}/ws`),
           'the page does not say where the token goes');
    await admin.fill('#token', 'wrong');
    await admin.click('#login-btn');
    await logHas(admin, 'error', 'wrong admin token');
    await admin.waitForTimeout(1100);      // a wrong token makes the address wait 1 s
    await admin.check('#wire-on');
    await admin.fill('#token', 's3cret phrase');
    await admin.click('#login-btn');
    await rowsAre(admin, [k]);
    const wire = await admin.textContent('#wire');
    expect(wire.includes('"token":"***"') && !wire.includes('s3cret'),
           'the wire panel shows the token: ' + wire.slice(0, 300));
    await admin.screenshot({ path: path.join(SHOTS, 'admin-token.png') });
    const viaUrl = await openPage(context, base + '/admin.html?token=s3cret phrase', []);
    await rowsAre(viaUrl, [k]);
    expect(!viaUrl.url().includes('s3cret'), 'the token stays in the address bar: ' + viaUrl.url());
    for (const p of [user, admin, viaUrl]) await p.close();
  });
  const other = spawn('python3', ['-m', 'http.server', '0', '--bind', '127.0.0.1',
                                   '--directory', path.join(ROOT, 'www')],
                      { stdio: ['ignore', 'pipe', 'pipe'] });
  const port = await new Promise((resolve) => {
    other.stdout.on('data', (d) => { const m = /port (\d+)/.exec(String(d)); if (m) resolve(+m[1]); });
    setTimeout(() => resolve(0), 10000);
  });
  await test('browser: a page from elsewhere does not send a token from its link unseen', async () => {
    const url = `http://127.0.0.1:${port}/admin.html?ws=ws://127.0.0.1:${srv.port}/ws&token=s3cret phrase`;
    const before = srv.log().length;
    const admin = await openPage(context, url, []);
    await admin.locator('#status.open').waitFor(WAIT);
    await admin.locator('#login').waitFor({ state: 'visible', timeout: 10000 });
    expect((await admin.textContent('#token-goes')).includes(`ws://127.0.0.1:${srv.port}/ws`),
           'the page does not say where the token goes');
    await admin.waitForTimeout(300);
    expect(!srv.log().slice(before).includes('get connections'), 'the token was sent unseen');
    await admin.click('#login-btn');
    await admin.locator('#count').waitFor(WAIT);
    await admin.waitForFunction(() => document.getElementById('login').hidden, null, WAIT);
    await admin.close();
  });
  await test('browser: a seat\'s secret goes only to the server that gave it, never to one a ' +
             '?ws= link names', async () => {
    // A server that records what pages offer and send it: the link's.
    const { WebSocketServer } = require('ws');
    const heard = [];
    const thief = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: (offered) => {
      heard.push('offered: ' + [...offered].join(', '));
      return 'echo-protocol';
    } });
    thief.on('connection', (ws) => ws.on('message', (m) => heard.push(String(m))));
    await new Promise((resolve) => thief.on('listening', resolve));
    const page = (ws) => `http://127.0.0.1:${port}/user.html?ws=${ws}`;
    const ours = `ws://127.0.0.1:${srv.port}/ws`;
    const user = await openPage(context, page(ours), []);
    await user.waitForFunction(() => /^#\d+$/.test(document.getElementById('seat').textContent),
                               null, WAIT);
    const seat = await user.textContent('#seat');
    const kept = await user.evaluate(() => sessionStorage.getItem('wspush-seat'));
    expect(kept && kept.includes('seat-'), 'no secret kept');
    await user.goto(page(`ws://127.0.0.1:${thief.address().port}/`));      // the same tab
    await user.locator('#status.open').waitFor(WAIT);
    for (const end = Date.now() + 10000; Date.now() < end &&         // its "seat" request
         !heard.some((h) => h.includes('"req":"seat"'));) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const told = heard.filter((h) => h.includes('seat-'));
    expect(heard.some((h) => h.includes('"req":"seat"')), 'the page never asked the other server');
    expect(told.length === 0, 'the secret went to the server a link named: ' + told.join(' | '));
    await user.goto(page(ours));                                          // back, same tab
    await user.waitForFunction((n) => document.getElementById('seat').textContent === n, seat,
                               WAIT);
    await user.close();
    thief.close();
  });
  other.kill();
  await srv.stop();
}

// tests/xampp.js runs the tutorial's pages and the lessons under Apache.
module.exports = { articlePages, routeJquery, lessonPhase };
if (require.main === module) (async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'wspush-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: FLAGS });
  try {
    await phaseA(context);
    await phaseB(context);
    await phaseC(context);
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  console.log(`screenshots: ${SHOTS}`);
  finish();
})().catch((e) => {
  report('browser', false, e.stack || String(e));
  finish();
});
