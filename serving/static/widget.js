/* Recommendation widget: no dependencies, no build step, ES2017.
 *
 *   <script src="/static/widget.js" data-api="" data-token-url="/shop/recs-token"
 *           data-key="pub-..." async></script>
 *   <div data-recs-widget="session" data-k="8" data-poll-ms="1000"></div>
 *
 * The browser holds no secret. The storefront's backend answers data-token-url (POST, same
 * origin, cookies sent; body {"token": <the last token>} or empty) with a short-lived user token
 * it signed for its shopper: {"token": "v1....", "api_key"?: public key}. Every call sends the
 * public key (data-key, or the api_key of the answer) and the token; the user and session are
 * the token's (docs/api.md). The token is renewed a minute before it expires and after a 401.
 *
 * Placements: session, homepage, similar, bought-together (data-item), trending
 * (data-category, optional). Optional: data-title, data-poll-ms (default 1000 for session, else
 * no polling).
 *
 * With data-page="true" on the script tag, the session, homepage and trending widgets of the page
 * (trending without data-category) are answered by one request, /v1/users/{id}/page, in their
 * order on the page, and no item shows in two of them; they poll together at the shortest
 * interval among them.
 *
 * window.RecsWidget: ready (a promise: the first token is there); track(event | events) POSTs
 * to /v1/events; api(path, init) fetches an API path with the credentials; refresh(placement?)
 * re-fetches now (and a few times soon after, so a rail catches the stream's update);
 * mount(element); user(); session(). A click on a rail item sends a `click` event with the
 * response's rec_id and variant, then dispatches `recs:select` (detail: the item) on the widget
 * element.
 */
(function () {
  'use strict';
  if (window.RecsWidget) return;

  var script = document.currentScript;
  var API = ((script && script.getAttribute('data-api')) || '').replace(/\/+$/, '');
  var TOKEN_URL = (script && script.getAttribute('data-token-url')) || '';
  var TOKEN_KEY = 'recs.token';
  var RENEW_BEFORE_S = 60;
  var MAX_BACKOFF_MS = 30000;
  // after an event, re-fetch every 250 ms for 3 s: the stream answers within about a second
  var BURST_MS = [250, 500, 750, 1000, 1250, 1500, 1750, 2000, 2250, 2500, 2750, 3000];
  var TITLES = {
    session: 'Because you viewed', homepage: 'Recommended for you', similar: 'Similar items',
    'bought-together': 'Bought together', trending: 'Trending'
  };
  var widgets = [];
  var PAGE = !!script && script.getAttribute('data-page') === 'true';
  var PAGE_PLACEMENTS = ['session', 'homepage', 'trending'];
  var page = null;  // the first widget of the page group: it fetches for every member

  // ---- identity: the user token from the storefront's backend ----------------------------
  function randomId(prefix) {
    var c = window.crypto;
    if (c && typeof c.randomUUID === 'function') return prefix + c.randomUUID();
    var bytes = new Uint8Array(16);
    if (c && c.getRandomValues) c.getRandomValues(bytes);
    else for (var i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
    return prefix + Array.prototype.map.call(bytes, function (b) {
      return (b + 256).toString(16).slice(1);
    }).join('');
  }
  function stored(key) { try { return localStorage.getItem(key); } catch (e) { return null; } }
  function store(key, value) { try { localStorage.setItem(key, value); } catch (e) { /* private mode */ } }

  // the token's payload is readable (it is signed, not encrypted): uid, sid, exp (epoch s)
  function claims(token) {
    try {
      var part = token.split('.')[2].replace(/-/g, '+').replace(/_/g, '/');
      var c = JSON.parse(atob(part + '==='.slice((part.length + 3) % 4)));
      return (c && typeof c.uid === 'string' && typeof c.sid === 'string' && typeof c.exp === 'number') ? c : null;
    } catch (e) { return null; }
  }
  var auth = { key: (script && script.getAttribute('data-key')) || '', token: null, claims: null };
  var pending = null;
  function renewToken() {
    if (pending) return pending;
    if (!TOKEN_URL) return Promise.reject(new Error('no data-token-url'));
    var old = auth.token || stored(TOKEN_KEY);
    pending = fetch(TOKEN_URL, {
      method: 'POST', headers: { 'content-type': 'application/json' }, credentials: 'same-origin',
      body: JSON.stringify(old ? { token: old } : {})
    }).then(function (r) {
      if (!r.ok) throw new Error('token HTTP ' + r.status);
      return r.json();
    }).then(function (doc) {
      var c = doc && typeof doc.token === 'string' ? claims(doc.token) : null;
      if (!c) throw new Error('token answer without a token');
      auth.token = doc.token;
      auth.claims = c;
      if (typeof doc.api_key === 'string' && doc.api_key) auth.key = doc.api_key;
      store(TOKEN_KEY, doc.token);
      return auth;
    }).finally(function () { pending = null; });
    return pending;
  }
  function ensureToken() {
    var c = auth.claims;
    if (c && c.exp - Date.now() / 1000 > RENEW_BEFORE_S) return Promise.resolve(auth);
    return renewToken();
  }
  function authHeaders(extra) {
    var out = Object.assign({}, extra || {});
    if (auth.key) out.authorization = 'Bearer ' + auth.key;
    if (auth.token) out['x-recs-token'] = auth.token;
    return out;
  }
  /** fetch(API + path) with the public key and the user token; one retry with a new token after a 401. */
  async function api(path, init) {
    init = init || {};
    await ensureToken();
    var call = function () {
      return fetch(API + path, Object.assign({}, init, { headers: authHeaders(init.headers), credentials: 'omit' }));
    };
    var resp = await call();
    if (resp.status === 401) {
      auth.claims = null;
      await renewToken();
      resp = await call();
    }
    return resp;
  }
  function userId() { return auth.claims ? auth.claims.uid : null; }
  function sessionId() { return auth.claims ? auth.claims.sid : null; }

  // ---- events ----------------------------------------------------------------------------
  function clean(obj) {
    var out = {};
    Object.keys(obj).forEach(function (k) { if (obj[k] !== undefined && obj[k] !== null) out[k] = obj[k]; });
    return out;
  }
  function toEvent(ev) {
    var ctx = clean(Object.assign({
      device: /Mobi/i.test(navigator.userAgent) ? 'mobile' : 'web',
      page: location.pathname, referrer: document.referrer || undefined
    }, ev.context || {}));
    return clean({
      event_id: ev.event_id || randomId('e-'), type: ev.type || 'view',
      user_id: ev.user_id || userId(), session_id: ev.session_id || sessionId(),
      item_id: ev.item_id, item_ids: ev.item_ids, value: ev.value,
      ts: typeof ev.ts === 'number' ? Math.round(ev.ts) : Date.now(), context: ctx,
      rec_id: typeof ev.rec_id === 'string' ? ev.rec_id.slice(0, 128) : undefined,
      variant: typeof ev.variant === 'string' ? ev.variant.slice(0, 64) : undefined
    });
  }
  /** POST one event or a list of them; resolves to {ok, status}. Session rails refresh soon after. */
  function track(events) {
    var list = Array.isArray(events) ? events : [events];
    var batch = [];
    var sent = ensureToken().then(function () {
      batch = list.map(toEvent);
      return api('/v1/events', {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify(batch), keepalive: true
      });
    }).then(function (r) { return { ok: r.ok, status: r.status, events: batch }; },
            function () { return { ok: false, status: 0, events: batch }; });
    sent.then(function () { refresh('session'); });
    return sent;
  }

  // ---- fetching --------------------------------------------------------------------------
  function enc(v) { return encodeURIComponent(v); }
  function endpoint(w) {
    var k = 'k=' + enc(w.k), el = w.el, item = el.getAttribute('data-item');
    if (w.members && w.members.length > 1) {
      return '/v1/users/' + enc(userId()) + '/page?' + k + '&placements=' +
        w.members.map(function (m) { return m.placement; }).join(',');
    }
    switch (w.placement) {
      case 'session': return '/v1/users/' + enc(userId()) + '/session-recommendations?' + k;
      case 'homepage': return '/v1/users/' + enc(userId()) + '/recommendations?' + k;
      case 'similar': return item && '/v1/items/' + enc(item) + '/similar?' + k;
      case 'bought-together': return item && '/v1/items/' + enc(item) + '/bought-together?' + k;
      case 'trending': {
        var cat = el.getAttribute('data-category');
        return '/v1/trending?' + k + (cat ? '&category=' + enc(cat) : '');
      }
      default: return null;
    }
  }

  async function load(w) {
    await ensureToken();  // the user and session of the path are the token's
    var path = endpoint(w);
    if (!path) { w.status.textContent = 'not configured'; return; }
    var resp = await api(path, { headers: { accept: 'application/json' } });
    if (!resp.ok) throw new Error('HTTP ' + resp.status);
    var doc = await resp.json();
    if (w.members && w.members.length > 1) {
      if (!doc || !doc.placements) throw new Error('unexpected answer');
      w.members.forEach(function (m) {
        var one = doc.placements[m.placement];
        if (one && Array.isArray(one.items)) apply(m, one);
      });
      return;
    }
    if (!doc || !Array.isArray(doc.items)) throw new Error('unexpected answer');
    apply(w, doc);
  }

  // ---- rendering (textContent only: nothing from the server is parsed as HTML) -------------
  function h(tag, cls, text) {
    var el = document.createElement(tag);
    if (cls) el.className = cls;
    if (text !== undefined && text !== null) el.textContent = String(text);
    return el;
  }
  function price(p) { return typeof p === 'number' ? p.toFixed(2) : ''; }
  function age(ms) {
    if (typeof ms !== 'number') return 'no data';
    if (ms < 1000) return ms + ' ms old';
    if (ms < 120000) return (ms / 1000).toFixed(1) + ' s old';
    return Math.round(ms / 60000) + ' min old';
  }

  // `shown` is the answer whose items are on screen: a poll returning the same items refreshes
  // only the status line, and a click keeps the rec_id and variant of the answer shown.
  function apply(w, doc) {
    var el = w.el, ids = doc.items.map(function (it) { return it.item_id; }).join('\n');
    if (ids !== w.ids) {
      w.ids = ids;
      w.shown = doc;
      renderItems(w, doc.items);
      el.setAttribute('data-source', String(doc.source || ''));
      if (doc.rec_id) el.setAttribute('data-rec-id', doc.rec_id); else el.removeAttribute('data-rec-id');
      if (doc.variant) el.setAttribute('data-variant', doc.variant); else el.removeAttribute('data-variant');
    }
    var f = doc.freshness || {};
    var bits = [doc.source + (doc.fallback ? ' (' + doc.fallback + ')' : ''), age(f.age_ms)];
    if (w.shown.variant) bits.push('variant ' + w.shown.variant);
    w.status.textContent = bits.join(' · ');
    w.badge.hidden = !doc.degraded;
    el.setAttribute('data-state', 'ready');
    el.setAttribute('data-degraded', doc.degraded ? 'true' : 'false');
  }

  function renderItems(w, items) {
    var list = h('ol', 'recs-items');
    items.forEach(function (it) {
      var li = h('li', 'recs-item');
      li.setAttribute('data-item-id', it.item_id);
      li.setAttribute('data-source', it.source || '');
      var a = h('a', 'recs-link');
      a.href = '#item-' + enc(it.item_id);
      a.appendChild(h('span', 'recs-title', it.title || it.item_id));
      if (it.price !== undefined) a.appendChild(h('span', 'recs-price', price(it.price)));
      if (it.reason) a.appendChild(h('span', 'recs-reason', it.reason));
      li.appendChild(a);
      list.appendChild(li);
    });
    if (!items.length) list.appendChild(h('li', 'recs-empty', 'Nothing to show yet'));
    w.list.replaceWith(list);
    w.list = list;
  }

  function onClick(w, e) {
    var li = e.target.closest && e.target.closest('[data-item-id]');
    if (!li || !w.el.contains(li)) return;
    e.preventDefault();
    var doc = w.shown || {}, id = li.getAttribute('data-item-id');
    var item = (doc.items || []).filter(function (it) { return it.item_id === id; })[0] || { item_id: id };
    track({ type: 'click', item_id: id, rec_id: doc.rec_id, variant: doc.variant,
            context: { placement: w.placement } });
    w.el.dispatchEvent(new CustomEvent('recs:select', { bubbles: true, detail: item }));
  }

  // ---- polling ---------------------------------------------------------------------------
  function schedule(w, delay) {
    clearTimeout(w.timer);
    w.timer = null;
    if (document.hidden || !w.el.isConnected) return;
    if (delay === undefined) {
      if (!w.pollMs) return;
      delay = w.failures ? Math.min(w.pollMs * Math.pow(2, w.failures), MAX_BACKOFF_MS) : w.pollMs;
    }
    w.timer = setTimeout(function () { tick(w); }, delay);
  }
  async function tick(w) {
    if (w.leader) return tick(w.leader);
    if (w.busy) { w.again = true; return; }
    w.busy = true;
    try {
      await load(w);
      w.failures = 0;
    } catch (err) {
      w.failures = Math.min(w.failures + 1, 10);
      (w.members || [w]).forEach(function (m) {
        m.el.setAttribute('data-state', 'error');
        m.status.textContent = 'unavailable (' + err.message + ')';
      });
    } finally {
      w.busy = false;
    }
    if (w.again) { w.again = false; schedule(w, 0); } else if (!w.burst.length) schedule(w);
  }

  function refresh(placement) {
    widgets.forEach(function (w) {
      if (placement && w.placement !== placement) return;
      w.burst.forEach(clearTimeout);
      w.burst = BURST_MS.map(function (ms, i) {
        return setTimeout(function () {
          if (i === BURST_MS.length - 1) w.burst = [];
          if (!document.hidden) tick(w);
        }, ms);
      });
      tick(w);
    });
  }

  // ---- mounting --------------------------------------------------------------------------
  function mount(el) {
    if (el.__recs) return el.__recs;
    var placement = el.getAttribute('data-recs-widget');
    var poll = el.getAttribute('data-poll-ms');
    var w = {
      el: el, placement: placement, k: parseInt(el.getAttribute('data-k') || '8', 10) || 8,
      pollMs: poll !== null ? Math.max(0, parseInt(poll, 10) || 0) : (placement === 'session' ? 1000 : 0),
      failures: 0, timer: null, burst: [], busy: false, again: false, ids: null, shown: null
    };
    el.__recs = w;
    el.classList.add('recs-widget');
    var head = h('div', 'recs-head');
    head.appendChild(h('h2', 'recs-heading', el.getAttribute('data-title') || TITLES[placement] || placement));
    w.status = h('small', 'recs-status', 'loading…');
    w.badge = h('small', 'recs-degraded', 'degraded');
    w.badge.hidden = true;
    head.appendChild(w.status);
    head.appendChild(w.badge);
    w.list = h('ol', 'recs-items');
    el.textContent = '';
    el.appendChild(head);
    el.appendChild(w.list);
    el.setAttribute('data-state', 'loading');
    el.addEventListener('click', function (e) { onClick(w, e); });
    widgets.push(w);
    if (PAGE && PAGE_PLACEMENTS.indexOf(placement) >= 0 && !el.getAttribute('data-category')) {
      if (!page) {
        page = w;
        w.members = [w];
        setTimeout(function () { tick(w); }, 0);  // once the rest of the page has joined
        return w;
      }
      page.members.push(w);
      w.leader = page;
      if (w.pollMs && (!page.pollMs || w.pollMs < page.pollMs)) page.pollMs = w.pollMs;
      return w;
    }
    tick(w);
    return w;
  }

  document.addEventListener('visibilitychange', function () {
    widgets.forEach(function (w) {
      if (document.hidden) { clearTimeout(w.timer); w.timer = null; } else if (w.pollMs) tick(w);
    });
  });

  function mountAll() {
    Array.prototype.forEach.call(document.querySelectorAll('[data-recs-widget]'), mount);
  }

  var ready = ensureToken();
  ready.catch(function () { /* the rails show the error and retry */ });
  window.RecsWidget = {
    version: '2', ready: ready, track: track, api: api, refresh: refresh, mount: mount,
    user: userId, session: sessionId
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', mountAll);
  else mountAll();
  document.dispatchEvent(new CustomEvent('recs:ready'));
})();
