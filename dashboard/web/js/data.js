// Data shared by the pages, fetched once per session: the territory, the sites of the caller's scope and the
// commune outlines.
import { api } from './api.js';

let cache = {};

export function reset() { cache = {}; }

function once(key, f) {
  if (!cache[key]) cache[key] = f().catch((e) => { delete cache[key]; throw e; });
  return cache[key];
}

/** territory returns {departement, epci[], communes[]} plus maps by code. */
export function territory() {
  return once('territory', async () => {
    const t = await api('/api/v1/territory');
    t.communeByCode = new Map(t.communes.map((c) => [c.code, c]));
    t.epciByCode = new Map(t.epci.map((e) => [e.code, e]));
    return t;
  });
}

/** sites returns the sites of the caller's scope and a map by id. */
export function sites() {
  return once('sites', async () => {
    const r = await api('/api/v1/sites');
    const list = r.sites || [];
    return { list, byId: new Map(list.map((s) => [s.id, s])) };
  });
}

/** outlines returns the commune outlines (GeoJSON FeatureCollection). */
export function outlines() {
  return once('outlines', async () => {
    const r = await fetch('/static/aisne-communes.geojson');
    if (!r.ok) throw new Error('Contours des communes indisponibles');
    return r.json();
  });
}
