//! A minimal W3C WebDriver client over reqwest: start ChromeDriver on a free
//! loopback port, open a headless Chromium session, navigate, find elements,
//! click, type, run scripts, take screenshots and read the browser's
//! console log. Only what the dashboard test needs.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The key of an element reference in WebDriver JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long `wait` polls by default.
pub const WAIT: Duration = Duration::from_secs(20);

/// Polls `check` every 50 ms until it gives `Ok`; after `limit`, its last
/// `Err` (what it saw) is the error. Every wait of the browser test goes
/// through here.
pub async fn poll<T, F, Fut>(limit: Duration, mut check: F) -> std::result::Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match check().await {
            Ok(v) => return Ok(v),
            Err(seen) if Instant::now() >= deadline => return Err(seen),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A WebDriver error: the command and what the driver said.
#[derive(Debug)]
pub struct WdError(pub String);

impl std::fmt::Display for WdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub type Result<T> = std::result::Result<T, WdError>;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A ChromeDriver process, killed on drop.
pub struct Driver {
    child: Child,
    url: String,
    http: reqwest::Client,
}

impl Driver {
    /// Starts `chromedriver` on a free loopback port and waits until it is
    /// ready.
    pub async fn start(chromedriver: &str) -> Driver {
        let port = free_port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {chromedriver}: {e}"));
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        };
        let (http, status) = (driver.http.clone(), format!("{}/status", driver.url));
        poll(WAIT, move || {
            let (http, status) = (http.clone(), status.clone());
            async move {
                let ready = match http.get(&status).send().await {
                    Ok(r) => r
                        .json::<Value>()
                        .await
                        .is_ok_and(|v| v["value"]["ready"] == true),
                    Err(_) => false,
                };
                ready
                    .then_some(())
                    .ok_or_else(|| format!("chromedriver not ready within {WAIT:?}"))
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        driver
    }

    /// A new headless Chromium session (`binary`: the browser) with its
    /// console log recorded.
    pub async fn session(&self, binary: &str) -> Session {
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--window-size=1280,1000",
                    "--no-first-run", "--no-default-browser-check",
                    "--disable-extensions", "--disable-background-networking",
                    "--lang=en-US"
                ]
            },
            "goog:loggingPrefs": { "browser": "ALL" }
        } } });
        let resp = self
            .http
            .post(format!("{}/session", self.url))
            .json(&caps)
            .send()
            .await
            .expect("chromedriver answers");
        let body: Value = resp.json().await.unwrap();
        let id = body["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {body}"))
            .to_owned();
        Session {
            http: self.http.clone(),
            base: format!("{}/session/{id}", self.url),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser session.
pub struct Session {
    http: reqwest::Client,
    base: String,
}

/// An element reference.
#[derive(Clone, Debug)]
pub struct Element(String);

impl Session {
    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        // POST commands need a JSON body, even an empty one.
        if method == reqwest::Method::POST {
            req = req.json(&body.unwrap_or_else(|| json!({})));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| WdError(format!("{method} {path}: {e}")))?;
        let v: Value = resp
            .json()
            .await
            .map_err(|e| WdError(format!("{method} {path}: {e}")))?;
        if let Some(err) = v["value"]["error"].as_str() {
            let msg = v["value"]["message"].as_str().unwrap_or("");
            let first = msg.lines().next().unwrap_or("");
            return Err(WdError(format!("{method} {path}: {err}: {first}")));
        }
        Ok(v["value"].clone())
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.cmd(reqwest::Method::POST, path, Some(body)).await
    }

    /// Loads `url`.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.post("/url", json!({ "url": url })).await.map(drop)
    }

    /// The current URL.
    pub async fn url(&self) -> Result<String> {
        let v = self.cmd(reqwest::Method::GET, "/url", None).await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns
    /// its result.
    pub async fn exec(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.post("/execute/sync", json!({ "script": script, "args": args }))
            .await
    }

    /// The first element matching the CSS `selector`.
    pub async fn find(&self, selector: &str) -> Result<Element> {
        let v = self
            .post(
                "/element",
                json!({ "using": "css selector", "value": selector }),
            )
            .await?;
        v[ELEMENT]
            .as_str()
            .map(|id| Element(id.to_owned()))
            .ok_or_else(|| WdError(format!("no element reference for {selector}: {v}")))
    }

    /// Clicks the element (as a user would: scrolled into view, hit-tested).
    pub async fn click(&self, el: &Element) -> Result<()> {
        self.post(&format!("/element/{}/click", el.0), json!({}))
            .await
            .map(drop)
    }

    /// Types `text` into the element.
    pub async fn type_into(&self, el: &Element, text: &str) -> Result<()> {
        self.post(&format!("/element/{}/value", el.0), json!({ "text": text }))
            .await
            .map(drop)
    }

    /// Waits until `selector` matches an element, then clicks it.
    pub async fn click_when_ready(&self, selector: &str) -> Element {
        let el = self
            .wait(&format!("{selector} is present"), || async {
                self.find(selector).await.ok()
            })
            .await;
        self.click(&el)
            .await
            .unwrap_or_else(|e| panic!("click {selector}: {e}"));
        el
    }

    /// Makes the browser fail requests to URLs matching any of `patterns`
    /// (`*` wildcards; none: block nothing), through the DevTools protocol.
    pub async fn block_urls(&self, patterns: &[&str]) -> Result<()> {
        self.post(
            "/goog/cdp/execute",
            json!({ "cmd": "Network.enable", "params": {} }),
        )
        .await?;
        self.post(
            "/goog/cdp/execute",
            json!({ "cmd": "Network.setBlockedURLs", "params": { "urls": patterns } }),
        )
        .await
        .map(drop)
    }

    /// Emulates `prefers-color-scheme: <scheme>` (a DevTools command
    /// through ChromeDriver's `goog/cdp/execute`).
    pub async fn color_scheme(&self, scheme: &str) -> Result<()> {
        self.post(
            "/goog/cdp/execute",
            json!({ "cmd": "Emulation.setEmulatedMedia", "params": {
                "features": [{ "name": "prefers-color-scheme", "value": scheme }]
            } }),
        )
        .await
        .map(drop)
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Result<Vec<u8>> {
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None).await?;
        base64_decode(v.as_str().unwrap_or_default())
            .ok_or_else(|| WdError("screenshot: bad base64".into()))
    }

    /// The browser console's entries since the last call (ChromeDriver's
    /// log endpoint; needs `goog:loggingPrefs`).
    pub async fn console_log(&self) -> Result<Vec<Value>> {
        let v = self.post("/se/log", json!({ "type": "browser" })).await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// Polls `check` until it returns `Some`, panicking after [`WAIT`].
    pub async fn wait<T, F, Fut>(&self, what: &str, check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        self.wait_for(what, WAIT, check).await
    }

    /// Polls `check` until it returns `Some`, panicking after `limit`.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, limit: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let found = poll(limit, || {
            let next = check();
            async move { next.await.ok_or_else(String::new) }
        })
        .await;
        match found {
            Ok(v) => v,
            Err(_) => panic!(
                "timed out after {limit:?} waiting until {what}\n{}",
                self.diagnosis().await
            ),
        }
    }

    /// The URL, the page's text and the console, for a failure message.
    pub async fn diagnosis(&self) -> String {
        let url = self.url().await.unwrap_or_else(|e| e.to_string());
        let text = self
            .exec(
                "return document.body ? document.body.innerText : '(no body)';",
                vec![],
            )
            .await
            .map_or_else(|e| e.to_string(), |v| v.as_str().unwrap_or("").to_owned());
        let log = self
            .console_log()
            .await
            .map_or_else(|e| e.to_string(), |l| format!("{l:#?}"));
        format!("url: {url}\npage text:\n{text}\nconsole: {log}")
    }

    /// Polls the JavaScript expression `expr` until it is truthy; returns
    /// its value.
    pub async fn wait_js(&self, what: &str, expr: &str) -> Value {
        self.wait_js_for(what, WAIT, expr).await
    }

    /// As [`Session::wait_js`], giving up after `limit`.
    pub async fn wait_js_for(&self, what: &str, limit: Duration, expr: &str) -> Value {
        let script = format!("return ({expr});");
        self.wait_for(what, limit, || async {
            match self.exec(&script, vec![]).await {
                Ok(v) if !(v.is_null() || v == false || v == 0 || v == "") => Some(v),
                _ => None,
            }
        })
        .await
    }

    /// Ends the session (closes the browser).
    pub async fn quit(self) {
        let _ = self.cmd(reqwest::Method::DELETE, "", None).await;
    }
}

/// Standard base64 (with padding) to bytes.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let pad = chunk.iter().rev().take_while(|b| **b == b'=').count();
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            let v = if i >= 4 - pad { 0 } else { val(c)? };
            n = (n << 6) | v;
        }
        let three = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&three[..3 - pad]);
    }
    Some(out)
}

#[test]
fn base64_decodes_with_and_without_padding() {
    assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
    assert_eq!(base64_decode("aGV5").unwrap(), b"hey");
    assert_eq!(base64_decode("aA==").unwrap(), b"h");
    assert!(base64_decode("a$==").is_none());
}
