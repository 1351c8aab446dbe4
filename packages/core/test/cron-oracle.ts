/**
 * An independent reference for Tickwork's cron maths, for tests only: it shares no code with
 * `src/schedule.ts` and uses no cron engine. It walks real instants one step at a time (a minute,
 * or a second for 6-field expressions), reads each on the zone's wall clock with
 * `Intl.DateTimeFormat`, matches the fields itself, and applies the documented DST rules
 * (docs/scheduling.md, "Time zones and DST"):
 * - a wall-clock time that does not exist is never read off any instant, so it is skipped;
 * - when the hour field is `*` or a step, every real instant that matches fires;
 * - otherwise a wall-clock time fires once, the first time it is read.
 * Slow by design (thousands of formatter calls per day walked): keep windows short.
 */

const NICKNAMES: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};
const MONTH_NAMES = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const DAY_NAMES = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

/** The numbers a plain field part names: `*`, `n`, `a-b`, `*\/k`, `a-b/k`. */
function plainValues(part: string, min: number, max: number): number[] {
  const [range, stepText] = part.split('/') as [string, string | undefined];
  const step = stepText === undefined ? 1 : Number(stepText);
  let from = min;
  let to = max;
  if (range !== '*' && range !== '?') {
    const [a, b] = range.split('-');
    from = Number(a);
    to = b === undefined ? (stepText === undefined ? from : max) : Number(b);
  }
  const out: number[] = [];
  for (let v = from; v <= to; v += step) out.push(v);
  return out;
}

function withNames(text: string, names: string[], first: number): string {
  return names.reduce((t, name, i) => t.replace(new RegExp(name, 'gi'), String(i + first)), text);
}

const daysIn = (y: number, m: number) => new Date(Date.UTC(y, m, 0)).getUTCDate();
const weekdayOf = (y: number, m: number, d: number) => new Date(Date.UTC(y, m - 1, d)).getUTCDay();

function nearestWeekday(y: number, m: number, n: number): number | undefined {
  const last = daysIn(y, m);
  if (n > last) return undefined;
  const wd = weekdayOf(y, m, n);
  if (wd === 6) return n > 1 ? n - 1 : n + 2;
  if (wd === 0) return n < last ? n + 1 : n - 2;
  return n;
}

function domPartMatches(part: string, y: number, m: number, d: number): boolean {
  const last = daysIn(y, m);
  if (part === 'L') return d === last;
  if (part === 'LW') {
    let lw = last;
    while (weekdayOf(y, m, lw) === 0 || weekdayOf(y, m, lw) === 6) lw--;
    return d === lw;
  }
  if (part.endsWith('W')) return nearestWeekday(y, m, Number(part.slice(0, -1))) === d;
  return plainValues(part, 1, 31).includes(d);
}

function dowPartMatches(part: string, y: number, m: number, d: number): boolean {
  const wd = weekdayOf(y, m, d);
  const day = (text: string) => Number(text) % 7;
  const lastOfItsKind = d + 7 > daysIn(y, m);
  if (/^\d#L$/.test(part) || /^\dL$/.test(part)) return wd === day(part[0]!) && lastOfItsKind;
  if (/^\d#\d$/.test(part)) return wd === day(part[0]!) && Math.ceil(d / 7) === Number(part[2]);
  return plainValues(part, 0, 7).some((v) => v % 7 === wd);
}

interface Wall {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function wallOf(ms: number, timeZone: string): Wall {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-GB', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  const w: Record<string, number> = {};
  for (const p of f.formatToParts(ms)) if (p.type !== 'literal') w[p.type] = Number(p.value);
  return w as unknown as Wall;
}

/** Whether a wall-clock reading matches every field (day of month and day of week by OR when both are restricted). */
export function wallMatches(expression: string, wall: Wall): boolean {
  const expanded = NICKNAMES[expression.toLowerCase()] ?? expression;
  const fields = expanded.split(' ');
  const [sec, min, hour, dom, month, dow] = (fields.length === 6 ? fields : ['0', ...fields]) as string[] as [
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  const inField = (text: string, value: number, lo: number, hi: number) =>
    text.split(',').some((part) => plainValues(part, lo, hi).includes(value));
  if (!inField(sec, wall.second, 0, 59) || !inField(min, wall.minute, 0, 59) || !inField(hour, wall.hour, 0, 23)) {
    return false;
  }
  if (!inField(withNames(month, MONTH_NAMES, 1), wall.month, 1, 12)) return false;
  const domFree = dom === '*' || dom === '?';
  const dowText = withNames(dow, DAY_NAMES, 0);
  const dowFree = dow === '*' || dow === '?';
  const domHit = dom.split(',').some((p) => domPartMatches(p, wall.year, wall.month, wall.day));
  const dowHit = dowText.split(',').some((p) => dowPartMatches(p, wall.year, wall.month, wall.day));
  if (domFree && dowFree) return true;
  if (domFree) return dowHit;
  if (dowFree) return domHit;
  return domHit || dowHit;
}

/** Every instant in `(afterMs, untilMs]` the expression fires at in the zone, by the documented rules. */
export function oracleOccurrences(expression: string, timeZone: string, afterMs: number, untilMs: number): number[] {
  const expanded = NICKNAMES[expression.toLowerCase()] ?? expression;
  const fields = expanded.split(' ');
  const step = fields.length === 6 ? 1_000 : 60_000;
  const hour = fields[fields.length - 4]!;
  const everyRealInstant = hour === '*' || hour.includes('/');
  const seen = new Set<string>();
  const out: number[] = [];
  // Start early enough to have read any wall time a repeated hour shows twice.
  for (let t = Math.floor((afterMs - 3 * 3_600_000) / step) * step; t <= untilMs; t += step) {
    const wall = wallOf(t, timeZone);
    if (!wallMatches(expanded, wall)) continue;
    const key = `${wall.year}-${wall.month}-${wall.day} ${wall.hour}:${wall.minute}:${wall.second}`;
    const first = !seen.has(key);
    seen.add(key);
    if ((everyRealInstant || first) && t > afterMs) out.push(t);
  }
  return out;
}

/** The instants (to the minute) at which the zone's UTC offset changes in `[fromMs, toMs)`. */
export function offsetChanges(timeZone: string, fromMs: number, toMs: number): number[] {
  const offset = (t: number) => {
    const w = wallOf(t, timeZone);
    return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second) - Math.floor(t / 1000) * 1000;
  };
  const changes: number[] = [];
  const day = 86_400_000;
  for (let t = fromMs; t < toMs; t += day) {
    if (offset(t) === offset(t + day)) continue;
    let lo = t;
    let hi = t + day;
    while (hi - lo > 60_000) {
      const mid = lo + Math.floor((hi - lo) / 120_000) * 60_000;
      if (offset(mid) === offset(lo)) lo = mid;
      else hi = mid;
    }
    changes.push(hi);
  }
  return changes;
}
