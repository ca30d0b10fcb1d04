// Query: get, list (index range, prefix, cursor paging), count and history
// on any projection version, with the answer's "as of seq".
import { api, h, table, json, num, errorNote, fill } from './lib.js';

// value reads a bound: JSON if it parses (30, "placed", true), else a string.
function value(s) {
  const t = s.trim();
  if (t === '') return undefined;
  try { return JSON.parse(t); } catch (_) { return t; }
}

function answer(res, op) {
  const asOf = h('p', null, 'as of seq ', h('strong', { 'data-k': 'as-of' }, String(res.seq)));
  switch (op) {
    case 'count': return [h('p', { class: 'big', 'data-k': 'count' }, num(res.count)), asOf];
    case 'get': return [asOf, res.doc === undefined || res.doc === null ? h('p', { class: 'muted', 'data-k': 'doc' }, 'no document') : h('pre', { 'data-k': 'doc' }, json(res.doc))];
    case 'history': return [asOf, table(['seq', 'document'], (res.history || []).map((v) => h('tr', { 'data-row': String(v.seq) },
      h('td', { class: 'num' }, num(v.seq)), h('td', { class: 'wrap' }, v.doc === null ? '(deleted)' : h('code', null, JSON.stringify(v.doc))))))];
    default: return [asOf, table(['key', 'document'], (res.docs || []).map((d) => h('tr', { 'data-row': d.key },
      h('td', null, d.key), h('td', { class: 'wrap' }, h('code', null, JSON.stringify(d.doc))))))];
  }
}

export default {
  title: 'Query',
  async render(main) {
    let versions = [];
    try { versions = (await api('catalog')).projections || []; } catch (e) { main.append(errorNote(e)); }
    const target = h('select', { id: 'q-target' }, versions.filter((p) => p.active).map((p) => h('option', { value: `${p.name}:0` }, `${p.name} (active, v${p.version})`)),
      versions.map((p) => h('option', { value: `${p.name}:${p.version}` }, `${p.name} v${p.version}`)));
    const op = h('select', { id: 'q-op' }, ['get', 'list', 'count', 'history'].map((o) => h('option', { value: o }, o)));
    const key = h('input', { id: 'q-key', placeholder: 'o-1' });
    const atSeq = h('input', { id: 'q-at-seq', class: 'short', type: 'number', min: 1 });
    const index = h('select', { id: 'q-index' });
    const bounds = Object.fromEntries(['eq', 'gt', 'gte', 'lt', 'lte'].map((b) => [b, h('input', { id: 'q-' + b, class: 'short', placeholder: b === 'eq' ? '"placed"' : '' })]));
    const prefix = h('input', { id: 'q-prefix', class: 'short' });
    const limit = h('input', { id: 'q-limit', class: 'short', type: 'number', min: 1, value: 20 });
    const after = h('input', { id: 'q-after', placeholder: 'cursor' });
    const desc = h('input', { id: 'q-desc', type: 'checkbox' });
    const out = h('div', { id: 'q-result' });
    const sent = h('p', { class: 'muted', 'data-k': 'request' });
    const more = h('button', { type: 'button', id: 'q-next', hidden: true }, 'Next page →');
    const keyRow = h('div', { class: 'row' }, h('label', null, 'Key', key), h('label', null, 'At seq (get)', atSeq));
    const filterRow = h('div', { class: 'row' }, h('label', null, 'Index', index), Object.entries(bounds).map(([b, el]) => h('label', null, b, el)),
      h('label', null, 'Key prefix', prefix), h('label', null, 'Limit', limit), h('label', null, 'After (cursor)', after), h('label', { class: 'check' }, desc, 'descending'));

    const sync = () => {
      const [name, v] = target.value.split(':');
      const spec = versions.find((p) => p.name === name && (Number(v) ? p.version === Number(v) : p.active));
      fill(index, h('option', { value: '' }, '(key)'), Object.keys((spec && spec.indexes) || {}).sort().map((i) => h('option', { value: i }, i)));
      keyRow.hidden = !['get', 'history'].includes(op.value);
      filterRow.hidden = !['list', 'count'].includes(op.value);
    };
    const build = () => {
      const [name, v] = target.value.split(':');
      const q = {};
      if (Number(v)) q.version = Number(v);
      if (op.value === 'get') { q.get = key.value; if (Number(atSeq.value)) q.at_seq = Number(atSeq.value); }
      if (op.value === 'history') q.history = key.value;
      if (op.value === 'list' || op.value === 'count') {
        const f = {};
        if (index.value) f.index = index.value;
        for (const [b, el] of Object.entries(bounds)) { const x = value(el.value); if (x !== undefined) f[b] = x; }
        if (prefix.value) f.prefix = prefix.value;
        if (op.value === 'list') {
          if (Number(limit.value)) f.limit = Number(limit.value);
          if (after.value) f.after = after.value;
          if (desc.checked) f.desc = true;
        }
        q[op.value] = f;
      }
      return { name, query: q };
    };
    const run = async (ev) => {
      if (ev) ev.preventDefault();
      const req = build();
      sent.textContent = `dm.query.${req.name} ${JSON.stringify(req.query)}`;
      try {
        const res = await api('query', req);
        fill(out, ...answer(res, op.value));
        more.hidden = !(op.value === 'list' && res.next);
        more.dataset.next = res.next || '';
      } catch (e) {
        fill(out, errorNote(e)); more.hidden = true;
      }
    };
    more.addEventListener('click', () => { after.value = more.dataset.next; run(); });
    target.addEventListener('change', sync);
    op.addEventListener('change', sync);
    main.append(h('form', { class: 'row', onsubmit: run }, h('label', null, 'Projection', target), h('label', null, 'Operation', op),
      h('button', { class: 'primary', type: 'submit', id: 'q-run' }, 'Run')), keyRow, filterRow, sent, out, more);
    sync();
    return null;
  },
};
