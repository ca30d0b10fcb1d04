// The console's shell: sign-in, the page router and live updates. Each
// page module exports {title, render(main, ctx)}; render returns an
// optional refresh function that the shell calls every POLL_MS while the
// page is shown and the tab is visible (polling, not server-sent events).
import { api, h, errorNote, setSignedOutHandler, clock, fill } from './lib.js';
import overview from './overview.js';
import catalog from './catalog.js';
import projections from './projections.js';
import links from './links.js';
import mesh from './mesh.js';
import events from './events.js';
import query from './query.js';

const POLL_MS = 2000;
const pages = { overview, catalog, projections, links, mesh, events, query };
const order = ['overview', 'catalog', 'projections', 'links', 'mesh', 'events', 'query'];

const state = { session: null, page: null, refresh: null, timer: null, busy: false, gen: 0 };

function $(id) { return document.getElementById(id); }

function nav() {
  const cur = currentPage();
  fill($('nav'), ...order.map((name) =>
    h('a', { href: '#' + name, class: name === cur ? 'on' : null, 'data-page': name }, pages[name].title)));
}

function currentPage() {
  const name = location.hash.replace(/^#/, '').split('/')[0];
  return pages[name] ? name : 'overview';
}

function stop() {
  clearTimeout(state.timer);
  state.timer = null;
  state.refresh = null;
  state.gen++;
}

async function tick(gen) {
  if (gen !== state.gen || !state.refresh) return;
  if (document.visibilityState === 'visible' && !state.busy) {
    state.busy = true;
    try {
      await state.refresh();
      $('updated').textContent = 'updated ' + clock();
      $('live').classList.add('on');
    } catch (e) {
      $('live').classList.remove('on');
      $('updated').textContent = 'update failed: ' + e.message;
    } finally {
      state.busy = false;
    }
  }
  if (gen === state.gen) state.timer = setTimeout(() => tick(gen), POLL_MS);
}

async function show() {
  stop();
  $('updated').textContent = '';
  if (!state.session || !state.session.signed_in) return;
  nav();
  const name = currentPage();
  const page = pages[name];
  const main = $('main');
  fill(main, h('h1', null, page.title));
  main.dataset.page = name;
  document.title = page.title + ' · ' + (state.session.node || 'DataMesh') + ' · DataMesh console';
  const gen = state.gen;
  try {
    const refresh = await page.render(main, { session: state.session, params: location.hash.split('/').slice(1).map(decodeURIComponent) });
    if (gen !== state.gen) return;
    $('updated').textContent = 'updated ' + clock();
    if (typeof refresh === 'function') {
      state.refresh = refresh;
      $('live').classList.add('on');
      $('live').textContent = 'live (every ' + POLL_MS / 1000 + ' s)';
      state.timer = setTimeout(() => tick(gen), POLL_MS);
    } else {
      $('live').classList.remove('on');
      $('live').textContent = '';
    }
  } catch (e) {
    if (gen === state.gen) main.append(errorNote(e));
  }
}

function who() {
  const s = state.session;
  $('node-name').textContent = s ? s.node : '';
  $('who').textContent = !s || !s.signed_in ? '' : s.anonymous ? 'anonymous (no services configured)' : 'signed in as ' + s.user;
  $('logout').hidden = !s || !s.signed_in || s.anonymous;
}

function loginForm() {
  stop();
  $('nav').replaceChildren();
  const err = h('div', { id: 'login-error', role: 'alert' });
  const user = h('input', { id: 'login-user', name: 'user', autocomplete: 'username', required: true });
  const pw = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const form = h('form', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      err.replaceChildren();
      try {
        state.session = await api('login', { user: user.value, password: pw.value });
        pw.value = '';
        who();
        show();
      } catch (e) {
        fill(err, errorNote(e));
      }
    },
  },
  h('label', null, 'Service', user),
  h('label', null, 'Password', pw),
  h('button', { class: 'primary', type: 'submit', id: 'login-submit' }, 'Sign in'), err);
  fill($('main'), h('div', { class: 'login card', 'data-page': 'login' },
    h('h1', null, 'Sign in to ' + (state.session ? state.session.node : 'the node')),
    h('p', { class: 'muted' }, 'This node has services: sign in as one, with its name and password. ' +
      'The console asks the node\'s API with that identity and shows only what its grants allow.'),
    form));
  user.focus();
}

async function start() {
  setSignedOutHandler(async () => {
    state.session = await api('session').catch(() => null);
    who();
    if (state.session && state.session.signed_in) show(); else loginForm();
  });
  $('logout').addEventListener('click', async () => {
    await api('logout', {}).catch(() => null);
    state.session = await api('session').catch(() => null);
    who();
    if (state.session && state.session.signed_in) show(); else loginForm();
  });
  window.addEventListener('hashchange', show);
  try {
    state.session = await api('session');
  } catch (e) {
    fill($('main'), errorNote(e));
    return;
  }
  who();
  if (state.session.signed_in) show(); else loginForm();
}

start();
