//! Finds the line and column of a key path (`router.services[1].password`) in block-style YAML
//! text, so semantic errors found after deserialization can point at the offending key.
//!
//! This is deliberately small: it understands block mappings (`key: value`), block sequences
//! (`- item`, including `- key: value` and sequences indented at the same column as their key)
//! and comments. Flow collections (`[a, b]`, `{a: 1}`) are treated as opaque values: a path that
//! goes inside one resolves to the key that holds it. When a segment cannot be found the deepest
//! ancestor found is returned, so every error still gets a useful position.

use crate::error::Segment;

/// One meaningful (non-blank, non-comment) line, pre-split.
#[derive(Debug)]
struct Line {
    /// 0-based line number in the text.
    number: usize,
    /// Column of the first non-space character (0-based).
    indent: usize,
    /// Column of a leading `- ` sequence indicator, if any.
    dash: Option<usize>,
    /// Column where the content after any `- ` starts.
    content_col: usize,
    /// Mapping key on this line (after any `- `), if the content is `key:` or `key: value`.
    key: Option<String>,
}

fn split_line(number: usize, raw: &str) -> Option<Line> {
    let indent = raw.len() - raw.trim_start_matches(' ').len();
    let rest = &raw[indent..];
    if rest.is_empty() || rest.starts_with('#') || rest.trim().is_empty() {
        return None;
    }
    if rest.starts_with("---") || rest.starts_with("...") {
        return None;
    }
    let (dash, content_col, content) = if rest == "-" || rest.starts_with("- ") {
        let after = rest[1..].trim_start_matches(' ');
        let col = raw.len() - after.len();
        (Some(indent), col, after)
    } else {
        (None, indent, rest)
    };
    Some(Line {
        number,
        indent,
        dash,
        content_col,
        key: mapping_key(content),
    })
}

/// The key of `key: value` / `key:` / `"key": value`, or `None` for a scalar or flow value.
fn mapping_key(content: &str) -> Option<String> {
    if content.starts_with('[') || content.starts_with('{') {
        return None;
    }
    let (key, quoted) = if let Some(rest) = content.strip_prefix('"') {
        (rest.split('"').next()?, true)
    } else if let Some(rest) = content.strip_prefix('\'') {
        (rest.split('\'').next()?, true)
    } else {
        (content, false)
    };
    if quoted {
        let after = &content[key.len() + 2..];
        return after.trim_start().starts_with(':').then(|| key.to_string());
    }
    // `key:` at end of line or `key: value`.
    let pos = content
        .char_indices()
        .find(|&(i, c)| c == ':' && (i + 1 == content.len() || content[i + 1..].starts_with(' ')))
        .map(|(i, _)| i)?;
    Some(content[..pos].trim_end().to_string())
}

/// A 1-based (line, column) position.
pub(crate) type Position = (usize, usize);

/// Locates `path` in `text`. Returns the position of the deepest segment found, or `None` when
/// not even the first segment is present (e.g. a missing top-level key).
pub(crate) fn locate(text: &str, path: &[Segment]) -> Option<Position> {
    let lines: Vec<Line> = text
        .lines()
        .enumerate()
        .filter_map(|(n, l)| split_line(n, l))
        .collect();
    if lines.is_empty() {
        return None;
    }
    let col = lines[0].content_col.min(lines[0].indent);
    walk(&lines, 0, lines.len(), col, path, None)
}

fn walk(
    lines: &[Line],
    lo: usize,
    hi: usize,
    col: usize,
    path: &[Segment],
    found: Option<Position>,
) -> Option<Position> {
    let Some((segment, rest)) = path.split_first() else {
        return found;
    };
    match segment {
        Segment::Key(k) => {
            let Some(i) = (lo..hi).find(|&i| {
                lines[i].content_col == col && lines[i].key.as_deref() == Some(k.as_str())
            }) else {
                return found;
            };
            let here = Some((lines[i].number + 1, col + 1));
            // The value block: following lines indented deeper than the key, or a compact
            // sequence (`- `) at the key's own column.
            let end = (i + 1..hi)
                .find(|&j| {
                    let l = &lines[j];
                    !(l.indent > col || (l.dash == Some(col) && l.indent == col))
                })
                .unwrap_or(hi);
            if i + 1 >= end {
                return here; // value on the same line (scalar or flow): stop here
            }
            let child_col = lines[i + 1].indent;
            walk(lines, i + 1, end, child_col, rest, here)
        }
        Segment::Index(n) => {
            let items: Vec<usize> = (lo..hi).filter(|&i| lines[i].dash == Some(col)).collect();
            let Some(&i) = items.get(*n) else {
                return found;
            };
            let here = Some((lines[i].number + 1, col + 1));
            let end = (i + 1..hi).find(|&j| lines[j].indent <= col).unwrap_or(hi);
            walk(lines, i, end, lines[i].content_col, rest, here)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[&str]) -> Vec<Segment> {
        s.iter()
            .map(|x| match x.parse::<usize>() {
                Ok(n) => Segment::Index(n),
                Err(_) => Segment::Key((*x).to_string()),
            })
            .collect()
    }

    const DOC: &str = "\
# comment
router:
  addresses: [10.0.0.1]
  services:
    - id: 0
      type: standard
      password: abc
    - id: 90
      # a comment
      type: dynamic
      ports:
        - 80
        - 443
  timers:
    transmit_t_ms: 1000
log:
  level: info
";

    #[test]
    fn finds_nested_keys_and_items() {
        assert_eq!(locate(DOC, &p(&["router"])), Some((2, 1)));
        assert_eq!(locate(DOC, &p(&["router", "addresses"])), Some((3, 3)));
        assert_eq!(locate(DOC, &p(&["router", "services", "0"])), Some((5, 5)));
        assert_eq!(
            locate(DOC, &p(&["router", "services", "0", "id"])),
            Some((5, 7))
        );
        assert_eq!(
            locate(DOC, &p(&["router", "services", "0", "password"])),
            Some((7, 7))
        );
        assert_eq!(
            locate(DOC, &p(&["router", "services", "1", "type"])),
            Some((10, 7))
        );
        assert_eq!(
            locate(DOC, &p(&["router", "services", "1", "ports", "1"])),
            Some((13, 9))
        );
        assert_eq!(
            locate(DOC, &p(&["router", "timers", "transmit_t_ms"])),
            Some((15, 5))
        );
        assert_eq!(locate(DOC, &p(&["log", "level"])), Some((17, 3)));
    }

    #[test]
    fn flow_values_and_missing_keys_fall_back_to_ancestor() {
        assert_eq!(locate(DOC, &p(&["router", "addresses", "0"])), Some((3, 3)));
        assert_eq!(
            locate(DOC, &p(&["router", "services", "0", "weight"])),
            Some((5, 5))
        );
        assert_eq!(locate(DOC, &p(&["nope"])), None);
    }

    #[test]
    fn compact_sequences_at_key_column() {
        let doc = "cache:\n  services:\n  - id: 1\n    weight: 5\n  - id: 2\n    weight: 6\n  address: 1.2.3.4\n";
        assert_eq!(
            locate(doc, &p(&["cache", "services", "1", "weight"])),
            Some((6, 5))
        );
        assert_eq!(locate(doc, &p(&["cache", "address"])), Some((7, 3)));
    }
}
