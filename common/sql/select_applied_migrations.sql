select version, name, checksum
from meta.schema_migrations
order by version;
