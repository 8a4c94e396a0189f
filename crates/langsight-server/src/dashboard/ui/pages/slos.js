// SLOs: are my agents meeting their targets? Each SLO's current value over its window, and (admins) adding
// or deleting SLOs.
import { h, fill, badge, enc } from '../dom.js';
import { api, isAdmin, state, writeError } from '../api.js';

export default async function slos(main) {
  const status = await api('GET', '/api/slos/status');
  const msg = h('span', { class: 'error', role: 'alert' });
  const form = isAdmin() ? h('form', { class: 'filters', onsubmit: async (e) => {
    e.preventDefault(); const f = e.target;
    try { await api('POST', '/api/slos', { agent_name: f.agent.value, metric: f.metric.value, target: Number(f.target.value), window_hours: Number(f.window.value) }); state.rerender(); }
    catch (err) { msg.textContent = writeError(err); }
  } }, h('label', {}, 'Agent', h('input', { name: 'agent', required: true })),
  h('label', {}, 'Metric', h('select', { name: 'metric' }, h('option', { value: 'success_rate' }, 'success rate (%)'), h('option', { value: 'latency_p99' }, 'p99 latency (ms)'))),
  h('label', {}, 'Target', h('input', { name: 'target', type: 'number', step: 'any', required: true })),
  h('label', {}, 'Window (h)', h('input', { name: 'window', type: 'number', value: 24, min: 1, max: 720 })),
  h('button', { type: 'submit' }, 'Add SLO'), msg) : null;
  fill(main, h('h1', {}, 'SLOs'), form, h('table', { id: 'slos' }, h('thead', {}, h('tr', {}, ['Agent', 'Metric', 'Target', 'Current', 'Window', 'Status', ''].map((c) => h('th', {}, c)))),
    h('tbody', {}, status.map((r) => h('tr', {}, h('td', {}, h('a', { href: `#/agents/${enc(r.agent_name)}` }, r.agent_name)), h('td', {}, r.metric), h('td', { class: 'num' }, r.target), h('td', { class: 'num' }, r.current_value == null ? '—' : Number(r.current_value).toFixed(2)), h('td', { class: 'num' }, `${r.window_hours} h`), h('td', {}, badge(r.status)),
      h('td', {}, isAdmin() ? h('button', { class: 'secondary', onclick: async () => { await api('DELETE', `/api/slos/${enc(r.slo_id)}`); state.rerender(); } }, 'Delete') : null))))),
  status.length ? null : h('p', { class: 'dim' }, 'No SLOs defined.'));
}
