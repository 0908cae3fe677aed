//! Filter conditions over extracted metadata: the API's `{field, operator, value, type}`, checked
//! into a typed [`Filter`], and the meaning of each operator, written once as an evaluation over
//! a result's JSON ([`Filter::matches`]).
//!
//! A store answers filters from the leaves of each result ([`flatten`]): one per scalar, one per
//! array (its length), each with its canonical path (`scene.people[].emotion`) and the concrete
//! instance (`scene.people[1].emotion`). The SQLite backend renders a [`Filter`] to SQL over those
//! leaves; a property test checks the SQL against [`Filter::matches`].
//!
//! Semantics, for every store:
//! - Conditions are combined with AND. A condition matches a result when some instance of its
//!   path matches: `scene.people[].emotion equals happy` holds when any person is happy, and a
//!   result with no people has no instance, so it matches no condition on that path.
//! - String comparisons ignore ASCII case (`equals Happy` finds `happy`).
//! - `is_empty`: an empty string, a null, an empty array, or (for a path through no array) no
//!   value at all. `is_not_empty`: a non-empty string (for `string`) or array (for `array`).
//! - `array` operators apply to the array at `field` (`tags`, `scene.people`): `item_equals` and
//!   `item_contains` to its items, `length_*` to its length.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// Most conditions one filter may have.
pub const MAX_CONDITIONS: usize = 4;

/// A condition as the API sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub field: String,
    pub operator: String,
    /// Absent for `is_empty` and `is_not_empty`, required otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(rename = "type")]
    pub field_type: String,
}

impl Condition {
    pub fn new(field: impl Into<String>, operator: impl Into<String>, value: Option<Value>, field_type: &str) -> Self {
        Condition { field: field.into(), operator: operator.into(), value, field_type: field_type.into() }
    }
}

/// The type a condition compares as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    Integer,
    Number,
    Boolean,
    Array,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Integer => "integer",
            FieldType::Number => "number",
            FieldType::Boolean => "boolean",
            FieldType::Array => "array",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "string" => FieldType::String,
            "integer" => FieldType::Integer,
            "number" => FieldType::Number,
            "boolean" => FieldType::Boolean,
            "array" => FieldType::Array,
            _ => return None,
        })
    }

    /// Whether a condition of this type may address a schema field of type `schema`.
    pub fn fits(self, schema: FieldType) -> bool {
        self == schema
            || matches!(
                (self, schema),
                (FieldType::Integer, FieldType::Number) | (FieldType::Number, FieldType::Integer)
            )
    }
}

/// The operators each type allows, as the SDK validates them.
pub fn operators(t: FieldType) -> &'static [&'static str] {
    match t {
        FieldType::String => &["equals", "contains", "starts_with", "ends_with", "is_empty", "is_not_empty"],
        FieldType::Integer | FieldType::Number => {
            &["equals", "greater_than", "greater_equal", "less_than", "less_equal"]
        }
        FieldType::Boolean => &["equals"],
        FieldType::Array => &[
            "item_equals",
            "item_contains",
            "length_equals",
            "length_greater",
            "length_less",
            "is_empty",
            "is_not_empty",
        ],
    }
}

/// A scalar an array item is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// Compared ignoring ASCII case; held folded.
    Text(String),
    Number(f64),
    Bool(bool),
}

/// A checked operator with its value. Text values are held ASCII-lowercased.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    TextEquals(String),
    Contains(String),
    StartsWith(String),
    EndsWith(String),
    /// `string` `is_empty`.
    TextEmpty,
    TextNotEmpty,
    NumberEquals(f64),
    Greater(f64),
    GreaterEqual(f64),
    Less(f64),
    LessEqual(f64),
    BoolEquals(bool),
    ItemEquals(Scalar),
    ItemContains(String),
    LengthEquals(u64),
    LengthGreater(u64),
    LengthLess(u64),
    /// `array` `is_empty`.
    ArrayEmpty,
    ArrayNotEmpty,
}

/// One checked condition: a canonical field path and an operator.
#[derive(Debug, Clone, PartialEq)]
pub struct Cond {
    /// As given, trimmed: `scene.people[].emotion`.
    pub field: String,
    pub field_type: FieldType,
    pub op: Op,
}

/// Checked conditions, combined with AND.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    pub conditions: Vec<Cond>,
}

/// ASCII case folding, the same in every store (SQLite's `lower()` folds ASCII only).
pub fn fold(s: &str) -> String {
    s.to_ascii_lowercase()
}

fn bad(i: usize, field: &str, message: impl Into<String>) -> Error {
    Error::InvalidCondition { condition: i, field: field.to_string(), message: message.into() }
}

/// Check a field path: dot-separated names, each optionally followed by `[]` (array items).
pub fn check_path(path: &str) -> std::result::Result<(), String> {
    if path.is_empty() {
        return Err("field must not be empty".into());
    }
    for part in path.split('.') {
        let name = part.trim_end_matches("[]");
        if name.is_empty() {
            return Err(format!("{path:?} has an empty name; write names joined by dots, with [] for array items"));
        }
        if name.contains(['[', ']']) || name.chars().any(char::is_whitespace) {
            return Err(format!(
                "{path:?}: {part:?} is not a field name; write names joined by dots, with [] for array items"
            ));
        }
    }
    Ok(())
}

impl Condition {
    /// Check the condition (the `i`th of its request) against the SDK's rules.
    pub fn check(&self, i: usize) -> Result<Cond> {
        let field = self.field.trim();
        check_path(field).map_err(|m| bad(i, field, m))?;
        let t = FieldType::parse(&self.field_type).ok_or_else(|| {
            bad(i, field, format!("unknown type {:?}; use string, integer, number, boolean or array", self.field_type))
        })?;
        let allowed = operators(t);
        if !allowed.contains(&self.operator.as_str()) {
            return Err(bad(
                i,
                field,
                format!(
                    "operator {:?} is not allowed for type {}; use one of {}",
                    self.operator,
                    t.as_str(),
                    allowed.join(", ")
                ),
            ));
        }
        let no_value = matches!(self.operator.as_str(), "is_empty" | "is_not_empty");
        let value = match &self.value {
            Some(Value::Null) | None => None,
            Some(Value::String(s)) if s.trim().is_empty() && !no_value => None,
            Some(v) => Some(v),
        };
        if no_value {
            if self.value.is_some() {
                return Err(bad(i, field, format!("{} takes no value; leave value out", self.operator)));
            }
        } else if value.is_none() {
            return Err(bad(i, field, format!("{} needs a value", self.operator)));
        }
        let wrong = |want: &str| {
            bad(
                i,
                field,
                format!(
                    "{} on type {} needs {want}, got {}",
                    self.operator,
                    t.as_str(),
                    value.map_or("nothing".into(), |v| v.to_string())
                ),
            )
        };
        let text = || value.and_then(Value::as_str).map(fold).ok_or_else(|| wrong("a string"));
        let number = || match value {
            Some(Value::Number(n)) if t == FieldType::Integer && !(n.is_i64() || n.is_u64()) => {
                Err(wrong("an integer"))
            }
            Some(Value::Number(n)) => n.as_f64().filter(|f| f.is_finite()).ok_or_else(|| wrong("a finite number")),
            _ => Err(wrong(if t == FieldType::Integer { "an integer" } else { "a number" })),
        };
        let length = || match value {
            Some(Value::Number(n)) => n.as_u64().ok_or_else(|| wrong("an integer >= 0")),
            _ => Err(wrong("an integer >= 0")),
        };
        let op = match (t, self.operator.as_str()) {
            (FieldType::String, "equals") => Op::TextEquals(text()?),
            (FieldType::String, "contains") => Op::Contains(text()?),
            (FieldType::String, "starts_with") => Op::StartsWith(text()?),
            (FieldType::String, "ends_with") => Op::EndsWith(text()?),
            (FieldType::String, "is_empty") => Op::TextEmpty,
            (FieldType::String, "is_not_empty") => Op::TextNotEmpty,
            (FieldType::Integer | FieldType::Number, "equals") => Op::NumberEquals(number()?),
            (FieldType::Integer | FieldType::Number, "greater_than") => Op::Greater(number()?),
            (FieldType::Integer | FieldType::Number, "greater_equal") => Op::GreaterEqual(number()?),
            (FieldType::Integer | FieldType::Number, "less_than") => Op::Less(number()?),
            (FieldType::Integer | FieldType::Number, "less_equal") => Op::LessEqual(number()?),
            (FieldType::Boolean, "equals") => {
                Op::BoolEquals(value.and_then(Value::as_bool).ok_or_else(|| wrong("true or false"))?)
            }
            (FieldType::Array, "item_equals") => Op::ItemEquals(match value {
                Some(Value::String(s)) => Scalar::Text(fold(s)),
                Some(Value::Bool(b)) => Scalar::Bool(*b),
                Some(Value::Number(n)) => Scalar::Number(
                    n.as_f64().filter(|f| f.is_finite()).ok_or_else(|| wrong("a string, number or boolean"))?,
                ),
                _ => return Err(wrong("a string, number or boolean")),
            }),
            (FieldType::Array, "item_contains") => Op::ItemContains(text()?),
            (FieldType::Array, "length_equals") => Op::LengthEquals(length()?),
            (FieldType::Array, "length_greater") => Op::LengthGreater(length()?),
            (FieldType::Array, "length_less") => Op::LengthLess(length()?),
            (FieldType::Array, "is_empty") => Op::ArrayEmpty,
            (FieldType::Array, "is_not_empty") => Op::ArrayNotEmpty,
            _ => unreachable!("operators() lists every pair handled here"),
        };
        Ok(Cond { field: field.to_string(), field_type: t, op })
    }
}

impl Filter {
    /// Check 1 to [`MAX_CONDITIONS`] conditions.
    pub fn check(conditions: &[Condition]) -> Result<Filter> {
        if conditions.is_empty() || conditions.len() > MAX_CONDITIONS {
            return Err(Error::InvalidCondition {
                condition: conditions.len().saturating_sub(1),
                field: "conditions".into(),
                message: format!("give 1 to {MAX_CONDITIONS} conditions, got {}", conditions.len()),
            });
        }
        let conditions = conditions.iter().enumerate().map(|(i, c)| c.check(i)).collect::<Result<_>>()?;
        Ok(Filter { conditions })
    }

    /// The reference semantics: `None` when a condition does not hold, otherwise the instances
    /// that matched, per condition in order.
    pub fn matches(&self, metadata: &Value) -> Option<Vec<Leaf>> {
        let leaves = flatten(metadata);
        let mut out = Vec::new();
        for c in &self.conditions {
            let found = c.instances(&leaves);
            if found.is_empty() {
                return None;
            }
            out.extend(found);
        }
        Some(out)
    }
}

impl Cond {
    /// The path whose leaves this condition reads: the items (`tags[]`) for item operators, the
    /// field itself otherwise.
    pub fn leaf_path(&self) -> String {
        match self.op {
            Op::ItemEquals(_) | Op::ItemContains(_) => format!("{}[]", self.field),
            _ => self.field.clone(),
        }
    }

    /// Whether a missing value counts as a match: `is_empty` on a path through no array.
    pub fn absent_matches(&self) -> bool {
        matches!(self.op, Op::TextEmpty | Op::ArrayEmpty) && !self.field.contains("[]")
    }

    /// Whether one leaf value satisfies the operator.
    pub fn holds(&self, v: &LeafValue) -> bool {
        match (&self.op, v) {
            (Op::TextEquals(x), LeafValue::Text(s)) => fold(s) == *x,
            (Op::Contains(x), LeafValue::Text(s)) => fold(s).contains(x.as_str()),
            (Op::StartsWith(x), LeafValue::Text(s)) => fold(s).starts_with(x.as_str()),
            (Op::EndsWith(x), LeafValue::Text(s)) => fold(s).ends_with(x.as_str()),
            (Op::TextEmpty, LeafValue::Text(s)) => s.is_empty(),
            (Op::TextEmpty, LeafValue::Null) => true,
            (Op::TextNotEmpty, LeafValue::Text(s)) => !s.is_empty(),
            (Op::NumberEquals(x), LeafValue::Number(n)) => n == x,
            (Op::Greater(x), LeafValue::Number(n)) => n > x,
            (Op::GreaterEqual(x), LeafValue::Number(n)) => n >= x,
            (Op::Less(x), LeafValue::Number(n)) => n < x,
            (Op::LessEqual(x), LeafValue::Number(n)) => n <= x,
            (Op::BoolEquals(x), LeafValue::Bool(b)) => b == x,
            (Op::ItemEquals(Scalar::Text(x)), LeafValue::Text(s)) => fold(s) == *x,
            (Op::ItemEquals(Scalar::Number(x)), LeafValue::Number(n)) => n == x,
            (Op::ItemEquals(Scalar::Bool(x)), LeafValue::Bool(b)) => b == x,
            (Op::ItemContains(x), LeafValue::Text(s)) => fold(s).contains(x.as_str()),
            (Op::LengthEquals(x), LeafValue::Array(n)) => n == x,
            (Op::LengthGreater(x), LeafValue::Array(n)) => n > x,
            (Op::LengthLess(x), LeafValue::Array(n)) => n < x,
            (Op::ArrayEmpty, LeafValue::Array(n)) => *n == 0,
            (Op::ArrayEmpty, LeafValue::Null) => true,
            (Op::ArrayNotEmpty, LeafValue::Array(n)) => *n > 0,
            _ => false,
        }
    }

    /// The instances of `leaves` that satisfy this condition. A missing value that counts as a
    /// match (see [`Cond::absent_matches`]) is reported as one instance with a null value.
    pub fn instances(&self, leaves: &[Leaf]) -> Vec<Leaf> {
        let path = self.leaf_path();
        let at: Vec<&Leaf> = leaves.iter().filter(|l| l.path == path).collect();
        if at.is_empty() && self.absent_matches() {
            return vec![Leaf { path: path.clone(), instance: path, value: LeafValue::Null }];
        }
        at.into_iter().filter(|l| self.holds(&l.value)).cloned().collect()
    }
}

/// A leaf's value.
#[derive(Debug, Clone, PartialEq)]
pub enum LeafValue {
    Text(String),
    Number(f64),
    Bool(bool),
    Null,
    /// An array, by its length (its items are leaves of their own).
    Array(u64),
}

/// One value of a result at one place.
#[derive(Debug, Clone, PartialEq)]
pub struct Leaf {
    /// Canonical path, arrays as `[]`: `scene.people[].emotion`.
    pub path: String,
    /// Concrete path, arrays with the index: `scene.people[1].emotion`.
    pub instance: String,
    pub value: LeafValue,
}

impl Leaf {
    /// The instance's key: the concrete path up to its innermost array item
    /// (`scene.people[1]`), or the path itself when it goes through no array.
    pub fn key(&self) -> &str {
        match self.instance.rfind(']') {
            Some(end) if self.instance[..end].ends_with(|c: char| c.is_ascii_digit()) => &self.instance[..=end],
            _ => &self.instance,
        }
    }

    /// The value as text, for previews.
    pub fn preview(&self) -> String {
        match &self.value {
            LeafValue::Text(s) => s.chars().take(120).collect(),
            LeafValue::Number(n) => n.to_string(),
            LeafValue::Bool(b) => b.to_string(),
            LeafValue::Null => String::new(),
            LeafValue::Array(n) => format!("{n} items"),
        }
    }
}

/// Every leaf of a metadata object: scalars and nulls, and each array with its length.
pub fn flatten(metadata: &Value) -> Vec<Leaf> {
    fn walk(v: &Value, path: &str, instance: &str, out: &mut Vec<Leaf>) {
        let leaf = |value| Leaf { path: path.to_string(), instance: instance.to_string(), value };
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    let (p, i) = if path.is_empty() {
                        (k.clone(), k.clone())
                    } else {
                        (format!("{path}.{k}"), format!("{instance}.{k}"))
                    };
                    walk(child, &p, &i, out);
                }
            }
            Value::Array(items) => {
                if !path.is_empty() {
                    out.push(leaf(LeafValue::Array(items.len() as u64)));
                }
                for (n, item) in items.iter().enumerate() {
                    walk(item, &format!("{path}[]"), &format!("{instance}[{n}]"), out);
                }
            }
            Value::String(s) => out.push(leaf(LeafValue::Text(s.clone()))),
            Value::Number(n) => out.push(leaf(n.as_f64().map_or(LeafValue::Null, LeafValue::Number))),
            Value::Bool(b) => out.push(leaf(LeafValue::Bool(*b))),
            Value::Null => out.push(leaf(LeafValue::Null)),
        }
    }
    let mut out = Vec::new();
    if metadata.is_object() {
        walk(metadata, "", "", &mut out);
    }
    out
}

/// The fields a schema declares that conditions may address, with their types: every scalar
/// leaf (`scene.people[].emotion`) and every array (`scene.people`, `tags`).
pub fn schema_fields(schema: &Value) -> Vec<(String, FieldType)> {
    fn type_of(s: &Value) -> Option<FieldType> {
        let t = match &s["type"] {
            Value::String(t) => Some(t.as_str()),
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
            _ => None,
        };
        match t {
            Some("object") => None,
            Some(t) => FieldType::parse(if t == "array" { "array" } else { t }),
            None if s.get("enum").is_some() || s.get("const").is_some() => Some(FieldType::String),
            None => None,
        }
    }
    fn walk(s: &Value, path: &str, out: &mut Vec<(String, FieldType)>) {
        if let Some(props) = s.get("properties").and_then(Value::as_object) {
            for (k, child) in props {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                walk(child, &p, out);
            }
            return;
        }
        match type_of(s) {
            Some(FieldType::Array) => {
                out.push((path.to_string(), FieldType::Array));
                if let Some(items) = s.get("items") {
                    walk(items, &format!("{path}[]"), out);
                }
            }
            Some(t) if !path.is_empty() => out.push((path.to_string(), t)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(schema, "", &mut out);
    out
}

/// Which instance of a field matched a filter (the API's `MatchedFieldInstance`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MatchedFieldInstance {
    /// Canonical path: `scene.people[].emotion`.
    pub field_path: String,
    /// The array item that matched (`scene.people[1]`), or the path for a field in no array.
    pub field_instance_key: String,
    /// Concrete path: `scene.people[1].emotion`.
    pub field_instance_path: String,
    /// 1.0: filters match or do not.
    pub score: f32,
    pub value_preview: String,
}

impl From<&Leaf> for MatchedFieldInstance {
    fn from(l: &Leaf) -> Self {
        MatchedFieldInstance {
            field_path: l.path.clone(),
            field_instance_key: l.key().to_string(),
            field_instance_path: l.instance.clone(),
            score: 1.0,
            value_preview: l.preview(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cond(field: &str, op: &str, value: Option<Value>, t: &str) -> Result<Cond> {
        Condition::new(field, op, value, t).check(0)
    }

    #[test]
    fn conditions_are_checked_as_the_sdk_does() {
        assert!(cond("a", "equals", Some(json!("x")), "string").is_ok());
        let err = |r: Result<Cond>| r.unwrap_err().to_string();
        assert!(err(cond("a", "greater_than", Some(json!(1)), "string")).contains("not allowed for type string"));
        assert!(err(cond("a", "equals", Some(json!("1")), "integer")).contains("needs an integer"));
        assert!(err(cond("a", "equals", Some(json!(1.5)), "integer")).contains("needs an integer"));
        assert!(cond("a", "equals", Some(json!(1.5)), "number").is_ok());
        assert!(err(cond("a", "equals", Some(json!(true)), "number")).contains("needs a number"));
        assert!(err(cond("a", "is_empty", Some(json!("x")), "string")).contains("takes no value"));
        assert!(err(cond("a", "equals", None, "string")).contains("needs a value"));
        assert!(err(cond("a", "equals", Some(json!("  ")), "string")).contains("needs a value"));
        assert!(err(cond("a", "length_equals", Some(json!(-1)), "array")).contains(">= 0"));
        assert!(err(cond("a", "equals", Some(json!(1)), "date")).contains("unknown type"));
        assert!(err(cond("a..b", "is_empty", None, "string")).contains("empty name"));
        assert!(err(cond("a[0].b", "is_empty", None, "string")).contains("not a field name"));
        let too_many = vec![Condition::new("a", "is_empty", None, "string"); 5];
        assert!(Filter::check(&too_many).unwrap_err().to_string().contains("1 to 4"));
        assert!(Filter::check(&[]).is_err());
        // The observed wire form parses.
        let wire: Vec<Condition> = serde_json::from_str(
            r#"[{"field":"a.b","operator":"is_empty","type":"string"},{"field":"x","operator":"greater_equal","value":0.8,"type":"number"}]"#,
        )
        .unwrap();
        assert_eq!(Filter::check(&wire).unwrap().conditions.len(), 2);
    }

    #[test]
    fn any_instance_of_an_array_path_matches_and_is_reported() {
        let doc = json!({"scene": {"people": [{"emotion": "calm"}, {"emotion": "Happy"}]}, "tags": ["a", "b"], "n": 3});
        let f = Filter::check(&[
            Condition::new("scene.people[].emotion", "equals", Some(json!("happy")), "string"),
            Condition::new("tags", "length_greater", Some(json!(1)), "array"),
        ])
        .unwrap();
        let found = f.matches(&doc).unwrap();
        let m: Vec<MatchedFieldInstance> = found.iter().map(Into::into).collect();
        assert_eq!(m[0].field_instance_path, "scene.people[1].emotion");
        assert_eq!(m[0].field_instance_key, "scene.people[1]");
        assert_eq!(m[1].field_instance_key, "tags");
        let none = json!({"scene": {"people": []}, "tags": [], "n": 3});
        assert!(f.matches(&none).is_none());
        let empty = Filter::check(&[Condition::new("scene.people[].emotion", "is_empty", None, "string")]).unwrap();
        assert!(empty.matches(&none).is_none(), "no person: no instance to be empty");
        let absent = Filter::check(&[Condition::new("headline", "is_empty", None, "string")]).unwrap();
        assert!(absent.matches(&none).is_some(), "a missing field is empty");
    }

    #[test]
    fn schema_fields_lists_leaves_and_arrays() {
        let schema = json!({"type": "object", "properties": {
            "headline": {"type": "string"},
            "scene": {"type": "object", "properties": {"people": {"type": "array", "items": {"type": "object",
                "properties": {"emotion": {"enum": ["happy", "sad"]}, "age": {"type": ["integer", "null"]}}}}}},
            "tags": {"type": "array", "items": {"type": "string"}}}});
        let fields = schema_fields(&schema);
        assert_eq!(
            fields,
            vec![
                ("headline".into(), FieldType::String),
                ("scene.people".into(), FieldType::Array),
                ("scene.people[].emotion".into(), FieldType::String),
                ("scene.people[].age".into(), FieldType::Integer),
                ("tags".into(), FieldType::Array),
                ("tags[]".into(), FieldType::String),
            ]
        );
    }
}
