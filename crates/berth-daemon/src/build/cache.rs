//! The build cache: a step's key (its parent image, what the step does, and for COPY/ADD
//! the checksum of what it copies) → the image it made. Each entry is one small file
//! written atomically, so builds running at the same time never see a torn entry; an
//! entry whose image is gone is a miss.

use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};

/// Bump when what a key covers changes: old entries then simply miss.
const VERSION: &str = "berth-build-cache-v1";

/// How many images one key remembers (`--no-cache` builds add new ones).
const MAX_IMAGES_PER_KEY: usize = 4;

pub(crate) struct Cache {
    dir: PathBuf,
}

/// What a step's key is made of.
pub(crate) struct KeyParts<'a> {
    /// The parent image id (`None`: scratch).
    pub parent: Option<&'a str>,
    /// The history text of the step (`/bin/sh -c #(nop)  ENV a=b`, `|1 A=1 /bin/sh -c …`).
    pub created_by: &'a str,
    /// The image config the step produces, serialized.
    pub config: &'a str,
    /// Anything else the result depends on (COPY's content checksum, RUN's network).
    pub extra: &'a str,
}

impl Cache {
    pub(crate) fn new(dir: &Path) -> Cache {
        Cache {
            dir: dir.to_path_buf(),
        }
    }

    pub(crate) fn key(parts: &KeyParts<'_>) -> String {
        let mut h = Sha256::new();
        for p in [
            VERSION,
            parts.parent.unwrap_or("scratch"),
            parts.created_by,
            parts.config,
            parts.extra,
        ] {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p.as_bytes());
        }
        hex::encode(h.finalize())
    }

    /// The images recorded for `key`, newest first (the caller takes the first that still
    /// exists: removing the newest leaves an older, identical one to hit).
    pub(crate) fn get(&self, key: &str) -> Vec<String> {
        let Ok(s) = std::fs::read_to_string(self.dir.join(key)) else {
            return Vec::new();
        };
        s.lines()
            .map(str::trim)
            .filter(|l| berth_content::Digest::parse(l).is_ok())
            .map(str::to_string)
            .collect()
    }

    /// Records `image` as the newest result of `key`, keeping a few older ones.
    pub(crate) fn put(&self, key: &str, image: &str) {
        let mut ids = vec![image.to_string()];
        ids.extend(self.get(key).into_iter().filter(|i| i != image));
        ids.truncate(MAX_IMAGES_PER_KEY);
        // Not fsynced: an entry lost to a power failure is a cache miss, nothing worse.
        let r = std::fs::create_dir_all(&self.dir).and_then(|_| {
            crate::fsutil::write_replace(&self.dir.join(key), (ids.join("\n") + "\n").as_bytes())
        });
        if let Err(e) = r {
            tracing::warn!("build cache: cannot record {key}: {e}");
        }
    }

    /// Forgets every entry (`builder prune`); returns their keys.
    pub(crate) fn clear(&self) -> Vec<String> {
        let mut keys = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                if std::fs::remove_file(e.path()).is_ok() {
                    keys.push(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        keys
    }
}

/// Waits until no other build of this process is making the step `key`, and holds it until
/// the guard is dropped: builds running at the same time that share steps make each shared
/// step once (the others then find it in the cache), so they all end on the same images.
pub(crate) async fn lock_step(key: &str) -> tokio::sync::OwnedMutexGuard<()> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock, Weak};
    type Locks = Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>;
    static LOCKS: OnceLock<Locks> = OnceLock::new();
    let m = {
        let mut map = LOCKS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.retain(|_, w| w.strong_count() > 0);
        match map.get(key).and_then(Weak::upgrade) {
            Some(m) => m,
            None => {
                let m = Arc::new(tokio::sync::Mutex::new(()));
                map.insert(key.to_string(), Arc::downgrade(&m));
                m
            }
        }
    };
    m.lock_owned().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_every_part_and_entries_round_trip() {
        let base = KeyParts {
            parent: Some("sha256:aa"),
            created_by: "RUN x",
            config: "{}",
            extra: "",
        };
        let k = Cache::key(&base);
        assert_ne!(
            k,
            Cache::key(&KeyParts {
                parent: None,
                ..base
            })
        );
        assert_ne!(
            k,
            Cache::key(&KeyParts {
                created_by: "RUN y",
                ..base
            })
        );
        assert_ne!(
            k,
            Cache::key(&KeyParts {
                config: "{\"a\":1}",
                ..base
            })
        );
        assert_ne!(
            k,
            Cache::key(&KeyParts {
                extra: "sum",
                ..base
            })
        );
        // Parts are length-prefixed: moving a byte across a boundary changes the key.
        assert_ne!(
            Cache::key(&KeyParts {
                created_by: "ab",
                extra: "",
                ..base
            }),
            Cache::key(&KeyParts {
                created_by: "a",
                extra: "b",
                ..base
            })
        );
        let t = tempfile::tempdir().unwrap();
        let c = Cache::new(&t.path().join("cache"));
        assert!(c.get(&k).is_empty());
        let id = format!("sha256:{}", "1".repeat(64));
        c.put(&k, &id);
        assert_eq!(c.get(&k), vec![id.clone()]);
        // A newer image for the same key goes first; the older stays behind it.
        let id2 = format!("sha256:{}", "2".repeat(64));
        c.put(&k, &id2);
        c.put(&k, &id2);
        assert_eq!(c.get(&k), vec![id2.clone(), id.clone()]);
        for n in 3..9 {
            c.put(&k, &format!("sha256:{}", n.to_string().repeat(64)));
        }
        assert_eq!(c.get(&k).len(), MAX_IMAGES_PER_KEY);
        assert_eq!(c.clear(), vec![k.clone()]);
        assert!(c.get(&k).is_empty());
    }
}
