// Links and exports: each link's peer, connection, origin seq, lag, rate
// and dead letters (listed, replayed); each export's peers and how far
// each has read.
import { api, h, table, badge, stateBadge, num, rate, secs, json, errorNote, fill } from './lib.js';

function linkRows(links, open) {
  return links.map((l) => h('tr', { 'data-row': l.name },
    h('td', null, l.name), h('td', null, l.peer), h('td', null, l.export), h('td', null, stateBadge(l.state)),
    h('td', null, badge(l.connected ? 'yes' : 'no', l.connected ? 'ok' : 'bad')),
    h('td', { class: 'num', 'data-k': 'origin-seq' }, num(l.origin_seq)), h('td', { class: 'num' }, num(l.owner_head_seq)),
    h('td', { class: 'num', 'data-k': 'lag' }, num(l.lag_events)), h('td', { class: 'num' }, secs(l.lag_seconds)),
    h('td', { class: 'num' }, rate(l.rate)), h('td', { class: 'num', 'data-k': 'imported' }, num(l.imported)),
    h('td', { class: 'num' }, num(l.filtered)), h('td', { class: 'num', 'data-k': 'dead' }, num(l.dead_letters)),
    h('td', { class: 'wrap' }, l.last_error || ''),
    h('td', null, h('button', { type: 'button', 'data-action': 'dead-letters', onclick: () => open(l.name) }, 'Dead letters'))));
}

function exportRows(exports) {
  return exports.map((e) => h('tr', { 'data-row': `${e.name}.${e.peer}` },
    h('td', null, e.name), h('td', null, e.peer), h('td', null, stateBadge(e.state)),
    h('td', null, badge(e.connected ? 'yes' : 'no', e.connected ? 'ok' : 'bad')),
    h('td', { class: 'num' }, num(e.exported_seq)), h('td', { class: 'num' }, num(e.head)),
    h('td', { class: 'num', 'data-k': 'stream-seq' }, num(e.stream_seq)), h('td', { class: 'num', 'data-k': 'read-seq' }, num(e.read_seq)),
    h('td', { class: 'num', 'data-k': 'unread' }, num(Math.max(0, e.stream_seq - e.read_seq))), h('td', { class: 'wrap' }, e.last_error || '')));
}

// deadLetters lists one link's dead letters with replay buttons.
async function deadLetters(box, link) {
  const msg = h('div', { 'data-k': 'replay-result', role: 'status' });
  const replay = async (seqs) => {
    try {
      const r = await api('replay', { name: link, export_seqs: seqs });
      fill(msg, h('p', { class: 'notice ok' }, `replayed ${(r.replayed || []).length}, filtered ${(r.filtered || []).length}, failed ${(r.failed || []).length}`));
      await list();
    } catch (e) {
      fill(msg, errorNote(e));
    }
  };
  const list = async () => {
    let r;
    try {
      r = await api('deadletters?link=' + encodeURIComponent(link));
    } catch (e) {
      fill(box, h('h2', null, `Dead letters of ${link}`), errorNote(e));
      return;
    }
    const dls = r.dead_letters || [];
    fill(box, h('h2', null, `Dead letters of ${link}`), msg,
      h('div', { class: 'row' }, h('button', { type: 'button', 'data-action': 'replay-all', onclick: () => replay([]), disabled: !dls.length }, 'Replay all')),
      table(['export seq', 'origin seq', 'event', 'at', 'error', 'data', ''], dls.map((d) => h('tr', { 'data-row': String(d.export_seq) },
        h('td', { class: 'num' }, num(d.export_seq)), h('td', { class: 'num' }, num(d.origin_seq)), h('td', null, `${d.aggregate}/${d.id} ${d.type}`),
        h('td', null, new Date(d.at).toLocaleString('en-GB')), h('td', { class: 'wrap' }, d.error),
        h('td', null, h('details', null, h('summary', null, 'data'), h('pre', null, json(d.data)))),
        h('td', null, h('button', { type: 'button', 'data-action': 'replay', onclick: () => replay([d.export_seq]) }, 'Replay'))))));
  };
  await list();
}

export default {
  title: 'Links & exports',
  async render(main) {
    const box = h('div', { id: 'links' });
    const dead = h('div', { id: 'dead-letters' });
    main.append(box, dead);
    const load = async () => {
      const m = await api('mesh');
      if (m.status.error) {
        const cat = m.catalog.data || {};
        fill(box, errorNote(m.status.error),
          h('p', { class: 'muted' }, 'The links\' and exports\' figures are an admin request; discovery lists them:'),
          h('h2', null, 'Links'), table(['name', 'peer', 'export', 'url'], (cat.links || []).map((l) =>
            h('tr', { 'data-row': l.name }, h('td', null, l.name), h('td', null, l.peer), h('td', null, l.export), h('td', null, l.url)))),
          h('h2', null, 'Exports'), table(['name', 'to', 'aggregates', 'redacted'], (cat.exports || []).map((e) =>
            h('tr', { 'data-row': e.name }, h('td', null, e.name), h('td', null, (e.to || []).join(', ')), h('td', null, (e.aggregates || []).join(', ')),
              h('td', null, (e.redact || []).join(', '))))));
        return;
      }
      const st = m.status.data;
      fill(box,
        h('h2', null, 'Links (imports)'),
        table(['link', 'peer', 'export', 'state', 'connected', 'origin seq', 'owner head', 'lag', 'lag (s)', 'events/s', 'imported', 'filtered', 'dead', 'last error', ''],
          linkRows(st.links || [], (name) => deadLetters(dead, name))),
        h('h2', null, 'Exports (what each peer has read)'),
        table(['export', 'peer', 'state', 'connected', 'exported seq', 'log head', 'stream seq', 'read by peer', 'unread', 'last error'], exportRows(st.exports || [])));
    };
    await load();
    return load;
  },
};
