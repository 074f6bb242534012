//! End-to-end: what the CLI says, and its exit code, for bad input — as Docker's CLI does
//! (125 for a `run` that never started, 1 for a daemon error, the daemon's message), and
//! `--format` templates that behave like Go's text/template over Docker's types.

mod common;
use common::Env;

#[test]
fn run_unknown_flag_is_125() {
    let env = Env::new().with_busybox();
    let o = env.berth(&["run", "--nosuch", "busybox", "true"]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(o.stderr.contains("unknown flag: --nosuch"), "{o:?}");
    assert_eq!(o.stdout, "");
    // create too
    let o = env.berth(&["create", "--bogus=1", "busybox", "true"]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(o.stderr.contains("unknown flag: --bogus"), "{o:?}");
    // nothing was created
    assert_eq!(env.berth(&["ps", "-aq"]).ok().stdout, "");
}

#[test]
fn no_such_object_and_container() {
    let env = Env::new().with_busybox();
    let o = env.berth(&["inspect", "nosuch"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert_eq!(o.stdout, "[]\n", "{o:?}");
    assert_eq!(o.stderr, "Error: No such object: nosuch\n", "{o:?}");
    // one bad among good ones: the good ones are printed, the exit code is 1
    env.berth(&["create", "--name", "real", "busybox", "true"])
        .ok();
    let o = env.berth(&["inspect", "--format", "{{.Name}}", "real", "nosuch"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert_eq!(o.stdout, "/real\n");
    assert!(o.stderr.contains("No such object: nosuch"), "{o:?}");

    // (dockerd says which kill failed)
    let o = env.berth(&["kill", "nosuch"]);
    assert_eq!(
        o.stderr,
        "Error response from daemon: Cannot kill container: nosuch: No such container: nosuch\n",
        "{o:?}"
    );
    for cmd in [
        "logs", "stop", "start", "restart", "rm", "wait", "pause", "unpause", "attach", "top",
    ] {
        let o = env.berth(&[cmd, "nosuch"]);
        assert_eq!(o.code, 1, "{cmd}: {o:?}");
        assert!(
            o.stderr
                .starts_with("Error response from daemon: No such container: nosuch\n"),
            "{cmd}: {o:?}"
        );
    }
    // start adds Docker's summary line
    let o = env.berth(&["start", "nosuch"]);
    assert_eq!(
        o.stderr,
        "Error response from daemon: No such container: nosuch\nError: failed to start containers: nosuch\n"
    );
    let o = env.berth(&["exec", "nosuch", "true"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("No such container: nosuch"), "{o:?}");
}

#[test]
fn rename_to_a_taken_name_is_a_conflict() {
    let env = Env::new().with_busybox();
    let taken = env
        .berth(&["create", "--name", "taken", "busybox", "true"])
        .ok()
        .trimmed()
        .to_string();
    env.berth(&["create", "--name", "mover", "busybox", "true"])
        .ok();
    let conflict = env.berth(&["rename", "mover", "taken"]);
    assert_eq!(conflict.code, 1, "{conflict:?}");
    assert!(
        conflict
            .stderr
            .contains("Conflict. The container name \"/taken\" is already in use"),
        "{conflict:?}"
    );
    // nothing changed
    let names = env
        .berth(&["ps", "-a", "--format", "{{.Names}}"])
        .ok()
        .stdout;
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(names, ["mover", "taken"]);
    // renaming to its own name, and to a bad name
    let o = env.berth(&["rename", "mover", "mover"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr
            .contains("Renaming a container with the same name as its current name"),
        "{o:?}"
    );
    let o = env.berth(&["rename", "mover", "bad name!"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr.contains("Invalid container name (bad name!)"),
        "{o:?}"
    );
    // Docker's CLI prints the daemon's error, then its own summary line.
    assert_eq!(
        conflict.stderr,
        format!(
            "Error response from daemon: Conflict. The container name \"/taken\" is already in use by container \"{taken}\". You have to remove (or rename) that container to be able to reuse that name.\nError: failed to rename container named mover\n"
        ),
    );
}

#[test]
fn tag_of_missing_image() {
    let env = Env::new().with_busybox();
    let o = env.berth(&["tag", "nosuch", "x"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert_eq!(
        o.stderr,
        "Error response from daemon: No such image: nosuch:latest\n"
    );
    let o = env.berth(&["tag", "busybox", "Bad:Tag"]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("invalid reference format"), "{o:?}");
    assert_eq!(env.berth(&["images", "-q"]).ok().stdout.lines().count(), 1);
}

#[test]
fn run_with_invalid_name_is_125() {
    let env = Env::new().with_busybox();
    let o = env.berth(&["run", "--name", "bad name!", "busybox", "true"]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(
        o.stderr.contains(
            "Error response from daemon: Invalid container name (bad name!), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        ),
        "{o:?}"
    );
    // a one-character name is invalid in Docker too
    let o = env.berth(&["run", "--name", "x", "busybox", "true"]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(o.stderr.contains("Invalid container name (x)"), "{o:?}");
    assert_eq!(env.berth(&["ps", "-aq"]).ok().stdout, "");
}

#[test]
fn inspect_format_parse_error() {
    let env = Env::new().with_busybox();
    env.berth(&["create", "--name", "xx", "busybox", "true"])
        .ok();
    // A field that is not there: an execution error, exit 1.
    let o = env.berth(&["inspect", "--format", "{{.Nope}}", "xx"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr
            .contains(r#"executing "" at <.Nope>: map has no entry for key "Nope""#),
        "{o:?}"
    );
    // The template is parsed before anything is looked up: Docker's CLI says what is wrong
    // with it and exits 64, for a container that exists or not.
    for target in ["xx", "nosuch"] {
        let o = env.berth(&["inspect", "--format", "{{.Nope", target]);
        assert_eq!(o.stdout, "", "{o:?}");
        assert_eq!(
            o.stderr, "template parsing error: template: :1: unclosed action\n",
            "{target}: {o:?}"
        );
        assert_eq!(o.code, 64, "{target}: {o:?}");
    }
}

/// Go's templates over Docker's types: `json` keeps the struct's field order.
#[test]
fn inspect_format_json_keeps_field_order() {
    let env = Env::new().with_busybox();
    env.berth(&["create", "--name", "tpl", "-l", "a=1", "busybox", "true"])
        .ok();
    let o = env
        .berth(&[
            "inspect",
            "--format",
            "{{json .HostConfig.LogConfig}}",
            "tpl",
        ])
        .ok();
    assert_eq!(o.stdout, "{\"Type\":\"json-file\",\"Config\":{}}\n");
    let o = env
        .berth(&["inspect", "--format", "{{json .State}}", "tpl"])
        .ok();
    assert_eq!(
        o.stdout,
        "{\"Status\":\"created\",\"Running\":false,\"Paused\":false,\"Restarting\":false,\"OOMKilled\":false,\"Dead\":false,\"Pid\":0,\"ExitCode\":0,\"Error\":\"\",\"StartedAt\":\"0001-01-01T00:00:00Z\",\"FinishedAt\":\"0001-01-01T00:00:00Z\"}\n"
    );
}

/// Go's `index` of a missing map key gives the element type's zero value: "" for Docker's
/// map[string]string fields (labels, log options).
#[test]
fn inspect_format_index_of_missing_key() {
    let env = Env::new().with_busybox();
    env.berth(&["create", "--name", "tpl", "-l", "a=1", "busybox", "true"])
        .ok();
    let o = env
        .berth(&[
            "inspect",
            "--format",
            "{{index .Config.Labels \"a\"}}",
            "tpl",
        ])
        .ok();
    assert_eq!(o.stdout, "1\n");
    let o = env
        .berth(&[
            "inspect",
            "--format",
            "[{{index .Config.Labels \"nope\"}}]",
            "tpl",
        ])
        .ok();
    assert_eq!(o.stdout, "[]\n");
    let o = env
        .berth(&[
            "inspect",
            "--format",
            "[{{index .HostConfig.LogConfig.Config \"max-size\"}}]",
            "tpl",
        ])
        .ok();
    assert_eq!(o.stdout, "[]\n");
}

/// The docker CLI agrees on all of the above where it is the one printing (skipped without it).
#[test]
fn docker_cli_agrees_on_bad_input() {
    let env = Env::new().with_busybox();
    let Some(o) = env.docker(&["inspect", "nosuch"]) else {
        return;
    };
    assert_eq!((o.code, o.stdout.as_str()), (1, "[]\n"), "{o:?}");
    assert_eq!(o.stderr, "Error: No such object: nosuch\n");
    for args in [
        &["logs", "nosuch"][..],
        &["stop", "nosuch"],
        &["start", "nosuch"],
        &["tag", "nosuch", "x"],
    ] {
        let cmd = args[0];
        let o = env.docker(args).unwrap();
        assert_eq!(o.code, 1, "{cmd}: {o:?}");
        assert!(o.stderr.contains("No such "), "{cmd}: {o:?}");
    }
    env.berth(&["create", "--name", "one", "busybox", "true"])
        .ok();
    env.berth(&["create", "--name", "two", "busybox", "true"])
        .ok();
    let o = env.docker(&["rename", "one", "two"]).unwrap();
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr
            .contains("Conflict. The container name \"/two\" is already in use"),
        "{o:?}"
    );
    let o = env
        .docker(&["run", "--name", "bad name!", "busybox", "true"])
        .unwrap();
    assert_eq!(o.code, 125, "{o:?}");
    assert!(
        o.stderr.contains("Invalid container name (bad name!)"),
        "{o:?}"
    );
    let o = env.docker(&["run", "--nosuch", "busybox", "true"]).unwrap();
    assert_eq!(o.code, 125, "{o:?}");
    assert!(o.stderr.contains("unknown flag: --nosuch"), "{o:?}");
}
