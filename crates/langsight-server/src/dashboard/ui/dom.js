// The DOM helpers every page builds with. Every string becomes a text node or an attribute value: no module
// ever writes HTML, so a span payload, a tool description or an agent name can only ever be shown as text.

// h('div', {class: 'x', onclick: f}, 'text', child…). Attributes starting with "on" become listeners.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(3)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const svgNS = 'http://www.w3.org/2000/svg';
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

// Replaces an element's content, skipping absent (null/false) children.
export const fill = (el, ...children) => el.replaceChildren(...children.flat(3).filter((c) => c !== null && c !== undefined && c !== false));

// A status pill; its class is the value itself (letters and _ only), which app.css colours.
export const badge = (text, cls) => h('span', { class: `badge ${String(cls || text || '').replace(/[^a-z_]/gi, '')}` }, text || '—');

export const card = (k, v, sub) => h('div', { class: 'card' }, h('div', { class: 'k' }, k), h('div', { class: 'v' }, v), sub ? h('div', { class: 'sub' }, sub) : null);
export const cards = (pairs) => h('div', { class: 'cards' }, pairs.filter(Boolean).map(([k, v, sub]) => card(k, v, sub)));
export const empty = (text) => h('p', { class: 'dim empty' }, text);
export const back = (href, label) => h('p', { class: 'back' }, h('a', { href }, `← ${label}`));
export const link = (href, text, attrs) => h('a', { href, ...(attrs || {}) }, text);
export const enc = encodeURIComponent;
export const sessionLink = (id, short) => h('a', { class: 'mono', href: `#/sessions/${enc(id)}` }, short ? String(id).slice(0, 12) : id);

// Scorecard notes come as a list (older servers: one string).
export function notesList(notes) {
  const list = (Array.isArray(notes) ? notes : notes ? [notes] : []).filter(Boolean);
  return list.length ? h('ul', { class: 'notes' }, list.map((n) => h('li', {}, n))) : '';
}

// A safe subset of markdown for alert messages, built as DOM nodes: **bold**, `code`, and [links](/path) to
// same-origin paths or #/routes only. Anything else stays text.
export function markdown(text) {
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

// A JSON value as a collapsible tree of text nodes (objects and arrays fold; long strings wrap). A string
// that itself holds JSON (payloads usually arrive that way) is parsed and shown as a tree too.
export function jsonView(value, open = 2) {
  let v = value;
  if (typeof v === 'string') { const t = v.trim(); if (/^[[{]/.test(t)) { try { v = JSON.parse(t); } catch (_) { /* plain text */ } } }
  if (typeof v === 'string') return h('pre', { class: 'json-text' }, v);
  return h('div', { class: 'json' }, node(v, open, 0));
}

function node(v, open, depth) {
  if (v === null) return h('span', { class: 'j-null' }, 'null');
  if (typeof v === 'string') return h('span', { class: 'j-str' }, JSON.stringify(v));
  if (typeof v === 'number') return h('span', { class: 'j-num' }, String(v));
  if (typeof v === 'boolean') return h('span', { class: 'j-bool' }, String(v));
  const arr = Array.isArray(v), entries = arr ? v.map((x, i) => [i, x]) : Object.entries(v);
  const [o, c] = arr ? ['[', ']'] : ['{', '}'];
  if (!entries.length) return h('span', {}, o + c);
  const details = h('details', { open: depth < open },
    h('summary', {}, o, h('span', { class: 'dim' }, ` ${entries.length} ${arr ? 'items' : 'keys'} `), c),
    h('div', { class: 'j-body' }, entries.map(([k, x]) => h('div', { class: 'j-row' },
      arr ? null : h('span', { class: 'j-key' }, `${JSON.stringify(String(k))}: `), node(x, open, depth + 1)))));
  return details;
}
