// Welcome (after the first admin is created): how do I send my first span? An SDK key, a copyable snippet
// with this server's real URL, and a check that the span arrived.
import { h, fill } from '../dom.js';
import { api, friendlyError } from '../api.js';

export default async function welcome(main) {
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

