//! JUnit XML for Jenkins: one test suite per category, one test case per finding. Failing findings
//! are failures, suppressed ones skipped, the rest pass; skipped scanners are skipped test cases.

use std::fmt::Write;

use super::escape;
use crate::assess::Assessment;
use crate::model::Category;

pub fn render(a: &Assessment) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let failures = a.count(|f| f.fails);
    let _ = writeln!(
        out,
        "<testsuites name=\"devsecops\" tests=\"{}\" failures=\"{failures}\" errors=\"0\">",
        a.findings.len() + a.skipped.len()
    );
    for category in Category::ALL {
        let items: Vec<_> = a
            .findings
            .iter()
            .filter(|f| f.finding.category == category)
            .collect();
        if items.is_empty() {
            continue;
        }
        let failed = items.iter().filter(|f| f.fails).count();
        let skipped = items.iter().filter(|f| f.suppressed_by.is_some()).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{category}\" tests=\"{}\" failures=\"{failed}\" errors=\"0\" skipped=\"{skipped}\">",
            items.len()
        );
        for item in items {
            let f = &item.finding;
            let place = f.place();
            let _ = write!(
                out,
                "    <testcase classname=\"devsecops.{category}.{}\" name=\"{} {}: {} ({place})\" file=\"{}\"",
                escape(&f.tools.iter().cloned().collect::<Vec<_>>().join("+")),
                escape(f.severity.as_str()),
                escape(&f.rule),
                escape(&f.title),
                escape(f.location.as_ref().map(|l| l.path.as_str()).unwrap_or(""))
            );
            if item.fails {
                let _ = writeln!(
                    out,
                    ">\n      <failure type=\"{}\" message=\"{} {} finding ({}){}\">{}</failure>\n    </testcase>",
                    escape(f.severity.as_str()),
                    item.state.as_str(),
                    escape(f.severity.as_str()),
                    escape(&f.fingerprint),
                    if item.sla_breached { ", past its SLA" } else { "" },
                    escape(f.description.as_deref().unwrap_or(&f.title))
                );
            } else if let Some(why) = &item.suppression_justification {
                let _ = writeln!(
                    out,
                    ">\n      <skipped message=\"suppressed: {}\"/>\n    </testcase>",
                    escape(why)
                );
            } else {
                out.push_str("/>\n");
            }
        }
        out.push_str("  </testsuite>\n");
    }
    if !a.skipped.is_empty() {
        let _ = writeln!(out, "  <testsuite name=\"scanners\" tests=\"{0}\" failures=\"0\" errors=\"0\" skipped=\"{0}\">", a.skipped.len());
        for (tool, why) in &a.skipped {
            let _ = writeln!(
                out,
                "    <testcase classname=\"devsecops.scanners\" name=\"{}\">\n      <skipped message=\"{}\"/>\n    </testcase>",
                escape(tool),
                escape(why)
            );
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
