// xampp.js -- wspush beside another web server, as a classroom with XAMPP
// runs it. Debian's Apache httpd (apache2 -X, a configuration of its own)
// serves a folder shaped like XAMPP's htdocs, with www/ copied to
// htdocs/wspush/; wspush, started in a folder without www/, serves no
// pages. In headless Chromium, twice over:
//   1. wspush -t random -q, on port 8080: the teacher takes the token from
//      start-up's line, opens admin.html from Apache with it and becomes
//      admin; the page offers the students the user page beside it, on
//      each address of this machine (the link and its QR code, read by
//      zbarimg); that address answers 200 with the user page; a student
//      opens it, names herself, gets a push, and the teacher sees "seen
//      by 1 of 1". Screenshots of both pages.
//   2. wspush without -t, on another port (8081): the teacher's page on
//      localhost is admin by the loopback rule, and the students'
//      address carries ?ws= (their page would look on port 8080).
// Then lessons 05 and 06 with the tutorial's pages, served by Apache.
//
// As root it all runs in a network namespace of its own (tests/lan.sh):
// Apache on port 80, wspush on 8080, the laptop's LAN addresses
// 192.168.1.20 and fd00::2, and two interfaces that must not be offered
// (one down, one without a link). Without root, Apache and wspush listen
// on free ports, and the students' addresses (this machine's own) are
// checked but not visited: the tests talk to 127.0.0.1 only.
'use strict';
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const { spawn, spawnSync } = require('child_process');
const { ROOT, OUT, test, expect, report, skipped, finish, CHROMIUM, CHROMIUM_FLAGS: FLAGS,
        needChromium, readQr } = require('./harness');

const WAIT = { timeout: 10000 };
const SHOTS = path.join(OUT, 'screenshots');
const INSIDE = process.argv[2] === '--inside';      // in tests/lan.sh's namespace
const LAN = ['192.168.1.20', '[fd00::2]'];          // its addresses, as "hosts" writes them

function need() {
  const chromium = needChromium('xampp: wspush beside Apache httpd');
  const missing = [['/usr/sbin/apache2', 'apache2'], ['/usr/bin/zbarimg', 'zbar-tools']]
    .filter(([file]) => !fs.existsSync(file)).map(([, pkg]) => pkg);
  let why = missing.length ? `not installed (apt-get install ${missing.join(' ')})` : '';
  if (fs.existsSync('/usr/local/share/wspush/www'))
    why = 'an installed wspush serves /usr/local/share/wspush/www here: wspush must serve no pages';
  if (why) {
    skipped('xampp: wspush beside Apache httpd', why);
    process.exit(process.env.CI ? 1 : 0);
  }
  return chromium;
}

// As root, run this file again inside a namespace of its own; true if it ran.
function inNamespace() {
  if (INSIDE || typeof process.getuid !== 'function' || process.getuid() !== 0) return false;
  const r = spawnSync('unshare', ['-n', 'sh', path.join(__dirname, 'lan.sh'), process.execPath,
                                  __filename, '--inside'],
                      { stdio: ['ignore', 'inherit', 'pipe'], timeout: 280000 });
  const err = String(r.stderr || '');
  if (r.status === 77 || r.error || (r.status !== 0 && /^unshare:/.test(err))) {
    console.log(`(no network namespace here: ${(r.error || err).toString().trim()})`);
    return false;
  }
  process.stderr.write(err);
  process.exitCode = r.status === 0 ? 0 : 1;
  return true;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer().once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

// Resolves true once something accepts on 127.0.0.1:port, false after 15 s.
async function waitPort(port, proc) {
  for (const end = Date.now() + 15000; Date.now() < end && proc.exitCode === null;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

// XAMPP's layout: htdocs/wspush/ holds www/, htdocs/tutorial/ the
// tutorial's two pages (when article.txt is there), and no www/ beside.
function makeHtdocs(folder, article) {
  const htdocs = path.join(folder, 'htdocs');
  fs.mkdirSync(path.join(htdocs, 'wspush'), { recursive: true });
  for (const f of fs.readdirSync(path.join(ROOT, 'www')))
    fs.copyFileSync(path.join(ROOT, 'www', f), path.join(htdocs, 'wspush', f));
  if (article) {
    fs.mkdirSync(path.join(htdocs, 'tutorial'));
    fs.writeFileSync(path.join(htdocs, 'tutorial', 'user.html'), article.user);
    fs.writeFileSync(path.join(htdocs, 'tutorial', 'admin.html'), article.admin);
    fs.copyFileSync(path.join(ROOT, 'www', 'style.css'),
                    path.join(htdocs, 'tutorial', 'style.css'));
  }
  for (const dir of [folder, htdocs, path.join(htdocs, 'wspush')]) fs.chmodSync(dir, 0o755);
  return htdocs;
}

// apache2 -X with a configuration of its own: static files only.
function startApache(folder, htdocs, listen) {
  const mods = '/usr/lib/apache2/modules';
  const conf = [`ServerRoot ${folder}`, `Listen ${listen}`, `PidFile ${folder}/httpd.pid`,
    `ErrorLog ${folder}/error.log`, 'LogLevel warn', 'ServerName localhost', `Mutex file:${folder}`,
    ...['mpm_event', 'authz_core', 'mime', 'dir']
      .map((m) => `LoadModule ${m}_module ${mods}/mod_${m}.so`),
    'TypesConfig /etc/mime.types', 'DirectoryIndex index.html', `DocumentRoot ${htdocs}`,
    `<Directory ${htdocs}>`, '  Require all granted', '</Directory>'];
  if (process.getuid() === 0) conf.push('User nobody', 'Group nogroup');
  fs.writeFileSync(path.join(folder, 'httpd.conf'), conf.join('\n') + '\n');
  const env = { ...process.env, APACHE_RUN_DIR: folder, APACHE_LOCK_DIR: folder };
  return spawn('apache2', ['-X', '-f', path.join(folder, 'httpd.conf')], { stdio: 'ignore', env });
}

// ./wspush in `folder' (no www/ there); stdout and stderr kept apart.
// Resolves once start-up has told the teacher what to do.
async function startWspush(args, folder, name) {
  const files = ['out', 'err'].map((x) => path.join(OUT, `xampp-${name}-${process.pid}.${x}`));
  const fds = files.map((f) => fs.openSync(f, 'w'));
  const proc = spawn(path.join(ROOT, 'wspush'), args, { cwd: folder, stdio: ['ignore', ...fds] });
  const ws = {
    stdout: () => fs.readFileSync(files[0], 'utf8'),
    stderr: () => fs.readFileSync(files[1], 'utf8'),
    stop: () => new Promise((done) => {
      if (proc.exitCode !== null) { done(); return; }
      proc.on('exit', done);
      proc.kill('SIGTERM');
    }),
  };
  for (const end = Date.now() + 10000; Date.now() < end && proc.exitCode === null;) {
    if (/^The teacher .*$/m.test(ws.stdout())) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const m = /Server is listening on port (\d+)/.exec(ws.stdout());
  if (!m || !/^The teacher .*$/m.test(ws.stdout())) {
    await ws.stop();
    throw new Error(`wspush did not start: ${ws.stdout()} ${ws.stderr()}`);
  }
  ws.port = +m[1];
  return ws;
}

// This machine's addresses others can reach (not visited outside the
// namespace): interfaces up and running, as Node lists them.
function machineHosts() {
  return Object.values(os.networkInterfaces()).flat()
    .filter((a) => !a.internal && !(a.family === 'IPv6' && /^fe[89ab]/i.test(a.address)))
    .map((a) => (a.family === 'IPv6' ? `[${a.address}]` : a.address));
}

// One classroom: wspush started with `args', the admin page from Apache,
// the students' addresses, a student, a push seen.
async function classroom(context, web, folder, v) {
  let ws, admin, student, query, offered;
  const wsPort = () => (ws ? ws.port : 0);
  await test(`xampp ${v.name}: start-up, with no pages served, tells the teacher how to become `
             + `admin: ${v.says}`, async () => {
    ws = await startWspush(v.args, folder, v.tag);
    const line = /^The teacher .*$/m.exec(ws.stdout())[0];
    const m = new RegExp('^The teacher opens admin\\.html from your web server(.*?): '
                         + 'http://localhost/\\.\\.\\./admin\\.html(\\S*)$').exec(line);
    expect(m && /htdocs/.test(ws.stdout()) && !/Students open/.test(ws.stdout()), ws.stdout());
    query = m[2];
    const token = /[?&]token=([0-9a-f]{32})/.exec(query);
    expect(!!token === v.token, `token: ${line}`);
    if (token) {
      expect(ws.stdout().split(token[1]).length === 2 && !ws.stderr().includes(token[1]),
             'the token is not shown exactly once, on stdout');
    } else {
      expect(m[1] === ' on this machine (without -t, only it may be admin)', line);
    }
    expect(query.includes(`ws=ws://localhost:${ws.port}/`) === (ws.port !== 8080), line);
  });
  if (!ws) return;
  try {
    const how = v.token ? 'the token from its address, sent on a click' : 'the loopback rule';
    await test(`xampp ${v.name}: the admin page from Apache becomes admin (${how})`, async () => {
      admin = await context.newPage();
      await admin.setViewportSize({ width: 680, height: 760 });
      await admin.goto(`${web.base}/wspush/admin.html${query}`);
      await admin.locator('#status.open').waitFor(WAIT);
      expect((await admin.textContent('#status')).includes(`ws://localhost:${wsPort()}/`),
             await admin.textContent('#status'));
      if (v.token) {
        await admin.locator('#login').waitFor({ state: 'visible', timeout: 10000 });
        expect((await admin.textContent('#token-goes')).includes(`ws://localhost:${wsPort()}/`),
               'the page does not say where the token goes');
        await admin.click('#login-btn');
      }
      await admin.locator('#join:not([hidden])').waitFor(WAIT);
      expect(await admin.isHidden('#login'), 'the login form is still shown');
    });
    await test(`xampp ${v.name}: the students' addresses: the user page beside the admin page on `
               + `each address of this machine${wsPort() === 8080 ? '' : ', with ?ws='}, as `
               + 'link and QR code', async () => {
      const hosts = INSIDE ? LAN : machineHosts();
      const want = hosts.map((h) => `http://${h}${web.port === 80 ? '' : ':' + web.port}`
        + `/wspush/user.html${wsPort() === 8080 ? '' : `?ws=ws://${h}:${wsPort()}/`}`);
      offered = await admin.$$eval('#join-choice option', (os) => os.map((o) => o.value));
      expect(JSON.stringify([...offered].sort()) === JSON.stringify([...want].sort()),
             `offered ${offered}; this machine's addresses make ${want}`);
      for (const [i, url] of offered.entries()) {
        await admin.selectOption('#join-choice', url);
        expect((await admin.textContent('#join-url')) === url, 'the link');
        const read = await readQr(admin, '#join-qr', `xampp-${v.tag}-qr-${i}.png`);
        expect(read === url, `the QR code reads ${JSON.stringify(read)}, not ${url}`);
      }
      if (offered.length) await admin.selectOption('#join-choice', offered[0]);
    });
    const name = `xampp ${v.name}: each students' address answers 200 with the user page`;
    if (INSIDE) {
      await test(name, async () => {
        expect(offered && offered.length > 0, 'no address offered');
        for (const url of offered) {
          const res = await fetch(url);
          const body = await res.text();
          expect(res.status === 200 && body.includes('<title>wspush - User</title>'),
                 `${url}: ${res.status}`);
        }
      });
    } else {
      skipped(name, 'they are this machine\'s own addresses, and without a network namespace '
              + '(tests/lan.sh, as root) the tests talk to 127.0.0.1 only');
    }
    await test(`xampp ${v.name}: a student ${INSIDE ? `on ${v.via}` : 'on localhost'} names `
               + 'herself, gets a push, and the teacher sees "seen by 1 of 1"', async () => {
      const url = INSIDE ? offered.find((u) => u.includes(v.via))
        : `${web.base}/wspush/user.html?ws=ws://127.0.0.1:${wsPort()}/`;
      expect(url, `no address on ${v.via} in ${offered}`);
      student = await context.newPage();
      await student.setViewportSize({ width: 680, height: 460 });
      await student.goto(url);
      await student.locator('#status.open').waitFor(WAIT);
      await student.fill('#name', 'Ann');
      await student.click('#name-btn');
      const row = admin.locator('#user-rows tr', { hasText: 'Ann' });
      await row.waitFor(WAIT);
      if (INSIDE) {
        const cells = await row.locator('td').allTextContents();
        expect(cells[3] === v.via.replace(/[[\]]/g, ''), `the student came from ${cells[3]}`);
      }
      await row.locator('input[type=checkbox]').check();
      await admin.fill('#stext', 'Open your books at p. 12');
      await admin.click('#btn');
      await student.locator('#log li.push', { hasText: 'Open your books at p. 12' }).waitFor(WAIT);
      await admin.locator('#log .receipts', { hasText: 'seen by 1 of 1' }).waitFor(WAIT);
      if (v.shots) {
        const end = await admin.$eval('#log', (e) => e.getBoundingClientRect().bottom + scrollY);
        await admin.screenshot({ path: path.join(SHOTS, 'xampp-admin.png'), fullPage: true,
                                 clip: { x: 0, y: 0, width: 680, height: Math.ceil(end) + 12 } });
        await student.screenshot({ path: path.join(SHOTS, 'xampp-user.png') });
      }
    });
    if (INSIDE && wsPort() === 8080) {
      await test(`xampp ${v.name}: the user page at [fd00::2] finds wspush at `
                 + 'ws://[fd00::2]:8080/ws (an IPv6 host in brackets, once)', async () => {
        const p = await context.newPage();
        await p.goto(offered.find((u) => u.includes('[fd00::2]')));
        await p.locator('#status.open').waitFor(WAIT);
        expect((await p.textContent('#status')) === 'connected to ws://[fd00::2]:8080/ws',
               await p.textContent('#status'));
        await p.close();
      });
    }
  } finally {
    for (const p of [admin, student]) if (p) await p.close();
    await ws.stop();
  }
}

// Lessons 05 and 06 on port 8080 with the tutorial's pages from Apache.
async function lessons(context, web, article) {
  const { routeJquery, lessonPhase } = require('./browser');
  if (!article) {
    skipped('xampp: lessons 05 and 06 with the tutorial\'s pages from Apache',
            'article.txt was not found (set WSPUSH_SEED)');
    return;
  }
  const busy = await new Promise((resolve) => {
    const s = net.createServer().once('error', () => resolve(true));
    s.listen(8080, () => s.close(() => resolve(false)));
  });
  if (busy) {
    skipped('xampp: lessons 05 and 06 with the tutorial\'s pages from Apache',
            'port 8080, where the tutorial\'s pages look, is in use here');
    return;
  }
  await routeJquery(context);
  const base = `${web.base}/tutorial`;
  await lessonPhase(context, '05-push', 'lesson 5, pages from Apache', base);
  await lessonPhase(context, '06-nonblocking', 'lesson 6, pages from Apache', base);
}

async function main() {
  const chromium = need();
  if (inNamespace()) return true;         // it reported, and set the exit status
  fs.mkdirSync(SHOTS, { recursive: true });
  const { articlePages } = require('./browser');
  const article = articlePages();
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'wspush-xampp-'));
  const htdocs = makeHtdocs(folder, article);
  const port = INSIDE ? 80 : await freePort();
  const web = { port, base: `http://localhost${port === 80 ? '' : ':' + port}` };
  const apache = startApache(folder, htdocs, INSIDE ? '80' : `127.0.0.1:${port}`);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'wspush-xampp-chromium-'));
  let context;
  try {
    if (!(await waitPort(port, apache))) {
      const log = fs.existsSync(path.join(folder, 'error.log'))
        ? fs.readFileSync(path.join(folder, 'error.log'), 'utf8') : '';
      report('xampp: Apache httpd starts', false, log.slice(-600));
      return;
    }
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM,
                                                               headless: true, args: FLAGS });
    const p = (n) => (INSIDE ? ['-p', String(n)] : ['-p', '0', '-b', '::']);
    await classroom(context, web, folder, { name: 'with -t random', tag: 'token', token: true,
      args: [...p(8080), '-t', 'random', '-q'], via: '192.168.1.20', shots: true,
      says: 'the token to add to admin.html\'s address, once, on stdout, with -q' });
    await classroom(context, web, folder, { name: 'without -t', tag: 'loopback', token: false,
      args: p(8081), via: '[fd00::2]',
      says: 'admin.html on this machine, with ?ws= (wspush is not on port 8080)' });
    await lessons(context, web, article);
  } finally {
    if (context) await context.close();
    if (apache.exitCode === null) {
      const gone = new Promise((resolve) => apache.on('exit', resolve));
      apache.kill('SIGTERM');
      await gone;
    }
    fs.rmSync(profile, { recursive: true, force: true });
    fs.rmSync(folder, { recursive: true, force: true });
  }
}

main().then((inside) => inside || finish(), (e) => {
  report('xampp', false, e.stack || String(e));
  finish();
});
