// LangSight dashboard: the shell. It finds out who is logged in, draws the header and navigation, applies
// the theme, and hands the main area to one page module (ui/pages/*.js, loaded on first use). No build step
// and no framework: every module is served as written from the binary, and every user-supplied string
// reaches the page through textContent (ui/dom.js), never as HTML.
import { h, fill, badge } from './ui/dom.js';
import { state, api, seesAllProjects, friendlyError, forgetProjects } from './ui/api.js';
import { signedOutView, acceptInviteView, pickProject, noProjectView } from './ui/access.js';

// Navigation: [route, label, module]. A route with an argument (#/sessions/<id>) goes to the detail module.
const NAV = [
  ['overview', 'Overview'], ['sessions', 'Sessions'], ['live', 'Live'], ['agents', 'Agents'], ['lineage', 'Lineage'],
  ['servers', 'MCP servers'], ['security', 'Security'], ['alerts', 'Alerts'], ['costs', 'Costs'], ['slos', 'SLOs'],
  ['projects', 'Projects'], ['keys', 'API keys'], ['settings', 'Settings'],
];
const PAGES = {
  overview: () => import('./ui/pages/overview.js'), sessions: () => import('./ui/pages/sessions.js'), session: () => import('./ui/pages/session.js'),
  live: () => import('./ui/pages/live.js'), servers: () => import('./ui/pages/servers.js'), server: () => import('./ui/pages/server.js'),
  alerts: () => import('./ui/pages/alerts.js'), costs: () => import('./ui/pages/costs.js'), slos: () => import('./ui/pages/slos.js'),
  agents: () => import('./ui/pages/agents.js'), agent: () => import('./ui/pages/agent.js'), lineage: () => import('./ui/pages/lineage.js'),
  security: () => import('./ui/pages/security.js'), settings: () => import('./ui/pages/settings.js'), projects: () => import('./ui/pages/projects.js'),
  keys: () => import('./ui/pages/keys.js'), welcome: () => import('./ui/pages/welcome.js'),
};
const DETAIL = { sessions: 'session', servers: 'server', agents: 'agent' };

function route() {
  const [page, ...rest] = (location.hash.replace(/^#\/?/, '').split('?')[0] || 'overview').split('/');
  return { page, arg: rest.map(decodeURIComponent).join('/') };
}

// --- Theme: follows the system (prefers-color-scheme) until the user picks one; the pick is remembered.
const THEMES = ['system', 'light', 'dark'];
function applyTheme() {
  const t = localStorage.getItem('ls.theme') || 'system';
  if (t === 'system') delete document.documentElement.dataset.theme; else document.documentElement.dataset.theme = t;
  return t;
}
function themeButton() {
  const label = (t) => `Theme: ${t}`;
  const b = h('button', { class: 'secondary small', id: 'theme-toggle', title: 'Switch between the system theme, light and dark', onclick: () => {
    const next = THEMES[(THEMES.indexOf(localStorage.getItem('ls.theme') || 'system') + 1) % THEMES.length];
    localStorage.setItem('ls.theme', next); b.textContent = label(applyTheme());
  } }, label(applyTheme()));
  return b;
}

let generation = 0, lastPage = null, lastArg = null;
async function render() {
  const mine = ++generation;
  const app = document.getElementById('app');
  const { page, arg } = route();
  // Leaving a page ends its live stream and its refresh timers.
  if (state.live) { state.live.close(); state.live = null; }
  state.timers.splice(0).forEach(clearInterval);
  if (!state.me) {
    // Whoever logs in next may see other projects: their list is read afresh.
    forgetProjects();
    try { state.me = await (await fetch('/api/auth/me', { credentials: 'same-origin' })).json(); if (!state.me.role) state.me = null; }
    catch (_) { state.me = null; }
  }
  if (location.pathname === '/accept-invite') { app.replaceChildren(acceptInviteView()); return; }
  if (!state.me) { app.replaceChildren(await signedOutView()); return; }
  // Read once per login, not on every navigation (an admin with no project would otherwise ask each time);
  // the Projects page forgets it after creating, renaming or deleting a project.
  if (!state.projectsLoaded && !state.me.project_id) {
    try { state.projects = await api('GET', '/api/projects'); state.projectsLoaded = true; }
    catch (e) { state.projects = []; state.projectsLoaded = Boolean(e && e.status >= 400 && e.status < 500); }
  }
  // A project-bound key may not list projects: it reads its own by id (for its name in the picker).
  if (state.me.project_id && !state.projects.some((p) => p.id === state.me.project_id)) {
    try { state.projects = [await api('GET', `/api/projects/${encodeURIComponent(state.me.project_id)}`)]; } catch (_) { /* pickProject names it by id */ }
  }
  pickProject();
  const nav = page === 'session' ? 'sessions' : page;
  const main = h('main', { id: 'main' }, h('p', { class: 'dim' }, 'Loading…'));
  const projectPick = h('select', { 'aria-label': 'Project', onchange: (e) => { state.project = e.target.value; localStorage.setItem('ls.project', state.project); render(); } },
    seesAllProjects() ? h('option', { value: '' }, 'All projects') : null,
    state.projects.map((p) => h('option', { value: p.id, selected: p.id === state.project }, p.name)));
  app.replaceChildren(
    h('header', { class: 'top' },
      h('a', { class: 'brand', href: '#/overview' }, 'Lang', h('span', {}, 'Sight')),
      h('div', { class: 'spacer' }),
      projectPick, themeButton(),
      h('span', { class: 'who' }, `${state.me.email || 'API key'} · `, badge(state.me.role)),
      state.me.email ? h('button', { class: 'secondary', onclick: logout }, 'Log out') : null),
    h('div', { class: 'shell' },
      h('nav', { class: 'main', 'aria-label': 'Main' }, NAV.map(([id, label]) => h('a', { href: `#/${id}`, class: nav === id ? 'on' : '', 'aria-current': nav === id ? 'page' : null }, label))),
      main));
  if (!state.project && !seesAllProjects()) { fill(main, noProjectView()); return; }
  const key = arg && DETAIL[page] ? DETAIL[page] : page;
  const load = PAGES[key];
  if (!load || (key === 'session' || key === 'server' || key === 'agent') && !arg) { notFound(main); return; }
  // A new page starts at the top (the hash router keeps the old page's scroll position otherwise).
  if (page !== lastPage || arg !== lastArg) { window.scrollTo(0, 0); lastPage = page; lastArg = arg; }
  try {
    const mod = await load();
    if (mine !== generation) return;
    await mod.default(main, arg);
  } catch (e) { if (mine === generation) fill(main, friendlyError(e)); }
}
state.rerender = render;

function notFound(main) {
  fill(main, h('h1', { id: 'not-found' }, 'Page not found'),
    h('p', { class: 'dim' }, `There is no page at ${location.hash || '/'}.`),
    h('p', {}, h('a', { href: '#/overview' }, '← Overview')));
}

async function logout() {
  await fetch('/api/auth/logout', { method: 'POST', headers: { 'X-LangSight-CSRF': '1' }, credentials: 'same-origin' });
  state.me = null; forgetProjects(); render();
}

applyTheme();
window.addEventListener('hashchange', render);
render();
