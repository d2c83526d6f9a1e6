// qr.js -- the admin page's "Students open", in headless Chromium: for
// each address it offers, its QR code, cut from a screenshot, read by an
// independent decoder (zbarimg, of Debian's zbar-tools) gives exactly the
// URL wspush printed at start-up; so does the code shown big (the
// projector), and codes of long URLs: an IPv6 address with a port, and
// one of 200 bytes (version 10). wspush listens on every address here,
// as in a classroom; the test talks to 127.0.0.1 only.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { OUT, test, expect, startServer, finish, skipped, CHROMIUM,
        CHROMIUM_FLAGS: FLAGS, needChromium, readQr } = require('./harness');

const WAIT = { timeout: 10000 };
const chromium = needChromium('QR code in Chromium');
if (!fs.existsSync('/usr/bin/zbarimg')) {
  skipped('QR code in Chromium', 'no /usr/bin/zbarimg (apt-get install zbar-tools)');
  process.exit(process.env.CI ? 1 : 0);
}

// What zbarimg reads in a screenshot of the canvas.
const decode = (page, name) => readQr(page, '#join-qr', name);

(async () => {
  fs.mkdirSync(path.join(OUT, 'screenshots'), { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'wspush-qr-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM,
                                                                     headless: true, args: FLAGS });
  const srv = await startServer(['-b', '::'], 'qr');
  try {
    const admin = await context.newPage();
    await test('QR code: the admin page offers every address start-up printed, each as a QR '
               + 'code that reads as that URL', async () => {
      const printed = [...srv.log().matchAll(/^(?:Students open:)?\s+(http:\/\/\S+\/user\.html)$/gm)]
        .map((m) => m[1]);
      await admin.goto(`http://127.0.0.1:${srv.port}/admin.html`);
      await admin.locator('#join:not([hidden])').waitFor(WAIT);
      const offered = await admin.$$eval('#join-choice option', (os) => os.map((o) => o.value));
      expect(JSON.stringify(offered) === JSON.stringify(printed),
             `offered ${offered}, printed ${printed}`);
      expect(offered.length > 0, 'no address to offer on this machine');
      for (const [i, url] of offered.entries()) {
        await admin.selectOption('#join-choice', url);
        expect((await admin.textContent('#join-url')) === url, 'the link');
        const read = await decode(admin, `qr-${i}.png`);
        expect(read === url, `read ${JSON.stringify(read)} for ${url}`);
      }
    });
    await test('QR code: shown big, for a projector, it fills the screen and still reads', async () => {
      await admin.setViewportSize({ width: 1280, height: 720 });
      const url = await admin.$eval('#join-choice', (s) => s.value);
      await admin.click('#join-big');
      const box = await admin.locator('#join-qr').boundingBox();
      expect(box.height >= 720 * 0.7, `only ${box.height} px high`);
      expect((await decode(admin, 'qr-big.png')) === url, 'big');
      await admin.screenshot({ path: path.join(OUT, 'screenshots', 'admin-qr-big.png') });
      await admin.click('#join-big');
      await admin.screenshot({ path: path.join(OUT, 'screenshots', 'admin-qr.png'), fullPage: true });
    });
    await test('QR code: long URLs, an IPv6 address with a port, and 200 bytes (version 10)',
      async () => {
        const long = ['http://[2001:db8:1234:5678:9abc:def0:1234:5678]:65535/user.html',
          'https://school.example/' + 'x'.repeat(200 - 23)];
        for (const [i, url] of long.entries()) {
          await admin.evaluate((u) => qr.draw(document.getElementById('join-qr'), u, 400), url);
          expect((await decode(admin, `qr-long-${i}.png`)) === url, url);
        }
      });
  } finally {
    await context.close();
    await srv.stop();
    finish();
  }
})();
