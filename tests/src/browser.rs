//! Headless Chromium for the dashboard's browser test, driven through
//! chromedriver (the W3C WebDriver protocol, with fantoccini) from
//! blocking test code: each call runs on a small tokio runtime of its own.
//!
//! Chromium and chromedriver come from Debian's `chromium` and
//! `chromium-driver` packages, installed by `scripts/ensure-chromium.sh`
//! (`make test` runs it); `CHROMIUM_BIN` / `CHROMEDRIVER_BIN` point
//! elsewhere. A missing one fails the test, naming the script.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::http;
use crate::procs::{free_port, wait_for, Proc};

const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`Browser::wait`] waits for an element.
pub const WAIT: Duration = Duration::from_secs(15);

fn bin(var: &str, default: &str, package: &str) -> PathBuf {
    let p = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    if !p.exists() {
        panic!(
            "{} not found: the dashboard's browser test needs Debian's `{package}` package. \
             Run scripts/ensure-chromium.sh (apt-get install chromium chromium-driver), \
             or set {var}",
            p.display()
        );
    }
    p
}

/// Chromium's binary (`CHROMIUM_BIN`, default `/usr/bin/chromium`).
pub fn chromium_bin() -> PathBuf {
    bin("CHROMIUM_BIN", "/usr/bin/chromium", "chromium")
}

/// chromedriver (`CHROMEDRIVER_BIN`, default `/usr/bin/chromedriver`).
pub fn chromedriver_bin() -> PathBuf {
    bin(
        "CHROMEDRIVER_BIN",
        "/usr/bin/chromedriver",
        "chromium-driver",
    )
}

/// One headless Chromium window; closed (and chromedriver stopped) on drop.
pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver_port: u16,
    session: String,
    // Dropped last: chromedriver, once the session (and Chromium) is closed.
    _driver: Proc,
}

impl Browser {
    /// chromedriver on a free port, and a session with a fresh profile in
    /// `dir`, a window of `width` x `height`.
    pub fn start(dir: &Path, width: u32, height: u32) -> Browser {
        let chromium = chromium_bin();
        let port = free_port();
        let mut driver = Proc::spawn(
            "chromedriver",
            &chromedriver_bin(),
            &[format!("--port={port}")],
            dir,
        );
        wait_for("chromedriver /status", START_TIMEOUT, || {
            if let Some(code) = driver.exited() {
                panic!(
                    "chromedriver exited early ({code:?}):\n{}",
                    driver.log_text()
                );
            }
            http::try_request("GET", &format!("http://127.0.0.1:{port}/status"), &[], None)
                .ok()
                .filter(|r| r.status == 200)
        });
        let profile = dir.join("chromium-profile");
        std::fs::create_dir_all(&profile)
            .unwrap_or_else(|e| panic!("create {}: {e}", profile.display()));
        // As root in a closed network: no sandbox, and none of the
        // background connections Chromium makes (refused here).
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            &format!("--window-size={width},{height}"),
            &format!("--user-data-dir={}", profile.display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": chromium.display().to_string(), "args": args}),
        );
        caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("tokio runtime: {e}"));
        let client = rt
            .block_on(
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps)
                    .connect(&format!("http://127.0.0.1:{port}")),
            )
            .unwrap_or_else(|e| {
                panic!(
                    "no Chromium session ({e}); chromedriver says:\n{}",
                    driver.log_text()
                )
            });
        let session = rt
            .block_on(client.session_id())
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("the session has no id"));
        Browser {
            rt,
            client: Some(client),
            driver_port: port,
            session,
            _driver: driver,
        }
    }

    fn client(&self) -> &Client {
        self.client
            .as_ref()
            .unwrap_or_else(|| panic!("the browser is closed"))
    }

    pub fn open(&self, url: &str) {
        self.rt
            .block_on(self.client().goto(url))
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// Loads the current page again.
    pub fn reload(&self) {
        self.rt
            .block_on(self.client().refresh())
            .unwrap_or_else(|e| panic!("reload: {e}"));
    }

    pub fn url(&self) -> String {
        self.rt
            .block_on(self.client().current_url())
            .unwrap_or_else(|e| panic!("current url: {e}"))
            .to_string()
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the page.
    pub fn exec(&self, script: &str, args: Vec<Value>) -> Value {
        self.rt
            .block_on(self.client().execute(script, args))
            .unwrap_or_else(|e| panic!("script failed ({e}): {script}"))
    }

    /// Waits until `css` matches a displayed element; fails with the
    /// page's text when it does not within [`WAIT`].
    pub fn wait(&self, css: &str) {
        let start = Instant::now();
        loop {
            let shown = self.exec(
                "const e = document.querySelector(arguments[0]);
                 return !!e && e.getClientRects().length > 0;",
                vec![json!(css)],
            );
            if shown == Value::Bool(true) {
                return;
            }
            if start.elapsed() > WAIT {
                panic!(
                    "no visible {css} after {WAIT:?}; the page says:\n{}",
                    self.text("body")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether `css` matches a displayed element now.
    pub fn visible(&self, css: &str) -> bool {
        self.exec(
            "return [...document.querySelectorAll(arguments[0])].some(e => e.getClientRects().length > 0);",
            vec![json!(css)],
        ) == Value::Bool(true)
    }

    /// The rendered text of the first match of `css` ("" when none).
    pub fn text(&self, css: &str) -> String {
        self.exec(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';",
            vec![json!(css)],
        )
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// An attribute of every match of `css`, in document order.
    pub fn attrs(&self, css: &str, name: &str) -> Vec<Option<String>> {
        let v = self.exec(
            "return [...document.querySelectorAll(arguments[0])].map(e => e.getAttribute(arguments[1]));",
            vec![json!(css), json!(name)],
        );
        v.as_array()
            .map(|a| a.iter().map(|x| x.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    /// An attribute of the first match of `css`; fails when absent.
    pub fn attr(&self, css: &str, name: &str) -> String {
        self.attrs(css, name)
            .into_iter()
            .next()
            .flatten()
            .unwrap_or_else(|| panic!("no {name} on {css}"))
    }

    pub fn click(&self, css: &str) {
        self.rt
            .block_on(async {
                let e = self.client().find(Locator::Css(css)).await?;
                e.click().await
            })
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Clears the input `css` and types `text` into it, key by key.
    pub fn type_into(&self, css: &str, text: &str) {
        self.rt
            .block_on(async {
                let e = self.client().find(Locator::Css(css)).await?;
                e.clear().await?;
                e.send_keys(text).await
            })
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Chooses the option of value `value` in the select `css`.
    pub fn select(&self, css: &str, value: &str) {
        self.rt
            .block_on(async {
                let e = self.client().find(Locator::Css(css)).await?;
                e.select_by_value(value).await
            })
            .unwrap_or_else(|e| panic!("select {value} in {css}: {e}"));
    }

    /// A PNG of the window, written to `path`.
    pub fn screenshot(&self, path: &Path) {
        let png = self
            .rt
            .block_on(self.client().screenshot())
            .unwrap_or_else(|e| panic!("screenshot: {e}"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// The browser's console and network log since the last call
    /// (chromedriver's `goog:loggingPrefs` log, which fantoccini does not
    /// wrap): `[{level, message, timestamp}]`.
    pub fn log(&self) -> Vec<Value> {
        let url = format!(
            "http://127.0.0.1:{}/session/{}/se/log",
            self.driver_port, self.session
        );
        let r = http::request(
            "POST",
            &url,
            &[("content-type", "application/json")],
            Some(br#"{"type":"browser"}"#),
        );
        assert_eq!(r.status, 200, "browser log: {}", r.text());
        r.json()["value"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            // Ends the session, which quits Chromium; bounded, so a hung
            // browser cannot hold a failing test.
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(10), c.close()).await });
        }
    }
}
