/**
 * The console's stylesheet, served as GET <prefix>/ui/static/console.css. It lives in a module so
 * the build (tsc into dist/) ships it without a copy step; the CSP allows no inline styles.
 */
export const CONSOLE_CSS = `
:root{--fg:#1d2125;--muted:#5e6c7a;--line:#d9dee3;--bg:#fff;--head:#f4f6f8;--up:#137333;--down:#b3261e;--warn:#8a5a00;--link:#0b57d0}
*{box-sizing:border-box}
body{margin:0;font:13px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg)}
a{color:var(--link);text-decoration:none}a:hover{text-decoration:underline}
header.top{display:flex;align-items:center;gap:1.2rem;padding:.4rem 1rem;background:#14213d;color:#e8ecf1}
header.top a{color:#e8ecf1}.brand{font-weight:700}
header.top nav{display:flex;gap:.9rem}header.top nav a[aria-current=page]{border-bottom:2px solid #fca311}
.who{margin-left:auto}.who button{margin-left:.4rem}
main{padding:.6rem 1rem 2rem;max-width:110rem}
h1{font-size:1.25rem;margin:.4rem 0 .6rem}h2{font-size:1rem;margin:1.1rem 0 .4rem}
table{border-collapse:collapse;width:100%;margin-bottom:.8rem}
th,td{border-bottom:1px solid var(--line);padding:.22rem .45rem;text-align:left;vertical-align:top}
th{background:var(--head);font-weight:600;white-space:nowrap}th a{color:inherit}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr:hover td{background:#fafbfc}
.mono,code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
pre{background:#f6f8fa;border:1px solid var(--line);padding:.5rem;white-space:pre-wrap;word-break:break-word;margin:.2rem 0 .8rem;max-height:28rem;overflow:auto}
.state{display:inline-block;padding:0 .4rem;border-radius:3px;font-size:11px;font-weight:600;text-transform:uppercase;background:#e8eaed}
.state-up,.state-SUCCESS{background:#e6f4ea;color:var(--up)}
.state-down,.state-FAILURE,.state-REJECTED{background:#fce8e6;color:var(--down)}
.state-RETRY,.state-REVOKED{background:#fef7e0;color:var(--warn)}
.state-STARTED,.state-RECEIVED{background:#e8f0fe;color:#174ea6}
.muted{color:var(--muted)}.error{color:var(--down);font-weight:600}
.summary{display:flex;gap:1.5rem;margin:.2rem 0 .6rem;color:var(--muted)}.summary strong{color:var(--fg)}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(22rem,1fr));gap:0 1.5rem}
dl.kv{display:grid;align-content:start;grid-template-columns:max-content 1fr;gap:.1rem .8rem;margin:.2rem 0 .8rem}dl.kv dt{color:var(--muted)}dl.kv dd{margin:0}
form.inline{display:inline}
.actions form,form.action{display:inline-flex;gap:.25rem;align-items:center;margin:.15rem .5rem .15rem 0;padding:.2rem .35rem;border:1px solid var(--line);border-radius:4px;background:#fbfcfd}
input,select,button{font:inherit;font-size:12px}input[type=number]{width:4.5rem}input.wide{width:14rem}
button{cursor:pointer;padding:.1rem .5rem;border:1px solid #aab4be;border-radius:3px;background:#fff}
button.danger{border-color:var(--down);color:var(--down)}
form.filters{display:flex;flex-wrap:wrap;gap:.4rem;align-items:end;margin:.2rem 0 .6rem}form.filters label{display:flex;flex-direction:column;font-size:11px;color:var(--muted)}
.pager{display:flex;gap:.8rem;align-items:center;margin:.3rem 0}
#result{position:sticky;top:0;z-index:1;max-height:14rem;background:#fffbe6;border-color:#e0c97a;box-shadow:0 2px 4px rgba(0,0,0,.08)}
#result[data-status^="4"],#result[data-status^="5"],#result[data-status="0"]{background:#fce8e6;border-color:var(--down)}
td.nowrap,.nowrap{white-space:nowrap}
.scroll{overflow-x:auto}
.truncate{max-width:16rem;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
main.signin{max-width:27rem;margin:2.5rem auto;padding:1rem 1.5rem 1.2rem;border:1px solid var(--line);border-radius:6px}
.signin-providers{display:flex;flex-direction:column;gap:.5rem;margin:.9rem 0}
.signin-button{display:block;padding:.5rem .8rem;border:1px solid #aab4be;border-radius:4px;background:#fff;color:var(--fg);font-size:14px;font-weight:600;text-align:center}
a.signin-button:hover{background:var(--head);text-decoration:none}
.signin-button.unavailable{color:var(--muted);background:var(--head);border-style:dashed;cursor:not-allowed}
.signin-button small{display:block;font-size:12px;font-weight:400;color:var(--warn)}
.signin-or{text-align:center;margin:1rem 0 .3rem}
.signin-password label{display:flex;flex-direction:column;gap:.2rem}.signin-password input{font-size:14px;padding:.3rem .4rem}.signin-password button{font-size:14px;padding:.3rem 1rem}
`;
