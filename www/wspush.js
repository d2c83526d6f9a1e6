// wspush.js -- what user.html and admin.html share: finding the server,
// one WebSocket that reconnects by itself, the status badge, and a log
// that shows text from the network as text (textContent, never innerHTML,
// so a pushed "<img onerror=...>" is only ever characters on the screen).
'use strict';

const wspush = (() => {
  // Where the server is: ?ws=URL if given; the page's own host and port
  // when wspush served the page (its answers say "Server: wspush"); else
  // port 8080 on the page's host (pages served by XAMPP, or opened as files).
  async function serverUrl() {
    const given = new URLSearchParams(location.search).get('ws');
    if (given) return given;
    const host = location.hostname || 'localhost';
    if (location.protocol === 'http:' || location.protocol === 'https:') {
      try {
        const res = await fetch(location.pathname, { method: 'HEAD', cache: 'no-store' });
        if (res.headers.get('Server') === 'wspush') {
          return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/';
        }
      } catch (e) {
        // no answer: fall through to the usual port
      }
    }
    return 'ws://' + (host.includes(':') ? '[' + host + ']' : host) + ':8080/';
  }

  // Keep one connection to the server open, reconnecting after 1, 2, 4 ...
  // up to 30 seconds. handlers: open(), message(obj), status(state, text).
  // Returns { send(obj) }; send() reports false while not connected.
  function connect(handlers) {
    let socket = null;
    let delay = 1;
    let url = null;

    function setStatus(state, text) {
      const badge = document.getElementById('status');
      badge.className = 'status ' + state;
      badge.textContent = text;
      if (handlers.status) handlers.status(state, text);
    }

    async function open() {
      url = url || await serverUrl();
      setStatus('connecting', 'connecting to ' + url);
      socket = new WebSocket(url, 'echo-protocol');
      socket.onopen = () => {
        delay = 1;
        setStatus('open', 'connected to ' + url);
        handlers.open();
      };
      socket.onmessage = (event) => {
        let obj;
        try {
          obj = JSON.parse(event.data);
        } catch (e) {
          obj = { resp: 'error', content: 'not JSON: ' + event.data };
        }
        handlers.message(obj);
      };
      socket.onclose = (event) => {
        let left = delay;
        const why = event.code === 1006 ? 'no connection' : 'closed (' + event.code + ')';
        const tick = () => {
          if (left <= 0) {
            open();
            return;
          }
          setStatus('closed', why + '; reconnecting in ' + left + ' s');
          left -= 1;
          setTimeout(tick, 1000);
        };
        tick();
        delay = Math.min(delay * 2, 30);
      };
    }

    open();
    return {
      send(obj) {
        if (!socket || socket.readyState !== WebSocket.OPEN) return false;
        socket.send(JSON.stringify(obj));
        return true;
      },
    };
  }

  // Add a line to a log list: the time, a kind label and the text, all
  // as text nodes. The newest line is scrolled into view.
  function logLine(list, kind, text) {
    const item = document.createElement('li');
    item.className = kind;
    const time = document.createElement('time');
    time.textContent = new Date().toLocaleTimeString();
    const label = document.createElement('b');
    label.textContent = kind;
    const body = document.createElement('span');
    body.textContent = text;
    item.append(time, ' ', label, ' ', body);
    list.append(item);
    item.scrollIntoView({ block: 'nearest' });
  }

  return { serverUrl, connect, logLine };
})();
