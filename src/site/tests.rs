//! Loading and validating site files: the shipped ones, every rule kind, errors that name the
//! file and key, files that load independently, and sites without search pages.

use super::*;

fn sites_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sites")
}

/// The sites of a directory holding one file, `x.toml`; its problems as an error.
fn load_one(text: &str) -> Result<Sites, SiteError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.toml"), text).unwrap();
    let sites = Sites::load(dir.path()).unwrap();
    match sites.invalid().first() {
        Some(bad) => Err(bad.error()),
        None => Ok(sites),
    }
}

fn fixture_text() -> String {
    std::fs::read_to_string(sites_dir().join("fixture.toml")).unwrap()
}

#[test]
fn shipped_sites_load() {
    let sites = Sites::load(&sites_dir()).unwrap();
    let fixture = sites.get("fixture").unwrap();
    assert_eq!(
        fixture
            .listing_id("http://127.0.0.1:4000/item/123456")
            .as_deref(),
        Some("123456")
    );
    assert_eq!(fixture.listing_id("http://127.0.0.1:4000/promo/1"), None);
}

#[test]
fn ebay_listing_urls_of_every_shape_give_the_item_id() {
    let sites = Sites::load(&sites_dir()).unwrap();
    let ebay = sites.get("ebay").unwrap();
    let id = |url: &str| ebay.listing_id(url);
    let cases = [
        "https://www.ebay.com/itm/226771798286",
        "https://www.ebay.de/itm/226771798286?hash=item34ccd7c70e:g:qvsAAOSw",
        "http://www.ebay.com/itm/Unicycle-20-Silver-/226771798286?pt=LH_DefaultDomain_0",
        "https://www.ebay.co.uk/itm/Warhammer-40k-sprue/226771798286",
        "https://www.ebay.fr/itm/226771798286#rwid",
        "https://ebay.com/itm/226771798286/",
        "http://127.0.0.1:40123/itm/226771798286",
        "http://localhost:8080/itm/some-slug/226771798286?x=1",
    ];
    for url in cases {
        assert_eq!(id(url).as_deref(), Some("226771798286"), "{url}");
    }
    for url in [
        "https://ebay.com/itm/123456?hash=item28caef0a3a",
        "https://www.ebay.com/p/1701411334",
        "https://www.ebay.com.evil.example/itm/226771798286",
        "https://www.example.com/itm/226771798286",
        "https://www.ebay.com/sch/i.html?_nkw=itm/226771798286",
    ] {
        assert_eq!(id(url), None, "{url}");
    }
}

#[test]
fn a_field_may_list_rules_of_every_kind() {
    let text = fixture_text().replace(
        "title = \"h1.title\"",
        "title = [\"h1.a\", { css = [\"h1.b\", \"h2\"], exclude = \".hidden\" }, \
         { jsonld = \"name\" }, { html = '\"title\":\"([^\"]+)\"', regex = \"(.+)\" }]",
    );
    let sites = load_one(&text).unwrap();
    let labels: Vec<_> = sites
        .get("fixture")
        .unwrap()
        .fields
        .title
        .as_ref()
        .unwrap()
        .rules
        .iter()
        .map(|r| r.label.clone())
        .collect();
    assert_eq!(labels.len(), 5, "{labels:?}");
    assert!(labels[2].contains("exclude .hidden"), "{labels:?}");
    assert!(labels[3].starts_with("jsonld name"), "{labels:?}");
    assert!(labels[4].starts_with("html /"), "{labels:?}");
}

#[test]
fn a_rule_needs_exactly_one_source() {
    let text = fixture_text().replace(
        "title = \"h1.title\"",
        "title = { css = \"h1\", jsonld = \"name\" }",
    );
    let err = load_one(&text).unwrap_err().to_string();
    assert!(err.contains("listing.fields.title"), "{err}");
    assert!(err.contains("exactly one of"), "{err}");
}

#[test]
fn errors_name_the_file_key_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let broken = fixture_text().replace("title = \"h1.title\"", "title = \"h1[[\"");
    std::fs::write(dir.path().join("broken.toml"), broken).unwrap();
    let err = Sites::load(dir.path())
        .unwrap()
        .get("broken")
        .unwrap_err()
        .to_string();
    assert!(err.contains("broken.toml"), "{err}");
    assert!(err.contains("listing.fields.title"), "{err}");
    assert!(err.contains("invalid CSS selector"), "{err}");
}

#[test]
fn unknown_keys_are_rejected() {
    let err = load_one(&format!("colour = 1\n{}", fixture_text()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("colour"), "{err}");
    let text = fixture_text().replace(
        "title = \"h1.title\"",
        "title = { css = \"h1\", atr = \"x\" }",
    );
    let err = load_one(&text).unwrap_err().to_string();
    assert!(err.contains("atr"), "{err}");
}

#[test]
fn unknown_site_lists_the_known_ones() {
    let err = Sites::load(&sites_dir()).unwrap().get("nope").unwrap_err();
    assert!(err.to_string().contains("fixture"), "{err}");
}

#[test]
fn an_invalid_site_file_is_reported_in_full_and_skipped_while_the_others_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fixture.toml"), fixture_text()).unwrap();
    let broken = fixture_text()
        .replace("name = \"fixture\"", "name = \"broken\"")
        .replace("title = \"h1.title\"", "title = \"h1[[\"\nbrand = \".b\"")
        .replace("result = \"li.result\"", "result = 5")
        .replace("max_rps = 50", "max_rps = 0");
    std::fs::write(dir.path().join("broken.toml"), broken).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a site").unwrap();
    let sites = Sites::load(dir.path()).unwrap();
    assert_eq!(sites.names().collect::<Vec<_>>(), ["ebay", "fixture"]);
    assert!(sites.get("fixture").is_ok());
    let [bad] = sites.invalid() else {
        panic!("{:?}", sites.invalid());
    };
    assert!(bad.file.ends_with("broken.toml"), "{bad:?}");
    let problems = bad.problems.join("\n");
    for expected in [
        "key `listing.fields.title`: invalid CSS selector",
        "key `listing.fields.brand`: unknown field",
        "key `search.result`: invalid type",
        "key `max_rps`",
    ] {
        assert!(problems.contains(expected), "{expected} in:\n{problems}");
    }
    let err = sites.get("broken").unwrap_err().to_string();
    assert!(
        err.contains("broken.toml") && err.contains("max_rps"),
        "{err}"
    );
}

#[test]
fn a_site_without_search_loads_reads_listing_urls_and_says_it_has_no_search() {
    let text = fixture_text();
    let start = text.find("[search]").unwrap();
    let end = text.find("[listing]").unwrap();
    let text = format!("{}{}", &text[..start], &text[end..]);
    let sites = load_one(&text).unwrap();
    let site = sites.get("fixture").unwrap();
    assert!(site.search.is_none());
    assert_eq!(
        site.listing_id("http://127.0.0.1:1/item/42").as_deref(),
        Some("42")
    );
    let err = site.search_url("lamp", 1).unwrap_err().to_string();
    assert!(err.contains("no `[search]`"), "{err}");
    let page = crate::extract::extract_search("<li class=result></li>", "http://x/", site);
    assert_eq!(page, crate::extract::SearchPage::default());
}

#[test]
fn the_built_in_sites_equal_the_shipped_files_and_load_without_a_directory() {
    let builtin = Sites::builtin();
    assert!(builtin.invalid().is_empty(), "{:?}", builtin.invalid());
    assert_eq!(builtin.names().collect::<Vec<_>>(), ["ebay", "fixture"]);
    let shipped = Sites::load(&sites_dir()).unwrap();
    for name in ["ebay", "fixture"] {
        let (a, b) = (builtin.get(name).unwrap(), shipped.get(name).unwrap());
        assert_eq!(format!("{a:?}"), format!("{b:?}"), "{name}");
    }
    let err = builtin.get("nope").unwrap_err().to_string();
    assert!(
        err.contains("the built-in sites") && err.contains("ebay, fixture"),
        "{err}"
    );
}

#[test]
fn a_directory_file_overrides_a_built_in_site_and_a_broken_one_is_reported_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let moved = fixture_text().replace("http://127.0.0.1:8377", "http://127.0.0.1:9999");
    assert_ne!(moved, fixture_text(), "the fixture file names its base URL");
    std::fs::write(dir.path().join("fixture.toml"), moved).unwrap();
    let sites = Sites::load(dir.path()).unwrap();
    assert_eq!(
        sites.get("fixture").unwrap().base_url.as_str(),
        "http://127.0.0.1:9999/"
    );
    assert!(sites.get("ebay").is_ok(), "the other built-in stays");

    let broken = fixture_text().replace("title = \"h1.title\"", "title = \"h1[[\"");
    std::fs::write(dir.path().join("fixture.toml"), broken).unwrap();
    let sites = Sites::load(dir.path()).unwrap();
    let err = sites.get("fixture").unwrap_err().to_string();
    assert!(
        err.contains("fixture.toml") && err.contains("listing.fields.title"),
        "{err}"
    );
}

#[test]
fn a_sites_directory_that_cannot_be_read_is_an_error_naming_it() {
    let err = Sites::load_from(Some(Path::new("/nonexistent/sites"))).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/sites"), "{err}");
}
