//! events, as docker 20.10's `cli/command/system/events.go`.

use http::Method;
use serde_json::{json, Map, Value};

use crate::cli::EventsArgs;
use crate::client::{empty_body, Client, Query};
use crate::commands::stats::JsonStream;
use crate::error::{CliError, Result};
use crate::format::template::Tmpl;
use crate::format::units::get_timestamp;
use crate::opts::filters_json;

/// A daemon message as Go's `events.Message`: (the template's view, with Go's field
/// names and every field present; the message as Go encodes it, for `json`).
pub fn message(v: &Value) -> (Value, Value) {
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    let i = |k: &str| v[k].as_i64().unwrap_or(0);
    let attrs: std::collections::BTreeMap<String, String> = v["Actor"]["Attributes"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, x)| (k.clone(), x.as_str().unwrap_or("").to_string()))
        .collect();
    let attrs_json = if v["Actor"]["Attributes"].is_object() {
        json!(attrs)
    } else {
        Value::Null
    };
    let actor_id = v["Actor"]["ID"].as_str().unwrap_or("").to_string();
    let ctx = json!({
        "Status": s("status"),
        "ID": s("id"),
        "From": s("from"),
        "Type": s("Type"),
        "Action": s("Action"),
        "Actor": {"ID": actor_id, "Attributes": json!(attrs)},
        "Scope": s("scope"),
        "Time": i("time"),
        "TimeNano": i("timeNano"),
    });
    let mut doc = Map::new();
    for (k, x) in [
        ("status", s("status")),
        ("id", s("id")),
        ("from", s("from")),
    ] {
        if !x.is_empty() {
            doc.insert(k.into(), json!(x));
        }
    }
    doc.insert("Type".into(), json!(s("Type")));
    doc.insert("Action".into(), json!(s("Action")));
    doc.insert(
        "Actor".into(),
        json!({"ID": actor_id, "Attributes": attrs_json}),
    );
    if !s("scope").is_empty() {
        doc.insert("scope".into(), json!(s("scope")));
    }
    for k in ["time", "timeNano"] {
        if i(k) != 0 {
            doc.insert(k.into(), json!(i(k)));
        }
    }
    (ctx, Value::Object(doc))
}

/// Go's `Format("2006-01-02T15:04:05.000000000Z07:00")` of a time in the zone `tz`.
fn rfc3339_nano_fixed<Z: chrono::TimeZone>(tz: &Z, secs: i64, nanos: u32) -> String
where
    Z::Offset: std::fmt::Display,
{
    use chrono::Offset;
    match tz.timestamp_opt(secs, nanos).single() {
        Some(t) => {
            let zone = if t.offset().fix().local_minus_utc() == 0 {
                "Z".to_string()
            } else {
                t.format("%:z").to_string()
            };
            format!("{}{zone}", t.format("%Y-%m-%dT%H:%M:%S%.9f"))
        }
        None => String::new(),
    }
}

/// docker's `prettyPrintEvent` (times in the local zone): `<time> <type> <action> <actor
/// id> (k=v, ...)`, attributes sorted by key.
pub fn pretty_line(v: &Value) -> String {
    pretty_line_in(&chrono::Local, v)
}

fn pretty_line_in<Z: chrono::TimeZone>(tz: &Z, v: &Value) -> String
where
    Z::Offset: std::fmt::Display,
{
    let mut out = String::new();
    let tn = v["timeNano"].as_i64().unwrap_or(0);
    let t = v["time"].as_i64().unwrap_or(0);
    if tn != 0 {
        out.push_str(&rfc3339_nano_fixed(
            tz,
            tn.div_euclid(1_000_000_000),
            tn.rem_euclid(1_000_000_000) as u32,
        ));
        out.push(' ');
    } else if t != 0 {
        out.push_str(&rfc3339_nano_fixed(tz, t, 0));
        out.push(' ');
    }
    let s = |x: &Value| x.as_str().unwrap_or("").to_string();
    out.push_str(&format!(
        "{} {} {}",
        s(&v["Type"]),
        s(&v["Action"]),
        s(&v["Actor"]["ID"])
    ));
    if let Some(m) = v["Actor"]["Attributes"]
        .as_object()
        .filter(|m| !m.is_empty())
    {
        let mut keys: Vec<&String> = m.keys().collect();
        keys.sort();
        let attrs: Vec<String> = keys.iter().map(|k| format!("{k}={}", s(&m[*k]))).collect();
        out.push_str(&format!(" ({})", attrs.join(", ")));
    }
    out.push('\n');
    out
}

/// Render a message; an attribute the message lacks (`.Actor.Attributes.x`) prints as Go
/// prints a missing map key, `<no value>`, instead of failing.
fn render_message(t: &Tmpl, format: &str, v: &Value) -> std::result::Result<String, String> {
    let (mut ctx, doc) = message(v);
    for _ in 0..16 {
        match t.render_with_doc(&ctx, &doc) {
            Ok(s) => return Ok(s),
            Err(e) => {
                let field = e
                    .split("can't evaluate field ")
                    .nth(1)
                    .and_then(|r| r.split(' ').next())
                    .unwrap_or("")
                    .to_string();
                let known = ctx["Actor"]["Attributes"].get(&field).is_some();
                if field.is_empty() || known || !format.contains(&format!(".Attributes.{field}")) {
                    return Err(e);
                }
                ctx["Actor"]["Attributes"][&field] = json!("<no value>");
            }
        }
    }
    t.render_with_doc(&ctx, &doc)
}

/// `makeTemplate`: parse, then execute for an empty message to refuse unknown fields.
pub fn make_template(format: &str) -> std::result::Result<Option<Tmpl>, String> {
    if format.is_empty() {
        return Ok(None);
    }
    let mut t = Tmpl::parse(format)?;
    t.type_name = Some("*events.Message");
    render_message(&t, format, &json!({}))?;
    Ok(Some(t))
}

/// One event's output line.
pub fn event_line(
    v: &Value,
    tmpl: Option<&Tmpl>,
    format: &str,
) -> std::result::Result<String, String> {
    match tmpl {
        None => Ok(pretty_line(v)),
        Some(t) => render_message(t, format, v).map(|s| s + "\n"),
    }
}

/// The `GET /events` query: since and until as docker's `GetTimestamp` makes them.
pub fn events_query(
    a: &EventsArgs,
    now: chrono::DateTime<chrono::Utc>,
) -> std::result::Result<Query, String> {
    let mut q = Query::new();
    if let Some(s) = a.since.as_deref().filter(|s| !s.is_empty()) {
        q = q.add("since", get_timestamp(s, now)?);
    }
    if let Some(u) = a.until.as_deref().filter(|s| !s.is_empty()) {
        q = q.add("until", get_timestamp(u, now)?);
    }
    if let Some(f) = filters_json(&a.filter)? {
        q = q.add("filters", f);
    }
    Ok(q)
}

pub async fn events(c: &Client, a: EventsArgs) -> Result<i32> {
    let format = a.format.clone().unwrap_or_default();
    let tmpl = make_template(&format).map_err(|e| CliError::Coded {
        message: format!("Error parsing format: {e}"),
        code: 64,
    })?;
    let q = events_query(&a, chrono::Utc::now()).map_err(CliError::msg)?;
    let resp = c
        .send(Method::GET, "/events", &q, empty_body(), None)
        .await?;
    let mut js = JsonStream::new(resp.into_body());
    use std::io::Write;
    while let Some(m) = js.next().await {
        let v = m.map_err(CliError::msg)?;
        let line = event_line(&v, tmpl.as_ref(), &format);
        let mut out = std::io::stdout().lock();
        match line {
            Ok(l) => {
                let _ = out.write_all(l.as_bytes());
                let _ = out.flush();
            }
            Err(e) => {
                let _ = out.write_all(b"\n");
                let _ = out.flush();
                return Err(CliError::msg(e));
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({
            "status": "start",
            "id": "4f5e6a7b",
            "from": "busybox",
            "Type": "container",
            "Action": "start",
            "Actor": {"ID": "4f5e6a7b", "Attributes": {"name": "foo", "image": "busybox"}},
            "scope": "local",
            "time": 1795860000,
            "timeNano": 1795860000123456789i64,
        })
    }

    #[test]
    fn default_line_as_docker() {
        let utc = chrono::Utc;
        assert_eq!(
            pretty_line_in(&utc, &sample()),
            "2026-11-28T10:00:00.123456789Z container start 4f5e6a7b (image=busybox, name=foo)\n"
        );
        let cet = chrono::FixedOffset::east_opt(3600).unwrap();
        assert_eq!(
            pretty_line_in(&cet, &sample()),
            "2026-11-28T11:00:00.123456789+01:00 container start 4f5e6a7b (image=busybox, name=foo)\n"
        );
        let mut v = sample();
        v["timeNano"] = json!(0);
        v["Actor"]["Attributes"] = json!({});
        assert_eq!(
            pretty_line_in(&utc, &v),
            "2026-11-28T10:00:00.000000000Z container start 4f5e6a7b\n"
        );
        let v = json!({"Type": "network", "Action": "create", "Actor": {"ID": "n1"}});
        assert_eq!(pretty_line(&v), "network create n1\n");
    }

    #[test]
    fn templates_as_docker() {
        let f = "{{json .}}";
        let t = make_template(f).unwrap().unwrap();
        assert_eq!(
            event_line(&sample(), Some(&t), f).unwrap(),
            "{\"status\":\"start\",\"id\":\"4f5e6a7b\",\"from\":\"busybox\",\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":\"4f5e6a7b\",\"Attributes\":{\"image\":\"busybox\",\"name\":\"foo\"}},\"scope\":\"local\",\"time\":1795860000,\"timeNano\":1795860000123456789}\n"
        );
        let f = "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.ID}} {{.TimeNano}}";
        let t = make_template(f).unwrap().unwrap();
        assert_eq!(
            event_line(&sample(), Some(&t), f).unwrap(),
            "container start foo 4f5e6a7b 1795860000123456789\n"
        );
        let f = "{{.Actor.Attributes.exitCode}}|{{.Scope}}";
        let t = make_template(f).unwrap().unwrap();
        assert_eq!(
            event_line(&sample(), Some(&t), f).unwrap(),
            "<no value>|local\n"
        );
        let f = "{{json .Actor.Attributes}}";
        let t = make_template(f).unwrap().unwrap();
        assert_eq!(
            event_line(&sample(), Some(&t), f).unwrap(),
            "{\"image\":\"busybox\",\"name\":\"foo\"}\n"
        );
        assert!(make_template("").unwrap().is_none());
        assert_eq!(
            make_template("{{.Nope}}").err().unwrap(),
            "template: :1:2: executing \"\" at <.Nope>: can't evaluate field Nope in type *events.Message"
        );
        assert!(make_template("{{.Type").is_err());
    }

    #[test]
    fn query_as_docker() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let a = EventsArgs {
            since: Some("10m".into()),
            until: Some("2026-11-28T10:05:00Z".into()),
            filter: vec!["type=container".into(), "event=start".into()],
            format: None,
        };
        assert_eq!(
            events_query(&a, now).unwrap().encode(),
            "since=1795859400.000000000&until=1795860300.000000000&filters=%7B%22event%22%3A%7B%22start%22%3Atrue%7D%2C%22type%22%3A%7B%22container%22%3Atrue%7D%7D"
        );
        let a = EventsArgs {
            since: Some("1795859400".into()),
            ..Default::default()
        };
        assert_eq!(events_query(&a, now).unwrap().encode(), "since=1795859400");
        let a = EventsArgs {
            until: Some("yesterday".into()),
            ..Default::default()
        };
        assert!(events_query(&a, now).is_err());
    }
}
