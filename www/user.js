// user.js -- the user console. The server echoes what we send and
// delivers what an admin pushes. We ask with req "echo", so the reply says
// "echo" and a push says "text": the two stay apart in the log. The name
// is kept in this browser and sent again on every connection.
'use strict';

const log = document.getElementById('log');
const nameField = document.getElementById('name');
const reconnectButton = document.getElementById('reconnect');
nameField.value = localStorage.getItem('wspush-name') || '';

function sendName() {
  const name = nameField.value.trim();
  if (name) conn.send({ req: 'set name', name });
}

const conn = wspush.connect({
  open() {
    reconnectButton.hidden = true;
    conn.send({ req: 'get my key' });
    sendName();
  },
  message(obj) {
    if (obj.resp === 'get my key') {
      document.getElementById('key').textContent = obj.content;
    } else if (obj.resp === 'set name') {
      wspush.logLine(log, 'name', 'the teacher sees you as "' + obj.content + '"');
    } else if (obj.resp === 'text') {
      wspush.logLine(log, 'push', String(obj.content));
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
