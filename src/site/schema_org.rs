//! The schema.org fallback: rules that read a listing's fields from the page's schema.org
//! Product/Offer data (JSON-LD first, then microdata), used for every field a site file leaves
//! out unless it says `schema_org = false` under `[listing]`. Their labels start with
//! `schema.org`, so the trace says where a value came from.

use std::sync::LazyLock;

use super::{Field, ListingFields};

/// The fallback rules, in the site-file grammar.
const RULES: &str = r#"
title = [{ jsonld = "name", type = "Product" }, { itemprop = "name", type = "Product" }]
price = [
  { jsonld = ["offers.priceCurrency", "offers.price"], type = "Product" },
  { jsonld = "offers.price", type = "Product" },
  { itemprop = "price", type = "Product" },
]
description = [{ jsonld = "description", type = "Product" }, { itemprop = "description", type = "Product" }]
images = [{ jsonld = "image.url", type = "Product" }, { jsonld = "image", type = "Product" }, { itemprop = "image", type = "Product" }]
condition = [{ jsonld = "offers.itemCondition", type = "Product", regex = '([A-Za-z]+)Condition$' }]
seller = [{ jsonld = "offers.seller.name", type = "Product" }]
brand = [{ jsonld = "brand.name", type = "Product" }, { jsonld = "brand", type = "Product" }, { itemprop = "brand", type = "Product" }]
sku = [{ jsonld = "sku", type = "Product" }, { itemprop = "sku", type = "Product" }]
gtin = [
  { jsonld = "gtin13", type = "Product" }, { jsonld = "gtin12", type = "Product" },
  { jsonld = "gtin14", type = "Product" }, { jsonld = "gtin8", type = "Product" },
  { jsonld = "gtin", type = "Product" }, { itemprop = "gtin13", type = "Product" }, { itemprop = "gtin12", type = "Product" },
]
mpn = [{ jsonld = "mpn", type = "Product" }, { itemprop = "mpn", type = "Product" }]
availability = [{ jsonld = "offers.availability", type = "Product" }, { itemprop = "availability", type = "Product" }]
rating = [{ jsonld = "aggregateRating.ratingValue", type = "Product" }, { itemprop = "ratingValue", type = "Product" }]
review_count = [
  { jsonld = "aggregateRating.reviewCount", type = "Product" },
  { jsonld = "aggregateRating.ratingCount", type = "Product" },
  { itemprop = "reviewCount", type = "Product" }, { itemprop = "ratingCount", type = "Product" },
]
"#;

/// The fallback rules, parsed once.
static FALLBACK: LazyLock<ListingFields> = LazyLock::new(|| {
    // A constant text, checked by the test below: a problem would only leave fields empty.
    let specs = toml::from_str(RULES).unwrap_or_default();
    let mut fields = super::raw::plain_fields(specs).unwrap_or_default();
    for slot in slots(&mut fields) {
        for rule in slot.iter_mut().flat_map(|f| f.rules.iter_mut()) {
            rule.label = format!("schema.org {}", rule.label);
        }
    }
    fields
});

/// The fields a fallback rule exists for, as mutable slots.
fn slots(f: &mut ListingFields) -> [&mut Option<Field>; 13] {
    [
        &mut f.title,
        &mut f.price,
        &mut f.description,
        &mut f.images,
        &mut f.condition,
        &mut f.seller,
        &mut f.brand,
        &mut f.sku,
        &mut f.gtin,
        &mut f.mpn,
        &mut f.availability,
        &mut f.rating,
        &mut f.review_count,
    ]
}

/// `fields` with the schema.org rules for every field it leaves out.
pub fn fill(mut fields: ListingFields) -> ListingFields {
    let mut fallback = FALLBACK.clone();
    for (slot, rules) in slots(&mut fields).into_iter().zip(slots(&mut fallback)) {
        if slot.is_none() {
            *slot = rules.take();
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fallback_rule_is_valid_and_labelled_schema_org() {
        let specs = toml::from_str(RULES).unwrap();
        if let Err(problems) = super::super::raw::plain_fields(specs) {
            panic!("{problems:?}");
        }
        let filled = fill(ListingFields::default());
        let named = filled.named();
        assert_eq!(named.len(), 13, "every fallback field is filled");
        for (name, field) in named {
            assert!(
                field
                    .rules
                    .iter()
                    .all(|r| r.label.starts_with("schema.org ")),
                "{name}"
            );
        }
    }
}
