// What the browser scripts check on the map page.

/** sitesPlaced waits until every site of the caller's scope (but weather stations) is on the map, as a
 * marker or counted in a cluster; it returns how many there are. */
export async function sitesPlaced(page, timeout) {
  const sites = await page.evaluate(async () => (await (await fetch('/api/v1/sites')).json()).sites.filter((s) => s.kind !== 'weather_station').length);
  await page.waitForFunction((want) => {
    let n = 0;
    for (const m of document.querySelectorAll('.marqueur')) n += m.dataset.site ? 1 : +m.dataset.count;
    return n === want;
  }, sites, { timeout });
  return sites;
}
