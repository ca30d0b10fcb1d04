// Events: browse an aggregate (or a whole category) page by page, each
// event with its attributes and data; "follow" polls for new events.
import { api, h, json, errorNote, fill } from './lib.js';

const FOLLOW_MAX = 500;

function eventItem(ev, fresh) {
  const attrs = { ...ev };
  delete attrs.data;
  return h('details', { class: fresh ? 'new' : null, 'data-seq': ev.seq },
    h('summary', null, h('span', { class: 'seq' }, '#' + ev.seq), h('span', null, `${ev.aggregate}/${ev.aggregateid}`),
      h('strong', null, ev.type), h('span', { class: 'muted' }, ev.time || ''), ev.origin ? h('span', { class: 'muted' }, `from ${ev.origin.node} #${ev.origin.seq}`) : null),
    h('div', { class: 'cols' }, h('div', null, h('h3', null, 'attributes'), h('pre', null, json(attrs))),
      h('div', null, h('h3', null, 'data'), h('pre', { 'data-k': 'data' }, json(ev.data)))));
}

export default {
  title: 'Events',
  async render(main, ctx) {
    let aggregates = [];
    try {
      const cat = await api('catalog');
      aggregates = [...new Set((cat.event_types || []).map((e) => e.aggregate))].sort();
    } catch (_) { /* the form still works with a typed aggregate */ }
    const agg = h('input', { id: 'ev-aggregate', list: 'ev-aggregates', placeholder: 'order', value: ctx.params[0] || aggregates[0] || '' });
    const id = h('input', { id: 'ev-id', placeholder: 'all of the category', value: ctx.params[1] || '' });
    const from = h('input', { id: 'ev-from', class: 'short', type: 'number', min: 1, placeholder: '1' });
    const limit = h('input', { id: 'ev-limit', class: 'short', type: 'number', min: 1, max: 1000, value: 25 });
    const follow = h('input', { id: 'ev-follow', type: 'checkbox' });
    const prev = h('button', { type: 'button', id: 'ev-prev', disabled: true }, '← Previous');
    const next = h('button', { type: 'button', id: 'ev-next', disabled: true }, 'Next →');
    const info = h('p', { class: 'muted', 'data-k': 'events-info' });
    const list = h('div', { class: 'events', id: 'events-list' });
    const msg = h('div');
    let pages = []; let nextSeq = 0; let lastSeq = 0;

    const read = async (fromSeq, lim) => {
      const q = new URLSearchParams({ aggregate: agg.value.trim(), limit: String(lim) });
      if (id.value.trim()) q.set('id', id.value.trim());
      if (fromSeq) q.set('from', String(fromSeq));
      return api('events?' + q.toString());
    };
    const page = async (fromSeq) => {
      msg.replaceChildren();
      try {
        const r = await read(fromSeq, Number(limit.value) || 25);
        const evs = r.events || [];
        fill(list, ...evs.map((e) => eventItem(e, false)));
        nextSeq = r.next_seq || 0;
        lastSeq = evs.length ? evs[evs.length - 1].seq : Math.max(lastSeq, (fromSeq || 1) - 1);
        next.disabled = !nextSeq; prev.disabled = pages.length < 2;
        info.textContent = evs.length ? `events #${evs[0].seq} to #${evs[evs.length - 1].seq}${nextSeq ? ', more after' : ', the last page'}` : 'no events';
      } catch (e) {
        list.replaceChildren(); fill(msg, errorNote(e));
      }
    };
    const start = (ev) => {
      if (ev) ev.preventDefault();
      pages = [Number(from.value) || 0]; lastSeq = 0;
      history.replaceState(null, '', '#events/' + encodeURIComponent(agg.value.trim()) + (id.value.trim() ? '/' + encodeURIComponent(id.value.trim()) : ''));
      return page(pages[0]);
    };
    next.addEventListener('click', () => { pages.push(nextSeq); page(nextSeq); });
    prev.addEventListener('click', () => { pages.pop(); page(pages[pages.length - 1]); });
    main.append(h('form', { class: 'row', onsubmit: start },
      h('label', null, 'Aggregate', agg), h('datalist', { id: 'ev-aggregates' }, aggregates.map((a) => h('option', { value: a }))),
      h('label', null, 'Id (empty: the whole category)', id), h('label', null, 'From seq', from), h('label', null, 'Page size', limit),
      h('button', { class: 'primary', type: 'submit', id: 'ev-read' }, 'Read'), prev, next,
      h('label', { class: 'check' }, follow, 'Follow new events')), info, msg, list);
    if (agg.value) await start();
    // follow: each refresh reads what came after the last event shown
    return async () => {
      if (!follow.checked || !agg.value.trim()) return;
      let r = await read(lastSeq + 1, 100);
      for (let n = 0; n < 10; n++) {
        for (const e of r.events || []) {
          list.append(eventItem(e, true));
          lastSeq = e.seq;
        }
        if (!r.next_seq) break;
        r = await read(r.next_seq, 100);
      }
      while (list.children.length > FOLLOW_MAX) list.firstElementChild.remove();
      next.disabled = true;
      info.textContent = `following: last event #${lastSeq}`;
    };
  },
};
