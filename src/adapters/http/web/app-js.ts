/**
 * The page's behaviour (served at /app/app.js): plain ES2020, no framework, no build step. Written inside a
 * String.raw literal, so it uses no backtick and no dollar-brace (but one, below).
 *
 * The CPR number lives in the page's memory only (sessionStorage is written to the browser's profile on disk,
 * so neither it nor a token with it goes there; a reload asks for it again) and goes to the API path only; the
 * page's URL never holds it. Each upload carries an observationId (crypto.randomUUID) kept with the draft, in
 * sessionStorage without the CPR number, until the hub answers, so a double submit or a retry after a lost
 * answer (also after a reload) is stored once. The id is the attempt's: typing into the form drops the draft, so a
 * new reading with the same values gets an id of its own (dropDraft). The draft holds the time of the first Upload (an empty time field
 * means then, by the hub's clock), so a reading sent again later keeps the time it was taken; and a short salted
 * tag of the CPR number (20 bits: ~350 valid CPR numbers share each), so it goes back into the form only for the
 * patient it was typed for. The hub's clock decides whether a time lies in the future: the
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
  var state = { cpr: null, pending: null, loginProblem: null, days: 7, from: null, to: null, data: [], draft: null, busy: false, loading: false, gen: 0, devToken: null, signedAs: null, exp: null, warned: 0, noDevLogin: false };
  var reduceMotion = window.matchMedia && window.matchMedia('(prefers-reduced-motion: reduce)').matches;
  // Dates in the page's language, not the browser's (a Danish browser's sat in English sentences): British English.
  var LANG = document.documentElement.lang || 'en';
  var LOCALE = LANG === 'en' ? 'en-GB' : LANG;
  var fmtDay = new Intl.DateTimeFormat(LOCALE, { day: 'numeric', month: 'short' });
  var fmtTime = new Intl.DateTimeFormat(LOCALE, { dateStyle: 'medium', timeStyle: 'short' });
  var fmtHour = new Intl.DateTimeFormat(LOCALE, { hour: '2-digit', minute: '2-digit' });
  var fmtTimeZone = new Intl.DateTimeFormat(LOCALE, { day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit', timeZoneName: 'shortOffset' });
  var TITLE = document.title;
  /** The page's title names its state: "Your readings – ...", "Error: ... – ...". */
  function title(t) { document.title = (t ? t + ' \u2013 ' : '') + TITLE; }
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

  // The draft's owner: 20 bits of FNV-1a over a salt and the CPR number (see the header of app-js.ts).
  function ownerTag(salt, cpr) {
    var h = 0x811c9dc5, t = String(salt) + ':' + String(cpr);
    for (var i = 0; i < t.length; i++) { h ^= t.charCodeAt(i); h = Math.imul(h, 0x01000193) >>> 0; }
    return (h >>> 12).toString(16).padStart(5, '0');
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
  // Live regions are in the page from the start, never display:none, so a first message is said; the same message
  // again is emptied first and written a moment later (a region whose text does not change says nothing).
  function status(id, text, kind) {
    var s = $(id), n = (s.dataset.n = String(+(s.dataset.n || 0) + 1));
    text = text || '';
    s.className = 'status' + (kind ? ' ' + kind : '');
    if (text && s.textContent === text) {
      s.textContent = '';
      setTimeout(function () { if (s.dataset.n === n) s.textContent = text; }, 150);
    } else s.textContent = text;
  }
  function setError(field, message) {
    var input = $(field), err = $(field + '-error');
    if (message) { err.textContent = message; err.hidden = false; input.setAttribute('aria-invalid', 'true'); }
    else { err.textContent = ''; err.hidden = true; input.removeAttribute('aria-invalid'); }
  }
  function mask(cpr) { return '\u2022\u2022\u2022\u2022\u2022\u2022-' + cpr.slice(7); }
  /** A sentence's end: no second full stop after a date that ends in one. */
  function stop(s) { return /[.!?]$/.test(s) ? s : s + '.'; }
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
    // A date field takes a year of up to six digits (a slip: 20266): a date, whose year is then refused, not "none chosen".
    var m = /^(\d{4,})-(\d{2})-(\d{2})$/.exec(v || '');
    if (!m) return null;
    // setFullYear: new Date(26, ...) is 1926, so a year typed with two digits (0026) asked for readings of 1926.
    var d = new Date(2000, +m[2] - 1, +m[3]);
    d.setFullYear(+m[1], +m[2] - 1, +m[3]);
    // Midnight, not 2000's hour of that date: 01:00 where the clocks went forward at midnight then (15 Oct, Santiago).
    d.setHours(0, 0, 0, 0);
    return d;
  }
  // The bearer token: from the fragment (#token=..., a sign-in page's), else the local dev login; kept in
  // sessionStorage (this tab), never in a URL the page requests.
  var TOKEN = 'telemed.token';
  function takeToken() {
    var m = /(?:^#|&)token=([A-Za-z0-9._-]+)/.exec(location.hash || '');
    if (!m) return;
    history.replaceState(null, '', location.pathname + location.search);
    // A sign-in for someone else replaces whoever is shown: their readings and draft go, the new token stays. The
    // same patient signing in again (their sign-in ran out) keeps everything: the reading typed, its draft and id.
    var same = samePatient(m[1]);
    if (!same && (state.cpr || state.data.length)) forget();
    state.devToken = null;
    sessionStorage.setItem(TOKEN, m[1]);
    adoptExpiry(m[1]);
    if (same) signedInAgain();
  }
  // What a token says of itself: its payload, unchecked. The hub checks every token; the page reads only its exp,
  // to warn before it runs out, and whom it names, to tell the same patient signing in again from another.
  function claims(token) {
    try { return JSON.parse(atob(String(token).split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))); } catch (e) { return null; }
  }
  function whom(token) {
    var c = claims(token);
    if (!c) return null;
    if (typeof c.patientKey === 'string') return 'k:' + c.patientKey;
    if (typeof c.patient === 'string') return 'c:' + (normaliseCpr(c.patient) || c.patient);
    return null;
  }
  // state.signedAs (memory only: a token with a patient claim names the CPR number) is whom the token that last
  // read or wrote the shown patient's readings named.
  function samePatient(token) {
    if (!state.cpr || !state.signedAs || state.signedAs.cpr !== state.cpr) return false;
    var w = whom(token);
    return !!w && (w === state.signedAs.whom || w === 'c:' + state.cpr);
  }
  takeToken();
  // After a reload the token is still this tab's: its time limit too.
  if (!state.exp && sessionStorage.getItem(TOKEN)) adoptExpiry(sessionStorage.getItem(TOKEN));
  // A sign-in link followed in a tab already showing the page changes only the fragment: no new start.
  window.addEventListener('hashchange', takeToken);
  // Whose token: the patient shown, or the one whose CPR number was just entered (not shown until it loads).
  function who() { return state.pending || state.cpr || null; }
  async function devLogin() {
    // A hub without the dev login said so once (404): not asked again, with the CPR number in each request's body.
    if (!who() || state.noDevLogin) return false;
    var patient = who();
    var a = await send('auth/dev-login', { method: 'POST', cache: 'no-store', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify({ role: 'patient', patient: patient }) });
    if (a.res.status === 404) state.noDevLogin = true;
    if (!a.res.ok) {
      // The login itself refused the CPR number (e.g. no real date): that is the answer to show at the field.
      if (a.res.status === 400 || a.res.status === 422) { state.loginProblem = { ok: false, status: a.res.status, body: a.json || {} }; }
      return false;
    }
    if (!a.json || !a.json.token) return false;
    // In memory only, with the CPR number it is for: another patient entered on this tab needs a new one. The page
    // gets the next one by itself when it runs out: no warning needed.
    state.devToken = { token: a.json.token, cpr: patient };
    state.exp = null; state.warned = 0;
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
    if (res.status === 401) {
      sessionStorage.removeItem(TOKEN); state.devToken = null;
      if (token && state.cpr) { state.exp = null; status('session-status', ENDED, 'bad'); title('Sign-in ended \u2013 Your readings'); }
    }
    // The hub took this token for this patient (404: none of their readings yet): whom it names is theirs.
    else if (token && (res.ok || res.status === 404) && who()) state.signedAs = { cpr: who(), whom: whom(token) };
    return { ok: res.ok, status: res.status, body: a.json || {}, token: !!token, retry: +res.headers.get('retry-after') };
  }
  /** The hub's field errors, by the input they belong to; paths look like body.systolic or measuredAt. */
  function fieldOf(path) {
    var p = String(path || '').replace(/^(body|query|path)\./, '').split('.')[0];
    return p === 'measuredAt' ? 'measured' : p === 'patientId' ? 'cpr' : p === 'from' || p === 'to' ? 'range' : RANGE[p] ? p : null;
  }
  // 410 patient_erased: for good, reads and uploads alike.
  var ERASED = 'The readings of this CPR number have been erased from the hub. They cannot be shown, and no new reading can be saved for this CPR number. If you did not ask for this, contact your clinic.';
  // After a lost answer: the same attempt is stored once; a form changed, even back to the same values, is a new reading
  // (see dropDraft), which the patient did not expect of an edit undone.
  var AS_IT_IS = ' as it is: it will be stored only once. Changed, even back to the same values, it is saved as a new reading.';
  function later(r) { return r.retry > 0 ? r.retry + (r.retry === 1 ? ' second' : ' seconds') : 'a moment'; }
  function sentence(s) { return s.charAt(0).toUpperCase() + s.slice(1) + (/[.!?]$/.test(s) ? '' : '.'); }
  /** A refusal in plain words, for a patient rather than a developer; what: "shown" or "saved". */
  function says(r, what) {
    if (r.status === 401) return r.token ? ENDED : 'Please sign in: open the link from your sign-in page.';
    if (r.status === 403) return 'The readings of this CPR number cannot be ' + what + ' with this sign-in.';
    if (r.status === 429) return 'Too many requests; try again in ' + later(r) + '.';
    if (r.status === 410) return ERASED;
    // Refused before anything is stored.
    if (r.status === 503 && r.body.code === 'auth_unavailable' && what === 'saved') return 'The hub cannot check sign-ins just now. Press Upload again in ' + later(r) + '.';
    // The hub's trouble: an upload so answered may be stored (503 audit_unavailable is), so never "not saved".
    if (r.status >= 500) return what === 'saved'
      ? 'The hub has a problem, so the reading may or may not be saved. Press Upload again in ' + later(r) + AS_IT_IS
      : 'The hub cannot show your readings just now, because of a problem at the hub. Try again in ' + later(r) + '.';
    var t = sentence(r.body.title || 'The hub could not answer (' + r.status + ')'), d = r.body.detail ? sentence(r.body.detail) : '';
    // A detail that repeats the title ("You may not do this. You may not do this with ...") stands alone.
    return d.toLowerCase().indexOf(t.slice(0, -1).toLowerCase()) === 0 ? d : d ? t + ' ' + d : t;
  }

  // ---- who ----
  // Full-width digits, comma, hyphen, space as ASCII (NFKC); any script's digits (\p{Nd}) as the ASCII digit of their
  // value, their distance from the start of their run of ten; invisible marks pasted along (\p{Cf}) dropped.
  function asciiDigits(v) {
    return v.normalize('NFKC').replace(/\p{Cf}/gu, '').replace(/\p{Nd}/gu, function (c) {
      var cp = c.codePointAt(0), start = cp;
      while (/\p{Nd}/u.test(String.fromCodePoint(start - 1))) start--;
      return String((cp - start) % 10);
    });
  }
  function cprDigits(v) {
    // Spaces, a hyphen, or the dash (or minus sign) a word processor or phone puts in its place.
    return asciiDigits(v).replace(/[\s\u2010-\u2015\u2212-]/g, '');
  }
  function normaliseCpr(v) {
    var d = cprDigits(v);
    return /^\d{10}$/.test(d) ? d.slice(0, 6) + '-' + d.slice(6) : null;
  }
  // The hub's refusals of a CPR number, in plain words with what to do (the hub's texts are its API's, for developers).
  var CPR_FORM = 'A CPR number is six digits, a hyphen and four digits, e.g. 251248-1234.';
  function cprSays(m) {
    m = String(m || '');
    if (/calendar date|real birth date/.test(m)) return 'The first six digits of this CPR number are not a real date (day, month, year). Check them, e.g. on your health insurance card.';
    if (/lies in the future/.test(m)) return 'The birth date in this CPR number (its first six digits) lies in the future. Check the digits, e.g. on your health insurance card.';
    if (/ddmmyy-ssss|of the form/.test(m)) return CPR_FORM;
    return 'The hub does not accept this CPR number' + (m ? ': ' + m.replace(/[.]$/, '') : '') + '. Check the digits.';
  }
  /** A problem of the CPR form: at the field when the number is at fault, else for the form; said either way. */
  function cprProblem(m, atField) {
    setError('cpr', atField ? m : null);
    // The field's own text is not read again while it has the focus (Enter in it): the form's live region says it.
    status('who-status', m, atField ? 'bad vh' : 'bad');
    title(atField ? 'Error: CPR number' : 'Error: readings not shown');
  }
  function useCpr(cpr) {
    state.cpr = cpr;
    $('cpr-masked').textContent = mask(cpr);
    $('cpr-spoken').textContent = 'CPR number ending in ' + cpr.slice(7);
    $('cpr-form').hidden = true; $('who-known').hidden = false;
    $('review').hidden = false; $('upload').hidden = false;
    status('who-status', '');
    title('Your readings');
    checkExpiry();
  }
  // Change person signs out: the token (it names the patient) goes with the CPR number, and so does everything
  // of theirs on screen; an answer still on its way for them is dropped (state.gen).
  function forget() {
    state.gen++;
    state.cpr = null; state.data = []; state.shown = null; state.draft = null; state.from = state.to = null; state.devToken = null;
    state.signedAs = null; state.exp = null; state.warned = 0; clearTimeout(expiryTimer); status('session-status', '');
    try { sessionStorage.removeItem(TOKEN); sessionStorage.removeItem(DRAFT); } catch (e) { /* nothing kept */ }
    setPreset(7); rangeError(null);
    $('range-form').reset(); $('upload-form').reset();
    ['cpr', 'systolic', 'diastolic', 'measured'].forEach(function (f) { setError(f, null); });
    // A reload on its way is dropped (state.gen) and ends no busy state: the next patient's readings stayed aria-busy.
    busy(false);
    // An upload on its way (its answer is dropped): the next patient's Upload works meanwhile.
    uploading(false);
    $('cpr').value = ''; $('period').textContent = ''; $('chart').textContent = ''; $('readings').tBodies[0].textContent = '';
    $('cpr-form').hidden = false; $('who-known').hidden = true;
    $('review').hidden = true; $('upload').hidden = true;
    status('upload-status', ''); status('who-status', ''); loadError(null);
    title('');
    $('cpr').focus();
  }
  $('cpr-form').addEventListener('submit', async function (ev) {
    ev.preventDefault();
    // One search at a time: another Enter while the first waits (up to a minute) sends nothing more.
    if (state.loading) return;
    var raw = $('cpr').value.trim();
    var cpr = normaliseCpr(raw), digits = cprDigits(raw);
    if (!raw) { cprProblem('Enter your CPR number.', true); $('cpr').focus(); return; }
    if (!cpr) {
      cprProblem(/^\d+$/.test(digits) ? 'A CPR number has 10 digits; this has ' + digits.length + '. Six digits, a hyphen and four digits, e.g. 251248-1234.' : CPR_FORM, true);
      $('cpr').focus(); return;
    }
    setError('cpr', null);
    var form = $('cpr-form'), button = form.querySelector('button[type=submit]');
    state.pending = cpr; state.loading = true;
    form.setAttribute('aria-busy', 'true'); button.setAttribute('aria-disabled', 'true');
    status('who-status', 'Loading your readings\u2026');
    var ok = false;
    try { ok = await load(cpr, true); } finally {
      state.pending = null; state.loading = false;
      form.removeAttribute('aria-busy'); button.removeAttribute('aria-disabled');
    }
    if (ok) { useCpr(cpr); render(); restoreDraft(); $('review-h').focus({ preventScroll: reduceMotion }); }
  });
  $('forget').addEventListener('click', forget);
  // Back may bring the page from the back/forward cache with its memory (CPR number, readings, sign-in) to the next
  // person at a shared computer: it comes back as after a reload.
  window.addEventListener('pagehide', function (e) { if (e.persisted) document.body.hidden = true; });
  window.addEventListener('pageshow', function (e) { if (e.persisted) location.reload(); });
  document.addEventListener('visibilitychange', async function () {
    if (document.visibilityState !== 'visible' || !state.cpr || state.loading || state.busy || !state.loadedAt || Date.now() - state.loadedAt < 60000) return;
    if (await load(state.cpr, false)) render();
  });

  // ---- period ----
  // The hub's clock minus this browser's, from the Date of the hub's last answer (any answer: the dev login's too).
  var skew = 0, skewKnown = false;
  function learnSkew(res) {
    var date = Date.parse(res.headers.get('date'));
    if (date) { skew = date + 500 - Date.now(); skewKnown = true; }
  }
  // A preset is whole days in the patient's zone, as the From field names them: today by the hub's clock and the days
  // before, from midnight of the first. It ends 10 minutes after the hub's now: a reading may be stored 5 minutes ahead.
  function period() {
    var now = new Date(Date.now() + skew);
    if (state.days) return { days: state.days, from: new Date(now.getFullYear(), now.getMonth(), now.getDate() - (state.days - 1)), to: new Date(now.getTime() + 600000), now: now };
    return { days: 0, from: state.from, to: state.to };
  }
  /** The last instant the page names for a period: "now" for a preset, the end of the to date for a chosen one. */
  function lastOf(p) { return p.days ? p.now : new Date(p.to.getTime() - 1000); }
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
  /** The period's message, and the fields at fault marked (only those: a missing To does not mark From). */
  function rangeError(m, fields) {
    var e = $('range-error'); e.textContent = m || ''; e.hidden = !m;
    fields = m ? fields || ['from', 'to'] : [];
    ['from', 'to'].forEach(function (f) { if (fields.indexOf(f) >= 0) $(f).setAttribute('aria-invalid', 'true'); else $(f).removeAttribute('aria-invalid'); });
  }
  $('range-form').addEventListener('submit', async function (ev) {
    ev.preventDefault();
    var f = parseDate($('from').value), t = parseDate($('to').value);
    if (!f && !t) { rangeError('Choose a from date and a to date.', ['from', 'to']); $('from').focus(); return; }
    if (!f) { rangeError('Choose a from date, the first day of the period.', ['from']); $('from').focus(); return; }
    if (!t) { rangeError('Choose a to date, the last day of the period.', ['to']); $('to').focus(); return; }
    // A year of two digits (26 for 2026) or a slip of the keyboard: no reading is that old.
    var y = [['from', f], ['to', t]].filter(function (x) { return x[1].getFullYear() < 1900 || x[1].getFullYear() > 9999; })[0];
    if (y) { rangeError('Check the year of the ' + y[0] + ' date: write it with four digits, e.g. ' + new Date().getFullYear() + '.', [y[0]]); $(y[0]).focus(); return; }
    var end = new Date(t.getFullYear(), t.getMonth(), t.getDate() + 1);
    if (end <= f) { rangeError('The to date must not lie before the from date. Choose a later to date.', ['to']); $('to').focus(); return; }
    // The hub's rule, 366 x 24 h (its whole seconds are these ms): 366 days over the clocks going back are more, said so.
    if (end - f > 366 * DAY) { rangeError('A period can be at most 366 days' + (Date.UTC(t.getFullYear(), t.getMonth(), t.getDate()) - Date.UTC(f.getFullYear(), f.getMonth(), f.getDate()) < 366 * DAY ? ' of 24 hours: this one is longer, as the clocks are put back within it' : '') + '. Choose a to date closer to the from date.', ['to']); $('to').focus(); return; }
    rangeError(null);
    state.from = f; state.to = end; setPreset(0);
    if (await load(state.cpr, false)) render();
  });

  // ---- load ----
  var loads = 0;
  async function load(cpr, first) {
    // Only the latest request's answer is shown: an earlier one that arrives later (90 days asked, then 7) would put
    // its readings under the period pressed since.
    var p = period(), gen = state.gen, seq = ++loads, guessed = !skewKnown, before = skew;
    loadError(null);
    if (!first) { $('period').textContent = 'Loading your readings\u2026'; busy(true); }
    var r;
    try {
      // POST, the CPR number in the body: a URL is kept in proxies' access logs and the browser's history.
      r = await api('POST', 'observations/search', { patientId: cpr, from: iso(p.from), to: iso(p.to) });
    } catch (e) {
      r = null;
    }
    if (seq !== loads) return false;
    if (!first) busy(false);
    if (gen !== state.gen) return false;
    // The first answer told the hub's clock: a quick period computed by this browser's (a minute or more off) is
    // asked again, so a reading just saved by the hub's clock is not missing.
    if (r && guessed && skewKnown && state.days && Math.abs(skew - before) > 60000) return load(cpr, first);
    // A 200 without the hub's list (a proxy's or a portal's page) is no answer: it is not "no readings".
    if (r && r.ok && !Array.isArray(r.body.observations)) r = null;
    if (!r) { fail(first, 'The hub cannot be reached. Check your connection and try again.', false); return false; }
    if (r.ok || r.body.code === 'unknown_patient') {
      state.data = r.ok ? r.body.observations : [];
      state.shown = p; state.loadedAt = Date.now();
      // A preset's "now": when fetched, or the newest reading's time if later (stored ahead of the hub's clock).
      if (p.days) p.now = new Date(Math.max.apply(null, state.data.map(function (o) { return Date.parse(o.measuredAt); }).concat(state.loadedAt + skew)));
      if (!first) title('Your readings');
      return true;
    }
    // The patient was erased: what is on screen of theirs (readings, graph, a draft) goes too, as with Change person.
    // At the first load (after a reload of the page) nothing is on screen, but their draft may be in sessionStorage.
    if (r.status === 410) { if (!first) forget(); else dropDraftOf(cpr); fail(true, says(r, 'shown'), false); return false; }
    var errs = r.body.errors || [];
    var onCpr = errs.filter(function (e) { return fieldOf(e.path) === 'cpr'; });
    if (onCpr.length || r.body.code === 'invalid_patient_id') {
      if (!first) forget();
      cprProblem(cprSays(onCpr[0] ? onCpr[0].message : r.body.detail), true);
      $('cpr').focus();
      return false;
    }
    var onRange = errs.filter(function (e) { return fieldOf(e.path) === 'range'; });
    if (onRange.length) rangeError('The period: ' + stop(onRange.map(function (e) { return rangeName(e.path) + ' ' + e.message; }).join('; ')) + ' Choose other dates.', onRange.map(function (e) { return rangeName(e.path); }));
    // 403: this CPR number is not the signed-in patient's (a typing mistake, most often): the field is at fault.
    fail(first, says(r, 'shown'), r.status === 403);
    return false;
  }
  function rangeName(path) { return /(^|\.)to$/.test(String(path)) ? 'to' : 'from'; }
  function busy(on) {
    ['chart-fig', 'readings'].forEach(function (id) { if (on) $(id).setAttribute('aria-busy', 'true'); else $(id).removeAttribute('aria-busy'); });
  }
  function loadError(m) { var e = $('load-error'); e.textContent = m || ''; e.hidden = !m; if (m) title('Error: readings not shown \u2013 Your readings'); }
  // A failed reload leaves the readings on screen, with the period they belong to. At the first load, a problem not
  // the CPR number's (no connection, sign-in ended) is the form's: a correct number is not marked invalid.
  function fail(first, m, atField) {
    if (first) { cprProblem(m, !!atField); if (atField) $('cpr').focus(); return; }
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
    // "now" is p.now, set by load (asked again when the tab is shown after a minute or more).
    $('period').textContent = stop((n === 0 ? 'No readings' : n === 1 ? '1 reading' : n + ' readings') + ' from ' + fmtTime.format(p.from) + ' to ' + (p.days ? 'now (as of ' + fmtHour.format(p.now) + ')' : fmtTime.format(lastOf(p))));
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
    // Named by its title, described by its summary; the marks are hidden from assistive technology (the table below
    // lists every reading), which heard 20-odd unnamed graphics symbols.
    var svg = el('svg', { viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, role: 'img', 'aria-labelledby': 'chart-title', 'aria-describedby': 'chart-desc' });
    var summary;
    if (rows.length) {
      var s = rows.map(function (o) { return o.systolic.value; }), d = rows.map(function (o) { return o.diastolic.value; });
      var newest = rows[rows.length - 1];
      summary = stop(rows.length + (rows.length === 1 ? ' reading' : ' readings') + ' from ' + fmtDay.format(p.from) + ' to ' + fmtDay.format(lastOf(p))) +
        ' Systolic ' + Math.min.apply(null, s) + ' to ' + Math.max.apply(null, s) + ' mmHg, diastolic ' + Math.min.apply(null, d) + ' to ' + Math.max.apply(null, d) +
        ' mmHg. ' + stop('Latest ' + newest.systolic.value + ' over ' + newest.diastolic.value + ' on ' + when(new Date(newest.measuredAt))) + ' The table below lists every reading.';
    } else {
      summary = stop('No readings from ' + fmtDay.format(p.from) + ' to ' + fmtDay.format(lastOf(p)));
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
    // Ticks every few days from the first; for a period of up to 2 days, every few hours (a day's date at midnight).
    var fits = Math.max(2, Math.floor((W - m.l - m.r) / 64)), ticks = [], t;
    // Two calendar days may hold 49 hours (the autumn clock change): still by hour.
    if (x1 - x0 <= 2 * DAY + 3600000) {
      var hs = [1, 2, 3, 4, 6, 12, 24].filter(function (h) { return (x1 - x0) / 3600000 / h <= fits; })[0] || 24;
      // x0's hour if on one (the first day's date at midnight was missing), else the next.
      t = new Date(x0 + 3599999); t.setMinutes(0, 0, 0);
      for (; t.getTime() < x1; t = new Date(t.getTime() + 3600000)) if (t.getHours() % hs === 0) ticks.push([t, t.getHours() ? fmtHour : fmtDay]);
    } else {
      var step = Math.max(1, Math.ceil(Math.round((x1 - x0) / DAY) / fits));
      for (t = new Date(p.from.getFullYear(), p.from.getMonth(), p.from.getDate()); t.getTime() < x1; t = new Date(t.getFullYear(), t.getMonth(), t.getDate() + step)) ticks.push([t, fmtDay]);
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
      var series = el('g', { class: 'series ' + k, 'data-series': key, 'aria-hidden': 'true' });
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
  // Digits as at the CPR field (asciiDigits), and the Arabic decimal separator (\u066B), typed with Arabic digits, as a
  // decimal point; anything else is refused (checkNumber's rule is ASCII).
  function typedNumber(field) { return asciiDigits($(field).value).trim().replace('\u066B', '.'); }
  function checkNumber(field) {
    var raw = typedNumber(field), r = RANGE[field];
    if (!raw) return 'Enter the ' + field + ' pressure.';
    if (!/^\d{1,3}([.,]\d{1,2})?$/.test(raw)) { var e = field === 'systolic' ? '126' : '70'; return LABEL[field] + ' must be a number with at most two decimals, e.g. ' + e + ' or ' + e + '.5.'; }
    var v = Number(raw.replace(',', '.'));
    if (v < r[0] || v > r[1]) return LABEL[field] + ' must be between ' + r[0] + ' and ' + r[1] + ' mmHg.';
    return null;
  }
  /** The hub's field errors in plain words, with what to do; the hub's own text only as a last resort. */
  function fieldSays(f, m) {
    m = String(m || '');
    if (f === 'measured' && /in the future/.test(m)) return 'This time is later than now. Check the date and the time, or leave the field empty if you took the reading just now.';
    if (f === 'measured' && /date of birth/.test(m)) return 'This time is before the birth date in your CPR number. Check the date, the year especially.';
    if (f === 'systolic' && /above the diastolic/.test(m)) return 'Systolic must be higher than diastolic. Check that the two numbers are not swapped.';
    if (RANGE[f] && /between/.test(m)) return LABEL[f] + ' must be between ' + RANGE[f][0] + ' and ' + RANGE[f][1] + ' mmHg. Check the number on your monitor.';
    return LABEL[f] + ': ' + stop(m.replace(/[.]$/, '')) + ' Check this value.';
  }
  // A reading saved outside the period shown is not on screen: told only "Saved", a patient typed it in again.
  function outsideShown(measuredAt) {
    var p = state.shown, t = Date.parse(measuredAt);
    var side = !p || isNaN(t) ? '' : t < p.from.getTime() ? 'before' : t >= p.to.getTime() ? 'after' : '';
    return side ? ' It lies ' + side + ' the period shown: choose a longer period or other dates to see it.' : '';
  }
  // While an upload waits its fields are read-only (the answer's reset wiped what was typed, and typing dropped the
  // draft); not disabled: the focus stays. aria-busy on the fields: on the form it silenced its live region.
  var READING = ['systolic', 'diastolic', 'measured'];
  function uploading(on) {
    state.busy = on;
    if (on) $('upload-btn').setAttribute('aria-disabled', 'true'); else $('upload-btn').removeAttribute('aria-disabled');
    READING.forEach(function (f) { $(f).readOnly = on; if (on) $(f).setAttribute('aria-busy', 'true'); else $(f).removeAttribute('aria-busy'); });
  }
  $('upload-form').addEventListener('submit', async function (ev) {
    ev.preventDefault();
    // Busy: the button keeps its focus (aria-disabled, not disabled, which sent the focus to the page's body).
    if (state.busy) return;
    var errors = { systolic: checkNumber('systolic'), diastolic: checkNumber('diastolic'), measured: null };
    // A decimal comma (126,5) is how many write it here.
    var sys = Number(typedNumber('systolic').replace(',', '.')), dia = Number(typedNumber('diastolic').replace(',', '.'));
    if (!errors.systolic && !errors.diastolic && sys <= dia) errors.systolic = 'Systolic must be higher than diastolic (' + dia + ').';
    var typed = $('measured').value, at = null, twice = false, year = /^(\d+)-/.exec(typed);
    // A year of two digits (0026) or five (20266): the year is wrong (refused as a skipped time, or 'enter a date').
    if (year && (+year[1] < 1900 || +year[1] > 9999)) errors.measured = 'Check the year: write it with four digits, e.g. ' + new Date().getFullYear() + '.';
    else if (typed) {
      at = new Date(typed);
      if (isNaN(at.getTime())) errors.measured = 'Enter a date and time, or leave the field empty.';
      // A time the clocks skipped does not exist (new Date() moved it an hour without a word); one they repeated is
      // taken as the first, and the answer says so.
      else if (localInput(at) !== typed.slice(0, 16)) errors.measured = 'This time does not exist on that day: the clocks were put forward an hour then. Enter the time as the clock showed it.';
      else twice = localInput(new Date(at.getTime() + 3600000)) === typed.slice(0, 16);
    } else if ($('measured').validity && $('measured').validity.badInput) {
      errors.measured = 'Enter a complete date and time, or leave the field empty.';
    }
    var bad = Object.keys(errors).filter(function (k) { return errors[k]; });
    Object.keys(errors).forEach(function (k) { setError(k, errors[k]); });
    if (bad.length) {
      status('upload-status', bad.length === 1 ? 'Please correct 1 field.' : 'Please correct ' + bad.length + ' fields.', 'bad');
      title('Error: ' + (bad.length === 1 ? '1 field' : bad.length + ' fields') + ' to correct \u2013 Your readings');
      $(bad[0]).focus();
      return;
    }
    var body = { patientId: state.cpr, systolic: sys, diastolic: dia };
    // The same attempt sent again (see dropDraft) keeps its id and time (an empty field: the first Upload's, by the hub's
    // clock). The values are compared too, for a form changed without an input event (which dropDraft never sees).
    var sig = JSON.stringify([sys, dia, at ? iso(at) : null]);
    if (!state.draft || state.draft.sig !== sig) {
      var salt = uuid().slice(0, 8);
      state.draft = { sig: sig, id: uuid(), systolic: $('systolic').value, diastolic: $('diastolic').value, measured: typed, at: iso(at || new Date(Date.now() + skew)), salt: salt, owner: ownerTag(salt, state.cpr) };
    }
    try { sessionStorage.setItem(DRAFT, JSON.stringify(state.draft)); } catch (e) { /* memory only */ }
    body.measuredAt = state.draft.at;
    body.observationId = state.draft.id;
    uploading(true); status('upload-status', 'Uploading\u2026 The fields can be changed again when it is done.');
    var r, gen = state.gen, noAnswer = false, listed = false;
    // The fields come back however the wait ends (a throw on the way left them read-only for good); after Change
    // person, forget() gave them back.
    try {
      try { r = await api('POST', 'observations', body); }
      catch (e) { r = null; noAnswer = !!e.noAnswer; }
      // Change person meanwhile: nothing of the previous patient's upload is shown to the next.
      if (gen !== state.gen) return;
      // A 2xx not the hub's for this reading (a portal's page): no answer, the draft stays.
      if (r && r.ok && !(typeof r.body.uniqueId == 'string' && r.body.observationId === body.observationId && !isNaN(Date.parse(r.body.measuredAt)))) r = null;
      if (r && r.ok) {
        state.draft = null;
        unkeep();
        $('upload-form').reset();
        // Table and graph first, then the announcement: when "Saved" is heard, the reading is on screen.
        if ((listed = await load(state.cpr, false))) render();
        // Change person (or an erasure, another's sign-in) while the readings reloaded: the next person is not told
        // "Saved: 143 over 91" of the previous one's reading.
        if (gen !== state.gen) return;
      }
    } finally { if (gen === state.gen) uploading(false); }
    // Erased meanwhile: nothing of theirs stays on screen or in the draft.
    if (r && r.status === 410) { forget(); cprProblem(says(r, 'saved'), false); return; }
    if (!r) {
      // No answer (a reset, a portal's page): the hub may have stored it, so never "not saved".
      title('Error: reading may not be saved \u2013 Your readings');
      status('upload-status', (noAnswer ? 'No answer from the hub' : 'The hub cannot be reached or its answer was lost') +
        ', so the reading may or may not be saved. Press Upload again' + AS_IT_IS, 'bad');
      return;
    }
    if (r.ok) {
      // The reload after it failed (its error is shown): the list is the old one, without this reading.
      var stale = !listed && !$('load-error').hidden;
      if (!stale) title('Your readings');
      status('upload-status', 'Saved: ' + sys + ' over ' + dia + ' mmHg' + (r.body.measuredAt ? ' at ' + when(new Date(r.body.measuredAt)) : '') + '.' +
        (twice ? ' That time happened twice that night (the clocks went back an hour); the first was taken, before the clocks went back.' : '') +
        (stale ? ' The list of readings could not be refreshed, so it is not in it yet: choose a period to try again.' : outsideShown(r.body.measuredAt)), 'ok');
      return;
    }
    title('Error: reading not saved \u2013 Your readings');
    // Refused by the hub (its problem's code): nothing stored, nor ever as it is, so not brought back after a reload as
    // "may not be saved yet". A proxy's 400 says nothing of an earlier attempt whose answer was lost: kept.
    if ((r.status === 400 || r.status === 422) && typeof r.body.code == 'string') unkeep();
    var shown = 0;
    var onCpr = (r.body.errors || []).filter(function (e) { return fieldOf(e.path) === 'cpr'; })[0];
    // Not the reading but whose it is (a CPR number born in the future): said as such, not as a field of the form.
    if (onCpr) { status('upload-status', 'Not saved. ' + cprSays(onCpr.message), 'bad'); return; }
    var named = [];
    (r.body.errors || []).forEach(function (e) {
      var f = fieldOf(e.path);
      if (f && f !== 'cpr' && f !== 'range' && !$(f + '-error').textContent) { setError(f, fieldSays(f, e.message)); named.push(LABEL[f].toLowerCase()); if (!shown++) $(f).focus(); }
    });
    if (!shown && r.status >= 500 && r.body.code !== 'auth_unavailable') { title('Error: reading may not be saved \u2013 Your readings'); status('upload-status', says(r, 'saved'), 'bad'); return; }
    status('upload-status', 'Not saved. ' + (shown ? 'Please correct the ' + named.join(' and ') + ': see the message at the field.' : says(r, 'saved')), 'bad');
  });
  // The draft's id and time are the attempt's, not its values': typing starts a new attempt, also back to the same
  // values (a second reading sent with the first's id was taken as its repeat, and not stored).
  function unkeep() { try { sessionStorage.removeItem(DRAFT); } catch (e) { /* not kept */ } }
  function dropDraft() {
    state.draft = null;
    unkeep();
    // What was said of the draft ("may or may not be saved. Press Upload again") is no longer true of the form.
    status('upload-status', '');
    title('Your readings');
  }
  READING.forEach(function (f) {
    $(f).addEventListener('input', function () {
      if ($(f).getAttribute('aria-invalid')) setError(f, null);
      if (state.draft) dropDraft();
    });
  });

  // ---- the sign-in's time limit ----
  // Two minutes before a link's token runs out (exp, the hub's clock) the page says to open the link again in this
  // tab (what was typed stays: takeToken); with the dev login it gets a new token itself. The hub decides the rest.
  var ENDED = 'Your sign-in has ended. Open the link from your sign-in page again, in this tab: what you typed stays in the form.';
  var WARN_BEFORE = 120000, expiryTimer = 0;
  function adoptExpiry(token) {
    var c = claims(token);
    state.exp = c && typeof c.exp === 'number' ? c.exp * 1000 : null;
    state.warned = 0;
    status('session-status', '');
    checkExpiry();
  }
  async function checkExpiry() {
    clearTimeout(expiryTimer); expiryTimer = 0;
    if (!state.exp || !state.cpr || state.devToken) return;
    var exp = state.exp, left = exp - (Date.now() + skew);
    if (left <= 0) { status('session-status', ENDED, 'bad'); title('Sign-in ended \u2013 Your readings'); return; }
    if (left <= WARN_BEFORE + 5000 && state.warned !== exp) {
      state.warned = exp;
      // The local dev login hands out another token: nothing to say.
      if (await devLogin().catch(function () { return false; })) { status('session-status', ''); return; }
      if (state.exp !== exp) return;
      var mins = Math.max(1, Math.round(left / 60000));
      status('session-status', 'Your sign-in ends at ' + fmtHour.format(new Date(exp - skew)) + ', in about ' + mins + (mins === 1 ? ' minute' : ' minutes') +
        '. To stay signed in, open the link from your sign-in page again, in this tab: what you typed stays in the form.', 'warn');
      title('Sign-in ends soon \u2013 Your readings');
    }
    // Checked again at least every half minute (a laptop asleep does not run timers on time).
    expiryTimer = setTimeout(checkExpiry, Math.max(1000, Math.min(30000, left > WARN_BEFORE ? left - WARN_BEFORE : left)));
  }
  /** The patient shown signed in again (a new token for the same patient): nothing is lost, and the page says so. */
  function signedInAgain() {
    loadError(null);
    var typed = READING.some(function (f) { return $(f).value; });
    if (/sign-in/.test($('upload-status').textContent)) status('upload-status', '');
    status('session-status', 'You are signed in again.' + (typed ? ' Your reading is still in the form: press Upload reading to save it.' : ''), 'ok');
    title('Your readings');
  }

  /** The draft in sessionStorage, when it is this CPR number's (an erased patient's: it can never be saved). */
  function dropDraftOf(cpr) {
    try {
      var d = JSON.parse(sessionStorage.getItem(DRAFT) || 'null');
      if (d && d.salt && d.owner === ownerTag(d.salt, cpr)) sessionStorage.removeItem(DRAFT);
    } catch (e) { /* nothing kept */ }
  }
  /** A reading sent before a reload without a known answer: back in the form, with its id, to be sent again. */
  function restoreDraft() {
    var d = null;
    try { d = JSON.parse(sessionStorage.getItem(DRAFT) || 'null'); } catch (e) { d = null; }
    if (!d || !d.id || state.draft) return;
    // Another patient's (the tab was theirs before the reload), or an older page's: never in this patient's form.
    if (!d.salt || !d.at || isNaN(Date.parse(d.at)) || d.owner !== ownerTag(d.salt, state.cpr)) return;
    state.draft = d;
    $('systolic').value = d.systolic || ''; $('diastolic').value = d.diastolic || ''; $('measured').value = d.measured || '';
    status('upload-status', 'This reading, taken ' + when(new Date(d.at)) + ', may not be saved yet. Press Upload to send it again: it will be stored only once, with that time. A reading typed over it is saved as a new one.', 'bad');
  }
})();
`;
