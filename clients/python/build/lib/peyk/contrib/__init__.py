"""Framework integrations: `peyk.contrib.django`, `peyk.contrib.fastapi`
(each imports its framework, so neither is imported here)."""
