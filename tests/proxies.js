// proxies.js BASE TOKEN NAME -- Chromium through a TLS proxy in front of
// wspush (tests/proxies.py starts both): user.html and admin.html load
// over https from BASE, find wss://host/ws, and a push reaches the user.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { test, expect, finish, CHROMIUM, CHROMIUM_FLAGS } = require('./harness');
const { chromium } = require('playwright-core');

const [base, token, name] = process.argv.slice(2);
const FLAGS = CHROMIUM_FLAGS.concat(['--ignore-certificate-errors']);
const WAIT = { timeout: 10000 };

(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'wspush-proxy-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true,
    args: FLAGS, ignoreHTTPSErrors: true });
  try {
    await test(`proxy ${name}: Chromium loads both pages over https; the push reaches the user`, async () => {
      const user = await context.newPage();
      await user.goto(base + '/user.html');
      await user.locator('#status.open').waitFor(WAIT);
      expect((await user.textContent('#status')).includes('wss://'), 'not over wss://');
      await user.waitForFunction(() => /^[A-Za-z0-9+/]{22}==$/.test(
        document.getElementById('key').textContent), null, WAIT);
      const key = await user.textContent('#key');
      const admin = await context.newPage();
      await admin.goto(`${base}/admin.html?token=${encodeURIComponent(token)}`);
      await admin.locator('#status.open').waitFor(WAIT);
      if (await admin.isVisible('#login-btn')) await admin.click('#login-btn');
      await admin.locator(`#user-rows tr[data-key="${key}"]`).waitFor(WAIT);
      await admin.check(`#user-rows tr[data-key="${key}"] input[type=checkbox]`);
      await admin.fill('#stext', 'through the proxy');
      await admin.click('#btn');
      await user.locator('#log', { hasText: 'through the proxy' }).waitFor(WAIT);
    }, 60);
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  finish();
})();
