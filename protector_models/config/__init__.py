"""Configuration: the pydantic schema, strict YAML reading and writing, and the named presets."""
