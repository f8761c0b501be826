/**
 * The page's styles (served at /app/app.css). Colours meet WCAG AA in both themes: text >= 4.5:1, graph marks and
 * field borders >= 3:1 (test/e2e/web-a11y.e2e.spec.ts measures them). A dark system theme (prefers-color-scheme)
 * gets dark colours, and the browser's own controls (date pickers) follow through `color-scheme`.
 */
export const APP_CSS = String.raw`*,*::before,*::after{box-sizing:border-box}
:root{color-scheme:light dark;--fg:#1f2328;--muted:#4d5661;--bg:#fff;--panel:#f4f6f8;--line:#8c959f;--accent:#0b5cad;--on-accent:#fff;--top:#0b5cad;--field:#fff;--rule:#d0d7de;--grid:#e1e4e8;--warn-bg:#fff4ce;--warn-line:#8a5a00;--sys:#b3261e;--dia:#1a5fb4;--err:#a4161a;--ok:#1e6b34;--focus:#0b5cad}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#a8b1bb;--bg:#0d1117;--panel:#161b22;--line:#7d8590;--accent:#58a6ff;--on-accent:#0d1117;--top:#12345c;--field:#0d1117;--rule:#30363d;--grid:#272d35;--warn-bg:#3a2f0b;--warn-line:#d29922;--sys:#ff7b72;--dia:#79c0ff;--err:#ffa198;--ok:#56d364;--focus:#79c0ff}}
html{-webkit-text-size-adjust:100%}
body{margin:0;font:1rem/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",Arial,sans-serif;color:var(--fg);background:var(--bg)}
a{color:var(--accent)}
.skip{position:absolute;left:-999px;top:0;background:var(--bg);padding:.5rem 1rem}
.skip:focus{left:.5rem;z-index:2}
.skip:focus-visible{outline:3px solid #fff;outline-offset:0;box-shadow:0 0 0 6px var(--fg)}
.vh{position:absolute!important;width:1px;height:1px;margin:-1px;padding:0;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0}
.top{background:var(--top);color:#fff;padding:.75rem 0}
.top h1{margin:0 auto;font-size:1.35rem;max-width:56rem;padding:0 1rem}
main{max-width:56rem;margin:0 auto;padding:0 1rem 3rem}
section{margin-top:1.5rem}
h2{font-size:1.2rem;margin:0 0 .75rem}
h2:focus{outline:3px solid var(--focus);outline-offset:2px}
.field{margin:0 0 1rem;min-width:0}
label,legend{display:block;font-weight:600}
legend{padding:0}
.hint{margin:.15rem 0 .3rem;color:var(--muted);font-size:.9rem}
.opt{font-weight:400;color:var(--muted)}
input{font:inherit;color:inherit;background:var(--field);border:2px solid var(--line);border-radius:6px;padding:.5rem .6rem;width:100%;max-width:18rem;min-height:2.75rem}
input[aria-invalid="true"]{border-color:var(--err)}
/* A reading on its way to the hub: its fields are read-only until the answer (app-js.ts, uploading). */
input[readonly]{background:var(--panel);border-style:dashed}
.error{margin:.3rem 0 0;color:var(--err);font-weight:600}
.error::before{content:"\26A0\FE0E  "}
button{font:inherit;font-weight:600;min-height:2.75rem;padding:.5rem 1rem;border-radius:6px;border:2px solid var(--accent);background:var(--accent);color:var(--on-accent);cursor:pointer}
button.secondary,.preset{background:var(--bg);color:var(--accent)}
.preset[aria-pressed="true"]{background:var(--accent);color:var(--on-accent)}
.preset[aria-pressed="true"]::before{content:"\2713\00A0" / ""}
button:disabled,button[aria-disabled="true"]{opacity:.65;cursor:progress}
:focus-visible{outline:3px solid var(--focus);outline-offset:2px}
/* :focus-within too: a date field's calendar button has the focus inside the field, which is then not :focus */
input:focus,input:focus-visible,input:focus-within{outline:3px solid var(--focus);outline-offset:1px}
fieldset{border:1px solid var(--line);border-radius:8px;padding:.75rem 1rem 0;margin:0 0 1rem;min-width:0}
.presets{display:flex;flex-wrap:wrap;gap:.5rem;margin:.5rem 0 1rem}
.range{display:flex;flex-wrap:wrap;gap:0 1rem;align-items:flex-end}
.range .field{flex:1 1 9rem}
.range button{margin-bottom:1rem}
.pair{display:flex;flex-wrap:wrap;gap:0 1rem}
.pair .field{flex:1 1 12rem}
.status{margin:1rem 0 0;font-weight:600}
.status:empty{margin:0}
.status.ok{color:var(--ok)}
.status.warn{color:var(--fg);background:var(--warn-bg);border-left:4px solid var(--warn-line);padding:.5rem .75rem}
.status.bad{color:var(--err)}
.problem{color:var(--err);font-weight:600}
#who-known{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center}
#who-known[hidden]{display:none}
#who-known p{margin:0}
.mono{font-family:ui-monospace,Menlo,Consolas,monospace}
figure{margin:0 0 1rem}
.chart{width:100%;min-height:14rem;background:var(--bg);border:1px solid var(--rule);border-radius:8px}
.chart svg{display:block;width:100%;height:auto}
.legend{display:flex;flex-wrap:wrap;gap:.25rem 1.5rem;list-style:none;padding:0;margin:.5rem 0 0;font-size:.95rem}
.legend li{display:flex;align-items:center;gap:.4rem}
svg .axis{stroke:var(--line);stroke-width:1}
svg .grid{stroke:var(--grid);stroke-width:1}
svg text{fill:var(--muted);font-size:12px;font-family:inherit}
svg text.unit{font-weight:600;fill:var(--fg)}
svg text.nodata{font-size:15px;fill:var(--muted)}
svg .line{fill:none;stroke-width:2.5;stroke-linejoin:round}
svg .line.sys{stroke:var(--sys)}
svg .line.dia{stroke:var(--dia);stroke-dasharray:7 4}
svg .pt.sys{fill:var(--sys);stroke:var(--bg);stroke-width:1.5}
svg .pt.dia{fill:var(--dia);stroke:var(--bg);stroke-width:1.5}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
caption{text-align:left;font-weight:600;padding:.25rem 0 .5rem}
th,td{text-align:left;padding:.45rem .5rem;border-bottom:1px solid var(--rule)}
th{background:var(--panel)}
td.num,th.num{text-align:right}
.period{margin:0 0 .5rem;font-weight:600}
td.empty{color:var(--muted);font-style:italic}
[hidden]{display:none!important}
@media (max-width:30rem){main,.top h1{padding-inline:.75rem}th,td{padding:.4rem .3rem}.top h1{font-size:1.2rem}}
@media (prefers-reduced-motion:no-preference){button{transition:background-color .15s,color .15s}html{scroll-behavior:smooth}}
@media (forced-colors:active){
svg text,svg text.unit,svg text.nodata{fill:CanvasText}
svg .axis{stroke:CanvasText}
svg .grid{stroke:GrayText}
svg .line.sys,svg .line.dia{stroke:CanvasText}
svg .pt.sys,svg .pt.dia{fill:CanvasText;stroke:Canvas}
.preset[aria-pressed="true"]{forced-color-adjust:none;background:Highlight;color:HighlightText;border-color:CanvasText}
.status.warn{border-left-color:CanvasText}
}
`;
