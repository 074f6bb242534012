//! Go templates (`--format`) on top of gtmpl, with docker's extra functions.

use std::collections::HashMap;

use gtmpl::{Context, Func, FuncError, Template, Value};

/// Convert JSON to template values; JSON objects behave like Go structs
/// (unknown fields are errors) except maps such as `Labels`.
pub fn json_to_value(v: &serde_json::Value) -> Value {
    json_to_value_in(v, false)
}

fn json_to_value_in(v: &serde_json::Value, as_map: bool) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(0.0))
            }
        }
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(a) => {
            Value::Array(a.iter().map(|x| json_to_value_in(x, false)).collect())
        }
        serde_json::Value::Object(o) => {
            let m: HashMap<String, Value> = o
                .iter()
                .map(|(k, v)| {
                    let child_map = matches!(
                        k.as_str(),
                        "Labels"
                            | "Options"
                            | "Annotations"
                            | "ExposedPorts"
                            | "Volumes"
                            | "Ports"
                            | "Networks"
                            | "DriverOpts"
                            | "Sysctls"
                            | "StorageOpt"
                            | "Data"
                    );
                    (k.clone(), json_to_value_in(v, child_map))
                })
                .collect();
            if as_map {
                Value::Map(m)
            } else {
                Value::Object(m)
            }
        }
    }
}

/// Convert template values back to JSON (for the `json` function).
pub fn value_to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::NoValue | Value::Nil | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into()
            } else if let Some(u) = n.as_u64() {
                u.into()
            } else {
                serde_json::Number::from_f64(n.as_f64().unwrap_or(0.0))
                    .map(serde_json::Value::Number)
                    .unwrap_or(serde_json::Value::Null)
            }
        }
        Value::Array(a) => serde_json::Value::Array(a.iter().map(value_to_json).collect()),
        Value::Object(m) | Value::Map(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut o = serde_json::Map::new();
            for k in keys {
                o.insert(k.clone(), value_to_json(&m[k]));
            }
            serde_json::Value::Object(o)
        }
    }
}

fn arg_str(args: &[Value], i: usize) -> Result<String, FuncError> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Ok(v.to_string()),
        None => Err(FuncError::UnableToConvertFromValue),
    }
}

fn arg_int(args: &[Value], i: usize) -> Result<i64, FuncError> {
    match args.get(i) {
        Some(Value::Number(n)) => n.as_i64().ok_or(FuncError::UnableToConvertFromValue),
        Some(Value::String(s)) => s.parse().map_err(|_| FuncError::UnableToConvertFromValue),
        _ => Err(FuncError::UnableToConvertFromValue),
    }
}

fn f_json(args: &[Value]) -> Result<Value, FuncError> {
    let v = args
        .first()
        .ok_or(FuncError::ExactlyXArgs("json".into(), 1))?;
    Ok(Value::String(value_to_json(v).to_string()))
}
thread_local! {
    /// The document being rendered, as the daemon sent it (key order kept), for `json`.
    static DOC: std::cell::RefCell<Option<serde_json::Value>> = const { std::cell::RefCell::new(None) };
}

/// `json .A.B` rewritten by [`keep_json_order`]: serialize that path of the original
/// document, so that keys keep the daemon's (Go struct) order.
fn f_jsonpath(args: &[Value]) -> Result<Value, FuncError> {
    let path = arg_str(args, 0)?;
    let fallback = args.get(1).map(|v| value_to_json(v).to_string());
    let out = DOC.with(|d| {
        let d = d.borrow();
        let mut cur = d.as_ref()?;
        for seg in path.split('.').filter(|s| !s.is_empty()) {
            cur = cur.get(seg)?;
        }
        Some(cur.to_string())
    });
    Ok(Value::String(
        out.or(fallback).unwrap_or_else(|| "null".into()),
    ))
}

/// Rewrite `json .Path` inside actions into `__jsonpath ".Path" .Path`.
fn keep_json_order(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let end = after.find("}}").map(|j| j + 2).unwrap_or(after.len());
        let action = &after[..end];
        let mut a = String::new();
        let mut r = action;
        while let Some(k) = r.find("json .") {
            let before_ok =
                k == 0 || matches!(r.as_bytes()[k - 1], b' ' | b'(' | b'{' | b'-' | b'\t');
            let path_start = k + "json ".len();
            let path_len = r[path_start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .unwrap_or(r.len() - path_start);
            let path = &r[path_start..path_start + path_len];
            a.push_str(&r[..k]);
            if before_ok && !path.ends_with('.') || path == "." {
                a.push_str(&format!("__jsonpath \"{path}\" {path}"));
            } else {
                a.push_str(&r[k..path_start + path_len]);
            }
            r = &r[path_start + path_len..];
        }
        a.push_str(r);
        out.push_str(&a);
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn f_upper(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(arg_str(args, 0)?.to_uppercase()))
}
fn f_lower(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(arg_str(args, 0)?.to_lowercase()))
}
fn f_title(args: &[Value]) -> Result<Value, FuncError> {
    let s = arg_str(args, 0)?;
    let mut out = String::with_capacity(s.len());
    let mut prev_letter = false;
    for c in s.chars() {
        if !prev_letter {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_letter = c.is_alphanumeric() || c == '_' || c == '\'';
    }
    Ok(Value::String(out))
}
fn f_split(args: &[Value]) -> Result<Value, FuncError> {
    let s = arg_str(args, 0)?;
    let sep = arg_str(args, 1)?;
    let parts: Vec<Value> = if sep.is_empty() {
        s.chars().map(|c| Value::String(c.to_string())).collect()
    } else {
        s.split(sep.as_str())
            .map(|p| Value::String(p.to_string()))
            .collect()
    };
    Ok(Value::Array(parts))
}
fn f_join(args: &[Value]) -> Result<Value, FuncError> {
    let sep = arg_str(args, 1)?;
    match args.first() {
        Some(Value::Array(a)) => Ok(Value::String(
            a.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(&sep),
        )),
        Some(Value::Nil) | Some(Value::NoValue) => Ok(Value::String(String::new())),
        _ => Err(FuncError::UnableToConvertFromValue),
    }
}
/// Go's `index`: a missing map key gives the zero value, which for docker's string maps
/// (labels, options) prints as an empty string.
fn f_index(args: &[Value]) -> Result<Value, FuncError> {
    let mut cur = args
        .first()
        .cloned()
        .ok_or(FuncError::AtLeastXArgs("index".into(), 1))?;
    for key in &args[1..] {
        cur = match (&cur, key) {
            (Value::Map(m), k) => m
                .get(&k.to_string())
                .cloned()
                .unwrap_or_else(|| Value::String(String::new())),
            (Value::Object(m), k) => m
                .get(&k.to_string())
                .cloned()
                .unwrap_or_else(|| Value::String(String::new())),
            (Value::Array(a), Value::Number(n)) => {
                let i = n.as_i64().ok_or(FuncError::UnableToConvertFromValue)?;
                if i < 0 || i as usize >= a.len() {
                    return Err(FuncError::Generic(format!(
                        "error calling index: index out of range: {i}"
                    )));
                }
                a[i as usize].clone()
            }
            (Value::Nil, _) | (Value::NoValue, _) => Value::String(String::new()),
            _ => return Err(FuncError::UnableToConvertFromValue),
        };
    }
    Ok(cur)
}
fn f_truncate(args: &[Value]) -> Result<Value, FuncError> {
    let s = arg_str(args, 0)?;
    let n = arg_int(args, 1)?.max(0) as usize;
    Ok(Value::String(s.chars().take(n).collect()))
}
fn f_pad(args: &[Value]) -> Result<Value, FuncError> {
    let s = arg_str(args, 0)?;
    let l = arg_int(args, 1)?.max(0) as usize;
    let r = arg_int(args, 2)?.max(0) as usize;
    Ok(Value::String(format!(
        "{}{}{}",
        " ".repeat(l),
        s,
        " ".repeat(r)
    )))
}

/// Go's `fmt.Print` rendering of a value (`[a b]`, `map[k:v]`, `<nil>`).
pub fn go_print(v: &Value) -> String {
    match v {
        Value::Nil => "<nil>".into(),
        Value::NoValue => "<no value>".into(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_print).collect::<Vec<_>>().join(" ")),
        Value::Object(m) | Value::Map(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", go_print(&m[*k])))
                .collect();
            format!("map[{}]", items.join(" "))
        }
        v => v.to_string(),
    }
}

fn f_gofmt(args: &[Value]) -> Result<Value, FuncError> {
    match args.first() {
        Some(Value::String(_)) | None => Ok(args.first().cloned().unwrap_or(Value::NoValue)),
        Some(v) => Ok(Value::String(go_print(v))),
    }
}

/// Wrap each printing action `{{ X }}` as `{{ __gofmt (X) }}` so values print
/// the way Go prints them; control actions and assignments are left alone.
pub fn wrap_actions(text: &str) -> String {
    const KEYWORDS: [&str; 10] = [
        "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
    ];
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        // find the closing braces outside string literals
        let mut end = None;
        let mut quote: Option<char> = None;
        let mut prev = '\0';
        for (i, c) in after.char_indices() {
            match quote {
                Some(q) => {
                    if c == q && (q == '`' || prev != '\\') {
                        quote = None;
                    }
                }
                None => {
                    if c == '"' || c == '`' || c == '\'' {
                        quote = Some(c);
                    } else if c == '}' && after[i..].starts_with("}}") {
                        end = Some(i);
                        break;
                    }
                }
            }
            prev = if prev == '\\' && c == '\\' { '\0' } else { c };
        }
        let Some(end) = end else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = &after[..end];
        let (lt, body) = match inner.strip_prefix('-') {
            Some(b) if b.starts_with([' ', '\t', '\n']) => ("-", b),
            _ => ("", inner),
        };
        let (body, rt) = match body.strip_suffix('-') {
            Some(b) if b.ends_with([' ', '\t', '\n']) => (b, "-"),
            _ => (body, ""),
        };
        let t = body.trim();
        let first = t
            .split(|c: char| c.is_whitespace() || c == '(')
            .next()
            .unwrap_or("");
        let control = t.is_empty()
            || t.starts_with("/*")
            || KEYWORDS.contains(&first)
            || t.contains(":=")
            || (t.starts_with('$') && t.split_whitespace().nth(1) == Some("="));
        if control {
            out.push_str("{{");
            out.push_str(inner);
        } else {
            out.push_str(&format!("{{{{{lt} __gofmt ({t}) {rt}"));
        }
        out.push_str("}}");
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// A parsed `--format` template.
pub struct Tmpl {
    t: Template,
    text: String,
    /// Go type name for "can't evaluate field" errors; `None` means a map.
    pub type_name: Option<&'static str>,
}

/// Rewrite gtmpl's missing-field error the way Go's text/template words it.
pub fn go_exec_error(text: &str, err: &str, type_name: Option<&str>) -> String {
    let Some(rest) = err.strip_prefix("no field ") else {
        return format!("template: :{err}");
    };
    let field = rest.split(' ').next().unwrap_or("");
    let col = text.find(&format!(".{field}")).unwrap_or(0);
    let what = match type_name {
        Some(t) => format!("can't evaluate field {field} in type {t}"),
        None => format!("map has no entry for key \"{field}\""),
    };
    format!("template: :1:{col}: executing \"\" at <.{field}>: {what}")
}

impl Tmpl {
    /// Parse; the error is gtmpl's message (callers add docker's prefix).
    pub fn parse(text: &str) -> Result<Tmpl, String> {
        // Go's parser names this error precisely; gtmpl reports it obscurely.
        let mut rest = text;
        let mut line = 1;
        while let Some(i) = rest.find("{{") {
            line += rest[..i].matches('\n').count();
            let after = &rest[i + 2..];
            match after.find("}}") {
                Some(j) => rest = &after[j + 2..],
                None => return Err(format!("template: :{line}: unclosed action")),
            }
        }
        let mut t = Template::default();
        let funcs: [(&str, Func); 11] = [
            ("__gofmt", f_gofmt),
            ("__jsonpath", f_jsonpath),
            ("index", f_index),
            ("json", f_json),
            ("upper", f_upper),
            ("lower", f_lower),
            ("title", f_title),
            ("split", f_split),
            ("join", f_join),
            ("truncate", f_truncate),
            ("pad", f_pad),
        ];
        t.add_funcs(&funcs);
        t.parse(wrap_actions(&keep_json_order(text)))
            .map_err(|e| format!("template: :{}", e.to_string().replace('\0', "")))?;
        Ok(Tmpl {
            t,
            text: text.to_string(),
            type_name: None,
        })
    }

    /// Render a JSON document, keeping its key order for `json`.
    pub fn render_json(&self, doc: &serde_json::Value) -> Result<String, String> {
        DOC.with(|d| *d.borrow_mut() = Some(doc.clone()));
        let r = self.render(json_to_value(doc));
        DOC.with(|d| *d.borrow_mut() = None);
        r
    }

    /// Render `ctx` while `json` serializes paths of `doc` (a Go struct's JSON form, whose
    /// names may differ from the template's field names), falling back to `ctx`'s values.
    pub fn render_with_doc(
        &self,
        ctx: &serde_json::Value,
        doc: &serde_json::Value,
    ) -> Result<String, String> {
        DOC.with(|d| *d.borrow_mut() = Some(doc.clone()));
        let r = self.render(json_to_value(ctx));
        DOC.with(|d| *d.borrow_mut() = None);
        r
    }

    pub fn render(&self, ctx: Value) -> Result<String, String> {
        self.t
            .render(&Context::from(ctx))
            .map_err(|e| go_exec_error(&self.text, &e.to_string(), self.type_name))
    }
}

/// docker's preprocessing of `--format`: literal `\t`/`\n` become real ones and a
/// `table` prefix is split off. Returns (is_table, template text).
pub fn preformat(format: &str) -> (bool, String) {
    let f = format.trim_matches(' ');
    let f = f.replace("\\t", "\t").replace("\\n", "\n");
    match f.strip_prefix("table") {
        Some(rest) => (true, rest.trim_start_matches(' ').to_string()),
        None => (false, f),
    }
}

/// A table/list formatter for `ps`, `images`, `history`: each row is an
/// object of display strings; the header row maps field names to titles.
pub fn render_rows(
    type_name: &'static str,
    format: &str,
    headers: &[(&str, &str)],
    rows: &[HashMap<String, Value>],
) -> Result<String, String> {
    let (table, text) = preformat(format);
    let mut tmpl = Tmpl::parse(&text).map_err(|e| format!("template parsing error: {e}"))?;
    tmpl.type_name = Some(type_name);
    let mut out = String::new();
    let h: HashMap<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    let hdr = tmpl
        .render(Value::Object(h))
        .map_err(|e| format!("failed to execute template: {e}"))?;
    if table {
        out.push_str(&hdr);
        out.push('\n');
    }
    for r in rows {
        let line = tmpl
            .render(Value::Object(r.clone()))
            .map_err(|e| format!("failed to execute template: {e}"))?;
        out.push_str(&line);
        out.push('\n');
    }
    if table {
        Ok(crate::format::table::tabwrite(&out, 10, 3))
    } else {
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &str, v: serde_json::Value) -> String {
        Tmpl::parse(t).unwrap().render(json_to_value(&v)).unwrap()
    }

    #[test]
    fn fields_and_funcs() {
        let v = serde_json::json!({"State": {"Pid": 42, "Running": true}, "Name": "/web",
            "Config": {"Image": "busybox", "Labels": {"a": "b"}}});
        assert_eq!(render("{{.State.Pid}}", v.clone()), "42");
        assert_eq!(
            render("{{.Name}} {{.Config.Image}}", v.clone()),
            "/web busybox"
        );
        assert_eq!(render("{{json .Config.Labels}}", v.clone()), r#"{"a":"b"}"#);
        assert_eq!(render("{{index .Config.Labels \"a\"}}", v.clone()), "b");
        assert_eq!(render("{{index .Config.Labels \"nope\"}}", v.clone()), "");
        let doc = serde_json::from_str::<serde_json::Value>(r#"{"S":{"Z":1,"A":{"Y":2,"B":3}}}"#)
            .unwrap();
        let t = Tmpl::parse("{{json .S}} {{json .S.A}}").unwrap();
        assert_eq!(
            t.render_json(&doc).unwrap(),
            r#"{"Z":1,"A":{"Y":2,"B":3}} {"Y":2,"B":3}"#
        );
        assert_eq!(render("{{upper .Config.Image}}", v.clone()), "BUSYBOX");
        assert_eq!(
            render("{{title \"hello world\"}}", v.clone()),
            "Hello World"
        );
        assert_eq!(
            render("{{join (split \"a,b\" \",\") \"-\"}}", v.clone()),
            "a-b"
        );
        assert_eq!(render("{{truncate \"abcdef\" 3}}", v.clone()), "abc");
        assert_eq!(render("{{pad \"x\" 1 2}}", v.clone()), " x  ");
        assert_eq!(render("{{lower \"AB\"}}", v), "ab");
    }

    #[test]
    fn go_printing() {
        let v = serde_json::json!({"Config": {"Cmd": ["sh", "-c"], "Labels": {"b": "2", "a": "1"}, "Env": null}});
        assert_eq!(render("{{.Config.Cmd}}", v.clone()), "[sh -c]");
        assert_eq!(render("{{.Config.Labels}}", v.clone()), "map[a:1 b:2]");
        assert_eq!(render("{{.Config.Env}}", v.clone()), "<nil>");
        assert_eq!(
            render("{{range .Config.Cmd}}<{{.}}>{{end}}", v.clone()),
            "<sh><-c>"
        );
        assert_eq!(
            render("{{if .Config.Cmd}}yes{{else}}no{{end}}", v.clone()),
            "yes"
        );
        assert_eq!(
            render("{{- $x := .Config.Cmd -}} {{index $x 1}}", v.clone()),
            "-c"
        );
        assert_eq!(render("{{\"}}\"}}", v), "}}");
        assert_eq!(wrap_actions("a {{- .X -}} b"), "a {{- __gofmt (.X) -}} b");
    }

    #[test]
    fn bad_template() {
        assert_eq!(
            Tmpl::parse("{{.Foo").err().unwrap(),
            "template: :1: unclosed action"
        );
        assert_eq!(
            Tmpl::parse("a\n{{.A}}\n{{.B").err().unwrap(),
            "template: :3: unclosed action"
        );
        let t = Tmpl::parse("{{.Foo}}").unwrap();
        let e = t
            .render(json_to_value(&serde_json::json!({"A": 1})))
            .unwrap_err();
        assert_eq!(
            e,
            "template: :1:2: executing \"\" at <.Foo>: map has no entry for key \"Foo\""
        );
    }

    #[test]
    fn table_rows() {
        let row: HashMap<String, Value> = [
            ("ID".to_string(), Value::from("abc")),
            ("Names".to_string(), Value::from("x")),
        ]
        .into_iter()
        .collect();
        let out = render_rows(
            "*formatter.ContainerContext",
            "table {{.ID}}\\t{{.Names}}",
            &[("ID", "CONTAINER ID"), ("Names", "NAMES")],
            std::slice::from_ref(&row),
        )
        .unwrap();
        assert_eq!(out, "CONTAINER ID   NAMES\nabc            x\n");
        assert_eq!(
            render_rows("T", "{{.ID}}", &[("ID", "CONTAINER ID")], &[row]).unwrap(),
            "abc\n"
        );
        assert!(render_rows("T", "{{.Nope", &[], &[])
            .unwrap_err()
            .starts_with("template parsing error: "));
    }
}
