// Projections: each version's state, progress, lag, documents, dead
// letters and last error; promote, rollback, retire and retry. The node
// decides who may: a refused action reads "not allowed: <subject>".
import { api, h, table, badge, stateBadge, bar, sizeBars, num, rate, secs, bytes, errorNote, fill } from './lib.js';

function actions(p, act) {
  const b = (name, label, cls, body) => h('button', { type: 'button', class: cls || null, 'data-action': name, 'data-target': `${p.name}.v${p.version}`,
    onclick: (ev) => act(ev.target, name, body) }, label);
  const out = [];
  if (!p.active) out.push(b('promote', 'Promote', 'primary', { name: p.name, version: p.version }));
  if (p.active) out.push(b('rollback', 'Roll back', null, { name: p.name }));
  if (p.state === 'failed') out.push(b('retry', 'Retry', null, { name: p.name, version: p.version }));
  if (!p.active) out.push(b('retire', 'Retire', 'danger', { name: p.name, version: p.version }));
  return h('td', { class: 'actions' }, out.map((x) => [x, ' ']));
}

function statusRows(list, act) {
  return list.map((p) => h('tr', { 'data-row': `${p.name}.v${p.version}`, 'data-active': p.active ? 'true' : 'false', 'data-state': p.state },
    h('td', null, p.name), h('td', null, 'v' + p.version), h('td', null, p.active ? badge('active', 'active') : ''),
    h('td', null, stateBadge(p.state)),
    h('td', null, bar(p.progress), ' ', Math.round(100 * (p.progress || 0)) + '%', p.eta_seconds ? ` (ETA ${Math.round(p.eta_seconds)} s)` : ''),
    h('td', { class: 'num', 'data-k': 'applied' }, num(p.applied_seq)), h('td', { class: 'num' }, num(p.head_seq)),
    h('td', { class: 'num', 'data-k': 'lag' }, num(p.lag_events)), h('td', { class: 'num' }, secs(p.lag_seconds)),
    h('td', { class: 'num' }, rate(p.events_per_second)),
    h('td', { class: 'num', 'data-k': 'documents' }, num(p.documents)), h('td', { class: 'num' }, bytes(p.file_bytes)),
    h('td', { class: 'num', 'data-k': 'dead' }, num(p.dead_letters)), h('td', { class: 'wrap' }, p.last_error || ''),
    actions(p, act)));
}

function catalogRows(list, act) {
  return list.map((p) => h('tr', { 'data-row': `${p.name}.v${p.version}`, 'data-active': p.active ? 'true' : 'false' },
    h('td', null, p.name), h('td', null, 'v' + p.version), h('td', null, p.active ? badge('active', 'active') : ''),
    h('td', null, h('code', null, p.subject)), actions(p, act)));
}

export default {
  title: 'Projections',
  async render(main) {
    const msg = h('div', { id: 'action-result', 'data-k': 'action-result', role: 'status' });
    const box = h('div', { id: 'projections' });
    main.append(msg, box);
    let confirmRetire = '';
    const act = async (btn, name, body) => {
      if (name === 'retire' && confirmRetire !== btn.dataset.target) {
        confirmRetire = btn.dataset.target;
        btn.textContent = `Retire ${btn.dataset.target}: sure?`;
        return;
      }
      confirmRetire = '';
      btn.disabled = true;
      fill(msg, h('p', { class: 'notice' }, `${name} ${btn.dataset.target}…`));
      try {
        const r = await api('projections/' + name, body);
        const text = r.active !== undefined ? `projection ${r.name}: v${r.active} is active (was v${r.previous})`
          : r.retired ? `projection ${r.name}: v${r.version} retired` : `projection ${r.name} v${r.version}: ${r.state}`;
        fill(msg, h('p', { class: 'notice ok', 'data-k': 'ok' }, text));
      } catch (e) {
        fill(msg, errorNote(e));
      }
      await load();
    };
    const load = async () => {
      const p = await api('projections');
      const parts = [];
      if (p.status.error) {
        parts.push(h('p', { class: 'muted' }, 'The status of each version is an admin request; the versions below are those discovery lists.'), errorNote(p.status.error));
        parts.push(p.catalog.error ? errorNote(p.catalog.error)
          : table(['name', 'version', '', 'query subject', ''], catalogRows(p.catalog.data || [], act)));
      } else {
        parts.push(table(['name', 'version', '', 'state', 'progress', 'applied', 'head', 'lag', 'lag (s)', 'events/s', 'docs', 'size', 'dead', 'last error', ''],
          statusRows(p.status.data || [], act)));
      }
      fill(box, ...parts);
      sizeBars(box);
    };
    await load();
    return load;
  },
};
