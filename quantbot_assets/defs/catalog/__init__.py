"""The `catalog` feature: the catalog assets, the `_SUCCESS` sensor and `catalog_sync`."""
