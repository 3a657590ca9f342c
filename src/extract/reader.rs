//! Typed reading of one field: each rule's value is parsed in turn (a price text, a count, a
//! URL) and the first that parses wins, so one unreadable value falls through to the next rule
//! instead of taking the record down. A field that no rule can read is left empty, and why is
//! kept per field for the record's `field_errors`.

use std::collections::BTreeMap;

use super::rules::Document;
use crate::site::{Field, Rule};

/// Reads the fields of one page and collects the errors of the fields that failed everywhere.
pub struct FieldReader<'d, 'a> {
    pub doc: &'d Document<'a>,
    pub errors: BTreeMap<String, String>,
}

impl<'d, 'a> FieldReader<'d, 'a> {
    pub fn new(doc: &'d Document<'a>) -> FieldReader<'d, 'a> {
        FieldReader {
            doc,
            errors: BTreeMap::new(),
        }
    }

    /// The first value of `field` that `parse` accepts. When rules read values but none parsed,
    /// the field is `None` and `name` gets an error listing each rule's value and problem; a
    /// field with no value at all is simply absent.
    pub fn read<T>(
        &mut self,
        name: &str,
        field: &Option<Field>,
        parse: impl Fn(&Rule, &str) -> Result<T, String>,
    ) -> Option<T> {
        let field = field.as_ref()?;
        let mut failures = Vec::new();
        for (rule, value) in self.doc.candidates(field) {
            match parse(rule, &value) {
                Ok(parsed) => return Some(parsed),
                Err(problem) => failures.push(format!("{} read {value:?}: {problem}", rule.label)),
            }
        }
        if !failures.is_empty() {
            self.errors.insert(name.to_string(), failures.join("; "));
        }
        None
    }

    /// The first value of a text field (any value reads).
    pub fn text(&mut self, name: &str, field: &Option<Field>) -> Option<String> {
        self.read(name, field, |_, value| Ok(value.to_string()))
    }

    /// The first value of a count field ("(12,345)", "159 bids").
    pub fn count(&mut self, name: &str, field: &Option<Field>) -> Option<i64> {
        self.read(name, field, |_, value| {
            crate::price::parse_count(value).ok_or_else(|| "not a whole count".to_string())
        })
    }
}
