// One MCP server: is it healthy, who depends on it, what changed, and why is it failing? Status and uptime,
// check history (chart and list), consumers (agents and sessions), its tool calls, tool schemas, schema
// drift with the agents each change affects, the scorecard, an AI root-cause report, and its metadata.
import { h, fill, badge, cards, enc, back, notesList, jsonView, sessionLink, empty } from '../dom.js';
import { api, maybe, isAdmin, writeError } from '../api.js';
import { fmtMs, fmtNum, fmtPct, when, ago } from '../format.js';
import { chart } from '../chart.js';
import { table } from '../table.js';
import { uptime } from './servers.js';

export default async function server(main, name) {
  const n = enc(name);
  // The blast radius reads the window's spans (1–2 s at a million spans) and feeds only its card and the
  // consumers section: the page is drawn without waiting and those two fill in when it arrives.
  const blastRead = api('GET', `/api/health/servers/${n}/blast-radius?hours=168`).catch((e) => { if (e && e.status === 404) return null; throw e; });
  blastRead.catch(() => {});
  const [history, drift, card, tools, logs, meta] = await Promise.all([
    api('GET', `/api/health/servers/${n}/history?limit=100`), maybe(`/api/health/servers/${n}/drift-history`, []),
    maybe(`/api/health/servers/${n}/scorecard`, null),
    maybe(`/api/servers/${n}/tools`, []), maybe(`/api/health/servers/${n}/logs?hours=168&limit=500`, []), maybe(`/api/servers/metadata/${n}`, null)]);
  const latest = history[0] || {};
  // A down check has no latency: a gap in the chart, never a zero.
  const points = history.slice().reverse().map((r) => ({ latency: r.status === 'down' ? null : r.latency_ms, at: r.checked_at }));
  const schemas = new Map(tools.map((t) => [t.tool_name, t]));
  // The tools of the newest check that listed any (a down server lists none), else those the SDK reported.
  const listed = history.find((r) => r.tools && r.tools.length);
  const toolList = (listed ? listed.tools : tools.map((t) => ({ name: t.tool_name, description: t.description, input_schema: t.input_schema })));
  const blastValue = h('span', { id: 'blast-value', class: 'dim' }, 'loading…'), blastSub = h('span', { id: 'blast-sub' });
  const consumers = h('div', { id: 'consumers-box' }, h('p', { class: 'dim loading-part' }, 'loading consumers…'));
  blastRead.then((blast) => {
    blastValue.className = '';
    blastValue.textContent = blast ? `${blast.severity} · ${blast.total_agents_affected} agents` : '—';
    blastSub.textContent = blast ? `${fmtNum(blast.total_sessions_at_risk)} sessions at risk` : '';
    fill(consumers, blast && blast.affected_agents.length ? table({ id: 'consumers', rows: blast.affected_agents, sortKey: 'call_count', columns: [
      { key: 'agent_name', label: 'Agent', render: (a) => h('a', { href: `#/agents/${enc(a.agent_name)}` }, a.agent_name) }, { key: 'call_count', label: 'Calls', num: true },
      { key: 'session_count', label: 'Sessions', num: true }, { key: 'error_rate_pct', label: 'Errors', num: true, render: (a) => fmtPct(a.error_rate_pct) },
      { key: 'avg_latency_ms', label: 'Avg', num: true, render: (a) => fmtMs(a.avg_latency_ms) }, { key: 'last_called_at', label: 'Last call', render: (a) => ago(a.last_called_at) }] }) : empty('No agent called this server in the last 7 days.'));
  }, (e) => {
    // Only these parts failed: they say so in words (the detail goes to the console), the page stays.
    console.warn('LangSight API', 'blast-radius', e && e.status, e && e.message);
    blastValue.textContent = '—'; blastSub.textContent = 'not available right now';
    fill(consumers, h('p', { class: 'dim part-error' }, 'The agents that call this server could not be loaded right now. Reload the page to try again.'));
  });
  const sessions = [...new Map(logs.filter((l) => l.session_id).map((l) => [l.session_id, l])).values()];

  // Drift impact: the agents that called a changed tool, loaded on demand into a row under the change.
  const impact = (tool) => {
    const btn = h('button', { class: 'secondary small view', onclick: async () => {
      btn.disabled = true;
      const rows = await maybe(`/api/health/servers/${n}/drift-impact?tool_name=${enc(tool)}&hours=168`, []);
      btn.closest('tr').after(h('tr', { class: 'impact-row' }, h('td', { colspan: 5 }, h('span', { class: 'dim small' }, `Agents that called ${tool} in the last 7 days: `),
        rows.length ? h('ul', { class: 'plain' }, rows.map((r) => h('li', {}, h('a', { href: `#/agents/${enc(r.agent_name || '')}` }, r.agent_name || '—'), ` · ${fmtNum(r.call_count)} calls, ${fmtNum(r.error_count)} errors · `, r.session_id ? sessionLink(r.session_id, true) : null)))
          : h('span', { class: 'dim small' }, 'none.'))));
    } }, 'affected agents');
    return h('span', { class: 'impact' }, btn);
  };

  const report = h('div', { id: 'investigation' });
  const investigate = isAdmin() ? h('button', { class: 'secondary', id: 'investigate', onclick: async (e) => {
    e.target.disabled = true; fill(report, h('p', { class: 'dim' }, 'Investigating…'));
    try {
      const r = await api('POST', '/api/investigate', { server_names: [name], window_hours: 24 });
      fill(report, h('div', { class: 'report' }, h('div', { class: 'dim small' }, `${r.provider_used || 'rules'} · ${when(r.generated_at)}`), h('pre', { class: 'json-text' }, r.report)));
    } catch (x) { fill(report, h('p', { class: 'error' }, writeError(x))); }
    e.target.disabled = false;
  } }, 'Investigate root cause') : null;

  const metaMsg = h('span', { class: 'dim', role: 'status' });
  const m = meta || {};
  const metaForm = isAdmin() ? h('form', { class: 'filters', id: 'server-meta', onsubmit: async (e) => {
    e.preventDefault(); const f = e.target;
    try {
      await api('PUT', `/api/servers/metadata/${n}`, { description: f.description.value, owner: f.owner.value, tags: f.tags.value.split(',').map((t) => t.trim()).filter(Boolean),
        transport: f.transport.value, url: f.url.value, runbook_url: f.runbook_url.value });
      metaMsg.textContent = 'Saved.';
    } catch (x) { metaMsg.textContent = writeError(x); }
  } }, [['description', 'Description'], ['owner', 'Owner'], ['tags', 'Tags (comma-separated)'], ['transport', 'Transport'], ['url', 'URL'], ['runbook_url', 'Runbook']].map(([k, label]) =>
    h('label', {}, label, h('input', { name: k, value: k === 'tags' ? (m.tags || []).join(', ') : m[k] || '' }))), h('button', { type: 'submit' }, 'Save'), metaMsg)
    : h('dl', { class: 'facts' }, ['description', 'owner', 'transport', 'url', 'runbook_url'].map((k) => [h('dt', {}, k), h('dd', {}, m[k] || '—')]));

  fill(main, back('#/servers', 'MCP servers'), h('div', { class: 'page-head' }, h('h1', {}, name), investigate), report,
    cards([['Status', badge(latest.status)], ['Circuit', badge(latest.circuit_state || 'closed')], ['Uptime', fmtPct(uptime(history)), `last ${history.length} checks`],
      ['Latency', fmtMs(latest.latency_ms)], ['Grade', card ? `${card.grade} (${Number(card.score).toFixed(0)})` : '—'],
      ['Blast radius', blastValue, blastSub], ['Tools', fmtNum(toolList.length)]]),
    h('div', { class: 'charts' }, chart({ title: 'Latency history', points, at: 'at', gapLabel: 'checks down (no latency)', series: [{ key: 'latency', label: 'latency', fmt: fmtMs }] })),
    h('div', { class: 'split' },
      h('section', {}, h('h2', {}, 'Consumers (7 days)'), consumers,
        sessions.length ? h('p', { class: 'small' }, 'Recent sessions: ', sessions.slice(0, 8).map((l) => [sessionLink(l.session_id, true), ' '])) : null),
      h('section', {}, h('h2', {}, 'Check history'), table({ id: 'checks', rows: history, pageSize: 10, emptyText: 'Not checked yet.', columns: [
        { key: 'checked_at', label: 'Checked', render: (r) => when(r.checked_at) }, { key: 'status', label: 'Status', render: (r) => badge(r.status) },
        { key: 'latency_ms', label: 'Latency', num: true, render: (r) => r.status === 'down' ? '—' : fmtMs(r.latency_ms) }, { key: 'error', label: 'Error', cls: 'dim', render: (r) => r.error || '' }] }))),
    h('section', {}, h('h2', {}, 'Tool calls (logs, 7 days)'), table({ id: 'logs', rows: logs, search: 'search tool, agent, error…', pageSize: 15, emptyText: 'No tool calls recorded.', sortKey: 'started_at', columns: [
      { key: 'started_at', label: 'When', render: (l) => when(l.started_at) }, { key: 'tool_name', label: 'Tool', cls: 'mono' }, { key: 'agent_name', label: 'Agent' },
      { key: 'status', label: 'Status', render: (l) => badge(l.status) }, { key: 'latency_ms', label: 'Latency', num: true, render: (l) => fmtMs(l.latency_ms) },
      { key: 'session_id', label: 'Session', render: (l) => l.session_id ? sessionLink(l.session_id, true) : '—' }, { key: 'error', label: 'Error', cls: 'error', render: (l) => l.error || '' }] })),
    h('div', { class: 'split' },
      h('section', {}, h('h2', {}, 'Tools and schemas'), toolList.length ? h('div', { class: 'schemas' }, toolList.map((t) => {
        const schema = t.input_schema || (schemas.get(t.name) || {}).input_schema;
        return h('details', { class: 'tool' }, h('summary', {}, h('span', { class: 'mono' }, t.name), ' ', h('span', { class: 'dim' }, t.description || '')), schema ? jsonView(schema, 3) : h('span', { class: 'dim' }, 'No schema.'));
      })) : empty('No tools seen.')),
      h('section', {}, h('h2', {}, 'Schema drift'), drift.length ? h('table', {}, h('tbody', {}, drift.map((d) => h('tr', { 'data-drift': d.change_kind }, h('td', {}, when(d.detected_at)), h('td', {}, d.tool_name), h('td', {}, d.change_kind, d.param_name ? h('span', { class: 'mono dim' }, ` ${d.param_name}`) : null),
          // Each row carries its own severity; has_breaking is the whole event's (a compatible row can be in a breaking event).
          h('td', {}, badge(d.drift_type && d.drift_type !== 'unknown' ? d.drift_type : d.has_breaking ? 'breaking' : 'compatible')), h('td', {}, impact(d.tool_name)))))) : empty('No drift recorded.'),
        h('h2', {}, 'Scorecard'), card ? h('table', {}, h('tbody', {}, card.dimensions.map((d) => h('tr', {}, h('td', {}, d.name), h('td', { class: 'num' }, Number(d.score).toFixed(0)), h('td', { class: 'dim' }, notesList(d.notes)))))) : empty('No scorecard.'))),
    h('section', {}, h('h2', {}, 'Metadata'), metaForm));
}
