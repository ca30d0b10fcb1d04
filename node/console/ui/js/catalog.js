// Catalog: the node as a data product, as its discovery document (with the
// linked peers' catalogs) describes it.
import { api, h, table, json, badge, errorNote, fill } from './lib.js';

function schema(v) { return h('details', null, h('summary', null, 'schema'), h('pre', null, json(v))); }

function indexes(ix) {
  return Object.entries(ix || {}).map(([name, spec]) =>
    `${name}: ${typeof spec === 'string' ? spec : (spec.field || json(spec)) + (spec.type ? ' (' + spec.type + ')' : '')}`).join(', ');
}

function transform(t) { return Object.entries(t || {}).map(([k, v]) => `${k}: ${v}`).join('; '); }

export function draw(box, cat) {
  fill(box,
    h('p', { class: 'muted' }, `node ${cat.node} (datamesh ${cat.version}), stream ${cat.stream}, events on ${cat.subject_pattern}`,
      cat.require_contracts ? ', contracts required' : '', cat.leaf_url ? `, peers link to ${cat.leaf_url}` : ''),
    h('h2', null, 'Event types'),
    table(['aggregate', 'type', 'contract', 'owner', 'description', 'subject', ''], (cat.event_types || []).map((e) =>
      h('tr', { 'data-row': `${e.aggregate}.${e.type}` }, h('td', null, e.aggregate), h('td', null, e.type), h('td', null, 'v' + e.version),
        h('td', null, e.owner || ''), h('td', { class: 'wrap' }, e.description || ''), h('td', null, h('code', null, e.subject)), h('td', null, schema(e.schema))))),
    h('h2', null, 'Projections'),
    table(['name', 'version', '', 'query subject', 'source', 'indexes', 'history', 'changes', 'description'], (cat.projections || []).map((p) =>
      h('tr', { 'data-row': `${p.name}.v${p.version}` }, h('td', null, p.name), h('td', null, 'v' + p.version), h('td', null, p.active ? badge('active', 'active') : ''),
        h('td', null, h('code', null, p.subject)), h('td', null, [(p.source.aggregates || []).join(', '), (p.source.types || []).length ? ': ' + p.source.types.join(', ') : '']),
        h('td', { class: 'wrap' }, indexes(p.indexes)), h('td', null, p.history ? 'yes' : 'no'), h('td', null, p.changes ? h('code', null, p.changes) : ''),
        h('td', { class: 'wrap' }, p.description || '')))),
    h('h2', null, 'Exports'),
    table(['name', 'to', 'aggregates', 'types', 'redacted', 'description'], (cat.exports || []).map((e) =>
      h('tr', { 'data-row': e.name }, h('td', null, e.name), h('td', null, (e.to || []).join(', ')), h('td', null, (e.aggregates || []).join(', ')),
        h('td', null, (e.types || []).join(', ') || 'all'), h('td', null, (e.redact || []).join(', ')), h('td', { class: 'wrap' }, e.description || '')))),
    h('h2', null, 'Links'),
    table(['name', 'peer', 'export', 'url', 'transform'], (cat.links || []).map((l) =>
      h('tr', { 'data-row': l.name }, h('td', null, l.name), h('td', null, l.peer), h('td', null, l.export), h('td', null, l.url),
        h('td', { class: 'wrap' }, transform(l.transform))))),
    h('h2', null, 'What each linked peer exports to this node'),
    (cat.mesh || []).length ? h('div', null, (cat.mesh || []).map((p) => h('div', { 'data-peer': p.node },
      h('h3', null, 'peer ' + p.node), p.error ? h('p', { class: 'notice err' }, p.error) : null,
      table(['export', 'aggregate', 'type', 'contract', 'redacted', 'description'], (p.exports || []).flatMap((e) =>
        (e.event_types || []).length ? e.event_types.map((t) => h('tr', null, h('td', null, e.name), h('td', null, t.aggregate), h('td', null, t.type),
          h('td', null, 'v' + t.version), h('td', null, (e.redact || []).join(', ')), h('td', { class: 'wrap' }, t.description || '')))
          : [h('tr', null, h('td', null, e.name), h('td', null, (e.aggregates || []).join(', ')), h('td', null, (e.types || []).join(', ') || 'all'),
            h('td', null, ''), h('td', null, (e.redact || []).join(', ')), h('td', { class: 'wrap' }, e.description || ''))]))))) : h('p', { class: 'muted' }, 'no linked peers'),
    h('h2', null, 'Discovery document'),
    h('details', null, h('summary', null, 'dm.discovery {"mesh": true}'), h('pre', { 'data-k': 'discovery' }, json(cat))),
  );
}

export default {
  title: 'Catalog',
  async render(main) {
    const box = h('div', { id: 'catalog' });
    main.append(box);
    try {
      draw(box, await api('catalog?mesh=1'));
    } catch (e) {
      fill(box, errorNote(e));
    }
    return null;
  },
};
