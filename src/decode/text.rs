//! The text rendering of the tree: one line per node, indented 4 spaces per level, as
//! `tshark -V` prints.

use std::io::{self, Write};

use serde_json::Value;

use super::tree::{Node, NodeValue};

impl Node {
    /// Writes this node as indented text (4 spaces per level).
    ///
    /// # Errors
    /// I/O errors from `out`.
    pub fn write_text(&self, out: &mut dyn Write, depth: usize) -> io::Result<()> {
        let pad = " ".repeat(depth * 4);
        match &self.value {
            NodeValue::Leaf(v) => {
                let text = self.text.clone().unwrap_or_else(|| scalar_text(v));
                let mut lines = text.lines();
                writeln!(out, "{pad}{}: {}", self.label, lines.next().unwrap_or(""))?;
                for l in lines {
                    writeln!(out, "{pad}    {l}")?;
                }
            }
            NodeValue::Object(children) => {
                match &self.text {
                    Some(t) => writeln!(out, "{pad}{}: {t}", self.label)?,
                    None => writeln!(out, "{pad}{}", self.label)?,
                }
                for c in children {
                    c.write_text(out, depth + 1)?;
                }
            }
            NodeValue::Array(items) => {
                match &self.text {
                    Some(t) => writeln!(out, "{pad}{}: {t}", self.label)?,
                    None if items.len() == 1 => writeln!(out, "{pad}{}: 1 entry", self.label)?,
                    None => writeln!(out, "{pad}{}: {} entries", self.label, items.len())?,
                }
                for c in items {
                    c.write_text(out, depth + 1)?;
                }
            }
        }
        Ok(())
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::Null => "none".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(scalar_text).collect();
            if parts.is_empty() {
                "(none)".to_owned()
            } else {
                parts.join(", ")
            }
        }
        other => other.to_string(),
    }
}
