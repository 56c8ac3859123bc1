// Browser test of the dashboard, run by e2e/browser_test.go (TestDashboardBrowserIntegration) against the
// demo service in headless Debian Chromium. Steps print "ok <step>" and figures as "figure <name> <value>";
// any failure exits 1 after a screenshot. The Go test publishes the MQTT reading when asked on stdout
// ("HV:PUBLISH <device> <value>") and answers on stdin ("HV:PUBLISHED").
//
// Environment: HV_BASE_URL, HV_ADMIN_USER, HV_ADMIN_PASSWORD, HV_PILOT_USER, HV_PILOT_PASSWORD,
// HV_PILOT_EPCI, HV_TILE_BASE and HV_TILE_ATTRIBUTION (the map's tile server), HV_SITE (a site of the admin's fleet outside the pilot's EPCI), HV_SITE_DEVICE (its
// electricity meter), HV_ALERT_RULE, HV_ALERT_DEVICE, HV_CHROMIUM, HV_ARTIFACTS.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';
import { sitesPlaced } from './map.mjs';

const env = (k, d) => {
  const v = process.env[k] ?? d;
  if (v === undefined) throw new Error(`${k} is not set`);
  return v;
};
const base = env('HV_BASE_URL');
const tileBase = env('HV_TILE_BASE');
const artifacts = env('HV_ARTIFACTS', new URL('./artifacts/', import.meta.url).pathname);
mkdirSync(artifacts, { recursive: true });

const stdin = createInterface({ input: process.stdin });
const lines = [];
let waiter = null;
stdin.on('line', (l) => { if (waiter) { const w = waiter; waiter = null; w(l); } else lines.push(l); });
const nextLine = () => (lines.length ? Promise.resolve(lines.shift()) : new Promise((r) => { waiter = r; }));

const browser = await chromium.launch({
  executablePath: env('HV_CHROMIUM', '/usr/bin/chromium'),
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run'],
});
const contextOptions = { viewport: { width: 1400, height: 900 }, locale: 'fr-FR', timezoneId: 'Europe/Paris' };
let page;
const shot = (name) => page.screenshot({ path: `${artifacts}/${name}.png`, fullPage: false });
const step = async (name, f) => {
  try {
    await f();
    console.log('ok', name);
  } catch (e) {
    console.log('FAIL', name, '\n', e && e.stack ? e.stack : e);
    if (page) await shot('echec-' + name.replace(/\W+/g, '-')).catch(() => {});
    await browser.close();
    process.exit(1);
  }
};

async function login(user, password) {
  await page.goto(base + '/#/carte');
  await page.locator('#identifiant').fill(user);
  await page.locator('#motdepasse').fill(password);
  await page.getByRole('button', { name: 'Se connecter' }).click();
  await page.locator('#qui').filter({ hasText: user }).waitFor({ timeout: 10000 });
}

// The page's own fetch, with its session cookie: what a script in the page could reach.
const fetchStatus = (path) => page.evaluate(async (p) => (await fetch(p, { credentials: 'same-origin' })).status, path);

// ——— Admin (syndicate staff) ———
const admin = await browser.newContext(contextOptions);
page = await admin.newPage();
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(e.message));
page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(m.text()); });

await step('login refused with a wrong password', async () => {
  await page.goto(base + '/');
  await page.locator('#identifiant').fill(env('HV_ADMIN_USER'));
  await page.locator('#motdepasse').fill('not-the-password');
  await page.getByRole('button', { name: 'Se connecter' }).click();
  await page.getByRole('alert').filter({ hasText: 'incorrect' }).waitFor({ timeout: 5000 });
  assert.equal(await fetchStatus('/api/v1/me'), 401);
});

await step('login', async () => {
  await login(env('HV_ADMIN_USER'), env('HV_ADMIN_PASSWORD'));
  assert.equal(await fetchStatus('/api/v1/me'), 200);
  const cookies = await admin.cookies();
  const c = cookies.find((x) => x.name === 'hv_session');
  assert.ok(c && c.httpOnly, 'hv_session cookie is HttpOnly');
  assert.equal(await page.evaluate(() => document.cookie.includes('hv_session')), false);
});

await step('map renders the 797 communes', async () => {
  await page.reload(); // a fresh navigation with the session: the paint time below then counts from it
  const svg = page.locator('.carte svg[data-communes]');
  await svg.waitFor();
  await page.waitForFunction(() => document.querySelector('.carte')?.dataset.peinte);
  const n = await page.locator('.carte path[data-commune]').count();
  assert.equal(n, 797);
  const codes = await page.locator('.carte path[data-commune]').evaluateAll((ps) => new Set(ps.map((p) => p.dataset.commune)).size);
  assert.equal(codes, 797, 'one path per commune');
  // EPCI borders drawn after the first paint.
  await page.locator('.carte path.epci').first().waitFor({ state: 'attached' });
  // Markers: every site of the scope is in a marker or a cluster.
  await page.locator('.marqueur').first().waitFor();
  const sites = await sitesPlaced(page, 10000);
  const paint = await page.evaluate(() => performance.getEntriesByName('carte-peinte')[0]?.startTime);
  assert.ok(paint > 0);
  console.log('figure map_first_paint_ms', Math.round(paint), 'sites', sites);
  // The choropleth gets values (live power) for some communes.
  await page.waitForFunction(() => document.querySelectorAll('.carte path.commune[class*=" c"]').length > 0, null, { timeout: 15000 });
  await shot('carte');
});

await step('map draws the configured tile background', async () => {
  await page.locator('.carte .attribution', { hasText: env('HV_TILE_ATTRIBUTION') }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll('.carte g.fond image').length > 0);
  const hrefs = await page.locator('.carte g.fond image').evaluateAll((is) => is.map((i) => i.getAttribute('href')));
  assert.ok(hrefs.every((u) => u.startsWith(tileBase)), 'tiles from the configured server');
});

await step('map keyboard zoom and marker focus', async () => {
  const svg = page.locator('.carte svg');
  const before = await page.locator('.carte g.monde').getAttribute('transform');
  await svg.focus();
  await page.keyboard.press('+');
  await page.waitForFunction((b) => document.querySelector('.carte g.monde').getAttribute('transform') !== b, before);
  await page.keyboard.press('0');
  await page.keyboard.press('Tab');
  const focused = await page.evaluate(() => document.activeElement?.classList.contains('marqueur'));
  assert.ok(focused, 'Tab from the map reaches a marker');
});

const site = env('HV_SITE');
const device = env('HV_SITE_DEVICE');
await step('a reading published on the broker appears on the site page within 2 s', async () => {
  await page.goto(`${base}/#/site/${site}`);
  const cell = page.locator(`td[data-device="${device}"][data-metric="power_w"]`);
  await cell.waitFor({ timeout: 15000 });
  await page.locator('#direct.actif').waitFor({ timeout: 10000 }); // the live feed is open
  const watts = 900 + Math.floor(Math.random() * 90); // shown as "9xx W"; the meter itself draws kilowatts
  console.log(`HV:PUBLISH ${device} ${watts}`);
  assert.equal(await nextLine(), 'HV:PUBLISHED');
  const t0 = Date.now();
  await page.waitForFunction(([d, text]) => document.querySelector(`td[data-device="${d}"][data-metric="power_w"]`)?.textContent === text,
    [device, `${watts} W`], { timeout: 2000 });
  console.log('figure reading_to_page_ms', Date.now() - t0);
  await page.locator('.graphe svg').first().waitFor();
  await shot('site');
});

await step('an alert raised by an injected fault appears and can be acknowledged', async () => {
  const rule = env('HV_ALERT_RULE');
  const dev = env('HV_ALERT_DEVICE');
  await page.goto(`${base}/#/alertes`);
  await page.locator('#filtre-texte').fill(dev);
  // The demo's replay leaves sites "silent" for a while, whose alert masks the meter's own ones.
  await page.locator('#filtre-masquees').check();
  const row = page.locator(`tr[data-regle="${rule}"][data-appareil="${dev}"]`).first();
  const deadline = Date.now() + 120000;
  while (!(await row.count())) {
    if (Date.now() > deadline) {
      const api = await page.evaluate(async (d) => (await (await fetch('/api/v1/alerts?device=' + d)).json()).alerts.map((a) => [a.rule, a.state, a.suppressed_by]), dev);
      throw new Error(`no ${rule} alert for ${dev} on the page within 2 min; the API has ${JSON.stringify(api)}`);
    }
    await page.waitForTimeout(1000); // the page reloads the list when the live feed reports an alert change
  }
  const id = await row.getAttribute('data-alerte');
  await row.focus();
  await page.keyboard.press('Enter'); // rows open with the keyboard
  await page.locator('#commentaire-acquittement').fill('Compteur remplacé, index repris — test navigateur');
  await page.getByRole('button', { name: 'Acquitter' }).click();
  await page.getByRole('status').filter({ hasText: 'Alerte acquittée' }).waitFor({ timeout: 5000 });
  const a = await page.evaluate(async (x) => (await fetch('/api/v1/alerts/' + x)).json(), id);
  assert.equal(a.acknowledged?.by, env('HV_ADMIN_USER'));
  assert.match(a.acknowledged?.comment, /test navigateur/);
  await page.locator(`tr[data-alerte="${id}"]`).filter({ hasText: 'acquittée' }).waitFor({ timeout: 5000 });
  await page.locator('#detail-alerte .graphe svg, #detail-alerte p').first().waitFor();
  await shot('alertes');
});

await step('cabinet and comparison pages render', async () => {
  await page.goto(`${base}/#/comparaison`);
  await page.locator('#classement tbody tr').first().waitFor({ timeout: 15000 });
  await shot('comparaison');
  const cab = await page.evaluate(async () => (await (await fetch('/api/v1/sites?kind=lighting_cabinet')).json()).sites[0]?.id);
  assert.ok(cab, 'a lighting cabinet in the fleet');
  await page.goto(`${base}/#/armoire/${cab}`);
  await page.locator('[data-etat="reported_level"]').waitFor({ timeout: 15000 });
  await shot('armoire');
});

await step('a cross-origin websocket is refused', async () => {
  // A page of another site, in the same browser as the logged-in user, must not open the feed. (The
  // SameSite=Strict cookie already stays home; the Go test checks the server's Origin check with the cookie.)
  const foreign = await admin.newPage();
  await foreign.route('http://autre-site.test/**', (r) => r.fulfill({ contentType: 'text/html', body: '<!doctype html><title>autre site</title>' }));
  await foreign.goto('http://autre-site.test/');
  const result = await foreign.evaluate((url) => new Promise((resolve) => {
    const ws = new WebSocket(url, ['hyperviseur.v1']);
    ws.onopen = () => { ws.close(); resolve('open'); };
    ws.onerror = () => resolve('refused');
    setTimeout(() => resolve('timeout'), 5000);
  }), base.replace('http', 'ws') + '/api/v1/ws');
  assert.equal(result, 'refused');
  const status = await foreign.evaluate(async (url) => {
    try { return (await fetch(url, { credentials: 'include' })).status; } catch { return 'blocked'; }
  }, base + '/api/v1/me');
  assert.notEqual(status, 200, 'another site reads /api/v1/me with the session');
  await foreign.close();
});

await step('no script error in the pages', async () => {
  assert.deepEqual(pageErrors.filter((e) => !/status of 40[134]/.test(e)), []);
});

await step('logout', async () => {
  await page.goto(base + '/#/carte');
  await page.getByRole('button', { name: 'Déconnexion' }).click();
  await page.locator('#identifiant').waitFor();
  assert.equal(await fetchStatus('/api/v1/me'), 401);
});

// ——— Pilot of another EPCI ———
const pilotCtx = await browser.newContext(contextOptions);
page = await pilotCtx.newPage();
await step('a pilote sees only its EPCI', async () => {
  await login(env('HV_PILOT_USER'), env('HV_PILOT_PASSWORD'));
  const epci = env('HV_PILOT_EPCI');
  await page.locator('.carte svg[data-communes]').waitFor();
  assert.equal(await page.locator('.carte path[data-commune]').count(), 797, 'the outlines are all drawn');
  const own = await page.evaluate(async () => (await (await fetch('/api/v1/sites')).json()).sites);
  assert.ok(own.length > 0, 'the pilote has sites');
  assert.ok(own.every((s) => s.epci === epci), 'the sites API answers only the pilote’s EPCI');
  const markers = own.filter((s) => s.kind !== 'weather_station').length;
  await page.waitForFunction((want) => {
    let n = 0;
    for (const m of document.querySelectorAll('.marqueur')) n += m.dataset.site ? 1 : +m.dataset.count;
    return n === want;
  }, markers, { timeout: 10000 });
  assert.equal(await page.locator(`.marqueur[data-site="${site}"]`).count(), 0);
  const text = await page.locator('main').innerText();
  assert.ok(!text.includes(site), 'nothing of the other EPCI on the map page');
  await shot('pilote-carte');

  await page.goto(`${base}/#/site/${site}`);
  await page.getByRole('heading', { name: 'Site introuvable' }).waitFor();
  assert.equal(await page.locator(`td[data-device="${device}"]`).count(), 0);
  await shot('pilote-site-refuse');
  await page.goto(`${base}/#/alertes`);
  await page.locator('#filtre-etat').waitFor();
  await page.waitForTimeout(1000);
  assert.equal(await page.locator(`tr[data-appareil="${device}"]`).count(), 0, 'no alert of the other EPCI');

  for (const p of [`/api/v1/devices/${device}/latest`, `/api/v1/consumption?scope=site:${site}&from=2025-01-01&to=2025-01-31`,
    `/api/v1/power/sites/${site}`, `/api/v1/alerts?site=${site}&epci=200043495`, `/api/v1/series?metric=power_w&epci=200043495`]) {
    const st = await fetchStatus(p);
    assert.ok(st === 403 || st === 404, `${p}: HTTP ${st}, want 403 or 404`);
  }
  // Lists are narrowed to the scope rather than refused.
  const devs = await page.evaluate(async (d) => (await (await fetch('/api/v1/devices')).json()).devices.filter((x) => x.id === d).length, device);
  assert.equal(devs, 0);
});

await browser.close();
console.log('ok all');
process.exit(0);
