"""Storage maintenance: Iceberg snapshot expiry, dead-file removal and raw-archive retention."""
