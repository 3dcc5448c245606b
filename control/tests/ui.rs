//! The dashboard: every embedded file is served with a strict
//! Content-Security-Policy, and nothing in the page needs what that policy
//! forbids (inline script or style, inline event handlers, eval). The
//! browser test (tests/tests/dashboard.rs) shows it working in Chromium.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::{Backend, Harness};
use cost_control::ui::{ASSETS, CSP};

fn text(name: &str) -> String {
    let (_, _, bytes) = ASSETS.iter().find(|(n, _, _)| *n == name).unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn the_page_and_its_files_are_served_with_a_strict_policy() {
    let h = Harness::new(Backend::Sqlite).await;
    for path in ["/", "/ui"] {
        let (s, headers, _) = h.raw("GET", path, None, None).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(headers["location"], "/ui/");
    }
    let mut paths: Vec<(String, &str)> = ASSETS
        .iter()
        .map(|(n, ct, _)| (format!("/ui/{n}"), *ct))
        .collect();
    paths.push(("/ui/".into(), "text/html; charset=utf-8"));
    for (path, content_type) in &paths {
        let (s, headers, body) = h.raw("GET", path, None, None).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        assert!(!body.is_empty(), "{path}");
        assert_eq!(headers["content-type"], *content_type, "{path}");
        assert_eq!(headers["content-security-policy"], CSP, "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
    }
    let (s, headers, _) = h.raw("GET", "/ui/nope.js", None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(headers["content-security-policy"], CSP);

    // The policy: this origin only, nothing inline, no eval, no framing,
    // no form submissions.
    let directives: Vec<(&str, &str)> = CSP
        .split(';')
        .map(|d| d.trim().split_once(' ').unwrap())
        .collect();
    let of = |name: &str| directives.iter().find(|(n, _)| *n == name).unwrap().1;
    assert_eq!(of("default-src"), "'self'");
    assert_eq!(of("script-src"), "'self'");
    assert_eq!(of("style-src"), "'self'");
    assert_eq!(of("form-action"), "'none'");
    assert_eq!(of("frame-ancestors"), "'none'");
    for weak in ["unsafe", "data:", "*", "http", "nonce", "sha256"] {
        assert!(!CSP.contains(weak), "the policy allows {weak}: {CSP}");
    }
}

#[test]
fn every_file_in_control_ui_is_embedded_and_every_reference_resolves() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let mut embedded: Vec<String> = ASSETS.iter().map(|(n, _, _)| n.to_string()).collect();
    on_disk.sort();
    embedded.sort();
    assert_eq!(on_disk, embedded, "control/ui and ui::ASSETS differ");
    for (name, _, bytes) in ASSETS {
        let disk = std::fs::read(dir.join(name)).unwrap();
        assert_eq!(&disk, bytes, "{name}");
    }
    // Every /ui/ URL in the page and every module a module imports.
    let html = text("index.html");
    let mut refs: Vec<String> = html
        .split("\"/ui/")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_owned())
        .collect();
    for (name, _, _) in ASSETS.iter().filter(|(n, _, _)| n.ends_with(".js")) {
        for line in text(name).lines().filter(|l| l.starts_with("import ")) {
            let module = line.split("from './").nth(1).unwrap();
            refs.push(module.split('\'').next().unwrap().to_owned());
        }
    }
    assert!(refs.len() > 10, "{refs:?}");
    for r in refs {
        assert!(
            ASSETS.iter().any(|(n, _, _)| *n == r),
            "{r} is referenced but not embedded"
        );
    }
}

#[test]
fn the_page_has_no_inline_script_style_or_handler() {
    let html = text("index.html");
    let lower = html.to_lowercase();
    let scripts: Vec<&str> = lower.split("<script").skip(1).collect();
    assert_eq!(scripts.len(), 1, "one module script");
    for s in scripts {
        let (tag, rest) = s.split_once('>').unwrap();
        assert!(
            tag.contains("src=\"/ui/"),
            "a script without src: <script{tag}>"
        );
        assert!(
            rest.starts_with("</script>"),
            "an inline script body: {rest:.80}"
        );
    }
    for bad in ["<style", " style=", "javascript:"] {
        assert!(!lower.contains(bad), "index.html has {bad}");
    }
    let handler = |s: &str| {
        s.match_indices(" on").any(|(i, _)| {
            let rest = &s[i + 3..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase())
                .collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        })
    };
    assert!(!handler(&lower), "an inline event handler in index.html");
    // Scripts build the page with DOM calls: nothing that parses markup or
    // code from strings, and no style attributes (CSP blocks them).
    for (name, _, _) in ASSETS.iter().filter(|(n, _, _)| n.ends_with(".js")) {
        let js = text(name);
        for bad in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "Function(",
            "setTimeout('",
            "setTimeout(\"",
            "cssText",
            "style:",
            "'style'",
            "\"style\"",
            "javascript:",
        ] {
            assert!(!js.contains(bad), "{name} uses {bad}");
        }
        // An attribute object's key (`{ onclick: ... }`), or setAttribute.
        let key = js.match_indices("on").any(|(i, _)| {
            let before = js[..i].trim_end();
            let rest = &js[i + 2..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase())
                .collect();
            (before.ends_with('{') || before.ends_with(','))
                && !name.is_empty()
                && rest[name.len()..].trim_start().starts_with(':')
        });
        assert!(!key, "{name} sets an on... attribute");
        assert!(
            !js.contains("setAttribute('on") && !js.contains("setAttribute(\"on"),
            "{name}"
        );
    }
}
