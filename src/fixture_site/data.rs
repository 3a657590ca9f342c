//! The deterministic catalogue: every listing is a pure function of
//! `(seed, query, index)`, so the server, the JSON endpoints and
//! [`FixtureSite::ground_truth`](super::FixtureSite::ground_truth) always agree.

use std::collections::BTreeMap;

use super::TruthListing;

/// Listing ids are `ID_BASE + n` with `n < ID_SPACE`, i.e. always six digits.
const ID_BASE: u32 = 100_000;
const ID_SPACE: u32 = 900_000;

/// The largest number of listings a query can have (ids are six digits).
pub(crate) const MAX_LISTINGS: usize = ID_SPACE as usize;

/// The splitmix64 finaliser: a fast, well-mixing 64-bit hash step.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 64-bit FNV-1a over bytes (stable across platforms and releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// A tiny splitmix64 pseudo-random generator (no external crate needed).
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose sequence is fully determined by `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
    }

    /// A float uniformly distributed in `[0, 1)`.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A number in `0..n` (0 when `n == 0`); the modulo bias is irrelevant here.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// One element of a non-empty slice.
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Trims and collapses whitespace so `" brass  lamp "` and `"brass lamp"` are one query.
pub(crate) fn normalise_query(query: &str) -> String {
    query.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The numeric id of the listing at `index` for `query`; distinct within a query.
pub(crate) fn listing_id(seed: u64, query: &str, index: usize) -> u32 {
    let offset = mix(seed ^ fnv1a(query.as_bytes())) % u64::from(ID_SPACE);
    let slot = (offset + index as u64) % u64::from(ID_SPACE);
    // `slot < ID_SPACE`, which fits in u32.
    ID_BASE + permute(slot as u32, seed)
}

/// A keyed bijection of `0..ID_SPACE`: a 20-bit Feistel network with cycle walking.
fn permute(slot: u32, key: u64) -> u32 {
    let mut v = slot;
    loop {
        v = feistel20(v, key);
        if v < ID_SPACE {
            return v;
        }
    }
}

/// A 4-round Feistel permutation of `0..2^20`.
fn feistel20(v: u32, key: u64) -> u32 {
    let (mut left, mut right) = (v >> 10, v & 0x3ff);
    for round in 0..4u64 {
        let f = (mix(key ^ (round << 40) ^ u64::from(right)) & 0x3ff) as u32;
        (left, right) = (right, left ^ f);
    }
    (left << 10) | right
}

/// The listing at `index` (0-based) for `query`; URLs are absolute under `base`.
pub(crate) fn listing(seed: u64, base: &str, query: &str, index: usize) -> TruthListing {
    let external_id = listing_id(seed, query, index).to_string();
    let url = format!("{base}/item/{external_id}");
    let mut rng = SplitMix64::new(mix(seed ^ fnv1a(query.as_bytes())) ^ mix(index as u64 + 1));
    let roll = rng.next_f64();
    let status = if roll < 0.04 {
        "gone"
    } else if roll < 0.12 {
        "ended"
    } else {
        "active"
    };
    let mut truth = TruthListing {
        external_id,
        url,
        status: status.to_string(),
        title: None,
        price_minor: None,
        currency: None,
        price_text: None,
        condition: None,
        seller: None,
        seller_score: None,
        shipping: None,
        location: None,
        specifics: BTreeMap::new(),
        description: None,
        images: Vec::new(),
        rank: index + 1,
    };
    if status != "gone" {
        fill_details(&mut truth, &mut rng, base, query, index);
    }
    truth
}

/// Fills every field of a live (active or ended) listing.
fn fill_details(t: &mut TruthListing, rng: &mut SplitMix64, base: &str, query: &str, index: usize) {
    let style = PriceStyle::for_index(index);
    let minor = amount_minor(rng);
    let title = title(rng, query);
    t.price_minor = Some(minor);
    t.currency = Some(style.currency().to_string());
    t.price_text = Some(style.format(minor));
    t.condition = Some(rng.pick(CONDITIONS).to_string());
    t.seller = Some(seller(rng));
    t.seller_score = Some(rng.below(200_001) as i64);
    t.shipping = Some(shipping(rng, style));
    t.location = Some(rng.pick(style.cities()).to_string());
    t.specifics = specifics(rng);
    t.description = Some(description(rng, &title));
    let images = rng.range(1, 5);
    t.images = (1..=images)
        .map(|n| format!("{base}/img/{}-{n}.png", t.external_id))
        .collect();
    t.title = Some(title);
}

const CONDITIONS: &[&str] = &[
    "New",
    "Used",
    "Pre-owned",
    "New with tags",
    "For parts or not working",
];
const ADJECTIVES: &[&str] = &[
    "Vintage",
    "Antique",
    "Modern",
    "Rare",
    "Handmade",
    "Café-Style",
    "Retro",
    "Deluxe",
    "Compact",
    "Nordic",
];
const MATERIALS: &[&str] = &[
    "Brass",
    "Oak",
    "Steel",
    "Glass",
    "Ceramic",
    "Leather",
    "Walnut & Maple",
    "Copper",
];

/// `"Vintage Brass Lamp — Model 4821"`-style titles; some need HTML escaping.
fn title(rng: &mut SplitMix64, query: &str) -> String {
    let adjective = rng.pick(ADJECTIVES);
    let material = rng.pick(MATERIALS);
    let n = rng.range(1000, 9999);
    let suffix = match rng.below(8) {
        0 => format!("(Lot of {})", n % 9 + 2),
        1 => "\"Collector's\" Edition".to_string(),
        2 => "<Boxed> & Sealed".to_string(),
        3 => format!("Größe {}", n % 40 + 30),
        4 => format!("– Ref. {n}"),
        _ => format!("— Model {n}"),
    };
    let noun = if query.is_empty() {
        "Item".to_string()
    } else {
        title_case(query)
    };
    format!("{adjective} {material} {noun} {suffix}")
}

/// Upper-cases the first letter of every word.
fn title_case(text: &str) -> String {
    let words = text.split(' ').map(|word| {
        let mut chars = word.chars();
        chars.next().map_or_else(String::new, |first| {
            first.to_uppercase().chain(chars).collect()
        })
    });
    words.collect::<Vec<_>>().join(" ")
}

/// Log-uniform-ish amounts from 1.00 to 24,999.99 (or ¥100 to ¥2,499,999).
fn amount_minor(rng: &mut SplitMix64) -> i64 {
    let decade = rng.below(5) as u32;
    let lo = 100 * 10u64.pow(decade);
    let hi = (lo * 10).min(2_500_000);
    (lo + rng.below(hi - lo)) as i64
}

fn seller(rng: &mut SplitMix64) -> String {
    let first = rng.pick(&[
        "vintage",
        "retro",
        "attic",
        "bargain",
        "collector",
        "curio",
        "heritage",
        "urban",
    ]);
    let second = rng.pick(&[
        "finds", "traders", "emporium", "depot", "goods", "corner", "vault",
    ]);
    match rng.below(3) {
        0 => format!("{first}_{second}"),
        1 => format!("{first}-{second}-{}", rng.range(1, 99)),
        _ => format!("{first}{second}{}", rng.range(1970, 2024)),
    }
}

fn shipping(rng: &mut SplitMix64, style: PriceStyle) -> String {
    if rng.below(10) < 4 {
        return "Free shipping".to_string();
    }
    let cost = if style.decimals() == 0 {
        rng.range(300, 3000)
    } else {
        rng.range(299, 2499)
    };
    format!("{} shipping", style.format(cost as i64))
}

const SPEC_KEYS: &[&str] = &[
    "Brand",
    "Model",
    "Colour",
    "Material",
    "Year",
    "Country of Manufacture",
    "Size",
    "Type",
];

/// 2–6 item specifics with distinct keys.
fn specifics(rng: &mut SplitMix64) -> BTreeMap<String, String> {
    let mut keys = SPEC_KEYS.to_vec();
    for i in (1..keys.len()).rev() {
        keys.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let count = rng.range(2, 6) as usize;
    keys.into_iter()
        .take(count)
        .map(|key| (key.to_string(), spec_value(rng, key)))
        .collect()
}

fn spec_value(rng: &mut SplitMix64, key: &str) -> String {
    match key {
        "Brand" => rng
            .pick(&[
                "Acme",
                "Müller & Söhne",
                "Nordlicht",
                "Hartley",
                "Kobayashi",
                "Maison Lumière",
            ])
            .into(),
        "Model" => format!("M-{}", rng.range(100, 9999)),
        "Colour" => rng
            .pick(&["Black", "Brass", "Silver", "Green", "Ivory", "Walnut"])
            .into(),
        "Material" => rng.pick(MATERIALS).into(),
        "Year" => rng.range(1950, 2024).to_string(),
        "Country of Manufacture" => rng
            .pick(&[
                "Germany",
                "Japan",
                "United States",
                "Italy",
                "Côte d'Ivoire",
            ])
            .into(),
        "Size" => format!("{} cm", rng.range(5, 120)),
        _ => rng
            .pick(&["Decorative", "Functional", "Collectible", "Spare part"])
            .into(),
    }
}

fn description(rng: &mut SplitMix64, title: &str) -> String {
    const SENTENCES: &[&str] = &[
        "Shipped from a smoke-free home.",
        "Minor wear consistent with age — see photos.",
        "Tested & working; comes with the original box.",
        "Please check the photos for the exact condition.",
        "Combined shipping available for multiple items.",
    ];
    let first = rng.below(SENTENCES.len() as u64) as usize;
    let second = (first + 1 + rng.below(SENTENCES.len() as u64 - 1) as usize) % SENTENCES.len();
    format!("{title}. {} {}", SENTENCES[first], SENTENCES[second])
}

/// The display formats prices cycle through (by position in the results).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PriceStyle {
    UsDollar,
    EuroCode,
    EuroSuffix,
    Pound,
    Canadian,
    Australian,
    YenSign,
    YenCode,
}

impl PriceStyle {
    const ALL: [PriceStyle; 8] = [
        PriceStyle::UsDollar,
        PriceStyle::EuroCode,
        PriceStyle::EuroSuffix,
        PriceStyle::Pound,
        PriceStyle::Canadian,
        PriceStyle::Australian,
        PriceStyle::YenSign,
        PriceStyle::YenCode,
    ];

    pub(crate) fn for_index(index: usize) -> Self {
        Self::ALL[index % Self::ALL.len()]
    }

    /// ISO 4217 code.
    fn currency(self) -> &'static str {
        match self {
            PriceStyle::UsDollar => "USD",
            PriceStyle::EuroCode | PriceStyle::EuroSuffix => "EUR",
            PriceStyle::Pound => "GBP",
            PriceStyle::Canadian => "CAD",
            PriceStyle::Australian => "AUD",
            PriceStyle::YenSign | PriceStyle::YenCode => "JPY",
        }
    }

    fn decimals(self) -> u32 {
        if self.currency() == "JPY" { 0 } else { 2 }
    }

    /// The text shown on the page for an amount in minor units.
    pub(crate) fn format(self, minor: i64) -> String {
        let (anglo, euro) = (decimal(minor, ',', '.'), decimal(minor, '.', ','));
        match self {
            PriceStyle::UsDollar => format!("US ${anglo}"),
            PriceStyle::EuroCode => format!("EUR {euro}"),
            PriceStyle::EuroSuffix => format!("{euro} €"),
            PriceStyle::Pound => format!("£{anglo}"),
            PriceStyle::Canadian => format!("C ${anglo}"),
            PriceStyle::Australian => format!("AU ${anglo}"),
            PriceStyle::YenSign => format!("¥{}", group(minor.unsigned_abs(), ',')),
            PriceStyle::YenCode => format!("JPY {}", group(minor.unsigned_abs(), ',')),
        }
    }

    /// Plausible seller locations for the currency.
    fn cities(self) -> &'static [&'static str] {
        match self {
            PriceStyle::UsDollar => &[
                "Austin, United States",
                "Portland, United States",
                "Boston, United States",
            ],
            PriceStyle::EuroCode | PriceStyle::EuroSuffix => &[
                "München, Germany",
                "Lyon, France",
                "Sevilla, Spain",
                "Torino, Italy",
            ],
            PriceStyle::Pound => &["Manchester, United Kingdom", "Bristol, United Kingdom"],
            PriceStyle::Canadian => &["Toronto, Canada", "Montréal, Canada"],
            PriceStyle::Australian => &["Melbourne, Australia", "Brisbane, Australia"],
            PriceStyle::YenSign | PriceStyle::YenCode => &["Osaka, Japan", "Sapporo, Japan"],
        }
    }
}

/// `123456` → `"1,234.56"` (with the given separators).
fn decimal(minor: i64, thousands: char, point: char) -> String {
    let abs = minor.unsigned_abs();
    format!("{}{point}{:02}", group(abs / 100, thousands), abs % 100)
}

/// `1234567` → `"1,234,567"`.
pub(crate) fn group(n: u64, sep: char) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_formatted_like_the_spec() {
        assert_eq!(PriceStyle::UsDollar.format(123_456), "US $1,234.56");
        assert_eq!(PriceStyle::EuroCode.format(123_456), "EUR 1.234,56");
        assert_eq!(PriceStyle::EuroSuffix.format(123_456), "1.234,56 €");
        assert_eq!(PriceStyle::Pound.format(1299), "£12.99");
        assert_eq!(PriceStyle::Canadian.format(799), "C $7.99");
        assert_eq!(PriceStyle::Australian.format(510), "AU $5.10");
        assert_eq!(PriceStyle::YenSign.format(12_345), "¥12,345");
        assert_eq!(PriceStyle::YenCode.format(1_234_567), "JPY 1,234,567");
        assert_eq!(group(999, ','), "999");
    }

    #[test]
    fn ids_are_distinct_six_digit_numbers() {
        let ids: std::collections::HashSet<u32> =
            (0..5000).map(|i| listing_id(7, "lamp", i)).collect();
        assert_eq!(ids.len(), 5000);
        assert!(ids.iter().all(|id| (100_000..1_000_000).contains(id)));
        let other: std::collections::HashSet<u32> =
            (0..200).map(|i| listing_id(7, "chair", i)).collect();
        assert!(ids.iter().take(200).filter(|id| other.contains(id)).count() < 10);
    }

    #[test]
    fn catalogue_has_expected_mix() {
        let all: Vec<_> = (0..2000)
            .map(|i| listing(42, "http://x", "lamp", i))
            .collect();
        let gone = all.iter().filter(|l| l.status == "gone").count();
        let ended = all.iter().filter(|l| l.status == "ended").count();
        assert!((40..120).contains(&gone), "gone {gone}");
        assert!((100..240).contains(&ended), "ended {ended}");
        assert!(
            all.iter()
                .any(|l| l.price_minor.is_some_and(|p| p >= 100_000))
        );
        let live = all
            .iter()
            .find(|l| l.status != "gone")
            .expect("live listing");
        assert!((2..=6).contains(&live.specifics.len()));
        assert!((1..=5).contains(&live.images.len()));
        assert!(live.title.as_deref().is_some_and(|t| t.contains("Lamp")));
    }
}
