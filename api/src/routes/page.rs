//! The live timeline page (`/`, `/app.js`, `/style.css`), embedded in the binary.

use axum::http::header;
use axum::response::IntoResponse;

/// `GET /`: the timeline page; no other site may frame it (clickjacking).
pub async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        include_str!("../../static/index.html"),
    )
}

/// `GET /app.js`: the page's script (an ES module).
pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../static/app.js"),
    )
}

/// `GET /style.css`: the page's styles.
pub async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../static/style.css"),
    )
}

#[cfg(test)]
mod tests {
    use agentflow_shared::event::EventKind;

    #[test]
    fn the_page_listens_to_every_event_type() {
        let script = include_str!("../../static/app.js");
        for name in EventKind::TYPE_NAMES {
            assert!(
                script.contains(&format!("\"{name}\"")),
                "app.js does not listen to {name}"
            );
        }
    }

    /// The key typed into the login form goes to `POST /api/v1/session` and nowhere else: the
    /// script uses no storage, and the field has no `name` (a native submit, should the script
    /// not run, sends nothing).
    #[test]
    fn the_page_keeps_no_key() {
        let script = include_str!("../../static/app.js");
        for storage in [
            "localStorage",
            "sessionStorage",
            "indexedDB",
            "document.cookie",
        ] {
            assert!(!script.contains(storage), "app.js uses {storage}");
        }
        let page = include_str!("../../static/index.html");
        let field = page
            .split("<input")
            .find(|tag| tag.contains("id=\"api-key\""))
            .and_then(|tag| tag.split('>').next())
            .expect("the key's field");
        assert!(field.contains("type=\"password\""), "{field}");
        assert!(!field.contains("name="), "{field}");
    }
}
