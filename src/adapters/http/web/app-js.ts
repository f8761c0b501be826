/**
 * The page's behaviour (served at /app/app.js): plain ES2020, no framework, no build step. Written inside a
 * String.raw literal, so it uses no backtick and no dollar-brace (but one, below).
 *
 * The CPR number lives in the page's memory only (sessionStorage is written to the browser's profile on disk,
 * so neither it nor a token with it goes there; a reload asks for it again) and goes to the API path only; the
 * page's URL never holds it. Each upload carries an observationId (crypto.randomUUID) kept with the draft, in
 * sessionStorage without the CPR number, until the hub answers, so a double submit or a retry after a lost
 * answer (also after a reload) is stored once. The hub's clock decides whether a time lies in the future: the
 * client does not check that, and shows the hub's refusal instead. Every URL is relative to the page, so the
 * hub can be served under a path prefix.
 *
 * Its one dollar-brace is RANGE: the domain's plausible ranges (PLAUSIBLE), so the page checks what the hub checks.
 */
import { PLAUSIBLE } from '../../../domain/monitoring/tele-observation';

/** The page's RANGE: { systolic: [min, max], diastolic: [min, max] }, from the domain's. */
export const PAGE_RANGES = JSON.stringify({
  systolic: [PLAUSIBLE.systolic.min, PLAUSIBLE.systolic.max],
  diastolic: [PLAUSIBLE.diastolic.min, PLAUSIBLE.diastolic.max],
});

export const APP_JS = String.raw`'use strict';
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var DRAFT = 'telemed.draft';
  // How long a request waits for the hub's answer (the hub's own worst case is about 40 s).
  var TIMEOUT = 60000;
  // The API lies beside /app/: '../' of the page, so a hub served under a path prefix works too.
  var API = new URL('../', location.href);
  function apiUrl(path) { return new URL(path, API).href; }
  var RANGE = ${PAGE_RANGES};
  var LABEL = { systolic: 'Systolic', diastolic: 'Diastolic', measured: 'Time of reading', cpr: 'CPR number' };
  var DAY = 86400000;
  var state = { cpr: null, pending: null, loginProblem: null, days: 7, from: null, to: null, data: [], draft: null, busy: false, gen: 0, devToken: null };
  var reduceMotion = window.matchMedia && window.matchMedia('(prefers-reduced-motion: reduce)').matches;
  var fmtDay = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });
  var fmtTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  var fmtHour = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
  var fmtTimeZone = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit', timeZoneName: 'shortOffset' });
  // On a day the clocks change, the same local time can come twice (02:30 in October): the offset tells them apart.
  function clockChangeDay(d) {
    return new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTimezoneOffset() !== new Date(d.getFullYear(), d.getMonth(), d.getDate() + 1).getTimezoneOffset();
  }
  function when(d) { return (clockChangeDay(d) ? fmtTimeZone : fmtTime).format(d); }
  /** fetch with a time limit: an answer that never comes is a failure, not "Uploading..." for ever. */
  async function send(path, init) {
    var ctl = new AbortController(), timer = setTimeout(function () { ctl.abort(); }, TIMEOUT);
    init.signal = ctl.signal;
    try {
      var res = await fetch(apiUrl(path), init);
      learnSkew(res);
      var json = null;
      try { json = await res.json(); } catch (e) { if (ctl.signal.aborted) throw e; json = null; }
      return { res: res, json: json };
    } catch (e) {
      if (ctl.signal.aborted) e.noAnswer = true;
      throw e;
    } finally { clearTimeout(timer); }
  }

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join('');
    return [h.slice(0, 8), h.slice(8, 12), h.slice(12, 16), h.slice(16, 20), h.slice(20)].join('-');
  }
  function el(tag, attrs, text) {
    var e = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text != null) e.textContent = text;
    return e;
  }
  function status(id, text, kind) {
    var s = $(id); s.textContent = text || ''; s.className = 'status' + (kind ? ' ' + kind : '');
  }
  function setError(field, message) {
    var input = $(field), err = $(field + '-error');
    if (message) { err.textContent = message; err.hidden = false; input.setAttribute('aria-invalid', 'true'); }
    else { err.textContent = ''; err.hidden = true; input.removeAttribute('aria-invalid'); }
  }
  function mask(cpr) { return '\u2022\u2022\u2022\u2022\u2022\u2022-' + cpr.slice(7); }
  function iso(d) { return d.toISOString().replace(/\.\d{3}Z$/, 'Z'); }
  /** A local time as a datetime-local field writes it (yyyy-mm-ddThh:mm). */
  function localInput(d) {
    var p = function (n) { return (n < 10 ? '0' : '') + n; };
    return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + 'T' + p(d.getHours()) + ':' + p(d.getMinutes());
  }
  function dateInput(d) {
    return d.getFullYear() + '-' + String(d.getMonth() + 1).padStart(2, '0') + '-' + String(d.getDate()).padStart(2, '0');
  }
  function parseDate(v) {
    var m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(v || '');
    return m ? new Date(+m[1], +m[2] - 1, +m[3]) : null;
  }
  // The bearer token: from the page's fragment (#token=..., handed over by a sign-in page), else, on a hub that
  // serves the local dev login (embedded profile on loopback), one for the patient whose CPR number was entered.
  // Kept in sessionStorage (this tab only); it never goes into a URL the page requests.
  var TOKEN = 'telemed.token';
  function takeToken() {
    var m = /(?:^#|&)token=([A-Za-z0-9._-]+)/.exec(location.hash || '');
    if (!m) return;
    history.replaceState(null, '', location.pathname + location.search);
    // A sign-in for someone (perhaps someone else) replaces whoever is shown: their readings go, the new token stays.
    if (state.cpr || state.data.length) forget();
    state.devToken = null;
    sessionStorage.setItem(TOKEN, m[1]);
  }
  takeToken();
  // A sign-in link followed in a tab already showing the page changes only the fragment: no new start.
  window.addEventListener('hashchange', takeToken);
  // Whose token: the patient shown, or the one whose CPR number was just entered (not shown until it loads).
  function who() { return state.pending || state.cpr || null; }
  async function devLogin() {
    if (!who()) return false;
    var patient = who();
    var a = await send('auth/dev-login', { method: 'POST', cache: 'no-store', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify({ role: 'patient', patient: patient }) });
    if (!a.res.ok) {
      // The login itself refused the CPR number (e.g. no real date): that is the answer to show at the field.
      if (a.res.status === 400 || a.res.status === 422) { state.loginProblem = { ok: false, status: a.res.status, body: a.json || {} }; }
      return false;
    }
    if (!a.json || !a.json.token) return false;
    // In memory only, with the CPR number it is for: another patient entered on this tab needs a new one.
    state.devToken = { token: a.json.token, cpr: patient };
    return true;
  }
  function tokenFor() {
    if (state.devToken) return state.devToken.cpr === who() ? state.devToken.token : null;
    return sessionStorage.getItem(TOKEN) || null;
  }
  async function api(method, path, body, again) {
    var headers = body ? { 'content-type': 'application/json', accept: 'application/json' } : { accept: 'application/json' };
    var token = tokenFor();
    // No token yet: ask the local dev login first rather than collecting a 401 (a hub without it answers 404).
    state.loginProblem = null;
    if (!token && !again && who() && (await devLogin())) token = tokenFor();
    if (!token && state.loginProblem) return state.loginProblem;
    if (token) headers.authorization = 'Bearer ' + token;
    var a = await send(path, {
      method: method, credentials: 'same-origin', cache: 'no-store',
      headers: headers,
      body: body ? JSON.stringify(body) : undefined,
    });
    var res = a.res;
    if ((res.status === 401 || (res.status === 403 && !token)) && !again && (await devLogin())) return api(method, path, body, true);
    // A token the hub refuses (expired) is of no further use: dropped, so a reload does not send it again.
    if (res.status === 401) { sessionStorage.removeItem(TOKEN); state.devToken = null; }
    return { ok: res.ok, status: res.status, body: a.json || {}, token: !!token, retry: +res.headers.get('retry-after') };
  }
  /** The hub's field errors, by the input they belong to; paths look like body.systolic or measuredAt. */
  function fieldOf(path) {
    var p = String(path || '').replace(/^(body|query|path)\./, '').split('.')[0];
    return p === 'measuredAt' ? 'measured' : p === 'patientId' ? 'cpr' : p === 'from' || p === 'to' ? 'range' : RANGE[p] ? p : null;
  }
  function sentence(s) { return s.charAt(0).toUpperCase() + s.slice(1) + (/[.!?]$/.test(s) ? '' : '.'); }
  /** A refusal in plain words, for a patient rather than a developer; what: "shown" or "saved". */
  function says(r, what) {
    if (r.status === 401) return r.token ? 'Your sign-in has ended. Open the link from your sign-in page again.' : 'Please sign in: open the link from your sign-in page.';
    if (r.status === 403) return 'The readings of this CPR number cannot be ' + what + ' with this sign-in.';
    if (r.status === 429) return 'Too many requests; try again in ' + (r.retry > 0 ? r.retry + (r.retry === 1 ? ' second.' : ' seconds.') : 'a moment.');
    var t = sentence(r.body.title || 'The hub could not answer (' + r.status + ')'), d = r.body.detail ? sentence(r.body.detail) : '';
    // A detail that repeats the title ("You may not do this. You may not do this with ...") stands alone.
    return d.toLowerCase().indexOf(t.slice(0, -1).toLowerCase()) === 0 ? d : d ? t + ' ' + d : t;
  }

  // ---- who ----
  function normaliseCpr(v) {
    var d = v.replace(/[\s-]/g, '');
    return /^\d{10}$/.test(d) ? d.slice(0, 6) + '-' + d.slice(6) : null;
  }
  function useCpr(cpr) {
    state.cpr = cpr;
    $('cpr-masked').textContent = mask(cpr);
    $('cpr-form').hidden = true; $('who-known').hidden = false;
    $('review').hidden = false; $('upload').hidden = false;
  }
  // Change person signs out: the token (it names the patient) goes with the CPR number, and so does everything
  // of theirs on screen; an answer still on its way for them is dropped (state.gen).
  function forget() {
    state.gen++;
    state.cpr = null; state.data = []; state.shown = null; state.draft = null; state.from = state.to = null; state.devToken = null;
    try { sessionStorage.removeItem(TOKEN); sessionStorage.removeItem(DRAFT); } catch (e) { /* nothing kept */ }
    setPreset(7); rangeError(null);
    $('range-form').reset(); $('upload-form').reset();
    ['cpr', 'systolic', 'diastolic', 'measured'].forEach(function (f) { setError(f, null); });
    $('cpr').value = ''; $('period').textContent = ''; $('chart').textContent = ''; $('readings').tBodies[0].textContent = '';
    $('cpr-form').hidden = false; $('who-known').hidden = true;
    $('review').hidden = true; $('upload').hidden = true;
    status('upload-status', ''); loadError(null);
    $('cpr').focus();
  }
  $('cpr-form').addEventListener('submit', async function (ev) {
    ev.preventDefault();
    var raw = $('cpr').value.trim();
    var cpr = normaliseCpr(raw);
    if (!raw) { setError('cpr', 'Enter your CPR number.'); $('cpr').focus(); return; }
    if (!cpr) { setError('cpr', 'A CPR number is six digits, a hyphen and four digits, e.g. 251248-1234.'); $('cpr').focus(); return; }
    setError('cpr', null);
    state.pending = cpr;
    var ok = await load(cpr, true);
    state.pending = null;
    if (ok) { useCpr(cpr); render(); restoreDraft(); $('review-h').focus({ preventScroll: reduceMotion }); }
  });
  $('forget').addEventListener('click', forget);

  // ---- period ----
  // The hub's clock minus this browser's, from the Date of the hub's last answer (any answer: the dev login's too).
  var skew = 0, skewKnown = false;
  function learnSkew(res) {
    var date = Date.parse(res.headers.get('date'));
    if (date) { skew = date + 500 - Date.now(); skewKnown = true; }
  }
  // A preset ends 10 minutes after the hub's "now": the hub stores readings up to 5 minutes ahead of its clock,
  // and one just saved must be listed. (Without a "to" the hub would end at its own present second, which
  // leaves out those readings.)
  function period() {
    var now = Date.now() + skew;
    if (state.days) return { days: state.days, from: new Date(now - state.days * DAY), to: new Date(now + 600000) };
    return { days: 0, from: state.from, to: state.to };
  }
  /** The last instant the page names for a period: "now" for a preset, the end of the to date for a chosen one. */
  function lastOf(p) { return new Date(p.days ? p.from.getTime() + p.days * DAY : p.to.getTime() - 1000); }
  function setPreset(days) {
    state.days = days;
    document.querySelectorAll('.preset').forEach(function (b) { b.setAttribute('aria-pressed', String(+b.dataset.days === days)); });
  }
  document.querySelectorAll('.preset').forEach(function (b) {
    b.addEventListener('click', async function () {
      setPreset(+b.dataset.days); rangeError(null);
      if (await load(state.cpr, false)) render();
    });
  });
  function rangeError(m) {
    var e = $('range-error'); e.textContent = m || ''; e.hidden = !m;
    ['from', 'to'].forEach(function (f) { if (m) $(f).setAttribute('aria-invalid', 'true'); else $(f).removeAttribute('aria-invalid'); });
  }
  $('range-form').addEventListener('submit', async function (ev) {
    ev.preventDefault();
    var f = parseDate($('from').value), t = parseDate($('to').value);
    if (!f || !t) { rangeError('Choose both a from date and a to date.'); $(f ? 'to' : 'from').focus(); return; }
    var end = new Date(t.getFullYear(), t.getMonth(), t.getDate() + 1);
    if (end <= f) { rangeError('The to date must not lie before the from date.'); $('to').focus(); return; }
    if (end - f > 366 * DAY) { rangeError('A period can be at most 366 days.'); $('to').focus(); return; }
    rangeError(null);
    state.from = f; state.to = end; setPreset(0);
    if (await load(state.cpr, false)) render();
  });

  // ---- load ----
  async function load(cpr, first) {
    var p = period(), gen = state.gen, guessed = !skewKnown, before = skew;
    loadError(null);
    if (!first) $('period').textContent = 'Loading readings\u2026';
    var r;
    try {
      // POST, the CPR number in the body: a URL is kept in proxies' access logs and the browser's history.
      r = await api('POST', 'observations/search', { patientId: cpr, from: iso(p.from), to: iso(p.to) });
    } catch (e) {
      r = null;
    }
    if (gen !== state.gen) return false;
    // The first answer told the hub's clock: a quick period computed by this browser's (a minute or more off) is
    // asked again, so a reading just saved by the hub's clock is not missing.
    if (r && guessed && skewKnown && state.days && Math.abs(skew - before) > 60000) return load(cpr, first);
    if (!r) { fail(first, 'The hub cannot be reached. Check your connection and try again.'); return false; }
    if (r.ok || r.body.code === 'unknown_patient') {
      state.data = r.ok ? r.body.observations : [];
      state.shown = p;
      return true;
    }
    var errs = r.body.errors || [];
    var onCpr = errs.filter(function (e) { return fieldOf(e.path) === 'cpr'; });
    if (onCpr.length || r.body.code === 'invalid_patient_id') {
      if (!first) forget();
      setError('cpr', 'The hub does not accept this CPR number: ' + (onCpr[0] ? onCpr[0].message : r.body.detail || 'invalid') + '.');
      $('cpr').focus();
      return false;
    }
    var onRange = errs.filter(function (e) { return fieldOf(e.path) === 'range'; });
    if (onRange.length) rangeError(sentence(onRange[0].message));
    fail(first, says(r, 'shown'));
    return false;
  }
  function loadError(m) { var e = $('load-error'); e.textContent = m || ''; e.hidden = !m; }
  // A failed reload leaves the readings on screen, so the period chosen and its text go back to theirs.
  function fail(first, m) {
    if (first) { setError('cpr', m); $('cpr').focus(); return; }
    loadError(m);
    var s = state.shown;
    if (!s) { $('period').textContent = ''; return; }
    setPreset(s.days);
    if (!s.days) { state.from = s.from; state.to = s.to; }
    showPeriod(s);
  }

  // ---- show ----
  function showPeriod(p) {
    var n = state.data.length;
    $('period').textContent = (n === 0 ? 'No readings' : n === 1 ? '1 reading' : n + ' readings') + ' from ' + fmtTime.format(p.from) + ' to ' + (p.days ? 'now' : fmtTime.format(lastOf(p))) + '.';
  }
  function render() {
    var p = state.shown || period();
    showPeriod(p);
    if (!$('from').value || p.days) { $('from').value = dateInput(p.from); $('to').value = dateInput(lastOf(p)); }
    var rows = state.data.slice().sort(function (a, b) { return a.measuredAt < b.measuredAt ? 1 : -1; });
    var tbody = document.querySelector('#readings tbody');
    tbody.textContent = '';
    rows.forEach(function (o) {
      var tr = document.createElement('tr');
      var t = document.createElement('td'), time = document.createElement('time');
      time.dateTime = o.measuredAt; time.textContent = when(new Date(o.measuredAt)); t.appendChild(time); tr.appendChild(t);
      [o.systolic.value, o.diastolic.value].forEach(function (v) { var td = document.createElement('td'); td.className = 'num'; td.textContent = String(v); tr.appendChild(td); });
      tbody.appendChild(tr);
    });
    if (!rows.length) {
      var tr = document.createElement('tr'), td = document.createElement('td');
      td.colSpan = 3; td.className = 'empty'; td.textContent = 'No readings in this period.'; tr.appendChild(td); tbody.appendChild(tr);
    }
    chart(p, rows.slice().reverse());
  }

  function chart(p, rows) {
    var box = $('chart');
    var W = Math.max(280, Math.round(box.clientWidth || 640)), H = Math.round(Math.min(340, Math.max(220, W * 0.5)));
    var m = { l: 46, r: 14, t: 26, b: 30 };
    var x0 = p.from.getTime(), x1 = p.to.getTime();
    var lo = 60, hi = 160;
    rows.forEach(function (o) { lo = Math.min(lo, o.diastolic.value); hi = Math.max(hi, o.systolic.value); });
    lo = Math.floor((lo - 5) / 20) * 20; hi = Math.ceil((hi + 5) / 20) * 20;
    var X = function (t) { return m.l + (t - x0) / (x1 - x0) * (W - m.l - m.r); };
    var Y = function (v) { return H - m.b - (v - lo) / (hi - lo) * (H - m.t - m.b); };
    var svg = el('svg', { viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, role: 'img', 'aria-labelledby': 'chart-title chart-desc' });
    var summary;
    if (rows.length) {
      var s = rows.map(function (o) { return o.systolic.value; }), d = rows.map(function (o) { return o.diastolic.value; });
      var newest = rows[rows.length - 1];
      summary = rows.length + (rows.length === 1 ? ' reading' : ' readings') + ' from ' + fmtDay.format(p.from) + ' to ' + fmtDay.format(lastOf(p)) +
        '. Systolic ' + Math.min.apply(null, s) + ' to ' + Math.max.apply(null, s) + ' mmHg, diastolic ' + Math.min.apply(null, d) + ' to ' + Math.max.apply(null, d) +
        ' mmHg. Latest ' + newest.systolic.value + ' over ' + newest.diastolic.value + ' on ' + when(new Date(newest.measuredAt)) + '. The table below lists every reading.';
    } else {
      summary = 'No readings from ' + fmtDay.format(p.from) + ' to ' + fmtDay.format(lastOf(p)) + '.';
    }
    svg.appendChild(el('title', { id: 'chart-title' }, 'Blood pressure graph, systolic and diastolic in mmHg'));
    svg.appendChild(el('desc', { id: 'chart-desc' }, summary));
    var g = el('g', { 'aria-hidden': 'true' });
    for (var v = lo; v <= hi; v += 20) {
      g.appendChild(el('line', { class: v === lo ? 'axis' : 'grid', x1: m.l, x2: W - m.r, y1: Y(v), y2: Y(v) }));
      g.appendChild(el('text', { x: m.l - 6, y: Y(v) + 4, 'text-anchor': 'end' }, String(v)));
    }
    g.appendChild(el('text', { class: 'unit', x: 4, y: 15 }, 'mmHg'));
    g.appendChild(el('line', { class: 'axis', x1: m.l, x2: m.l, y1: m.t, y2: H - m.b }));
    // Ticks every few days; for a period of up to 2 days, every few hours (a day's date at midnight).
    var fits = Math.max(2, Math.floor((W - m.l - m.r) / 64)), ticks = [], t;
    if (x1 - x0 <= 2 * DAY) {
      var hs = [1, 2, 3, 4, 6, 12, 24].filter(function (h) { return (x1 - x0) / 3600000 / h <= fits; })[0] || 24;
      t = new Date(x0); t.setMinutes(60, 0, 0);
      for (; t.getTime() < x1; t = new Date(t.getTime() + 3600000)) if (t.getHours() % hs === 0) ticks.push([t, t.getHours() ? fmtHour : fmtDay]);
    } else {
      var step = Math.max(1, Math.ceil(Math.round((x1 - x0) / DAY) / fits));
      for (t = new Date(p.from.getFullYear(), p.from.getMonth(), p.from.getDate() + 1); t.getTime() < x1; t = new Date(t.getFullYear(), t.getMonth(), t.getDate() + step)) ticks.push([t, fmtDay]);
    }
    for (var i = 0; i < ticks.length; i++) {
      var x = X(ticks[i][0].getTime());
      if (x > W - m.r - 20) break;
      g.appendChild(el('line', { class: 'axis', x1: x, x2: x, y1: H - m.b, y2: H - m.b + 5 }));
      g.appendChild(el('text', { x: x, y: H - m.b + 18, 'text-anchor': 'middle' }, ticks[i][1].format(ticks[i][0])));
    }
    if (!rows.length) g.appendChild(el('text', { class: 'nodata', x: (W + m.l) / 2, y: (H - m.b + m.t) / 2, 'text-anchor': 'middle' }, 'No readings in this period'));
    svg.appendChild(g);
    ['dia', 'sys'].forEach(function (k) {
      var key = k === 'sys' ? 'systolic' : 'diastolic';
      var pts = rows.map(function (o) { return [X(Date.parse(o.measuredAt)), Y(o[key].value), o]; });
      var series = el('g', { class: 'series ' + k, 'data-series': key });
      if (pts.length > 1) series.appendChild(el('polyline', { class: 'line ' + k, points: pts.map(function (q) { return q[0].toFixed(1) + ',' + q[1].toFixed(1); }).join(' ') }));
      pts.forEach(function (q) {
        var mark = k === 'sys'
          ? el('circle', { class: 'pt sys', cx: q[0].toFixed(1), cy: q[1].toFixed(1), r: 5 })
          : el('rect', { class: 'pt dia', x: (q[0] - 4.5).toFixed(1), y: (q[1] - 4.5).toFixed(1), width: 9, height: 9 });
        mark.setAttribute('data-value', q[2][key].value);
        mark.appendChild(el('title', {}, LABEL[key] + ' ' + q[2][key].value + ' mmHg, ' + when(new Date(q[2].measuredAt))));
        series.appendChild(mark);
      });
      svg.appendChild(series);
    });
    box.textContent = '';
    box.appendChild(svg);
  }
  var pending = 0;
  window.addEventListener('resize', function () {
    if (pending || !state.shown) return;
    pending = requestAnimationFrame(function () { pending = 0; chart(state.shown, state.data.slice().sort(function (a, b) { return a.measuredAt < b.measuredAt ? -1 : 1; })); });
  });

  // ---- upload ----
  function checkNumber(field) {
    var raw = $(field).value.trim(), r = RANGE[field];
    if (!raw) return 'Enter the ' + field + ' pressure.';
    if (!/^\d{1,3}([.,]\d+)?$/.test(raw)) return LABEL[field] + ' must be a number, e.g. ' + (field === 'systolic' ? '126' : '70') + '.';
    var v = Number(raw);
    if (v < r[0] || v > r[1]) return LABEL[field] + ' must be between ' + r[0] + ' and ' + r[1] + ' mmHg.';
    return null;
  }
  $('upload-form').addEventListener('submit', async function (ev) {
    ev.preventDefault();
    if (state.busy) return;
    status('upload-status', '');
    var errors = { systolic: checkNumber('systolic'), diastolic: checkNumber('diastolic'), measured: null };
    // A decimal comma (126,5) is how many write it here.
    var sys = Number($('systolic').value.trim().replace(',', '.')), dia = Number($('diastolic').value.trim().replace(',', '.'));
    if (!errors.systolic && !errors.diastolic && sys <= dia) errors.systolic = 'Systolic must be higher than diastolic (' + dia + ').';
    var typed = $('measured').value, at = null, twice = false;
    if (typed) {
      at = new Date(typed);
      if (isNaN(at.getTime())) errors.measured = 'Enter a date and time, or leave the field empty.';
      // The night the clocks go forward, a time in the skipped hour does not exist: new Date() moved it an hour
      // without a word. The night they go back, a time in the repeated hour happens twice: the first is taken, and
      // the answer says which.
      else if (localInput(at) !== typed.slice(0, 16)) errors.measured = 'This time does not exist on that day: the clocks were put forward an hour then. Enter the time as the clock showed it.';
      else twice = localInput(new Date(at.getTime() + 3600000)) === typed.slice(0, 16);
    } else if ($('measured').validity && $('measured').validity.badInput) {
      errors.measured = 'Enter a complete date and time, or leave the field empty.';
    }
    var bad = Object.keys(errors).filter(function (k) { return errors[k]; });
    Object.keys(errors).forEach(function (k) { setError(k, errors[k]); });
    if (bad.length) {
      status('upload-status', bad.length === 1 ? 'Please correct 1 field.' : 'Please correct ' + bad.length + ' fields.', 'bad');
      $(bad[0]).focus();
      return;
    }
    var body = { patientId: state.cpr, systolic: sys, diastolic: dia };
    if (at) body.measuredAt = iso(at);
    // The same reading sent again (a double submit, a retry after a lost answer, also after a reload) keeps its
    // id: stored once. The draft is kept without the CPR number (the hub keeps ids per patient).
    var sig = JSON.stringify([sys, dia, body.measuredAt || null]);
    if (!state.draft || state.draft.sig !== sig) state.draft = { sig: sig, id: uuid(), systolic: $('systolic').value, diastolic: $('diastolic').value, measured: typed };
    try { sessionStorage.setItem(DRAFT, JSON.stringify(state.draft)); } catch (e) { /* memory only */ }
    body.observationId = state.draft.id;
    state.busy = true; $('upload-btn').disabled = true; status('upload-status', 'Uploading\u2026');
    var r, gen = state.gen, noAnswer = false;
    try { r = await api('POST', 'observations', body); }
    catch (e) { r = null; noAnswer = !!e.noAnswer; }
    // Change person meanwhile: nothing of the previous patient's upload is shown to the next.
    if (gen !== state.gen) { state.busy = false; $('upload-btn').disabled = false; return; }
    if (r && r.ok) {
      state.draft = null;
      try { sessionStorage.removeItem(DRAFT); } catch (e) { /* not kept */ }
      $('upload-form').reset();
      // Table and graph first, then the announcement: when "Saved" is heard, the reading is on screen.
      if (await load(state.cpr, false)) render();
    }
    state.busy = false; $('upload-btn').disabled = false;
    // The button was disabled while it had the focus, which left it on the page's body: back to the button.
    if (!document.activeElement || document.activeElement === document.body) $('upload-btn').focus();
    if (!r) {
      status('upload-status', noAnswer
        ? 'No answer from the hub, so the reading may or may not be saved. Press Upload again: it will be stored only once.'
        : 'The hub cannot be reached, so the reading is not saved yet. Try again; it will be stored only once.', 'bad');
      return;
    }
    if (r.ok) {
      status('upload-status', 'Saved: ' + sys + ' over ' + dia + ' mmHg' + (r.body.measuredAt ? ' at ' + when(new Date(r.body.measuredAt)) : '') + '.' +
        (twice ? ' That time happened twice that night (the clocks went back an hour); the first was taken, before the clocks went back.' : ''), 'ok');
      return;
    }
    var shown = 0;
    var onCpr = (r.body.errors || []).filter(function (e) { return fieldOf(e.path) === 'cpr'; })[0];
    // Not the reading but whose it is (a CPR number born in the future): said as such, not as a field of the form.
    if (onCpr) { status('upload-status', 'Not saved. The hub does not accept this CPR number: ' + onCpr.message + '.', 'bad'); return; }
    (r.body.errors || []).forEach(function (e) {
      var f = fieldOf(e.path);
      if (f && f !== 'cpr' && f !== 'range' && !$(f + '-error').textContent) { setError(f, LABEL[f] + ': ' + e.message + ' (the hub says).'); if (!shown++) $(f).focus(); }
    });
    status('upload-status', 'Not saved. ' + (shown ? sentence(r.body.title || 'The hub refused the reading') + ' See the marked fields.' : says(r, 'saved')), 'bad');
  });
  ['systolic', 'diastolic', 'measured'].forEach(function (f) {
    $(f).addEventListener('input', function () { if ($(f).getAttribute('aria-invalid')) setError(f, null); });
  });

  /** A reading sent before a reload without a known answer: back in the form, with its id, to be sent again. */
  function restoreDraft() {
    var d = null;
    try { d = JSON.parse(sessionStorage.getItem(DRAFT) || 'null'); } catch (e) { d = null; }
    if (!d || !d.id || state.draft) return;
    state.draft = d;
    $('systolic').value = d.systolic || ''; $('diastolic').value = d.diastolic || ''; $('measured').value = d.measured || '';
    status('upload-status', 'This reading may not be saved yet. Press Upload to send it again: it will be stored only once.', 'bad');
  }
})();
`;
