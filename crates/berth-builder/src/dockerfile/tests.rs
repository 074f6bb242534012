//! Cases after BuildKit's parser test data (`parser/testfiles`, `parser_heredoc_test.go`,
//! `instructions/parse_test.go`), with assertions written for this parser.

use super::*;
use crate::instructions::{Copy, Healthcheck, Heredoc, Instruction, Run, ShellOrExec};

fn ok(src: &str) -> Dockerfile {
    parse(src).unwrap_or_else(|e| panic!("{src:?}: {e}"))
}

fn err(src: &str) -> ParseError {
    match parse(src) {
        Ok(df) => panic!("{src:?} parsed: {df:?}"),
        Err(e) => e,
    }
}

/// The instructions of the only stage.
fn instrs(src: &str) -> Vec<Instruction> {
    let df = ok(src);
    assert_eq!(df.stages.len(), 1, "{src:?}");
    df.stages[0]
        .commands
        .iter()
        .map(|c| c.instr.clone())
        .collect()
}

fn one(body: &str) -> Instruction {
    let mut v = instrs(&format!("FROM scratch\n{body}"));
    assert_eq!(v.len(), 1, "{body:?}: {v:?}");
    v.remove(0)
}

fn fail(body: &str) -> String {
    err(&format!("FROM scratch\n{body}")).message
}

fn shell(s: &str) -> ShellOrExec {
    ShellOrExec::Shell(s.into())
}

fn exec(v: &[&str]) -> ShellOrExec {
    ShellOrExec::Exec(v.iter().map(|s| s.to_string()).collect())
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

fn run_cmd(i: &Instruction) -> &ShellOrExec {
    match i {
        Instruction::Run(r) => &r.cmd,
        other => panic!("not RUN: {other:?}"),
    }
}

#[test]
fn stages_and_meta_args() {
    let df = ok("ARG VERSION=1\nARG A B=2\nFROM --platform=$P alpine:$VERSION AS Build\nRUN x\nfrom build as second\nCOPY --from=build /a /b\nFROM scratch\n");
    assert_eq!(df.escape, '\\');
    assert_eq!(df.syntax, None);
    assert!(df.warnings.is_empty());
    assert_eq!(
        df.meta_args,
        vec![
            ArgDecl {
                name: "VERSION".into(),
                default: Some("1".into())
            },
            ArgDecl {
                name: "A".into(),
                default: None
            },
            ArgDecl {
                name: "B".into(),
                default: Some("2".into())
            },
        ]
    );
    assert_eq!(df.stages.len(), 3);
    let s = &df.stages[0];
    assert_eq!(
        (s.index, s.name.as_deref(), s.base.as_str()),
        (0, Some("build"), "alpine:$VERSION")
    );
    assert_eq!(s.platform.as_deref(), Some("$P"));
    assert_eq!(
        (s.line, s.original.as_str()),
        (3, "FROM --platform=$P alpine:$VERSION AS Build")
    );
    assert_eq!(s.commands.len(), 1);
    assert_eq!(s.commands[0].line, 4);
    assert_eq!(s.commands[0].original, "RUN x");
    let s = &df.stages[1];
    assert_eq!(
        (s.index, s.name.as_deref(), s.base.as_str(), s.line),
        (1, Some("second"), "build", 5)
    );
    let s = &df.stages[2];
    assert_eq!((s.index, s.name.as_deref(), s.commands.len()), (2, None, 0));
    // An ARG after the first FROM belongs to the stage.
    assert_eq!(
        instrs("FROM a\nARG x")[0],
        Instruction::Arg(vec![ArgDecl {
            name: "x".into(),
            default: None
        }])
    );
}

#[test]
fn from_errors() {
    assert_eq!(
        err("FROM").message,
        "FROM requires either one or three arguments"
    );
    assert_eq!(
        err("FROM a b").message,
        "FROM requires either one or three arguments"
    );
    assert_eq!(
        err("FROM a AS b c").message,
        "FROM requires either one or three arguments"
    );
    assert_eq!(
        err("FROM a AS 1st").message,
        "invalid name for build stage: \"1st\", name can't start with a number or contain symbols"
    );
    assert_eq!(
        err("FROM a AS foo$bar").message,
        "invalid name for build stage: \"foo$bar\", name can't start with a number or contain symbols"
    );
    assert_eq!(
        ok("FROM a AS a-b_c.1").stages[0].name.as_deref(),
        Some("a-b_c.1")
    );
    assert_eq!(err("FROM --foo=bar a").message, "Unknown flag: foo");
    assert_eq!(
        err("FROM --platform a").message,
        "Missing a value on flag: platform"
    );
    assert_eq!(
        err("RUN x\nFROM a").message,
        "no build stage in current context"
    );
    assert_eq!(err("ARG a\nRUN x\nFROM a").line, 2);
    assert_eq!(err("").message, "file with no instructions");
    assert_eq!(
        err("# just a comment\n\n").message,
        "file with no instructions"
    );
    assert_eq!(
        err("ARG a\n").message,
        "dockerfile contains no stages to build"
    );
}

#[test]
fn unknown_instruction_and_lines() {
    let e = err("# comment\nFROM a\nFOO bar\n");
    assert_eq!(
        (e.line, e.message.as_str()),
        (3, "unknown instruction: FOO")
    );
    assert_eq!(
        e.to_string(),
        "dockerfile parse error line 3: unknown instruction: FOO"
    );
    let e = err("FROM a\nRUN a \\\n  b\nfoo \\\n  x\n");
    assert_eq!(
        (e.line, e.message.as_str()),
        (4, "unknown instruction: foo")
    );
    // Keywords are case-insensitive.
    assert_eq!(instrs("from a\nrun echo hi\nWorkDir /x").len(), 2);
}

#[test]
fn directives() {
    let df = ok("# syntax=docker/dockerfile:1\n# escape=`\nFROM a\nRUN echo `\n  hi\n");
    assert_eq!(df.escape, '`');
    assert_eq!(df.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(df.warnings.len(), 1);
    assert!(
        df.warnings[0].contains("syntax=docker/dockerfile:1"),
        "{:?}",
        df.warnings
    );
    assert!(df.warnings[0].contains("ignored"));
    assert_eq!(
        run_cmd(&df.stages[0].commands[0].instr),
        &shell("echo   hi")
    );

    // Case-insensitive, blanks around `=`.
    assert_eq!(ok("#ESCAPE = `\n\nFROM a").escape, '`');
    assert_eq!(ok("  # escape=`\nFROM a").escape, '`');
    // escape-with-syntax
    let df = ok("# syntax = docker/dockerfile\n# escape = `\n\nFROM `\n    image\n");
    assert_eq!(df.stages[0].base, "image");
    assert_eq!(df.stages[0].original, "FROM     image");
    // escape-nonewline
    let df = ok("# escape = `\n# There is no white space line after the directives.\nFROM image\nENV GOPATH `\n\\go\n");
    assert_eq!(
        df.stages[0].commands[0].instr,
        Instruction::Env(kv(&[("GOPATH", "\\go")]))
    );

    // After any other comment, an instruction or a blank line, a directive is a comment.
    for src in [
        "# Comment here.\n# escape = `\n\nFROM image\nENV GOPATH \\\n\\go",
        "\n# escape=`\nFROM image\nENV GOPATH \\\n\\go",
        "FROM image\n# escape=`\nENV GOPATH \\\n\\go",
        "# unknown=x\n# escape=`\nFROM image\nENV GOPATH \\\n\\go",
    ] {
        let df = ok(src);
        assert_eq!(df.escape, '\\', "{src:?}");
        assert_eq!(
            df.stages[0].commands[0].instr,
            Instruction::Env(kv(&[("GOPATH", "\\go")])),
            "{src:?}"
        );
    }
    let e = err("# escape=`\n# escape=\\\nFROM a");
    assert_eq!(
        (e.line, e.message.as_str()),
        (2, "only one escape parser directive can be used")
    );
    let e = err("# escape=x\nFROM a");
    assert_eq!(
        (e.line, e.message.as_str()),
        (1, "invalid escape token 'x' does not match ` or \\")
    );
    // A byte-order mark is ignored.
    assert_eq!(ok("\u{feff}# escape=`\nFROM a").escape, '`');
    // `# check=` is a directive too (ignored).
    let df = ok("# check=skip=all\n# escape=`\nFROM a");
    assert_eq!((df.escape, df.warnings.len()), ('`', 0));
}

#[test]
fn continuations_and_comments() {
    // continueIndent
    let src = "FROM ubuntu:14.04\n\nRUN echo hello\\\n  world\\\n  goodnight  \\\n  moon\\\n  light\\\nning\nRUN echo hello  \\\n  world\nRUN echo hello  \\\nworld\nRUN echo hello \\\ngoodbye\\\nfrog\nRUN echo hello  \\  \nworld\nRUN echo hi \\\n \\\n world \\\n\\\n good\\\n\\\nnight\nRUN echo goodbye\\\nfrog\nRUN echo good\\\nbye\\\nfrog\n\nRUN echo hello \\\n# this is a comment\n\n# this is a comment with a blank line surrounding it\n\nthis is some more useful stuff\n";
    let got: Vec<ShellOrExec> = instrs(src).iter().map(|i| run_cmd(i).clone()).collect();
    let want = [
        "echo hello  world  goodnight    moon  lightning",
        "echo hello    world",
        "echo hello  world",
        "echo hello goodbyefrog",
        "echo hello  world",
        "echo hi   world  goodnight",
        "echo goodbyefrog",
        "echo goodbyefrog",
        "echo hello this is some more useful stuff",
    ];
    assert_eq!(got, want.iter().map(|s| shell(s)).collect::<Vec<_>>());
    let df = ok(src);
    assert_eq!(
        df.stages[0].commands[0].original,
        "RUN echo hello  world  goodnight    moon  lightning"
    );
    assert_eq!(df.stages[0].commands[8].line, 31);
    // (A line of blanks and an escape is not an empty line.)
    assert_eq!(df.warnings.len(), 2, "{:?}", df.warnings);
    assert_eq!(
        df.warnings[0],
        "Empty continuation line found in: RUN echo hello this is some more useful stuff"
    );
    assert_eq!(
        df.warnings[1],
        "Empty continuation lines will become errors in a future release."
    );

    // escapes
    let src = "FROM ubuntu:14.04\nLABEL maintainer Erik \\\\Hollensbe <erik@hollensbe.org>\\\"\n\nRUN apt-get \\update && \\\n  apt-get \\\"install znc -y\nADD \\conf\\\\\" /.znc\n\nRUN foo \\\n\nbar \\\n\nbaz\n\nCMD [ \"\\/usr\\\\\\\"/bin/znc\", \"-f\", \"-r\" ]\n";
    let v = instrs(src);
    assert_eq!(
        v[0],
        Instruction::Label(kv(&[(
            "maintainer",
            "Erik \\\\Hollensbe <erik@hollensbe.org>\\\""
        )]))
    );
    assert_eq!(
        run_cmd(&v[1]),
        &shell("apt-get \\update &&   apt-get \\\"install znc -y")
    );
    match &v[2] {
        Instruction::Add(c) => assert_eq!(
            (c.sources.clone(), c.dest.as_str()),
            (strs(&["\\conf\\\\\""]), "/.znc")
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(run_cmd(&v[3]), &shell("foo bar baz"));
    assert_eq!(
        v[4],
        Instruction::Cmd(exec(&["/usr\\\"/bin/znc", "-f", "-r"]))
    );

    // continue-at-eof, CRLF, comments inside continuations
    assert_eq!(run_cmd(&one("RUN something \\")), &shell("something"));
    assert_eq!(run_cmd(&one("RUN a \\\r\n  b\r\n")), &shell("a   b"));
    assert_eq!(
        run_cmd(&one("RUN a \\\n  # not a comment for the shell\n  b")),
        &shell("a   b")
    );
    // An escaped escape at the end is not a continuation.
    assert_eq!(
        instrs("FROM a\nENV C trailing\\\\backslash\\\\\nENV D not appended"),
        vec![
            Instruction::Env(kv(&[("C", "trailing\\\\backslash\\\\")])),
            Instruction::Env(kv(&[("D", "not appended")]))
        ]
    );
    // trailing-backslash
    let v = instrs("FROM hello-world\nENV E hello\\\n\\\nworld\nENV F hello\\\n \\\nworld\nENV G hello \\\n\\\nworld\n");
    assert_eq!(
        v,
        vec![
            Instruction::Env(kv(&[("E", "helloworld")])),
            Instruction::Env(kv(&[("F", "hello world")])),
            Instruction::Env(kv(&[("G", "hello world")]))
        ]
    );
    // Comments: only at the start of a line.
    assert_eq!(
        run_cmd(&one("  # c\nRUN echo # not a comment")),
        &shell("echo # not a comment")
    );
}

#[test]
fn env_and_label() {
    let src = "FROM ubuntu\nENV name value\nENV name=value\nENV name=value name2=value2\nENV name=\"value value1\"\nENV name=value\\ value2\nENV name=\"value'quote space'value2\"\nENV name='value\"double quote\"value2'\nENV name=value\\ value2 name2=value2\\ value3\nENV name=\"a\\\"b\"\nENV name=\"a\\'b\"\nENV name='a\\'b'\nENV name='a\\'b''\nENV name='a\\\"b'\nENV name=\"''\"\nENV name=value \\\n    name1=value1 \\\n    name2=\"value2a \\\n           value2b\" \\\n    name3=\"value3a\\n\\\"value3b\\\"\" \\\n\tname4=\"value4a\\\\nvalue4b\" \\\n";
    let want = vec![
        kv(&[("name", "value")]),
        kv(&[("name", "value")]),
        kv(&[("name", "value"), ("name2", "value2")]),
        kv(&[("name", "\"value value1\"")]),
        kv(&[("name", "value\\ value2")]),
        kv(&[("name", "\"value'quote space'value2\"")]),
        kv(&[("name", "'value\"double quote\"value2'")]),
        kv(&[("name", "value\\ value2"), ("name2", "value2\\ value3")]),
        kv(&[("name", "\"a\\\"b\"")]),
        kv(&[("name", "\"a\\'b\"")]),
        kv(&[("name", "'a\\'b'")]),
        kv(&[("name", "'a\\'b''")]),
        kv(&[("name", "'a\\\"b'")]),
        kv(&[("name", "\"''\"")]),
        kv(&[
            ("name", "value"),
            ("name1", "value1"),
            ("name2", "\"value2a            value2b\""),
            ("name3", "\"value3a\\n\\\"value3b\\\"\""),
            ("name4", "\"value4a\\\\nvalue4b\""),
        ]),
    ];
    let got: Vec<_> = instrs(src)
        .into_iter()
        .map(|i| match i {
            Instruction::Env(p) => p,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(got, want);

    assert_eq!(
        one("ENV SCUBA 1 DUBA 3"),
        Instruction::Env(kv(&[("SCUBA", "1 DUBA 3")]))
    );
    assert_eq!(
        one("ENV SCUBA \"1 DUBA 3\""),
        Instruction::Env(kv(&[("SCUBA", "\"1 DUBA 3\"")]))
    );
    assert_eq!(one("ENV a b=c"), Instruction::Env(kv(&[("a", "b=c")])));
    assert_eq!(one("ENV a="), Instruction::Env(kv(&[("a", "")])));
    assert_eq!(
        one("LABEL maintainer James Turnbull \"james@example.com\""),
        Instruction::Label(kv(&[(
            "maintainer",
            "James Turnbull \"james@example.com\""
        )]))
    );
    assert_eq!(
        one("LABEL \"com.example.vendor\"=\"ACME Inc\" version=1.0"),
        Instruction::Label(kv(&[
            ("\"com.example.vendor\"", "\"ACME Inc\""),
            ("version", "1.0")
        ]))
    );
    assert_eq!(fail("ENV"), "ENV requires at least one argument");
    assert_eq!(fail("ENV PATH"), "ENV must have two arguments");
    assert_eq!(fail("LABEL x"), "LABEL must have two arguments");
    assert_eq!(fail("ENV =x"), "ENV names can not be blank");
    assert_eq!(fail("LABEL =x"), "LABEL names can not be blank");
    assert_eq!(
        fail("ENV a=b c"),
        "Syntax error - can't find = in \"c\". Must be of the form: name=value"
    );
    assert_eq!(fail("ENV --x a=b"), "Unknown flag: x");
}

#[test]
fn arg() {
    assert_eq!(
        one("ARG abc=\"123 456\" def"),
        Instruction::Arg(vec![
            ArgDecl {
                name: "abc".into(),
                default: Some("\"123 456\"".into())
            },
            ArgDecl {
                name: "def".into(),
                default: None
            },
        ])
    );
    assert_eq!(
        one("ARG a="),
        Instruction::Arg(vec![ArgDecl {
            name: "a".into(),
            default: Some("".into())
        }])
    );
    assert_eq!(fail("ARG"), "ARG requires at least one argument");
    assert_eq!(fail("ARG =x"), "ARG names can not be blank");
}

#[test]
fn json_forms() {
    let cases: &[(&str, ShellOrExec)] = &[
        ("CMD []", exec(&[])),
        ("CMD [\"\"]", exec(&[""])),
        ("CMD [\"a\"]", exec(&["a"])),
        ("CMD [\"a\",\"b\"]", exec(&["a", "b"])),
        ("CMD [ \"a\", \"b\" ]", exec(&["a", "b"])),
        ("CMD [\t\"a\",\t\"b\"\t]", exec(&["a", "b"])),
        ("CMD\t[\t\"a\",\t\"b\"\t]\t", exec(&["a", "b"])),
        (
            "CMD [\"abc 123\", \"♥\", \"☃\", \"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u0000\"]",
            exec(&["abc 123", "♥", "☃", "\" \\ / \u{8} \u{c} \n \r \t \0"]),
        ),
        (
            "CMD ['echo','single quotes are invalid JSON']",
            shell("['echo','single quotes are invalid JSON']"),
        ),
        (
            "CMD [\"echo\", \"unterminated]",
            shell("[\"echo\", \"unterminated]"),
        ),
        ("CMD [\"a\"] trailing", shell("[\"a\"] trailing")),
        ("CMD echo 'test' | wc -", shell("echo 'test' | wc -")),
        ("CMD", shell("")),
    ];
    for (line, want) in cases {
        assert_eq!(one(line), Instruction::Cmd(want.clone()), "{line:?}");
    }
    assert_eq!(
        one("ENTRYPOINT [ \"/usr/bin/redis-server\" ]"),
        Instruction::Entrypoint(exec(&["/usr/bin/redis-server"]))
    );
    assert_eq!(
        one("ENTRYPOINT exec top -b"),
        Instruction::Entrypoint(shell("exec top -b"))
    );
    assert_eq!(
        run_cmd(&one("RUN [\"echo\", \"'1234'\"]")),
        &exec(&["echo", "'1234'"])
    );
    assert_eq!(
        run_cmd(&one(
            "RUN    sh -c 'echo root:testpass \\\n        > /tmp/passwd'"
        )),
        &shell("sh -c 'echo root:testpass         > /tmp/passwd'")
    );
    assert_eq!(
        fail("CMD [ \"echo\", [ \"nested json\" ] ]"),
        NOT_STRING_ARRAY
    );
    assert_eq!(fail("RUN [1]"), NOT_STRING_ARRAY);
    assert_eq!(fail("CMD --doit [ \"a\", \"b\" ]"), "Unknown flag: doit");

    assert_eq!(
        one("SHELL [\"powershell\", \"-command\"]"),
        Instruction::Shell(strs(&["powershell", "-command"]))
    );
    assert_eq!(
        fail("SHELL powershell -command"),
        "SHELL requires the arguments to be in JSON form"
    );
    assert_eq!(fail("SHELL []"), "SHELL requires at least one argument");
    assert_eq!(fail("SHELL"), "SHELL requires at least one argument");
}

#[test]
fn run_flags() {
    assert_eq!(
        one("RUN --network=none echo hi"),
        Instruction::Run(Run {
            cmd: shell("echo hi"),
            heredocs: vec![],
            network: Some("none".into())
        })
    );
    assert_eq!(
        one("RUN echo hi"),
        Instruction::Run(Run {
            cmd: shell("echo hi"),
            heredocs: vec![],
            network: None
        })
    );
    assert_eq!(run_cmd(&one("RUN --network=host [\"a\"]")), &exec(&["a"]));
    assert_eq!(
        run_cmd(&one("RUN apt-get --no-install-recommends install -y x")),
        &shell("apt-get --no-install-recommends install -y x")
    );
    assert_eq!(
        fail("RUN --network=bridge x"),
        "invalid network mode \"bridge\""
    );
    assert_eq!(fail("RUN --network x"), "Missing a value on flag: network");
    assert_eq!(
        fail("RUN --network=none --network=host x"),
        "Duplicate flag specified: network"
    );
    assert_eq!(
        fail("RUN --mount=type=cache,target=/root/.cache x"),
        "the --mount option requires BuildKit, which berth does not implement"
    );
    assert!(fail("RUN --security=insecure x").contains("--security"));
    assert_eq!(fail("RUN --foo x"), "Unknown flag: foo");
    // `--` ends the flags.
    assert_eq!(run_cmd(&one("RUN -- --network=x")), &shell("--network=x"));
}

fn copy_of(i: Instruction) -> Copy {
    match i {
        Instruction::Copy(c) | Instruction::Add(c) => c,
        other => panic!("{other:?}"),
    }
}

#[test]
fn copy_and_add() {
    let c = copy_of(one(
        "COPY --from=build --chown=1:2 --chmod=0755 --link a b /dst/",
    ));
    assert_eq!(c.sources, strs(&["a", "b"]));
    assert_eq!(c.dest, "/dst/");
    assert_eq!(c.from.as_deref(), Some("build"));
    assert_eq!(c.chown.as_deref(), Some("1:2"));
    assert_eq!(c.chmod.as_deref(), Some("0755"));
    assert!(c.heredocs.is_empty());
    let c = copy_of(one("COPY\t[ \"test file\", \"/tmp\" ]"));
    assert_eq!(
        (c.sources, c.dest),
        (strs(&["test file"]), "/tmp".to_string())
    );
    let c = copy_of(one("ADD\t\t[ \"test file\", \"/tmp/test file\" ]"));
    assert_eq!(
        (c.sources, c.dest),
        (strs(&["test file"]), "/tmp/test file".to_string())
    );
    let c = copy_of(one("ADD\t\tnull /"));
    assert_eq!((c.sources, c.dest), (strs(&["null"]), "/".to_string()));
    let c = copy_of(one("COPY \"a b\" /c"));
    assert_eq!(c.sources, strs(&["\"a", "b\""]));
    let c = copy_of(one("COPY --chown=\"u g\" a /c"));
    assert_eq!(c.chown.as_deref(), Some("u g"));
    let c = copy_of(one("COPY --link=false a /c"));
    assert_eq!(c.sources, strs(&["a"]));
    assert!(matches!(one("ADD --chown=a x y"), Instruction::Add(_)));

    let msg = "COPY requires at least two arguments, but only one was provided. Destination could not be determined";
    assert_eq!(fail("COPY foo"), msg);
    assert_eq!(fail("COPY"), msg);
    assert_eq!(fail("COPY [\"foo\"]"), msg);
    assert!(fail("ADD foo").starts_with("ADD requires at least two arguments"));
    assert_eq!(fail("COPY --user=me foo /tmp/"), "Unknown flag: user");
    assert_eq!(fail("ADD --from=x a b"), "Unknown flag: from");
    assert_eq!(
        fail("COPY --link=maybe a b"),
        "Expecting boolean value for flag link, not: maybe"
    );
    assert_eq!(fail("COPY --from a b"), "Missing a value on flag: from");
    assert!(fail("ADD --checksum=sha256:x a b").contains("--checksum"));
    assert!(fail("COPY --parents a b").contains("--parents"));
    assert_eq!(
        fail("COPY a <<EOF\nx\nEOF"),
        "COPY cannot accept a heredoc as a destination"
    );
}

#[test]
fn other_instructions() {
    assert_eq!(
        one("MAINTAINER docker <docker@docker.io>"),
        Instruction::Maintainer("docker <docker@docker.io>".into())
    );
    assert_eq!(
        one("EXPOSE 9000 5000\t6000/udp"),
        Instruction::Expose(strs(&["9000", "5000", "6000/udp"]))
    );
    assert_eq!(
        one("USER docker:root"),
        Instruction::User("docker:root".into())
    );
    assert_eq!(
        one("WORKDIR /test dir"),
        Instruction::Workdir("/test dir".into())
    );
    assert_eq!(
        one("STOPSIGNAL SIGKILL"),
        Instruction::StopSignal("SIGKILL".into())
    );
    assert_eq!(
        one("VOLUME [\"/test\", \"/test2\"]"),
        Instruction::Volume(strs(&["/test", "/test2"]))
    );
    assert_eq!(
        one("VOLUME /test3 /test4"),
        Instruction::Volume(strs(&["/test3", "/test4"]))
    );
    assert_eq!(one("VOLUME [\" /x \"]"), Instruction::Volume(strs(&["/x"])));
    assert_eq!(fail("VOLUME"), "VOLUME requires at least one argument");
    assert_eq!(fail("VOLUME []"), "VOLUME requires at least one argument");
    assert_eq!(
        fail("VOLUME [\"\"]"),
        "VOLUME specified can not be an empty string"
    );
    assert_eq!(fail("EXPOSE"), "EXPOSE requires at least one argument");
    assert_eq!(fail("USER"), "USER requires exactly one argument");
    assert_eq!(fail("WORKDIR"), "WORKDIR requires exactly one argument");
    assert_eq!(
        fail("STOPSIGNAL"),
        "STOPSIGNAL requires exactly one argument"
    );
    assert_eq!(
        fail("MAINTAINER"),
        "MAINTAINER requires exactly one argument"
    );
    assert_eq!(fail("USER --x=1 me"), "Unknown flag: x");
}

#[test]
fn onbuild() {
    let v = instrs(
        "FROM a\nONBUILD RUN [\"echo\", \"test\"]\nonbuild   RUN echo test\nONBUILD COPY . /\n",
    );
    assert_eq!(
        v,
        vec![
            Instruction::Onbuild("RUN [\"echo\", \"test\"]".into()),
            Instruction::Onbuild("RUN echo test".into()),
            Instruction::Onbuild("COPY . /".into()),
        ]
    );
    assert_eq!(fail("ONBUILD"), "ONBUILD requires at least one argument");
    assert_eq!(
        fail("ONBUILD ONBUILD RUN x"),
        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
    );
    assert_eq!(
        fail("ONBUILD from a"),
        "FROM isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        fail("ONBUILD MAINTAINER me"),
        "MAINTAINER isn't allowed as an ONBUILD trigger"
    );
    // A heredoc trigger keeps its body, to be parsed again in the child build.
    let df = ok("FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\nRUN x\n");
    let cmds = &df.stages[0].commands;
    assert_eq!(
        cmds[0].instr,
        Instruction::Onbuild("RUN <<EOF\necho hi\nEOF".into())
    );
    assert_eq!(cmds[0].original, "ONBUILD RUN <<EOF");
    assert_eq!((cmds[1].line, cmds[1].original.as_str()), (5, "RUN x"));
    let child = ok(&format!(
        "FROM b\n{}",
        match &cmds[0].instr {
            Instruction::Onbuild(t) => t,
            _ => unreachable!(),
        }
    ));
    match &child.stages[0].commands[0].instr {
        Instruction::Run(r) => assert_eq!(r.heredocs[0].content, "echo hi\n"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn healthcheck() {
    let check = |test: &[&str],
                 interval: i64,
                 timeout: i64,
                 start_period: i64,
                 start_interval: i64,
                 retries: i64| {
        Instruction::Healthcheck(Healthcheck::Check {
            test: strs(test),
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        })
    };
    assert_eq!(
        one("HEALTHCHECK NONE"),
        Instruction::Healthcheck(Healthcheck::None)
    );
    assert_eq!(
        one("healthcheck none"),
        Instruction::Healthcheck(Healthcheck::None)
    );
    assert_eq!(
        one("HEALTHCHECK --interval=5s --timeout=3s --retries=3 \\\n  CMD /app/check.sh --quiet"),
        check(
            &["CMD-SHELL", "/app/check.sh --quiet"],
            5_000_000_000,
            3_000_000_000,
            0,
            0,
            3
        )
    );
    assert_eq!(
        one("HEALTHCHECK   CMD   a b"),
        check(&["CMD-SHELL", "a b"], 0, 0, 0, 0, 0)
    );
    assert_eq!(
        one("HEALTHCHECK --timeout=3s CMD [\"foo\"]"),
        check(&["CMD", "foo"], 0, 3_000_000_000, 0, 0, 0)
    );
    assert_eq!(
        one("HEALTHCHECK --start-period=0s --start-interval=0s --interval=5s --timeout=0s --retries=0 CMD [\"foo\"]"),
        check(&["CMD", "foo"], 5_000_000_000, 0, 0, 0, 0)
    );
    assert_eq!(
        one("HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=1.5h --start-interval=2s cmd true"),
        check(&["CMD-SHELL", "true"], 90_000_000_000, 500_000_000, 5_400_000_000_000, 2_000_000_000, 0)
    );
    assert_eq!(
        fail("HEALTHCHECK"),
        "HEALTHCHECK requires at least one argument"
    );
    assert_eq!(
        fail("HEALTHCHECK CMD"),
        "Missing command after HEALTHCHECK CMD"
    );
    assert_eq!(
        fail("HEALTHCHECK CMD []"),
        "Missing command after HEALTHCHECK CMD"
    );
    assert_eq!(
        fail("HEALTHCHECK CONNECT TCP 7000"),
        "Unknown type \"CONNECT\" in HEALTHCHECK (try CMD)"
    );
    assert_eq!(
        fail("HEALTHCHECK NONE x"),
        "HEALTHCHECK NONE takes no arguments"
    );
    assert_eq!(
        fail("HEALTHCHECK --interval=1us CMD x"),
        "Interval \"interval\" cannot be less than 1ms"
    );
    assert_eq!(
        fail("HEALTHCHECK --timeout=-1s CMD x"),
        "Interval \"timeout\" cannot be less than 1ms"
    );
    assert_eq!(
        fail("HEALTHCHECK --interval=5 CMD x"),
        "time: missing unit in duration \"5\""
    );
    assert_eq!(
        fail("HEALTHCHECK --interval=5x CMD x"),
        "time: unknown unit \"x\" in duration \"5x\""
    );
    assert_eq!(
        fail("HEALTHCHECK --interval=abc CMD x"),
        "time: invalid duration \"abc\""
    );
    assert_eq!(
        fail("HEALTHCHECK --retries=-1 CMD x"),
        "--retries cannot be negative (-1)"
    );
    assert_eq!(
        fail("HEALTHCHECK --retries=x CMD x"),
        "strconv.ParseInt: parsing \"x\": invalid syntax"
    );
    assert_eq!(fail("HEALTHCHECK --foo=1 CMD x"), "Unknown flag: foo");
}

#[test]
fn go_durations() {
    for (s, ns) in [
        ("0", 0),
        ("5s", 5_000_000_000),
        ("+5s", 5_000_000_000),
        ("-5s", -5_000_000_000),
        ("1h2m3s4ms5us6ns", 3_723_004_005_006),
        ("1.5s", 1_500_000_000),
        (".5s", 500_000_000),
        ("1.s", 1_000_000_000),
        ("100µs", 100_000),
        ("100μs", 100_000),
    ] {
        assert_eq!(parse_go_duration(s), Ok(ns), "{s}");
    }
    for s in ["", "-", "s", ".s", "1", "1d", "9999999999999h"] {
        assert!(parse_go_duration(s).is_err(), "{s}");
    }
}

#[test]
fn heredocs() {
    let src = "FROM alpine:3.6\nENV NAME=me\nRUN ls\nUSER <<INVALID\nINVALID\nRUN <<EMPTY\nEMPTY\nRUN 3<<EMPTY2\nEMPTY2\nRUN \"<<NOHEREDOC\"\nRUN <<INDENT\n\tfoo\n\tbar\nINDENT\nRUN <<-UNINDENT\n\tbaz\n\tquux\nUNINDENT\nRUN <<-UNINDENT2\n\tbaz\n\tquux\n\tUNINDENT2\nRUN <<-'NOEXPAND'\n\tdon't expand $NAME\nNOEXPAND\nRUN <<COMMENT\n# internal comment\necho hello world\nCOMMENT\nRUN <<COMPLEX python3\nprint('hello world')\nCOMPLEX\nRUN <<eo'f'\necho foo\neof\nRUN <<eo\\'f\necho foo\neo'f\nRUN <<'e'o\\'f\necho foo\neo'f\nRUN <<'one two'\necho bar\none two\nRUN <<$EOF\n$EOF\nRUN <<  EOF\nEOF\nRUN <<  EOF  > foo\nEOF\n";
    let h = |name: &str, content: &str, expand: bool| Heredoc {
        name: name.into(),
        content: content.into(),
        expand,
    };
    // `INVALID` (the body of USER's non-heredoc) is an unknown instruction.
    assert_eq!(err(src).message, "unknown instruction: INVALID");

    let src = src.replace("USER <<INVALID\nINVALID\n", "");
    let df = ok(&src);
    let cmds = &df.stages[0].commands;
    let runs: Vec<(&str, Vec<Heredoc>, &ShellOrExec)> = cmds
        .iter()
        .filter_map(|c| match &c.instr {
            Instruction::Run(r) => Some((c.original.as_str(), r.heredocs.clone(), &r.cmd)),
            _ => None,
        })
        .collect();
    let want: Vec<(&str, Vec<Heredoc>)> = vec![
        ("RUN ls", vec![]),
        ("RUN <<EMPTY", vec![h("EMPTY", "", true)]),
        ("RUN 3<<EMPTY2", vec![h("EMPTY2", "", true)]),
        ("RUN \"<<NOHEREDOC\"", vec![]),
        ("RUN <<INDENT", vec![h("INDENT", "\tfoo\n\tbar\n", true)]),
        ("RUN <<-UNINDENT", vec![h("UNINDENT", "baz\nquux\n", true)]),
        (
            "RUN <<-UNINDENT2",
            vec![h("UNINDENT2", "baz\nquux\n", true)],
        ),
        (
            "RUN <<-'NOEXPAND'",
            vec![h("NOEXPAND", "don't expand $NAME\n", false)],
        ),
        (
            "RUN <<COMMENT",
            vec![h("COMMENT", "# internal comment\necho hello world\n", true)],
        ),
        (
            "RUN <<COMPLEX python3",
            vec![h("COMPLEX", "print('hello world')\n", true)],
        ),
        ("RUN <<eo'f'", vec![h("eof", "echo foo\n", false)]),
        ("RUN <<eo\\'f", vec![h("eo'f", "echo foo\n", true)]),
        ("RUN <<'e'o\\'f", vec![h("eo'f", "echo foo\n", false)]),
        ("RUN <<'one two'", vec![h("one two", "echo bar\n", false)]),
        ("RUN <<$EOF", vec![h("$EOF", "", true)]),
        ("RUN <<  EOF", vec![h("EOF", "", true)]),
        ("RUN <<  EOF  > foo", vec![h("EOF", "", true)]),
    ];
    assert_eq!(runs.len(), want.len());
    for ((orig, heredocs, cmd), (want_orig, want_docs)) in runs.iter().zip(&want) {
        assert_eq!(orig, want_orig);
        assert_eq!(heredocs, want_docs, "{orig}");
        // The command is the line as written.
        assert_eq!(*cmd, &shell(want_orig.strip_prefix("RUN ").unwrap()));
    }
    // Lines count the heredoc bodies.
    assert_eq!(cmds.last().unwrap().line, src.lines().count() - 1);
}

#[test]
fn copy_heredocs() {
    let src = "FROM a\nCOPY <<FILE1 <<FILE2 /dest\ncontent 1\nFILE1\ncontent 2\nFILE2\nCOPY <<EOF /quotes\n\"foo\"\n'bar'\nEOF\nCOPY <<X <<Y /dest\nY\nX\nX\nY\nCOPY --chmod=644 <<-\"file.txt\" real /dest\n\thello $world\n\tfile.txt\nADD <<EOF /x\nx\nEOF\nRUN x\n";
    let df = ok(src);
    let cmds = &df.stages[0].commands;
    let h = |name: &str, content: &str, expand: bool| Heredoc {
        name: name.into(),
        content: content.into(),
        expand,
    };
    let c = copy_of(cmds[0].instr.clone());
    assert_eq!(c.sources, strs(&["FILE1", "FILE2"]));
    assert_eq!(
        c.heredocs,
        vec![
            h("FILE1", "content 1\n", true),
            h("FILE2", "content 2\n", true)
        ]
    );
    assert_eq!(cmds[0].original, "COPY <<FILE1 <<FILE2 /dest");
    let c = copy_of(cmds[1].instr.clone());
    assert_eq!(c.heredocs, vec![h("EOF", "\"foo\"\n'bar'\n", true)]);
    let c = copy_of(cmds[2].instr.clone());
    assert_eq!(c.heredocs, vec![h("X", "Y\n", true), h("Y", "X\n", true)]);
    let c = copy_of(cmds[3].instr.clone());
    assert_eq!(c.sources, strs(&["file.txt", "real"]));
    assert_eq!(c.chmod.as_deref(), Some("644"));
    assert_eq!(c.heredocs, vec![h("file.txt", "hello $world\n", false)]);
    assert!(
        matches!(&cmds[4].instr, Instruction::Add(c) if c.heredocs == vec![h("EOF", "x\n", true)])
    );
    assert_eq!((cmds[5].line, cmds[5].original.as_str()), (22, "RUN x"));

    // JSON forms have no heredocs.
    let v = instrs("FROM a\nRUN [\"<<EOF\"]\nRUN [\"<<'EOF'\"]\n");
    assert!(v
        .iter()
        .all(|i| matches!(i, Instruction::Run(r) if r.heredocs.is_empty())));

    let e = err("FROM a\nRUN <<EOF\nbody\n");
    assert_eq!((e.line, e.message.as_str()), (2, "unterminated heredoc"));
    // An unterminated heredoc further down is reported before an unknown instruction.
    assert_eq!(
        err("FROM a\nBAD x\nRUN <<EOF\n").message,
        "unterminated heredoc"
    );
}

#[test]
fn several_heredocs_and_continuations() {
    let df = ok("FROM a\nRUN cat <<A \\\n  && cat <<-B\nfirst\nA\n\tsecond\n\tB\nRUN y\n");
    let cmds = &df.stages[0].commands;
    match &cmds[0].instr {
        Instruction::Run(r) => {
            assert_eq!(r.cmd, shell("cat <<A   && cat <<-B"));
            assert_eq!(r.heredocs.len(), 2);
            assert_eq!(
                (r.heredocs[0].name.as_str(), r.heredocs[0].content.as_str()),
                ("A", "first\n")
            );
            assert_eq!(
                (r.heredocs[1].name.as_str(), r.heredocs[1].content.as_str()),
                ("B", "second\n")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(cmds[1].line, 8);
}

#[test]
fn heredoc_words() {
    for src in [
        "<<EOF",
        "<<'EOF'",
        "<<\"EOF\"",
        "<<-EOF",
        "<<-'EOF'",
        "<<-\"EOF\"",
        "<<EO\"F\"",
        "<< EOF",
        "<<- EOF",
    ] {
        assert_eq!(
            parse_heredoc(src).unwrap().map(|h| h.name),
            Some("EOF".into()),
            "{src}"
        );
    }
    for src in ["<<'EOF", "<<\"EOF", "<<EOF'", "<<EOF\""] {
        assert!(parse_heredoc(src).is_err(), "{src}");
    }
    for src in ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh"] {
        assert_eq!(parse_heredoc(src).unwrap(), None, "{src}");
    }
    let names = |line: &str| {
        heredocs_from_line(line)
            .unwrap()
            .into_iter()
            .map(|h| h.name)
            .collect::<Vec<_>>()
    };
    assert_eq!(names("RUN <<EOF"), ["EOF"]);
    // As in BuildKit, the line's words split `<<-` from a delimiter after a blank.
    assert!(names("RUN <<- EOF").is_empty());
    assert_eq!(names("RUN << -EOF"), ["-EOF"]);
    assert_eq!(names("RUN 4<<EOF"), ["EOF"]);
    assert_eq!(names("RUN <<EOF <<EOF2"), ["EOF", "EOF2"]);
    assert!(names("RUN '<<EOF'").is_empty());
    assert!(names("RUN \"<<EOF\"").is_empty());
}

#[test]
fn words_and_flags_helpers() {
    assert_eq!(
        parse_words("a=\"1 2\" b='x y' c=d\\ e", '\\'),
        strs(&["a=\"1 2\"", "b='x y'", "c=d\\ e"])
    );
    assert_eq!(parse_words("a=`\"b c", '`'), strs(&["a=`\"b", "c"]));
    assert_eq!(parse_words("x \"\"", '\\'), strs(&["x", "\"\""]));
    let (rest, flags) = extract_flags("--a=1 --b=\"x y\" --c rest of \"line\"", '\\');
    assert_eq!(
        (rest.as_str(), flags),
        ("rest of \"line\"", strs(&["--a=1", "--b=x y", "--c"]))
    );
    let (rest, flags) = extract_flags("--doit=true -- foo /tmp/", '\\');
    assert_eq!((rest.trim(), flags), ("foo /tmp/", strs(&["--doit=true"])));
    let (rest, flags) = extract_flags("--doit -- [ ]", '\\');
    assert_eq!((rest.trim(), flags), ("[ ]", strs(&["--doit"])));
    let (rest, flags) = extract_flags("--only", '\\');
    assert_eq!((rest.as_str(), flags), ("", strs(&["--only"])));
    let (rest, flags) = extract_flags("-x y", '\\');
    assert_eq!((rest.as_str(), flags), ("-x y", vec![]));
}

#[test]
fn realistic_dockerfile() {
    let src = r#"# syntax=docker/dockerfile:1.4
ARG GO_VERSION=1.22
FROM golang:${GO_VERSION}-alpine AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN --network=none CGO_ENABLED=0 go build -o /out/app ./cmd/app \
    && strip /out/app
RUN <<EOF
set -e
echo built > /out/stamp
EOF

FROM alpine:3.19
LABEL org.opencontainers.image.title="app" \
      org.opencontainers.image.version=$VERSION
COPY --from=build --chmod=0755 /out/app /usr/local/bin/app
COPY <<-EOT /etc/app.conf
	listen = ":8080"
	EOT
EXPOSE 8080/tcp
HEALTHCHECK --interval=30s --timeout=3s CMD wget -qO- http://localhost:8080/health || exit 1
USER 65534:65534
ENTRYPOINT ["/usr/local/bin/app"]
CMD ["--config", "/etc/app.conf"]
"#;
    let df = ok(src);
    assert_eq!(df.syntax.as_deref(), Some("docker/dockerfile:1.4"));
    assert_eq!(
        df.meta_args,
        vec![ArgDecl {
            name: "GO_VERSION".into(),
            default: Some("1.22".into())
        }]
    );
    assert_eq!(df.stages.len(), 2);
    let build = &df.stages[0];
    assert_eq!(
        (
            build.name.as_deref(),
            build.base.as_str(),
            build.commands.len()
        ),
        (Some("build"), "golang:${GO_VERSION}-alpine", 6)
    );
    assert_eq!(
        build.commands[4].original,
        "RUN --network=none CGO_ENABLED=0 go build -o /out/app ./cmd/app     && strip /out/app"
    );
    assert_eq!(
        run_cmd(&build.commands[4].instr),
        &shell("CGO_ENABLED=0 go build -o /out/app ./cmd/app     && strip /out/app")
    );
    match &build.commands[5].instr {
        Instruction::Run(r) => {
            assert_eq!(r.heredocs[0].content, "set -e\necho built > /out/stamp\n")
        }
        other => panic!("{other:?}"),
    }
    let fin = &df.stages[1];
    assert_eq!((fin.line, fin.commands.len()), (15, 8));
    assert_eq!(
        fin.commands[0].instr,
        Instruction::Label(kv(&[
            ("org.opencontainers.image.title", "\"app\""),
            ("org.opencontainers.image.version", "$VERSION")
        ]))
    );
    let conf = copy_of(fin.commands[2].instr.clone());
    assert_eq!(
        (conf.sources, conf.heredocs[0].content.as_str()),
        (strs(&["EOT"]), "listen = \":8080\"\n")
    );
    assert_eq!(fin.commands[3].line, 22);
    assert!(
        matches!(&fin.commands[4].instr, Instruction::Healthcheck(Healthcheck::Check { test, interval: 30_000_000_000, .. }) if test[0] == "CMD-SHELL")
    );
    assert_eq!(
        fin.commands[6].instr,
        Instruction::Entrypoint(exec(&["/usr/local/bin/app"]))
    );
}
