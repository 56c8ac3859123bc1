// The aggregated live feed, GET /ws (dashboard/wsboard.go): the page subscribes to scopes ("departement",
// "epci:<SIREN>", "commune:<INSEE>", "site:<id>", "alerts") and receives a snapshot, then at most four deltas a
// second with the whole state of each commune or device that changed — one entry per commune at the map's
// zoom, however many devices report. Reconnects with backoff and subscribes again (a new snapshot).

/**
 * open subscribes to scopes; onMessage(msg) receives each snapshot and delta ({type, communes, devices,
 * alerts}); onError(text) the server's refusals. It returns {close()}.
 */
export function open(scopes, onMessage, onError = () => {}) {
  let ws = null;
  let closed = false;
  let retry = 0;
  let timer = 0;
  const connect = () => {
    if (closed) return;
    ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws', ['hyperviseur.v1']);
    ws.onopen = () => {
      retry = 0;
      ws.send(JSON.stringify({ type: 'subscribe', scopes }));
    };
    ws.onmessage = (m) => {
      let msg;
      try { msg = JSON.parse(m.data); } catch { return; }
      if (msg.type === 'error') onError(msg.error);
      else if (msg.type === 'snapshot' || msg.type === 'delta') onMessage(msg);
    };
    ws.onclose = () => {
      ws = null;
      if (closed) return;
      retry = Math.min(retry + 1, 5);
      timer = setTimeout(connect, retry === 1 ? 200 : 500 * 2 ** retry);
    };
  };
  connect();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      if (ws) ws.close();
    },
  };
}
