// Comparison for EPCI pilots (#/comparaison): buildings ranked by kWh/m²/year per fluid and usage,
// climate-corrected, year over year, the gap to the décret tertiaire trajectory when the server reports it, and
// the table as a CSV download.
import { api } from './api.js';
import * as data from './data.js';
import * as fmt from './fmt.js';
import { h, replace, errorBox } from './dom.js';

const STATUS = {
  on_track: 'sur la trajectoire', above: 'au-dessus de la trajectoire',
  no_reference: 'référence non déclarée', no_data: 'données insuffisantes',
};

export async function render(main, _args, ctx) {
  const [territory, sites] = await Promise.all([data.territory(), data.sites()]);
  const thisYear = fmt.parisParts(Date.now()).y;
  const year = h('select', { id: 'annee' }, [1, 2, 3].map((d) => h('option', { value: thisYear - d, text: String(thisYear - d) })),
    h('option', { value: thisYear, text: `${thisYear} (en cours)` }));
  const scoped = ctx.user.epcis && ctx.user.epcis.length;
  const epci = h('select', { id: 'epci-comparaison' },
    scoped ? null : h('option', { value: '', text: 'Tout le département' }),
    territory.epci.filter((e) => !scoped || ctx.user.epcis.includes(e.code)).map((e) => h('option', { value: e.code, text: e.nom })));
  const fluid = h('select', { id: 'fluide' }, h('option', { value: '', text: 'Toutes énergies (kWh)' }),
    ['electricity', 'gas', 'heat', 'water'].map((f) => h('option', { value: f, text: fmt.FLUIDS[f] })));
  const usages = [...new Set(sites.list.filter((s) => s.kind === 'building' && s.usage).map((s) => s.usage))].sort((a, b) => a.localeCompare(b, 'fr'));
  const usage = h('select', { id: 'usage' }, h('option', { value: '', text: 'Tous' }), usages.map((u) => h('option', { value: u, text: u })));
  const perM2 = h('input', { id: 'par-m2', type: 'checkbox', checked: true });
  const climate = h('input', { id: 'climat', type: 'checkbox', checked: true });
  const exportBtn = h('button', { type: 'button', class: 'bouton secondaire', text: 'Exporter en CSV', disabled: true });
  const result = h('div', {});
  const note = h('p', { class: 'discret', 'aria-live': 'polite' });
  main.append(h('h1', { text: 'Comparaison des bâtiments' }),
    h('form', { class: 'panneau ligne', 'aria-label': 'Critères de comparaison' },
      h('div', { class: 'champ' }, h('label', { for: 'epci-comparaison', text: 'EPCI' }), epci),
      h('div', { class: 'champ' }, h('label', { for: 'annee', text: 'Année' }), year),
      h('div', { class: 'champ' }, h('label', { for: 'fluide', text: 'Fluide' }), fluid),
      h('div', { class: 'champ' }, h('label', { for: 'usage', text: 'Usage' }), usage),
      h('label', { class: 'case' }, perM2, 'Par m²'),
      h('label', { class: 'case' }, climate, 'Corrigé du climat (chauffage)'),
      exportBtn),
    note, result);

  let table = null;
  let seq = 0;
  async function load() {
    const my = ++seq;
    replace(result, h('p', { class: 'chargement', text: 'Chargement…' }));
    const y = +year.value;
    const params = (yy) => ({ year: yy, epci: epci.value, fluid: fluid.value, usage: usage.value, per: perM2.checked ? 'm2' : undefined, climate: climate.checked || undefined });
    let cur, prev, tert = null;
    try {
      [cur, prev, tert] = await Promise.all([
        api('/api/v1/consumption/ranking', { params: params(y) }),
        api('/api/v1/consumption/ranking', { params: params(y - 1) }).catch(() => null),
        api('/api/v1/tertiaire', { params: { epci: epci.value } }).catch(() => null),
      ]);
    } catch (e) {
      if (my === seq) replace(result, errorBox(e));
      return;
    }
    if (my !== seq || !ctx.alive()) return;
    const prevBy = new Map(((prev && prev.rows) || []).map((r) => [r.site, r]));
    const tertBy = tert && Array.isArray(tert.sites) ? new Map(tert.sites.map((x) => [x.site, x])) : null;
    const unit = cur.unit ? cur.unit.replace('m2', 'm²').replace('m3', 'm³') : perM2.checked ? 'kWh/m²' : 'kWh';
    const cols = [
      ['Rang', (r) => r.rank, true],
      ['Bâtiment', (r) => r.name, false],
      ['Usage', (r) => r.usage || '', false],
      ['Commune', (r) => territory.communeByCode.get(r.commune)?.nom || r.commune, false],
      ['Surface (m²)', (r) => r.surface_m2, true],
      [`Total (${fluid.value === 'water' ? 'm³' : fluid.value === 'gas' ? 'm³' : 'kWh'})`, (r) => r.total, true],
      [`${y} (${unit})`, (r) => r.value, true],
      [`Corrigé climat (${unit})`, (r) => r.corrected, true],
      [`${y - 1} (${unit})`, (r) => prevBy.get(r.site)?.value, true],
      ['Évolution', (r) => { const p = prevBy.get(r.site)?.value; return p ? (r.value - p) / p : undefined; }, true, 'pct'],
    ];
    if (tertBy) {
      cols.push(['Écart à la trajectoire tertiaire', (r) => tertBy.get(r.site)?.latest?.gap_pct, true, 'gap']);
      cols.push(['Statut tertiaire', (r) => { const t = tertBy.get(r.site); return t ? STATUS[t.status] || t.status : ''; }, false]);
    }
    const rows = cur.rows || [];
    const show = (c, v) => {
      if (v === undefined || v === null || v === '') return '—';
      if (c[3] === 'pct') return fmt.pct(v);
      if (c[3] === 'gap') return (v > 0 ? '+' : '') + fmt.num(v, 1) + ' %';
      return typeof v === 'number' ? fmt.smart(v) : v;
    };
    table = { cols, rows, year: y };
    note.textContent = `${fmt.num(rows.length)} bâtiment(s), ${y}${climate.checked ? ', chauffage corrigé du climat' : ''}.` +
      (tertBy ? '' : ' Trajectoire du décret tertiaire indisponible.');
    exportBtn.disabled = !rows.length;
    replace(result, rows.length ? h('div', { class: 'defile' }, h('table', { id: 'classement' },
      h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col', class: c[2] ? 'nombre' : undefined, text: c[0] })))),
      h('tbody', {}, rows.map((r) => h('tr', { 'data-site': r.site }, cols.map((c, i) => {
        const v = c[1](r);
        if (i === 1) return h('td', {}, h('a', { href: '#/site/' + encodeURIComponent(r.site), text: v }));
        return h('td', { class: c[2] ? 'nombre' : undefined, text: show(c, v) });
      }))))))
      : h('p', { text: 'Aucun bâtiment pour ces critères.' }));
  }

  exportBtn.addEventListener('click', () => {
    if (!table) return;
    const dec = new Intl.NumberFormat('fr-FR', { useGrouping: false, maximumFractionDigits: 3 });
    const esc = (v) => {
      if (v === undefined || v === null) return '';
      const s = typeof v === 'number' ? dec.format(v) : String(v);
      return /[";\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
    };
    const lines = [table.cols.map((c) => esc(c[0])).join(';')];
    for (const r of table.rows) lines.push(table.cols.map((c) => esc(c[1](r))).join(';'));
    const blob = new Blob(['\ufeff' + lines.join('\r\n') + '\r\n'], { type: 'text/csv;charset=utf-8' });
    const a = h('a', { href: URL.createObjectURL(blob), download: `comparaison-${epci.value || 'aisne'}-${table.year}.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  });
  for (const el of [epci, year, fluid, usage, perM2, climate]) el.addEventListener('change', load);
  await load();
}
