// user.js -- the user console. The server echoes what we send and
// delivers what an admin pushes. We ask with req "echo", so the reply says
// "echo" and a push says "text": the two stay apart in the log. The name
// is kept in this browser and sent again on every connection.
//
// The seat: the server gives this tab a secret for its seat (sessionStorage:
// one seat per tab, forgotten when the tab closes). Every new connection
// names the seat in its handshake, as a subprotocol beside "echo-protocol",
// so it is the same user from its first byte: after a drop of the Wi-Fi or a
// reload, it has its number back, and the pushes the server has not heard
// us acknowledge come again. The secret goes only to the server that gave
// it: a link with ?ws= to another server cannot take it there. Each push
// has an id: it is shown once, however often it comes, and acknowledged
// ("seen") every time, so the teacher sees it arrived. The pushes shown are
// kept for the tab too, and shown again, in order, after a reload.
'use strict';

const log = document.getElementById('log');
const nameField = document.getElementById('name');
const reconnectButton = document.getElementById('reconnect');
const SHOWN_KEPT = 200;         // pushes shown, kept for this tab (id, text, time)
let shown = JSON.parse(sessionStorage.getItem('wspush-shown') || '[]');
nameField.value = localStorage.getItem('wspush-name') || '';
if (!Array.isArray(shown) || shown.some((p) => !p || typeof p !== 'object')) shown = [];
for (const p of shown) wspush.logLine(log, 'push', p.text, p.at);

// The secret of this tab's seat, if the server at url gave it.
function secretFor(url) {
  const kept = JSON.parse(sessionStorage.getItem('wspush-seat') || 'null');
  return kept && kept.server === url ? kept.secret : null;
}

function sendName() {
  const name = nameField.value.trim();
  if (name) conn.send({ req: 'set name', name });
}

// Keep what was shown for this tab; the oldest go when storage is short.
function keepShown() {
  shown.splice(0, Math.max(0, shown.length - SHOWN_KEPT));
  for (;;) {
    try {
      sessionStorage.setItem('wspush-shown', JSON.stringify(shown));
      return;
    } catch (e) {
      if (!shown.length) return;
      shown.splice(0, Math.ceil(shown.length / 2));
    }
  }
}

// Show a push once, whatever comes again after a reconnection; say we saw
// it. One without an id (from a server that gave this tab no seat yet) is
// shown as it comes, and kept too.
function showPush(obj) {
  const id = obj.id === undefined ? null : String(obj.id);
  if (id === null || !shown.some((p) => p.id === id)) {
    const at = Date.now();
    wspush.logLine(log, 'push', String(obj.content), at);
    shown.push({ id, text: String(obj.content), at });
    keepShown();
  }
  if (id !== null) conn.send({ req: 'seen', id });
}

const conn = wspush.connect({
  protocols(server) {
    const secret = secretFor(server.url);
    return secret ? [secret] : [];
  },
  open() {
    reconnectButton.hidden = true;
    conn.send({ req: 'seat' });
    conn.send({ req: 'get my key' });
    sendName();
  },
  message(obj) {
    if (obj.resp === 'seat') {
      const url = conn.server().url;
      if (obj.secret !== secretFor(url)) {
        // A new seat (a restarted server): new ids; what was shown stays.
        shown.forEach((p) => { if (p.id !== null) p.id = 'old ' + p.id; });
        keepShown();
      }
      sessionStorage.setItem('wspush-seat', JSON.stringify({ server: url, secret: obj.secret }));
      document.getElementById('seat').textContent = '#' + obj.number;
    } else if (obj.resp === 'get my key') {
      document.getElementById('key').textContent = obj.content;
    } else if (obj.resp === 'set name') {
      wspush.logLine(log, 'name', 'the teacher sees you as "' + obj.content + '"');
    } else if (obj.resp === 'text') {
      showPush(obj);
    } else if (obj.resp === 'echo') {
      wspush.logLine(log, 'echo', String(obj.content));
    } else if (obj.resp === 'error') {
      wspush.logLine(log, 'error', String(obj.content));
    }
  },
  status(state) {
    if (state !== 'open') document.getElementById('key').textContent = '(not connected)';
  },
  kicked(reason) {
    wspush.logLine(log, 'error', (reason || 'closed by the teacher') +
                   '; press Reconnect to come back');
    sessionStorage.removeItem('wspush-seat');   // a kicked seat is gone
    reconnectButton.hidden = false;
  },
});

reconnectButton.addEventListener('click', () => conn.reconnect());
document.getElementById('naming').addEventListener('submit', (event) => {
  event.preventDefault();
  localStorage.setItem('wspush-name', nameField.value.trim());
  sendName();
});
document.getElementById('send').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = document.getElementById('stext').value;
  if (!conn.send({ req: 'echo', text })) {
    wspush.logLine(log, 'error', 'not connected; try again in a moment');
  }
});
