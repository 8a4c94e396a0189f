// Sessions: which agent runs happened, which failed, and what did they cost? Filters go to the API (range,
// agent, health); search, sorting and paging work on the fetched rows (up to 1,000, newest first).
import { h, fill, badge, enc, sessionLink } from '../dom.js';
import { api, query, setQuery, every } from '../api.js';
import { fmtMs, fmtUsd, fmtNum, compact, when, rangeLabel } from '../format.js';
import { table } from '../table.js';
import { rangePicker, hoursFrom } from './overview.js';

const TAGS = ['', 'success', 'success_with_fallback', 'tool_failure', 'timeout', 'loop_detected', 'budget_exceeded', 'circuit_breaker_open', 'schema_drift', 'incomplete'];
const failedRow = (r) => r.failed_calls > 0 || (r.health_tag && !['success', 'success_with_fallback'].includes(r.health_tag));

export default async function sessions(main) {
  const q = query();
  const hours = hoursFrom(24), agent = q.get('agent') || '', tag = q.get('health') || '', outcome = q.get('outcome') || '';
  const ui = { search: q.get('q') || '', sortKey: 'first_call_at', desc: true, page: 0 };
  const url = `/api/agents/sessions?hours=${hours}&limit=1000${agent ? `&agent_name=${enc(agent)}` : ''}${tag ? `&health_tag=${enc(tag)}` : ''}`;
  let rows = await api('GET', url);
  const agentIn = h('input', { id: 'f-agent', value: agent, placeholder: 'any agent', list: 'agent-names' });
  const auto = h('input', { type: 'checkbox', id: 'auto-refresh', checked: localStorage.getItem('ls.sessions.auto') === '1' });
  const stamp = h('span', { class: 'dim small', id: 'refreshed' });
  const summary = h('div', { id: 'session-counts' });
  const holder = h('div');

  function draw() {
    const shown = outcome === 'failed' ? rows.filter(failedRow) : outcome === 'clean' ? rows.filter((r) => !failedRow(r)) : rows;
    const failed = rows.filter(failedRow).length;
    fill(summary, h('div', { class: 'counts' },
      h('a', { href: '#', class: outcome === '' ? 'on' : '', onclick: (e) => { e.preventDefault(); setQuery({ outcome: '' }); } }, h('b', {}, fmtNum(rows.length)), ' sessions'),
      h('a', { href: '#', class: `bad ${outcome === 'failed' ? 'on' : ''}`, id: 'count-failed', onclick: (e) => { e.preventDefault(); setQuery({ outcome: 'failed' }); } }, h('b', {}, fmtNum(failed)), ' failed'),
      h('a', { href: '#', class: `ok ${outcome === 'clean' ? 'on' : ''}`, id: 'count-clean', onclick: (e) => { e.preventDefault(); setQuery({ outcome: 'clean' }); } }, h('b', {}, fmtNum(rows.length - failed)), ' clean'),
      rows.length >= 1000 ? h('span', { class: 'dim small' }, 'showing the newest 1,000: narrow the range or filter by agent') : null));
    fill(holder, table({ id: 'sessions', rows: shown, search: 'search id, agent, server, model…', initialSearch: ui.search, pageSize: 25, page: ui.page,
      sortKey: ui.sortKey, desc: ui.desc, onSort: (k, d) => { ui.sortKey = k; ui.desc = d; }, onSearch: (v) => { ui.search = v; }, onPage: (p) => { ui.page = p; },
      rowAttrs: (r) => ({ 'data-session': r.session_id, class: failedRow(r) ? 'failed' : null }), emptyText: 'No sessions match.',
      columns: [
        { key: 'session_id', label: 'Session', render: (r) => sessionLink(r.session_id) },
        { key: 'agent_name', label: 'Agent', render: (r) => r.agent_name ? h('a', { href: `#/agents/${enc(r.agent_name)}` }, r.agent_name) : '—' },
        { key: 'health_tag', label: 'Health', render: (r) => badge(r.health_tag) },
        { key: 'tool_calls', label: 'Calls', num: true }, { key: 'failed_calls', label: 'Failed', num: true },
        { key: 'tokens', label: 'Tokens', num: true, sort: (r) => (r.total_input_tokens || 0) + (r.total_output_tokens || 0),
          render: (r) => r.total_input_tokens == null && r.total_output_tokens == null ? '—' : h('span', { title: `${fmtNum(r.total_input_tokens || 0)} in / ${fmtNum(r.total_output_tokens || 0)} out` }, compact((r.total_input_tokens || 0) + (r.total_output_tokens || 0))) },
        { key: 'model_id', label: 'Model', cls: 'mono small' },
        { key: 'servers_used', label: 'Servers', sort: (r) => (r.servers_used || []).join(','), render: (r) => h('span', { class: 'tags' }, (r.servers_used || []).map((sv) => h('a', { class: 'tag', href: `#/servers/${enc(sv)}` }, sv)), r.servers_dropped ? ` +${r.servers_dropped}` : '') },
        { key: 'duration_ms', label: 'Duration', num: true, render: (r) => fmtMs(r.duration_ms) },
        { key: 'est_cost_usd', label: 'Cost', num: true, render: (r) => fmtUsd(r.est_cost_usd) },
        { key: 'first_call_at', label: 'Started', render: (r) => when(r.first_call_at) }] }));
    stamp.textContent = `updated ${new Date().toLocaleTimeString()}`;
  }

  const names = [...new Set(rows.map((r) => r.agent_name).filter(Boolean))].sort();
  fill(main, h('div', { class: 'page-head' }, h('h1', {}, `Sessions · last ${rangeLabel(hours)}`), rangePicker(hours)),
    h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); setQuery({ agent: agentIn.value, health: e.target.health.value }); } },
      h('label', { for: 'f-agent' }, 'Agent', agentIn), h('datalist', { id: 'agent-names' }, names.map((n) => h('option', { value: n }))),
      h('label', {}, 'Health', h('select', { name: 'health' }, TAGS.map((t) => h('option', { value: t, selected: t === tag }, t || 'any')))),
      h('button', { type: 'submit' }, 'Apply'),
      h('label', { class: 'inline', for: 'auto-refresh' }, auto, ' Auto-refresh (10 s)'), stamp),
    summary, holder);
  draw();
  const refresh = async () => { if (!auto.checked || document.hidden || (holder.contains(document.activeElement) && document.activeElement.matches('input'))) return; try { rows = await api('GET', url); draw(); } catch (_) { /* keep what is shown */ } };
  auto.addEventListener('change', () => { localStorage.setItem('ls.sessions.auto', auto.checked ? '1' : '0'); refresh(); });
  every(10000, refresh);
}
