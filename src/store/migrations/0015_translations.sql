-- Translations (issue 21 item 4): one row per (tenant, locale, namespace), as Knock's
-- management API and knock-cli's `translations/` directory hold them. `tenant` and
-- `namespace` are '' when absent, so the key stays a plain primary key.
CREATE TABLE translations (
    tenant      TEXT NOT NULL DEFAULT '',
    locale_code TEXT NOT NULL,
    namespace   TEXT NOT NULL DEFAULT '',
    content     TEXT NOT NULL,
    inserted_at TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (tenant, locale_code, namespace)
) WITHOUT ROWID;
