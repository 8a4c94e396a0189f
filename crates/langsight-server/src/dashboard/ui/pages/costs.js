// Costs: where does the money go? Totals and tokens for the range; cost by tool and model (filter by server,
// model, type), by agent (filter by agent) and the most expensive sessions. Costs are token sums at the
// current prices (Settings → Model pricing), so a price change reprices history.
import { h, fill, badge, cards, enc, sessionLink } from '../dom.js';
import { api, query, setQuery } from '../api.js';
import { fmtUsd, fmtNum, compact, rangeLabel } from '../format.js';
import { table } from '../table.js';
import { shareBar } from '../chart.js';
import { rangePicker, hoursFrom } from './overview.js';

export default async function costs(main) {
  const hours = hoursFrom(168);
  const q = query();
  const f = { agent: q.get('agent') || '', model: q.get('model') || '', server: q.get('server') || '', type: q.get('type') || '' };
  const b = await api('GET', `/api/costs/breakdown?hours=${hours}`);
  const tools = b.by_tool.filter((r) => (!f.server || r.server_name === f.server) && (!f.model || (r.model_id || '') === f.model) && (!f.type || r.cost_type === f.type));
  const agents = b.by_agent.filter((r) => !f.agent || r.agent_name === f.agent);
  const sessions = (b.by_session || []).filter((r) => !f.agent || r.agent_name === f.agent);
  const filtered = f.server || f.model || f.type;
  const sum = (rows, k) => rows.reduce((a, r) => a + (Number(r[k]) || 0), 0);
  const total = filtered ? sum(tools, 'total_cost_usd') : f.agent ? sum(agents, 'total_cost_usd') : b.total_cost_usd;
  const tokIn = filtered ? sum(tools, 'total_input_tokens') : b.total_input_tokens, tokOut = filtered ? sum(tools, 'total_output_tokens') : b.total_output_tokens;
  const opts = (vals) => [...new Set(vals.filter(Boolean))].sort();
  const select = (name, label, values) => h('label', {}, label, h('select', { name, 'data-filter': name }, h('option', { value: '' }, 'all'), values.map((v) => h('option', { value: v, selected: v === f[name] }, v))));
  const maxTool = Math.max(1e-12, ...tools.map((r) => r.total_cost_usd || 0));
  fill(main, h('div', { class: 'page-head' }, h('h1', {}, `Costs · last ${rangeLabel(hours)}`), rangePicker(hours)),
    h('form', { class: 'filters', id: 'cost-filters', onchange: (e) => setQuery({ [e.target.name]: e.target.value }), onsubmit: (e) => e.preventDefault() },
      select('agent', 'Agent', opts(b.by_agent.map((r) => r.agent_name))), select('model', 'Model', opts(b.by_tool.map((r) => r.model_id))),
      select('server', 'Server', opts(b.by_tool.map((r) => r.server_name))), select('type', 'Type', ['token_based', 'call_based']),
      f.agent || filtered ? h('a', { href: `#/costs?hours=${hours}` }, 'clear filters') : null),
    cards([['Total', fmtUsd(total)], ['LLM', filtered ? fmtUsd(sum(tools.filter((r) => r.cost_type === 'token_based'), 'total_cost_usd')) : fmtUsd(b.llm_cost_usd)],
      ['Tools', filtered ? fmtUsd(sum(tools.filter((r) => r.cost_type !== 'token_based'), 'total_cost_usd')) : fmtUsd(b.tool_cost_usd)],
      ['Calls', fmtNum(filtered ? sum(tools, 'total_calls') : f.agent ? sum(agents, 'total_calls') : b.total_calls)],
      ['Tokens in', compact(tokIn)], ['Tokens out', compact(tokOut)]]),
    f.agent && filtered ? h('p', { class: 'dim small' }, 'The by-tool figures cannot be split by agent: the agent filter applies to the agent and session tables.') : null,
    b.supports_costs === false ? h('p', { class: 'dim' }, 'This storage mode keeps no cost figures.') : null,
    h('h2', {}, 'By tool and model'), table({ id: 'cost-tools', rows: tools, sortKey: 'total_cost_usd', pageSize: 20, search: 'search tool, server, model…', emptyText: 'No costs in this range.', columns: [
      { key: 'server_name', label: 'Server', render: (r) => r.server_name ? h('a', { href: `#/servers/${enc(r.server_name)}` }, r.server_name) : '—' },
      { key: 'tool_name', label: 'Tool', cls: 'mono' }, { key: 'model_id', label: 'Model', cls: 'mono small' },
      { key: 'cost_type', label: 'Type', render: (r) => badge(r.cost_type === 'token_based' ? 'tokens' : 'per call', 'plain') },
      { key: 'total_calls', label: 'Calls', num: true, render: (r) => fmtNum(r.total_calls) },
      { key: 'total_input_tokens', label: 'Tokens in', num: true, render: (r) => compact(r.total_input_tokens) },
      { key: 'total_output_tokens', label: 'Tokens out', num: true, render: (r) => compact(r.total_output_tokens) },
      { key: 'cost_per_call_usd', label: '$/call', num: true, render: (r) => fmtUsd(r.cost_per_call_usd) },
      { key: 'total_cost_usd', label: 'Total', num: true, render: (r) => h('span', { class: 'share-cell' }, shareBar((r.total_cost_usd || 0) / maxTool), fmtUsd(r.total_cost_usd)) }] }),
    h('div', { class: 'split' },
      h('section', {}, h('h2', {}, 'By agent'), table({ id: 'cost-agents', rows: agents, sortKey: 'total_cost_usd', emptyText: 'No agent costs.', columns: [
        { key: 'agent_name', label: 'Agent', render: (r) => r.agent_name ? h('a', { href: `#/agents/${enc(r.agent_name)}` }, r.agent_name) : '—' },
        { key: 'total_calls', label: 'Calls', num: true }, { key: 'total_cost_usd', label: 'Cost', num: true, render: (r) => fmtUsd(r.total_cost_usd) }] })),
      h('section', {}, h('h2', {}, 'Top sessions'), table({ id: 'cost-sessions', rows: sessions, sortKey: 'total_cost_usd', emptyText: 'No priced sessions.', columns: [
        { key: 'session_id', label: 'Session', render: (r) => sessionLink(r.session_id, true) }, { key: 'agent_name', label: 'Agent' },
        sessions.some((r) => r.model_id) ? { key: 'model_id', label: 'Model', cls: 'mono small' } : null,
        { key: 'total_calls', label: 'Calls', num: true }, { key: 'total_cost_usd', label: 'Cost', num: true, render: (r) => fmtUsd(r.total_cost_usd) }].filter(Boolean) }))));
}
