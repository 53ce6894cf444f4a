//! Who may use the API: the daemon's token, made on its first start and kept in
//! `<state_dir>/token` (mode 0600), and the rule that every request that changes
//! something carries it as `Authorization: Bearer <token>`. Reads are open unless
//! `api.read_auth` says they need it too. An open read must name a loopback host
//! (`Host: 127.0.0.1:port`, `[::1]`, `localhost`): a web page whose name an
//! attacker rebinds to 127.0.0.1 sends its own name, and is refused.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq as _;

use crate::api::ApiError;

/// Random bytes in a token (shown as twice as many hex digits).
const TOKEN_BYTES: usize = 32;

/// The file name of the token in the state directory.
pub const TOKEN_FILE: &str = "token";

/// Where a new token is written before it is renamed to [`TOKEN_FILE`].
const TOKEN_PARTIAL_FILE: &str = "token.tmp";

/// Why the token could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token file could not be created, written or read.
    #[error("could not use the API token file {path}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The OS had no random bytes to give.
    #[error("could not get random bytes from the OS for the API token: {0}")]
    Random(getrandom::Error),
    /// The file holds something that is not a token (edited, or truncated).
    #[error(
        "{path} does not hold an API token ({TOKEN_BYTES} bytes as hex); delete it and \
         restart the daemon to make a new one"
    )]
    Malformed { path: PathBuf },
}

/// The daemon's API token.
pub struct Token {
    hex: String,
}

impl Token {
    /// Where the token of the daemon serving `state_dir` is.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(TOKEN_FILE)
    }

    /// The token in `state_dir`, made on the first call: random bytes from the OS,
    /// written to `token.tmp` created with mode 0600 (never readable by others,
    /// not even for a moment), synced, then renamed to `token`, so a crash leaves
    /// either no token or a whole one. A `token.tmp` left by a crash is removed.
    ///
    /// # Errors
    /// See [`TokenError`].
    pub fn load_or_create(state_dir: &Path) -> Result<Token, TokenError> {
        let path = Token::path(state_dir);
        let file_error = |path: &Path| {
            let path = path.to_owned();
            move |source| TokenError::File { path, source }
        };
        let partial = state_dir.join(TOKEN_PARTIAL_FILE);
        match std::fs::remove_file(&partial) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(file_error(&partial)(e));
            }
            _ => {}
        }
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                warn_if_readable_by_others(&path);
                Token::parse(text.trim()).ok_or(TokenError::Malformed { path })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let token = Token::random()?;
                write_whole(&partial, token.hex.as_bytes()).map_err(file_error(&partial))?;
                std::fs::rename(&partial, &path).map_err(file_error(&path))?;
                Ok(token)
            }
            Err(e) => Err(file_error(&path)(e)),
        }
    }

    fn random() -> Result<Token, TokenError> {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes).map_err(TokenError::Random)?;
        Ok(Token {
            hex: bytes.iter().map(|b| format!("{b:02x}")).collect(),
        })
    }

    fn parse(text: &str) -> Option<Token> {
        let well_formed =
            text.len() == 2 * TOKEN_BYTES && text.bytes().all(|b| b.is_ascii_hexdigit());
        well_formed.then(|| Token {
            hex: text.to_ascii_lowercase(),
        })
    }

    /// The token of the daemon serving `state_dir`, as its file holds it (never
    /// made here).
    ///
    /// # Errors
    /// In words: the file could not be read, or holds no token.
    pub(crate) fn read(state_dir: &Path) -> Result<Token, String> {
        let path = Token::path(state_dir);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("{} could not be read: {e}", path.display()))?;
        Token::parse(text.trim()).ok_or_else(|| format!("{} holds no token", path.display()))
    }

    /// The token's text, to present to the daemon it belongs to.
    pub(crate) fn as_str(&self) -> &str {
        &self.hex
    }

    /// Whether `presented` is this token, in time that does not depend on how
    /// much of it matches.
    pub(crate) fn matches(&self, presented: &str) -> bool {
        self.hex.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

/// Writes `bytes` to a new file at `path` (mode 0600) and syncs it to disk.
fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// A token file others may read (copied, or its mode changed) is still used, but
/// whoever runs the daemon should know.
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            file = %path.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "the API token file can be read by other users; `chmod 600` it, or delete it \
             and restart the daemon for a new token"
        );
    }
}

/// The API's rule of who may do what.
#[derive(Clone)]
pub(crate) struct Guard {
    token: Arc<Token>,
    /// Reads need the token too.
    read_auth: bool,
    /// Where the token is, for the message of a refusal.
    path: PathBuf,
}

impl Guard {
    pub(crate) fn new(token: Token, read_auth: bool, state_dir: &Path) -> Guard {
        Guard {
            token: Arc::new(token),
            read_auth,
            path: Token::path(state_dir),
        }
    }

    fn needs_token(&self, method: &Method) -> bool {
        self.read_auth || !matches!(*method, Method::GET | Method::HEAD)
    }

    /// `None` if the request may go on, else why not.
    fn check(&self, method: &Method, headers: &HeaderMap) -> Option<Refusal> {
        let presented = bearer(headers);
        if presented.is_some_and(|p| self.token.matches(p)) {
            return None;
        }
        if !self.needs_token(method) {
            return (!names_loopback(headers)).then_some(Refusal::Host);
        }
        match presented {
            Some(_) => Some(Refusal::Wrong),
            None => Some(Refusal::Missing),
        }
    }

    fn refuse(&self, refusal: Refusal) -> Response {
        let what = if self.read_auth {
            "every request"
        } else {
            "a request that changes something"
        };
        let (problem, challenge) = match refusal {
            Refusal::Missing => (
                format!("{what} needs the daemon's token, and this one has none"),
                r#"Bearer realm="cutover""#,
            ),
            Refusal::Wrong => (
                "the token does not match the daemon's".to_owned(),
                r#"Bearer realm="cutover", error="invalid_token""#,
            ),
            Refusal::Host => return refuse_host(),
        };
        let message = format!(
            "{problem}: send `Authorization: Bearer <token>` with the token in {} \
             (the CLI reads it from there, or from CUTOVER_TOKEN); nothing was changed",
            self.path.display()
        );
        let mut response =
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
        response
    }
}

enum Refusal {
    Missing,
    Wrong,
    /// A read without the token names a host that is not loopback.
    Host,
}

/// 421 for a read without the token that names a host other than loopback.
fn refuse_host() -> Response {
    ApiError::new(
        StatusCode::MISDIRECTED_REQUEST,
        "host_not_allowed",
        "a request without the daemon's token must name a loopback host in `Host`: \
         127.0.0.1 (or any 127.x.x.x), [::1] or localhost, with or without a port; \
         send `Authorization: Bearer <token>` to use another name",
    )
    .into_response()
}

/// Whether the `Host` header names this machine by loopback: an IP literal in
/// 127.0.0.0/8 or `[::1]`, or `localhost`, with or without a port. A missing or
/// unreadable header does not.
fn names_loopback(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((inside, "")) => inside,
            Some((inside, port)) if port.strip_prefix(':').is_some_and(is_port) => inside,
            _ => return false,
        },
        None => match host.split_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => host,
        },
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether `text` is a port number.
fn is_port(text: &str) -> bool {
    text.parse::<u16>().is_ok()
}

/// The token of an `Authorization: Bearer <token>` header, if there is one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Middleware: lets a request through when the [`Guard`] allows it, else answers
/// 401 before any handler runs, so nothing changes.
pub(crate) async fn require(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    match guard.check(request.method(), request.headers()) {
        None => next.run(request).await,
        Some(refusal) => guard.refuse(refusal),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(authorization).unwrap(),
        );
        h
    }

    #[test]
    fn the_token_is_made_once_with_mode_0600_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let made = Token::load_or_create(dir.path()).unwrap();
        assert_eq!(made.hex.len(), 64);
        assert!(made.hex.bytes().all(|b| b.is_ascii_hexdigit()));
        let file = std::fs::metadata(Token::path(dir.path())).unwrap();
        assert_eq!(file.permissions().mode() & 0o777, 0o600);
        let again = Token::load_or_create(dir.path()).unwrap();
        assert_eq!(again.hex, made.hex);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(Token::load_or_create(other.path()).unwrap().hex, made.hex);
    }

    #[test]
    fn a_token_half_written_by_a_crash_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        // A crash after creating the new token's file, before writing it.
        std::fs::write(dir.path().join(TOKEN_PARTIAL_FILE), "").unwrap();
        let made = Token::load_or_create(dir.path()).unwrap();
        assert!(!dir.path().join(TOKEN_PARTIAL_FILE).exists());
        let file = std::fs::metadata(Token::path(dir.path())).unwrap();
        assert_eq!(file.permissions().mode() & 0o777, 0o600);
        assert_eq!(Token::load_or_create(dir.path()).unwrap().hex, made.hex);
    }

    #[test]
    fn a_token_file_that_holds_no_token_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(Token::path(dir.path()), "not a token\n").unwrap();
        let e = Token::load_or_create(dir.path()).err().unwrap();
        assert!(matches!(e, TokenError::Malformed { .. }), "{e}");
        assert!(e.to_string().contains("delete it"), "{e}");
    }

    #[test]
    fn writes_need_the_token_and_reads_only_when_configured() {
        let dir = tempfile::tempdir().unwrap();
        let token = Token::load_or_create(dir.path()).unwrap();
        let good = format!("Bearer {}", token.hex);
        let open_reads = Guard::new(token, false, dir.path());
        let none = with_host(HeaderMap::new(), "127.0.0.1:1");
        assert!(open_reads.check(&Method::GET, &none).is_none());
        assert!(matches!(
            open_reads.check(&Method::POST, &none),
            Some(Refusal::Missing)
        ));
        let wrong = headers(&format!("Bearer {}", "0".repeat(64)));
        assert!(matches!(
            open_reads.check(&Method::POST, &wrong),
            Some(Refusal::Wrong)
        ));
        assert!(matches!(
            open_reads.check(&Method::POST, &headers("Basic abc")),
            Some(Refusal::Missing)
        ));
        assert!(open_reads.check(&Method::POST, &headers(&good)).is_none());
        assert!(
            open_reads
                .check(&Method::POST, &headers(&good.replace("Bearer", "bearer")))
                .is_none()
        );

        let token = Token::load_or_create(dir.path()).unwrap();
        let closed_reads = Guard::new(token, true, dir.path());
        assert!(matches!(
            closed_reads.check(&Method::GET, &none),
            Some(Refusal::Missing)
        ));
        assert!(closed_reads.check(&Method::GET, &headers(&good)).is_none());
    }

    fn with_host(mut h: HeaderMap, host: &str) -> HeaderMap {
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        h
    }

    #[test]
    fn reads_without_the_token_must_name_a_loopback_host() {
        let dir = tempfile::tempdir().unwrap();
        let token = Token::load_or_create(dir.path()).unwrap();
        let good = format!("Bearer {}", token.hex);
        let guard = Guard::new(token, false, dir.path());
        for host in [
            "127.0.0.1",
            "127.0.0.1:8080",
            "127.1.2.3:1",
            "[::1]",
            "[::1]:8080",
            "localhost",
            "LocalHost:80",
        ] {
            let h = with_host(HeaderMap::new(), host);
            assert!(guard.check(&Method::GET, &h).is_none(), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "10.0.0.1:80",
            "[::2]:80",
            "localhost:notaport",
            "[::1]x",
        ] {
            let h = with_host(HeaderMap::new(), host);
            assert!(
                matches!(guard.check(&Method::GET, &h), Some(Refusal::Host)),
                "{host}"
            );
            let with_token = with_host(headers(&good), host);
            assert!(guard.check(&Method::GET, &with_token).is_none(), "{host}");
            assert!(guard.check(&Method::POST, &with_token).is_none(), "{host}");
        }
        assert!(matches!(
            guard.check(&Method::GET, &HeaderMap::new()),
            Some(Refusal::Host)
        ));
    }

    #[test]
    fn only_the_whole_token_matches() {
        let token = Token::parse(&"ab".repeat(32)).unwrap();
        assert!(token.matches(&"ab".repeat(32)));
        assert!(!token.matches(&"ab".repeat(31)));
        assert!(!token.matches(&format!("{}ac", "ab".repeat(31))));
        assert!(!token.matches(""));
        assert!(Token::parse("abc").is_none());
        assert!(Token::parse(&"zz".repeat(32)).is_none());
    }
}
