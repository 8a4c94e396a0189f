// One session: what happened, in what order, what did it cost, and where did it fail? The summary (tokens,
// model, cost, agents, servers), a graph of its agents, hand-offs and servers, and the span tree with a
// timeline: LLM spans show model and tokens, failed spans their error, and each span's payload loads on
// demand as a collapsible JSON tree.
import { h, fill, badge, cards, enc, back, jsonView } from '../dom.js';
import { api, maybe } from '../api.js';
import { fmtMs, fmtUsd, fmtNum, compact, when, parseTime } from '../format.js';
import { graph } from '../graph.js';

// USD for a span's tokens at its model's active price (null without a price or tokens).
function pricer(models) {
  const active = new Map(models.filter((m) => m.is_active !== false).map((m) => [m.model_id, m]));
  const find = (id) => active.get(id) || active.get(String(id).replace(/^(models|anthropic|openai|google|meta)\//, ''));
  return (sp) => {
    if (!sp.model_id || (sp.input_tokens == null && sp.output_tokens == null)) return null;
    const p = find(sp.model_id); if (!p) return null;
    return ((sp.input_tokens || 0) * p.input_per_1m_usd + (sp.output_tokens || 0) * p.output_per_1m_usd + (sp.thinking_tokens || 0) * (p.thinking_per_1m_usd || 0)) / 1e6;
  };
}

// The session's own lineage: agent → server calls and agent → agent hand-offs, from its spans.
function lineageOf(spans) {
  const nodes = new Map(), edges = new Map();
  const node = (type, name) => { const id = `${type}:${name}`; if (!nodes.has(id)) nodes.set(id, { id, type, label: name, metrics: { total_calls: 0, error_count: 0 } }); return nodes.get(id); };
  const byId = new Map(spans.map((x) => [x.span_id, x]));
  for (const sp of spans) {
    const agent = sp.agent_name || (byId.get(sp.parent_span_id) || {}).agent_name;
    if (!agent) continue;
    const a = node('agent', agent); a.metrics.total_calls++; if (sp.status !== 'success') a.metrics.error_count++;
    const target = sp.target_agent_name || (sp.span_type === 'handoff' ? sp.tool_name : null);
    if (target && target !== agent) {
      node('agent', target);
      const k = `agent:${agent}>agent:${target}`; const e = edges.get(k) || { source: `agent:${agent}`, target: `agent:${target}`, type: 'handoff', metrics: { handoff_count: 0, session_count: 1 } };
      e.metrics.handoff_count++; edges.set(k, e);
    } else if (sp.server_name && sp.span_type !== 'agent' && sp.span_type !== 'llm_call' && sp.span_type !== 'llm') {
      const sv = node('server', sp.server_name); sv.metrics.total_calls++; if (sp.status !== 'success') sv.metrics.error_count++;
      const k = `agent:${agent}>server:${sp.server_name}`; const e = edges.get(k) || { source: `agent:${agent}`, target: `server:${sp.server_name}`, type: 'calls', metrics: { call_count: 0, error_count: 0, total: 0 } };
      e.metrics.call_count++; if (sp.status !== 'success') e.metrics.error_count++; e.metrics.total += sp.latency_ms || 0; e.metrics.avg_latency_ms = e.metrics.total / e.metrics.call_count; edges.set(k, e);
    }
  }
  return { nodes: [...nodes.values()], edges: [...edges.values()] };
}

export default async function session(main, id) {
  const [t, models] = await Promise.all([api('GET', `/api/agents/sessions/${enc(id)}?payloads=false`), maybe('/api/costs/models', [])]);
  const spans = t.spans_flat || [];
  const cost = pricer(models);
  const start = Math.min(...spans.map((x) => parseTime(x.started_at)));
  const end = Math.max(...spans.map((x) => parseTime(x.ended_at)));
  const span = Math.max(1, end - start);
  const sum = (k) => spans.reduce((a, x) => a + (Number(x[k]) || 0), 0);
  const tokIn = sum('input_tokens'), tokOut = sum('output_tokens');
  const costs = spans.map(cost).filter((c) => c != null);
  const modelIds = [...new Set(spans.map((x) => x.model_id).filter(Boolean))];
  const agents = [...new Set(spans.map((x) => x.agent_name).filter(Boolean))];
  const servers = [...new Set(spans.filter((x) => x.span_type === 'tool_call' || x.span_type === 'node').map((x) => x.server_name).filter(Boolean))];
  const failedSpans = spans.filter((x) => x.status !== 'success');
  const health = t.health_tag || (failedSpans.length ? 'tool_failure' : 'success');

  const rows = [];
  const walk = (node, depth) => {
    const left = (parseTime(node.started_at) - start) / span * 100, width = Math.max(0.5, (parseTime(node.ended_at) - parseTime(node.started_at)) / span * 100);
    const bar = h('div', { class: `bar ${node.status}` }); bar.style.left = `${Math.max(0, left)}%`; bar.style.width = `${Math.min(100, width)}%`;
    const payload = h('div', { class: 'payload', hidden: true });
    // Payloads load on demand, one span at a time (the trace comes without them).
    const show = async (e) => {
      const btn = e.currentTarget;
      if (!payload.dataset.loaded) {
        try {
          const full = await api('GET', `/api/agents/sessions/${enc(id)}/spans/${enc(node.span_id)}`);
          const parts = [['input', full.input_json], ['output', full.output_json], ['prompt', full.llm_input], ['completion', full.llm_output], ['error', full.error]].filter(([, v]) => v);
          fill(payload, parts.length ? parts.map(([k, v]) => h('div', { class: `part ${k}` }, h('div', { class: 'k' }, k), k === 'error' ? h('pre', { class: 'json-text error' }, v) : jsonView(v))) : h('span', { class: 'dim' }, '(no payload)'));
        } catch (err) { fill(payload, h('span', { class: 'dim' }, 'The payload could not be loaded.')); console.warn(err); }
        payload.dataset.loaded = '1';
      }
      payload.hidden = !payload.hidden; btn.setAttribute('aria-expanded', String(!payload.hidden));
    };
    const llm = node.model_id || node.input_tokens != null || node.output_tokens != null;
    const pad = h('span', { class: 'indent' }); pad.style.width = `${depth * 1.1}rem`;
    const name = h('div', { class: 'name' }, pad, h('span', { class: 'dim' }, `${node.span_type} `),
      node.span_type === 'agent' ? node.agent_name || node.tool_name : `${node.server_name || ''}${node.server_name && node.tool_name ? '/' : ''}${node.tool_name || ''}`,
      node.agent_name && node.span_type !== 'agent' ? h('span', { class: 'dim' }, ` · ${node.agent_name}`) : null,
      llm ? h('span', { class: 'llm' }, node.model_id ? h('span', { class: 'tag mono' }, node.model_id) : null,
        node.input_tokens != null || node.output_tokens != null ? h('span', { class: 'dim small' }, ` ${fmtNum(node.input_tokens || 0)} in / ${fmtNum(node.output_tokens || 0)} out`) : null,
        cost(node) != null ? h('span', { class: 'dim small' }, ` · ${fmtUsd(cost(node))}`) : null) : null,
      ' ', h('button', { class: 'secondary small', 'aria-expanded': 'false', onclick: show }, 'payload'));
    rows.push(h('div', { class: `row ${node.status !== 'success' ? 'failed' : ''}`, 'data-span': node.span_id }, name, badge(node.status), h('div', { class: 'num' }, fmtMs(node.latency_ms)), h('div', { class: 'timeline' }, bar)));
    if (node.error) rows.push(h('div', { class: 'span-error', role: 'note' }, h('b', {}, 'error: '), node.error));
    rows.push(payload);
    (node.children || []).forEach((c) => walk(c, depth + 1));
  };
  t.root_spans.forEach((r) => walk(r, 0));
  const lin = lineageOf(spans);

  fill(main, back('#/sessions', 'Sessions'), h('h1', { class: 'mono' }, `Session ${id}`),
    cards([['Health', badge(health)], ['Spans', fmtNum(t.total_spans)], ['Tool calls', fmtNum(t.tool_calls)], ['Failed', fmtNum(t.failed_calls)],
      ['Duration', fmtMs(t.duration_ms)], ['Tokens', compact(tokIn + tokOut), `${fmtNum(tokIn)} in · ${fmtNum(tokOut)} out`],
      ['Cost', costs.length ? fmtUsd(costs.reduce((a, b) => a + b, 0)) : '—', costs.length ? 'tokens at current prices' : 'no priced model'],
      ['Model', modelIds.length ? modelIds.join(', ') : '—']]),
    h('dl', { class: 'facts', id: 'session-facts' },
      h('dt', {}, 'Agents'), h('dd', {}, agents.length ? agents.map((a) => h('a', { class: 'tag', href: `#/agents/${enc(a)}` }, a)) : '—'),
      h('dt', {}, 'Servers'), h('dd', {}, servers.length ? servers.map((sv) => h('a', { class: 'tag', href: `#/servers/${enc(sv)}` }, sv)) : '—'),
      h('dt', {}, 'Started'), h('dd', {}, when(spans.length ? new Date(start).toISOString() : null)),
      failedSpans.length ? [h('dt', {}, 'Errors'), h('dd', { class: 'error' }, `${failedSpans.length} failed span${failedSpans.length > 1 ? 's' : ''}: ${[...new Set(failedSpans.map((x) => x.error).filter(Boolean))].slice(0, 3).join(' · ') || 'no message'}`)] : null),
    lin.edges.length ? [h('h2', {}, 'Agents, hand-offs and servers'), graph(lin)] : null,
    h('h2', {}, 'Span tree and timeline'), h('div', { class: 'tree', id: 'tree' }, rows));
}
