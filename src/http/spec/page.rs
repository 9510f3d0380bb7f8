//! `GET /docs`: the OpenAPI document as one plain HTML page, rendered here from the document
//! itself, so it cannot disagree with `/openapi.json` and needs nothing from the network.

use std::fmt::Write;

use serde_json::Value;

use super::METHODS;

pub fn render(doc: &Value) -> String {
    let mut out = String::with_capacity(64 << 10);
    let title = text(&doc["info"]["title"]);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} API</title><style>{STYLE}</style></head><body>"
    );
    let _ = write!(
        out,
        "<h1>{title} API <small>{} &middot; OpenAPI {}</small></h1><p>The machine-readable document: <a href=\"/openapi.json\">/openapi.json</a>.</p>",
        text(&doc["info"]["version"]),
        text(&doc["openapi"])
    );
    out.push_str(&markdown(doc["info"]["description"].as_str().unwrap_or_default()));
    contents(&mut out, doc);
    security(&mut out, doc);
    for tag in tags(doc) {
        let _ = write!(out, "<h2 id=\"tag-{0}\">{0}</h2>", esc(&tag));
        for (method, path, op) in operations(doc).filter(|(_, _, op)| op_tag(op) == tag) {
            operation(&mut out, method, path, op);
        }
    }
    schemas(&mut out, doc);
    out.push_str("</body></html>");
    out
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#222}\
code{background:#f3f3f3;padding:0 .2em}table{border-collapse:collapse;margin:.4rem 0}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left;vertical-align:top}\
.op{border-top:1px solid #ccc;padding:.5rem 0}.m{font-weight:bold;text-transform:uppercase;display:inline-block;min-width:4.5em}\
.get{color:#06c}.post{color:#080}.put,.patch{color:#a60}.delete{color:#c00}small{color:#777;font-weight:normal}";

fn operations(doc: &Value) -> impl Iterator<Item = (&'static str, &str, &Value)> {
    doc["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(path, item)| METHODS.iter().filter_map(move |m| item.get(*m).map(|op| (*m, path.as_str(), op))))
}

fn op_tag(op: &Value) -> String {
    op["tags"][0].as_str().unwrap_or("other").to_string()
}

fn tags(doc: &Value) -> Vec<String> {
    let mut tags: Vec<String> =
        doc["tags"].as_array().into_iter().flatten().filter_map(|t| t["name"].as_str().map(String::from)).collect();
    for (_, _, op) in operations(doc) {
        if !tags.contains(&op_tag(op)) {
            tags.push(op_tag(op));
        }
    }
    tags
}

fn contents(out: &mut String, doc: &Value) {
    out.push_str("<h2>Operations</h2><table>");
    for tag in tags(doc) {
        let _ = write!(out, "<tr><th colspan=\"2\"><a href=\"#tag-{0}\">{0}</a></th></tr>", esc(&tag));
        for (method, path, op) in operations(doc).filter(|(_, _, op)| op_tag(op) == tag) {
            let _ = write!(
                out,
                "<tr><td><a href=\"#{}\"><span class=\"m {method}\">{method}</span> <code>{}</code></a></td><td>{}</td></tr>",
                anchor(op),
                esc(path),
                markdown_inline(op["summary"].as_str().unwrap_or_default())
            );
        }
    }
    out.push_str("</table>");
}

fn security(out: &mut String, doc: &Value) {
    out.push_str("<h2 id=\"security\">Authentication</h2><table><tr><th>scheme</th><th>how</th><th></th></tr>");
    for (name, scheme) in doc["components"]["securitySchemes"].as_object().into_iter().flatten() {
        let how = match scheme["type"].as_str() {
            Some("http") => "<code>Authorization: Bearer &lt;token&gt;</code>".to_string(),
            Some("apiKey") => format!("header <code>{}</code>", text(&scheme["name"])),
            _ => String::new(),
        };
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td>{how}</td><td>{}</td></tr>",
            esc(name),
            markdown_inline(scheme["description"].as_str().unwrap_or_default())
        );
    }
    out.push_str("</table>");
}

fn anchor(op: &Value) -> String {
    format!("op-{}", esc(op["operationId"].as_str().unwrap_or_default()))
}

fn operation(out: &mut String, method: &str, path: &str, op: &Value) {
    let _ = write!(
        out,
        "<div class=\"op\" id=\"{}\"><h3><span class=\"m {method}\">{method}</span> <code>{}</code> <small>{}</small></h3>",
        anchor(op),
        esc(path),
        text(&op["operationId"])
    );
    for key in ["summary", "description"] {
        if let Some(t) = op[key].as_str() {
            out.push_str(&markdown(t));
        }
    }
    let auth: Vec<String> = op["security"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|a| a.keys().map(|k| format!("<a href=\"#security\"><code>{}</code></a>", esc(k))))
        .collect();
    let auth = if auth.is_empty() { "none".to_string() } else { auth.join(" or ") };
    let _ = write!(out, "<p>Authentication: {auth}</p>");
    if let Some(params) = op["parameters"].as_array() {
        out.push_str("<table><tr><th>parameter</th><th>in</th><th>schema</th><th></th></tr>");
        for p in params {
            let required = if p["required"] == true { " (required)" } else { "" };
            let _ = write!(
                out,
                "<tr><td><code>{}</code>{required}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                text(&p["name"]),
                text(&p["in"]),
                schema_summary(&p["schema"]),
                markdown_inline(p["description"].as_str().unwrap_or_default())
            );
        }
        out.push_str("</table>");
    }
    if let Some(body) = op.get("requestBody") {
        let required = if body["required"] == true { "" } else { " (optional)" };
        for (media, content) in body["content"].as_object().into_iter().flatten() {
            let _ = write!(
                out,
                "<p>Request body{required}: <code>{}</code> {}</p>",
                esc(media),
                schema_summary(&content["schema"])
            );
        }
    }
    out.push_str("<table><tr><th>status</th><th></th><th>body</th></tr>");
    for (status, response) in op["responses"].as_object().into_iter().flatten() {
        let bodies: Vec<String> = response["content"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(media, c)| format!("<code>{}</code> {}", esc(media), schema_summary(&c["schema"])))
            .collect();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(status),
            markdown_inline(response["description"].as_str().unwrap_or_default()),
            bodies.join("<br>")
        );
    }
    out.push_str("</table></div>");
}

fn schemas(out: &mut String, doc: &Value) {
    out.push_str("<h2 id=\"schemas\">Schemas</h2>");
    for (name, schema) in doc["components"]["schemas"].as_object().into_iter().flatten() {
        let _ = write!(out, "<h3 id=\"schema-{0}\">{0}</h3>", esc(name));
        if let Some(d) = schema["description"].as_str() {
            out.push_str(&markdown(d));
        }
        let Some(props) = schema["properties"].as_object() else {
            let _ = write!(out, "<p>{}</p>", schema_summary(schema));
            continue;
        };
        let required: Vec<&str> =
            schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        out.push_str("<table><tr><th>field</th><th>schema</th><th></th></tr>");
        for (field, s) in props {
            let mark = if required.contains(&field.as_str()) { " (required)" } else { "" };
            let _ = write!(
                out,
                "<tr><td><code>{}</code>{mark}</td><td>{}</td><td>{}</td></tr>",
                esc(field),
                schema_summary(s),
                markdown_inline(s["description"].as_str().unwrap_or_default())
            );
        }
        out.push_str("</table>");
    }
}

/// A one-line account of a schema: its type (a link for a named schema), format, bounds.
fn schema_summary(s: &Value) -> String {
    if let Some(r) = s["$ref"].as_str() {
        let name = esc(r.rsplit('/').next().unwrap_or(r));
        return format!("<a href=\"#schema-{name}\">{name}</a>");
    }
    if let Some(alternatives) = s["oneOf"].as_array().or(s["anyOf"].as_array()) {
        return alternatives.iter().map(schema_summary).collect::<Vec<_>>().join(" | ");
    }
    let mut parts = Vec::new();
    let types: Vec<&str> = match &s["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    for t in &types {
        parts.push(match *t {
            "array" => format!("array of {}", schema_summary(&s["items"])),
            other => esc(other),
        });
    }
    let mut line = if parts.is_empty() { "any".to_string() } else { parts.join(" | ") };
    if let Some(f) = s["format"].as_str() {
        let _ = write!(line, " ({})", esc(f));
    }
    if let Some(values) = s["enum"].as_array() {
        let values: Vec<String> = values.iter().map(|v| format!("<code>{}</code>", esc(&v.to_string()))).collect();
        let _ = write!(line, ": {}", values.join(", "));
    }
    for (key, word) in
        [("minimum", "&ge;"), ("maximum", "&le;"), ("minLength", "length &ge;"), ("maxLength", "length &le;")]
    {
        if let Some(n) = s[key].as_number() {
            let _ = write!(line, ", {word} {n}");
        }
    }
    line
}

fn text(v: &Value) -> String {
    esc(v.as_str().unwrap_or_default())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The little markdown the document uses: paragraphs, `- ` lists, `code` and **bold**.
fn markdown(s: &str) -> String {
    let mut out = String::new();
    let mut in_list = false;
    for block in s.split("\n\n") {
        for line in block.lines() {
            if let Some(item) = line.strip_prefix("- ") {
                if !in_list {
                    out.push_str("<ul>");
                    in_list = true;
                }
                let _ = write!(out, "<li>{}</li>", markdown_inline(item));
            } else {
                if in_list {
                    out.push_str("</ul>");
                    in_list = false;
                }
                let _ = write!(out, "<p>{}</p>", markdown_inline(line));
            }
        }
    }
    if in_list {
        out.push_str("</ul>");
    }
    out
}

fn markdown_inline(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in esc(s).split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            let mut bold = false;
            for (j, piece) in part.split("**").enumerate() {
                if j > 0 {
                    out.push_str(if bold { "</b>" } else { "<b>" });
                    bold = !bold;
                }
                out.push_str(piece);
            }
            if bold {
                out.push_str("</b>");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_the_document_is_escaped() {
        assert_eq!(markdown_inline("a `<b>` & **c**"), "a <code>&lt;b&gt;</code> &amp; <b>c</b>");
    }
}
