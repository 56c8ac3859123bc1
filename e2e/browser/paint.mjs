// The map's first paint with the whole fleet, for BenchmarkMapFirstPaint (e2e/browser_test.go): logs in,
// loads #/carte HV_LOADS times and prints one line a load.
import { chromium } from 'playwright-core';
import { sitesPlaced } from './map.mjs';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const base = env('HV_BASE_URL');
const browser = await chromium.launch({ executablePath: env('HV_CHROMIUM'), args: ['--headless', '--no-sandbox', '--disable-gpu'] });
try {
  const page = await (await browser.newContext({ viewport: { width: 1400, height: 900 } })).newPage();
  const login = await page.request.post(base + '/api/v1/session', {
    data: { username: env('HV_ADMIN_USER'), password: env('HV_ADMIN_PASSWORD') },
    headers: { Origin: base },
  });
  if (!login.ok()) throw new Error(`login: HTTP ${login.status()}`);
  for (let i = 0; i < Number(env('HV_LOADS')); i++) {
    if (i === 0) await page.goto(base + '/#/carte'); else await page.reload();
    await page.waitForFunction(() => performance.getEntriesByName('carte-peinte').length > 0, null, { timeout: 60000 });
    const paint = await page.evaluate(() => performance.getEntriesByName('carte-peinte')[0].startTime);
    const sites = await sitesPlaced(page, 60000);
    const placed = await page.evaluate(() => performance.now());
    await page.waitForFunction(() => document.querySelectorAll('.carte path.commune[class*=" c"]').length > 0, null, { timeout: 60000 });
    const coloured = await page.evaluate(() => performance.now());
    console.log(`load ${i}: first paint ${Math.round(paint)} ms, ${sites} sites placed at ${Math.round(placed)} ms, choropleth at ${Math.round(coloured)} ms`);
  }
} finally {
  await browser.close();
}
