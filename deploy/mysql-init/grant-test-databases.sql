-- Lets the tests create and drop their per-session databases (idminter_test_*).
GRANT ALL PRIVILEGES ON *.* TO 'id_minter'@'%' WITH GRANT OPTION;
