-- Offer signatures issued for the app (issue 23): which customer got which signed offer,
-- when, and the signature's nonce (the JWS `nonce` claim, or the legacy form's nonce), so
-- support can see it on the customer's timeline and the export carries it.
CREATE TABLE offer_signatures (
    id bigserial PRIMARY KEY,
    app_user_id text NOT NULL,
    offer text NOT NULL,
    product_id text NOT NULL,
    format text NOT NULL,
    nonce text NOT NULL,
    transaction_id text,
    eligible boolean,
    created_at timestamptz NOT NULL
);
CREATE INDEX offer_signatures_customer ON offer_signatures (app_user_id, created_at);
