//! Cases after BuildKit's `shell/envVarTest`, `shell/wordsTest` and `lex_test.go`
//! (assertions written for this lexer).

use super::*;
use std::collections::HashMap;

fn env_of(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn word_with(
    escape: char,
    word: &str,
    env: &HashMap<String, String>,
) -> Result<String, ShellError> {
    Lex::new(escape).process_word(word, &|k: &str| env.get(k).cloned())
}

fn words(word: &str, env: &HashMap<String, String>) -> Result<Vec<String>, ShellError> {
    Lex::new('\\').process_words(word, &|k: &str| env.get(k).cloned())
}

/// (input, variables, expected result).
type PatternCase = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

fn base_env() -> HashMap<String, String> {
    env_of(&[
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ])
}

/// (input, expected; `None` = error), from `envVarTest`.
const ENV_VAR_CASES: &[(&str, Option<&str>)] = &[
    ("hello", Some("hello")),
    ("he'll'o", Some("hello")),
    ("he'llo", None),
    ("he\\'llo", Some("he'llo")),
    ("he\\\\'llo", None),
    ("abc\\tdef", Some("abctdef")),
    ("\"abc\\tdef\"", Some("abc\\tdef")),
    ("\"abc\\\\tdef\"", Some("abc\\tdef")),
    ("'abc\\tdef'", Some("abc\\tdef")),
    ("hello\\", Some("hello")),
    ("hello\\\\", Some("hello\\")),
    ("\"hello", None),
    ("\"hello\\\"", None),
    ("\"hel'lo\"", Some("hel'lo")),
    ("'hello", None),
    ("'hello\\'", Some("hello\\")),
    ("'hello\\there'", Some("hello\\there")),
    ("'hello\\\\there'", Some("hello\\\\there")),
    ("\"''\"", Some("''")),
    ("$.", Some("$.")),
    ("he$1x", Some("hex")),
    ("he$.x", Some("he$.x")),
    ("he$pwd.", Some("he.")),
    ("he$PWD", Some("he/home")),
    ("he\\$PWD", Some("he$PWD")),
    ("he\\\\$PWD", Some("he\\/home")),
    ("\"he\\$PWD\"", Some("he$PWD")),
    ("\"he\\\\$PWD\"", Some("he\\/home")),
    ("\\${}", Some("${}")),
    ("\\${}aaa", Some("${}aaa")),
    ("he\\${}", Some("he${}")),
    ("he\\${}xx", Some("he${}xx")),
    ("${}", None),
    ("${}aaa", None),
    ("he${}", None),
    ("he${}xx", None),
    ("he${hi}", Some("he")),
    ("he${hi}xx", Some("hexx")),
    ("he${PWD}", Some("he/home")),
    ("he${.}", None),
    ("he${XXX:-000}xx", Some("he000xx")),
    ("he${PWD:-000}xx", Some("he/homexx")),
    ("he${XXX:-$PWD}xx", Some("he/homexx")),
    ("he${XXX:-${PWD:-yyy}}xx", Some("he/homexx")),
    ("he${XXX:-${YYY:-yyy}}xx", Some("heyyyxx")),
    ("he${XXX:YYY}", None),
    ("he${XXX?}", None),
    ("he${XXX:?}", None),
    ("he${PWD?}", Some("he/home")),
    ("he${PWD:?}", Some("he/home")),
    ("he${NULL?}", Some("he")),
    ("he${NULL:?}", None),
    ("he${XXX:+${PWD}}xx", Some("hexx")),
    ("he${PWD:+${XXX}}xx", Some("hexx")),
    ("he${PWD:+${SHELL}}xx", Some("hebashxx")),
    ("he${XXX:+000}xx", Some("hexx")),
    ("he${PWD:+000}xx", Some("he000xx")),
    ("'he${XX}'", Some("he${XX}")),
    ("\"he${PWD}\"", Some("he/home")),
    ("\"he'$PWD'\"", Some("he'/home'")),
    ("\"$PWD\"", Some("/home")),
    ("'$PWD'", Some("$PWD")),
    ("'\\$PWD'", Some("\\$PWD")),
    ("'\"hello\"'", Some("\"hello\"")),
    ("'he\\$PWD'", Some("he\\$PWD")),
    ("he${PWD", None),
    ("he${PWD:=000}xx", None),
    ("he${PWD:+${PWD}:}xx", Some("he/home:xx")),
    ("he${XXX:-\\$PWD:}xx", Some("he$PWD:xx")),
    ("he${XXX:-\\${PWD}z}xx", Some("he${PWDz}xx")),
    ("안녕하세요", Some("안녕하세요")),
    ("안'녕'하세요", Some("안녕하세요")),
    ("안'녕하세요", None),
    ("안녕\\'하세요", Some("안녕'하세요")),
    ("안녕$KOREAN", Some("안녕한국어")),
    ("\"안녕${PWD}\"", Some("안녕/home")),
    ("${{aaa}", None),
    ("${aaa}}", Some("}")),
    ("${aaa", None),
    ("${{aaa:-bbb}", None),
    ("${aaa:-bbb}}", Some("bbb}")),
    ("${aaa:-bbb", None),
    ("${aaa:-bbb}", Some("bbb")),
    ("${aaa:-${bbb:-ccc}}", Some("ccc")),
    ("${aaa:-bbb ${foo}", None),
    ("${aaa:-bbb {foo}", Some("bbb {foo")),
    ("${:}", None),
    ("${:-bbb}", None),
    ("${:+bbb}", None),
    // Positional parameters are never set.
    ("$1", Some("")),
    ("${1}", Some("")),
    ("${1:+bbb}", Some("")),
    ("${1:-bbb}", Some("bbb")),
    ("$999aaa", Some("aaa")),
    ("${999:-bbb}aaa", Some("bbbaaa")),
    ("$001aaa", Some("aaa")),
    ("${001:+bbb}aaa", Some("aaa")),
    // Nor are special parameters.
    ("$@", Some("")),
    ("$@@@", Some("@@")),
    ("$@aaa", Some("aaa")),
    ("${@:-bbb}aaa", Some("bbbaaa")),
    ("${*:-bbb}", Some("bbb")),
    ("$#", Some("")),
    ("${#:+bbb}", Some("")),
    ("${?:-bbb}", Some("bbb")),
    ("$-", Some("")),
    ("${-:-bbb}", Some("bbb")),
    ("$$", Some("")),
    ("${$:-bbb}", Some("bbb")),
    ("$!", Some("")),
    ("$0", Some("")),
    ("${0:-bbb}", Some("bbb")),
];

#[test]
fn env_var_cases() {
    let env = base_env();
    for (input, expected) in ENV_VAR_CASES {
        let got = word_with('\\', input, &env);
        match expected {
            Some(want) => assert_eq!(got.as_deref(), Ok(*want), "input {input:?}"),
            None => assert!(got.is_err(), "input {input:?} gave {got:?}"),
        }
    }
}

#[test]
fn words_cases() {
    let mut env = HashMap::new();
    let cases: &[(&str, &[&str])] = &[("hello", &["hello"]), ("hello${hi}bye", &["hellobye"])];
    for (input, want) in cases {
        assert_eq!(words(input, &env).unwrap(), *want, "{input:?}");
    }
    env.insert("hi".into(), "hi".into());
    env.insert("space".into(), "abc  def".into());
    env.insert("leading".into(), "  ab c".into());
    env.insert("trailing".into(), "ab c   ".into());
    let cases: &[(&str, &[&str])] = &[
        ("hello${hi}bye", &["hellohibye"]),
        ("hello${space}bye", &["helloabc", "defbye"]),
        ("hello\"${space}\"bye", &["helloabc  defbye"]),
        ("hello \"${space}\"bye", &["hello", "abc  defbye"]),
        ("hello${leading}def", &["hello", "ab", "cdef"]),
        ("hello\"${leading}\" def", &["hello  ab c", "def"]),
        ("hello\"${leading}\"", &["hello  ab c"]),
        ("hello${leading}", &["hello", "ab", "c"]),
        ("hello${trailing}", &["helloab", "c"]),
        ("hello${trailing}d", &["helloab", "c", "d"]),
        ("hello\"${trailing}\"d", &["helloab c   d"]),
        ("hel\"lo${trailing}\"", &["helloab c   "]),
        ("hello\" there  \"", &["hello there  "]),
        ("hello there     ", &["hello", "there"]),
        ("hello\\ there", &["hello there"]),
        ("hello\\\" there", &["hello\"", "there"]),
        ("hello\"\\\\there\"", &["hello\\there"]),
        ("hello\"\\there\"", &["hello\\there"]),
        ("hello'\\\\there'", &["hello\\\\there"]),
        ("hello'\\there'", &["hello\\there"]),
        ("hello'$there'", &["hello$there"]),
        ("  80/tcp   443 ", &["80/tcp", "443"]),
        ("\"\"", &[]),
    ];
    for (input, want) in cases {
        assert_eq!(words(input, &env).unwrap(), *want, "{input:?}");
    }
    assert!(words("hello\" there", &env).is_err());
}

#[test]
fn mandatory_vars() {
    let set = env_of(&[("VAR", "plain"), ("ARG", "x")]);
    let empty = env_of(&[("VAR", ""), ("ARG", "x")]);
    let unset = env_of(&[("ARG", "x")]);
    let no_empty = "${VAR:?message here$ARG}";
    let no_unset = "${VAR?message here$ARG}";
    assert_eq!(word_with('\\', no_empty, &set).unwrap(), "plain");
    assert!(word_with('\\', no_empty, &empty)
        .unwrap_err()
        .0
        .contains("VAR: message herex"));
    assert!(word_with('\\', no_empty, &unset)
        .unwrap_err()
        .0
        .contains("message herex"));
    assert_eq!(word_with('\\', no_unset, &set).unwrap(), "plain");
    assert_eq!(word_with('\\', no_unset, &empty).unwrap(), "");
    assert!(word_with('\\', no_unset, &unset)
        .unwrap_err()
        .0
        .contains("message herex"));
    let err = word_with('\\', "${X?}", &unset).unwrap_err();
    assert_eq!(
        err.0,
        "failed to process \"${X?}\": X: is not allowed to be unset"
    );
    let err = word_with('\\', "${VAR:?}", &empty).unwrap_err();
    assert_eq!(
        err.0,
        "failed to process \"${VAR:?}\": VAR: is not allowed to be empty"
    );
}

#[test]
fn default_and_alternative_forms() {
    let env = env_of(&[("FOO", "xxx"), ("BAR", "")]);
    let w = |s: &str| word_with('\\', s, &env).unwrap();
    assert_eq!(w("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}"), "xxx  ccc");
    assert_eq!(w("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}"), "xxx bbb ccc");
    assert_eq!(w("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}"), "aaa bbb ");
    assert_eq!(w("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}"), "aaa  ");
    assert_eq!(w("${FOO:-}"), "xxx");
    assert_eq!(w("${BAZ:-}"), "");
    assert_eq!(w("${BAZ:-\"a b\"}"), "a b");
    for bad in [
        "${FOO=aaa}",
        "${FOO=:aaa}",
        "${FOO=}",
        "${FOO:#}",
        "${FOO:##}",
        "${FOO:%}",
        "${FOO:%%}",
    ] {
        assert!(word_with('\\', bad, &env).is_err(), "{bad}");
    }
}

#[test]
fn error_messages() {
    let env = HashMap::new();
    let e = |s: &str| word_with('\\', s, &env).unwrap_err().0;
    assert_eq!(
        e("${aaa"),
        "failed to process \"${aaa\": syntax error: missing '}'"
    );
    assert_eq!(
        e("${aaa:-b"),
        "failed to process \"${aaa:-b\": syntax error: missing '}'"
    );
    assert_eq!(
        e("${}"),
        "failed to process \"${}\": syntax error: bad substitution"
    );
    assert_eq!(
        e("${a:=b}"),
        "failed to process \"${a:=b}\": unsupported modifier (:=) in substitution"
    );
    assert_eq!(
        e("'abc"),
        "failed to process \"'abc\": unexpected end of statement while looking for matching single-quote"
    );
    assert_eq!(
        e("\"abc"),
        "failed to process \"\\\"abc\": unexpected end of statement while looking for matching double-quote"
    );
}

#[test]
fn pattern_trimming() {
    let cases: &[PatternCase] = &[
        (
            "${FOO#()[]{\\}^$.\\*\\?|\\\\}",
            &[("FOO", "()[]{}^$.*?|\\x")],
            "x",
        ),
        ("${FOO%%\\**}", &[("FOO", "xx**")], "xx"),
        ("${FOO#*x*y}", &[("FOO", "xxyy")], "y"),
        ("${FOO#*}", &[("FOO", "xxyy")], "xxyy"),
        ("${FOO#$BAR}", &[("FOO", "xxyy"), ("BAR", "x")], "xyy"),
        ("${FOO#$BAR}", &[("FOO", "xxyy"), ("BAR", "")], "xxyy"),
        ("${FOO#}", &[("FOO", "xxyy")], "xxyy"),
        ("${FOO##*x}", &[("FOO", "xxyy")], "yy"),
        ("${FOO##}", &[("FOO", "xxyy")], "xxyy"),
        ("${FOO#?\\?}", &[("FOO", "???y")], "?y"),
        ("${ABC:-.}${FOO%x}${ABC:-.}", &[("FOO", "xxyy")], ".xxyy."),
        ("${FOO%%\\**\\*}", &[("FOO", "a***yy*")], "a"),
        ("${FOO%}", &[("FOO", "xxyy")], "xxyy"),
        ("${FOO%%$BAR}", &[("FOO", "xxyy"), ("BAR", "")], "xxyy"),
        ("${FOO%.*}", &[("FOO", "file.tar.gz")], "file.tar"),
        ("${FOO%%.*}", &[("FOO", "file.tar.gz")], "file"),
        ("${FOO#*/}", &[("FOO", "a/b/c")], "b/c"),
        ("${FOO##*/}", &[("FOO", "a/b/c")], "c"),
        ("${NOPE#x}", &[], ""),
    ];
    for (input, env, want) in cases {
        assert_eq!(
            word_with('\\', input, &env_of(env)).unwrap(),
            *want,
            "{input}"
        );
    }
    assert!(word_with('\\', "${FOO#\\x}", &env_of(&[("FOO", "x")])).is_err());
}

#[test]
fn pattern_replacement() {
    let cases: &[PatternCase] = &[
        (
            "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
            &[("FOO", "/foo*/*/*.txt"), ("NEEDLE", "\\*/")],
            "/foo.*/*.txt - /foo..*.txt",
        ),
        (
            "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
            &[("FOO", "/tmp/tmp/bar.txt"), ("NEEDLE", "/tmp")],
            "/tmp/bar.txt - /bar.txt",
        ),
        (
            "${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
            &[
                ("FOO", "/a/foo/b/c.txt"),
                ("NEEDLE", "/?/"),
                ("REPLACEMENT", "/"),
            ],
            "/foo/b/c.txt - /foo/c.txt",
        ),
        (
            "${FOO/$NEEDLE/$REPLACEMENT}",
            &[
                ("FOO", "http://google.de"),
                ("NEEDLE", "http://"),
                ("REPLACEMENT", "https://"),
            ],
            "https://google.de",
        ),
        (
            "${FOO//\\//\\/}",
            &[("FOO", "/tmp/foo.txt")],
            "\\/tmp\\/foo.txt",
        ),
        ("${FOO/$BAR/ww}", &[("FOO", "xxyy"), ("BAR", "")], "wwxxyy"),
        ("${FOO///}", &[("FOO", "xxyy")], "xxyy"),
        ("${FOO///}", &[], ""),
        ("${FOO//x/-}", &[("FOO", "axbxc")], "a-b-c"),
        ("${FOO//x*/-}", &[("FOO", "axbxc")], "a-"),
    ];
    for (input, env, want) in cases {
        assert_eq!(
            word_with('\\', input, &env_of(env)).unwrap(),
            *want,
            "{input}"
        );
    }
    let env = env_of(&[("FOO", "xxyy")]);
    assert!(word_with('\\', "${FOO//ww}", &env).is_err());
    assert!(word_with('\\', "${FOO//}", &env).is_err());
}

#[test]
fn release_name_pattern() {
    let release =
        "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz";
    let env = env_of(&[
        ("VERSION", "v1.2.3"),
        ("TARGETOS", "linux"),
        ("TARGETARCH", "arm"),
        ("TARGETVARIANT", "v7"),
    ]);
    assert_eq!(
        word_with('\\', release, &env).unwrap(),
        "something-v1.2.3.linux-arm-v7.tar.gz"
    );
    let env = env_of(&[
        ("VERSION", "v1.2.3"),
        ("TARGETOS", "linux"),
        ("TARGETARCH", "arm64"),
        ("TARGETVARIANT", ""),
    ]);
    assert_eq!(
        word_with('\\', release, &env).unwrap(),
        "something-v1.2.3.linux-arm64.tar.gz"
    );
    let env = env_of(&[
        ("VERSION", "v1.2.3"),
        ("TARGETOS", "linux"),
        ("TARGETARCH", "arm64"),
    ]);
    assert_eq!(
        word_with('\\', release, &env).unwrap(),
        "something-v1.2.3.linux-arm64.tar.gz"
    );
}

#[test]
fn backtick_escape() {
    let env = base_env();
    assert_eq!(word_with('`', "a`$PWD", &env).unwrap(), "a$PWD");
    assert_eq!(
        word_with('`', "c:\\windows\\$SHELL", &env).unwrap(),
        "c:\\windows\\bash"
    );
    assert_eq!(word_with('`', "\"a`\"b\"", &env).unwrap(), "a\"b");
    assert_eq!(word_with('`', "\"a\\\"", &env).unwrap(), "a\\");
}

#[test]
fn modes() {
    let env = env_of(&[("A", "1")]);
    let lex = Lex::new('\\');
    let get = |k: &str| env.get(k).cloned();
    let raw = LexMode {
        raw_quotes: true,
        raw_escapes: true,
        skip_unset: true,
        ..LexMode::default()
    };
    let (w, ws) = lex
        .process_with("cat <<'EOF' $B ${C:-x} $A \\n", &get, raw)
        .unwrap();
    assert_eq!(w, "cat <<'EOF' $B ${C:-x} 1 \\n");
    assert_eq!(ws, ["cat", "<<'EOF'", "$B", "${C:-x}", "1", "\\n"]);
    let (_, ws) = lex
        .process_with("<< EOF", &get, LexMode::default())
        .unwrap();
    assert_eq!(ws, ["<< EOF"]);
    let body = LexMode {
        skip_quotes: true,
        ..LexMode::default()
    };
    let (w, _) = lex
        .process_with("say \"$A\" '$A' \\$A\n", &get, body)
        .unwrap();
    assert_eq!(w, "say \"1\" '1' $A\n");
}
