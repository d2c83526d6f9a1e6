// admin.js -- the admin console. On connecting it asks for the list,
// which makes it admin (with the token, if the server wants one), then
// asks to watch the users: the server sends the list again after changes.
// Users are shown by the number of their seat, which never changes, even
// when a student comes back on a new connection after a Wi-Fi drop (the
// row then says "away" until they are back), with their name and address.
// The teacher picks users; the pick never moves by itself: if a picked
// user leaves for good, the pick is cleared and pushing waits until the
// teacher picks again. Each push carries a "ref"; the server's receipts
// for it say, user by user, whether it was sent, queued (away), seen or
// lost (and why). Its line in the log counts who has seen it, and names
// the others with their state; those it was lost for can have it pushed
// again in one click (sent and queued pushes still arrive by themselves,
// so they are not pushed twice). A row says why a student is away (the
// page closed, or the connection was lost) and how often their connection
// dropped in the last 10 minutes.
//
// "Students open": the address of the user page, as a link and a QR code
// a phone can scan (qr.js), from what "get addresses" says: wspush's own
// user page, or, for this page served by another web server (XAMPP), the
// user page beside it on each of this machine's addresses. "Show it big"
// fills the screen with it, for a projector.
'use strict';

const log = document.getElementById('log');
const rows = document.getElementById('user-rows');
const pushButton = document.getElementById('btn');
const tokenField = document.getElementById('token');
const picked = new Set();       // seat numbers of the users the teacher picked
const pushes = new Map();       // ref -> { text, states: number -> {state, why}, status, ... }
let users = [];                 // the last list: {key, number, name, role, address, since, away,
                                //   why, drops}
let own = false;                // this page came from the server it talks to
let refs = 0;

function label(u) {
  return '#' + u.number + (u.name ? ' (' + u.name + ')' : '');
}

function showPicked() {
  const names = users.filter((u) => picked.has(u.number)).map(label);
  pushButton.disabled = names.length === 0;
  document.getElementById('picked').textContent = names.length
    ? 'Picked: ' + names.join(', ') : 'Pick the users to push to.';
}

function cell(row, text) {
  const td = document.createElement('td');
  td.textContent = text;
  row.append(td);
  return td;
}

// Why a seat is away, as the server can know it: its page said goodbye
// (a close: closed, or reloaded and not back yet), or it just went silent.
const AWAY_WHY = {
  closed: 'the page was closed or reloaded',
  lost: 'the connection was lost',
};

// The "Since" cell: when the user came, or since when they are away and,
// under it, why; then, if their connection dropped lately, how often. A
// student back in time keeps only that count.
function presence(td, u) {
  const note = (className, text) => {
    const small = document.createElement('small');
    small.className = className;
    small.textContent = text;
    td.append(small);
  };
  const at = (t) => new Date(t).toLocaleTimeString();
  td.textContent = u.away ? 'away since ' + at(u.away) : at(u.since);
  if (u.away && AWAY_WHY[u.why]) note('why', AWAY_WHY[u.why]);
  if (u.drops > 0) {
    note('drops', 'unstable Wi-Fi: ' + u.drops + (u.drops === 1 ? ' drop' : ' drops') +
         ' in 10 min');
  }
}

// Draw the list. A picked user who is no longer there clears the pick.
function showUsers(list) {
  const gone = users.filter((u) => picked.has(u.number) &&
                            !list.some((v) => v.number === u.number));
  users = list.filter((u) => u.role === 'user');
  if (gone.length) {
    wspush.logLine(log, 'error', gone.map(label).join(', ') + ' left; the pick is cleared: ' +
                   'pick again to push');
    picked.clear();
  }
  rows.replaceChildren(...users.map((u) => {
    const row = document.createElement('tr');
    row.dataset.key = u.key;
    row.dataset.number = u.number;
    if (u.away) row.className = 'away';
    if (u.away) row.dataset.why = u.why || '';
    if (u.drops) row.dataset.drops = u.drops;
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.checked = picked.has(u.number);
    box.setAttribute('aria-label', 'pick ' + label(u));
    box.addEventListener('change', () => {
      if (box.checked) picked.add(u.number); else picked.delete(u.number);
      showPicked();
    });
    cell(row, '').append(box);
    cell(row, '#' + u.number);
    cell(row, u.name || '(no name yet)');
    cell(row, u.address);
    presence(cell(row, ''), u);
    const kick = document.createElement('button');
    kick.type = 'button';
    kick.className = 'kick';
    kick.textContent = 'Kick';
    kick.addEventListener('click', () => {
      if (conn.send({ req: 'kick', userkey: u.key })) wspush.logLine(log, 'you', 'kick ' + label(u));
    });
    cell(row, '').append(kick);
    return row;
  }));
  document.getElementById('count').textContent = users.length;
  showPicked();
  for (const p of pushes.values()) if (p.unseen.childNodes.length) showUnseen(p);
}

// The addresses students may open, best first. First the user page beside
// this one (same server, folder and port), on this page's own host if that
// is not this machine's loopback, and, for a page not served by wspush, on
// each address of this machine ("hosts": web server and wspush share it);
// then wspush's own user page ("content"), if it serves pages. A page
// opened as a file has no user page beside it.
function showJoin(reply) {
  const web = location.protocol === 'http:' || location.protocol === 'https:';
  const local = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$/.test(location.hostname);
  const hosts = [...(local ? [] : [location.hostname]), ...(own ? [] : reply.hosts || [])];
  const urls = [...new Set([...(web ? hosts.map(besideThis) : []), ...(reply.content || [])])];
  const choice = document.getElementById('join-choice');
  choice.replaceChildren(...urls.map((u) => Object.assign(document.createElement('option'),
                                                          { value: u, textContent: u })));
  choice.hidden = urls.length < 2;
  document.getElementById('join').hidden = false;
  document.getElementById('join-none').hidden = urls.length > 0;
  drawJoin();
}

// The user page beside this one, on host. Served by another web server,
// it looks for wspush on port 8080 of its host (wspush.guess()): if wspush
// is elsewhere (another port), ?ws= says where, as this page found it.
function besideThis(host) {
  const page = new URL('user.html', location.href);
  page.hostname = host;
  const ws = new URL(conn.server().url);
  ws.hostname = host;
  if (!own && ws.href !== wspush.guess(page)) page.search = 'ws=' + ws.href;
  return page.href;
}

// The chosen address, as a link and a QR code: big (most of the screen) or
// small enough to leave room for the rest of the page.
function drawJoin() {
  const url = document.getElementById('join-choice').value;
  const canvas = document.getElementById('join-qr');
  const big = document.getElementById('join').classList.contains('big');
  const link = document.getElementById('join-url');
  link.textContent = url || '';
  link.href = url || '#';
  canvas.hidden = !url;
  document.getElementById('join-big').hidden = !url;     // nothing to show big
  const room = Math.min(innerWidth - 40, innerHeight - 180);    // under the link and buttons
  if (url) qr.draw(canvas, url, big ? Math.max(room, 240) : 240);
}

function askForList() {
  const req = { req: 'get connections' };
  if (tokenField.value) req.token = tokenField.value;
  return conn.send(req);
}

// A push's receipts, after its line: "seen by 2 of 3"; then who has not
// seen it.
function showReceipts(push) {
  const seen = [...push.states.values()].filter((r) => r.state === 'seen').length;
  push.status.textContent = 'seen by ' + seen + ' of ' + push.states.size;
  push.status.dataset.seen = seen;
  push.status.dataset.of = push.states.size;
  showUnseen(push);
}

// What a receipt's state means for the teacher; u is the user's row.
function stateText(r, u) {
  if (r.state === 'queued') return 'queued (away)';
  if (r.state === 'sent' && u && u.away) return 'sent, then away: it goes again when they are back';
  if (r.state === 'lost') return 'lost: ' + (r.why || 'the server did not say why');
  return r.state;
}

// Under a push's line: "Not seen: #5 (Ana) queued (away); #9 lost: ...",
// and, if it was lost for users still on the list, a button that pushes
// it again to just them (once): a new push, with its own line and
// receipts. Sent and queued ones still arrive by themselves.
function showUnseen(push) {
  const unseen = [...push.states].filter(([, r]) => r.state !== 'seen');
  const lost = unseen.filter(([n, r]) => r.state === 'lost' && !push.again.has(n))
    .map(([n]) => users.find((u) => u.number === n)).filter((u) => u);
  push.unseen.replaceChildren();
  if (!unseen.length) return;
  push.unseen.append('Not seen: ');
  unseen.forEach(([n, r], i) => {
    const u = users.find((v) => v.number === n);
    const who = document.createElement('span');
    who.className = 'who ' + r.state;
    who.dataset.number = n;
    who.dataset.state = r.state;
    who.textContent = (u ? label(u) : '#' + n + ' (gone)') + ' ' + stateText(r, u) +
      (push.again.has(n) ? ', pushed again' : '');
    push.unseen.append(...(i ? ['; ', who] : [who]));
  });
  if (!lost.length) return;
  const again = document.createElement('button');
  again.type = 'button';
  again.className = 'again';
  again.textContent = 'Push again to ' +
    (lost.length === 1 ? label(lost[0]) : 'these ' + lost.length);
  again.addEventListener('click', () => {
    const reqs = lost.map((u) => ({ req: 'push a user', userkey: u.key, text: push.text }));
    if (pushLine(reqs, 'again, to ' + lost.map(label).join(', ')))
      lost.forEach((u) => push.again.add(u.number));
    showUnseen(push);
  });
  push.unseen.append(' ', again);
}

const conn = wspush.connect({
  open() {
    const server = conn.server();
    own = server.own;
    document.getElementById('token-goes').textContent = 'The token will be sent to ' + server.url;
    // A token in the link is used only on a page from the server itself,
    // so a link to a page elsewhere cannot make it go there unseen.
    const query = new URLSearchParams(location.search);
    const given = query.get('token');
    if (given && !tokenField.value) tokenField.value = given;
    if (given) {              // out of the address bar, the history and the projector
      query.delete('token');
      const rest = query.toString();
      history.replaceState(null, '', location.pathname + (rest ? '?' + rest : '') + location.hash);
    }
    if (given && !own) document.getElementById('login').hidden = false;
    if (!given || own) askForList();
  },
  message(obj) {
    if (obj.resp === 'get connections') {
      document.getElementById('login').hidden = true;
      conn.send({ req: 'watch users' });
      conn.send({ req: 'get addresses' });
    } else if (obj.resp === 'addresses' && Array.isArray(obj.content)) {
      showJoin(obj);
    } else if (obj.resp === 'users' && Array.isArray(obj.content)) {
      showUsers(obj.content);
    } else if (obj.resp === 'receipt' && pushes.has(obj.ref)) {
      const push = pushes.get(obj.ref);
      push.states.set(obj.number, { state: obj.state, why: obj.why });
      showReceipts(push);
    } else if (obj.resp === 'text') {
      wspush.logLine(log, 'server', String(obj.content));
    } else if (obj.resp === 'error') {
      wspush.logLine(log, 'error', String(obj.content));
      if (/token|admin/.test(obj.content)) document.getElementById('login').hidden = false;
    }
  },
  status(state) {
    if (state !== 'open') showUsers([]);
  },
});

// Send the requests of one push, under one ref, and note it in the log
// ("to WHOM: TEXT", after `to`): its receipts will follow on its line.
// Returns true if it went.
function pushLine(reqs, to) {
  const ref = 'p' + (++refs);
  let sent = true;
  for (const req of reqs) sent = conn.send(Object.assign(req, { ref })) && sent;
  if (!sent) {
    wspush.logLine(log, 'error', 'not connected; try again in a moment');
    return false;
  }
  const line = wspush.logLine(log, 'you', to + ': ' + reqs[0].text);
  line.dataset.ref = ref;
  const status = document.createElement('small');
  status.className = 'receipts';
  const unseen = document.createElement('div');
  unseen.className = 'unseen';
  line.append(' ', status, unseen);
  pushes.set(ref, { text: reqs[0].text, states: new Map(), status, unseen, again: new Set() });
  return true;
}

document.getElementById('join-choice').addEventListener('change', drawJoin);
document.getElementById('join-big').addEventListener('click', () => {
  const join = document.getElementById('join');
  join.classList.toggle('big');
  document.getElementById('join-big').textContent = join.classList.contains('big')
    ? 'Back to the page' : 'Show it big';
  drawJoin();
});
document.getElementById('login').addEventListener('submit', (event) => {
  event.preventDefault();
  askForList();
});
document.getElementById('push').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = document.getElementById('stext').value;
  const to = users.filter((u) => picked.has(u.number));
  if (to.length === 0) {
    wspush.logLine(log, 'error', 'pick a user first');
    return;
  }
  pushLine(to.map((u) => ({ req: 'push a user', userkey: u.key, text })),
           'to ' + to.map(label).join(', '));
});
document.getElementById('all-btn').addEventListener('click', () => {
  pushLine([{ req: 'push all', text: document.getElementById('stext').value }], 'to all users');
});
