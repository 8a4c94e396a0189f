// One agent: how is it doing, what does it call, who does it hand work to, and what guards it? Sessions and
// failures, servers and topology, SLOs, prevention settings (its override of the project default) and
// metadata.
import { h, fill, badge, cards, enc, back, sessionLink, empty } from '../dom.js';
import { api, maybe, isAdmin, state, writeError, sessionsWithCounts } from '../api.js';
import { fmtMs, fmtUsd, fmtNum, fmtPct, compact, when, ago, rangeLabel, parseTime, fmtCount } from '../format.js';
import { table } from '../table.js';
import { graph } from '../graph.js';
import { chart } from '../chart.js';
import { preventionForm, preventionTable } from './agents.js';
import { rangePicker, hoursFrom } from './overview.js';

export default async function agent(main, name) {
  const hours = hoursFrom(168);
  const n = enc(name);
  // The lineage (a span scan: seconds at a million spans) feeds only the servers and topology sections: the
  // page is drawn from its other reads at once and those two sections fill in when it arrives.
  const lineage = api('GET', `/api/agents/lineage?hours=${hours}`);
  lineage.catch(() => {});
  const [list, slos, meta, prevention, summary] = await Promise.all([
    sessionsWithCounts(`/api/agents/sessions?hours=${hours}&limit=1000&agent_name=${n}`),
    maybe('/api/slos/status', []), maybe(`/api/agents/metadata/${n}`, null), state.project ? maybe('/api/agents/prevention-configs', []) : Promise.resolve([]),
    maybe(`/api/agents/summary?hours=${hours}&agent_name=${n}`, [])]);
  const id = `agent:${name}`;
  // The Sessions card is the API's count and the calls are every call this agent made in the range (the summary,
  // from the rollups); tokens, cost and the chart add up the newest 1,000 sessions it took part in ("≥" beyond).
  const sessions = list.rows, capped = list.total > sessions.length;
  const mine = summary[0] || { tool_calls: 0, failed_calls: 0 };
  const calls = mine.tool_calls, fails = mine.failed_calls;
  const tokens = sessions.reduce((a, r) => a + (r.total_input_tokens || 0) + (r.total_output_tokens || 0), 0);
  const cost = sessions.reduce((a, r) => a + (r.est_cost_usd || 0), 0);
  const serversBox = h('div', { id: 'agent-servers-box' }, h('p', { class: 'dim loading-part' }, 'loading servers…'));
  const topology = h('div', { id: 'agent-topology' }, h('p', { class: 'dim loading-part' }, 'loading topology…'));
  lineage.then((g) => {
    const edges = (g.edges || []).filter((e) => e.source === id || e.target === id);
    const near = new Set(edges.flatMap((e) => [e.source, e.target]).concat(id));
    const sub = { nodes: (g.nodes || []).filter((x) => near.has(x.id)), edges };
    const servers = edges.filter((e) => e.source === id && e.type === 'calls').map((e) => ({ server: e.target.replace(/^server:/, ''), ...e.metrics }));
    fill(serversBox, table({ id: 'agent-servers', rows: servers, sortKey: 'call_count', emptyText: 'No MCP calls in this range.', columns: [
      { key: 'server', label: 'Server', render: (r) => h('a', { href: `#/servers/${enc(r.server)}` }, r.server) }, { key: 'call_count', label: 'Calls', num: true },
      { key: 'error_count', label: 'Errors', num: true }, { key: 'avg_latency_ms', label: 'Avg', num: true, render: (r) => fmtMs(r.avg_latency_ms) }] }));
    fill(topology, sub.edges.length ? graph(sub) : empty('No hand-offs or server calls in this range.'));
  }, (e) => {
    // Only these sections failed: they say so in words (the detail goes to the console), the page stays.
    console.warn('LangSight API', '/api/agents/lineage', e && e.status, e && e.message);
    const text = 'could not be loaded right now. Reload the page to try again, or see the Lineage page.';
    fill(serversBox, h('p', { class: 'dim part-error' }, `The servers this agent calls ${text}`));
    fill(topology, h('p', { class: 'dim part-error' }, `The topology ${text}`));
  });
  // Sessions per day (or hour in short ranges), from the session list.
  const bucketMs = hours <= 24 ? 3600e3 : 86400e3;
  // Every bucket of the range, so quiet hours or days show as zero rather than being skipped.
  const buckets = new Map();
  const first = Math.floor((Date.now() - hours * 3600e3) / bucketMs) * bucketMs;
  for (let t = first; t <= Date.now(); t += bucketMs) buckets.set(t, { at: new Date(t).toISOString(), sessions: 0, failed: 0 });
  for (const r of sessions) { const t = Math.floor(parseTime(r.first_call_at) / bucketMs) * bucketMs; if (Number.isNaN(t)) continue; const b = buckets.get(t) || { at: new Date(t).toISOString(), sessions: 0, failed: 0 }; b.sessions++; if (r.failed_calls > 0) b.failed++; buckets.set(t, b); }
  const series = [...buckets.entries()].sort((a, b) => a[0] - b[0]).map(([, b]) => b);
  const override = prevention.find((p) => p.agent_name === name);
  const dflt = prevention.find((p) => p.agent_name === '*');
  const m = meta || {};
  const metaMsg = h('span', { class: 'dim', role: 'status' });
  const metaForm = isAdmin() ? h('form', { class: 'filters', id: 'agent-meta', onsubmit: async (e) => {
    e.preventDefault(); const f = e.target;
    try {
      await api('PUT', `/api/agents/metadata/${n}`, { description: f.description.value, owner: f.owner.value, tags: f.tags.value.split(',').map((t) => t.trim()).filter(Boolean), status: f.status.value, runbook_url: f.runbook_url.value });
      metaMsg.textContent = 'Saved.';
    } catch (x) { metaMsg.textContent = writeError(x); }
  } }, h('label', {}, 'Description', h('input', { name: 'description', value: m.description || '' })), h('label', {}, 'Owner', h('input', { name: 'owner', value: m.owner || '' })),
  h('label', {}, 'Tags', h('input', { name: 'tags', value: (m.tags || []).join(', ') })),
  h('label', {}, 'Status', h('select', { name: 'status' }, ['active', 'experimental', 'deprecated'].map((s) => h('option', { value: s, selected: (m.status || 'active') === s }, s)))),
  h('label', {}, 'Runbook', h('input', { name: 'runbook_url', value: m.runbook_url || '' })), h('button', { type: 'submit' }, 'Save metadata'), metaMsg)
    : h('dl', { class: 'facts' }, ['description', 'owner', 'status', 'runbook_url'].map((k) => [h('dt', {}, k), h('dd', {}, m[k] || '—')]), h('dt', {}, 'tags'), h('dd', {}, (m.tags || []).join(', ') || '—'));

  fill(main, back('#/agents', 'Agents'), h('div', { class: 'page-head' }, h('h1', {}, name, ' ', meta ? badge(meta.status) : null), rangePicker(hours)),
    cards([['Sessions', h('span', { id: 'sessions-total', 'data-total': list.total }, fmtCount(list.total)), `${fmtCount(list.failed)} with failures`], ['Tool calls', fmtNum(calls)], ['Error rate', calls ? fmtPct(fails / calls * 100) : '—'],
      ['Tokens', `${capped ? '≥ ' : ''}${compact(tokens)}`], ['Cost', `${capped ? '≥ ' : ''}${fmtUsd(cost)}`], ['Last seen', sessions.length ? ago(sessions.map((r) => r.last_call_at).sort().pop()) : '—']]),
    sessions.length ? h('div', { class: 'charts' }, chart({ title: `Sessions per ${hours <= 24 ? 'hour' : 'day'}`, points: series, at: 'at', series: [{ key: 'sessions', label: 'sessions', fmt: compact }, { key: 'failed', label: 'failed', fmt: compact }] })) : null,
    h('div', { class: 'split' },
      h('section', {}, h('h2', {}, 'Servers'), serversBox),
      h('section', {}, h('h2', {}, 'SLOs'), (() => { const mine = slos.filter((x) => x.agent_name === name); return mine.length ? h('table', {}, h('tbody', {}, mine.map((x) => h('tr', {}, h('td', {}, x.metric), h('td', { class: 'num' }, `target ${x.target}`), h('td', { class: 'num' }, x.current_value == null ? '—' : Number(x.current_value).toFixed(2)), h('td', {}, badge(x.status)))))) : empty('No SLOs for this agent (add one under SLOs).'); })())),
    h('h2', {}, 'Topology'), topology,
    capped ? h('p', { class: 'dim small', id: 'agent-capped' }, `Tokens, cost and the chart add up the newest ${fmtNum(sessions.length)} of ${fmtCount(list.total)} sessions; the table lists those.`) : null,
    h('h2', {}, `Sessions · last ${rangeLabel(hours)}`), table({ id: 'agent-sessions', rows: sessions, pageSize: 15, sortKey: 'first_call_at', search: 'search sessions…', emptyText: 'No sessions in this range.', columns: [
      { key: 'session_id', label: 'Session', render: (r) => sessionLink(r.session_id) }, { key: 'health_tag', label: 'Health', render: (r) => badge(r.health_tag) },
      { key: 'tool_calls', label: 'Calls', num: true }, { key: 'failed_calls', label: 'Failed', num: true },
      { key: 'duration_ms', label: 'Duration', num: true, render: (r) => fmtMs(r.duration_ms) }, { key: 'est_cost_usd', label: 'Cost', num: true, render: (r) => fmtUsd(r.est_cost_usd) },
      { key: 'first_call_at', label: 'Started', render: (r) => when(r.first_call_at) }] }),
    h('h2', {}, 'Guards (prevention)'),
    state.project ? [preventionTable([override, dflt].filter(Boolean)), override ? null : h('p', { class: 'dim small' }, dflt ? 'This agent follows the project default.' : 'No prevention settings in this project yet.'),
      isAdmin() ? [preventionForm(override || dflt || {}, `/api/agents/${n}/prevention-config`, 'Save override for this agent', () => state.rerender()),
        override ? h('button', { class: 'secondary', onclick: async () => { await api('DELETE', `/api/agents/${n}/prevention-config`); state.rerender(); } }, 'Remove override') : null] : null]
      : h('p', { class: 'dim' }, 'Choose a project to see this agent\u2019s prevention settings.'),
    h('h2', {}, 'Metadata'), metaForm);
}
