// Time-series charts in SVG: lines (or steps) per series, time and value axes in French formats, vertical
// marks (now, sunset…), shaded bands, a threshold, and drag-to-zoom that hands the chosen range back.
import { h, s } from './dom.js';
import * as fmt from './fmt.js';

const M = { l: 64, r: 14, t: 12, b: 28 };

function niceStep(span, n) {
  const raw = span / n;
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

const TIME_STEPS = [60e3, 300e3, 900e3, 1800e3, 3600e3, 3 * 3600e3, 6 * 3600e3, 12 * 3600e3, 86400e3, 2 * 86400e3, 7 * 86400e3, 14 * 86400e3, 30 * 86400e3, 91 * 86400e3];

/**
 * lineChart draws into container and returns the SVG element.
 * o: {series: [{label, points: [{t, v}]}], format(v), from, to, step, marks: [{t, label, cls}],
 *     bands: [{from, to, cls, label}], threshold, onZoom(from, to), title}
 */
export function lineChart(container, o) {
  const W = Math.max(320, container.clientWidth || 700);
  const H = 280;
  let tmin = o.from ?? Infinity, tmax = o.to ?? -Infinity, vmin = 0, vmax = -Infinity;
  for (const se of o.series) {
    for (const p of se.points) {
      if (o.from === undefined) tmin = Math.min(tmin, p.t);
      if (o.to === undefined) tmax = Math.max(tmax, p.t);
      vmin = Math.min(vmin, p.v);
      vmax = Math.max(vmax, p.v);
    }
  }
  if (o.threshold !== undefined) vmax = Math.max(vmax, o.threshold);
  if (!Number.isFinite(vmax)) vmax = 1;
  if (vmax === vmin) vmax = vmin + 1;
  if (!Number.isFinite(tmin) || !Number.isFinite(tmax) || tmin === tmax) {
    tmax = Date.now(); tmin = tmax - 86400e3;
  }
  const ystep = niceStep(vmax - vmin, 5);
  vmax = Math.ceil(vmax / ystep) * ystep;
  vmin = Math.floor(vmin / ystep) * ystep;
  const x = (t) => M.l + ((t - tmin) / (tmax - tmin)) * (W - M.l - M.r);
  const y = (v) => H - M.b - ((v - vmin) / (vmax - vmin)) * (H - M.t - M.b);
  const tinv = (px) => tmin + ((px - M.l) / (W - M.l - M.r)) * (tmax - tmin);

  const g = [];
  const grid = s('g', { class: 'grille' });
  const axes = s('g', { class: 'axe' });
  for (let v = vmin; v <= vmax + ystep / 2; v += ystep) {
    grid.append(s('line', { x1: M.l, x2: W - M.r, y1: y(v), y2: y(v) }));
    axes.append(s('text', { x: M.l - 6, y: y(v) + 4, 'text-anchor': 'end', text: o.format ? o.format(v) : fmt.smart(v) }));
  }
  const span = tmax - tmin;
  const tstep = TIME_STEPS.find((st) => span / st <= 8) || 182 * 86400e3;
  // Ticks on Paris wall-clock boundaries for steps of a day or more.
  const offset = (t) => { const p = fmt.parisParts(t); return (p.hh * 60 + p.mm) * 60e3; };
  let t0 = Math.ceil(tmin / tstep) * tstep;
  if (tstep >= 86400e3) t0 = t0 - offset(t0) + (offset(t0) > 12 * 3600e3 ? 86400e3 : 0);
  for (let t = t0; t <= tmax; t += tstep) {
    if (t < tmin) continue;
    grid.append(s('line', { x1: x(t), x2: x(t), y1: M.t, y2: H - M.b }));
    const label = tstep >= 86400e3 ? fmt.dayMonth(t) : span > 86400e3 ? `${fmt.dayMonth(t)} ${fmt.time(t)}` : fmt.time(t);
    axes.append(s('text', { x: x(t), y: H - 8, 'text-anchor': 'middle', text: label }));
  }
  axes.append(s('line', { x1: M.l, x2: W - M.r, y1: H - M.b, y2: H - M.b }));
  g.push(grid);
  for (const b of o.bands || []) {
    const x1 = x(Math.max(tmin, b.from)), x2 = x(Math.min(tmax, b.to));
    if (x2 > x1) g.push(s('rect', { class: b.cls || 'preuve', x: x1, y: M.t, width: x2 - x1, height: H - M.t - M.b }, b.label ? s('title', { text: b.label }) : null));
  }
  g.push(axes);
  if (o.threshold !== undefined) g.push(s('line', { class: 'seuil', x1: M.l, x2: W - M.r, y1: y(o.threshold), y2: y(o.threshold) }));
  o.series.forEach((se, i) => {
    let d = '';
    let prev = null;
    for (const p of se.points) {
      const px = x(p.t).toFixed(1), py = y(p.v).toFixed(1);
      if (!prev) d += `M${px} ${py}`;
      else if (o.step) d += `H${px}V${py}`;
      else d += `L${px} ${py}`;
      prev = p;
    }
    if (o.step && prev) d += `H${x(tmax).toFixed(1)}`;
    g.push(s('path', { class: `courbe serie-${(i % 7) + 1}`, d }, s('title', { text: se.label })));
  });
  for (const m of o.marks || []) {
    if (m.t < tmin || m.t > tmax) continue;
    g.push(s('line', { class: m.cls || 'maintenant', x1: x(m.t), x2: x(m.t), y1: M.t, y2: H - M.b }));
    g.push(s('text', { x: x(m.t) + 3, y: M.t + 10, text: m.label }));
  }
  const sel = s('rect', { class: 'zone-selection', y: M.t, height: H - M.t - M.b, width: 0, visibility: 'hidden' });
  g.push(sel);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': o.title || 'Graphique' }, g);
  if (o.onZoom) {
    let start = null;
    const px = (e) => {
      const r = svg.getBoundingClientRect();
      return ((e.clientX - r.left) / r.width) * W;
    };
    svg.addEventListener('pointerdown', (e) => { start = px(e); svg.setPointerCapture(e.pointerId); });
    svg.addEventListener('pointermove', (e) => {
      if (start === null) return;
      const a = Math.min(start, px(e)), b = Math.max(start, px(e));
      sel.setAttribute('x', a); sel.setAttribute('width', b - a); sel.setAttribute('visibility', 'visible');
    });
    svg.addEventListener('pointerup', (e) => {
      if (start === null) return;
      const a = Math.max(M.l, Math.min(start, px(e))), b = Math.min(W - M.r, Math.max(start, px(e)));
      start = null;
      sel.setAttribute('visibility', 'hidden');
      if (b - a > 8) o.onZoom(Math.round(tinv(a)), Math.round(tinv(b)));
    });
  }
  const legend = o.series.length > 1 || o.legend
    ? h('div', { class: 'legende' }, o.series.map((se, i) => h('span', {}, h('i', { class: `pastille serie-${(i % 7) + 1}` }), se.label)))
    : null;
  container.replaceChildren(h('div', { class: 'graphe' }, svg, legend));
  return svg;
}

/** tableOf gives a chart's data as an accessible table (hidden behind a details element). */
export function dataTable(series, format) {
  const rows = [];
  for (const se of series) for (const p of se.points) rows.push([se.label, p.t, p.v]);
  rows.sort((a, b) => a[1] - b[1]);
  return h('details', {}, h('summary', { text: 'Voir les données du graphique' }),
    h('div', { class: 'defile' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', { text: 'Série' }), h('th', { text: 'Date' }), h('th', { class: 'nombre', text: 'Valeur' }))),
      h('tbody', {}, rows.slice(-500).map(([l, t, v]) => h('tr', {}, h('td', { text: l }), h('td', { text: fmt.dateTime(t) }), h('td', { class: 'nombre', text: format ? format(v) : fmt.smart(v) })))))));
}

/** everyFor picks a window giving a few hundred points over a range. */
export function everyFor(ms) {
  const steps = [['1m', 60e3], ['5m', 300e3], ['15m', 900e3], ['1h', 3600e3], ['6h', 21600e3], ['24h', 86400e3]];
  for (const [e, st] of steps) if (ms / st <= 400) return e;
  return '24h';
}
