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

/// Runs `apt-get ARGS` (non-interactive); whether it succeeded.
fn apt_get(args: &[&str]) -> Result<bool, String> {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("apt-get {}: {e}", args.join(" ")))?;
    Ok(status.success())
}

/// Makes sure Chromium and ChromeDriver are installed: installs them with
/// apt-get when missing and root (`apt-get update` first if the install
/// fails), else fails naming the packages.
pub fn provision() -> Result<(), String> {
    provision_with(&present, is_root(), &mut apt_get)
}

/// [`provision`] with its checks and commands passed in (for the tests).
fn provision_with(
    present: &dyn Fn() -> bool,
    root: bool,
    apt: &mut dyn FnMut(&[&str]) -> Result<bool, String>,
) -> Result<(), String> {
    if present() {
        return Ok(());
    }
    if !root {
        return Err(format!(
            "{CHROMIUM} or {CHROMEDRIVER} is missing and this is not root: install Debian's \
             packages {} (sudo apt-get install {}) and run again",
            PACKAGES.join(" and "),
            PACKAGES.join(" ")
        ));
    }
    println!("==> installing {} (apt-get install)", PACKAGES.join(" "));
    let install: Vec<&str> = ["install", "-y", "-qq", "--no-install-recommends"]
        .into_iter()
        .chain(PACKAGES)
        .collect();
    if !apt(&install)? {
        if !apt(&["update", "-qq"])? {
            return Err("apt-get update failed".into());
        }
        if !apt(&install)? {
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

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// Runs `provision_with` with apt-get answers taken in order; returns
    /// the result and the commands run (their first word).
    fn provision_case(
        present_after: bool,
        root: bool,
        answers: &[bool],
    ) -> (Result<(), String>, Vec<String>) {
        let installed = Cell::new(false);
        let present = || installed.get();
        let mut answers = answers.iter().copied();
        let mut ran = Vec::new();
        let mut apt = |args: &[&str]| {
            ran.push(args[0].to_owned());
            let ok = answers.next().expect("an unexpected apt-get call");
            if ok && args[0] == "install" && present_after {
                installed.set(true);
            }
            Ok(ok)
        };
        let result = provision_with(&present, root, &mut apt);
        (result, ran)
    }

    #[test]
    fn present_browsers_need_nothing() {
        let mut apt = |_: &[&str]| -> Result<bool, String> { panic!("apt-get called") };
        assert!(provision_with(&|| true, false, &mut apt).is_ok());
    }

    #[test]
    fn without_root_the_packages_are_named() {
        let (result, ran) = provision_case(true, false, &[]);
        let e = result.unwrap_err();
        assert!(e.contains("chromium and chromium-driver"), "{e}");
        assert!(
            e.contains("apt-get install chromium chromium-driver"),
            "{e}"
        );
        assert!(ran.is_empty());
    }

    #[test]
    fn as_root_it_installs_updating_the_index_when_needed() {
        let (result, ran) = provision_case(true, true, &[true]);
        assert!(result.is_ok());
        assert_eq!(ran, ["install"]);
        let (result, ran) = provision_case(true, true, &[false, true, true]);
        assert!(result.is_ok());
        assert_eq!(ran, ["install", "update", "install"]);
        let (result, ran) = provision_case(true, true, &[false, false]);
        assert_eq!(result.unwrap_err(), "apt-get update failed");
        assert_eq!(ran, ["install", "update"]);
        let (result, _) = provision_case(false, true, &[true]);
        assert!(result.unwrap_err().contains("still missing"));
    }
}
