//! Glob patterns over bytes, as Redis's `SCAN ... MATCH` reads them.
//!
//! The rules are those of Redis's `stringmatchlen` (`src/util.c`), case
//! sensitive, over arbitrary bytes (no UTF-8 is assumed):
//!
//! - `*` matches any sequence of bytes, including the empty one;
//! - `?` matches exactly one byte;
//! - `[...]` matches one byte from a class: single bytes (`[abc]`), ranges
//!   (`[a-z]`; a reversed range `[z-a]` has its ends swapped, so it is the
//!   same as `[a-z]`), negation with a leading `^` (`[^a-c]`), and `\` that
//!   escapes the next byte (`[\]]`, `[\-]`). A `]` right after `[` or `[^`
//!   closes an empty class (`[]` matches nothing, `[^]` any byte). A class
//!   that is never closed runs to the end of the pattern and is taken as it
//!   stands (`[ab` is `[ab]`, `[` matches nothing, `[^` any byte);
//! - `\x` outside a class matches `x` literally; a lone `\` at the end of the
//!   pattern matches a literal `\`;
//! - any other byte matches itself.
//!
//! The class parser reads exactly as Redis's does, quirks included: a range is
//! any `x-y` with at least one byte after the `-`, even when that byte is `]`
//! or `\` (`[a-]` is the range `]`..=`a`, unclosed; `[a-\]]` is the range
//! `\`..=`a` followed by a literal `]`), and an escape takes priority over a
//! range (`[\a-z]` is `a`, `-` or `z`). A `-` first, last, or right after a
//! range is a literal.
//!
//! Two deliberate differences from Redis's C code, both at the edges:
//!
//! - Redis returns "no match" for any non-empty pattern against the empty
//!   string, even `*` (its `SCAN`/`KEYS` paths special-case the pattern `*`
//!   instead). Here a pattern made only of `*` matches the empty string too,
//!   as glob semantics say and as [`matches_everything`] promises. No other
//!   pattern can match the empty string, so nothing else changes.
//! - Range ends and the byte tested are compared as unsigned bytes. Redis
//!   compares C `char`s, which are signed on x86-64, so there a range with
//!   one end below `0x80` and the other at or above it (`[a-\xff]`) selects
//!   different bytes; every other range agrees on every platform.
//!
//! Redis also gives up ("no match") beyond 1000 nested `*` recursions, a guard
//! against the exponential blow-up of its recursive matcher (CVE-2022-36021),
//! and it re-reads a class for every byte it tries it on. This matcher needs
//! no such guard: a [`Pattern`] reads the pattern once, in O(len(pattern))
//! time, into tokens (each class becoming a set of 256 bits), then walks the
//! tokens and the text with two cursors and a single backtrack point, at the
//! most recent `*`. Matching a text of n bytes therefore takes
//! O([`tokens`](Pattern::tokens) × (n + 1)) time and constant extra space,
//! whatever the pattern, however large its classes. A caller that matches
//! one pattern against many texts should build the [`Pattern`] once; the free
//! functions [`matches()`] and [`matches_everything`] read the pattern afresh
//! on every call.

/// A glob pattern read once: each `[...]` class becomes a set of 256
/// bytes, so matching costs O(tokens × text) whatever the classes hold.
///
/// Building one takes time linear in the pattern's length and never fails:
/// every byte string is a pattern (see the [module documentation](self) for
/// how malformed ones read). Runs of consecutive `*` become a single token.
///
/// ```
/// use meridian::glob::Pattern;
/// let pattern = Pattern::new(b"user:[0-9]*");
/// assert!(pattern.matches(b"user:42"));
/// assert!(!pattern.matches(b"user:x"));
/// assert_eq!(pattern.tokens(), 7);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    tokens: Vec<Token>,
    /// Tokens other than `*`: each matches one byte, so a text shorter
    /// than this never matches, nor, without a `*`, one of another length.
    fixed: usize,
}

/// One element of a [`Pattern`].
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// A byte matching itself: a plain byte, an escaped one (`\x`), or a lone
    /// `\` at the end of the pattern.
    Byte(u8),
    /// `?`: any one byte.
    AnyByte,
    /// One or more consecutive `*`: any run of bytes, even empty.
    Star,
    /// `[...]`: the bytes it matches, negation already applied; byte `c` is
    /// bit `c % 64` of word `c / 64`. Boxed so that the other tokens stay
    /// small.
    Class(Box<[u64; 4]>),
}

impl Token {
    /// Whether this token, which must not be [`Token::Star`], matches the
    /// single byte `c` (a star is handled by the matcher, never here).
    fn matches_byte(&self, c: u8) -> bool {
        match self {
            Token::Byte(b) => *b == c,
            Token::AnyByte => true,
            Token::Star => false,
            Token::Class(set) => (set[usize::from(c >> 6)] >> (c & 63)) & 1 == 1,
        }
    }
}

impl Pattern {
    /// Reads `pattern` (any bytes) into tokens, in time linear in its length.
    pub fn new(pattern: &[u8]) -> Pattern {
        let mut tokens = Vec::new();
        let mut p = 0;
        while let Some(rest) = pattern.get(p..) {
            let (token, next) = match rest {
                [] => break,
                [b'*', ..] => {
                    let stars = rest.iter().take_while(|&&b| b == b'*').count();
                    (Token::Star, p + stars)
                }
                [b'?', ..] => (Token::AnyByte, p + 1),
                [b'[', ..] => {
                    let (set, next) = class(pattern, p + 1);
                    (Token::Class(Box::new(set)), next)
                }
                // An escaped byte matches itself, whatever it is.
                [b'\\', escaped, ..] => (Token::Byte(*escaped), p + 2),
                // Any other byte, including a lone `\` at the very end.
                [literal, ..] => (Token::Byte(*literal), p + 1),
            };
            tokens.push(token);
            p = next;
        }
        let fixed = tokens.iter().filter(|t| **t != Token::Star).count();
        Pattern { tokens, fixed }
    }

    /// Whether `text` matches this pattern (see the [module
    /// documentation](self) for the rules), in at most about
    /// [`tokens`](Self::tokens) × (`text.len()` + 1) steps.
    pub fn matches(&self, text: &[u8]) -> bool {
        let tokens = &self.tokens[..];
        // Texts of a length no match can have are refused at once.
        if text.len() < self.fixed || (self.fixed == tokens.len() && text.len() != self.fixed) {
            return false;
        }
        // Cursors into the tokens and the text.
        let mut p = 0;
        let mut t = 0;
        // The backtrack point: the token position just after the most recent
        // star, and the text position that star is currently matched up to.
        // On a mismatch the star swallows one more byte and matching resumes.
        let mut star: Option<(usize, usize)> = None;

        while let Some(&c) = text.get(t) {
            match tokens.get(p) {
                Some(Token::Star) => {
                    // Runs of `*` are already merged, but skipping any that
                    // follow costs nothing.
                    while tokens.get(p) == Some(&Token::Star) {
                        p += 1;
                    }
                    if p == tokens.len() {
                        // A trailing star matches whatever is left.
                        return true;
                    }
                    star = Some((p, t));
                    continue;
                }
                Some(token) if token.matches_byte(c) => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
            match star {
                Some((star_p, star_t)) => {
                    // Only the most recent star ever needs to grow: the
                    // pattern before it already matched a prefix of the text,
                    // and any longer match of an earlier star can be replayed
                    // by this one.
                    p = star_p;
                    t = star_t + 1;
                    star = Some((star_p, t));
                }
                None => return false,
            }
        }
        // The text is used up: what is left of the pattern must match the
        // empty string, and only stars do (every other token takes exactly
        // one byte).
        tokens
            .get(p..)
            .unwrap_or(&[])
            .iter()
            .all(|token| *token == Token::Star)
    }

    /// Whether this pattern matches every byte string: true only when it is
    /// one or more `*` and nothing else (the empty pattern matches only the
    /// empty string), so a caller can skip matching altogether.
    pub fn matches_everything(&self) -> bool {
        !self.tokens.is_empty() && self.tokens.iter().all(|token| *token == Token::Star)
    }

    /// How many tokens the pattern has (a class, an escaped byte, `*`, `?`
    /// or a byte each count one): matching a text of n bytes takes at most
    /// about tokens() × (n + 1) steps.
    ///
    /// A run of consecutive `*` counts as one token.
    ///
    /// ```
    /// use meridian::glob::Pattern;
    /// assert_eq!(Pattern::new(b"a*b").tokens(), 3);
    /// assert_eq!(Pattern::new(b"[abc]x").tokens(), 2);
    /// assert_eq!(Pattern::new(b"\\*").tokens(), 1);
    /// assert_eq!(Pattern::new(b"**").tokens(), 1);
    /// assert_eq!(Pattern::new(b"").tokens(), 0);
    /// ```
    pub fn tokens(&self) -> usize {
        self.tokens.len()
    }
}

/// Whether `text` matches the glob `pattern` (Redis's rules: `*`, `?`, `[...]` with ranges and `^`, `\` escapes).
///
/// See the [module documentation](self) for the exact rules. Any bytes are
/// accepted for both arguments; the answer is always a plain `bool`. This is
/// `Pattern::new(pattern).matches(text)`: to match one pattern against many
/// texts, build the [`Pattern`] once instead.
///
/// ```
/// use meridian::glob::matches;
/// assert!(matches(b"h?llo", b"hello"));
/// assert!(matches(b"h[^e]llo", b"hallo"));
/// assert!(!matches(b"h[a-b]llo", b"hello"));
/// assert!(matches(b"user:*", b"user:42"));
/// ```
pub fn matches(pattern: &[u8], text: &[u8]) -> bool {
    Pattern::new(pattern).matches(text)
}

/// Whether `pattern` matches every byte string: true only when it is one or
/// more `*` and nothing else (the empty pattern matches only the empty
/// string), so a caller can skip matching altogether.
///
/// ```
/// use meridian::glob::matches_everything;
/// assert!(matches_everything(b"*"));
/// assert!(matches_everything(b"***"));
/// assert!(!matches_everything(b""));
/// assert!(!matches_everything(b"\\*"));
/// ```
pub fn matches_everything(pattern: &[u8]) -> bool {
    Pattern::new(pattern).matches_everything()
}

/// Reads the class whose body starts at `pattern[start]` (just after its `[`)
/// exactly as Redis does: the set of bytes it matches, negation applied, and
/// the pattern position after the class (after its closing `]`, or the end of
/// the pattern if it is never closed).
fn class(pattern: &[u8], start: usize) -> ([u64; 4], usize) {
    let mut set = [0u64; 4];
    let mut i = start;
    let negated = pattern.get(i) == Some(&b'^');
    if negated {
        i += 1;
    }
    let next = loop {
        match pattern.get(i..).unwrap_or(&[]) {
            // Never closed: the class ends with the pattern.
            [] => break pattern.len(),
            // `\x` is the byte `x`, even `]`, `-`, `^` or `\`.
            [b'\\', escaped, ..] => {
                insert_range(&mut set, *escaped, *escaped);
                i += 2;
            }
            [b']', ..] => break i + 1,
            // `lo-hi` with any byte as `hi`, even `]` or `\`; the ends are
            // swapped when reversed.
            [lo, b'-', hi, ..] => {
                let (lo, hi) = if lo <= hi { (*lo, *hi) } else { (*hi, *lo) };
                insert_range(&mut set, lo, hi);
                i += 3;
            }
            // Any other byte, including a lone `\` or a `-` that starts no
            // range, is itself.
            [literal, ..] => {
                insert_range(&mut set, *literal, *literal);
                i += 1;
            }
        }
    };
    if negated {
        for word in &mut set {
            *word = !*word;
        }
    }
    (set, next)
}

/// Adds the bytes `lo..=hi` (with `lo <= hi`) to `set`, a word at a time.
fn insert_range(set: &mut [u64; 4], lo: u8, hi: u8) {
    let (lo, hi) = (u32::from(lo), u32::from(hi));
    for (base, word) in (0u32..).step_by(64).zip(set.iter_mut()) {
        // The part of `lo..=hi` inside this word's bytes `base..base + 64`,
        // as bit positions `from..=to` in the word.
        let from = lo.max(base);
        let to = hi.min(base + 63);
        if from <= to {
            let width = to - from; // 0..=63
            *word |= (u64::MAX >> (63 - width)) << (from - base);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{matches, matches_everything, Pattern};
    use proptest::prelude::*;

    use old::{matches as old_matches, matches_everything as old_matches_everything};

    /// The matcher as it stood before patterns were compiled, copied verbatim
    /// (only its doc comments trimmed): it re-reads every class for each text
    /// byte, so it is slow on huge classes but its answers are the reference
    /// that [`Pattern`] must reproduce exactly.
    mod old {
        pub fn matches(pattern: &[u8], text: &[u8]) -> bool {
            // Cursors into the pattern and the text.
            let mut p = 0;
            let mut t = 0;
            // The backtrack point: the pattern position just after the most recent
            // run of `*`, and the text position that run is currently matched up to.
            // On a mismatch the star swallows one more byte and matching resumes.
            let mut star: Option<(usize, usize)> = None;

            while t < text.len() {
                if pattern.get(p) == Some(&b'*') {
                    while pattern.get(p) == Some(&b'*') {
                        p += 1;
                    }
                    if p == pattern.len() {
                        // A trailing star matches whatever is left.
                        return true;
                    }
                    star = Some((p, t));
                    continue;
                }
                if let Some(next) = step(pattern, p, text[t]) {
                    p = next;
                    t += 1;
                    continue;
                }
                match star {
                    Some((star_p, star_t)) => {
                        // Only the most recent star ever needs to grow: the pattern
                        // before it already matched a prefix of the text, and any
                        // longer match of an earlier star can be replayed by this one.
                        p = star_p;
                        t = star_t + 1;
                        star = Some((star_p, t));
                    }
                    None => return false,
                }
            }
            // The text is used up: what is left of the pattern must match the empty
            // string, and only stars do (every other token takes exactly one byte).
            pattern.get(p..).unwrap_or(&[]).iter().all(|&b| b == b'*')
        }

        pub fn matches_everything(pattern: &[u8]) -> bool {
            !pattern.is_empty() && pattern.iter().all(|&b| b == b'*')
        }

        /// Matches the single non-`*` token that starts at `pattern[p]` against the
        /// text byte `c`: the pattern position after the token if it matches, `None`
        /// if it does not or if the pattern is used up.
        fn step(pattern: &[u8], p: usize, c: u8) -> Option<usize> {
            match pattern.get(p..).unwrap_or(&[]) {
                [] => None,
                [b'?', ..] => Some(p + 1),
                [b'[', ..] => {
                    let (matched, next) = class(pattern, p + 1, c);
                    matched.then_some(next)
                }
                // An escaped byte matches itself, whatever it is.
                [b'\\', escaped, ..] => (*escaped == c).then_some(p + 2),
                // Any other byte, including a lone `\` at the very end.
                [literal, ..] => (*literal == c).then_some(p + 1),
            }
        }

        /// Matches the class whose body starts at `pattern[start]` (just after its
        /// `[`) against the byte `c`, reading it exactly as Redis does: whether `c`
        /// is in the class, and the pattern position after the class (after its
        /// closing `]`, or the end of the pattern if it is never closed).
        fn class(pattern: &[u8], start: usize, c: u8) -> (bool, usize) {
            let mut i = start;
            let negated = pattern.get(i) == Some(&b'^');
            if negated {
                i += 1;
            }
            let mut matched = false;
            let next = loop {
                match pattern.get(i..).unwrap_or(&[]) {
                    // Never closed: the class ends with the pattern.
                    [] => break pattern.len(),
                    // `\x` is the byte `x`, even `]`, `-`, `^` or `\`.
                    [b'\\', escaped, ..] => {
                        matched |= *escaped == c;
                        i += 2;
                    }
                    [b']', ..] => break i + 1,
                    // `lo-hi` with any byte as `hi`, even `]` or `\`; the ends are
                    // swapped when reversed.
                    [lo, b'-', hi, ..] => {
                        let (lo, hi) = if lo <= hi { (*lo, *hi) } else { (*hi, *lo) };
                        matched |= (lo..=hi).contains(&c);
                        i += 3;
                    }
                    // Any other byte, including a lone `\` or a `-` that starts no
                    // range, is itself.
                    [literal, ..] => {
                        matched |= *literal == c;
                        i += 1;
                    }
                }
            };
            (matched != negated, next)
        }
    }

    /// A transliteration of Redis 7's recursive `stringmatchlen_impl`
    /// (case-sensitive), kept as close to the C as Rust allows: cursors are
    /// indices, and reading at or past the end yields `0`, like the NUL that
    /// ends every Redis string. It is exponential on hostile patterns (Redis
    /// bounds it with `skipLongerMatches` and a nesting limit, neither of
    /// which changes an answer on short inputs), so it only serves as the
    /// oracle for short inputs.
    fn redis_reference(pattern: &[u8], text: &[u8]) -> bool {
        fn at(s: &[u8], i: usize) -> u8 {
            s.get(i).copied().unwrap_or(0)
        }
        fn go(pat: &[u8], mut p: usize, s: &[u8], mut t: usize) -> bool {
            // `plen` and `slen` are the remaining lengths, as in the C.
            let mut plen = pat.len() - p;
            let mut slen = s.len() - t;
            while plen > 0 && slen > 0 {
                match at(pat, p) {
                    b'*' => {
                        while plen > 0 && at(pat, p + 1) == b'*' {
                            p += 1;
                            plen -= 1;
                        }
                        if plen == 1 {
                            return true;
                        }
                        while slen > 0 {
                            if go(pat, p + 1, s, t) {
                                return true;
                            }
                            t += 1;
                            slen -= 1;
                        }
                        return false;
                    }
                    b'?' => {
                        t += 1;
                        slen -= 1;
                    }
                    b'[' => {
                        p += 1;
                        plen -= 1;
                        let not = at(pat, p) == b'^';
                        if not {
                            p += 1;
                            plen -= 1;
                        }
                        let mut matched = false;
                        loop {
                            if at(pat, p) == b'\\' && plen >= 2 {
                                p += 1;
                                plen -= 1;
                                if at(pat, p) == at(s, t) {
                                    matched = true;
                                }
                            } else if at(pat, p) == b']' {
                                break;
                            } else if plen == 0 {
                                p -= 1;
                                plen += 1;
                                break;
                            } else if plen >= 3 && at(pat, p + 1) == b'-' {
                                let mut start = at(pat, p);
                                let mut end = at(pat, p + 2);
                                let c = at(s, t);
                                if start > end {
                                    std::mem::swap(&mut start, &mut end);
                                }
                                p += 2;
                                plen -= 2;
                                if c >= start && c <= end {
                                    matched = true;
                                }
                            } else if at(pat, p) == at(s, t) {
                                matched = true;
                            }
                            p += 1;
                            plen -= 1;
                        }
                        if not {
                            matched = !matched;
                        }
                        if !matched {
                            return false;
                        }
                        t += 1;
                        slen -= 1;
                    }
                    first => {
                        let mut lit = first;
                        if first == b'\\' && plen >= 2 {
                            p += 1;
                            plen -= 1;
                            lit = at(pat, p);
                        }
                        if lit != at(s, t) {
                            return false;
                        }
                        t += 1;
                        slen -= 1;
                    }
                }
                p += 1;
                plen -= 1;
                if slen == 0 {
                    while at(pat, p) == b'*' {
                        p += 1;
                        plen -= 1;
                    }
                    break;
                }
            }
            plen == 0 && slen == 0
        }
        go(pattern, 0, text, 0)
    }

    /// What [`matches`] must answer: Redis's answer, except that a pattern of
    /// stars only also matches the empty string (see the module docs).
    fn expected(pattern: &[u8], text: &[u8]) -> bool {
        (text.is_empty() && pattern.iter().all(|&b| b == b'*')) || redis_reference(pattern, text)
    }

    /// A pattern that matches exactly `text`: every byte escaped.
    fn escape_all(text: &[u8]) -> Vec<u8> {
        text.iter().flat_map(|&b| [b'\\', b]).collect()
    }

    #[test]
    fn table() {
        #[rustfmt::skip]
        let cases: &[(&[u8], &[u8], bool)] = &[
            // Redis's documented examples.
            (b"h?llo", b"hello", true),
            (b"h?llo", b"hallo", true),
            (b"h?llo", b"hxllo", true),
            (b"h?llo", b"hllo", false),
            (b"h?llo", b"heello", false),
            (b"h*llo", b"hllo", true),
            (b"h*llo", b"heeeello", true),
            (b"h*llo", b"hello world", false),
            (b"h[ae]llo", b"hello", true),
            (b"h[ae]llo", b"hallo", true),
            (b"h[ae]llo", b"hillo", false),
            (b"h[^e]llo", b"hallo", true),
            (b"h[^e]llo", b"hbllo", true),
            (b"h[^e]llo", b"hello", false),
            (b"h[^e]llo", b"hllo", false),
            (b"h[a-b]llo", b"hallo", true),
            (b"h[a-b]llo", b"hbllo", true),
            (b"h[a-b]llo", b"hcllo", false),
            // Literals, case sensitivity.
            (b"hello", b"hello", true),
            (b"hello", b"Hello", false),
            (b"hello", b"hell", false),
            (b"hell", b"hello", false),
            // Stars.
            (b"*", b"", true),
            (b"**", b"", true),
            (b"*", b"anything", true),
            (b"a*", b"a", true),
            (b"a*", b"abc", true),
            (b"a*", b"ba", false),
            (b"*a", b"a", true),
            (b"*a", b"bca", true),
            (b"*a", b"ab", false),
            (b"a*b*c", b"abc", true),
            (b"a*b*c", b"axxbyyc", true),
            (b"a*b*c", b"axxbyy", false),
            (b"a*b", b"abab", true),
            (b"a*b", b"abba", false),
            (b"*ab*ab*", b"xabyab", true),
            (b"*ab*ab*", b"xaby", false),
            (b"a**b", b"ab", true),
            (b"user:*:name", b"user:42:name", true),
            (b"user:*:name", b"user:42:age", false),
            // Question marks.
            (b"?", b"", false),
            (b"?", b"x", true),
            (b"??", b"x", false),
            (b"*?", b"", false),
            (b"*?", b"x", true),
            (b"?*?", b"x", false),
            (b"?*?", b"xy", true),
            // Empty pattern and text.
            (b"", b"", true),
            (b"", b"a", false),
            (b"a", b"", false),
            (b"[a]", b"", false),
            (b"\\", b"", false),
            // Escapes outside classes.
            (b"\\*", b"*", true),
            (b"\\*", b"a", false),
            (b"\\*", b"", false),
            (b"\\?", b"?", true),
            (b"\\?", b"a", false),
            (b"\\[", b"[", true),
            (b"\\[a]", b"[a]", true),
            (b"\\[a]", b"a", false),
            (b"\\\\", b"\\", true),
            (b"\\a", b"a", true),
            (b"a\\*b", b"a*b", true),
            (b"a\\*b", b"axb", false),
            (b"*\\*", b"abc*", true),
            (b"*\\*", b"abc", false),
            // A trailing lone backslash is a literal backslash.
            (b"\\", b"\\", true),
            (b"\\", b"a", false),
            (b"a\\", b"a\\", true),
            (b"a\\", b"a", false),
            (b"*\\", b"xyz\\", true),
            (b"*\\", b"xyz", false),
            // Classes.
            (b"[abc]", b"b", true),
            (b"[abc]", b"d", false),
            (b"[abc]", b"ab", false),
            (b"[a-z]", b"m", true),
            (b"[a-z]", b"A", false),
            (b"[a-z0-9]", b"5", true),
            (b"[a-cx]", b"x", true),
            (b"[a-cx]", b"d", false),
            (b"[^a-c]", b"d", true),
            (b"[^a-c]", b"b", false),
            (b"[^a-c]", b"", false),
            (b"[?]", b"?", true),
            (b"[?]", b"a", false),
            (b"[*]", b"*", true),
            (b"[*]", b"a", false),
            (b"[*]", b"", false),
            (b"[[]", b"[", true),
            (b"[a^]", b"^", true),
            (b"[^^]", b"^", false),
            (b"[^^]", b"a", true),
            // A `-` that starts no range is itself: first, or right after a
            // range. (A `-` before the closing `]` makes a range with `]`:
            // see `[a-]` below.)
            (b"[-a]", b"-", true),
            (b"[-a]", b"a", true),
            (b"[a-c-e]", b"-", true),
            (b"[a-c-e]", b"e", true),
            (b"[a-c-e]", b"d", false),
            // Escapes inside classes.
            (b"[\\]]", b"]", true),
            (b"[\\]]", b"\\", false),
            (b"[\\]a]", b"a", true),
            (b"[\\\\]", b"\\", true),
            (b"[\\-]", b"-", true),
            (b"[\\^a]", b"^", true),
            (b"[^\\]]", b"]", false),
            (b"[^\\]]", b"x", true),
            (b"[\\a-z]", b"a", true),
            (b"[\\a-z]", b"-", true),
            (b"[\\a-z]", b"z", true),
            (b"[\\a-z]", b"m", false),
            (b"[a-\\]]", b"]", false),
            (b"[a-\\]]", b"_]", true),
            (b"[a-\\]]", b"\\]", true),
            // Empty classes: `]` right after `[` or `[^` closes them.
            (b"[]", b"]", false),
            (b"[]", b"", false),
            (b"[]a]", b"]a]", false),
            (b"[^]", b"x", true),
            (b"[^]", b"]", true),
            (b"[^]a]", b"xa]", true),
            (b"[^]a]", b"x", false),
            // Reversed ranges: the ends are swapped.
            (b"[z-a]", b"m", true),
            (b"[z-a]", b"a", true),
            (b"[z-a]", b"z", true),
            (b"[z-a]", b"A", false),
            (b"[^z-a]", b"m", false),
            (b"[^z-a]", b"A", true),
            (b"h[b-a]llo", b"hallo", true),
            // Unclosed classes run to the end of the pattern.
            (b"[", b"", false),
            (b"[", b"[", false),
            (b"[", b"a", false),
            (b"[^", b"a", true),
            (b"[^", b"^", true),
            (b"[^", b"", false),
            (b"[^", b"ab", false),
            (b"[ab", b"a", true),
            (b"[ab", b"b", true),
            (b"[ab", b"c", false),
            (b"[ab", b"ab", false),
            (b"[^ab", b"c", true),
            (b"[^ab", b"a", false),
            (b"x[a", b"xa", true),
            (b"[a*", b"*", true),
            (b"[a*", b"ab", false),
            (b"[a-", b"a", true),
            (b"[a-", b"-", true),
            (b"[a-", b"b", false),
            (b"[a-c", b"b", true),
            (b"[a-c", b"d", false),
            (b"[a\\", b"\\", true),
            (b"[a\\", b"a", true),
            (b"[\\", b"\\", true),
            (b"[\\", b"a", false),
            // `[a-]` is the range `]`..=`a`, and the class is then unclosed.
            (b"[a-]", b"-", false),
            (b"[a-]", b"]", true),
            (b"[a-]", b"_", true),
            (b"[a-]", b"a", true),
            (b"[a-]", b"b", false),
            (b"[a-]x", b"ax", false),
            (b"[a-]x", b"x", true),
            // Non-UTF-8 bytes are plain bytes.
            (b"\xff", b"\xff", true),
            (b"\xff", b"\xfe", false),
            (b"?", b"\xff", true),
            (b"*\xc3", b"abc\xc3", true),
            (b"?", b"\xc3\xa9", false),
            (b"??", b"\xc3\xa9", true),
            (b"[\x80-\xff]", b"\x90", true),
            (b"[\x80-\xff]", b"a", false),
            (b"[\xff-\x80]", b"\x90", true),
            (b"[^\x80-\xff]", b"a", true),
            // Unsigned comparison (x86-64 Redis, with signed `char`, differs
            // on this mixed range only).
            (b"[a-\xff]", b"\x90", true),
            (b"[a-\xff]", b"A", false),
            (b"\\\xff", b"\xff", true),
            (b"a\x00b", b"a\x00b", true),
            (b"a\x00b", b"a", false),
            (b"[\x00]", b"\x00", true),
            (b"*", b"\x00\xff", true),
        ];
        for &(pattern, text, want) in cases {
            assert_eq!(
                matches(pattern, text),
                want,
                "matches({:?}, {:?})",
                pattern.escape_ascii().to_string(),
                text.escape_ascii().to_string(),
            );
            // The table itself is checked against the Redis transliteration.
            assert_eq!(
                expected(pattern, text),
                want,
                "reference({:?}, {:?})",
                pattern.escape_ascii().to_string(),
                text.escape_ascii().to_string(),
            );
        }
    }

    #[test]
    fn matches_everything_only_for_stars() {
        assert!(matches_everything(b"*"));
        assert!(matches_everything(b"**"));
        assert!(matches_everything(b"*****"));
        assert!(!matches_everything(b""));
        assert!(!matches_everything(b"?"));
        assert!(!matches_everything(b"*?"));
        assert!(!matches_everything(b"*a"));
        assert!(!matches_everything(b"\\*"));
        assert!(!matches_everything(b"[*]"));
        assert!(!matches_everything(b"[^]"));
        for p in [&b"*"[..], b"**", b"***"] {
            for t in [&b""[..], b"a", b"\xff\x00", b"*?[]\\"] {
                assert!(matches(p, t));
            }
        }
    }

    #[test]
    fn pathological_patterns_finish() {
        // Exponential matchers never return on these.
        let text = vec![b'a'; 10_000];
        let mut pattern = b"a*".repeat(50);
        pattern.push(b'b');
        assert!(!matches(&pattern, &text));

        let pattern = b"*a".repeat(100);
        assert!(matches(&pattern, &text));
        let mut pattern = b"*a".repeat(100);
        pattern.extend_from_slice(b"*b");
        assert!(!matches(&pattern, &text));

        let mut pattern = b"*?".repeat(100);
        pattern.extend_from_slice(b"[^a]");
        assert!(!matches(&pattern, &text));

        let mut pattern = b"*[a-z]".repeat(100);
        pattern.extend_from_slice(b"*\\*");
        assert!(!matches(&pattern, &text));
    }

    #[test]
    fn malformed_patterns_never_panic() {
        let endings: &[&[u8]] = &[
            b"[", b"[^", b"[a-", b"[a-\\", b"[\\", b"\\", b"[^\\", b"[]", b"[^]", b"[a-]", b"-",
            b"*[", b"*\\",
        ];
        let texts: &[&[u8]] = &[b"", b"a", b"[", b"\\", b"]", b"\xff", b"a\xffb"];
        for ending in endings {
            for prefix in [&b""[..], b"a", b"*", b"?"] {
                let pattern = [prefix, ending].concat();
                for text in texts {
                    let _ = matches(&pattern, text);
                }
            }
        }
    }

    #[test]
    fn texts_of_a_length_no_match_can_have_are_refused_early_and_rightly() {
        let p = Pattern::new(b"a?[bc]");
        assert!(!p.matches(b"ab") && p.matches(b"axc") && !p.matches(b"axcd"));
        let star = Pattern::new(b"a*[bc]");
        assert!(!star.matches(b"a") && star.matches(b"ab") && star.matches(b"axxxc"));
        assert!(Pattern::new(b"").matches(b"") && !Pattern::new(b"").matches(b"a"));
        assert!(Pattern::new(b"**").matches(b""));
    }

    #[test]
    fn tokens_counts() {
        let cases: &[(&[u8], usize)] = &[
            (b"", 0),
            (b"a*b", 3),
            (b"[abc]x", 2),
            (b"\\*", 1),
            (b"**", 1),
            (b"a***b**", 4),
            (b"?", 1),
            (b"\\", 1),
            (b"a\\", 2),
            (b"[", 1),
            (b"[^", 1),
            (b"[]", 1),
            (b"[]]", 2),
            (b"[a-]x", 1),
            (b"[a-\\]]x", 3),
            (b"[\\]]", 1),
            (b"h[^e]l?o*", 6),
        ];
        for &(pattern, want) in cases {
            assert_eq!(
                Pattern::new(pattern).tokens(),
                want,
                "tokens({:?})",
                pattern.escape_ascii().to_string(),
            );
        }
    }

    #[test]
    fn pattern_is_reusable_and_comparable() {
        let pattern = Pattern::new(b"k[0-9]*");
        assert!(pattern.matches(b"k1"));
        assert!(pattern.matches(b"k9zz"));
        assert!(!pattern.matches(b"kz"));
        assert!(pattern.matches(b"k1"));
        assert_eq!(pattern.clone(), pattern);
        // Merged stars and equivalent classes read the same.
        assert_eq!(Pattern::new(b"a**b"), Pattern::new(b"a*b"));
        assert_eq!(Pattern::new(b"[a-c]"), Pattern::new(b"[cba]"));
        assert_eq!(Pattern::new(b"[c-a]"), Pattern::new(b"[a-c]"));
        assert_ne!(Pattern::new(b"[a]"), Pattern::new(b"a"));
        assert_ne!(Pattern::new(b"\\*"), Pattern::new(b"*"));
        assert!(Pattern::new(b"**").matches_everything());
        assert!(!Pattern::new(b"").matches_everything());
        assert!(!format!("{pattern:?}").is_empty());
    }

    #[test]
    fn class_sets_cover_every_byte_edge() {
        // Ranges that start, end or straddle the 64-byte words of the set.
        let edges = [
            0u8, 1, 62, 63, 64, 65, 126, 127, 128, 129, 190, 191, 192, 193, 254, 255,
        ];
        for &lo in &edges {
            for &hi in &edges {
                let pattern = [b'[', lo, b'-', hi, b']'];
                let pattern = Pattern::new(&pattern);
                let (min, max) = (lo.min(hi), lo.max(hi));
                for c in 0..=255u8 {
                    assert_eq!(
                        pattern.matches(&[c]),
                        (min..=max).contains(&c),
                        "{lo}-{hi} on {c}"
                    );
                }
            }
        }
        for c in 0..=255u8 {
            let text = [c];
            assert!(!Pattern::new(b"[]").matches(&text));
            assert!(Pattern::new(b"[^]").matches(&text));
            assert!(Pattern::new(&[b'[', b'\\', c, b']']).matches(&text));
            for pattern in [[b'[', c, b']'], [b'[', b'^', c], [b'[', c, b'-']] {
                for d in 0..=255u8 {
                    assert_eq!(
                        Pattern::new(&pattern).matches(&[d]),
                        old_matches(&pattern, &[d])
                    );
                }
            }
        }
    }

    #[test]
    fn huge_class_finishes() {
        // Before patterns were compiled, this re-read the 100,000-byte class
        // for every text byte a star let it try: about 10^9 steps.
        // `\]`, `a-c`, `^-f`, `y`, `z`: never `q` or `x`.
        let body = b"\\]a-c^-fyz".repeat(10_000);
        assert_eq!(body.len(), 100_000);
        let mut pattern = b"*[".to_vec();
        pattern.extend_from_slice(&body);
        pattern.extend_from_slice(b"]x");
        let compiled = Pattern::new(&pattern);
        assert_eq!(compiled.tokens(), 3);

        let mut text = vec![b'q'; 10_000];
        assert!(!compiled.matches(&text));
        assert!(!matches(&pattern, &text));
        text.extend_from_slice(b"bx");
        assert!(compiled.matches(&text));
        assert!(matches(&pattern, &text));
        text.truncate(10_000);
        text.extend_from_slice(b"qx");
        assert!(!compiled.matches(&text));

        // The same class, negated, and many times over.
        pattern.insert(2, b'^');
        let compiled = Pattern::new(&pattern);
        assert!(compiled.matches(&text));
        let many = [&b"*["[..], &body[..1_000], b"]"].concat().repeat(100);
        let compiled = Pattern::new(&many);
        assert_eq!(compiled.tokens(), 200);
        assert!(!compiled.matches(&[b'q'; 10_000]));
        assert!(compiled.matches(&[b'b'; 10_000]));
    }

    /// Bytes the generated patterns are made of: every special byte and two
    /// plain ones.
    const PATTERN_BYTES: &[u8] = b"ab*?[]^-\\";
    /// Bytes the generated texts are made of.
    const TEXT_BYTES: &[u8] = b"ab]-\\^";

    fn bytes_from(alphabet: &'static [u8], max_len: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(proptest::sample::select(alphabet), 0..=max_len)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn agrees_with_redis(
            pattern in bytes_from(PATTERN_BYTES, 8),
            text in bytes_from(TEXT_BYTES, 8),
        ) {
            prop_assert_eq!(matches(&pattern, &text), expected(&pattern, &text));
        }

        #[test]
        fn agrees_with_redis_on_any_bytes(
            pattern in proptest::collection::vec(any::<u8>(), 0..=8),
            text in proptest::collection::vec(any::<u8>(), 0..=8),
        ) {
            prop_assert_eq!(matches(&pattern, &text), expected(&pattern, &text));
        }

        #[test]
        fn agrees_with_old_matcher(
            pattern in bytes_from(PATTERN_BYTES, 12),
            text in bytes_from(TEXT_BYTES, 16),
        ) {
            let compiled = Pattern::new(&pattern);
            prop_assert_eq!(compiled.matches(&text), old_matches(&pattern, &text));
            prop_assert_eq!(matches(&pattern, &text), old_matches(&pattern, &text));
            prop_assert_eq!(compiled.matches_everything(), old_matches_everything(&pattern));
            prop_assert!(compiled.tokens() <= pattern.len());
        }

        #[test]
        fn agrees_with_old_matcher_on_any_bytes(
            pattern in proptest::collection::vec(any::<u8>(), 0..=16),
            text in proptest::collection::vec(any::<u8>(), 0..=16),
        ) {
            let compiled = Pattern::new(&pattern);
            prop_assert_eq!(compiled.matches(&text), old_matches(&pattern, &text));
            prop_assert_eq!(compiled.matches_everything(), old_matches_everything(&pattern));
            prop_assert!(compiled.tokens() <= pattern.len());
        }

        #[test]
        fn agrees_with_old_matcher_on_single_bytes(
            pattern in proptest::collection::vec(any::<u8>(), 0..=24),
        ) {
            // Every byte, against every (short) pattern: exercises every bit
            // of every class set.
            let compiled = Pattern::new(&pattern);
            for c in 0..=255u8 {
                prop_assert_eq!(compiled.matches(&[c]), old_matches(&pattern, &[c]));
            }
        }

        #[test]
        fn agrees_with_old_matcher_on_class_heavy_patterns(
            pattern in bytes_from(b"[]^-\\*?az\xff", 24),
            text in bytes_from(b"]^-\\az\xff", 12),
        ) {
            prop_assert_eq!(Pattern::new(&pattern).matches(&text), old_matches(&pattern, &text));
        }

        #[test]
        fn escaped_text_matches_only_itself(
            text in bytes_from(PATTERN_BYTES, 8),
            other in bytes_from(PATTERN_BYTES, 8),
        ) {
            let pattern = escape_all(&text);
            prop_assert!(matches(&pattern, &text));
            prop_assert_eq!(matches(&pattern, &other), text == other);
        }

        #[test]
        fn stars_around_escaped_text_find_it(
            needle in bytes_from(PATTERN_BYTES, 4),
            before in bytes_from(TEXT_BYTES, 6),
            after in bytes_from(TEXT_BYTES, 6),
        ) {
            let mut pattern = b"*".to_vec();
            pattern.extend(escape_all(&needle));
            pattern.push(b'*');
            let text = [&before[..], &needle[..], &after[..]].concat();
            prop_assert!(matches(&pattern, &text));
        }
    }
}
