//! The committed `docs/openapi.json`, which the daemon serves, is the document
//! generated from the API types; regenerate it with
//! `CUTOVER_BLESS=1 cargo test -p cutover-server --test openapi`.

use std::path::PathBuf;

const REGENERATE: &str = "CUTOVER_BLESS=1 cargo test -p cutover-server --test openapi";

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

#[test]
fn the_committed_openapi_document_is_the_generated_one() {
    let generated = cutover_server::openapi::document();
    let path = committed_path();
    if std::env::var_os("CUTOVER_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        eprintln!("wrote {}", path.display());
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed == generated {
        return;
    }
    let line = committed
        .lines()
        .zip(generated.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
    panic!(
        "{} differs from the document generated from the API types, first at line {}:\n  \
         committed: {}\n  generated: {}\nregenerate it with `{REGENERATE}` and commit it",
        path.display(),
        line + 1,
        committed.lines().nth(line).unwrap_or("(end of file)"),
        generated.lines().nth(line).unwrap_or("(end of file)"),
    );
}

#[test]
fn the_document_describes_every_endpoint_and_the_token() {
    let doc: serde_json::Value =
        serde_json::from_str(&cutover_server::openapi::document()).unwrap();
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
    for (path, method) in [
        ("/api/v1/status", "get"),
        ("/api/v1/apps", "get"),
        ("/api/v1/deploy", "post"),
        ("/api/v1/promote", "post"),
        ("/api/v1/abort", "post"),
        ("/api/v1/rollback", "post"),
        ("/api/v1/config", "get"),
        ("/api/v1/runs", "get"),
        ("/api/v1/runs/{id}", "get"),
        ("/api/v1/runs/{id}/events", "get"),
        ("/api/v1/runs/{id}/measurements", "get"),
        ("/api/v1/runs/{id}/receipts", "get"),
        ("/api/v1/runs/{id}/receipts/{name}", "get"),
        ("/api/v1/events", "get"),
        ("/api/v1/openapi.json", "get"),
        ("/metrics", "get"),
    ] {
        let operation = &doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        let secured = operation["security"].is_array();
        assert_eq!(secured, method == "post", "{method} {path}: security");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["token"]["scheme"],
        "bearer"
    );
    for schema in [
        "RunEvent",
        "Event",
        "Phase",
        "ErrorBody",
        "Status",
        "AppInfo",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "no schema {schema}"
        );
    }
}
