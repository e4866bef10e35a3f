-- The benchmark's table: 1,000 items in 100 groups of 10, indexed by
-- group. Names need HTML escaping ('&', '<', '>'), so each page does some.
CREATE TABLE items (
	id INT NOT NULL PRIMARY KEY,
	grp INT NOT NULL,
	name VARCHAR(64) NOT NULL,
	price DECIMAL(8,2) NOT NULL,
	KEY grp (grp)
) ENGINE=InnoDB;
INSERT INTO items (id, grp, name, price)
	SELECT seq, seq % 100, CONCAT('Item ', seq, ' <Fish & Chips> ', REPEAT('x', seq % 7)), seq * 1.25
	FROM seq_1_to_1000;
