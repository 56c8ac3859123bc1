// The live feed: one websocket per page, shared by every view, reconnecting with backoff. Listeners get
// batches of readings and alert events as the server pushes them.

const readingListeners = new Set();
const alertListeners = new Set();
const statusListeners = new Set();
const resyncListeners = new Set();
let ws = null;
let opened = false; // a connection was open before: a new one may have missed events
let stopped = true;
let retry = 0;
let timer = 0;

function setStatus(up) {
  for (const f of statusListeners) f(up);
}

function connect() {
  if (stopped) return;
  const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/api/v1/ws';
  ws = new WebSocket(url, ['hyperviseur.v1']);
  ws.onopen = () => {
    retry = 0;
    setStatus(true);
    if (opened) for (const f of resyncListeners) f();
    opened = true;
  };
  ws.onmessage = (m) => {
    let e;
    try { e = JSON.parse(m.data); } catch { return; }
    if (e.type === 'readings' && e.readings) for (const f of readingListeners) f(e.readings);
    else if (e.type === 'alert' && e.alert) for (const f of alertListeners) f(e.alert);
  };
  ws.onclose = () => {
    ws = null;
    setStatus(false);
    if (stopped) return;
    retry = Math.min(retry + 1, 5);
    timer = setTimeout(connect, retry === 1 ? 200 : 500 * 2 ** retry);
  };
}

export function start() {
  if (!stopped) return;
  stopped = false;
  connect();
}

export function stop() {
  stopped = true;
  opened = false;
  clearTimeout(timer);
  if (ws) ws.close();
}

/** onReadings registers f(readings[]); it returns the function that unregisters it. */
export function onReadings(f) { readingListeners.add(f); return () => readingListeners.delete(f); }
export function onAlert(f) { alertListeners.add(f); return () => alertListeners.delete(f); }
/** onResync registers f(), called when the feed reconnects: events may have been missed (the server drops
 * a client that falls behind), so views reload their state from the API. */
export function onResync(f) { resyncListeners.add(f); return () => resyncListeners.delete(f); }
export function onStatus(f) { statusListeners.add(f); return () => statusListeners.delete(f); }
