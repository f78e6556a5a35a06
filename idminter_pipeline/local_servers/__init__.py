"""Project-local MariaDB and MySQL servers for development and tests: tooling, not the minter."""
