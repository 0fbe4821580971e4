//! `GET /api/v1/docs`: the API document as a page to browse, rendered in
//! the browser from `/api/v1/openapi.json` by a small script served next
//! to it. Nothing is fetched from elsewhere (the server may have no
//! internet), and the page may run only its own script (CSP): every text
//! from the document is inserted as text, never as markup.

use axum::http::header;
use axum::response::IntoResponse;

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Caxton API</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1 { margin-bottom: 0.2rem; }
section { border-top: 1px solid #ddd; padding: 0.6rem 0; }
code.method { display: inline-block; min-width: 4.5rem; font-weight: 600; }
.get { color: #1a6; } .post { color: #26a; } .delete { color: #b33; }
details { margin: 0.3rem 0 0 4.9rem; } pre { background: #f6f6f6; padding: 0.5rem; overflow-x: auto; }
p.summary { margin: 0.2rem 0 0 4.9rem; color: #444; }
</style>
</head>
<body>
<h1>Caxton API</h1>
<p id="about">Loading <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>…</p>
<main id="operations"></main>
<script src="/api/v1/docs/app.js"></script>
</body>
</html>
"#;

const SCRIPT: &str = r#"'use strict';
// Renders the OpenAPI document: one section per operation, its summary,
// and its parameters, request body and responses on demand.
function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}
function block(title, value) {
  const details = el('details');
  details.appendChild(el('summary', title));
  details.appendChild(el('pre', JSON.stringify(value, null, 2)));
  return details;
}
fetch('/api/v1/openapi.json').then(r => r.json()).then(doc => {
  const about = document.getElementById('about');
  about.textContent = (doc.info.description || '') + ' Version ' + doc.info.version + '.';
  const main = document.getElementById('operations');
  for (const path of Object.keys(doc.paths).sort()) {
    for (const [method, op] of Object.entries(doc.paths[path])) {
      const section = el('section');
      const title = el('div');
      title.appendChild(el('code', method.toUpperCase(), 'method ' + method));
      title.appendChild(el('code', path));
      section.appendChild(title);
      if (op.summary) section.appendChild(el('p', op.summary, 'summary'));
      if (op.parameters) section.appendChild(block('Parameters', op.parameters));
      if (op.requestBody) section.appendChild(block('Request body', op.requestBody));
      if (op.responses) section.appendChild(block('Responses', op.responses));
      main.appendChild(section);
    }
  }
}).catch(e => { document.getElementById('about').textContent = 'Cannot load the document: ' + e; });
"#;

/// Only this server's own script and styles; no framing by other sites.
const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'";

/// The API document as a page to browse.
#[utoipa::path(get, path = "/api/v1/docs", tag = "operations", operation_id = "docs_page",
    responses((status = 200, description = "An HTML page", content_type = "text/html", body = String)))]
pub async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        PAGE,
    )
}

/// The script of the docs page.
#[utoipa::path(get, path = "/api/v1/docs/app.js", tag = "operations", operation_id = "docs_script",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript", body = String)))]
pub async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        SCRIPT,
    )
}
