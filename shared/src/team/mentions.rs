//! Who a message names: a member's name or alias as a whole word, case- and
//! accent-insensitive, possessives included (`Plume's`, `Plume’s`), never inside quoted text
//! (`"…"`, `“…”`) or code (`` `…` ``, fenced blocks).

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// `text` folded for matching: lower case, accents dropped.
pub fn fold(text: &str) -> String {
    text.nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// `text` with quoted and code spans blanked out (replaced by spaces, so word boundaries
/// stay where they were).
fn unquoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut closing: Option<&str> = None;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let (open, close): (&str, &str) = if rest.starts_with("```") {
            ("```", "```")
        } else {
            match c {
                '`' => ("`", "`"),
                '"' => ("\"", "\""),
                '“' => ("“", "”"),
                '«' => ("«", "»"),
                _ => ("", ""),
            }
        };
        match closing {
            Some(end) if rest.starts_with(end) => {
                out.push_str(&" ".repeat(end.chars().count()));
                rest = &rest[end.len()..];
                closing = None;
            }
            Some(_) => {
                out.push(if c == '\n' { '\n' } else { ' ' });
                rest = &rest[c.len_utf8()..];
            }
            None if !open.is_empty() => {
                out.push_str(&" ".repeat(open.chars().count()));
                rest = &rest[open.len()..];
                closing = Some(close);
            }
            None => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

/// The words of `text` (letters, digits, `-`, `_`), folded, with a possessive `'s` / `’s`
/// dropped, outside quotes and code.
fn words(text: &str) -> Vec<String> {
    fold(&unquoted(text))
        .split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_' || c == '\'' || c == '’'))
        .map(|word| {
            let word = word.trim_matches(|c| c == '\'' || c == '’');
            word.strip_suffix("'s")
                .or_else(|| word.strip_suffix("’s"))
                .unwrap_or(word)
                .to_owned()
        })
        .filter(|word| !word.is_empty())
        .collect()
}

/// Whether `text` names someone called by any of `names` (each one or more words).
pub fn mentions(text: &str, names: &[&str]) -> bool {
    let words = words(text);
    names.iter().any(|name| {
        let name = words_of_name(name);
        !name.is_empty() && words.windows(name.len()).any(|w| w == name.as_slice())
    })
}

/// A name's words, folded.
fn words_of_name(name: &str) -> Vec<String> {
    fold(name)
        .split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_a_whole_word_in_any_case_and_accent() {
        assert!(mentions("Plume, write me a poem", &["Plume"]));
        assert!(mentions("plume?", &["Plume"]));
        assert!(mentions("PLUME!", &["Plume"]));
        assert!(mentions("Mímir, what do the archives say?", &["Mimir"]));
        assert!(mentions("ask mimir", &["Mímir"]));
        assert!(!mentions("Plumes of smoke", &["Plume"]), "not a whole word");
        assert!(!mentions("a plumber", &["Plume"]));
        assert!(!mentions("", &["Plume"]));
    }

    #[test]
    fn possessives_count_and_aliases_are_names_too() {
        assert!(mentions("What is Plume's view?", &["Plume"]));
        assert!(mentions("What is Plume’s view?", &["Plume"]));
        assert!(mentions(
            "the Keeper of Records knows",
            &["Mimir", "Keeper of Records"]
        ));
        assert!(!mentions("the keeper knows", &["Keeper of Records"]));
    }

    #[test]
    fn quoted_and_code_text_does_not_count() {
        assert!(!mentions(
            r#"He said "Plume is great" yesterday"#,
            &["Plume"]
        ));
        assert!(!mentions("He said “Plume is great” yesterday", &["Plume"]));
        assert!(!mentions("run `plume --help`", &["Plume"]));
        assert!(!mentions("```\nplume = 1\n```\nwhat is this?", &["Plume"]));
        assert!(
            mentions(r#""hello" said Plume"#, &["Plume"]),
            "after the quote"
        );
    }
}
