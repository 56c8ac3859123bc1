// A site (#/site/<id>): its registry data, its meters' live values, a history chart, its consumption and its
// alerts.
import { api } from './api.js';
import * as data from './data.js';
import * as live from './live.js';
import * as fmt from './fmt.js';
import { h, replace, errorBox } from './dom.js';
import { lineChart, dataTable, everyFor } from './chart.js';
import { alertRow } from './page-alertes.js';

const RANGES = [
  { key: '24h', label: '24 h', ms: 86400e3, every: '15m' },
  { key: '7j', label: '7 jours', ms: 7 * 86400e3, every: '1h' },
  { key: '30j', label: '30 jours', ms: 30 * 86400e3, every: '6h' },
  { key: '1an', label: '1 an', ms: 365 * 86400e3, every: '24h' },
];

export async function render(main, [id], ctx) {
  const [territory, sites] = await Promise.all([data.territory(), data.sites()]);
  const site = sites.byId.get(id);
  if (!site) {
    replace(main, h('h1', { text: 'Site introuvable' }),
      h('p', { class: 'erreur', role: 'alert', text: `Le site « ${id} » n’existe pas ou n’est pas dans votre périmètre.` }),
      h('p', {}, h('a', { href: '#/carte', text: 'Retour à la carte' })));
    return;
  }
  if (site.kind === 'lighting_cabinet' && ctx.alive()) {
    location.replace('#/armoire/' + encodeURIComponent(id));
    return;
  }
  const commune = territory.communeByCode.get(site.commune);
  const epci = territory.epciByCode.get(site.epci);
  const meters = h('div', {}, h('p', { class: 'chargement', text: 'Chargement des compteurs…' }));
  const chartBox = h('div', {});
  const chartCtl = h('div', {});
  const conso = h('div', {});
  const alerts = h('div', {});
  main.append(
    h('p', { class: 'fil' }, h('a', { href: '#/carte', text: 'Carte' }), ' › ', commune ? commune.nom : site.commune),
    h('h1', { text: site.name }),
    h('div', { class: 'deux-colonnes' },
      h('section', { class: 'panneau', 'aria-labelledby': 'titre-fiche' },
        h('h2', { id: 'titre-fiche', text: 'Fiche' }),
        h('dl', { class: 'fiche' },
          [['Type', fmt.KINDS[site.kind] || site.kind], ['Usage', site.usage], ['Commune', commune ? `${commune.nom} (${site.commune})` : site.commune],
            ['EPCI', epci ? epci.nom : site.epci], ['Surface', site.surface_m2 ? fmt.num(site.surface_m2) + ' m²' : '—'],
            ['Puissance souscrite', site.subscribed_kva ? fmt.num(site.subscribed_kva) + ' kVA' : '—'],
            ['Décret tertiaire', site.tertiaire ? `assujetti (référence ${site.reference_year || '—'})` : 'non assujetti'],
            ['Coordonnées', `${fmt.num(site.lat, 5)} ; ${fmt.num(site.lon, 5)}`]]
            .map(([k, v]) => [h('dt', { text: k }), h('dd', { text: v || '—' })]))),
      h('section', { class: 'panneau', 'aria-labelledby': 'titre-compteurs' },
        h('h2', { id: 'titre-compteurs', text: 'Compteurs en direct' }), meters)),
    h('section', { class: 'panneau', 'aria-labelledby': 'titre-historique' },
      h('h2', { id: 'titre-historique', text: 'Historique' }), chartCtl, chartBox),
    h('section', { class: 'panneau', 'aria-labelledby': 'titre-conso' },
      h('h2', { id: 'titre-conso', text: 'Consommation des 12 derniers mois' }), conso),
    h('section', { class: 'panneau', 'aria-labelledby': 'titre-alertes-site' },
      h('h2', { id: 'titre-alertes-site', text: 'Alertes du site' }), alerts));

  // Meters and their latest values, then live.
  const devs = (await api('/api/v1/devices', { params: { site: id } })).devices || [];
  if (!ctx.alive()) return;
  const latest = await Promise.all(devs.map((d) => api(`/api/v1/devices/${encodeURIComponent(d.id)}/latest`).catch(() => null)));
  if (!ctx.alive()) return;
  const cells = new Map(); // device|metric → {value td, time td, t}
  const tbody = h('tbody', {});
  devs.forEach((d, i) => {
    const readings = (latest[i] && latest[i].readings) || [];
    if (!readings.length) {
      tbody.append(h('tr', {}, h('td', { text: d.id }), h('td', { text: fmt.FLUIDS[d.fluid] || d.fluid || '—' }), h('td', { colspan: 3, class: 'discret', text: 'Aucune mesure reçue' })));
    }
    for (const r of readings) {
      const v = h('td', { class: 'nombre', 'data-device': d.id, 'data-metric': r.metric, text: fmt.metricValue(r.metric, r.value) });
      const t = h('td', { text: fmt.dateTimeSec(r.time) });
      cells.set(d.id + '|' + r.metric, { v, t, time: Date.parse(r.time) });
      tbody.append(h('tr', {}, h('td', { text: d.id }), h('td', { text: fmt.FLUIDS[d.fluid] || d.fluid || '—' }), h('td', { text: fmt.metricLabel(r.metric) }), v, t));
    }
  });
  replace(meters, devs.length ? h('div', { class: 'defile' }, h('table', {},
    h('caption', { class: 'discret', text: `${devs.length} appareil(s) ; les valeurs se mettent à jour en direct.` }),
    h('thead', {}, h('tr', {}, ['Appareil', 'Fluide', 'Mesure'].map((x) => h('th', { text: x })), h('th', { class: 'nombre', text: 'Valeur' }), h('th', { text: 'Reçue le' }))),
    tbody)) : h('p', { text: 'Aucun appareil sur ce site.' }));
  const devIds = new Set(devs.map((d) => d.id));
  let pending = new Map();
  let frame = 0;
  ctx.onLeave(live.watch(['site:' + id])); // the live feed carries this site's devices
  ctx.onLeave(live.onReadings((rs) => {
    for (const r of rs) if (devIds.has(r.Device)) pending.set(r.Device + '|' + r.Metric, r);
    if (pending.size && !frame) {
      frame = requestAnimationFrame(() => {
        frame = 0;
        for (const [key, r] of pending) {
          let c = cells.get(key);
          if (!c) {
            const v = h('td', { class: 'nombre', 'data-device': r.Device, 'data-metric': r.Metric });
            const t = h('td', {});
            c = { v, t, time: 0 };
            cells.set(key, c);
            const d = devs.find((x) => x.id === r.Device);
            tbody.append(h('tr', {}, h('td', { text: r.Device }), h('td', { text: fmt.FLUIDS[d && d.fluid] || '—' }), h('td', { text: fmt.metricLabel(r.Metric) }), v, t));
          }
          if (r.Time < c.time) continue;
          c.time = r.Time;
          c.v.textContent = fmt.metricValue(r.Metric, r.Value);
          c.t.textContent = fmt.dateTimeSec(r.Time);
          c.v.classList.remove('flash');
          void c.v.offsetWidth; // restart the highlight
          c.v.classList.add('flash');
        }
        pending = new Map();
      });
    }
  }));
  ctx.onLeave(() => cancelAnimationFrame(frame));

  // History chart.
  const metrics = [...new Set(latest.flatMap((l) => (l && l.readings ? l.readings.map((r) => r.metric) : [])))];
  const preferred = ['power_w', 'energy_kwh_delta', 'heat_kwh_delta', 'volume_m3_delta', 'temperature_c'];
  const choices = [...preferred.filter((m) => metrics.includes(m)), ...metrics.filter((m) => !preferred.includes(m))];
  if (!choices.length) {
    replace(chartBox, h('p', { class: 'discret', text: 'Pas de mesure à afficher.' }));
  } else {
    const metricSel = h('select', { id: 'mesure-historique' }, choices.map((m) => h('option', { value: m, text: fmt.metricLabel(m) })));
    const view = { metric: choices[0], to: Date.now(), from: Date.now() - 86400e3 };
    const buttons = RANGES.map((r) => h('button', {
      type: 'button', class: 'bouton secondaire petit', 'aria-pressed': r.key === '24h' ? 'true' : 'false', text: r.label,
      onclick: (e) => {
        for (const b of buttons) b.setAttribute('aria-pressed', b === e.currentTarget ? 'true' : 'false');
        view.to = Date.now(); view.from = view.to - r.ms;
        draw();
      },
    }));
    const reset = h('button', { type: 'button', class: 'bouton secondaire petit', text: 'Réinitialiser le zoom', onclick: () => buttons[0].click() });
    replace(chartCtl, h('div', { class: 'ligne' },
      h('div', { class: 'champ' }, h('label', { for: 'mesure-historique', text: 'Mesure' }), metricSel),
      h('div', { class: 'onglets', role: 'group', 'aria-label': 'Période' }, buttons, reset)),
    h('p', { class: 'discret', text: 'Glissez sur le graphique pour zoomer sur une période.' }));
    metricSel.addEventListener('change', () => { view.metric = metricSel.value; draw(); });
    const draw = async () => {
      const every = everyFor(view.to - view.from);
      const delta = view.metric.endsWith('_delta');
      replace(chartBox, h('p', { class: 'chargement', text: 'Chargement…' }));
      try {
        const r = await api('/api/v1/series', { params: { site: id, metric: view.metric, from: new Date(view.from).toISOString(), to: new Date(view.to).toISOString(), every, agg: delta ? 'sum' : 'mean' } });
        if (!ctx.alive()) return;
        const series = (r.series || []).map((se) => ({ label: se.device, points: se.points }));
        const unit = fmt.METRICS[view.metric] ? fmt.METRICS[view.metric][1] : '';
        const box = h('div', {});
        replace(chartBox, h('p', { class: 'discret', text: `${fmt.metricLabel(view.metric)} du ${fmt.dateTime(view.from)} au ${fmt.dateTime(view.to)}, pas de ${every}${delta ? ' (somme)' : ' (moyenne)'}` }), box);
        lineChart(box, {
          series, from: view.from, to: view.to, legend: true, title: `${fmt.metricLabel(view.metric)} — ${site.name}`,
          format: view.metric === 'power_w' ? fmt.power : (v) => fmt.smart(v) + (unit ? ' ' + unit : ''),
          onZoom: (a, b) => { view.from = a; view.to = b; draw(); },
        });
        chartBox.append(dataTable(series, (v) => fmt.metricValue(view.metric, v)));
      } catch (e) {
        replace(chartBox, errorBox(e));
      }
    };
    draw();
  }

  // Consumption per month, with the same months a year earlier.
  const to = fmt.parisDay();
  const p = fmt.parisParts(Date.now());
  const from = `${p.y - 1}-${String(p.m).padStart(2, '0')}-01`;
  api('/api/v1/consumption', { params: { scope: 'site:' + id, from, to, every: 'month', yoy: true } }).then((r) => {
    if (!ctx.alive()) return;
    const fluids = [...new Set((r.rows || []).map((x) => x.fluid))];
    const byMonth = new Map();
    for (const row of r.rows || []) {
      if (!byMonth.has(row.start)) byMonth.set(row.start, {});
      byMonth.get(row.start)[row.fluid] = row;
    }
    if (!byMonth.size) { replace(conso, h('p', { class: 'discret', text: 'Pas de consommation sur la période.' })); return; }
    const unit = (f) => (f === 'water' || f === 'gas' ? 'm³' : 'kWh');
    replace(conso, h('div', { class: 'defile' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', { text: 'Mois' }), fluids.map((f) => h('th', { class: 'nombre', text: `${fmt.FLUIDS[f] || f} (${unit(f)})` })))),
      h('tbody', {}, [...byMonth].map(([start, cols]) => h('tr', {}, h('td', { text: fmt.month(start) }), fluids.map((f) => {
        const c = cols[f];
        if (!c) return h('td', { class: 'nombre', text: '—' });
        const prev = c.previous && c.previous.value ? c.previous.value : 0;
        return h('td', { class: 'nombre' }, fmt.smart(c.value), prev ? h('div', { class: 'discret', text: `N-1 : ${fmt.smart(prev)} (${fmt.pct((c.value - prev) / prev)})` }) : null);
    })))))));
  }).catch((e) => replace(conso, errorBox(e)));

  // Alerts of the site.
  const loadAlerts = () => api('/api/v1/alerts', { params: { site: id, limit: 20 } }).then((r) => {
    if (!ctx.alive()) return;
    const list = r.alerts || [];
    replace(alerts, list.length ? h('table', {}, h('thead', {}, h('tr', {}, ['Gravité', 'État', 'Alerte', 'Depuis'].map((x) => h('th', { text: x })))),
      h('tbody', {}, list.map((a) => alertRow(a, { compact: true }))))
      : h('p', { class: 'discret', text: 'Aucune alerte.' }));
  }).catch((e) => replace(alerts, errorBox(e)));
  loadAlerts();
  let t = 0;
  ctx.onLeave(live.onAlert((a) => { if (a.labels && a.labels.site === id) { if (!t) t = setTimeout(() => { t = 0; loadAlerts(); }, 800); } }));
  ctx.onLeave(live.onResync(loadAlerts));
  ctx.onLeave(() => clearTimeout(t));
}
