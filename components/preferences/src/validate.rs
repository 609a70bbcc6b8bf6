//! Parsing a preferences document, reporting every invalid field at once.

use serde_json::{Map, Value};
use village_platform::{AppError, FieldError};

use crate::model::{Layout, Preferences, Settings, Size, Theme, Units, Widget, WidgetKind};

/// Largest accepted document; layouts are small, anything bigger is abuse.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// A homepage is a page, not a dashboard wall.
pub const MAX_WIDGETS: usize = 24;
const MAX_COLUMNS: u64 = 4;
const MAX_POSITION: u64 = 99;
/// Per-widget settings budget, in bytes of JSON.
const MAX_WIDGET_SETTINGS_BYTES: usize = 4 * 1024;

struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    fn unknown_fields(&mut self, at: &str, obj: &Map<String, Value>, known: &[&str]) {
        for k in obj.keys().filter(|k| !known.contains(&k.as_str())) {
            self.add(
                join(at, k),
                format!("unknown field; expected one of {}", known.join(", ")),
            );
        }
    }
}

fn join(at: &str, field: &str) -> String {
    if at.is_empty() {
        field.to_owned()
    } else {
        format!("{at}.{field}")
    }
}

/// Parses and validates a request body into preferences.
pub fn parse(body: &[u8]) -> Result<Preferences, AppError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(AppError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        AppError::Validation(vec![FieldError::new(
            "body",
            format!("malformed JSON: {e}"),
        )])
    })?;
    let mut errors = Errors(Vec::new());
    let prefs = preferences(&value, &mut errors);
    match prefs {
        Some(p) if errors.0.is_empty() => Ok(p),
        _ => Err(AppError::Validation(errors.0)),
    }
}

fn preferences(v: &Value, e: &mut Errors) -> Option<Preferences> {
    let Some(obj) = v.as_object() else {
        e.add("body", "must be a JSON object");
        return None;
    };
    e.unknown_fields("", obj, &["schema_version", "layout", "settings"]);
    let version = match obj.get("schema_version").and_then(Value::as_i64) {
        Some(v) if v == i64::from(crate::SCHEMA_VERSION) => Some(crate::SCHEMA_VERSION),
        Some(v) => {
            e.add(
                "schema_version",
                format!(
                    "unsupported version {v}; this server writes {}",
                    crate::SCHEMA_VERSION
                ),
            );
            None
        }
        None => {
            e.add("schema_version", "required, an integer");
            None
        }
    };
    let layout = match obj.get("layout") {
        Some(l) => layout(l, e),
        None => {
            e.add("layout", "required");
            None
        }
    };
    let settings = match obj.get("settings") {
        Some(s) => settings(s, e),
        None => {
            e.add("settings", "required");
            None
        }
    };
    Some(Preferences {
        schema_version: version?,
        layout: layout?,
        settings: settings?,
    })
}

fn layout(v: &Value, e: &mut Errors) -> Option<Layout> {
    let Some(obj) = v.as_object() else {
        e.add("layout", "must be an object");
        return None;
    };
    e.unknown_fields("layout", obj, &["columns", "widgets"]);
    let columns = match obj.get("columns").and_then(Value::as_u64) {
        Some(c) if (1..=MAX_COLUMNS).contains(&c) => u8::try_from(c).ok(),
        _ => {
            e.add(
                "layout.columns",
                format!("required, an integer from 1 to {MAX_COLUMNS}"),
            );
            None
        }
    };
    let Some(list) = obj.get("widgets").and_then(Value::as_array) else {
        e.add("layout.widgets", "required, an array");
        return None;
    };
    if list.len() > MAX_WIDGETS {
        e.add("layout.widgets", format!("at most {MAX_WIDGETS} widgets"));
        return None;
    }
    let mut widgets = Vec::with_capacity(list.len());
    let mut seen_ids = Vec::new();
    for (i, w) in list.iter().enumerate() {
        let at = format!("layout.widgets[{i}]");
        if let Some(w) = widget(&at, w, columns, e) {
            if seen_ids.contains(&w.id) {
                e.add(
                    format!("{at}.id"),
                    format!("duplicate widget id `{}`", w.id),
                );
            }
            seen_ids.push(w.id.clone());
            widgets.push(w);
        }
    }
    Some(Layout {
        columns: columns?,
        widgets,
    })
}

fn widget(at: &str, v: &Value, columns: Option<u8>, e: &mut Errors) -> Option<Widget> {
    let Some(obj) = v.as_object() else {
        e.add(at, "must be an object");
        return None;
    };
    e.unknown_fields(
        at,
        obj,
        &["id", "type", "column", "position", "size", "settings"],
    );
    let id = match obj.get("id").and_then(Value::as_str) {
        Some(id)
            if (1..=64).contains(&id.len())
                && id.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                }) =>
        {
            Some(id.to_owned())
        }
        _ => {
            e.add(
                join(at, "id"),
                "required: 1–64 characters of a–z, 0–9, - and _",
            );
            None
        }
    };
    let kind = match obj.get("type").and_then(Value::as_str) {
        Some(t) => match WidgetKind::parse(t) {
            Some(k) => Some(k),
            None => {
                let known: Vec<&str> = WidgetKind::ALL.iter().map(|k| k.as_str()).collect();
                e.add(
                    join(at, "type"),
                    format!(
                        "unknown widget type `{t}`; expected one of {}",
                        known.join(", ")
                    ),
                );
                None
            }
        },
        None => {
            e.add(join(at, "type"), "required");
            None
        }
    };
    let column = match obj.get("column").and_then(Value::as_u64) {
        Some(c) if columns.is_none_or(|n| c < u64::from(n)) => u8::try_from(c).ok(),
        Some(_) => {
            e.add(join(at, "column"), "must be less than layout.columns");
            None
        }
        None => {
            e.add(join(at, "column"), "required, a non-negative integer");
            None
        }
    };
    let position = match obj.get("position").and_then(Value::as_u64) {
        Some(p) if p <= MAX_POSITION => u16::try_from(p).ok(),
        _ => {
            e.add(
                join(at, "position"),
                format!("required, an integer from 0 to {MAX_POSITION}"),
            );
            None
        }
    };
    let size = match obj.get("size").and_then(Value::as_str) {
        Some("small") => Some(Size::Small),
        Some("medium") => Some(Size::Medium),
        Some("large") => Some(Size::Large),
        _ => {
            e.add(join(at, "size"), "required: small, medium or large");
            None
        }
    };
    let settings = match obj.get("settings") {
        None => Some(Map::new()),
        Some(Value::Object(m))
            if Value::Object(m.clone()).to_string().len() <= MAX_WIDGET_SETTINGS_BYTES =>
        {
            Some(m.clone())
        }
        Some(Value::Object(_)) => {
            e.add(
                join(at, "settings"),
                format!("at most {MAX_WIDGET_SETTINGS_BYTES} bytes of JSON"),
            );
            None
        }
        Some(_) => {
            e.add(join(at, "settings"), "must be an object");
            None
        }
    };
    Some(Widget {
        id: id?,
        kind: kind?,
        column: column?,
        position: position?,
        size: size?,
        settings: settings?,
    })
}

fn settings(v: &Value, e: &mut Errors) -> Option<Settings> {
    let Some(obj) = v.as_object() else {
        e.add("settings", "must be an object");
        return None;
    };
    e.unknown_fields("settings", obj, &["theme", "units"]);
    let theme = match obj.get("theme").and_then(Value::as_str) {
        Some("system") => Some(Theme::System),
        Some("light") => Some(Theme::Light),
        Some("dark") => Some(Theme::Dark),
        _ => {
            e.add("settings.theme", "required: system, light or dark");
            None
        }
    };
    let units = match obj.get("units").and_then(Value::as_str) {
        Some("metric") => Some(Units::Metric),
        Some("imperial") => Some(Units::Imperial),
        _ => {
            e.add("settings.units", "required: metric or imperial");
            None
        }
    };
    Some(Settings {
        theme: theme?,
        units: units?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(err: AppError) -> Vec<String> {
        match err {
            AppError::Validation(errors) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected validation errors, got {other:?}"),
        }
    }

    #[test]
    fn the_default_document_round_trips() {
        let body = serde_json::to_vec(&Preferences::default()).expect("encode");
        assert_eq!(parse(&body).expect("valid"), Preferences::default());
    }

    #[test]
    fn reports_every_bad_field_at_once() {
        let body = br#"{
            "schema_version": 1,
            "layout": {"columns": 9, "widgets": [
                {"id": "a", "type": "horoscope", "column": 0, "position": 0, "size": "huge"},
                {"id": "a", "type": "news", "column": 0, "position": 1, "size": "small", "colour": "red"}
            ]},
            "settings": {"theme": "neon", "units": "metric"}
        }"#;
        let f = fields(parse(body).expect_err("invalid"));
        for want in [
            "layout.columns",
            "layout.widgets[0].type",
            "layout.widgets[0].size",
            "layout.widgets[1].colour",
            "settings.theme",
        ] {
            assert!(f.contains(&want.to_owned()), "{want} missing from {f:?}");
        }
    }

    #[test]
    fn rejects_duplicate_ids_and_columns_past_the_layout() {
        let body = br#"{"schema_version":1,"settings":{"theme":"dark","units":"imperial"},
            "layout":{"columns":2,"widgets":[
              {"id":"x","type":"news","column":0,"position":0,"size":"small"},
              {"id":"x","type":"stocks","column":2,"position":0,"size":"small"}]}}"#;
        let f = fields(parse(body).expect_err("invalid"));
        assert!(f.contains(&"layout.widgets[1].column".to_owned()), "{f:?}");
    }

    #[test]
    fn rejects_malformed_json_and_oversized_bodies() {
        assert_eq!(
            fields(parse(b"{not json").expect_err("malformed")),
            vec!["body"]
        );
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert!(matches!(parse(&big), Err(AppError::PayloadTooLarge { .. })));
    }

    #[test]
    fn rejects_too_many_widgets() {
        let widgets: Vec<String> = (0..=MAX_WIDGETS)
            .map(|i| {
                format!(
                    r#"{{"id":"w{i}","type":"news","column":0,"position":{},"size":"small"}}"#,
                    i % 90
                )
            })
            .collect();
        let body = format!(
            r#"{{"schema_version":1,"settings":{{"theme":"dark","units":"metric"}},"layout":{{"columns":1,"widgets":[{}]}}}}"#,
            widgets.join(",")
        );
        assert_eq!(
            fields(parse(body.as_bytes()).expect_err("too many")),
            vec!["layout.widgets"]
        );
    }
}
