//! Container names: validation and Docker-style random names (`adjective_surname`).

use rand::seq::SliceRandom;

const LEFT: &[&str] = &[
    "admiring",
    "agile",
    "amazing",
    "bold",
    "brave",
    "busy",
    "calm",
    "charming",
    "clever",
    "cool",
    "crazy",
    "dazzling",
    "determined",
    "eager",
    "ecstatic",
    "elegant",
    "epic",
    "fervent",
    "focused",
    "friendly",
    "gallant",
    "gentle",
    "happy",
    "hopeful",
    "jolly",
    "keen",
    "kind",
    "laughing",
    "lucid",
    "magical",
    "modest",
    "nifty",
    "nostalgic",
    "optimistic",
    "peaceful",
    "pensive",
    "quirky",
    "relaxed",
    "serene",
    "sharp",
    "stoic",
    "sweet",
    "tender",
    "trusting",
    "upbeat",
    "vibrant",
    "vigilant",
    "wizardly",
    "zealous",
];

// Scientists, engineers and inventors.
const RIGHT: &[&str] = &[
    "agnesi",
    "archimedes",
    "babbage",
    "bardeen",
    "bohr",
    "boole",
    "cerf",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euclid",
    "euler",
    "faraday",
    "fermat",
    "fermi",
    "feynman",
    "franklin",
    "galileo",
    "gauss",
    "goodall",
    "hamilton",
    "hawking",
    "hopper",
    "hypatia",
    "kepler",
    "knuth",
    "lamarr",
    "lovelace",
    "maxwell",
    "meitner",
    "mendel",
    "moser",
    "newton",
    "noether",
    "pascal",
    "pasteur",
    "planck",
    "ritchie",
    "shannon",
    "tesla",
    "thompson",
    "turing",
    "volta",
    "wilson",
    "wozniak",
    "yalow",
];

/// A random name such as `vigilant_moser`; `retry` > 0 appends a digit, as Docker does.
pub fn random_name(retry: u32) -> String {
    let mut rng = rand::thread_rng();
    let l = LEFT.choose(&mut rng).copied().unwrap_or("busy");
    let r = RIGHT.choose(&mut rng).copied().unwrap_or("turing");
    if retry > 0 {
        format!("{l}_{r}{}", rand::random::<u8>() % 10)
    } else {
        format!("{l}_{r}")
    }
}

/// Docker's rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (a leading `/` is allowed and dropped).
pub fn validate(name: &str) -> Result<String, String> {
    let n = name.strip_prefix('/').unwrap_or(name);
    let mut chars = n.chars();
    let ok = match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {
            n.len() >= 2
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
        }
        _ => false,
    };
    if ok {
        Ok(n.to_string())
    } else {
        Err(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_names_look_like_docker() {
        let n = random_name(0);
        let (l, r) = n.split_once('_').unwrap();
        assert!(LEFT.contains(&l) && RIGHT.contains(&r));
        assert!(validate(&n).is_ok());
    }

    #[test]
    fn names_are_validated() {
        assert_eq!(validate("/web").unwrap(), "web");
        assert!(validate("a").is_err());
        assert!(validate("-x").is_err());
        assert!(validate("a b").is_err());
        assert!(validate("ok_1.2-3").is_ok());
    }
}
