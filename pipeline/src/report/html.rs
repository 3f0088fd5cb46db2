//! `security-dashboard.html`: one self-contained file (inline CSS, inline script, inline SVG; a CSP
//! that forbids every network load) with totals by severity, tool and category, new against existing,
//! the trend from the history database, SLA breaches, suppressions and their expiry, and a findings
//! table that filters by text, severity, category and state.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::escape;
use crate::assess::Assessment;
use crate::baseline::State;
use crate::model::Severity;

const STYLE: &str = r#"
:root{--bg:#0f172a;--panel:#111827;--fg:#e5e7eb;--muted:#9ca3af;--critical:#dc2626;--high:#ea580c;--medium:#d97706;--low:#2563eb;--info:#6b7280;--ok:#16a34a}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:var(--bg);color:var(--fg)}
header{padding:20px 28px;border-bottom:1px solid #1f2937;display:flex;gap:16px;align-items:baseline;flex-wrap:wrap}
h1{font-size:20px;margin:0}h2{font-size:15px;margin:0 0 10px;color:var(--muted);text-transform:uppercase;letter-spacing:.05em}
.verdict{font-weight:700;padding:4px 10px;border-radius:6px}.verdict.failed{background:var(--critical)}.verdict.passed{background:var(--ok)}
main{padding:20px 28px;display:grid;gap:18px;grid-template-columns:repeat(auto-fit,minmax(320px,1fr))}
section{background:var(--panel);border:1px solid #1f2937;border-radius:10px;padding:16px}section.wide{grid-column:1/-1}
.cards{display:flex;gap:10px;flex-wrap:wrap}.card{flex:1;min-width:90px;border-radius:8px;padding:10px 12px;background:#1f2937}
.card .n{font-size:26px;font-weight:700}.card .l{color:var(--muted);font-size:12px;text-transform:uppercase}
.sev-critical{border-left:4px solid var(--critical)}.sev-high{border-left:4px solid var(--high)}.sev-medium{border-left:4px solid var(--medium)}.sev-low{border-left:4px solid var(--low)}.sev-info{border-left:4px solid var(--info)}
table{width:100%;border-collapse:collapse}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #1f2937;vertical-align:top}th{color:var(--muted);font-weight:600}
.pill{display:inline-block;padding:1px 8px;border-radius:999px;font-size:12px;font-weight:600}.p-critical{background:var(--critical)}.p-high{background:var(--high)}.p-medium{background:var(--medium)}.p-low{background:var(--low)}.p-info{background:var(--info)}
.muted{color:var(--muted)}.fails{color:#fca5a5;font-weight:700}.expired{color:#fca5a5}
.filters{display:flex;gap:8px;flex-wrap:wrap;margin-bottom:10px}input,select{background:#0b1220;color:var(--fg);border:1px solid #374151;border-radius:6px;padding:6px 8px}
code{font-size:12px;color:#c7d2fe}svg text{fill:var(--muted);font-size:11px}
"#;

const SCRIPT: &str = r#"
(function(){
  var rows=[].slice.call(document.querySelectorAll('#findings tbody tr'));
  var q=document.getElementById('q'),sev=document.getElementById('sev'),cat=document.getElementById('cat'),st=document.getElementById('state');
  function apply(){
    var text=q.value.toLowerCase(),shown=0;
    rows.forEach(function(r){
      var ok=(!text||r.textContent.toLowerCase().indexOf(text)>=0)&&(!sev.value||r.dataset.severity===sev.value)
        &&(!cat.value||r.dataset.category===cat.value)&&(!st.value||r.dataset.state===st.value);
      r.style.display=ok?'':'none';if(ok)shown++;
    });
    document.getElementById('shown').textContent=shown+' of '+rows.length+' shown';
  }
  [q,sev,cat,st].forEach(function(e){e.addEventListener('input',apply);e.addEventListener('change',apply);});
  // Filters can be preset by the URL: security-dashboard.html#sev=critical&state=new&q=Dockerfile
  location.hash.slice(1).split('&').forEach(function(kv){
    var p=kv.split('='),v=decodeURIComponent(p[1]||'');
    if(p[0]==='q')q.value=v;if(p[0]==='sev')sev.value=v;if(p[0]==='cat')cat.value=v;if(p[0]==='state')st.value=v;
  });
  apply();
  document.body.setAttribute('data-ready','true');
})();
"#;

fn pill(severity: Severity) -> String {
    format!("<span class=\"pill p-{0}\">{0}</span>", severity.as_str())
}

fn trend_svg(a: &Assessment) -> String {
    if a.trend.len() < 2 {
        return "<p class=\"muted\">The trend appears after two recorded runs.</p>".into();
    }
    let (w, h, pad) = (640.0_f64, 180.0_f64, 28.0_f64);
    let max = a.trend.iter().map(|r| r.total).max().unwrap_or(1).max(1) as f64;
    let step = (w - 2.0 * pad) / (a.trend.len() - 1) as f64;
    let mut svg = format!(
        "<svg viewBox=\"0 0 {w} {h}\" width=\"100%\" role=\"img\" aria-label=\"findings per run\">"
    );
    type Series = (
        &'static str,
        fn(&crate::history::RunTotals) -> i64,
        &'static str,
    );
    let series: [Series; 4] = [
        ("total", |r| r.total, "#e5e7eb"),
        ("critical", |r| r.critical, "#dc2626"),
        ("high", |r| r.high, "#ea580c"),
        ("new", |r| r.new, "#60a5fa"),
    ];
    for (name, value, color) in series {
        let points: Vec<String> = a
            .trend
            .iter()
            .enumerate()
            .map(|(i, r)| {
                format!(
                    "{:.1},{:.1}",
                    pad + i as f64 * step,
                    h - pad - (value(r) as f64 / max) * (h - 2.0 * pad)
                )
            })
            .collect();
        let _ = write!(svg, "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"><title>{name}</title></polyline>", points.join(" "));
    }
    let _ = write!(
        svg,
        "<text x=\"{pad}\" y=\"{}\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><text x=\"4\" y=\"{pad}\">{max}</text></svg>",
        h - 8.0,
        escape(a.trend.first().map(|r| r.at.as_str()).unwrap_or("")),
        w - pad,
        h - 8.0,
        escape(a.trend.last().map(|r| r.at.as_str()).unwrap_or(""))
    );
    svg.push_str(
        "<p class=\"muted\">Lines: total (white), critical (red), high (orange), new (blue).</p>",
    );
    svg
}

pub fn render(a: &Assessment) -> String {
    let open = |s: Severity| a.count(|f| f.finding.severity == s && f.suppressed_by.is_none());
    let mut out = String::with_capacity(64 * 1024 + a.findings.len() * 400);
    let verdict = if a.failed { "failed" } else { "passed" };
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\
         <title>devsecops security dashboard</title><style>{STYLE}</style></head><body data-ready=\"false\">\
         <header><h1>Security dashboard</h1><span id=\"verdict\" class=\"verdict {verdict}\">{verdict}</span>\
         <span class=\"muted\">generated {}</span></header><main>",
        escape(&a.generated.format(&time::format_description::well_known::Rfc3339).unwrap_or_default())
    );
    // Totals by severity (open = not suppressed).
    out.push_str("<section class=\"wide\"><h2>Open findings by severity</h2><div class=\"cards\">");
    for s in Severity::ALL {
        let _ = write!(out, "<div class=\"card sev-{0}\"><div class=\"n\" id=\"total-{0}\">{1}</div><div class=\"l\">{0}</div></div>", s.as_str(), open(s));
    }
    let _ = write!(
        out,
        "<div class=\"card\"><div class=\"n\" id=\"total-failing\">{}</div><div class=\"l\">failing the gate</div></div></div>",
        a.count(|f| f.fails)
    );
    for reason in &a.reasons {
        let _ = write!(out, "<p class=\"fails\">{}</p>", escape(reason));
    }
    out.push_str("</section>");
    // New against existing.
    let states = [
        (
            "new",
            a.count(|f| f.state == State::New && f.suppressed_by.is_none()),
        ),
        (
            "unchanged",
            a.count(|f| f.state == State::Unchanged && f.suppressed_by.is_none()),
        ),
        ("suppressed", a.count(|f| f.suppressed_by.is_some())),
        ("fixed", a.fixed.len()),
    ];
    out.push_str("<section><h2>New and existing</h2><div class=\"cards\">");
    for (name, n) in states {
        let _ = write!(out, "<div class=\"card\"><div class=\"n\" id=\"state-{name}\">{n}</div><div class=\"l\">{name}</div></div>");
    }
    out.push_str("</div></section>");
    // By tool and category.
    let mut tools: BTreeMap<&str, usize> = BTreeMap::new();
    let mut categories: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &a.findings {
        for t in &f.finding.tools {
            *tools.entry(t.as_str()).or_default() += 1;
        }
        *categories.entry(f.finding.category.as_str()).or_default() += 1;
    }
    for (title, map, id) in [
        ("By tool", &tools, "tool"),
        ("By category", &categories, "category"),
    ] {
        let _ = write!(
            out,
            "<section><h2>{title}</h2><table id=\"by-{id}\"><tbody>"
        );
        for (k, n) in map {
            let _ = write!(out, "<tr><td>{}</td><td>{n}</td></tr>", escape(k));
        }
        out.push_str("</tbody></table></section>");
    }
    let _ = write!(
        out,
        "<section class=\"wide\"><h2>Trend</h2>{}</section>",
        trend_svg(a)
    );
    // SLA breaches.
    let breaches: Vec<_> = a.findings.iter().filter(|f| f.sla_breached).collect();
    let _ = write!(
        out,
        "<section><h2>Past their SLA (<span id=\"sla-breaches\">{}</span>)</h2>",
        breaches.len()
    );
    if breaches.is_empty() {
        out.push_str("<p class=\"muted\">None.</p>");
    } else {
        out.push_str("<table><thead><tr><th>severity</th><th>rule</th><th>age</th><th>SLA</th></tr></thead><tbody>");
        for b in breaches {
            let _ = write!(
                out,
                "<tr><td>{}</td><td><code>{}</code></td><td>{} d</td><td>{} d</td></tr>",
                pill(b.finding.severity),
                escape(&b.finding.rule),
                b.age_days,
                b.sla_days.unwrap_or(0)
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");
    // Suppressions.
    let _ = write!(
        out,
        "<section><h2>Suppressions ({})</h2>",
        a.suppressions.len()
    );
    if a.suppressions.is_empty() {
        out.push_str("<p class=\"muted\">None.</p>");
    } else {
        out.push_str("<table id=\"suppressions\"><thead><tr><th>matches</th><th>owner</th><th>expires</th><th>hits</th></tr></thead><tbody>");
        for s in &a.suppressions {
            let _ = write!(
                out,
                "<tr title=\"{}\"><td>{}</td><td>{}</td><td class=\"{}\">{}{}</td><td>{}</td></tr>",
                escape(&s.justification),
                escape(&s.matches),
                escape(&s.owner),
                if s.expired { "expired" } else { "" },
                escape(&s.expires),
                if s.expired { " (expired)" } else { "" },
                s.matched
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");
    // Findings table.
    out.push_str(
        "<section class=\"wide\"><h2>Findings</h2><div class=\"filters\"><input id=\"q\" placeholder=\"filter: rule, file, package, tool\" size=\"36\">\
         <select id=\"sev\"><option value=\"\">any severity</option>",
    );
    for s in Severity::ALL {
        let _ = write!(out, "<option>{}</option>", s.as_str());
    }
    out.push_str("</select><select id=\"cat\"><option value=\"\">any category</option>");
    for c in crate::model::Category::ALL {
        let _ = write!(out, "<option>{}</option>", c.as_str());
    }
    out.push_str("</select><select id=\"state\"><option value=\"\">any state</option><option>new</option><option>unchanged</option><option>suppressed</option></select>\
                  <span id=\"shown\" class=\"muted\"></span></div>\
                  <table id=\"findings\"><thead><tr><th>severity</th><th>rule</th><th>title</th><th>where</th><th>tools</th><th>state</th><th>age</th></tr></thead><tbody>");
    for item in &a.findings {
        let f = &item.finding;
        let state = if item.suppressed_by.is_some() {
            "suppressed"
        } else {
            item.state.as_str()
        };
        let place = f.place();
        let _ = write!(
            out,
            "<tr data-severity=\"{}\" data-category=\"{}\" data-state=\"{state}\"><td>{}</td><td><code>{}</code></td><td>{}{}</td><td><code>{}</code></td><td>{}</td><td>{state}</td><td>{} d</td></tr>",
            f.severity.as_str(),
            f.category.as_str(),
            pill(f.severity),
            escape(&f.rule),
            escape(&f.title),
            if item.fails { " <span class=\"fails\">fails</span>" } else { "" },
            escape(&place),
            escape(&f.tools.iter().cloned().collect::<Vec<_>>().join(", ")),
            item.age_days
        );
    }
    out.push_str("</tbody></table></section>");
    if !a.skipped.is_empty() {
        out.push_str("<section class=\"wide\"><h2>Scanners that did not run</h2><ul>");
        for (tool, why) in &a.skipped {
            let _ = write!(out, "<li><b>{}</b>: {}</li>", escape(tool), escape(why));
        }
        out.push_str("</ul></section>");
    }
    let _ = writeln!(out, "</main><script>{SCRIPT}</script></body></html>");
    out
}
