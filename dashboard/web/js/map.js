// The map of the Aisne: commune outlines in SVG (world coordinates from an equirectangular projection scaled
// by cos(latitude), accurate to well under a pixel across the département), EPCI borders computed from the
// communes' shared edges, a choropleth, and site markers clustered on a screen grid so that the whole fleet
// stays a few hundred elements at any zoom. Zoom and pan: wheel, drag, the +/− buttons and the keyboard.
// Redraws are coalesced with requestAnimationFrame.
import { h, s } from './dom.js';

// Communes of the 2018 outlines merged since into another (see ../README.md).
const MERGED = {
  '02077': '02564', '02301': '02018', '02434': '02018', '02311': '02589',
  '02475': '02360', '02695': '02054', '02733': '02153',
};

const LON0 = 2.9;
const LAT0 = 50.12;
const KX = Math.cos((49.45 * Math.PI) / 180) * 1000;
const KY = 1000;
const CELL = 44; // px: markers closer than this on screen are clustered
const MAX_ZOOM = 60; // times the fitted scale

/** project converts WGS84 to the map's world coordinates. */
export function project(lon, lat) {
  return [(lon - LON0) * KX, (LAT0 - lat) * KY];
}

const r1 = (v) => Math.round(v * 10) / 10;

export class AisneMap {
  /**
   * @param {HTMLElement} container
   * @param {{geojson: object, territory: object, onOpen: (site: object) => void, describe: (code: string) => string}} o
   */
  constructor(container, o) {
    this.o = o;
    this.view = { k: 1, tx: 0, ty: 0 };
    this.fitK = 1;
    this.sites = [];
    this.faulty = new Set();
    this.frame = 0;
    this.build(container);
  }

  build(container) {
    const t = this.o.territory;
    const paths = new Map(); // current code → path data
    const names = new Map();
    this.polys = []; // {code, epci, rings (world coordinates), bbox} for the EPCI borders
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (const f of this.o.geojson.features) {
      const code = MERGED[f.properties.code] || f.properties.code;
      if (!MERGED[f.properties.code]) names.set(code, f.properties.nom);
      const epci = t.communeByCode.get(code)?.epci;
      const polys = f.geometry.type === 'Polygon' ? [f.geometry.coordinates] : f.geometry.coordinates;
      let d = paths.get(code) || '';
      for (const poly of polys) {
        const rings = [];
        const bb = [Infinity, Infinity, -Infinity, -Infinity];
        for (const ring of poly) {
          const pts = ring.map(([lon, lat]) => project(lon, lat));
          pts.forEach(([x, y], i) => {
            if (x < bb[0]) bb[0] = x; if (x > bb[2]) bb[2] = x;
            if (y < bb[1]) bb[1] = y; if (y > bb[3]) bb[3] = y;
            d += (i === 0 ? 'M' : 'L') + r1(x) + ' ' + r1(y);
          });
          d += 'Z';
          rings.push(pts);
        }
        minX = Math.min(minX, bb[0]); minY = Math.min(minY, bb[1]);
        maxX = Math.max(maxX, bb[2]); maxY = Math.max(maxY, bb[3]);
        this.polys.push({ code, epci, rings, bb });
      }
      paths.set(code, d);
    }
    this.bounds = { minX, minY, maxX, maxY };

    this.world = s('g', { class: 'monde' });
    this.communes = new Map();
    const frag = document.createDocumentFragment();
    for (const [code, d] of paths) {
      const c = t.communeByCode.get(code);
      const p = s('path', {
        d, class: c ? 'commune nd' : 'commune hors', 'data-commune': code,
        'data-epci': c ? c.epci : undefined, 'data-nom': c ? c.nom : names.get(code),
      });
      this.communes.set(code, p);
      frag.append(p);
    }
    this.tiles = s('g', { class: 'fond' }); // the optional raster background, under the communes
    this.world.append(this.tiles, frag);
    // The EPCI borders are computed after the first paint: they take a few tens of milliseconds.
    this.epciLayer = s('g', { class: 'epcis' });
    this.world.append(this.epciLayer);
    setTimeout(() => this.drawEpciBorders(), 0);
    this.markers = s('g', { class: 'marqueurs' });
    this.svg = s('svg', {
      role: 'group', tabindex: 0, 'data-communes': String(paths.size),
      'aria-label': "Carte de l'Aisne. Flèches : déplacer ; + et − : zoomer ; 0 : recentrer ; Tab : parcourir les sites.",
    }, this.world, this.markers);
    this.tip = h('div', { class: 'infobulle', hidden: true, 'aria-hidden': 'true' });
    const btn = (text, label, f) => h('button', { type: 'button', class: 'bouton secondaire', 'aria-label': label, title: label, text, onclick: f });
    this.el = h('div', { class: 'carte' }, this.svg, this.tip,
      h('div', { class: 'commandes' },
        btn('+', 'Zoomer', () => this.zoomBy(1.6)),
        btn('−', 'Dézoomer', () => this.zoomBy(1 / 1.6)),
        btn('⟲', 'Recentrer la carte', () => this.fit())));
    container.append(this.el);
    this.bind();
    this.resizeObs = new ResizeObserver(() => this.fit());
    this.resizeObs.observe(this.el);
  }

  // drawEpciBorders outlines each EPCI: an edge of one of its communes is on the border when, just on either
  // side of its middle, the ground is not the same EPCI. Testing points rather than matching edges copes with
  // neighbours simplified separately, whose shared borders do not have the same vertices.
  drawEpciBorders() {
    const CELLW = 20;
    const grid = new Map();
    for (const p of this.polys) {
      for (let gx = Math.floor(p.bb[0] / CELLW); gx <= Math.floor(p.bb[2] / CELLW); gx++) {
        for (let gy = Math.floor(p.bb[1] / CELLW); gy <= Math.floor(p.bb[3] / CELLW); gy++) {
          const k = gx + ',' + gy;
          if (!grid.has(k)) grid.set(k, []);
          grid.get(k).push(p);
        }
      }
    }
    const inside = (p, x, y) => {
      if (x < p.bb[0] || x > p.bb[2] || y < p.bb[1] || y > p.bb[3]) return false;
      let c = false;
      for (const r of p.rings) {
        for (let i = 0, j = r.length - 1; i < r.length; j = i++) {
          const [xi, yi] = r[i], [xj, yj] = r[j];
          if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) c = !c;
        }
      }
      return c;
    };
    const epciAt = (x, y, hint) => {
      if (inside(hint, x, y)) return hint.epci;
      for (const p of grid.get(Math.floor(x / CELLW) + ',' + Math.floor(y / CELLW)) || []) {
        if (p !== hint && inside(p, x, y)) return p.epci;
      }
      return null;
    };
    const NUDGE = 1.5; // world units (≈ 0.0015°), above the outlines' simplification tolerance
    const out = new Map();
    for (const p of this.polys) {
      if (!p.epci) continue;
      let d = out.get(p.epci) || '';
      for (const r of p.rings) {
        let open = false;
        for (let i = 1; i < r.length; i++) {
          const [ax, ay] = r[i - 1], [bx, by] = r[i];
          const len = Math.hypot(bx - ax, by - ay) || 1;
          const nx = (-(by - ay) / len) * NUDGE, ny = ((bx - ax) / len) * NUDGE;
          const mx = (ax + bx) / 2, my = (ay + by) / 2;
          const border = epciAt(mx + nx, my + ny, p) !== p.epci || epciAt(mx - nx, my - ny, p) !== p.epci;
          if (border) {
            if (!open) d += 'M' + r1(ax) + ' ' + r1(ay);
            d += 'L' + r1(bx) + ' ' + r1(by);
          }
          open = border;
        }
      }
      out.set(p.epci, d);
    }
    const frag = document.createDocumentFragment();
    for (const [epci, d] of out) frag.append(s('path', { class: 'epci', d, 'data-epci-contour': epci }));
    this.epciLayer.replaceChildren(frag);
  }

  destroy() {
    this.resizeObs.disconnect();
    cancelAnimationFrame(this.frame);
  }

  size() {
    const r = this.svg.getBoundingClientRect();
    return { w: r.width || 800, hgt: r.height || 600 };
  }

  fit() {
    const { w, hgt } = this.size();
    const b = this.bounds;
    const k = Math.min(w / (b.maxX - b.minX), hgt / (b.maxY - b.minY)) * 0.96;
    this.fitK = k;
    this.view = { k, tx: (w - (b.maxX - b.minX) * k) / 2 - b.minX * k, ty: (hgt - (b.maxY - b.minY) * k) / 2 - b.minY * k };
    this.redraw();
  }

  zoomBy(f, cx, cy) {
    const { w, hgt } = this.size();
    if (cx === undefined) { cx = w / 2; cy = hgt / 2; }
    const v = this.view;
    const k = Math.max(this.fitK * 0.8, Math.min(this.fitK * MAX_ZOOM, v.k * f));
    this.view = { k, tx: cx - ((cx - v.tx) * k) / v.k, ty: cy - ((cy - v.ty) * k) / v.k };
    this.redraw();
  }

  panBy(dx, dy) {
    this.view.tx += dx;
    this.view.ty += dy;
    this.redraw();
  }

  /** focusOn centres the view on world points (e.g. an EPCI's communes). */
  focusCodes(codes) {
    const b = { minX: Infinity, minY: Infinity, maxX: -Infinity, maxY: -Infinity };
    for (const code of codes) {
      const p = this.communes.get(code);
      if (!p) continue;
      const bb = p.getBBox();
      b.minX = Math.min(b.minX, bb.x); b.minY = Math.min(b.minY, bb.y);
      b.maxX = Math.max(b.maxX, bb.x + bb.width); b.maxY = Math.max(b.maxY, bb.y + bb.height);
    }
    if (!Number.isFinite(b.minX)) return;
    const { w, hgt } = this.size();
    const k = Math.min(w / (b.maxX - b.minX), hgt / (b.maxY - b.minY)) * 0.9;
    this.view = { k, tx: (w - (b.maxX - b.minX) * k) / 2 - b.minX * k, ty: (hgt - (b.maxY - b.minY) * k) / 2 - b.minY * k };
    this.redraw();
  }

  bind() {
    const svg = this.svg;
    svg.addEventListener('wheel', (e) => {
      e.preventDefault();
      const r = svg.getBoundingClientRect();
      this.zoomBy(Math.exp(-e.deltaY * (e.deltaMode === 1 ? 0.05 : 0.0018)), e.clientX - r.left, e.clientY - r.top);
    }, { passive: false });
    let drag = null;
    svg.addEventListener('pointerdown', (e) => {
      if (e.button !== 0) return;
      drag = { x: e.clientX, y: e.clientY, tx: this.view.tx, ty: this.view.ty, moved: false, id: e.pointerId };
    });
    svg.addEventListener('pointermove', (e) => {
      if (drag && drag.id === e.pointerId) {
        const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
        if (!drag.moved && Math.hypot(dx, dy) > 4) {
          drag.moved = true;
          svg.setPointerCapture(e.pointerId);
          svg.classList.add('glisse');
          this.tip.hidden = true;
        }
        if (drag.moved) {
          this.view.tx = drag.tx + dx;
          this.view.ty = drag.ty + dy;
          this.redraw();
          return;
        }
      }
      this.hover(e);
    });
    const end = (e) => {
      if (!drag || drag.id !== e.pointerId) return;
      if (drag.moved) {
        svg.classList.remove('glisse');
        this.dragEnd = performance.now(); // the click that ends a drag opens nothing
      }
      drag = null;
    };
    svg.addEventListener('pointerup', end);
    svg.addEventListener('pointercancel', end);
    svg.addEventListener('pointerleave', () => { this.tip.hidden = true; });
    svg.addEventListener('click', (e) => {
      if (performance.now() - (this.dragEnd || 0) > 80) this.activate(e.target);
    });
    svg.addEventListener('keydown', (e) => {
      const step = 60;
      const keys = {
        ArrowLeft: () => this.panBy(step, 0), ArrowRight: () => this.panBy(-step, 0),
        ArrowUp: () => this.panBy(0, step), ArrowDown: () => this.panBy(0, -step),
        '+': () => this.zoomBy(1.6), '=': () => this.zoomBy(1.6), '-': () => this.zoomBy(1 / 1.6),
        '0': () => this.fit(),
        Enter: () => this.activate(e.target), ' ': () => this.activate(e.target),
      };
      const f = keys[e.key];
      if (!f) return;
      if ((e.key === 'Enter' || e.key === ' ') && e.target === svg) return;
      e.preventDefault();
      f();
    });
  }

  activate(target) {
    const m = target.closest && target.closest('.marqueur');
    if (!m) return;
    if (m.dataset.site) {
      const site = this.siteById.get(m.dataset.site);
      if (site) this.o.onOpen(site);
    } else if (m.dataset.x) {
      const v = this.view;
      const sx = +m.dataset.x * v.k + v.tx, sy = +m.dataset.y * v.k + v.ty;
      this.zoomBy(3, sx, sy);
      this.refocus = m.dataset.key;
    }
  }

  hover(e) {
    const p = e.target.closest && e.target.closest('[data-commune]');
    const m = e.target.closest && e.target.closest('.marqueur');
    if (!p && !m) { this.tip.hidden = true; return; }
    const r = this.el.getBoundingClientRect();
    this.tip.textContent = m ? m.getAttribute('aria-label') : this.o.describe(p.dataset.commune, p.dataset.nom);
    this.tip.style.left = e.clientX - r.left + 'px';
    this.tip.style.top = e.clientY - r.top + 'px';
    this.tip.hidden = false;
  }

  /** setClasses colours the communes: classes maps a code to a class name (c0…c7, zero, nd). */
  setClasses(classes) {
    for (const [code, p] of this.communes) {
      if (p.classList.contains('hors')) continue;
      const c = 'commune ' + (classes.get(code) || 'nd');
      if (p.getAttribute('class') !== c) p.setAttribute('class', c);
    }
  }

  /** setSites gives the markers: [{id, name, kind, lat, lon}]. */
  setSites(list) {
    this.sites = list.filter((x) => Number.isFinite(x.lat) && Number.isFinite(x.lon)).map((x) => {
      const [wx, wy] = project(x.lon, x.lat);
      return { site: x, wx, wy };
    });
    this.siteById = new Map(list.map((x) => [x.id, x]));
    this.redraw();
  }

  setFaulty(ids) {
    this.faulty = ids;
    this.redraw();
  }

  redraw() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      const v = this.view;
      this.world.setAttribute('transform', `matrix(${v.k} 0 0 ${v.k} ${v.tx} ${v.ty})`);
      this.drawTiles();
      this.drawMarkers();
    });
  }

  /** setTiles draws a raster background under the communes: url is a Web Mercator {z}/{x}/{y} template of
   * 256 px tiles, attribution the provider's credit, shown on the map. */
  setTiles(url, attribution) {
    this.tileURL = url;
    this.tileImages = new Map(); // "z/x/y" → <image>, kept while in view
    this.el.classList.add('avec-fond');
    this.el.append(h('div', { class: 'attribution', text: attribution }));
    this.redraw();
  }

  // drawTiles places the tiles covering the view at the zoom whose tiles are about 256 px on screen. Each
  // tile is an <image> in world coordinates: its corners projected like the outlines (the Mercator stretch
  // inside one tile is a fraction of a pixel at these zooms).
  drawTiles() {
    if (!this.tileURL) return;
    const v = this.view;
    const { w, hgt } = this.size();
    const lonOf = (x) => x / KX + LON0;
    const latOf = (y) => LAT0 - y / KY;
    const west = lonOf(-v.tx / v.k), east = lonOf((w - v.tx) / v.k);
    const north = latOf(-v.ty / v.k), south = latOf((hgt - v.ty) / v.k);
    const z = Math.max(5, Math.min(18, Math.round(Math.log2((360 * KX * v.k) / 256))));
    const n = 2 ** z;
    const tx = (lon) => Math.floor(((lon + 180) / 360) * n);
    const ty = (lat) => {
      const r = (lat * Math.PI) / 180;
      return Math.floor(((1 - Math.log(Math.tan(r) + 1 / Math.cos(r)) / Math.PI) / 2) * n);
    };
    const lonAt = (x) => (x / n) * 360 - 180;
    const latAt = (y) => (Math.atan(Math.sinh(Math.PI * (1 - (2 * y) / n))) * 180) / Math.PI;
    const [x0, x1, y0, y1] = [tx(west), tx(east), ty(north), ty(south)];
    if ((x1 - x0 + 1) * (y1 - y0 + 1) > 150) return; // a view this wide is not a tile background's job
    const keep = new Map();
    for (let x = x0; x <= x1; x++) {
      for (let y = y0; y <= y1; y++) {
        const key = `${z}/${x}/${y}`;
        let img = this.tileImages.get(key);
        if (!img) {
          const [wx0, wy0] = project(lonAt(x), latAt(y));
          const [wx1, wy1] = project(lonAt(x + 1), latAt(y + 1));
          img = s('image', {
            href: this.tileURL.replace('{z}', z).replace('{x}', x).replace('{y}', y),
            x: wx0, y: wy0, width: wx1 - wx0, height: wy1 - wy0, preserveAspectRatio: 'none', 'data-tuile': key,
          });
        }
        keep.set(key, img);
      }
    }
    this.tileImages = keep;
    this.tiles.replaceChildren(...keep.values());
  }

  drawMarkers() {
    const v = this.view;
    const { w, hgt } = this.size();
    const focusKey = this.refocus || (document.activeElement && document.activeElement.closest && document.activeElement.closest('.marqueur')?.dataset.key);
    this.refocus = null;
    const cell = v.k >= this.fitK * MAX_ZOOM * 0.99 ? 0 : CELL;
    const buckets = new Map();
    for (const m of this.sites) {
      const sx = m.wx * v.k + v.tx, sy = m.wy * v.k + v.ty;
      if (sx < -CELL || sy < -CELL || sx > w + CELL || sy > hgt + CELL) continue;
      const key = cell ? Math.floor(sx / cell) + ',' + Math.floor(sy / cell) : m.site.id;
      let b = buckets.get(key);
      if (!b) buckets.set(key, (b = { n: 0, x: 0, y: 0, first: m, cabinets: 0, faulty: 0 }));
      b.n++; b.x += m.wx; b.y += m.wy;
      if (m.site.kind === 'lighting_cabinet') b.cabinets++;
      if (this.faulty.has(m.site.id)) b.faulty++;
    }
    const frag = document.createDocumentFragment();
    let focusEl = null;
    for (const [key, b] of buckets) {
      let g;
      if (b.n === 1) {
        const x = b.first.site, sx = b.first.wx * v.k + v.tx, sy = b.first.wy * v.k + v.ty;
        const cab = x.kind === 'lighting_cabinet';
        const fault = this.faulty.has(x.id);
        const kind = cab ? "armoire d'éclairage" : 'bâtiment';
        g = s('g', {
          class: 'marqueur', tabindex: 0, role: 'link', 'data-site': x.id, 'data-key': x.id,
          'aria-label': `${x.name} (${kind}${fault ? ', en alerte' : ''})`, transform: `translate(${r1(sx)} ${r1(sy)})`,
        },
        s('circle', { class: 'anneau', r: 11 }),
        cab ? s('circle', { class: 'armoire' + (fault ? ' defaut' : ''), r: 6 })
          : s('rect', { class: 'batiment' + (fault ? ' defaut' : ''), x: -6, y: -6, width: 12, height: 12 }),
        fault ? s('text', { y: 0, class: 'alerte', fill: '#fff', text: '!' }) : null);
      } else {
        const wx = b.x / b.n, wy = b.y / b.n;
        const sx = wx * v.k + v.tx, sy = wy * v.k + v.ty;
        const r = 11 + Math.min(12, Math.log2(b.n) * 2);
        const parts = [`${b.n} sites`, `dont ${b.cabinets} armoires`];
        if (b.faulty) parts.push(`${b.faulty} en alerte`);
        g = s('g', {
          class: 'marqueur', tabindex: 0, role: 'button', 'data-key': key, 'data-x': wx, 'data-y': wy,
          'data-count': b.n, 'aria-label': parts.join(', ') + ' : zoomer', transform: `translate(${r1(sx)} ${r1(sy)})`,
        },
        s('circle', { class: 'anneau', r: r + 4 }),
        s('circle', { class: 'grappe', r }),
        s('text', { text: b.n > 999 ? Math.round(b.n / 100) / 10 + 'k' : b.n }));
      }
      if (key === focusKey) focusEl = g;
      frag.append(g);
    }
    this.markers.replaceChildren(frag);
    if (focusEl) focusEl.focus({ preventScroll: true });
  }
}

/** classify splits positive values into n quantile classes; it returns the class of each code and the
 * class bounds for the legend. */
export function classify(values, n = 7) {
  const pos = [...values.values()].filter((x) => x > 0).sort((a, b) => a - b);
  const bounds = [];
  for (let i = 1; i < n; i++) bounds.push(pos[Math.floor((i * pos.length) / n)]);
  const uniq = [...new Set(bounds.filter((x) => x !== undefined))];
  const classes = new Map();
  for (const [code, x] of values) {
    if (x === null || x === undefined || Number.isNaN(x)) continue;
    if (x <= 0) { classes.set(code, 'zero'); continue; }
    let c = 0;
    while (c < uniq.length && x >= uniq[c]) c++;
    classes.set(code, 'c' + c);
  }
  return { classes, bounds: uniq, max: pos[pos.length - 1] };
}
