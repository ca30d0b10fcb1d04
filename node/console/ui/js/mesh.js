// Mesh map: this node, the peers it links to and exports to, and what each
// linked peer's catalog offers it, drawn as an SVG graph with the lag on
// the edges. A peer's own links are not in what it grants this node, so
// the map ends at the peers.
import { api, h, svg, table, num, errorNote, fill } from './lib.js';

const W = 900; const H = 400; const R = 38;

// edges lists the graph's edges: links (peer → this), exports (this →
// peer) and exports a peer offers that no link imports (dashed).
function edges(self, st, cat, peers) {
  const out = [];
  const links = st ? st.links : (cat.links || []).map((l) => ({ name: l.name, peer: l.peer, export: l.export }));
  for (const l of links || []) {
    out.push({ from: l.peer, to: self, kind: 'link', name: l.export, down: st ? !l.connected : false,
      lag: st ? l.lag_events : null, label: `${l.export}${st ? ' · lag ' + num(l.lag_events) : ''}`, what: `link ${l.name}` });
  }
  const exps = st ? st.exports : (cat.exports || []).flatMap((e) => (e.to || []).map((p) => ({ name: e.name, peer: p })));
  for (const e of exps || []) {
    const unread = st ? Math.max(0, e.stream_seq - e.read_seq) : null;
    out.push({ from: self, to: e.peer, kind: 'export', name: e.name, down: st ? !e.connected : false, lag: unread,
      label: `${e.name}${st ? ' · unread ' + num(unread) : ''}`, what: `export ${e.name}` });
  }
  for (const p of peers || []) {
    for (const e of p.exports || []) {
      if (!(links || []).some((l) => l.peer === p.node && l.export === e.name)) {
        out.push({ from: p.node, to: self, kind: 'offer', name: e.name, lag: null, label: `offers ${e.name}`, what: `export ${e.name} (not linked)` });
      }
    }
  }
  return out;
}

function layout(self, names) {
  const pos = { [self]: { x: W / 2, y: H / 2 } };
  names.forEach((n, i) => {
    const a = Math.PI + (2 * Math.PI * i) / Math.max(1, names.length);
    pos[n] = { x: W / 2 + 320 * Math.cos(a), y: H / 2 + 140 * Math.sin(a) };
  });
  return pos;
}

function edgePath(a, b, offset) {
  const mx = (a.x + b.x) / 2; const my = (a.y + b.y) / 2;
  const dx = b.x - a.x; const dy = b.y - a.y; const len = Math.hypot(dx, dy) || 1;
  const c = { x: mx - (dy / len) * offset, y: my + (dx / len) * offset };
  const cut = (p, q) => { const d = Math.hypot(q.x - p.x, q.y - p.y) || 1; return { x: p.x + ((q.x - p.x) / d) * (R + 4), y: p.y + ((q.y - p.y) / d) * (R + 4) }; };
  const s = cut(a, c); const e = cut(b, c);
  return { d: `M${s.x},${s.y} Q${c.x},${c.y} ${e.x},${e.y}`, lx: 0.25 * s.x + 0.5 * c.x + 0.25 * e.x, ly: 0.25 * s.y + 0.5 * c.y + 0.25 * e.y };
}

function graph(self, es, peerErr) {
  const names = [...new Set(es.flatMap((e) => [e.from, e.to]).filter((n) => n !== self))].sort();
  const pos = layout(self, names);
  const pairs = {};
  es.forEach((e) => { const k = [e.from, e.to].sort().join('\u0000'); (pairs[k] = pairs[k] || []).push(e); });
  const drawn = [];
  for (const group of Object.values(pairs)) {
    group.forEach((e, i) => {
      // edges between the same two nodes bend apart; the sign keeps them
      // apart whichever way each one points
      const [lo] = [e.from, e.to].sort();
      const off = (i - (group.length - 1) / 2) * 80 * (e.from === lo ? 1 : -1);
      const p = edgePath(pos[e.from], pos[e.to], off);
      drawn.push(svg('g', { class: `edge ${e.kind}${e.down ? ' down' : ''}`, 'data-from': e.from, 'data-to': e.to, 'data-kind': e.kind, 'data-name': e.name, 'data-lag': e.lag ?? '' },
        svg('title', null, `${e.what}: ${e.from} → ${e.to}`),
        svg('path', { d: p.d, 'marker-end': 'url(#arrow)' }), svg('text', { x: p.lx, y: p.ly - 4 }, e.label)));
    });
  }
  const nodes = [self, ...names].map((n) => svg('g', { class: `node${n === self ? ' self' : ''}${peerErr[n] ? ' err' : ''}`, 'data-node': n },
    svg('title', null, peerErr[n] ? `${n}: ${peerErr[n]}` : n), svg('circle', { cx: pos[n].x, cy: pos[n].y, r: R }), svg('text', { x: pos[n].x, y: pos[n].y }, n)));
  return svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'mesh map', id: 'mesh-map' },
    svg('defs', null, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
      svg('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#667085' }))),
    drawn, nodes);
}

export default {
  title: 'Mesh map',
  async render(main) {
    const box = h('div', { id: 'mesh', class: 'mesh' });
    main.append(box);
    let peers = null; let polls = 0;
    const load = async () => {
      // the peers' catalogs cross the leafnodes: every 5th refresh only
      const m = await api(peers === null || polls++ % 5 === 0 ? 'mesh?peers=1' : 'mesh');
      if (m.catalog.data && m.catalog.data.mesh) peers = m.catalog.data.mesh;
      if (m.catalog.error && m.status.error) {
        fill(box, errorNote(m.catalog.error));
        return;
      }
      const cat = m.catalog.data || {};
      const st = m.status.data || null;
      const es = edges(m.node, st, cat, peers || []);
      const peerErr = {};
      (peers || []).forEach((p) => { if (p.error) peerErr[p.node] = p.error; });
      fill(box,
        m.status.error ? h('div', null, errorNote(m.status.error), h('p', { class: 'muted' }, 'Without the mesh status the map shows the links and exports discovery lists, without lag.')) : null,
        graph(m.node, es, peerErr),
        h('div', { class: 'legend' }, h('span', null, h('i', { class: 'l-link' }), 'link: the peer\'s events imported here (lag: exported, not yet imported)'),
          h('span', null, h('i', { class: 'l-export' }), 'export: events this node exports (unread: not yet read by the peer)'),
          h('span', null, h('i', { class: 'l-offer' }), 'offered by a peer, not linked'),
          h('span', null, 'A peer\'s own links are not in what it grants this node: the map ends at the peers.')),
        h('h2', null, 'Edges'),
        table(['from', 'to', 'kind', 'export', 'lag / unread', 'state'], es.map((e) => h('tr', { 'data-edge': `${e.from}>${e.to}>${e.name}` },
          h('td', null, e.from), h('td', null, e.to), h('td', null, e.kind), h('td', null, e.name),
          h('td', { class: 'num' }, e.lag === null ? '–' : num(e.lag)), h('td', null, e.kind === 'offer' ? 'offered' : e.down ? 'not connected' : 'connected')))),
      );
      box.querySelectorAll('.legend i.l-link').forEach((i) => { i.style.borderColor = 'var(--ok)'; });
      box.querySelectorAll('.legend i.l-export').forEach((i) => { i.style.borderColor = 'var(--accent)'; });
      box.querySelectorAll('.legend i.l-offer').forEach((i) => { i.style.borderColor = '#98a2b3'; i.style.borderTopStyle = 'dashed'; });
    };
    await load();
    return load;
  },
};
