// Helpers shared by the pages: the console API, DOM building (text only:
// nothing the API returns is ever parsed as HTML) and formatting.

export class ApiError extends Error {
  constructor(e) {
    super(e.message || e.code || 'error');
    this.code = e.code || 'error';
    this.subject = e.subject || '';
    this.status = e.status || 0;
  }
}

let onSignedOut = () => {};
export function setSignedOutHandler(fn) { onSignedOut = fn; }

// api calls the console's JSON API: GET without a body, POST with one.
export async function api(path, body) {
  const opts = { credentials: 'same-origin', headers: { 'Accept': 'application/json' } };
  if (body !== undefined) {
    opts.method = 'POST';
    opts.headers['Content-Type'] = 'application/json';
    opts.headers['X-Datamesh-Console'] = '1';
    opts.body = JSON.stringify(body);
  }
  const r = await fetch('api/' + path, opts);
  let j;
  try { j = await r.json(); } catch (_) { throw new ApiError({ code: 'error', message: `${r.status} ${r.statusText}` }); }
  if (!r.ok) {
    const e = new ApiError((j && j.error) || { code: 'error', message: String(r.status) });
    if (e.code === 'signed_out' && path !== 'login') onSignedOut();
    throw e;
  }
  return j;
}

// h builds an element: h('td', {class: 'num', 'data-k': 'x'}, 'text', node, [more]).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  add(el, children);
  return el;
}

function add(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) add(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// fill replaces el's children with children, as h adds them (arrays
// flattened, null and false skipped).
export function fill(el, ...children) {
  el.replaceChildren();
  add(el, children);
  return el;
}

// svg builds an SVG element.
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  }
  add(el, children);
  return el;
}

// errorNote shows why a part of a page is missing: "not allowed: <subject>"
// when the identity's grants refuse it.
export function errorNote(err) {
  const e = err instanceof ApiError ? err : new ApiError(err || {});
  const cls = e.code === 'not_allowed' ? 'notice denied' : 'notice err';
  return h('p', { class: cls, 'data-k': e.code === 'not_allowed' ? 'not-allowed' : 'error', 'data-subject': e.subject || null }, e.message);
}

// table wraps a table in a horizontally scrolling box. Each cell carries
// its column's name, so that a narrow window shows each row as a card.
export function table(head, rows, attrs) {
  for (const tr of rows) {
    [...tr.children].forEach((td, i) => { if (head[i]) td.setAttribute('data-label', head[i]); });
  }
  return h('div', { class: 'scroll' }, h('table', attrs || {},
    h('thead', null, h('tr', null, head.map((c) => h('th', null, c)))),
    h('tbody', null, rows.length ? rows : h('tr', null, h('td', { colspan: head.length, class: 'muted' }, 'none')))));
}

export function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.filter(Boolean).map(([k, v, key]) => [h('dt', null, k), h('dd', { 'data-k': key || null }, v)]));
}

export function badge(text, cls) { return h('span', { class: 'badge ' + (cls || '') }, text); }

export function stateBadge(state) {
  const cls = { live: 'ok', importing: 'ok', exporting: 'ok', building: 'warn', connecting: 'warn', failed: 'bad', stopped: 'bad' }[state] || '';
  return badge(state || '?', cls);
}

export function bar(fraction) {
  const pct = Math.max(0, Math.min(1, fraction || 0)) * 100;
  return h('span', { class: 'bar' + (pct >= 100 ? ' done' : ''), title: pct.toFixed(0) + '%', role: 'progressbar', 'aria-valuenow': pct.toFixed(0) },
    h('span', { style: null, 'data-w': pct.toFixed(1) }));
}

// sizeBars sets the progress bars' widths (CSP forbids inline styles in
// markup, not through the DOM).
export function sizeBars(root) {
  root.querySelectorAll('.bar > span[data-w]').forEach((s) => { s.style.width = s.dataset.w + '%'; });
}

export function num(n) { return n === undefined || n === null ? '–' : Number(n).toLocaleString('en-US'); }
export function rate(n) { return n === undefined || n === null ? '–' : (n < 10 ? Number(n).toFixed(1) : Math.round(n).toLocaleString('en-US')); }
export function secs(n) { return n ? Number(n).toFixed(1) + ' s' : '0 s'; }
export function bytes(n) {
  if (n === undefined || n === null) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0; let v = Number(n);
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return (i ? v.toFixed(1) : v) + ' ' + u[i];
}
export function json(v) { return JSON.stringify(v, null, 2); }
export function clock(d) { return (d || new Date()).toLocaleTimeString('en-GB'); }
