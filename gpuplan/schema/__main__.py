"""`python -m gpuplan.schema`: rewrite the shipped estimate.schema.json from the models."""

from gpuplan.schema import SCHEMA_FILE, schema_text

SCHEMA_FILE.write_text(schema_text())
print(f"wrote {SCHEMA_FILE}")
