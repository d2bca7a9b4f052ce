/* RongTwin one map: deck.gl page served by the twin's FastAPI app.
   No build step, no CDN: deck.gl and the MVT worker come from /static/vendor. */
(function () {
  "use strict";
  const D = window.deck;
  const I18N = window.TWIN_I18N;
  const WORKER_URL = "/static/vendor/mvt-worker.js";
  const T = (window.__twin = {ready: false, buildingsLoaded: {}, firstBuildingsMs: null, lastPick: null,
    floodImage: {}, errors: [], decks: {}, layerIds: {}});
  const S = {
    lang: localStorage.getItem("twin.lang") || "zh",
    token: localStorage.getItem("twin.token") || "",
    scene: null, scenarioA: "base", scenarioB: null, compare: false,
    visible: {hillshade: true, flood: true, buildings: true, road_links: true, trips: true, crowd: true, sensors: true, bim: true},
    colourBy: "height", viewState: null, time: 0, series: [], seriesIdx: 0, playing: false,
    sensors: null, alerts: undefined, exposureKey: {}, feeds: null, trips: {}, crowd: {}, floodMeta: {}, hillshade: {}, bim: null, highlight: null, results: [],
    bimSite: null, bimPicking: false,  // where a submitted model stands, picked on the map ([lon, lat])
    // what-if: the shape being drawn ({mode: "area"|"levee", points, hover}), per scenario the time of the
    // last edit of each layer/raster (tile and image URLs carry it: the browser must not keep what was before),
    // the shapes drawn this session, the shown scenario's edits and the DEM's cell size (metres)
    draw: null, rev: {}, whatifShapes: {}, edits: null, demCell: null,
    timedClosures: {},  // per traffic run's link layer (ref): the spans of time ([from, until) s) a flood closed roads
    closedRoads: {},  // per closuresKey(): whether roads drawn closed for good are there (a scenario's or a run's)
    access: {},  // per scenario: its newest access run's times per building ({key, run, within_s, by: {id: {t, within, lost, dry}}})
    exposureOf: {},  // per viewKey: the flood run the buildings' depths come from ({run, column, threshold})
    crowdExits: {}, crowdJams: {},  // per key() of a crowd run's "exits" layer (GeoJSON) and "jams" table (with lon/lat)
    poiKinds: [],  // the kinds of the pois layer (where an access run's vehicles can leave from)
    versions: null, syncing: false,  // per scenario: its and its parents' edit counts and times, as last seen
    ownEditAt: {},  // per scenario: when this page last edited or undid it (ms)
    // per pickKey(side, kind): the run id the user chose in the time bar for the left view ("a") or the right one
    // ("b", compare); it holds across scenario switches and is shown wherever the side's scenario has that run
    // (else the newest, and the time bar says so)
    runPick: {},
    startFailed: null,  // {status, message} when the page could not start (401: no token; 403: the role; else why)
  };

  // ---------------------------------------------------------------- helpers
  const $ = (id) => document.getElementById(id);
  const t = (k) => (I18N[S.lang] && I18N[S.lang][k]) || (I18N.en[k]) || k;
  function roleName(r) { const k = "role_" + r, v = t(k); return v === k ? String(r) : v; }
  function headers() { return S.token ? {Authorization: "Bearer " + S.token} : {}; }
  // the server's "detail" as one readable line (a string, or FastAPI's list of {loc, msg})
  function detailText(d) {
    if (d === null || d === undefined || d === "") return "";
    if (typeof d === "string") return d;
    if (Array.isArray(d)) return d.map(detailText).filter(Boolean).join("; ");
    if (typeof d === "object") {
      if (d.msg) return (Array.isArray(d.loc) ? d.loc.filter((x) => x !== "body").join(".") + ": " : "") + d.msg;
      if (d.detail) return detailText(d.detail);
      if (d.message) return String(d.message);
    }
    try { return JSON.stringify(d); } catch (e) { return String(d); }
  }
  async function api(path, opts) {
    const o = Object.assign({}, opts || {});
    o.headers = Object.assign({}, headers(), o.headers || {});
    let r;
    try { r = await fetch(path, o); } catch (e) { throw new Error(t("unreachable")); }
    if (!r.ok) {
      let detail = "";
      try {
        const txt = await r.text();
        try { detail = detailText(JSON.parse(txt).detail); } catch (e) { detail = /</.test(txt) ? "" : txt.trim().slice(0, 300); }
      } catch (e) { /* no body */ }
      const what = {401: "errSignIn", 403: "errForbidden", 404: "errNotFound"}[r.status] || (r.status >= 500 ? "errServer" : "errRequest");
      const err = new Error(t(what) + " (" + r.status + (r.statusText ? " " + r.statusText : "") + ")" + (detail ? ": " + detail : ""));
      err.status = r.status;
      if (r.status === 401) {  // the box opens; a token that was refused (wrong, expired) says why beside it
        S.needToken = true;
        S.tokenError = S.token ? err.message : "";
        renderToken();
      }
      throw err;
    }
    const ct = r.headers.get("content-type") || "";
    return ct.includes("json") ? r.json() : r;
  }
  function showError(e) {
    const el = $("error");
    el.textContent = String(e && e.message ? e.message : e);
    el.hidden = false;
    T.errors.push(el.textContent);
    clearTimeout(showError._t);
    showError._t = setTimeout(() => { el.hidden = true; }, 6000);
  }
  function loadOptions() {
    return {mvt: {workerUrl: WORKER_URL}, fetch: {headers: headers()}};
  }
  function withToken(url) {
    return S.token ? url + (url.includes("?") ? "&" : "?") + "access_token=" + encodeURIComponent(S.token) : url;
  }
  function applyI18n() {
    document.documentElement.lang = S.lang === "zh" ? "zh-CN" : "en";
    document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
    document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => { el.placeholder = t(el.dataset.i18nPlaceholder); });
    document.querySelectorAll("[data-i18n-aria]").forEach((el) => { el.setAttribute("aria-label", t(el.dataset.i18nAria)); });
    document.querySelectorAll("[data-i18n-title]").forEach((el) => { el.title = t(el.dataset.i18nTitle); });
    $("lang-toggle").textContent = S.lang === "zh" ? "EN" : "中文";
    renderToggles(); renderLabels(); renderSeriesSelect(); renderBookmarks(); renderEngines();
    renderTimeLabel(); renderInspectHint(); renderJobs(); renderBim(); renderBimSite(); renderFeeds(); renderAlerts(); renderRejects(); renderWhatif(); renderToken();
    if (S.role) $("who").textContent = roleName(S.role);
    if (S.scene) { fillScenarioSelects(); renderLegend(); }
  }

  // ---------------------------------------------------------------- colours
  const USE_COLOURS = {residential: [241, 196, 120], commercial: [235, 120, 110], office: [120, 170, 235],
    industrial: [170, 150, 200], public: [120, 200, 160], school: [250, 230, 110], hospital: [255, 140, 180], mixed: [200, 200, 200]};
  function heightColour(h) {
    const x = Math.max(0, Math.min(1, (h || 0) / 120));
    return [Math.round(60 + 190 * x), Math.round(140 + 60 * (1 - x)), Math.round(230 - 150 * x), 235];
  }
  const SHADED_COLOUR = [190, 70, 230, 255];  // a home a submitted building takes below the sunlight standard
  function buildingColour(p, scenario, side) {
    if (S.bimShaded && S.bimShaded.has(String(p.building_id))) return SHADED_COLOUR;
    if (S.colourBy === "use") { const c = USE_COLOURS[p.use] || [190, 190, 190]; return [c[0], c[1], c[2], 235]; }
    if (S.colourBy === "access") {  // within the response time, beyond it, lost to the flood, or no road at all
      const a = S.access[scenario] && S.access[scenario].by[p.building_id];
      if (!a) return [150, 150, 150, 220];  // no access run on this scenario yet
      if (a.lost) return [230, 40, 210, 245];  // within when dry: the flood cut it off or slowed it past the limit
      if (a.t === null || a.t === undefined) return [200, 30, 40, 245];  // no open road, flood or not
      return a.within ? [60, 185, 95, 235] : [240, 150, 40, 240];
    }
    if (S.colourBy === "flood") {
      const vk = viewKey(scenario, side || sideOf(scenario));
      const ex = S.exposure && S.exposure[vk] && S.exposure[vk][p.building_id];
      if (!S.exposure || !S.exposure[vk]) return [150, 150, 150, 220];  // no flood run yet
      const x = Math.max(0, Math.min(1, (ex || 0) / 1.0));  // not in the table: not flooded
      return [Math.round(80 + 175 * x), Math.round(180 - 150 * x), Math.round(230 - 200 * x), 240];
    }
    return heightColour(p.height_m);
  }
  function vcColour(vc) {
    if (vc === undefined || vc === null) return [130, 140, 150, 200];
    const x = Math.max(0, Math.min(1.2, vc)) / 1.2;
    return [Math.round(40 + 215 * x), Math.round(200 - 170 * x * x), 60, 255];
  }
  const CLOSED_COLOUR = [70, 70, 80, 255];      // closed for the whole run (a scenario's closure)
  const FLOOD_CLOSED_COLOUR = [230, 40, 210, 255];  // closed now, while a flood has it under water (magenta: not the water's blue)
  // when a flood closed a traffic run's link: [from, until) s (no end: still under water when the flood run ended)
  function closedSpan(p) {
    if (p.closed_from_s === undefined || p.closed_from_s === null) return null;
    return [Number(p.closed_from_s), p.closed_until_s === undefined || p.closed_until_s === null ? Infinity : Number(p.closed_until_s)];
  }
  // timed closures follow the trips' clock: a span holds the time shown (``time``, default the clock: a compared
  // view whose trips ended holds their end) only while the trips are the series
  function spanHoldsNow(span, time) {
    const sr = currentSeries(), now = time === undefined ? S.time : time;
    return !!(span && sr && sr.kind === "trips" && now >= span[0] && now < span[1]);
  }
  // a traffic run's link: closed at the time shown, else its load
  function linkClosedNow(p, time) { return spanHoldsNow(closedSpan(p), time); }
  function linkColour(p, time) {
    if (p.closed === true || p.closed === 1) return CLOSED_COLOUR;
    if (linkClosedNow(p, time)) return FLOOD_CLOSED_COLOUR;
    return vcColour(linkLoad(p));
  }
  // a scenario's road closure (a what-if's "close roads": capacity 0), in the scenario's own road tiles
  function scenarioClosed(p) { return p.capacity_vph !== undefined && p.capacity_vph !== null && Number(p.capacity_vph) === 0; }
  // the road tiles of a scenario: the base's few fields (prewarmed), a scenario's with its capacities (closures)
  function roadsQ(scenario) {
    const cols = (S.scene.layers.road_links && S.scene.layers.road_links.columns) || {};
    const fields = scenario !== "base" && "capacity_vph" in cols
      ? "&fields=" + ["link_id", "road_class", "lanes", "capacity_vph"].filter((c) => c in cols).join(",") : "";
    return "?scenario=" + encodeURIComponent(scenario) + fields + revQ(scenario, "road_links");
  }
  // ---------------------------------------------------------------- legend
  // what the buildings' and the roads' colours mean, under "colour buildings by"; a scenario without the run a
  // colouring needs (its buildings stay grey) is named, so grey does not read as "safe" or "unreachable"
  const rgb = (c) => `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
  function renderLegend() {
    const box = $("legend");
    if (!box || !S.scene) return;
    const shown = S.compare && S.scenarioB && S.scenarioB !== S.scenarioA ? [S.scenarioA, S.scenarioB] : [S.scenarioA];
    const by = S.colourBy;
    const has = (sc) => by === "access" ? !!accessResult(sc) : by === "flood" ? !!exposureResult(sc) : true;
    const lacking = shown.filter((sc) => !has(sc));
    const roadsOn = S.visible.road_links && !!(S.scene.layers.road_links || shown.some((sc) => linkResult(sc)));
    const roads = roadsOn && shown.some((sc) => linkResult(sc));  // coloured by a traffic run's load
    // roads drawn closed: a scenario's closures (what-if "close roads"), or the links its traffic run ran closed
    const closed = roadsOn && shown.some((sc) => S.closedRoads[closuresKey(sc)] === true);
    // roads a flood has closed at the time shown (magenta while under water, on the trips' clock)
    const floodClosed = roads && shown.some((sc) => {
      const lr = linkResult(sc), spans = lr && S.timedClosures[lr.ref];
      return Array.isArray(spans) && spans.some((sp) => spanHoldsNow(sp));
    });
    const water = S.visible.flood && shown.some((sc) => floodResult(sc));  // the server's "depth" style (imaging.py)
    // a crowd run's exits and jams, while the crowd is the series: the most people out of one exit, any closed, any jam
    const sr = currentSeries(), crowdX = {most: 0, exits: false, closed: false, jams: false};
    if (S.visible.crowd && sr && sr.kind === "crowd") {
      shown.forEach((sc) => {
        const cr = crowdResult(sc), ce = cr && crowdExtra(cr, "exits", "layer"), cj = cr && crowdExtra(cr, "jams", "table");
        const fc = ce && S.crowdExits[key(ce)], jl = cj && S.crowdJams[key(cj)];
        if (fc && fc.features && fc.features.length) {
          crowdX.exits = true;
          crowdX.most = Math.max(crowdX.most, ...fc.features.map((f) => Number(f.properties.agents) || 0));
          crowdX.closed = crowdX.closed || fc.features.some((f) => exitClosed(f.properties));
        }
        if (jl && jl.length) crowdX.jams = true;
      });
    }
    const k = JSON.stringify([S.lang, by, shown, lacking, roads, closed, floodClosed, water, S.results.length, crowdX]);
    if (k === renderLegend.key) return;
    renderLegend.key = k;
    box.innerHTML = "";
    const items = [], notes = [];
    const row = (cls) => { const d = document.createElement("div"); d.className = "lg-row" + (cls ? " " + cls : ""); box.appendChild(d); return d; };
    const swatch = (parent, colour, label) => {
      const s = document.createElement("span"); s.className = "lg-item";
      const c = document.createElement("i"); c.className = "lg-swatch"; c.style.background = rgb(colour);
      s.appendChild(c); s.appendChild(document.createTextNode(label)); parent.appendChild(s); items.push(label);
    };
    const ramp = (title, colours, lo, hi, at) => {  // at: each colour's place along the bar (%), else even
      const r = row("lg-ramp");
      const h = document.createElement("span"); h.textContent = title; r.appendChild(h); items.push(title);
      const bar = document.createElement("span"); bar.className = "lg-bar";
      bar.style.background = `linear-gradient(to right, ${colours.map((c, i) => rgb(c) + (at ? ` ${at[i]}%` : "")).join(", ")})`;
      const a = document.createElement("span"); a.textContent = lo;
      const b = document.createElement("span"); b.textContent = hi;
      const line = document.createElement("div"); line.className = "lg-scale";
      line.appendChild(a); line.appendChild(bar); line.appendChild(b); r.appendChild(line);
    };
    // the scenarios that have the run (a command-centre viewer cannot start one, but can switch to them)
    const withRun = (pick) => Array.from(new Set(S.results.filter(pick).map((r) => r.scenario))).filter((sc) => !shown.includes(sc));
    const note = (key, pick) => {
      const n = row("lg-note");
      const names = shown.length > 1 ? " · " + lacking.map(scenarioName).join(", ") : "";
      const others = withRun(pick);
      n.textContent = t(key) + names + (others.length ? " · " + t("lgHasRun") + ": " + others.slice(0, 5).map(scenarioName).join(", ") : "");
      notes.push(n.textContent);
    };
    if (by === "height") ramp(t("lgHeight"), [0, 40, 80, 120].map(heightColour), "0 m", "≥120 m");
    else if (by === "use") {
      const r = row();
      Object.keys(USE_COLOURS).forEach((u) => swatch(r, USE_COLOURS[u], t("use_" + u)));
      swatch(r, [190, 190, 190], t("use_other"));
    } else if (by === "flood") {
      if (lacking.length < shown.length) ramp(t("lgExposure"), [0, 0.5, 1].map((x) => [80 + 175 * x, 180 - 150 * x, 230 - 200 * x]), "0 m", "≥1 m");
      if (lacking.length) note("lgNoFlood", (r) => (r.kind === "table" || r.kind === "layer") && /exposure/.test(r.name));
    } else if (by === "access") {
      if (lacking.length < shown.length) {
        const r = row();
        swatch(r, [60, 185, 95], t("lgWithin")); swatch(r, [240, 150, 40], t("lgBeyond"));
        swatch(r, [230, 40, 210], t("lgLost")); swatch(r, [200, 30, 40], t("lgNoRoad"));
      }
      if (lacking.length) note("lgNoAccess", (r) => r.kind === "table" && r.name === "access_buildings");
    }
    // the depth ramp of viewer/imaging.py: its middle colour at 0.3 of the top (0.6 m of 2 m)
    if (water) ramp(t("flood"), [[160, 220, 255], [60, 150, 240], [10, 40, 160]], "0.01 m", "≥2 m", [0, 30, 100]);
    if (roads) ramp(t("road_vc"), [0, 0.4, 0.8, 1.2].map((v) => vcColour(v)), "0", "≥1.2");
    if (closed || floodClosed) {
      const r = row();
      if (closed) swatch(r, CLOSED_COLOUR, t("roadClosed"));
      if (floodClosed) swatch(r, FLOOD_CLOSED_COLOUR, t("floodClosed"));
    }
    if (crowdX.exits) ramp(t("exitsLg"), [0, 0.5, 1].map(exitColour), "0", String(crowdX.most) + " " + t("persons"));
    if (crowdX.closed || crowdX.jams) {
      const r = row();
      if (crowdX.closed) swatch(r, EXIT_CLOSED_COLOUR, t("exitClosed"));
      if (crowdX.jams) swatch(r, JAM_COLOUR, t("jamLg"));
    }
    T.legend = {colourBy: by, items, notes};
  }
  const SENSOR_COLOURS = {ok: [80, 220, 120, 255], warn: [255, 200, 60, 255], alarm: [255, 60, 60, 255], unknown: [160, 160, 160, 255],
    stale: [110, 116, 124, 200]};  // a reading older than its kind allows (the server says "stale"): greyed, not a live alarm
  function sensorColour(p) { return p.stale ? SENSOR_COLOURS.stale : (SENSOR_COLOURS[p.status] || SENSOR_COLOURS.unknown); }

  // ---------------------------------------------------------------- results of a scenario
  function resultsOf(scenario) { return S.results.filter((r) => r.scenario === scenario); }
  // the newest by creation time (the catalogue is sorted by run name, which says nothing of age: "crowd-2026..." < "r3")
  function latest(list) {
    if (!list.length) return null;
    return list.reduce((a, b) => (String(b.created || "") >= String(a.created || "") ? b : a));
  }
  // the engine that wrote a result, by its meta ("simulation.traffic" -> "traffic", as cim.results.engine_of);
  // null for one saved by hand (then its name says what it is)
  function engineOf(r) {
    const m = r && r.meta;
    const e = m && typeof m === "object" ? (m.analysis || m.engine) : null;
    return e ? String(e).split(".").pop() : null;
  }
  // Each kind of series the time bar plays, with the results that can feed it: a user picks the run (S.runPick,
  // per scenario and kind), else the newest is shown
  function floodGrids(scenario) {
    // depth time series first (the flood engine's depth_snapshots), else a single depth grid (max_depth)
    return resultsOf(scenario).filter((r) => /depth|flood/.test(r.name) && (!engineOf(r) || engineOf(r) === "flood") &&
      ["raster_series", "array", "raster"].includes(r.kind));
  }
  // trajectories: vehicles from traffic runs (or tables named trips/vehicles), people from crowd runs; a result
  // with an engine is classified by it (a traffic run may be called anything: "am_peak", "rush")
  function isTrips(r) {
    if (r.kind !== "table") return false;
    // (a traffic run's "trips" table lists trips, not positions: its "trajectories" are the paths)
    const vehicles = r.name !== "trips" && /trip|vehicle/.test(r.name);
    const e = engineOf(r);
    if (e) return e === "traffic" && (vehicles || /traj/.test(r.name));
    return vehicles || (/traj/.test(r.name) && /traffic/.test(r.run));
  }
  function isCrowd(r) {
    if (r.kind !== "table") return false;
    const people = /agent|crowd|pedestrian/.test(r.name);
    const e = engineOf(r);
    if (e) return e === "crowd" && (people || /traj/.test(r.name));
    return people || (/traj/.test(r.name) && !/traffic/.test(r.run) && !/trip|vehicle/.test(r.name));
  }
  // the results a series of a kind can show, one per run (a flood run's series before its single grid), newest first
  function seriesCandidates(scenario, kind) {
    let list;
    if (kind === "flood") {
      const grids = floodGrids(scenario), byRun = {};
      grids.forEach((r) => {
        const rank = r.kind === "raster" ? 1 : 0, had = byRun[r.run];
        if (!had || rank < had.rank || (rank === had.rank && String(r.created || "") >= String(had.r.created || ""))) byRun[r.run] = {r, rank};
      });
      list = Object.values(byRun).map((x) => x.r);
    } else {
      const pick = kind === "trips" ? isTrips : isCrowd, byRun = {};
      resultsOf(scenario).filter(pick).forEach((r) => { if (!byRun[r.run] || String(r.created || "") >= String(byRun[r.run].created || "")) byRun[r.run] = r; });
      list = Object.values(byRun);
    }
    return list.sort((a, b) => String(b.created || "").localeCompare(String(a.created || "")) || String(b.run).localeCompare(String(a.run)));
  }
  // the view a scenario is drawn in when no side is named: the right one only for the compared scenario
  function sideOf(scenario) { return S.compare && scenario === S.scenarioB && scenario !== S.scenarioA ? "b" : "a"; }
  function sideScenario(side) { return side === "b" ? S.scenarioB : S.scenarioA; }
  function viewKey(scenario, side) { return [side, scenario].join("\u0000"); }  // a key, not a URL
  function pickKey(side, kind) { return side + "\u0000" + kind; }
  function isPicked(side, kind) { return S.runPick[pickKey(side, kind)] !== undefined; }
  // the run shown for a kind in a view: the one the user picked there while its scenario has it, else the newest
  function seriesResult(scenario, kind, side) {
    const picked = S.runPick[pickKey(side || sideOf(scenario), kind)];
    if (picked !== undefined) {
      const r = seriesCandidates(scenario, kind).find((x) => x.run === picked);
      if (r) return r;
    }
    return newestResult(scenario, kind);
  }
  function newestResult(scenario, kind) {
    if (kind === "flood") {  // the newest series, else the newest single grid
      const grids = floodGrids(scenario);
      return latest(grids.filter((r) => r.kind === "raster_series" || r.kind === "array")) || latest(grids.filter((r) => r.kind === "raster"));
    }
    return latest(resultsOf(scenario).filter(kind === "trips" ? isTrips : isCrowd));
  }
  function floodResult(scenario, side) { return seriesResult(scenario, "flood", side); }
  function tripsResult(scenario, side) { return seriesResult(scenario, "trips", side); }
  function crowdResult(scenario, side) { return seriesResult(scenario, "crowd", side); }
  // the road loads of a traffic run: of the run picked for the vehicle trips when it has them, else the newest
  function linkResult(scenario, side) {
    side = side || sideOf(scenario);
    const links = resultsOf(scenario).filter((r) => r.kind === "layer" &&
      (engineOf(r) ? engineOf(r) === "traffic" : /link|traffic|flow|vc|load/.test(r.name + " " + r.run)));
    if (isPicked(side, "trips")) {
      const tr = tripsResult(scenario, side), same = tr && latest(links.filter((r) => r.run === tr.run));
      if (same) return same;
    }
    return latest(links);
  }
  function linkLoad(p) {
    for (const k of ["vc", "v_c", "voc"]) if (p[k] !== undefined && p[k] !== null) return p[k];
    if (p.volume !== undefined && p.capacity_vph) return p.volume / p.capacity_vph;
    if (p.flow !== undefined && p.capacity_vph) return p.flow / p.capacity_vph;
    return undefined;
  }
  // the scenario's newest emergency-access run (time from the nearest station to each building)
  function accessResult(scenario) {
    return latest(resultsOf(scenario).filter((r) => r.kind === "table" && r.name === "access_buildings"));
  }
  function exposureResult(scenario, side) {
    side = side || sideOf(scenario);
    let ex = resultsOf(scenario).filter((r) => (r.kind === "table" || r.kind === "layer") && /exposure/.test(r.name));
    const fr = isPicked(side, "flood") && floodResult(scenario, side);  // the flood shown, if picked
    if (fr && ex.some((r) => r.run === fr.run)) ex = ex.filter((r) => r.run === fr.run);
    return latest(ex.filter((r) => /building/.test(r.name))) || latest(ex);
  }

  // ---------------------------------------------------------------- time
  function currentSeries() { return S.series[S.seriesIdx] || null; }
  function seriesStep(scenario, side) {
    const fr = floodResult(scenario, side);
    if (!fr) return 0;
    const m = S.floodMeta[key(fr)];
    const n = (m && m.steps) || 1;
    const times = (m && m.times_s) || fr.steps;
    if (times && times.length === n) {
      let k = 0;
      for (let i = 0; i < n; i++) if (times[i] <= S.time + 1e-9) k = i;
      return k;
    }
    const sr = currentSeries();
    if (sr && sr.kind === "flood") return Math.min(n - 1, Math.round(S.time));
    return n - 1;
  }
  function key(r) { return r.scenario + "/" + r.run + "/" + r.name; }
  // "&v=<time of the scenario's last edit of what>" once the page has edited it: a new URL, so neither deck.gl's
  // tile cache nor the browser's (max-age=30) shows the map as it was before the edit
  function revOf(scenario, what) { return (S.rev[scenario] && S.rev[scenario][what]) || 0; }
  function revQ(scenario, what) { const v = revOf(scenario, what); return v ? "&v=" + v : ""; }
  // a result's URL: its scenario (named in any script: "暴雨50年"), run and name as percent-encoded path segments
  function resultUrl(r, tail) { return "/api/results/" + [r.scenario, r.run, r.name].map(encodeURIComponent).join("/") + "/" + tail; }

  // what the closed roads of a scenario are read from: its traffic run's links, else its road tiles as of its last edit
  function closuresKey(scenario, side) {
    const lr = linkResult(scenario, side);
    return lr && lr.ref ? ["run", lr.ref].join("\u0000") : ["edits", scenario, revOf(scenario, "road_links")].join("\u0000");  // a key, not a URL
  }
  // the spans of time a flood kept some road closed, merged; more closed links than one page: taken as closed from
  // the first closure seen to the end (the legend then names magenta while it may not be on the map)
  const CLOSURES_PAGE = 10000;
  function closureSpans(fc) {
    const spans = (fc.features || []).map((f) => closedSpan(f.properties)).filter(Boolean).sort((a, b) => a[0] - b[0]);
    if (fc.next_offset !== null && fc.next_offset !== undefined && spans.length) return [[spans[0][0], Infinity]];
    const out = [];
    spans.forEach((s) => {
      const last = out[out.length - 1];
      if (last && s[0] <= last[1]) last[1] = Math.max(last[1], s[1]); else out.push(s.slice());
    });
    return out;
  }
  // a crowd run's result beside its trajectories (same scenario and run): its "exits" layer, its "jams" table
  // (older crowd runs have neither: nothing more is drawn)
  function crowdExtra(cr, name, kind) {
    return resultsOf(cr.scenario).find((r) => r.run === cr.run && r.name === name && r.kind === kind) || null;
  }
  // The jams' x, y are in the twin's CRS and the page has no projection library. The exits' vertices, read in both
  // the twin's CRS and lon/lat, fix a local similarity transform from the one to (lon·cos(lat0), lat), fitted by
  // least squares: the twin's CRS is a conformal projection (transverse Mercator), which over a crowd area of a few
  // hundred metres is a rotation and a scale to well under a metre. Rows: {position, start, end, n, peak, kind, exit}.
  async function loadJams(cj, ce) {
    const d = await api(resultUrl(cj, "rows?limit=10000"));
    if (!d.rows || !d.rows.length) return [];
    const num = (v) => (v === null || v === undefined || v === "" || !isFinite(Number(v)) ? null : Number(v));
    const jam = (r, position) => ({
      position, start: num(r.start_s !== undefined ? r.start_s : r.time_s) || 0,
      end: num(r.end_s) === null ? Infinity : num(r.end_s), n: num(r.n_agents) || 0, peak: num(r.peak_density),
      kind: r.kind || "", exit: r.exit || ""});
    // runs since 2026-12-05 store each jam's lon/lat; older ones only x, y in the twin's CRS: placed by the
    // transform their exits' vertices give (both CRSs from the layer routes), where the run has exits
    if (d.columns && d.columns.includes("lon") && d.columns.includes("lat")) {
      return d.rows.filter((r) => num(r.lon) !== null && num(r.lat) !== null).map((r) => jam(r, [Number(r.lon), Number(r.lat)]));
    }
    if (!ce) return [];
    const lay = "/api/layers/" + encodeURIComponent(ce.ref) + "/features?limit=10000";
    const [tw, ll] = await Promise.all([api(lay + "&crs=twin"), api(lay)]);
    const verts = (fc) => {
      const by = {};
      (fc.features || []).forEach((f, i) => {
        const g = f.geometry, id = (f.properties && f.properties.exit) || "#" + i;
        by[id] = !g ? [] : g.type === "LineString" ? g.coordinates : g.type === "Point" ? [g.coordinates] : [];
      });
      return by;
    };
    const a = verts(tw), b = verts(ll), src = [], dst = [];
    Object.keys(a).forEach((id) => (a[id] || []).forEach((c, i) => { if (b[id] && b[id][i]) { src.push(c); dst.push(b[id][i]); } }));
    if (src.length < 2) return [];
    const cos = Math.cos((dst.reduce((m, c) => m + c[1], 0) / dst.length) * Math.PI / 180);
    const w = dst.map((c) => [c[0] * cos, c[1]]), n = src.length;
    const zm = [0, 1].map((k) => src.reduce((m, c) => m + c[k], 0) / n), wm = [0, 1].map((k) => w.reduce((m, c) => m + c[k], 0) / n);
    let re = 0, im = 0, nn = 0;
    src.forEach((c, i) => {
      const p = c[0] - zm[0], q = c[1] - zm[1], u = w[i][0] - wm[0], v = w[i][1] - wm[1];
      re += u * p + v * q; im += v * p - u * q; nn += p * p + q * q;
    });
    if (!(nn > 0)) return [];
    re /= nn; im /= nn;
    const toLonLat = (x, y) => {
      const p = x - zm[0], q = y - zm[1];
      return [(wm[0] + re * p - im * q) / cos, wm[1] + re * q + im * p];
    };
    return d.rows.filter((r) => num(r.x) !== null && num(r.y) !== null).map((r) => jam(r, toLonLat(Number(r.x), Number(r.y))));
  }
  // fetch what a scenario's view draws: with no side named, for each view that shows the scenario
  async function prepareScenario(scenario, side) {
    if (side === undefined) {
      const sides = ["a", "b"].filter((sd) => (sd === "a" || S.compare) && sideScenario(sd) === scenario);
      for (const sd of (sides.length ? sides : ["a"])) await prepareScenario(scenario, sd);
      return;
    }
    const jobs = [];
    const fr = floodResult(scenario, side);
    if (fr && !S.floodMeta[key(fr)]) {
      jobs.push(api(resultUrl(fr, "meta?step=0")).then((m) => { S.floodMeta[key(fr)] = m; }));
    }
    if (!S.hillshade[scenario] && S.scene.rasters.includes("dem")) {
      jobs.push(api(`/api/rasters/dem/meta?style=hillshade&scenario=${encodeURIComponent(scenario)}`).then((m) => { S.hillshade[scenario] = m; }));
    }
    const tr = tripsResult(scenario, side);
    if (tr && !S.trips[key(tr)]) jobs.push(api(resultUrl(tr, "trajectories")).then((d) => { S.trips[key(tr)] = d; }));
    const cr = crowdResult(scenario, side);
    if (cr && !S.crowd[key(cr)]) jobs.push(api(resultUrl(cr, "trajectories")).then((d) => { S.crowd[key(cr)] = d; }));
    const ex = exposureResult(scenario, side), vk = viewKey(scenario, side);
    if (ex) {
      jobs.push(api(resultUrl(ex, "rows?limit=100000")).then((d) => {
        S.exposure = S.exposure || {};
        const m = {};
        const vcol = d.columns.find((c) => /depth|exposure/.test(c) && c !== "building_id");
        d.rows.forEach((r) => { m[r.building_id] = r[vcol]; });
        S.exposure[vk] = m;
        S.exposureKey[vk] = key(ex);
        // the run the depths come from, and the depth below which a building is not listed (flood engine: threshold_m)
        const thr = ex.meta && typeof ex.meta === "object" ? Number(ex.meta.threshold_m) : NaN;
        S.exposureOf[vk] = {run: ex.run, column: vcol, threshold: isFinite(thr) ? thr : null};
      }));
    }
    // a crowd run's exits (people out of each, closed ones) and jams, drawn while the crowd is the series
    const ce = cr && crowdExtra(cr, "exits", "layer"), cj = cr && crowdExtra(cr, "jams", "table");
    if (ce && S.crowdExits[key(ce)] === undefined) {
      S.crowdExits[key(ce)] = null;
      jobs.push(api(`/api/layers/${encodeURIComponent(ce.ref)}/features?limit=10000`).then((d) => { S.crowdExits[key(ce)] = d; }));
    }
    if (cj && S.crowdJams[key(cj)] === undefined) {
      S.crowdJams[key(cj)] = null;
      jobs.push(loadJams(cj, ce).then((d) => { S.crowdJams[key(cj)] = d; }));
    }
    const lr = linkResult(scenario, side);
    // for the legend: when did the flood close roads? Only a simulate run's link_loads carry closed_from_s (a static
    // assignment's link_flows has no such field: asking it got a 400 in the console on every page load)
    if (lr && lr.ref && lr.name === "link_loads" && S.timedClosures[lr.ref] === undefined) {
      S.timedClosures[lr.ref] = [];
      jobs.push(api(`/api/layers/${encodeURIComponent(lr.ref)}/features?filter=closed_from_s%3E%3D0` +
        `&columns=closed_from_s,closed_until_s&limit=${CLOSURES_PAGE}`)
        .then((d) => { S.timedClosures[lr.ref] = closureSpans(d); renderLegend(); })
        .catch(() => { /* a load layer without timed closures */ }));
    }
    // for the legend: any road drawn closed for good? The run's closed links, else the scenario's closed ones as
    // of its last edit (capacity 0; the base's tiles carry no capacity, so none is drawn closed there)
    const ck = closuresKey(scenario, side);
    const cols = (S.scene.layers.road_links && S.scene.layers.road_links.columns) || {};
    const closedQ = lr && lr.ref ? `/api/layers/${encodeURIComponent(lr.ref)}/features?filter=closed%3D1&columns=link_id&limit=1`
      : scenario !== "base" && "capacity_vph" in cols
        ? `/api/layers/road_links/features?scenario=${encodeURIComponent(scenario)}&filter=capacity_vph%3D0&columns=link_id&limit=1`
        : null;
    if (S.closedRoads[ck] === undefined) {
      S.closedRoads[ck] = false;
      if (closedQ) {
        jobs.push(api(closedQ, {cache: "no-store"})
          .then((d) => { S.closedRoads[ck] = !!(d.features && d.features.length); renderLegend(); })
          .catch(() => { /* a load layer without a "closed" field: nothing drawn closed */ }));
      }
    }
    const ac = accessResult(scenario);
    if (ac && !(S.access[scenario] && S.access[scenario].key === key(ac))) {
      jobs.push((async () => {  // every building, a page of 100,000 rows at a time
        const m = {};
        for (let off = 0, got = 100000; got === 100000 && off < 2000000; off += 100000) {
          const d = await api(resultUrl(ac, `rows?limit=100000&offset=${off}`));
          d.rows.forEach((r) => { m[r.building_id] = {t: r.time_s, within: !!r.within, lost: !!r.lost, dry: r.dry_time_s}; });
          got = d.rows.length;
        }
        const lim = ac.meta && typeof ac.meta === "object" ? Number(ac.meta.within_s) : NaN;
        S.access[scenario] = {key: key(ac), by: m, run: ac.run, within_s: isFinite(lim) ? lim : null};
      })());
    }
    await Promise.all(jobs.map((p) => p.catch(showError)));
  }

  function buildSeries() {
    const out = [];
    const views = S.compare ? [["a", S.scenarioA], ["b", S.scenarioB]] : [["a", S.scenarioA]];
    views.forEach(([side, sc]) => {
      const fr = floodResult(sc, side);
      if (fr) {
        const m = S.floodMeta[key(fr)];
        const n = (m && m.steps) || 1;
        const times = (m && m.times_s) || fr.steps;
        if (times && times.length === n) out.push({kind: "flood", side, scenario: sc, min: times[0], max: times[n - 1], steps: times, stale: !!fr.stale});
        else out.push({kind: "flood", side, scenario: sc, min: 0, max: n - 1, steps: null, stepIndex: true, stale: !!fr.stale});
      }
      const tr = tripsResult(sc, side);
      const td = tr && S.trips[key(tr)];
      if (td) out.push({kind: "trips", side, scenario: sc, min: td.t_min, max: td.t_max, steps: null, stale: !!tr.stale});
      const cr = crowdResult(sc, side);
      const cd = cr && S.crowd[key(cr)];
      if (cd) out.push({kind: "crowd", side, scenario: sc, min: cd.t_min, max: cd.t_max, steps: null, stale: !!cr.stale});
    });
    const before = currentSeries();
    const kinds = [];
    out.forEach((s) => { if (!kinds.includes(s.kind)) kinds.push(s.kind); });
    S.series = kinds.map((k) => spanSeries(out.filter((s) => s.kind === k)));
    // keep the kind being watched (flood, trips, crowd) when it is still there, else the first
    const same = before ? S.series.findIndex((s) => s.kind === before.kind) : -1;
    S.seriesIdx = same >= 0 ? same : 0;
    configureSlider();
    renderSeriesSelect();
  }
  // Compared, the time bar spans both views' runs of the kind watched, from the earlier start to the later end: a
  // longer run on either side plays to its end, and a view whose run is over keeps its last step (its map label
  // says "ended at ..."), as two screens of a command centre replaying two runs would. A flood series walks the
  // steps of both runs (the union of their times); floods without times walk step numbers, to the longer run's
  // last. A flood with times beside one without has no common clock: the left view's drives the bar, as before.
  // Each series keeps its views' own spans in `parts`.
  function spanSeries(parts) {
    const one = parts[0];
    const part = (p) => ({side: p.side, scenario: p.scenario, min: p.min, max: p.max, stepIndex: !!p.stepIndex});
    if (parts.length < 2 || (one.kind === "flood" && !!one.steps !== !!parts[1].steps)) return {...one, parts: [part(one)]};
    const both = {...one, parts: parts.map(part), stale: parts.some((p) => p.stale),
      scenarios: parts.map((p) => p.scenario).filter((sc, i, all) => all.indexOf(sc) === i)};
    if (one.steps) {
      both.steps = [...new Set(parts.flatMap((p) => p.steps))].sort((x, y) => x - y);
      both.min = both.steps[0]; both.max = both.steps[both.steps.length - 1];
    } else {
      both.min = Math.min(...parts.map((p) => p.min)); both.max = Math.max(...parts.map((p) => p.max));
    }
    return both;
  }
  // the end of a view's run of the series watched, when the clock has passed it (compared, the bar may run on
  // into the other view's longer run): {at: its last time (seconds) or step index, stepIndex}; else null
  function endedAt(side) {
    const sr = currentSeries();
    const p = sr && S.compare && (sr.parts || []).find((x) => x.side === side);
    if (!p || sr.parts.length < 2) return null;
    const over = p.stepIndex ? Math.round(S.time) > p.max : S.time > p.max + 1e-9;
    return over ? {at: p.max, stepIndex: p.stepIndex} : null;
  }
  // the time a view draws a trajectory series at: the clock, held at the end of its own run once that is over
  function sideTime(kind, end) {
    const sr = currentSeries();
    return sr && sr.kind === kind && S.compare ? Math.min(S.time, end) : S.time;
  }
  // a run made before the scenario's latest edit is not its answer any more: say so where it is picked
  function seriesLabel(s) {
    return t(s.kind) + " · " + (s.scenarios || [s.scenario]).map(scenarioName).join(" / ") + (s.stale ? " · " + t("stale") : "");
  }
  function scenarioName(n) { return n === "base" ? t("base") : n; }
  function configureSlider() {
    const sr = currentSeries();
    const sl = $("time-slider");
    setPlaying(false);  // a new run, scenario or series starts at its beginning, paused
    $("play").disabled = !sr; sl.disabled = !sr;
    if (!sr) { sl.min = 0; sl.max = 0; sl.value = 0; S.time = 0; renderTimeLabel(); render(); return; }
    if (sr.steps) { sl.min = 0; sl.max = sr.steps.length - 1; sl.step = 1; }
    else { sl.min = sr.min; sl.max = sr.max; sl.step = sr.kind === "flood" ? 1 : Math.max((sr.max - sr.min) / 500, 0.1); }
    sl.value = sl.min;
    onSlider();
  }
  function onSlider() {
    const sr = currentSeries();
    const v = Number($("time-slider").value);
    S.time = sr && sr.steps ? sr.steps[v] : v;
    renderTimeLabel();
    T.time = S.time;
    renderLabels();
    render();
  }
  function renderTimeLabel() {
    const sr = currentSeries();
    const el = $("time-label");
    if (!sr) { el.textContent = t("noSeries"); return; }
    // a flood without times: the slider walks steps, not seconds
    if (sr.stepIndex) { el.textContent = t("step") + " " + (Math.round(S.time) + 1) + " / " + (sr.max + 1); return; }
    el.textContent = fmtTime(S.time);
  }
  function fmtClock(s) {
    s = Math.round(s);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), x = s % 60;
    return (h ? h + ":" : "") + String(m).padStart(2, "0") + ":" + String(x).padStart(2, "0");
  }
  function fmtTime(s) { return t("time") + " " + fmtClock(s); }
  function renderSeriesSelect() {
    const sel = $("series-select");
    sel.innerHTML = "";
    S.series.forEach((s, i) => { const o = document.createElement("option"); o.value = i; o.textContent = seriesLabel(s); sel.appendChild(o); });
    sel.value = S.seriesIdx;
    sel.disabled = !S.series.length;
    renderRunSelect();
  }
  // beside the series: for each view its scenario's runs of that kind, newest first (a script's "storm50" stays
  // reachable after later floods); the one shown is selected, the newest unless the user chose another. Compared,
  // the right view has a select of its own: run ids belong to a scenario (a "storm50" in one need not be the same
  // storm in another, and two runs of one scenario may be compared), so each side is picked, and named, apart.
  // a run's line in the picker: its id, when, whether stale, and what it was (`about` of /api/results: storm,
  // area, agents ...), cut to RUN_ABOUT_MAX characters (the option's title holds it whole)
  const RUN_ABOUT_MAX = 60;
  function runLabel(r) {
    const about = r.about ? String(r.about) : "";
    const cut = about.length > RUN_ABOUT_MAX ? about.slice(0, RUN_ABOUT_MAX - 1).trimEnd() + "…" : about;
    return r.run + " · " + fmtWhen(r.created) + (r.stale ? " · " + t("stale") : "") + (cut ? " · " + cut : "");
  }
  const RUN_SELECTS = {a: "run-select", b: "run-select-b"};
  function renderRunSelect() {
    const sr = currentSeries();
    ["a", "b"].forEach((side) => {
      const sel = $(RUN_SELECTS[side]);
      if (!sel) return;
      const on = side === "a" || S.compare, sc = sideScenario(side);
      const list = sr && on ? seriesCandidates(sc, sr.kind) : [];
      const shown = sr && on ? seriesResult(sc, sr.kind, side) : null;
      sel.innerHTML = "";
      list.forEach((r) => {
        const o = document.createElement("option");
        o.value = r.run; o.textContent = runLabel(r); o.title = r.run + " · " + r.name + (r.about ? " · " + r.about : "");
        sel.appendChild(o);
      });
      if (shown) sel.value = shown.run;
      sel.hidden = !list.length;
      sel.disabled = list.length < 2;
      // compared, each select names its view and scenario (visibly and to a screen reader)
      const name = S.compare ? t(side === "b" ? "runOfRight" : "runOfLeft").replace("{scenario}", scenarioName(sc)) : t("runOfSeries");
      sel.setAttribute("aria-label", name);
      sel.title = name + (shown ? " · " + runLabel(shown) : "");  // whole where the select is cut (narrow screens)
      const tag = $("run-side-" + side);
      if (tag) { tag.textContent = t(side === "b" ? "rightView" : "leftView") + " · " + scenarioName(sc); tag.hidden = !S.compare || !list.length; }
      const out = sr && on ? {kind: sr.kind, scenario: sc, runs: list.map((r) => r.run), shown: shown ? shown.run : null} : null;
      if (side === "a") T.runs = out; else T.runsB = out;
    });
    renderRunNote();
    renderLabels();
  }
  // a view's picked run its scenario does not have (another scenario chosen, the run deleted): said beside the
  // selects, with what is shown instead; the pick holds, and comes back with a scenario that has the run
  function missingRuns() {
    const out = [];
    (S.compare ? ["a", "b"] : ["a"]).forEach((side) => {
      const sc = sideScenario(side);
      ["flood", "trips", "crowd"].forEach((kind) => {
        const run = S.runPick[pickKey(side, kind)];
        if (run === undefined || seriesCandidates(sc, kind).some((r) => r.run === run)) return;
        const now = newestResult(sc, kind);
        out.push({side, kind, run, scenario: sc, shown: now ? now.run : null});
      });
    });
    return out;
  }
  // compared, the views whose scenario has no run of the series watched (the other view's drives the time bar)
  function noRunSides() {
    const sr = S.scene && S.compare ? currentSeries() : null;
    if (!sr) return [];
    return ["a", "b"].filter((side) => !seriesCandidates(sideScenario(side), sr.kind).length && !missingRuns().some((m) => m.side === side && m.kind === sr.kind))
      .map((side) => ({side, kind: sr.kind, scenario: sideScenario(side)}));
  }
  function renderRunNote() {
    const box = $("run-note");
    if (!box) return;
    const miss = S.scene ? missingRuns() : [];
    const text = miss.map((m) => (S.compare ? t(m.side === "b" ? "rightView" : "leftView") + ": " : "") +
      t(m.shown ? "runMissing" : "runMissingNone").replace(/\{kind\}/g, t(m.kind).toLowerCase()).replace("{run}", m.run)
        .replace("{scenario}", scenarioName(m.scenario)).replace("{shown}", m.shown || ""))
      // compared, a view whose scenario has no run of the kind watched draws none: say so, not a blank map
      .concat(noRunSides().map((m) => t("noRunYet").replace("{side}", t(m.side === "b" ? "rightView" : "leftView"))
        .replace("{scenario}", scenarioName(m.scenario)).replace("{kind}", t("kindRun_" + m.kind)))).join("; ");
    box.textContent = text;
    box.title = text;
    box.hidden = !text;
    T.runNote = {text, missing: miss, none: noRunSides()};
  }
  async function pickRun(run, side) {
    const sr = currentSeries();
    side = side || "a";
    if (!sr) return;
    const sc = sideScenario(side);
    const k = pickKey(side, sr.kind), newest = newestResult(sc, sr.kind);
    if (newest && newest.run === run) delete S.runPick[k];  // the newest: follow the runs still to come
    else S.runPick[k] = run;
    await prepareScenario(sc, side);
    buildSeries(); render();
  }
  let playTimer = null;
  function setPlaying(on) {
    S.playing = on;
    T.playing = on;
    clearTimeout(playTimer); playTimer = null;
    const b = $("play");
    b.textContent = on ? "❚❚" : "▶";
    b.dataset.i18nAria = on ? "pause" : "play";
    b.setAttribute("aria-label", t(b.dataset.i18nAria));
    if (on) {
      const sl = $("time-slider");
      if (Number(sl.value) >= Number(sl.max)) { sl.value = sl.min; onSlider(); }  // at the end: play again from the start
      schedule();
    }
  }
  function schedule() {
    playTimer = setTimeout(() => requestAnimationFrame(tick), currentSeries() && currentSeries().kind === "flood" ? 400 : 50);
  }
  function tick() {
    if (!S.playing) return;
    const sl = $("time-slider");
    const max = Number(sl.max);
    const v = Math.min(max, Number(sl.value) + Number(sl.step || 1));
    sl.value = v;
    onSlider();
    if (Number(sl.value) >= max) setPlaying(false);  // stop at the end of the run
    else schedule();
  }

  // ---------------------------------------------------------------- layers
  let firstBuildingsDone;
  const firstBuildings = new Promise((r) => { firstBuildingsDone = r; });
  function layersFor(scenario, side) {
    if (S.buildingsOnly) return [buildingsLayer(scenario, side)];
    const L = [];
    const q = "?scenario=" + encodeURIComponent(scenario);
    const hs = S.hillshade[scenario];
    if (hs) {
      const img = hs.image + revQ(scenario, "dem");
      (T.hillshadeImage = T.hillshadeImage || {})[side] = img;
      L.push(new D.BitmapLayer({id: `hillshade-${side}`, image: withToken(img), bounds: hs.bounds,
        visible: S.visible.hillshade, loadOptions: loadOptions(), pickable: false}));
    }
    const fr = floodResult(scenario, side);
    const fm = fr && S.floodMeta[key(fr)];
    if (fr && fm) {
      const step = seriesStep(scenario, side);
      const url = resultUrl(fr, `image.png?step=${step}&style=depth`);
      T.floodImage[side] = url;
      L.push(new D.BitmapLayer({id: `flood-${side}`, image: withToken(url), bounds: fm.bounds, visible: S.visible.flood,
        loadOptions: loadOptions(), pickable: true, _imageCoordinateSystem: D.COORDINATE_SYSTEM.LNGLAT,
        updateTriggers: {image: step}}));
    }
    const lr = linkResult(scenario, side);
    const tr = tripsResult(scenario, side);
    const td = tr && S.trips[key(tr)];
    const tt = td ? sideTime("trips", td.t_max) : S.time;  // this view's trips clock (held at their end, compared)
    if (S.scene.layers.road_links || lr) {
      const src = lr ? `/tiles/${lr.ref}/{z}/{x}/{y}.pbf` : `/tiles/road_links/{z}/{x}/{y}.pbf${roadsQ(scenario)}`;
      L.push(new D.MVTLayer({id: `road_links-${side}`, data: src, minZoom: 12, maxZoom: 16, loadOptions: loadOptions(),
        visible: S.visible.road_links, pickable: true, autoHighlight: true, lineWidthUnits: "meters", getLineWidth: 4,
        lineWidthMinPixels: 1, getLineColor: (f) => lr ? linkColour(f.properties, tt) : (scenarioClosed(f.properties) ? CLOSED_COLOUR : [150, 160, 175, 200]),
        // timed closures change with the clock: recolour once a simulated minute, not every frame
        updateTriggers: {getLineColor: [lr && lr.run, currentSeries() && currentSeries().kind === "trips" ? Math.floor(tt / 60) : -1,
          revOf(scenario, "road_links")]}}));
    }
    if (S.scene.layers.water) {
      L.push(new D.MVTLayer({id: `water-${side}`, data: `/tiles/water/{z}/{x}/{y}.pbf${q}`, minZoom: 12, maxZoom: 16,
        loadOptions: loadOptions(), visible: S.visible.buildings, pickable: true, getFillColor: [60, 120, 200, 150],
        getLineColor: [60, 120, 200, 255], lineWidthMinPixels: 1}));
    }
    if (S.scene.layers.buildings) L.push(buildingsLayer(scenario, side));
    if (td) {
      L.push(new D.TripsLayer({id: `trips-${side}`, data: td.trips, getPath: (d) => d.path, getTimestamps: (d) => d.timestamps,
        getColor: [255, 190, 60], widthMinPixels: 3, trailLength: Math.max(60, (td.t_max - td.t_min) / 20),
        currentTime: tt,
        fadeTrail: true, visible: S.visible.trips, pickable: true}));
    }
    const cr = crowdResult(scenario, side);
    const cd = cr && S.crowd[key(cr)];
    if (cd) {
      const ct = sideTime("crowd", cd.t_max);
      const pts = cd.trips.map((a) => ({id: a.id, position: interp(a, ct)})).filter((a) => a.position);
      L.push(new D.ScatterplotLayer({id: `crowd-${side}`, data: pts, getPosition: (d) => d.position, getRadius: 0.6,
        radiusUnits: "meters", radiusMinPixels: 2, getFillColor: [255, 120, 220, 230], visible: S.visible.crowd,
        pickable: true, updateTriggers: {getPosition: ct}}));
      crowdExtraLayers(cr, ct, side).forEach((l) => L.push(l));
    }
    if (S.sensors) {
      L.push(new D.GeoJsonLayer({id: `sensors-${side}`, data: S.sensors, pointType: "circle", getPointRadius: 12,
        pointRadiusMinPixels: 5, getFillColor: (f) => sensorColour(f.properties),
        getLineColor: [20, 20, 20, 255], lineWidthMinPixels: 1, stroked: true, visible: S.visible.sensors, pickable: true,
        updateTriggers: {getFillColor: S.sensorsAt}}));
    }
    const meshes = (S.scene.meshes || []).filter((m) => !m.storey && m.origin);
    meshes.forEach((m, i) => {
      L.push(new D.ScenegraphLayer({id: `mesh-${i}-${side}`, data: [m], scenegraph: withToken(m.url),
        getPosition: (d) => [d.origin[0], d.origin[1], -(d.ground_elev_m || 0)], getOrientation: [0, 0, 0], sizeScale: 1,
        _lighting: "pbr", visible: S.visible.bim, pickable: true, loadOptions: loadOptions()}));
    });
    if (S.bimSite) {
      L.push(new D.ScatterplotLayer({id: `bim-site-${side}`, data: [S.bimSite], getPosition: (d) => d, radiusUnits: "meters",
        getRadius: 4, radiusMinPixels: 5, stroked: true, filled: true, getFillColor: [255, 255, 255, 200],
        getLineColor: [230, 60, 200, 255], lineWidthMinPixels: 2, pickable: false, visible: S.visible.bim}));
    }
    if (S.bim) {
      const b = S.bim.building;
      L.push(new D.GeoJsonLayer({id: `bim-footprint-${side}`, data: b.footprint, extruded: true, wireframe: true,
        getElevation: b.height_m, getFillColor: S.bim.passed ? [80, 220, 120, 120] : [255, 60, 60, 140],
        getLineColor: S.bim.passed ? [80, 220, 120, 255] : [255, 60, 60, 255], lineWidthMinPixels: 2, visible: S.visible.bim,
        pickable: true}));
      if (S.bim.glb_url) {
        L.push(new D.ScenegraphLayer({id: `bim-mesh-${side}`, data: [b], scenegraph: withToken(S.bim.glb_url),
          getPosition: (d) => [d.origin[0], d.origin[1], -(d.ground_elev_m || 0)], getOrientation: [0, 0, 0],
          _lighting: "pbr", visible: S.visible.bim, pickable: true, loadOptions: loadOptions()}));
      }
    }
    whatifLayers(scenario, side).forEach((l) => L.push(l));
    T.layerIds[side] = L.map((l) => l.id + (l.props.visible ? "" : ":hidden"));
    return L;
  }
  // a crowd run's exits (width and colour by the people out of each; a closed one grey and dashed) and its jams
  // (a circle sized by the people in it, while the clock is within its start..end), while the crowd is watched
  const EXIT_CLOSED_COLOUR = [150, 150, 150, 230], JAM_COLOUR = [255, 80, 40, 170];
  function exitColour(share) {
    const x = Math.max(0, Math.min(1, share));
    return [Math.round(80 + 175 * x), Math.round(220 - 120 * x), Math.round(255 - 215 * x), 255];
  }
  function exitClosed(p) { return p.closed === true || p.closed === 1 || p.closed === "true"; }
  function crowdExtraLayers(cr, ct, side) {
    const sr = currentSeries(), out = [];
    const shown = {exits: 0, closed: [], jams: 0};
    if (!sr || sr.kind !== "crowd") { T.crowdExtra = Object.assign({}, T.crowdExtra, {[side]: null}); return out; }
    const ce = crowdExtra(cr, "exits", "layer"), cj = crowdExtra(cr, "jams", "table");
    const ex = ce && S.crowdExits[key(ce)];
    if (ex && ex.features && ex.features.length) {
      const most = Math.max(1, ...ex.features.map((f) => Number(f.properties.agents) || 0));
      const share = (p) => (Number(p.agents) || 0) / most;
      const open = ex.features.filter((f) => !exitClosed(f.properties)), shut = ex.features.filter((f) => exitClosed(f.properties));
      const ext = D.PathStyleExtension ? [new D.PathStyleExtension({dash: true})] : [];
      out.push(new D.GeoJsonLayer({id: `crowd-exits-${side}`, data: {type: "FeatureCollection", features: open},
        lineWidthUnits: "pixels", getLineWidth: (f) => 3 + 9 * Math.sqrt(share(f.properties)), lineCapRounded: true,
        getLineColor: (f) => exitColour(share(f.properties)), visible: S.visible.crowd, pickable: true}));
      if (shut.length) {
        out.push(new D.GeoJsonLayer({id: `crowd-exits-closed-${side}`, data: {type: "FeatureCollection", features: shut},
          lineWidthUnits: "pixels", getLineWidth: 4, getLineColor: EXIT_CLOSED_COLOUR, getDashArray: [3, 2],
          dashJustified: true, extensions: ext, visible: S.visible.crowd, pickable: true}));
      }
      shown.exits = ex.features.length;
      shown.closed = shut.map((f) => String(f.properties.exit));
    }
    const jams = cj && S.crowdJams[key(cj)];
    if (jams && jams.length) {
      const now = jams.filter((j) => ct >= j.start && ct <= j.end);
      out.push(new D.ScatterplotLayer({id: `crowd-jams-${side}`, data: now, getPosition: (d) => d.position,
        radiusUnits: "meters", getRadius: (d) => 2 + 1.5 * Math.sqrt(d.n), radiusMinPixels: 4, stroked: true,
        getFillColor: JAM_COLOUR, getLineColor: [255, 220, 200, 255], lineWidthMinPixels: 1,
        visible: S.visible.crowd, pickable: true}));
      shown.jams = now.length;
      shown.positions = now.map((j) => j.position);
    }
    T.crowdExtra = Object.assign({}, T.crowdExtra, {[side]: shown});
    return out;
  }
  function buildingsLayer(scenario, side) {
    const q = "?scenario=" + encodeURIComponent(scenario) + revQ(scenario, "buildings");
    const hl = S.highlight && S.highlight.layer === "buildings" ? S.highlight.id : null;
    return new D.MVTLayer({
      id: `buildings-${side}`, data: `/tiles/buildings/{z}/{x}/{y}.pbf${q}`, minZoom: 12, maxZoom: 16,
      loadOptions: loadOptions(), visible: S.visible.buildings, pickable: true, autoHighlight: true,
      uniqueIdProperty: "building_id", highlightedFeatureId: hl, highlightColor: [255, 60, 60, 255],
      extruded: true, wireframe: false, getElevation: (f) => f.properties.height_m || 3,
      getFillColor: (f) => buildingColour(f.properties, scenario, side), getLineColor: [40, 40, 40, 255],
      material: {ambient: 0.35, diffuse: 0.6, shininess: 32},
      updateTriggers: {getFillColor: [S.colourBy, S.exposure ? Object.keys(S.exposure).length : 0, S.exposureKey[viewKey(scenario, side)] || null,
        S.access[scenario] ? S.access[scenario].key : null,
        S.bimShaded ? S.bim.id : null]},
      onTileLoad: (tile) => {
        if (T.firstBuildingsMs === null && tile.content && (tile.content.length || (tile.content.polygons && tile.content.polygons.positions.value.length))) {
          T.firstBuildingsMs = performance.now();
        }
      },
      onViewportLoad: (tiles) => {
        const n = tiles.reduce((a, tl) => a + (tl.content ? (tl.content.length || (tl.content.polygons ? tl.content.polygons.featureIds.value.length : 0)) : 0), 0);
        T.buildingsLoaded[side] = n;
        if (n > 0) firstBuildingsDone();
      },
    });
  }
  function interp(a, time) {
    const ts = a.timestamps, p = a.path;
    if (!ts.length || time < ts[0] || time > ts[ts.length - 1]) return null;
    let i = 0;
    while (i < ts.length - 2 && ts[i + 1] < time) i++;
    const span = ts[i + 1] - ts[i] || 1, f = Math.max(0, Math.min(1, (time - ts[i]) / span));
    const b = p[Math.min(i + 1, p.length - 1)];
    return [p[i][0] + (b[0] - p[i][0]) * f, p[i][1] + (b[1] - p[i][1]) * f];
  }

  // ---------------------------------------------------------------- decks
  function makeDeck(side) {
    const parent = $("map-" + side);
    const d = new D.Deck({
      parent, viewState: S.viewState, controller: {doubleClickZoom: false}, useDevicePixels: 1,
      // a click stays a click even when picking on pointer-down is slow (software GL, busy machines)
      eventRecognizerOptions: {click: {time: 1500}},
      parameters: {clearColor: [0.043, 0.055, 0.07, 1]},
      onViewStateChange: ({viewState}) => { S.viewState = viewState; syncViews(); T.viewState = viewState; },
      onClick: (info) => {
        T.lastClick = {x: info.x, y: info.y, layer: info.layer ? info.layer.id : null};
        if (S.draw) { if (info.coordinate) addVertex(info); return; }  // a what-if's shape: a vertex, not an inspection
        if (performance.now() - (S.drawEnded || 0) < 700) return;  // a double-click's late click, after it finished
        if (S.bimPicking && info.coordinate) { setBimSite(info.coordinate); return; }  // the site of a BIM check
        inspect(info, side);
      },
      onHover: (info) => { if (S.draw) { S.draw.hover = info.coordinate || null; renderSoon(); } },
      getTooltip: ({object, layer}) => tooltip(object, layer),
      layers: [],
      onError: (e) => { T.errors.push(String(e && e.message ? e.message : e)); },
    });
    T.decks[side] = d;
    return d;
  }
  function syncViews() {
    Object.values(T.decks).forEach((d) => d.setProps({viewState: S.viewState}));
  }
  function render() {
    if (!S.scene) return;
    renderLegend();
    if (!T.decks.a) makeDeck("a");
    T.decks.a.setProps({layers: layersFor(S.scenarioA, "a")});
    if (S.compare) {
      if (!T.decks.b) makeDeck("b");
      T.decks.b.setProps({layers: layersFor(S.scenarioB, "b"), viewState: S.viewState});
    }
  }
  function renderLabels() {
    // compared, each map names the run of the series watched that it draws (the two may differ)
    const sr = S.scene && S.compare ? currentSeries() : null;
    const runOf = (side) => { const r = sr && seriesResult(sideScenario(side), sr.kind, side); return r ? " · " + t(sr.kind) + " " + r.run : ""; };
    // ... and, once the clock has passed the end of its run, where it stopped (it keeps drawing its last step)
    const ended = {a: sr && endedAt("a"), b: sr && endedAt("b")};
    const endOf = (side) => {
      const e = ended[side];
      return e ? " · " + t("endedAt").replace("{time}", e.stepIndex ? t("step") + " " + (e.at + 1) : fmtClock(e.at)) : "";
    };
    $("label-a").textContent = t("scenario") + ": " + scenarioName(S.scenarioA) + runOf("a") + endOf("a");
    $("label-b").textContent = S.scenarioB ? t("scenario") + ": " + scenarioName(S.scenarioB) + runOf("b") + endOf("b") : "";
    $("label-a").title = S.scenarioA; $("label-b").title = S.scenarioB || "";
    T.ended = ended;
  }
  function tooltip(object, layer) {
    if (!object || !layer) return null;
    const p = object.properties || object;
    if (layer.id.startsWith("sensors")) {
      const v = p.value === null || p.value === undefined ? t("noReading") : `${p.value} ${p.unit || ""}`.trim();
      const stale = p.stale ? `, ${t("staleSince")} ${fmtHM(staleSinceOf(p))}` : "";
      return `${p.name || p.sensor_id}: ${v} (${t(p.status || "unknown")}${stale})`;
    }
    if (layer.id.startsWith("buildings")) {
      const side = /-b$/.test(layer.id) ? "b" : "a";
      const br = buildingResults(p.building_id, sideScenario(side), side);
      return [`${p.building_id} · ${p.height_m} m · ${p.use || ""}`].concat(Object.entries(br).map(([k, v]) => k + ": " + v)).join("\n");
    }
    if (layer.id.startsWith("crowd-exits")) {
      const w = Number(p.width_m), last = Number(p.last_s);
      return `${p.exit}` + (isFinite(w) ? ` · ${w.toFixed(1)} m` : "") + ` · ${Number(p.agents) || 0} ${t("persons")}` +
        (p.last_s !== null && p.last_s !== undefined && isFinite(last) ? ` · ${t("lastOut")} ${fmtClock(last)}` : "") +
        (exitClosed(p) ? ` · ${t("exitClosed")}` : "");
    }
    if (layer.id.startsWith("crowd-jams")) {
      return `${t("jam")} · ${object.n} ${t("persons")}` + (object.kind ? ` · ${object.kind}` : "") + (object.exit ? ` · ${object.exit}` : "") +
        ` · ${fmtClock(object.start)} – ${isFinite(object.end) ? fmtClock(object.end) : t("toTheEnd")}` +
        (object.peak !== null && object.peak !== undefined ? ` · ${object.peak.toFixed(1)} /m²` : "");
    }
    if (layer.id.startsWith("road_links") && (p.closed === true || p.closed === 1 || scenarioClosed(p))) return `${p.link_id} · ${t("roadClosed")}`;
    if (layer.id.startsWith("road_links") && p.closed_from_s !== undefined && p.closed_from_s !== null) {
      const until = p.closed_until_s === undefined || p.closed_until_s === null || !isFinite(p.closed_until_s)
        ? t("toTheEnd") : fmtClock(p.closed_until_s);
      return `${p.link_id} · ${t("floodClosed")} ${fmtClock(p.closed_from_s)} – ${until}`;
    }
    return null;
  }

  // ---------------------------------------------------------------- inspect
  // what the runs loaded for the view say of a building: its flood depth (and the run it comes from) and its
  // emergency access (within or beyond the limit, minutes, lost to the flood, no road); {} when neither ran
  function buildingResults(id, scenario, side) {
    const out = {};
    if (id === undefined || id === null) return out;
    const vk = viewKey(scenario, side), ex = S.exposure && S.exposure[vk], of = S.exposureOf[vk];
    if (ex && of) {
      const v = ex[id], run = " · " + t("bFloodRun").replace("{run}", of.run);
      out[t("bFlood")] = (v !== undefined && v !== null && isFinite(Number(v)) ? Number(v).toFixed(2) + " m"
        : of.threshold !== null ? t("bDry").replace("{m}", String(of.threshold)) : t("bDryNoLimit")) + run;
    }
    const ac = S.access[scenario];
    if (ac) {
      const a = ac.by[id], mins = (sec) => (Number(sec) / 60).toFixed(1);
      const limit = ac.within_s !== null ? mins(ac.within_s) : "?";
      let text;
      if (!a) text = t("bNotListed");
      else if (a.lost) text = t("bLost").replace("{min}", a.dry === null || a.dry === undefined ? "?" : mins(a.dry));
      else if (a.t === null || a.t === undefined) text = t("bNoRoad");
      else text = t(a.within ? "bWithin" : "bBeyond").replace("{min}", mins(a.t)).replace("{limit}", limit);
      out[t("bAccess")] = text + " · " + t("bFloodRun").replace("{run}", ac.run);
    }
    return out;
  }
  T.inspect = (layerId, object, side) => inspect({layer: {id: layerId}, object}, side || "a");
  T.tooltip = (layerId, object) => tooltip(object, {id: layerId});
  // a scenario switch: what the inspector showed belongs to the scenario before (its attributes, its runs)
  function clearInspect() {
    inspect.seq = (inspect.seq || 0) + 1;  // an inspection still in flight is dropped
    T.lastPick = null;
    if (S.highlight) { S.highlight = null; }
    $("inspect-body").innerHTML = "";
    renderInspectHint();
  }
  async function inspect(info, side) {
    const body = $("inspect-body");
    const scenario = side === "b" ? S.scenarioB : S.scenarioA;
    if (!info || !info.layer) { T.lastPick = null; body.innerHTML = ""; renderInspectHint(); return; }
    const lid = info.layer.id.replace(/-(a|b)$/, "");
    const seq = inspect.seq = (inspect.seq || 0) + 1;  // the latest inspection wins (a scenario switch clears it)
    try {
      let rows = null;
      if (lid === "flood" && info.coordinate) {
        const fr = floodResult(scenario, side);
        const v = await api(resultUrl(fr, `value?lon=${info.coordinate[0]}&lat=${info.coordinate[1]}&step=${seriesStep(scenario, side)}`));
        rows = {layer: t("flood"), [t("value")]: v.value === null ? "-" : v.value.toFixed(3) + " m", lon: v.lon.toFixed(6), lat: v.lat.toFixed(6)};
      } else if (info.object) {
        const p = info.object.properties || info.object;
        const idField = {buildings: "building_id", road_links: "link_id", water: "water_id", sensors: "sensor_id"}[lid];
        if (idField && p[idField] !== undefined && lid !== "sensors") {
          const f = await api(`/api/layers/${lid}/features/${encodeURIComponent(p[idField])}?scenario=${encodeURIComponent(scenario)}`);
          if (seq !== inspect.seq) return;
          rows = Object.assign({layer: lid}, f.properties);
          if (lid === "buildings") Object.assign(rows, buildingResults(p[idField], scenario, side));
          S.highlight = {layer: lid, id: p[idField]};
          render();
        } else {
          rows = Object.assign({layer: lid}, p);
          delete rows.path; delete rows.timestamps; delete rows.footprint;
          if (lid === "crowd-jams") { delete rows.position; if (!isFinite(rows.end)) rows.end = t("toTheEnd"); }
        }
      }
      if (seq !== inspect.seq) return;
      T.lastPick = rows;
      if (!rows) { body.innerHTML = ""; renderInspectHint(); return; }
      body.innerHTML = "";
      const tbl = document.createElement("table");
      tbl.id = "inspect-table";
      Object.entries(rows).forEach(([k, v]) => {
        const tr = document.createElement("tr");
        const a = document.createElement("td"); a.textContent = k;
        const b = document.createElement("td"); b.textContent = cellText(v);
        tr.appendChild(a); tr.appendChild(b); tbl.appendChild(tr);
      });
      body.appendChild(tbl);
    } catch (e) { showError(e); }
  }

  // an attribute as the inspector shows it: a float without its binary noise (speed_limit_kmh 50.004000000000005)
  function cellText(v) {
    if (v === null || v === undefined) return "-";
    if (typeof v === "number") return Number.isInteger(v) || !isFinite(v) ? String(v) : String(parseFloat(v.toPrecision(12)));
    return typeof v === "object" ? JSON.stringify(v) : String(v);
  }
  T.cellText = cellText;

  function renderInspectHint() {
    const body = $("inspect-body");
    if (!body.querySelector("#inspect-table")) { body.textContent = t("clickHint"); body.classList.add("muted"); }
  }

  // ---------------------------------------------------------------- token
  // the token box: open while the server asks for a token (with the reason a token was refused) or while the
  // user changes it; signed in, one small line that names the role and opens the box again
  function renderToken() {
    const box = $("token-box");
    if (!box) return;
    const signedIn = !!(S.token && S.role && !S.needToken);
    const open = !signedIn || !!S.tokenOpen;
    box.hidden = !signedIn && !S.needToken;  // (no token, or its role not known yet: nothing to say)
    $("token-form").hidden = !open;
    const ch = $("token-change");
    ch.hidden = open;
    ch.textContent = signedIn ? t("signedInAs").replace("{role}", roleName(S.role)) + " · " + t("changeToken") : "";
    const err = $("token-error");
    err.textContent = S.tokenError || "";
    err.hidden = !S.tokenError;
    T.token = {shown: !box.hidden, open, signedIn, error: S.tokenError || null};
  }

  // ---------------------------------------------------------------- panel
  const TOGGLES = ["hillshade", "flood", "buildings", "road_links", "trips", "crowd", "sensors", "bim"];
  function renderToggles() {
    const box = $("layer-toggles");
    box.innerHTML = "";
    TOGGLES.forEach((k) => {
      const lab = document.createElement("label");
      const cb = document.createElement("input");
      cb.type = "checkbox"; cb.id = "toggle-" + k; cb.checked = S.visible[k];
      cb.addEventListener("change", () => { S.visible[k] = cb.checked; render(); });
      lab.appendChild(cb);
      lab.appendChild(document.createTextNode(" " + t(k)));
      box.appendChild(lab);
    });
  }
  // bookmarks: the two built in, the twin's shared ones (GET /api/bookmarks: every screen of the command
  // centre sees them; planners and admins save and remove them) and this browser's own
  function localBookmarks() { return JSON.parse(localStorage.getItem("twin.bookmarks") || "[]"); }
  function canShare() { return (S.can || []).includes("scenarios"); }
  function bookmarks() {
    const cam = S.scene ? fitCamera() : null;
    const builtin = cam ? [{name: t("overview"), view: cam}, {name: t("topDown"), view: Object.assign({}, cam, {pitch: 0, bearing: 0})}] : [];
    const shared = (S.sharedBookmarks || []).map((b) => Object.assign({}, b, {shared: true}));
    const local = localBookmarks().map((b, i) => Object.assign({}, b, {local: i}));
    return builtin.concat(shared, local);
  }
  function renderBookmarks() {
    const box = $("bookmarks");
    box.innerHTML = "";
    T.bookmarks = [];
    bookmarks().forEach((b, i) => {
      const btn = document.createElement("button");
      btn.type = "button"; btn.textContent = b.name; btn.className = "bookmark" + (b.shared ? " shared" : "");
      btn.id = "bookmark-" + i;
      btn.title = b.shared ? `${t("sharedBookmark")}${b.created_by ? " · " + b.created_by : ""}` : (b.local !== undefined ? t("localBookmark") : "");
      btn.addEventListener("click", () => {
        S.viewState = Object.assign({}, S.viewState, b.view, {transitionDuration: 800, transitionInterpolator: new D.FlyToInterpolator()});
        syncViews();
      });
      box.appendChild(btn);
      T.bookmarks.push({name: b.name, shared: !!b.shared, id: b.id || null});
      if ((b.shared && canShare()) || b.local !== undefined) {
        const x = document.createElement("button");
        x.type = "button"; x.className = "bookmark-remove"; x.textContent = "✕"; x.title = t("remove") + " " + b.name;
        x.setAttribute("aria-label", t("remove") + " " + b.name);
        x.addEventListener("click", () => removeBookmark(b).catch(showError));
        box.appendChild(x);
      }
    });
  }
  async function loadBookmarks() {
    try { S.sharedBookmarks = await api("/api/bookmarks"); } catch (e) { S.sharedBookmarks = []; }
    renderBookmarks();
  }
  async function saveBookmark() {
    const v = S.viewState;
    const view = {longitude: v.longitude, latitude: v.latitude, zoom: v.zoom, pitch: v.pitch || 0, bearing: v.bearing || 0};
    const typed = $("bookmark-name").value.trim();
    if (canShare()) {  // for everyone who opens this twin's map
      const name = typed || "#" + ((S.sharedBookmarks || []).length + 1);
      try {
        await api("/api/bookmarks", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({name, view})});
      } catch (e) { showError(e); return; }
      $("bookmark-name").value = "";
      await loadBookmarks();
      return;
    }
    const saved = localBookmarks();
    saved.push({name: typed || "#" + (saved.length + 1), view});
    localStorage.setItem("twin.bookmarks", JSON.stringify(saved));
    $("bookmark-name").value = "";
    renderBookmarks();
  }
  async function removeBookmark(b) {
    if (b.shared) {
      await api("/api/bookmarks/" + encodeURIComponent(b.id), {method: "DELETE"});
      await loadBookmarks();
      return;
    }
    const saved = localBookmarks();
    saved.splice(b.local, 1);
    localStorage.setItem("twin.bookmarks", JSON.stringify(saved));
    renderBookmarks();
  }
  function fitCamera() {
    const c = Object.assign({}, S.scene.camera);
    const w = $("maps").clientWidth / (S.compare ? 2 : 1) || 800;
    c.zoom = Math.max(3, c.zoom + Math.log2(w / 1280));
    return c;
  }
  function fillScenarioSelects() {
    ["scenario-a", "scenario-b"].forEach((id) => {
      const sel = $(id);
      const cur = id === "scenario-a" ? S.scenarioA : S.scenarioB;
      sel.innerHTML = "";
      S.scene.scenarios.forEach((n) => { const o = document.createElement("option"); o.value = n; o.textContent = scenarioName(n); o.title = n; sel.appendChild(o); });
      if (cur) sel.value = cur;
    });
  }
  async function setCompare(on) {
    S.compare = on;
    $("scenario-b").hidden = !on;
    $("map-b").hidden = !on;
    if (on) {
      if (!S.scenarioB) S.scenarioB = S.scene.scenarios.find((n) => n !== S.scenarioA) || S.scenarioA;
      $("scenario-b").value = S.scenarioB;
      await prepareScenario(S.scenarioB, "b");
    } else if (T.decks.b) {
      T.decks.b.finalize(); delete T.decks.b; T.buildingsLoaded.b = undefined;
      // re-create the canvas holder for a later compare
      const lbl = $("label-b"); $("map-b").innerHTML = ""; $("map-b").appendChild(lbl);
    }
    T.compare = on;
    buildSeries(); renderSeriesSelect(); renderLabels();
    setTimeout(() => { Object.values(T.decks).forEach((d) => d.redraw && d.redraw(true)); render(); }, 0);
  }

  // ---------------------------------------------------------------- simulations
  let engines = null;  // the server's engines; null while not known
  let enginesRefused = null;  // why they are not known: {status, message} of the refused request
  // what the page says in place of a list it could not load: a 401 asks for a token, a 403 names the role, any
  // other failure says what it was; "none installed" only when the server said so
  function refusedText(status, what, message) {
    if (status === 401) return t("signInTo").replace("{what}", t(what));
    if (status === 403) return t("notAllowedTo").replace("{what}", t(what));
    return message || "-";
  }
  function renderEngines() {
    const box = $("engines");
    if (!box) return;
    box.innerHTML = "";
    const note = (text, id) => { const sp = document.createElement("span"); sp.className = "muted"; sp.id = id; sp.textContent = text; box.appendChild(sp); };
    const why = enginesRefused || S.startFailed;
    if (!engines && why) { note(refusedText(why.status, "toRunSimulations", why.message), "engines-refused"); return; }
    if (!engines) { note(t("loading"), "engines-loading"); return; }
    if (!engines.length) { note(t("noEngines"), "engines-none"); return; }
    engines.forEach((e) => {
      const b = document.createElement("button");
      b.type = "button"; b.id = "run-" + e; b.textContent = t("run") + " " + t(e + "_engine");
      b.addEventListener("click", () => startJob(e));
      box.appendChild(b);
    });
    if (engines.includes("flood")) {  // the rain the gauges measured, not a design storm: "what does it do?"
      const b = document.createElement("button");
      b.type = "button"; b.id = "run-flood-measured"; b.textContent = t("runFloodMeasured");
      b.addEventListener("click", () => startJob("flood", MEASURED_RAIN));
      box.appendChild(b);
      renderMeasuredButton();
    }
  }
  // the last 2 h of measured rain, followed for an hour more as it drains. A stretch no gauge reported is taken as
  // dry (rain_gaps): a feed that reports only while it rains, or began an hour ago, still gives a run (the strict
  // default refuses it); the finished job says how many stretches that was (measuredRainText)
  const MEASURED_RAIN = {rain_from_sensors: "2h", rain_gaps: "dry", until: "3h", snapshot_interval: "5min"};
  // on only while a rain gauge has a stored (not simulated) reading
  function renderMeasuredButton() {
    const b = $("run-flood-measured");
    if (!b) return;
    const fs = (S.sensors && S.sensors.features) || [];
    const ok = fs.some((f) => f.properties.kind === "rain_gauge" && !f.properties.simulated &&
      f.properties.value !== null && f.properties.value !== undefined);
    b.disabled = !ok;
    b.title = ok ? t("floodMeasuredHint") : t("noMeasuredRain");
    // a rain gauge in warning or alarm (a stored reading): the button asks to be pressed
    const raining = ok && (S.alerts || []).some((a) => a.kind === "rain_gauge" && !a.simulated && !a.stale);
    b.classList.toggle("suggest", raining);
    T.measuredRain = {enabled: ok, suggested: raining};
  }
  function defaultParams(engine) {
    // short demo runs from the map; scripts and the CLI choose their own
    if (engine === "flood") return {storm: "50y", duration: "30min", snapshot_interval: "5min"};
    if (engine === "crowd") {
      const a = (S.scene.areas || []).find((x) => /plaza|station/.test(x.kind || "")) || (S.scene.areas || [])[0];
      if (!a) return {};
      const p = {area: a.area_id, agents: 300, until: 600};
      const fr = floodRunForCrowd(S.scenarioA);
      if (fr) p.flooded_by = fr;  // evacuating in the storm: deep water is no floor, exits under it close
      return p;
    }
    if (engine === "access") {  // fire stations by their standard; else ambulances from the hospitals, 10 min
      const p = S.poiKinds.includes("fire_station") ? {from_kind: "fire_station"}
        : {from_kind: S.poiKinds.includes("hospital") ? "hospital" : (S.poiKinds[0] || "fire_station"), within: "10min"};
      const fr = floodRunForTraffic(S.scenarioA);
      if (fr) p.flooded_by = fr;  // which buildings the storm puts out of reach
      return p;
    }
    if (engine === "traffic") {
      const p = {mode: "simulate", until: 1800};
      const fr = floodRunForTraffic(S.scenarioA);
      if (fr) p.flooded_by = fr;  // the storm at rush hour: roads closed while the scenario's flood has them under water
      return p;
    }
    return {};
  }
  // the flood-engine run a traffic run from the map is flooded by (the one with a road exposure table): the one
  // picked in the time bar when it has the table, else the scenario's newest
  function floodRunWith(scenario, name) {
    const have = resultsOf(scenario).filter((r) => r.name === name);
    const fr = isPicked(sideOf(scenario), "flood") && floodResult(scenario);
    const run = (fr && have.find((r) => r.run === fr.run)) || latest(have);
    return run ? run.run : null;
  }
  function floodRunForTraffic(scenario) { return floodRunWith(scenario, "exposure_road_links"); }
  // ... and the one with a peak depth grid, for a crowd run
  function floodRunForCrowd(scenario) { return floodRunWith(scenario, "max_depth"); }
  // what the flood did to a finished crowd run: people cut off by water, exits under it
  function accessText(j) {
    const s = j.summary || {};
    if (j.engine !== "access" || j.status !== "done" || s.within === undefined) return "";
    return " · " + t("accessWithin").replace("{n}", s.within).replace("{of}", s.buildings).replace("{min}", Number(s.within_s) / 60) +
      (s.flooded_by ? " · " + t("accessLost").replace("{n}", s.lost) : "");
  }
  // what a finished flood on the measured rain was run on: the rain measured, and the stretches taken as dry
  function measuredRainText(j, params) {
    const st = j.summary && j.summary.storm;
    if (j.engine !== "flood" || j.status !== "done" || !params || !params.rain_from_sensors || !st || typeof st !== "object") return "";
    const gauges = Array.isArray(st.gauges) ? st.gauges : [];
    let out = "";
    if (isFinite(Number(st.total_mm))) {
      out += " · " + t("measuredTotal").replace("{mm}", Number(st.total_mm).toFixed(1))
        .replace("{gauges}", gauges.slice(0, 3).join(", ") + (gauges.length > 3 ? " …" : ""));
    }
    if (st.start && st.end) out += " · " + t("measuredWindow").replace("{from}", fmtHM(st.start)).replace("{to}", fmtHM(st.end));
    const n = Number(st.unknown_blocks), stepS = Number(st.step_s), dur = Number(st.duration_s);
    if (n > 0 && stepS > 0 && dur > 0) {
      out += " · " + t("measuredGaps").replace("{n}", n).replace("{of}", Math.ceil(dur / stepS - 1e-9))
        .replace("{step}", String(Math.round(stepS / 60)));
    }
    return out;
  }
  function crowdFloodText(j) {
    const s = j.summary || {};
    if (j.engine !== "crowd" || j.status !== "done" || !s.flooded_by) return "";
    const under = (s.exits_under_water || []).length;
    return " · " + t("cutOffN").replace("{n}", Number(s.cut_off_persons || 0)) +
      (under ? " · " + t("exitsUnderWaterN").replace("{n}", under) : "");
  }
  const jobRows = [];  // {row, engine, scenario, job}: re-drawn when the language changes
  function renderJob(jr) {
    const j = jr.job;
    const flooded = (jr.params && jr.params.flooded_by ? " · " + t("floodedBy") + " " + jr.params.flooded_by : "") +
      (jr.params && jr.params.rain_from_sensors ? " · " + t("measuredRain") + " " + jr.params.rain_from_sensors : "");
    jr.row.querySelector(".name").textContent = t(jr.engine + "_engine") + " · " + scenarioName(jr.scenario) +
      (j.run ? " · " + t("jobRun").replace("{run}", j.run) : "") + flooded + " · ";
    // done: a button that shows the run on the map (its scenario, its series, it picked in the time bar)
    const show = jr.row.querySelector(".show-run");
    if (show) {
      show.hidden = !(j.status === "done" && j.run && JOB_SERIES[jr.engine]);
      show.textContent = t("showRun");
      show.title = t("showRunTitle").replace("{run}", j.run || "").replace("{scenario}", scenarioName(jr.scenario));
    }
    jr.row.querySelector(".st").textContent = t(j.status) + (j.error ? ": " + detailText(j.error) : "") +
      crowdFloodText(Object.assign({engine: jr.engine}, j)) + accessText(Object.assign({engine: jr.engine}, j)) +
      measuredRainText(Object.assign({engine: jr.engine}, j), jr.params);
    jr.row.querySelector(".st").className = "st" + (j.status === "failed" || j.status === "lost" ? " fail" : "");
    const p = Number(j.progress);
    jr.row.querySelector(".bar > div").style.width = (isFinite(p) ? Math.round(100 * Math.max(0, Math.min(1, p))) : 0) + "%";
  }
  function renderJobs() { jobRows.forEach(renderJob); }
  const JOB_SERIES = {flood: "flood", traffic: "trips", crowd: "crowd"};  // the series a finished run of an engine plays
  // a run on the map: the left view shows its scenario, the time bar its series with the run picked
  async function showRun(scenario, kind, run) {
    if (S.scenarioA !== scenario) await showScenario(scenario);
    const newest = newestResult(scenario, kind), k = pickKey("a", kind);
    if (newest && newest.run === run) delete S.runPick[k]; else S.runPick[k] = run;
    await prepareScenario(scenario, "a");
    buildSeries();
    const i = S.series.findIndex((x) => x.kind === kind);
    if (i >= 0 && i !== S.seriesIdx) { S.seriesIdx = i; configureSlider(); }
    renderSeriesSelect(); render();
  }
  T.showRun = showRun;
  async function startJob(engine, given) {
    try {
      const params = given ? Object.assign({}, given) : defaultParams(engine);
      const job = await api("/api/jobs", {method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({engine, scenario: S.scenarioA, params})});
      const row = document.createElement("div");
      row.className = "job"; row.id = "job-" + job.id;
      const head = document.createElement("div");
      const name = document.createElement("span"); name.className = "name";
      const st = document.createElement("span"); st.className = "st";
      head.appendChild(name); head.appendChild(st);
      const show = document.createElement("button");
      show.type = "button"; show.className = "show-run"; show.hidden = true;
      show.addEventListener("click", () => {
        if (jr.job.run && JOB_SERIES[engine]) showRun(jr.scenario, JOB_SERIES[engine], jr.job.run).catch(showError);
      });
      head.appendChild(show);
      const bar = document.createElement("div"); bar.className = "bar"; bar.appendChild(document.createElement("div"));
      row.appendChild(head); row.appendChild(bar);
      $("jobs").prepend(row);
      const jr = {row, engine, scenario: job.scenario || S.scenarioA, job, params};
      jobRows.push(jr);
      renderJob(jr);
      const es = new EventSource(withToken(job.events_url || `/api/jobs/${job.id}/events`));
      let ended = false;
      const upd = (ev) => {
        try { jr.job = Object.assign({}, jr.job, JSON.parse(ev.data)); } catch (e) { return; }
        renderJob(jr);
      };
      es.addEventListener("progress", upd);
      es.addEventListener("end", async (ev) => {
        ended = true; upd(ev); es.close();
        try { await refreshResults(); } catch (e) { showError(e); }
      });
      es.onerror = async () => {
        // the stream broke (server restarted, network, job gone): ask once for the job's state, and say so
        if (ended) return;
        es.close();
        try {
          jr.job = Object.assign({}, jr.job, await api(`/api/jobs/${encodeURIComponent(job.id)}`));
          renderJob(jr);
          if (["done", "failed", "cancelled"].includes(jr.job.status)) await refreshResults();
          else { jr.job = Object.assign({}, jr.job, {status: "lost", error: t("progressLost")}); renderJob(jr); }
        } catch (e) {
          jr.job = Object.assign({}, jr.job, {status: "lost", error: e.message}); renderJob(jr);
        }
      };
    } catch (e) { showError(e); }
  }
  async function refreshResults() {
    S.results = await api("/api/results");
    await prepareScenario(S.scenarioA);
    if (S.compare) await prepareScenario(S.scenarioB);
    buildSeries(); renderSeriesSelect(); render();
  }

  // ---------------------------------------------------------------- BIM check
  async function submitBim(ev) {
    ev.preventDefault();
    const f = $("bim-file").files[0];
    if (!f) { showError(t("chooseFile")); return; }
    const fd = new FormData();
    fd.append("ifc", f, f.name);
    const rules = $("bim-rules").files[0];  // an IDS (.ids) or a rules YAML of one's own, in place of a shipped set
    if (rules) fd.append("rules", rules, rules.name);
    else fd.append("ruleset", $("bim-ruleset").value);
    if (S.bimSite) {  // the model stands where the user picked, whatever its file says
      fd.append("site_lon", String(S.bimSite[0]));
      fd.append("site_lat", String(S.bimSite[1]));
      fd.append("rotation_deg", String(Number($("bim-rotation").value) || 0));
    }
    $("bim-report").textContent = t("loading");
    try {
      const r = await api("/api/bim/checks", {method: "POST", body: fd});
      S.bim = r;
      // the homes the building would take below the sunlight standard, drawn in violet on the map
      const sun = (r.report.results || []).find((x) => x.rule === "min_neighbour_sunlight_h" && !x.passed);
      S.bimShaded = sun && sun.offending && sun.offending.length ? new Set(sun.offending.map(String)) : null;
      T.bim = {id: r.id, passed: r.passed, building_id: r.building.building_id,
        shaded: S.bimShaded ? Array.from(S.bimShaded) : []};
      renderBim();
      const o = r.building.origin;  // null: an IDS check recorded without placing the model (nowhere to fly to)
      if (o) {
        S.viewState = Object.assign({}, S.viewState, {longitude: o[0], latitude: o[1], zoom: Math.max(S.viewState.zoom, 17),
          transitionDuration: 600, transitionInterpolator: new D.FlyToInterpolator()});
      }
      syncViews(); render();
    } catch (e) { showBimError(e); showError(e); }
  }
  function showBimError(e) {
    // the reason stays beside the form (the banner fades): a regulator reads it while fixing the upload
    const box = $("bim-report"), msg = String(e && e.message ? e.message : e);
    box.innerHTML = "";
    const d = document.createElement("div"); d.id = "bim-error"; d.className = "error"; d.textContent = msg;
    box.appendChild(d);
    if (!S.bimSite && /site_lon|Pick site/.test(msg)) {  // the model does not say where it stands in this city
      const h = document.createElement("div"); h.className = "hint"; h.textContent = t("pickHint"); box.appendChild(h);
    }
    T.bimError = msg;
    box.scrollIntoView({block: "nearest"});
  }
  function setBimSite(coord) {
    S.bimSite = coord ? [Number(coord[0]), Number(coord[1])] : null;
    S.bimPicking = false;
    T.bimSite = S.bimSite;
    renderBimSite(); render();
  }
  function renderBimSite() {
    const s = S.bimSite;
    $("bim-site").textContent = S.bimPicking ? t("picking")
      : s ? `${t("siteAt")}: ${s[0].toFixed(5)}, ${s[1].toFixed(5)}` : t("siteFromModel");
    $("bim-site-clear").hidden = !s;
    $("bim-rotation-label").hidden = !s;
    document.body.classList.toggle("picking", S.bimPicking);
  }

  function renderBim() {
    // built from DOM nodes: the building id, rule names and values come from the uploaded file
    const r = S.bim, box = $("bim-report");
    if (!r) return;
    box.innerHTML = "";
    const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; };
    const v = el("div", `${r.building.building_id}: ${r.passed ? t("passed") : t("notPassed")}`, r.passed ? "pass" : "fail");
    v.id = "bim-verdict";
    const tbl = el("table"); tbl.id = "bim-table";
    const head = el("tr", undefined, "head");  // which number is measured and which the limit
    [t("rule"), t("measured"), t("limit"), ""].forEach((c) => head.appendChild(el("th", c)));
    tbl.appendChild(head);
    (r.report.results || []).forEach((x) => {
      const tr = el("tr", undefined, x.passed ? "pass" : "fail");
      // a count stays whole (49 walls, not 49.00), a measure to 2 decimals
      const num = (n) => (n === null || n === undefined ? "-" : (isFinite(Number(n)) && String(n).trim() !== ""
        ? (Number.isInteger(Number(n)) ? String(Number(n)) : Number(n).toFixed(2)) : String(n)));
      [String(x.rule), num(x.measured), x.limit === null || x.limit === undefined ? "-" : String(x.limit), x.passed ? "✓" : "✗"]
        .forEach((c) => tr.appendChild(el("td", c)));
      tbl.appendChild(tr);
    });
    const a = el("a", t("report")); a.href = withToken(r.report_url); a.target = "_blank"; a.rel = "noopener";
    box.appendChild(v); box.appendChild(tbl);
    if (S.bimShaded) {  // where a person would rather look: the homes are violet on the map
      const ids = Array.from(S.bimShaded);
      const h = el("div", `${t("shadedHomes").replace("{n}", ids.length)}: ${ids.slice(0, 8).join(", ")}${ids.length > 8 ? " …" : ""}`, "hint");
      h.id = "bim-shaded";
      box.appendChild(h);
    }
    if (r.placement && r.placement.placed === false) {  // said by the server: why the model is not on the map
      const p = el("div", `${t("notPlaced")}: ${r.placement.text}`, "hint");
      p.id = "bim-placement";
      box.appendChild(p);
    }
    box.appendChild(a);
  }

  // ---------------------------------------------------------------- what-if (planners: scenarios from the map)
  // A new scenario (from the one shown), then edits drawn on the map: "close roads" closes every road link an
  // area crosses; a "levee" is a line the planner clicks, posted as raise_ground over a strip along it at least
  // 1.5 DEM cells wide (a thinner strip can miss every cell centre, or leave gaps the flood flows through).
  // Names and ids come from users and data: built with textContent.
  function canEdit() { return (S.can || []).includes("scenarios"); }
  function leveeHalfWidth() { return Math.max(2.5, 0.75 * (S.demCell || 0)); }
  let renderQueued = false;
  function renderSoon() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => { renderQueued = false; render(); });
  }
  async function initWhatif() {
    renderWhatif();
    if (!canEdit()) return;
    if (S.scene.rasters.includes("dem")) {
      try {
        const dem = (await api("/api/rasters")).find((r) => r.name === "dem");
        if (dem && dem.bounds && dem.width) S.demCell = Math.abs(dem.bounds[2] - dem.bounds[0]) / dem.width;
      } catch (e) { /* the strip keeps its 5 m */ }
    }
    renderWhatif();
    await loadEdits();
  }
  async function showScenario(name) {
    if (S.draw) cancelDraw();
    S.scenarioA = name;
    clearInspect();
    fillScenarioSelects();
    S.edits = null; renderEdits(); renderLabels(); renderWhatif();
    reportIn($("whatif-report"), "");  // the last edit's outcome belongs to the scenario it was made in
    await prepareScenario(S.scenarioA);
    buildSeries(); renderLabels(); render(); renderWhatif();
    await loadEdits();
  }
  function reportIn(box, msg, isError, id) {
    box.innerHTML = "";
    if (!msg) return;
    const d = document.createElement("div");
    d.className = isError ? "error" : "ok";
    if (id) d.id = id;
    d.textContent = msg;
    box.appendChild(d);
    box.scrollIntoView({block: "nearest"});
  }
  async function createScenario(ev) {
    ev.preventDefault();
    const name = $("whatif-name").value.trim();
    const parent = S.scenarioA;
    const box = $("whatif-create-report");
    reportIn(box, t("saving"));
    let r;
    try {
      r = await api("/api/scenarios", {method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({name, description: "", parent})});
    } catch (e) {
      // the server's reason stays beside the form (the banner fades) while the planner fixes the name
      const msg = String(e && e.message ? e.message : e);
      reportIn(box, msg, true, "whatif-create-error");
      T.whatifCreateError = msg;
      showError(e);
      return;
    }
    T.whatifCreateError = null;
    $("whatif-name").value = "";
    if (!S.scene.scenarios.includes(r.name)) S.scene.scenarios.push(r.name);
    reportIn(box, `${t("created")}: ${r.name} (${t("parent")}: ${scenarioName(r.parent)})`);
    await showScenario(r.name);
  }
  async function deleteScenario() {
    const name = S.scenarioA;
    if (!canEdit() || name === "base") return;
    // its edits go with it (its stored results stay): ask first
    if (!window.confirm(t("confirmDelete").replace("{name}", name))) return;
    const box = $("whatif-delete-report");
    try {
      await api("/api/scenarios/" + encodeURIComponent(name), {method: "DELETE"});
    } catch (e) { reportIn(box, String(e && e.message ? e.message : e), true, "whatif-delete-error"); showError(e); return; }
    S.scene.scenarios = S.scene.scenarios.filter((n) => n !== name);
    delete S.whatifShapes[name];
    if (S.scenarioB === name) { S.scenarioB = "base"; }
    reportIn(box, `${t("deleted")}: ${name}`);
    T.whatifDeleted = name;
    await showScenario("base");
  }
  function startDraw(mode) {
    if (!canEdit() || S.scenarioA === "base") return;
    if (S.bimPicking) { S.bimPicking = false; renderBimSite(); }
    S.draw = {mode, points: [], hover: null, last: null};
    reportIn($("whatif-report"), "");
    renderWhatif(); render();
  }
  function cancelDraw() {
    S.draw = null; S.drawEnded = performance.now();
    renderWhatif(); render();
  }
  function addVertex(info) {
    const d = S.draw, now = performance.now();
    // the second click of a double-click (which finishes) adds no second vertex on the first
    if (d.last && now - d.last.time < 500 && Math.hypot(info.x - d.last.x, info.y - d.last.y) < 6) return;
    d.last = {x: info.x, y: info.y, time: now};
    d.points.push([Number(info.coordinate[0]), Number(info.coordinate[1])]);
    renderWhatif(); render();
  }
  // a polyline (lon/lat) buffered by hw metres: one polygon, mitred joins (bevelled where sharp), square ends
  function bufferLine(pts, hw) {
    const lon0 = pts[0][0], lat0 = pts[0][1];
    const kx = 111320 * Math.cos(lat0 * Math.PI / 180), ky = 110540;
    const P = pts.map((p) => [(p[0] - lon0) * kx, (p[1] - lat0) * ky]);
    const unit = (a, b) => { const dx = b[0] - a[0], dy = b[1] - a[1], l = Math.hypot(dx, dy); return [dx / l, dy / l]; };
    const left = [], right = [], n = P.length;
    const add = (p, v, s) => [p[0] + v[0] * s, p[1] + v[1] * s];
    for (let i = 0; i < n; i++) {
      if (i === 0 || i === n - 1) {
        const d = i === 0 ? unit(P[0], P[1]) : unit(P[n - 2], P[n - 1]);
        const nrm = [-d[1], d[0]], end = add(P[i], d, i === 0 ? -hw : hw);
        left.push(add(end, nrm, hw)); right.push(add(end, nrm, -hw));
        continue;
      }
      const d1 = unit(P[i - 1], P[i]), d2 = unit(P[i], P[i + 1]);
      const n1 = [-d1[1], d1[0]], n2 = [-d2[1], d2[0]];
      const m = [n1[0] + n2[0], n1[1] + n2[1]], ml = Math.hypot(m[0], m[1]);
      const cos = ml / 2;  // the cosine of half the turn
      if (cos < 0.5) {  // sharper than 120 degrees: bevel
        left.push(add(P[i], n1, hw), add(P[i], n2, hw)); right.push(add(P[i], n1, -hw), add(P[i], n2, -hw));
      } else {
        const mu = [m[0] / ml, m[1] / ml];
        left.push(add(P[i], mu, hw / cos)); right.push(add(P[i], mu, -hw / cos));
      }
    }
    const ring = left.concat(right.reverse());
    ring.push(ring[0]);
    return {type: "Polygon", coordinates: [ring.map((q) => [lon0 + q[0] / kx, lat0 + q[1] / ky])]};
  }
  function drawPoints() {
    const pts = [];
    (S.draw ? S.draw.points : []).forEach((p) => {
      const q = pts[pts.length - 1];
      if (!q || Math.abs(q[0] - p[0]) > 1e-9 || Math.abs(q[1] - p[1]) > 1e-9) pts.push(p);
    });
    return pts;
  }
  async function finishDraw() {
    const d = S.draw;
    if (!d) return;
    const pts = drawPoints();
    const need = d.mode === "area" ? 3 : 2;
    if (pts.length < need) { reportIn($("whatif-report"), t(d.mode === "area" ? "needArea" : "needLine"), true, "whatif-error"); return; }
    const scenario = S.scenarioA;
    let body, shape;
    if (d.mode === "area") {
      const polygon = {type: "Polygon", coordinates: [pts.concat([pts[0]])]};
      body = {op: "close_roads", layer: "road_links", polygon};
      shape = {type: "Feature", geometry: polygon, properties: {kind: "area"}};
    } else {
      const delta = Number($("whatif-levee-height").value);
      if (!isFinite(delta) || $("whatif-levee-height").value === "") {
        reportIn($("whatif-report"), t("heightM") + ": " + $("whatif-levee-height").value, true, "whatif-error");
        return;
      }
      const polygon = bufferLine(pts, leveeHalfWidth());
      body = {op: "raise_ground", raster: "dem", delta, polygon};
      shape = {type: "Feature", geometry: polygon, properties: {kind: "levee", delta}};
    }
    S.draw = null; S.drawEnded = performance.now();
    renderWhatif(); render();
    const box = $("whatif-report");
    reportIn(box, t("saving"));
    let r;
    try {
      S.ownEditAt[scenario] = Date.now();
      r = await api(`/api/scenarios/${encodeURIComponent(scenario)}/edits`, {method: "POST",
        headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    } catch (e) {
      const msg = String(e && e.message ? e.message : e);
      reportIn(box, msg, true, "whatif-error");
      T.whatif = Object.assign({}, T.whatif, {error: msg});
      return;
    }
    const what = body.op === "close_roads" ? "road_links" : "dem";
    S.rev[scenario] = Object.assign({}, S.rev[scenario], {[what]: Date.now()});
    shape.properties.created = r.created;  // an undo takes the shape off with its edit
    (S.whatifShapes[scenario] = S.whatifShapes[scenario] || []).push(shape);
    if (what === "dem") delete S.hillshade[scenario];  // the terrain as of the edit
    T.whatif = Object.assign({}, T.whatif, {error: null, last: r});
    if (body.op === "close_roads") {
      const ids = r.result || [];
      reportIn(box, t("roadsClosedN").replace("{n}", ids.length) + ": " + ids.slice(0, 12).join(", ") +
        (ids.length > 12 ? " …" : "") + " · " + t("runToSee"));
    } else {
      reportIn(box, t("leveeAdded").replace("{d}", String(body.delta)) + " · " + t("runToSee"));
    }
    if (S.scenarioA === scenario) { await prepareScenario(scenario); render(); }
    try { await refreshResults(); } catch (e) { /* the runs' labels catch up at the next refresh */ }
    T.series = S.series.map((x) => ({kind: x.kind, scenario: x.scenario, stale: !!x.stale}));
    await syncScenarios({quiet: true, done: [scenario]});  // this page's own edit: no "changed elsewhere"
    const rows = await loadEdits();
    if (body.op === "raise_ground" && rows) {  // the store keeps the new cells, not the height: the page remembers it
      const last = rows.filter((x) => x.op === "patch_raster").pop();
      if (last) { rememberNote(scenario, last.created, {delta: body.delta}); renderEdits(); }
    }
  }
  // tiles and the hillshade of a scenario as of now: new URLs, so no cache shows the map as it was
  function bumpRev(scenario) {
    const now = Date.now();
    S.rev[scenario] = Object.assign({}, S.rev[scenario], {road_links: now, dem: now, buildings: now});
    delete S.hillshade[scenario];
  }
  async function undoEdit() {
    const scenario = S.scenarioA;
    if (!canEdit() || scenario === "base") return;
    if (S.draw) cancelDraw();
    const box = $("whatif-report");
    $("whatif-undo").disabled = true;  // one click, one undo
    S.ownEditAt[scenario] = Date.now();
    let r;
    try {
      r = await api(`/api/scenarios/${encodeURIComponent(scenario)}/edits/last`, {method: "DELETE"});
    } catch (e) {
      const msg = String(e && e.message ? e.message : e);
      reportIn(box, msg, true, "whatif-error");
      T.whatifUndo = {error: msg};
      renderWhatif();
      return;
    }
    const u = r.undone;
    S.whatifShapes[scenario] = (S.whatifShapes[scenario] || []).filter((f) => f.properties.created !== u.created);
    bumpRev(scenario);
    T.whatifUndo = {error: null, undone: u, edits: r.edits};
    const g = S.edits && S.edits.name === scenario ? S.edits.groups[S.edits.groups.length - 1] : null;
    reportIn(box, `${t("undone")}: ${g ? t("op_" + g.kind) + " · " + editText(g, scenario) : [].concat(u.op).join(", ")} · ${t("runToSee")}`);
    if (S.scenarioA === scenario) { await prepareScenario(scenario); render(); }
    try { await refreshResults(); } catch (e) { /* the runs' labels catch up at the next refresh */ }
    T.series = S.series.map((x) => ({kind: x.kind, scenario: x.scenario, stale: !!x.stale}));
    await syncScenarios({quiet: true, done: [scenario]});
    await loadEdits();
    renderWhatif();
  }
  // what the page shows may change in another browser (a planner's edit, an undo, a deleted scenario): the
  // page asks every 15 s (and when it comes back into view) and redraws a shown scenario whose edits changed
  function scenarioVersions(rows) {
    const meta = {};
    rows.forEach((x) => { meta[x.name] = x; });
    const ver = (n) => {
      const parts = [];
      for (let k = n, i = 0; k && k !== "base" && meta[k] && i < 64; k = meta[k].parent, i++) parts.push(`${k}:${meta[k].edits}:${meta[k].last_edited}`);
      return parts.join("|");
    };
    const out = {base: ""};
    rows.forEach((x) => { out[x.name] = ver(x.name); });
    return out;
  }
  // one look at a time, in order: this page's own edit waits for a poll in flight, then looks (as done)
  function syncScenarios(opts) {
    S.syncChain = (S.syncChain || Promise.resolve()).then(() => syncOnce(opts || {})).catch(() => {});
    return S.syncChain;
  }
  async function syncOnce(opts) {
    S.syncing = true;
    try {
      let rows;
      try { rows = await api("/api/scenarios"); } catch (e) { return; }  // the next poll tries again
      const vers = scenarioVersions(rows);
      const old = S.versions;
      S.versions = vers;
      if (!old) return;  // the first look: nothing to compare with
      const names = ["base"].concat(rows.map((x) => x.name));
      const gone = S.scene.scenarios.filter((n) => !names.includes(n));
      const listChanged = gone.length || names.some((n) => !S.scene.scenarios.includes(n));
      if (listChanged) { S.scene.scenarios = names; fillScenarioSelects(); }
      const shown = S.compare ? [S.scenarioA, S.scenarioB] : [S.scenarioA];
      const changed = shown.filter((n, i) => shown.indexOf(n) === i && n in vers && n in old && vers[n] !== old[n] &&
        !(opts.done || []).includes(n));
      let note = null;
      if (gone.includes(S.scenarioA)) {
        note = t("goneElsewhere").replace("{name}", S.scenarioA);
        if (S.scenarioB === S.scenarioA || gone.includes(S.scenarioB)) S.scenarioB = "base";
        await showScenario("base");
      } else if (S.compare && gone.includes(S.scenarioB)) {
        note = t("goneElsewhere").replace("{name}", S.scenarioB);
        S.scenarioB = "base"; fillScenarioSelects();
        await prepareScenario("base"); buildSeries(); renderLabels(); render();
      }
      if (changed.length) {
        changed.forEach(bumpRev);
        for (const n of changed) await prepareScenario(n);
        render();
        try { await refreshResults(); } catch (e) { /* the runs' labels catch up at the next poll */ }
        if (changed.includes(S.scenarioA)) await loadEdits();
        // not "elsewhere" when this page edited it a moment ago (a poll that looked between the edit and its own look)
        const others = changed.filter((n) => !(S.ownEditAt[n] && Date.now() - S.ownEditAt[n] < 10000));
        if (!opts.quiet && others.length) note = t("editedElsewhere").replace("{name}", others.map(scenarioName).join(", "));
      }
      // runs made elsewhere (another screen's job, a script): the time bar offers them without a reload
      if (!changed.length) {
        let res = null;
        try { res = await api("/api/results"); } catch (e) { /* the next poll tries again */ }
        const runsOf = (rs) => new Set((rs || []).map((e) => e.scenario + "\u0000" + e.run));
        const had = runsOf(S.results);
        const fresh = res ? Array.from(runsOf(res)).filter((k) => !had.has(k)) : [];
        if (res && (fresh.length || res.length !== (S.results || []).length)) {
          S.results = res;
          await prepareScenario(S.scenarioA);
          if (S.compare) await prepareScenario(S.scenarioB);
          buildSeries(); renderSeriesSelect(); renderLabels(); render();
          const mine = new Set(jobRows.map((jr) => jr.scenario + "\u0000" + (jr.job && jr.job.run)));
          const theirs = fresh.filter((k) => !mine.has(k)).map((k) => k.split("\u0000"));
          if (theirs.length && !note) {
            note = t("newRunsElsewhere").replace("{runs}", theirs.map(([sc, run]) => `${run} (${scenarioName(sc)})`).join(", "));
          }
          T.newRuns = theirs.map(([sc, run]) => ({scenario: sc, run}));
        }
      }
      if (note) {  // in the top bar, for every role (a command-centre screen edits nothing but must follow)
        const box = $("sync-note");
        box.textContent = note;
        box.className = "sync-note";
        clearTimeout(S.syncNoteTimer);
        S.syncNoteTimer = setTimeout(() => { box.textContent = ""; }, 20000);
        T.sync = {note, changed, gone, at: Date.now()};
      }
      T.syncs = (T.syncs || 0) + 1;
    } finally { S.syncing = false; }
  }
  function notes() { try { return JSON.parse(localStorage.getItem("twin.whatif.notes") || "{}"); } catch (e) { return {}; } }
  function rememberNote(scenario, created, note) {
    const all = notes();
    all[scenario + "\u0000" + created] = note;
    const keys = Object.keys(all);
    keys.slice(0, Math.max(0, keys.length - 500)).forEach((k) => delete all[k]);
    localStorage.setItem("twin.whatif.notes", JSON.stringify(all));
  }
  async function loadEdits() {
    if (!canEdit()) return null;
    const name = S.scenarioA;
    if (name === "base") { S.edits = {name, parent: null, groups: []}; renderEdits(); return []; }
    let r;
    try { r = await api("/api/scenarios/" + encodeURIComponent(name)); } catch (e) { showError(e); return null; }
    if (S.scenarioA !== name) return null;  // another scenario is shown meanwhile
    S.edits = {name, parent: r.parent, groups: groupEdits(r.edits || [])};
    renderEdits();
    return r.edits || [];
  }
  // the store's rows (a closure is one "modify capacity_vph 0" per link, a levee one raster patch) as the
  // planner's edits: rows of one kind and layer recorded together make one edit
  function groupEdits(rows) {
    const parse = (x) => { if (x === null || x === undefined) return null; try { return JSON.parse(x); } catch (e) { return x; } };
    const out = [];
    rows.forEach((r) => {
      const attrs = parse(r.attrs);
      const closing = r.op === "modify" && attrs && typeof attrs === "object" && Object.keys(attrs).length === 1 &&
        Number(attrs.capacity_vph) === 0;
      const kind = closing ? "close_roads" : r.op === "patch_raster" ? "raise_ground" : r.op;
      const at = Date.parse(r.created);
      const last = out[out.length - 1];
      if (last && last.kind === kind && last.target === r.target && ["close_roads", "add", "remove", "modify"].includes(kind) &&
          Math.abs(at - last.at) < 2000) {
        if (r.feature_id !== null && r.feature_id !== undefined) last.ids.push(String(r.feature_id));
        return;
      }
      out.push({kind, target: r.target, created: r.created, at, attrs, window: parse(r.window),
        ids: r.feature_id !== null && r.feature_id !== undefined ? [String(r.feature_id)] : []});
    });
    return out;
  }
  function editText(g, scenario) {
    if (g.kind === "close_roads") {
      return t("roadsClosedN").replace("{n}", g.ids.length) + ": " + g.ids.slice(0, 6).join(", ") + (g.ids.length > 6 ? " …" : "");
    }
    if (g.kind === "raise_ground") {
      // the height as stored with the edit; older edits: as this browser remembered it
      const note = (g.attrs && isFinite(Number(g.attrs.delta))) ? {delta: Number(g.attrs.delta)} : notes()[scenario + "\u0000" + g.created];
      const w = Array.isArray(g.window) ? ` · ${g.window[2]}×${g.window[3]} ${t("cells")}` : "";
      const dl = note && isFinite(Number(note.delta)) ? ` · ${Number(note.delta) >= 0 ? "+" : ""}${note.delta} m` : "";
      return `${g.target}${dl}${w}`;
    }
    if (g.kind === "set_param") return `${g.target} = ${JSON.stringify(g.attrs)}`;
    return g.ids.length ? `${g.target} · ${g.ids.length} ${t("features")}` : String(g.target);
  }
  function renderEdits() {
    const box = $("whatif-edits");
    if (!box) return;
    box.innerHTML = "";
    const e = S.edits;
    T.whatifEdits = e ? e.groups.map((g) => ({op: g.kind, target: g.target, n: g.ids.length, created: g.created,
      delta: (g.attrs && isFinite(Number(g.attrs.delta))) ? Number(g.attrs.delta) : (notes()[e.name + "\u0000" + g.created] || {}).delta})) : null;
    const undo = $("whatif-undo");  // only this scenario's own edits can be undone here (a parent's on the parent)
    undo.hidden = !e || e.name === "base" || S.scenarioA === "base";
    undo.disabled = undo.hidden || e.name !== S.scenarioA || !e.groups.length;
    if (!e || !canEdit()) return;
    const li = (text, cls) => { const x = document.createElement("li"); x.className = cls || ""; x.textContent = text; box.appendChild(x); return x; };
    if (e.name === "base") return;  // read-only: the hint above the tools says so
    if (e.parent) li(`${t("parent")}: ${scenarioName(e.parent)}`, "none");
    if (!e.groups.length) { li(t("noEdits"), "none"); return; }
    e.groups.forEach((g) => {
      const x = document.createElement("li");
      x.className = "edit"; x.dataset.op = g.kind;
      const head = document.createElement("span"); head.className = "op"; head.textContent = t("op_" + g.kind);
      const when = document.createElement("span"); when.className = "when"; when.textContent = fmtWhen(g.created);
      const what = document.createElement("span"); what.className = "what"; what.textContent = editText(g, e.name);
      if (g.ids.length > 6) what.title = g.ids.join(", ");
      x.appendChild(head); x.appendChild(when); x.appendChild(what);
      box.appendChild(x);
    });
  }
  function renderWhatif() {
    const box = $("whatif-box");
    if (!box) return;
    const can = canEdit() && !!S.scene;
    box.hidden = !can;
    T.whatifShown = can;
    document.body.classList.toggle("drawing", !!S.draw);
    if (!can) return;
    const base = S.scenarioA === "base";
    const roads = !!S.scene.layers.road_links, dem = S.scene.rasters.includes("dem");
    $("whatif-parent").textContent = `${t("basedOn")}: ${scenarioName(S.scenarioA)}`;
    $("whatif-target").textContent = base ? t("baseReadOnly") : `${t("editing")}: ${S.scenarioA}`;
    $("whatif-target").className = base ? "hint" : "muted";
    $("whatif-delete").disabled = base;
    const area = $("whatif-draw-area"), levee = $("whatif-draw-levee");
    area.disabled = base || !roads || !!S.draw;
    levee.disabled = base || !dem || !!S.draw;
    $("whatif-levee-height").disabled = base || !dem;
    area.title = base ? t("baseReadOnly") : roads ? "" : t("noRoads");
    levee.title = base ? t("baseReadOnly") : dem ? "" : t("noDem");
    $("whatif-levee-note").textContent = !base && dem ? t("leveeStrip").replace("{w}", (2 * leveeHalfWidth()).toFixed(1)) : "";
    const d = S.draw;
    $("whatif-drawing").hidden = !d;
    if (d) {
      const n = drawPoints().length;
      $("whatif-draw-status").textContent = `${t(d.mode === "area" ? "drawAreaHint" : "drawLineHint")} · ${n} ${t("points")}`;
      $("whatif-finish").disabled = n < (d.mode === "area" ? 3 : 2);
    }
    T.whatif = Object.assign({}, T.whatif, {drawing: d ? d.mode : null, points: d ? drawPoints().length : 0});
    renderEdits();
  }
  // the shapes drawn on this scenario in this session, and the one being drawn (on the left map)
  function whatifLayers(scenario, side) {
    const L = [];
    const shapes = S.whatifShapes[scenario] || [];
    if (shapes.length) {
      L.push(new D.GeoJsonLayer({id: `whatif-shapes-${side}`, data: {type: "FeatureCollection", features: shapes},
        filled: true, stroked: true, lineWidthMinPixels: 2, pickable: false,
        getFillColor: (f) => f.properties.kind === "levee" ? [90, 200, 255, 110] : [255, 150, 60, 35],
        getLineColor: (f) => f.properties.kind === "levee" ? [90, 200, 255, 255] : [255, 150, 60, 220]}));
    }
    const d = S.draw;
    if (d && (side === "a" || S.compare)) {
      const pts = drawPoints();
      const live = d.hover ? pts.concat([d.hover]) : pts;
      if (d.mode === "area" && live.length >= 3) {
        L.push(new D.PolygonLayer({id: `whatif-draw-fill-${side}`, data: [{polygon: live}], getPolygon: (x) => x.polygon,
          filled: true, stroked: false, getFillColor: [255, 150, 60, 60], pickable: false}));
      }
      if (live.length >= 2) {
        const path = d.mode === "area" && live.length >= 3 ? live.concat([live[0]]) : live;
        L.push(new D.PathLayer({id: `whatif-draw-path-${side}`, data: [{path}], getPath: (x) => x.path, pickable: false,
          widthUnits: d.mode === "levee" ? "meters" : "pixels", getWidth: d.mode === "levee" ? 2 * leveeHalfWidth() : 2,
          widthMinPixels: 2, getColor: d.mode === "levee" ? [90, 200, 255, 200] : [255, 150, 60, 255]}));
      }
      if (pts.length) {
        L.push(new D.ScatterplotLayer({id: `whatif-draw-points-${side}`, data: pts, getPosition: (p) => p, radiusUnits: "pixels",
          getRadius: 4, stroked: true, getFillColor: [255, 255, 255, 230], getLineColor: [20, 20, 20, 255],
          lineWidthMinPixels: 1, pickable: false}));
      }
    }
    return L;
  }

  // ---------------------------------------------------------------- alerts
  // the sensors now in warning or alarm (from /api/sensors/alerts, refreshed with the sensors); a row flies
  // the map to its sensor. Built from DOM nodes: names and values come from the data.
  // times on the map say their zone (this browser's clock) as ISO 8601 does: "2026-12-06 01:53:52 +08:00", never
  // "06/12, 01:53:52" (which is the month? which zone?); digits only, so it reads the same in both languages
  function zoneOf(d) {
    const off = -d.getTimezoneOffset(), a = Math.abs(off);  // minutes east of UTC
    const two = (n) => String(n).padStart(2, "0");
    return `${off < 0 ? "-" : "+"}${two(Math.floor(a / 60))}:${two(a % 60)}`;
  }
  function ymd(d) {
    const two = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}`;
  }
  function fmtWhen(iso) {
    if (iso === null || iso === undefined || iso === "") return "-";
    const d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    const two = (n) => String(n).padStart(2, "0");
    return `${ymd(d)} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())} ${zoneOf(d)}`;
  }
  // a reading's time as HH:MM and its zone on this browser's clock (with the date when it is not from the last 24 h)
  function fmtHM(iso) {
    if (!iso) return "-";
    const d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    const two = (n) => String(n).padStart(2, "0");
    const hm = `${two(d.getHours())}:${two(d.getMinutes())} ${zoneOf(d)}`;
    return Math.abs(Date.now() - d.getTime()) < 86400000 ? hm : `${ymd(d)} ${hm}`;
  }
  // when a sensor's reading went stale: the server says (stale_since), else its time plus its kind's allowance
  function staleSinceOf(a) {
    if (a.stale_since) return a.stale_since;
    const t = Date.parse(a.time);
    return isNaN(t) ? a.time : new Date(t + 1000 * Number(a.stale_after_s || 900)).toISOString();
  }
  // The list is updated in place (it is aria-live): a poll that brings the same alerts leaves their rows as they
  // are, so a screen reader does not read the whole list out again; only a row that is new, changed (in text,
  // e.g. a new value or language, or in state) or gone is added, rewritten or removed, and rows are moved only
  // when the order changed.
  function alertKey(a) {
    return JSON.stringify([S.lang, a.status, a.stale, a.value, a.unit, a.name, a.threshold, a.since, a.simulated,
      a.stale ? [fmtHM(staleSinceOf(a)), a.stale_after_s, a.never_reported] : null]);
  }
  function fillAlert(li, a) {
    // a stale one (its last reading older than its kind allows) is the sensor's last word, greyed: not a live alarm
    li.className = "alert " + (a.stale ? "stale" : a.status === "alarm" ? "alarm" : "warn");
    li.dataset.status = a.status; li.dataset.key = alertKey(a);
    li.title = t("flyTo");
    const v = a.value === null || a.value === undefined ? "-" : `${a.value} ${a.unit || ""}`.trim();
    const head = document.createElement("span");
    const when = document.createElement("span");
    when.className = "when";
    if (a.stale) {
      // since when it is stale (its last reading's time plus its kind's allowance); a sensor that never reported
      // since the server started: no reading since then
      const since = document.createElement("span");
      since.className = "stale-since";
      since.textContent = a.never_reported ? `${t("noReadingSince")} ${fmtHM(a.since)}`
        : `${t("staleSince")} ${fmtHM(staleSinceOf(a))}`;
      const status = a.status === "stale" ? (a.last_status || "unknown") : a.status;
      const thr = a.threshold === null || a.threshold === undefined ? "" : `, ${t("threshold")} ${a.threshold}`;
      head.append(`${a.name || a.sensor_id} · `, since, a.never_reported ? "" :
        ` · ${t("lastReading")} ${v} (${t(status)}${thr}) ${t("at")} ${fmtHM(a.time)}`);
      when.textContent = t("staleHint").replace("{min}", String(Math.round((a.stale_after_s || 900) / 60)));
    } else {
      head.textContent = `${a.name || a.sensor_id} · ${t(a.status)} · ${v} (${t("threshold")} ${a.threshold})`;
      // a simulated reading (the demo's feed) has no history: say so instead of a start time
      when.textContent = a.simulated ? t("simulatedReading") : `${t("since")} ${fmtWhen(a.since)}`;
    }
    li.replaceChildren(head, when);
  }
  function newAlertRow(id) {
    const li = document.createElement("li");
    li.dataset.sensor = id; li.tabIndex = 0; li.setAttribute("role", "button");
    const fly = () => { const a = (S.alerts || []).find((x) => x.sensor_id === id); if (a) flyToSensor(a); };
    li.addEventListener("click", fly);
    li.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); fly(); } });
    return li;
  }
  function renderAlerts() {
    const box = $("alert-list");
    if (!box) return;
    const rows = new Map();  // sensor_id -> its row now in the list
    Array.from(box.querySelectorAll(":scope > li.alert")).forEach((li) => rows.set(li.dataset.sensor, li));
    const note = (text, id) => {  // the one line instead of alerts; left be if it says the same already
      rows.forEach((li) => li.remove());
      const old = box.querySelector(":scope > li.none");
      if (old && old.id === id && old.textContent === text) return;
      if (old) old.remove();
      const li = document.createElement("li"); li.className = "none"; li.id = id; li.textContent = text; box.appendChild(li);
    };
    if (S.alerts === undefined && !S.startFailed) { note(t("loading"), "alerts-loading"); return; }
    if (!S.alerts) {  // not loaded: refused (401, 403) or failed, or the page could not start
      const why = (S.alerts === null ? S.alertsRefused : S.startFailed) || {};
      note(refusedText(why.status, "toSeeAlerts", why.message), why.status === 401 || why.status === 403 ? "alerts-refused" : "alerts-unavailable");
      return;
    }
    T.alerts = S.alerts.map((a) => a.sensor_id);
    T.staleAlerts = S.alerts.filter((a) => a.stale).map((a) => a.sensor_id);
    if (!S.alerts.length) { note(t("noAlerts"), "alerts-none"); return; }
    box.querySelectorAll(":scope > li.none").forEach((li) => li.remove());
    const now = new Set(S.alerts.map((a) => a.sensor_id));
    rows.forEach((li, id) => { if (!now.has(id)) li.remove(); });
    let at = box.firstElementChild;  // where the next alert's row belongs
    S.alerts.forEach((a) => {
      const li = rows.get(a.sensor_id) || newAlertRow(a.sensor_id);
      rows.set(a.sensor_id, li);
      if (li.dataset.key !== alertKey(a)) fillAlert(li, a);
      if (li === at) at = at.nextElementSibling;
      else box.insertBefore(li, at);  // new, or out of order: only then is a row (re)inserted
    });
  }
  // ---------------------------------------------------------------- sensor feeds
  // a banner above the alerts while an MQTT feed listener needs a person (/api/sensors/feeds: silent, refused,
  // disconnected, not running): the alerts may then be old news. Nothing while every feed is live, when there is
  // no feed, or when the role may not read the feeds (403: S.feeds null).
  function fmtSpan(s) {
    if (s < 120) return t("spanS").replace("{n}", String(Math.round(s)));
    if (s < 7200) return t("spanMin").replace("{n}", String(Math.round(s / 60)));
    return t("spanH").replace("{n}", (s / 3600).toFixed(1));
  }
  function feedProblems() {
    const f = S.feeds;
    if (!f || !f.problems || !Array.isArray(f.feeds)) return [];
    return f.feeds.filter((x) => !x.ok && x.state !== "stopped");
  }
  function feedHeadline(x) {
    const key = "feed_" + String(x.state).replace(/ /g, "_");
    const tpl = t(key) === key ? t("feed_other") : t(key);
    const span = x.for_s === null || x.for_s === undefined ? "" : t("feedFor").replace("{d}", fmtSpan(x.for_s));
    return tpl.replace("{state}", String(x.state)).replace("{for}", span);
  }
  function renderFeeds() {
    const box = $("feed-banner");
    if (!box) return;
    const bad = feedProblems();
    const lines = bad.map((x) => ({feed: String(x.feed), state: String(x.state), head: feedHeadline(x),
      detail: [x.feed, x.detail].filter(Boolean).join(": ")}));
    T.feedBanner = lines.map((l) => l.head);
    const key = JSON.stringify(lines);
    if (box.dataset.key === key) return;  // unchanged: leave it be (screen readers would read it out again)
    box.dataset.key = key;
    box.innerHTML = "";
    box.hidden = !lines.length;
    lines.forEach((l) => {
      const div = document.createElement("div");
      div.className = "feed-problem"; div.dataset.feed = l.feed; div.dataset.state = l.state;
      const head = document.createElement("span"); head.className = "feed-head"; head.textContent = l.head;
      const detail = document.createElement("span"); detail.className = "feed-detail"; detail.textContent = l.detail;
      div.appendChild(head); div.appendChild(detail);
      box.appendChild(div);
    });
  }
  // ---------------------------------------------------------------- rejects
  // the latest messages an MQTT feed refused (/api/sensors/rejects: not JSON, a key named twice, a value out of
  // the sensor's range ...), each with its reason, in a folded box under the alerts; hidden when the role may
  // not read them. Rebuilt only when they changed. Built from DOM nodes: topics and payloads come from senders.
  const REJECTS_SHOWN = 20;
  function renderRejects() {
    const box = $("rejects-box"), list = $("reject-list");
    if (!box || !list) return;
    const r = S.rejects;
    box.hidden = !r;  // not yet loaded, or the role may not read them
    if (!r) return;
    const rows = r.rejects || [];
    T.rejects = rows.map((x) => x.reason);
    $("rejects-count").textContent = `(${r.total})`;
    const key = JSON.stringify([S.lang, r.total, rows]);
    if (list.dataset.key === key) return;
    list.dataset.key = key;
    const items = rows.map((x) => {
      const li = document.createElement("li"); li.className = "reject";
      const when = document.createElement("span"); when.className = "when";
      when.textContent = `${fmtWhen(x.received_at)} · ${x.topic}`;
      const reason = document.createElement("span"); reason.className = "reason"; reason.textContent = x.reason;
      const payload = document.createElement("span"); payload.className = "payload";
      const text = String(x.payload ?? "");
      payload.textContent = text.length > 160 ? text.slice(0, 160) + "…" : text;
      li.append(when, reason, payload);
      return li;
    });
    const note = (text) => { const li = document.createElement("li"); li.className = "none"; li.textContent = text; return li; };
    if (!rows.length) items.push(note(t("noRejects")));
    else if (r.total > rows.length) items.push(note(t("rejectsMore").replace("{n}", String(rows.length)).replace("{total}", String(r.total))));
    list.replaceChildren(...items);
  }
  function flyToSensor(a) {
    if (!S.viewState || a.lon === null || a.lon === undefined || a.lat === null || a.lat === undefined) return;
    S.viewState = Object.assign({}, S.viewState, {longitude: a.lon, latitude: a.lat, zoom: Math.max(S.viewState.zoom, 16),
      transitionDuration: 800, transitionInterpolator: new D.FlyToInterpolator()});
    T.flyTo = {sensor_id: a.sensor_id, longitude: a.lon, latitude: a.lat};
    syncViews();
    const f = S.sensors && (S.sensors.features || []).find((x) => x.properties.sensor_id === a.sensor_id);
    if (f) inspect({layer: {id: "sensors-a"}, object: f}, "a");  // its attributes, as a click on the map shows them
  }

  // ---------------------------------------------------------------- start
  async function loadSensors() {
    const [latest, alerts, feeds, rejects] = await Promise.allSettled(
      [api("/api/sensors/latest"), api("/api/sensors/alerts"), api("/api/sensors/feeds"),
       api(`/api/sensors/rejects?limit=${REJECTS_SHOWN}`)]);
    if (latest.status === "fulfilled") {
      S.sensors = latest.value; S.sensorsAt = Date.now(); render(); renderMeasuredButton();
      T.staleSensors = (S.sensors.features || []).filter((f) => f.properties.stale).map((f) => f.properties.sensor_id);
    }
    S.alerts = alerts.status === "fulfilled" ? (alerts.value.alerts || []) : null;
    S.alertsRefused = alerts.status === "fulfilled" ? null : {status: alerts.reason && alerts.reason.status,
      message: String(alerts.reason && alerts.reason.message ? alerts.reason.message : alerts.reason)};
    S.feeds = feeds.status === "fulfilled" ? feeds.value : null;  // a role without the right (403): no banner
    T.feeds = S.feeds;
    S.rejects = rejects.status === "fulfilled" ? rejects.value : null;  // 403: no box
    renderFeeds();
    renderAlerts();
    renderRejects();
    renderMeasuredButton();
  }
  async function start() {
    applyI18n();
    try {
      const [who, scene] = await Promise.all([api("/api/whoami"), api("/api/scene")]);
      S.role = who.role;
      $("who").textContent = roleName(who.role);
      S.can = who.can || [];
      // only what the role may do: a viewer has no runs to start, only a regulator or admin checks BIM
      $("sim-box").hidden = !S.can.includes("simulate");
      $("bim-box").hidden = !S.can.includes("bim");
      S.needToken = false; S.tokenError = ""; S.tokenOpen = false;
      renderToken();
      S.scene = scene;
      S.results = S.scene.results;
      fillScenarioSelects();
      S.viewState = fitCamera();
      T.scene = {bounds: S.scene.bounds, camera: S.viewState};
      // buildings first: their tiles go out alone; the bitmaps and results follow once they are in
      S.buildingsOnly = true;
      render();
      applyI18n();
      await Promise.race([firstBuildings, new Promise((r) => setTimeout(r, 4000))]);
      S.buildingsOnly = false;
      await prepareScenario(S.scenarioA);
      buildSeries();
      render();
      applyI18n();
      loadSensors();
      setInterval(loadSensors, 10000);
      T.pollSensors = () => loadSensors();  // tests need not wait for the poll
      await syncScenarios({quiet: true});  // the versions to compare the next looks with
      setInterval(() => syncScenarios(), 15000);
      T.syncNow = () => syncScenarios();  // tests need not wait for the poll
      document.addEventListener("visibilitychange", () => { if (!document.hidden) syncScenarios(); });
      loadBookmarks();
      initWhatif();
      try { engines = await api("/api/jobs/engines"); enginesRefused = null; } catch (e) { engines = null; enginesRefused = {status: e.status, message: e.message}; }
      if (S.scene.layers.pois) {
        try {
          const pf = await api("/api/layers/pois/features?columns=kind&limit=10000");
          S.poiKinds = Array.from(new Set(pf.features.map((f) => f.properties.kind).filter(Boolean))).sort();
        } catch (e) { /* an access run from the map then asks for fire stations */ }
      }
      renderEngines();
      try {
        const rs = await api("/api/bim/rulesets");
        const sel = $("bim-ruleset");
        sel.innerHTML = "";
        rs.forEach((r) => { const o = document.createElement("option"); o.value = r.name; o.textContent = r.title || r.name; sel.appendChild(o); });
      } catch (e) { /* regulators only need it */ }
      T.ready = true;
    } catch (e) {
      showError(e); T.startError = String(e);
      // no token (or a role that may not see the map): the boxes that wait for the server say why, not "loading"
      S.startFailed = {status: e.status, message: String(e && e.message ? e.message : e)};
      renderEngines(); renderAlerts();
    }
  }

  $("lang-toggle").addEventListener("click", () => { S.lang = S.lang === "zh" ? "en" : "zh"; localStorage.setItem("twin.lang", S.lang); applyI18n(); });
  $("colour-by").addEventListener("change", (e) => { S.colourBy = e.target.value; render(); });
  $("time-slider").addEventListener("input", onSlider);
  $("series-select").addEventListener("change", (e) => { S.seriesIdx = Number(e.target.value); configureSlider(); renderRunSelect(); });
  $("run-select").addEventListener("change", (e) => pickRun(e.target.value, "a").catch(showError));
  $("run-select-b").addEventListener("change", (e) => pickRun(e.target.value, "b").catch(showError));
  $("play").addEventListener("click", () => setPlaying(!S.playing));
  $("bookmark-save").addEventListener("click", saveBookmark);
  $("compare-toggle").addEventListener("change", (e) => setCompare(e.target.checked).catch(showError));
  $("scenario-a").addEventListener("change", (e) => showScenario(e.target.value).catch(showError));
  $("scenario-b").addEventListener("change", async (e) => { S.scenarioB = e.target.value; clearInspect(); await prepareScenario(S.scenarioB, "b"); buildSeries(); renderLabels(); render(); });
  $("bim-form").addEventListener("submit", submitBim);
  // a rules file of one's own replaces the shipped rule set: the list is greyed out while one is chosen
  $("bim-rules").addEventListener("change", (e) => { $("bim-ruleset").disabled = e.target.files.length > 0; });
  $("bim-pick").addEventListener("click", () => { if (S.draw) cancelDraw(); S.bimPicking = !S.bimPicking; renderBimSite(); });
  $("bim-site-clear").addEventListener("click", () => setBimSite(null));
  window.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && S.bimPicking) { S.bimPicking = false; renderBimSite(); } });
  window.addEventListener("keydown", (ev) => {
    if (!S.draw) return;
    const tag = ev.target && ev.target.tagName;
    const typing = ["INPUT", "SELECT", "TEXTAREA", "BUTTON"].includes(tag) && ev.target.id !== "whatif-levee-height";
    if (ev.key === "Escape") { ev.preventDefault(); cancelDraw(); }
    else if (ev.key === "Enter" && !typing) { ev.preventDefault(); finishDraw(); }
  });
  // a double-click ends the shape at its point (deck.gl may not report its clicks as clicks)
  $("maps").addEventListener("dblclick", (ev) => {
    if (!S.draw) return;
    ev.preventDefault();
    const side = ev.target.closest && ev.target.closest("#map-b") ? "b" : "a";
    const vp = T.decks[side] && T.decks[side].getViewports()[0];
    const rect = $("map-" + side).getBoundingClientRect();
    const x = ev.clientX - rect.left, y = ev.clientY - rect.top;
    const c = vp && vp.unproject([x, y]);
    const last = S.draw.last;
    if (c && !(last && Math.hypot(x - last.x, y - last.y) < 6)) addVertex({x, y, coordinate: c});
    finishDraw();
  });
  $("whatif-form").addEventListener("submit", createScenario);
  $("whatif-delete").addEventListener("click", () => deleteScenario().catch(showError));
  $("whatif-undo").addEventListener("click", () => undoEdit().catch(showError));
  $("whatif-draw-area").addEventListener("click", () => startDraw("area"));
  $("whatif-draw-levee").addEventListener("click", () => startDraw("levee"));
  $("whatif-finish").addEventListener("click", () => finishDraw());
  $("whatif-cancel").addEventListener("click", () => cancelDraw());
  function signIn() { S.token = $("token-input").value.trim(); localStorage.setItem("twin.token", S.token); location.reload(); }
  $("token-save").addEventListener("click", signIn);
  $("token-input").addEventListener("keydown", (ev) => { if (ev.key === "Enter") { ev.preventDefault(); signIn(); } });
  $("token-change").addEventListener("click", () => { S.tokenOpen = true; renderToken(); $("token-input").focus(); });
  window.addEventListener("resize", () => render());
  start();
})();
