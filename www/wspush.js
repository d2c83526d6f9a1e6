// wspush.js -- what user.html and admin.html share: finding the server,
// one WebSocket that reconnects by itself, the status badge, the wire
// panel, and a log that shows text from the network as text (textContent,
// never innerHTML, so a pushed "<img onerror=...>" stays characters).
'use strict';

const wspush = (() => {
  // Where the server is. A page that wspush served talks to that server
  // only (its Content-Security-Policy says so too), and ?ws= is ignored:
  // a link must not point the page elsewhere. A page served by another
  // web server (XAMPP, say) or opened as a file uses ?ws=URL if given,
  // else wss://host/ws over https (a proxy in front of wspush), else port
  // 8080 of the page's host. Returns { url, own }.
  async function findServer() {
    if (location.protocol === 'http:' || location.protocol === 'https:') {
      try {
        const res = await fetch(location.pathname, { method: 'HEAD', cache: 'no-store' });
        if (res.headers.get('Server') === 'wspush') {
          const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
          return { url: scheme + location.host + '/ws', own: true };
        }
      } catch (e) {
        // no answer: another web server, or none
      }
    }
    const given = new URLSearchParams(location.search).get('ws');
    return { url: given || guess(location), own: false };
  }

  // The server a page at loc (location, or a URL) from another web server
  // looks for when no ?ws= says: wss://HOST/ws over https, else port 8080
  // of its host (hostname keeps an IPv6 address in brackets).
  function guess(loc) {
    if (loc.protocol === 'https:') return 'wss://' + loc.host + '/ws';
    return 'ws://' + (loc.hostname || 'localhost') + ':8080/ws';
  }

  // The wire panel: every message as it went over the wire, when the
  // "Show the wire" box is ticked (at most 500 lines are kept).
  // A token and a seat's secret show as *** (the panel may be on a projector).
  function wireLine(dir, text) {
    const box = document.getElementById('wire-on');
    const list = document.getElementById('wire');
    if (!box || !box.checked) return;
    text = text.replace(/("token":)"(?:[^"\\]|\\.)*"/g, '$1"***"')
      .replace(/seat-[0-9a-f]+/g, 'seat-***');
    const item = document.createElement('li');
    item.className = dir === '->' ? 'sent' : 'received';
    const arrow = document.createElement('b');
    arrow.textContent = dir === '->' ? 'sent ' : 'received ';
    const body = document.createElement('code');
    body.textContent = text;
    item.append(arrow, body);
    list.append(item);
    while (list.children.length > 500) list.firstChild.remove();
    item.scrollIntoView({ block: 'nearest' });
  }

  function setupWire() {
    const box = document.getElementById('wire-on');
    if (!box) return;
    box.addEventListener('change', () => {
      document.getElementById('wire').hidden = !box.checked;
    });
  }

  // Keep one connection to the server open, reconnecting after 1, 2, 4 ...
  // up to 30 seconds; not after close 4000 (a teacher's kick) or 4001 (this
  // page's seat was taken by another tab with the same seat, a duplicate).
  // handlers: open(), message(obj), status(state, text), kicked(reason),
  // and protocols(server): the subprotocols to offer, besides ours.
  // Returns { send(obj), reconnect(), server() }.
  function connect(handlers) {
    let socket = null;
    let delay = 1;
    let server = null;
    let timer = null;

    function setStatus(state, text) {
      const badge = document.getElementById('status');
      badge.className = 'status ' + state;
      badge.textContent = text;
      if (handlers.status) handlers.status(state, text);
    }

    async function open() {
      server = server || await findServer();
      setStatus('connecting', 'connecting to ' + server.url);
      const more = handlers.protocols ? handlers.protocols(server) : [];
      socket = new WebSocket(server.url, ['echo-protocol', ...more]);
      // Every event goes to the console too, as on the tutorial's pages.
      socket.onopen = (event) => {
        console.log(event);
        delay = 1;
        setStatus('open', 'connected to ' + server.url);
        handlers.open();
      };
      socket.onerror = (event) => console.log(event);
      socket.onmessage = (event) => {
        let obj;
        wireLine('<-', event.data);
        try {
          obj = JSON.parse(event.data);
        } catch (e) {
          obj = { resp: 'error', content: 'not JSON: ' + event.data };
        }
        console.log(obj);
        handlers.message(obj);
      };
      socket.onclose = (event) => {
        console.log(event);
        if (event.code === 4000 || event.code === 4001) {
          setStatus('closed', event.reason || 'closed by the teacher');
          if (handlers.kicked) handlers.kicked(event.reason);
          return;
        }
        let left = delay;
        const why = event.code === 1006 ? 'no connection' : 'closed (' + event.code + ')';
        const tick = () => {
          if (left <= 0) {
            open();
            return;
          }
          setStatus('closed', why + '; reconnecting in ' + left + ' s');
          left -= 1;
          timer = setTimeout(tick, 1000);
        };
        tick();
        delay = Math.min(delay * 2, 30);
      };
    }

    setupWire();
    open();
    return {
      send(obj) {
        if (!socket || socket.readyState !== WebSocket.OPEN) return false;
        const text = JSON.stringify(obj);
        socket.send(text);
        wireLine('->', text);
        console.log(obj);
        return true;
      },
      reconnect() {
        clearTimeout(timer);
        delay = 1;
        open();
      },
      server() {
        return server;
      },
    };
  }

  // Add a line to a log list: the time (now, or when), a kind label and
  // the text, all as text nodes. The newest line is scrolled into view.
  // Returns it.
  function logLine(list, kind, text, when) {
    const item = document.createElement('li');
    item.className = kind;
    const time = document.createElement('time');
    time.textContent = new Date(when || Date.now()).toLocaleTimeString();
    const label = document.createElement('b');
    label.textContent = kind;
    const body = document.createElement('span');
    body.textContent = text;
    item.append(time, ' ', label, ' ', body);
    list.append(item);
    item.scrollIntoView({ block: 'nearest' });
    return item;
  }

  return { findServer, guess, connect, logLine };
})();
