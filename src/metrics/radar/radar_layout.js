// topowall radar, part 1: the model indexed, filtered and laid out, and picking in that layout. Pure:
// no DOM, no canvas; radar.js draws what it returns. docs/DESIGN.md, "Radar".
const RadarLayout = (function () {
  'use strict';
  const STATES = ['learned', 'approved', 'denied', 'pending', 'blocked'];
  const AGG_LIMIT = 1500;  // more workloads than this on screen: islands collapse to one node each
  const SPACING = 28;      // world units between neighbouring workloads
  const R = 7;             // a workload's radius
  function ms(t) { const v = Date.parse(t); return isNaN(v) ? 0 : v; }

  // ---- the model, indexed ------------------------------------------------------------------------
  function index(m) {
    const nodes = new Map(), out = new Map(), inn = new Map();
    for (const n of m.nodes) { nodes.set(n.id, n); out.set(n.id, []); inn.set(n.id, []); }
    let minT = Infinity;
    for (const e of m.edges) {
      e.t = ms(e.first_seen);
      if (e.t && e.t < minT) minT = e.t;
      if (!out.has(e.src) || !inn.has(e.dst)) continue;
      out.get(e.src).push(e); inn.get(e.dst).push(e);
    }
    return { nodes, out, inn, minT: minT === Infinity ? ms(m.generated) : minT, maxT: ms(m.generated) || Date.now() };
  }

  // The nodes to draw: an island or a workload filter keeps those and their neighbours.
  function visibleNodes(model, idx, filt) {
    const core = [];
    for (const n of model.nodes) {
      if (filt.island && n.island !== filt.island) continue;
      if (filt.focus && n.id !== filt.focus) continue;
      core.push(n);
    }
    if (!filt.island && !filt.focus) return core;
    const keep = new Set(core.map((n) => n.id));
    for (const n of core) {
      for (const e of idx.out.get(n.id)) if (filt.states.has(e.state)) keep.add(e.dst);
      for (const e of idx.inn.get(n.id)) if (filt.states.has(e.state)) keep.add(e.src);
    }
    return model.nodes.filter((n) => keep.has(n.id));
  }

  // ---- layout ------------------------------------------------------------------------------------
  // opts: expandAll, expanded (islands the user opened), aspect (the canvas' width / height).
  function layout(model, idx, filt, opts) {
    const nodes = visibleNodes(model, idx, filt);
    const groups = new Map();
    for (const n of nodes) {
      if (!groups.has(n.island)) groups.set(n.island, []);
      groups.get(n.island).push(n);
    }
    const collapse = !opts.expandAll && nodes.length > AGG_LIMIT;
    const islands = [];
    for (const [name, members] of groups) {
      const agg = collapse && members.length > 1 && !opts.expanded.has(name);
      const radius = agg ? 20 + 3 * Math.sqrt(members.length) : SPACING * Math.sqrt(members.length) + SPACING;
      islands.push({ name, members, agg, radius, x: 0, y: 0 });
    }
    islands.sort((a, b) => b.radius - a.radius || (a.name < b.name ? -1 : 1));
    packShelves(islands, opts.aspect);
    const drawn = [], at = new Map();
    const golden = Math.PI * (3 - Math.sqrt(5));
    for (const isl of islands) {
      if (isl.agg) {
        const d = { id: 'island:' + isl.name, agg: isl, x: isl.x, y: isl.y, r: isl.radius * 0.8, island: isl.name };
        drawn.push(d);
        for (const n of isl.members) at.set(n.id, d);
        continue;
      }
      isl.members.sort((a, b) => (a.kind === b.kind ? (a.id < b.id ? -1 : 1) : a.kind === 'workload' ? 1 : -1));
      isl.members.forEach((n, i) => {
        const rr = SPACING * Math.sqrt(i + 0.5), a = i * golden;
        const d = { id: n.id, n, x: isl.x + rr * Math.cos(a), y: isl.y + rr * Math.sin(a), r: R, island: isl.name };
        drawn.push(d); at.set(n.id, d);
      });
    }
    return { islands, drawn, at, links: linksOf(model, filt, at), grid: gridOf(drawn) };
  }

  // Largest first onto shelves of about the square root of the total area: compact, stable, O(n log n).
  function packShelves(islands, aspectRatio) {
    const side = (i) => 2 * i.radius + (i.agg ? 3 : 1) * SPACING;  // a collapsed island's label needs room
    let area = 0;
    for (const i of islands) area += side(i) * side(i);
    const aspect = Math.max(0.5, Math.min(3, aspectRatio || 1.5));  // fill the screen's shape
    const width = Math.max(Math.sqrt(area * aspect) * 1.1, islands.length ? side(islands[0]) : 0);
    let x = 0, y = 0, row = 0;
    for (const i of islands) {
      const d = side(i);
      if (x > 0 && x + d > width) { x = 0; y += row; row = 0; }
      i.x = x + d / 2; i.y = y + d / 2; x += d; row = Math.max(row, d);
    }
  }

  // One drawn link per (drawn source, drawn destination, state), its edges and their total count. A link
  // to or from a collapsed island carries every state at once, coloured by the most urgent; the edges
  // inside a collapsed island are in its totals, not drawn.
  const URGENCY = ['learned', 'approved', 'denied', 'pending', 'blocked'];
  function linksOf(model, filt, at) {
    const links = new Map();
    for (const e of model.edges) {
      if (!filt.states.has(e.state)) continue;
      const a = at.get(e.src), b = at.get(e.dst);
      if (!a || !b) continue;
      const agg = a.agg || b.agg;
      if (agg && a === b) continue;
      const key = a.id + '\u0000' + b.id + '\u0000' + (agg ? '*' : e.state);
      let l = links.get(key);
      if (!l) { l = { a, b, state: e.state, edges: [], count: 0, t: Infinity }; links.set(key, l); }
      if (URGENCY.indexOf(e.state) > URGENCY.indexOf(l.state)) l.state = e.state;
      l.edges.push(e); l.count += e.count || 0; l.t = Math.min(l.t, e.t || 0);
      l.newest = Math.max(l.newest || 0, e.t || 0);
    }
    const list = [...links.values()];
    for (const l of list) {
      // Parallel links (other states, the way back) bend apart; a loop sits beside its node.
      const s = STATES.indexOf(l.state) + 1, dx = l.b.x - l.a.x, dy = l.b.y - l.a.y, len = Math.hypot(dx, dy) || 1;
      const bend = Math.min(len * 0.15, 6 + 5 * s);
      l.cx = (l.a.x + l.b.x) / 2 - (dy / len) * bend; l.cy = (l.a.y + l.b.y) / 2 + (dx / len) * bend;
      l.w = Math.min(1 + Math.log2(1 + l.count) / 2, 7);
    }
    return list;
  }

  function gridOf(drawn) {
    const g = new Map(), c = SPACING * 4;
    for (const d of drawn) {
      const key = Math.floor(d.x / c) + ',' + Math.floor(d.y / c);
      if (!g.has(key)) g.set(key, []);
      g.get(key).push(d);
    }
    return { g, c };
  }

  // ---- picking ------------------------------------------------------------------------------------
  function nodeAt(lay, p, k) {
    const c = lay.grid.c, cx = Math.floor(p.x / c), cy = Math.floor(p.y / c);
    let best = null, bd = Infinity;
    for (let i = -2; i <= 2; i++) for (let j = -2; j <= 2; j++) {
      for (const d of lay.grid.g.get((cx + i) + ',' + (cy + j)) || []) {
        const dist = Math.hypot(d.x - p.x, d.y - p.y);
        if (dist <= d.r + 4 / k && dist < bd) { best = d; bd = dist; }
      }
    }
    return best;
  }
  function segDist(p, x0, y0, x1, y1) {
    const dx = x1 - x0, dy = y1 - y0, l2 = dx * dx + dy * dy || 1;
    const t = Math.max(0, Math.min(1, ((p.x - x0) * dx + (p.y - y0) * dy) / l2));
    return Math.hypot(p.x - x0 - t * dx, p.y - y0 - t * dy);
  }
  function linkAt(lay, p, k) {
    let best = null, bd = 5 / k;
    for (const l of lay.links) {
      if (l.a === l.b) continue;
      const mx = 0.25 * l.a.x + 0.5 * l.cx + 0.25 * l.b.x, my = 0.25 * l.a.y + 0.5 * l.cy + 0.25 * l.b.y;
      const d = Math.min(segDist(p, l.a.x, l.a.y, mx, my), segDist(p, mx, my, l.b.x, l.b.y));
      if (d < bd) { best = l; bd = d; }
    }
    return best;
  }

  return { STATES, AGG_LIMIT, R, index, layout, nodeAt, linkAt };
})();
