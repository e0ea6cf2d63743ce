//! The nearest valid form of a plan level that does not parse: R's names
//! mapped to ours (`multisession:2` → `multiprocess:2`), R's call syntax
//! read (`multisession(workers = 2)`), and a misspelt name corrected
//! (`multiproces:2` → `multiprocess:2`).

/// The names of plan levels.
const KINDS: [&str; 6] = [
    "sequential",
    "multithread",
    "multiprocess",
    "cluster",
    "slurm",
    "slurm-pool",
];

/// R's plan names and ours: (R's, ours, a suffix ours needs).
const R_NAMES: [(&str, &str, &str); 6] = [
    ("multisession", "multiprocess", ""),
    ("multicore", "multithread", ""),
    ("callr", "multiprocess", ":fresh"),
    ("batchtools_slurm", "slurm", ""),
    ("future.batchtools::batchtools_slurm", "slurm", ""),
    ("transparent", "sequential", ""),
];

/// What to say about `part`, a level that does not parse: ` (R's
/// `multisession` is `multiprocess` here); did you mean `multiprocess:2`?`,
/// or nothing when no valid form is near.
pub(super) fn hint(part: &str) -> String {
    let part = part.trim();
    // Longer texts are no misspelt level name.
    if part.len() > 64 {
        return String::new();
    }
    let (kind, arg) = split_kind(part);
    let name_len = kind
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':')))
        .unwrap_or(kind.len());
    let (name, junk) = kind.split_at(name_len);
    let arg = arg.or_else(|| first_number(junk));
    let lower = name.to_ascii_lowercase();
    let (ours, suffix, note) = match R_NAMES.iter().find(|(r, _, _)| *r == lower) {
        Some((r, ours, suffix)) => (*ours, *suffix, format!(" (R's `{r}` is `{ours}` here)")),
        None => match nearest(&lower) {
            Some(ours) => (ours, "", String::new()),
            None => return String::new(),
        },
    };
    let form = match arg {
        Some(arg) => format!("{ours}:{arg}{suffix}"),
        None if suffix.is_empty() => ours.to_string(),
        None => format!("{ours}:N{suffix}"),
    };
    if form == part {
        return note;
    }
    format!("{note}; did you mean `{form}`?")
}

/// `part` split at its first lone `:` (not one of `::`): the level name
/// and its argument.
fn split_kind(part: &str) -> (&str, Option<&str>) {
    let bytes = part.as_bytes();
    let lone = (0..bytes.len()).find(|&i| {
        bytes[i] == b':' && bytes.get(i + 1) != Some(&b':') && (i == 0 || bytes[i - 1] != b':')
    });
    match lone {
        Some(i) => (&part[..i], Some(&part[i + 1..])),
        None => (part, None),
    }
}

/// The first run of digits in `text` (the `2` of `(workers = 2)`).
fn first_number(text: &str) -> Option<&str> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let tail = &text[start..];
    let len = tail
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(tail.len());
    Some(&tail[..len])
}

/// The level name nearest to `name`, if one is near: at most a third of
/// its letters differ.
fn nearest(name: &str) -> Option<&'static str> {
    KINDS
        .iter()
        .map(|kind| (edit_distance(name, kind), *kind))
        .filter(|(d, kind)| *d <= (kind.len() / 3).max(1))
        .min()
        .map(|(_, kind)| kind)
}

/// The Levenshtein distance between `a` and `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_names_and_misspellings_get_the_nearest_form() {
        for (part, said) in [
            ("multisession:2", "did you mean `multiprocess:2`?"),
            ("multisession", "R's `multisession` is `multiprocess` here"),
            (
                "multisession(workers = 4)",
                "did you mean `multiprocess:4`?",
            ),
            ("multicore:3", "did you mean `multithread:3`?"),
            ("callr", "did you mean `multiprocess:N:fresh`?"),
            ("callr:2", "did you mean `multiprocess:2:fresh`?"),
            ("batchtools_slurm", "did you mean `slurm`?"),
            ("multiproces:2", "did you mean `multiprocess:2`?"),
            ("Multithred", "did you mean `multithread`?"),
            ("multithread=4", "did you mean `multithread:4`?"),
            ("slurn:8", "did you mean `slurm:8`?"),
            (
                "multiproces:2:fresh",
                "did you mean `multiprocess:2:fresh`?",
            ),
            ("clustr:n1,n2", "did you mean `cluster:n1,n2`?"),
            (
                "future.batchtools::batchtools_slurm",
                "did you mean `slurm`?",
            ),
        ] {
            let hint = hint(part);
            assert!(hint.contains(said), "{part}: {hint}");
        }
    }

    #[test]
    fn nothing_near_says_nothing() {
        for part in ["nosuch", "bogus", "x", "", "mpi:4"] {
            assert_eq!(hint(part), "", "{part}");
        }
        assert_eq!(hint(&"m".repeat(900)), "");
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("slurm", "slurm"), 0);
        assert_eq!(edit_distance("slurn", "slurm"), 1);
        assert_eq!(edit_distance("multiproces", "multiprocess"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
