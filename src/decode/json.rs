//! The JSON rendering of the tree: one member per node, in the tree's order (serde_json's
//! `preserve_order` keeps insertion order, as `tshark -T json` does).

use std::io::{self, Write};

use serde_json::{Map, Value};

use super::tree::{Node, NodeValue};

impl Node {
    /// The JSON value of this node.
    pub fn to_json(&self) -> Value {
        match &self.value {
            NodeValue::Leaf(v) => v.clone(),
            NodeValue::Object(children) => {
                let mut m = Map::new();
                for c in children {
                    m.insert(c.key.clone(), c.to_json());
                }
                Value::Object(m)
            }
            NodeValue::Array(items) => Value::Array(items.iter().map(Node::to_json).collect()),
        }
    }
}

/// Writes `v` pretty-printed, with a final newline.
///
/// # Errors
/// I/O errors from `out`.
pub(super) fn write(out: &mut dyn Write, v: &Value) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, v).map_err(io::Error::from)?;
    writeln!(out)
}
