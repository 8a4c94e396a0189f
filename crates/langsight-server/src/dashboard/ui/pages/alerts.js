// Alerts: what needs attention now, and what happened before? The feed by status, with ack / snooze /
// resolve for admins, messages as safe markdown with links to their session, and the alert settings.
import { h, fill, badge, enc, markdown } from '../dom.js';
import { api, isAdmin, query, state, writeError } from '../api.js';
import { when } from '../format.js';

export default async function alerts(main) {
  const q = query(); const status = q.get('status') || 'active';
  const offset = Math.max(0, Number(q.get('offset') || 0)), page = 50;
  const feed = await api('GET', `/api/alerts/feed?status=${enc(status)}&limit=${page}&offset=${offset}`);
  const pager = h('div', { class: 'filters' },
    offset > 0 ? h('a', { href: `#/alerts?status=${status}&offset=${Math.max(0, offset - page)}` }, '← Newer') : null,
    h('span', { class: 'dim small' }, `${feed.total ? offset + 1 : 0}–${offset + feed.alerts.length} of ${feed.total}`),
    offset + page < feed.total ? h('a', { href: `#/alerts?status=${status}&offset=${offset + page}` }, 'Older →') : null);
  const act = (id, what, body) => async (e) => { e.target.disabled = true; try { await api('POST', `/api/alerts/${enc(id)}/${what}`, body || {}); } finally { state.rerender(); } };
  fill(main, h('h1', {}, 'Alerts'),
    h('div', { class: 'filters' }, ['active', 'acked', 'snoozed', 'resolved', 'all'].map((x) => h('a', { href: `#/alerts?status=${x}`, class: x === status ? 'badge ok' : 'badge' }, x))),
    h('table', { id: 'alerts' }, h('thead', {}, h('tr', {}, ['Fired', 'Severity', 'Alert', 'Server', 'Status', ''].map((c) => h('th', {}, c)))),
      h('tbody', {}, feed.alerts.map((a) => h('tr', { 'data-alert': a.id },
        h('td', {}, when(a.fired_at)), h('td', {}, badge(a.severity)), h('td', {}, h('div', {}, a.title), h('div', { class: 'dim small msg' }, markdown(a.message)),
          a.session_id ? h('a', { class: 'small session-link', href: `#/sessions/${enc(a.session_id)}` }, 'Open session →') : null),
        h('td', {}, a.server_name ? h('a', { href: `#/servers/${enc(a.server_name)}` }, a.server_name) : '—'), h('td', {}, badge(a.status, a.status === 'active' ? 'warn' : null)),
        h('td', {}, isAdmin() && a.status !== 'resolved' ? h('div', { class: 'row-actions' },
          a.status === 'active' ? h('button', { class: 'secondary', onclick: act(a.id, 'ack', { acked_by: state.me.email || 'dashboard' }) }, 'Ack') : null,
          h('button', { class: 'secondary', onclick: act(a.id, 'snooze', { minutes: 60 }) }, 'Snooze 1 h'),
          h('button', { class: 'secondary', onclick: act(a.id, 'resolve') }, 'Resolve')) : null))))),
    feed.alerts.length ? pager : h('p', { class: 'dim' }, `No ${status} alerts.`),
    isAdmin() ? await alertSettings() : null);
}

export async function alertSettings() {
  const cfg = await api('GET', '/api/alerts/config');
  const hook = h('input', { id: 'slack-webhook', type: 'url', placeholder: cfg.webhook_configured ? '(configured — leave empty to keep)' : 'https://hooks.slack.com/services/…' });
  const boxes = Object.entries(cfg.alert_types).map(([k, v]) => h('label', { class: 'small' }, h('span', {}, h('input', { type: 'checkbox', name: k, checked: v }), ` ${k}`)));
  const msg = h('span', { class: 'dim', role: 'status' });
  return h('section', { 'aria-labelledby': 'alert-settings' }, h('h2', { id: 'alert-settings' }, 'Alert channels and types'),
    h('form', { class: 'filters', onsubmit: async (e) => {
      e.preventDefault();
      const types = {}; e.target.querySelectorAll('input[type=checkbox]').forEach((c) => { types[c.name] = c.checked; });
      try { await api('POST', '/api/alerts/config', { slack_webhook: hook.value || null, alert_types: types }); msg.textContent = 'Saved.'; }
      catch (err) { msg.textContent = writeError(err); }
    } }, h('label', { for: 'slack-webhook' }, 'Slack webhook', hook), boxes, h('button', { type: 'submit' }, 'Save'),
    h('button', { type: 'button', class: 'secondary', onclick: async () => { try { await api('POST', '/api/alerts/test', {}); msg.textContent = 'Test alert sent.'; } catch (err) { msg.textContent = writeError(err); } } }, 'Send a test'), msg));
}
