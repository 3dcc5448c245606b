//! Kong's engine for the bench: nginx + Kong's ngx_wasm_module + wasmtime
//! (built and cached by `scripts/kong-host.sh`), configured from the
//! repository's `kong/nginx.conf.template` rendered into a copy of our own:
//! the template's placeholders filled, and three edits that must each
//! apply exactly once, so that a change of the template fails the bench
//! instead of measuring something else:
//!
//! - `worker_processes 2;` → the bench's worker count (1 for the
//!   throughput configurations, pinned like Envoy's `--concurrency 1`);
//! - the access log off (Envoy writes none in the bench either);
//! - `location /` as the configuration needs it: the filter with its
//!   config, the same proxying without `proxy_wasm`, or an answer made by
//!   nginx itself (`return 200`, the ceiling, like Envoy's
//!   `direct_response`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// nginx refuses a config parameter of 4096 bytes or more; the filter
/// config is one parameter of `proxy_wasm`.
const MAX_FILTER_CONFIG: usize = 4000;

/// The nginx binary of Kong's engine, from `KONG_NGINX_BIN`, which
/// scripts/bench.sh sets to what `scripts/kong-host.sh` prints (that script
/// builds the host into its cache the first time, 8 to 17 minutes on 2
/// cores, then answers in a second).
pub fn nginx_bin() -> Result<PathBuf, String> {
    let path = std::env::var_os("KONG_NGINX_BIN").map(PathBuf::from).ok_or(
        "KONG_NGINX_BIN is not set: run the bench through `make bench`, or set KONG_NGINX_BIN=\"$(scripts/kong-host.sh)\"",
    )?;
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "KONG_NGINX_BIN={} does not exist: unset it and run `make bench`, or run `make kong-host`",
            path.display()
        ))
    }
}

/// What `location /` does.
#[derive(Debug, Clone)]
pub enum Location {
    /// The filter with this config (which needs `"host": "kong"`).
    Filter(serde_json::Value),
    /// The template's proxying without `proxy_wasm`.
    Plain,
    /// nginx answers 200 with this JSON body itself.
    Direct(String),
}

/// Everything a rendered `nginx.conf` depends on.
pub struct Setup<'a> {
    pub prefix: &'a Path,
    pub wasm: &'a Path,
    pub cache_config: &'a Path,
    pub listen: u16,
    pub demo: u16,
    pub workers: u32,
    pub location: &'a Location,
}

/// `template` (the text of `kong/nginx.conf.template`) rendered for `s`.
pub fn render(template: &str, s: &Setup<'_>) -> Result<String, String> {
    for p in [s.prefix, s.wasm, s.cache_config] {
        let text = p.display().to_string();
        if text.contains(['"', '\\', '$', '\'']) {
            return Err(format!("path unusable in nginx.conf: {text}"));
        }
    }
    let mut out = template.to_string();
    for (name, value) in [
        ("PREFIX", s.prefix.display().to_string()),
        ("WASM", s.wasm.display().to_string()),
        ("SHM_KV_SIZE", "64m".to_string()),
        (
            "WASMTIME_CACHE_CONFIG",
            s.cache_config.display().to_string(),
        ),
        ("LISTEN_PORT", s.listen.to_string()),
        ("DEMO_PORT", s.demo.to_string()),
        // The bench routes nothing: the second provider is the first.
        ("DEMO_B_PORT", s.demo.to_string()),
    ] {
        let placeholder = format!("@{name}@");
        if !out.contains(&placeholder) {
            return Err(format!("the template no longer contains {placeholder}"));
        }
        out = out.replace(&placeholder, &value);
    }
    out = replace_once(
        &out,
        "worker_processes 2;",
        &format!("worker_processes {};", s.workers),
    )?;
    let access_log = whole_line(&out, "access_log ")?;
    out = replace_once(&out, &access_log, "    access_log off;")?;
    let (start, end) = root_location(&out)?;
    let block = &out[start..end];
    let config = match s.location {
        Location::Filter(filter) => Some(quote(filter)?),
        Location::Plain | Location::Direct(_) => None,
    };
    let new_block = match s.location {
        Location::Filter(_) => block.to_string(),
        Location::Plain => replace_once(block, &whole_line(block, "proxy_wasm ")?, "")?,
        Location::Direct(body) => format!(
            "location / {{\n            default_type application/json;\n            return 200 '{body}';\n        }}"
        ),
    };
    let rendered = format!("{}{new_block}{}", &out[..start], &out[end..]);
    // The filter config goes in last: its text is never searched for
    // placeholders.
    let (before, after) = match &config {
        Some(_) => rendered
            .split_once("@FILTER_CONFIG@")
            .ok_or("the template's `location /` has no @FILTER_CONFIG@")?,
        None => (rendered.as_str(), ""),
    };
    if let Some(left) = placeholder_in(before).or_else(|| placeholder_in(after)) {
        return Err(format!("unreplaced placeholder {left} in the template"));
    }
    Ok(format!("{before}{}{after}", config.unwrap_or_default()))
}

/// `text` with `from` (which must occur exactly once) replaced by `to`.
fn replace_once(text: &str, from: &str, to: &str) -> Result<String, String> {
    match text.matches(from).count() {
        1 => Ok(text.replacen(from, to, 1)),
        n => Err(format!(
            "the template holds {n} times {:?} where the bench edits it once",
            from.trim()
        )),
    }
}

/// The one whole line (with its newline) whose text starts with `start`
/// after its indentation.
fn whole_line(text: &str, start: &str) -> Result<String, String> {
    let lines: Vec<&str> = text
        .split_inclusive('\n')
        .filter(|l| l.trim_start().starts_with(start))
        .collect();
    match lines.as_slice() {
        [one] => Ok(one.to_string()),
        _ => Err(format!(
            "the template holds {} lines starting with {start:?} where the bench expects one",
            lines.len()
        )),
    }
}

/// Byte range of the `location / { … }` block (no braces nest in it).
fn root_location(text: &str) -> Result<(usize, usize), String> {
    let head = "location / {";
    if text.matches(head).count() != 1 {
        return Err(format!("the template must hold one {head:?}"));
    }
    let start = text.find(head).unwrap_or(0);
    let len = text[start + head.len()..]
        .find('}')
        .ok_or("the template's `location /` has no end")?;
    Ok((start, start + head.len() + len + 1))
}

/// The filter config as the body of a single-quoted nginx string (the
/// e2e harness's quoting), refused when it is not for Kong or too long.
fn quote(filter: &serde_json::Value) -> Result<String, String> {
    if filter["host"] != "kong" {
        return Err(format!(
            "a filter config for Kong needs \"host\": \"kong\": {filter}"
        ));
    }
    let text = e2e::kong::quote_filter_config(filter);
    if text.len() >= MAX_FILTER_CONFIG {
        return Err(format!(
            "the filter config is {} bytes on one line; nginx refuses a parameter of 4096 or more",
            text.len()
        ));
    }
    Ok(text)
}

/// The first `@NAME@` (NAME of A-Z and _) in `s`: a piece between two
/// at signs made of those letters only.
fn placeholder_in(s: &str) -> Option<String> {
    let pieces: Vec<&str> = s.split('@').collect();
    pieces
        .get(1..pieces.len().saturating_sub(1))?
        .iter()
        .find(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_uppercase() || c == b'_'))
        .map(|p| format!("@{p}@"))
}

/// A wasmtime cache in `dir/wasmtime-cache` and its config file, which
/// `nginx.conf` names: wasmtime compiles the module in every worker at
/// start (seconds; more on a busy machine), and with the cache only the
/// first start after the `.wasm` changed compiles. nginx's workers drop
/// root for `nobody` and write the cache themselves, so every folder in
/// it is open to all, like /tmp (a folder made by root would leave them
/// compiling at every start).
pub fn wasmtime_cache(dir: &Path) -> Result<PathBuf, String> {
    let cache = dir.join("wasmtime-cache");
    std::fs::create_dir_all(&cache).map_err(|e| format!("create {}: {e}", cache.display()))?;
    open_to_all(&cache)?;
    let config = dir.join("wasmtime-cache.toml");
    let text = format!(
        "[cache]\nenabled = true\ndirectory = \"{}\"\n",
        cache.display()
    );
    std::fs::write(&config, text).map_err(|e| format!("write {}: {e}", config.display()))?;
    Ok(config)
}

fn open_to_all(dir: &Path) -> Result<(), String> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777))
        .map_err(|e| format!("chmod {}: {e}", dir.display()))?;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            open_to_all(&entry.path())?;
        }
    }
    Ok(())
}

/// The worker processes of an nginx master.
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template() -> String {
        let path = crate::procs::repo_root().join("kong/nginx.conf.template");
        std::fs::read_to_string(&path).unwrap()
    }

    fn setup(location: &Location) -> Setup<'_> {
        Setup {
            prefix: Path::new("/run/k"),
            wasm: Path::new("/x/f.wasm"),
            cache_config: Path::new("/x/c.toml"),
            listen: 19000,
            demo: 19002,
            workers: 1,
            location,
        }
    }

    #[test]
    fn renders_the_repository_template_each_way() {
        let t = template();
        let filter = Location::Filter(json!({"version": 1, "host": "kong", "x": "it's"}));
        let f = render(&t, &setup(&filter)).unwrap();
        assert!(f.contains("worker_processes 1;") && !f.contains("worker_processes 2;"));
        assert!(f.contains("access_log off;") && !f.contains("access.log"));
        assert!(f.contains("listen 127.0.0.1:19000;") && f.contains("127.0.0.1:19002;"));
        assert!(
            f.contains(r#"proxy_wasm cost_optimizer '{"host":"kong","version":1,"x":"it\'s"}';"#)
        );
        assert_eq!(placeholder_in(&f), None);

        let plain = render(&t, &setup(&Location::Plain)).unwrap();
        assert!(!plain.contains("proxy_wasm") && plain.contains("proxy_pass http://demo_api;"));
        // The module stays loaded: Kong with wasm on, the filter not on the route.
        assert!(plain.contains("module cost_optimizer"));

        let direct = render(&t, &setup(&Location::Direct("{\"a\":1}".into()))).unwrap();
        assert!(direct.contains("return 200 '{\"a\":1}';"));
        assert!(!direct.contains("proxy_wasm"));
    }

    #[test]
    fn refuses_an_envoy_config_and_a_template_it_cannot_edit() {
        let t = template();
        let envoy = Location::Filter(json!({"version": 1}));
        assert!(render(&t, &setup(&envoy)).unwrap_err().contains("host"));
        let changed = t.replace("worker_processes 2;", "worker_processes auto;");
        let err = render(&changed, &setup(&Location::Plain)).unwrap_err();
        assert!(err.contains("worker_processes 2;"), "{err}");
        assert_eq!(placeholder_in("a @b@ @C_D@ @E").as_deref(), Some("@C_D@"));
        assert_eq!(placeholder_in("x@example.com @A"), None);
    }
}
