//! The JSON Schema subset prompts may use, checked with a JSON pointer for every refusal;
//! validation of data against a schema (by the `jsonschema` crate); and the flattening of a
//! result into `metadata_text`.
//!
//! The subset (what constrained decoding and filter search both handle): `type` (one of
//! `object`, `string`, `number`, `integer`, `boolean`, `array`), `properties`, `required`,
//! `items`, `enum` (non-empty, of scalars), `description` and `title`. The root is an object
//! with at least one property. Nesting is at most [`MAX_DEPTH`] levels.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::types::SchemaViolation;

/// How deep objects and arrays may nest.
pub const MAX_DEPTH: usize = 8;
/// How many properties a schema may have in all.
pub const MAX_PROPERTIES: usize = 200;

const TYPES: &[&str] = &["object", "string", "number", "integer", "boolean", "array"];
const KEYWORDS: &[&str] = &["type", "properties", "required", "items", "enum", "description", "title"];

/// Refuse a schema outside the subset. `at` is the pointer of the schema in the request
/// (`/json_schema`), so the error names the offending part as the caller wrote it.
pub fn check(schema: &Value, at: &str) -> Result<()> {
    let obj = schema.as_object().ok_or_else(|| invalid(at, "a schema is a JSON object"))?;
    if obj.get("type").and_then(Value::as_str) != Some("object") {
        return Err(invalid(&format!("{at}/type"), "the root of a schema must have \"type\": \"object\""));
    }
    if obj.get("properties").and_then(Value::as_object).is_none_or(Map::is_empty) {
        return Err(invalid(&format!("{at}/properties"), "the root object needs at least one property"));
    }
    let mut count = 0;
    check_node(schema, at, 0, &mut count)
}

fn invalid(pointer: &str, message: impl Into<String>) -> Error {
    Error::InvalidSchema { pointer: pointer.to_string(), message: message.into() }
}

/// A key escaped for a JSON pointer (RFC 6901).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn check_node(node: &Value, at: &str, depth: usize, count: &mut usize) -> Result<()> {
    let obj = node.as_object().ok_or_else(|| invalid(at, "a schema is a JSON object"))?;
    if depth > MAX_DEPTH {
        return Err(invalid(at, format!("schemas may nest at most {MAX_DEPTH} levels")));
    }
    for key in obj.keys() {
        if !KEYWORDS.contains(&key.as_str()) {
            return Err(invalid(
                &format!("{at}/{}", escape(key)),
                format!("{key:?} is not in the supported subset ({})", KEYWORDS.join(", ")),
            ));
        }
    }
    for key in ["description", "title"] {
        if obj.get(key).is_some_and(|v| !v.is_string()) {
            return Err(invalid(&format!("{at}/{key}"), format!("{key} must be a string")));
        }
    }
    let ty = match obj.get("type") {
        None if obj.contains_key("enum") => None,
        None => return Err(invalid(at, "every schema needs a \"type\" (or an \"enum\")")),
        Some(Value::String(t)) if TYPES.contains(&t.as_str()) => Some(t.as_str()),
        Some(Value::Array(_)) => {
            return Err(invalid(&format!("{at}/type"), "a list of types is not supported; use one type"))
        }
        Some(other) => {
            return Err(invalid(&format!("{at}/type"), format!("{other} is not one of {}", TYPES.join(", "))))
        }
    };
    let only_for = |key: &str, owner: &str| -> Result<()> {
        if obj.contains_key(key) && ty != Some(owner) {
            return Err(invalid(&format!("{at}/{key}"), format!("{key:?} belongs to \"type\": \"{owner}\"")));
        }
        Ok(())
    };
    only_for("properties", "object")?;
    only_for("required", "object")?;
    only_for("items", "array")?;
    if let Some(values) = obj.get("enum") {
        let list = values
            .as_array()
            .filter(|l| !l.is_empty())
            .ok_or_else(|| invalid(&format!("{at}/enum"), "enum must be a non-empty array"))?;
        for (i, v) in list.iter().enumerate() {
            let fits = match ty {
                Some("string") => v.is_string(),
                Some("integer") => v.is_i64() || v.is_u64(),
                Some("number") => v.is_number(),
                Some("boolean") => v.is_boolean(),
                None => v.is_string() || v.is_number() || v.is_boolean(),
                Some(t) => return Err(invalid(&format!("{at}/enum"), format!("enum is not supported on {t}"))),
            };
            if !fits {
                return Err(invalid(&format!("{at}/enum/{i}"), format!("{v} does not fit the type")));
            }
        }
    }
    match ty {
        Some("object") => {
            let props = match obj.get("properties") {
                None => &Map::new(),
                Some(Value::Object(p)) => p,
                Some(_) => return Err(invalid(&format!("{at}/properties"), "properties must be an object")),
            };
            for (name, sub) in props {
                *count += 1;
                if *count > MAX_PROPERTIES {
                    return Err(invalid(at, format!("a schema may have at most {MAX_PROPERTIES} properties")));
                }
                if name.is_empty() || name.contains('.') {
                    return Err(invalid(
                        &format!("{at}/properties/{}", escape(name)),
                        "a property name must be non-empty and without dots (dots separate field paths)",
                    ));
                }
                check_node(sub, &format!("{at}/properties/{}", escape(name)), depth + 1, count)?;
            }
            if let Some(req) = obj.get("required") {
                let list = req
                    .as_array()
                    .ok_or_else(|| invalid(&format!("{at}/required"), "required must be an array of property names"))?;
                for (i, r) in list.iter().enumerate() {
                    match r.as_str() {
                        Some(name) if props.contains_key(name) => {}
                        Some(name) => {
                            return Err(invalid(
                                &format!("{at}/required/{i}"),
                                format!("{name:?} is required but not among the properties"),
                            ))
                        }
                        None => return Err(invalid(&format!("{at}/required/{i}"), "a required entry is a string")),
                    }
                }
            }
        }
        Some("array") => {
            let items =
                obj.get("items").ok_or_else(|| invalid(at, "an array needs \"items\" (the schema of its elements)"))?;
            check_node(items, &format!("{at}/items"), depth + 1, count)?;
        }
        _ => {}
    }
    Ok(())
}

/// Every way `data` breaks `schema` (empty when it is valid). The schema must be a valid JSON
/// Schema (anything [`check`] accepts is).
pub fn violations(schema: &Value, data: &Value) -> Result<Vec<SchemaViolation>> {
    let validator = jsonschema::validator_for(schema)
        .map_err(|e| Error::InvalidSchema { pointer: e.schema_path().to_string(), message: e.to_string() })?;
    Ok(validator
        .iter_errors(data)
        .map(|e| SchemaViolation {
            path: e.instance_path().to_string(),
            schema_path: e.schema_path().to_string(),
            message: e.to_string(),
        })
        .collect())
}

/// The schema the model is held to: the prompt's schema with every object's properties
/// required (a small model leaves out what it may leave out, and filters want every field).
pub fn decoding_schema(schema: &Value) -> Value {
    let mut s = schema.clone();
    require_all(&mut s);
    s
}

fn require_all(node: &mut Value) {
    let Some(obj) = node.as_object_mut() else { return };
    if let Some(Value::Object(props)) = obj.get_mut("properties") {
        let names: Vec<Value> = props.keys().map(|k| Value::String(k.clone())).collect();
        for sub in props.values_mut() {
            require_all(sub);
        }
        obj.insert("required".into(), Value::Array(names));
    }
    if let Some(items) = obj.get_mut("items") {
        require_all(items);
    }
}

/// How many properties a schema declares, nested ones included.
pub fn properties_count(schema: &Value) -> u64 {
    let mut n = 0;
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for sub in props.values() {
            n += 1 + properties_count(sub);
        }
    }
    if let Some(items) = schema.get("items") {
        n += properties_count(items);
    }
    n
}

/// A result as text to embed and read: one `path: value` line per leaf (`scene.location: beach`,
/// `objects[1]: towel`), leaving out fields whose path (without indices) is in `disabled` or
/// under one of them.
pub fn metadata_text(value: &Value, disabled: &[String]) -> String {
    let mut lines = Vec::new();
    leaves(value, &mut String::new(), &mut String::new(), disabled, &mut lines);
    lines.join("\n")
}

fn leaves(value: &Value, path: &mut String, field: &mut String, disabled: &[String], out: &mut Vec<String>) {
    if !field.is_empty() && disabled.iter().any(|d| field == d || field.starts_with(&format!("{d}."))) {
        return;
    }
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let (pl, fl) = (path.len(), field.len());
                if !path.is_empty() {
                    path.push('.');
                    field.push('.');
                }
                path.push_str(k);
                field.push_str(k);
                leaves(v, path, field, disabled, out);
                path.truncate(pl);
                field.truncate(fl);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let pl = path.len();
                path.push_str(&format!("[{i}]"));
                leaves(v, path, field, disabled, out);
                path.truncate(pl);
            }
        }
        Value::Null => {}
        Value::String(s) => out.push(format!("{path}: {s}")),
        other => out.push(format!("{path}: {other}")),
    }
}

/// The value at a dotted field path (`scene.location`), through arrays (collecting each
/// element's value).
pub fn field(value: &Value, path: &str) -> Option<Value> {
    let mut current = vec![value.clone()];
    for part in path.split('.') {
        let mut next = Vec::new();
        for v in current {
            match v {
                Value::Object(mut m) => {
                    if let Some(x) = m.remove(part) {
                        next.push(x);
                    }
                }
                Value::Array(items) => {
                    next.extend(items.into_iter().filter_map(|mut i| i.as_object_mut().and_then(|m| m.remove(part))))
                }
                _ => {}
            }
        }
        current = next;
    }
    match current.len() {
        0 => None,
        1 => current.pop(),
        _ => Some(Value::Array(current)),
    }
}

/// The paths of every enum-valued field with its values (for the visual model's zero-shot
/// scores).
pub fn enum_fields(schema: &Value) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    collect_enums(schema, "", &mut out);
    out
}

fn collect_enums(node: &Value, path: &str, out: &mut Vec<(String, Vec<String>)>) {
    if let Some(values) = node.get("enum").and_then(Value::as_array) {
        let strings: Vec<String> = values.iter().filter_map(|v| v.as_str().map(str::to_string)).collect();
        if !strings.is_empty() && !path.is_empty() {
            out.push((path.to_string(), strings));
        }
    }
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
            collect_enums(v, &p, out);
        }
    }
    if let Some(items) = node.get("items") {
        collect_enums(items, path, out);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pointer_of(schema: Value) -> String {
        match check(&schema, "/json_schema").unwrap_err() {
            Error::InvalidSchema { pointer, .. } => pointer,
            e => panic!("expected an invalid schema, got {e}"),
        }
    }

    #[test]
    fn refusals_name_the_pointer_of_the_offending_part() {
        let ok = json!({"type": "object", "properties": {
            "mood": {"type": "string", "enum": ["calm", "tense"], "description": "overall mood"},
            "scene": {"type": "object", "properties": {"people": {"type": "array", "items": {"type": "object",
                "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}}}},
            "count": {"type": "number"}, "outdoor": {"type": "boolean"}}, "required": ["mood"]});
        check(&ok, "/json_schema").unwrap();
        assert_eq!(pointer_of(json!({"type": "array", "items": {"type": "string"}})), "/json_schema/type");
        assert_eq!(
            pointer_of(json!({"type": "object", "properties": {"a": {"type": "string", "pattern": "x"}}})),
            "/json_schema/properties/a/pattern"
        );
        assert_eq!(
            pointer_of(json!({"type": "object", "properties": {"a": {"type": "date"}}})),
            "/json_schema/properties/a/type"
        );
        assert_eq!(
            pointer_of(json!({"type": "object", "properties": {"a": {"type": "array"}}})),
            "/json_schema/properties/a"
        );
        assert_eq!(
            pointer_of(json!({"type": "object", "properties": {"a": {"type": "string", "enum": ["x", 3]}}})),
            "/json_schema/properties/a/enum/1"
        );
        assert_eq!(
            pointer_of(json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]})),
            "/json_schema/required/0"
        );
        assert_eq!(
            pointer_of(
                json!({"type": "object", "properties": {"a/b": {"type": "object", "properties": {"c": {"$ref": "#"}}}}})
            ),
            "/json_schema/properties/a~1b/properties/c/$ref"
        );
        assert_eq!(pointer_of(json!({"type": "object", "properties": {}})), "/json_schema/properties");
    }

    #[test]
    fn violations_carry_the_data_path_of_each_problem() {
        let schema = json!({"type": "object", "properties": {"mood": {"type": "string", "enum": ["calm"]},
            "people": {"type": "array", "items": {"type": "object", "properties": {"age": {"type": "integer"}}}}},
            "required": ["mood"]});
        assert!(violations(&schema, &json!({"mood": "calm", "people": [{"age": 3}]})).unwrap().is_empty());
        let v = violations(&schema, &json!({"mood": "angry", "people": [{"age": "old"}]})).unwrap();
        let paths: Vec<&str> = v.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(paths.len(), 2, "{v:?}");
        assert!(paths.contains(&"/mood") && paths.contains(&"/people/0/age"), "{paths:?}");
        let v = violations(&schema, &json!({})).unwrap();
        assert_eq!(v.len(), 1);
        assert!(v[0].message.contains("mood"), "{v:?}");
    }

    #[test]
    fn metadata_text_has_a_line_per_leaf_and_leaves_out_disabled_fields() {
        let value = json!({"headline": "Rain", "scene": {"location": "harbour", "people": [{"name": "Ann"}, {"name": "Bo"}]},
            "objects": ["boat", "rope"], "count": 2, "night": false, "note": null});
        let text = metadata_text(&value, &[]);
        // Lines follow the order of the fields (serde_json keeps insertion order in this build).
        assert_eq!(
            text,
            "headline: Rain\nscene.location: harbour\nscene.people[0].name: Ann\nscene.people[1].name: Bo\nobjects[0]: boat\nobjects[1]: rope\ncount: 2\nnight: false"
        );
        let text = metadata_text(&value, &["scene.people".into(), "objects".into()]);
        assert_eq!(text, "headline: Rain\nscene.location: harbour\ncount: 2\nnight: false");
        assert_eq!(field(&value, "scene.location"), Some(json!("harbour")));
        assert_eq!(field(&value, "scene.people.name"), Some(json!(["Ann", "Bo"])));
        assert_eq!(field(&value, "missing"), None);
    }

    #[test]
    fn the_decoding_schema_requires_every_property_at_every_level() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"},
            "b": {"type": "array", "items": {"type": "object", "properties": {"c": {"type": "integer"}}}}}});
        let d = decoding_schema(&schema);
        assert_eq!(d["required"], json!(["a", "b"]));
        assert_eq!(d["properties"]["b"]["items"]["required"], json!(["c"]));
        assert_eq!(properties_count(&schema), 3);
        assert_eq!(
            enum_fields(&json!({"type": "object", "properties": {"m": {"type": "string", "enum": ["x", "y"]}}})),
            vec![("m".to_string(), vec!["x".to_string(), "y".to_string()])]
        );
    }
}
