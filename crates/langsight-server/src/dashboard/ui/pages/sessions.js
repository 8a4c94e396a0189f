// Sessions: which agent runs happened, which failed, and what did they cost? Everything goes to the API
// (range, agent, health, failed / clean, search, sort, page), so a page is one request of 25 rows however many
// sessions the range holds; the counts come with it (`counts=true`). The state stays in the address.
import { h, fill, badge, enc, sessionLink } from '../dom.js';
import { request, query, setQuery, every } from '../api.js';
import { fmtMs, fmtUsd, fmtNum, compact, when, rangeLabel } from '../format.js';
import { table } from '../table.js';
import { rangePicker, hoursFrom } from './overview.js';

const TAGS = ['', 'success', 'success_with_fallback', 'tool_failure', 'timeout', 'loop_detected', 'budget_exceeded', 'circuit_breaker_open', 'schema_drift', 'incomplete'];
// The API's rule (`outcome=failed`): any health tag but success.
const failedRow = (r) => Boolean(r.health_tag && r.health_tag !== 'success');
const PAGE = 25;
// Table column → the API's `sort` key (columns without one are not sortable: they live in the rollup only,
// or, like cost, are priced when read).
const SORTS = { session_id: 'session', agent_name: 'agent', health_tag: 'health', tokens: 'tokens', duration_ms: 'duration', first_call_at: 'started', last_call_at: 'ended' };
const COLUMN = Object.fromEntries(Object.entries(SORTS).map(([k, v]) => [v, k]));

export default async function sessions(main) {
  const q = query();
  const hours = hoursFrom(24), agent = q.get('agent') || '', tag = q.get('health') || '', outcome = q.get('outcome') || '';
  const sortParam = SORTS[COLUMN[q.get('sort')]] ? q.get('sort') : 'started';
  const ui = { search: q.get('q') || '', sort: sortParam, asc: q.get('order') === 'asc', page: Math.max(0, Number(q.get('page')) || 0) };
  const filters = `hours=${hours}${agent ? `&agent_name=${enc(agent)}` : ''}${tag ? `&health_tag=${enc(tag)}` : ''}`;
  const agentIn = h('input', { id: 'f-agent', value: agent, placeholder: 'any agent', list: 'agent-names' });
  const searchIn = h('input', { type: 'search', class: 'search', id: 'session-search', value: ui.search, placeholder: 'search session id or agent…', 'aria-label': 'search session id or agent' });
  const auto = h('input', { type: 'checkbox', id: 'auto-refresh', checked: localStorage.getItem('ls.sessions.auto') === '1' });
  const stamp = h('span', { class: 'dim small', id: 'refreshed' });
  const summary = h('div', { id: 'session-counts' });
  const holder = h('div');
  const pager = h('div', { class: 'pager', id: 'sessions-pager' });
  const names = h('datalist', { id: 'agent-names' });
  let rows = [], total = 0, failed = 0, seq = 0;

  // The address follows the view without re-rendering the page (the search box keeps its focus).
  function remember() {
    const next = query();
    for (const [k, v] of Object.entries({ q: ui.search, sort: ui.sort === 'started' ? '' : ui.sort, order: ui.asc ? 'asc' : '', page: ui.page ? String(ui.page) : '' })) {
      if (v) next.set(k, v); else next.delete(k);
    }
    const hash = `${location.hash.split('?')[0]}${next.toString() ? `?${next}` : ''}`;
    if (hash !== location.hash) history.replaceState(null, '', hash);
  }

  async function load() {
    const mine = ++seq;
    const url = `/api/agents/sessions?${filters}&limit=${PAGE}&offset=${ui.page * PAGE}&counts=true`
      + `${outcome ? `&outcome=${enc(outcome)}` : ''}${ui.search.trim() ? `&q=${enc(ui.search.trim())}` : ''}`
      + `${ui.sort !== 'started' ? `&sort=${ui.sort}` : ''}${ui.asc ? '&order=asc' : ''}`;
    const r = await request('GET', url);
    if (mine !== seq) return; // a newer request (typing) answered first
    rows = r.data || [];
    total = Number(r.headers.get('x-total-count')) || 0;
    failed = Number(r.headers.get('x-failed-count')) || 0;
    draw();
  }

  function go(change) { Object.assign(ui, change); remember(); load().catch(() => { /* keep what is shown */ }); }

  function draw() {
    const shownTotal = outcome === 'failed' ? failed : outcome === 'clean' ? total - failed : total;
    const pages = Math.max(1, Math.ceil(shownTotal / PAGE));
    fill(summary, h('div', { class: 'counts' },
      h('a', { href: '#', class: outcome === '' ? 'on' : '', onclick: (e) => { e.preventDefault(); setQuery({ outcome: '', page: '' }); } }, h('b', {}, fmtNum(total)), ' sessions'),
      h('a', { href: '#', class: `bad ${outcome === 'failed' ? 'on' : ''}`, id: 'count-failed', onclick: (e) => { e.preventDefault(); setQuery({ outcome: 'failed', page: '' }); } }, h('b', {}, fmtNum(failed)), ' failed'),
      h('a', { href: '#', class: `ok ${outcome === 'clean' ? 'on' : ''}`, id: 'count-clean', onclick: (e) => { e.preventDefault(); setQuery({ outcome: 'clean', page: '' }); } }, h('b', {}, fmtNum(total - failed)), ' clean'),
      total >= 10000 ? h('span', { class: 'dim small' }, 'counting the newest 10,000: narrow the range or filter by agent') : null));
    fill(holder, table({ id: 'sessions', rows, serverSort: true, sortKey: COLUMN[ui.sort], desc: !ui.asc,
      onSort: (k, d) => go({ sort: SORTS[k], asc: !d, page: 0 }),
      rowAttrs: (r) => ({ 'data-session': r.session_id, class: failedRow(r) ? 'failed' : null }), emptyText: 'No sessions match.',
      columns: [
        { key: 'session_id', label: 'Session', render: (r) => sessionLink(r.session_id) },
        { key: 'agent_name', label: 'Agent', render: (r) => r.agent_name ? h('a', { href: `#/agents/${enc(r.agent_name)}` }, r.agent_name) : '—' },
        { key: 'health_tag', label: 'Health', render: (r) => badge(r.health_tag) },
        { key: 'tool_calls', label: 'Calls', num: true, sortable: false }, { key: 'failed_calls', label: 'Failed', num: true, sortable: false },
        { key: 'tokens', label: 'Tokens', num: true,
          render: (r) => r.total_input_tokens == null && r.total_output_tokens == null ? '—' : h('span', { title: `${fmtNum(r.total_input_tokens || 0)} in / ${fmtNum(r.total_output_tokens || 0)} out` }, compact((r.total_input_tokens || 0) + (r.total_output_tokens || 0))) },
        { key: 'model_id', label: 'Model', cls: 'mono small', sortable: false },
        { key: 'servers_used', label: 'Servers', sortable: false, render: (r) => h('span', { class: 'tags' }, (r.servers_used || []).map((sv) => h('a', { class: 'tag', href: `#/servers/${enc(sv)}` }, sv)), r.servers_dropped ? ` +${r.servers_dropped}` : '') },
        { key: 'duration_ms', label: 'Duration', num: true, render: (r) => fmtMs(r.duration_ms) },
        { key: 'est_cost_usd', label: 'Cost', num: true, sortable: false, render: (r) => fmtUsd(r.est_cost_usd) },
        { key: 'first_call_at', label: 'Started', render: (r) => when(r.first_call_at) }] }));
    fill(pager,
      h('span', { class: 'dim small count' }, `${fmtNum(shownTotal)} session${shownTotal === 1 ? '' : 's'}`),
      pages > 1 ? [
        h('button', { class: 'secondary small view', disabled: ui.page === 0, onclick: () => go({ page: ui.page - 1 }) }, '← Prev'),
        h('span', { class: 'small page-no' }, `page ${ui.page + 1} of ${pages}`),
        h('button', { class: 'secondary small view next', disabled: ui.page >= pages - 1, onclick: () => go({ page: ui.page + 1 }) }, 'Next →')] : null);
    const known = new Set([...names.children].map((o) => o.value));
    for (const n of rows.map((r) => r.agent_name).filter(Boolean)) if (!known.has(n)) { known.add(n); names.append(h('option', { value: n })); }
    stamp.textContent = `updated ${new Date().toLocaleTimeString()}`;
  }

  let typing = null;
  searchIn.addEventListener('input', () => { clearTimeout(typing); typing = setTimeout(() => go({ search: searchIn.value, page: 0 }), 250); });
  await load();
  fill(main, h('div', { class: 'page-head' }, h('h1', {}, `Sessions · last ${rangeLabel(hours)}`), rangePicker(hours)),
    h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); setQuery({ agent: agentIn.value, health: e.target.health.value, page: '' }); } },
      h('label', { for: 'f-agent' }, 'Agent', agentIn), names,
      h('label', {}, 'Health', h('select', { name: 'health' }, TAGS.map((t) => h('option', { value: t, selected: t === tag }, t || 'any')))),
      h('button', { type: 'submit' }, 'Apply'),
      h('label', { class: 'inline', for: 'auto-refresh' }, auto, ' Auto-refresh (10 s)'), stamp),
    summary, h('div', { class: 'filters' }, searchIn), holder, pager);
  const refresh = async () => { if (!auto.checked || document.hidden || document.activeElement === searchIn) return; try { await load(); } catch (_) { /* keep what is shown */ } };
  auto.addEventListener('change', () => { localStorage.setItem('ls.sessions.auto', auto.checked ? '1' : '0'); refresh(); });
  every(10000, refresh);
}
