//! The ordered tree both renderers share: every decoded field is one [`Node`] with a JSON
//! member name, a text label and a value; [`super::text`] prints it like `tshark -V`,
//! [`super::json`] as JSON in the same order.

use serde_json::Value;

/// One node of the decoded tree: rendered as one JSON member and as one text line (plus children).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// JSON member name.
    pub key: String,
    /// Text label (the draft's field name).
    pub label: String,
    /// Text shown after the label; `None` = derived from the JSON value.
    pub text: Option<String>,
    /// Content.
    pub value: NodeValue,
}

/// Content of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    /// A scalar (or a compact JSON value that the text shows through `text`).
    Leaf(Value),
    /// Named members, in order.
    Object(Vec<Node>),
    /// Array items (their `key` is ignored in JSON).
    Array(Vec<Node>),
}

impl Node {
    /// A scalar leaf.
    pub fn leaf(key: &str, label: &str, v: impl Into<Value>) -> Node {
        Node {
            key: key.to_owned(),
            label: label.to_owned(),
            text: None,
            value: NodeValue::Leaf(v.into()),
        }
    }

    /// A leaf whose text differs from its JSON value.
    pub fn leaf_text(key: &str, label: &str, v: impl Into<Value>, text: impl Into<String>) -> Node {
        Node {
            key: key.to_owned(),
            label: label.to_owned(),
            text: Some(text.into()),
            value: NodeValue::Leaf(v.into()),
        }
    }

    /// An object.
    pub fn obj(key: &str, label: &str, children: Vec<Node>) -> Node {
        Node {
            key: key.to_owned(),
            label: label.to_owned(),
            text: None,
            value: NodeValue::Object(children),
        }
    }

    /// An array.
    pub fn arr(key: &str, label: &str, items: Vec<Node>) -> Node {
        Node {
            key: key.to_owned(),
            label: label.to_owned(),
            text: None,
            value: NodeValue::Array(items),
        }
    }

    /// An array of objects labelled `{item} 1`, `{item} 2`, ... (the draft's numbered
    /// elements), each with the given members.
    pub fn numbered(
        key: &str,
        label: &str,
        item: &str,
        items: impl IntoIterator<Item = Vec<Node>>,
    ) -> Node {
        let items = items
            .into_iter()
            .enumerate()
            .map(|(i, members)| Node::obj("", &format!("{item} {}", i + 1), members))
            .collect();
        Node::arr(key, label, items)
    }

    /// Sets the text shown after the label.
    #[must_use]
    pub fn with_text(mut self, text: impl Into<String>) -> Node {
        self.text = Some(text.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tree_renders_json_and_text() {
        let n = Node::obj(
            "",
            "Root",
            vec![
                Node::leaf("a", "Field A", 1),
                Node::leaf_text("b", "Field B", "x", "x (explained)"),
                Node::arr(
                    "list",
                    "Items",
                    vec![Node::leaf("", "Item 1", "p"), Node::leaf("", "Item 2", "q")],
                ),
                Node::leaf_text("m", "Multi", 0, "line one\nline two"),
            ],
        );
        assert_eq!(
            n.to_json(),
            json!({"a": 1, "b": "x", "list": ["p", "q"], "m": 0})
        );
        let mut out = Vec::new();
        n.write_text(&mut out, 0).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Root\n    Field A: 1\n    Field B: x (explained)\n    Items: 2 entries\n        \
             Item 1: p\n        Item 2: q\n    Multi: line one\n        line two\n"
        );
    }

    #[test]
    fn json_keeps_the_tree_order() {
        let n = Node::obj(
            "",
            "Root",
            vec![
                Node::leaf("zeta", "Z", 1),
                Node::leaf("alpha", "A", 2),
                Node::leaf("mid", "M", 3),
            ],
        );
        let v = n.to_json();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["zeta", "alpha", "mid"]);
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"zeta":1,"alpha":2,"mid":3}"#
        );
    }
}
