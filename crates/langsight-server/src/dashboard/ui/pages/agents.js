// Agents: which agents run here, who owns them, how are they doing, and what stops them when they go
// wrong? Each agent's sessions and failures over 7 days with its metadata (discovered from sessions), loops
// stopped, and the project's default prevention settings.
import { h, fill, badge, enc, empty } from '../dom.js';
import { api, maybe, isAdmin, state, writeError } from '../api.js';
import { fmtUsd, fmtNum, when, ago, compact } from '../format.js';
import { table } from '../table.js';

const FIELDS = [['loop_threshold', 'Loop threshold'], ['max_steps', 'Max steps'], ['max_cost_usd', 'Max cost (USD)'],
  ['max_wall_time_s', 'Max wall time (s)'], ['cb_failure_threshold', 'Breaker failures'], ['cb_cooldown_seconds', 'Breaker cooldown (s)']];

// The prevention form: the project default (agent '*') or one agent's override.
export function preventionForm(current, path, label, onSaved) {
  const msg = h('span', { class: 'dim', role: 'status' });
  return h('form', { class: 'filters prevention', onsubmit: async (e) => {
    e.preventDefault(); const body = {};
    for (const [k] of FIELDS) { const v = e.target[k].value; if (v !== '') body[k] = Number(v); }
    body.loop_action = e.target.loop_action.value;
    try { await api('PUT', path, body); msg.textContent = 'Saved.'; onSaved(); } catch (err) { msg.textContent = writeError(err); }
  } }, FIELDS.map(([k, l]) => h('label', {}, l, h('input', { name: k, type: 'number', step: 'any', value: current[k] ?? '' }))),
  h('label', {}, 'On a loop', h('select', { name: 'loop_action' }, ['terminate', 'warn'].map((a) => h('option', { value: a, selected: current.loop_action === a }, a)))),
  h('button', { type: 'submit' }, label), msg);
}

export const preventionTable = (rows) => h('table', { id: 'prevention' }, h('thead', {}, h('tr', {}, ['Agent', 'Loop', 'Max steps', 'Max cost', 'Breaker', 'Updated'].map((c) => h('th', {}, c)))),
  h('tbody', {}, rows.map((p) => h('tr', {}, h('td', {}, p.is_default ? 'project default' : p.agent_name), h('td', {}, `${p.loop_threshold} × → ${p.loop_action}`),
    h('td', { class: 'num' }, p.max_steps ?? '—'), h('td', { class: 'num' }, p.max_cost_usd == null ? '—' : fmtUsd(p.max_cost_usd)),
    h('td', {}, `${p.cb_failure_threshold} failures, ${p.cb_cooldown_seconds} s`), h('td', {}, when(p.updated_at))))));

export default async function agents(main) {
  // Per-agent figures add up every session of the 7 days (`/api/agents/summary`, one request).
  const [meta, loops, prevention, summary] = await Promise.all([api('GET', '/api/agents/metadata'), maybe('/api/agents/loop-counts?hours=168', []),
    state.project ? maybe('/api/agents/prevention-configs', []) : Promise.resolve([]), maybe('/api/agents/summary?hours=168', [])]);
  const stats = new Map(summary.filter((a) => a.agent_name).map((a) => [a.agent_name, { sessions: a.sessions, failed: a.failed_sessions,
    tokens: a.input_tokens + a.output_tokens, cost: a.est_cost_usd, last: a.last_call_at || '' }]));
  const names = [...new Set([...meta.map((m) => m.agent_name), ...stats.keys()])];
  const byName = new Map(meta.map((m) => [m.agent_name, m]));
  const rows = names.map((n) => ({ agent_name: n, ...(byName.get(n) || { status: null }), ...(stats.get(n) || { sessions: 0, failed: 0, tokens: 0, cost: 0, last: '' }) }));
  const current = prevention.find((p) => p.agent_name === '*') || {};
  const discover = isAdmin() ? h('button', { class: 'secondary', onclick: async (e) => { e.target.disabled = true; try { await api('POST', '/api/agents/discover'); } finally { state.rerender(); } } }, 'Discover agents from sessions') : null;
  fill(main, h('div', { class: 'page-head' }, h('h1', {}, 'Agents'), discover),
    table({ id: 'agents', rows, search: 'search agents, owners, tags…', sortKey: 'sessions', emptyText: 'No agents yet: they appear with their first session.', rowAttrs: (r) => ({ 'data-agent': r.agent_name }), columns: [
      { key: 'agent_name', label: 'Agent', render: (r) => h('a', { href: `#/agents/${enc(r.agent_name)}` }, r.agent_name) },
      { key: 'status', label: 'Status', render: (r) => r.status ? badge(r.status) : h('span', { class: 'dim small' }, 'not registered') },
      { key: 'sessions', label: 'Sessions (7 d)', num: true, render: (r) => fmtNum(r.sessions) }, { key: 'failed', label: 'Failed', num: true, render: (r) => fmtNum(r.failed) },
      { key: 'tokens', label: 'Tokens', num: true, render: (r) => compact(r.tokens) }, { key: 'cost', label: 'Cost', num: true, render: (r) => fmtUsd(r.cost) },
      { key: 'last', label: 'Last seen', render: (r) => ago(r.last) }, { key: 'owner', label: 'Owner' },
      { key: 'description', label: 'Description', cls: 'dim' }, { key: 'tags', label: 'Tags', render: (r) => (r.tags || []).join(', ') }] }),
    h('h2', {}, 'Loops stopped (7 days)'), loops.length ? h('table', {}, h('tbody', {}, loops.map((l) => h('tr', {}, h('td', {}, l.agent_name || '—'), h('td', { class: 'num' }, fmtNum(l.loop_count)))))) : empty('No loops stopped.'),
    h('h2', {}, 'Prevention settings'), state.project ? null : h('p', { class: 'dim' }, 'Choose a project to see and edit its prevention settings.'),
    isAdmin() && state.project ? preventionForm(current, '/api/projects/prevention-config', 'Save project default', () => state.rerender()) : null,
    prevention.length ? preventionTable(prevention) : null);
}
