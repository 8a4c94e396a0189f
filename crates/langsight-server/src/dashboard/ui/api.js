// The API client and the page state shared by every module. The session cookie authenticates; writes carry
// the CSRF header (a cross-site form cannot send it).
import { h } from './dom.js';

// `projects` is read once per login (`projectsLoaded`): an admin with no project does not ask again on every
// navigation. forgetProjects() drops it after a project is created, renamed or deleted.
export const state = { me: null, project: localStorage.getItem('ls.project') || '', projects: [], projectsLoaded: false, live: null, timers: [], rerender: () => {} };
export function forgetProjects() { state.projects = []; state.projectsLoaded = false; }

export const isAdmin = () => Boolean(state.me && state.me.role === 'admin');
// Instance admins may look across projects; everyone else (viewers, members, project-bound keys) reads one
// project at a time, and the API needs to know which.
export const seesAllProjects = () => isAdmin() && !state.me.project_id;

// Paths that are account- or instance-level: the chosen project is not added to them.
const GLOBAL = ['/api/auth/', '/api/settings', '/api/users', '/api/audit', '/api/status', '/api/instance'];

export async function api(method, path, body) {
  return (await request(method, path, body)).data;
}

// The same request, with the response's headers too (e.g. the sessions list's counts).
export async function request(method, path, body) {
  const sep = path.includes('?') ? '&' : '?';
  const global = GLOBAL.some((p) => path.startsWith(p))
    || (path.startsWith('/api/projects') && !path.startsWith('/api/projects/prevention-config'));
  const scoped = state.project && !global ? `${path}${sep}project_id=${encodeURIComponent(state.project)}` : path;
  const opts = { method, headers: { 'X-LangSight-CSRF': '1' }, credentials: 'same-origin' };
  if (body !== undefined) { opts.headers['Content-Type'] = 'application/json'; opts.body = JSON.stringify(body); }
  const r = await fetch(scoped, opts);
  if (r.status === 401) { state.me = null; state.rerender(); const e = new Error('Please log in again.'); e.status = 401; throw e; }
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!r.ok) {
    const err = new Error(data && data.detail ? (typeof data.detail === 'string' ? data.detail : JSON.stringify(data.detail)) : `HTTP ${r.status}`);
    err.status = r.status; throw err;
  }
  return { data, headers: r.headers };
}

// The sessions list (`path` has a query string) with the API's counts (`counts=true`): `rows` (at most the
// list's limit) and `total` / `failed`, the sessions of the range that match. The API counts the newest
// 10,000 sessions of a window, so a total of COUNT_CAP means "at least" (fmtCount shows "≥ 10,000").
export async function sessionsWithCounts(path) {
  const { data, headers } = await request('GET', `${path}&counts=true`);
  const rows = data || [];
  const n = (k) => { const v = headers.get(k); return v === null || v === '' || Number.isNaN(Number(v)) ? null : Number(v); };
  return { rows, total: n('X-Total-Count') ?? rows.length, failed: n('X-Failed-Count') };
}

// A read that may legitimately be unavailable (a backend without the feature, a role without access): the
// page shows `fallback` instead of failing as a whole.
export const maybe = (path, fallback) => api('GET', path).catch((e) => { console.warn('LangSight API', path, e.status, e.message); return fallback; });

// The route's query string (after `?` in the hash) and a way to change it without losing the rest.
export const query = () => new URLSearchParams(location.hash.split('?')[1] || '');
export function setQuery(over) {
  const q = query();
  for (const [k, v] of Object.entries(over)) { if (v === '' || v === null || v === undefined) q.delete(k); else q.set(k, v); }
  const base = location.hash.split('?')[0] || '#/overview';
  const next = `${base}${q.toString() ? `?${q}` : ''}`;
  if (next !== location.hash) location.hash = next; else state.rerender();
}

// Runs `fn` every `ms` while the current page is shown (the shell clears the timers on navigation).
export function every(ms, fn) { state.timers.push(setInterval(fn, ms)); }

// What a page says when a request fails through no fault of the user: plain words, never the API's detail
// (that goes to the console for whoever debugs it).
export function friendlyError(e) {
  console.warn('LangSight API error', e && e.status, e && e.message);
  const s = e && e.status;
  const text = s === 403 ? 'You do not have access to this page in the current project. Choose another project, or ask an admin for access.'
    : s === 404 ? 'This item was not found. It may have been deleted, or it belongs to another project.'
    : s === 429 ? 'Too many requests just now. Wait a minute, then reload the page.'
    : s >= 500 || !s ? 'LangSight could not load this page right now. Try again in a moment.'
    : 'This page could not be loaded for your account. Reload the page, or choose another project.';
  if (e && e.message === 'Please log in again.') return h('p', { class: 'error', role: 'alert' }, e.message);
  return h('div', { class: 'friendly-error', role: 'alert' }, h('p', {}, text), h('p', {}, h('a', { href: '#/overview' }, 'Back to the overview')));
}

// A write's failure, for a form's status line: the API's sentence (the user caused it and can fix it).
export const writeError = (e) => (e && e.status && e.status < 500 && e.message && !e.message.startsWith('HTTP ') ? e.message : 'That did not work. Try again in a moment.');
