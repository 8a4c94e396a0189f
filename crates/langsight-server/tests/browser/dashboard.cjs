// Drives the built-in dashboard in Debian's Chromium through playwright-core. Started by tests/dashboard.rs
// with a running server and its data; exits non-zero (saying which step) on the first failure. Screenshots of
// every page at 1280x800 go to $SHOTS.
'use strict';
const { chromium } = require('playwright-core');
const fs = require('fs');
const path = require('path');

const E = process.env;
const URL = E.URL;
const step = (name) => console.log(`step: ${name}`);
const fail = (msg) => { throw new Error(msg); };

async function shot(page, name) {
  await page.waitForTimeout(150);
  await page.screenshot({ path: path.join(E.SHOTS, `${name}.png`), fullPage: false });
}

async function login(browser, email, password) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => { console.error(`page error: ${e.message}`); process.exitCode = 1; });
  await page.goto(`${URL}/`);
  await page.fill('#email', email);
  await page.fill('#password', password);
  await page.click('button[type=submit]');
  await page.waitForSelector('nav.main', { timeout: 5000 });
  return page;
}

async function postSpans(spans) {
  const r = await fetch(`${URL}/api/traces/spans`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-API-Key': E.ADMIN_KEY }, body: JSON.stringify(spans) });
  if (r.status !== 202) fail(`ingest answered ${r.status}`);
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
    await shot(page, 'overview');

    step('sessions list and page');
    await page.goto(`${URL}/#/sessions`);
    await page.waitForSelector(`a[href="#/sessions/${E.SESSION}"]`, { timeout: 5000 });
    await shot(page, 'sessions');
    await page.click(`a[href="#/sessions/${E.SESSION}"]`);
    await page.waitForSelector('#tree .row', { timeout: 5000 });
    for (const b of await page.locator('#tree button').all()) await b.click();
    await page.waitForFunction(() => [...document.querySelectorAll('pre.payload')].every((p) => p.dataset.loaded === '1'), null, { timeout: 5000 });
    const payloads = await page.locator('pre.payload').allTextContents();
    if (!payloads.some((t) => t.includes('<script>window.__pwned = 1</script>'))) fail(`the <script> payload is not shown as text: ${JSON.stringify(payloads)}`);
    if (await page.evaluate(() => window.__pwned !== undefined || document.querySelectorAll('#tree script').length > 0)) fail('a payload ran as HTML');
    await shot(page, 'session');

    step('live view');
    await page.goto(`${URL}/#/live`);
    await page.waitForFunction(() => document.getElementById('live-status') && document.getElementById('live-status').textContent === 'live', null, { timeout: 5000 });
    const id = `live-${Date.now()}`;
    const now = new Date().toISOString();
    const sent = Date.now();
    await postSpans([{ span_id: id, span_type: 'tool_call', session_id: E.SESSION, server_name: 'docs', tool_name: 'search', agent_name: 'researcher', started_at: now, ended_at: now, status: 'success' }]);
    await page.waitForSelector(`tr[data-span="${id}"]`, { timeout: 1000 });
    console.log(`span:new shown ${Date.now() - sent} ms after the POST`);
    await page.click('#live-pause');
    await shot(page, 'live');

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
    await shot(page, 'servers');
    await page.click('a[href="#/servers/docs"]');
    await page.waitForSelector('.charts svg');
    step('server page: drift severity per row, down checks as gaps, notes listed');
    await page.waitForSelector('tr[data-drift="optional_param_added"]', { timeout: 5000 });
    if (!(await page.locator('tr[data-drift="optional_param_added"] .badge.compatible').count())) fail('a compatible drift row is not marked compatible');
    if (await page.locator('tr[data-drift="optional_param_added"] .badge.breaking').count()) fail('a compatible drift row is marked breaking');
    if (!(await page.locator('tr[data-drift="param_type_changed"] .badge.breaking').count())) fail('a breaking drift row is not marked breaking');
    if (!(await page.locator('.charts svg rect.down').count())) fail('down checks are not marked on the latency chart');
    if (await page.locator('.charts svg text').count()) fail('chart text is drawn inside the stretched SVG');
    if ((await page.locator('ul.notes li').count()) < 2) fail('scorecard notes are not listed');
    await shot(page, 'server');

    step('ack an alert');
    await page.goto(`${URL}/#/alerts`);
    await page.waitForSelector('#alerts tr[data-alert]');
    step('alert messages: safe markdown, HTML as text, session links');
    const msgs = await page.locator('#alerts .msg').allTextContents();
    if (msgs.some((t) => t.includes('**'))) fail(`raw markdown in alert messages: ${JSON.stringify(msgs)}`);
    if (!(await page.locator('#alerts .msg strong').count()) || !(await page.locator('#alerts .msg code').count())) fail('alert markdown is not rendered as elements');
    if (!msgs.some((t) => t.includes('<script>window.__pwned = 3</script>'))) fail(`the <script> agent name is not shown as text: ${JSON.stringify(msgs)}`);
    if (await page.evaluate(() => window.__pwned !== undefined || document.querySelectorAll('#alerts script').length > 0)) fail('an alert message ran as HTML');
    const links = await page.evaluate(() => [...markdown('[a](#/sessions/x) [b](javascript:alert(1)) [c](//elsewhere/x) [d](https://elsewhere/) [e](/#/alerts) [f](/\\elsewhere)')]
      .filter((n) => n instanceof Element && n.tagName === 'A').map((a) => a.getAttribute('href')));
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
    await shot(page, 'alerts');

    step('create and revoke an API key');
    await page.goto(`${URL}/#/keys`);
    await page.fill('#key-name', 'browser-key');
    await page.click('#create-key');
    await page.waitForSelector('#new-key-value');
    const key = await page.textContent('#new-key-value');
    if (!/^ls_[0-9a-f]{64}$/.test(key)) fail(`the new key is not shown: ${key}`);
    await shot(page, 'keys');
    await page.locator('tr[data-key="browser-key"] button', { hasText: 'Revoke' }).click();
    await page.waitForSelector('tr[data-key="browser-key"] .badge.revoked', { timeout: 5000 });

    for (const p of ['costs', 'slos', 'agents', 'projects']) {
      await page.goto(`${URL}/#/${p}`);
      await page.waitForSelector('main h1');
      await shot(page, p);
    }

    step('discover agents, then set the project default prevention settings');
    await page.goto(`${URL}/#/agents`);
    await page.click('text=Discover agents from sessions');
    await page.waitForSelector('main table >> text=researcher', { timeout: 5000 });
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
    await shot(page, 'agents');
    await page.selectOption('select[aria-label="Project"]', '');

    step('unknown routes show a not-found page; the favicon is served');
    await page.goto(`${URL}/#/no-such-page`);
    await page.waitForSelector('#not-found', { timeout: 5000 });
    if (await page.locator('main .cards').count()) fail('an unknown route renders Overview');
    await shot(page, 'not-found');
    if ((await page.evaluate(() => document.querySelector('link[rel=icon]')?.getAttribute('href'))) !== '/favicon.svg') fail('the page names no favicon');
    const icon = await fetch(`${URL}/favicon.svg`);
    if (icon.status !== 200 || !String(icon.headers.get('content-type')).startsWith('image/svg+xml') || !(await icon.text()).includes('<svg')) fail(`favicon: ${icon.status} ${icon.headers.get('content-type')}`);
    if (!String(icon.headers.get('content-security-policy')).includes("script-src 'self'")) fail('the favicon is served without the CSP');

    step('a viewer sees no write controls');
    const viewer = await login(browser, E.VIEWER_EMAIL, E.VIEWER_PASSWORD);
    await viewer.selectOption('select[aria-label="Project"]', E.PROJECT);
    await viewer.waitForSelector('.cards .card');
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
    for (const p of ['slos', 'projects', 'agents']) {
      await viewer.goto(`${URL}/#/${p}`);
      await viewer.waitForSelector('main h1');
      if (await viewer.locator('main form, main button').count()) fail(`a viewer sees write controls on ${p}`);
    }
    console.log('dashboard: all steps passed');
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(`dashboard test failed: ${e.message}`); process.exit(1); });
