// Overview: the node, its health and readiness, the log, the API's rates,
// and what needs attention.
import { api, h, kv, errorNote, num, bytes, rate, badge, fill } from './lib.js';

function card(title, key, ...body) { return h('section', { class: 'card', 'data-card': key }, h('h2', null, title), body); }

function part(sec, fn) { return sec.error ? errorNote(sec.error) : fn(sec.data); }

function readyBadge(r) {
  if (!r.known) return badge('unknown', 'warn');
  return r.ready ? badge('ready', 'ok') : badge('not ready', 'bad');
}

function draw(box, o) {
  const disc = o.discovery;
  fill(box, h('div', { class: 'grid' },
    card('Node', 'node', kv([
      ['name', o.node, 'node'], ['version', o.version, 'version'],
      disc.data && ['stream', disc.data.stream, 'stream'],
      disc.data && ['holds', `${disc.data.event_types} event types, ${disc.data.projections} projection versions, ${disc.data.exports} exports, ${disc.data.links} links`, 'holds'],
    ]), disc.error && errorNote(disc.error)),
    card('Health', 'health', kv([
      ['console', badge('alive', 'ok'), 'alive'],
      ['API', disc.error ? badge('no answer', 'bad') : badge('answers', 'ok'), 'api'],
      ['readiness', readyBadge(o.ready), 'ready'],
    ]), o.ready.note && h('p', { class: 'muted' }, o.ready.note),
    (o.ready.not_ready || []).length ? h('ul', { class: 'attention' }, o.ready.not_ready.map((r) => h('li', null, r))) : null),
    card('Event log', 'log', part(o.log, (l) => kv([
      ['last seq', num(l.last_seq), 'log-last-seq'], ['events', num(l.messages), 'log-messages'],
      ['size', bytes(l.bytes), 'log-bytes'], ['first seq', num(l.first_seq), 'log-first-seq'],
    ]))),
    card('API rates', 'rates', part(o.rates, (r) => kv([
      ['appends/s', r.appends_now === undefined ? 'measuring…' : rate(r.appends_now), 'append-rate'],
      ['queries/s', r.queries_now === undefined ? 'measuring…' : rate(r.queries_now), 'query-rate'],
      ['appends', `${num(r.appends)} (avg ${rate(r.appends_avg)}/s)`, 'appends'],
      ['queries', `${num(r.queries)} (avg ${rate(r.queries_avg)}/s)`, 'queries'],
      ['since', new Date(r.started).toLocaleString('en-GB'), 'started'],
    ]))),
    card('Projections', 'projections', part(o.projections, (ps) => kv(ps.map((p) => [
      `${p.name} v${p.version}`, h('span', null, p.active ? badge('active', 'active') : null, ' ', badge(p.state, p.state === 'live' ? 'ok' : 'warn'),
        ` ${num(p.documents)} docs, lag ${num(p.lag_events)}`), `proj-${p.name}-v${p.version}`])))),
    card('Links', 'links', part(o.mesh, (m) => (m.links || []).length ? kv(m.links.map((l) => [
      l.name, h('span', null, badge(l.connected ? 'connected' : 'not connected', l.connected ? 'ok' : 'bad'),
        ` from ${l.peer}: ${num(l.imported)} imported, lag ${num(l.lag_events)}`), `link-${l.name}`])) : h('p', { class: 'muted' }, 'no links'))),
    card('Needs attention', 'attention', o.attention.length
      ? h('ul', { class: 'attention', 'data-k': 'attention' }, o.attention.map((a) => h('li', null, a)))
      : h('p', { class: 'muted', 'data-k': 'attention' }, (o.projections.error && o.mesh.error) ? 'not known to this identity' : 'nothing')),
  ));
}

export default {
  title: 'Overview',
  async render(main) {
    const box = h('div', { id: 'overview' });
    main.append(box);
    const load = async () => draw(box, await api('overview'));
    await load();
    return load;
  },
};
