// The data-quality report (/quality). Reads the API with the session cookie; every value from
// the API is put into the page with textContent (never as HTML), so a field holding markup or
// script shows as text.
"use strict";

(function () {
  const API = "/api/v1";
  const TZ = "Asia/Shanghai";
  const LANG_KEY = "citypipe.lang";
  const PAGE_ROWS = 25;
  const FETCH_ALL_ROWS = 10000;
  const FETCH_ALL_PAGES = 5;

  const TEXT = {
    zh: {
      title: "数据质量报告", nav_dashboard: "运行中心大屏", nav_datadocs: "GX 数据文档", logout: "退出",
      f_start: "开始日期", f_end: "结束日期", f_feed: "数据类型", f_site: "站点", all: "全部", apply: "查询",
      feed_air: "空气", feed_water: "水质", feed_waterlogging: "内涝", feed_traffic: "交通",
      t_site_days: "站点·日", t_completeness: "平均完整率", t_flagged: "规则标记（读数×规则）",
      t_quarantined: "隔离消息", t_silent: "无数据站点·日", t_flatlined: "数值僵直站点·日",
      t_missing: "序号缺失读数", t_resets: "设备重启（序号复位）",
      h_heatmap: "完整率（站点 × 日）", h_days: "按日、数据类型和站点",
      hint_days: "完整率 = 收到读数 ÷ 应收读数；有效 = 整条读数有效。标记按规则（期望）计读数，规则名含污染物或参数。隔离按接收日计。",
      h_expectations: "按规则汇总的标记读数", h_seq: "上游丢失：设备序号（seq）缺口",
      hint_seq: "合同 v1：每台设备每条读数 seq 加 1。缺口 = 序号向前跳跃（读数在到达消息服务器前丢失）；复位 = 序号回退（设备重启，不算丢失）。按后一条读数的日期计。",
      seq_only: "只显示有缺口、复位或重复的设备·日",
      days_problems: "只显示有问题的站点·日（完整率不足 100 %、有标记、隔离、无数据或数值僵直）",
      h_runs: "校验运行与 GX 数据文档", h_quarantined: "隔离的消息", h_flagged: "被标记的读数",
      csv: "下载 CSV（本页筛选条件）", prev: "上一页", next: "下一页", page: "第 {n} 页",
      rows_none: "无数据", loading: "加载中…", failed: "加载失败：", yes: "是", no: "否",
      ok: "通过", fail: "未通过", docs_page: "查看", no_docs: "—",
      foot: "时间为中国标准时间（UTC+8）；日期为自然日。",
      c_date: "日期", c_feed: "类型", c_site: "站点", c_device: "设备", c_expected: "应收", c_received: "收到",
      c_accepted: "有效", c_completeness: "完整率 %", c_valid: "有效率 %", c_flagged: "标记（规则：读数）",
      c_quarantined: "隔离（原因：消息）", c_silent: "无数据", c_flatlined: "数值僵直",
      c_expectation: "规则", c_parameter: "污染物/参数", c_readings: "读数", c_site_days: "站点·日",
      c_expected_seq: "按序号应有", c_missing: "缺失", c_gaps: "缺口", c_resets: "复位", c_repeats: "重复",
      c_anomalies: "异常明细", c_started: "开始时间", c_run: "运行编号", c_success: "结果",
      c_expectations_failed: "未通过规则 / 总数", c_rows: "行数", c_flagged_readings: "标记读数",
      c_docs: "数据文档", c_received_at: "接收时间", c_reason: "原因", c_detail: "详情", c_topic: "主题",
      c_payload: "消息片段", c_observed_at: "观测时间", c_column: "参数", c_value: "数值", c_scope: "范围",
      gap: "缺口", reset: "复位", repeat: "重复", more: "另有 {n} 条",
      heat_none: "所选范围内无完整率数据",
    },
    en: {
      title: "Data-quality report", nav_dashboard: "Operations dashboard", nav_datadocs: "GX Data Docs", logout: "Sign out",
      f_start: "Start", f_end: "End", f_feed: "Feed", f_site: "Site", all: "All", apply: "Apply",
      feed_air: "Air", feed_water: "Water", feed_waterlogging: "Waterlogging", feed_traffic: "Traffic",
      t_site_days: "Site-days", t_completeness: "Mean completeness", t_flagged: "Flagged (reading × expectation)",
      t_quarantined: "Quarantined messages", t_silent: "Silent site-days", t_flatlined: "Flat-lined site-days",
      t_missing: "Readings missing by seq", t_resets: "Reboots (seq resets)",
      h_heatmap: "Completeness (site × day)", h_days: "Per day, feed and site",
      hint_days: "Completeness = readings received ÷ expected; valid = the reading is valid as a whole. Flagged counts readings per expectation; an expectation's name carries its pollutant or parameter. Quarantine counts by the day received.",
      h_expectations: "Flagged readings by expectation", h_seq: "Loss upstream of the broker: gaps in each device's seq",
      hint_seq: "Contract v1: a device's seq goes up by 1 per reading. A gap is a jump forward (readings lost before the broker); a reset is a jump back (a reboot, not loss). Counted on the day of the later reading.",
      seq_only: "Only device-days with a gap, reset or repeat",
      days_problems: "Only site-days with a problem (completeness below 100 %, flagged, quarantined, silent or flat-lined)",
      h_runs: "Validation runs and GX Data Docs", h_quarantined: "Quarantined messages", h_flagged: "Flagged readings",
      csv: "Download CSV (these filters)", prev: "Previous", next: "Next", page: "Page {n}",
      rows_none: "No data", loading: "Loading…", failed: "Could not load: ", yes: "yes", no: "no",
      ok: "passed", fail: "failed", docs_page: "open", no_docs: "—",
      foot: "Times in China Standard Time (UTC+8); dates are natural days.",
      c_date: "Date", c_feed: "Feed", c_site: "Site", c_device: "Device", c_expected: "Expected", c_received: "Received",
      c_accepted: "Valid", c_completeness: "Completeness %", c_valid: "Valid %", c_flagged: "Flagged (expectation: readings)",
      c_quarantined: "Quarantined (reason: messages)", c_silent: "Silent", c_flatlined: "Flat-lined",
      c_expectation: "Expectation", c_parameter: "Pollutant / parameter", c_readings: "Readings", c_site_days: "Site-days",
      c_expected_seq: "Expected by seq", c_missing: "Missing", c_gaps: "Gaps", c_resets: "Resets", c_repeats: "Repeats",
      c_anomalies: "Anomalies", c_started: "Started", c_run: "Run id", c_success: "Outcome",
      c_expectations_failed: "Expectations failed / evaluated", c_rows: "Rows", c_flagged_readings: "Flagged readings",
      c_docs: "Data Docs", c_received_at: "Received", c_reason: "Reason", c_detail: "Detail", c_topic: "Topic",
      c_payload: "Payload excerpt", c_observed_at: "Observed", c_column: "Parameter", c_value: "Value", c_scope: "Scope",
      gap: "gap", reset: "reset", repeat: "repeat", more: "{n} more",
      heat_none: "No completeness data in the range",
    },
  };

  let lang = "zh";
  try {
    lang = localStorage.getItem(LANG_KEY) === "en" ? "en" : "zh";
  } catch (e) {
    lang = "zh";
  }
  const state = { filters: null, days: [], seq: [], sites: [], offsets: {}, pages: {}, chart: null };

  function t(key, vars) {
    let s = (TEXT[lang] && TEXT[lang][key]) || TEXT.zh[key] || key;
    if (vars) {
      for (const k of Object.keys(vars)) s = s.replace("{" + k + "}", String(vars[k]));
    }
    return s;
  }

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  const dateFmt = new Intl.DateTimeFormat("en-CA", { timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit" });
  const timeFmt = new Intl.DateTimeFormat("sv-SE", {
    timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
  });

  function localDay(d) {
    return dateFmt.format(d);
  }

  function localTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return isNaN(d.getTime()) ? String(iso) : timeFmt.format(d);
  }

  function num(v) {
    if (v === null || v === undefined || v === "") return "";
    return typeof v === "number" ? v.toLocaleString("en-US", { maximumFractionDigits: 2 }) : String(v);
  }

  function feedName(f) {
    return f ? t("feed_" + f) : "";
  }

  // -- language ---------------------------------------------------------------------------

  function applyLanguage() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.title = t("title") + " · citypipe";
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const node of document.querySelectorAll("[data-i18n-aria]")) node.setAttribute("aria-label", t(node.dataset.i18nAria));
    const btn = document.getElementById("lang");
    btn.textContent = lang === "zh" ? "English" : "中文";
    btn.lang = lang === "zh" ? "en" : "zh-CN";
    fillSites();
    renderAll();
  }

  // -- fetching ---------------------------------------------------------------------------

  async function getJson(path, params) {
    const url = new URL(API + path, location.origin);
    for (const [k, v] of Object.entries(params || {})) {
      if (v !== null && v !== undefined && v !== "") url.searchParams.set(k, v);
    }
    const r = await fetch(url.pathname + url.search, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (r.status === 401) {
      location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
      throw new Error("401");
    }
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(r.status + " " + (body.error || ""));
    return body;
  }

  async function fetchAll(path, params) {
    let rows = [];
    let offset = 0;
    for (let i = 0; i < FETCH_ALL_PAGES && offset !== null; i++) {
      const page = await getJson(path, Object.assign({}, params, { limit: FETCH_ALL_ROWS, offset: offset }));
      rows = rows.concat(page.rows);
      offset = page.next_offset;
    }
    return rows;
  }

  function baseParams() {
    const f = state.filters;
    return { start: f.start, end: f.end, feed: f.feed, site_id: f.site_id };
  }

  function csvHref(path, extra) {
    const url = new URL(API + path, location.origin);
    const params = Object.assign(baseParams(), { format: "csv", limit: FETCH_ALL_ROWS }, extra || {});
    for (const [k, v] of Object.entries(params)) if (v) url.searchParams.set(k, v);
    return url.pathname + url.search;
  }

  // -- filters ----------------------------------------------------------------------------

  function readFilters() {
    const q = new URLSearchParams(location.search);
    const iso = /^\d{4}-\d{2}-\d{2}$/;
    const today = localDay(new Date());
    const end = iso.test(q.get("end") || "") ? q.get("end") : today;
    let start = q.get("start");
    if (!iso.test(start || "")) {
      const d = new Date(end + "T12:00:00+08:00");
      d.setUTCDate(d.getUTCDate() - 6);
      start = localDay(d);
    }
    const feeds = ["air", "water", "waterlogging", "traffic"];
    const feed = feeds.includes(q.get("feed")) ? q.get("feed") : "";
    const site = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$/.test(q.get("site_id") || "") ? q.get("site_id") : "";
    return { start: start, end: end, feed: feed, site_id: site };
  }

  function showFilters() {
    const f = state.filters;
    document.getElementById("f-start").value = f.start;
    document.getElementById("f-end").value = f.end;
    document.getElementById("f-feed").value = f.feed;
    fillSites();
  }

  function fillSites() {
    const select = document.getElementById("f-site");
    const feed = document.getElementById("f-feed").value;
    const chosen = (state.filters && state.filters.site_id) || select.value;
    select.replaceChildren(el("option", t("all")));
    select.firstChild.value = "";
    for (const s of state.sites) {
      if (feed && s.feed !== feed) continue;
      const o = el("option", s.site_id + " · " + (lang === "zh" ? s.name_zh : s.name_en));
      o.value = s.site_id;
      select.appendChild(o);
    }
    select.value = chosen;
    if (select.value !== chosen) select.value = "";
  }

  function setStatus(text, bad) {
    const s = document.getElementById("status");
    s.textContent = text;
    s.classList.toggle("bad", !!bad);
  }

  // -- tables -----------------------------------------------------------------------------

  // Column specs: [label key, function(row) -> text or Node].
  const TABLES = {
    days: [
      ["c_date", (r) => r.local_date],
      ["c_feed", (r) => feedName(r.feed)],
      ["c_site", (r) => r.site_id],
      ["c_expected", (r) => num(r.expected_readings)],
      ["c_received", (r) => num(r.received_readings)],
      ["c_accepted", (r) => num(r.accepted_readings)],
      ["c_completeness", (r) => num(r.completeness_pct)],
      ["c_valid", (r) => num(r.valid_pct)],
      ["c_flagged", (r) => listCell(r.flagged, "expectation", "readings"), true],
      ["c_quarantined", (r) => listCell(r.quarantined, "reason", "messages"), true],
      ["c_silent", (r) => flag(r.is_silent)],
      ["c_flatlined", (r) => flag(r.is_flatlined)],
    ],
    expectations: [
      ["c_expectation", (r) => r.expectation],
      ["c_parameter", (r) => parameterOf(r.expectation)],
      ["c_readings", (r) => num(r.readings)],
      ["c_site_days", (r) => num(r.site_days)],
    ],
    seq: [
      ["c_date", (r) => r.local_date],
      ["c_feed", (r) => feedName(r.feed)],
      ["c_site", (r) => r.site_id],
      ["c_device", (r) => r.device_id],
      ["c_readings", (r) => num(r.readings)],
      ["c_expected_seq", (r) => num(r.expected_by_seq)],
      ["c_missing", (r) => num(r.missing)],
      ["c_gaps", (r) => num(r.gaps)],
      ["c_resets", (r) => num(r.resets)],
      ["c_repeats", (r) => num(r.repeats)],
      ["c_anomalies", anomalyCell, true],
    ],
    runs: [
      ["c_started", (r) => localTime(r.started_at)],
      ["c_feed", (r) => feedName(r.feed)],
      ["c_run", (r) => r.validation_run_id, true],
      ["c_success", (r) => (r.success ? t("ok") : t("fail"))],
      ["c_expectations_failed", (r) => num(r.unsuccessful_expectations) + " / " + num(r.evaluated_expectations)],
      ["c_rows", (r) => num(r.rows)],
      ["c_flagged_readings", (r) => num(r.flagged_readings)],
      ["c_flagged", (r) => listCell(r.flagged, "expectation", "readings"), true],
      ["c_docs", docsCell],
    ],
    quarantined: [
      ["c_received_at", (r) => localTime(r.received_at)],
      ["c_feed", (r) => feedName(r.feed) || r.feed],
      ["c_site", (r) => r.site_id],
      ["c_reason", (r) => r.reason, true],
      ["c_detail", (r) => r.detail, true],
      ["c_topic", (r) => r.topic, true],
      ["c_payload", (r) => r.payload_excerpt, true],
    ],
    flagged: [
      ["c_observed_at", (r) => localTime(r.observed_at)],
      ["c_feed", (r) => feedName(r.feed)],
      ["c_site", (r) => r.site_id],
      ["c_device", (r) => r.device_id],
      ["c_expectation", (r) => r.expectation],
      ["c_column", (r) => r.column_name],
      ["c_value", (r) => (r.observed_value !== null && r.observed_value !== undefined ? num(r.observed_value) : r.observed_text)],
      ["c_scope", (r) => r.scope],
    ],
  };

  // The parameter an expectation names (pm25_ugm3_in_range, flatline_no2_ugm3,
  // pm25_not_above_pm10 ...), by the tokens of its name; "" when it names none (site_in_catalogue).
  const PARAMETERS = {
    pm25: "PM2.5", pm10: "PM10", so2: "SO₂", no2: "NO₂", co: "CO", o3: "O₃",
    temp: { zh: "温度", en: "temperature" }, rh: { zh: "相对湿度", en: "humidity" },
    wind: { zh: "风", en: "wind" }, pressure: { zh: "气压", en: "pressure" }, ph: "pH",
    do: { zh: "溶解氧", en: "dissolved oxygen" }, codmn: { zh: "高锰酸盐指数", en: "CODMn" },
    nh3n: { zh: "氨氮", en: "NH₃-N" }, tp: { zh: "总磷", en: "total phosphorus" },
    tn: { zh: "总氮", en: "total nitrogen" }, conductivity: { zh: "电导率", en: "conductivity" },
    turbidity: { zh: "浊度", en: "turbidity" }, depth: { zh: "积水深度", en: "depth" },
    rain: { zh: "降雨", en: "rain" }, speed: { zh: "车速", en: "speed" },
    volume: { zh: "流量", en: "volume" }, occupancy: { zh: "占有率", en: "occupancy" },
  };

  function parameterOf(expectation) {
    const found = [];
    for (const token of String(expectation).split(/[_:]/)) {
      const p = Object.prototype.hasOwnProperty.call(PARAMETERS, token) ? PARAMETERS[token] : null;
      const label = p === null ? null : typeof p === "string" ? p : p[lang];
      if (label && !found.includes(label)) found.push(label);
    }
    return found.join(", ");
  }

  function escapeHtml(s) {
    const map = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
    return String(s).replace(/[&<>"']/g, (c) => map[c]);
  }

  function flag(v) {
    return v ? t("yes") : "";
  }

  function listCell(items, key, count) {
    return (items || []).map((x) => x[key] + ": " + num(x[count])).join("; ");
  }

  function anomalyCell(r) {
    const parts = (r.anomaly_list || []).map((a) => {
      if (a.kind === "gap") return t("gap") + " " + a.seq_from + "–" + a.seq_to + " (" + a.missing + ") @" + localTime(a.observed_at_after);
      return t(a.kind) + " " + a.seq_before + "→" + a.seq_after + " @" + localTime(a.observed_at_after);
    });
    if (r.anomalies > parts.length) parts.push(t("more", { n: r.anomalies - parts.length }));
    return parts.join("; ");
  }

  function docsCell(r) {
    const url = r.data_docs_url;
    // Only a page of this server's Data Docs site becomes a link.
    if (typeof url !== "string" || !url.startsWith("/datadocs/")) return t("no_docs");
    const a = el("a", t("docs_page"));
    a.href = url;
    a.className = "docs";
    return a;
  }

  function renderTable(name, rows) {
    const table = document.getElementById("t-" + name);
    const cols = TABLES[name];
    const head = el("tr");
    for (const [key] of cols) head.appendChild(el("th", t(key)));
    table.tHead.replaceChildren(head);
    const body = table.tBodies[0];
    const out = [];
    if (!rows.length) {
      const tr = el("tr", null, "empty");
      const td = el("td", t("rows_none"));
      td.colSpan = cols.length;
      tr.appendChild(td);
      out.push(tr);
    }
    for (const r of rows) {
      const tr = el("tr");
      for (const [, get, wrap] of cols) {
        const v = get(r);
        const td = el("td", null, wrap ? "wrap" : "nw");
        if (v instanceof Node) td.appendChild(v);
        else td.textContent = v === null || v === undefined ? "" : String(v);
        tr.appendChild(td);
      }
      out.push(tr);
    }
    body.replaceChildren(...out);
  }

  function renderPager(name, page, hasNext) {
    const box = document.querySelector('.pager[data-for="' + name + '"]');
    const prev = el("button", t("prev"));
    prev.type = "button";
    prev.disabled = page <= 0;
    prev.dataset.move = "-1";
    const next = el("button", t("next"));
    next.type = "button";
    next.disabled = !hasNext;
    next.dataset.move = "1";
    box.replaceChildren(prev, el("span", t("page", { n: page + 1 }), "pageno"), next);
  }

  // Client-side paged tables (all rows fetched once) and server-side paged ones.
  const LOCAL = { days: () => dayRows(), seq: () => seqRows(), expectations: () => expectationRows() };
  const REMOTE = {
    runs: { path: "/quality/runs", params: () => ({ start: state.filters.start, end: state.filters.end, feed: state.filters.feed }) },
    quarantined: { path: "/quality/quarantined", params: baseParams },
    flagged: { path: "/quality/flagged", params: baseParams },
  };
  const remoteRows = {};

  function hasProblem(r) {
    return (
      (r.completeness_pct !== null && r.completeness_pct !== undefined && r.completeness_pct < 100) ||
      (r.flagged || []).length > 0 || (r.quarantined || []).length > 0 || r.is_silent || r.is_flatlined
    );
  }

  function dayRows() {
    return document.getElementById("days-problems").checked ? state.days.filter(hasProblem) : state.days;
  }

  function seqRows() {
    const only = document.getElementById("seq-only").checked;
    return only ? state.seq.filter((r) => r.anomalies > 0) : state.seq;
  }

  function expectationRows() {
    const by = new Map();
    for (const r of state.days) {
      for (const f of r.flagged || []) {
        const e = by.get(f.expectation) || { expectation: f.expectation, readings: 0, site_days: 0 };
        e.readings += f.readings;
        e.site_days += 1;
        by.set(f.expectation, e);
      }
    }
    return [...by.values()].sort((a, b) => b.readings - a.readings || a.expectation.localeCompare(b.expectation));
  }

  function renderLocal(name) {
    const rows = LOCAL[name]();
    if (name === "expectations") {
      renderTable(name, rows);
      return;
    }
    const page = Math.min(state.pages[name] || 0, Math.max(0, Math.ceil(rows.length / PAGE_ROWS) - 1));
    state.pages[name] = page;
    renderTable(name, rows.slice(page * PAGE_ROWS, (page + 1) * PAGE_ROWS));
    renderPager(name, page, (page + 1) * PAGE_ROWS < rows.length);
  }

  async function loadRemote(name) {
    const spec = REMOTE[name];
    const page = state.pages[name] || 0;
    const body = await getJson(spec.path, Object.assign(spec.params(), { limit: PAGE_ROWS, offset: page * PAGE_ROWS }));
    remoteRows[name] = body;
    renderRemote(name);
  }

  function renderRemote(name) {
    const body = remoteRows[name];
    if (!body) return;
    renderTable(name, body.rows);
    renderPager(name, state.pages[name] || 0, body.next_offset !== null);
  }

  function renderSummary() {
    const days = state.days;
    const sum = (xs, f) => xs.reduce((a, x) => a + f(x), 0);
    const withExpected = days.filter((r) => r.completeness_pct !== null && r.completeness_pct !== undefined);
    const set = (id, v) => (document.getElementById(id).textContent = v);
    set("sum-site-days", num(withExpected.length));
    set("sum-completeness", withExpected.length ? num(sum(withExpected, (r) => r.completeness_pct) / withExpected.length) + " %" : "–");
    set("sum-flagged", num(sum(days, (r) => sum(r.flagged || [], (f) => f.readings))));
    set("sum-quarantined", num(sum(days, (r) => sum(r.quarantined || [], (q) => q.messages))));
    set("sum-silent", num(days.filter((r) => r.is_silent).length));
    set("sum-flatlined", num(days.filter((r) => r.is_flatlined).length));
    set("sum-missing", num(sum(state.seq, (r) => r.missing)));
    set("sum-resets", num(sum(state.seq, (r) => r.resets)));
  }

  function renderHeatmap() {
    const box = document.getElementById("heatmap");
    const rows = state.days.filter((r) => r.completeness_pct !== null && r.completeness_pct !== undefined);
    if (!rows.length || typeof echarts === "undefined") {
      if (state.chart) {
        state.chart.dispose();
        state.chart = null;
      }
      box.replaceChildren(el("p", t("heat_none"), "hint"));
      box.style.height = "auto";
      return;
    }
    // Sites across (a county has ~100), days down: a week stays a short band.
    const days = [...new Set(rows.map((r) => r.local_date))].sort().reverse();
    const sites = [...new Set(rows.map((r) => r.site_id))].sort();
    const data = rows.map((r) => [sites.indexOf(r.site_id), days.indexOf(r.local_date), Math.round(r.completeness_pct * 10) / 10]);
    const rowPx = Math.max(4, Math.min(24, Math.floor(600 / days.length)));
    box.style.height = 150 + days.length * rowPx + "px";
    if (!state.chart) {
      box.replaceChildren();
      state.chart = echarts.init(box, null, { renderer: "canvas" });
    }
    state.chart.setOption(
      {
        animation: false,
        // ECharts renders a tooltip string as HTML: escape what comes from the data.
        tooltip: { position: "top", formatter: (p) => escapeHtml(sites[p.value[0]] + " " + days[p.value[1]] + ": " + p.value[2] + " %") },
        grid: { left: 90, right: 20, top: 10, bottom: 110 },
        xAxis: { type: "category", data: sites, axisLabel: { rotate: 90, fontSize: 9, interval: 0 } },
        yAxis: { type: "category", data: days, axisLabel: { fontSize: 10 } },
        visualMap: {
          min: 0, max: 100, calculable: false, orient: "horizontal", left: "center", bottom: 0, itemHeight: 120,
          inRange: { color: ["#b2182b", "#ef8a62", "#fddbc7", "#d1e5f0", "#67a9cf", "#2166ac"] },
          text: ["100 %", "0 %"],
        },
        series: [{ name: t("c_completeness"), type: "heatmap", data: data, itemStyle: { borderColor: "#fff", borderWidth: 0.5 } }],
      },
      true
    );
    state.chart.resize();
  }

  function renderAll() {
    if (!state.filters) return;
    renderSummary();
    renderLocal("days");
    renderLocal("expectations");
    renderLocal("seq");
    for (const name of Object.keys(REMOTE)) renderRemote(name);
    renderHeatmap();
    document.getElementById("csv-seq").href = csvHref("/quality/seq-gaps");
    document.getElementById("csv-runs").href = csvHref("/quality/runs", { site_id: "" });
    document.getElementById("csv-quarantined").href = csvHref("/quality/quarantined");
    document.getElementById("csv-flagged").href = csvHref("/quality/flagged");
  }

  async function loadAll() {
    setStatus(t("loading"));
    document.body.dataset.state = "loading";
    state.pages = {};
    try {
      const params = baseParams();
      const [days, seq] = await Promise.all([fetchAll("/quality/days", params), fetchAll("/quality/seq-gaps", params)]);
      state.days = days;
      state.seq = seq;
      await Promise.all(Object.keys(REMOTE).map(loadRemote));
      renderAll();
      setStatus("");
      document.body.dataset.state = "ready";
    } catch (e) {
      setStatus(t("failed") + e.message, true);
      document.body.dataset.state = "failed";
    }
  }

  // -- wiring -----------------------------------------------------------------------------

  async function start() {
    state.filters = readFilters();
    document.getElementById("lang").addEventListener("click", () => {
      lang = lang === "zh" ? "en" : "zh";
      try {
        localStorage.setItem(LANG_KEY, lang);
      } catch (e) {
        /* private mode: the choice lasts for this page only */
      }
      applyLanguage();
    });
    document.getElementById("f-feed").addEventListener("change", () => {
      state.filters.site_id = "";
      fillSites();
    });
    document.getElementById("filters").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const f = {
        start: document.getElementById("f-start").value,
        end: document.getElementById("f-end").value,
        feed: document.getElementById("f-feed").value,
        site_id: document.getElementById("f-site").value,
      };
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
      history.pushState(null, "", location.pathname + "?" + q.toString());
      state.filters = readFilters();
      showFilters();
      loadAll();
    });
    window.addEventListener("popstate", () => {
      state.filters = readFilters();
      showFilters();
      loadAll();
    });
    document.getElementById("days-problems").addEventListener("change", () => {
      state.pages.days = 0;
      renderLocal("days");
    });
    document.getElementById("seq-only").addEventListener("change", () => {
      state.pages.seq = 0;
      renderAll();
    });
    for (const box of document.querySelectorAll(".pager")) {
      box.addEventListener("click", (ev) => {
        const move = ev.target && ev.target.dataset ? Number(ev.target.dataset.move) : 0;
        if (!move) return;
        const name = box.dataset.for;
        state.pages[name] = Math.max(0, (state.pages[name] || 0) + move);
        if (REMOTE[name]) {
          loadRemote(name).catch((e) => setStatus(t("failed") + e.message, true));
        } else {
          renderLocal(name);
        }
      });
    }
    window.addEventListener("resize", () => state.chart && state.chart.resize());
    try {
      state.sites = (await getJson("/sites", {})).sites;
    } catch (e) {
      state.sites = [];
    }
    showFilters();
    applyLanguage();
    await loadAll();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
