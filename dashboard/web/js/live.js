// The live feed of the pages: one websocket on /ws (dashboard/wsboard.go), shared by every view, reconnecting
// with backoff. It is always subscribed to the open alerts; a page adds the scopes whose devices it shows
// (watch(['site:<id>'])), so it receives those devices' states — coalesced by the server, at most four times a
// second — and never the rest of the fleet's readings. The map opens its own subscription (board.js).

const readingListeners = new Set();
const alertListeners = new Set();
const statusListeners = new Set();
const resyncListeners = new Set();
const watched = new Map(); // scope → how many views watch it
let ws = null;
let opened = false; // a connection was open before: a new one may have missed events
let reconnected = false; // the next snapshot follows a reconnection
let stopped = true;
let retry = 0;
let timer = 0;

function setStatus(up) {
  for (const f of statusListeners) f(up);
}

function subscribe() {
  if (ws && ws.readyState === WebSocket.OPEN) {
    ws.send(JSON.stringify({ type: 'subscribe', scopes: ['alerts', ...watched.keys()] }));
  }
}

// readingsOf turns the devices' states of a snapshot or a delta into readings, one per metric.
function readingsOf(devices) {
  const out = [];
  for (const d of devices || []) {
    for (const [metric, value] of Object.entries(d.values || {})) {
      out.push({ Device: d.device, Site: d.site, Commune: d.commune, EPCI: d.epci, Fluid: d.fluid, Metric: metric, Value: value, Time: d.t });
    }
  }
  return out;
}

function connect() {
  if (stopped) return;
  const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
  ws = new WebSocket(url, ['hyperviseur.v1']);
  ws.onopen = () => {
    retry = 0;
    reconnected = opened;
    opened = true;
    setStatus(true);
    subscribe();
  };
  ws.onmessage = (m) => {
    let e;
    try { e = JSON.parse(m.data); } catch { return; }
    if (e.type !== 'snapshot' && e.type !== 'delta') return;
    const rs = readingsOf(e.devices);
    if (rs.length) for (const f of readingListeners) f(rs);
    if (e.type === 'delta') {
      for (const a of e.alerts || []) for (const f of alertListeners) f(a);
    } else if (reconnected) {
      reconnected = false;
      for (const f of resyncListeners) f(); // after a reconnection: what happened meanwhile is in the API
    }
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

/** watch adds scopes ("site:<id>", "commune:<INSEE>") whose devices the feed carries; it returns the function
 * that removes them. */
export function watch(scopes) {
  for (const s of scopes) watched.set(s, (watched.get(s) || 0) + 1);
  subscribe();
  return () => {
    for (const s of scopes) {
      const n = (watched.get(s) || 0) - 1;
      if (n > 0) watched.set(s, n); else watched.delete(s);
    }
    subscribe();
  };
}

/** onReadings registers f(readings[]); it returns the function that unregisters it. */
export function onReadings(f) { readingListeners.add(f); return () => readingListeners.delete(f); }
export function onAlert(f) { alertListeners.add(f); return () => alertListeners.delete(f); }
/** onResync registers f(), called when the feed reconnects: events may have been missed (the server drops
 * a client that falls behind), so views reload their state from the API. */
export function onResync(f) { resyncListeners.add(f); return () => resyncListeners.delete(f); }
export function onStatus(f) { statusListeners.add(f); return () => statusListeners.delete(f); }
