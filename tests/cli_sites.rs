//! `scrapefarm sites` and the help/usage checks as a user meets them: the real binary, its
//! output and exit codes.

mod cli_common;

use cli_common::{Farm, stderr, stdout};

fn fixture_text() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/sites/fixture.toml")).unwrap()
}

#[test]
fn sites_lists_the_built_in_definitions_from_an_empty_directory() {
    let farm = Farm::new();
    let out = farm
        .command(&["sites"])
        .env_remove("SCRAPEFARM_SITES_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("site ") && lines[0].contains("base url"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("ebay ") && lines[1].contains("built-in ebay.toml"),
        "{text}"
    );
    assert!(lines[2].starts_with("fixture ") && lines[2].contains("http://127.0.0.1:8377/"));
    let json = farm.run(&["sites", "ls", "--json"]);
    let names: Vec<String> = stdout(&json)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["name"].to_string())
        .collect();
    assert_eq!(names, ["\"ebay\"", "\"fixture\""]);
}

#[test]
fn sites_validate_reports_every_problem_of_every_file_and_exits_1() {
    let farm = Farm::new();
    let dir = farm.path().join("mysites");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("shop.toml"),
        fixture_text().replace("name = \"fixture\"", "name = \"shop\""),
    )
    .unwrap();
    let broken = fixture_text()
        .replace("name = \"fixture\"", "name = \"broken\"")
        .replace("title = \"h1.title\"", "title = \"h1[[\"")
        .replace("max_rps = 50", "max_rps = 0");
    std::fs::write(dir.join("broken.toml"), broken).unwrap();
    let out = farm.run(&["sites", "validate", dir.to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        text.contains("ok ") && text.contains("shop.toml (shop)"),
        "{text}"
    );
    assert!(
        text.contains("invalid  ") && text.contains("broken.toml"),
        "{text}"
    );
    assert!(
        text.contains("key `listing.fields.title`: invalid CSS selector"),
        "{text}"
    );
    assert!(text.contains("key `max_rps`"), "{text}");
    assert!(
        stderr(&out).contains("1 of 2 site files"),
        "{}",
        stderr(&out)
    );

    std::fs::remove_file(dir.join("broken.toml")).unwrap();
    let out = farm.run(&["sites", "validate", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("1 site files in"), "{}", stdout(&out));
}

#[test]
fn counts_below_one_and_unknown_statuses_are_usage_errors() {
    let farm = Farm::new();
    for (args, expected) in [
        (&["demo", "--concurrency", "0"][..], "must be at least 1"),
        (
            &[
                "crawl",
                "--site",
                "fixture",
                "--query",
                "x",
                "--max-pages",
                "0",
            ][..],
            "must be at least 1",
        ),
        (
            &["worker", "--concurrency", "x"][..],
            "is not a whole number",
        ),
        (
            &["listings", "--status", "bogus"][..],
            "possible values: pending, active, ended, gone, failed",
        ),
        (&["listings", "--limit", "0"][..], "must be at least 1"),
    ] {
        let out = farm.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert!(!farm.db_file().exists(), "a usage error touches nothing");
}

#[test]
fn a_commands_help_lists_its_own_options_before_the_global_ones() {
    let out = Farm::new().run(&["crawl", "--help"]);
    let help = stdout(&out);
    let own = help.find("--max-pages").expect("own option listed");
    let heading = help.find("Global options:").expect("global heading");
    let global = help.find("--database-url").expect("global option listed");
    assert!(own < heading && heading < global, "{help}");
    assert!(
        help.contains("Search-result pages to collect at most"),
        "{help}"
    );
}

#[test]
fn sites_check_reads_saved_pages_with_a_site_file_being_written() {
    let farm = Farm::new();
    let pages = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/realworld/pages");
    let file = pages.join("sites/bestbuy.toml");
    let page = pages.join("bestbuy/product/bestbuy-product-2025-02-crucial-p3-ssd.html");
    let out = farm.run(&[
        "sites",
        "check",
        file.to_str().unwrap(),
        page.to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("(site bestbuy from"), "{text}");
    assert!(text.contains("class   content"), "{text}");
    assert!(
        text.contains("title             \"Crucial - P3 1TB Internal SSD PCIe Gen 3 x4 NVMe\""),
        "{text}"
    );
    assert!(
        text.contains("  * "),
        "the rule that read each value is marked:\n{text}"
    );

    let broken = farm.path().join("broken.toml");
    let draft = std::fs::read_to_string(&file)
        .unwrap()
        .replace("max_rps = ", "max_rps = 0 #");
    std::fs::write(&broken, draft).unwrap();
    let out = farm.run(&[
        "sites",
        "check",
        broken.to_str().unwrap(),
        page.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("broken.toml") && stderr(&out).contains("max_rps"),
        "{}",
        stderr(&out)
    );
}
