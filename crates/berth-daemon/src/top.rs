//! `GET /containers/{id}/top`: the container's processes, read from /proc like `ps -ef`.

use crate::Daemon;
use berth_api::models::ContainerTopResponse;
use berth_api::ApiError;
use std::collections::HashMap;
use std::path::Path;

struct Proc {
    pid: i32,
    ppid: i32,
    uid: u32,
    tty: String,
    start: String,
    time: String,
    cmd: String,
}

fn ns_of(pid: i32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()
}

fn read_proc(pid: i32, boot: i64, hz: i64) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command sits in parentheses and may hold spaces: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ppid = f.get(1)?.parse().ok()?;
    let tty_nr: i64 = f.get(4)?.parse().ok()?;
    let utime: i64 = f.get(11)?.parse().ok()?;
    let stime: i64 = f.get(12)?.parse().ok()?;
    let starttime: i64 = f.get(19)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .unwrap_or(0);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let mut cmd = cmdline
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    if cmd.is_empty() {
        let comm = &stat[stat.find('(')? + 1..stat.rfind(')')?];
        cmd = format!("[{comm}]");
    }
    let secs = (utime + stime) / hz.max(1);
    let start = chrono::DateTime::from_timestamp(boot + starttime / hz.max(1), 0)
        .map(|t| t.with_timezone(&chrono::Local).format("%H:%M").to_string())
        .unwrap_or_default();
    let tty = if tty_nr == 0 {
        "?".into()
    } else {
        let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
        let major = (tty_nr >> 8) & 0xfff;
        if major == 136 {
            format!("pts/{minor}")
        } else {
            format!("tty{minor}")
        }
    };
    Some(Proc {
        pid,
        ppid,
        uid,
        tty,
        start,
        time: format!(
            "{:02}:{:02}:{:02}",
            secs / 3600,
            (secs / 60) % 60,
            secs % 60
        ),
        cmd,
    })
}

fn user_names() -> HashMap<u32, String> {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((f.get(2)?.parse().ok()?, f.first()?.to_string()))
        })
        .collect()
}

/// `ps <args>`'s table cut to the processes of `pids`, as dockerd cuts it: the columns of its
/// header, the `PID` one among them, and the last one (the command) whole, spaces and all.
fn ps_table(args: &str, pids: &[i32]) -> Result<ContainerTopResponse, ApiError> {
    check_ps_args(args)?;
    let o = std::process::Command::new("ps")
        .args(args.split_whitespace())
        .output()
        .map_err(|e| ApiError::internal(format!("ps: {e}")))?;
    if !o.status.success() {
        // dockerd's words (ps says nothing when no process matched its options)
        let why = String::from_utf8_lossy(&o.stderr)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let status = format!("exit status {}", o.status.code().unwrap_or(-1));
        return Err(ApiError::internal(if why.is_empty() {
            format!("Error running ps: {status}")
        } else {
            format!("Error running ps: {status}: {why}")
        }));
    }
    let out = String::from_utf8_lossy(&o.stdout);
    let mut lines = out.lines();
    let titles: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let pid_col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| ApiError::internal("Couldn't find PID field in ps output"))?;
    let mut processes = Vec::new();
    // a thread's line (`ps m`, whose PID column says `-`) goes with its process's
    let mut in_container = false;
    for line in lines {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < titles.len() {
            continue;
        }
        if f[pid_col] == "-" {
            if !in_container {
                continue;
            }
        } else {
            let pid: i32 = f[pid_col]
                .parse()
                .map_err(|_| ApiError::internal(format!("Unexpected pid '{}'", f[pid_col])))?;
            in_container = pids.contains(&pid);
            if !in_container {
                continue;
            }
        }
        let mut row: Vec<String> = f[..titles.len() - 1]
            .iter()
            .map(|s| s.to_string())
            .collect();
        row.push(f[titles.len() - 1..].join(" "));
        processes.push(row);
    }
    Ok(ContainerTopResponse {
        titles: Some(titles),
        processes: Some(processes),
    })
}

/// dockerd's check of `ps` options: a column may be named `PID` only if it is the pid (the
/// table is cut to the container's processes by that column).
fn check_ps_args(args: &str) -> Result<(), ApiError> {
    let words: Vec<&str> = args.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        // `-o x=PID` or `-o x= PID…` (the header may follow after blanks)
        for spec in w.split(',') {
            let Some((k, v)) = spec.split_once('=') else {
                continue;
            };
            let v = if v.is_empty() {
                words.get(i + 1).copied().unwrap_or("")
            } else {
                v
            };
            if v.starts_with("PID") && k != "pid" && i > 0 {
                return Err(ApiError::invalid(format!(
                    "specifying \"{k}={v}\" is not allowed"
                )));
            }
        }
    }
    Ok(())
}

impl Daemon {
    /// Every process in the container's pid namespace, in `ps -ef` columns (read from
    /// /proc), or in those of `ps <ps_args>` (run on the host, as dockerd runs it).
    pub fn top(&self, name: &str, ps_args: Option<&str>) -> Result<ContainerTopResponse, ApiError> {
        let c = self.container(name)?;
        let rec = c.record();
        if !rec.state.status.is_live() || rec.state.pid <= 0 {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                rec.id
            )));
        }
        let ns = ns_of(rec.state.pid)
            .ok_or_else(|| ApiError::conflict(format!("Container {} is not running", rec.id)))?;
        let in_container = || -> Result<Vec<i32>, ApiError> {
            Ok(std::fs::read_dir(Path::new("/proc"))
                .map_err(|e| ApiError::internal(e.to_string()))?
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .filter(|pid| ns_of(*pid).as_ref() == Some(&ns))
                .collect())
        };
        if let Some(args) = ps_args
            .map(str::trim)
            .filter(|a| !a.is_empty() && *a != "-ef")
        {
            return ps_table(args, &in_container()?);
        }
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("btime "))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0);
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as i64;
        let users = user_names();
        let mut procs: Vec<Proc> = in_container()?
            .into_iter()
            .filter_map(|pid| read_proc(pid, boot, hz))
            .collect();
        procs.sort_by_key(|p| p.pid);
        let titles = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"];
        Ok(ContainerTopResponse {
            titles: Some(titles.iter().map(|s| s.to_string()).collect()),
            processes: Some(
                procs
                    .into_iter()
                    .map(|p| {
                        vec![
                            users
                                .get(&p.uid)
                                .cloned()
                                .unwrap_or_else(|| p.uid.to_string()),
                            p.pid.to_string(),
                            p.ppid.to_string(),
                            "0".into(),
                            p.start,
                            p.tty,
                            p.time,
                            p.cmd,
                        ]
                    })
                    .collect(),
            ),
        })
    }
}

#[cfg(test)]
mod ps_args_tests {
    #[test]
    fn a_column_renamed_pid_must_be_the_pid() {
        assert!(super::check_ps_args("aux").is_ok());
        assert!(super::check_ps_args("-o pid,comm").is_ok());
        assert!(super::check_ps_args("-o pid=PID,comm").is_ok());
        assert_eq!(
            super::check_ps_args("-o ppid=PID,comm")
                .unwrap_err()
                .message,
            "specifying \"ppid=PID\" is not allowed"
        );
        assert!(super::check_ps_args("-o comm= PID").is_err());
    }
}
