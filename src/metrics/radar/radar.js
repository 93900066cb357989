// topowall radar, part 2: the workload graph on a canvas (laid out by radar_layout.js), its panels and
// its live stream. Every name reaches the page as text (textContent, fillText): nothing from the model
// is ever parsed as HTML. docs/DESIGN.md, "Radar".
(function () {
  'use strict';
  const L = RadarLayout;  // radar_layout.js, ahead of this file in the same script
  const STATES = L.STATES;
  const COLORS = { learned: '#4c9be8', approved: '#2fb35a', denied: '#8a8f98', pending: '#f0a020', blocked: '#ff3b3b' };
  const MODE_RING = { learn: '#7fb8ff', monitor: '#ffc46b', enforce: '#6fdc8c' };
  const KIND_FILL = { workload: '#c9d6e2', host: '#b39ddb', world: '#80deea', network: '#ce93d8' };
  const AGG_LIMIT = L.AGG_LIMIT, R = L.R;
  const $ = (id) => document.getElementById(id);
  const canvas = $('map');
  const ctx = canvas.getContext('2d');
  const dumpWanted = location.hash.indexOf('dump') >= 0;
  const t0 = 0;  // navigation start: the figures below include loading the page and the model

  let model = null, idx = null, lay = null;
  let view = { x: 0, y: 0, k: 1 }, fitted = false, dirty = false;
  let selected = null, hover = null, renders = 0;
  const expanded = new Set();
  const filt = { states: new Set(STATES), island: '', focus: '', search: '', since: 0 };

  // ---- helpers -----------------------------------------------------------------------------------
  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function portText(e) { return (e.proto === 'icmp' || e.proto === 'icmpv6') ? e.proto + ' type ' + e.port : e.proto + '/' + e.port; }

  // ---- drawing -----------------------------------------------------------------------------------
  function resize() {
    const r = canvas.getBoundingClientRect(), dpr = window.devicePixelRatio || 1;
    canvas.width = Math.max(1, Math.round(r.width * dpr)); canvas.height = Math.max(1, Math.round(r.height * dpr));
  }

  function fit() {
    if (!lay || !lay.drawn.length) return;
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const i of lay.islands) {
      x0 = Math.min(x0, i.x - i.radius); y0 = Math.min(y0, i.y - i.radius);
      x1 = Math.max(x1, i.x + i.radius); y1 = Math.max(y1, i.y + i.radius);
    }
    const dpr = window.devicePixelRatio || 1, w = canvas.width / dpr, h = canvas.height / dpr;
    view.k = Math.min(w / (x1 - x0 + 90), h / (y1 - y0 + 90), 2.5);
    view.x = w / 2 - view.k * (x0 + x1) / 2; view.y = h / 2 - view.k * (y0 + y1) / 2;
  }

  function draw() {
    dirty = false;
    const dpr = window.devicePixelRatio || 1, k = view.k;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!lay) return;
    ctx.setTransform(k * dpr, 0, 0, k * dpr, view.x * dpr, view.y * dpr);
    const vx0 = -view.x / k, vy0 = -view.y / k, vx1 = vx0 + canvas.width / dpr / k, vy1 = vy0 + canvas.height / dpr / k;
    const inView = (x, y, r) => x + r > vx0 && x - r < vx1 && y + r > vy0 && y - r < vy1;
    drawIslands(k, inView);
    drawLinks(k);
    drawNodes(k, inView);
    renders++;
  }

  function drawIslands(k, inView) {
    ctx.lineWidth = 1 / k;
    ctx.font = (12 / k) + 'px system-ui, sans-serif';
    ctx.textAlign = 'center';
    for (const i of lay.islands) {
      if (i.agg || !inView(i.x, i.y, i.radius)) continue;
      ctx.beginPath(); ctx.arc(i.x, i.y, i.radius, 0, 2 * Math.PI);
      ctx.fillStyle = filt.island === i.name ? '#1d3044' : '#142130'; ctx.fill();
      ctx.strokeStyle = '#2a3f55'; ctx.stroke();
      if (i.radius * k > 30) { ctx.fillStyle = '#7f97ad'; ctx.fillText(i.name + ' (' + i.members.length + ')', i.x, i.y - i.radius - 4 / k); }
    }
  }

  function drawLinks(k) {
    const since = filt.since;
    const sel = selected && !selected.edges ? selected.id : null;
    const groups = new Map();  // colour|width|alpha -> links: one path per group keeps 20,000 edges fast
    for (const l of lay.links) {
      const hot = since ? l.newest >= since : true;
      const mine = sel && (l.a.id === sel || l.b.id === sel);
      const base = lay.links.length > 2000 ? 0.4 : 0.85;  // thousands of links: let the crossings show through
      const alpha = sel ? (mine ? 1 : 0.12) : hot ? base : 0.12;
      const w = Math.round(l.w * (since && hot ? 2 : 1) * 2) / 2;
      const key = l.state + '|' + w + '|' + alpha;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(l);
    }
    for (const [key, ls] of groups) {
      const [state, w, alpha] = key.split('|');
      ctx.globalAlpha = +alpha; ctx.strokeStyle = COLORS[state]; ctx.lineWidth = +w / k;
      if (state === 'denied') ctx.setLineDash([4 / k, 3 / k]); else ctx.setLineDash([]);
      ctx.beginPath();
      const arrows = R * k >= 3;  // heads only where they can be seen
      for (const l of ls) {
        if (l.a === l.b) { ctx.moveTo(l.a.x + l.a.r * 2.2, l.a.y); ctx.arc(l.a.x + l.a.r * 1.4, l.a.y, l.a.r * 0.8, 0, 2 * Math.PI); continue; }
        ctx.moveTo(l.a.x, l.a.y); ctx.quadraticCurveTo(l.cx, l.cy, l.b.x, l.b.y);
        if (arrows) arrowHead(l, k);
      }
      ctx.stroke();
    }
    ctx.globalAlpha = 1; ctx.setLineDash([]);
    if (hover && hover.edges) { ctx.strokeStyle = '#ffffff'; ctx.lineWidth = (hover.w + 2) / k; ctx.beginPath(); ctx.moveTo(hover.a.x, hover.a.y); ctx.quadraticCurveTo(hover.cx, hover.cy, hover.b.x, hover.b.y); ctx.stroke(); }
  }

  // Two strokes at the destination's rim, along the curve's last tangent: the flow's direction.
  function arrowHead(l, k) {
    const dx = l.b.x - l.cx, dy = l.b.y - l.cy, len = Math.hypot(dx, dy) || 1, ux = dx / len, uy = dy / len;
    const tx = l.b.x - ux * (l.b.r + 2 / k), ty = l.b.y - uy * (l.b.r + 2 / k), s = 6 / k;
    ctx.moveTo(tx - ux * s - uy * s * 0.6, ty - uy * s + ux * s * 0.6); ctx.lineTo(tx, ty);
    ctx.lineTo(tx - ux * s + uy * s * 0.6, ty - uy * s - ux * s * 0.6);
  }

  function nodeLabel(d) {
    if (d.agg) return d.agg.name + ' (' + d.agg.members.length + ')';
    const n = d.n;
    if (n.kind !== 'workload') return n.id;
    return n.id + ' ×' + (n.replicas || 0) + (n.mode ? ' · ' + n.mode : '');
  }

  function drawNodes(k, inView) {
    const q = filt.search.toLowerCase();
    const labels = [];
    for (const d of lay.drawn) {
      if (!inView(d.x, d.y, d.r)) continue;
      const kind = d.agg ? 'agg' : d.n.kind;
      ctx.beginPath();
      if (kind === 'host') ctx.rect(d.x - d.r, d.y - d.r, 2 * d.r, 2 * d.r);
      else if (kind === 'world' || kind === 'network') {
        const s = kind === 'world' ? 4 : 6;
        for (let j = 0; j <= s; j++) { const a = (j / s) * 2 * Math.PI; const fn = j ? 'lineTo' : 'moveTo'; ctx[fn](d.x + 1.3 * d.r * Math.cos(a), d.y + 1.3 * d.r * Math.sin(a)); }
      } else ctx.arc(d.x, d.y, d.r, 0, 2 * Math.PI);
      ctx.fillStyle = d.agg ? '#27425c' : KIND_FILL[kind] || KIND_FILL.workload; ctx.fill();
      ctx.lineWidth = (d.agg ? 2 : 2.5) / k;
      ctx.strokeStyle = d.agg ? '#7fb8ff' : (d.n.mode && MODE_RING[d.n.mode]) || '#546e7a';
      if (d.n && d.n.kind === 'workload' && !d.n.replicas) ctx.setLineDash([3 / k, 2 / k]);
      ctx.stroke(); ctx.setLineDash([]);
      const hit = q && (d.agg ? d.agg.members.some((n) => n.id.toLowerCase().includes(q)) : d.id.toLowerCase().includes(q));
      if (hit || selected === d) { ctx.beginPath(); ctx.arc(d.x, d.y, d.r + 5 / k, 0, 2 * Math.PI); ctx.strokeStyle = hit ? '#ffee58' : '#ffffff'; ctx.lineWidth = 2 / k; ctx.stroke(); }
      if (d.r * k >= 5 || d.agg) labels.push(d);
    }
    if (labels.length > 600) return;  // too many to read: zoom in for names
    ctx.font = (11 / k) + 'px system-ui, sans-serif'; ctx.textAlign = 'center'; ctx.fillStyle = '#e8eef4';
    for (const d of labels) ctx.fillText(nodeLabel(d), d.x, d.y + d.r + 12 / k);
  }

  // One redraw per frame however many changes asked for it (resizing clears the canvas: it asks too).
  function schedule() { if (!dirty) { dirty = true; requestAnimationFrame(() => draw()); } }

  // ---- picking -----------------------------------------------------------------------------------
  function toWorld(ev) { const r = canvas.getBoundingClientRect(); return { x: (ev.clientX - r.left - view.x) / view.k, y: (ev.clientY - r.top - view.y) / view.k }; }
  function tipFor(o) {
    if (o.edges) {
      const lines = [o.a.id.replace(/^island:/, '') + ' → ' + o.b.id.replace(/^island:/, '') + '  (' + o.state + ')'];
      for (const e of o.edges.slice(0, 8)) lines.push(portText(e) + '  ×' + e.count + '  first ' + e.first_seen + '  last ' + e.last_seen + usedText(e));
      if (o.edges.length > 8) lines.push('… ' + (o.edges.length - 8) + ' more; total ×' + o.count);
      return lines.join('\n');
    }
    if (o.agg) return o.agg.name + ': ' + o.agg.members.length + ' workloads (click to open)';
    const n = o.n, ins = idx.inn.get(n.id).length, outs = idx.out.get(n.id).length;
    return nodeLabel(o) + '\n' + n.kind + ' in ' + n.island + '\n' + outs + ' out, ' + ins + ' in';
  }

  // ---- side panel ------------------------------------------------------------------------------------
  function approveCommand(e) {
    const box = el('div', null, 'cmd');
    const code = el('code', 'topowall flows approve ' + e.id);
    const b = el('button', 'copy');
    b.type = 'button';
    b.addEventListener('click', () => {
      const text = code.textContent;
      if (navigator.clipboard) navigator.clipboard.writeText(text).then(() => { b.textContent = 'copied'; }, () => { b.textContent = 'select it'; });
      else b.textContent = 'select it';
    });
    box.append(code, b);
    return box;
  }

  function edgeItem(e, other) {
    const li = el('li');
    li.append(el('span', e.state + ' ', 's-' + e.state), el('span', other + ' ' + portText(e) + ' ×' + e.count));
    li.title = 'first seen ' + e.first_seen + ', last seen ' + e.last_seen + usedText(e);
    if (e.last_used) li.append(el('span', ' used ' + ago(e.last_used), 'hint'));
    if (e.state === 'pending' || e.state === 'blocked') li.append(approveCommand(e));
    return li;
  }

  // Last use of an allowed edge (conntrack, in every mode): how an operator spots stale permissions.
  function usedText(e) { return e.last_used ? '  used ' + e.last_used : ''; }
  function ago(t) {
    const s = Math.max(0, (Date.parse(model.generated) - Date.parse(t)) / 1000);
    if (!isFinite(s)) return t;
    return s < 120 ? Math.round(s) + ' s ago' : s < 7200 ? Math.round(s / 60) + ' min ago' : s < 172800 ? Math.round(s / 3600) + ' h ago' : Math.round(s / 86400) + ' d ago';
  }

  function kv(parent, k, v) { const p = el('div'); p.append(el('span', k + ': ', 'kv'), el('span', v)); parent.append(p); }

  function showDetails(o) {
    const box = $('details');
    clear(box);
    box.append(el('h2', 'Details'));
    if (!o) { box.append(el('p', 'Click a workload or an edge.', 'hint')); return; }
    if (o.edges) {
      box.append(el('h3', o.a.id.replace(/^island:/, '') + ' → ' + o.b.id.replace(/^island:/, '')));
      const ul = el('ul');
      for (const e of o.edges.slice(0, 200)) ul.append(edgeItem(e, e.src + ' → ' + e.dst));
      box.append(ul);
      return;
    }
    const n = o.n;
    box.append(el('h3', n.id));
    kv(box, 'kind', n.kind); kv(box, 'island', n.island);
    if (n.kind === 'workload') { kv(box, 'mode', n.mode || 'unknown'); kv(box, 'replicas', n.replicas || 0); }
    if (n.addresses && n.addresses.length) kv(box, 'addresses', n.addresses.join(', '));
    if (n.first_seen) kv(box, 'first seen', n.first_seen);
    const labels = Object.entries(n.labels || {});
    if (labels.length) { box.append(el('h2', 'Labels')); const ul = el('ul'); for (const [a, b] of labels) ul.append(el('li', a + '=' + b)); box.append(ul); }
    if (n.containers && n.containers.length) {
      box.append(el('h2', 'Replicas'));
      const ul = el('ul');
      for (const c of n.containers) ul.append(el('li', c.name + ' (' + (c.image || 'netns') + ') ' + (c.addresses || []).join(', ')));
      box.append(ul);
    }
    for (const [title, list, end] of [['Outgoing', idx.out.get(n.id), 'dst'], ['Incoming', idx.inn.get(n.id), 'src']]) {
      box.append(el('h2', title + ' (' + list.length + ')'));
      const ul = el('ul');
      for (const e of list.slice(0, 300)) ul.append(edgeItem(e, (end === 'dst' ? '→ ' : '← ') + e[end]));
      box.append(ul);
    }
  }

  function showAlerts() {
    const ol = $('alerts');
    clear(ol);
    const list = (model.alerts || []).slice(-50).reverse();
    if (!list.length) ol.append(el('li', 'none', 'hint'));
    for (const a of list) {
      const li = el('li');
      li.append(el('span', (a.verdict || '') + ' ', a.verdict === 'blocked' ? 's-blocked' : 's-pending'),
        el('span', a.src + ' → ' + a.dst + ' ' + portText(a) + (a.count > 1 ? ' ×' + a.count : '') + ' ' + (a.reason || '')));
      li.title = a.time + '  ' + (a.src_addr || '') + ' → ' + (a.dst_addr || '');
      ol.append(li);
    }
  }

  function showSummary() {
    const s = $('summary');
    clear(s);
    const by = {};
    for (const e of model.edges) by[e.state] = (by[e.state] || 0) + 1;
    s.append(el('h2', 'Totals'));
    s.append(el('div', model.nodes.length + ' nodes, ' + model.edges.length + ' edges in ' + model.islands.length + ' islands'));
    s.append(el('div', STATES.map((k) => k + ' ' + (by[k] || 0)).join(' · ')));
    if (lay && lay.islands.some((i) => i.agg)) s.append(el('div', 'Islands are collapsed (more than ' + AGG_LIMIT + ' workloads): click one to open it, or expand all.', 'hint'));
    s.append(el('div', 'Node ring: blue learn, amber monitor, green enforce; dashed: no replica on this node. ' +
      'Square: host; diamond: world; hexagon: a named network.', 'hint'));
    s.append(el('div', 'generated ' + model.generated + (model.mode ? ' · node mode ' + model.mode : ''), 'hint'));
  }

  function fillPickers() {
    const sel = $('island'), keep = sel.value;
    while (sel.options.length > 1) sel.remove(1);
    for (const i of model.islands) { const o = el('option', i.id + ' (' + i.kind + ')'); o.value = i.id; sel.append(o); }
    sel.value = keep;
    const dl = $('workload-names');
    clear(dl);
    for (const n of model.nodes.slice(0, 5000)) { const o = el('option'); o.value = n.id; dl.append(o); }
  }

  function writeDump() {
    // The drawn graph as text, for tests and scripts (#dump in the address): nodes, then edges.
    const lines = [];
    for (const d of lay.drawn) lines.push(d.agg ? 'island ' + d.agg.name + ' ' + d.agg.members.length : 'node ' + d.id + ' ' + d.n.kind + ' ' + d.island + ' ' + (d.n.replicas || 0) + ' ' + (d.n.mode || '-'));
    for (const l of lay.links) for (const e of l.edges) lines.push('edge ' + e.src + ' ' + e.dst + ' ' + portText(e) + ' ' + e.state + (e.id ? ' ' + e.id : ''));
    $('radar-dump').textContent = lines.join('\n');
  }

  // ---- (re)building ------------------------------------------------------------------------------
  function rebuild() {
    lay = L.layout(model, idx, filt, { expandAll: $('expand').checked, expanded, aspect: canvas.width / Math.max(1, canvas.height) });
    if (selected) {
      const again = selected.edges ? null : lay.drawn.find((d) => d.id === selected.id);
      selected = again || null;
      showDetails(selected);
    }
    hover = null; $('tip').hidden = true;
    showSummary();
    if (!fitted) { fit(); fitted = true; }
    draw();
    const b = document.body.dataset;
    b.radarNodes = lay.drawn.length; b.radarLinks = lay.links.length; b.radarGenerated = model.generated;
    if (!b.firstRenderMs) b.firstRenderMs = (performance.now() - t0).toFixed(1);
    if (dumpWanted) writeDump();
  }

  function accept(m) {
    const b = document.body.dataset;
    if (!b.firstModelMs) b.firstModelMs = (performance.now() - t0).toFixed(1);  // received and parsed
    model = m; idx = L.index(m);
    fillPickers(); showAlerts(); rebuild(); sinceChanged();
  }

  function sinceChanged() {
    const v = +$('since').value;
    filt.since = v ? idx.minT + (idx.maxT - idx.minT) * v / 1000 : 0;
    $('since-label').textContent = v ? new Date(filt.since).toISOString().replace('.000', '') : 'off';
    schedule();
  }

  // ---- input -------------------------------------------------------------------------------------
  function wire() {
    window.addEventListener('resize', () => { resize(); schedule(); });
    let drag = null, moved = false;
    canvas.addEventListener('mousedown', (ev) => { drag = { x: ev.clientX, y: ev.clientY }; moved = false; canvas.classList.add('dragging'); });
    window.addEventListener('mouseup', () => { drag = null; canvas.classList.remove('dragging'); });
    canvas.addEventListener('mousemove', (ev) => {
      if (drag) {
        const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
        if (Math.abs(dx) + Math.abs(dy) > 2) moved = true;
        view.x += dx; view.y += dy; drag = { x: ev.clientX, y: ev.clientY }; schedule(); return;
      }
      if (!lay) return;
      const p = toWorld(ev), o = L.nodeAt(lay, p, view.k) || L.linkAt(lay, p, view.k), tip = $('tip');
      if (o !== hover) { hover = o; schedule(); }
      if (!o) { tip.hidden = true; return; }
      tip.textContent = tipFor(o); tip.hidden = false;
      const r = canvas.getBoundingClientRect();
      tip.style.left = (ev.clientX - r.left + 14) + 'px'; tip.style.top = (ev.clientY - r.top + 14) + 'px';
    });
    canvas.addEventListener('click', (ev) => {
      if (moved || !lay) return;
      const p = toWorld(ev), o = L.nodeAt(lay, p, view.k) || L.linkAt(lay, p, view.k);
      if (o && o.agg) { expanded.add(o.agg.name); rebuild(); return; }
      selected = o; showDetails(o); schedule();
    });
    canvas.addEventListener('wheel', (ev) => {
      ev.preventDefault();
      const r = canvas.getBoundingClientRect(), mx = ev.clientX - r.left, my = ev.clientY - r.top;
      const f = Math.exp(-ev.deltaY * 0.0015), k = Math.max(0.01, Math.min(40, view.k * f));
      view.x = mx - (mx - view.x) * (k / view.k); view.y = my - (my - view.y) * (k / view.k); view.k = k; schedule();
    }, { passive: false });
    for (const cb of document.querySelectorAll('#states input')) cb.addEventListener('change', () => {
      if (cb.checked) filt.states.add(cb.value); else filt.states.delete(cb.value);
      if (model) rebuild();
    });
    $('island').addEventListener('change', () => { filt.island = $('island').value; fitted = false; if (model) rebuild(); });
    $('focus').addEventListener('change', () => {
      const v = $('focus').value.trim();
      filt.focus = idx && idx.nodes.has(v) ? v : '';
      fitted = false; if (model) rebuild();
    });
    $('expand').addEventListener('change', () => { fitted = false; if (model) rebuild(); });
    $('since').addEventListener('input', () => { if (model) sinceChanged(); });
    $('search').addEventListener('input', () => { filt.search = $('search').value.trim(); schedule(); });
    $('search').addEventListener('keydown', (ev) => {
      if (ev.key !== 'Enter' || !lay || !filt.search) return;
      const q = filt.search.toLowerCase(), d = lay.drawn.find((x) => x.id.toLowerCase().includes(q)) ||
        lay.drawn.find((x) => x.agg && x.agg.members.some((n) => n.id.toLowerCase().includes(q)));
      if (!d) return;
      const dpr = window.devicePixelRatio || 1;
      view.k = Math.max(view.k, 1.5); view.x = canvas.width / dpr / 2 - d.x * view.k; view.y = canvas.height / dpr / 2 - d.y * view.k;
      if (!d.agg) { selected = d; showDetails(d); }
      schedule();
    });
  }

  // ---- data: inline (an exported file) or live from the agent ------------------------------------------
  function live() {
    const state = $('live');
    const es = new EventSource('/radar/events');
    es.addEventListener('model', (ev) => {
      state.textContent = 'live'; state.className = 'on';
      try { accept(JSON.parse(ev.data)); } catch (e) { state.textContent = 'bad model: ' + e.message; state.className = 'off'; }
    });
    es.addEventListener('error', () => { state.textContent = 'reconnecting…'; state.className = 'off'; });
  }

  // Hooks for tests and the benchmark: `frames` redraws while panning, each timed (the canvas work of one
  // frame); select a node as a click would. They read and draw, and change nothing on the agent.
  window.radar = {
    select(id) { const d = lay && lay.drawn.find((x) => x.id === id); selected = d || null; showDetails(selected); schedule(); return !!d; },
    pan(frames) {
      const times = [];
      for (let i = 0; i < frames; i++) {
        view.x += 7; view.y += 3;
        const s = performance.now(); draw(); times.push(performance.now() - s);
      }
      times.sort((a, b) => a - b);
      return { frames, avg: times.reduce((a, b) => a + b, 0) / frames, p95: times[Math.floor(frames * 0.95)] };
    },
    renders() { return renders; },
    state() { return { view, width: canvas.width, height: canvas.height, islands: lay ? lay.islands.map((i) => [i.name, i.x, i.y, i.radius, i.agg]) : [] }; },
    expandAll() { $('expand').checked = true; fitted = false; rebuild(); return lay.drawn.length; },
  };

  wire();
  resize();
  const inline = $('radar-data');
  if (inline) {
    $('live').textContent = 'snapshot';
    accept(JSON.parse(inline.textContent));
  } else {
    live();
  }
})();
