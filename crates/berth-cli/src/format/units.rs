//! go-units style human durations and sizes, and docker's string helpers.

use std::time::Duration;

pub use berth_api::units::{bytes_size, human_duration, human_size, human_size_prec};

/// "N units ago" for a unix timestamp (seconds), as docker prints CREATED.
pub fn since_unix(ts: i64) -> String {
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let d = (now - ts as f64).max(0.0);
    format!("{} ago", human_duration(Duration::from_secs_f64(d)))
}

/// docker's `formatter.Ellipsis` for ASCII/unicode strings (by runes).
pub fn ellipsis(s: &str, max: usize) -> String {
    if max == 0 {
        return String::new();
    }
    let runes: Vec<char> = s.chars().collect();
    if runes.len() <= max {
        return s.to_string();
    }
    if max == 1 {
        return runes[0].to_string();
    }
    let mut out: String = runes[..max - 1].iter().collect();
    out.push('…');
    out
}

/// Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `stringid.TruncateID`: drop the algorithm prefix, keep 12 characters.
pub fn truncate_id(id: &str) -> String {
    let id = id.split_once(':').map(|(_, h)| h).unwrap_or(id);
    id.chars().take(12).collect()
}

/// Parse a Go duration ("1h30m", "10s", "1.5h", "300ms").
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    if s.is_empty() {
        return None;
    }
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * mult;
        rest = &rest[unit_end..];
    }
    Some(Duration::from_secs_f64(total))
}

/// docker's `timetypes.GetTimestamp`: a duration (relative to now), a unix
/// timestamp, or an RFC 3339 date, as the `seconds[.nanos]` string the API takes.
pub fn get_timestamp(value: &str, now: chrono::DateTime<chrono::Utc>) -> Result<String, String> {
    if let Some(d) = parse_go_duration(value) {
        if value.chars().any(|c| c.is_ascii_alphabetic()) {
            let t = now - chrono::Duration::from_std(d).map_err(|e| e.to_string())?;
            return Ok(format!(
                "{}.{:09}",
                t.timestamp(),
                t.timestamp_subsec_nanos()
            ));
        }
    }
    if !value.is_empty() && value.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Ok(value.to_string());
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(format!(
            "{}.{:09}",
            t.timestamp(),
            t.timestamp_subsec_nanos()
        ));
    }
    for f in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(value, f) {
            return Ok(format!("{}.000000000", t.and_utc().timestamp()));
        }
        if let Ok(d) = chrono::NaiveDate::parse_from_str(value, f) {
            if let Some(t) = d.and_hms_opt(0, 0, 0) {
                return Ok(format!("{}.000000000", t.and_utc().timestamp()));
            }
        }
    }
    Err(format!(
        "failed to parse value as time or duration: \"{value}\""
    ))
}

/// Go's `time.Time.String()` for a unix timestamp, in local time.
pub fn go_time_string(ts: i64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_opt(ts, 0).single() {
        Some(t) => {
            let off = t.format("%z").to_string();
            let zone = if off == "+0000" {
                "UTC".to_string()
            } else {
                off.clone()
            };
            format!("{} {} {}", t.format("%Y-%m-%d %H:%M:%S"), off, zone)
        }
        None => ts.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings() {
        assert_eq!(ellipsis("echo hello", 20), "echo hello");
        assert_eq!(
            ellipsis("sh -c 'sleep 10000; echo'", 20),
            "sh -c 'sleep 10000;…"
        );
        assert_eq!(go_quote("sh -c 'a \"b\"'\n"), "\"sh -c 'a \\\"b\\\"'\\n\"");
        assert_eq!(truncate_id("sha256:c6df5e495a91b60e0c24"), "c6df5e495a91");
        assert_eq!(truncate_id("88173b5d7781220bf9337d"), "88173b5d7781");
    }

    #[test]
    fn timestamps() {
        let now = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:10:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(get_timestamp("10m", now).unwrap(), "1704067200.000000000");
        assert_eq!(get_timestamp("1704067200", now).unwrap(), "1704067200");
        assert_eq!(
            get_timestamp("2024-01-01T00:00:00Z", now).unwrap(),
            "1704067200.000000000"
        );
        assert!(get_timestamp("junk", now).is_err());
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
    }
}
