/**
 * The page's markup (served at /app/). No inline script or style (the CSP forbids both): behaviour is in
 * app-js.ts, looks in app-css.ts. __JS_VERSION__ / __CSS_VERSION__ become content hashes (web-routes.ts).
 * Forms post (never GET) so that, even without the script, a CPR number never lands in the page's URL. Every
 * URL is relative (./, app.js): behind a proxy that serves the hub under a path prefix, nothing goes to the
 * origin's root (another application's). The hints' ranges are the domain's (PLAUSIBLE), the page's only
 * dollar-braces.
 */
import { PLAUSIBLE } from '../../../domain/monitoring/tele-observation';

const { systolic, diastolic } = PLAUSIBLE;

export const INDEX_HTML = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="referrer" content="no-referrer">
<title>My blood pressure – TeleMed</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="app.css?v=__CSS_VERSION__">
<script src="app.js?v=__JS_VERSION__" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top"><h1>My blood pressure</h1></header>
<main id="main">
<noscript><p class="problem">This page needs JavaScript to show and upload your readings.</p></noscript>

<section id="who" aria-labelledby="who-h">
<h2 id="who-h">Who are you?</h2>
<form id="cpr-form" method="post" action="./" novalidate autocomplete="off">
<div class="field">
<label for="cpr">CPR number</label>
<p class="hint" id="cpr-hint">Six digits, a hyphen, four digits, e.g. 251248-1234. This page keeps it in memory only, never on disk: after a reload, enter it again.</p>
<input id="cpr" name="cpr" type="text" inputmode="numeric" autocomplete="off" spellcheck="false" required aria-describedby="cpr-hint cpr-error">
<p class="error" id="cpr-error" hidden></p>
</div>
<button type="submit">Show my readings</button>
</form>
<p id="who-status" class="status" role="status" aria-live="polite" aria-atomic="true"></p>
<div id="who-known" hidden>
<p>Showing readings for <span id="cpr-spoken" class="vh"></span><span aria-hidden="true">CPR <span id="cpr-masked" class="mono"></span></span></p>
<button type="button" id="forget" class="secondary">Change person</button>
</div>
</section>

<section id="review" aria-labelledby="review-h" hidden>
<h2 id="review-h" tabindex="-1">Your readings</h2>
<form id="range-form" method="post" action="./" novalidate>
<fieldset>
<legend>Period</legend>
<div class="presets" role="group" aria-label="Quick periods">
<button type="button" class="preset" data-days="7" aria-pressed="true">Last 7 days</button>
<button type="button" class="preset" data-days="30" aria-pressed="false">30 days</button>
<button type="button" class="preset" data-days="90" aria-pressed="false">90 days</button>
</div>
<div class="range">
<div class="field"><label for="from">From</label><input id="from" name="from" type="date" aria-describedby="range-error"></div>
<div class="field"><label for="to">To (inclusive)</label><input id="to" name="to" type="date" aria-describedby="range-error"></div>
<button type="submit" class="secondary">Show period</button>
</div>
<p class="error" id="range-error" hidden></p>
</fieldset>
</form>
<p id="period" class="period" role="status" aria-live="polite"></p>
<p id="load-error" class="error" role="alert" hidden></p>
<figure id="chart-fig">
<div id="chart" class="chart"></div>
<figcaption>
<ul class="legend">
<li><svg width="34" height="14" aria-hidden="true" focusable="false"><line class="line sys" x1="1" y1="7" x2="33" y2="7"/><circle class="pt sys" cx="17" cy="7" r="4.5"/></svg>Systolic (circles, solid line)</li>
<li><svg width="34" height="14" aria-hidden="true" focusable="false"><line class="line dia" x1="1" y1="7" x2="33" y2="7"/><rect class="pt dia" x="12.5" y="2.5" width="9" height="9"/></svg>Diastolic (squares, dashed line)</li>
</ul>
</figcaption>
</figure>
<div class="table-wrap">
<table id="readings">
<caption>Readings in the period, newest first</caption>
<thead><tr><th scope="col">Time</th><th scope="col" class="num">Systolic <abbr title="millimetres of mercury">mmHg</abbr></th><th scope="col" class="num">Diastolic <abbr title="millimetres of mercury">mmHg</abbr></th></tr></thead>
<tbody></tbody>
</table>
</div>
</section>

<section id="upload" aria-labelledby="upload-h" hidden>
<h2 id="upload-h">Add a reading</h2>
<p id="session-status" class="status" role="alert" aria-atomic="true"></p>
<form id="upload-form" method="post" action="./" novalidate>
<div class="pair">
<div class="field">
<label for="systolic">Systolic (upper), mmHg</label>
<input id="systolic" name="systolic" type="text" inputmode="numeric" autocomplete="off" required aria-describedby="systolic-hint systolic-error">
<p class="hint" id="systolic-hint">${systolic.min} to ${systolic.max}</p>
<p class="error" id="systolic-error" hidden></p>
</div>
<div class="field">
<label for="diastolic">Diastolic (lower), mmHg</label>
<input id="diastolic" name="diastolic" type="text" inputmode="numeric" autocomplete="off" required aria-describedby="diastolic-hint diastolic-error">
<p class="hint" id="diastolic-hint">${diastolic.min} to ${diastolic.max}, below systolic</p>
<p class="error" id="diastolic-error" hidden></p>
</div>
</div>
<div class="field">
<label for="measured">Time of reading <span class="opt">(optional)</span></label>
<input id="measured" name="measured" type="datetime-local" step="60" aria-describedby="measured-hint measured-error">
<p class="hint" id="measured-hint">Leave empty for now.</p>
<p class="error" id="measured-error" hidden></p>
</div>
<button type="submit" id="upload-btn">Upload reading</button>
<p id="upload-status" class="status" role="status" aria-live="polite"></p>
</form>
</section>

</main>
</body>
</html>
`;
