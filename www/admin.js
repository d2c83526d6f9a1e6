// admin.js -- the admin console. On connecting it asks for the list,
// which makes it admin (with the token, if the server wants one), then
// asks to watch the users: the server sends the list again on every
// change. Users are shown by the number the server gave them, which never
// changes, with their name and address. The teacher picks users; the
// pick never moves by itself: if a picked user leaves, the pick is
// cleared and pushing waits until the teacher picks again.
'use strict';

const log = document.getElementById('log');
const rows = document.getElementById('user-rows');
const pushButton = document.getElementById('btn');
const tokenField = document.getElementById('token');
const picked = new Set();       // keys of the users the teacher picked
let users = [];                 // the last list: {key, number, name, role, address, since}
let own = false;                // this page came from the server it talks to

function label(u) {
  return '#' + u.number + (u.name ? ' (' + u.name + ')' : '');
}

function showPicked() {
  const names = users.filter((u) => picked.has(u.key)).map(label);
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

// Draw the list. A picked user who is no longer there clears the pick.
function showUsers(list) {
  const gone = users.filter((u) => picked.has(u.key) && !list.some((v) => v.key === u.key));
  users = list.filter((u) => u.role === 'user');
  if (gone.length) {
    wspush.logLine(log, 'error', gone.map(label).join(', ') + ' left; the pick is cleared: ' +
                   'pick again to push');
    picked.clear();
  }
  rows.replaceChildren(...users.map((u) => {
    const row = document.createElement('tr');
    row.dataset.key = u.key;
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.checked = picked.has(u.key);
    box.setAttribute('aria-label', 'pick ' + label(u));
    box.addEventListener('change', () => {
      if (box.checked) picked.add(u.key); else picked.delete(u.key);
      showPicked();
    });
    cell(row, '').append(box);
    cell(row, '#' + u.number);
    cell(row, u.name || '(no name yet)');
    cell(row, u.address);
    cell(row, new Date(u.since).toLocaleTimeString());
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
}

function askForList() {
  const req = { req: 'get connections' };
  if (tokenField.value) req.token = tokenField.value;
  return conn.send(req);
}

const conn = wspush.connect({
  open() {
    const server = conn.server();
    own = server.own;
    document.getElementById('token-goes').textContent = 'The token will be sent to ' + server.url;
    // A token in the link is used only on a page from the server itself,
    // so a link to a page elsewhere cannot make it go there unseen.
    const given = new URLSearchParams(location.search).get('token');
    if (given && !tokenField.value) tokenField.value = given;
    if (given && !own) document.getElementById('login').hidden = false;
    if (!given || own) askForList();
  },
  message(obj) {
    if (obj.resp === 'get connections') {
      document.getElementById('login').hidden = true;
      conn.send({ req: 'watch users' });
    } else if (obj.resp === 'users' && Array.isArray(obj.content)) {
      showUsers(obj.content);
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

// Send a push and note it in the log, so the server's answer below it can
// be read against what was asked.
function push(req, to) {
  if (conn.send(req)) wspush.logLine(log, 'you', 'to ' + to + ': ' + req.text);
  else wspush.logLine(log, 'error', 'not connected; try again in a moment');
}

document.getElementById('login').addEventListener('submit', (event) => {
  event.preventDefault();
  askForList();
});
document.getElementById('push').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = document.getElementById('stext').value;
  const to = users.filter((u) => picked.has(u.key));
  if (to.length === 0) {
    wspush.logLine(log, 'error', 'pick a user first');
    return;
  }
  for (const u of to) push({ req: 'push a user', userkey: u.key, text }, label(u));
});
document.getElementById('all-btn').addEventListener('click', () => {
  push({ req: 'push all', text: document.getElementById('stext').value }, 'all users');
});
