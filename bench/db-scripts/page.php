<?php
// The database page for PHP-FPM: PDO with a persistent connection and a
// prepared statement (PDO's default, emulated prepares: one round trip).
$g = isset($_GET['g']) ? (int)$_GET['g'] : 1;
$db = new PDO('mysql:host=localhost;dbname=bench', 'bench', 'bench', [
	PDO::ATTR_PERSISTENT => true,
	PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
]);
$st = $db->prepare('SELECT id, name, price FROM items WHERE grp = ? ORDER BY id');
$st->execute([$g]);
header('Content-Type: text/html; charset=utf-8');
echo "<!DOCTYPE html>\n<html><head><title>Group $g</title></head><body>\n<h1>Group $g</h1>\n<table>\n<tr><th>id</th><th>name</th><th>price</th></tr>\n";
foreach ($st as $row) {
	echo '<tr><td>', $row['id'], '</td><td>', htmlspecialchars($row['name']), '</td><td>', $row['price'], "</td></tr>\n";
}
echo "</table>\n</body></html>\n";
