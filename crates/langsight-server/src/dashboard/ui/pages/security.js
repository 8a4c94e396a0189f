// Security: are my MCP servers safe to call? The newest scan of each server — findings by severity, with
// remediation —, each server's findings by severity over its stored scans (`/api/security/scans`), and
// (admins) a new scan of every server or one.
import { h, fill, badge, cards, enc, empty } from '../dom.js';
import { api, maybe, isAdmin, state, writeError } from '../api.js';
import { fmtNum, when, ago } from '../format.js';
import { table } from '../table.js';
import { chart } from '../chart.js';

const SEVERITIES = ['critical', 'high', 'medium', 'low', 'info'];

export default async function security(main) {
  const scans = await api('GET', '/api/security/findings');
  const all = scans.flatMap((s) => (s.findings || []).map((f) => ({ ...f, server_name: s.server_name })));
  const count = (sev) => all.filter((f) => f.severity === sev).length;
  const msg = h('span', { class: 'dim', role: 'status', id: 'scan-status' });
  const run = (server) => async (e) => {
    e.target.disabled = true; msg.textContent = server ? `Scanning ${server}…` : 'Scanning every server…';
    try { const r = await api('POST', `/api/security/scan${server ? `?server_name=${enc(server)}` : ''}`); msg.textContent = `Scanned ${r.length} server${r.length === 1 ? '' : 's'}.`; state.rerender(); }
    catch (x) { msg.textContent = writeError(x); e.target.disabled = false; }
  };
  fill(main, h('div', { class: 'page-head' }, h('h1', {}, 'Security'), isAdmin() ? h('button', { id: 'run-scan', onclick: run('') }, 'Run a scan') : null, msg),
    cards([['Servers scanned', fmtNum(scans.length)], ...SEVERITIES.slice(0, 4).map((s) => [s[0].toUpperCase() + s.slice(1), fmtNum(count(s))]),
      ['Last scan', scans.length ? ago(scans.map((s) => s.scanned_at).sort().pop()) : '—']]),
    scans.length ? null : empty(isAdmin() ? 'No scan yet: run one to check every MCP server for known vulnerabilities, risky tools and weak auth.' : 'No scan yet: an admin can run one.'),
    scans.length ? [h('h2', {}, 'By server'), table({ id: 'scan-summary', rows: scans.map((s) => ({ ...s, ...Object.fromEntries(SEVERITIES.map((v) => [v, (s.findings || []).filter((f) => f.severity === v).length])) })),
      sortKey: 'critical', columns: [
        { key: 'server_name', label: 'Server', render: (s) => h('a', { href: `#/servers/${enc(s.server_name)}` }, s.server_name) },
        ...SEVERITIES.map((v) => ({ key: v, label: v, num: true, render: (s) => (s[v] ? badge(String(s[v]), v) : h('span', { class: 'dim' }, '0')) })),
        { key: 'scanned_at', label: 'Scanned', render: (s) => ago(s.scanned_at) }] })] : null,
    scans.map((s) => h('section', { class: 'scan', 'data-scan': s.server_name },
      h('h2', {}, h('a', { href: `#/servers/${enc(s.server_name)}` }, s.server_name), ' ', badge(s.highest_severity || (s.error ? 'error' : 'clean'), s.highest_severity || (s.error ? 'warn' : 'ok')),
        h('span', { class: 'dim small' }, ` · ${fmtNum(s.findings_count)} findings · scanned ${when(s.scanned_at)}`),
        isAdmin() ? h('button', { class: 'secondary small', onclick: run(s.server_name) }, 'Rescan') : null),
      s.error ? h('p', { class: 'dim' }, s.error) : null,
      h('div', { class: 'scan-history', 'data-history': s.server_name }, h('p', { class: 'dim small' }, 'Loading the scan history…')),
      (s.findings || []).length ? h('table', {}, h('thead', {}, h('tr', {}, ['Severity', 'Category', 'Finding', 'Tool', 'Remediation'].map((c) => h('th', {}, c)))),
        h('tbody', {}, s.findings.map((f) => h('tr', { 'data-severity': f.severity }, h('td', {}, badge(f.severity)), h('td', {}, f.category),
          h('td', {}, h('div', {}, f.title, f.cve_id ? h('span', { class: 'mono dim' }, ` ${f.cve_id}`) : null), h('div', { class: 'dim small' }, f.description)),
          h('td', { class: 'mono' }, f.tool_name || '—'), h('td', { class: 'small' }, f.remediation || '—'))))) : s.error ? null : h('p', { class: 'dim small' }, 'No findings.'))));
  // Each server's history fills in after the page: one bounded request per server (at most 30 scans), for the
  // first ten servers; further down, on request.
  [...main.querySelectorAll('.scan-history')].forEach((box, i) => {
    if (i < 10) history(box, box.dataset.history);
    else fill(box, h('button', { class: 'secondary small view', type: 'button', onclick: () => history(box, box.dataset.history) }, 'Show the scan history'));
  });
}

// Findings by severity over a server's stored scans: a chart of critical and high, and every scan in a table.
async function history(box, server) {
  const scans = await maybe(`/api/security/scans?server_name=${enc(server)}&limit=30`, []);
  if (!scans.length) { fill(box); return; }
  // Oldest first; a scan that could not run is a gap, not a clean zero.
  const points = scans.slice().reverse().map((x) => (x.error ? { ...x, critical_count: null, high_count: null } : x));
  fill(box, h('details', { open: scans.length > 1 },
    h('summary', {}, `Findings over the last ${fmtNum(scans.length)} scan${scans.length === 1 ? '' : 's'}`),
    scans.length > 1 ? chart({ title: `${server} findings`, points, at: 'scanned_at', gapLabel: 'scan failed',
      series: [{ key: 'critical_count', label: 'critical', fmt: fmtNum }, { key: 'high_count', label: 'high', fmt: fmtNum }] }) : null,
    table({ id: null, cls: 'scan-history-table', rows: scans.map((x) => ({ ...x, critical: x.critical_count, high: x.high_count, medium: x.medium_count, low: x.low_count, info: x.info_count })),
      sortKey: 'scanned_at', pageSize: 10, columns: [
        { key: 'scanned_at', label: 'Scanned', render: (x) => when(x.scanned_at) },
        ...SEVERITIES.map((v) => ({ key: v, label: v, num: true, render: (x) => (x.error ? h('span', { class: 'dim' }, '—') : x[v] ? badge(String(x[v]), v) : h('span', { class: 'dim' }, '0')) })),
        { key: 'error', label: 'Note', render: (x) => x.error || '' }] })));
}
