//! "Did you mean …?": the known word closest to what was written, for hints on typos in
//! `sandpit.toml` keys, component names and biome names.

/// `did you mean `health`?` when a known word is within two edits of what was written.
pub fn did_you_mean<'k>(written: &str, known: impl IntoIterator<Item = &'k str>) -> Option<String> {
    known
        .into_iter()
        .map(|candidate| (edit_distance(written, candidate), candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| format!("did you mean `{candidate}`?"))
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, a_char) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, b_char) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(a_char != *b_char);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_within_two_edits_only() {
        let known = ["health", "healthy", "run", "alice"];
        let cases = [
            ("heatlh", Some("did you mean `health`?")),
            ("alcie", Some("did you mean `alice`?")),
            ("rnu", Some("did you mean `run`?")),
            ("zzzzzz", None),
        ];
        assert_eq!(edit_distance("helth", "health"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        for (written, expected) in cases {
            assert_eq!(
                did_you_mean(written, known).as_deref(),
                expected,
                "{written}"
            );
        }
    }
}
