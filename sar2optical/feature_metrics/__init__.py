"""Feature-based image metrics, offline: FID and KID (Inception-v3 features), LPIPS; weights from local files."""
