"""Media input and output: the ingest guard, probing, decoding and encoding."""
