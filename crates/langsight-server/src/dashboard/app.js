// LangSight dashboard: one file, no build step, no framework. Every user-supplied string (span payloads, tool
// descriptions, server and agent names) reaches the page through textContent, never as HTML.
'use strict';

const state = { me: null, project: localStorage.getItem('ls.project') || '', projects: [], live: null };

// --- DOM helper: h('div', {class: 'x', onclick: f}, 'text', child…). Strings become text nodes.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const svgNS = 'http://www.w3.org/2000/svg';
function s(tag, attrs) {
  const el = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return el;
}
// Replaces an element's content, skipping absent (null/false) children.
const fill = (el, ...children) => el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
const badge = (text, cls) => h('span', { class: `badge ${String(cls || text || '').replace(/[^a-z_]/gi, '')}` }, text || '—');
const isAdmin = () => state.me && state.me.role === 'admin';
const fmtMs = (ms) => ms == null ? '—' : ms < 2000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
const fmtUsd = (v) => v == null ? '—' : `$${Number(v).toFixed(4)}`;
const when = (t) => t ? new Date(String(t).replace(' ', 'T')).toLocaleString() : '—';

// --- API: the session cookie authenticates; writes carry the CSRF header.
async function api(method, path, body) {
  const sep = path.includes('?') ? '&' : '?';
  // Project-scoped reads and writes get the chosen project; account-level paths do not.
  const global = ['/api/auth/', '/api/settings', '/api/users'].some((p) => path.startsWith(p))
    || (path.startsWith('/api/projects') && !path.startsWith('/api/projects/prevention-config'));
  const scoped = state.project && !global ? `${path}${sep}project_id=${encodeURIComponent(state.project)}` : path;
  const opts = { method, headers: { 'X-LangSight-CSRF': '1' }, credentials: 'same-origin' };
  if (body !== undefined) { opts.headers['Content-Type'] = 'application/json'; opts.body = JSON.stringify(body); }
  const r = await fetch(scoped, opts);
  if (r.status === 401) { state.me = null; render(); throw new Error('Please log in again.'); }
  const text = await r.text();
  const data = text ? JSON.parse(text) : null;
  if (!r.ok) {
    const err = new Error(data && data.detail ? (typeof data.detail === 'string' ? data.detail : JSON.stringify(data.detail)) : `HTTP ${r.status}`);
    err.status = r.status; throw err;
  }
  return data;
}

// --- Shell: header, navigation, project switcher.
const pages = [
  ['overview', 'Overview'], ['sessions', 'Sessions'], ['live', 'Live'], ['servers', 'MCP servers'],
  ['alerts', 'Alerts'], ['costs', 'Costs'], ['slos', 'SLOs'], ['agents', 'Agents'], ['projects', 'Projects'], ['keys', 'API keys'],
];

function route() {
  const [page, ...rest] = (location.hash.replace(/^#\/?/, '').split('?')[0] || 'overview').split('/');
  return { page, arg: rest.map(decodeURIComponent).join('/') };
}

async function render() {
  const app = document.getElementById('app');
  if (state.live && route().page !== 'live') { state.live.close(); state.live = null; }
  if (!state.me) {
    try { state.me = await (await fetch('/api/auth/me', { credentials: 'same-origin' })).json(); if (!state.me.role) state.me = null; }
    catch (_) { state.me = null; }
  }
  if (location.pathname === '/accept-invite') { app.replaceChildren(acceptInviteView()); return; }
  if (!state.me) { app.replaceChildren(await signedOutView()); return; }
  if (!state.projects.length) { try { state.projects = await api('GET', '/api/projects'); } catch (_) { state.projects = []; } }
  pickProject();
  const { page, arg } = route();
  const main = h('main', { id: 'main' }, h('p', { class: 'dim' }, 'Loading…'));
  const projectPick = h('select', { 'aria-label': 'Project', onchange: (e) => { state.project = e.target.value; localStorage.setItem('ls.project', state.project); render(); } },
    seesAllProjects() ? h('option', { value: '' }, 'All projects') : null,
    state.projects.map((p) => h('option', { value: p.id, selected: p.id === state.project }, p.name)));
  app.replaceChildren(
    h('header', { class: 'top' },
      h('div', { class: 'brand' }, 'Lang', h('span', {}, 'Sight')),
      h('nav', { class: 'main', 'aria-label': 'Main' }, pages.map(([id, label]) => h('a', { href: `#/${id}`, class: page === id ? 'on' : '', 'aria-current': page === id ? 'page' : null }, label))),
      h('div', { class: 'spacer' }),
      projectPick,
      h('span', { class: 'who' }, `${state.me.email || 'API key'} · `, badge(state.me.role)),
      h('button', { class: 'secondary', onclick: logout }, 'Log out')),
    main);
  if (!state.project && !seesAllProjects()) { fill(main, noProjectView()); return; }
  const view = { overview, sessions, session, live, servers, server, alerts, costs, slos, agents, projects, keys, welcome }[page === 'sessions' && arg ? 'session' : page === 'servers' && arg ? 'server' : page] || notFound;
  try { await view(main, arg); } catch (e) { fill(main, friendlyError(e)); }
}

async function logout() {
  await fetch('/api/auth/logout', { method: 'POST', headers: { 'X-LangSight-CSRF': '1' }, credentials: 'same-origin' });
  state.me = null; state.projects = []; render();
}

function loginView() {
  const err = h('p', { class: 'error', role: 'alert' });
  const email = h('input', { id: 'email', type: 'email', autocomplete: 'username', required: true });
  const password = h('input', { id: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const form = h('form', { class: 'login', onsubmit: async (e) => {
    e.preventDefault(); err.textContent = '';
    const r = await fetch('/api/auth/login', { method: 'POST', headers: { 'Content-Type': 'application/json' }, credentials: 'same-origin',
      body: JSON.stringify({ email: email.value, password: password.value }) });
    if (!r.ok) { const d = await r.json().catch(() => ({})); err.textContent = d.detail || `Login failed (HTTP ${r.status})`; return; }
    state.me = null; render();
  } },
  h('h1', {}, 'Lang', h('span', { style: null }, 'Sight')),
  h('label', { for: 'email' }, 'Email', email), h('label', { for: 'password' }, 'Password', password),
  h('button', { type: 'submit' }, 'Log in'), err);
  return form;
}

// --- Charts: small SVG line charts. The plot stretches to the card's width (preserveAspectRatio=none, strokes
// kept at 2 px by vector-effect) and its labels are HTML below it, so text is never distorted. A null value is a
// gap, not a zero: the line breaks there and a red marker shows the point (a down server has no latency).
function chart(title, points, key, fmt, labelKey, gapLabel = 'without a value') {
  const w = 300, hgt = 100, top = 6;
  const values = points.map((p) => (p[key] === null || p[key] === undefined ? null : Number(p[key]) || 0));
  const known = values.filter((v) => v !== null), max = Math.max(1e-9, ...known);
  const svg = s('svg', { viewBox: `0 0 ${w} ${hgt}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': `${title} over time` });
  const step = values.length > 1 ? w / (values.length - 1) : w;
  const y = (v) => hgt - 1 - (v / max) * (hgt - 1 - top);
  const runs = []; let run = null;
  values.forEach((v, i) => { if (v === null) { run = null; return; } if (!run) runs.push(run = []); run.push([i * step, y(v)]); });
  if (values.length === 1 && runs.length) runs[0] = [[0, runs[0][0][1]], [w, runs[0][0][1]]];
  const pts = (r) => r.map(([x, yy]) => `${x.toFixed(1)},${yy.toFixed(1)}`).join(' ');
  for (let r of runs) {
    if (r.length === 1) r = [[Math.max(0, r[0][0] - step / 4), r[0][1]], [Math.min(w, r[0][0] + step / 4), r[0][1]]];
    svg.append(s('polygon', { points: `${r[0][0].toFixed(1)},${hgt} ${pts(r)} ${r[r.length - 1][0].toFixed(1)},${hgt}`, fill: '#4da3ff', 'fill-opacity': 0.15 }));
    svg.append(s('polyline', { points: pts(r), fill: 'none', stroke: '#4da3ff', 'stroke-width': 2, 'vector-effect': 'non-scaling-stroke', 'stroke-linejoin': 'round' }));
  }
  const gaps = [];
  values.forEach((v, i) => {
    if (v !== null) return;
    const bw = Math.max(2, Math.min(step * 0.5, 8)), x = Math.min(w - bw, Math.max(0, i * step - bw / 2));
    const mark = s('rect', { class: 'down', x: x.toFixed(1), y: 0, width: bw.toFixed(1), height: hgt, fill: '#f85149', 'fill-opacity': 0.45 });
    const tip = s('title'); tip.textContent = `${gapLabel}${labelKey ? ` · ${String(points[i][labelKey] || '')}` : ''}`; mark.append(tip);
    svg.append(mark); gaps.push(i);
  });
  svg.append(s('line', { x1: 0, y1: hgt - 0.5, x2: w, y2: hgt - 0.5, stroke: '#263040', 'stroke-width': 1, 'vector-effect': 'non-scaling-stroke' }));
  const short = (b) => String(b[labelKey] || '').replace('T', ' ').slice(5, 16);
  const axis = points.length && labelKey ? h('div', { class: 'axis' }, h('span', {}, short(points[0])), points.length > 1 ? h('span', {}, short(points[points.length - 1])) : null) : null;
  const total = known.reduce((a, b) => a + b, 0);
  return h('div', { class: 'chart' }, h('div', { class: 'k' }, `${title} · peak ${fmt(known.length ? Math.max(...known) : 0)}`), svg, axis,
    gaps.length ? h('div', { class: 'small gap-key' }, h('span', { class: 'swatch' }), `${gaps.length} of ${values.length} ${gapLabel}`) : null,
    values.length ? null : h('div', { class: 'dim small' }, 'no data yet'), total === 0 && known.length ? h('div', { class: 'dim small' }, 'all zero') : null);
}

// Scorecard notes come as a list (older servers: one string).
function notesList(notes) {
  const list = (Array.isArray(notes) ? notes : notes ? [notes] : []).filter(Boolean);
  return list.length ? h('ul', { class: 'notes' }, list.map((n) => h('li', {}, n))) : '';
}

// A safe subset of markdown for alert messages, built as DOM nodes (never innerHTML): **bold**, `code`, and
// [links](/path) to same-origin paths or #/routes only. Anything else stays text.
function markdown(text) {
  const out = [], src = String(text || ''), re = /\*\*([^*]+)\*\*|`([^`]+)`|\[([^\]]+)\]\(([^)\s]+)\)/g;
  let last = 0, m;
  while ((m = re.exec(src))) {
    if (m.index > last) out.push(src.slice(last, m.index));
    if (m[1] !== undefined) out.push(h('strong', {}, m[1]));
    else if (m[2] !== undefined) out.push(h('code', {}, m[2]));
    else if (/^(#\/|\/(?![\/\\]))/.test(m[4])) out.push(h('a', { href: m[4] }, m[3]));
    else out.push(m[0]);
    last = re.lastIndex;
  }
  if (last < src.length) out.push(src.slice(last));
  return out;
}

function notFound(main) {
  fill(main, h('h1', { id: 'not-found' }, 'Page not found'),
    h('p', { class: 'dim' }, `There is no page at ${location.hash || '/'}.`),
    h('p', {}, h('a', { href: '#/overview' }, '← Overview')));
}

async function overview(main) {
  const hours = 24;
  const [ts, sessions, breakdown, counts, servers] = await Promise.all([
    api('GET', `/api/monitoring/timeseries?hours=${hours}`), api('GET', `/api/agents/sessions?hours=${hours}&limit=1000`),
    api('GET', `/api/costs/breakdown?hours=${hours}`), api('GET', '/api/alerts/counts'), api('GET', '/api/health/servers').catch(() => [])]);
  const calls = ts.reduce((a, b) => a + b.tool_calls, 0), errors = ts.reduce((a, b) => a + b.errors, 0);
  const tokens = ts.reduce((a, b) => a + b.input_tokens + b.output_tokens, 0);
  const p99 = Math.max(0, ...ts.map((b) => b.p99_latency_ms));
  const card = (k, v) => h('div', { class: 'card' }, h('div', { class: 'k' }, k), h('div', { class: 'v' }, v));
  fill(main, h('h1', {}, 'Overview · last 24 h'),
    h('div', { class: 'cards' }, card('Sessions', sessions.length), card('Tool calls', calls),
      card('Error rate', calls ? `${(errors / calls * 100).toFixed(1)} %` : '—'), card('p99 latency', fmtMs(p99)),
      card('Tokens', tokens.toLocaleString()), card('Cost', fmtUsd(breakdown.total_cost_usd)), card('Active alerts', counts.total)),
    h('div', { class: 'charts' }, chart('Sessions', ts, 'sessions', String, 'bucket'), chart('Error rate', ts, 'error_rate', (v) => `${(v * 100).toFixed(0)} %`, 'bucket'),
      chart('p99 latency', ts, 'p99_latency_ms', fmtMs, 'bucket'), chart('Tokens in', ts, 'input_tokens', (v) => v.toLocaleString(), 'bucket')),
    ts.length ? null : h('p', { class: 'dim' }, 'No spans in the last 24 hours yet.'),
    h('div', { class: 'split' },
      h('section', {}, h('h2', {}, 'Latest sessions'), h('table', {}, h('tbody', {}, sessions.slice(0, 6).map((r) => h('tr', {},
        h('td', { class: 'mono' }, h('a', { href: `#/sessions/${encodeURIComponent(r.session_id)}` }, r.session_id.slice(0, 12))),
        h('td', {}, r.agent_name || '—'), h('td', {}, badge(r.health_tag)), h('td', { class: 'num' }, fmtMs(r.duration_ms))))))),
      h('section', {}, h('h2', {}, 'MCP servers'), h('table', {}, h('tbody', {}, servers.map((r) => h('tr', {},
        h('td', {}, h('a', { href: `#/servers/${encodeURIComponent(r.server_name)}` }, r.server_name)), h('td', {}, badge(r.status)),
        h('td', {}, badge(r.circuit_state || 'closed')), h('td', { class: 'num' }, fmtMs(r.latency_ms)))))))));
}

async function sessions(main) {
  const q = new URLSearchParams(location.hash.split('?')[1] || '');
  const hours = q.get('hours') || '24', agent = q.get('agent') || '', tag = q.get('health') || '', limit = Number(q.get('limit') || 50);
  const apply = (over) => { const n = new URLSearchParams({ hours, agent, health: tag, limit, ...over }); location.hash = `#/sessions?${n}`; };
  const rows = await api('GET', `/api/agents/sessions?hours=${hours}&limit=${limit}${agent ? `&agent_name=${encodeURIComponent(agent)}` : ''}${tag ? `&health_tag=${tag}` : ''}`);
  const agentIn = h('input', { id: 'f-agent', value: agent, placeholder: 'any agent' });
  const tags = ['', 'success', 'success_with_fallback', 'tool_failure', 'timeout', 'loop_detected', 'budget_exceeded', 'circuit_breaker_open', 'schema_drift', 'incomplete'];
  fill(main, h('h1', {}, 'Sessions'),
    h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); apply({ agent: agentIn.value, hours: e.target.hours.value, health: e.target.health.value, limit: 50 }); } },
      h('label', {}, 'Window', h('select', { name: 'hours' }, [1, 6, 24, 72, 168, 720].map((x) => h('option', { value: x, selected: String(x) === hours }, x < 24 ? `${x} h` : `${x / 24} d`)))),
      h('label', { for: 'f-agent' }, 'Agent', agentIn),
      h('label', {}, 'Health', h('select', { name: 'health' }, tags.map((t) => h('option', { value: t, selected: t === tag }, t || 'any')))),
      h('button', { type: 'submit' }, 'Apply')),
    h('table', {}, h('thead', {}, h('tr', {}, ['Session', 'Agent', 'Health', 'Calls', 'Failed', 'Duration', 'Cost', 'Started'].map((c) => h('th', {}, c)))),
      h('tbody', {}, rows.map((r) => h('tr', {},
        h('td', { class: 'mono' }, h('a', { href: `#/sessions/${encodeURIComponent(r.session_id)}` }, r.session_id)),
        h('td', {}, r.agent_name || '—'), h('td', {}, badge(r.health_tag)), h('td', { class: 'num' }, r.tool_calls),
        h('td', { class: 'num' }, r.failed_calls), h('td', { class: 'num' }, fmtMs(r.duration_ms)),
        h('td', { class: 'num' }, fmtUsd(r.est_cost_usd)), h('td', {}, when(r.first_call_at)))))),
    rows.length ? null : h('p', { class: 'dim' }, 'No sessions in this window.'),
    rows.length >= limit ? h('p', {}, h('button', { class: 'secondary', onclick: () => apply({ limit: Math.min(limit + 50, 1000) }) }, 'Load more')) : null);
}

async function session(main, id) {
  const t = await api('GET', `/api/agents/sessions/${encodeURIComponent(id)}?payloads=false`);
  const start = Math.min(...t.spans_flat.map((x) => Date.parse(x.started_at)));
  const end = Math.max(...t.spans_flat.map((x) => Date.parse(x.ended_at)));
  const span = Math.max(1, end - start);
  const rows = [];
  const walk = (node, depth) => {
    const left = (Date.parse(node.started_at) - start) / span * 100, width = Math.max(0.5, (Date.parse(node.ended_at) - Date.parse(node.started_at)) / span * 100);
    const bar = h('div', { class: `bar ${node.status}` }); bar.style.left = `${left}%`; bar.style.width = `${width}%`;
    const payload = h('pre', { class: 'payload', hidden: true });
    // Payloads load on demand, one span at a time (the trace comes without them).
    const show = async (e) => {
      const btn = e.target;
      if (!payload.dataset.loaded) {
        try {
          const full = await api('GET', `/api/agents/sessions/${encodeURIComponent(id)}/spans/${encodeURIComponent(node.span_id)}`);
          payload.textContent = [['input', full.input_json], ['output', full.output_json], ['prompt', full.llm_input], ['completion', full.llm_output], ['error', full.error]]
            .filter(([, v]) => v).map(([k, v]) => `${k}:\n${v}`).join('\n\n') || '(no payload)';
        } catch (err) { payload.textContent = err.message; }
        payload.dataset.loaded = '1';
      }
      payload.hidden = !payload.hidden; btn.setAttribute('aria-expanded', String(!payload.hidden));
    };
    const name = h('div', {}, '\u00a0'.repeat(depth * 3), h('span', { class: 'dim' }, `${node.span_type} `), `${node.server_name}/${node.tool_name}`,
      node.agent_name ? h('span', { class: 'dim' }, ` · ${node.agent_name}`) : null, ' ',
      h('button', { class: 'secondary small', 'aria-expanded': 'false', onclick: show }, 'payload'));
    rows.push(h('div', { class: 'row' }, name, badge(node.status), h('div', { class: 'num' }, fmtMs(node.latency_ms)), h('div', { class: 'timeline' }, bar)), payload);
    (node.children || []).forEach((c) => walk(c, depth + 1));
  };
  t.root_spans.forEach((r) => walk(r, 0));
  const row = t;
  fill(main, h('p', {}, h('a', { href: '#/sessions' }, '← Sessions')), h('h1', { class: 'mono' }, `Session ${id}`),
    h('div', { class: 'cards' }, ...[['Health', badge(row.health_tag)], ['Spans', t.total_spans], ['Tool calls', t.tool_calls], ['Failed', t.failed_calls],
      ['Duration', fmtMs(t.duration_ms)], ['Cost', fmtUsd(row.est_cost_usd)]].map(([k, v]) => h('div', { class: 'card' }, h('div', { class: 'k' }, k), h('div', { class: 'v' }, v)))),
    h('h2', {}, 'Span tree and timeline'), h('div', { class: 'tree', id: 'tree' }, rows));
}

function live(main) {
  const list = h('tbody', { id: 'live-rows' }), filter = h('input', { id: 'live-filter', placeholder: 'filter: server, tool, agent…' });
  const status = h('span', { class: 'dim', id: 'live-status' }, 'connecting…');
  let paused = false; const held = [];
  const pause = h('button', { class: 'secondary', id: 'live-pause', onclick: () => { paused = !paused; pause.textContent = paused ? 'Resume' : 'Pause'; if (!paused) { held.splice(0).forEach(add); } } }, 'Pause');
  const add = (d) => {
    if (paused) { held.push(d); return; }
    const text = `${d.server_name} ${d.tool_name} ${d.agent_name || ''} ${d.session_id || ''}`.toLowerCase();
    const tr = h('tr', { 'data-span': d.span_id, hidden: Boolean(filter.value) && !text.includes(filter.value.toLowerCase()) },
      h('td', {}, when(d.started_at)), h('td', {}, `${d.server_name}/${d.tool_name}`), h('td', {}, d.agent_name || '—'), h('td', {}, badge(d.status)),
      h('td', { class: 'num' }, fmtMs(d.latency_ms)), h('td', { class: 'mono' }, d.session_id ? h('a', { href: `#/sessions/${encodeURIComponent(d.session_id)}` }, d.session_id) : '—'));
    list.prepend(tr); while (list.children.length > 300) list.lastChild.remove();
  };
  filter.addEventListener('input', () => { for (const tr of list.children) tr.hidden = filter.value && !tr.textContent.toLowerCase().includes(filter.value.toLowerCase()); });
  const url = `/api/live/events${state.project ? `?project_id=${encodeURIComponent(state.project)}` : ''}`;
  const es = new EventSource(url, { withCredentials: true });
  state.live = es;
  es.onopen = () => { status.textContent = 'live'; };
  es.onerror = () => { status.textContent = 'reconnecting…'; };
  es.addEventListener('span:new', (e) => { try { add(JSON.parse(e.data)); } catch (_) { /* malformed frame */ } });
  es.addEventListener('missed', () => { status.textContent = 'live (some events were missed while disconnected)'; });
  fill(main, h('h1', {}, 'Live spans'), h('div', { class: 'filters' }, h('label', { for: 'live-filter' }, 'Filter', filter), pause, status),
    h('div', { class: 'live' }, h('table', {}, h('thead', {}, h('tr', {}, ['Started', 'Server/tool', 'Agent', 'Status', 'Latency', 'Session'].map((c) => h('th', {}, c)))), list)));
}

async function servers(main) {
  const rows = await api('GET', '/api/health/servers');
  const check = isAdmin() ? h('button', { id: 'check-now', onclick: async (e) => { e.target.disabled = true; try { await api('POST', '/api/health/check'); } finally { render(); } } }, 'Check now') : null;
  fill(main, h('h1', {}, 'MCP servers'), check,
    h('table', { id: 'servers' }, h('thead', {}, h('tr', {}, ['Server', 'Status', 'Circuit', 'Latency', 'Tools', 'Checked', 'Error'].map((c) => h('th', {}, c)))),
      h('tbody', {}, rows.map((r) => h('tr', { 'data-server': r.server_name },
        h('td', {}, h('a', { href: `#/servers/${encodeURIComponent(r.server_name)}` }, r.server_name)), h('td', {}, badge(r.status)),
        h('td', { class: 'circuit' }, badge(r.circuit_state || 'closed')), h('td', { class: 'num' }, fmtMs(r.latency_ms)),
        h('td', { class: 'num' }, r.tools_count), h('td', {}, when(r.checked_at)), h('td', { class: 'dim' }, r.error || ''))))),
    rows.length ? null : h('p', { class: 'dim' }, 'No MCP servers yet: add them to .langsight.yaml or register them under Projects.'));
}

async function server(main, name) {
  const n = encodeURIComponent(name);
  const [history, drift, card, blast, tools] = await Promise.all([
    api('GET', `/api/health/servers/${n}/history?limit=50`), api('GET', `/api/health/servers/${n}/drift-history`),
    api('GET', `/api/health/servers/${n}/scorecard`).catch(() => null), api('GET', `/api/health/servers/${n}/blast-radius`),
    api('GET', `/api/servers/${n}/tools`).catch(() => [])]);
  const latest = history[0] || {};
  // A down check has no latency: a gap in the chart, never a zero.
  const points = history.slice().reverse().map((r) => ({ latency: r.status === 'down' ? null : r.latency_ms, at: r.checked_at }));
  const toolList = (latest.tools && latest.tools.length ? latest.tools : tools.map((t) => ({ name: t.tool_name, description: t.description })));
  fill(main, h('p', {}, h('a', { href: '#/servers' }, '← MCP servers')), h('h1', {}, name),
    h('div', { class: 'cards' }, ...[['Status', badge(latest.status)], ['Circuit', badge(latest.circuit_state || 'closed')], ['Grade', card ? `${card.grade} (${Number(card.score).toFixed(0)})` : '—'],
      ['Blast radius', `${blast.severity} · ${blast.total_agents_affected} agents`], ['Tools', toolList.length]].map(([k, v]) => h('div', { class: 'card' }, h('div', { class: 'k' }, k), h('div', { class: 'v' }, v)))),
    h('div', { class: 'charts' }, chart('Latency history', points, 'latency', fmtMs, 'at', 'checks down (no latency)')),
    h('div', { class: 'split' },
      h('div', {}, h('h2', {}, 'Tools'), h('table', {}, h('tbody', {}, toolList.map((t) => h('tr', {}, h('td', { class: 'mono' }, t.name), h('td', { class: 'dim' }, t.description || '')))))),
      h('div', {}, h('h2', {}, 'Schema drift'), drift.length ? h('table', {}, h('tbody', {}, drift.map((d) => h('tr', { 'data-drift': d.change_kind }, h('td', {}, when(d.detected_at)), h('td', {}, d.tool_name), h('td', {}, d.change_kind, d.param_name ? h('span', { class: 'mono dim' }, ` ${d.param_name}`) : null),
          // Each row carries its own severity; has_breaking is the whole event's (a compatible row can be in a breaking event).
          h('td', {}, badge(d.drift_type && d.drift_type !== 'unknown' ? d.drift_type : d.has_breaking ? 'breaking' : 'compatible')))))) : h('p', { class: 'dim' }, 'No drift recorded.'),
        h('h2', {}, 'Scorecard'), card ? h('table', {}, h('tbody', {}, card.dimensions.map((d) => h('tr', {}, h('td', {}, d.name), h('td', { class: 'num' }, Number(d.score).toFixed(0)), h('td', { class: 'dim' }, notesList(d.notes)))))) : h('p', { class: 'dim' }, 'No scorecard.'))));
}

async function alerts(main) {
  const q = new URLSearchParams(location.hash.split('?')[1] || ''); const status = q.get('status') || 'active';
  const offset = Math.max(0, Number(q.get('offset') || 0)), page = 50;
  const feed = await api('GET', `/api/alerts/feed?status=${status}&limit=${page}&offset=${offset}`);
  const pager = h('div', { class: 'filters' },
    offset > 0 ? h('a', { href: `#/alerts?status=${status}&offset=${Math.max(0, offset - page)}` }, '← Newer') : null,
    h('span', { class: 'dim small' }, `${feed.total ? offset + 1 : 0}–${offset + feed.alerts.length} of ${feed.total}`),
    offset + page < feed.total ? h('a', { href: `#/alerts?status=${status}&offset=${offset + page}` }, 'Older →') : null);
  const act = (id, what, body) => async (e) => { e.target.disabled = true; try { await api('POST', `/api/alerts/${encodeURIComponent(id)}/${what}`, body || {}); } finally { render(); } };
  fill(main, h('h1', {}, 'Alerts'),
    h('div', { class: 'filters' }, ['active', 'acked', 'snoozed', 'resolved', 'all'].map((x) => h('a', { href: `#/alerts?status=${x}`, class: x === status ? 'badge ok' : 'badge' }, x))),
    h('table', { id: 'alerts' }, h('thead', {}, h('tr', {}, ['Fired', 'Severity', 'Alert', 'Server', 'Status', ''].map((c) => h('th', {}, c)))),
      h('tbody', {}, feed.alerts.map((a) => h('tr', { 'data-alert': a.id },
        h('td', {}, when(a.fired_at)), h('td', {}, badge(a.severity)), h('td', {}, h('div', {}, a.title), h('div', { class: 'dim small msg' }, markdown(a.message)),
          a.session_id ? h('a', { class: 'small session-link', href: `#/sessions/${encodeURIComponent(a.session_id)}` }, 'Open session →') : null),
        h('td', {}, a.server_name), h('td', {}, badge(a.status, a.status === 'active' ? 'warn' : null)),
        h('td', {}, isAdmin() && a.status !== 'resolved' ? h('div', { class: 'row-actions' },
          a.status === 'active' ? h('button', { class: 'secondary', onclick: act(a.id, 'ack', { acked_by: state.me.email || 'dashboard' }) }, 'Ack') : null,
          h('button', { class: 'secondary', onclick: act(a.id, 'snooze', { minutes: 60 }) }, 'Snooze 1 h'),
          h('button', { class: 'secondary', onclick: act(a.id, 'resolve') }, 'Resolve')) : null))))),
    feed.alerts.length ? pager : h('p', { class: 'dim' }, `No ${status} alerts.`),
    isAdmin() ? await alertSettings() : null);
}

async function alertSettings() {
  const cfg = await api('GET', '/api/alerts/config');
  const hook = h('input', { id: 'slack-webhook', type: 'url', placeholder: cfg.webhook_configured ? '(configured — leave empty to keep)' : 'https://hooks.slack.com/services/…' });
  const boxes = Object.entries(cfg.alert_types).map(([k, v]) => h('label', { class: 'small' }, h('span', {}, h('input', { type: 'checkbox', name: k, checked: v }), ` ${k}`)));
  const msg = h('span', { class: 'dim', role: 'status' });
  return h('section', { 'aria-labelledby': 'alert-settings' }, h('h2', { id: 'alert-settings' }, 'Alert settings'),
    h('form', { class: 'filters', onsubmit: async (e) => {
      e.preventDefault();
      const types = {}; e.target.querySelectorAll('input[type=checkbox]').forEach((c) => { types[c.name] = c.checked; });
      try { await api('POST', '/api/alerts/config', { slack_webhook: hook.value || null, alert_types: types }); msg.textContent = 'Saved.'; }
      catch (err) { msg.textContent = err.message; }
    } }, h('label', { for: 'slack-webhook' }, 'Slack webhook', hook), boxes, h('button', { type: 'submit' }, 'Save'), msg));
}

async function costs(main) {
  const b = await api('GET', '/api/costs/breakdown?hours=168');
  fill(main, h('h1', {}, 'Costs · last 7 days'),
    h('div', { class: 'cards' }, ...[['Total', fmtUsd(b.total_cost_usd)], ['LLM', fmtUsd(b.llm_cost_usd)], ['Tools', fmtUsd(b.tool_cost_usd)], ['Calls', b.total_calls]].map(([k, v]) => h('div', { class: 'card' }, h('div', { class: 'k' }, k), h('div', { class: 'v' }, v)))),
    h('h2', {}, 'By tool'), h('table', {}, h('thead', {}, h('tr', {}, ['Server', 'Tool', 'Calls', '$/call', 'Total', 'Type'].map((c) => h('th', {}, c)))),
      h('tbody', {}, b.by_tool.map((r) => h('tr', {}, h('td', {}, r.server_name), h('td', {}, r.tool_name), h('td', { class: 'num' }, r.total_calls), h('td', { class: 'num' }, fmtUsd(r.cost_per_call_usd)), h('td', { class: 'num' }, fmtUsd(r.total_cost_usd)), h('td', {}, r.cost_type))))),
    h('h2', {}, 'By agent'), h('table', {}, h('tbody', {}, b.by_agent.map((r) => h('tr', {}, h('td', {}, r.agent_name), h('td', { class: 'num' }, r.total_calls), h('td', { class: 'num' }, fmtUsd(r.total_cost_usd)))))));
}

async function slos(main) {
  const status = await api('GET', '/api/slos/status');
  const msg = h('span', { class: 'error', role: 'alert' });
  const form = isAdmin() ? h('form', { class: 'filters', onsubmit: async (e) => {
    e.preventDefault(); const f = e.target;
    try { await api('POST', '/api/slos', { agent_name: f.agent.value, metric: f.metric.value, target: Number(f.target.value), window_hours: Number(f.window.value) }); render(); }
    catch (err) { msg.textContent = err.message; }
  } }, h('label', {}, 'Agent', h('input', { name: 'agent', required: true })),
  h('label', {}, 'Metric', h('select', { name: 'metric' }, h('option', { value: 'success_rate' }, 'success rate (%)'), h('option', { value: 'latency_p99' }, 'p99 latency (ms)'))),
  h('label', {}, 'Target', h('input', { name: 'target', type: 'number', step: 'any', required: true })),
  h('label', {}, 'Window (h)', h('input', { name: 'window', type: 'number', value: 24, min: 1, max: 720 })),
  h('button', { type: 'submit' }, 'Add SLO'), msg) : null;
  fill(main, h('h1', {}, 'SLOs'), form, h('table', {}, h('thead', {}, h('tr', {}, ['Agent', 'Metric', 'Target', 'Current', 'Window', 'Status', ''].map((c) => h('th', {}, c)))),
    h('tbody', {}, status.map((r) => h('tr', {}, h('td', {}, r.agent_name), h('td', {}, r.metric), h('td', { class: 'num' }, r.target), h('td', { class: 'num' }, r.current_value == null ? '—' : Number(r.current_value).toFixed(2)), h('td', { class: 'num' }, `${r.window_hours} h`), h('td', {}, badge(r.status)),
      h('td', {}, isAdmin() ? h('button', { class: 'secondary', onclick: async () => { await api('DELETE', `/api/slos/${encodeURIComponent(r.slo_id)}`); render(); } }, 'Delete') : null))))),
  status.length ? null : h('p', { class: 'dim' }, 'No SLOs defined.'));
}

async function agents(main) {
  const [meta, loops, prevention] = await Promise.all([api('GET', '/api/agents/metadata'), api('GET', '/api/agents/loop-counts?hours=168'),
    state.project ? api('GET', '/api/agents/prevention-configs') : Promise.resolve([])]);
  const msg = h('span', { class: 'dim', role: 'status' });
  const fields = [['loop_threshold', 'Loop threshold', 'number'], ['max_steps', 'Max steps', 'number'], ['max_cost_usd', 'Max cost (USD)', 'number'],
    ['max_wall_time_s', 'Max wall time (s)', 'number'], ['cb_failure_threshold', 'Breaker failures', 'number'], ['cb_cooldown_seconds', 'Breaker cooldown (s)', 'number']];
  const current = prevention.find((p) => p.agent_name === '*') || {};
  const form = isAdmin() && state.project ? h('form', { class: 'filters', onsubmit: async (e) => {
    e.preventDefault(); const body = {};
    for (const [k] of fields) { const v = e.target[k].value; if (v !== '') body[k] = Number(v); }
    body.loop_action = e.target.loop_action.value;
    try { await api('PUT', '/api/projects/prevention-config', body); msg.textContent = 'Saved.'; render(); } catch (err) { msg.textContent = err.message; }
  } }, fields.map(([k, label, type]) => h('label', {}, label, h('input', { name: k, type, step: 'any', value: current[k] ?? '' }))),
  h('label', {}, 'On a loop', h('select', { name: 'loop_action' }, ['terminate', 'warn'].map((a) => h('option', { value: a, selected: current.loop_action === a }, a)))),
  h('button', { type: 'submit' }, 'Save project default'), msg) : null;
  const discover = isAdmin() ? h('button', { class: 'secondary', onclick: async (e) => { e.target.disabled = true; try { await api('POST', '/api/agents/discover'); } finally { render(); } } }, 'Discover agents from sessions') : null;
  fill(main, h('h1', {}, 'Agents'), discover,
    h('h2', {}, 'Metadata'), h('table', {}, h('thead', {}, h('tr', {}, ['Agent', 'Status', 'Owner', 'Description', 'Tags'].map((c) => h('th', {}, c)))),
      h('tbody', {}, meta.map((m) => h('tr', {}, h('td', {}, m.agent_name), h('td', {}, badge(m.status)), h('td', {}, m.owner || '—'), h('td', { class: 'dim' }, m.description || ''), h('td', {}, (m.tags || []).join(', ')))))),
    meta.length ? null : h('p', { class: 'dim' }, 'No agent metadata yet: discovery registers the agents seen in the last 30 days of sessions.'),
    h('h2', {}, 'Loops stopped (7 days)'), loops.length ? h('table', {}, h('tbody', {}, loops.map((l) => h('tr', {}, h('td', {}, l.agent_name || '—'), h('td', { class: 'num' }, l.loop_count))))) : h('p', { class: 'dim' }, 'No loops stopped.'),
    h('h2', {}, 'Prevention settings'), state.project ? null : h('p', { class: 'dim' }, 'Choose a project to see and edit its prevention settings.'), form,
    prevention.length ? h('table', {}, h('thead', {}, h('tr', {}, ['Agent', 'Loop', 'Max steps', 'Max cost', 'Breaker', 'Updated'].map((c) => h('th', {}, c)))),
      h('tbody', {}, prevention.map((p) => h('tr', {}, h('td', {}, p.is_default ? 'project default' : p.agent_name), h('td', {}, `${p.loop_threshold} × → ${p.loop_action}`),
        h('td', { class: 'num' }, p.max_steps ?? '—'), h('td', { class: 'num' }, p.max_cost_usd == null ? '—' : fmtUsd(p.max_cost_usd)),
        h('td', {}, `${p.cb_failure_threshold} failures, ${p.cb_cooldown_seconds} s`), h('td', {}, when(p.updated_at)))))) : null);
}

async function projects(main) {
  const list = await api('GET', '/api/projects');
  const users = isAdmin() ? await api('GET', '/api/users').catch(() => []) : [];
  const email = (id) => (users.find((u) => u.id === id) || {}).email || id;
  const msg = h('span', { class: 'error', role: 'alert' });
  const blocks = await Promise.all(list.map(async (p) => {
    const pid = encodeURIComponent(p.id);
    const members = await api('GET', `/api/projects/${pid}/members`).catch(() => []);
    const owner = isAdmin() || p.your_role === 'owner';
    const add = owner && users.length ? h('form', { class: 'filters', onsubmit: async (e) => {
      e.preventDefault();
      try { await api('POST', `/api/projects/${pid}/members`, { user_id: e.target.user.value, role: e.target.role.value }); render(); } catch (err) { msg.textContent = err.message; }
    } }, h('label', {}, 'User', h('select', { name: 'user' }, users.map((u) => h('option', { value: u.id }, u.email)))),
    h('label', {}, 'Role', h('select', { name: 'role' }, ['member', 'viewer', 'owner'].map((r) => h('option', { value: r }, r)))), h('button', { type: 'submit' }, 'Add member')) : null;
    return h('section', {}, h('h2', {}, `${p.name} `, h('span', { class: 'dim small' }, `${p.slug} · you: ${p.your_role || '—'}`)), add,
      h('table', {}, h('tbody', {}, members.map((m) => h('tr', {}, h('td', {}, email(m.user_id)), h('td', {}, badge(m.role)), h('td', {}, when(m.added_at)),
        h('td', {}, owner ? h('button', { class: 'secondary', onclick: async () => { await api('DELETE', `/api/projects/${pid}/members/${encodeURIComponent(m.user_id)}`); render(); } }, 'Remove') : null))))));
  }));
  const create = isAdmin() ? h('form', { class: 'filters', onsubmit: async (e) => {
    e.preventDefault();
    try { await api('POST', '/api/projects', { name: e.target.name.value }); state.projects = []; render(); } catch (err) { msg.textContent = err.message; }
  } }, h('label', {}, 'New project', h('input', { name: 'name', required: true, maxlength: 80 })), h('button', { type: 'submit' }, 'Create'), msg) : null;
  fill(main, h('h1', {}, 'Projects and members'), create, blocks, list.length ? null : h('p', { class: 'dim' }, 'No projects.'));
}

async function keys(main) {
  const list = await api('GET', '/api/auth/api-keys').catch((e) => { if (!isAdmin()) return []; throw e; });
  const shown = h('div', { id: 'new-key' });
  const name = h('input', { id: 'key-name', placeholder: 'name, e.g. ci' });
  const create = isAdmin() ? h('form', { class: 'filters', onsubmit: async (e) => {
    e.preventDefault(); const k = await api('POST', '/api/auth/api-keys', { name: name.value || 'dashboard' });
    await keys(main);
    document.getElementById('new-key').replaceChildren(h('div', { class: 'keybox', role: 'status' }, h('div', { class: 'small dim' }, 'Copy this key now: it is shown only once.'), h('code', { id: 'new-key-value' }, k.key)));
  } }, h('label', { for: 'key-name' }, 'New key', name), h('button', { type: 'submit', id: 'create-key' }, 'Create key')) : null;
  fill(main, h('h1', {}, 'API keys'), create, shown,
    h('table', { id: 'keys' }, h('thead', {}, h('tr', {}, ['Name', 'Prefix', 'Created', 'Last used', 'Status', ''].map((c) => h('th', {}, c)))),
      h('tbody', {}, list.map((k) => h('tr', { 'data-key': k.name },
        h('td', {}, k.name), h('td', { class: 'mono' }, k.key_prefix), h('td', {}, when(k.created_at)), h('td', {}, when(k.last_used_at)),
        h('td', {}, k.revoked_at ? badge('revoked') : badge('active')),
        h('td', {}, isAdmin() && !k.revoked_at ? h('button', { class: 'danger', onclick: async () => { await api('DELETE', `/api/auth/api-keys/${encodeURIComponent(k.id)}`); render(); } }, 'Revoke') : null))))),
    isAdmin() ? null : h('p', { class: 'dim' }, 'Only admins manage keys.'));
}

// --- Access: which project a user starts in, and errors a user did not cause.

// Instance admins may look across projects; everyone else (viewers, members, project-bound keys) reads one
// project at a time, and the API needs to know which.
const seesAllProjects = () => isAdmin() && !state.me.project_id;

// Puts a caller who cannot see every project into one they may read: their binding, else the remembered
// choice if it is still theirs, else their first membership.
function pickProject() {
  if (seesAllProjects()) return;
  const mine = state.projects.map((p) => p.id);
  const chosen = state.me.project_id || (mine.includes(state.project) ? state.project : mine[0] || '');
  if (state.me.project_id && !mine.includes(chosen)) state.projects = [{ id: chosen, name: chosen }, ...state.projects];
  if (chosen !== state.project) { state.project = chosen; localStorage.setItem('ls.project', chosen); }
}

function noProjectView() {
  return [h('h1', {}, 'No project yet'), h('p', { id: 'no-project' }, 'You are not a member of any project yet. Ask an admin to add you to one; your data appears here as soon as they do.')];
}

// What a page says when a request fails through no fault of the user: plain words, never the API's detail
// (that goes to the console for whoever debugs it).
function friendlyError(e) {
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

// --- Signed out: the login form, or, on an instance with no user yet, the first-run form.
async function signedOutView() {
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
      if (r.status === 409) { state.me = null; render(); return; }
      if (!r.ok) throw new Error(await answerText(r, 'The admin could not be created. Reload the page and try again.'));
      await loginWith(email.value, pw.password.value);
      history.replaceState(null, '', '/#/welcome');
      state.me = null; state.projects = []; render();
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
function acceptInviteView() {
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
      state.me = null; state.projects = []; render();
    } catch (x) { err.textContent = x.message; busy.disabled = false; }
  } }, head, h('p', {}, 'You were invited to LangSight. Choose a password to finish creating your account.'), pw.labels, busy, err);
}

// After the first admin is created: how to get an SDK key and send a first span, with this server's URL.
async function welcome(main) {
  const origin = location.origin;
  const snippet = h('pre', { class: 'snippet', id: 'first-span-snippet' });
  // Session ids are UUID4s (the API refuses others); getRandomValues works on plain-http origins too.
  const b = crypto.getRandomValues(new Uint8Array(16)); b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
  const sid = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  const show = (key) => {
    const now = new Date().toISOString();
    snippet.textContent = `curl -X POST ${origin}/api/traces/spans \\\n  -H 'X-API-Key: ${key}' -H 'Content-Type: application/json' \\\n`
      + `  -d '[{"span_id":"first-1","span_type":"tool_call","session_id":"${sid}","server_name":"demo",\n`
      + `        "tool_name":"hello","agent_name":"my-agent","started_at":"${now}","ended_at":"${now}","status":"success"}]'`;
  };
  show('<your SDK key>');
  const status = h('span', { class: 'dim', role: 'status' });
  const copy = h('button', { class: 'secondary', id: 'copy-snippet', onclick: async () => {
    try { await navigator.clipboard.writeText(snippet.textContent); status.textContent = 'Copied.'; }
    catch (_) { getSelection().selectAllChildren(snippet); status.textContent = 'Selected: press Ctrl+C to copy.'; }
  } }, 'Copy');
  const keyBox = h('div', { id: 'sdk-key' });
  const makeKey = h('button', { id: 'make-sdk-key', onclick: async (e) => {
    e.target.disabled = true;
    try {
      const k = await api('POST', '/api/auth/api-keys', { name: 'sdk' });
      keyBox.replaceChildren(h('div', { class: 'keybox', role: 'status' }, h('div', { class: 'small dim' }, 'Your SDK key (shown only once; it is in the snippet below):'), h('code', { id: 'sdk-key-value' }, k.key)));
      show(k.key);
    } catch (x) { keyBox.replaceChildren(friendlyError(x)); e.target.disabled = false; }
  } }, 'Create an SDK key');
  const seen = h('span', { class: 'dim', role: 'status', id: 'first-span-status' });
  const check = h('button', { class: 'secondary', onclick: async () => {
    const rows = await api('GET', '/api/agents/sessions?hours=24&limit=1').catch(() => []);
    seen.textContent = rows.length ? '' : 'Nothing yet: run the snippet, then check again.';
    if (rows.length) location.hash = `#/sessions/${encodeURIComponent(rows[0].session_id)}`;
  } }, 'I sent it: show my session');
  fill(main, h('h1', {}, 'You\u2019re in. Send your first span'),
    h('ol', { class: 'steps' },
      h('li', {}, h('p', {}, 'Create an API key for your agent (the SDK sends it as X-API-Key).'), makeKey, keyBox),
      h('li', {}, h('p', {}, `Send a span to ${origin}: run this in a terminal (the Python SDK and OpenTelemetry exporters take the same URL and key).`), snippet, h('div', { class: 'filters' }, copy, status)),
      h('li', {}, h('p', {}, 'See it arrive.'), h('div', { class: 'filters' }, check, seen, h('a', { href: '#/live' }, 'or watch the live view')))),
    h('p', { class: 'dim' }, 'Next: invite your team from Projects, and add your MCP servers to .langsight.yaml.'));
}

window.addEventListener('hashchange', render);
render();
