"""blazedit's model catalog (named target/draft pairs) and the offline fetch/convert tooling."""
