//! Ground truth of the real saved eBay pages, from shared/realworld/SOURCES.md. Values SOURCES.md
//! marks unsure, and values it does not list but the page shows plainly, are decided here with the
//! reason beside them. Money is written "<decimal> <ISO code>".

/// One saved item page and what must be read from it.
pub struct ItemTruth {
    pub file: &'static str,
    /// The item id: the page is served at `/itm/<id>` so the URL yields it.
    pub id: &'static str,
    /// `content` or `ended`.
    pub class: &'static str,
    /// Field name (as in `listings --json`, or `specifics.<key>`) and true value.
    pub fields: &'static [(&'static str, &'static str)],
}

/// One saved search page.
pub struct SearchTruth {
    pub file: &'static str,
    /// Result rows, including placeholders.
    pub rows: usize,
    /// Rows linking to a real `/itm/<id>`.
    pub real: usize,
    pub unique: usize,
    pub first_id: &'static str,
    /// With hidden decoration removed and whitespace collapsed as a browser shows it.
    pub first_title: &'static str,
    pub first_price: &'static str,
    pub result_count: Option<u64>,
    pub has_next: bool,
}

pub const ITEMS: &[ItemTruth] = &[
    ItemTruth {
        file: "ebay-item-2013-11-vi-classic-unicycle.html",
        id: "310729787186",
        class: "content",
        fields: &[
            (
                "title",
                "Unicycle 20\" Silver Chrome Unicycles Wheel Cycling Outdoor Sports Fitness New",
            ),
            ("price", "49.95 USD"),
            ("item_id", "310729787186"),
            ("seller", "bestchoiceproducts"),
            ("condition", "New"),
            ("specifics.UPC", "813373010480"),
            ("shipping", "FREE Expedited Shipping"),
            ("location", "Rancho Cucamonga, California, United States"),
            ("auction", "false"),
            ("ended", "false"),
            // Not in SOURCES.md; read from the page: "List price: $99.95", "You save: $50.00",
            // and the seller's feedback link reads 294071.
            ("was_price", "99.95 USD"),
            ("seller_score", "294071"),
        ],
    },
    ItemTruth {
        file: "ebay-item-2017-07-vi-massage-chair.html",
        id: "390985762669",
        class: "content",
        fields: &[
            (
                "title",
                "Electric Full Body Shiatsu Massage Chair Recliner w/Heat Stretched Foot Rest 06C",
            ),
            ("price", "649.99 USD"),
            ("item_id", "390985762669"),
            ("seller", "xpectmoreforless"),
            ("condition", "New"),
            ("specifics.Brand", "BestMassage"),
            ("specifics.Model", "EC-06C"),
            ("specifics.MPN", "EC-06C"),
            ("shipping", "FREE Flat Rate Freight"),
            ("location", "Duluth, Georgia, United States"),
            ("auction", "false"),
            ("ended", "false"),
            // Read from the page: "List price: US $1,899.99".
            ("was_price", "1899.99 USD"),
        ],
    },
    ItemTruth {
        file: "ebay-item-2018-11-vi-auction-iphone-x.html",
        id: "223223340803",
        class: "content",
        fields: &[
            (
                "title",
                "Apple iPhone X - 64 G - Silver (T-Mobile) A1901 (GSM)",
            ),
            // Unsure in SOURCES.md: both prices are itemprop=price. The page lists "Current bid:
            // US $580.00 [45 bids]" first and "Buy It Now" below it; an auction's price is what it
            // stands at now (that is the series worth keeping as price history), so `price` is the
            // bid and the Buy It Now price is kept beside it.
            ("price", "580.00 USD"),
            ("buy_it_now_price", "1000.00 USD"),
            ("auction", "true"),
            ("bids", "45"),
            ("item_id", "223223340803"),
            ("seller", "astella-2012"),
            ("condition", "New other (see details)"),
            // The real data contradicts the title ("64 G"); the page is the truth.
            ("specifics.Storage Capacity", "256 GB"),
            (
                "shipping",
                "$51.18 (approx. ILS 188.28) International Priority Shipping to Israel via the Global Shipping Program",
            ),
            ("location", "Port Reading, New Jersey, United States"),
            ("ended", "false"),
        ],
    },
    ItemTruth {
        file: "ebay-item-2023-11-evo-depeche-mode-tshirt-variations.html",
        id: "325069926562",
        class: "content",
        fields: &[
            (
                "title",
                "DEPECHE MODE T SHIRT violator vinyl cd cover SMALL MEDIUM LARGE XL",
            ),
            // Displayed "US $24.99/ea".
            ("price", "24.99 USD"),
            ("item_id", "325069926562"),
            ("seller", "dannyglick"),
            ("seller_score", "159"),
            ("condition", "New with tags"),
            ("shipping", "Free Standard Shipping"),
            ("location", "Lexington, Kentucky, United States"),
            ("ended", "false"),
        ],
    },
    ItemTruth {
        file: "ebay-item-2023-11-evo-mario-hoodie-preowned.html",
        id: "256290968465",
        class: "content",
        fields: &[
            (
                "title",
                "Nintendo Super Mario Bros Hoodie Mens Size L White Red Original Hero 1985 Pixel",
            ),
            ("price", "19.91 USD"),
            ("item_id", "256290968465"),
            ("seller", "yanniche_0"),
            ("seller_score", "3692"),
            ("condition", "Pre-owned"),
            ("shipping", "US $11.75 Expedited Shipping"),
            ("location", "Sugar Land, Texas, United States"),
            ("ended", "false"),
            // Read from the page: a "Make offer" button.
            ("best_offer", "true"),
        ],
    },
    ItemTruth {
        file: "ebay-item-2023-11-evo-beastie-boys-tshirt-was-price.html",
        id: "364571307405",
        class: "content",
        fields: &[
            (
                "title",
                "1998 Beastie Boys Intergalactic Hello Nasty T-Shirt Black Cotton Size S-3XL",
            ),
            ("price", "9.49 USD"),
            ("was_price", "9.99 USD"),
            ("item_id", "364571307405"),
            ("seller", "jam_3779"),
            ("seller_score", "73"),
            ("condition", "New with tags"),
            ("shipping", "US $5.99 Expedited Shipping"),
            ("location", "Bayside, New York, United States"),
            ("ended", "false"),
        ],
    },
    ItemTruth {
        file: "ebay-item-2025-06-evo-rtx5090-eur-listing.html",
        id: "226771798286",
        class: "content",
        fields: &[
            ("title", "NVIDIA GeForce RTX 5090 FE Founders Edition"),
            // The listing's own currency; JSON-LD's 3971.45 USD is a conversion (the trap).
            ("price", "3500.00 EUR"),
            ("item_id", "226771798286"),
            ("seller", "salomon0651"),
            ("seller_score", "113"),
            ("condition", "New"),
            ("shipping", "EUR 150.00 (approx US $170.21) DHL"),
            ("location", "Paris, France"),
            ("specifics.Taille de la mémoire", "24 Go"),
            ("auction", "false"),
            ("ended", "false"),
        ],
    },
    ItemTruth {
        file: "ebay-item-2025-11-evo-fr-sold-ps5-pro.html",
        id: "406425377949",
        class: "ended",
        fields: &[
            // Unsure in SOURCES.md: the h1 is eBay's machine translation for a French viewer;
            // <title>, og:title and the "Texte d'origine" tooltip carry the seller's own title.
            // Like the price (the listing's own currency), the title is the listing's own; the
            // translation is kept as `translated_title`.
            ("title", "Sony PlayStation 5 Pro 2TB White Console"),
            (
                "translated_title",
                "Console Sony PlayStation 5 Pro 2 To Blanche",
            ),
            // JSON-LD's 642.94 EUR is the conversion.
            ("price", "565.00 GBP"),
            ("buy_it_now_price", "565.00 GBP"),
            ("auction", "false"),
            ("item_id", "406425377949"),
            ("seller", "un4ltered"),
            ("seller_score", "251"),
            ("condition", "Neuf"),
            ("ended", "true"),
            ("status_text", "Vente réussie le mer. 26 nov. à 23:49."),
            // SOURCES.md stops at "Viêt Nam"; the line on the page goes on.
            (
                "shipping",
                "104,36 GBP (environ 118,76 EUR) International Priority Shipping vers : Viêt Nam via Service de livraison internationale d'eBay",
            ),
            // Read from the page: "Lieu où se trouve l'objet : Exmouth, Royaume-Uni".
            ("location", "Exmouth, Royaume-Uni"),
        ],
    },
    ItemTruth {
        file: "ebay-item-2026-04-evo-de-lego-best-offer.html",
        id: "198187151691",
        class: "content",
        fields: &[
            ("title", "LEGO 4 Juniors: Großes Piratenschiff (7075)"),
            ("price", "164.00 EUR"),
            ("best_offer", "true"),
            ("item_id", "198187151691"),
            ("seller", "richiengel"),
            ("seller_score", "397"),
            ("condition", "Neu"),
            ("shipping", "EUR 6,19 DHL Paket"),
            ("specifics.Marke", "LEGO"),
            ("specifics.Herstellernummer", "7075"),
            ("specifics.Erscheinungsjahr", "2004"),
            // Read from the page: "Standort: Delmenhorst, Deutschland" (pickup in 27751).
            ("location", "Delmenhorst, Deutschland"),
            ("ended", "false"),
        ],
    },
    ItemTruth {
        file: "ebay-product-page-2026-07-hp-423a.html",
        // Unsure in SOURCES.md: the page is catalog product 1701411334, but everything a listing
        // record holds (price, seller, condition) belongs to the featured listing of its buy box,
        // 298293090902 ("See all details" → /itm/298293090902), so that is the record's id.
        id: "298293090902",
        class: "content",
        fields: &[
            ("title", "Hewlett Packard HP 423A Coaxial Crystal Detector"),
            ("price", "29.99 USD"),
            ("item_id", "298293090902"),
            ("seller", "DISCOFRIEND"),
            ("seller_score", "1106"),
            ("condition", "Used"),
            ("ended", "false"),
        ],
    },
];

pub const SEARCHES: &[SearchTruth] = &[
    SearchTruth {
        file: "ebay-search-2015-12-lvresult-ru-nikon.html",
        rows: 50,
        real: 50,
        unique: 50,
        first_id: "291258487187",
        first_title: "Nikon (черный) D3300 цифровая Зеркальная Камера тела с 18-55 мм VR II объектив",
        first_price: "28 643,11 руб.",
        // "Объявлений: 296,782" (listings) in the classic count line.
        result_count: Some(296_782),
        has_next: true,
    },
    SearchTruth {
        file: "ebay-search-2018-02-lvresult-fragment-ps4.html",
        rows: 100,
        real: 100,
        unique: 50,
        first_id: "253394214054",
        first_title: "Sony PlayStation 4 Destiny White PS4 500GB",
        first_price: "$236.88",
        result_count: None,
        has_next: false,
    },
    SearchTruth {
        file: "ebay-search-2021-01-sitem-uk-warhammer.html",
        rows: 62,
        real: 61,
        unique: 61,
        first_id: "264901451112",
        // The source has a double space after "Warhammer"; a browser shows one.
        first_title: "Warhammer 40k Push-fit Primaris Space Marine Intercessor sprue 99380101121",
        first_price: "£3.95",
        result_count: Some(185_510),
        has_next: true,
    },
    SearchTruth {
        file: "ebay-search-2022-11-sitem-de-apple.html",
        rows: 69,
        real: 68,
        unique: 64,
        first_id: "144278067683",
        first_title: "3x 2m Ladekabel NYLON für Original iPhone 6 7 8 11 12 X XS XR Pro Max USB Apple",
        first_price: "EUR 10,79",
        result_count: Some(97_000),
        has_next: true,
    },
    SearchTruth {
        file: "ebay-search-2024-02-sitem-smart-watch.html",
        rows: 61,
        real: 60,
        unique: 60,
        first_id: "355265204939",
        first_title: "Smart Watch Series 9 Pro - GPS + NFC (Men and Women iWatch 9)",
        first_price: "$55.80",
        result_count: Some(40_000),
        has_next: true,
    },
    SearchTruth {
        file: "ebay-search-2025-05-sitem-jp-nintendo-switch.html",
        rows: 62,
        real: 60,
        unique: 60,
        first_id: "125098319434",
        first_title: "ニンテンドースイッチゲーム&コンソール 英国 英語 PAL EUR チョイス 新品 * Pay 1 配送",
        first_price: "3,858 円 ～ 13,507 円",
        result_count: Some(7_400),
        has_next: true,
    },
    SearchTruth {
        file: "ebay-search-2025-07-transitional-lenovo-laptop.html",
        rows: 62,
        real: 60,
        unique: 60,
        first_id: "254654754368",
        first_title: "HP EliteBook 840 G3 Laptop PC 14\" HD Intel Core i5 8GB RAM 256GB SSD Windows 10",
        first_price: "$149.26",
        result_count: Some(10_000),
        has_next: true,
    },
    SearchTruth {
        file: "ebay-search-2025-11-scard-fr-ps5.html",
        rows: 62,
        real: 60,
        unique: 60,
        first_id: "127152732063",
        first_title: "Sony PS5 PlayStation 5 CFI-1000A01 Home Console White 825GB No Update Japan NEW",
        first_price: "577,32 EUR",
        result_count: Some(5_000),
        has_next: true,
    },
    SearchTruth {
        file: "ebay-search-2026-02-scard-zero-results-fewer-words.html",
        rows: 62,
        real: 60,
        unique: 60,
        first_id: "406610186423",
        first_title: "BUILT Puff Protein Bar, Peanut Butter Cup, 15g Protein, 4 Count Box, 1.55 oz",
        first_price: "$7.57",
        // The zero-result heading: the 60 cards below it match fewer words of the query.
        result_count: Some(0),
        has_next: false,
    },
    SearchTruth {
        file: "ebay-search-2026-04-scard-de-lego-nan.html",
        rows: 62,
        real: 60,
        unique: 60,
        first_id: "266831246079",
        first_title: "Original LEGO® Großeltern Geschenk & Bank Oma Opa Minifiguren Nan Opa",
        first_price: "EUR 17,72 bis EUR 18,66",
        result_count: Some(1_300),
        has_next: true,
    },
    SearchTruth {
        file: "ebay-search-2026-07-scard-seller-items.html",
        rows: 62,
        real: 60,
        unique: 60,
        first_id: "188619565807",
        first_title: "Los Angeles Negros Aplaude Mi Final LP",
        first_price: "$13.50",
        result_count: Some(565),
        has_next: true,
    },
];
