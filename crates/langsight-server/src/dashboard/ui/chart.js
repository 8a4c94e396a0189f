// Time-series charts: SVG for the plot (stretched to the card's width, strokes kept at 2 px by
// vector-effect), HTML for everything with text — axis labels and the hover tooltip — so text is never
// distorted. A null value is a gap, not a zero: the line breaks there and a red band marks the point (a down
// server has no latency).
import { h, s, fill } from './dom.js';
import { parseTime } from './format.js';

const W = 300, H = 100, TOP = 6;

// chart({ title, points, series: [{ key, label, fmt }], at: 'bucket', gapLabel })
export function chart({ title, points, series, at, gapLabel = 'without a value', stacked = false }) {
  const n = points.length;
  const val = (p, k) => (p[k] === null || p[k] === undefined ? null : Number(p[k]) || 0);
  const all = series.flatMap((sr) => points.map((p) => val(p, sr.key))).filter((v) => v !== null);
  const max = niceMax(Math.max(0, ...all));
  const step = n > 1 ? W / (n - 1) : W;
  const x = (i) => (n > 1 ? i * step : W / 2);
  const y = (v) => H - 1 - (v / max) * (H - 1 - TOP);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': `${title} over time` });
  for (const f of [0.5, 1]) svg.append(s('line', { class: 'grid', x1: 0, x2: W, y1: y(max * f), y2: y(max * f), 'vector-effect': 'non-scaling-stroke' }));
  series.forEach((sr, si) => {
    const runs = []; let run = null;
    points.forEach((p, i) => { const v = val(p, sr.key); if (v === null) { run = null; return; } if (!run) runs.push(run = []); run.push([x(i), y(v)]); });
    for (let r of runs) {
      if (r.length === 1) r = [[Math.max(0, r[0][0] - step / 4), r[0][1]], [Math.min(W, r[0][0] + step / 4), r[0][1]]];
      const pts = r.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(' ');
      if (si === 0 && !stacked) svg.append(s('polygon', { class: `area s${si}`, points: `${r[0][0].toFixed(1)},${H} ${pts} ${r[r.length - 1][0].toFixed(1)},${H}` }));
      svg.append(s('polyline', { class: `line s${si}`, points: pts, 'vector-effect': 'non-scaling-stroke' }));
    }
  });
  let gaps = 0;
  points.forEach((p, i) => {
    if (val(p, series[0].key) !== null) return;
    const bw = Math.max(2, Math.min(step * 0.5, 8)), left = Math.min(W - bw, Math.max(0, x(i) - bw / 2));
    const mark = s('rect', { class: 'down', x: left.toFixed(1), y: 0, width: bw.toFixed(1), height: H });
    const tip = s('title'); tip.textContent = `${gapLabel}${at ? ` · ${short(p[at])}` : ''}`; mark.append(tip);
    svg.append(mark); gaps++;
  });
  svg.append(s('line', { class: 'base', x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5, 'vector-effect': 'non-scaling-stroke' }));

  // Axes in HTML: the y scale at 0, half and the top; three time labels.
  const fmt = series[0].fmt || String;
  const yaxis = h('div', { class: 'yaxis' }, [max, max / 2, 0].map((v) => h('span', {}, fmt(v))));
  const xaxis = n && at ? h('div', { class: 'xaxis' }, h('span', {}, short(points[0][at])), n > 2 ? h('span', {}, short(points[Math.floor(n / 2)][at])) : null, n > 1 ? h('span', {}, short(points[n - 1][at])) : null) : null;
  const cursor = h('div', { class: 'cursor', hidden: true });
  const tip = h('div', { class: 'tip', hidden: true, role: 'status' });
  const plot = h('div', { class: 'plot', tabindex: n ? 0 : null, 'aria-label': `${title}: hover, or focus and use the arrow keys, to read values` }, svg, cursor, tip);
  let at_i = n - 1;
  // Hover (or arrow keys when focused): the nearest point's time and every series' value.
  const show = (i) => {
    at_i = i; const p = points[i];
    const px = n > 1 ? i / (n - 1) : 0.5;
    cursor.hidden = false; cursor.style.left = `${(px * 100).toFixed(2)}%`;
    fill(tip, h('div', { class: 'when' }, at ? full(p[at]) : `#${i + 1}`),
      series.map((sr, si) => { const v = val(p, sr.key); return h('div', {}, h('span', { class: `key s${si}` }), `${sr.label || title}: `, h('b', {}, v === null ? gapLabel : (sr.fmt || String)(v))); }));
    tip.hidden = false;
    tip.style.left = px > 0.6 ? '' : `${(px * 100).toFixed(2)}%`;
    tip.style.right = px > 0.6 ? `${((1 - px) * 100).toFixed(2)}%` : '';
  };
  plot.addEventListener('mousemove', (e) => {
    if (!n) return;
    const box = plot.getBoundingClientRect();
    const frac = Math.min(1, Math.max(0, (e.clientX - box.left) / box.width));
    show(n > 1 ? Math.round(frac * (n - 1)) : 0);
  });
  plot.addEventListener('keydown', (e) => {
    if (!n || !['ArrowLeft', 'ArrowRight', 'Home', 'End'].includes(e.key)) return;
    e.preventDefault();
    show(e.key === 'Home' ? 0 : e.key === 'End' ? n - 1 : Math.min(n - 1, Math.max(0, at_i + (e.key === 'ArrowLeft' ? -1 : 1))));
  });
  plot.addEventListener('focus', () => { if (n) show(at_i); });
  const hide = () => { cursor.hidden = true; tip.hidden = true; };
  plot.addEventListener('mouseleave', hide);
  plot.addEventListener('blur', hide);

  const last = [...points].reverse().find((p) => val(p, series[0].key) !== null);
  const peak = all.length ? Math.max(...all) : 0;
  return h('div', { class: 'chart' },
    h('div', { class: 'k' }, h('span', {}, title), h('span', { class: 'dim' }, n ? ` · peak ${fmt(peak)}${last ? ` · last ${fmt(val(last, series[0].key))}` : ''}` : '')),
    series.length > 1 ? h('div', { class: 'legend' }, series.map((sr, si) => h('span', {}, h('span', { class: `key s${si}` }), sr.label))) : null,
    h('div', { class: 'frame' }, yaxis, plot), xaxis,
    gaps ? h('div', { class: 'small gap-key' }, h('span', { class: 'swatch' }), `${gaps} of ${n} ${gapLabel}`) : null,
    n ? null : h('div', { class: 'dim small' }, 'no data in this range'));
}

// A round top for the y scale: 1, 2 or 5 × 10^k at or above the peak.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((m) => m >= v);
}
const short = (t) => { const ms = parseTime(t); if (Number.isNaN(ms)) return String(t || ''); const d = new Date(ms); return `${d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' })} ${d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })}`; };
const full = (t) => { const ms = parseTime(t); return Number.isNaN(ms) ? String(t || '') : new Date(ms).toLocaleString(); };

// A horizontal bar for a share of a whole, inside a table cell.
export const shareBar = (frac, cls) => { const b = h('span', { class: `share ${cls || ''}` }); b.style.width = `${Math.max(0, Math.min(100, frac * 100)).toFixed(1)}%`; return h('span', { class: 'sharebox' }, b); };
