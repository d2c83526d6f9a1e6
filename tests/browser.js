// browser.js -- the consoles in headless Chromium, driven by playwright-core.
//
// A. wspush serves www/: two user pages and an admin page; the list shows
//    both users; each push reaches only its user; echo; an HTML/script
//    payload stays text; a closed page leaves the list; push to all; the
//    pages reconnect after a server restart; no console errors; phone width.
// B. wspush on port 8080, as the article expects: the article's own pages,
//    unchanged (rebuilt from its text into a temporary folder, jQuery
//    served from the npm package), pass the same scenario; our pages find
//    the server when another web server serves them, or as files.
// C. The admin token: asked for, refused, then accepted.
// Screenshots go to tests/out/screenshots.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');
const { ROOT, OUT, test, expect, startServer, seedDir, finish, skipped, report } = require('./harness');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = path.join(OUT, 'screenshots');
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
  '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];
const WAIT = { timeout: 10000 };

let chromium;
try {
  ({ chromium } = require('playwright-core'));
} catch (e) {
  skipped('browser', 'playwright-core is not installed: cd tests && npm ci');
  process.exit(process.env.CI ? 1 : 0);
}
if (!fs.existsSync(CHROMIUM)) {
  skipped('browser', `no Chromium at ${CHROMIUM} (Debian: apt-get install chromium)`);
  process.exit(process.env.CI ? 1 : 0);
}

// A page that records its console errors and uncaught exceptions.
async function openPage(context, url, errors, viewport) {
  const page = await context.newPage();
  if (viewport) await page.setViewportSize(viewport);
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`${url}: ${m.text()}`); });
  page.on('pageerror', (e) => errors.push(`${url}: ${e.message}`));
  await page.goto(url);
  return page;
}

async function keyOf(page) {
  await page.waitForFunction(() => /^[A-Za-z0-9+/]{22}==$/.test(
    document.getElementById('key').textContent), null, WAIT);
  return page.textContent('#key');
}

// Wait until the admin's list holds exactly these keys.
async function listIs(admin, keys) {
  await admin.waitForFunction((want) => {
    const have = [...document.querySelectorAll('#user-list option')].map((o) => o.value);
    return have.length === want.length && want.every((k) => have.includes(k));
  }, keys, WAIT);
}

async function logHas(page, kind, text) {
  await page.locator(`#log li.${kind} span`, { hasText: text }).first().waitFor(WAIT);
}

async function logLacks(page, text) {
  const texts = await page.$$eval('#log li span', (spans) => spans.map((s) => s.textContent));
  return !texts.some((t) => t.includes(text));
}

async function push(admin, key, text) {
  await admin.selectOption('#user-list', key);
  await admin.fill('#stext', text);
  await admin.click('#btn');
}

async function phaseA(context) {
  const srv = await startServer([], 'browser-a');
  const base = `http://127.0.0.1:${srv.port}`;
  const errors = [];
  let u1, u2, admin, k1, k2;
  await test('browser: the pages load from wspush and connect', async () => {
    const index = await openPage(context, base + '/', errors);
    expect(await index.locator('a[href="user.html"]').count() === 1 &&
           await index.locator('a[href="admin.html"]').count() === 1, 'index links both consoles');
    await index.screenshot({ path: path.join(SHOTS, 'index.png'), fullPage: true });
    await index.close();
    u1 = await openPage(context, base + '/user.html', errors);
    u2 = await openPage(context, base + '/user.html', errors);
    admin = await openPage(context, base + '/admin.html', errors);
    k1 = await keyOf(u1);
    k2 = await keyOf(u2);
    expect(k1 !== k2, 'two users, two keys');
    for (const p of [u1, u2, admin]) await p.locator('#status.open').waitFor(WAIT);
  });
  await test('browser: the admin list shows both users', () => listIs(admin, [k1, k2]));
  await test('browser: each push arrives only at its user', async () => {
    await push(admin, k1, 'hello one');
    await logHas(u1, 'push', 'hello one');
    await logHas(admin, 'server', 'Already sent.');
    await push(admin, k2, 'hello two');
    await logHas(u2, 'push', 'hello two');
    expect(await logLacks(u2, 'hello one'), 'user 2 got user 1\'s message');
    expect(await logLacks(u1, 'hello two'), 'user 1 got user 2\'s message');
  });
  await test('browser: echo', async () => {
    await u1.fill('#stext', 'echo me');
    await u1.click('#btn');
    await logHas(u1, 'echo', 'echo me');
  });
  await test('browser: an HTML/script payload shows as text and runs nothing', async () => {
    const evil = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';
    await push(admin, k1, evil);
    await logHas(u1, 'push', '<img src=x onerror=');
    expect(await u1.evaluate(() => window.__pwned) === undefined, 'the payload ran');
    expect(await u1.$$eval('#log img, #log script', (els) => els.length) === 0,
           'the payload became elements');
    await u1.screenshot({ path: path.join(SHOTS, 'user.png'), fullPage: true });
    await admin.screenshot({ path: path.join(SHOTS, 'admin.png'), fullPage: true });
  });
  await test('browser: closing a user page removes it from the admin list', async () => {
    await u2.close();
    await listIs(admin, [k1]);
  });
  await test('browser: push to all users', async () => {
    await admin.fill('#stext', 'everyone');
    await admin.click('#all-btn');
    await logHas(u1, 'push', 'everyone');
    await logHas(admin, 'server', 'Sent to 1 user.');
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
  await test('browser: the pages show a lost server and reconnect when it is back', async () => {
    await srv.stop();
    for (const p of [u1, admin]) await p.locator('#status.closed').waitFor(WAIT);
    await u1.screenshot({ path: path.join(SHOTS, 'user-reconnecting.png') });
    const again = await startServer(['-p', String(srv.port)], 'browser-a2');
    try {
      for (const p of [u1, admin]) await p.locator('#status.open').waitFor({ timeout: 15000 });
      const k = await keyOf(u1);
      await listIs(admin, [k]);
      await push(admin, k, 'after the restart');
      await logHas(u1, 'push', 'after the restart');
    } finally {
      await again.stop();
    }
  });
  // Errors from the restart (connection refused while the server was
  // down) are expected; anything else is a defect in the pages.
  const real = errors.filter((e) => !/ERR_CONNECTION_REFUSED|WebSocket connection to .* failed/.test(e));
  report('browser: no console errors on the pages', real.length === 0, real.join(' | '));
  for (const p of [u1, admin]) await p.close();
}

// The article's two pages, exactly as printed, from its text.
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

async function phaseB(context) {
  const pages = articlePages();
  if (!pages) {
    skipped('browser: the article\'s own pages',
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
    skipped('browser: the article\'s own pages', 'port 8080 is in use here: ' + e.message);
    fs.rmSync(dir, { recursive: true });
    return;
  }
  // The pages load jQuery from a CDN; it comes from node_modules instead.
  const jquery = fs.readFileSync(path.join(__dirname, 'node_modules', 'jquery', 'dist', 'jquery.min.js'));
  await context.route(JQUERY_CDN, (route) => route.fulfill({
    status: 200, contentType: 'text/javascript', body: jquery }));
  const base = 'http://127.0.0.1:8080';
  const errors = [];
  let u1, u2, admin;
  const options = (p) => p.$$eval('#user-list option', (os) => os.map((o) => [o.value, o.textContent]));
  await test('browser: the article\'s pages, unchanged, pass the scenario against wspush', async () => {
    u1 = await openPage(context, base + '/user.html', errors);
    u2 = await openPage(context, base + '/user.html', errors);
    const opened = () => typeof socket !== 'undefined' && socket.readyState === 1;
    await u1.waitForFunction(opened, null, WAIT);
    await u2.waitForFunction(opened, null, WAIT);
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
    expect(!(await u2.textContent('#rtext')).includes('user 1'), 'user 2 got user 1\'s push');
    expect(!(await u1.textContent('#rtext')).includes('user 2'), 'user 1 got user 2\'s push');
    await u1.fill('#stext', 'message from user 1');
    await u1.click('#btn');
    await u1.locator('#rtext', { hasText: 'message from user 1' }).waitFor(WAIT);
    await u1.screenshot({ path: path.join(SHOTS, 'article-user.png') });
    await u2.close();        // wspush tells the admin page, which redraws its list
    await admin.waitForFunction(() => document.querySelectorAll('#user-list option').length === 1,
                                null, WAIT);
    await admin.screenshot({ path: path.join(SHOTS, 'article-admin.png') });
    const thrown = errors.filter((e) => !/Failed to load resource/.test(e));
    expect(thrown.length === 0, thrown.join(' | '));
  });
  for (const p of [u1, admin]) if (p) await p.close();

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
  await test('browser: served by another web server, the pages find ws://host:8080', async () => {
    expect(port, 'the other web server did not start');
    const p = await openPage(context, `http://127.0.0.1:${port}/user.html`, []);
    await keyOf(p);
    expect((await p.textContent('#status')).includes('ws://127.0.0.1:8080/'), 'wrong server');
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
  fs.rmSync(dir, { recursive: true });
}

async function phaseC(context) {
  const srv = await startServer(['-t', 's3cret'], 'browser-c');
  const base = `http://127.0.0.1:${srv.port}`;
  await test('browser: the admin page asks for the token and sends it', async () => {
    const user = await openPage(context, base + '/user.html', []);
    const k = await keyOf(user);
    const admin = await openPage(context, base + '/admin.html', []);
    await logHas(admin, 'error', 'admin token required');
    expect(await admin.isVisible('#token'), 'token field shown');
    await admin.fill('#token', 'wrong');
    await admin.click('#login-btn');
    await logHas(admin, 'error', 'wrong admin token');
    await admin.fill('#token', 's3cret');
    await admin.click('#login-btn');
    await listIs(admin, [k]);
    await admin.screenshot({ path: path.join(SHOTS, 'admin-token.png') });
    const viaUrl = await openPage(context, base + '/admin.html?token=s3cret', []);
    await listIs(viaUrl, [k]);
    for (const p of [user, admin, viaUrl]) await p.close();
  });
  await srv.stop();
}

(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'wspush-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: FLAGS.filter((f) => f !== '--headless') });
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
