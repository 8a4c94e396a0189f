// Drives the built-in dashboard in Debian's Chromium through playwright-core. Started by tests/dashboard.rs
// with a running server and its data; exits non-zero (saying which step) on the first failure.
//
// It walks every page three times — as the instance admin (logged in with a password), as a project viewer
// (logged in) and as a project-bound admin (an API key bound to the project, sent by the browser) — and on
// each page asserts real data (figures, rows, names from the fixture), no page error, no raw API error and
// no "could not load" message. Screenshots at 1280x800 go to $SHOTS: `<page>.png` (dark) and
// `<page>-light.png` for the admin, `<role>-<page>.png` for the others.
'use strict';
const { chromium } = require('playwright-core');
const fs = require('fs');
const path = require('path');

const E = process.env;
const URL = E.URL;
const step = (name) => console.log(`step: ${name}`);
const fail = (msg) => { throw new Error(msg); };
const RAW_ERRORS = ['project_id query parameter is required', 'HTTP 4', 'HTTP 5', '"detail"', 'Not Found'];
const pageErrors = [];

async function shot(page, name) {
  await page.waitForTimeout(150);
  await page.screenshot({ path: path.join(E.SHOTS, `${name}.png`), fullPage: false });
}

// The same page in the dark theme (`name.png`) and the light one (`name-light.png`), switched the way a
// user's system switches it.
async function shots(page, name) {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.emulateMedia({ colorScheme: 'dark' });
  await shot(page, name);
  await page.emulateMedia({ colorScheme: 'light' });
  await shot(page, `${name}-light`);
  await page.emulateMedia({ colorScheme: 'dark' });
}

async function context(browser, extra) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'dark', ...(extra || {}) });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => { console.error(`page error: ${e.message}`); pageErrors.push(e.message); });
  page.on('console', (m) => { if (m.type() === 'warning' || m.type() === 'error') console.log(`console ${m.type()}: ${m.text()} (${m.location().url || 'no url'})`); });
  // Which request failed, when one did: a console line does not say (the 500s breakApi makes on purpose show too).
  page.on('response', (r) => { if (r.status() >= 500) console.log(`response ${r.status()}: ${r.request().method()} ${r.url()}`); });
  return page;
}

async function login(browser, email, password) {
  const page = await context(browser);
  const t0 = Date.now();
  await page.goto(`${URL}/`);
  await page.waitForSelector('#email');
  const form = Date.now() - t0;
  await page.fill('#email', email);
  await page.fill('#password', password);
  const t1 = Date.now();
  await page.click('button[type=submit]');
  await page.waitForSelector('nav.main', { timeout: 5000 });
  await page.waitForSelector('main .card', { timeout: 5000 });
  console.log(`login form shown in ${form} ms; overview with data ${Date.now() - t1} ms after submitting`);
  return page;
}

async function postSpans(spans) {
  const r = await fetch(`${URL}/api/traces/spans`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-API-Key': E.ADMIN_KEY }, body: JSON.stringify(spans) });
  if (r.status !== 202) fail(`ingest answered ${r.status}`);
}

// A page is done when its heading is there and nothing is "Loading…"; then it must show no raw error and no
// failure message.
// How long each page took from navigation to its data (debug build, shared machine: a trend, not a target).
const timings = [];
async function visit(page, hash, where) {
  const t0 = Date.now();
  await page.goto(`${URL}/#/${hash}`);
  await page.waitForSelector('main h1, main .friendly-error', { timeout: 8000 });
  await page.waitForFunction(() => !document.querySelector('main > p.dim') || document.querySelector('main > p.dim').textContent !== 'Loading…', null, { timeout: 8000 });
  timings.push(`${where.trim()} ${Date.now() - t0} ms`);
  await clean(page, where);
}

async function clean(page, where) {
  const text = await page.textContent('body');
  for (const raw of RAW_ERRORS) if (text.includes(raw)) fail(`${where} shows a raw API error (${raw}): ${text.slice(0, 400)}`);
  if (await page.locator('main .friendly-error').count()) fail(`${where} could not load: ${(await page.textContent('main')).slice(0, 300)}`);
  if (pageErrors.length) fail(`${where}: page errors ${JSON.stringify(pageErrors)}`);
}

const num = (t) => Number(String(t).replace(/[^0-9.]/g, ''));
async function cardValue(page, label) {
  const c = page.locator('main .card', { has: page.locator('.k', { hasText: new RegExp(`^${label}$`) }) }).first();
  return (await c.locator('.v').textContent()).trim();
}
async function expectText(page, selector, text, where) {
  await page.waitForSelector(selector, { timeout: 5000 }).catch(() => fail(`${where}: ${selector} is missing`));
  // Parts of a page fill in after their own request: wait for the text, then say what is there instead.
  const shown = await page.waitForFunction(([s, t]) => (document.querySelector(s)?.textContent || '').includes(t), [selector, text], { timeout: 5000 }).then(() => true, () => false);
  if (!shown) fail(`${where}: ${selector} does not show ${JSON.stringify(text)}: ${(await page.locator(selector).first().textContent()).slice(0, 300)}`);
}
async function atLeast(page, selector, n, where) {
  await page.waitForFunction(([s, k]) => document.querySelectorAll(s).length >= k, [selector, n], { timeout: 5000 })
    .catch(async () => fail(`${where}: fewer than ${n} × ${selector} (${await page.locator(selector).count()})`));
}

// Holds every request matching `re` until the returned function is called: a slow API call, on demand.
async function hold(page, re) {
  let open; const gate = new Promise((r) => { open = r; });
  const handler = async (route) => { await gate; await route.continue().catch(() => {}); };
  await page.route(re, handler);
  return async () => { open(); await page.unroute(re, handler); };
}
// Answers every request matching `re` with a 500 whose detail must never reach the page.
async function breakApi(page, re) {
  const handler = (route) => route.fulfill({ status: 500, contentType: 'application/json', body: JSON.stringify({ detail: 'internal span scan exploded' }) });
  await page.route(re, handler);
  return () => page.unroute(re, handler);
}
async function apiCount(query) {
  const r = await fetch(`${URL}/api/agents/sessions?${query}&limit=1&counts=true`, { headers: { 'X-API-Key': E.ADMIN_KEY } });
  const v = r.headers.get('x-total-count');
  if (r.status !== 200 || v === null) fail(`the sessions counts answered ${r.status} without X-Total-Count`);
  return Number(v);
}

// The walk every role makes; `session` is a session the role may read, `who` names the screenshots.
async function walk(page, who, { session, admin, instanceAdmin }) {
  const name = (p) => (who ? `${who}-${p}` : p);
  const snap = (p) => (who ? shot(page, name(p)) : shots(page, p));

  step(`${who || 'admin'}: overview — figures, range, charts with hover, tables`);
  await visit(page, 'overview', `${who} overview`);
  await page.waitForSelector('.cards .card');
  if (!(num(await cardValue(page, 'Sessions')) >= 1)) fail(`${who} overview: no sessions`);
  if (!(num(await cardValue(page, 'Tool calls')) >= 1)) fail(`${who} overview: no tool calls`);
  await expectText(page, '#models', 'claude-sonnet-4-6', `${who} overview models`);
  await expectText(page, '#tools', 'read_file', `${who} overview tools`);
  await expectText(page, '#errors', 'rate', `${who} overview errors`).catch(async () => atLeast(page, '#errors tbody tr', 1, `${who} overview errors`));
  await expectText(page, '#overview-agents', 'researcher', `${who} overview agents`);
  if (!(await page.locator('#servers-strip .pill').count())) fail(`${who} overview: the servers strip is empty`);
  const plot = page.locator('.chart .plot').first();
  await plot.scrollIntoViewIfNeeded();
  const box = await plot.boundingBox();
  await plot.focus();
  await page.keyboard.press('Home');
  await page.waitForSelector('.chart .tip:not([hidden])', { timeout: 3000 });
  await page.keyboard.press('ArrowRight');
  await page.mouse.move(box.x + box.width * 0.98, box.y + box.height / 2);
  await page.waitForSelector('.chart .tip:not([hidden])', { timeout: 3000 }).catch(async (e) => {
    await shot(page, `failed-tooltip${who}`);
    fail(`${who} overview: no tooltip on hover (${JSON.stringify(box)}): ${e.message}`);
  });
  if (!/sessions: \d/.test(await page.locator('.chart .tip:not([hidden])').first().textContent())) fail(`${who} overview: the tooltip shows no value`);
  if ((await page.locator('.chart .yaxis span').count()) < 3) fail(`${who} overview: charts have no y axis`);
  await snap('overview');
  await page.click('#range button[data-hours="168"]');
  await page.waitForFunction(() => (document.querySelector('main h1')?.textContent || '').includes('7 d') && document.querySelector('main .card'), null, { timeout: 5000 });
  if (!page.url().includes('hours=168')) fail('the range is not in the address');
  if (!(num(await cardValue(page, 'Sessions')) >= 1)) fail(`${who} overview 7 d: no sessions`);
  await clean(page, `${who} overview 7 d`);

  step(`${who || 'admin'}: sessions — search, sort, tokens, servers, counts, paging`);
  await visit(page, 'sessions', `${who} sessions`);
  const row = page.locator(`tr[data-session="${session}"]`);
  await row.waitFor({ timeout: 5000 });
  const rowText = await row.textContent();
  for (const want of ['claude-sonnet-4-6', 'github', 'filesystem', '1,500']) if (!rowText.includes(want)) fail(`${who} sessions row lacks ${want}: ${rowText}`);
  if (!(num(await page.textContent('#count-failed b')) >= 1)) fail(`${who} sessions: no failed count`);
  if (!(num(await page.textContent('#count-clean b')) >= 0)) fail(`${who} sessions: no clean count`);
  await page.fill('main input.search', 'no-such-session-anywhere');
  await page.waitForSelector(`tr[data-session="${session}"]`, { state: 'detached', timeout: 3000 });
  await page.fill('main input.search', session.slice(0, 8));
  await row.waitFor({ timeout: 3000 });
  await page.fill('main input.search', '');
  // Search, sort and paging are the API's (one page of rows per request), and the address keeps them.
  await page.click('#sessions th[data-key="duration_ms"] button');
  await page.waitForFunction(() => location.hash.includes('sort=duration'), null, { timeout: 3000 }).catch(() => fail(`${who} sessions: the sort is not sent`));
  if ((await page.getAttribute('#sessions th[data-key="duration_ms"]', 'aria-sort')) !== 'descending') fail('sorting by duration is not shown');
  const durations = await page.$$eval('#sessions tbody tr td:nth-child(10)', (tds) => tds.map((td) => td.textContent));
  if (!durations.length) fail(`${who} sessions: no rows sorted by duration`);
  if (await page.locator('#sessions th[data-key="est_cost_usd"] button').count()) fail('cost is offered as a sort the API does not have');
  await page.click('#count-failed');
  await page.waitForFunction(() => location.hash.includes('outcome=failed'), null, { timeout: 3000 });
  await atLeast(page, '#sessions tbody tr.failed', 1, `${who} failed sessions`);
  if (await page.locator('#sessions tbody tr:not(.failed)').count()) fail(`${who}: the failed filter shows clean sessions`);
  await page.goto(`${URL}/#/sessions`);
  await row.waitFor({ timeout: 5000 });
  await snap('sessions');
  if (!who) {
    // 30 sessions of one agent: the API finds them by name, counts them and pages them 25 at a time.
    const now = new Date().toISOString();
    const ids = Array.from({ length: 30 }, () => require('crypto').randomUUID().replace(/-/g, ''));
    await postSpans(ids.map((sid) => ({ span_id: `${sid}-p`, span_type: 'tool_call', session_id: sid, server_name: 'github', tool_name: 'read_file', agent_name: 'Pager-Agent', started_at: now, ended_at: now, status: 'success' })));
    await visit(page, 'sessions?q=pager-agent', 'sessions search and pages');
    await atLeast(page, '#sessions tbody tr', 25, 'the first page of a search');
    if ((await page.locator('#sessions tbody tr').count()) !== 25) fail('a page of sessions is not 25 rows');
    await expectText(page, '#session-counts', '30', 'the count of a search');
    await expectText(page, '#sessions-pager', 'page 1 of 2', 'the pager of a search');
    await page.click('#sessions-pager button.next');
    await page.waitForFunction(() => document.querySelectorAll('#sessions tbody tr').length === 5, null, { timeout: 5000 }).catch(() => fail('the second page does not hold the last 5 sessions'));
    if (!(await page.evaluate(() => location.hash.includes('page=1')))) fail('the page is not kept in the address');
    const agents = await page.$$eval('#sessions tbody tr td:nth-child(2)', (tds) => tds.map((td) => td.textContent));
    if (agents.some((a) => a !== 'Pager-Agent')) fail(`a search row of another agent: ${agents}`);
  }

  step(`${who || 'admin'}: one session — summary, LLM tokens and model, inline errors, JSON payloads`);
  await visit(page, `sessions/${encodeURIComponent(session)}`, `${who} session`);
  await page.waitForSelector('#tree .row', { timeout: 5000 });
  if ((await cardValue(page, 'Model')) !== 'claude-sonnet-4-6') fail(`${who} session: the model is ${await cardValue(page, 'Model')}`);
  if (!(await cardValue(page, 'Tokens')).includes('1,500')) fail(`${who} session: tokens ${await cardValue(page, 'Tokens')}`);
  if (!(await cardValue(page, 'Cost')).startsWith('$')) fail(`${who} session: cost ${await cardValue(page, 'Cost')}`);
  await expectText(page, '#session-facts', 'researcher', `${who} session agents`);
  await expectText(page, '#session-facts', 'github', `${who} session servers`);
  await expectText(page, '#tree .llm', '1,200 in / 300 out', `${who} session LLM span`);
  await expectText(page, '#tree .span-error', 'rate limited', `${who} session inline error`);
  const toolRow = page.locator('#tree .row', { hasText: 'read_file' }).first();
  await toolRow.locator('button').click();
  await page.waitForSelector('#tree .payload:not([hidden]) .json', { timeout: 5000 });
  await expectText(page, '#tree .payload:not([hidden]) .json', '"release notes"', `${who} session JSON payload`);
  await snap('session');

  step(`${who || 'admin'}: live — per-session view and stream`);
  await visit(page, 'live', `${who} live`);
  await page.waitForFunction(() => document.getElementById('live-status') && document.getElementById('live-status').textContent === 'live', null, { timeout: 5000 });
  await atLeast(page, '#live-sessions tr', 1, `${who} live sessions`);
  const id = `live-${who || 'admin'}-${Date.now()}`, now = new Date().toISOString();
  const sent = Date.now();
  await postSpans([{ span_id: id, span_type: 'tool_call', session_id: session, server_name: 'github', tool_name: 'read_file', agent_name: 'researcher', started_at: now, ended_at: now, status: 'success', project_id: who ? E.PROJECT : undefined }]);
  await page.waitForSelector(`tr[data-span="${id}"]`, { timeout: 2000 });
  console.log(`${who || 'admin'}: span:new shown ${Date.now() - sent} ms after the POST`);
  await expectText(page, `tr[data-live-session="${session}"]`, 'running', `${who} live per-session`);
  await snap('live');

  step(`${who || 'admin'}: agents and one agent`);
  await visit(page, 'agents', `${who} agents`);
  await expectText(page, 'tr[data-agent="researcher"]', 'researcher', `${who} agents`);
  if (!(num(await page.locator('tr[data-agent="researcher"] td').nth(2).textContent()) >= 1)) fail(`${who} agents: researcher has no sessions`);
  await snap('agents');
  await visit(page, 'agents/researcher', `${who} agent`);
  if (!(num(await cardValue(page, 'Sessions')) >= 1)) fail(`${who} agent: no sessions`);
  await expectText(page, '#agent-servers', 'github', `${who} agent servers`);
  await page.waitForSelector(`#agent-sessions a[href="#/sessions/${session}"]`, { timeout: 5000 });
  await atLeast(page, 'svg.lineage .node', 2, `${who} agent topology`);
  if (admin && !(await page.locator('#agent-meta').count())) fail(`${who} agent: an admin cannot edit metadata`);
  if (!admin && (await page.locator('main form, main button:not(.view)').count())) fail(`${who} agent: a viewer sees write controls`);
  await snap('agent');
  if (!who) {
    step('agent page: drawn before the lineage (a slow span scan) arrives; servers and topology fill in after');
    const release = await hold(page, /\/api\/agents\/lineage\?/);
    await visit(page, 'overview', 'overview before a slow lineage');
    await page.goto(`${URL}/#/agents/researcher`);
    await page.waitForSelector(`#agent-sessions a[href="#/sessions/${session}"]`, { timeout: 5000 })
      .catch(async () => fail(`the agent page waits for the lineage before showing its sessions: ${(await page.textContent('main')).slice(0, 200)}`));
    if (!(num(await cardValue(page, 'Sessions')) >= 1)) fail('agent page before the lineage: no sessions card');
    await expectText(page, '#agent-topology', 'loading topology…', 'the topology placeholder');
    if (await page.locator('#agent-topology svg.lineage').count()) fail('the topology is drawn before the lineage arrived');
    await release();
    await atLeast(page, '#agent-topology svg.lineage .node', 2, 'the topology once the lineage arrived');
    await expectText(page, '#agent-servers', 'github', 'the agent servers once the lineage arrived');
    step('agent page: a failed lineage is a message inside its sections, the rest of the page stays');
    const mend = await breakApi(page, /\/api\/agents\/lineage\?/);
    await visit(page, 'overview', 'overview before a failing lineage');
    await visit(page, 'agents/researcher', 'agent page with a failing lineage');
    await expectText(page, '#agent-topology', 'could not be loaded', 'the topology section after a failed lineage');
    await page.waitForSelector(`#agent-sessions a[href="#/sessions/${session}"]`, { timeout: 5000 });
    if ((await page.textContent('main')).includes('exploded')) fail('the lineage error detail reached the page');
    await clean(page, 'agent page with a failing lineage');
    await mend();
  }

  step(`${who || 'admin'}: lineage graph`);
  await visit(page, 'lineage', `${who} lineage`);
  await atLeast(page, 'svg.lineage .node.agent', 1, `${who} lineage agents`);
  await atLeast(page, 'svg.lineage .node.server', 1, `${who} lineage servers`);
  await expectText(page, '#lineage-edges', 'github', `${who} lineage edges`);
  if (!who && !(await page.locator('svg.lineage').textContent()).includes('<script>window.__pwne')) fail('the hostile agent name is not shown as text in the graph');
  if (await page.evaluate(() => window.__pwned !== undefined || document.querySelectorAll('main script').length > 0)) fail('a name ran as HTML in the lineage page');
  await page.fill('#lineage-search', 'github');
  await page.waitForSelector('svg.lineage .node.hit', { timeout: 3000 });
  await page.click('#failures-only');
  await page.waitForFunction(() => location.hash.includes('failures=1'), null, { timeout: 3000 });
  // Wait for the redrawn graph, not the one drawn before the click (it has failing edges too, beside clean ones).
  await page.waitForFunction(() => !document.querySelector('svg.lineage .edge:not(.failing)')
    && !!document.querySelector('svg.lineage .edge.failing, main .empty'), null, { timeout: 5000 })
    .catch(async () => {
      const clean = await page.locator('svg.lineage .edge:not(.failing)').count();
      fail(clean ? `${who} lineage: failures only shows clean edges`
        : `${who} lineage, failures only: no failing edge: ${(await page.textContent('main')).slice(0, 300)}`);
    });
  await page.goto(`${URL}/#/lineage`);
  await page.waitForSelector('svg.lineage .node', { timeout: 5000 })
    .catch(async () => fail(`${who} lineage: no graph after clearing the filter: ${(await page.textContent('main')).slice(0, 300)}`));
  await snap('lineage');

  step(`${who || 'admin'}: MCP servers`);
  await visit(page, 'servers', `${who} servers`);
  await atLeast(page, '#servers tbody tr[data-server]', 1, `${who} servers`);
  if (instanceAdmin) await expectText(page, 'tr[data-server="docs"]', '%', 'admin servers uptime');
  await snap('servers');

  step(`${who || 'admin'}: costs — range, filters, tokens, models, top sessions`);
  await visit(page, 'costs', `${who} costs`);
  if (!(num(await cardValue(page, 'Tokens in')) >= 1)) fail(`${who} costs: no tokens`);
  await expectText(page, '#cost-tools', 'claude-sonnet-4-6', `${who} costs model column`);
  await atLeast(page, '#cost-sessions tbody tr', 1, `${who} top sessions`);
  await page.selectOption('select[data-filter="model"]', 'claude-sonnet-4-6');
  await page.waitForFunction(() => location.hash.includes('model=claude-sonnet-4-6'), null, { timeout: 3000 });
  await page.waitForSelector('#cost-tools tbody tr', { timeout: 5000 });
  const models = await page.locator('#cost-tools tbody tr td:nth-child(3)').allTextContents();
  if (!models.length || models.some((m) => m !== 'claude-sonnet-4-6')) fail(`${who} costs: the model filter shows ${JSON.stringify(models)}`);
  await clean(page, `${who} costs filtered`);
  await page.goto(`${URL}/#/costs`);
  await page.waitForSelector('#cost-tools');
  await snap('costs');

  step(`${who || 'admin'}: security`);
  await visit(page, 'security', `${who} security`);
  if (admin) {
    await page.click('#run-scan');
    await page.waitForSelector('section.scan', { timeout: 20000 });
    if (instanceAdmin) await page.waitForSelector('section.scan[data-scan="docs"]', { timeout: 5000 });
    if (instanceAdmin) await expectText(page, '#scan-summary', 'docs', 'the scan summary');
    if (!(num(await cardValue(page, 'Servers scanned')) >= 1)) fail(`${who} security: nothing scanned`);
    // The scan history under each server: the scan just run is in its table.
    await atLeast(page, '.scan-history .scan-history-table tbody tr', 1, `${who} security: the scan history`);
  } else if (await page.locator('#run-scan').count()) fail(`${who} security: a viewer can run a scan`);
  await clean(page, `${who} security after the scan`);
  await snap('security');

  step(`${who || 'admin'}: settings`);
  await visit(page, 'settings?tab=instance', `${who} settings`);
  if (!(await cardValue(page, 'Version'))) fail(`${who} settings: no version`);
  if ((await cardValue(page, 'Workers')).trim() !== '1') fail(`${who} settings: the worker count is not shown: ${await cardValue(page, 'Workers')}`);
  await expectText(page, '#redis-topology', 'not configured', `${who} settings: Redis topology`);
  await atLeast(page, '#backends tr', 1, `${who} settings backends`);
  await visit(page, 'settings?tab=pricing', `${who} pricing`);
  await page.waitForSelector('tr[data-model="claude-sonnet-4-6"]', { timeout: 5000 });

  for (const p of ['alerts', 'slos', 'projects', 'keys']) await visit(page, p, `${who} ${p}`);
}

(async () => {
  fs.mkdirSync(E.SHOTS, { recursive: true });
  const browser = await chromium.launch({ executablePath: E.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  try {
    step('login');
    const t0 = Date.now();
    const page = await login(browser, E.ADMIN_EMAIL, E.ADMIN_PASSWORD);
    await page.waitForSelector('.cards .card');
    console.log(`first meaningful paint after login: ${Date.now() - t0} ms`);
    const slow = await page.evaluate(() => performance.getEntriesByType('resource').map((r) => [Math.round(r.duration), r.name.replace(location.origin, '')]).sort((a, b) => b[0] - a[0]).slice(0, 6));
    console.log(`slowest requests: ${JSON.stringify(slow)}`);

    step('theme: follows the system, the toggle is remembered');
    const bg = () => getComputedStyle(document.body).backgroundColor;
    await page.emulateMedia({ colorScheme: 'light' });
    if ((await page.evaluate(bg)) !== 'rgb(246, 248, 250)') fail(`the light system theme is not applied: ${await page.evaluate(bg)}`);
    await page.emulateMedia({ colorScheme: 'dark' });
    if ((await page.evaluate(bg)) !== 'rgb(15, 20, 25)') fail(`the dark system theme is not applied: ${await page.evaluate(bg)}`);
    await page.click('#theme-toggle'); // system → light
    if ((await page.evaluate(bg)) !== 'rgb(246, 248, 250)') fail('the toggle does not switch to light');
    await page.reload();
    await page.waitForSelector('#theme-toggle');
    if ((await page.textContent('#theme-toggle')) !== 'Theme: light' || (await page.evaluate(bg)) !== 'rgb(246, 248, 250)') fail('the chosen theme is not remembered');
    await page.click('#theme-toggle'); // light → dark
    await page.click('#theme-toggle'); // dark → system
    if ((await page.evaluate(() => localStorage.getItem('ls.theme'))) !== 'system') fail('the toggle does not return to the system theme');

    step('the XSS payload renders as text');
    await page.goto(`${URL}/#/sessions/${E.SESSION}`);
    await page.waitForSelector('#tree .row', { timeout: 5000 });
    for (const b of await page.locator('#tree button').all()) await b.click();
    // One payload request per span, each waited for: 5 s was too little once with the whole suite beside it on two
    // cores (the same test run alone then passed three times in ~45 s); the wait ends as soon as all have loaded.
    await page.waitForFunction(() => [...document.querySelectorAll('#tree .payload')].every((p) => p.dataset.loaded === '1'), null, { timeout: 20000 });
    const payloads = await page.locator('#tree .payload').allTextContents();
    if (!payloads.some((t) => t.includes('<script>window.__pwned = 1</script>'))) fail(`the <script> payload is not shown as text: ${JSON.stringify(payloads)}`);
    if (await page.evaluate(() => window.__pwned !== undefined || document.querySelectorAll('#tree script, #tree img').length > 0)) fail('a payload ran as HTML');
    await expectText(page, 'main', 'hand-off', 'the session graph shows the hand-off');

    await walk(page, '', { session: E.SESSION, admin: true, instanceAdmin: true });

    step('live view: pause holds new spans');
    await page.goto(`${URL}/#/live`);
    await page.waitForFunction(() => document.getElementById('live-status') && document.getElementById('live-status').textContent === 'live', null, { timeout: 5000 });
    await page.click('#live-pause');
    const held = `held-${Date.now()}`, at = new Date().toISOString();
    const spansOf = (s) => { const td = document.querySelector(`tr[data-live-session="${s}"] td:nth-child(4)`); return td ? td.textContent : null; };
    const before = await page.evaluate(spansOf, E.SESSION);
    await postSpans([{ span_id: held, span_type: 'tool_call', session_id: E.SESSION, server_name: 'docs', tool_name: 'search', agent_name: 'researcher', started_at: at, ended_at: at, status: 'success' }]);
    // The span reached the paused page: the per-session view, updated whatever the pause, counts it.
    await page.waitForFunction(([s, b]) => { const td = document.querySelector(`tr[data-live-session="${s}"] td:nth-child(4)`); return (td ? td.textContent : null) !== b; }, [E.SESSION, before], { timeout: 5000 });
    if (await page.locator(`tr[data-span="${held}"]`).count()) fail('a paused stream shows a new span');
    await page.click('#live-pause');
    await page.waitForSelector(`tr[data-span="${held}"]`, { timeout: 2000 });

    step('server goes down and its circuit opens');
    await page.goto(`${URL}/#/servers`);
    await page.waitForSelector('tr[data-server="docs"]');
    await page.click('#check-now');
    await page.waitForSelector('tr[data-server="docs"] .badge.up', { timeout: 10000 });
    // One drift event with a breaking change (q's type) and a compatible one (an optional param): each row keeps its own severity.
    fs.writeFileSync(E.FIXTURE_STATE, JSON.stringify({ mode: 'ok', tools: [{ name: 'search', description: 'Search the <b>docs</b>',
      inputSchema: { type: 'object', properties: { q: { type: 'number' }, lang: { type: 'string' } } } }] }));
    await page.click('#check-now');
    await page.waitForSelector('tr[data-server="docs"] .badge.degraded', { timeout: 10000 });
    fs.writeFileSync(E.FIXTURE_STATE, JSON.stringify({ mode: 'fail', tools: [] }));
    for (let i = 0; i < 4; i++) {
      await page.click('#check-now');
      await page.waitForSelector('#check-now:not([disabled])', { timeout: 15000 });
      if (await page.locator('tr[data-server="docs"] .circuit .badge.open').count()) break;
    }
    await page.waitForSelector('tr[data-server="docs"] .circuit .badge.open', { timeout: 5000 });
    await page.waitForSelector('tr[data-server="docs"] .badge.down');
    step('servers: status filter and search');
    await page.click('#status-filter a[data-status="down"]');
    await page.waitForFunction(() => location.hash.includes('status=down'), null, { timeout: 3000 });
    await page.waitForSelector('tr[data-server="docs"]');
    if (await page.locator('#servers tbody tr:not([data-server="docs"])').count()) fail('the down filter shows other servers');
    await page.goto(`${URL}/#/servers`);
    await page.fill('main input.search', 'nothing-like-this');
    await page.waitForSelector('tr[data-server="docs"]', { state: 'detached', timeout: 3000 });
    await page.fill('main input.search', '');
    await shots(page, 'servers');
    await page.click('a[href="#/servers/docs"]');
    await page.waitForSelector('.charts svg');
    step('server page: drift severity per row, down checks as gaps, notes listed, history, consumers, logs, schema');
    await page.waitForSelector('tr[data-drift="optional_param_added"]', { timeout: 5000 });
    if (!(await page.locator('tr[data-drift="optional_param_added"] .badge.compatible').count())) fail('a compatible drift row is not marked compatible');
    if (await page.locator('tr[data-drift="optional_param_added"] .badge.breaking').count()) fail('a compatible drift row is marked breaking');
    if (!(await page.locator('tr[data-drift="param_type_changed"] .badge.breaking').count())) fail('a breaking drift row is not marked breaking');
    if (!(await page.locator('.charts svg rect.down').count())) fail('down checks are not marked on the latency chart');
    if (await page.locator('.charts svg text').count()) fail('chart text is drawn inside the stretched SVG');
    if ((await page.locator('ul.notes li').count()) < 2) fail('scorecard notes are not listed');
    if (!(await cardValue(page, 'Uptime')).includes('%')) fail('the server page shows no uptime');
    await atLeast(page, '#checks tbody tr', 3, 'check history');
    await expectText(page, '#consumers', 'writer', 'server consumers');
    await expectText(page, '#logs', 'boom', 'server logs');
    await page.locator('details.tool summary').first().click();
    await expectText(page, 'details.tool[open] .json', '"q"', 'tool schema');
    await page.locator('tr[data-drift="param_type_changed"] .impact button').first().click();
    await expectText(page, 'tr[data-drift="param_type_changed"] + tr.impact-row', 'writer', 'drift impact');
    await clean(page, 'server page');
    await shots(page, 'server');
    step('server page: drawn before the blast radius (a span scan) arrives; its card and consumers fill in after');
    const releaseBlast = await hold(page, /\/blast-radius\?/);
    await visit(page, 'servers', 'servers before a slow blast radius');
    await page.goto(`${URL}/#/servers/docs`);
    await page.waitForSelector('#checks tbody tr', { timeout: 5000 })
      .catch(async () => fail(`the server page waits for the blast radius: ${(await page.textContent('main')).slice(0, 200)}`));
    await expectText(page, '#consumers-box', 'loading consumers…', 'the consumers placeholder');
    await expectText(page, '#logs', 'boom', 'server logs before the blast radius');
    await releaseBlast();
    await expectText(page, '#consumers', 'writer', 'the consumers once the blast radius arrived');
    await expectText(page, '#blast-value', 'agents', 'the blast radius card once it arrived');
    const mendBlast = await breakApi(page, /\/blast-radius\?/);
    await visit(page, 'servers', 'servers before a failing blast radius');
    await visit(page, 'servers/docs', 'server page with a failing blast radius');
    await expectText(page, '#consumers-box', 'could not be loaded', 'the consumers section after a failed blast radius');
    if ((await page.textContent('main')).includes('exploded')) fail('the blast radius error detail reached the page');
    await clean(page, 'server page with a failing blast radius');
    await mendBlast();
    step('servers: the list is drawn before the 7-day calls (a span scan) arrive');
    const releaseCalls = await hold(page, /\/api\/health\/servers\/invocations\?/);
    await visit(page, 'overview', 'overview before slow server calls');
    await page.goto(`${URL}/#/servers`);
    await page.waitForSelector('tr[data-server="docs"]', { timeout: 5000 }).catch(() => fail('the servers list waits for the 7-day calls'));
    await releaseCalls();
    await page.waitForFunction(() => /^\d/.test(document.querySelector('tr[data-server="docs"] td:nth-child(6)')?.textContent || ''), null, { timeout: 5000 })
      .catch(async () => fail(`the calls column does not fill in: ${await page.textContent('tr[data-server="docs"]')}`));

    step('ack an alert');
    await page.goto(`${URL}/#/alerts`);
    await page.waitForSelector('#alerts tr[data-alert]');
    step('alert messages: safe markdown, HTML as text, session links');
    const msgs = await page.locator('#alerts .msg').allTextContents();
    if (msgs.some((t) => t.includes('**'))) fail(`raw markdown in alert messages: ${JSON.stringify(msgs)}`);
    if (!(await page.locator('#alerts .msg strong').count()) || !(await page.locator('#alerts .msg code').count())) fail('alert markdown is not rendered as elements');
    if (!msgs.some((t) => t.includes('<script>window.__pwned = 3</script>'))) fail(`the <script> agent name is not shown as text: ${JSON.stringify(msgs)}`);
    if (await page.evaluate(() => window.__pwned !== undefined || document.querySelectorAll('#alerts script').length > 0)) fail('an alert message ran as HTML');
    const links = await page.evaluate(async () => { const { markdown } = await import('/ui/dom.js');
      return [...markdown('[a](#/sessions/x) [b](javascript:alert(1)) [c](//elsewhere/x) [d](https://elsewhere/) [e](/#/alerts) [f](/\\elsewhere)')]
        .filter((n) => n instanceof Element && n.tagName === 'A').map((a) => a.getAttribute('href')); });
    if (JSON.stringify(links) !== JSON.stringify(['#/sessions/x', '/#/alerts'])) fail(`markdown links beyond same-origin paths: ${JSON.stringify(links)}`);
    await shot(page, 'alerts-active');
    const sessionLink = page.locator(`#alerts a.session-link[href="#/sessions/${E.FAILING_SESSION}"]`);
    if (!(await sessionLink.count())) fail('an alert does not link to its session');
    await sessionLink.first().click();
    await page.waitForSelector('#tree .row', { timeout: 5000 });
    await page.goto(`${URL}/#/alerts`);
    await page.waitForSelector('#alerts tr[data-alert]');
    const alertId = await page.locator('#alerts tr[data-alert]').first().getAttribute('data-alert');
    await page.locator(`tr[data-alert="${alertId}"] button`, { hasText: 'Ack' }).click();
    await page.waitForSelector(`tr[data-alert="${alertId}"]`, { state: 'detached', timeout: 5000 });
    await page.goto(`${URL}/#/alerts?status=acked`);
    await page.waitForSelector(`tr[data-alert="${alertId}"] .badge.acked`, { timeout: 5000 });
    await shots(page, 'alerts');

    step('create and revoke an API key');
    await page.goto(`${URL}/#/keys`);
    await page.fill('#key-name', 'browser-key');
    await page.click('#create-key');
    await page.waitForSelector('#new-key-value');
    const key = await page.textContent('#new-key-value');
    if (!/^ls_[0-9a-f]{64}$/.test(key)) fail(`the new key is not shown: ${key}`);
    await shots(page, 'keys');
    await page.locator('tr[data-key="browser-key"] button', { hasText: 'Revoke' }).click();
    await page.waitForSelector('tr[data-key="browser-key"] .badge.revoked', { timeout: 5000 });
    step('a viewer key bound to the project');
    await page.fill('#key-name', 'team-reader');
    await page.selectOption('#key-role', 'viewer');
    await page.selectOption('#key-project', E.PROJECT);
    await page.click('#create-key');
    await page.waitForSelector('#new-key-value');
    await expectText(page, 'tr[data-key="team-reader"]', 'viewer', 'the new key\'s role');
    await expectText(page, 'tr[data-key="team-reader"]', 'Team', 'the new key\'s project');

    for (const p of ['slos', 'projects']) {
      await visit(page, p, p);
      await shots(page, p);
    }
    step('a project member\'s role');
    await page.selectOption('tr[data-member="viewer@example.com"] select', 'member');
    await page.waitForFunction(() => document.querySelector('tr[data-member="viewer@example.com"] select')?.value === 'member', null, { timeout: 5000 });
    await page.selectOption('tr[data-member="viewer@example.com"] select', 'viewer');
    await page.waitForFunction(() => document.querySelector('tr[data-member="viewer@example.com"] select')?.value === 'viewer', null, { timeout: 5000 });
    await clean(page, 'member roles');

    step('settings: users, audit log, pricing, providers, instance');
    await visit(page, 'settings?tab=users', 'settings users');
    await expectText(page, 'tr[data-user="viewer@example.com"]', 'viewer', 'settings users');
    await page.fill('#invite input[name=email]', 'later@example.com');
    await page.click('#invite button[type=submit]');
    await expectText(page, '#invite-url', '/accept-invite?token=', 'an invitation link');
    await shots(page, 'settings-users');
    await page.locator('tr[data-user="viewer@example.com"] button', { hasText: 'Make admin' }).click();
    await expectText(page, 'tr[data-user="viewer@example.com"]', 'Make viewer', 'a role change');
    await page.locator('tr[data-user="viewer@example.com"] button', { hasText: 'Make viewer' }).click();
    await expectText(page, 'tr[data-user="viewer@example.com"]', 'Make admin', 'a role change back');
    await visit(page, 'settings?tab=audit', 'settings audit');
    await atLeast(page, '#audit tbody tr', 2, 'audit log');
    await expectText(page, '#audit', 'user.invite_created', 'audit log events');
    await expectText(page, '#audit', 'user.role_changed', 'audit log role changes');
    await shots(page, 'settings-audit');
    await visit(page, 'settings?tab=pricing', 'settings pricing');
    await page.fill('.price-form input[name=provider]', 'acme');
    await page.fill('.price-form input[name=model_id]', 'acme-1');
    await page.fill('.price-form input[name=input_per_1m_usd]', '2');
    await page.fill('.price-form input[name=output_per_1m_usd]', '8');
    await page.click('.price-form button[type=submit]');
    await expectText(page, 'tr[data-model="acme-1"]', '$8.00', 'a model price was added');
    await page.locator('tr[data-model="acme-1"] button', { hasText: 'Edit' }).click();
    await page.fill('tr.edit-row input[name=output_per_1m_usd]', '9');
    await page.click('tr.edit-row button[type=submit]');
    await expectText(page, 'tr[data-model="acme-1"]', '$9.00', 'a model price was edited');
    await page.locator('tr[data-model="acme-1"] button', { hasText: 'Retire' }).click();
    await page.waitForSelector('tr[data-model="acme-1"]', { state: 'detached', timeout: 5000 });
    await expectText(page, '#pricing-history', 'acme-1', 'a retired price stays in history');
    await shots(page, 'settings-pricing');
    await visit(page, 'settings?tab=providers', 'settings providers');
    await page.waitForSelector('tr[data-provider="anthropic"]');
    await shots(page, 'settings-providers');
    await visit(page, 'settings?tab=channels', 'settings alert channels');
    await page.waitForSelector('#slack-webhook');
    await shots(page, 'settings-channels');
    await visit(page, 'settings?tab=instance', 'settings instance');
    await shots(page, 'settings-instance');

    step('discover agents, then set the project default prevention settings');
    await page.goto(`${URL}/#/agents`);
    await page.click('text=Discover agents from sessions');
    await page.waitForSelector('tr[data-agent="researcher"] .badge.active', { timeout: 5000 });
    const activeColor = () => { const b = document.querySelector('main table .badge.active'); return b ? getComputedStyle(b).color : 'none'; };
    const green = () => { const b = document.querySelector('main table .badge.active'); return b && getComputedStyle(b).color === 'rgb(63, 185, 80)'; };
    if (!(await page.waitForFunction(green, null, { timeout: 5000 }).then(() => true, () => false))) {
      fail(`an active agent badge is not green: ${await page.evaluate(activeColor)}`);
    }
    await page.selectOption('select[aria-label="Project"]', E.PROJECT);
    await page.goto(`${URL}/#/agents`);
    await page.waitForSelector('input[name="loop_threshold"]');
    await page.fill('input[name="loop_threshold"]', '4');
    await page.fill('input[name="max_steps"]', '40');
    await page.click('text=Save project default');
    await page.waitForSelector('main table >> text=project default', { timeout: 5000 });
    if (!(await page.textContent('main')).includes('4 × → terminate')) fail('the saved default is not shown');
    await shot(page, 'agents-prevention');
    step('agent and server metadata');
    await page.goto(`${URL}/#/agents/researcher`);
    await page.waitForSelector('#agent-meta');
    await page.fill('#agent-meta input[name=owner]', 'research-team');
    await page.click('#agent-meta button[type=submit]');
    await expectText(page, '#agent-meta', 'Saved.', 'agent metadata saved');
    await page.goto(`${URL}/#/agents`);
    await expectText(page, 'tr[data-agent="researcher"]', 'research-team', 'the agent owner');
    await page.goto(`${URL}/#/servers/docs`);
    await page.waitForSelector('#server-meta');
    await page.fill('#server-meta input[name=owner]', 'platform');
    await page.fill('#server-meta input[name=tags]', 'docs, search');
    await page.click('#server-meta button[type=submit]');
    await expectText(page, '#server-meta', 'Saved.', 'server metadata saved');
    await page.reload();
    await page.waitForSelector('#server-meta');
    if ((await page.inputValue('#server-meta input[name=owner]')) !== 'platform') fail('the server owner was not kept');
    step('an agent override of the project default');
    await page.goto(`${URL}/#/agents/researcher`);
    await page.waitForSelector('form.prevention input[name="loop_threshold"]');
    await page.fill('form.prevention input[name="loop_threshold"]', '6');
    await page.click('text=Save override for this agent');
    await page.waitForSelector('text=Remove override', { timeout: 5000 });
    if (!(await page.textContent('#prevention')).includes('6 × → terminate')) fail('the agent override is not shown');
    await page.selectOption('select[aria-label="Project"]', '');

    step('counts beyond the 1,000-session list: the overview card, the agents page, the agent page');
    // Last in the admin's walk (the newest 1,000 sessions are these from here on); the viewer and the bound
    // admin read the Team project, which holds none of them.
    const bulkAt = new Date().toISOString();
    const bulk = Array.from({ length: 1005 }, (_, i) => ({ span_id: `bulk-${i}-${bulkAt}`, span_type: 'tool_call', session_id: require('crypto').randomUUID().replace(/-/g, ''),
      server_name: 'github', tool_name: 'read_file', agent_name: 'Bulk-Agent', started_at: bulkAt, ended_at: bulkAt, status: 'success' }));
    for (let i = 0; i < bulk.length; i += 500) await postSpans(bulk.slice(i, i + 500));
    await visit(page, 'overview?hours=24', 'overview beyond the list');
    const total24 = await apiCount('hours=24');
    if (!(total24 > 1005)) fail(`the API counts ${total24} sessions in 24 h`);
    const shown24 = num(await cardValue(page, 'Sessions'));
    if (shown24 !== total24) fail(`the overview's Sessions card shows ${shown24}, the API counts ${total24}`);
    // Per-agent figures count every session of the range (`/api/agents/summary`), not the newest 1,000.
    const bulkRow = async (selector) => (await page.locator(selector).first().textContent()) || '';
    if (!(await bulkRow('#overview-agents tr:has-text("Bulk-Agent")')).includes('1,005')) fail(`the overview counts Bulk-Agent's sessions as: ${await bulkRow('#overview-agents tr:has-text("Bulk-Agent")')}`);
    if (await page.locator('#agents-capped').count()) fail('the overview agents table is still marked as a floor');
    await visit(page, 'agents', 'agents beyond the list');
    await expectText(page, 'tr[data-agent="Bulk-Agent"]', '1,005', 'the agents page counts every Bulk-Agent session');
    if ((await bulkRow('tr[data-agent="Bulk-Agent"]')).includes('≥')) fail('an agent counted from every session is still marked as a floor');
    await visit(page, 'agents/Bulk-Agent', 'an agent beyond the list');
    const agentTotal = await apiCount('hours=168&agent_name=Bulk-Agent');
    if (agentTotal !== 1005) fail(`the API counts ${agentTotal} Bulk-Agent sessions`);
    if (num(await cardValue(page, 'Sessions')) !== agentTotal) fail(`the agent page's Sessions card shows ${await cardValue(page, 'Sessions')}, the API counts ${agentTotal}`);
    if (num(await cardValue(page, 'Tool calls')) !== 1005) fail(`the agent page's calls are ${await cardValue(page, 'Tool calls')}, Bulk-Agent made 1,005`);

    step('unknown routes show a not-found page; the favicon is served');
    await page.goto(`${URL}/#/no-such-page`);
    await page.waitForSelector('#not-found', { timeout: 5000 });
    if (await page.locator('main .cards').count()) fail('an unknown route renders Overview');
    await shot(page, 'not-found');
    if ((await page.evaluate(() => document.querySelector('link[rel=icon]')?.getAttribute('href'))) !== '/favicon.svg') fail('the page names no favicon');
    const icon = await fetch(`${URL}/favicon.svg`);
    if (icon.status !== 200 || !String(icon.headers.get('content-type')).startsWith('image/svg+xml') || !(await icon.text()).includes('<svg')) fail(`favicon: ${icon.status} ${icon.headers.get('content-type')}`);
    if (!String(icon.headers.get('content-security-policy')).includes("script-src 'self'")) fail('the favicon is served without the CSP');
    const mod = await fetch(`${URL}/ui/pages/overview.js`);
    if (mod.status !== 200 || !String(mod.headers.get('content-type')).startsWith('text/javascript') || !mod.headers.get('etag')) fail(`a page module: ${mod.status} ${mod.headers.get('content-type')}`);
    const again = await fetch(`${URL}/ui/pages/overview.js`, { headers: { 'If-None-Match': mod.headers.get('etag') } });
    if (again.status !== 304) fail(`a cached module is not revalidated with 304: ${again.status}`);

    step('a viewer: their project, real data on every page, no write controls');
    const viewer = await login(browser, E.VIEWER_EMAIL, E.VIEWER_PASSWORD);
    await viewer.waitForSelector('.cards .card');
    if ((await viewer.inputValue('select[aria-label="Project"]')) !== E.PROJECT) fail('the viewer is not in their project');
    await walk(viewer, 'viewer', { session: E.TEAM_SESSION, admin: false });
    await viewer.goto(`${URL}/#/alerts?status=all`);
    await viewer.waitForSelector('#alerts tr[data-alert]');
    if (await viewer.locator('#alerts button').count()) fail('a viewer sees alert buttons');
    await viewer.goto(`${URL}/#/keys`);
    await viewer.waitForSelector('main h1');
    if (await viewer.locator('#create-key, button.danger').count()) fail('a viewer sees key controls');
    await viewer.goto(`${URL}/#/servers`);
    await viewer.waitForSelector('#servers');
    if (await viewer.locator('#check-now').count()) fail('a viewer sees Check now');
    await shot(viewer, 'viewer-servers');
    for (const p of ['slos', 'projects', 'agents', 'security', 'settings']) {
      await viewer.goto(`${URL}/#/${p}`);
      // Rendered: this page's shell (its navigation entry current) with its heading, Settings' tab filled, nothing still loading.
      await viewer.waitForFunction((p) => document.querySelector(`nav.main a[aria-current=page][href="#/${p}"]`) && document.querySelector('main h1')
        && [...document.querySelectorAll('main [id^="settings-"]')].every((b) => b.children.length)
        && ![...document.querySelectorAll('main p.dim')].some((e) => e.textContent.startsWith('Loading')), p, { timeout: 8000 });
      // Their own password is theirs to change (the form under Settings → Instance); nothing else is.
      if (await viewer.locator('main form:not(#change-password), main button:not(.view):not(#change-password button)').count()) fail(`a viewer sees write controls on ${p}`);
    }

    step('a viewer changes their own password');
    await visit(viewer, 'settings?tab=instance', 'viewer password');
    const pw = async (current, next, again) => {
      await viewer.fill('#change-password input[name=current_password]', current);
      await viewer.fill('#change-password input[name=new_password]', next);
      await viewer.fill('#change-password input[name=confirm]', again);
      await viewer.click('#change-password button[type=submit]');
    };
    const NEW_PASSWORD = 'viewer passphrase 43 renewed';
    await pw('not the password at all', NEW_PASSWORD, NEW_PASSWORD);
    await expectText(viewer, '#password-status', 'not right', 'a wrong current password');
    if (!(await viewer.locator('nav.main').count())) fail('a wrong current password logged the viewer out');
    await pw(E.VIEWER_PASSWORD, NEW_PASSWORD, 'something else entirely');
    await expectText(viewer, '#password-status', 'do not match', 'mismatched new passwords');
    await pw(E.VIEWER_PASSWORD, NEW_PASSWORD, NEW_PASSWORD);
    await expectText(viewer, '#password-status', 'Password changed', 'a password change');
    await viewer.reload();
    await viewer.waitForSelector('nav.main', { timeout: 5000 }).catch(() => fail('the session that changed the password ended'));
    const renewed = await login(browser, E.VIEWER_EMAIL, NEW_PASSWORD);
    await renewed.close();

    step('a project-bound admin (an API key bound to the project)');
    const bound = await context(browser, { extraHTTPHeaders: { 'X-API-Key': E.BOUND_KEY } });
    await bound.goto(`${URL}/`);
    await bound.waitForSelector('.cards .card', { timeout: 5000 });
    if ((await bound.inputValue('select[aria-label="Project"]')) !== E.PROJECT) fail('the bound admin is not in their project');
    const options = await bound.locator('select[aria-label="Project"] option').evaluateAll((o) => o.map((x) => x.value));
    if (options.includes('')) fail('a project-bound admin is offered "All projects"');
    await walk(bound, 'bound', { session: E.TEAM_SESSION, admin: true });
    await visit(bound, 'settings', 'bound settings');
    if (await bound.locator('.tabs a[data-tab="users"], .tabs a[data-tab="audit"]').count()) fail('a project-bound admin is offered instance-wide settings');

    if (pageErrors.length) fail(`page errors: ${JSON.stringify(pageErrors)}`);
    console.log(`page load times: ${timings.join(', ')}`);
    console.log('dashboard: all steps passed');
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(`dashboard test failed: ${e.message}`); process.exit(1); });
