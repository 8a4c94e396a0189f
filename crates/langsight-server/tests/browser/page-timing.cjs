// Page timing: how long each dashboard page takes to show its data, measured in Debian's Chromium through
// playwright-core against a running server. Run by hand (tests/dashboard.rs names its scripts one by one, so the
// test suite never starts this one); it writes nothing to the server except a login.
//
//   NODE_PATH=~/.cache/langsight-test-npm/node_modules URL=http://127.0.0.1:PORT \
//     EMAIL=admin@example.com PASSWORD='…' [API_KEY=…] [RUNS=5] [FULL=1] [OUT=timings.json] \
//     node crates/langsight-server/tests/browser/page-timing.cjs
//
// Sign-in: EMAIL/PASSWORD logs in through the login form (an instance admin user, e.g. the one
// LANGSIGHT_ADMIN_EMAIL / LANGSIGHT_ADMIN_PASSWORD creates at start-up); or API_KEY is sent by the browser as
// X-API-Key (an unbound admin key is an instance admin too). The admin stays on "All projects".
//
// What is measured, for every route of the dashboard's router (overview at each range, sessions, the newest
// session, live, servers, the first monitored server if any, agents, the busiest agent, lineage, security, costs,
// alerts, SLOs, each settings tab, projects, keys), RUNS times each:
// - Each run starts on an idle page (an unknown route: the not-found page, no request in flight), then sets
//   `location.hash` to the page's route, as a click in the navigation does. t0 is that moment (performance.now()).
// - "data" = the first animation frame (waitForFunction, polling every frame) in which the page's own data
//   element is in the DOM — an element the page draws only from its API answers (a session row, a graph node,
//   the figures cards that are filled after all of the page's requests) — and no "Loading…" is left. Pages
//   whose data is empty in the store (no alerts, no SLOs…) are done when their table is drawn from the
//   (empty) answer. A friendly error instead of data stops the run and prints the page's text.
// - "all API" = the end of the last /api/ response the page asked for after t0 (Resource Timing; the live
//   view's event stream, which never ends, is left out), taken after the requests went quiet.
// - per API call: the server's time = responseStart − requestStart (time to first byte on loopback; the
//   browser's queueing for one of its six connections is not in it) and the whole fetch = responseEnd − startTime.
// With FULL=1, each page is also loaded once from scratch (page.goto of its address: the shell, its modules,
// /api/auth/me, then the page), timed from the document's navigation start.
// Output: a table per page (median and max of "data", median of "all API", the slowest call by median server
// time) on stdout, and every run in JSON at $OUT.
'use strict';
const { chromium } = require('playwright-core');
const fs = require('fs');

const E = process.env;
const URL = (E.URL || '').replace(/\/$/, '');
const RUNS = Number(E.RUNS || 5);
const TIMEOUT = Number(E.TIMEOUT_MS || 120000);
if (!URL) { console.error('set URL (and EMAIL/PASSWORD or API_KEY)'); process.exit(2); }

// The pages: [name, route (hash without #/), what shows that its data is there].
// `sel`: a CSS selector that matches only once the page drew its data; `text`: [selector, substring] also required.
function pages(ids) {
  const ov = (h) => [`overview ${h} h`, `overview?hours=${h}`, { sel: 'main .cards .card .v', text: ['main h1', 'Overview'] }];
  return [
    ov(1), ov(6), ov(24), ov(168), ov(720),
    ['sessions', 'sessions', { sel: '#sessions tbody tr[data-session]' }],
    ['session', `sessions/${encodeURIComponent(ids.session)}`, { sel: '#tree .row' }],
    ['live', 'live', { sel: '#live-running:not(:empty)', text: ['#live-status', 'live'] }],
    ['servers', 'servers', { sel: '#servers' }],
    ids.server ? [`server (${ids.server})`, `servers/${encodeURIComponent(ids.server)}`, { sel: 'main .cards .card .v' }] : null,
    ['agents', 'agents', { sel: '#agents tbody tr[data-agent]' }],
    [`agent (${ids.agent})`, `agents/${encodeURIComponent(ids.agent)}`, { sel: '#agent-sessions tbody tr' }],
    ['lineage', 'lineage', { sel: 'svg.lineage .node' }],
    ['security', 'security', { sel: 'main .cards .card .v' }],
    ['costs', 'costs', { sel: '#cost-tools tbody tr' }],
    ['alerts', 'alerts', { sel: '#alerts' }],
    ['slos', 'slos', { sel: '#slos' }],
    ['settings: users', 'settings?tab=users', { sel: '#users tbody tr' }],
    ['settings: audit', 'settings?tab=audit', { sel: '#audit' }],
    ['settings: pricing', 'settings?tab=pricing', { sel: '#pricing tbody tr' }],
    ['settings: providers', 'settings?tab=providers', { sel: 'tr[data-provider]' }],
    ['settings: channels', 'settings?tab=channels', { sel: '#slack-webhook' }],
    ['settings: instance', 'settings?tab=instance', { sel: '#backends tr' }],
    ['projects', 'projects', { sel: 'main h1', text: ['main h1', 'Projects'] }],
    ['keys', 'keys', { sel: '#keys' }],
  ].filter(Boolean);
}

// Evaluated in the page every animation frame: the time once the data is there, or "error".
function ready(w) {
  if (document.querySelector('main .friendly-error')) return 'error';
  const loading = document.querySelector('main > p.dim');
  if (loading && loading.textContent === 'Loading…') return false;
  if (!document.querySelector(w.sel)) return false;
  if (w.text && !((document.querySelector(w.text[0]) || {}).textContent || '').includes(w.text[1])) return false;
  return performance.now();
}

const median = (xs) => { const s = xs.slice().sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const r0 = (x) => Math.round(x);

(async () => {
  const browser = await chromium.launch({ executablePath: E.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'dark',
    extraHTTPHeaders: E.API_KEY ? { 'X-API-Key': E.API_KEY } : {} });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  // Requests in flight (the live stream never ends: not counted).
  const inflight = new Set();
  const api = (r) => r.url().includes('/api/') && !r.url().includes('/api/live/events');
  page.on('request', (r) => { if (api(r)) inflight.add(r); });
  page.on('requestfinished', (r) => inflight.delete(r));
  page.on('requestfailed', (r) => inflight.delete(r));
  async function quiet() {
    const until = Date.now() + TIMEOUT;
    let calm = 0;
    while (Date.now() < until) {
      if (inflight.size === 0) { if (++calm >= 4) return; } else calm = 0;
      await page.waitForTimeout(50);
    }
    throw new Error(`requests still in flight: ${[...inflight].map((r) => r.url()).join(', ')}`);
  }

  await page.goto(`${URL}/#/overview`);
  if (!E.API_KEY) {
    await page.waitForSelector('#email', { timeout: 10000 });
    await page.fill('#email', E.EMAIL);
    await page.fill('#password', E.PASSWORD);
    await page.click('button[type=submit]');
  }
  await page.waitForSelector('nav.main', { timeout: 30000 });
  await page.waitForSelector('main .cards .card', { timeout: TIMEOUT });
  await quiet();
  const me = await page.evaluate(() => fetch('/api/auth/me', { credentials: 'same-origin' }).then((r) => r.json()));
  if (me.role !== 'admin' || me.project_id) throw new Error(`not an instance admin: ${JSON.stringify(me)}`);
  // The newest session, the busiest agent, and the first monitored server (the server page needs one the
  // health checker knows: a server only seen in spans answers 404 there, so without one the page is skipped).
  const ids = await page.evaluate(async () => {
    const get = (p) => fetch(p, { credentials: 'same-origin' }).then((r) => r.json());
    const list = await get('/api/agents/sessions?hours=720&limit=1');
    const costs = await get('/api/costs/breakdown?hours=720');
    const monitored = await get('/api/health/servers');
    const agents = (costs.by_agent || []).slice().sort((a, b) => b.total_calls - a.total_calls);
    return { session: list[0] && list[0].session_id, agent: agents[0] && agents[0].agent_name, server: monitored[0] && monitored[0].server_name };
  });
  if (!ids.session || !ids.agent) throw new Error(`no data to time: ${JSON.stringify(ids)}`);
  if (!ids.server) console.log('no monitored MCP server: the server page is skipped');
  console.log(`instance admin ${me.email || 'API key'}; session ${ids.session}, agent ${ids.agent}, server ${ids.server}; ${RUNS} runs per page`);
  await page.evaluate(() => performance.setResourceTimingBufferSize(100000));

  const results = [];
  for (const [name, route, want] of pages(ids)) {
    const runs = [];
    for (let i = 0; i < RUNS; i++) {
      // Start idle: the not-found page, nothing in flight.
      await page.evaluate(() => { location.hash = '#/timing-idle'; });
      await page.waitForSelector('#not-found', { timeout: TIMEOUT });
      await quiet();
      await page.evaluate(() => performance.clearResourceTimings());
      const t0 = await page.evaluate((r) => { const t = performance.now(); location.hash = `#/${r}`; return t; }, route);
      const shown = await (await page.waitForFunction(ready, want, { polling: 'raf', timeout: TIMEOUT })).jsonValue();
      if (shown === 'error') throw new Error(`${name}: the page shows an error: ${(await page.textContent('main')).slice(0, 300)}`);
      await quiet();
      const calls = await page.evaluate((t) => performance.getEntriesByType('resource')
        .filter((e) => e.name.includes('/api/') && e.startTime >= t)
        .map((e) => ({ path: e.name.replace(location.origin, ''), start: e.startTime - t, server: e.responseStart - e.requestStart, fetch: e.responseEnd - e.startTime, end: e.responseEnd - t, bytes: e.encodedBodySize })), t0);
      const allApi = Math.max(shown - t0, ...calls.map((c) => c.end));
      runs.push({ data: shown - t0, allApi, calls });
    }
    let full = null;
    if (E.FULL === '1') {
      await page.goto('about:blank');
      await page.goto(`${URL}/#/${route}`, { waitUntil: 'commit' });
      const shown = await (await page.waitForFunction(ready, want, { polling: 'raf', timeout: TIMEOUT })).jsonValue();
      if (shown === 'error') throw new Error(`${name} (full load): the page shows an error`);
      await quiet();
      full = shown;
    }
    // Per call path: median server time and fetch time over the runs.
    const byPath = new Map();
    for (const r of runs) for (const c of r.calls) { const a = byPath.get(c.path) || []; a.push(c); byPath.set(c.path, a); }
    const apis = [...byPath.entries()].map(([path, cs]) => ({ path, n: cs.length, server: median(cs.map((c) => c.server)), fetch: median(cs.map((c) => c.fetch)), bytes: cs[0].bytes }))
      .sort((a, b) => b.server - a.server);
    const res = { name, route, median: median(runs.map((r) => r.data)), max: Math.max(...runs.map((r) => r.data)), allApi: median(runs.map((r) => r.allApi)), full, apis, runs };
    results.push(res);
    const slow = apis[0];
    console.log(`${name.padEnd(22)} data median ${String(r0(res.median)).padStart(6)} ms, max ${String(r0(res.max)).padStart(6)} ms; all API ${String(r0(res.allApi)).padStart(6)} ms${full != null ? `; full load ${r0(full)} ms` : ''}; slowest ${slow ? `${slow.path} ${r0(slow.server)} ms` : '(no API call)'}`);
  }

  console.log('\n| Page | data median ms | data max ms | all API median ms |' + (E.FULL === '1' ? ' full load ms |' : '') + ' slowest API call (median server time) |');
  console.log('|---|---|---|---|' + (E.FULL === '1' ? '---|' : '') + '---|');
  for (const r of results) {
    const s = r.apis[0];
    console.log(`| ${r.name} | ${r0(r.median)} | ${r0(r.max)} | ${r0(r.allApi)} |${E.FULL === '1' ? ` ${r0(r.full)} |` : ''} ${s ? `\`${s.path}\` ${r0(s.server)}` : '—'} |`);
  }
  console.log('\nAPI calls per page (median server time / whole fetch, ms):');
  for (const r of results) console.log(`${r.name}: ${r.apis.map((a) => `${a.path} ${r0(a.server)}/${r0(a.fetch)}`).join('; ') || '(none)'}`);
  if (E.OUT) fs.writeFileSync(E.OUT, JSON.stringify({ url: URL, runs: RUNS, at: new Date().toISOString(), ids, results }, null, 1));
  await browser.close();
})().catch((e) => { console.error(`page timing failed: ${e.message}`); process.exit(1); });
