//! Suggestions for misspelt names: the closest allowed name by edit distance, and the messages
//! that offer it (pure).

/// "unknown field `prun` (did you mean `prune`?)", or the list of allowed names when none is
/// close.
pub(crate) fn unknown_name(what: &str, name: &str, candidates: &[&str]) -> String {
    match closest(name, candidates) {
        Some(suggestion) => format!("unknown {what} `{name}` (did you mean `{suggestion}`?)"),
        None if candidates.is_empty() => format!("unknown {what} `{name}`"),
        None => format!(
            "unknown {what} `{name}`; allowed here: {}",
            candidates
                .iter()
                .map(|name| format!("`{name}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// "`TCP` is not allowed here; allowed: `HTTP`, `HTTPS`", with a suggestion when one is close.
pub(crate) fn not_allowed(value: &str, candidates: &[&str]) -> String {
    let allowed = candidates
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match closest(value, candidates) {
        Some(suggestion) => {
            format!(
                "`{value}` is not allowed here (did you mean `{suggestion}`?); allowed: {allowed}"
            )
        }
        None => format!("`{value}` is not allowed here; allowed: {allowed}"),
    }
}

pub(crate) fn closest<'a>(wanted: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|candidate| {
            (
                edit_distance(&wanted.to_lowercase(), &candidate.to_lowercase()),
                *candidate,
            )
        })
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 4))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}
