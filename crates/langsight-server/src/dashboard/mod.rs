//! The dashboard: static files compiled into the binary and served at `/` (no Node.js at run time, no build
//! step). `index.html` loads `app.js` as an ES module (the shell: router, header, theme); it imports the
//! component layer (`ui/*.js`: DOM helper, API client, table, chart, formatting) and one module per page
//! (`ui/pages/*.js`) — the browser resolves the imports, so what is in this table is exactly what runs.
//!
//! A strict Content-Security-Policy allows only our own script and style (no inline code, no eval), so even a
//! string that slipped past the pages' text-only rendering could not run. Every asset carries an ETag (a hash
//! of its bytes) and `Cache-Control: no-cache`: browsers keep a copy and revalidate it with one cheap 304,
//! so a new binary's files are never mixed with an old one's cached modules.
//!
//! A client that accepts gzip gets each file gzip-compressed: compressed once, on first use, and kept (about
//! a quarter of the bytes). The compressed form has its own ETag (`"…-gz"`), either tag revalidates, and every
//! response says `Vary: Accept-Encoding` so a shared cache keeps the two apart.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// One file of the dashboard: its URL path (without the leading `/`), bytes and content type.
struct Asset {
    path: &'static str,
    body: &'static [u8],
    content_type: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";

/// Declares the served files; `include_bytes!` paths are relative to this file, and equal to the URL path.
macro_rules! assets {
    ($($path:literal => $ct:expr),* $(,)?) => {
        &[$(Asset { path: $path, body: include_bytes!($path), content_type: $ct }),*]
    };
}

static ASSETS: &[Asset] = assets![
    "index.html" => "text/html; charset=utf-8",
    "app.js" => JS,
    "app.css" => "text/css; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
    "ui/dom.js" => JS,
    "ui/api.js" => JS,
    "ui/format.js" => JS,
    "ui/chart.js" => JS,
    "ui/table.js" => JS,
    "ui/graph.js" => JS,
    "ui/access.js" => JS,
    "ui/pages/overview.js" => JS,
    "ui/pages/sessions.js" => JS,
    "ui/pages/session.js" => JS,
    "ui/pages/live.js" => JS,
    "ui/pages/servers.js" => JS,
    "ui/pages/server.js" => JS,
    "ui/pages/alerts.js" => JS,
    "ui/pages/costs.js" => JS,
    "ui/pages/slos.js" => JS,
    "ui/pages/agents.js" => JS,
    "ui/pages/agent.js" => JS,
    "ui/pages/lineage.js" => JS,
    "ui/pages/security.js" => JS,
    "ui/pages/settings.js" => JS,
    "ui/pages/projects.js" => JS,
    "ui/pages/keys.js" => JS,
    "ui/pages/welcome.js" => JS,
];

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The ETag of each asset, in `ASSETS` order: computed once, on first use.
fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| ASSETS.iter().map(|a| format!("\"{}\"", &hex::encode(Sha256::digest(a.body))[..20])).collect())
}

/// An asset's gzip-compressed bytes and their ETag.
type Gzipped = Option<(Vec<u8>, String)>;

/// Each asset gzip-compressed (with its ETag), in `ASSETS` order, or `None` where that would not be
/// smaller: compressed once, on first use.
fn gzipped() -> &'static [Gzipped] {
    use flate2::write::GzEncoder;
    use std::io::Write;
    static GZ: OnceLock<Vec<Gzipped>> = OnceLock::new();
    GZ.get_or_init(|| {
        ASSETS
            .iter()
            .zip(etags())
            .map(|(a, tag)| {
                let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::best());
                // Writing to a Vec cannot fail; if it ever did, the asset is served uncompressed.
                let bytes = gz.write_all(a.body).and_then(|()| gz.finish()).ok()?;
                (bytes.len() < a.body.len()).then(|| (bytes, format!("{}-gz\"", tag.trim_end_matches('"'))))
            })
            .collect()
    })
}

/// Whether the request's `Accept-Encoding` takes gzip (`gzip` or `*`, unless refused with `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut verdict = None;
    for value in headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()) {
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let refused = parts.any(|p| {
                p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()).is_some_and(|q| q <= 0.0)
            });
            match coding.as_str() {
                "gzip" | "x-gzip" => verdict = Some(!refused),
                "*" if verdict.is_none() => verdict = Some(!refused),
                _ => {}
            }
        }
    }
    verdict.unwrap_or(false)
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.path == path) else {
        return (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "Not Found")
            .into_response();
    };
    let asset = &ASSETS[i];
    let gz = if accepts_gzip(headers) { gzipped()[i].as_ref() } else { None };
    let (body, etag): (&[u8], &str) = match gz {
        Some((bytes, tag)) => (bytes, tag),
        None => (asset.body, etags()[i].as_str()),
    };
    // Either form's tag revalidates (the bytes behind both are the same file); a proxy may have weakened it.
    let tags = [etags()[i].as_str(), gzipped()[i].as_ref().map_or("", |(_, t)| t.as_str())];
    let fresh = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || tags.iter().any(|x| !x.is_empty() && t == *x))
    });
    let common = [
        (header::CONTENT_TYPE, asset.content_type),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-cache"),
        (header::VARY, "Accept-Encoding"),
        (header::ETAG, etag),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    let mut response = (common, body).into_response();
    if gz.is_some() {
        response.headers_mut().insert(header::CONTENT_ENCODING, axum::http::HeaderValue::from_static("gzip"));
    }
    response
}

pub async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// The dashboard's routes: the page (also behind the invitation link), its entry module, style, icon and
/// every module under `/ui/`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        // The invitation link of `POST /api/users/invite`: the dashboard's page, which sets the password.
        .route("/accept-invite", get(index))
        .route("/app.js", get(|h: HeaderMap| async move { serve("app.js", &h) }))
        .route("/app.css", get(|h: HeaderMap| async move { serve("app.css", &h) }))
        .route("/favicon.svg", get(|h: HeaderMap| async move { serve("favicon.svg", &h) }))
        .route(
            "/ui/{*file}",
            get(|axum::extract::Path(file): axum::extract::Path<String>, h: HeaderMap| async move {
                serve(&format!("ui/{file}"), &h)
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    /// The issue's budget: every asset together, gzipped, stays within 300 KB.
    #[test]
    fn all_assets_fit_the_gzipped_budget() {
        let mut total = 0;
        for a in ASSETS {
            let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(a.body).unwrap();
            total += gz.finish().unwrap().len();
        }
        println!("dashboard assets: {} files, {total} bytes gzipped", ASSETS.len());
        assert!(total <= 300 * 1024, "dashboard assets are {total} bytes gzipped (budget 300 KB)");
    }

    /// Every module a file imports is in the table (a missing entry would be a 404 only a browser notices),
    /// and no module uses the escape hatches the CSP forbids anyway.
    #[test]
    fn every_import_is_served_and_no_module_writes_html() {
        for a in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let text = std::str::from_utf8(a.body).unwrap();
            let dir = a.path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            // Static (`from '…'`) and dynamic (`import('…')`) imports.
            let specs = ["from '", "import('"]
                .iter()
                .flat_map(|m| text.match_indices(m).map(move |(i, _)| &text[i + m.len()..]));
            for rest in specs {
                let spec = &rest[..rest.find('\'').unwrap()];
                let mut parts: Vec<&str> = if dir.is_empty() { vec![] } else { dir.split('/').collect() };
                for seg in spec.split('/') {
                    match seg {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        s => parts.push(s),
                    }
                }
                let target = parts.join("/");
                assert!(ASSETS.iter().any(|x| x.path == target), "{} imports {spec}, which is not served", a.path);
            }
            for banned in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"] {
                assert!(!text.contains(banned), "{} uses {banned}", a.path);
            }
        }
    }

    /// The README describes what is served: the number of files (it said "three static files" when there
    /// were 28) and that they go out gzip-compressed.
    #[test]
    fn the_readme_counts_the_served_files() {
        let readme = include_str!("../../../../README.md");
        let section = &readme[readme.find("## Dashboard").unwrap()..];
        let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
        let flat = section.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains(&format!("{} files", ASSETS.len())), "README's dashboard section: {flat}");
        assert!(flat.contains("gzip"), "{flat}");
        assert!(!flat.contains("three static files"), "{flat}");
    }

    /// What the page itself names (script, style, icon, preloaded modules) is served too.
    #[test]
    fn the_page_names_only_served_files() {
        let page = std::str::from_utf8(ASSETS[0].body).unwrap();
        let named: Vec<&str> = page.split(['"']).filter(|s| s.starts_with('/') && s.len() > 1).collect();
        assert!(named.len() >= 4, "{named:?}");
        for path in named {
            assert!(ASSETS.iter().any(|a| a.path == &path[1..]), "index.html names {path}, which is not served");
        }
    }

    #[test]
    fn assets_revalidate_with_their_etag() {
        let first = serve("ui/dom.js", &HeaderMap::new());
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers()[header::ETAG].clone();
        assert!(first.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/javascript"));
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(serve("ui/dom.js", &h).status(), StatusCode::NOT_MODIFIED);
        assert_eq!(serve("ui/../mod.rs", &HeaderMap::new()).status(), StatusCode::NOT_FOUND);
    }

    async fn body_of(r: Response) -> Vec<u8> {
        axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap().to_vec()
    }

    fn with(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k, v.parse().unwrap());
        }
        h
    }

    /// Every asset, asked for with gzip accepted, arrives compressed (decompressing to the file itself), with
    /// `Vary: Accept-Encoding` and its own ETag that revalidates; without gzip, or with gzip refused, the
    /// plain file. The compressed total is what the budget test counts.
    #[tokio::test]
    async fn assets_are_served_gzipped_to_clients_that_accept_it() {
        use flate2::read::GzDecoder;
        use std::io::Read;
        let (mut plain_total, mut gz_total) = (0, 0);
        for a in ASSETS {
            let gz = serve(a.path, &with(&[(header::ACCEPT_ENCODING, "br, gzip;q=0.8, deflate")]));
            assert_eq!(gz.status(), StatusCode::OK, "{}", a.path);
            assert_eq!(gz.headers()[header::VARY], "Accept-Encoding", "{}", a.path);
            let compressed = gz.headers().get(header::CONTENT_ENCODING).is_some();
            let etag = gz.headers()[header::ETAG].to_str().unwrap().to_string();
            let bytes = body_of(gz).await;
            if a.body.len() > 1024 {
                assert!(compressed, "{} ({} bytes) is sent uncompressed", a.path, a.body.len());
            }
            if compressed {
                let mut out = Vec::new();
                GzDecoder::new(&bytes[..]).read_to_end(&mut out).unwrap();
                assert_eq!(out, a.body, "{}: the gzip body is the file", a.path);
                assert!(etag.ends_with("-gz\""), "{}: {etag}", a.path);
            }
            gz_total += bytes.len();
            plain_total += a.body.len();
            // The compressed form's tag revalidates it.
            let again = serve(a.path, &with(&[(header::ACCEPT_ENCODING, "gzip"), (header::IF_NONE_MATCH, &etag)]));
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{}", a.path);
            assert_eq!(again.headers()[header::VARY], "Accept-Encoding");
        }
        assert!(gz_total * 2 < plain_total, "gzip should at least halve the assets: {gz_total} of {plain_total}");
        for refused in ["", "identity", "gzip;q=0", "br", "*;q=0", "gzip;q=0, *"] {
            let h = if refused.is_empty() { HeaderMap::new() } else { with(&[(header::ACCEPT_ENCODING, refused)]) };
            let r = serve("app.js", &h);
            assert!(r.headers().get(header::CONTENT_ENCODING).is_none(), "Accept-Encoding: {refused:?}");
            assert_eq!(r.headers()[header::VARY], "Accept-Encoding");
            let etag = r.headers()[header::ETAG].to_str().unwrap().to_string();
            assert!(!etag.ends_with("-gz\""), "{refused:?}: {etag}");
            assert_eq!(body_of(r).await, ASSETS[1].body, "{refused:?}");
        }
        assert!(serve("app.js", &with(&[(header::ACCEPT_ENCODING, "*")]))
            .headers()
            .get(header::CONTENT_ENCODING)
            .is_some());
        // A plain copy's tag still revalidates a client that now accepts gzip (and the other way round).
        let plain_tag = serve("app.js", &HeaderMap::new()).headers()[header::ETAG].to_str().unwrap().to_string();
        let r = serve("app.js", &with(&[(header::ACCEPT_ENCODING, "gzip"), (header::IF_NONE_MATCH, &plain_tag)]));
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        let weak = format!("W/{plain_tag}");
        assert_eq!(serve("app.js", &with(&[(header::IF_NONE_MATCH, &weak)])).status(), StatusCode::NOT_MODIFIED);
    }
}
