// Projects: who can see which data? Each project with its members; owners and admins add and remove
// members, rename or delete the project; admins create projects.
import { h, fill, badge, enc } from '../dom.js';
import { api, isAdmin, state, writeError, forgetProjects } from '../api.js';
import { when } from '../format.js';

export default async function projects(main) {
  // A project-bound key may not list projects (that read spans the instance): it sees its own project.
  const list = state.me.project_id
    ? [await api('GET', `/api/projects/${enc(state.me.project_id)}`)] : await api('GET', '/api/projects');
  const users = isAdmin() ? await api('GET', '/api/users').catch(() => []) : [];
  const email = (id) => (users.find((u) => u.id === id) || {}).email || id;
  const msg = h('span', { class: 'error', role: 'alert' });
  // The shell's cached project list (the picker) is stale after a create, rename or delete.
  const done = () => { forgetProjects(); state.rerender(); };
  const blocks = await Promise.all(list.map(async (p) => {
    const pid = enc(p.id);
    const members = await api('GET', `/api/projects/${pid}/members`).catch(() => []);
    const owner = isAdmin() || p.your_role === 'owner';
    const add = owner && users.length ? h('form', { class: 'filters', onsubmit: async (e) => {
      e.preventDefault();
      try { await api('POST', `/api/projects/${pid}/members`, { user_id: e.target.user.value, role: e.target.role.value }); state.rerender(); } catch (err) { msg.textContent = writeError(err); }
    } }, h('label', {}, 'User', h('select', { name: 'user' }, users.map((u) => h('option', { value: u.id }, u.email)))),
    h('label', {}, 'Role', h('select', { name: 'role' }, ['member', 'viewer', 'owner'].map((r) => h('option', { value: r }, r)))), h('button', { type: 'submit' }, 'Add member')) : null;
    const manage = owner ? h('form', { class: 'filters', onsubmit: async (e) => {
      e.preventDefault();
      try { await api('PATCH', `/api/projects/${pid}`, { name: e.target.pname.value }); done(); } catch (err) { msg.textContent = writeError(err); }
    } }, h('label', {}, 'Name', h('input', { name: 'pname', value: p.name, required: true, maxlength: 80 })), h('button', { type: 'submit', class: 'secondary' }, 'Rename'),
    h('button', { type: 'button', class: 'danger', onclick: async () => { if (!confirm(`Delete project ${p.name}? Its data stays stored but is no longer reachable from the dashboard.`)) return; try { await api('DELETE', `/api/projects/${pid}`); done(); } catch (err) { msg.textContent = writeError(err); } } }, 'Delete project')) : null;
    return h('section', { 'data-project': p.id }, h('h2', {}, `${p.name} `, h('span', { class: 'dim small' }, `${p.slug} · you: ${p.your_role || '—'}`)), manage, add,
      h('table', {}, h('tbody', {}, members.map((m) => h('tr', { 'data-member': email(m.user_id) }, h('td', {}, email(m.user_id)),
        h('td', {}, owner ? h('select', { 'aria-label': `Role of ${email(m.user_id)}`, onchange: async (e) => {
          try { await api('PATCH', `/api/projects/${pid}/members/${enc(m.user_id)}`, { role: e.target.value }); state.rerender(); } catch (err) { msg.textContent = writeError(err); }
        } }, ['owner', 'member', 'viewer'].map((r) => h('option', { value: r, selected: r === m.role }, r))) : badge(m.role)), h('td', {}, when(m.added_at)),
        h('td', {}, owner ? h('button', { class: 'secondary', onclick: async () => { await api('DELETE', `/api/projects/${pid}/members/${enc(m.user_id)}`); state.rerender(); } }, 'Remove') : null))))));
  }));
  const create = isAdmin() ? h('form', { class: 'filters', onsubmit: async (e) => {
    e.preventDefault();
    try { await api('POST', '/api/projects', { name: e.target.name.value }); done(); } catch (err) { msg.textContent = writeError(err); }
  } }, h('label', {}, 'New project', h('input', { name: 'name', required: true, maxlength: 80 })), h('button', { type: 'submit' }, 'Create'), msg) : null;
  fill(main, h('h1', {}, 'Projects and members'), create, blocks, list.length ? null : h('p', { class: 'dim' }, 'No projects.'));
}
