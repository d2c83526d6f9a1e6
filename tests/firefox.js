// firefox.js -- wspush's pages in a second engine: Debian's Firefox ESR,
// driven by puppeteer-core over WebDriver BiDi, as browser.js and
// seats.js drive Chromium. Firefox writes its own handshake (it offers
// permessage-deflate, which wspush must leave unanswered) and its own
// close (1001 when a page goes away).
//   With wspush on 127.0.0.1 only, the admin page says that only this
//   machine can connect, and offers nothing to "show big". The user page
//   gets a seat, saves a name, sends a message and sees its echo; the
//   admin page lists the student by name, pushes to the picked row, and
//   its receipt says seen by 1 of 1; a reload keeps the seat, and the
//   admin page one row; closing the tab sends close 1001, echoed.
// node firefox.js [RUNS]: the whole of it RUNS times (default 1).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { OUT, test, expect, startServer, finish, skipped } = require('./harness');

const FIREFOX = process.env.FIREFOX || '/usr/bin/firefox-esr';
const WAIT = { timeout: 15000 };
let puppeteer = null;
try {
  puppeteer = require('puppeteer-core');
} catch (e) {
  skipped('pages in Firefox', 'puppeteer-core is not installed: cd tests && npm ci');
}
if (puppeteer && !fs.existsSync(FIREFOX))
  skipped('pages in Firefox', `no Firefox at ${FIREFOX} (Debian: apt-get install firefox-esr)`);
if (!puppeteer || !fs.existsSync(FIREFOX))
  process.exit(process.env.CI ? 1 : 0);

// Wait until fn() is true, checking every 20 ms; fail after ms.
async function until(fn, why, ms = WAIT.timeout) {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error('gave up waiting: ' + why);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const seatOf = async (page) => {
  await page.waitForFunction(() => /^#\d+$/.test(document.getElementById('seat').textContent), WAIT);
  return page.$eval('#seat', (e) => e.textContent);
};
const lines = (page, kind) => page.$$eval(`#log li.${kind} span`, (s) => s.map((e) => e.textContent));
const rows = (page) => page.$$eval('#user-rows tr', (rs) => rs.map((r) => ({
  number: r.dataset.number, away: r.classList.contains('away'), text: r.textContent })));

// Put text into the input at selector, as a user types it, and submit.
async function send(page, selector, text, button) {
  await page.$eval(selector, (e) => { e.value = ''; });
  await page.type(selector, text);
  await page.click(button);
}

async function pages(browser, run) {
  const srv = await startServer(['-v'], `firefox-${run}`);
  const admin = await browser.newPage();
  let user = await browser.newPage();
  try {
    await admin.goto(`http://127.0.0.1:${srv.port}/admin.html`);
    await admin.waitForSelector('#join-none:not([hidden])', WAIT);    // -b 127.0.0.1
    expect(await admin.$eval('#join-big', (e) => e.hidden), '"Show it big" with nothing to show');
    await user.goto(`http://127.0.0.1:${srv.port}/user.html`);
    const seat = await seatOf(user);
    await send(user, '#name', 'Firefox Student', '#name-btn');
    await until(async () => (await lines(user, 'name')).length === 1, 'the name saved');
    await send(user, '#stext', 'hello from Firefox', '#btn');
    await until(async () => (await lines(user, 'echo')).includes('hello from Firefox'), 'the echo');

    const number = seat.slice(1);
    await until(async () => (await rows(admin)).some((r) => r.number === number &&
                                                            r.text.includes('Firefox Student')),
                'the admin page lists the student by name');
    await admin.click(`#user-rows tr[data-number="${number}"] input[type=checkbox]`);
    await send(admin, '#stext', 'a push to Firefox', '#btn');
    await until(async () => (await lines(user, 'push')).includes('a push to Firefox'), 'the push');
    await admin.waitForSelector('#log .receipts[data-seen="1"][data-of="1"]', WAIT);

    const closes = (dir) => (srv.log().match(new RegExp(`${dir} close 1001`, 'g')) || []).length;
    const before = [closes('<-'), closes('->')];      // the first page's, at the reload
    await user.reload();
    expect((await seatOf(user)) === seat, 'a reload lost the seat');
    await until(async () => {
      const r = await rows(admin);
      return r.length === 1 && !r[0].away;
    }, 'one row, here, after the reload');
    await new Promise((r) => setTimeout(r, 300));      // a second row would show by now
    const after = await rows(admin);
    expect(after.length === 1 && after[0].number === number, 'rows: ' + JSON.stringify(after));
    const again = await lines(user, 'push');      // shown again from the tab, once
    expect(again.length === 1 && again[0] === 'a push to Firefox', 'after the reload: ' +
           JSON.stringify(again));
    if (run === 1) {
      fs.mkdirSync(path.join(OUT, 'screenshots'), { recursive: true });
      await admin.screenshot({ path: path.join(OUT, 'screenshots', 'admin-firefox.png') });
    }

    await user.close();
    user = null;
    await until(() => closes('<-') > before[0] + 1 && closes('->') > before[1] + 1,
                'close 1001 from the closed tab, and its echo');
    const log = srv.log();
    expect(/<- Sec-WebSocket-Extensions: permessage-deflate/.test(log), 'Firefox offered no '
           + 'extension: is this its handshake?');
    expect(!/-> Sec-WebSocket-Extensions/.test(log), 'wspush accepted an extension');
  } finally {
    if (user) await user.close();
    await admin.close();
    await srv.stop();
  }
}

(async () => {
  const runs = +(process.argv[2] || 1);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'wspush-firefox-'));
  const browser = await puppeteer.launch({ browser: 'firefox', executablePath: FIREFOX,
                                           headless: true, userDataDir: profile });
  try {
    for (let run = 1; run <= runs; run++) {
      const of = runs > 1 ? ` (run ${run} of ${runs})` : '';
      await test('pages in Firefox: a seat, a name, an echo; a push picked on the admin page, '
                 + 'seen; a reload keeps the seat and one row; close 1001 echoed' + of,
                 () => pages(browser, run), 60);
    }
  } finally {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
    finish();
  }
})();
