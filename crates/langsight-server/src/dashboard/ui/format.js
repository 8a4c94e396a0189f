// Formatting of figures and times, the same everywhere.
export const fmtMs = (ms) => ms == null ? '—' : ms < 2000 ? `${Math.round(ms)} ms` : ms < 120000 ? `${(ms / 1000).toFixed(1)} s` : `${(ms / 60000).toFixed(1)} min`;
export const fmtUsd = (v) => v == null ? '—' : Number(v) !== 0 && Math.abs(v) < 0.01 ? `$${Number(v).toFixed(4)}` : `$${Number(v).toFixed(2)}`;
export const fmtNum = (v) => v == null ? '—' : Number(v).toLocaleString('en-US');
export const fmtPct = (v, digits = 1) => v == null || Number.isNaN(Number(v)) ? '—' : `${Number(v).toFixed(digits)} %`;
// A session count from the API's counts (capped at the newest 10,000 of a window): the cap reads "≥ 10,000".
export const COUNT_CAP = 10000;
export const fmtCount = (n) => n == null ? '—' : n >= COUNT_CAP ? `≥ ${fmtNum(COUNT_CAP)}` : fmtNum(n);
// A figure counted from a list capped at its limit: "≥ n" when the list was cut, since the true figure may be higher.
export const compact = (v) => v == null ? '—' : Math.abs(v) >= 1e6 ? `${(v / 1e6).toFixed(1)}M` : Math.abs(v) >= 1e4 ? `${(v / 1e3).toFixed(1)}k` : fmtNum(Math.round(v * 100) / 100);
export const parseTime = (t) => t ? Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(String(t)) ? String(t).replace(' ', 'T') : `${String(t).replace(' ', 'T')}Z`) : NaN;
export const when = (t) => { const ms = parseTime(t); return Number.isNaN(ms) ? '—' : new Date(ms).toLocaleString(); };
export function ago(t) {
  const ms = parseTime(t); if (Number.isNaN(ms)) return '—';
  const s = Math.max(0, (Date.now() - ms) / 1000);
  return s < 60 ? `${Math.round(s)} s ago` : s < 3600 ? `${Math.round(s / 60)} min ago` : s < 86400 ? `${Math.round(s / 3600)} h ago` : `${Math.round(s / 86400)} d ago`;
}
export const tokens = (i, o) => (i == null && o == null) ? '—' : `${fmtNum(i || 0)} in / ${fmtNum(o || 0)} out`;

// The time ranges every analytics page offers (the API's `hours`, 1..720).
export const RANGES = [[1, '1 h'], [6, '6 h'], [24, '24 h'], [168, '7 d'], [720, '30 d']];
export const rangeLabel = (hours) => (RANGES.find(([hh]) => hh === Number(hours)) || [0, `${hours} h`])[1];
