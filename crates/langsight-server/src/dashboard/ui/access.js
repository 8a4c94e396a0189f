// Getting in: the login form, the first-run form (no user exists yet), the invitation page, and which
// project a user who cannot see every project starts in.
import { h } from './dom.js';
import { state, seesAllProjects, forgetProjects } from './api.js';

export function loginView() {
  const err = h('p', { class: 'error', role: 'alert' });
  const email = h('input', { id: 'email', type: 'email', autocomplete: 'username', required: true });
  const password = h('input', { id: 'password', type: 'password', autocomplete: 'current-password', required: true });
  return h('form', { class: 'login', onsubmit: async (e) => {
    e.preventDefault(); err.textContent = '';
    const r = await fetch('/api/auth/login', { method: 'POST', headers: { 'Content-Type': 'application/json' }, credentials: 'same-origin',
      body: JSON.stringify({ email: email.value, password: password.value }) });
    if (!r.ok) { err.textContent = await answerText(r, `Login failed (HTTP ${r.status})`); return; }
    state.me = null; state.rerender();
  } },
  h('h1', {}, 'Lang', h('span', {}, 'Sight')),
  h('label', { for: 'email' }, 'Email', email), h('label', { for: 'password' }, 'Password', password),
  h('button', { type: 'submit' }, 'Log in'), err);
}

// Puts a caller who cannot see every project into one they may read: their binding, else the remembered
// choice if it is still theirs, else their first membership.
export function pickProject() {
  if (seesAllProjects()) return;
  const mine = state.projects.map((p) => p.id);
  const chosen = state.me.project_id || (mine.includes(state.project) ? state.project : mine[0] || '');
  if (state.me.project_id && !mine.includes(chosen)) state.projects = [{ id: chosen, name: chosen }, ...state.projects];
  if (chosen !== state.project) { state.project = chosen; localStorage.setItem('ls.project', chosen); }
}

export function noProjectView() {
  return [h('h1', {}, 'No project yet'), h('p', { id: 'no-project' }, 'You are not a member of any project yet. Ask an admin to add you to one; your data appears here as soon as they do.')];
}

export async function signedOutView() {
  let setup = null;
  try { const r = await fetch('/api/setup/status', { credentials: 'same-origin' }); if (r.ok) setup = await r.json(); } catch (_) { setup = null; }
  return setup && setup.needs_setup ? setupView(setup) : loginView();
}

// Turns a failed JSON answer into one sentence: FastAPI-style 422 lists give their first message.
async function answerText(r, fallback) {
  const d = await r.json().catch(() => ({}));
  if (typeof d.detail === 'string') return d.detail;
  if (Array.isArray(d.detail) && d.detail[0] && d.detail[0].msg) return d.detail[0].msg;
  return fallback;
}

async function loginWith(email, password) {
  const r = await fetch('/api/auth/login', { method: 'POST', headers: { 'Content-Type': 'application/json' }, credentials: 'same-origin', body: JSON.stringify({ email, password }) });
  if (!r.ok) throw new Error(await answerText(r, 'Your account is ready, but logging in failed: log in with your new password.'));
}

function passwordFields(prefix) {
  const password = h('input', { id: `${prefix}-password`, type: 'password', autocomplete: 'new-password', required: true, maxlength: 128 });
  const again = h('input', { id: `${prefix}-password2`, type: 'password', autocomplete: 'new-password', required: true });
  return { password, again, labels: [h('label', { for: password.id }, 'Password (at least 12 characters)', password), h('label', { for: again.id }, 'Repeat the password', again)] };
}

function setupView(setup) {
  const hashQuery = new URLSearchParams(location.hash.split('?')[1] || '');
  const err = h('p', { class: 'error', role: 'alert' });
  const email = h('input', { id: 'setup-email', type: 'email', autocomplete: 'username', required: true });
  const pw = passwordFields('setup');
  const token = h('input', { id: 'setup-token', autocomplete: 'off', value: hashQuery.get('token') || '', required: !setup.local });
  const busy = h('button', { type: 'submit' }, 'Create admin and log in');
  return h('form', { class: 'login', id: 'setup', onsubmit: async (e) => {
    e.preventDefault(); err.textContent = '';
    if (pw.password.value !== pw.again.value) { err.textContent = 'The two passwords differ.'; return; }
    busy.disabled = true;
    try {
      const body = { email: email.value, password: pw.password.value };
      if (token.value.trim()) body.token = token.value.trim();
      const r = await fetch('/api/setup/admin', { method: 'POST', headers: { 'Content-Type': 'application/json' }, credentials: 'same-origin', body: JSON.stringify(body) });
      if (r.status === 409) { state.me = null; state.rerender(); return; }
      if (!r.ok) throw new Error(await answerText(r, 'The admin could not be created. Reload the page and try again.'));
      await loginWith(email.value, pw.password.value);
      history.replaceState(null, '', '/#/welcome');
      state.me = null; forgetProjects(); state.rerender();
    } catch (x) { err.textContent = x.message; busy.disabled = false; }
  } },
  h('h1', {}, 'Lang', h('span', {}, 'Sight')),
  h('p', {}, 'Welcome! No account exists yet: create the first admin.'),
  setup.local ? null : h('p', { class: 'dim small' }, 'You are not on the server\u2019s own machine, so paste the one-time setup token from the server\u2019s start-up log.'),
  h('label', { for: 'setup-email' }, 'Email', email), pw.labels,
  setup.local ? null : h('label', { for: 'setup-token' }, 'Setup token', token),
  busy, err);
}

// The page behind an invitation link (`/accept-invite?token=…`): set a password, then land logged in.
export function acceptInviteView() {
  const token = new URLSearchParams(location.search).get('token') || '';
  const err = h('p', { class: 'error', role: 'alert' });
  const head = h('h1', {}, 'Lang', h('span', {}, 'Sight'));
  if (!/^[0-9a-f]{64}$/i.test(token)) {
    return h('div', { class: 'login', id: 'accept-invite' }, head, h('p', { class: 'error', role: 'alert' }, 'This invitation link is incomplete. Open the whole link from your invitation, or ask an admin for a new one.'));
  }
  const pw = passwordFields('invite');
  const busy = h('button', { type: 'submit' }, 'Set password and log in');
  return h('form', { class: 'login', id: 'accept-invite', onsubmit: async (e) => {
    e.preventDefault(); err.textContent = '';
    if (pw.password.value !== pw.again.value) { err.textContent = 'The two passwords differ.'; return; }
    busy.disabled = true;
    try {
      const r = await fetch('/api/users/accept-invite', { method: 'POST', headers: { 'Content-Type': 'application/json' }, credentials: 'same-origin', body: JSON.stringify({ token, password: pw.password.value }) });
      if (r.status === 404) throw new Error('This invitation link is not valid. Ask an admin for a new one.');
      if (!r.ok) throw new Error(await answerText(r, 'Your account could not be created. Ask an admin for a new invitation.'));
      const user = await r.json();
      await loginWith(user.email, pw.password.value);
      history.replaceState(null, '', '/#/overview');
      state.me = null; forgetProjects(); state.rerender();
    } catch (x) { err.textContent = x.message; busy.disabled = false; }
  } }, head, h('p', {}, 'You were invited to LangSight. Choose a password to finish creating your account.'), pw.labels, busy, err);
}
