"""REST job API: FastAPI app, JWT/JWKS auth and routes; uploads feed a daemon folder (docs/api.md)."""
