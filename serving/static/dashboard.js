/* The engine dashboard: polls /dashboard/data and draws every chart as inline SVG.
 * No dependencies, no inline script or style attributes (the page's CSP forbids both).
 * The data says what to draw: rows of charts, each with a unit, a current value and series of
 * [time_ms, value|null] points; this file only lays them out. */
(function () {
  'use strict';

  var DATA_URL = '/dashboard/data';
  var SVG_NS = 'http://www.w3.org/2000/svg';
  var W = 300;
  var H = 70;
  var COLORS = ['#2f6fde', '#d9480f', '#2b8a3e', '#862e9c', '#c2255c', '#e67700', '#0b7285',
    '#5c940d', '#495057'];
  var rowsEl = document.getElementById('rows');
  var targetsEl = document.getElementById('targets');
  var statusEl = document.getElementById('poll-status');
  var pollMs = 2000;
  var polls = 0;

  function fmt(v, unit) {
    if (v === null || v === undefined) return '–';
    var a = Math.abs(v);
    if (unit === 's') {
      if (a < 1) return (v * 1000).toFixed(a < 0.01 ? 2 : 1) + ' ms';
      return a < 600 ? v.toFixed(1) + ' s' : (v / 60).toFixed(0) + ' min';
    }
    if (unit === 'share') return (v * 100).toFixed(1) + ' %';
    var n = a >= 1000 ? Math.round(v).toLocaleString('en') : a >= 10 ? v.toFixed(0)
      : a >= 1 ? v.toFixed(1) : v.toFixed(3);
    if (unit === '/s') return n + '/s';
    if (unit === 'records') return n + ' rec';
    return n;
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function svg(tag, attrs) {
    var e = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    return e;
  }

  function rowEl(row) {
    var sec = rowsEl.querySelector('section[data-row="' + row.id + '"]');
    if (!sec) {
      sec = el('section', 'row');
      sec.dataset.row = row.id;
      sec.appendChild(el('h2', '', row.title));
      sec.appendChild(el('div', 'charts'));
      rowsEl.appendChild(sec);
    }
    return sec.querySelector('.charts');
  }

  function chartEl(box, chart) {
    var div = box.querySelector('[data-chart="' + chart.id + '"]');
    if (!div) {
      div = el('div', 'chart');
      div.dataset.chart = chart.id;
      var head = el('div', 'chart-head');
      var title = el('span', 'chart-title', chart.title);
      title.title = chart.title;
      head.appendChild(title);
      head.appendChild(el('span', 'chart-value'));
      div.appendChild(head);
      var plot = svg('svg', { class: 'plot', viewBox: '0 0 ' + W + ' ' + H,
        preserveAspectRatio: 'none', role: 'img', 'aria-label': chart.title });
      div.appendChild(plot);
      var axis = el('div', 'axis');
      axis.appendChild(el('span', 'y-max'));
      axis.appendChild(el('span', 'x-span'));
      div.appendChild(axis);
      div.appendChild(el('ul', 'legend'));
      box.appendChild(div);
    }
    return div;
  }

  // one path per series; a null value breaks the line
  function pathOf(points, x0, x1, yMax) {
    var d = '';
    var pen = false;
    points.forEach(function (p) {
      if (p[1] === null) { pen = false; return; }
      var x = (p[0] - x0) / (x1 - x0) * W;
      var y = H - 2 - Math.min(p[1] / yMax, 1) * (H - 4);
      d += (pen ? 'L' : 'M') + x.toFixed(1) + ' ' + y.toFixed(1);
      pen = true;
    });
    return d;
  }

  // the time axis: from the first point (or history_s ago, whichever is later) to now
  function spanOf(doc) {
    var x1 = doc.now_ms;
    var first = x1;
    doc.rows.forEach(function (row) {
      row.charts.forEach(function (c) {
        c.series.forEach(function (s) { if (s.points.length) first = Math.min(first, s.points[0][0]); });
      });
    });
    return [Math.max(x1 - doc.history_s * 1000, Math.min(first, x1 - 10000)), x1];
  }

  function ago(ms) {
    var s = Math.round(ms / 1000);
    return s < 120 ? s + ' s' : Math.round(s / 60) + ' min';
  }

  function draw(div, chart, doc, span) {
    var x0 = span[0];
    var x1 = span[1];
    var yMax = 0;
    var count = 0;
    chart.series.forEach(function (s) {
      s.points.forEach(function (p) {
        if (p[1] !== null) { yMax = Math.max(yMax, p[1]); count += 1; }
      });
    });
    if (chart.unit === 'share' && yMax > 0) yMax = Math.max(yMax, 0.1);
    if (!(yMax > 0)) yMax = 1;
    var plot = div.querySelector('.plot');
    while (plot.firstChild) plot.removeChild(plot.firstChild);
    plot.appendChild(svg('line', { class: 'grid', x1: 0, y1: 2, x2: W, y2: 2 }));
    plot.appendChild(svg('line', { class: 'grid', x1: 0, y1: H - 2, x2: W, y2: H - 2 }));
    var legend = div.querySelector('.legend');
    while (legend.firstChild) legend.removeChild(legend.firstChild);
    chart.series.forEach(function (s, i) {
      var color = COLORS[i % COLORS.length];
      var d = pathOf(s.points, x0, x1, yMax);
      if (d) plot.appendChild(svg('path', { d: d, stroke: color }));
      var li = el('li');
      var sw = el('span', 'swatch');
      sw.style.backgroundColor = color;  // CSSOM, allowed by the CSP (unlike style="")
      li.appendChild(sw);
      li.appendChild(el('span', 'n', s.name || chart.title));
      li.appendChild(el('span', 'v', fmt(s.value, chart.unit)));
      legend.appendChild(li);
    });
    var empty = chart.value === null;
    div.dataset.empty = String(empty);
    div.dataset.points = String(count);
    div.dataset.value = empty ? '' : String(chart.value);
    div.querySelector('.chart-value').textContent = empty ? chart.note : fmt(chart.value, chart.unit);
    div.querySelector('.y-max').textContent = empty ? '' : 'max ' + fmt(yMax, chart.unit);
    div.querySelector('.x-span').textContent = 'last ' + ago(x1 - x0);
  }

  function drawTargets(targets) {
    while (targetsEl.firstChild) targetsEl.removeChild(targetsEl.firstChild);
    targets.forEach(function (t) {
      var li = el('li', 'target', t.name + (t.up ? ' up' : ' down'));
      li.dataset.up = String(t.up);
      li.dataset.target = t.name;
      li.title = t.url + (t.error ? ' — ' + t.error : '');
      targetsEl.appendChild(li);
    });
  }

  function render(doc) {
    drawTargets(doc.targets);
    var span = spanOf(doc);
    doc.rows.forEach(function (row) {
      var box = rowEl(row);
      row.charts.forEach(function (chart) { draw(chartEl(box, chart), chart, doc, span); });
    });
    polls += 1;
    rowsEl.dataset.polls = String(polls);
    rowsEl.dataset.serverPolls = String(doc.polls);
    var down = doc.targets.filter(function (t) { return !t.up; }).length;
    statusEl.dataset.state = 'ok';
    statusEl.textContent = 'updated ' + new Date(doc.now_ms).toLocaleTimeString() +
      ' · rates over ' + doc.window_s.toFixed(1) + ' s' + (down ? ' · ' + down + ' target(s) down' : '');
  }

  function poll() {
    fetch(DATA_URL, { cache: 'no-store', headers: { Accept: 'application/json' } })
      .then(function (r) {
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.json();
      })
      .then(function (doc) {
        pollMs = doc.poll_ms || pollMs;
        render(doc);
      })
      .catch(function (err) {
        statusEl.dataset.state = 'error';
        statusEl.textContent = 'cannot reach the server: ' + err.message;
      })
      .then(function () { setTimeout(poll, pollMs); });
  }

  poll();
}());
