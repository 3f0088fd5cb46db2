//! What the report tests share: strings a scanner or a change controls, and the structure of the
//! Markdown a report renders to.

use proptest::prelude::*;

/// Harmless text and the hostile strings a file name, rule or message can carry.
pub fn arbitrary_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        Just("a\"><svg onload=alert(6)>.rs".to_string()),
        Just("</failure><testcase name=\"forged\"/>".to_string()),
        Just(
            "[click](https://evil.example) ![x](y) <b>bold</b> `code` | cell | # head".to_string()
        ),
        Just("line one\n- injected item\n\n## injected heading".to_string()),
        Just("\u{0}\u{1b}[31m\u{fffe}\u{ffff}&amp;&lt;".to_string()),
        Just("``` fence ``` and `` two ``".to_string()),
    ]
}

/// The Markdown's structure: every element it opens, with text left out.
pub fn markdown_structure(markdown: &str) -> Vec<String> {
    use pulldown_cmark::{Event, Options, Parser};
    Parser::new_ext(
        markdown,
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH,
    )
    .filter_map(|e| match e {
        Event::Start(tag) => Some(
            format!("start {tag:?}")
                .split(['(', ' '])
                .take(2)
                .collect::<Vec<_>>()
                .join(" "),
        ),
        Event::End(tag) => Some(format!("end {tag:?}")),
        Event::Html(_) | Event::InlineHtml(_) => Some("HTML".into()),
        Event::SoftBreak | Event::HardBreak | Event::Rule => Some(format!("{e:?}")),
        _ => None,
    })
    .collect()
}
