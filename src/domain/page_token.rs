//! Opaque `page_token`s for keyset paging: where the previous page ended (a cursor), bound to
//! the filters it was issued for, so a token cannot be replayed with other filters. Base64url of
//! `v1\n<filter>\n<cursor>`; each listing says what its filter and cursor hold.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::domain::error::{Error, Result};

const VERSION: &str = "v1";

/// The token for a page ending at `cursor`, under `filter` (which holds no newline).
pub fn encode(filter: &str, cursor: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{VERSION}\n{filter}\n{cursor}"))
}

/// The cursor a token carries (`None` for the empty token: the first page). A token issued
/// under other filters, or not issued by `encode` at all, is INVALID_ARGUMENT on `page_token`.
pub fn decode(token: &str, filter: &str) -> Result<Option<String>> {
    if token.is_empty() {
        return Ok(None);
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| malformed())?;
    let text = String::from_utf8(bytes).map_err(|_| malformed())?;
    let mut parts = text.splitn(3, '\n');
    let (Some(VERSION), Some(bound), Some(cursor)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    if bound != filter {
        return Err(Error::invalid(
            "page_token",
            "was issued for different filters; keep the filters the same while paging",
        ));
    }
    Ok(Some(cursor.to_owned()))
}

/// The error for a token that does not parse.
pub fn malformed() -> Error {
    Error::invalid(
        "page_token",
        "is malformed: pass next_page_token from the previous response unchanged",
    )
}
