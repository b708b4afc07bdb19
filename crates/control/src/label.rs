//! Labels in status snapshots, and reading them back.
//!
//! Snapshots (`router::RouterStatus`, `driver::DriverStats`, the data plane's status) name
//! things with `&'static str` labels such as [`crate::DropReason::as_str`]. `wccpd show` reads
//! a snapshot back from the daemon's JSON; serde can only borrow a `&'static str` from input
//! that lives forever, so these fields deserialize through the functions here
//! (`#[serde(deserialize_with = "control::label::...")]`), which intern each distinct text:
//! it is leaked once per process, whatever label a daemon sends. Fields spell the type
//! [`Label`] (serde would otherwise try to borrow a plain `&'static str` from its input).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Deserializer};

/// A label: a `&'static str`.
pub type Label = &'static str;

static INTERNED: Mutex<BTreeSet<Label>> = Mutex::new(BTreeSet::new());

/// The `&'static str` equal to `text`: leaked the first time a text is seen, then shared.
pub fn intern(text: &str) -> Label {
    let mut set = INTERNED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(l) = set.get(text) {
        return l;
    }
    let l: Label = Box::leak(text.to_owned().into_boxed_str());
    set.insert(l);
    l
}

/// Deserializes a [`Label`].
///
/// # Errors
/// The deserializer's, when the value is not a string.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Label, D::Error> {
    Ok(intern(&String::deserialize(d)?))
}

/// Deserializes an optional [`Label`] (`null` is `None`).
///
/// # Errors
/// The deserializer's, when the value is neither a string nor `null`.
pub fn deserialize_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Label>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(|s| intern(&s)))
}

/// Deserializes a list of [`Label`]s.
///
/// # Errors
/// The deserializer's, when the value is not a list of strings.
pub fn deserialize_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Label>, D::Error> {
    Ok(Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| intern(s))
        .collect())
}

/// Deserializes a map keyed by [`Label`]s (counters by reason).
///
/// # Errors
/// The deserializer's, when the value is not such a map.
pub fn deserialize_keys<'de, D, V>(d: D) -> Result<BTreeMap<Label, V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    Ok(BTreeMap::<String, V>::deserialize(d)?
        .into_iter()
        .map(|(k, v)| (intern(&k), v))
        .collect())
}

/// (De)serializes an optional [`Named`](assign::method::Named) value (a negotiated method) by
/// its name: `#[serde(default, with = "crate::label::named_option")]`.
pub mod named_option {
    use assign::method::Named;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes the name, or `null`.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer, T: Named>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        v.map(Named::name).serialize(s)
    }

    /// Reads a name, or `null`.
    ///
    /// # Errors
    /// The value is neither `null` nor the name of a `T`.
    pub fn deserialize<'de, D: Deserializer<'de>, T: Named>(d: D) -> Result<Option<T>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(name) => T::from_name(&name)
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("unknown name `{name}`"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interned_labels_are_shared() {
        let a = intern(&String::from("md5_failure"));
        let b = intern("md5_failure");
        assert_eq!(a, "md5_failure");
        assert!(std::ptr::eq(a, b));
    }
}
