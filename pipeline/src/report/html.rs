//! `security-dashboard.html`: the dashboard, with its stylesheet (`security-dashboard.css`) and
//! script (`security-dashboard.js`) as files beside it: totals by severity, tool and category, new
//! against existing, the trend from the history database, SLA breaches, suppressions and their
//! expiry, advisory databases, and a findings table.
//!
//! It works under the CSP Jenkins serves published reports with (jenkinsci/jenkins core
//! DirectoryBrowserSupport.java, `hudson.model.DirectoryBrowserSupport.CSP`: `sandbox;
//! default-src 'none'; img-src 'self'; style-src 'self';`): nothing is inline (no style element or
//! attribute, no inline script), and the filters by severity, category and state are radio
//! buttons that CSS alone applies (`:has()`), with a CSS counter for the rows shown, because a
//! `sandbox` without `allow-scripts` runs no script at all. Where scripts may run, the script adds
//! a text filter, filters preset by the URL (`#sev=critical&state=new&q=Dockerfile`) and the count
//! as text. The page's own CSP allows only those two files, so nothing else ever loads.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::escape;
use crate::assess::Assessment;
use crate::baseline::State;
use crate::model::{Category, Severity};

/// The stylesheet's file name, next to the HTML.
pub const STYLESHEET: &str = "security-dashboard.css";
/// The script's file name, next to the HTML.
pub const SCRIPT_FILE: &str = "security-dashboard.js";

const STATES: [&str; 3] = ["new", "unchanged", "suppressed"];

/// The stylesheet: the look, and the CSS-only filters (one rule per filter value).
pub static STYLE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let mut css = String::from(BASE_STYLE);
    let filters: [(&str, &str, Vec<&str>); 3] = [
        (
            "sev",
            "severity",
            Severity::ALL.iter().map(|s| s.as_str()).collect(),
        ),
        (
            "cat",
            "category",
            Category::ALL.iter().map(|c| c.as_str()).collect(),
        ),
        ("state", "state", STATES.to_vec()),
    ];
    for (group, attribute, values) in filters {
        for value in values {
            let _ = writeln!(
                css,
                "#findings-section:has(#{group}-{value}:checked) tr.f:not([data-{attribute}=\"{value}\"]){{display:none}}"
            );
        }
    }
    css
});

const BASE_STYLE: &str = r#":root{--bg:#0f172a;--panel:#111827;--fg:#e5e7eb;--muted:#9ca3af;--critical:#dc2626;--high:#ea580c;--medium:#d97706;--low:#2563eb;--info:#6b7280;--ok:#16a34a}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:var(--bg);color:var(--fg)}
header{padding:20px 28px;border-bottom:1px solid #1f2937;display:flex;gap:16px;align-items:baseline;flex-wrap:wrap}
h1{font-size:20px;margin:0}h2{font-size:15px;margin:0 0 10px;color:var(--muted);text-transform:uppercase;letter-spacing:.05em}
.verdict{font-weight:700;padding:4px 10px;border-radius:6px}.verdict.failed{background:var(--critical)}.verdict.passed{background:var(--ok)}
main{padding:20px 28px;display:grid;gap:18px;grid-template-columns:repeat(auto-fit,minmax(320px,1fr))}
section{background:var(--panel);border:1px solid #1f2937;border-radius:10px;padding:16px}section.wide{grid-column:1/-1}
section.alert{border-color:var(--critical)}section.notice{border-color:var(--medium)}
.cards{display:flex;gap:10px;flex-wrap:wrap}.card{flex:1;min-width:90px;border-radius:8px;padding:10px 12px;background:#1f2937}
.card .n{font-size:26px;font-weight:700}.card .l{color:var(--muted);font-size:12px;text-transform:uppercase}
.sev-critical{border-left:4px solid var(--critical)}.sev-high{border-left:4px solid var(--high)}.sev-medium{border-left:4px solid var(--medium)}.sev-low{border-left:4px solid var(--low)}.sev-info{border-left:4px solid var(--info)}
table{width:100%;border-collapse:collapse}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #1f2937;vertical-align:top}th{color:var(--muted);font-weight:600}
.pill{display:inline-block;padding:1px 8px;border-radius:999px;font-size:12px;font-weight:600}.p-critical{background:var(--critical)}.p-high{background:var(--high)}.p-medium{background:var(--medium)}.p-low{background:var(--low)}.p-info{background:var(--info)}
.muted{color:var(--muted)}.fails{color:#fca5a5;font-weight:700}.expired{color:#fca5a5}.fix{color:#86efac}
#findings-section{display:flex;flex-direction:column;gap:10px}#findings-section .count{order:-1;margin:0}
.filters{display:flex;gap:14px;flex-wrap:wrap;align-items:center}.filters fieldset{border:1px solid #374151;border-radius:6px;padding:4px 8px;margin:0;display:flex;gap:2px;flex-wrap:wrap}
.filters legend{color:var(--muted);font-size:12px;padding:0 4px}
.filters input[type=radio]{position:absolute;opacity:0;width:1px;height:1px}
.filters label{cursor:pointer;padding:2px 8px;border-radius:999px;border:1px solid transparent}
.filters input[type=radio]:checked+label{background:#1d4ed8;border-color:#3b82f6;color:#fff}
.filters input[type=radio]:focus-visible+label{outline:2px solid #93c5fd}
input[type=search]{background:#0b1220;color:var(--fg);border:1px solid #374151;border-radius:6px;padding:6px 8px}
.js-only{display:none}.js .js-only{display:inline-block}
#findings-section{counter-reset:shown}tr.f{counter-increment:shown}tr.f.nomatch{display:none}
.css-count::after{content:counter(shown) " of " attr(data-total) " shown"}.js .css-count{display:none}
code{font-size:12px;color:#c7d2fe}svg text{fill:var(--muted);font-size:11px}
"#;

/// The script: extras where scripts may run (never needed for the filters themselves).
pub const SCRIPT: &str = r#"(function(){
  document.body.classList.add('js');
  var rows=[].slice.call(document.querySelectorAll('#findings tbody tr.f'));
  var q=document.getElementById('q'),shown=document.getElementById('shown');
  function apply(){
    var text=q.value.toLowerCase(),n=0;
    rows.forEach(function(r){
      r.classList.toggle('nomatch',!!text&&r.textContent.toLowerCase().indexOf(text)<0);
      if(getComputedStyle(r).display!=='none')n++;
    });
    shown.textContent=n+' of '+rows.length+' shown';
  }
  q.addEventListener('input',apply);
  [].forEach.call(document.querySelectorAll('.filters input[type=radio]'),function(e){e.addEventListener('change',apply);});
  // Filters can be preset by the URL: security-dashboard.html#sev=critical&state=new&q=Dockerfile
  location.hash.slice(1).split('&').forEach(function(kv){
    var p=kv.split('='),k=p[0],v=decodeURIComponent(p[1]||'');
    if(k==='q'){q.value=v;return;}
    if(['sev','cat','state'].indexOf(k)<0||!/^[a-z]+$/.test(v))return;
    var radio=document.getElementById(k+'-'+v);if(radio)radio.checked=true;
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
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'\">\
         <title>devsecops security dashboard</title><link rel=\"stylesheet\" href=\"{STYLESHEET}\"><script src=\"{SCRIPT_FILE}\" defer></script></head>\
         <body data-ready=\"false\"><header><h1>Security dashboard</h1><span id=\"verdict\" class=\"verdict {verdict}\">{verdict}</span>\
         <span class=\"muted\">generated {}</span></header><main>",
        escape(&a.generated.format(&time::format_description::well_known::Rfc3339).unwrap_or_default())
    );
    // What decides whether the result can be trusted comes first.
    if !a.reasons.is_empty() || !a.notices.is_empty() {
        out.push_str("<section class=\"wide alert\" id=\"reasons\"><h2>Read first</h2><ul>");
        for reason in &a.reasons {
            let _ = write!(out, "<li class=\"fails\">{}</li>", escape(reason));
        }
        for notice in &a.notices {
            let _ = write!(out, "<li>{}</li>", escape(notice));
        }
        out.push_str("</ul></section>");
    }
    if let Some(p) = &a.policy {
        let _ = write!(
            out,
            "<section class=\"wide\" id=\"policy\"><h2>Policy changes against {} ({})</h2><ul>",
            escape(&p.base),
            escape(p.base_commit.get(..12).unwrap_or(&p.base_commit))
        );
        if p.changes.is_empty() {
            out.push_str("<li>None: the policy, scanners, suppressions, baseline and rule files are the base's.</li>");
        }
        for change in &p.changes {
            let _ = write!(
                out,
                "<li{}>{}</li>",
                if change.unapproved() {
                    " class=\"fails\""
                } else {
                    ""
                },
                escape(&crate::policy_diff::PolicyReport::line(change))
            );
        }
        for note in &p.notes {
            let _ = write!(out, "<li>{}</li>", escape(note));
        }
        let _ = write!(
            out,
            "</ul><p class=\"muted\">change id {}</p></section>",
            escape(&p.change_id)
        );
    }
    // Totals by severity (open = not suppressed).
    out.push_str("<section class=\"wide\"><h2>Open findings by severity</h2><div class=\"cards\">");
    for s in Severity::ALL {
        let _ = write!(out, "<div class=\"card sev-{0}\"><div class=\"n\" id=\"total-{0}\">{1}</div><div class=\"l\">{0}</div></div>", s.as_str(), open(s));
    }
    let _ = write!(
        out,
        "<div class=\"card\"><div class=\"n\" id=\"total-failing\">{}</div><div class=\"l\">failing the gate</div></div>\
         <div class=\"card\"><div class=\"n\" id=\"total-fixable\">{}</div><div class=\"l\">fix available</div></div></div>",
        a.count(|f| f.fails),
        a.count(|f| f.suppressed_by.is_none() && f.finding.fix_available())
    );
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
    // Advisory databases.
    if !a.databases.is_empty() {
        out.push_str("<section><h2>Advisory databases</h2><table id=\"databases\"><thead><tr><th>database</th><th>tool</th><th>updated</th><th>age</th></tr></thead><tbody>");
        for db in &a.databases {
            let _ = write!(
                out,
                "<tr><td>{}{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
                escape(&db.database.name),
                db.database
                    .commit
                    .as_deref()
                    .map(|c| format!(" <code>{}</code>", escape(c)))
                    .unwrap_or_default(),
                escape(&db.database.tool),
                escape(db.database.updated.as_deref().unwrap_or("unknown")),
                if db.stale { "expired" } else { "" },
                db.age_days
                    .map(|d| format!("{d} d"))
                    .unwrap_or_else(|| "unknown".into())
            );
        }
        out.push_str("</tbody></table></section>");
    }
    // Findings table with CSS-only filters.
    out.push_str(
        "<section class=\"wide\" id=\"findings-section\"><h2>Findings</h2><div class=\"filters\">",
    );
    let groups: [(&str, &str, Vec<&str>); 3] = [
        (
            "sev",
            "severity",
            Severity::ALL.iter().map(|s| s.as_str()).collect(),
        ),
        (
            "cat",
            "category",
            Category::ALL.iter().map(|c| c.as_str()).collect(),
        ),
        ("state", "state", STATES.to_vec()),
    ];
    for (group, legend, values) in groups {
        let _ = write!(
            out,
            "<fieldset><legend>{legend}</legend><input type=\"radio\" name=\"{group}\" id=\"{group}-any\" checked><label for=\"{group}-any\">any</label>"
        );
        for value in values {
            let _ = write!(
                out,
                "<input type=\"radio\" name=\"{group}\" id=\"{group}-{value}\"><label for=\"{group}-{value}\">{value}</label>"
            );
        }
        out.push_str("</fieldset>");
    }
    let _ = write!(
        out,
        "<input id=\"q\" type=\"search\" class=\"js-only\" placeholder=\"filter: rule, file, package, tool\" size=\"36\"></div>\
         <table id=\"findings\"><thead><tr><th>severity</th><th>rule</th><th>title</th><th>where</th><th>fix</th><th>tools</th><th>state</th><th>age</th></tr></thead><tbody>"
    );
    for item in &a.findings {
        let f = &item.finding;
        let state = if item.suppressed_by.is_some() {
            "suppressed"
        } else {
            item.state.as_str()
        };
        let place = f
            .locations()
            .map(|l| match l.start_line {
                Some(line) => format!("{}:{line}", l.path),
                None => l.path.clone(),
            })
            .chain(f.components().map(|c| {
                format!("{} {}", c.name, c.version.as_deref().unwrap_or(""))
                    .trim_end()
                    .to_string()
            }))
            .collect::<Vec<_>>();
        let _ = write!(
            out,
            "<tr class=\"f\" data-severity=\"{}\" data-category=\"{}\" data-state=\"{state}\"><td>{}</td><td><code>{}</code></td><td>{}{}</td><td><code>{}</code></td><td class=\"fix\">{}</td><td>{}</td><td>{state}</td><td>{} d</td></tr>",
            f.severity.as_str(),
            f.category.as_str(),
            pill(f.severity),
            escape(&f.rule),
            escape(&f.title),
            if item.fails { " <span class=\"fails\">fails</span>" } else { "" },
            place.iter().map(|p| escape(p)).collect::<Vec<_>>().join("<br>"),
            escape(&f.fix_text()),
            escape(&f.tools.iter().cloned().collect::<Vec<_>>().join(", ")),
            item.age_days
        );
    }
    let _ = write!(
        out,
        "</tbody></table><p class=\"count muted\"><span class=\"css-count\" data-total=\"{0}\"></span><span id=\"shown\"></span></p></section>",
        a.findings.len()
    );
    if !a.scanner_errors.is_empty() {
        out.push_str("<section class=\"wide\"><h2>Scanners without a readable result</h2><ul id=\"scanner-errors\">");
        for e in &a.scanner_errors {
            let _ = write!(
                out,
                "<li><b>{}</b>{}: {}</li>",
                escape(&e.scanner),
                if e.optional { " (optional)" } else { "" },
                escape(&e.reason)
            );
        }
        out.push_str("</ul></section>");
    }
    if !a.warnings.is_empty() {
        let _ = write!(
            out,
            "<section class=\"wide\"><h2>Warnings (<span id=\"warnings\">{}</span>)</h2><ul>",
            a.warnings.len()
        );
        for w in a.warnings.iter().take(200) {
            let _ = write!(out, "<li>{}</li>", escape(w));
        }
        out.push_str("</ul></section>");
    }
    out.push_str("</main></body></html>\n");
    out
}
