// A data table: sortable columns (click a header), an optional search box over the rows' text, and
// pagination — all over rows already fetched, so it re-renders without a request. With `serverSort` the
// rows come sorted from the API: a header click only reports the key (`onSort`) and marks the column.
import { h, fill } from './dom.js';

// table({ id, columns: [{ key, label, num, render(row), sort(row) }], rows, search: 'placeholder', pageSize,
//         sortKey, desc, rowAttrs(row), emptyText, toolbar: [elements] })
export function table(opts) {
  const { columns, rows, pageSize = 0, rowAttrs, emptyText = 'Nothing here yet.' } = opts;
  let sortKey = opts.sortKey || null, desc = opts.desc !== undefined ? opts.desc : true, page = opts.page || 0, needle = '';
  const body = h('tbody');
  const pager = h('div', { class: 'pager' });
  const head = h('tr');
  const wrap = h('div', { class: 'table-wrap' });
  const value = (c, r) => (c.sort ? c.sort(r) : r[c.key]);
  const text = (r) => columns.map((c) => { const v = r[c.key]; return Array.isArray(v) ? v.join(' ') : v == null ? '' : String(v); }).join(' ').toLowerCase();

  function draw() {
    let list = needle ? rows.filter((r) => text(r).includes(needle)) : rows.slice();
    const col = columns.find((c) => c.key === sortKey);
    if (col && !opts.serverSort) {
      list.sort((a, b) => {
        const x = value(col, a), y = value(col, b);
        if (x == null && y == null) return 0; if (x == null) return 1; if (y == null) return -1;
        const r = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
        return desc ? -r : r;
      });
    }
    const pages = pageSize ? Math.max(1, Math.ceil(list.length / pageSize)) : 1;
    page = Math.min(page, pages - 1);
    const shown = pageSize ? list.slice(page * pageSize, (page + 1) * pageSize) : list;
    body.replaceChildren(...shown.map((r) => h('tr', rowAttrs ? rowAttrs(r) : {}, columns.map((c) => h('td', { class: c.num ? 'num' : c.cls || null }, c.render ? c.render(r) : r[c.key] == null ? '—' : String(r[c.key]))))));
    for (const th of head.children) th.setAttribute('aria-sort', th.dataset.key === sortKey ? (desc ? 'descending' : 'ascending') : 'none');
    fill(pager,
      h('span', { class: 'dim small count' }, list.length === rows.length ? `${rows.length} row${rows.length === 1 ? '' : 's'}` : `${list.length} of ${rows.length} rows`),
      pageSize && pages > 1 ? [
        h('button', { class: 'secondary small view', disabled: page === 0, onclick: () => { page--; if (opts.onPage) opts.onPage(page); draw(); } }, '← Prev'),
        h('span', { class: 'small page-no' }, `page ${page + 1} of ${pages}`),
        h('button', { class: 'secondary small view next', disabled: page >= pages - 1, onclick: () => { page++; if (opts.onPage) opts.onPage(page); draw(); } }, 'Next →')] : null);
    empty.hidden = list.length > 0;
  }
  for (const c of columns) {
    const th = h('th', { class: c.num ? 'num' : null, 'data-key': c.key, scope: 'col' });
    if (c.sortable === false || !c.key) th.append(c.label || '');
    else th.append(h('button', { class: 'sort view', type: 'button', onclick: () => { if (sortKey === c.key) desc = !desc; else { sortKey = c.key; desc = Boolean(c.num); } if (opts.onSort) opts.onSort(sortKey, desc); draw(); } }, c.label));
    head.append(th);
  }
  const empty = h('p', { class: 'dim empty' }, emptyText);
  const search = opts.search ? h('input', { type: 'search', class: 'search', placeholder: opts.search, 'aria-label': opts.search, value: opts.initialSearch || '',
    oninput: (e) => { needle = e.target.value.trim().toLowerCase(); page = 0; if (opts.onPage) opts.onPage(0); draw(); if (opts.onSearch) opts.onSearch(e.target.value); } }) : null;
  if (search && opts.initialSearch) needle = opts.initialSearch.trim().toLowerCase();
  const bar = search || opts.toolbar ? h('div', { class: 'filters' }, search, opts.toolbar || null) : null;
  wrap.append(...[bar, h('table', { id: opts.id || null, class: opts.cls || null }, h('thead', {}, head), body), empty, pager].filter(Boolean));
  draw();
  return wrap;
}
