// Settings: who has access, what happened, what do models cost, and what is this instance? Users (invite,
// role, deactivate), the audit log, model pricing (add, edit, retire), AI providers and payload redaction,
// and instance information. Instance-wide tabs are for instance admins; everyone sees the instance tab.
import { h, fill, badge, cards, empty } from '../dom.js';
import { api, maybe, isAdmin, seesAllProjects, query, setQuery, state, writeError } from '../api.js';
import { fmtNum, when, ago } from '../format.js';
import { table } from '../table.js';
import { alertSettings } from './alerts.js';

const TABS = [['users', 'Users'], ['audit', 'Audit log'], ['pricing', 'Model pricing'], ['providers', 'AI providers & redaction'], ['channels', 'Alert channels'], ['instance', 'Instance']];

export default async function settings(main) {
  const admin = seesAllProjects();
  const tabs = admin ? TABS : TABS.filter(([t]) => t === 'instance' || t === 'pricing');
  const tab = tabs.some(([t]) => t === query().get('tab')) ? query().get('tab') : tabs[0][0];
  const body = h('div', { id: `settings-${tab}` });
  fill(main, h('h1', {}, 'Settings'),
    h('div', { class: 'tabs', role: 'tablist' }, tabs.map(([t, label]) => h('a', { href: `#/settings?tab=${t}`, role: 'tab', class: t === tab ? 'on' : '', 'aria-selected': String(t === tab), 'data-tab': t }, label))),
    body);
  await { users, audit, pricing, providers, channels, instance }[tab](body);
}

async function users(box) {
  const list = await api('GET', '/api/users');
  const msg = h('span', { class: 'dim', role: 'status' });
  const link = h('div', { id: 'invite-link' });
  const invite = h('form', { class: 'filters', id: 'invite', onsubmit: async (e) => {
    e.preventDefault(); msg.textContent = '';
    try {
      const r = await api('POST', '/api/users/invite', { email: e.target.email.value, role: e.target.role.value });
      fill(link, h('div', { class: 'keybox', role: 'status' }, h('div', { class: 'small dim' }, `Send this link to ${r.email} (valid until ${when(r.expires_at)}):`), h('code', { id: 'invite-url' }, r.invite_url)));
    } catch (x) { msg.textContent = writeError(x); }
  } }, h('label', {}, 'Invite by email', h('input', { name: 'email', type: 'email', required: true })),
  h('label', {}, 'Role', h('select', { name: 'role' }, h('option', { value: 'viewer' }, 'viewer'), h('option', { value: 'admin' }, 'admin'))), h('button', { type: 'submit' }, 'Invite'), msg);
  const act = (fn) => async (e) => { e.target.disabled = true; try { await fn(); state.rerender(); } catch (x) { msg.textContent = writeError(x); e.target.disabled = false; } };
  fill(box, invite, link, table({ id: 'users', rows: list, search: 'search users…', sortKey: 'email', desc: false, rowAttrs: (u) => ({ 'data-user': u.email }), columns: [
    { key: 'email', label: 'Email' }, { key: 'role', label: 'Role', render: (u) => badge(u.role, 'plain') },
    { key: 'active', label: 'Status', render: (u) => u.active ? badge('active') : badge('deactivated', 'plain') },
    { key: 'created_at', label: 'Created', render: (u) => when(u.created_at) }, { key: 'last_login_at', label: 'Last login', render: (u) => ago(u.last_login_at) },
    { key: 'actions', label: '', sortable: false, render: (u) => u.active && u.email !== state.me.email ? h('div', { class: 'row-actions' },
      h('button', { class: 'secondary small', onclick: act(() => api('PATCH', `/api/users/${encodeURIComponent(u.id)}/role`, { role: u.role === 'admin' ? 'viewer' : 'admin' })) }, u.role === 'admin' ? 'Make viewer' : 'Make admin'),
      h('button', { class: 'danger small', onclick: act(() => api('DELETE', `/api/users/${encodeURIComponent(u.id)}`)) }, 'Deactivate')) : null }] }));
}

async function audit(box) {
  const offset = Math.max(0, Number(query().get('offset') || 0)), limit = 50;
  const log = await api('GET', `/api/audit/logs?limit=${limit}&offset=${offset}`);
  const users = await maybe('/api/users', []);
  const email = (id) => (users.find((u) => u.id === id) || {}).email || id || '—';
  fill(box, table({ id: 'audit', rows: log.events, search: 'search events…', emptyText: 'No events yet.', columns: [
    { key: 'timestamp', label: 'When', render: (e) => when(e.timestamp) }, { key: 'event', label: 'Event', cls: 'mono' },
    { key: 'user_id', label: 'By', render: (e) => email(e.user_id) }, { key: 'ip', label: 'IP', cls: 'mono small' },
    { key: 'details', label: 'Details', cls: 'dim small', render: (e) => Object.entries(e.details || {}).map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' · ') }] }),
  h('div', { class: 'filters' }, offset > 0 ? h('a', { href: '#', onclick: (e) => { e.preventDefault(); setQuery({ offset: Math.max(0, offset - limit) }); } }, '← Newer') : null,
    h('span', { class: 'dim small' }, `${log.total ? offset + 1 : 0}–${offset + log.events.length} of ${fmtNum(log.total)}`),
    offset + limit < log.total ? h('a', { href: '#', onclick: (e) => { e.preventDefault(); setQuery({ offset: offset + limit }); } }, 'Older →') : null));
}

const PRICE_FIELDS = [['input_per_1m_usd', 'Input $/1M'], ['output_per_1m_usd', 'Output $/1M'], ['cache_read_per_1m_usd', 'Cache read $/1M'], ['thinking_per_1m_usd', 'Thinking $/1M']];

async function pricing(box) {
  const rows = await api('GET', '/api/costs/models');
  const admin = isAdmin() && seesAllProjects();
  const msg = h('span', { class: 'dim', role: 'status' });
  const form = (m, onDone) => h('form', { class: 'filters price-form', onsubmit: async (e) => {
    e.preventDefault(); const f = e.target;
    const body = { provider: f.provider.value, model_id: f.model_id.value, display_name: f.display_name.value || f.model_id.value, notes: f.notes.value || null };
    for (const [k] of PRICE_FIELDS) body[k] = Number(f[k].value || 0);
    try { await (m ? api('PATCH', `/api/costs/models/${encodeURIComponent(m.id)}`, body) : api('POST', '/api/costs/models', body)); onDone(); } catch (x) { msg.textContent = writeError(x); }
  } }, h('label', {}, 'Provider', h('input', { name: 'provider', required: true, value: m ? m.provider : '' })), h('label', {}, 'Model id', h('input', { name: 'model_id', required: true, value: m ? m.model_id : '', readonly: Boolean(m) })),
  h('label', {}, 'Display name', h('input', { name: 'display_name', value: m ? m.display_name : '' })),
  PRICE_FIELDS.map(([k, l]) => h('label', {}, l, h('input', { name: k, type: 'number', step: 'any', min: 0, value: m ? m[k] : '' }))),
  h('label', {}, 'Notes', h('input', { name: 'notes', value: m && m.notes ? m.notes : '' })), h('button', { type: 'submit' }, m ? 'Save new price' : 'Add model'), msg);
  const active = rows.filter((m) => m.is_active);
  fill(box, admin ? [h('h2', {}, 'Add a model'), form(null, () => state.rerender())] : null,
    h('h2', {}, `Active prices (${active.length})`),
    table({ id: 'pricing', rows: active, search: 'search models…', sortKey: 'model_id', desc: false, pageSize: 25, rowAttrs: (m) => ({ 'data-model': m.model_id }), columns: [
      { key: 'provider', label: 'Provider' }, { key: 'model_id', label: 'Model', cls: 'mono' }, { key: 'display_name', label: 'Name' },
      ...PRICE_FIELDS.map(([k, l]) => ({ key: k, label: l, num: true, render: (m) => `$${Number(m[k] || 0).toFixed(2)}` })),
      { key: 'effective_from', label: 'Since', render: (m) => when(m.effective_from) }, { key: 'is_custom', label: 'Source', render: (m) => m.is_custom ? 'custom' : 'built-in' },
      { key: 'actions', label: '', sortable: false, render: (m) => admin ? h('div', { class: 'row-actions' },
        h('button', { class: 'secondary small', onclick: (e) => { const tr = e.target.closest('tr'); tr.after(h('tr', { class: 'edit-row' }, h('td', { colspan: 11 }, form(m, () => state.rerender())))); e.target.disabled = true; } }, 'Edit'),
        h('button', { class: 'danger small', onclick: async (e) => { e.target.disabled = true; try { await api('DELETE', `/api/costs/models/${encodeURIComponent(m.id)}`); state.rerender(); } catch (x) { msg.textContent = writeError(x); } } }, 'Retire')) : null }] }),
    rows.length > active.length ? [h('h2', {}, 'Retired and earlier prices'), table({ id: 'pricing-history', rows: rows.filter((m) => !m.is_active), sortKey: 'effective_to', pageSize: 10, columns: [
      { key: 'model_id', label: 'Model', cls: 'mono' }, ...PRICE_FIELDS.slice(0, 2).map(([k, l]) => ({ key: k, label: l, num: true, render: (m) => `$${Number(m[k] || 0).toFixed(2)}` })),
      { key: 'effective_from', label: 'From', render: (m) => when(m.effective_from) }, { key: 'effective_to', label: 'To', render: (m) => when(m.effective_to) }] })] : null);
}

async function providers(box) {
  const cfg = await api('GET', '/api/settings');
  const msg = h('span', { class: 'dim', role: 'status' });
  const provs = Object.entries(cfg.ai_providers || {});
  fill(box, h('form', { id: 'instance-settings', onsubmit: async (e) => {
    e.preventDefault(); const f = e.target; const ai = {};
    for (const [p] of provs) ai[p] = { api_key: f[`${p}-key`].value, model: f[`${p}-model`].value, base_url: f[`${p}-url`] ? f[`${p}-url`].value : '' };
    try { await api('PUT', '/api/settings', { redact_payloads: f.redact.checked, ai_providers: ai }); msg.textContent = 'Saved.'; } catch (x) { msg.textContent = writeError(x); }
  } },
  h('h2', {}, 'Payload redaction'),
  h('label', { class: 'inline' }, h('input', { type: 'checkbox', name: 'redact', checked: Boolean(cfg.redact_payloads) }), ' Drop inputs, outputs, prompts, completions and error text of new spans before they are stored'),
  h('h2', {}, 'AI providers (root-cause reports)'),
  h('table', {}, h('thead', {}, h('tr', {}, ['Provider', 'Configured', 'API key', 'Model', 'Base URL'].map((c) => h('th', {}, c)))),
    h('tbody', {}, provs.map(([p, v]) => h('tr', { 'data-provider': p }, h('td', {}, p), h('td', {}, v.configured ? badge('configured', 'ok') : badge('not set', 'plain')),
      h('td', {}, h('input', { name: `${p}-key`, type: 'password', autocomplete: 'off', placeholder: v.api_key || 'paste a key', 'aria-label': `${p} API key` })),
      h('td', {}, h('input', { name: `${p}-model`, value: v.model || '', 'aria-label': `${p} model` })),
      h('td', {}, p === 'ollama' ? h('input', { name: `${p}-url`, value: v.base_url || '', 'aria-label': 'Ollama base URL' }) : h('span', { class: 'dim' }, '—')))))),
  h('p', {}, h('button', { type: 'submit' }, 'Save settings'), ' ', msg)));
}

// Where alerts go (Slack) and which kinds fire: the same form as under Alerts.
async function channels(box) {
  fill(box, await alertSettings(), h('p', { class: 'dim small' }, 'The alert feed itself is under ', h('a', { href: '#/alerts' }, 'Alerts'), '.'));
}

async function instance(box) {
  const [info, ready] = await Promise.all([maybe('/api/instance', {}), fetch('/api/readiness', { credentials: 'same-origin' }).then((r) => r.json()).catch(() => ({}))]);
  const storage = Object.entries(ready.storage || {});
  const topology = { none: 'not configured', standalone: 'standalone', tls: 'standalone over TLS', sentinel: 'Sentinel', cluster: 'cluster' }[info.redis_topology];
  const redisText = !info.redis_topology ? '—' : info.redis_topology === 'none' ? topology
    : `${topology}${info.redis_tls && info.redis_topology !== 'tls' ? ' over TLS' : ''}${info.redis_nodes > 1 ? ` · ${info.redis_nodes} nodes` : ''}`;
  fill(box, cards([['Version', info.version || ready.version || '—'], ['Readiness', ready.status ? badge(ready.status === 'ready' ? 'ready' : 'not ready', ready.status === 'ready' ? 'ok' : 'bad') : '—'],
    ['Storage mode', info.storage_mode || '—'], ['Workers', info.workers ? `${fmtNum(info.workers)}${info.worker_id != null ? ` (this is #${info.worker_id + 1})` : ''}` : '—'],
    ['Redis', h('span', { id: 'redis-topology' }, redisText, ' ', ready.storage && ready.storage.redis ? badge(ready.storage.redis, ready.storage.redis === 'ok' ? 'ok' : 'warn') : null)]]),
  h('h2', {}, 'Backends'), storage.length ? h('table', { id: 'backends' }, h('tbody', {}, storage.map(([k, v]) => h('tr', {}, h('td', {}, k), h('td', {}, badge(v, v === 'ok' ? 'ok' : 'bad')))))) : empty('No backend report.'),
  h('h2', {}, 'You'), h('dl', { class: 'facts' }, h('dt', {}, 'Signed in as'), h('dd', {}, state.me.email || 'API key'), h('dt', {}, 'Role'), h('dd', {}, state.me.role),
    h('dt', {}, 'Project'), h('dd', {}, state.me.project_id ? `bound to ${(state.projects.find((p) => p.id === state.me.project_id) || {}).name || state.me.project_id}` : isAdmin() ? 'every project' : 'your projects')),
  state.me.email ? passwordForm() : null);
}

// Your own password (`POST /api/users/me/change-password`): the other sessions of your account end, this one
// stays. Sent with fetch rather than `api()`, whose 401 means "logged out": here it means a wrong current
// password, and the session is still good.
function passwordForm() {
  const msg = h('span', { class: 'dim', role: 'status', id: 'password-status' });
  const field = (name, label, auto) => h('label', {}, label, h('input', { name, type: 'password', autocomplete: auto, required: true, maxlength: 128, ...(auto === 'new-password' ? { minlength: 12 } : {}) }));
  return [h('h2', {}, 'Change your password'),
    h('form', { id: 'change-password', class: 'filters', onsubmit: async (e) => {
      e.preventDefault();
      const f = e.target;
      if (f.new_password.value !== f.confirm.value) { msg.textContent = 'The new passwords do not match.'; return; }
      msg.textContent = 'Saving…';
      try {
        const r = await fetch('/api/users/me/change-password', { method: 'POST', credentials: 'same-origin',
          headers: { 'Content-Type': 'application/json', 'X-LangSight-CSRF': '1' },
          body: JSON.stringify({ current_password: f.current_password.value, new_password: f.new_password.value }) });
        msg.textContent = r.ok ? 'Password changed. Your other sessions were signed out and the API keys you created were revoked.'
          : r.status === 401 ? 'The current password is not right.'
          : r.status === 422 ? 'The new password is too weak: use 12 to 128 characters and avoid common passwords.'
          : r.status === 429 ? 'Too many attempts just now. Wait a minute, then try again.'
          : 'That did not work. Try again in a moment.';
        if (r.ok) f.reset();
      } catch (_) { msg.textContent = 'That did not work. Try again in a moment.'; }
    } },
    field('current_password', 'Current password', 'current-password'), field('new_password', 'New password', 'new-password'),
    field('confirm', 'Repeat the new password', 'new-password'), h('button', { type: 'submit' }, 'Change password'), msg)];
}
