//! Query-string helpers: Docker's booleans, numbers and JSON filters.

use berth_api::ApiError;
use std::collections::HashMap;

pub type Query = HashMap<String, String>;

/// Docker accepts `1`, `true`, `True`; anything else (or absence) is false.
pub fn flag(q: &Query, key: &str) -> bool {
    matches!(
        q.get(key).map(|s| s.as_str()),
        Some("1") | Some("true") | Some("True") | Some("TRUE")
    )
}

pub fn int<T: std::str::FromStr>(q: &Query, key: &str) -> Result<Option<T>, ApiError> {
    match q.get(key).map(|s| s.as_str()) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::invalid(format!("invalid value for {key}: {v}"))),
    }
}

/// A terminal size from `h` and `w`.
pub fn size(q: &Query) -> Result<(u16, u16), ApiError> {
    Ok((int(q, "h")?.unwrap_or(0), int(q, "w")?.unwrap_or(0)))
}

/// The `filters` parameter: `{"key":["v"]}`, or the older `{"key":{"v":true}}`.
pub fn filters(q: &Query) -> Result<HashMap<String, Vec<String>>, ApiError> {
    let Some(raw) = q.get("filters").filter(|s| !s.is_empty()) else {
        return Ok(HashMap::new());
    };
    let v: serde_json::Value =
        serde_json::from_str(raw).map_err(|e| ApiError::invalid(format!("invalid filter: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::invalid("invalid filter: not an object"))?;
    let mut out = HashMap::new();
    for (k, v) in obj {
        let vals: Vec<String> = match v {
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            serde_json::Value::Object(m) => m.keys().cloned().collect(),
            _ => return Err(ApiError::invalid(format!("invalid filter '{k}'"))),
        };
        out.insert(k.clone(), vals);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_in_both_forms() {
        let mut q = Query::new();
        q.insert("filters".into(), r#"{"label":["a=b"]}"#.into());
        assert_eq!(filters(&q).unwrap()["label"], vec!["a=b".to_string()]);
        q.insert("filters".into(), r#"{"status":{"exited":true}}"#.into());
        assert_eq!(filters(&q).unwrap()["status"], vec!["exited".to_string()]);
        q.insert("filters".into(), "nope".into());
        assert!(filters(&q).is_err());
    }

    #[test]
    fn flags() {
        let mut q = Query::new();
        q.insert("all".into(), "1".into());
        q.insert("x".into(), "false".into());
        assert!(flag(&q, "all"));
        assert!(!flag(&q, "x"));
        assert!(!flag(&q, "missing"));
    }
}
