//! Tokens: runs of non-whitespace characters, with `#` comments removed, and the keywords.

use super::Pos;

/// A run of non-whitespace characters and where it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Token<'a> {
    pub text: &'a str,
    pub pos: Pos,
}

/// The tokens of `src` in order, and the position just past its last character (where "end of
/// input" is reported).
pub(super) fn tokens(src: &str) -> (Vec<Token<'_>>, Pos) {
    let mut out = Vec::new();
    let mut here = Pos { line: 1, column: 1 };
    // The byte offset and position of the token being read, if any.
    let mut start: Option<(usize, Pos)> = None;
    let mut in_comment = false;
    for (i, c) in src.char_indices() {
        if in_comment {
            in_comment = c != '\n';
        } else if c == '#' || c.is_whitespace() {
            if let Some((s, pos)) = start.take() {
                out.push(Token {
                    text: &src[s..i],
                    pos,
                });
            }
            in_comment = c == '#';
        } else if start.is_none() {
            start = Some((i, here));
        }
        if c == '\n' {
            here = Pos {
                line: here.line + 1,
                column: 1,
            };
        } else {
            here.column += 1;
        }
    }
    if let Some((s, pos)) = start {
        out.push(Token {
            text: &src[s..],
            pos,
        });
    }
    (out, here)
}

/// The reserved words of the language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keyword {
    Begin,
    End,
    Host,
    At,
    Add,
    Delete,
    Link,
    Forward,
    Udp,
    Tcp,
    Edge,
    Interface,
    Any,
    Not,
    None,
}

impl Keyword {
    const ALL: [Keyword; 15] = [
        Keyword::Begin,
        Keyword::End,
        Keyword::Host,
        Keyword::At,
        Keyword::Add,
        Keyword::Delete,
        Keyword::Link,
        Keyword::Forward,
        Keyword::Udp,
        Keyword::Tcp,
        Keyword::Edge,
        Keyword::Interface,
        Keyword::Any,
        Keyword::Not,
        Keyword::None,
    ];

    /// The keyword as the printer writes it (upper case).
    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::Begin => "BEGIN",
            Keyword::End => "END",
            Keyword::Host => "HOST",
            Keyword::At => "AT",
            Keyword::Add => "ADD",
            Keyword::Delete => "DELETE",
            Keyword::Link => "LINK",
            Keyword::Forward => "FORWARD",
            Keyword::Udp => "UDP",
            Keyword::Tcp => "TCP",
            Keyword::Edge => "EDGE",
            Keyword::Interface => "INTERFACE",
            Keyword::Any => "ANY",
            Keyword::Not => "NOT",
            Keyword::None => "NONE",
        }
    }

    /// The keyword that `text` spells, in any case.
    pub fn of(text: &str) -> Option<Keyword> {
        Keyword::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(src: &str) -> Vec<&str> {
        tokens(src).0.into_iter().map(|t| t.text).collect()
    }

    #[test]
    fn whitespace_and_comments_separate_tokens() {
        assert_eq!(
            texts("BEGIN#c\n\tHOST a\r\nAT # x y\n  END#"),
            ["BEGIN", "HOST", "a", "AT", "END"]
        );
        assert!(texts("").is_empty());
        assert!(texts("# only a comment").is_empty());
    }

    #[test]
    fn positions_count_lines_and_characters() {
        let (toks, end) = tokens("BEGIN\n  é x\n");
        let pos: Vec<_> = toks.iter().map(|t| (t.pos.line, t.pos.column)).collect();
        assert_eq!(pos, [(1, 1), (2, 3), (2, 5)]);
        assert_eq!(end, Pos { line: 3, column: 1 });
        let (_, end) = tokens("ab");
        assert_eq!(end, Pos { line: 1, column: 3 });
    }

    #[test]
    fn keywords_ignore_case() {
        assert_eq!(Keyword::of("forward"), Some(Keyword::Forward));
        assert_eq!(Keyword::of("NoNe"), Some(Keyword::None));
        assert_eq!(Keyword::of("forwards"), None);
        for k in Keyword::ALL {
            assert_eq!(Keyword::of(k.as_str()), Some(k));
        }
    }
}
