// MCP servers: which servers are up, which are failing, and how much are they used? Latest check, circuit,
// uptime over the recent checks, and calls from agents over 7 days; search and status filters.
import { h, fill, badge, enc } from '../dom.js';
import { api, maybe, isAdmin, query, setQuery, state } from '../api.js';
import { fmtMs, fmtNum, fmtPct, ago } from '../format.js';
import { table } from '../table.js';

// Uptime: the share of the last checks (up to 100) that were not down.
export const uptime = (history) => { const known = history.filter((r) => r.status && r.status !== 'unknown'); return known.length ? known.filter((r) => r.status !== 'down').length / known.length * 100 : null; };

export default async function servers(main) {
  // Calls over 7 days read the window's tool-call spans (seconds at a million spans): the list is drawn
  // from the checks at once and the calls column fills in when they arrive.
  const invocations = maybe('/api/health/servers/invocations?hours=168', null);
  const rows = await api('GET', '/api/health/servers');
  const histories = await Promise.all(rows.slice(0, 50).map((r) => maybe(`/api/health/servers/${enc(r.server_name)}/history?limit=100`, [])));
  const up = new Map(rows.map((r, i) => [r.server_name, histories[i] ? uptime(histories[i]) : null]));
  let use = null; // server name → its calls, once they arrive
  const pending = new Map(); // server name → the calls cells drawn before that
  const callsText = (name) => { const c = use && use.get(name); return !c || c.total_calls == null ? '—' : `${fmtNum(c.total_calls)}${c.success_rate_pct != null ? ` · ${fmtPct(c.success_rate_pct, 0)} ok` : ''}`; };
  const callsCell = (r) => {
    if (use) return callsText(r.server_name);
    const cell = h('span', { class: 'dim calls-pending' }, '…');
    pending.set(r.server_name, [...(pending.get(r.server_name) || []), cell]);
    return cell;
  };
  invocations.then((calls) => {
    use = new Map((calls || []).map((c) => [c.server_name, c]));
    for (const [name, cells] of pending) for (const cell of cells) { cell.className = ''; cell.textContent = calls ? callsText(name) : 'not available'; }
    pending.clear();
  });
  const filter = query().get('status') || '';
  const list = rows.map((r) => ({ ...r, uptime: up.get(r.server_name) }))
    .filter((r) => !filter || r.status === filter);
  const counts = ['up', 'degraded', 'down', 'unknown'].map((s) => [s, rows.filter((r) => r.status === s).length]);
  const check = isAdmin() ? h('button', { id: 'check-now', onclick: async (e) => { e.target.disabled = true; try { await api('POST', '/api/health/check'); } finally { state.rerender(); } } }, 'Check now') : null;
  fill(main, h('div', { class: 'page-head' }, h('h1', {}, 'MCP servers'), check),
    h('div', { class: 'counts', id: 'status-filter' }, h('a', { href: '#', class: filter ? '' : 'on', onclick: (e) => { e.preventDefault(); setQuery({ status: '' }); } }, h('b', {}, fmtNum(rows.length)), ' all'),
      counts.map(([s, n]) => h('a', { href: '#', class: `${s === 'up' ? 'ok' : s === 'down' ? 'bad' : s === 'degraded' ? 'warn' : ''} ${filter === s ? 'on' : ''}`, 'data-status': s, onclick: (e) => { e.preventDefault(); setQuery({ status: s }); } }, h('b', {}, fmtNum(n)), ` ${s}`))),
    table({ id: 'servers', rows: list, search: 'search servers…', sortKey: 'server_name', desc: false, rowAttrs: (r) => ({ 'data-server': r.server_name }),
      emptyText: rows.length ? 'No server matches.' : 'No MCP servers yet: add them to .langsight.yaml or register them under Projects.',
      columns: [
        { key: 'server_name', label: 'Server', render: (r) => h('a', { href: `#/servers/${enc(r.server_name)}` }, r.server_name) },
        { key: 'status', label: 'Status', render: (r) => badge(r.status) },
        { key: 'circuit_state', label: 'Circuit', cls: 'circuit', render: (r) => badge(r.circuit_state || 'closed') },
        { key: 'latency_ms', label: 'Latency', num: true, render: (r) => fmtMs(r.latency_ms) },
        { key: 'uptime', label: 'Uptime', num: true, render: (r) => h('span', { class: r.uptime != null && r.uptime < 99 ? 'warn-text' : null }, fmtPct(r.uptime)) },
        { key: 'calls', label: 'Calls (7 d)', num: true, cls: 'calls', sort: (r) => (use && use.get(r.server_name) ? use.get(r.server_name).total_calls ?? null : null), render: callsCell },
        { key: 'tools_count', label: 'Tools', num: true },
        { key: 'checked_at', label: 'Checked', render: (r) => ago(r.checked_at) },
        { key: 'error', label: 'Error', cls: 'dim', render: (r) => r.error || '' }] }));
}
