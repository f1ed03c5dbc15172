//! The path an edge rule is matched against: the request path the way a backend will read it,
//! not the way the client spelled it.
//!
//! Envoy's `normalize_path` leaves `..;`, case and encoded slashes alone, and backends read those
//! differently (Tomcat and Spring treat `/a/..;/b` as `/b`, some decode `%2F`). A rule checked
//! against the raw path is then a rule against one spelling of a resource. So every path is
//! brought to one normal form first (RFC 3986 sections 6.2.2 and 5.2.4):
//!
//! 1. the query and fragment are cut off;
//! 2. percent-encodings of unreserved characters are decoded (`%2e` is `.`, `%41` is `A`), every
//!    other one gets upper-case hex digits, and bytes that may not stand bare in a path (non-ASCII,
//!    space, `"<>[\]^`{|}`) are percent-encoded, so each byte has one spelling;
//! 3. `;` path parameters are cut from every segment (`..;x=1` is `..`);
//! 4. empty segments are dropped (`//a` is `/a`) and dot segments resolved (`/a/./b/../c` is
//!    `/a/c`).
//!
//! What has no single reading is refused, and the edge denies it: a path not starting with `/`,
//! invalid percent-encoding, an encoded slash or backslash (`%2F`, `%5C`: one backend decodes them
//! into separators, another keeps them in a segment, so no form is right for both) or a bare
//! backslash, a control character (bare or encoded, NUL included), encoded bytes that are not
//! UTF-8, and a `..` that climbs above the root (a client that writes one is probing; some
//! servers clamp it at the root, some answer 400, some resolve it against the file system).
//!
//! Letter case is kept: whether it matters is each rule's choice (`EdgeRoute`).

use std::fmt;

/// Why a path has no normal form. Safe to show to the caller: it says what, never echoes the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path does not start with '/'")]
    NotAbsolute,
    #[error("the path holds an invalid percent-encoding")]
    BadPercentEncoding,
    #[error("the path holds an encoded slash or backslash (%2F, %5C) or a backslash")]
    AmbiguousSeparator,
    #[error("the path holds a control character")]
    ControlCharacter,
    #[error("the path's percent-encoded bytes are not UTF-8")]
    NotUtf8,
    #[error("the path climbs above the root with '..'")]
    AboveRoot,
}

/// A request path in normal form (see the module docs): starts with `/`, no query, no `;`
/// parameters, no dot or empty segments, every byte spelt one way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalPath(String);

impl NormalPath {
    /// The normal form of `raw`, a request target's path (a query or fragment after it is
    /// ignored).
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        let path = raw.split(['?', '#']).next().unwrap_or_default();
        if !path.starts_with('/') {
            return Err(PathError::NotAbsolute);
        }
        check_decoded(path.as_bytes())?;
        let spelt = canonical_spelling(path.as_bytes())?;
        remove_dot_segments(&spelt).map(Self)
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NormalPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The value of the two hex digits at `bytes[at..at + 2]`.
fn hex_pair(bytes: &[u8], at: usize) -> Result<u8, PathError> {
    let digit = |i: usize| {
        bytes
            .get(i)
            .and_then(|&b| char::from(b).to_digit(16))
            .ok_or(PathError::BadPercentEncoding)
    };
    // Two hex digits always fit in a byte.
    Ok(u8::try_from(digit(at)? * 16 + digit(at + 1)?).unwrap_or(u8::MAX))
}

/// Refuses what the fully decoded path would hold and a backend might act on: control
/// characters (NUL, CR, LF, DEL...), slashes or backslashes that were encoded, bare
/// backslashes, and bytes that are not UTF-8.
fn check_decoded(path: &[u8]) -> Result<(), PathError> {
    let mut decoded = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        let byte = match path[i] {
            b'%' => {
                let value = hex_pair(path, i + 1)?;
                if matches!(value, b'/' | b'\\') {
                    return Err(PathError::AmbiguousSeparator);
                }
                i += 3;
                value
            }
            b'\\' => return Err(PathError::AmbiguousSeparator),
            other => {
                i += 1;
                other
            }
        };
        if byte.is_ascii_control() {
            return Err(PathError::ControlCharacter);
        }
        decoded.push(byte);
    }
    std::str::from_utf8(&decoded)
        .map(|_| ())
        .map_err(|_| PathError::NotUtf8)
}

/// RFC 3986 section 2.3: the characters that mean the same encoded or not.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// What may stand bare in a path besides unreserved characters: `/`, the sub-delimiters, `:`
/// and `@` (RFC 3986 section 3.3). Encoding any of them changes the meaning, so they are kept
/// as written either way.
fn may_stand_bare(byte: u8) -> bool {
    is_unreserved(byte) || b"/!$&'()*+,;=:@".contains(&byte)
}

/// Each byte spelt one way: unreserved characters bare, everything that is not allowed bare
/// percent-encoded, and percent-encodings in upper-case hex. `path` has passed
/// [`check_decoded`].
fn canonical_spelling(path: &[u8]) -> Result<String, PathError> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(path.len());
    let encode = |out: &mut String, byte: u8| {
        out.push('%');
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    };
    let mut i = 0;
    while i < path.len() {
        let byte = path[i];
        if byte == b'%' {
            let value = hex_pair(path, i + 1)?;
            if is_unreserved(value) {
                out.push(char::from(value));
            } else {
                encode(&mut out, value);
            }
            i += 3;
        } else {
            if may_stand_bare(byte) {
                out.push(char::from(byte));
            } else {
                encode(&mut out, byte);
            }
            i += 1;
        }
    }
    Ok(out)
}

/// RFC 3986 section 5.2.4 on segments whose `;` parameters are cut off, with empty segments
/// dropped. A trailing slash stays, as does one left by a final `.` or `..` (`/a/b/..` is
/// `/a/`). `path` starts with `/`.
fn remove_dot_segments(path: &str) -> Result<String, PathError> {
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for raw in path[1..].split('/') {
        let segment = raw.split(';').next().unwrap_or_default();
        trailing_slash = matches!(segment, "" | "." | "..");
        match segment {
            "" | "." => {}
            ".." => {
                kept.pop().ok_or(PathError::AboveRoot)?;
            }
            name => kept.push(name),
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &kept {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || kept.is_empty() {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(raw: &str) -> String {
        NormalPath::parse(raw)
            .unwrap_or_else(|e| panic!("{raw:?}: {e}"))
            .0
    }

    fn refused(raw: &str) -> PathError {
        NormalPath::parse(raw).expect_err(raw)
    }

    #[test]
    fn plain_paths_are_kept() {
        for path in [
            "/",
            "/orders",
            "/orders/",
            "/orders/7/items",
            "/a:b@c/!$&'()*+,=x",
        ] {
            assert_eq!(normal(path), path);
        }
    }

    #[test]
    fn query_and_fragment_are_cut_off() {
        assert_eq!(normal("/orders?x=/admin"), "/orders");
        assert_eq!(normal("/orders#/admin"), "/orders");
        assert_eq!(normal("/orders/..?/x"), "/");
        // A decoded `?` is data, not the start of a query.
        assert_eq!(normal("/a%3Fb"), "/a%3Fb");
    }

    #[test]
    fn dot_segments_are_resolved() {
        assert_eq!(normal("/orders/../admin/x"), "/admin/x");
        assert_eq!(normal("/./admin/x"), "/admin/x");
        assert_eq!(normal("/a/b/./c/../d"), "/a/b/d");
        assert_eq!(normal("/a/b/."), "/a/b/");
        assert_eq!(normal("/a/b/.."), "/a/");
        assert_eq!(normal("/a/.."), "/");
        // Names that merely contain dots are names.
        assert_eq!(normal("/a/.../b/..x/.y"), "/a/.../b/..x/.y");
    }

    #[test]
    fn climbing_above_the_root_is_refused() {
        for path in [
            "/..",
            "/../admin",
            "/a/../../admin",
            "/%2e%2e/admin",
            "/..;/admin",
        ] {
            assert_eq!(refused(path), PathError::AboveRoot, "{path}");
        }
    }

    #[test]
    fn empty_segments_are_merged() {
        assert_eq!(normal("//admin/x"), "/admin/x");
        assert_eq!(normal("/admin//x///"), "/admin/x/");
        assert_eq!(normal("////"), "/");
    }

    #[test]
    fn path_parameters_are_cut_from_every_segment() {
        assert_eq!(normal("/orders/..;/admin/x"), "/admin/x");
        assert_eq!(normal("/orders/..;x=1/admin/x"), "/admin/x");
        assert_eq!(normal("/admin;jsessionid=1/x;v=2"), "/admin/x");
        assert_eq!(normal("/;x/admin"), "/admin");
        assert_eq!(normal("/orders/.;x/admin"), "/orders/admin");
        // An encoded `;` is data: Tomcat and Spring cut parameters before decoding.
        assert_eq!(normal("/orders/..%3bx/admin"), "/orders/..%3Bx/admin");
    }

    #[test]
    fn unreserved_characters_are_decoded() {
        assert_eq!(normal("/orders/%2e%2e/admin/x"), "/admin/x");
        assert_eq!(normal("/orders/%2E%2E/admin"), "/admin");
        assert_eq!(normal("/orders/.%2e/admin"), "/admin");
        assert_eq!(normal("/%61dmin/%7Euser/%2D%5F"), "/admin/~user/-_");
    }

    #[test]
    fn other_encodings_get_upper_case_hex_and_bare_oddities_are_encoded() {
        assert_eq!(normal("/a%3ab%40c%25"), "/a%3Ab%40c%25");
        assert_eq!(normal("/caf%c3%a9"), "/caf%C3%A9");
        assert_eq!(normal("/café"), "/caf%C3%A9");
        assert_eq!(
            normal("/a b/{x}|\"<>^`[]"),
            "/a%20b/%7Bx%7D%7C%22%3C%3E%5E%60%5B%5D"
        );
        // Double encoding is decoded once only.
        assert_eq!(normal("/%252e%252e/admin"), "/%252e%252e/admin");
    }

    #[test]
    fn encoded_and_back_slashes_are_refused() {
        for path in [
            "/orders/..%2Fadmin/x",
            "/orders/..%2fadmin",
            "/orders%2F..%2F..%2Fadmin",
            "/orders/..%5Cadmin",
            "/orders/..%5cadmin",
            "/orders\\..\\admin",
            "/orders/..\\admin",
        ] {
            assert_eq!(refused(path), PathError::AmbiguousSeparator, "{path}");
        }
    }

    #[test]
    fn control_characters_are_refused_bare_or_encoded() {
        for path in [
            "/a%00b", "/a\0b", "/a%0Ab", "/a\nb", "/a%0d", "/a\tb", "/a%7F", "/a\u{7f}",
        ] {
            assert_eq!(refused(path), PathError::ControlCharacter, "{path:?}");
        }
    }

    #[test]
    fn invalid_percent_encoding_is_refused() {
        for path in ["/a%", "/a%2", "/a%zz", "/a%g0/b", "/%%32%65"] {
            assert_eq!(refused(path), PathError::BadPercentEncoding, "{path}");
        }
    }

    #[test]
    fn encoded_bytes_must_be_utf8() {
        for path in ["/a%FF", "/a%C3", "/a%C3%28", "/a%ED%A0%80"] {
            assert_eq!(refused(path), PathError::NotUtf8, "{path}");
        }
    }

    #[test]
    fn only_absolute_paths_have_a_normal_form() {
        for path in ["", "*", "orders", "?/admin", "http://h/admin"] {
            assert_eq!(refused(path), PathError::NotAbsolute, "{path}");
        }
    }

    #[test]
    fn case_is_kept() {
        assert_eq!(normal("/ADMIN/x"), "/ADMIN/x");
    }

    #[test]
    fn the_normal_form_is_a_fixed_point() {
        for path in [
            "/orders/..;x=1/admin/x",
            "/caf%c3%a9/./a b/%7euser",
            "//a/b/../c/.",
            "/x/%252e/%c3%a9",
        ] {
            let once = normal(path);
            assert_eq!(normal(&once), once, "{path}");
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn every_path_is_refused_or_normal_and_stable(raw in "/[a-zA-Z0-9./;%~=_\\-\\\\?é]{0,40}") {
            if let Ok(path) = NormalPath::parse(&raw) {
                let text = path.as_str();
                prop_assert!(text.starts_with('/'));
                prop_assert!(!text.contains("//"));
                prop_assert!(!text.contains(';') && !text.contains('?') && !text.contains('\\'));
                prop_assert!(text.split('/').all(|s| s != "." && s != ".."));
                prop_assert_eq!(NormalPath::parse(text).unwrap(), path.clone());
            }
        }
    }
}
