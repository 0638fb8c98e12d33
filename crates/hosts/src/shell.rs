//! Typed POSIX shell command building (pure, no I/O): every value that comes from the desired
//! state or the configuration enters a script only as a single-quoted word; operators,
//! redirections and keywords are compile-time constants.

use std::fmt;

/// Quotes one word for a POSIX shell: `'...'`, with embedded quotes as `'\''`.
pub fn quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b))
    {
        return word.to_owned();
    }
    let mut quoted = String::with_capacity(word.len() + 2);
    quoted.push('\'');
    for c in word.chars() {
        if c == '\'' {
            quoted.push_str("'\\''");
        } else {
            quoted.push(c);
        }
    }
    quoted.push('\'');
    quoted
}

/// A shell script assembled from quoted words and constant syntax.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Script {
    text: String,
}

impl Script {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a value as one quoted word.
    pub fn word(mut self, word: impl AsRef<str>) -> Self {
        self.space();
        self.text.push_str(&quote(word.as_ref()));
        self
    }

    /// Appends several values, each as one quoted word.
    pub fn words<I, S>(self, words: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        words.into_iter().fold(self, Script::word)
    }

    /// Appends constant shell syntax (`&&`, `>`, `if`, `"$p"`...). Only `'static` text is
    /// accepted, so nothing read at run time can be pasted in unquoted.
    pub fn syntax(mut self, syntax: &'static str) -> Self {
        self.space();
        self.text.push_str(syntax);
        self
    }

    /// Appends constant shell syntax glued to the previous token, e.g. a glob after a quoted
    /// directory.
    pub fn syntax_glued(mut self, syntax: &'static str) -> Self {
        self.text.push_str(syntax);
        self
    }

    /// Appends a value quoted and glued to the previous token, e.g. `>` then a path.
    pub fn glued(mut self, word: impl AsRef<str>) -> Self {
        self.text.push_str(&quote(word.as_ref()));
        self
    }

    /// Ends the current command (a newline).
    pub fn end(mut self) -> Self {
        self.text.push('\n');
        self
    }

    /// Appends another script.
    pub fn then(mut self, other: Script) -> Self {
        if !self.text.is_empty() && !self.text.ends_with('\n') {
            self.text.push('\n');
        }
        self.text.push_str(&other.text);
        self
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn space(&mut self) {
        if !self.text.is_empty() && !self.text.ends_with(['\n', ' ']) {
            self.text.push(' ');
        }
    }
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Script").field(&self.text).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_every_value_one_word() {
        let cases = [
            ("plain", "plain"),
            ("/var/lib/x", "/var/lib/x"),
            ("", "''"),
            ("two words", "'two words'"),
            ("it's", "'it'\\''s'"),
            ("$(rm -rf /)", "'$(rm -rf /)'"),
            ("a;b", "'a;b'"),
            ("`id`", "'`id`'"),
            ("{{.Names}}", "'{{.Names}}'"),
            ("x\ny", "'x\ny'"),
        ];
        for (input, expected) in cases {
            assert_eq!(quote(input), expected, "{input:?}");
        }
    }

    #[test]
    fn quoted_words_survive_a_real_shell() {
        let hostile = ["it's", "$(echo pwned)", "a b", "`id`", "\\", "\"", "*", ""];
        let script = Script::new()
            .word("printf")
            .word("%s|")
            .words(hostile)
            .end();
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(script.as_str())
            .output()
            .unwrap();
        let printed = String::from_utf8(output.stdout).unwrap();
        assert_eq!(printed, format!("{}|", hostile.join("|")));
    }

    #[test]
    fn syntax_and_words_join_with_single_spaces() {
        let script = Script::new()
            .word("mkdir")
            .word("-p")
            .word("/srv/a b")
            .syntax("&&")
            .word("cat")
            .syntax(">")
            .word("/srv/a b/f")
            .end()
            .word("echo")
            .syntax("2>")
            .glued("/dev/null");
        assert_eq!(
            script.as_str(),
            "mkdir -p '/srv/a b' && cat > '/srv/a b/f'\necho 2>/dev/null"
        );
    }
}
