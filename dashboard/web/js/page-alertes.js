// Alerts (#/alertes[/<severity>]): filter, acknowledge with a comment, silence, history and evidence chart.
import { api } from './api.js';
import * as data from './data.js';
import * as live from './live.js';
import * as fmt from './fmt.js';
import { h, replace, errorBox } from './dom.js';
import { lineChart, everyFor } from './chart.js';

const STAFF = ['admin', 'technicien'];

function siteLink(a, sites) {
  const id = a.labels && a.labels.site;
  if (!id) return a.labels && a.labels.device ? a.labels.device : '—';
  const s = sites && sites.byId.get(id);
  const href = (s && s.kind === 'lighting_cabinet' ? '#/armoire/' : '#/site/') + encodeURIComponent(id);
  return h('a', { href, text: s ? s.name : id });
}

/** alertRow is one alert as a table row (also used by the site and cabinet pages). */
export function alertRow(a, { compact, sites, onOpen } = {}) {
  const ack = a.acknowledged;
  const cells = [
    h('td', {}, h('span', { class: 'badge ' + a.severity, text: fmt.SEVERITY[a.severity] || a.severity })),
    h('td', { class: 'etat ' + a.state, text: (fmt.STATES[a.state] || a.state) + (ack ? ' · acquittée' : '') + (a.silenced_by ? ' · en silence' : '') }),
    h('td', {}, a.summary || a.rule, h('div', { class: 'discret', text: a.rule })),
  ];
  if (!compact) cells.push(h('td', {}, siteLink(a, sites)));
  cells.push(h('td', { text: fmt.dateTime(a.fired_at || a.active_at) }));
  if (!compact) cells.push(h('td', {}, ack ? [ack.by, h('div', { class: 'discret', text: `${fmt.dateTime(ack.at)}${ack.comment ? ' — ' + ack.comment : ''}` })] : '—'));
  const tr = h('tr', { 'data-alerte': a.fingerprint, 'data-regle': a.rule, 'data-appareil': a.labels ? a.labels.device : undefined }, cells);
  if (onOpen) {
    tr.tabIndex = 0;
    tr.setAttribute('aria-label', `${fmt.SEVERITY[a.severity] || a.severity} : ${a.summary || a.rule}. Entrée pour le détail.`);
    tr.addEventListener('click', (e) => { if (!e.target.closest('a,button')) onOpen(a, tr); });
    tr.addEventListener('keydown', (e) => { if ((e.key === 'Enter' || e.key === ' ') && e.target === tr) { e.preventDefault(); onOpen(a, tr); } });
  }
  return tr;
}

export async function render(main, [sev], ctx) {
  const staff = STAFF.includes(ctx.user.role);
  const sites = await data.sites().catch(() => null);
  const stateSel = h('select', { id: 'filtre-etat' },
    h('option', { value: 'actives', text: 'Actives et en attente' }),
    h('option', { value: 'firing', text: 'Actives' }),
    h('option', { value: 'pending', text: 'En attente' }),
    h('option', { value: 'resolved', text: 'Résolues (historique)' }),
    h('option', { value: '', text: 'Toutes' }));
  const sevSel = h('select', { id: 'filtre-gravite' }, h('option', { value: '', text: 'Toutes' }),
    Object.entries(fmt.SEVERITY).map(([k, v]) => h('option', { value: k, text: v })));
  if (sev && fmt.SEVERITY[sev]) sevSel.value = sev;
  const text = h('input', { id: 'filtre-texte', type: 'search', placeholder: 'commune, site, appareil, règle…' });
  const hidden = h('input', { id: 'filtre-masquees', type: 'checkbox' });
  const count = h('p', { class: 'discret', 'aria-live': 'polite' });
  const list = h('div', {});
  const detail = h('section', { class: 'panneau', id: 'detail-alerte', 'aria-live': 'polite', hidden: true });
  main.append(h('h1', { text: 'Alertes' }),
    h('div', { class: 'panneau ligne', role: 'search' },
      h('div', { class: 'champ' }, h('label', { for: 'filtre-etat', text: 'État' }), stateSel),
      h('div', { class: 'champ' }, h('label', { for: 'filtre-gravite', text: 'Gravité' }), sevSel),
      h('div', { class: 'champ' }, h('label', { for: 'filtre-texte', text: 'Rechercher' }), text),
      h('label', { class: 'case' }, hidden, 'Inclure les alertes masquées par une cause commune')),
    count, detail, list);

  let alerts = [];
  let selected = null;
  async function load() {
    const st = stateSel.value;
    try {
      const r = await api('/api/v1/alerts', { params: { state: st === 'actives' ? undefined : st, severity: sevSel.value, limit: st === 'actives' ? 1 : 500 } });
      if (!ctx.alive()) return;
      const next = (r.alerts || []).filter((a) => st !== 'actives' || a.state !== 'resolved');
      const sig = (l) => l.map((a) => [a.fingerprint, a.state, a.acknowledged ? 1 : 0, a.silenced_by || '', a.suppressed_by || ''].join(':')).join(',');
      if (sig(next) === sig(alerts) && list.firstChild) return; // nothing changed: keep the table (and the focus)
      alerts = next;
      show();
    } catch (e) {
      replace(list, errorBox(e));
    }
  }
  function show() {
    const q = text.value.trim().toLowerCase();
    const rows = alerts.filter((a) => (hidden.checked || !a.suppressed_by) && (!q || [a.summary, a.rule, ...Object.values(a.labels || {}),
      sites && a.labels && sites.byId.get(a.labels.site)?.name].some((x) => x && String(x).toLowerCase().includes(q))));
    count.textContent = `${fmt.num(rows.length)} alerte(s) affichée(s) sur ${fmt.num(alerts.length)}.`;
    const shown = rows.slice(0, 1000);
    const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest('tr[data-alerte]')?.dataset.alerte;
    replace(list, rows.length ? h('div', { class: 'defile' }, h('table', {},
      h('thead', {}, h('tr', {}, ['Gravité', 'État', 'Alerte', 'Lieu', 'Depuis', 'Acquittement'].map((x) => h('th', { scope: 'col', text: x })))),
      h('tbody', {}, shown.map((a) => {
        const tr = alertRow(a, { sites, onOpen: open });
        if (selected === a.fingerprint) tr.classList.add('selection');
        return tr;
      }))))
      : h('p', { text: 'Aucune alerte ne correspond aux filtres.' }));
    if (focused) list.querySelector(`tr[data-alerte="${CSS.escape(focused)}"]`)?.focus({ preventScroll: true });
    if (rows.length > shown.length) list.append(h('p', { class: 'discret', text: `Seules les ${fmt.num(shown.length)} premières sont listées : affinez les filtres.` }));
  }

  async function open(a, notice) {
    selected = a.fingerprint;
    for (const tr of list.querySelectorAll('tr.selection')) tr.classList.remove('selection');
    list.querySelector(`tr[data-alerte="${CSS.escape(a.fingerprint)}"]`)?.classList.add('selection');
    detail.hidden = false;
    replace(detail, h('p', { class: 'chargement', text: 'Chargement…' }));
    let full;
    try {
      full = await api(`/api/v1/alerts/${encodeURIComponent(a.fingerprint)}`);
    } catch (e) {
      replace(detail, errorBox(e));
      return;
    }
    if (!ctx.alive()) return;
    const msg = h('div', { 'aria-live': 'polite' }, notice ? h('p', { class: 'succes', role: 'status', text: notice }) : null);
    const actions = [];
    if (staff && full.state !== 'resolved') {
      const comment = h('textarea', { id: 'commentaire-acquittement', rows: 2, cols: 50 });
      const ackBtn = h('button', { type: 'submit', class: 'bouton', text: 'Acquitter' });
      const ackForm = h('form', { class: 'ligne', 'aria-label': "Acquitter l'alerte" },
        h('div', { class: 'champ' }, h('label', { for: 'commentaire-acquittement', text: 'Commentaire d’acquittement' }), comment), ackBtn);
      ackForm.addEventListener('submit', async (e) => {
        e.preventDefault();
        ackBtn.disabled = true;
        try {
          await api(`/api/v1/alerts/${encodeURIComponent(full.fingerprint)}/ack`, { method: 'POST', body: { comment: comment.value.trim() } });
          await load();
          await open(full, 'Alerte acquittée.');
        } catch (err) {
          replace(msg, errorBox(err));
        } finally {
          ackBtn.disabled = false;
        }
      });
      if (!full.acknowledged) actions.push(ackForm);
      const dur = h('select', { id: 'duree-silence' }, [['1', '1 heure'], ['4', '4 heures'], ['24', '24 heures'], ['168', '7 jours']].map(([v, l]) => h('option', { value: v, text: l })));
      const why = h('input', { id: 'motif-silence', placeholder: 'intervention en cours…' });
      const silForm = h('form', { class: 'ligne', 'aria-label': 'Mettre en silence' },
        h('div', { class: 'champ' }, h('label', { for: 'duree-silence', text: 'Mettre en silence pendant' }), dur),
        h('div', { class: 'champ' }, h('label', { for: 'motif-silence', text: 'Motif' }), why),
        h('button', { type: 'submit', class: 'bouton secondaire', text: 'Mettre en silence' }));
      silForm.addEventListener('submit', async (e) => {
        e.preventDefault();
        const matchers = { rule: full.rule };
        for (const k of ['device', 'site', 'epci']) if (full.labels && full.labels[k]) matchers[k] = full.labels[k];
        try {
          await api('/api/v1/silences', { method: 'POST', body: { matchers, to: new Date(Date.now() + +dur.value * 3600e3).toISOString(), comment: why.value.trim() } });
          replace(msg, h('p', { class: 'succes', role: 'status', text: `Silence posé jusqu’au ${fmt.dateTime(Date.now() + +dur.value * 3600e3)}.` }));
          await load();
        } catch (err) {
          replace(msg, errorBox(err));
        }
      });
      actions.push(silForm);
    }
    const ev = full.evidence || {};
    const chart = h('div', {});
    replace(detail,
      h('div', { class: 'ligne' }, h('h2', { text: full.summary || full.rule }),
        h('button', { type: 'button', class: 'bouton secondaire petit', text: 'Fermer', onclick: () => { detail.hidden = true; selected = null; show(); } })),
      h('div', { class: 'deux-colonnes' },
        h('dl', { class: 'fiche' }, [
          ['Gravité', h('span', { class: 'badge ' + full.severity, text: fmt.SEVERITY[full.severity] || full.severity })],
          ['État', fmt.STATES[full.state] || full.state], ['Règle', full.rule], ['Lieu', siteLink(full, sites)],
          ['Appareil', (full.labels && full.labels.device) || '—'], ['Valeur', fmt.smart(full.value)],
          ['Active depuis', fmt.dateTime(full.active_at)], ['Résolue le', full.resolved_at ? fmt.dateTime(full.resolved_at) : '—'],
          ['Acquittement', full.acknowledged ? `${full.acknowledged.by}, ${fmt.dateTime(full.acknowledged.at)}${full.acknowledged.comment ? ' — « ' + full.acknowledged.comment + ' »' : ''}` : 'non acquittée'],
        ].map(([k, v]) => [h('dt', { text: k }), h('dd', {}, v)])),
        h('div', {}, h('h3', { text: 'Historique' }), h('ol', {}, (full.history || []).map((x) => h('li', {},
          `${fmt.dateTimeSec(x.at)} — ${({ pending: 'en attente', firing: 'déclenchée', resolved: 'résolue', acknowledged: 'acquittée', silenced: 'mise en silence', suppressed: 'masquée' })[x.kind] || x.kind}`,
          x.by ? ` par ${x.by}` : '', x.note || x.comment ? ` (${x.note || x.comment})` : ''))))),
      actions, msg,
      h('h3', { text: 'Preuve' }), chart);
    if (ev.device && ev.from && ev.to) {
      const from = Date.parse(ev.from), to = Date.parse(ev.to);
      const margin = Math.max((to - from) / 2, 3600e3);
      const metric = ev.metric || (full.rule === 'appareil-muet' ? null : 'power_w');
      if (!metric) {
        replace(chart, h('p', { class: 'discret', text: `Dernier message reçu le ${fmt.dateTime(ev.from)} ; seuil de silence ${fmt.num(ev.threshold / 60)} min.` }));
        return;
      }
      const [f0, t0] = [from - margin, Math.min(Date.now(), to + margin)];
      try {
        const r = await api('/api/v1/series', { params: { device: ev.device, metric, from: new Date(f0).toISOString(), to: new Date(t0).toISOString(), every: everyFor(t0 - f0), agg: metric.endsWith('_delta') ? 'sum' : 'mean' } });
        const series = (r.series || []).map((se) => ({ label: `${se.device} — ${fmt.metricLabel(se.metric)}`, points: se.points }));
        lineChart(chart, { series, from: f0, to: t0, legend: true, title: 'Preuve de l’alerte', bands: [{ from, to, cls: 'preuve', label: 'Période de la preuve' }],
          threshold: ev.threshold, format: (v) => fmt.metricValue(metric, v) });
      } catch (e) {
        replace(chart, errorBox(e));
      }
    } else {
      replace(chart, h('p', { class: 'discret', text: 'Pas de preuve chiffrée pour cette alerte.' }));
    }
  }

  for (const el of [stateSel, sevSel]) el.addEventListener('change', load);
  text.addEventListener('input', show);
  hidden.addEventListener('change', show);
  let t = 0;
  // At most one reload every 2 s however many alerts change (a debounce would starve under a steady stream).
  ctx.onLeave(live.onAlert(() => { if (!t) t = setTimeout(() => { t = 0; load(); }, 2000); }));
  ctx.onLeave(live.onResync(load));
  // The feed pushes the alerts that notify; masked or silenced ones and acknowledgements by others change
  // quietly, so the list is also reloaded every 30 s.
  const poll = setInterval(load, 30000);
  ctx.onLeave(() => clearInterval(poll));
  ctx.onLeave(() => clearTimeout(t));
  await load();
}
