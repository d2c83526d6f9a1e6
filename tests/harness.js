// harness.js -- start wspush for the Node tests, and report results in
// test.sh's format: "PASS: name", "FAIL: name: why", "SKIPPED: name: why".
'use strict';
const { spawn, execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');
const OUT = path.join(ROOT, 'tests', 'out');
let failures = 0;

function report(name, ok, why) {
  if (ok) console.log(`PASS: ${name}`);
  else { failures++; console.log(`FAIL: ${name}: ${why}`); }
}

function skipped(name, why) {
  if (process.env.CI) report(name, false, why);
  else console.log(`SKIPPED: ${name}: ${why}`);
}

// Run fn (async) as one named test; a thrown error or a timeout fails it.
async function test(name, fn, seconds = 30) {
  let timer;
  try {
    await Promise.race([fn(), new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${seconds} s`)), seconds * 1000);
    })]);
    report(name, true);
  } catch (e) {
    report(name, false, e && e.message ? e.message : String(e));
  } finally {
    clearTimeout(timer);
  }
}

function expect(cond, why) {
  if (!cond) throw new Error(why);
}

// Start ./wspush on a free loopback port; resolves to {port, stop, log}.
function startServer(args = [], name = 'node') {
  fs.mkdirSync(OUT, { recursive: true });
  const logPath = path.join(OUT, `${name}-${process.pid}.log`);
  const log = fs.openSync(logPath, 'w');
  const proc = spawn(path.join(ROOT, 'wspush'), ['-p', '0', '-b', '127.0.0.1', ...args],
                     { cwd: ROOT, stdio: ['ignore', log, log] });
  const readLog = () => fs.readFileSync(logPath, 'utf8');
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = setInterval(() => {
      const m = /Server is listening on port (\d+)/.exec(readLog());
      if (m || Date.now() - started > 10000 || proc.exitCode !== null) {
        clearInterval(poll);
        if (!m) { proc.kill(); reject(new Error('wspush did not start: ' + readLog())); return; }
        resolve({
          port: +m[1],
          log: readLog,
          stop: () => new Promise((done) => {
            if (proc.exitCode !== null) { done(proc.exitCode); return; }
            const kill = setTimeout(() => proc.kill('SIGKILL'), 10000);
            proc.on('exit', (code) => { clearTimeout(kill); done(code); });
            proc.kill('SIGTERM');
          }),
        });
      }
    }, 20);
  });
}

// The folder with the article's text and server: $WSPUSH_SEED, or
// shared/seed beside the checkout (or one level further up).
function seedDir() {
  const places = process.env.WSPUSH_SEED ? [process.env.WSPUSH_SEED]
    : [path.join(ROOT, '..', 'shared', 'seed'), path.join(ROOT, '..', '..', 'shared', 'seed')];
  const found = places.find((p) => fs.existsSync(path.join(p, 'article.txt')));
  return { dir: found || null, places };
}

function finish() {
  process.exitCode = failures ? 1 : 0;
}

// Headless Chromium, launched by every browser test with these flags.
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic',
  '--no-first-run', '--disable-background-networking', '--disable-component-update',
  '--disable-sync'];

// playwright-core's chromium; if it or Chromium is missing, what says
// SKIPPED and the test ends (failing under CI, which must have both).
function needChromium(what) {
  let chromium = null;
  try {
    ({ chromium } = require('playwright-core'));
  } catch (e) {
    skipped(what, 'playwright-core is not installed: cd tests && npm ci');
  }
  if (chromium && !fs.existsSync(CHROMIUM))
    skipped(what, `no Chromium at ${CHROMIUM} (Debian: apt-get install chromium)`);
  if (!chromium || !fs.existsSync(CHROMIUM))
    process.exit(process.env.CI ? 1 : 0);
  return chromium;
}

// What zbarimg (Debian's zbar-tools, a decoder independent of www/qr.js)
// reads in a screenshot of the element `selector' of page, saved as
// tests/out/screenshots/NAME.
async function readQr(page, selector, name) {
  const file = path.join(OUT, 'screenshots', name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await page.locator(selector).screenshot({ path: file });
  const read = execFileSync('/usr/bin/zbarimg', ['-q', '--raw', file],
                            { stdio: ['ignore', 'pipe', 'ignore'] });
  return read.toString().replace(/\n$/, '');
}

module.exports = { ROOT, OUT, report, skipped, test, expect, startServer, seedDir, finish,
                   CHROMIUM, CHROMIUM_FLAGS, needChromium, readQr };
