// A lighting cabinet (#/armoire/<id>): tonight's program against the sun, commanded and reported level and
// power (live), command history and the override form.
import { api } from './api.js';
import * as data from './data.js';
import * as live from './live.js';
import * as fmt from './fmt.js';
import { h, replace, errorBox } from './dom.js';
import { lineChart } from './chart.js';
import { alertRow } from './page-alertes.js';

const COMMAND_STATES = {
  scheduled: 'planifiée', queued: 'en file', sent: 'envoyée', acked: 'acquittée', measured: 'mesurée',
  unacked: 'sans accusé', rejected: 'rejetée', expired: 'expirée', cancelled: 'annulée',
};

export async function render(main, [id], ctx) {
  const [territory, sites] = await Promise.all([data.territory(), data.sites()]);
  const site = sites.byId.get(id);
  if (!site) {
    replace(main, h('h1', { text: 'Armoire introuvable' }),
      h('p', { class: 'erreur', role: 'alert', text: `L’armoire « ${id} » n’existe pas ou n’est pas dans votre périmètre.` }),
      h('p', {}, h('a', { href: '#/carte', text: 'Retour à la carte' })));
    return;
  }
  const commune = territory.communeByCode.get(site.commune);
  const staff = ['admin', 'technicien'].includes(ctx.user.role);
  const devs = ((await api('/api/v1/devices', { params: { site: id } })).devices || []).filter((d) => d.kind === 'lighting_controller');
  if (!ctx.alive()) return;
  const stateBox = h('div', {});
  const timeline = h('div', {});
  const commands = h('div', {});
  const alerts = h('div', {});
  const overrideBox = h('div', {});
  main.append(
    h('p', { class: 'fil' }, h('a', { href: '#/carte', text: 'Carte' }), ' › ', commune ? commune.nom : site.commune),
    h('h1', { text: site.name }),
    h('div', { class: 'deux-colonnes' },
      h('section', { class: 'panneau', 'aria-labelledby': 'titre-etat' }, h('h2', { id: 'titre-etat', text: 'État en direct' }), stateBox),
      h('section', { class: 'panneau', 'aria-labelledby': 'titre-forcage' }, h('h2', { id: 'titre-forcage', text: 'Forçage' }), overrideBox)),
    h('section', { class: 'panneau', 'aria-labelledby': 'titre-programme' }, h('h2', { id: 'titre-programme', text: 'Programme de la nuit' }), timeline),
    h('section', { class: 'panneau', 'aria-labelledby': 'titre-commandes' }, h('h2', { id: 'titre-commandes', text: 'Historique des commandes' }), commands),
    h('section', { class: 'panneau', 'aria-labelledby': 'titre-alertes-armoire' }, h('h2', { id: 'titre-alertes-armoire', text: 'Alertes' }), alerts));
  if (!devs.length) {
    replace(stateBox, h('p', { text: 'Aucun contrôleur d’éclairage sur cette armoire.' }));
    return;
  }
  const dev = devs[0];
  let info;
  try {
    info = await api(`/api/v1/lighting/devices/${encodeURIComponent(dev.id)}`);
  } catch (e) {
    replace(stateBox, errorBox(e));
    return;
  }
  if (!ctx.alive()) return;
  const st = info.state || {};
  const cell = (key, v) => h('dd', { 'data-etat': key, text: v });
  const levelCell = cell('reported_level', st.reported_level === null || st.reported_level === undefined ? '—' : fmt.num(st.reported_level) + ' %');
  const powerCell = cell('power_w', fmt.power(st.power_w));
  const atCell = cell('reported_at', fmt.dateTimeSec(st.reported_at));
  replace(stateBox, h('dl', { class: 'fiche' },
    h('dt', { text: 'Contrôleur' }), h('dd', { text: dev.id }),
    h('dt', { text: 'Groupe' }), h('dd', { text: st.group || '—' }),
    h('dt', { text: 'Niveau commandé' }), cell('commanded_level', st.commanded_level === null || st.commanded_level === undefined ? 'selon programme' : fmt.num(st.commanded_level) + ' %'),
    h('dt', { text: 'Niveau mesuré' }), levelCell,
    h('dt', { text: 'Puissance' }), powerCell,
    h('dt', { text: 'Dernier message' }), atCell,
    info.program ? [h('dt', { text: 'Programme poussé' }), h('dd', { text: `version ${info.program.version ?? '—'} (${info.program.state || info.program.status || '—'})` })] : null));
  let frame = 0;
  let last = {};
  ctx.onLeave(live.watch(['site:' + id])); // the live feed carries this site's devices
  ctx.onLeave(live.onReadings((rs) => {
    for (const r of rs) if (r.Device === dev.id && (r.Metric === 'level_pct' || r.Metric === 'power_w')) last[r.Metric] = r;
    if (!frame && Object.keys(last).length) {
      frame = requestAnimationFrame(() => {
        frame = 0;
        if (last.level_pct) levelCell.textContent = fmt.num(last.level_pct.Value) + ' %';
        if (last.power_w) powerCell.textContent = fmt.power(last.power_w.Value);
        const t = Math.max(last.level_pct?.Time || 0, last.power_w?.Time || 0);
        atCell.textContent = fmt.dateTimeSec(t);
        for (const c of [levelCell, powerCell]) { c.classList.remove('flash'); void c.offsetWidth; c.classList.add('flash'); }
        last = {};
      });
    }
  }));
  ctx.onLeave(() => cancelAnimationFrame(frame));

  // Tonight's timeline against the sun.
  const tn = info.tonight;
  if (tn && tn.steps) {
    const from = Date.parse(tn.sunset) - 2 * 3600e3, to = Date.parse(tn.sunrise) + 2 * 3600e3;
    const pts = tn.steps.map((x) => ({ t: Date.parse(x.at), v: x.level }));
    const box = h('div', {});
    replace(timeline, h('p', {}, `Programme « ${tn.program} » — coucher du soleil ${fmt.time(tn.sunset)}, fin du crépuscule ${fmt.time(tn.dusk)}, aube ${fmt.time(tn.dawn)}, lever ${fmt.time(tn.sunrise)}.`),
      box,
      h('table', {}, h('thead', {}, h('tr', {}, h('th', { text: 'À partir de' }), h('th', { class: 'nombre', text: 'Niveau' }))),
        h('tbody', {}, tn.steps.map((x) => h('tr', {}, h('td', { text: fmt.dateTime(x.at) }), h('td', { class: 'nombre', text: fmt.num(x.level) + ' %' }))))));
    lineChart(box, {
      series: [{ label: 'Niveau programmé', points: pts }], step: true, from, to, title: 'Programme de la nuit',
      format: (v) => fmt.num(v) + ' %',
      marks: [
        { t: Date.parse(tn.sunset), label: 'coucher', cls: 'soleil' },
        { t: Date.parse(tn.sunrise), label: 'lever', cls: 'soleil' },
        { t: Date.now(), label: 'maintenant', cls: 'maintenant' },
      ],
    });
  } else {
    replace(timeline, h('p', { class: 'discret', text: 'Pas de programme pour cette nuit.' }));
  }

  // Commands.
  const loadCommands = () => api('/api/v1/lighting/commands', { params: { device: dev.id, limit: 50 } }).then((r) => {
    if (!ctx.alive()) return;
    const list = r.commands || [];
    replace(commands, list.length ? h('div', { class: 'defile' }, h('table', {},
      h('thead', {}, h('tr', {}, ['Créée le', 'Niveau', 'État', 'Origine', 'Motif'].map((x) => h('th', { text: x })))),
      h('tbody', {}, list.map((c) => h('tr', { 'data-commande': c.id },
        h('td', { text: fmt.dateTimeSec(c.created_at || c.created || c.at) }),
        h('td', { class: 'nombre', text: c.level !== undefined ? fmt.num(c.level) + ' %' : '—' }),
        h('td', { text: COMMAND_STATES[c.state] || c.state || '—' }),
        h('td', { text: c.override ? 'forçage ' + c.override : c.source || c.by || '—' }),
        h('td', { text: c.reason || '—' }))))))
      : h('p', { class: 'discret', text: 'Aucune commande.' }));
  }).catch((e) => replace(commands, errorBox(e)));
  loadCommands();

  // Override form (staff only).
  if (staff) {
    const level = h('input', { id: 'niveau-forcage', type: 'number', min: 0, max: 100, step: 5, value: 100, required: true });
    const dur = h('select', { id: 'duree-forcage' }, [['0.5', '30 minutes'], ['1', '1 heure'], ['2', '2 heures'], ['4', '4 heures'], ['12', '12 heures']].map(([v, l]) => h('option', { value: v, text: l })));
    const scope = h('select', { id: 'cible-forcage' },
      h('option', { value: 'device', text: 'Cette armoire' }),
      st.group ? h('option', { value: 'group', text: `Tout le groupe « ${st.group} »` }) : null);
    const reason = h('input', { id: 'motif-forcage', required: true, placeholder: 'manifestation, intervention…' });
    const msg = h('div', { 'aria-live': 'polite' });
    const btn = h('button', { type: 'submit', class: 'bouton', text: 'Forcer le niveau' });
    const form = h('form', {},
      h('div', { class: 'ligne' },
        h('div', { class: 'champ' }, h('label', { for: 'niveau-forcage', text: 'Niveau (%)' }), level),
        h('div', { class: 'champ' }, h('label', { for: 'duree-forcage', text: 'Durée' }), dur),
        h('div', { class: 'champ' }, h('label', { for: 'cible-forcage', text: 'Cible' }), scope)),
      h('div', { class: 'champ' }, h('label', { for: 'motif-forcage', text: 'Motif' }), reason),
      btn, msg);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      btn.disabled = true;
      const body = { level: +level.value, until: new Date(Date.now() + +dur.value * 3600e3).toISOString(), reason: reason.value.trim() };
      if (scope.value === 'group') body.group = st.group; else body.device = dev.id;
      try {
        await api('/api/v1/lighting/overrides', { method: 'POST', body });
        replace(msg, h('p', { class: 'succes', role: 'status', text: `Forçage à ${fmt.num(body.level)} % jusqu’à ${fmt.time(body.until)} envoyé.` }));
        loadCommands();
      } catch (err) {
        replace(msg, errorBox(err));
      } finally {
        btn.disabled = false;
      }
    });
    replace(overrideBox, form);
  } else {
    replace(overrideBox, h('p', { class: 'discret', text: 'Le forçage est réservé aux techniciens du syndicat.' }));
  }

  api('/api/v1/alerts', { params: { site: id, limit: 20 } }).then((r) => {
    if (!ctx.alive()) return;
    const list = r.alerts || [];
    replace(alerts, list.length ? h('table', {}, h('thead', {}, h('tr', {}, ['Gravité', 'État', 'Alerte', 'Depuis'].map((x) => h('th', { text: x })))),
      h('tbody', {}, list.map((a) => alertRow(a, { compact: true })))) : h('p', { class: 'discret', text: 'Aucune alerte.' }));
  }).catch((e) => replace(alerts, errorBox(e)));
}
