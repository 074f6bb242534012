//! `Instruction::expand` against Docker's (BuildKit's) expansion rules.

use crate::dockerfile::parse;
use crate::instructions::*;
use crate::shell::Lex;
use std::collections::HashMap;

fn env() -> HashMap<String, String> {
    [
        ("A", "1"),
        ("B", "two words"),
        ("DIR", "/app"),
        ("EMPTY", ""),
        ("PORTS", "80 443/udp"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The first instruction of `body` (after a FROM), expanded.
fn expanded(body: &str) -> Result<Instruction, crate::shell::ShellError> {
    expanded_with(body, '\\')
}

fn expanded_with(body: &str, _escape: char) -> Result<Instruction, crate::shell::ShellError> {
    let df = parse(&format!("FROM scratch\n{body}")).unwrap();
    let env = env();
    df.stages[0].commands[0]
        .instr
        .expand(&Lex::new(df.escape), &|k: &str| env.get(k).cloned())
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn env_and_label_values_lose_their_quotes() {
    assert_eq!(
        expanded("ENV a=\"x y\" b=$A c='$A' d=${B:-no} e=\\$A").unwrap(),
        Instruction::Env(kv(&[
            ("a", "x y"),
            ("b", "1"),
            ("c", "$A"),
            ("d", "two words"),
            ("e", "$A")
        ]))
    );
    assert_eq!(
        expanded("ENV legacy  $B and \"more\"").unwrap(),
        Instruction::Env(kv(&[("legacy", "two words and more")]))
    );
    assert_eq!(
        expanded("ENV name=value\\ value2 name2=\"a\\\"b\" name3='a\\'").unwrap(),
        Instruction::Env(kv(&[
            ("name", "value value2"),
            ("name2", "a\"b"),
            ("name3", "a\\")
        ]))
    );
    assert_eq!(
        expanded("LABEL \"com.example.$A\"=\"ACME ${EMPTY:+x}Inc\"").unwrap(),
        Instruction::Label(kv(&[("com.example.1", "ACME Inc")]))
    );
    assert_eq!(
        expanded("ENV x=${A:+set} y=${NOPE:+set}").unwrap(),
        Instruction::Env(kv(&[("x", "set"), ("y", "")]))
    );
    assert!(expanded("ENV x=\"unterminated").is_err());
    assert!(expanded("ENV x=${A").is_err());
}

#[test]
fn backtick_escape() {
    let df = parse("# escape=`\nFROM scratch\nENV p=c:\\windows`$A q=`\"x\n").unwrap();
    let env = env();
    let got = df.stages[0].commands[0]
        .instr
        .expand(&Lex::new(df.escape), &|k: &str| env.get(k).cloned())
        .unwrap();
    assert_eq!(
        got,
        Instruction::Env(kv(&[("p", "c:\\windows$A"), ("q", "\"x")]))
    );
    let _ = expanded_with("ENV a=b", '`');
}

#[test]
fn arg_defaults() {
    assert_eq!(
        expanded("ARG x=\"$A $B\" y z=${DIR}/bin").unwrap(),
        Instruction::Arg(vec![
            ArgDecl {
                name: "x".into(),
                default: Some("1 two words".into())
            },
            ArgDecl {
                name: "y".into(),
                default: None
            },
            ArgDecl {
                name: "z".into(),
                default: Some("/app/bin".into())
            },
        ])
    );
}

#[test]
fn copy_fields() {
    let got =
        expanded("COPY --from=${A} --chown=$A:$A --chmod=${NOPE:-0755} $DIR/src 'a'b ${DIR}/")
            .unwrap();
    assert_eq!(
        got,
        Instruction::Copy(Copy {
            sources: strs(&["/app/src", "ab"]),
            dest: "/app/".into(),
            from: Some("1".into()),
            chown: Some("1:1".into()),
            chmod: Some("0755".into()),
            heredocs: vec![],
        })
    );
    let got = expanded("ADD [\"$DIR/x y\", \"/dst/$A\"]").unwrap();
    match got {
        Instruction::Add(c) => assert_eq!(
            (c.sources, c.dest),
            (strs(&["/app/x y"]), "/dst/1".to_string())
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn copy_heredoc_bodies() {
    let body =
        "COPY <<EOF <<'RAW' ./$A\nsay \"$A\" '$B' \\$A ${NOPE:-d}\n\\n\nEOF\nkeep $A \"q\"\nRAW\n";
    let got = expanded(body).unwrap();
    match got {
        Instruction::Copy(c) => {
            assert_eq!(c.sources, strs(&["EOF", "RAW"]));
            assert_eq!(c.dest, "./1");
            assert_eq!(c.heredocs[0].content, "say \"1\" 'two words' $A d\nn\n");
            assert_eq!(c.heredocs[1].content, "keep $A \"q\"\n");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn lists_and_single_words() {
    assert_eq!(
        expanded("EXPOSE $PORTS 8080").unwrap(),
        Instruction::Expose(strs(&["80", "443/udp", "8080"]))
    );
    assert_eq!(
        expanded("EXPOSE \"$PORTS\"").unwrap(),
        Instruction::Expose(strs(&["80 443/udp"]))
    );
    assert_eq!(
        expanded("VOLUME [\"$DIR/data\", \"/x\"]").unwrap(),
        Instruction::Volume(strs(&["/app/data", "/x"]))
    );
    assert_eq!(
        expanded("VOLUME $DIR/a /b").unwrap(),
        Instruction::Volume(strs(&["/app/a", "/b"]))
    );
    assert_eq!(
        expanded("USER ${A}:${A}").unwrap(),
        Instruction::User("1:1".into())
    );
    assert_eq!(
        expanded("WORKDIR \"$DIR/my dir\"").unwrap(),
        Instruction::Workdir("/app/my dir".into())
    );
    assert_eq!(
        expanded("STOPSIGNAL SIG${NOPE:-TERM}").unwrap(),
        Instruction::StopSignal("SIGTERM".into())
    );
}

#[test]
fn untouched_instructions() {
    for body in [
        "RUN echo $A \"$B\"",
        "RUN <<EOF\necho $A\nEOF",
        "CMD echo $A",
        "ENTRYPOINT [\"$A\"]",
        "SHELL [\"/bin/$A\"]",
        "HEALTHCHECK CMD echo $A",
        "MAINTAINER $A",
        "ONBUILD RUN echo $A",
    ] {
        let df = parse(&format!("FROM scratch\n{body}")).unwrap();
        let instr = &df.stages[0].commands[0].instr;
        let env = env();
        assert_eq!(
            &instr
                .expand(&Lex::new('\\'), &|k: &str| env.get(k).cloned())
                .unwrap(),
            instr,
            "{body}"
        );
    }
}

#[test]
fn keywords() {
    let df = parse("FROM a\nRUN x\nCMD x\nENTRYPOINT x\nSHELL [\"a\"]\nCOPY a b\nADD a b\nENV a=b\nARG a\nLABEL a=b\nMAINTAINER m\nEXPOSE 1\nVOLUME /v\nUSER u\nWORKDIR /w\nSTOPSIGNAL 9\nHEALTHCHECK NONE\nONBUILD RUN x\n").unwrap();
    let got: Vec<&str> = df.stages[0]
        .commands
        .iter()
        .map(|c| c.instr.keyword())
        .collect();
    let want: Vec<String> = df.stages[0]
        .commands
        .iter()
        .map(|c| c.original.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(got, want);
}
