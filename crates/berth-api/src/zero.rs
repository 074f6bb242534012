//! The keys dockerd's inspect JSON always has. Go writes a struct's fields whether they are
//! set or not (unless tagged `omitempty`), so docker users' templates and scripts name them
//! freely (`{{.Config.User}}`, `{{.HostConfig.Binds}}`); the generated models leave unset
//! ones out. These fill them in with Go's zero values, as `encoding/json` writes them: `""`,
//! `0`, `false`, `null` for a nil slice, map or pointer.

use serde_json::{json, Map, Value};

/// `container.Config`'s fields that are not `omitempty`.
fn config_zero() -> Value {
    json!({
        "Hostname": "", "Domainname": "", "User": "",
        "AttachStdin": false, "AttachStdout": false, "AttachStderr": false,
        "Tty": false, "OpenStdin": false, "StdinOnce": false,
        "Env": null, "Cmd": null, "Image": "", "Volumes": null, "WorkingDir": "",
        "Entrypoint": null, "OnBuild": null, "Labels": null,
    })
}

/// `container.HostConfig`'s fields that are not `omitempty` (Docker 20.10).
fn host_config_zero() -> Value {
    let mut m = Map::new();
    let strings = [
        "ContainerIDFile",
        "NetworkMode",
        "VolumeDriver",
        "CgroupnsMode",
        "IpcMode",
        "Cgroup",
        "PidMode",
        "UTSMode",
        "UsernsMode",
        "Isolation",
        "CgroupParent",
        "CpusetCpus",
        "CpusetMems",
    ];
    let nulls = [
        "Binds",
        "PortBindings",
        "VolumesFrom",
        "CapAdd",
        "CapDrop",
        "Dns",
        "DnsOptions",
        "DnsSearch",
        "ExtraHosts",
        "GroupAdd",
        "Links",
        "SecurityOpt",
        "BlkioWeightDevice",
        "BlkioDeviceReadBps",
        "BlkioDeviceWriteBps",
        "BlkioDeviceReadIOps",
        "BlkioDeviceWriteIOps",
        "Devices",
        "DeviceCgroupRules",
        "DeviceRequests",
        "MemorySwappiness",
        "PidsLimit",
        "Ulimits",
        "MaskedPaths",
        "ReadonlyPaths",
    ];
    let zeros = [
        "OomScoreAdj",
        "ShmSize",
        "CpuShares",
        "Memory",
        "NanoCpus",
        "BlkioWeight",
        "CpuPeriod",
        "CpuQuota",
        "CpuRealtimePeriod",
        "CpuRealtimeRuntime",
        "KernelMemory",
        "KernelMemoryTCP",
        "MemoryReservation",
        "MemorySwap",
        "CpuCount",
        "CpuPercent",
        "IOMaximumIOps",
        "IOMaximumBandwidth",
    ];
    let falses = [
        "AutoRemove",
        "Privileged",
        "PublishAllPorts",
        "ReadonlyRootfs",
        "OomKillDisable",
    ];
    for k in strings {
        m.insert(k.into(), json!(""));
    }
    for k in nulls {
        m.insert(k.into(), Value::Null);
    }
    for k in zeros {
        m.insert(k.into(), json!(0));
    }
    for k in falses {
        m.insert(k.into(), json!(false));
    }
    m.insert("LogConfig".into(), json!({"Type": "", "Config": null}));
    m.insert(
        "RestartPolicy".into(),
        json!({"Name": "", "MaximumRetryCount": 0}),
    );
    m.insert("ConsoleSize".into(), json!([0, 0]));
    Value::Object(m)
}

/// Adds to `v` (an object) each key of `zero` it lacks, and goes into the objects both have.
fn fill(v: &mut Value, zero: &Value) {
    let (Value::Object(m), Value::Object(z)) = (v, zero) else {
        return;
    };
    for (k, zv) in z {
        match m.get_mut(k) {
            None => {
                m.insert(k.clone(), zv.clone());
            }
            Some(have) if have.is_object() && zv.is_object() => fill(have, zv),
            Some(_) => {}
        }
    }
}

/// `key` of `v` as an object, made one if it is missing or null.
fn object<'a>(v: &'a mut Map<String, Value>, key: &str) -> &'a mut Value {
    let e = v.entry(key).or_insert(Value::Null);
    if e.is_null() {
        *e = Value::Object(Map::new());
    }
    e
}

/// `GET /containers/{id}/json`: Docker's keys, with Go's zero values where unset.
pub fn fill_container(v: &mut Value) {
    let Value::Object(m) = v else { return };
    fill(object(m, "Config"), &config_zero());
    let hc = object(m, "HostConfig");
    fill(hc, &host_config_zero());
    // where dockerd writes its defaults, not Go's zero: /dev/shm's 64 MiB, and the IPC
    // namespace of the container's own (`Runtime`, omitempty, stays out when unset)
    if hc["ShmSize"] == 0 {
        hc["ShmSize"] = json!(64 << 20);
    }
    if hc["IpcMode"] == "" {
        hc["IpcMode"] = json!("private");
    }
    m.entry("ExecIDs").or_insert(Value::Null);
    // (`State.Health` is `omitempty` in dockerd's JSON too: absent without a health check)
}

/// `GET /images/{name}/json`: an image's `Config` and `ContainerConfig` are whole
/// `container.Config`s, zero for an imported image.
pub fn fill_image(v: &mut Value) {
    let Value::Object(m) = v else { return };
    fill(object(m, "Config"), &config_zero());
    fill(object(m, "ContainerConfig"), &config_zero());
    for k in ["Container", "DockerVersion", "Author", "Comment", "Parent"] {
        m.entry(k).or_insert(Value::String(String::new()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_keys_get_gos_zero_values_and_set_ones_stay() {
        let mut v = json!({
            "Config": {"Cmd": ["sh"], "User": "alice"},
            "HostConfig": {"LogConfig": {"Type": "json-file"}},
            "State": {"Status": "running"},
        });
        fill_container(&mut v);
        assert_eq!(v["Config"]["User"], "alice");
        assert_eq!(v["Config"]["Cmd"], json!(["sh"]));
        assert_eq!(v["Config"]["WorkingDir"], "");
        assert!(v["Config"]["Env"].is_null() && v["Config"].get("Env").is_some());
        assert_eq!(v["HostConfig"]["LogConfig"]["Type"], "json-file");
        assert!(v["HostConfig"]["LogConfig"].get("Config").is_some());
        assert!(v["HostConfig"].get("Binds").is_some());
        assert_eq!(v["HostConfig"]["ConsoleSize"], json!([0, 0]));
        assert_eq!(v["HostConfig"]["ShmSize"], 64 << 20);
        assert_eq!(v["HostConfig"]["IpcMode"], "private");
        assert!(v["HostConfig"].get("Runtime").is_none());
        assert!(v.get("ExecIDs").is_some_and(|e| e.is_null()));
        assert!(v["State"].get("Health").is_none());
        // an ExposedPorts (omitempty) is not made up
        assert!(v["Config"].get("ExposedPorts").is_none());

        let mut i = json!({"Id": "sha256:1", "Config": null});
        fill_image(&mut i);
        assert!(i["Config"].get("Cmd").is_some() && i["ContainerConfig"].get("Cmd").is_some());
        assert_eq!(i["Container"], "");
    }
}
