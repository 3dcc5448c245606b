// Money is integer micro-USD everywhere; shown exactly, as dollars.

const MICROS = 1_000_000;

function group(n) {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/// 2000 -> "$0.002", 5000000 -> "$5.00", 1234567 -> "$1.234567".
export function usd(micros) {
  const sign = micros < 0 ? '-' : '';
  const m = Math.abs(micros);
  const whole = Math.floor(m / MICROS);
  let frac = String(m % MICROS).padStart(6, '0').replace(/0+$/, '');
  if (frac.length < 2) frac = frac.padEnd(2, '0');
  return `${sign}$${group(whole)}.${frac}`;
}

/// Dollars as an input field shows them: 3500000 -> "3.5", 0 -> "0".
export function dollars(micros) {
  const whole = Math.floor(micros / MICROS);
  const frac = String(micros % MICROS).padStart(6, '0').replace(/0+$/, '');
  return frac ? `${whole}.${frac}` : String(whole);
}

export function count(n) {
  return group(n);
}

export function percent(part, whole) {
  if (!whole) return '0%';
  return `${((100 * part) / whole).toFixed(1)}%`;
}

function pad(n) {
  return String(n).padStart(2, '0');
}

/// Local date and time, to the minute: "2025-03-10 14:00".
export function when(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/// A short label for a bucket on the time axis.
export function tick(ms, bucket) {
  const d = new Date(ms);
  return bucket === 'hour' ? `${pad(d.getHours())}:00` : `${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/// "+05:30" from minutes east of UTC.
export function offset(min) {
  const a = Math.abs(min);
  return `UTC${min < 0 ? '-' : '+'}${pad(Math.floor(a / 60))}:${pad(a % 60)}`;
}
