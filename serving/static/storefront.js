/* The demo storefront page: a product grid from GET /v1/trending?k=48 with category filters.
 * Clicking a card sends a `view` event through RecsWidget.track (widget.js), which refreshes the
 * "Because you viewed" rail. Every API call goes through RecsWidget.api: the public key and the
 * shopper's token. No dependencies, ES2017. */
(function () {
  'use strict';
  var GRID_K = 48;
  var state = { items: [], category: null };

  function $(id) { return document.getElementById(id); }
  function h(tag, cls, text) {
    var el = document.createElement(tag);
    if (cls) el.className = cls;
    if (text !== undefined && text !== null) el.textContent = String(text);
    return el;
  }
  function hue(text) {
    var n = 0;
    for (var i = 0; i < text.length; i++) n = (n * 31 + text.charCodeAt(i)) % 360;
    return n;
  }
  function initials(title) {
    return title.split(/\s+/).filter(Boolean).slice(0, 2).map(function (w) { return w[0]; }).join('').toUpperCase();
  }

  function card(it) {
    var li = h('li', 'card');
    li.setAttribute('data-item-id', it.item_id);
    li.setAttribute('data-category', it.category || '');
    var btn = h('button', 'card-button');
    btn.type = 'button';
    var title = it.title || it.item_id;
    var pic = h('span', 'card-pic', initials(title));
    pic.style.backgroundColor = 'hsl(' + hue(it.category || it.item_id) + ', 45%, 82%)';
    btn.appendChild(pic);
    btn.appendChild(h('span', 'card-title', title));
    btn.appendChild(h('span', 'card-category', it.category || ''));
    if (typeof it.price === 'number') btn.appendChild(h('span', 'card-price', it.price.toFixed(2)));
    li.appendChild(btn);
    return li;
  }

  function renderGrid() {
    var grid = $('grid');
    grid.textContent = '';
    state.items.filter(function (it) {
      return !state.category || it.category === state.category;
    }).forEach(function (it) { grid.appendChild(card(it)); });
    Array.prototype.forEach.call($('categories').children, function (b) {
      b.setAttribute('aria-pressed', String((b.getAttribute('data-category') || null) === state.category));
    });
  }

  function renderCategories() {
    var nav = $('categories');
    nav.textContent = '';
    var cats = [];
    state.items.forEach(function (it) {
      if (it.category && cats.indexOf(it.category) < 0) cats.push(it.category);
    });
    cats.sort();
    [null].concat(cats).forEach(function (cat) {
      var b = h('button', 'chip', cat || 'All');
      b.type = 'button';
      if (cat) b.setAttribute('data-category', cat);
      b.addEventListener('click', function () { state.category = cat; renderGrid(); });
      nav.appendChild(b);
    });
  }

  async function loadGrid() {
    var status = $('grid-status');
    try {
      var resp = await window.RecsWidget.api('/v1/trending?k=' + GRID_K, { headers: { accept: 'application/json' } });
      if (!resp.ok) throw new Error('HTTP ' + resp.status);
      var doc = await resp.json();
      state.items = doc.items || [];
      var age = doc.freshness && typeof doc.freshness.age_ms === 'number'
        ? (doc.freshness.age_ms / 1000).toFixed(1) + ' s old' : 'no data yet';
      status.textContent = state.items.length + ' products · ' + age + (doc.degraded ? ' · degraded' : '');
      document.body.setAttribute('data-grid', state.items.length ? 'ready' : 'empty');
      renderCategories();
      renderGrid();
      if (!state.items.length) setTimeout(loadGrid, 2000);  // the stream has not filled trending yet
    } catch (err) {
      status.textContent = 'products unavailable (' + err.message + '), retrying…';
      setTimeout(loadGrid, 3000);
    }
  }

  function showViewing(item) {
    $('viewing').hidden = false;
    $('viewing-title').textContent = item.title || item.item_id;
    Array.prototype.forEach.call(document.querySelectorAll('#grid .card'), function (c) {
      c.classList.toggle('selected', c.getAttribute('data-item-id') === item.item_id);
    });
  }

  function onGridClick(e) {
    var li = e.target.closest('.card');
    if (!li) return;
    var id = li.getAttribute('data-item-id');
    var item = state.items.filter(function (it) { return it.item_id === id; })[0] || { item_id: id };
    showViewing(item);
    window.RecsWidget.track({ type: 'view', item_id: id, context: { placement: 'grid' } })
      .then(function (r) { li.setAttribute('data-tracked', r.ok ? 'ok' : 'failed-' + r.status); });
  }

  async function start() {
    try { await window.RecsWidget.ready; } catch (e) { /* shown by the grid's status */ }
    $('who-user').textContent = window.RecsWidget.user() || '(no token)';
    $('who-session').textContent = window.RecsWidget.session() || '(no token)';
    $('grid').addEventListener('click', onGridClick);
    document.addEventListener('recs:select', function (e) { showViewing(e.detail); });
    loadGrid();
  }

  if (window.RecsWidget) start();
  else document.addEventListener('recs:ready', start, { once: true });
})();
