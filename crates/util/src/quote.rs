//! Commands shown the way a user would type them.
//!
//! Not `shlex::try_quote`: shlex also quotes `,`, `=` and `%` and prefers
//! double quotes around a `'`, which would change every plan, `--dry-run`
//! and "to continue, run ..." line users and tests read (`--batch=2`,
//! `web1,web2` stay unquoted here). The output is still valid POSIX shell
//! input: a word is left bare only when it is made of characters no shell
//! treats specially.

/// One word for a POSIX shell: bare when it only has letters, digits and
/// `-_./:=@+,%`, else in single quotes (a `'` inside written `'\''`).
pub fn quote_word(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@+,%".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Words joined by spaces, each through [`quote_word`] (plans, `--dry-run`,
/// "to continue, run ..." hints, commands in error messages).
pub fn quote_words<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| quote_word(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_stay_bare() {
        assert_eq!(
            quote_words(&[
                "swh-deploy",
                "upgrade",
                "--batch=2",
                "web1,web2",
                "a/b:c@d+e%"
            ]),
            "swh-deploy upgrade --batch=2 web1,web2 a/b:c@d+e%"
        );
    }

    #[test]
    fn special_words_are_single_quoted() {
        assert_eq!(quote_word(""), "''");
        assert_eq!(quote_word("web[1-3]"), "'web[1-3]'");
        assert_eq!(quote_word("a b"), "'a b'");
        assert_eq!(quote_word("it's"), "'it'\\''s'");
        assert_eq!(quote_word("$HOME"), "'$HOME'");
        assert_eq!(quote_word("é"), "'é'");
    }

    #[test]
    fn a_shell_reads_the_words_back() {
        let words = ["echo", "it's", "a b", "", "x;y", "web[1-3]", "--k=v"];
        let line = quote_words(&words);
        let back = shlex::split(&line).expect("valid shell words");
        assert_eq!(back, words);
    }
}
