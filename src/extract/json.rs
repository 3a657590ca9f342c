//! Paths in JSON documents (JSON-LD blocks, embedded page state, a search result's object): what
//! a `jsonld` or `json` rule reads, starting at nodes of one `@type` when asked, through arrays,
//! `@graph`s and AggregateOffers, and the values assigned to JavaScript variables.

use serde_json::Value;

use crate::site::{JsonDocument, Rule, Source};

/// What a `json` rule without a document reads in a search result's object; nothing for the
/// other rules.
pub(super) fn object_values<'s>(
    rule: &'s Rule,
    object: &'s Value,
) -> Box<dyn Iterator<Item = String> + 's> {
    match &rule.source {
        Source::Json {
            document: JsonDocument::Result,
            paths,
            node_type,
        } => Box::new(
            json_values(std::slice::from_ref(object), paths, node_type.as_deref()).into_iter(),
        ),
        _ => Box::new(std::iter::empty()),
    }
}

/// Where paths start in `documents`: the nodes of `@type` `node_type` when given, else each
/// document.
pub(super) fn type_roots<'v>(documents: &'v [Value], node_type: Option<&str>) -> Vec<&'v Value> {
    let mut roots = Vec::new();
    for block in documents {
        match node_type {
            Some(wanted) => nodes_of_type(block, wanted, &mut roots),
            None => roots.push(block),
        }
    }
    roots
}

/// Values at `paths` in `documents`, starting at the nodes of `@type` `node_type` when given;
/// with several paths, the first value of each joined with a space.
pub(super) fn json_values(
    documents: &[Value],
    paths: &[Vec<String>],
    node_type: Option<&str>,
) -> Vec<String> {
    let roots = type_roots(documents, node_type);
    let at = |path: &[String]| -> Vec<String> {
        let mut found = Vec::new();
        for root in &roots {
            walk(root, path, &mut found);
        }
        found.into_iter().filter_map(leaf_text).collect()
    };
    match paths {
        [one] => at(one),
        many => {
            let firsts: Option<Vec<String>> =
                many.iter().map(|p| at(p).into_iter().next()).collect();
            firsts.map(|f| vec![f.join(" ")]).unwrap_or_default()
        }
    }
}

/// The JSON values assigned to JavaScript variable `var` in `raw` (`var = {…}`, also
/// `var = JSON.parse("…")`), in document order.
pub(super) fn assigned_json(raw: &str, var: &str) -> Vec<Value> {
    let mut found = Vec::new();
    for (at, _) in raw.match_indices(var) {
        let after = raw[at + var.len()..].trim_start();
        let Some(rest) = after.strip_prefix('=').map(str::trim_start) else {
            continue;
        };
        if rest.starts_with('=') {
            continue; // a comparison, `==`
        }
        let value = match rest.strip_prefix("JSON.parse(") {
            Some(quoted) => first_json::<String>(quoted.trim_start())
                .and_then(|text| serde_json::from_str(&text).ok()),
            None => first_json::<Value>(rest),
        };
        found.extend(value);
    }
    found
}

/// The first JSON value at the start of `text`, ignoring what follows it.
fn first_json<T: serde::de::DeserializeOwned>(text: &str) -> Option<T> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<T>()
        .next()?
        .ok()
}

/// Collects the values at `path` below `value`. Arrays are searched element by element unless
/// the segment is an index; an object without the key is searched through its `@graph`; `price`
/// on an AggregateOffer reads its `lowPrice`.
pub(super) fn walk<'v>(value: &'v Value, path: &[String], out: &mut Vec<&'v Value>) {
    if let Some(("**", rest)) = path
        .split_first()
        .map(|(first, rest)| (first.as_str(), rest))
    {
        return deep(value, rest, out);
    }
    match (value, path.split_first()) {
        (Value::Array(items), Some((key, rest))) if key.parse::<usize>().is_ok() => {
            if let Some(item) = key.parse::<usize>().ok().and_then(|i| items.get(i)) {
                walk(item, rest, out);
            }
        }
        (Value::Array(items), _) => items.iter().for_each(|item| walk(item, path, out)),
        (Value::Object(map), Some((key, rest))) => {
            let low = (key == "price" && is_type(value, "AggregateOffer"))
                .then(|| map.get("lowPrice"))
                .flatten();
            match (map.get(key).or(low), map.get("@graph")) {
                (Some(next), _) => walk(next, rest, out),
                (None, Some(graph)) => walk(graph, path, out),
                (None, None) => {}
            }
        }
        (leaf, None) => out.push(leaf),
        _ => {}
    }
}

/// `path` walked from every object in `value` (itself included) that has `path`'s first key,
/// outermost first, in document order: the `..key` form of a path.
fn deep<'v>(value: &'v Value, path: &[String], out: &mut Vec<&'v Value>) {
    let Some(first) = path.first() else {
        return;
    };
    match value {
        Value::Array(items) => items.iter().for_each(|item| deep(item, path, out)),
        Value::Object(map) => {
            if map.contains_key(first) {
                walk(value, path, out);
            }
            map.values().for_each(|v| deep(v, path, out));
        }
        _ => {}
    }
}

/// Every node of `@type` `wanted` in `value`, outermost first, in document order.
fn nodes_of_type<'v>(value: &'v Value, wanted: &str, out: &mut Vec<&'v Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| nodes_of_type(v, wanted, out)),
        Value::Object(map) => {
            if is_type(value, wanted) {
                out.push(value);
            }
            map.values().for_each(|v| nodes_of_type(v, wanted, out));
        }
        _ => {}
    }
}

/// Whether a JSON-LD node's `@type` (a name or a list of names, possibly a full schema.org
/// IRI) is `wanted`.
fn is_type(node: &Value, wanted: &str) -> bool {
    let matches = |t: &Value| {
        t.as_str().is_some_and(|t| {
            let short = t.rsplit(['/', '#', ':']).next().unwrap_or(t);
            t == wanted || short == wanted
        })
    };
    match node.get("@type") {
        Some(Value::Array(types)) => types.iter().any(matches),
        Some(t) => matches(t),
        None => false,
    }
}

fn leaf_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
