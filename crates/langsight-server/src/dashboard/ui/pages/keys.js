// API keys: which keys can reach this instance, with what role and in which project? Admins create keys
// (role, project binding) and revoke them; a new key is shown once.
import { h, fill, badge, enc } from '../dom.js';
import { api, isAdmin, state, writeError } from '../api.js';
import { when } from '../format.js';

export default async function keys(main) {
  const list = await api('GET', '/api/auth/api-keys').catch((e) => { if (!isAdmin()) return []; throw e; });
  const shown = h('div', { id: 'new-key' });
  const name = h('input', { id: 'key-name', placeholder: 'name, e.g. ci' });
  const role = h('select', { id: 'key-role' }, h('option', { value: 'admin' }, 'admin'), h('option', { value: 'viewer' }, 'viewer'));
  const bound = state.me && state.me.project_id;
  const project = h('select', { id: 'key-project' }, bound ? null : h('option', { value: '' }, 'every project'), state.projects.map((p) => h('option', { value: p.id, selected: p.id === bound }, p.name)));
  const msg = h('span', { class: 'error', role: 'alert' });
  const names = new Map(state.projects.map((p) => [p.id, p.name]));
  const create = isAdmin() ? h('form', { class: 'filters', onsubmit: async (e) => {
    e.preventDefault(); msg.textContent = '';
    try {
      const body = { name: name.value || 'dashboard', role: role.value };
      if (project.value) body.project_id = project.value;
      const k = await api('POST', '/api/auth/api-keys', body);
      await keys(main);
      document.getElementById('new-key').replaceChildren(h('div', { class: 'keybox', role: 'status' }, h('div', { class: 'small dim' }, 'Copy this key now: it is shown only once.'), h('code', { id: 'new-key-value' }, k.key)));
    } catch (err) { msg.textContent = writeError(err); }
  } }, h('label', { for: 'key-name' }, 'New key', name), h('label', { for: 'key-role' }, 'Role', role), h('label', { for: 'key-project' }, 'Project', project),
  h('button', { type: 'submit', id: 'create-key' }, 'Create key'), msg) : null;
  fill(main, h('h1', {}, 'API keys'), create, shown,
    h('table', { id: 'keys' }, h('thead', {}, h('tr', {}, ['Name', 'Prefix', 'Role', 'Project', 'Created', 'Last used', 'Status', ''].map((c) => h('th', {}, c)))),
      h('tbody', {}, list.map((k) => h('tr', { 'data-key': k.name },
        h('td', {}, k.name), h('td', { class: 'mono' }, k.key_prefix), h('td', {}, k.role ? badge(k.role, 'plain') : '—'),
        h('td', {}, k.project_id ? names.get(k.project_id) || k.project_id : k.role ? 'every project' : '—'),
        h('td', {}, when(k.created_at)), h('td', {}, when(k.last_used_at)),
        h('td', {}, k.revoked_at ? badge('revoked') : badge('active')),
        h('td', {}, isAdmin() && !k.revoked_at ? h('button', { class: 'danger', onclick: async () => { await api('DELETE', `/api/auth/api-keys/${enc(k.id)}`); state.rerender(); } }, 'Revoke') : null))))),
    isAdmin() ? null : h('p', { class: 'dim' }, 'Only admins manage keys.'));
}
