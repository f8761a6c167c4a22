//! Serde helpers for the several spellings Compose allows for one thing: a list or a map, a
//! string or a list, a number or a string. Each helper normalises to one Rust shape.

use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

/// A YAML scalar read as text: `8080`, `"8080"`, `true` and `1.5` all become strings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Any {
            S(String),
            I(i64),
            U(u64),
            F(f64),
            B(bool),
        }
        Ok(Scalar(match Any::deserialize(d)? {
            Any::S(s) => s,
            Any::I(i) => i.to_string(),
            Any::U(u) => u.to_string(),
            Any::F(f) => f.to_string(),
            Any::B(b) => b.to_string(),
        }))
    }
}

impl Scalar {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `"a b"` or `["a", "b"]`; remembers which, because a string command is split shell-style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StringOrList {
    String(String),
    List(Vec<String>),
}

impl<'de> Deserialize<'de> for StringOrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(Scalar),
            Many(Vec<Scalar>),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::One(s) => StringOrList::String(s.0),
            Raw::Many(v) => StringOrList::List(v.into_iter().map(|s| s.0).collect()),
        })
    }
}

impl StringOrList {
    /// As a list: a single string is one item (use for `env_file`, `dns`, `tmpfs`).
    pub fn items(&self) -> Vec<String> {
        match self {
            StringOrList::String(s) => vec![s.clone()],
            StringOrList::List(v) => v.clone(),
        }
    }
}

/// `["K=V", "K"]` or `{K: V, K: null}`: ordered pairs, a value of `None` meaning "no value".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListOrMap(pub Vec<(String, Option<String>)>);

impl ListOrMap {
    /// Parses with `sep` between key and value in the list form (`=` mostly, `:` for
    /// `extra_hosts`).
    fn from_raw(raw: RawListOrMap, sep: char) -> Self {
        match raw {
            RawListOrMap::Map(m) => {
                ListOrMap(m.into_iter().map(|(k, v)| (k, v.map(|s| s.0))).collect())
            }
            RawListOrMap::List(v) => ListOrMap(
                v.into_iter()
                    .map(|item| match item.0.split_once(sep) {
                        Some((k, v)) => (k.to_string(), Some(v.to_string())),
                        None => (item.0, None),
                    })
                    .collect(),
            ),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawListOrMap {
    Map(indexmap_like::OrderedMap),
    List(Vec<Scalar>),
}

/// A map that keeps the file's order (Compose files are read by people in that order).
mod indexmap_like {
    use super::Scalar;
    use serde::de::{MapAccess, Visitor};
    use serde::{Deserialize, Deserializer};

    pub struct OrderedMap(pub Vec<(String, Option<Scalar>)>);

    impl IntoIterator for OrderedMap {
        type Item = (String, Option<Scalar>);
        type IntoIter = std::vec::IntoIter<Self::Item>;
        fn into_iter(self) -> Self::IntoIter {
            self.0.into_iter()
        }
    }

    impl<'de> Deserialize<'de> for OrderedMap {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = OrderedMap;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a map of names to values")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<OrderedMap, A::Error> {
                    let mut out = Vec::new();
                    while let Some((k, v)) = m.next_entry::<Scalar, Option<Scalar>>()? {
                        out.push((k.0, v));
                    }
                    Ok(OrderedMap(out))
                }
            }
            d.deserialize_map(V)
        }
    }
}

pub fn list_or_map<'de, D: Deserializer<'de>>(d: D) -> Result<ListOrMap, D::Error> {
    Ok(ListOrMap::from_raw(RawListOrMap::deserialize(d)?, '='))
}

pub fn extra_hosts<'de, D: Deserializer<'de>>(d: D) -> Result<ListOrMap, D::Error> {
    Ok(ListOrMap::from_raw(RawListOrMap::deserialize(d)?, ':'))
}

/// A list of names, or a map keyed by name whose values are `T` (or null).
pub fn names_or_map<'de, D, T>(d: D) -> Result<BTreeMap<String, Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw<T> {
        List(Vec<String>),
        Map(BTreeMap<String, Option<T>>),
    }
    Ok(match Raw::<T>::deserialize(d)? {
        Raw::List(v) => v.into_iter().map(|n| (n, None)).collect(),
        Raw::Map(m) => m,
    })
}

/// A map whose null values mean "defaults" (top-level `networks:`/`volumes:` entries).
pub fn map_of_optional<'de, D, T>(d: D) -> Result<BTreeMap<String, T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    let m: Option<BTreeMap<String, Option<T>>> = Option::deserialize(d)?;
    Ok(m.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

/// `null` read as the default value (Compose files often leave a key empty).
pub fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}
