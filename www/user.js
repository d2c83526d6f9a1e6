// user.js -- the user console. The server echoes what we send and
// delivers what an admin pushes. We ask with req "echo", so the reply says
// "echo" and a push says "text": the two stay apart in the log. The name
// is kept in this browser and sent again on every connection.
//
// The seat: on every connection the page first asks for its seat, with
// the secret the server gave this tab before (sessionStorage: one seat
// per tab, forgotten when the tab closes). After a drop of the Wi-Fi, the
// new connection takes the same seat back, with its number, and the
// pushes the server has not heard us acknowledge come again. Each push
// has an id: it is shown once, however often it comes, and acknowledged
// ("seen") every time, so the teacher sees it arrived.
'use strict';

const log = document.getElementById('log');
const nameField = document.getElementById('name');
const reconnectButton = document.getElementById('reconnect');
const SHOWN_KEPT = 500;         // ids of pushes shown, remembered for this tab
const shown = JSON.parse(sessionStorage.getItem('wspush-shown') || '[]');
nameField.value = localStorage.getItem('wspush-name') || '';

function sendName() {
  const name = nameField.value.trim();
  if (name) conn.send({ req: 'set name', name });
}

// Show a push once, whatever comes again after a reconnection; say we saw it.
function showPush(obj) {
  if (obj.id === undefined) {
    wspush.logLine(log, 'push', String(obj.content));
    return;
  }
  if (!shown.includes(obj.id)) {
    wspush.logLine(log, 'push', String(obj.content));
    shown.push(obj.id);
    shown.splice(0, Math.max(0, shown.length - SHOWN_KEPT));
    sessionStorage.setItem('wspush-shown', JSON.stringify(shown));
  }
  conn.send({ req: 'seen', id: obj.id });
}

const conn = wspush.connect({
  open() {
    reconnectButton.hidden = true;
    const secret = sessionStorage.getItem('wspush-seat');
    conn.send(secret ? { req: 'seat', secret } : { req: 'seat' });
    conn.send({ req: 'get my key' });
    sendName();
  },
  message(obj) {
    if (obj.resp === 'seat') {
      if (obj.secret !== sessionStorage.getItem('wspush-seat')) {
        shown.length = 0;       // a new seat (a restarted server): new ids
        sessionStorage.removeItem('wspush-shown');
      }
      sessionStorage.setItem('wspush-seat', obj.secret);
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
