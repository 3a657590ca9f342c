-- Every field a site definition can read is stored: the product identity (brand, SKU, GTIN,
-- MPN), stock, rating and review count, a site's own [listing.extra] fields (a JSON object as
-- TEXT), and the fields read before but never kept (the item number shown, the translated title,
-- the was and buy-it-now prices in minor units with their currency, auction and best-offer flags
-- as 0/1, bids, the status text, the description's URL) and the per-field read errors (JSON).
ALTER TABLE listings ADD COLUMN brand TEXT;
ALTER TABLE listings ADD COLUMN sku TEXT;
ALTER TABLE listings ADD COLUMN gtin TEXT;
ALTER TABLE listings ADD COLUMN mpn TEXT;
ALTER TABLE listings ADD COLUMN availability TEXT;
ALTER TABLE listings ADD COLUMN rating REAL;
ALTER TABLE listings ADD COLUMN review_count BIGINT;
ALTER TABLE listings ADD COLUMN extra TEXT NOT NULL DEFAULT '{}';
ALTER TABLE listings ADD COLUMN item_id TEXT;
ALTER TABLE listings ADD COLUMN translated_title TEXT;
ALTER TABLE listings ADD COLUMN was_price_minor BIGINT;
ALTER TABLE listings ADD COLUMN was_currency TEXT;
ALTER TABLE listings ADD COLUMN buy_it_now_minor BIGINT;
ALTER TABLE listings ADD COLUMN buy_it_now_currency TEXT;
ALTER TABLE listings ADD COLUMN auction BIGINT NOT NULL DEFAULT 0;
ALTER TABLE listings ADD COLUMN best_offer BIGINT NOT NULL DEFAULT 0;
ALTER TABLE listings ADD COLUMN bids BIGINT;
ALTER TABLE listings ADD COLUMN status_text TEXT;
ALTER TABLE listings ADD COLUMN description_url TEXT;
ALTER TABLE listings ADD COLUMN field_errors TEXT NOT NULL DEFAULT '{}';
