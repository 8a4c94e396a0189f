// Live: what is running right now? Beside the raw span stream (filter, pause), a per-session view: each
// session seen in the last hour or on the stream, running (a span in the last 30 s) or done, with its spans,
// errors and duration so far.
import { h, fill, badge, enc, sessionLink } from '../dom.js';
import { state, maybe, every } from '../api.js';
import { fmtMs, fmtNum, when, parseTime, ago } from '../format.js';

const RUNNING_MS = 30000;

export default async function live(main) {
  const list = h('tbody', { id: 'live-rows' }), filter = h('input', { id: 'live-filter', placeholder: 'filter: server, tool, agent…' });
  const status = h('span', { class: 'dim', id: 'live-status' }, 'connecting…');
  const perSession = h('tbody', { id: 'live-sessions' });
  const sessions = new Map();
  let paused = false; const held = [];
  const pause = h('button', { class: 'secondary', id: 'live-pause', onclick: () => { paused = !paused; pause.textContent = paused ? 'Resume' : 'Pause'; if (!paused) { held.splice(0).forEach(add); } } }, 'Pause');

  const track = (d) => {
    if (!d.session_id) return;
    const s = sessions.get(d.session_id) || { id: d.session_id, agent: d.agent_name, first: Infinity, last: 0, spans: 0, errors: 0, servers: new Set() };
    s.first = Math.min(s.first, parseTime(d.started_at) || Date.now());
    s.last = Math.max(s.last, parseTime(d.ended_at || d.started_at) || Date.now(), Date.now());
    s.spans++; if (d.status && d.status !== 'success') s.errors++;
    if (d.server_name) s.servers.add(d.server_name);
    if (!s.agent && d.agent_name) s.agent = d.agent_name;
    sessions.set(d.session_id, s);
  };
  const drawSessions = () => {
    const rows = [...sessions.values()].sort((a, b) => b.last - a.last).slice(0, 50);
    const running = rows.filter((s) => Date.now() - s.last < RUNNING_MS).length;
    runningCount.textContent = `${running} running · ${rows.length - running} done`;
    perSession.replaceChildren(...rows.map((s) => h('tr', { 'data-live-session': s.id },
      h('td', {}, sessionLink(s.id, true)), h('td', {}, s.agent || '—'),
      h('td', {}, Date.now() - s.last < RUNNING_MS ? badge('running', 'active') : badge('done')),
      h('td', { class: 'num' }, fmtNum(s.spans)), h('td', { class: 'num' }, s.errors ? h('span', { class: 'error' }, fmtNum(s.errors)) : '0'),
      h('td', { class: 'num' }, fmtMs(Math.max(0, s.last - s.first))), h('td', {}, [...s.servers].join(', ') || '—'), h('td', { class: 'dim' }, ago(new Date(s.last).toISOString())))));
  };
  const runningCount = h('span', { class: 'dim small', id: 'live-running' });

  const add = (d) => {
    track(d); drawSessions();
    if (paused) { held.push(d); return; }
    const text = `${d.server_name} ${d.tool_name} ${d.agent_name || ''} ${d.session_id || ''}`.toLowerCase();
    const tr = h('tr', { 'data-span': d.span_id, class: d.status !== 'success' ? 'failed' : null, hidden: Boolean(filter.value) && !text.includes(filter.value.toLowerCase()) },
      h('td', {}, when(d.started_at)), h('td', {}, `${d.server_name || ''}/${d.tool_name || ''}`), h('td', {}, d.agent_name || '—'), h('td', {}, badge(d.status)),
      h('td', { class: 'num' }, fmtMs(d.latency_ms)), h('td', { class: 'mono' }, d.session_id ? h('a', { href: `#/sessions/${enc(d.session_id)}` }, d.session_id) : '—'));
    list.prepend(tr); while (list.children.length > 300) list.lastChild.remove();
  };
  filter.addEventListener('input', () => { for (const tr of list.children) tr.hidden = filter.value && !tr.textContent.toLowerCase().includes(filter.value.toLowerCase()); });

  const url = `/api/live/events${state.project ? `?project_id=${encodeURIComponent(state.project)}` : ''}`;
  const es = new EventSource(url, { withCredentials: true });
  state.live = es;
  es.onopen = () => { status.textContent = 'live'; };
  es.onerror = () => { status.textContent = 'reconnecting…'; };
  es.addEventListener('span:new', (e) => { try { add(JSON.parse(e.data)); } catch (_) { /* malformed frame */ } });
  es.addEventListener('missed', () => { status.textContent = 'live (some events were missed while disconnected)'; });

  fill(main, h('h1', {}, 'Live'),
    h('section', {}, h('h2', {}, 'Sessions now ', runningCount),
      h('table', { id: 'live-session-table' }, h('thead', {}, h('tr', {}, ['Session', 'Agent', 'State', 'Spans', 'Errors', 'Duration', 'Servers', 'Last span'].map((c) => h('th', {}, c)))), perSession)),
    h('section', {}, h('h2', {}, 'Span stream'), h('div', { class: 'filters' }, h('label', { for: 'live-filter' }, 'Filter', filter), pause, status),
      h('div', { class: 'live' }, h('table', { id: 'live-table' }, h('thead', {}, h('tr', {}, ['Started', 'Server/tool', 'Agent', 'Status', 'Latency', 'Session'].map((c) => h('th', {}, c)))), list))));
  // The last hour's sessions, so the view is not empty before the next span arrives.
  const recent = await maybe('/api/agents/sessions?hours=1&limit=50', []);
  for (const r of recent) {
    if (sessions.has(r.session_id)) continue;
    sessions.set(r.session_id, { id: r.session_id, agent: r.agent_name, first: parseTime(r.first_call_at), last: parseTime(r.last_call_at), spans: r.tool_calls, errors: r.failed_calls, servers: new Set(r.servers_used || []) });
  }
  drawSessions();
  every(5000, drawSessions);
}
