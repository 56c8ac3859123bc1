// French formatting of numbers, quantities and dates, always in the Europe/Paris time zone.

export const TZ = 'Europe/Paris';
const nfCache = new Map();

function nf(digits, min = 0) {
  const key = digits + ':' + min;
  let f = nfCache.get(key);
  if (!f) {
    f = new Intl.NumberFormat('fr-FR', { maximumFractionDigits: digits, minimumFractionDigits: min });
    nfCache.set(key, f);
  }
  return f;
}

/** num formats a number with at most d decimals ("—" when absent). */
export function num(v, d = 0) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  return nf(d).format(v);
}

/** smart picks decimals by magnitude. */
export function smart(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  const a = Math.abs(v);
  return num(v, a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3);
}

/** power formats watts as W, kW or MW. */
export function power(w) {
  if (w === null || w === undefined || Number.isNaN(w)) return '—';
  const a = Math.abs(w);
  if (a >= 1e6) return smart(w / 1e6) + ' MW';
  if (a >= 1e3) return smart(w / 1e3) + ' kW';
  return smart(w) + ' W';
}

/** energy formats kWh as kWh, MWh or GWh. */
export function energy(kwh) {
  if (kwh === null || kwh === undefined || Number.isNaN(kwh)) return '—';
  const a = Math.abs(kwh);
  if (a >= 1e6) return smart(kwh / 1e6) + ' GWh';
  if (a >= 1e4) return smart(kwh / 1e3) + ' MWh';
  return smart(kwh) + ' kWh';
}

/** pct formats a ratio (0.12 → "+12 %"). */
export function pct(r, signed = true) {
  if (r === null || r === undefined || !Number.isFinite(r)) return '—';
  const f = new Intl.NumberFormat('fr-FR', { style: 'percent', maximumFractionDigits: 1, signDisplay: signed ? 'exceptZero' : 'auto' });
  return f.format(r);
}

const dtf = {
  dateTime: new Intl.DateTimeFormat('fr-FR', { timeZone: TZ, dateStyle: 'short', timeStyle: 'short' }),
  dateTimeSec: new Intl.DateTimeFormat('fr-FR', { timeZone: TZ, dateStyle: 'short', timeStyle: 'medium' }),
  date: new Intl.DateTimeFormat('fr-FR', { timeZone: TZ, dateStyle: 'medium' }),
  dayMonth: new Intl.DateTimeFormat('fr-FR', { timeZone: TZ, day: 'numeric', month: 'short' }),
  month: new Intl.DateTimeFormat('fr-FR', { timeZone: TZ, month: 'short', year: 'numeric' }),
  time: new Intl.DateTimeFormat('fr-FR', { timeZone: TZ, hour: '2-digit', minute: '2-digit' }),
  parts: new Intl.DateTimeFormat('fr-FR', { timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }),
};

const toDate = (t) => (t instanceof Date ? t : new Date(t));
const ok = (t) => t !== null && t !== undefined && t !== '' && !Number.isNaN(toDate(t).getTime());

export const dateTime = (t) => (ok(t) ? dtf.dateTime.format(toDate(t)) : '—');
export const dateTimeSec = (t) => (ok(t) ? dtf.dateTimeSec.format(toDate(t)) : '—');
export const date = (t) => (ok(t) ? dtf.date.format(toDate(t)) : '—');
export const dayMonth = (t) => (ok(t) ? dtf.dayMonth.format(toDate(t)) : '—');
export const month = (t) => (ok(t) ? dtf.month.format(toDate(t)) : '—');
export const time = (t) => (ok(t) ? dtf.time.format(toDate(t)) : '—');

/** parisParts returns the Paris wall-clock fields of t. */
export function parisParts(t) {
  const o = {};
  for (const p of dtf.parts.formatToParts(toDate(t))) o[p.type] = p.value;
  return { y: +o.year, m: +o.month, d: +o.day, hh: +o.hour, mm: +o.minute };
}

/** parisDay returns the Paris civil date of t as YYYY-MM-DD, shifted by days. */
export function parisDay(t = Date.now(), days = 0) {
  const p = parisParts(toDate(t).getTime() + days * 86400e3);
  return `${p.y}-${String(p.m).padStart(2, '0')}-${String(p.d).padStart(2, '0')}`;
}

/** ago says how long ago t was, in French. */
export function ago(t) {
  if (!ok(t)) return '—';
  const s = Math.round((Date.now() - toDate(t).getTime()) / 1000);
  const rtf = new Intl.RelativeTimeFormat('fr-FR', { numeric: 'auto' });
  const a = Math.abs(s);
  if (a < 60) return rtf.format(-s, 'second');
  if (a < 3600) return rtf.format(-Math.round(s / 60), 'minute');
  if (a < 86400) return rtf.format(-Math.round(s / 3600), 'hour');
  return rtf.format(-Math.round(s / 86400), 'day');
}

export const FLUIDS = { electricity: 'Électricité', gas: 'Gaz', water: 'Eau', heat: 'Chaleur', weather: 'Météo' };
export const FLUID_UNITS = { electricity: 'kWh', gas: 'm³', water: 'm³', heat: 'kWh' };
export const SEVERITY = { critical: 'Critique', warning: 'Avertissement', info: 'Information' };
export const STATES = { pending: 'En attente', firing: 'Active', resolved: 'Résolue' };
export const KINDS = { building: 'Bâtiment', lighting_cabinet: "Armoire d'éclairage", weather_station: 'Station météo' };
export const DEVICE_KINDS = { meter: 'Compteur', lighting_controller: "Contrôleur d'éclairage", weather: 'Capteur météo' };
export const ROLES = { admin: 'Administrateur', technicien: 'Technicien', pilote: 'Pilote EPCI', lecteur: 'Lecteur' };

export const METRICS = {
  energy_kwh: ['Index énergie', 'kWh'],
  energy_kwh_delta: ['Énergie consommée', 'kWh'],
  power_w: ['Puissance', 'W'],
  volume_m3: ['Index volume', 'm³'],
  volume_m3_delta: ['Volume consommé', 'm³'],
  flow_m3h: ['Débit', 'm³/h'],
  heat_kwh: ['Index chaleur', 'kWh'],
  heat_kwh_delta: ['Chaleur consommée', 'kWh'],
  temperature_c: ['Température', '°C'],
  level_pct: ["Niveau d'éclairement", '%'],
  illuminance_lux: ['Éclairement', 'lx'],
  presence: ['Présence', ''],
  voltage_v: ['Tension', 'V'],
  current_a: ['Intensité', 'A'],
  power_factor: ['Facteur de puissance', ''],
  operating_hours: ['Heures de fonctionnement', 'h'],
  operating_hours_delta: ['Heures de fonctionnement (intervalle)', 'h'],
  lamp_failure: ['Défaut lampe', ''],
  door_open: ['Porte ouverte', ''],
};

/** metricLabel names a metric in French. */
export const metricLabel = (m) => (METRICS[m] ? METRICS[m][0] : m);

/** metricValue formats a value with its metric's unit. */
export function metricValue(m, v) {
  if (m === 'power_w') return power(v);
  if (m === 'presence' || m === 'lamp_failure' || m === 'door_open') return v ? 'oui' : 'non';
  const unit = METRICS[m] ? METRICS[m][1] : '';
  return smart(v) + (unit ? ' ' + unit : '');
}
