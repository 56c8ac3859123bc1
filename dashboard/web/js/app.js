// The single-page application: session, header, hash routing (#/carte, #/site/<id>, #/armoire/<id>, #/alertes,
// #/comparaison) and the live-feed indicator.
import { me, logout } from './api.js';
import * as live from './live.js';
import * as data from './data.js';
import { ROLES } from './fmt.js';
import { h, replace, errorBox } from './dom.js';

const routes = {
  carte: () => import('./page-carte.js'),
  site: () => import('./page-site.js'),
  armoire: () => import('./page-armoire.js'),
  alertes: () => import('./page-alertes.js'),
  comparaison: () => import('./page-comparaison.js'),
};

const state = { user: null, leave: null, seq: 0 };
const main = document.getElementById('contenu');
const header = document.getElementById('entete');

function parseHash() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  return { page: parts[0] || 'carte', args: parts.slice(1) };
}

async function showLogin() {
  leavePage();
  live.stop();
  data.reset();
  state.user = null;
  header.hidden = true;
  const { render } = await import('./page-login.js');
  render(main, (user) => {
    state.user = user;
    enter();
  });
}

function leavePage() {
  if (state.leave) {
    try { state.leave(); } catch (e) { console.error(e); }
    state.leave = null;
  }
}

function enter() {
  header.hidden = false;
  document.getElementById('qui').textContent = `${state.user.name} · ${ROLES[state.user.role] || state.user.role}`;
  live.start();
  route();
}

async function route() {
  if (!state.user) return;
  const { page, args } = parseHash();
  const load = routes[page];
  leavePage();
  const seq = ++state.seq;
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === page) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!load) {
    replace(main, h('h1', { text: 'Page introuvable' }), h('p', {}, h('a', { href: '#/carte', text: 'Retour à la carte' })));
    return;
  }
  replace(main, h('p', { class: 'chargement', text: 'Chargement…' }));
  try {
    const mod = await load();
    if (seq !== state.seq) return;
    const disposers = [];
    const ctx = { user: state.user, onLeave: (f) => disposers.push(f), alive: () => seq === state.seq };
    state.leave = () => disposers.forEach((f) => f());
    main.replaceChildren();
    await mod.render(main, args, ctx);
  } catch (e) {
    if (seq === state.seq) replace(main, errorBox(e));
  }
}

async function boot() {
  live.onStatus((up) => {
    const el = document.getElementById('direct');
    el.textContent = up ? 'Direct' : 'Hors ligne';
    el.classList.toggle('actif', up);
  });
  document.getElementById('deconnexion').addEventListener('click', async () => {
    try { await logout(); } catch { /* the session is gone either way */ }
    location.hash = '#/carte';
    showLogin();
  });
  window.addEventListener('hv:unauthorized', () => { if (state.user) showLogin(); });
  window.addEventListener('hashchange', () => {
    route();
    main.focus({ preventScroll: true });
  });
  try {
    state.user = await me();
  } catch (e) {
    replace(main, errorBox(e));
    return;
  }
  if (state.user) enter();
  else showLogin();
}

boot();
