//! `cargo xtask browser`: the dashboard's tests in a real browser — headless
//! Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`,
//! installed here when missing and the run is root) against a real
//! `semiont-jobs serve` and `work` (the `browser` test target of the CLI
//! crate, which `cargo test` does not run by default).

use std::path::Path;
use std::process::Command;

use crate::pg::is_root;
use crate::{cargo, run};

/// Debian's Chromium binary.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's ChromeDriver binary.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The Debian packages holding them.
const PACKAGES: [&str; 2] = ["chromium", "chromium-driver"];

fn present() -> bool {
    Path::new(CHROMIUM).is_file() && Path::new(CHROMEDRIVER).is_file()
}

fn apt_install() -> Result<bool, String> {
    let status = Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(PACKAGES)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("apt-get install {}: {e}", PACKAGES.join(" ")))?;
    Ok(status.success())
}

/// Makes sure Chromium and ChromeDriver are installed: installs them with
/// apt-get when missing and root (`apt-get update` first if the install
/// fails), else fails naming the packages.
pub fn provision() -> Result<(), String> {
    if present() {
        return Ok(());
    }
    if !is_root() {
        return Err(format!(
            "{CHROMIUM} or {CHROMEDRIVER} is missing and this is not root: install Debian's \
             packages {} (sudo apt-get install {}) and run again",
            PACKAGES.join(" and "),
            PACKAGES.join(" ")
        ));
    }
    println!("==> installing {} (apt-get install)", PACKAGES.join(" "));
    if !apt_install()? {
        let update = Command::new("apt-get")
            .args(["update", "-qq"])
            .status()
            .map_err(|e| format!("apt-get update: {e}"))?;
        if !update.success() {
            return Err(format!("apt-get update failed ({update})"));
        }
        if !apt_install()? {
            return Err(format!("apt-get install {} failed", PACKAGES.join(" ")));
        }
    }
    if present() {
        Ok(())
    } else {
        Err(format!(
            "{} installed, but {CHROMIUM} or {CHROMEDRIVER} is still missing",
            PACKAGES.join(" ")
        ))
    }
}

/// `cargo xtask browser [--install-only] [--update-screenshot]`: provisions
/// the browser, lints the test target (`cargo clippy --all-targets` skips
/// a `test = false` target), then runs the dashboard's browser test
/// (screenshots land in `<target>/dashboard-screenshots/`);
/// `--update-screenshot` then copies the overview to `docs/dashboard.png`.
pub fn browser(root: &Path, target: &Path, args: &[String]) -> Result<(), String> {
    let mut install_only = false;
    let mut update_screenshot = false;
    for arg in args {
        match arg.as_str() {
            "--install-only" => install_only = true,
            "--update-screenshot" => update_screenshot = true,
            other => return Err(format!("unknown browser argument {other:?}")),
        }
    }
    provision()?;
    if install_only {
        println!("chromium and chromedriver are installed");
        return Ok(());
    }
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "-p",
        "semiont-jobs-cli",
        "--all-features",
        "--test",
        "browser",
        "--",
        "-D",
        "warnings",
    ]);
    run("clippy (browser test)", clippy)?;
    let mut test = cargo();
    test.args([
        "test",
        "-p",
        "semiont-jobs-cli",
        "--all-features",
        "--test",
        "browser",
    ]);
    test.env("SEMIONT_JOBS_CHROMIUM", CHROMIUM)
        .env("SEMIONT_JOBS_CHROMEDRIVER", CHROMEDRIVER);
    run("browser (dashboard in headless Chromium)", test)?;
    if update_screenshot {
        let from = target.join("dashboard-screenshots/overview.png");
        let to = root.join("docs/dashboard.png");
        std::fs::copy(&from, &to)
            .map_err(|e| format!("copy {} to {}: {e}", from.display(), to.display()))?;
        println!("updated {}", to.display());
    }
    Ok(())
}
