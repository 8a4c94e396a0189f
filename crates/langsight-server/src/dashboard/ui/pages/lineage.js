// Lineage: how do my agents hand work to each other, and which servers do they depend on? The graph of
// agents, hand-offs and MCP servers for the range, with calls, errors and latency on every edge; zoom,
// search and "failures only".
import { h, fill, enc } from '../dom.js';
import { api, query, setQuery } from '../api.js';
import { fmtMs, fmtNum, rangeLabel } from '../format.js';
import { graph } from '../graph.js';
import { table } from '../table.js';
import { rangePicker, hoursFrom } from './overview.js';

export default async function lineage(main) {
  const hours = hoursFrom(168);
  const q = query();
  const failuresOnly = q.get('failures') === '1';
  let zoom = Number(localStorage.getItem('ls.lineage.zoom') || 1);
  const data = await api('GET', `/api/agents/lineage?hours=${hours}`);
  const search = h('input', { type: 'search', id: 'lineage-search', placeholder: 'highlight agent or server…', 'aria-label': 'Highlight agent or server' });
  const box = h('div', { id: 'lineage' });
  const draw = () => fill(box, graph(data, { failuresOnly, search: search.value, zoom }));
  search.addEventListener('input', draw);
  const setZoom = (z) => { zoom = Math.max(0.4, Math.min(2.5, z)); localStorage.setItem('ls.lineage.zoom', String(zoom)); draw(); };
  const label = (id) => String(id).replace(/^[a-z]+:/, '');
  const edges = data.edges.map((e) => ({ ...e, from: label(e.source), to: label(e.target), calls: (e.metrics || {}).call_count ?? (e.metrics || {}).handoff_count ?? 0,
    errors: (e.metrics || {}).error_count ?? 0, avg: (e.metrics || {}).avg_latency_ms ?? null, sessions: (e.metrics || {}).session_count ?? null }));
  fill(main, h('div', { class: 'page-head' }, h('h1', {}, `Lineage · last ${rangeLabel(hours)}`), rangePicker(hours)),
    h('div', { class: 'filters' }, search,
      h('label', { class: 'inline' }, h('input', { type: 'checkbox', id: 'failures-only', checked: failuresOnly, onchange: (e) => setQuery({ failures: e.target.checked ? '1' : '' }) }), ' failures only'),
      h('button', { type: 'button', class: 'secondary small view', 'aria-label': 'Zoom out', onclick: () => setZoom(zoom / 1.25) }, '−'),
      h('button', { type: 'button', class: 'secondary small view', 'aria-label': 'Zoom in', onclick: () => setZoom(zoom * 1.25) }, '+'),
      h('button', { type: 'button', class: 'secondary small view', onclick: () => setZoom(1) }, 'Reset')),
    box,
    h('h2', {}, 'Edges'), table({ id: 'lineage-edges', rows: failuresOnly ? edges.filter((e) => e.errors > 0) : edges, sortKey: 'calls', emptyText: 'No edges in this range.', columns: [
      { key: 'from', label: 'From', render: (e) => h('a', { href: `#/agents/${enc(e.from)}` }, e.from) }, { key: 'type', label: 'Kind' },
      { key: 'to', label: 'To', render: (e) => h('a', { href: e.type === 'handoff' ? `#/agents/${enc(e.to)}` : `#/servers/${enc(e.to)}` }, e.to) },
      { key: 'calls', label: 'Calls / hand-offs', num: true, render: (e) => fmtNum(e.calls) }, { key: 'errors', label: 'Errors', num: true, render: (e) => e.errors ? h('span', { class: 'error' }, fmtNum(e.errors)) : '0' },
      { key: 'avg', label: 'Avg latency', num: true, render: (e) => fmtMs(e.avg) }, { key: 'sessions', label: 'Sessions', num: true }] }));
  draw();
}
