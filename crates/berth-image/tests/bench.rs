//! Throughput against tar (ignored; run with
//! `cargo test --release -p berth-image --test bench -- --ignored --nocapture`).
//! Set BERTH_BENCH_DIR to a directory on the disk to measure.

use std::fs;
use std::io::BufWriter;
use std::process::Command;
use std::time::Instant;

use berth_image::{ArchiveFormat, ImageStore, LayerCompression};

#[test]
#[ignore]
fn save_and_load_vs_tar() {
    let base = std::env::var("BERTH_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into());
    let tmp = tempfile::tempdir_in(base).unwrap();
    let root = tmp.path();
    // ~500 MB rootfs: 2000 files of 256 KiB, pseudo-random (incompressible-ish).
    let src = root.join("src");
    fs::create_dir_all(&src).unwrap();
    let mut x = 0x9e3779b97f4a7c15u64;
    let mut buf = vec![0u8; 256 << 10];
    for i in 0..2000 {
        for c in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c.copy_from_slice(&x.to_le_bytes()[..c.len()]);
        }
        let d = src.join(format!("d{}", i % 20));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(format!("f{i}")), &buf).unwrap();
    }
    let layer = root.join("layer.tar");
    assert!(Command::new("tar")
        .arg("-C")
        .arg(&src)
        .arg("-cf")
        .arg(&layer)
        .arg(".")
        .status()
        .unwrap()
        .success());
    let store = ImageStore::open(&root.join("store")).unwrap();
    let opts = berth_image::ImportOptions {
        reference: Some("big".into()),
        changes: vec![],
        message: None,
        source: "-".into(),
    };
    store
        .import(fs::File::open(&layer).unwrap(), &opts)
        .unwrap();
    Command::new("sync").status().unwrap();

    let out = root.join("save.tar");
    let t = Instant::now();
    store
        .save(
            &["big".into()],
            ArchiveFormat::Docker,
            LayerCompression::None,
            BufWriter::new(fs::File::create(&out).unwrap()),
        )
        .unwrap();
    let save = t.elapsed();
    let tar_out = root.join("tar.tar");
    let t = Instant::now();
    assert!(Command::new("tar")
        .arg("-C")
        .arg(root)
        .arg("-cf")
        .arg(&tar_out)
        .arg("layer.tar")
        .status()
        .unwrap()
        .success());
    let tar_c = t.elapsed();
    println!(
        "save {save:?} vs tar -c {tar_c:?} ({:.2}x)",
        save.as_secs_f64() / tar_c.as_secs_f64()
    );

    let dst = ImageStore::open(&root.join("dst")).unwrap();
    Command::new("sync").status().unwrap();
    let t = Instant::now();
    dst.load(fs::File::open(&out).unwrap()).unwrap();
    let load = t.elapsed();
    let x_dir = root.join("x");
    fs::create_dir_all(&x_dir).unwrap();
    Command::new("sync").status().unwrap();
    let t = Instant::now();
    assert!(Command::new("tar")
        .arg("-C")
        .arg(&x_dir)
        .arg("-xf")
        .arg(&out)
        .status()
        .unwrap()
        .success());
    let tar_x = t.elapsed();
    println!(
        "load {load:?} vs tar -x {tar_x:?} ({:.2}x)",
        load.as_secs_f64() / tar_x.as_secs_f64()
    );
}
