// The lineage graph: agents, hand-offs and MCP servers in columns (agents that start work, agents handed
// work, servers), edges weighted by calls and red where calls failed. Labels are SVG text set through
// textContent; the drawing keeps its aspect ratio, so text is never stretched.
import { h, s, enc } from './dom.js';
import { fmtMs, fmtNum } from './format.js';

// graph(lineage, { failuresOnly, search, zoom }) -> element
export function graph(data, opts = {}) {
  const failing = (e) => Number((e.metrics || {}).error_count || 0) > 0;
  const edges = (data.edges || []).filter((e) => !opts.failuresOnly || failing(e));
  const used = new Set(edges.flatMap((e) => [e.source, e.target]));
  const nodes = (data.nodes || []).filter((n) => !opts.failuresOnly || used.has(n.id));
  if (!nodes.length) return h('p', { class: 'dim empty' }, opts.failuresOnly ? 'No failing edges in this range.' : 'No agents or servers in this range.');
  const handedTo = new Set(edges.filter((e) => e.type === 'handoff').map((e) => e.target));
  const col = (n) => (n.type === 'server' ? 2 : handedTo.has(n.id) ? 1 : 0);
  const cols = [[], [], []];
  nodes.forEach((n) => cols[col(n)].push(n));
  cols.forEach((c) => c.sort((a, b) => String(a.label).localeCompare(String(b.label))));
  // Fewer crossings: order each column by the mean position of its neighbours (a few sweeps of the
  // barycentre heuristic), so an agent sits beside the servers it calls.
  const nbrs = new Map(nodes.map((n) => [n.id, []]));
  for (const e of edges) { if (nbrs.has(e.source) && nbrs.has(e.target)) { nbrs.get(e.source).push(e.target); nbrs.get(e.target).push(e.source); } }
  const rank = () => new Map(cols.flatMap((c) => c.map((n, i) => [n.id, i / Math.max(1, c.length - 1)])));
  for (let sweep = 0; sweep < 4; sweep++) {
    const r = rank();
    for (const c of sweep % 2 ? [...cols].reverse() : cols) {
      const bary = new Map(c.map((n) => { const ns = nbrs.get(n.id); return [n.id, ns.length ? ns.reduce((a, id) => a + r.get(id), 0) / ns.length : r.get(n.id)]; }));
      c.sort((a, b) => bary.get(a.id) - bary.get(b.id));
    }
  }
  const NW = 180, NH = 44, GX = 140, GY = 22, PAD = 20;
  const usedCols = cols.map((c, i) => (c.length ? i : -1)).filter((i) => i >= 0);
  const colX = (i) => PAD + usedCols.indexOf(i) * (NW + GX);
  const rows = Math.max(...cols.map((c) => c.length));
  const width = PAD * 2 + usedCols.length * NW + (usedCols.length - 1) * GX, height = PAD * 2 + rows * NH + (rows - 1) * GY + (usedCols.length === 3 ? (NH + GY) / 2 : 0);
  const pos = new Map();
  // With three columns the middle one sits half a row lower, so edges from agents to servers that skip it
  // run through the gaps between its nodes instead of behind them.
  const shift = usedCols.length === 3 ? (NH + GY) / 2 : 0;
  cols.forEach((c, i) => { const off = Math.floor((rows - c.length) / 2) * (NH + GY) + (i === 1 ? shift : 0); c.forEach((n, j) => pos.set(n.id, { x: colX(i), y: PAD + off + j * (NH + GY) })); });
  const maxCalls = Math.max(1, ...edges.map((e) => Number((e.metrics || {}).call_count || (e.metrics || {}).handoff_count || 0)));
  const zoom = opts.zoom || 1;
  const svg = s('svg', { class: 'lineage', viewBox: `0 0 ${width} ${height}`, width: Math.round(width * zoom), height: Math.round(height * zoom), role: 'img', 'aria-label': 'Agents, hand-offs and servers' });
  const needle = (opts.search || '').toLowerCase();
  for (const e of edges) {
    const a = pos.get(e.source), b = pos.get(e.target);
    if (!a || !b) continue;
    const m = e.metrics || {}, count = Number(m.call_count || m.handoff_count || 0);
    const x1 = a.x + NW, y1 = a.y + NH / 2, x2 = b.x, y2 = b.y + NH / 2, mx = (x1 + x2) / 2;
    const path = s('path', { class: `edge ${e.type} ${failing(e) ? 'failing' : ''}`, d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, 'stroke-width': (1 + 4 * count / maxCalls).toFixed(1), 'data-edge': `${e.source}>${e.target}` });
    const t = s('title'); t.textContent = e.type === 'handoff' ? `${fmtNum(m.handoff_count)} hand-offs in ${fmtNum(m.session_count)} sessions`
      : `${fmtNum(m.call_count)} calls · ${fmtNum(m.error_count || 0)} errors · avg ${fmtMs(m.avg_latency_ms)}`;
    path.append(t); svg.append(path);
    const label = s('text', { class: `edge-label ${failing(e) ? 'failing' : ''}`, x: mx, y: (y1 + y2) / 2 - 4, 'text-anchor': 'middle' });
    label.textContent = e.type === 'handoff' ? `hand-off ×${fmtNum(m.handoff_count)}` : `${fmtNum(m.call_count)}${m.error_count ? ` · ${fmtNum(m.error_count)} err` : ''} · ${fmtMs(m.avg_latency_ms)}`;
    svg.append(label);
  }
  for (const n of nodes) {
    const p = pos.get(n.id), m = n.metrics || {};
    const name = String(n.label || n.id.replace(/^[a-z]+:/, ''));
    const href = n.type === 'server' ? `#/servers/${enc(name)}` : `#/agents/${enc(name)}`;
    const hit = needle && name.toLowerCase().includes(needle);
    const g = s('a', { href, class: `node ${n.type} ${Number(m.error_count || 0) > 0 ? 'failing' : ''} ${hit ? 'hit' : ''} ${needle && !hit ? 'faded' : ''}`, 'data-node': n.id });
    g.append(s('rect', { x: p.x, y: p.y, width: NW, height: NH, rx: 8 }));
    const title = s('text', { x: p.x + 10, y: p.y + 18, class: 'name' }); title.textContent = `${n.type === 'server' ? '⛁ ' : '◉ '}${name.length > 22 ? `${name.slice(0, 21)}…` : name}`;
    const sub = s('text', { x: p.x + 10, y: p.y + 35, class: 'sub' }); sub.textContent = `${fmtNum(m.total_calls || 0)} calls · ${fmtNum(m.error_count || 0)} errors`;
    const tip = s('title'); tip.textContent = name;
    g.append(tip, title, sub); svg.append(g);
  }
  return h('div', { class: 'graph-box' }, svg);
}
