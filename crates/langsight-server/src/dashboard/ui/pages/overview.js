// Overview: how are my agents and MCP servers doing in the chosen range? Figures come from the rollup
// analytics (timeseries, models, tools, errors), so the page stays instant at millions of spans.
import { h, fill, badge, cards, enc, sessionLink, empty } from '../dom.js';
import { api, maybe, query, setQuery, sessionsWithCounts } from '../api.js';
import { fmtMs, fmtUsd, fmtNum, fmtPct, compact, RANGES, rangeLabel, ago, fmtCount } from '../format.js';
import { chart, shareBar } from '../chart.js';
import { table } from '../table.js';

export function rangePicker(hours, id = 'range') {
  return h('div', { class: 'range', id, role: 'group', 'aria-label': 'Time range' }, RANGES.map(([hh, label]) =>
    h('button', { type: 'button', class: `view ${hh === hours ? 'on' : 'secondary'}`, 'data-hours': hh, 'aria-pressed': String(hh === hours), onclick: () => setQuery({ hours: hh }) }, label)));
}

export const hoursFrom = (dflt = 24) => { const v = Number(query().get('hours') || dflt); return RANGES.some(([hh]) => hh === v) ? v : dflt; };

export default async function overview(main) {
  const hours = hoursFrom(24);
  const [ts, list, breakdown, counts, servers, models, tools, errors, trends, summary] = await Promise.all([
    api('GET', `/api/monitoring/timeseries?hours=${hours}`), sessionsWithCounts(`/api/agents/sessions?hours=${hours}&limit=8`),
    api('GET', `/api/costs/breakdown?hours=${hours}`), maybe('/api/alerts/counts', { total: 0 }), maybe('/api/health/servers', []),
    maybe(`/api/monitoring/models?hours=${hours}`, []), maybe(`/api/monitoring/tools?hours=${hours}`, []), maybe(`/api/monitoring/errors?hours=${hours}`, []),
    maybe('/api/monitoring/trends', null), api('GET', `/api/agents/summary?hours=${hours}`)]);
  const calls = ts.reduce((a, b) => a + b.tool_calls, 0), errs = ts.reduce((a, b) => a + b.errors, 0);
  const tokIn = ts.reduce((a, b) => a + b.input_tokens, 0), tokOut = ts.reduce((a, b) => a + b.output_tokens, 0);
  const p99 = Math.max(0, ...ts.map((b) => b.p99_latency_ms));
  // The Sessions card counts every session of the range (the API's counts); the agents table adds up every
  // session of the range too (`/api/agents/summary`); the list is only the latest few.
  const sessions = list.rows;
  const delta = (v) => (v == null ? null : `${v > 0 ? '▲' : v < 0 ? '▼' : '='} ${Math.abs(v).toFixed(0)} % vs previous 7 d`);

  const agents = summary.map((a) => ({ agent_name: a.agent_name || '—', sessions: a.sessions, failed: a.failed_sessions, calls: a.tool_calls,
    tokens: a.input_tokens + a.output_tokens, cost: a.est_cost_usd, last: a.last_call_at || '' }));
  const totalErrors = errors.reduce((a, b) => a + (b.count || 0), 0);

  fill(main,
    h('div', { class: 'page-head' }, h('h1', {}, `Overview · last ${rangeLabel(hours)}`), rangePicker(hours)),
    cards([['Sessions', h('span', { id: 'sessions-total', 'data-total': list.total }, fmtCount(list.total)), hours === 168 && trends ? delta(trends.sessions_delta_pct) : `${fmtCount(list.failed)} with failures`],
      ['Tool calls', fmtNum(calls)], ['Error rate', calls ? fmtPct(errs / calls * 100) : '—', `${fmtNum(errs)} errors`], ['p99 latency', fmtMs(p99)],
      ['Tokens', compact(tokIn + tokOut), `${compact(tokIn)} in · ${compact(tokOut)} out`], ['Cost', fmtUsd(breakdown.total_cost_usd)],
      ['Active alerts', fmtNum(counts.total)]]),
    h('section', { class: 'strip', 'aria-label': 'MCP servers', id: 'servers-strip' }, servers.length ? servers.map((r) =>
      h('a', { class: `pill ${r.status}`, href: `#/servers/${enc(r.server_name)}`, 'data-server': r.server_name }, h('span', { class: `dot ${r.status}` }), r.server_name,
        h('span', { class: 'dim' }, ` ${r.status === 'down' ? 'down' : fmtMs(r.latency_ms)}`), r.circuit_state && r.circuit_state !== 'closed' ? badge(r.circuit_state) : null))
      : h('span', { class: 'dim small' }, 'No MCP servers yet.')),
    h('div', { class: 'charts' },
      chart({ title: 'Sessions', points: ts, at: 'bucket', series: [{ key: 'sessions', label: 'sessions', fmt: compact }, { key: 'failed_sessions', label: 'failed', fmt: compact }] }),
      chart({ title: 'Tool calls', points: ts, at: 'bucket', series: [{ key: 'tool_calls', label: 'calls', fmt: compact }, { key: 'errors', label: 'errors', fmt: compact }] }),
      chart({ title: 'Latency', points: ts, at: 'bucket', series: [{ key: 'p99_latency_ms', label: 'p99', fmt: fmtMs }, { key: 'avg_latency_ms', label: 'avg', fmt: fmtMs }] }),
      chart({ title: 'Tokens', points: ts, at: 'bucket', series: [{ key: 'input_tokens', label: 'in', fmt: compact }, { key: 'output_tokens', label: 'out', fmt: compact }] })),
    ts.length ? null : empty(`No spans in the last ${rangeLabel(hours)} yet.`),
    h('div', { class: 'split' },
      h('section', {}, h('h2', {}, 'Agents'),
        table({ id: 'overview-agents', rows: agents, sortKey: 'sessions', emptyText: 'No agent sessions in this range.', columns: [
        { key: 'agent_name', label: 'Agent', render: (a) => a.agent_name === '—' ? '—' : h('a', { href: `#/agents/${enc(a.agent_name)}` }, a.agent_name) },
        { key: 'sessions', label: 'Sessions', num: true, render: (a) => fmtNum(a.sessions) }, { key: 'failed', label: 'Failed', num: true, render: (a) => fmtNum(a.failed) }, { key: 'tokens', label: 'Tokens', num: true, render: (a) => compact(a.tokens) },
        { key: 'cost', label: 'Cost', num: true, render: (a) => fmtUsd(a.cost) }, { key: 'last', label: 'Last seen', render: (a) => ago(a.last) }] })),
      h('section', {}, h('h2', {}, 'Latest sessions'), table({ id: 'overview-sessions', rows: sessions.slice(0, 8), emptyText: 'No sessions in this range.', columns: [
        { key: 'session_id', label: 'Session', render: (r) => sessionLink(r.session_id, true) }, { key: 'agent_name', label: 'Agent' },
        { key: 'health_tag', label: 'Health', render: (r) => badge(r.health_tag) }, { key: 'duration_ms', label: 'Duration', num: true, render: (r) => fmtMs(r.duration_ms) }] }))),
    h('div', { class: 'split' },
      h('section', {}, h('h2', {}, 'Models'), table({ id: 'models', rows: models, sortKey: 'calls', emptyText: 'No LLM calls in this range.', columns: [
        { key: 'model_id', label: 'Model', cls: 'mono' }, { key: 'calls', label: 'Calls', num: true, render: (m) => fmtNum(m.calls) },
        { key: 'input_tokens', label: 'Tokens in', num: true, render: (m) => compact(m.input_tokens) }, { key: 'output_tokens', label: 'Tokens out', num: true, render: (m) => compact(m.output_tokens) },
        { key: 'avg_latency_ms', label: 'Avg', num: true, render: (m) => fmtMs(m.avg_latency_ms) }, { key: 'error_count', label: 'Errors', num: true },
        { key: 'est_cost_usd', label: 'Cost', num: true, render: (m) => fmtUsd(m.est_cost_usd) }] })),
      h('section', {}, h('h2', {}, 'Errors by category'), table({ id: 'errors', rows: errors, sortKey: 'count', emptyText: 'No errors in this range.', columns: [
        { key: 'category', label: 'Category', render: (e) => badge(e.category, 'error') }, { key: 'count', label: 'Count', num: true },
        { key: 'llm_errors', label: 'LLM', num: true }, { key: 'tool_errors', label: 'Tool', num: true },
        { key: 'pct', label: 'Share', render: (e) => h('span', { class: 'share-cell' }, shareBar(totalErrors ? e.count / totalErrors : 0, 'bad'), fmtPct(e.pct)) }] }))),
    h('section', {}, h('h2', {}, 'Tools'), table({ id: 'tools', rows: tools, sortKey: 'calls', search: 'search tools…', pageSize: 10, emptyText: 'No tool calls in this range.', columns: [
      { key: 'server_name', label: 'Server', render: (t) => h('a', { href: `#/servers/${enc(t.server_name)}` }, t.server_name) }, { key: 'tool_name', label: 'Tool', cls: 'mono' },
      { key: 'calls', label: 'Calls', num: true, render: (t) => fmtNum(t.calls) }, { key: 'errors', label: 'Errors', num: true },
      { key: 'success_rate', label: 'Success', num: true, render: (t) => fmtPct(t.success_rate) }, { key: 'avg_latency_ms', label: 'Avg', num: true, render: (t) => fmtMs(t.avg_latency_ms) },
      { key: 'p99_latency_ms', label: 'p99', num: true, render: (t) => fmtMs(t.p99_latency_ms) }, { key: 'calls_per_session', label: 'Per session', num: true, render: (t) => t.calls_per_session == null ? '—' : Number(t.calls_per_session).toFixed(1) }] })));
}
