// The hypervisor map (#/carte): the Aisne's communes coloured by live power, kWh per inhabitant or open
// alerts, the sites as markers, and live tiles for the caller's scope.
import { api } from './api.js';
import * as data from './data.js';
import * as live from './live.js';
import * as board from './board.js';
import * as fmt from './fmt.js';
import { h, replace } from './dom.js';
import { AisneMap, classify } from './map.js';

const MODES = {
  puissance: { label: 'Puissance appelée (en direct)', format: fmt.power },
  habitant: { label: 'kWh par habitant (30 derniers jours)', format: (v) => fmt.smart(v) + ' kWh/hab.' },
  alertes: { label: 'Alertes actives', format: (v) => fmt.num(v) + (v > 1 ? ' alertes' : ' alerte') },
};
const GAS_KWH_PER_M3 = 11.2; // replaced by the server's value when the consumption API gives it

export async function render(main, _args, ctx) {
  const t0 = performance.now();
  const [territory, geojson] = await Promise.all([data.territory(), data.outlines()]);
  if (!ctx.alive()) return;

  const state = {
    mode: 'puissance',
    communes: new Map(), // INSEE code → the /ws board's commune state (power_w by fluid, alerts)
    energy: new Map(), // commune → kWh over 30 days
    alerts: [],
    sites: null,
    dirty: false,
    gasPCS: GAS_KWH_PER_M3,
  };

  const tiles = h('section', { class: 'tuiles', 'aria-label': 'Indicateurs en direct' });
  const legend = h('div', { class: 'legende', 'aria-live': 'polite' });
  const select = h('select', { id: 'mode-carte' },
    Object.entries(MODES).map(([k, m]) => h('option', { value: k, text: m.label })));
  const epciSelect = h('select', { id: 'epci-carte' },
    h('option', { value: '', text: 'Tout le territoire' }),
    territory.epci.map((e) => h('option', { value: e.code, text: e.nom })));
  const status = h('p', { class: 'discret', 'aria-live': 'polite' });
  const side = h('aside', { class: 'panneau' },
    h('div', { class: 'champ' }, h('label', { for: 'mode-carte', text: 'Colorer les communes par' }), select),
    legend,
    h('div', { class: 'legende' },
      h('span', {}, h('i', { class: 'symbole batiment' }), 'Bâtiment'),
      h('span', {}, h('i', { class: 'symbole armoire' }), "Armoire d'éclairage"),
      h('span', {}, h('i', { class: 'symbole', text: '' }), 'Cercle numéroté : groupe de sites')),
    h('div', { class: 'champ' }, h('label', { for: 'epci-carte', text: 'Centrer sur' }), epciSelect),
    h('p', { class: 'aide-carte', text: 'Molette ou +/− pour zoomer, glisser ou flèches pour déplacer, 0 pour recentrer. Entrée sur un site pour ouvrir sa fiche.' }),
    status);
  const mapBox = h('div', {});
  main.append(h('h1', { text: 'Carte du territoire' }), tiles, h('div', { class: 'carte-page' }, mapBox, side));

  const describe = (code, nom) => {
    const c = territory.communeByCode.get(code);
    if (!c) return `${nom} (hors de votre périmètre)`;
    const v = value(code);
    return `${c.nom} — ${v === undefined ? 'pas de donnée' : MODES[state.mode].format(v)}`;
  };
  const map = new AisneMap(mapBox, {
    geojson, territory, describe,
    onOpen: (site) => { location.hash = (site.kind === 'lighting_cabinet' ? '#/armoire/' : '#/site/') + encodeURIComponent(site.id); },
  });
  ctx.onLeave(() => map.destroy());
  if (ctx.user.epcis && ctx.user.epcis.length) {
    map.focusCodes(territory.communes.map((c) => c.code));
    epciSelect.value = ctx.user.epcis.length === 1 ? ctx.user.epcis[0] : '';
  }
  requestAnimationFrame(() => requestAnimationFrame(() => {
    // First paint of the map (outlines drawn); read by the browser test.
    performance.mark('carte-peinte');
    map.el.dataset.peinte = String(Math.round(performance.now()));
    map.el.dataset.duree = String(Math.round(performance.now() - t0));
  }));

  function value(code) {
    if (state.mode === 'puissance') return state.communePower ? state.communePower.get(code) : undefined;
    if (state.mode === 'habitant') {
      const e = state.energy.get(code);
      const pop = territory.communeByCode.get(code)?.population;
      return e === undefined || !pop ? undefined : e / pop;
    }
    return state.alertCount ? state.alertCount.get(code) || 0 : undefined;
  }

  function recolour() {
    if (state.mode === 'puissance') {
      const m = new Map();
      for (const [code, c] of state.communes) m.set(code, Object.values(c.power_w || {}).reduce((a, w) => a + w, 0));
      state.communePower = m;
    }
    const values = new Map();
    for (const c of territory.communes) {
      const v = value(c.code);
      if (v !== undefined) values.set(c.code, v);
    }
    const { classes, bounds, max } = classify(values);
    map.setClasses(classes);
    const f = MODES[state.mode].format;
    const items = [h('span', {}, h('i', { class: 'nd' }), 'Pas de donnée'), h('span', {}, h('i', { class: 'zero' }), 'Zéro')];
    const edges = [0, ...bounds, max];
    for (let i = 0; i + 1 < edges.length; i++) {
      items.push(h('span', {}, h('i', { class: 'c' + i }), `${f(edges[i])} – ${f(edges[i + 1])}`));
    }
    replace(legend, h('strong', { text: MODES[state.mode].label }), items);
  }

  let frame = 0;
  const schedule = () => {
    if (frame) return;
    frame = requestAnimationFrame(() => { frame = 0; recolour(); renderTiles(); });
  };
  ctx.onLeave(() => cancelAnimationFrame(frame));

  select.addEventListener('change', () => { state.mode = select.value; schedule(); });
  epciSelect.addEventListener('change', () => {
    if (!epciSelect.value) map.fit();
    else map.focusCodes(territory.communes.filter((c) => c.epci === epciSelect.value).map((c) => c.code));
  });

  // Tiles.
  const tileData = {};
  function renderTiles() {
    let elec = 0;
    for (const c of state.communes.values()) elec += (c.power_w && c.power_w.electricity) || 0;
    const byFluid = tileData.hour || {};
    const tile = (title, ...body) => h('article', { class: 'tuile' }, h('h2', { text: title }), ...body);
    const dl = (rows) => h('dl', {}, rows.map(([k, v, attrs]) => [h('dt', {}, k), h('dd', attrs || {}, v)]));
    const out = [];
    out.push(tile('Puissance par fluide', dl([
      ['Électricité (direct)', fmt.power(elec), { 'data-tuile': 'puissance-electricite' }],
      ['Gaz (dernière heure)', byFluid.gas !== undefined ? fmt.power(byFluid.gas * 1000) : '—'],
      ['Chaleur (dernière heure)', byFluid.heat !== undefined ? fmt.power(byFluid.heat * 1000) : '—'],
      ['Eau (dernière heure)', byFluid.water !== undefined ? fmt.smart(byFluid.water) + ' m³/h' : '—'],
    ])));
    const today = tileData.today || [];
    out.push(tile("Aujourd'hui / même jour l'an dernier", today.length ? dl(today.map((r) => {
      const unit = r.kwh !== undefined ? 'kWh' : r.unit === 'm3' ? 'm³' : r.unit;
      const v = r.kwh !== undefined ? r.kwh : r.value;
      const p = r.previous ? (r.kwh !== undefined ? r.previous.kwh : r.previous.value) : undefined;
      const ev = p ? (v - p) / p : undefined;
      return [fmt.FLUIDS[r.fluid] || r.fluid, `${fmt.smart(v)} ${unit} / ${p ? fmt.smart(p) + ' ' + unit : '—'}${ev !== undefined ? ' (' + fmt.pct(ev) + ')' : ''}`];
    })) : h('p', { class: 'discret', text: 'Pas encore de consommation aujourd’hui.' })));
    const firing = state.alerts.filter((a) => a.state === 'firing');
    const bySev = { critical: 0, warning: 0, info: 0 };
    for (const a of firing) bySev[a.severity] = (bySev[a.severity] || 0) + 1;
    out.push(tile('Alertes actives', dl(Object.entries(bySev).map(([k, n]) => [
      h('a', { href: '#/alertes/' + k }, h('span', { class: 'badge ' + k, text: fmt.SEVERITY[k] })), fmt.num(n), { 'data-tuile': 'alertes-' + k },
    ]))));
    const g = tileData.lighting;
    if (g) {
      const faulty = new Set(firing.filter((a) => (a.labels.site || '').startsWith('armoire-')).map((a) => a.labels.site)).size;
      out.push(tile("Éclairage public (armoires)", dl([
        ['Pleine puissance', fmt.num(Math.max(0, g.on - g.dimmed))],
        ['Abaissées', fmt.num(g.dimmed)],
        ['Éteintes', fmt.num(g.off)],
        ['En défaut', fmt.num(faulty)],
        ['Sans nouvelles', fmt.num(g.unknown)],
      ])));
    }
    const sun = tileData.sun;
    if (sun) {
      out.push(tile(`Soleil à ${sun.nom || sun.commune}`, dl([
        ['Coucher ce soir', fmt.time(sun.days[0].sunset)],
        ['Lever demain', fmt.time(sun.days[1].sunrise)],
        ['Nuit civile', `${fmt.time(sun.days[0].dusk)} – ${fmt.time(sun.days[1].dawn)}`],
      ])));
    }
    replace(tiles, out);
  }

  const fail = (what) => (e) => { if (ctx.alive()) status.append(h('span', { class: 'erreur', text: `${what} : ${e.message}` })); };

  // Sites as markers.
  data.sites().then((s) => {
    if (!ctx.alive()) return;
    state.sites = s;
    map.setSites(s.list.filter((x) => x.kind !== 'weather_station'));
    status.textContent = `${fmt.num(s.list.filter((x) => x.kind === 'building').length)} bâtiments, ${fmt.num(s.list.filter((x) => x.kind === 'lighting_cabinet').length)} armoires d'éclairage.`;
  }).catch(fail('Sites'));

  // The tile background, when the server has one configured.
  api('/api/v1/ui').then((ui) => {
    if (ctx.alive() && ui.map_tiles) map.setTiles(ui.map_tiles.url, ui.map_tiles.attribution);
  }).catch(fail('Réglages'));

  // Live power: each commune's sum over its devices, from the aggregated feed (a snapshot, then the
  // communes that changed): the page never handles readings one by one.
  const feed = board.open(['departement'], (msg) => {
    if (!ctx.alive()) return;
    if (msg.type === 'snapshot') state.communes.clear();
    for (const c of msg.communes) state.communes.set(c.commune, c);
    schedule();
  }, (text) => fail('Flux en direct')({ message: text }));
  ctx.onLeave(() => feed.close());
  const now = Date.now();

  // Energy of the last 30 days per commune.
  const from30 = new Date(now - 30 * 86400e3).toISOString();
  Promise.all([
    api('/api/v1/series', { params: { metric: 'energy_kwh_delta,heat_kwh_delta', from: from30, every: '720h', agg: 'sum' } }),
    api('/api/v1/series', { params: { metric: 'volume_m3_delta', fluid: 'gas', from: from30, every: '720h', agg: 'sum' } }),
  ]).then(([kwh, gas]) => {
    const add = (se, f) => {
      const v = se.points.reduce((a, p) => a + p.v, 0) * f;
      state.energy.set(se.commune, (state.energy.get(se.commune) || 0) + v);
    };
    for (const se of kwh.series || []) add(se, 1);
    for (const se of gas.series || []) add(se, state.gasPCS);
    schedule();
  }).catch(fail('Énergie'));

  // Open alerts, refreshed when the feed says one changed.
  let alertTimer = 0;
  const loadAlerts = () => api('/api/v1/alerts', { params: { limit: 1 } }).then((r) => {
    if (!ctx.alive()) return;
    state.alerts = (r.alerts || []).filter((a) => a.state !== 'resolved');
    const count = new Map();
    const faulty = new Set();
    for (const a of state.alerts) {
      if (a.state !== 'firing') continue;
      if (a.labels.commune) count.set(a.labels.commune, (count.get(a.labels.commune) || 0) + 1);
      if (a.labels.site) faulty.add(a.labels.site);
    }
    state.alertCount = count;
    map.setFaulty(faulty);
    schedule();
  }).catch(fail('Alertes'));
  loadAlerts();
  ctx.onLeave(live.onAlert(() => {
    if (!alertTimer) alertTimer = setTimeout(() => { alertTimer = 0; loadAlerts(); }, 1500);
  }));
  ctx.onLeave(() => clearTimeout(alertTimer));
  ctx.onLeave(live.onResync(loadAlerts));
  const poll = setInterval(loadAlerts, 60000); // masked alerts are not pushed by the feed
  ctx.onLeave(() => clearInterval(poll));

  // Consumption tiles: today against the same day last year, and the last complete hour per fluid.
  const today = fmt.parisDay();
  api('/api/v1/consumption', { params: { from: today, to: today, every: 'day', yoy: true } }).then((r) => {
    if (r.gas_pcs_kwh_per_m3) state.gasPCS = r.gas_pcs_kwh_per_m3;
    tileData.today = r.rows || [];
    schedule();
  }).catch(fail('Consommation'));
  api('/api/v1/consumption', { params: { from: fmt.parisDay(now, -1), to: today, every: 'hour' } }).then((r) => {
    const last = {};
    for (const row of r.rows || []) {
      if (new Date(row.end).getTime() > Date.now()) continue;
      const t = new Date(row.end).getTime();
      if (!last[row.fluid] || last[row.fluid].t < t) last[row.fluid] = { t, v: row.fluid === 'water' ? row.value : row.kwh ?? row.value };
    }
    tileData.hour = Object.fromEntries(Object.entries(last).map(([k, x]) => [k, x.v]));
    schedule();
  }).catch(fail('Consommation horaire'));
  api('/api/v1/lighting/groups').then((r) => {
    const sum = { on: 0, dimmed: 0, off: 0, unknown: 0, controllers: 0 };
    for (const g of r.groups || []) for (const k of Object.keys(sum)) sum[k] += g[k] || 0;
    tileData.lighting = sum;
    schedule();
  }).catch(() => {});
  const seat = [...territory.communes].sort((a, b) => b.population - a.population)[0];
  if (seat) {
    api('/api/v1/lighting/sun', { params: { commune: seat.code, days: 2 } }).then((r) => {
      tileData.sun = r;
      schedule();
    }).catch(() => {});
  }
  schedule();
}


