// Who can get in, in Debian's Chromium through playwright-core (started by tests/dashboard.rs,
// `every_role_gets_in`): a viewer lands in their project with its data and no raw API error; an invitation
// link sets a password and lands logged in; a fresh server offers "create the first admin" to a local browser
// and then shows how to send a first span. Exits non-zero naming the failed step; screenshots go to $SHOTS.
'use strict';
const { chromium } = require('playwright-core');
const fs = require('fs');
const path = require('path');

const E = process.env;
const step = (name) => console.log(`step: ${name}`);
const fail = (msg) => { throw new Error(msg); };
const RAW_ERRORS = ['project_id query parameter is required', 'HTTP 4', 'HTTP 5', '"detail"'];

// The page in the dark theme (`name.png`) and the light one (`name-light.png`).
async function shot(page, name) {
  for (const [scheme, suffix] of [['dark', ''], ['light', '-light']]) {
    await page.emulateMedia({ colorScheme: scheme });
    await page.waitForTimeout(150);
    await page.screenshot({ path: path.join(E.SHOTS, `${name}${suffix}.png`), fullPage: false });
  }
}

async function newPage(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => { console.error(`page error: ${e.message}`); process.exitCode = 1; });
  return page;
}

async function noRawError(page, where) {
  const text = await page.textContent('body');
  for (const raw of RAW_ERRORS) if (text.includes(raw)) fail(`${where} shows a raw API error (${raw}): ${text.slice(0, 400)}`);
}

(async () => {
  fs.mkdirSync(E.SHOTS, { recursive: true });
  const browser = await chromium.launch({ executablePath: E.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  try {
    step('a viewer lands in their project with its data');
    const viewer = await newPage(browser);
    // A choice left in this browser by someone else must not leave the viewer on a project they cannot read.
    await viewer.goto(`${E.URL}/`);
    await viewer.evaluate(() => localStorage.setItem('ls.project', 'someone-elses-project'));
    await viewer.reload();
    await viewer.fill('#email', E.VIEWER_EMAIL);
    await viewer.fill('#password', E.VIEWER_PASSWORD);
    await viewer.click('button[type=submit]');
    await viewer.waitForSelector('.cards .card', { timeout: 5000 });
    const picked = await viewer.inputValue('select[aria-label="Project"]');
    if (picked !== E.PROJECT) fail(`the viewer starts in ${JSON.stringify(picked)}, not their project`);
    const options = await viewer.locator('select[aria-label="Project"] option').evaluateAll((o) => o.map((x) => x.value));
    if (JSON.stringify(options) !== JSON.stringify([E.PROJECT])) fail(`the viewer's picker lists ${JSON.stringify(options)}`);
    const sessions = await viewer.locator('.card', { hasText: 'Sessions' }).locator('.v').first().textContent();
    if (!(Number(sessions) >= 1)) fail(`the viewer's overview shows no sessions of their project: ${sessions}`);
    await viewer.waitForSelector(`main a[href="#/sessions/${E.PROJECT_SESSION}"]`, { timeout: 5000 });
    await noRawError(viewer, 'the viewer overview');
    await shot(viewer, 'viewer-overview');
    for (const p of ['sessions', 'live', 'servers', 'alerts', 'costs', 'slos', 'agents', 'projects', 'keys']) {
      await viewer.goto(`${E.URL}/#/${p}`);
      await viewer.waitForSelector('main h1, main .friendly-error', { timeout: 5000 });
      await noRawError(viewer, `the viewer's ${p} page`);
    }
    await viewer.goto(`${E.URL}/#/sessions`);
    await viewer.waitForSelector(`a[href="#/sessions/${E.PROJECT_SESSION}"]`, { timeout: 5000 });
    step('a failing request shows a friendly message, not the API detail');
    await viewer.goto(`${E.URL}/#/sessions/no-such-session`);
    await viewer.waitForSelector('main .friendly-error', { timeout: 5000 });
    await noRawError(viewer, 'a missing session');

    step('the invitation link sets a password and lands logged in');
    const invitee = await newPage(browser);
    await invitee.goto(E.INVITE_URL);
    await invitee.waitForSelector('#accept-invite #invite-password', { timeout: 5000 });
    await shot(invitee, 'accept-invite');
    await invitee.fill('#invite-password', 'short');
    await invitee.fill('#invite-password2', 'short');
    await invitee.click('#accept-invite button[type=submit]');
    await invitee.waitForFunction(() => document.querySelector('#accept-invite .error').textContent.includes('at least 12'), null, { timeout: 5000 });
    await invitee.fill('#invite-password', E.INVITEE_PASSWORD);
    await invitee.fill('#invite-password2', E.INVITEE_PASSWORD);
    await invitee.click('#accept-invite button[type=submit]');
    await invitee.waitForSelector('nav.main', { timeout: 5000 });
    const who = await invitee.textContent('.who');
    if (!who.includes(E.INVITEE_EMAIL)) fail(`after accepting, the page shows ${who}`);
    if (new URL(invitee.url()).pathname !== '/') fail(`after accepting, the address is still ${invitee.url()}`);
    await invitee.waitForSelector('main h1', { timeout: 5000 });
    await noRawError(invitee, 'the invitee landing page');
    await shot(invitee, 'invite-landed');
    // The link is spent: opening it again says so in words.
    const again = await newPage(browser);
    await again.goto(E.INVITE_URL);
    await again.fill('#invite-password', E.INVITEE_PASSWORD);
    await again.fill('#invite-password2', E.INVITEE_PASSWORD);
    await again.click('#accept-invite button[type=submit]');
    await again.waitForFunction(() => document.querySelector('#accept-invite .error').textContent.includes('already been used'), null, { timeout: 5000 });

    step('first run: a local browser creates the first admin, then sends a first span');
    const fresh = await newPage(browser);
    await fresh.goto(`${E.FRESH_URL}/`);
    await fresh.waitForSelector('#setup #setup-email', { timeout: 5000 });
    if (await fresh.locator('#setup-token').count()) fail('a local browser is asked for the setup token');
    await shot(fresh, 'setup');
    await fresh.fill('#setup-email', 'first@example.com');
    await fresh.fill('#setup-password', 'password');
    await fresh.fill('#setup-password2', 'password');
    await fresh.click('#setup button[type=submit]');
    await fresh.waitForFunction(() => document.querySelector('#setup .error').textContent.length > 0, null, { timeout: 5000 });
    await fresh.fill('#setup-password', 'first admin passphrase');
    await fresh.fill('#setup-password2', 'first admin passphrase');
    await fresh.click('#setup button[type=submit]');
    await fresh.waitForSelector('#make-sdk-key', { timeout: 5000 });
    if (!(await fresh.textContent('.who')).includes('first@example.com')) fail('the first admin is not logged in');
    await fresh.click('#make-sdk-key');
    await fresh.waitForSelector('#sdk-key-value', { timeout: 5000 });
    const key = await fresh.textContent('#sdk-key-value');
    const snippet = await fresh.textContent('#first-span-snippet');
    if (!snippet.includes(`${E.FRESH_URL}/api/traces/spans`) || !snippet.includes(key)) fail(`the snippet lacks the URL or key: ${snippet}`);
    await shot(fresh, 'welcome');
    // Send exactly what the snippet sends.
    const body = snippet.split(" -d '")[1].replace(/'\s*$/, '');
    const sent = await fetch(`${E.FRESH_URL}/api/traces/spans`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-API-Key': key }, body });
    if (sent.status !== 202) fail(`the snippet's span was answered ${sent.status}: ${await sent.text()}`);
    await fresh.click('text=I sent it: show my session');
    await fresh.waitForSelector('#tree .row', { timeout: 5000 });
    step('an admin with no project reads the project list once per login, and again after a create, rename or delete');
    const listed = [];
    fresh.on('request', (r) => { if (r.method() === 'GET' && new URL(r.url()).pathname === '/api/projects') listed.push(r.url()); });
    const go = async (p) => {
      await fresh.goto(`${E.FRESH_URL}/#/${p}`);
      await fresh.waitForSelector(`nav.main a.on[href="#/${p.split('?')[0]}"]`, { timeout: 5000 });
      await fresh.waitForSelector('main h1, main .friendly-error', { timeout: 5000 });
      await noRawError(fresh, `the first admin's ${p} page`);
    };
    for (const p of ['overview', 'sessions', 'agents', 'costs', 'slos', 'keys', 'overview']) await go(p);
    await fresh.waitForTimeout(200);
    if (listed.length) fail(`the project list was requested again on navigation: ${listed.length} × ${listed[0]}`);
    const picker = () => fresh.locator('select[aria-label="Project"] option').evaluateAll((o) => o.map((x) => x.textContent));
    await go('projects');
    await fresh.fill('input[name=name]', 'Scratch');
    await fresh.click('main form button:text-is("Create")');
    await fresh.waitForFunction(() => [...document.querySelectorAll('select[aria-label="Project"] option')].some((o) => o.textContent === 'Scratch'), null, { timeout: 5000 })
      .catch(async () => fail(`a created project is not in the picker: ${JSON.stringify(await picker())}`));
    await fresh.fill('input[name=pname]', 'Scratch renamed');
    await fresh.click('main form button:text-is("Rename")');
    await fresh.waitForFunction(() => [...document.querySelectorAll('select[aria-label="Project"] option')].some((o) => o.textContent === 'Scratch renamed'), null, { timeout: 5000 })
      .catch(async () => fail(`a renamed project keeps its old name in the picker: ${JSON.stringify(await picker())}`));
    fresh.once('dialog', (d) => d.accept());
    await fresh.click('main form button:text-is("Delete project")');
    await fresh.waitForFunction(() => ![...document.querySelectorAll('select[aria-label="Project"] option')].some((o) => o.textContent.startsWith('Scratch')), null, { timeout: 5000 })
      .catch(async () => fail(`a deleted project stays in the picker: ${JSON.stringify(await picker())}`));
    // The Projects page's own list (drawn after the shell's) is in before counting again.
    await fresh.waitForSelector('main p.dim:text-is("No projects.")', { timeout: 5000 });
    listed.length = 0;
    for (const p of ['overview', 'sessions']) await go(p);
    await fresh.waitForTimeout(200);
    if (listed.length) fail(`the project list was requested again on navigation after a delete: ${listed.length}`);

    // Set up now: the form is gone for good.
    const later = await newPage(browser);
    await later.goto(`${E.FRESH_URL}/`);
    await later.waitForSelector('#email', { timeout: 5000 });
    if (await later.locator('#setup').count()) fail('the first-run form is still offered');
    console.log('access: all steps passed');
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(`access test failed: ${e.message}`); process.exit(1); });
