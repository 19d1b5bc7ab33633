/* The operations-centre dashboard (docs/serving.md, "Dashboard").

   Reads /api/v1 with the session cookie every REFRESH_MS and draws the KPI tiles and the ECharts
   panels. Every string that comes from data (site names, ids, alert fields, pollutant names) goes
   into the DOM with textContent or into a canvas (ECharts, tooltips in richText mode): never
   innerHTML, so nothing in the data can execute. */
"use strict";

(function () {
  const I18N = window.CITYPIPE_I18N;
  const API = "/api/v1";
  const REFRESH_MS = 60 * 1000;
  const LANG_KEY = "citypipe.lang";
  const TREND_DAYS = 30;
  // HJ 633 Table 2 (2026 Table 1) category colours, categories 1..6 (standards.md §1.4).
  const AQI_COLOURS = ["#00e400", "#ffff00", "#ff7e00", "#ff0000", "#99004c", "#7e0023"];
  const AQI_UPPER = [50, 100, 150, 200, 300];
  // GB 3838 classes I..V and 劣V (6), coloured by the grade of the 2011 assessment method:
  // I–II blue (优), III green (良好), IV yellow, V orange, 劣V red.
  const WATER_COLOURS = ["#7fd8ff", "#1e88e5", "#2ecc40", "#ffdc00", "#ff851b", "#ff2e2e"];
  // ASCII numerals: the canvas font fallback drew no glyph for U+2164 (Ⅴ) here.
  const CLASS_LABELS = ["", "I", "II", "III", "IV", "V", "劣V"];
  const CLASS_NUMBERS = { I: 1, II: 2, III: 3, IV: 4, V: 5 };
  // TPI levels [0,2) [2,4) [4,6) [6,8) [8,10] (standards.md §6).
  const TPI_COLOURS = ["#2ecc71", "#a4de02", "#ffd600", "#ff8f00", "#d50000"];
  const DEPTH_COLOURS = ["#4fc3f7", "#ffd600", "#ff8f00", "#ff1744"];
  const POLLUTANTS = {
    pm25: "PM2.5", pm10: "PM10", so2: "SO₂", no2: "NO₂", co: "CO", o3: "O₃",
    o3_8h: "O₃-8h", o3_1h: "O₃-1h",
  };
  const SCOPE_ORDER = ["county", "old_town", "other_districts"];

  let lang = readLang();
  const state = { sites: null, siteById: {}, data: null, charts: {}, timer: null };

  // ---------------------------------------------------------------- small helpers

  function readLang() {
    try {
      return window.localStorage.getItem(LANG_KEY) === "en" ? "en" : "zh";
    } catch (e) {
      return "zh";
    }
  }

  function t(key) {
    const table = I18N[lang];
    return key in table ? table[key] : key;
  }

  function fmt(value, decimals) {
    if (value === null || value === undefined || Number.isNaN(Number(value))) return "—";
    return Number(value).toFixed(decimals);
  }

  function setText(root, field, text) {
    const el = root.querySelector('[data-field="' + field + '"]');
    if (el) el.textContent = text === null || text === undefined ? "—" : String(text);
    return el;
  }

  function setBadge(el, status) {
    if (!el) return;
    const s = status === "final" || status === "provisional" || status === "mixed" ? status : "none";
    el.dataset.status = s;
    el.textContent = t("status_" + s);
  }

  function combinedStatus(statuses) {
    const known = statuses.filter((s) => s === "final" || s === "provisional");
    if (known.length === 0) return "none";
    if (known.every((s) => s === "final")) return "final";
    if (known.every((s) => s === "provisional")) return "provisional";
    return "mixed";
  }

  function aqiCategory(aqi, level) {
    if (level >= 1 && level <= 6) return level;
    if (aqi === null || aqi === undefined) return 0;
    for (let i = 0; i < AQI_UPPER.length; i++) if (aqi <= AQI_UPPER[i]) return i + 1;
    return 6;
  }

  function tpiLevel(tpi) {
    if (tpi === null || tpi === undefined) return 0;
    return Math.min(5, Math.floor(Number(tpi) / 2) + 1);
  }

  function siteName(siteId) {
    const site = state.siteById[siteId];
    if (!site) return String(siteId);
    return (lang === "zh" ? site.name_zh : site.name_en) || site.site_id;
  }

  function scopeName(scope) {
    const names = t("scopes");
    return names[scope] || String(scope);
  }

  function pollutantNames(value) {
    if (value === null || value === undefined) return t("none");
    const list = Array.isArray(value) ? value : String(value).split(/[,;\s]+/);
    const shown = list.filter(Boolean).map((p) => POLLUTANTS[String(p).toLowerCase()] || String(p));
    return shown.length ? shown.join(", ") : t("none");
  }

  function addDays(day, n) {
    const d = new Date(day + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() + n);
    return d.toISOString().slice(0, 10);
  }

  function daysBetween(a, b) {
    return Math.round((Date.parse(b + "T00:00:00Z") - Date.parse(a + "T00:00:00Z")) / 86400000);
  }

  function timeZone() {
    return (state.sites && state.sites.timezone) || "Asia/Shanghai";
  }

  function localDay(date) {
    // en-CA formats as YYYY-MM-DD.
    return new Intl.DateTimeFormat("en-CA", {
      timeZone: timeZone(), year: "numeric", month: "2-digit", day: "2-digit",
    }).format(date);
  }

  function localTime(iso, withDate) {
    if (!iso) return "—";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    const opts = { timeZone: timeZone(), hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
    if (withDate) Object.assign(opts, { month: "2-digit", day: "2-digit" });
    else opts.second = "2-digit";
    // MM-DD HH:mm:ss in the city's time, the same in both languages
    const part = {};
    for (const p of new Intl.DateTimeFormat("en-GB", opts).formatToParts(d)) part[p.type] = p.value;
    const clock = part.hour + ":" + part.minute + (withDate ? "" : ":" + part.second);
    return withDate ? part.month + "-" + part.day + " " + clock : clock;
  }

  async function getJson(path, params) {
    const query = params ? "?" + new URLSearchParams(params).toString() : "";
    const response = await fetch(API + path + query, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (response.status === 401) {
      // The session expired or the server restarted: sign in again, then come back.
      window.location.assign("/login?next=/");
      throw new Error("signed out");
    }
    if (!response.ok) {
      const err = new Error(path + ": HTTP " + response.status);
      err.status = response.status;
      throw err;
    }
    return response.json();
  }

  // ---------------------------------------------------------------- loading

  // Two stages: the tiles, the alerts and the depths come first (one round of requests), the
  // chart series of the pack's day second, so the tiles never wait for the charts.
  async function load() {
    const stateEl = document.getElementById("load-state");
    try {
      const [sites, good, pack, depths, alerts, wet] = await Promise.all([
        state.sites ? Promise.resolve(state.sites) : getJson("/sites"),
        getJson("/air/good-days"),
        getJson("/pack/latest"),
        getJson("/waterlogging/depths"),
        getJson("/alerts/active"),
        getJson("/live/waterlogging/current"),
      ]);
      if (!state.sites) {
        state.sites = sites;
        for (const s of sites.sites) state.siteById[s.site_id] = s;
      }
      const day = pack.date;
      const before = state.data && state.data.day === day ? state.data : null;
      state.data = {
        good: good.good_days, pack, day, depths: depths.rows, alerts: alerts.alerts,
        // the intra-day run's events of the open day, when that day is newer than the pack
        liveWet: wet.last_run && wet.last_run.open_day && day && wet.last_run.open_day > day ? wet : null,
        daily: before ? before.daily : [], hourly: before ? before.hourly : [],
        hourlyDay: before ? before.hourlyDay : day, hourlyLive: before ? before.hourlyLive : false,
        tpi: before ? before.tpi : [], events: before ? before.events : [],
        updatedAt: new Date(),
      };
      renderHeader();
      renderTiles();
      renderAlerts();
      if (performance.getEntriesByName("citypipe:tiles").length === 0) {
        // When the tiles first showed their values (bench/bench_dashboard.py reads it).
        performance.mark("citypipe:tiles");
      }
      if (day) {
        const today = localDay(new Date());
        const lag = daysBetween(day, today);
        const eventsEnd = lag >= 0 && lag <= 30 ? today : day;
        // The open day's hourly AQI (provisional, /api/v1/live, issue 11 item 2) when the
        // ingest DAG has computed one newer than the pack; else the pack day's hours.
        const [daily, hourly, tpi, events, live] = await Promise.all([
          getJson("/kpis/air.aqi", {
            level: "county", start: addDays(day, 1 - TREND_DAYS), end: day,
          }),
          getJson("/air/stations/hourly", { site_id: "county", start: day, end: day, limit: 100 }),
          getJson("/traffic/tpi", { start: day, end: day, limit: 10000 }),
          getJson("/waterlogging/events", { start: day, end: eventsEnd, limit: 10000 }),
          getJson("/live/air/hourly", { site_id: "county", limit: 100 }),
        ]);
        const fresh = live.day && live.day > day && live.rows.length > 0;
        Object.assign(state.data, {
          daily: daily.rows, tpi: tpi.rows, events: events.rows,
          hourly: fresh ? live.rows : hourly.rows, hourlyDay: fresh ? live.day : day,
          hourlyLive: fresh,
        });
      }
      await new Promise((resolve) => whenEcharts(() => resolve(renderCharts())));
      stateEl.dataset.state = "ok";
      stateEl.dataset.i18n = "ok";
    } catch (err) {
      stateEl.dataset.state = err && err.status === 503 ? "not-ready" : "failed";
      stateEl.dataset.i18n = err && err.status === 503 ? "not_ready" : "failed";
      stateEl.title = String(err && err.message ? err.message : err);
    }
    stateEl.textContent = t(stateEl.dataset.i18n);
    state.timer = window.setTimeout(load, REFRESH_MS);
  }

  // ECharts (1.1 MB) is loaded after this script, so the first requests leave before it is
  // parsed; DOMContentLoaded comes once every deferred script has run.
  function whenEcharts(fn) {
    if (window.echarts) fn();
    else window.addEventListener("DOMContentLoaded", fn, { once: true });
  }

  // ---------------------------------------------------------------- tiles

  function packRow(kpiId, dimension) {
    const rows = (state.data.pack && state.data.pack.kpis) || [];
    return rows.find((r) => r.kpi_id === kpiId && r.dimension === dimension) || null;
  }

  function tile(kpiId) {
    return document.querySelector('.tile[data-kpi="' + kpiId + '"]');
  }

  function verdict(el, meets) {
    if (!el) return;
    el.dataset.verdict = meets === true ? "meets" : meets === false ? "misses" : "";
    el.textContent = meets === true ? t("meets") : meets === false ? t("misses") : "";
  }

  function renderTiles() {
    const d = state.data;

    const g = d.good;
    let el = tile("air.good_days_ratio");
    setText(el, "value", fmt(g && g.ytd_ratio_pct, 1));
    setText(el, "target", fmt(g && g.target_pct, 0));
    setText(el, "days", g ? g.ytd_good_days + "/" + g.ytd_valid_days : "—");
    setText(el, "budget", g ? g.remaining_nongood_budget_days : "—");
    verdict(el.querySelector('[data-field="verdict"]'), g ? g.ytd_meets_target : null);
    setBadge(el.querySelector('[data-field="status"]'), g && g.status);
    el.dataset.reachable = g && g.target_reachable === false ? "false" : "true";
    el.dataset.state = "ready";

    for (const kpiId of ["water.class_ii_share", "water.drinking_source_compliance"]) {
      const r = packRow(kpiId, "county");
      el = tile(kpiId);
      const det = (r && r.details) || {};
      setText(el, "value", fmt(r && r.value, 1));
      setText(el, "target", fmt(r && r.target, 0));
      setText(el, "counts", r && r.value_text ? r.value_text : "—");
      setText(el, "year", fmt(det.year_pct, 1));
      const meets = r && r.value !== null && r.target !== null ? r.value >= r.target : null;
      verdict(el.querySelector('[data-field="verdict"]'), meets);
      setBadge(el.querySelector('[data-field="status"]'), r && r.status);
      el.dataset.state = "ready";
    }

    const aqi = packRow("air.aqi", "county");
    el = tile("air.aqi");
    const aqiDet = (aqi && aqi.details) || {};
    const cat = aqiCategory(aqi && aqi.value, aqiDet.aqi_level);
    setText(el, "value", fmt(aqi && aqi.value, 0));
    setText(el, "category", cat ? t("aqi_categories")[cat - 1] : t("no_data"));
    el.querySelector('[data-field="swatch"]').style.backgroundColor = cat ? AQI_COLOURS[cat - 1] : "transparent";
    setText(el, "primary", pollutantNames(aqiDet.primary_pollutants));
    setBadge(el.querySelector('[data-field="status"]'), aqi && aqi.status);
    el.dataset.state = "ready";

    const ev = packRow("waterlogging.events", "county");
    const depth = packRow("waterlogging.max_depth", "county");
    el = tile("waterlogging.events");
    const evDet = (ev && ev.details) || {};
    setText(el, "value", fmt(ev && ev.value, 0));
    setText(el, "max_depth", fmt(depth && depth.value, 1));
    setText(el, "ongoing", evDet.n_ongoing === undefined ? "—" : evDet.n_ongoing);
    setText(el, "points", evDet.n_points_reporting === undefined ? "—"
      : evDet.n_points_reporting + "/" + evDet.n_points);
    setBadge(el.querySelector('[data-field="status"]'), combinedStatus([ev && ev.status, depth && depth.status]));
    const live = d.liveWet;
    el.querySelector('[data-field="today-line"]').hidden = !live;
    setText(el, "today", live ? live.events.length : "—");
    setText(el, "today_ongoing", live ? live.open_events : "—");
    el.dataset.state = "ready";

    const tp = packRow("traffic.tpi", "old_town");
    const ch = packRow("traffic.congested_hours", "old_town");
    el = tile("traffic.tpi");
    const lvl = tpiLevel(tp && tp.value);
    setText(el, "value", fmt(tp && tp.value, 2));
    setText(el, "level", lvl ? t("tpi_levels")[lvl - 1] : t("no_data"));
    el.querySelector('[data-field="swatch"]').style.backgroundColor = lvl ? TPI_COLOURS[lvl - 1] : "transparent";
    setText(el, "congested", fmt(ch && ch.value, 0));
    setBadge(el.querySelector('[data-field="status"]'), combinedStatus([tp && tp.status, ch && ch.status]));
    el.dataset.state = "ready";
  }

  // ---------------------------------------------------------------- charts

  const TEXT = "#cfe3ff";
  const GRID_LINE = "rgba(120, 170, 230, 0.15)";
  const PROVISIONAL_DECAL = {
    symbol: "rect", dashArrayX: [1, 0], dashArrayY: [3, 5], rotation: -Math.PI / 4,
    color: "rgba(0, 0, 0, 0.45)",
  };

  function chart(id) {
    if (!state.charts[id]) {
      state.charts[id] = window.echarts.init(document.getElementById(id), "dark", { renderer: "canvas" });
    }
    return state.charts[id];
  }

  function base() {
    // Tooltips in richText mode are drawn on the canvas: data never becomes HTML.
    return {
      backgroundColor: "transparent",
      animation: false,
      textStyle: { color: TEXT, fontFamily: '"Noto Sans CJK SC", "WenQuanYi Micro Hei", "Microsoft YaHei", system-ui, sans-serif' },
      tooltip: { renderMode: "richText", confine: true },
    };
  }

  function panelStatus(panelId, status) {
    setBadge(document.querySelector("#" + panelId + " [data-field=status]"), status);
  }

  function renderAqi() {
    const d = state.data;
    const byDay = {};
    for (const r of d.daily) if (r.dimension === "county") byDay[r.local_date] = r;
    const days = [];
    if (d.day) for (let i = TREND_DAYS - 1; i >= 0; i--) days.push(addDays(d.day, -i));
    const bars = days.map((day) => {
      const r = byDay[day];
      if (!r || r.value === null) return { value: null };
      const cat = aqiCategory(r.value, r.details && r.details.aqi_level);
      return {
        value: r.value,
        status: r.status,
        itemStyle: {
          color: AQI_COLOURS[cat - 1],
          decal: r.status === "provisional" ? PROVISIONAL_DECAL : "none",
        },
      };
    });
    chart("chart-aqi-daily").setOption(Object.assign(base(), {
      title: { text: t("daily_aqi") + "  (" + t("provisional_hatched") + ")", textStyle: { color: TEXT, fontSize: 13, fontWeight: "normal" }, left: 8, top: 0 },
      grid: { left: 44, right: 40, top: 32, bottom: 28 },
      xAxis: { type: "category", data: days.map((x) => x.slice(5)), axisLabel: { color: TEXT } },
      yAxis: { type: "value", min: 0, axisLabel: { color: TEXT }, splitLine: { lineStyle: { color: GRID_LINE } } },
      tooltip: Object.assign(base().tooltip, {
        trigger: "item",
        formatter: (p) => days[p.dataIndex] + "\nAQI " + p.value + " · " +
          t("aqi_categories")[aqiCategory(p.value) - 1] + "\n" + t("status_" + (p.data.status || "none")),
      }),
      series: [{
        type: "bar", data: bars, barMaxWidth: 22,
        markLine: {
          symbol: "none", silent: true, label: { color: TEXT, formatter: "{c}" },
          lineStyle: { type: "dashed" },
          data: [{ yAxis: 100, lineStyle: { color: AQI_COLOURS[1] } }, { yAxis: 200, lineStyle: { color: AQI_COLOURS[3] } }],
        },
      }],
    }), true);

    // A live row is "provisional" (intraday) or "final" (packed by the daily run, which has its
    // own look-back status in kpi_status); a pack row carries the pack status.
    const hourStatus = (r) => (r.status === "final" && r.kpi_status ? r.kpi_status : r.status);
    const hours = d.hourly.filter((r) => r.scope === "county").slice().sort((a, b) => (a.hour_end < b.hour_end ? -1 : 1));
    const labels = hours.map((r) => {
      const h = Number(String(r.hour_end_local).slice(11, 13));
      return (h === 0 ? 24 : h) + t("hour");
    });
    chart("chart-aqi-hourly").setOption(Object.assign(base(), {
      title: { text: t("hourly_aqi") + "  " + (d.hourlyDay || "") + (d.hourlyLive ? "  " + t("open_day") : ""), textStyle: { color: TEXT, fontSize: 13, fontWeight: "normal" }, left: 8, top: 0 },
      grid: { left: 44, right: 40, top: 30, bottom: 24 },
      xAxis: { type: "category", data: labels, axisLabel: { color: TEXT } },
      yAxis: { type: "value", min: 0, splitNumber: 3, axisLabel: { color: TEXT }, splitLine: { lineStyle: { color: GRID_LINE } } },
      tooltip: Object.assign(base().tooltip, {
        trigger: "item",
        formatter: (p) => labels[p.dataIndex] + "  AQI " + (p.value === null ? "—" : p.value) + "\n" + t("status_" + (p.data.status || "none")),
      }),
      series: [{
        type: "bar", barMaxWidth: 16,
        data: hours.map((r) => ({
          value: r.aqi,
          status: hourStatus(r),
          itemStyle: {
            color: r.aqi === null ? "transparent" : AQI_COLOURS[aqiCategory(r.aqi, r.aqi_level) - 1],
            decal: hourStatus(r) === "provisional" ? PROVISIONAL_DECAL : "none",
          },
        })),
      }],
    }), true);
    panelStatus("panel-aqi", combinedStatus(d.daily.map((r) => r.status).concat(hours.map(hourStatus))));
  }

  function renderWater() {
    const d = state.data;
    const sections = ((state.sites && state.sites.sites) || [])
      .filter((s) => s.kind === "water_section")
      .sort((a, b) => (a.site_id < b.site_id ? 1 : -1)); // first section on top
    const rows = sections.map((s) => packRow("water.section_class", s.site_id));
    const names = sections.map((s) => siteName(s.site_id));
    chart("chart-water").setOption(Object.assign(base(), {
      grid: { left: 8, right: 40, top: 28, bottom: 24, containLabel: true },
      legend: { top: 0, right: 8, textStyle: { color: TEXT }, data: [t("class_axis"), t("target_class")] },
      xAxis: {
        type: "value", min: 0, max: 6, interval: 1,
        axisLabel: { color: TEXT, showMaxLabel: true, formatter: (v) => CLASS_LABELS[v] || "" },
        splitLine: { lineStyle: { color: GRID_LINE } },
      },
      yAxis: { type: "category", data: names, axisLabel: { color: TEXT, width: 150, overflow: "truncate", interval: 0, fontSize: 11 } },
      tooltip: Object.assign(base().tooltip, {
        trigger: "item",
        formatter: (p) => {
          const r = rows[p.dataIndex];
          const cls = r && r.value !== null ? CLASS_LABELS[r.value] + " · " + t("water_grades")[r.value] : t("no_data");
          return names[p.dataIndex] + "\n" + t("class_axis") + " " + cls + "\n" +
            t("target_class") + " " + (sections[p.dataIndex].attrs.target_class || "—") + "\n" +
            t("status_" + ((r && r.status) || "none"));
        },
      }),
      series: [
        {
          name: t("class_axis"), type: "bar", barMaxWidth: 14,
          itemStyle: { color: WATER_COLOURS[1] },
          data: rows.map((r) => {
            if (!r || r.value === null) return { value: null };
            return {
              value: r.value,
              itemStyle: {
                color: WATER_COLOURS[r.value - 1],
                decal: r.status === "provisional" ? PROVISIONAL_DECAL : "none",
              },
            };
          }),
          label: {
            show: true, position: "right", color: TEXT,
            formatter: (p) => (p.value ? CLASS_LABELS[p.value] : t("no_data")),
          },
        },
        {
          name: t("target_class"), type: "scatter", symbol: "diamond", symbolSize: 9,
          itemStyle: { color: "#ffffff" },
          data: sections.map((s, i) => [CLASS_NUMBERS[s.attrs.target_class] || null, names[i]]),
        },
      ],
    }), true);
    panelStatus("panel-water", combinedStatus(rows.filter(Boolean).map((r) => r.status)));
  }

  function depthLevel(site, depth) {
    if (depth === null || depth === undefined) return -1;
    const a = site.attrs || {};
    if (depth > (a.danger_cm || 40)) return 3;
    if (depth > (a.closure_cm || 25)) return 2;
    if (depth > (a.waterlogging_cm || 15)) return 1;
    return 0;
  }

  function renderWaterlogging() {
    const d = state.data;
    const points = ((state.sites && state.sites.sites) || []).filter((s) => s.feed === "waterlogging");
    const depthBy = {};
    for (const r of d.depths) depthBy[r.site_id] = r;
    const eventsBy = {};
    const seen = new Set();
    const all = d.events.concat(d.liveWet ? d.liveWet.events : []).filter((e) => {
      const key = e.site_id + "|" + e.event_start;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
    for (const e of all) {
      const x = eventsBy[e.site_id] || (eventsBy[e.site_id] = { n: 0, peak: null, open: 0 });
      x.n += 1;
      const peak = e.peak_depth_cm;
      if (peak !== undefined && peak !== null && (x.peak === null || peak > x.peak)) x.peak = peak;
      if (e.status === "ongoing" || e.event_status === "ongoing") x.open += 1;
    }
    const info = (s) => {
      const r = depthBy[s.site_id];
      const ev = eventsBy[s.site_id];
      return siteName(s.site_id) + "\n" + t("current_depth") + " " +
        (r ? fmt(r.depth_cm, 1) + " cm · " + localTime(r.observed_at, true) : t("no_data")) +
        "\n" + t("events_today") + " " + (ev ? ev.n + " (" + t("event_peak") + " " + fmt(ev.peak, 1) + " cm)" : "0");
    };
    const depthData = points.map((s) => {
      const r = depthBy[s.site_id];
      const lvl = depthLevel(s, r ? r.depth_cm : null);
      return {
        value: [s.lon, s.lat, r ? r.depth_cm : null],
        site: s,
        symbolSize: r ? 10 + Math.min(Number(r.depth_cm) || 0, 60) * 0.6 : 8,
        itemStyle: lvl < 0
          ? { color: "transparent", borderColor: "#7a8ca5", borderWidth: 1 }
          : { color: DEPTH_COLOURS[lvl], opacity: 0.9 },
        label: { show: !!r && Number(r.depth_cm) > 0, formatter: r ? fmt(r.depth_cm, 0) : "", color: TEXT, position: "top" },
      };
    });
    const eventData = points.filter((s) => eventsBy[s.site_id]).map((s) => ({
      value: [s.lon, s.lat, eventsBy[s.site_id].n],
      site: s,
    }));
    chart("chart-waterlogging").setOption(Object.assign(base(), {
      grid: { left: 8, right: 16, top: 28, bottom: 8, containLabel: false },
      legend: { top: 0, right: 8, textStyle: { color: TEXT }, data: [t("current_depth"), t("events_today")] },
      xAxis: { type: "value", scale: true, show: false },
      yAxis: { type: "value", scale: true, show: false },
      tooltip: Object.assign(base().tooltip, { trigger: "item", formatter: (p) => info(p.data.site) }),
      series: [
        { name: t("current_depth"), type: "scatter", data: depthData, itemStyle: { color: DEPTH_COLOURS[0] } },
        {
          name: t("events_today"), type: "scatter", data: eventData, symbol: "emptyCircle", symbolSize: 30,
          itemStyle: { color: "#ff1744", borderColor: "#ff1744", borderWidth: 2 },
          label: { show: true, position: "right", color: "#ff8a80", formatter: (p) => "×" + p.value[2] },
        },
      ],
    }), true);
    // Current depths are the newest raw readings, and events of the last days may still grow or
    // be restated (their own status says closed or ongoing): the panel is provisional.
    panelStatus("panel-waterlogging", d.depths.length || all.length ? "provisional" : "none");
  }

  function renderTraffic() {
    const d = state.data;
    const present = Array.from(new Set(d.tpi.map((r) => r.scope)));
    const scopes = SCOPE_ORDER.filter((s) => present.includes(s))
      .concat(present.filter((s) => !SCOPE_ORDER.includes(s)).sort());
    const hours = Array.from({ length: 24 }, (_, h) => h);
    const data = d.tpi.map((r) => [
      Number(String(r.hour_start).slice(11, 13)), scopes.indexOf(r.scope), r.tpi,
    ]).filter((x) => x[2] !== null);
    const levels = t("tpi_levels");
    chart("chart-traffic").setOption(Object.assign(base(), {
      grid: { left: 8, right: 16, top: 12, bottom: 56, containLabel: true },
      xAxis: { type: "category", data: hours.map((h) => String(h).padStart(2, "0")), axisLabel: { color: TEXT }, splitArea: { show: false } },
      yAxis: { type: "category", inverse: true, data: scopes.map(scopeName), axisLabel: { color: TEXT } },
      visualMap: {
        type: "piecewise", orient: "horizontal", left: "center", bottom: 0, dimension: 2,
        textStyle: { color: TEXT, fontSize: 11 }, itemWidth: 14, itemHeight: 10, itemGap: 8,
        pieces: [0, 2, 4, 6, 8].map((lo, i) => ({
          gte: lo, lt: lo === 8 ? 10.0001 : lo + 2, label: t("tpi_levels_short")[i], color: TPI_COLOURS[i],
        })),
      },
      tooltip: Object.assign(base().tooltip, {
        trigger: "item",
        formatter: (p) => scopeName(scopes[p.value[1]]) + " · " + String(p.value[0]).padStart(2, "0") +
          ":00–" + String(p.value[0] + 1).padStart(2, "0") + ":00\nTPI " + fmt(p.value[2], 2) +
          " · " + levels[tpiLevel(p.value[2]) - 1],
      }),
      series: [{ type: "heatmap", data, itemStyle: { borderColor: "#07111f", borderWidth: 1 } }],
    }), true);
    const tp = packRow("traffic.tpi", "county");
    panelStatus("panel-traffic", d.tpi.length ? (tp && tp.status) || "provisional" : "none");
  }

  function renderAlerts() {
    const body = document.getElementById("alerts-body");
    const rows = state.data.alerts || [];
    const trs = rows.map((a) => {
      const tr = document.createElement("tr");
      tr.dataset.level = String(a.level_no);
      const kinds = t("alert_kinds");
      const levels = t("alert_levels");
      const unit = a.unit ? " " + a.unit : "";
      const cells = [
        kinds[a.kind] || a.kind,
        levels[a.level] || a.level,
        siteName(a.site_id),
        fmt(a.value, 1) + " / " + fmt(a.threshold, 1) + unit,
        localTime(a.started_at, true),
      ];
      for (const text of cells) {
        const td = document.createElement("td");
        td.textContent = text === null || text === undefined ? "—" : String(text);
        tr.appendChild(td);
      }
      return tr;
    });
    body.replaceChildren(...trs);
    document.getElementById("alerts-empty").hidden = rows.length > 0;
    document.getElementById("alerts-table").hidden = rows.length === 0;
  }

  function renderHeader() {
    document.getElementById("data-day").textContent = state.data.day || "—";
    document.getElementById("updated-at").textContent = localTime(state.data.updatedAt.toISOString(), false);
  }

  function renderCharts() {
    renderAqi();
    renderWater();
    renderWaterlogging();
    renderTraffic();
  }

  function render() {
    if (!state.data) return;
    renderHeader();
    renderTiles();
    renderAlerts();
    whenEcharts(renderCharts);
  }

  // ---------------------------------------------------------------- language

  function applyLanguage() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.title = t("page_title");
    for (const el of document.querySelectorAll("[data-i18n]")) {
      const text = t(el.dataset.i18n);
      if (typeof text === "string") el.textContent = text;
    }
    document.getElementById("lang-toggle").textContent = t("lang_button");
    render();
  }

  function start() {
    document.getElementById("lang-toggle").addEventListener("click", () => {
      lang = lang === "zh" ? "en" : "zh";
      try {
        window.localStorage.setItem(LANG_KEY, lang);
      } catch (e) {
        /* private mode: the choice lasts for this page only */
      }
      applyLanguage();
    });
    window.addEventListener("resize", () => {
      for (const c of Object.values(state.charts)) c.resize();
    });
    applyLanguage();
    load();
  }

  start();
})();
